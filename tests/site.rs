//! Site settings baked in with `wyrcan customize`, booted under QEMU: the
//! customized initrd boots the site's default image with nothing on the
//! cmdline but the console, `site.img` appended with `cat` does the same,
//! the cmdline's `wyrcan.img=` still wins, and the booted system finds
//! `/etc/wyrcan/booted.json` describing what it was booted from.

mod common;
mod vmharness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::image::push;
use common::registry::Registry;
use common::{assert_success, wyrcan};
use vmharness::{
    artifact, bootable, bootable_showing_booted, test_kernel, Net, Vm, VmConfig, BOOT,
    GUEST_REGISTRY,
};

/// `wyrcan customize` with `args`, checked to succeed.
fn customize(args: &[&str]) {
    let out = wyrcan(args);
    assert_success(&out, "wyrcan customize");
}

fn vm(name: &str, registry: &Registry, initrd: &Path, cmdline: &str) -> Vm {
    Vm::start(
        name,
        &VmConfig {
            kernel: Some(artifact("wyrcan.kernel")),
            initrd: Some(initrd.to_path_buf()),
            append: Some(format!("console=ttyS0 panic=-1 {cmdline}")),
            net: Net::to_registry(registry),
            ..VmConfig::default()
        },
    )
}

fn path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn a_customized_initrd_boots_the_site_image_and_records_it() {
    let registry = Registry::start();
    let digest = push(&registry, "site/os", "v1", &bootable_showing_booted("site"));
    let dir = tempfile::tempdir().unwrap();
    let custom = path(&dir, "custom.initrd");
    let image = format!("{GUEST_REGISTRY}/site/os:v1");
    let base = artifact("wyrcan.initrd");
    customize(&[
        "customize",
        "--initrd",
        base.to_str().unwrap(),
        "-o",
        custom.to_str().unwrap(),
        "--image",
        &image,
        "--insecure",
        GUEST_REGISTRY,
        "--arg",
        "site=1",
        // Kernel messages would interleave with the container's lines.
        "--arg",
        "quiet",
    ]);
    // Nothing on the cmdline but the console.
    let mut vm = vm("site-initrd", &registry, &custom, "");
    vm.wait_for("Wyrcan", BOOT);
    let container = vm.container("site");
    container.assert_image_kernel();
    assert!(
        container.cmdline.contains("site=1"),
        "{}",
        container.cmdline
    );
    // Printed before CONTAINER-DONE, so already in the log.
    let json = vm.printed("BOOTED=");
    let json = json.as_str();
    let b: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(b["reference"], image.as_str());
    assert_eq!(b["registry"], GUEST_REGISTRY);
    assert_eq!(b["repository"], "site/os");
    assert_eq!(b["manifest_digest"], digest.to_string().as_str());
    assert_eq!(b["platform"], "linux/amd64");
    let (kernel, release) = test_kernel();
    assert_eq!(
        b["kernel"]["path"],
        format!("/boot/vmlinuz-{release}").as_str()
    );
    let ksha = wyrcan_core::digest::Digest::of(&std::fs::read(kernel).unwrap()).to_string();
    assert_eq!(b["kernel"]["sha256"], ksha.trim_start_matches("sha256:"));
    let seen = container.cmdline.split_once("CMDLINE=").map_or("", |c| c.1);
    assert_eq!(b["cmdline"], seen.trim());
    // The booted system gets the record, never the site's other files.
    assert_eq!(vm.printed("SITE="), "booted.json");
    // No TPM in this VM: said, and the boot goes on unmeasured.
    assert!(vm.log().contains("no TPM found: this boot is not measured"));
    assert!(b.get("tpm").is_none() && b.get("policy").is_none(), "{b}");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn site_img_appended_with_cat_and_the_cmdline_image_wins() {
    let registry = Registry::start();
    push(&registry, "site/default", "v1", &bootable("default"));
    push(&registry, "site/chosen", "v1", &bootable("chosen"));
    let dir = tempfile::tempdir().unwrap();
    let site = path(&dir, "site.img");
    customize(&[
        "customize",
        "-o",
        site.to_str().unwrap(),
        "--image",
        &format!("{GUEST_REGISTRY}/site/default:v1"),
        "--insecure",
        GUEST_REGISTRY,
    ]);
    let mut both = std::fs::read(artifact("wyrcan.initrd")).unwrap();
    both.extend(std::fs::read(&site).unwrap());
    let combined = path(&dir, "combined.initrd");
    std::fs::write(&combined, both).unwrap();
    let mut vm = vm(
        "site-cat",
        &registry,
        &combined,
        &format!("wyrcan.img={GUEST_REGISTRY}/site/chosen:v1"),
    );
    vm.wait_for("Wyrcan", BOOT);
    vm.container("chosen").assert_image_kernel();
    assert!(
        !vm.log().contains("CONTAINER-MARKER default"),
        "{}",
        vm.log()
    );
    assert!(
        !vm.log().contains("Initramfs unpacking failed"),
        "{}",
        vm.log()
    );
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}
