//! `wyrcan.root=squashfs` under QEMU (TCG): the image's tree as one
//! squashfs in the initrd, mounted by Wyrcan's stage 2 through a loop
//! device under a tmpfs overlay, with the image's own modules; `auto`
//! choosing it when the unpacked form does not fit; and the stage 2's
//! failures told on the console, never a kernel panic.
//!
//! Need `out/` from `scripts/build-bootenv` (its static wyrcan is the
//! stage 2); `#[ignore]`d for a plain `cargo test`.

mod common;
mod vmharness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::image::{push, Entry, Image, Layer};
use common::registry::Registry;
use vmharness::{
    artifact, bootable, host_morph, test_kernel, wyrcan_vm, Vm, VmConfig, BOOT, GUEST_REGISTRY,
};

/// The test kernel's own loop, squashfs and overlay modules and the index
/// that lists them, as a layer (`/lib/modules/<release>`).
fn modules_layer() -> Layer {
    let (_, release) = test_kernel();
    let base = artifact("build/testkernel/lib/modules").join(&release);
    let mut entries = vec![
        Entry::dir("lib"),
        Entry::dir("lib/modules"),
        Entry::dir(&format!("lib/modules/{release}")),
    ];
    for index in ["modules.dep", "modules.builtin"] {
        entries.push(Entry::file(
            &format!("lib/modules/{release}/{index}"),
            std::fs::read(base.join(index)).unwrap(),
        ));
    }
    let mut dirs = std::collections::BTreeSet::new();
    for rel in [
        "kernel/drivers/block/loop.ko",
        "kernel/fs/squashfs/squashfs.ko",
        "kernel/fs/overlayfs/overlay.ko",
    ] {
        let mut parent = Path::new(rel).parent();
        let mut chain = Vec::new();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            chain.push(p.to_path_buf());
            parent = p.parent();
        }
        for d in chain.into_iter().rev() {
            if dirs.insert(d.clone()) {
                entries.push(Entry::dir(&format!(
                    "lib/modules/{release}/{}",
                    d.display()
                )));
            }
        }
        entries.push(Entry::file(
            &format!("lib/modules/{release}/{rel}"),
            std::fs::read(base.join(rel)).unwrap(),
        ));
    }
    Layer::new(entries)
}

/// [`bootable`] with the modules, and an `/init` that reports what the
/// root is: its mount line, the squashfs under it, a write, the process
/// that is PID 1, the boot record, the memory.
fn squash_image(mark: &str, extra: Vec<Layer>) -> Image {
    let mut image = bootable(mark);
    image.layers.push(modules_layer());
    image.layers.extend(extra);
    let init = format!(
        "#!/bin/sh\n\
         export PATH=/bin\n\
         [ -e /proc/self ] || busybox mount -t proc proc /proc\n\
         echo \"CONTAINER-MARKER {mark}\"\n\
         echo \"UNAME=$(busybox uname -r)\"\n\
         echo \"ROOTMNT=$(busybox grep '^[^ ]* / ' /proc/mounts | busybox tail -n1)\"\n\
         echo \"LOWER=$(busybox grep ' /run/wyrcan/lower ' /proc/mounts)\"\n\
         echo written > /written-here && echo \"WRITE=$(busybox cat /written-here)\"\n\
         echo \"PID1=$(busybox tr '\\0' ' ' < /proc/1/cmdline)\"\n\
         echo \"BOOTED=$(busybox tr -d '\\n' < /etc/wyrcan/booted.json)\"\n\
         echo \"LEFT=$(busybox ls /wyrcan /init.wyrcan 2>&1 | busybox tr '\\n' ' ')\"\n\
         echo \"$(busybox grep MemAvailable /proc/meminfo)\"\n\
         echo \"CONTAINER-DONE\"\n\
         busybox poweroff -f\n"
    );
    image
        .layers
        .push(Layer::new(vec![Entry::file("init", init).mode(0o755)]));
    image
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn squashfs_root_boots_under_an_overlay_and_nothing_of_wyrcan_stays() {
    let registry = Registry::start();
    push(
        &registry,
        "e2e/squash",
        "v1",
        &squash_image("squash", vec![]),
    );
    let mut vm = wyrcan_vm(
        "squash",
        &registry,
        &format!("wyrcan.img={GUEST_REGISTRY}/e2e/squash:v1 wyrcan.root=squashfs"),
    );
    vm.wait_for("Wyrcan", BOOT);
    vm.wait_for("CONTAINER-MARKER squash", BOOT);
    vm.wait_for("CONTAINER-DONE", Duration::from_secs(60));
    let (_, release) = test_kernel();
    assert_eq!(vm.printed("UNAME="), release);
    let root = vm.printed("ROOTMNT=");
    assert!(
        root.starts_with("overlay / overlay") && root.contains("lowerdir=/run/wyrcan/lower"),
        "/ is not the overlay: {root}"
    );
    let lower = vm.printed("LOWER=");
    assert!(
        lower.starts_with("/dev/loop") && lower.contains(" squashfs ro"),
        "the lower layer is not a read-only squashfs on a loop device: {lower}"
    );
    assert_eq!(vm.printed("WRITE="), "written");
    // The image's /init runs as PID 1: the stage 2 exec'd it.
    assert_eq!(vm.printed("PID1=").trim(), "/bin/sh /init");
    assert!(
        vm.printed("BOOTED=").contains("e2e/squash:v1"),
        "booted.json did not reach the new root: {}",
        vm.printed("BOOTED=")
    );
    let log = vm.log();
    assert!(
        log.contains("squashfs root") && log.contains("loop"),
        "stage 1 did not say what it built: {log}"
    );
    vm.assert_no_panic();
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn auto_takes_squashfs_when_the_unpacked_image_does_not_fit() {
    // 300 MiB of text that compresses to almost nothing: unpacked it
    // cannot fit a 448 MiB machine, as a squashfs it does.
    let registry = Registry::start();
    let line = b"wyrcan squashfs auto test line, compressible on purpose.\n";
    let text: Vec<u8> = line.iter().copied().cycle().take(300 << 20).collect();
    let big = Layer::new(vec![Entry::dir("data"), Entry::file("data/text", text)]);
    push(
        &registry,
        "e2e/auto",
        "v1",
        &squash_image("auto", vec![big]),
    );
    let mut vm = Vm::start(
        "auto",
        &VmConfig {
            mem_mb: 448,
            ..VmConfig::wyrcan(
                &registry,
                &format!("wyrcan.img={GUEST_REGISTRY}/e2e/auto:v1 wyrcan.root=auto"),
            )
        },
    );
    vm.wait_for("Wyrcan", BOOT);
    let (_, said) = vm.wait_for("booting it as a squashfs root instead", BOOT);
    assert!(said.contains("wyrcan.root=auto"), "{said}");
    vm.wait_for("CONTAINER-MARKER auto", BOOT);
    vm.wait_for("CONTAINER-DONE", Duration::from_secs(60));
    assert!(vm.printed("ROOTMNT=").starts_with("overlay / overlay"));
    vm.assert_no_panic();
}

/// A static wyrcan: the boot environment's `/init`.
fn static_wyrcan() -> PathBuf {
    artifact("build/initrd/init")
}

/// `wyrcan morph --root squashfs` of `repo` on the host, into `dir`:
/// (kernel, initrd, cmdline).
fn morph_squashfs(registry: &Registry, repo: &str, dir: &Path) -> (PathBuf, PathBuf, String) {
    let stage2 = static_wyrcan();
    host_morph(
        registry,
        repo,
        dir,
        &["--root", "squashfs", "--stage2", stage2.to_str().unwrap()],
    )
}

/// Appends a plain newc archive of `files` to `initrd`: the kernel applies
/// it last, so it replaces what the conversion wrote.
fn append_plain(initrd: &Path, files: &[(&str, &[u8])]) {
    use std::io::Write as _;
    use wyrcan_core::tree::{Meta, Sink as _};
    let mut w = wyrcan_core::cpio::Writer::new(Vec::new());
    for (name, data) in files {
        let meta = Meta {
            mode: 0o644,
            ..Meta::IMPLIED_DIR
        };
        w.file(
            &[name.as_bytes().to_vec()],
            &meta,
            data.len() as u64,
            &mut &data[..],
        )
        .unwrap();
    }
    let out = w.finish().unwrap();
    // The kernel takes a plain archive only at a 4-byte aligned offset of
    // the initrd; zeros before it are skipped.
    let len = std::fs::metadata(initrd).unwrap().len() as usize;
    let mut padded = vec![0u8; (4 - len % 4) % 4];
    padded.extend(out);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(initrd)
        .unwrap();
    f.write_all(&padded).unwrap();
}

/// Boots `kernel` + `initrd` directly and returns the console once the
/// stage 2 gave up (it reboots after its countdown; QEMU runs with
/// -no-reboot, so that ends the VM).
fn stage2_failure(name: &str, kernel: &Path, initrd: &Path, cmdline: &str, expect: &str) -> String {
    let mut vm = Vm::start(name, &VmConfig::direct(kernel, initrd, cmdline));
    let (_, line) = vm.wait_for(expect, BOOT);
    vm.assert_exits(
        Duration::from_secs(60),
        "the stage 2 did not reboot after its error",
    );
    vm.assert_no_panic();
    assert!(line.contains("stage 2"), "{line}");
    line
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn stage2_failures_are_told_on_the_console_then_it_reboots() {
    let registry = Registry::start();
    push(
        &registry,
        "e2e/sqfail",
        "v1",
        &squash_image("sqfail", vec![]),
    );
    let dir = tempfile::tempdir().unwrap();
    let (kernel, initrd, cmdline) = morph_squashfs(&registry, "e2e/sqfail:v1", dir.path());
    // The config the conversion wrote, with a short countdown.
    let parts = common::oracle::squash_initrd(&initrd);
    let mut config: serde_json::Value =
        serde_json::from_slice(&parts.files["wyrcan/stage2.json"]).unwrap();
    config["countdown_secs"] = 2.into();
    let short = config.to_string();

    // A module the config names but the initrd lacks.
    let missing = dir.path().join("missing");
    std::fs::copy(&initrd, &missing).unwrap();
    let mut lacking = config.clone();
    lacking["modules"]
        .as_array_mut()
        .unwrap()
        .push("/wyrcan/modules/nowhere.ko".into());
    let lacking = lacking.to_string();
    append_plain(&missing, &[("wyrcan/stage2.json", lacking.as_bytes())]);
    let line = stage2_failure("sq-missing", &kernel, &missing, &cmdline, "nowhere.ko");
    assert!(line.contains("missing"), "{line}");

    // A squashfs that is not one.
    let corrupt = dir.path().join("corrupt");
    std::fs::copy(&initrd, &corrupt).unwrap();
    let garbage: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    append_plain(
        &corrupt,
        &[
            ("wyrcan/root.squashfs", &garbage),
            ("wyrcan/stage2.json", short.as_bytes()),
        ],
    );
    let line = stage2_failure(
        "sq-corrupt",
        &kernel,
        &corrupt,
        &cmdline,
        "could not be mounted",
    );
    assert!(line.contains("root.squashfs"), "{line}");
}
