//! Stage 2 on a fake machine: the exact calls of a boot, and how each
//! failure is said and ends.

use std::sync::Mutex;

use rustix::io::Errno;

use super::*;
use crate::sys::fake::FakeSys;

/// A console that keeps what was said; its countdowns run out.
#[derive(Default)]
struct FakeTerm(Mutex<String>);

impl FakeTerm {
    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

impl Terminal for FakeTerm {
    fn say(&self, text: &str) {
        self.0.lock().unwrap().push_str(text);
    }
    fn read_line(&self) -> String {
        String::new()
    }
    fn countdown(&self, what: &str, secs: u64) -> bool {
        self.say(&format!("<countdown {what} {secs}>"));
        false
    }
}

fn config() -> Stage2Config {
    Stage2Config {
        overlay_size: Some("50%".into()),
        ..Stage2Config::new(
            "reg.lan/os:1@sha256:ab",
            vec![
                "/wyrcan/modules/loop.ko.xz".into(),
                "/wyrcan/modules/squashfs.ko".into(),
            ],
            "/sbin/init",
            7,
        )
    }
}

/// An initrd with `cfg`, and an image whose /sbin is merged into /usr and
/// whose init is systemd through a relative and an absolute link.
fn machine(cfg: &Stage2Config) -> FakeSys {
    let mut sys = FakeSys::with_cmdline(b"console=ttyS0,115200 quiet splash");
    sys.put(CONFIG_PATH, &cfg.to_json());
    sys.put("/init", b"wyrcan");
    sys.put("/wyrcan/root.squashfs", b"hsqs");
    let links = [
        ("/sysroot/sbin", "usr/sbin"),
        ("/sysroot/usr/sbin/init", "../lib/systemd/systemd"),
        ("/sysroot/usr/lib/systemd/systemd", "/usr/lib/systemd/real"),
    ];
    for (from, to) in links {
        sys.symlinks.insert(from.into(), to.into());
    }
    sys.put("/sysroot/usr/lib/systemd/real", b"\x7fELF");
    sys
}

/// `early` then `run`, as `main` does; the kernel's leftover words as args.
fn boot(sys: &FakeSys) -> (FakeTerm, Vec<String>) {
    let term = FakeTerm::default();
    let (consoles, warnings) = early(sys);
    assert_eq!(consoles, ["ttyS0,115200"]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let args: Vec<OsString> = vec!["quiet".into(), "splash".into()];
    run(sys, &term, &args);
    (term, sys.calls())
}

#[test]
fn the_image_root_is_assembled_and_switched_to() {
    let sys = machine(&config());
    let (term, calls) = boot(&sys);
    assert_eq!(
        calls,
        [
            "mount devtmpfs /dev devtmpfs -",
            "mount proc /proc proc -",
            "mount sysfs /sys sysfs -",
            "mount tmpfs /run tmpfs mode=0755",
            "stdio_to_console",
            "load_module /wyrcan/modules/loop.ko.xz",
            "load_module /wyrcan/modules/squashfs.ko",
            "loop_attach /wyrcan/root.squashfs",
            "mount_ro /dev/loop0 /run/wyrcan/lower squashfs -",
            "mount tmpfs /run/wyrcan/rw tmpfs mode=0755,size=50%",
            "mkdir /run/wyrcan/rw/upper",
            "mkdir /run/wyrcan/rw/work",
            "mount overlay /sysroot overlay \
             lowerdir=/run/wyrcan/lower,upperdir=/run/wyrcan/rw/upper,workdir=/run/wyrcan/rw/work",
            "mkdir /sysroot/dev",
            "move_mount /dev /sysroot/dev",
            "mkdir /sysroot/proc",
            "move_mount /proc /sysroot/proc",
            "mkdir /sysroot/sys",
            "move_mount /sys /sysroot/sys",
            "mkdir /sysroot/run",
            "move_mount /run /sysroot/run",
            "remove /init",
            "remove /wyrcan",
            "remove /etc",
            "switch_root /sysroot /sbin/init quiet splash",
            // The fake's switch_root returns, as a real one only does on failure.
            "power Restart",
        ]
    );
    assert!(sys.get("/wyrcan/root.squashfs").is_none() && sys.get("/init").is_none());
    let text = term.text();
    assert!(
        text.starts_with("wyrcan stage 2: starting reg.lan/os:1@sha256:ab\n"),
        "{text}"
    );
    assert!(
        text.contains("wyrcan stage 2: starting the image's init /sbin/init: fake switch_root"),
        "{text}"
    );
    assert!(text.ends_with("<countdown Rebooting 7>"), "{text}");
}

#[test]
fn the_boot_record_moves_into_the_new_root() {
    let sys = machine(&config());
    sys.put(BOOTED, b"{\"reference\":\"x\"}");
    let (_, calls) = boot(&sys);
    let at = |c: &str| {
        calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("{c}: {calls:?}"))
    };
    assert!(at("write /sysroot/etc/wyrcan/booted.json") < at("move_mount /dev /sysroot/dev"));
    assert_eq!(
        sys.get("/sysroot/etc/wyrcan/booted.json").as_deref(),
        Some(&b"{\"reference\":\"x\"}"[..])
    );
}

#[test]
fn without_an_overlay_size_the_tmpfs_default_holds() {
    let mut cfg = config();
    cfg.overlay_size = None;
    let (_, calls) = boot(&machine(&cfg));
    assert!(calls.contains(&"mount tmpfs /run/wyrcan/rw tmpfs mode=0755".to_string()));
}

#[test]
fn mounts_already_there_are_fine_others_are_said() {
    let mut sys = machine(&config());
    sys.mount_errors.insert("/dev".into(), Errno::BUSY);
    sys.mount_errors.insert("/sys".into(), Errno::NODEV);
    let (_, warnings) = early(&sys);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("/sys"), "{warnings:?}");
}

/// Runs a failing boot: the message, then the countdown and a reboot, and
/// no switch.
fn fails(sys: &FakeSys, countdown: u64, message: &str) -> Vec<String> {
    let (term, calls) = boot(sys);
    let text = term.text();
    assert!(text.contains(message), "want {message:?} in:\n{text}");
    assert!(
        text.ends_with(&format!("<countdown Rebooting {countdown}>")),
        "{text}"
    );
    assert_eq!(calls.last().map(String::as_str), Some("power Restart"));
    assert!(
        !calls.iter().any(|c| c.starts_with("switch_root")),
        "{calls:?}"
    );
    calls
}

#[test]
fn a_missing_config() {
    let sys = machine(&config());
    sys.remove_tree_same_dev(Path::new(CONFIG_PATH)).unwrap();
    let calls = fails(
        &sys,
        30,
        "wyrcan stage 2: reading /wyrcan/stage2.json: entity not found — \
         build the initrd again with this wyrcan, or boot the image with wyrcan.root=cpio\n",
    );
    assert!(!calls.iter().any(|c| c.starts_with("load_module")));
}

#[test]
fn a_config_that_is_not_one() {
    let sys = machine(&config());
    sys.put(CONFIG_PATH, br#"{"version": 1, "image": "x", "colour": 1}"#);
    fails(
        &sys,
        30,
        "wyrcan stage 2: reading /wyrcan/stage2.json: /wyrcan/stage2.json is not a stage-2 config (unknown field `colour`",
    );
    sys.put(CONFIG_PATH, b"{\"version\": 3}");
    fails(
        &sys,
        30,
        "is version 3, this wyrcan reads version 1 — build the initrd again",
    );
}

#[test]
fn a_module_missing_from_the_initrd() {
    let mut sys = machine(&config());
    sys.module_errors
        .insert("/wyrcan/modules/squashfs.ko".into(), Errno::NOENT);
    let calls = fails(
        &sys,
        7,
        "wyrcan stage 2: loading modules: module /wyrcan/modules/squashfs.ko is missing from the initrd: \
         loading module /wyrcan/modules/squashfs.ko: No such file or directory (os error 2)",
    );
    assert!(!calls.iter().any(|c| c.starts_with("loop_attach")));

    let mut sys = machine(&config());
    sys.module_errors
        .insert("/wyrcan/modules/loop.ko.xz".into(), Errno::NOEXEC);
    fails(
        &sys,
        7,
        "wyrcan stage 2: loading modules: loading module /wyrcan/modules/loop.ko.xz: Exec format error (os error 8) — \
         the initrd's modules must be the image kernel's own",
    );
}

#[test]
fn no_loop_device() {
    let mut sys = machine(&config());
    sys.loop_error = Some(Errno::NOENT);
    let calls = fails(
        &sys,
        7,
        "wyrcan stage 2: attaching /wyrcan/root.squashfs to a loop device: attaching /wyrcan/root.squashfs \
         to a loop device: No such file or directory (os error 2) — the image's kernel needs loop devices",
    );
    assert!(!calls.iter().any(|c| c.starts_with("mount_ro")));
}

#[test]
fn a_corrupt_squashfs() {
    let mut sys = machine(&config());
    sys.mount_errors
        .insert("/run/wyrcan/lower".into(), Errno::INVAL);
    let calls = fails(
        &sys,
        7,
        "wyrcan stage 2: mounting the image's tree: the image's squashfs /wyrcan/root.squashfs could not be \
         mounted (corrupt or not supported by this kernel: mounting squashfs on /run/wyrcan/lower: \
         Invalid argument (os error 22)) — the image's kernel needs squashfs with zstd",
    );
    assert!(!calls.iter().any(|c| c.starts_with("mount overlay")));
}

#[test]
fn no_overlayfs() {
    let mut sys = machine(&config());
    sys.mount_errors.insert("/sysroot".into(), Errno::NODEV);
    fails(
        &sys,
        7,
        "wyrcan stage 2: mounting the writable overlay: mounting overlay on /sysroot: No such device (os error 19) — \
         the image's kernel needs overlayfs",
    );
}

#[test]
fn an_image_without_its_init() {
    let sys = machine(&config());
    sys.remove_tree_same_dev(Path::new("/sysroot/usr/lib/systemd/real"))
        .unwrap();
    let calls = fails(
        &sys,
        7,
        "wyrcan stage 2: finding the image's init: the image reg.lan/os:1@sha256:ab has no /sbin/init \
         (it leads to /usr/lib/systemd/real, which is missing) — give the image an init",
    );
    assert!(!calls.iter().any(|c| c.starts_with("move_mount")));

    let mut cfg = config();
    cfg.init = "/init".into();
    fails(
        &machine(&cfg),
        7,
        "the image reg.lan/os:1@sha256:ab has no /init — give",
    );

    let mut sys = machine(&config());
    sys.symlinks
        .insert("/sysroot/usr/lib/systemd/real".into(), "systemd".into());
    fails(
        &sys,
        7,
        "/sbin/init in the image reg.lan/os:1@sha256:ab is a symlink loop",
    );
}

#[test]
fn symlinks_resolve_inside_the_new_root() {
    let mut sys = FakeSys::default();
    for (from, to) in [
        ("/r/bin", "usr/bin"),
        ("/r/usr/bin/sh", "/usr/bin/../bin/busybox"),
        ("/r/up", "../../.."),
    ] {
        sys.symlinks.insert(from.into(), to.into());
    }
    let r = |p: &str| resolve_in(&sys, Path::new("/r"), Path::new(p)).unwrap();
    assert_eq!(r("/bin/sh"), Path::new("/r/usr/bin/busybox"));
    // `..` after a symlink is the parent of its target, as in the kernel.
    assert_eq!(r("/bin/../etc"), Path::new("/r/usr/etc"));
    assert_eq!(r("/sbin/init"), Path::new("/r/sbin/init"));
    // `..` stops at the new root, as it will once it is `/`.
    assert_eq!(r("/up/etc/passwd"), Path::new("/r/etc/passwd"));
    assert_eq!(r("/../../etc/./passwd"), Path::new("/r/etc/passwd"));
}
