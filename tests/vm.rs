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

use common::image::push;
use common::registry::Registry;
use vmharness::{artifact, boot_container, bootable, test_kernel, wyrcan_vm, BOOT, GUEST_REGISTRY};

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
    let (cmdline, uname) = boot_container(&mut vm, "basic");
    let (_, release) = test_kernel();
    assert!(
        uname.ends_with(&release),
        "running kernel is not the image's: {uname}"
    );
    let own = std::fs::read_to_string(artifact("wyrcan.kernel.release")).unwrap();
    assert_ne!(own.trim(), release, "test kernel must differ from Wyrcan's");
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
    assert!(
        vm.wait_exit(Duration::from_secs(60)),
        "the container did not power off"
    );
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
    let (cmdline, _) = boot_container(&mut vm, "pinned");
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
    let (_, line) = vm.wait_for("boot failed", BOOT);
    assert!(line.contains("not found"), "{line}");
    vm.wait_for("Rebooting in", Duration::from_secs(30));
    // A key stops the countdown.
    vm.send("x");
    vm.wait_for("Stopped", Duration::from_secs(30));
    assert!(!vm.log().contains("Kernel panic"), "{}", vm.log());
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn no_image_shows_help_and_waits_for_enter() {
    let registry = Registry::start();
    let mut vm = wyrcan_vm("help", &registry, "");
    vm.wait_for("No image to boot", BOOT);
    vm.wait_for(
        "wyrcan.img=quay.io/example/os:latest",
        Duration::from_secs(10),
    );
    vm.wait_for("Press Enter to reboot", Duration::from_secs(10));
    vm.send("\r");
    assert!(
        vm.wait_exit(Duration::from_secs(60)),
        "no reboot after Enter"
    );
    assert!(!vm.log().contains("Kernel panic"), "{}", vm.log());
}
