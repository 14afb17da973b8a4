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
pub fn modaliases(sys_root: &Path) -> Vec<String> {
    let mut out = BTreeSet::new();
    let Ok(buses) = std::fs::read_dir(sys_root.join("bus")) else {
        return Vec::new();
    };
    for bus in buses.flatten() {
        let Ok(devs) = std::fs::read_dir(bus.path().join("devices")) else {
            continue;
        };
        for dev in devs.flatten() {
            if let Ok(a) = std::fs::read_to_string(dev.path().join("modalias")) {
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
        match std::fs::read_to_string(moddir.join(name)) {
            Ok(s) => Ok(s),
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
        for alias in modaliases(sys_root) {
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
