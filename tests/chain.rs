//! Chain boot under QEMU (TCG): Wyrcan is itself a bootable container
//! (`scripts/build-container-image`). Wyrcan boots the Wyrcan image from the
//! registry, which boots the final image with the inner `wyrcan.arg`s —
//! the unattended-upgrade path of DESIGN §4.
//!
//! `#[ignore]`d like tests/vm.rs: needs `out/` from scripts/build-bootenv.

mod common;
mod vmharness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::image::push;
use common::registry::Registry;
use vmharness::{artifact, bootable, repo, wyrcan_release, wyrcan_vm, BOOT, GUEST_REGISTRY};
use wyrcan_core::cmdline::{next_cmdline, WyrcanArgs};

/// Runs scripts/build-container-image with `args`; the OCI layout goes to
/// `layout`. Proxies are dropped: every push stays on loopback.
fn build_container_image(layout: &Path, args: &[&str]) -> String {
    artifact("build/initrd/init");
    let mut cmd = Command::new(repo().join("scripts/build-container-image"));
    cmd.arg("--layout").arg(layout).args(args);
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("running scripts/build-container-image");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "scripts/build-container-image {args:?} failed ({}):\n{stderr}",
        out.status
    );
    stderr
}

/// Every file of an OCI layout, relative path → bytes.
fn layout_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                files.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// The cmdline one Wyrcan hands to the next kernel, from its own cmdline
/// and the booted image's `/boot/wyrcan.cmdline`.
fn hand_over(cmdline: &str, image_cmdline: &str) -> (Option<String>, String) {
    let args = WyrcanArgs::from_cmdline(cmdline).unwrap();
    (args.img, next_cmdline(image_cmdline, &args.args))
}

/// The nesting rules docs/chain-boot.md promises, without a VM: the inner
/// Wyrcan's cmdline is exactly the outer `wyrcan.arg` values.
#[test]
fn nested_wyrcan_args_reach_the_final_image() {
    // One quoted outer value holding several inner arguments.
    let (img, inner) = hand_over(
        "console=ttyS0 wyrcan.img=reg/wyrcan:1 wyrcan.arg=\"console=ttyS0 wyrcan.img=reg/os:2 wyrcan.arg=quiet wyrcan.arg=ro\"",
        "",
    );
    assert_eq!(img.as_deref(), Some("reg/wyrcan:1"));
    assert_eq!(
        inner,
        "console=ttyS0 wyrcan.img=reg/os:2 wyrcan.arg=quiet wyrcan.arg=ro"
    );
    let (img, last) = hand_over(&inner, "console=ttyS0\n");
    assert_eq!(img.as_deref(), Some("reg/os:2"));
    assert_eq!(last, "console=ttyS0 quiet ro");

    // One outer wyrcan.arg per inner argument: an inner value with quotes
    // and spaces goes through unchanged (quotes cannot nest in one value).
    let (_, inner) = hand_over(
        "wyrcan.img=reg/wyrcan:1 wyrcan.arg=wyrcan.img=reg/os:2 wyrcan.arg=wyrcan.arg=foo=\"x y\"",
        "",
    );
    assert_eq!(inner, "wyrcan.img=reg/os:2 wyrcan.arg=foo=\"x y\"");
    let (_, last) = hand_over(&inner, "");
    assert_eq!(last, "foo=\"x y\"");

    // The Wyrcan image's own /boot/wyrcan.cmdline (build-container-image
    // --cmdline) comes first in the inner cmdline.
    let (_, inner) = hand_over(
        "wyrcan.img=reg/wyrcan:1 wyrcan.arg=wyrcan.img=reg/os:2",
        "console=ttyS0\n",
    );
    assert_eq!(inner, "console=ttyS0 wyrcan.img=reg/os:2");
}

#[test]
#[ignore = "needs out/ from scripts/build-bootenv; run by scripts/test"]
fn container_image_is_reproducible_and_follows_the_convention() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build_container_image(&a, &[]);
    build_container_image(&b, &[]);
    let files = layout_files(&a);
    assert!(
        files == layout_files(&b),
        "two builds of the same inputs differ"
    );
    // Flatten it with umoci (the reference flattener) and check the
    // bootable-container convention: /init, /boot/wyrcan.kernel → the kernel.
    let bundle = tmp.path().join("bundle");
    let version = env!("CARGO_PKG_VERSION");
    let st = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{version}", a.display()))
        .arg(&bundle)
        .output()
        .expect("running umoci (apt-get install umoci)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let rootfs = bundle.join("rootfs");
    let release = wyrcan_release();
    assert_eq!(
        std::fs::read_link(rootfs.join("boot/wyrcan.kernel")).unwrap(),
        Path::new(&format!("vmlinuz-{release}"))
    );
    assert!(
        std::fs::read(rootfs.join("boot/wyrcan.kernel")).unwrap()
            == std::fs::read(artifact("wyrcan.kernel")).unwrap()
    );
    assert!(
        std::fs::read(rootfs.join("init")).unwrap()
            == std::fs::read(artifact("build/initrd/init")).unwrap()
    );
    assert!(rootfs
        .join(format!("lib/modules/{release}/modules.dep"))
        .exists());
    assert!(rootfs.join("etc/ssl/certs/ca-certificates.crt").exists());
    assert!(!rootfs.join("boot/wyrcan.cmdline").exists());

    // --cmdline adds /boot/wyrcan.cmdline.
    let c = tmp.path().join("c");
    build_container_image(&c, &["--cmdline", "console=ttyS0 quiet"]);
    let bundle = tmp.path().join("bundle-c");
    let st = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{version}", c.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/boot/wyrcan.cmdline")).unwrap(),
        "console=ttyS0 quiet\n"
    );
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn wyrcan_chain_boots_wyrcan_from_the_registry_then_the_final_image() {
    let registry = Registry::start();
    let layout = tempfile::tempdir().unwrap();
    let pushed = build_container_image(
        &layout.path().join("oci"),
        &[
            "--push",
            &format!("{}/wyrcan:test", registry.addr()),
            "--insecure",
        ],
    );
    // "pushed: REF (sha256:…)"
    let digest = pushed
        .lines()
        .find_map(|l| l.strip_prefix("pushed: "))
        .and_then(|l| l.split_once("(sha256:"))
        .map(|(_, d)| d.trim_end_matches(')').to_string())
        .unwrap_or_else(|| panic!("no pushed digest in:\n{pushed}"));
    push(&registry, "e2e/final", "v1", &bootable("chain"));

    let inner = format!(
        "console=ttyS0 panic=-1 wyrcan.insecure={GUEST_REGISTRY} wyrcan.img={GUEST_REGISTRY}/e2e/final:v1 wyrcan.arg=inner=1"
    );
    let mut vm = wyrcan_vm(
        "chain",
        &registry,
        &format!("wyrcan.img={GUEST_REGISTRY}/wyrcan:test wyrcan.arg=\"{inner}\""),
    );
    let own = wyrcan_release();
    let starting = "(the container bootloader) starting";

    // Stage 1: Wyrcan from -kernel/-initrd loads the Wyrcan image; the next
    // cmdline is exactly the outer wyrcan.arg value.
    let (t1, _) = vm.wait_for(starting, BOOT);
    vm.wait_for(&format!("kernel {own}"), Duration::from_secs(60));
    // The image pulled is the one the script pushed.
    vm.wait_for(
        &format!("/wyrcan:test: manifest sha256:{}", &digest[..12]),
        BOOT,
    );
    let (_, load) = vm.wait_for("loading the kernel for kexec", BOOT);
    assert!(
        load.trim_end().ends_with(&format!("cmdline: {inner}")),
        "the Wyrcan image must get the outer wyrcan.arg verbatim: {load}"
    );
    vm.wait_for(
        &format!("booting {GUEST_REGISTRY}/wyrcan:test"),
        Duration::from_secs(60),
    );
    // Stage 2: Wyrcan again, this time the one from the registry, under
    // the same kernel release.
    let (t2, _) = vm.wait_for(starting, BOOT);
    vm.wait_for(&format!("kernel {own}"), Duration::from_secs(60));
    let (_, load) = vm.wait_for("loading the kernel for kexec", BOOT);
    assert!(
        load.trim_end()
            .ends_with("cmdline: console=ttyS0 panic=-1 inner=1"),
        "the final image's cmdline = its wyrcan.cmdline + the inner wyrcan.arg: {load}"
    );
    // Stage 3: the final image, on its own kernel.
    // (Not vmharness::boot_container: it first waits for a "Wyrcan" line,
    // and the two here went by already.)
    let cmdline = vm.container_on_its_kernel("chain").cmdline;
    assert!(cmdline.contains("inner=1"), "{cmdline}");
    assert!(
        !cmdline.contains("wyrcan."),
        "Wyrcan's own arguments leaked into the final image: {cmdline}"
    );
    let log = vm.log();
    assert_eq!(log.matches(starting).count(), 2, "{log}");
    vm.assert_no_panic();
    eprintln!(
        "chain: stage 1 at {t1:?}, stage 2 at {t2:?}, final image done at {:?}",
        vm.elapsed()
    );
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}
