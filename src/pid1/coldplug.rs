//! Loading the kernel modules the hardware needs: every
//! `/sys/bus/*/devices/*/modalias` is matched against the boot
//! environment's `modules.alias`, dependencies come from `modules.dep`,
//! each module is loaded once with `finit_module`. Repeated until no new
//! device shows up, since a bus driver (virtio_pci) creates the devices
//! (virtio0) whose drivers (virtio_net) come next.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wyrcan_core::modules::ModuleIndex;

use crate::sys::Sys;

/// Every modalias currently in `sys_root`/bus/*/devices/*/modalias.
pub fn modaliases(sys: &dyn Sys, sys_root: &Path) -> Vec<String> {
    let mut out = BTreeSet::new();
    let bus_dir = sys_root.join("bus");
    let Ok(buses) = sys.read_dir(&bus_dir) else {
        return Vec::new();
    };
    for bus in buses {
        let devices = bus_dir.join(bus).join("devices");
        let Ok(devs) = sys.read_dir(&devices) else {
            continue;
        };
        for dev in devs {
            if let Ok(a) = sys.read(&devices.join(dev).join("modalias")) {
                let a = String::from_utf8_lossy(&a);
                let a = a.trim();
                if !a.is_empty() {
                    out.insert(a.to_string());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The module tree of the running kernel.
pub fn module_dir(release: &str) -> PathBuf {
    Path::new("/lib/modules").join(release)
}

/// Load modules for the present hardware plus `always` (e.g. efivarfs),
/// until a pass finds nothing new (at most a few passes). Failures of one
/// module are logged, not fatal: a missing NIC driver shows up later as
/// "no network", with the module named in the log.
pub fn run(sys: &dyn Sys, sys_root: &Path, moddir: &Path, always: &[&str]) -> Result<Vec<String>> {
    let read = |name: &str| -> Result<String> {
        match sys.read(&moddir.join(name)) {
            Ok(s) => Ok(String::from_utf8_lossy(&s).into_owned()),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && matches!(name, "modules.builtin" | "modules.softdep") =>
            {
                Ok(String::new())
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", moddir.join(name).display())),
        }
    };
    let index = ModuleIndex::parse(
        &read("modules.alias")?,
        &read("modules.dep")?,
        &read("modules.builtin")?,
    )
    .and_then(|i| i.with_softdeps(&read("modules.softdep").unwrap_or_default()))
    .context("reading the module index of the boot environment")?;
    let mut loaded: BTreeSet<String> = BTreeSet::new();
    let mut seen_aliases: BTreeSet<String> = BTreeSet::new();
    let mut wanted: Vec<String> = always.iter().map(|s| s.to_string()).collect();
    for _pass in 0..5 {
        for alias in modaliases(sys, sys_root) {
            if seen_aliases.insert(alias.clone()) {
                wanted.extend(index.match_modalias(&alias));
            }
        }
        if wanted.is_empty() {
            break;
        }
        let order = match index.load_order(&wanted) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("resolving module dependencies: {e}");
                Vec::new()
            }
        };
        wanted.clear();
        let mut new = false;
        for path in order {
            if !loaded.insert(path.clone()) {
                continue;
            }
            new = true;
            tracing::debug!("loading module {path}");
            if let Err(e) = sys.load_module(&moddir.join(&path)) {
                tracing::warn!("{e}");
            }
        }
        if !new {
            break;
        }
        // Let drivers create their child devices before looking again.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(loaded.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    /// A virtio NIC: virtio_pci creates the virtio device that virtio_net
    /// binds to, so a second pass finds it.
    #[test]
    fn loads_drivers_for_present_devices_with_dependencies() {
        let sys = FakeSys::default();
        let m = Path::new("/lib/modules/6.1.0-test");
        sys.put(
            m.join("modules.alias"),
            b"alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias virtio:d00000001v* virtio_net\n",
        );
        sys.put(
            m.join("modules.dep"),
            b"kernel/virtio_pci.ko: kernel/virtio_ring.ko\nkernel/virtio_ring.ko:\nkernel/virtio_net.ko: kernel/net_failover.ko\nkernel/net_failover.ko:\nkernel/efivarfs.ko:\n",
        );
        sys.put(
            "/sys/bus/pci/devices/0000:00:03.0/modalias",
            b"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n",
        );
        // Appears once virtio_pci is loaded; the fake has it from the start,
        // and the loop must still load each module once.
        sys.put(
            "/sys/bus/virtio/devices/virtio0/modalias",
            b"virtio:d00000001v00001AF4\n",
        );
        let loaded = run(&sys, Path::new("/sys"), m, &["efivarfs"]).unwrap();
        let calls = sys.calls();
        let order: Vec<&str> = calls
            .iter()
            .map(|c| c.rsplit('/').next().unwrap())
            .collect();
        let at = |m: &str| {
            order
                .iter()
                .position(|o| *o == m)
                .unwrap_or_else(|| panic!("{m} not loaded: {order:?}"))
        };
        assert_eq!(at("efivarfs.ko"), 0, "{order:?}");
        assert!(at("virtio_ring.ko") < at("virtio_pci.ko"), "{order:?}");
        assert!(at("net_failover.ko") < at("virtio_net.ko"), "{order:?}");
        assert_eq!(order.len(), 5, "each module once: {order:?}");
        assert_eq!(loaded.len(), 5, "{loaded:?}");
    }

    #[test]
    fn a_missing_module_index_is_an_error() {
        let sys = FakeSys::default();
        let e = run(&sys, Path::new("/sys"), Path::new("/lib/modules/x"), &[]).unwrap_err();
        assert!(format!("{e:#}").contains("modules.alias"), "{e:#}");
    }
}
