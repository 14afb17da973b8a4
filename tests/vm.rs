//! End-to-end boots under QEMU (TCG): Wyrcan's own kernel + initrd pull a
//! test image from the real registry on 127.0.0.1 (reached by the guest
//! only through a guestfwd rule) and kexec into the image's kernel.
//!
//! They need `out/` from `scripts/build-bootenv` and take a minute each,
//! so they are `#[ignore]`d for a plain `cargo test`; `scripts/test` runs
//! them with `--include-ignored`.

mod common;
mod vmharness;

use std::time::Duration;

use common::image::{noise, push, Entry, Layer};
use common::registry::Registry;
use vmharness::{
    boot_container, bootable, test_kernel, wyrcan_release, wyrcan_vm, Vm, VmConfig, BOOT,
    GUEST_REGISTRY,
};

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn boots_an_image_by_dhcp_with_its_own_kernel_and_args() {
    let registry = Registry::start();
    push(&registry, "e2e/basic", "v1", &bootable("basic"));
    let mut vm = wyrcan_vm(
        "basic",
        &registry,
        &format!(
            "wyrcan.img={GUEST_REGISTRY}/e2e/basic:v1 wyrcan.arg=\"quiet log_buf_len=1M\" wyr.arg=foo=\"x y\" wyrcan.arg=last"
        ),
    );
    let container = boot_container(&mut vm, "basic");
    container.assert_image_kernel();
    let (_, release) = test_kernel();
    assert_ne!(
        wyrcan_release(),
        release,
        "test kernel must differ from Wyrcan's"
    );
    let cmdline = &container.cmdline;
    for want in [
        "console=ttyS0 panic=-1",
        "quiet log_buf_len=1M",
        "foo=\"x y\"",
        " last",
    ] {
        assert!(
            cmdline.contains(want),
            "{want:?} missing from the next cmdline: {cmdline}"
        );
    }
    let order = ["panic=-1", "quiet", "foo=", "last"].map(|w| cmdline.find(w).unwrap());
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "arguments out of order: {cmdline}"
    );
    assert!(
        !cmdline.contains("wyrcan.img"),
        "Wyrcan's own arguments leaked: {cmdline}"
    );
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn static_ip_and_pinned_digest() {
    let registry = Registry::start();
    let digest = push(&registry, "e2e/pinned", "v1", &bootable("pinned"));
    let mut vm = wyrcan_vm(
        "static-pinned",
        &registry,
        &format!("ip=10.0.2.15::10.0.2.2:255.255.255.0:guest:eth0:none wyrcan.img={GUEST_REGISTRY}/e2e/pinned@{digest}"),
    );
    let cmdline = boot_container(&mut vm, "pinned").cmdline;
    assert!(cmdline.contains("panic=-1"), "{cmdline}");
    assert!(vm.log().contains("10.0.2.15/24 (static)"), "{}", vm.log());
    assert!(!vm.log().contains("DHCP"), "static ip= must not run DHCP");
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn missing_image_is_explained_on_the_console_without_panic() {
    let registry = Registry::start();
    let mut vm = wyrcan_vm(
        "missing",
        &registry,
        &format!("wyrcan.img={GUEST_REGISTRY}/e2e/nothing:here"),
    );
    let line = vm.boot_failed();
    assert!(line.contains("not found"), "{line}");
    vm.wait_for("Rebooting in", Duration::from_secs(30));
    // A key stops the countdown.
    vm.send("x");
    vm.wait_for("Stopped", Duration::from_secs(30));
    vm.assert_no_panic();
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn no_image_shows_help_and_waits_for_enter() {
    let registry = Registry::start();
    let mut vm = wyrcan_vm("help", &registry, "");
    vm.help_then_reboot(Duration::from_secs(10), Duration::from_secs(60));
    vm.assert_no_panic();
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn host_morphed_initrd_boots_directly_in_many_frames() {
    // The initrd is written as many independently compressed frames (one
    // layer per thread); the kernel must read them as one archive. Random
    // data makes every frame hit the size limit.
    let registry = Registry::start();
    let mut image = bootable("direct");
    image.layers.push(Layer::new(vec![
        Entry::dir("data"),
        Entry::file("data/noise", noise(5 << 20, 7)),
        Entry::file("data/last", "written last\n"),
    ]));
    push(&registry, "e2e/direct", "v1", &image);
    let dir = tempfile::tempdir().unwrap();
    for compression in ["zstd", "gzip"] {
        let (k, i, cmdline) = vmharness::host_morph(
            &registry,
            "e2e/direct:v1",
            dir.path(),
            &["--compression", compression],
        );
        let mut vm = Vm::start("direct", &VmConfig::direct(&k, &i, &cmdline));
        vm.wait_for("CONTAINER-MARKER direct", BOOT);
        vm.wait_for(
            &format!("LAST=written last SIZE={}", 5 << 20),
            Duration::from_secs(30),
        );
        assert!(
            !vm.log().contains("Initramfs unpacking failed"),
            "{compression}: {}",
            vm.log()
        );
        vm.wait_for("CONTAINER-DONE", Duration::from_secs(30));
    }
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv and debootstrap; run by scripts/test"]
fn debian_with_systemd_boots_on_a_squashfs_root_and_runs_a_unit() {
    // Boots as a squashfs root (wyrcan.root=squashfs): systemd on an
    // overlay over the image's squashfs. The unpacked (cpio) form of real
    // distributions is booted by tests/examples.rs.
    let registry = Registry::start();
    let reference = format!("{}/e2e/debian:v1", registry.addr());
    let status = std::process::Command::new(vmharness::repo().join("scripts/build-debian-image"))
        .args([&reference, "--insecure"])
        .status()
        .expect("running scripts/build-debian-image");
    assert!(status.success(), "scripts/build-debian-image failed");
    let mut vm = wyrcan_vm(
        "debian",
        &registry,
        &format!("wyrcan.img={GUEST_REGISTRY}/e2e/debian:v1 wyrcan.root=squashfs"),
    );
    vm.wait_for("Wyrcan", BOOT);
    let (_, line) = vm.wait_for("WYRCAN-SYSTEMD-MARKER", Duration::from_secs(900));
    let (_, release) = test_kernel();
    assert!(
        line.contains(&release),
        "systemd runs under another kernel: {line}"
    );
    assert!(
        line.contains("root=overlay"),
        "/ is not the overlay over the squashfs: {line}"
    );
    assert!(vm.log().contains("systemd"), "{}", vm.log());
    vm.assert_exits(
        Duration::from_secs(180),
        "the Debian container did not power off",
    );
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn image_too_big_for_ram_is_refused_before_download() {
    let registry = Registry::start();
    let mut image = bootable("big");
    image
        .layers
        .push(Layer::new(vec![Entry::file("big", noise(200 << 20, 3))]));
    push(&registry, "e2e/big", "v1", &image);
    let mut vm = Vm::start(
        "too-big",
        &VmConfig {
            mem_mb: 320,
            ..VmConfig::wyrcan(
                &registry,
                &format!("wyrcan.img={GUEST_REGISTRY}/e2e/big:v1"),
            )
        },
    );
    let line = vm.boot_failed();
    assert!(
        line.contains("free memory") && line.contains("more memory"),
        "{line}"
    );
    assert!(
        !vm.log().contains("layer 3/3"),
        "it downloaded before refusing: {}",
        vm.log()
    );
    vm.assert_no_panic();
}
