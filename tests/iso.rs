//! `wyrcan.iso` and the EFI-stored configuration, on real parts: the ISO
//! from `scripts/build-iso` boots under OVMF (QEMU TCG) as a CD and as a
//! disk, its systemd-boot menu can be edited over the serial console, and
//! `wyrcan.efi=write|clear` persist across boots in one OVMF_VARS copy,
//! and `wyrcan customize --iso` fills its site area in place (only those
//! bytes change) with settings the boot uses. Also `wyrcan efi` on the
//! host, against a directory and the real registry, and the site area of
//! `scripts/site-area` against the Rust side's.
//!
//! The VM tests need `out/` from `scripts/build-bootenv` and take minutes,
//! so they are `#[ignore]`d for a plain `cargo test`; `scripts/test` runs
//! them with `--include-ignored`. Each test builds its own ISO, because
//! the cmdline it bakes in is part of what is tested.

mod common;
mod vmharness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::image::push;
use common::registry::Registry;
use vmharness::media::{build_iso, customize, ovmf_vars};
use vmharness::{artifact, bootable, iso_vm, repo, test_kernel, Media, BOOT, GUEST_REGISTRY};
use wyrcan_core::efivar::{self, StoredConfig};
use wyrcan_core::site_area;

/// The cmdline that boots `repo:tag` from the test registry.
fn image_args(repo_tag: &str) -> String {
    format!("wyrcan.img={GUEST_REGISTRY}/{repo_tag} wyrcan.insecure={GUEST_REGISTRY}")
}

/// Fails if the kernel could not unpack the initrds (the site area's
/// zeros and archives included).
fn assert_initramfs_unpacked(vm: &vmharness::Vm) {
    let log = vm.log();
    assert!(
        !log.contains("Initramfs unpacking failed"),
        "the initrds did not unpack cleanly:\n{log}"
    );
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn iso_with_baked_cmdline_boots_from_cdrom() {
    let registry = Registry::start();
    push(&registry, "iso/cd", "v1", &bootable("iso-cd"));
    let tmp = tempfile::tempdir().unwrap();
    let iso = build_iso(tmp.path(), "cd", &image_args("iso/cd:v1"));
    let vars = ovmf_vars(tmp.path());
    let mut vm = iso_vm("iso-cd", &registry, &vars, &iso, Media::Cd);
    // The menu is drawn (over serial too) before the kernel starts.
    vm.wait_for("Wyrcan, the container bootloader", BOOT);
    vm.wait_for("Command line: initrd=", BOOT);
    vm.wait_for("Wyrcan 0.", BOOT);
    let cmdline = vm.container_on_its_kernel("iso-cd").cmdline;
    assert!(cmdline.contains("console=ttyS0 panic=-1"), "{cmdline}");
    assert!(
        !cmdline.contains("wyrcan."),
        "Wyrcan's own arguments leaked: {cmdline}"
    );
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn iso_boots_as_a_disk() {
    let registry = Registry::start();
    push(&registry, "iso/disk", "v1", &bootable("iso-disk"));
    let tmp = tempfile::tempdir().unwrap();
    let iso = build_iso(tmp.path(), "disk", &image_args("iso/disk:v1"));
    let vars = ovmf_vars(tmp.path());
    let mut vm = iso_vm("iso-disk", &registry, &vars, &iso, Media::Disk);
    vm.container_on_its_kernel("iso-disk");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

/// One OVMF_VARS copy across four boots: write, use, clear, gone.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn efi_config_is_written_used_and_cleared_across_reboots() {
    let registry = Registry::start();
    push(&registry, "iso/stored", "v1", &bootable("iso-stored"));
    let tmp = tempfile::tempdir().unwrap();
    let vars = ovmf_vars(tmp.path());
    let plain = build_iso(tmp.path(), "plain", "");

    // Boot 1: store the config, after the warning and a typed "yes".
    let write = build_iso(
        tmp.path(),
        "write",
        &format!(
            "{} wyrcan.arg=stored-arg wyrcan.efi=write",
            image_args("iso/stored:v1")
        ),
    );
    let mut vm = iso_vm("efi-1-write", &registry, &vars, &write, Media::Cd);
    vm.wait_for("firmware handles variable writes badly", BOOT);
    vm.answer("Save this configuration in EFI NVRAM?", "yes\r");
    vm.wait_for("Saved.", Duration::from_secs(60));
    let cmdline = vm.container_on_its_kernel("iso-stored").cmdline;
    assert!(cmdline.contains("stored-arg"), "{cmdline}");
    vm.assert_exits(Duration::from_secs(60), "boot 1 did not end");
    drop(vm);

    // Boot 2: no wyrcan.img on the cmdline: the stored config boots.
    let mut vm = iso_vm("efi-2-stored", &registry, &vars, &plain, Media::Cd);
    vm.wait_for("using the configuration stored in EFI NVRAM", BOOT);
    let cmdline = vm.container_on_its_kernel("iso-stored").cmdline;
    assert!(
        cmdline.contains("stored-arg"),
        "the stored wyrcan.arg is missing: {cmdline}"
    );
    vm.assert_exits(Duration::from_secs(60), "boot 2 did not end");
    drop(vm);

    // Boot 3: clear it (confirmed), then a reboot ends QEMU (-no-reboot).
    let clear = build_iso(tmp.path(), "clear", "wyrcan.efi=clear");
    let mut vm = iso_vm("efi-3-clear", &registry, &vars, &clear, Media::Cd);
    vm.answer("Remove the Wyrcan configuration", "yes\r");
    vm.wait_for(
        "The stored configuration was removed",
        Duration::from_secs(60),
    );
    vm.assert_exits(Duration::from_secs(120), "no reboot after clearing");
    drop(vm);

    // Boot 4: nothing stored, nothing on the cmdline: the help text.
    let mut vm = iso_vm("efi-4-help", &registry, &vars, &plain, Media::Cd);
    vm.help_then_reboot(Duration::from_secs(30), Duration::from_secs(120));
    let log = vm.log();
    assert!(!log.contains("using the configuration stored"), "{log}");
    // The empty site area is an initrd too: unpacked, and no settings.
    assert!(!log.contains("site settings:"), "{log}");
    assert_initramfs_unpacked(&vm);
    vm.assert_no_panic();
}

/// An operator prepares the machine from a running OS with `wyrcan efi
/// write` (here: a container booted from the ISO, with the static wyrcan
/// binary and the efivarfs module of its kernel); the next plain ISO boot
/// uses what it stored.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn efi_write_from_a_running_host_is_used_by_the_next_boot() {
    use common::image::{Entry, Layer};
    let registry = Registry::start();
    let (_, release) = test_kernel();
    let efivarfs_ko = artifact(&format!(
        "build/testkernel/lib/modules/{release}/kernel/fs/efivarfs/efivarfs.ko"
    ));
    let target = format!("{GUEST_REGISTRY}/iso/after-host:v1");
    let init = format!(
        "#!/bin/sh\n\
         export PATH=/bin\n\
         busybox mkdir -p /proc /sys /dev\n\
         busybox mount -t proc proc /proc\n\
         busybox mount -t sysfs sysfs /sys\n\
         busybox insmod /efivarfs.ko\n\
         busybox mount -t efivarfs efivarfs /sys/firmware/efi/efivars\n\
         /wyrcan efi write {target} --insecure {GUEST_REGISTRY} --arg from-host --yes\n\
         echo \"EFI-WRITE-EXIT=$?\"\n\
         /wyrcan efi show\n\
         echo \"CONTAINER-MARKER host-efi\"\n\
         echo \"CMDLINE=$(busybox cat /proc/cmdline)\"\n\
         echo \"UNAME=$(busybox uname -r)\"\n\
         echo \"CONTAINER-DONE\"\n\
         busybox poweroff -f\n"
    );
    let mut host = bootable("host-efi");
    host.layers.push(Layer::new(vec![
        Entry::file(
            "wyrcan",
            std::fs::read(artifact("build/initrd/init")).unwrap(),
        )
        .mode(0o755),
        Entry::file("efivarfs.ko", std::fs::read(efivarfs_ko).unwrap()).mode(0o644),
        Entry::file("init", init).mode(0o755),
    ]));
    push(&registry, "iso/host", "v1", &host);
    push(&registry, "iso/after-host", "v1", &bootable("after-host"));
    let tmp = tempfile::tempdir().unwrap();
    let vars = ovmf_vars(tmp.path());

    let prep = build_iso(tmp.path(), "prep", &image_args("iso/host:v1"));
    let mut vm = iso_vm("efi-host-1", &registry, &vars, &prep, Media::Cd);
    vm.wait_for("firmware handles variable writes badly", BOOT);
    let (_, exit) = vm.wait_for("EFI-WRITE-EXIT=", Duration::from_secs(60));
    assert!(exit.ends_with("EFI-WRITE-EXIT=0"), "{}", vm.log());
    vm.wait_for(&format!("image: {target}"), Duration::from_secs(30));
    vm.container_on_its_kernel("host-efi");
    vm.assert_exits(Duration::from_secs(60), "boot 1 did not end");
    drop(vm);

    let plain = build_iso(tmp.path(), "plain", "");
    let mut vm = iso_vm("efi-host-2", &registry, &vars, &plain, Media::Cd);
    vm.wait_for("using the configuration stored in EFI NVRAM", BOOT);
    let cmdline = vm.container_on_its_kernel("after-host").cmdline;
    assert!(cmdline.contains("from-host"), "{cmdline}");
    vm.assert_exits(Duration::from_secs(60), "boot 2 did not end");
}

/// `wyrcan.efi=write` on a machine without EFI (direct kernel boot, no
/// OVMF): a message that says why, not a crash.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn efi_write_without_efi_firmware_says_why() {
    let registry = Registry::start();
    push(&registry, "iso/noefi", "v1", &bootable("noefi"));
    let mut vm = vmharness::wyrcan_vm(
        "no-efi",
        &registry,
        &format!("wyrcan.img={GUEST_REGISTRY}/iso/noefi:v1 wyrcan.efi=write"),
    );
    let line = vm.boot_failed();
    assert!(line.contains("no EFI variables"), "{line}");
    vm.wait_for("Rebooting in", Duration::from_secs(30));
    vm.assert_no_panic();
}

/// systemd-boot's editor over the serial console: `e`, End, type, Enter.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn cmdline_edited_at_the_boot_menu() {
    let registry = Registry::start();
    push(&registry, "iso/edited", "v1", &bootable("iso-edited"));
    let tmp = tempfile::tempdir().unwrap();
    let plain = build_iso(tmp.path(), "plain", "");
    let vars = ovmf_vars(tmp.path());
    let mut vm = iso_vm("iso-editor", &registry, &vars, &plain, Media::Cd);
    vm.wait_for("Boot in", BOOT);
    vm.send("e");
    // Let the editor draw before typing; keys would queue anyway.
    std::thread::sleep(Duration::from_secs(2));
    // End (`\x1b[F`), then the image after the existing options. Ctrl-E
    // does not reach systemd-boot, and Ctrl-A is QEMU's escape key.
    vm.send("\x1b[F");
    std::thread::sleep(Duration::from_millis(500));
    vm.send(&format!(" {}", image_args("iso/edited:v1")));
    std::thread::sleep(Duration::from_millis(500));
    vm.send("\r");
    let (_, line) = vm.wait_for("Command line:", BOOT);
    assert!(
        line.contains("console=ttyS0 wyrcan.img="),
        "the edit did not land after the options: {line}"
    );
    vm.container_on_its_kernel("iso-edited");
    assert_initramfs_unpacked(&vm);
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

/// `wyrcan customize --iso` on an ISO whose cmdline names no image: the
/// site's default image (and its insecure registry) boots, from the CD.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn customized_iso_boots_the_site_default_image() {
    let registry = Registry::start();
    push(&registry, "iso/site", "v1", &bootable("iso-site"));
    let tmp = tempfile::tempdir().unwrap();
    let plain = build_iso(tmp.path(), "plain", "");
    let site = tmp.path().join("site.iso");
    let image = format!("{GUEST_REGISTRY}/iso/site:v1");
    customize(
        "--iso",
        &plain,
        &site,
        &[
            "--image",
            &image,
            "--insecure",
            GUEST_REGISTRY,
            "--arg",
            "site-arg",
        ],
    );
    let vars = ovmf_vars(tmp.path());
    let mut vm = iso_vm("iso-site", &registry, &vars, &site, Media::Cd);
    let (_, line) = vm.wait_for("Command line: initrd=", BOOT);
    assert!(!line.contains("wyrcan.img"), "{line}");
    vm.wait_for(&format!("site settings: default image {image}"), BOOT);
    let cmdline = vm.container_on_its_kernel("iso-site").cmdline;
    assert!(cmdline.contains("site-arg"), "{cmdline}");
    assert_initramfs_unpacked(&vm);
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

/// The ISO is reproducible, carries the baked cmdline in its menu entry and
/// a GPT whose EFI System Partition holds a FAT file system (what firmware
/// boots from a USB stick).
#[test]
#[ignore = "needs out/ from scripts/build-bootenv; run by scripts/test"]
fn iso_is_reproducible_with_an_esp_in_its_gpt() {
    let tmp = tempfile::tempdir().unwrap();
    let cmdline = "wyrcan.img=example.org/os:1 wyrcan.arg=\"quiet ro\"";
    let a = build_iso(tmp.path(), "a", cmdline);
    std::thread::sleep(Duration::from_millis(1100));
    let b = build_iso(tmp.path(), "b", cmdline);
    let bytes = std::fs::read(&a).unwrap();
    assert!(bytes == std::fs::read(&b).unwrap(), "two builds differ");

    // Protective MBR, then the GPT header at LBA 1.
    assert_eq!(&bytes[510..512], &[0x55, 0xaa]);
    assert_eq!(bytes[446 + 4], 0xee, "no protective MBR partition");
    assert_eq!(&bytes[512..520], b"EFI PART");
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let entries = u64_at(512 + 72) as usize * 512;
    let count = u32_at(512 + 80) as usize;
    let size = u32_at(512 + 84) as usize;
    // C12A7328-F81F-11D2-BA4B-00A0C93EC93B, mixed-endian as GPT stores it.
    let esp_type = [
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9,
        0x3b,
    ];
    let esp = (0..count)
        .map(|i| entries + i * size)
        .find(|&e| bytes[e..e + 16] == esp_type)
        .expect("no EFI System Partition in the GPT");
    let first = u64_at(esp + 32) as usize * 512;
    let last = u64_at(esp + 40) as usize * 512 + 511;
    assert!(last < bytes.len());
    let boot_sector = &bytes[first..first + 512];
    assert_eq!(
        &boot_sector[510..],
        &[0x55, 0xaa],
        "ESP has no FAT boot sector"
    );
    assert!(
        boot_sector.windows(3).any(|w| w == b"FAT"),
        "ESP is not FAT"
    );

    // The menu entry, read back out of the ESP with mtools.
    let esp_img = tmp.path().join("esp.img");
    std::fs::write(&esp_img, &bytes[first..=last]).unwrap();
    let read = |path: &str| {
        let out = Command::new("mtype")
            .arg("-i")
            .arg(&esp_img)
            .arg(format!("::{path}"))
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .expect("mtype (package mtools)");
        assert!(out.status.success(), "mtype {path}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let entry = read("/loader/entries/wyrcan.conf");
    assert!(
        entry.contains(&format!("options console=tty0 console=ttyS0 {cmdline}\n")),
        "{entry}"
    );
    assert!(entry.contains("linux /wyrcan.kernel"), "{entry}");
    assert!(
        entry.contains("initrd /wyrcan.initrd\ninitrd /site.img\n"),
        "{entry}"
    );
    let loader = read("/loader/loader.conf");
    assert!(
        loader.contains("editor yes") && loader.contains("timeout"),
        "{loader}"
    );
    let listing = Command::new("mdir")
        .args(["-b", "-/", "-i"])
        .arg(&esp_img)
        .arg("::/")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_uppercase();
    for f in [
        "EFI/BOOT/BOOTX64.EFI",
        "WYRCAN.KERNEL",
        "WYRCAN.INITRD",
        "SITE.IMG",
    ] {
        assert!(listing.contains(f), "{f} missing from the ESP: {listing}");
    }

    // The site area: the ESP's /site.img, one run of the ISO's bytes.
    let area = site_area::find(&bytes).unwrap();
    assert_eq!(area.size, site_area::AREA_SIZE);
    assert!(first <= area.offset && area.offset + area.size <= last + 1);
    let site_img = |esp: &[u8]| {
        std::fs::write(&esp_img, esp).unwrap();
        let out = Command::new("mcopy")
            .arg("-i")
            .arg(&esp_img)
            .args(["::/site.img", "-"])
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "mcopy: {out:?}");
        out.stdout
    };
    assert!(site_img(&bytes[first..=last]) == site_area::placeholder(area.size));
    let out = common::wyrcan(&["customize", "--show", a.to_str().unwrap()]);
    let err = common::assert_failure(&out, "customize --show of a plain ISO");
    assert!(err.contains("whose site area is empty"), "{err}");

    // Customized: only the area changes, the FAT file is still the area,
    // the same settings give the same bytes.
    let c1 = tmp.path().join("c1.iso");
    let c2 = tmp.path().join("c2.iso");
    let settings = ["--image", "example.org/site:1", "--arg", "quiet"];
    customize("--iso", &a, &c1, &settings);
    customize("--iso", &a, &c2, &settings);
    let custom = std::fs::read(&c1).unwrap();
    assert!(
        custom == std::fs::read(&c2).unwrap(),
        "two customizations differ"
    );
    assert_eq!(custom.len(), bytes.len());
    let payload = area.payload();
    assert!(custom[..payload.start] == bytes[..payload.start]);
    assert!(custom[payload.end..] == bytes[payload.end..]);
    assert!(custom[payload.clone()] != bytes[payload]);
    assert!(site_img(&custom[first..=last]) == custom[area.range()]);
    let out = common::wyrcan(&["customize", "--show", c1.to_str().unwrap()]);
    common::assert_success(&out, "customize --show of a customized ISO");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "image: example.org/site:1\narg: quiet\nauth: (none)\npolicy: (none: every image is booted as served)\n"
    );
}

/// `scripts/site-area` (run by `scripts/build-iso`) and
/// `core::site_area` build the same bytes, agree on the size, and the
/// script's check finds exactly one intact area.
#[test]
fn site_area_script_matches_the_rust_side() {
    let script = repo().join("scripts/site-area");
    let tmp = tempfile::tempdir().unwrap();
    for size in [site_area::AREA_SIZE, 4096, 1000] {
        let out = tmp.path().join(format!("area-{size}"));
        let status = Command::new(&script)
            .arg("write")
            .arg(size.to_string())
            .arg(&out)
            .status()
            .expect("running scripts/site-area (python3)");
        assert!(status.success());
        assert!(
            std::fs::read(&out).unwrap() == site_area::placeholder(size),
            "scripts/site-area and site_area::placeholder differ for {size} bytes"
        );
    }
    let build_iso = std::fs::read_to_string(repo().join("scripts/build-iso")).unwrap();
    assert!(
        build_iso.contains(&format!(
            "site_area_size=$(({} * 1024))",
            site_area::AREA_SIZE / 1024
        )),
        "scripts/build-iso's site_area_size is not site_area::AREA_SIZE"
    );

    let iso = tmp.path().join("fake.iso");
    let mut bytes = vec![7u8; 10_000];
    bytes.extend(site_area::placeholder(4096));
    bytes.extend(vec![9u8; 5_000]);
    std::fs::write(&iso, &bytes).unwrap();
    let check = |path: &Path| {
        Command::new(&script)
            .args(["check", "4096"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = check(&iso);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10000\n");
    assert_eq!(site_area::find(&bytes).unwrap().offset, 10_000);
    // Not contiguous (a byte of something else inside): refused.
    bytes[10_000 + 3000] = 1;
    std::fs::write(&iso, &bytes).unwrap();
    let out = check(&iso);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no intact 4096-byte site area"));
}

/// `wyrcan efi` on a host, against a directory standing in for efivarfs:
/// `--check` resolves the image in the real registry before anything is
/// written, and a missing image writes nothing.
#[test]
fn efi_write_checks_the_image_then_show_and_clear() {
    let registry = common::registry::shared();
    push(registry, "efi/host", "v1", &bootable_or_tiny());
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().to_str().unwrap();
    let addr = registry.addr();

    let out = common::wyrcan(&[
        "efi",
        "--efivars",
        vars,
        "write",
        &format!("{addr}/efi/host:nope"),
        "--insecure",
        &addr,
        "--check",
        "--yes",
    ]);
    let err = common::assert_failure(&out, "efi write of a missing tag");
    assert!(err.contains("drop --check"), "{err}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());

    let image = format!("{addr}/efi/host:v1");
    let out = common::wyrcan(&[
        "efi",
        "--efivars",
        vars,
        "write",
        &image,
        "--insecure",
        &addr,
        "--arg",
        "quiet ro",
        "--ip",
        "dhcp",
        "--check",
        "--yes",
    ]);
    common::assert_success(&out, "efi write --check");
    let err = common::stderr(&out);
    assert!(
        err.contains("firmware handles variable writes badly"),
        "{err}"
    );
    let stored =
        StoredConfig::from_file(&std::fs::read(dir.path().join(efivar::file_name())).unwrap())
            .unwrap();
    assert_eq!(stored.img, image);
    assert_eq!(stored.args, ["quiet ro"]);
    assert_eq!(stored.insecure, [addr.as_str()]);
    assert_eq!(stored.ip, ["dhcp"]);

    let out = common::wyrcan(&["efi", "--efivars", vars, "show"]);
    common::assert_success(&out, "efi show");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.starts_with(&format!("image: {image}\n")), "{shown}");

    // No terminal, no --yes: refused, nothing removed.
    let out = common::wyrcan(&["efi", "--efivars", vars, "clear"]);
    let err = common::assert_failure(&out, "efi clear without an answer");
    assert!(err.contains("--yes"), "{err}");
    let out = common::wyrcan(&["efi", "--efivars", vars, "clear", "--yes"]);
    common::assert_success(&out, "efi clear --yes");
    let out = common::wyrcan(&["efi", "show", "--efivars", vars]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "none\n");
}

/// Without EFI firmware (a BIOS machine), `wyrcan efi show` says why and
/// what to do. On a host that booted with EFI the binary runs in a user
/// and mount namespace of its own where a tmpfs hides `/sys/firmware`
/// (no root needed, nothing changes outside), so the path is tested on
/// every host. (The binary has no switch for this: `--efivars DIR`
/// replaces the efivarfs mount and skips the firmware check altogether.)
#[test]
fn efi_without_efi_firmware_says_why() {
    let out = if Path::new("/sys/firmware/efi").exists() {
        let out = common::wyrcan_via(
            &[
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                "sh",
                "-c",
                "mount -t tmpfs none /sys/firmware || exit 97; exec \"$0\" \"$@\"",
            ],
            &["efi", "show"],
            &[],
        );
        assert_ne!(
            out.status.code(),
            Some(97),
            "this host booted with EFI and /sys/firmware cannot be hidden from the \
             binary (`unshare --user --map-root-user --mount` failed: are user \
             namespaces disabled?): {}",
            common::stderr(&out)
        );
        out
    } else {
        common::wyrcan(&["efi", "show"])
    };
    let err = common::assert_failure(&out, "efi show without EFI");
    assert!(
        err.contains("this machine did not boot with EFI"),
        "what failed: {err}"
    );
    assert!(
        err.contains("boot it in EFI mode") && err.contains("wyrcan.img="),
        "what to do: {err}"
    );
}

/// `--efivars` naming something that is not a directory is refused, and
/// says which.
#[test]
fn efi_efivars_must_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    for bad in [file, dir.path().join("missing")] {
        let out = common::wyrcan(&["efi", "--efivars", bad.to_str().unwrap(), "show"]);
        let err = common::assert_failure(&out, "efi --efivars FILE");
        assert!(
            err.contains(&format!("--efivars {}: not a directory", bad.display())),
            "{err}"
        );
    }
}

/// A small image for the host-side test (only its manifest is resolved).
fn bootable_or_tiny() -> common::image::Image {
    use common::image::{Entry, Image, Layer};
    Image::oci(vec![Layer::new(vec![Entry::file("init", "#!/bin/sh\n")])])
}
