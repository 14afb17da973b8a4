//! Network boot under QEMU (TCG): SeaBIOS runs the virtio NIC's iPXE ROM,
//! which gets `boot.ipxe` from slirp's TFTP server — the shipped
//! `wyrcan.ipxe` with the test's cmdline filled in — loads
//! `wyrcan.kernel` + `wyrcan.initrd` over TFTP, and Wyrcan boots the test
//! image from the registry on 127.0.0.1 (reached only through guestfwd).
//!
//! `#[ignore]`d like tests/vm.rs: needs `out/` from scripts/build-bootenv.

mod common;
mod vmharness;

use std::path::Path;
use std::time::Duration;

use common::image::push;
use common::registry::Registry;
use vmharness::{artifact, boot_container, bootable, repo, Vm, VmConfig, GUEST_REGISTRY};

/// The shipped script with its one `set cmdline` line replaced, as an
/// operator would edit it.
fn boot_script(cmdline: &str) -> String {
    let template =
        std::fs::read_to_string(repo().join("wyrcan.ipxe")).expect("reading wyrcan.ipxe");
    assert!(
        template.starts_with("#!ipxe\n"),
        "wyrcan.ipxe must start with #!ipxe"
    );
    let mut edited = 0;
    let lines: Vec<String> = template
        .lines()
        .map(|l| {
            if l.starts_with("set cmdline ") {
                edited += 1;
                format!("set cmdline {cmdline}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(
        edited, 1,
        "wyrcan.ipxe must have exactly one `set cmdline` line"
    );
    lines.join("\n") + "\n"
}

#[test]
fn shipped_script_loads_from_next_server_by_tftp_with_an_http_variant() {
    let s = std::fs::read_to_string(repo().join("wyrcan.ipxe")).unwrap();
    let active = |l: &&str| !l.trim_start().starts_with('#');
    let code: Vec<&str> = s.lines().filter(active).collect();
    assert!(
        code.iter()
            .any(|l| l.contains("set base tftp://${next-server}")),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.starts_with('#') && l.contains("set base http://")),
        "the HTTP variant must be there, commented out: {s}"
    );
    let kernel = code.iter().find(|l| l.starts_with("kernel ")).unwrap();
    for want in [
        "console=tty0 console=ttyS0",
        "${cmdline}",
        "${base}/wyrcan.kernel",
    ] {
        assert!(kernel.contains(want), "{want:?} missing from {kernel}");
    }
    assert!(code
        .iter()
        .any(|l| l.starts_with("initrd ${base}/wyrcan.initrd")));
}

fn copy(from: &Path, dir: &Path, name: &str) {
    std::fs::copy(from, dir.join(name))
        .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn pxe_boot_with_the_shipped_ipxe_script_reaches_the_container() {
    let registry = Registry::start();
    push(&registry, "e2e/pxe", "v1", &bootable("pxe"));

    let tftp = tempfile::Builder::new()
        .prefix("wyrcan-tftp-")
        .tempdir()
        .unwrap();
    copy(&artifact("wyrcan.kernel"), tftp.path(), "wyrcan.kernel");
    copy(&artifact("wyrcan.initrd"), tftp.path(), "wyrcan.initrd");
    // A quoted wyrcan.arg checks that iPXE hands quotes through unchanged.
    let cmdline = format!(
        "panic=-1 wyrcan.insecure={GUEST_REGISTRY} wyrcan.img={GUEST_REGISTRY}/e2e/pxe:v1 wyrcan.arg=\"pxe=1 two=2\""
    );
    std::fs::write(tftp.path().join("boot.ipxe"), boot_script(&cmdline)).unwrap();

    let mut vm = Vm::start(
        "pxe",
        &VmConfig {
            mem_mb: 1024,
            ..VmConfig::pxe(&registry, tftp.path(), "boot.ipxe")
        },
    );
    let cmdline_seen = boot_container(&mut vm, "pxe").cmdline;
    assert!(
        cmdline_seen.contains("pxe=1 two=2"),
        "the quoted wyrcan.arg did not reach the container intact: {cmdline_seen}"
    );
    let log = vm.log();
    let kernel_cmdline = log
        .lines()
        .find(|l| l.contains("Command line:"))
        .unwrap_or_default();
    assert!(
        kernel_cmdline.contains("console=tty0 console=ttyS0")
            && kernel_cmdline.contains("wyrcan.img="),
        "Wyrcan's kernel did not get the script's cmdline: {kernel_cmdline}"
    );
    eprintln!(
        "pxe: Wyrcan started {}, container marker {}",
        vm.time_of("(the container bootloader) starting"),
        vm.time_of("CONTAINER-MARKER")
    );
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}
