//! A private image at boot, as an operator's site has it: a TLS
//! `docker-registry` with htpasswd auth and a CA the test generates,
//! reachable from the guest **only** through an HTTP CONNECT proxy (with
//! its own credentials) that the suite runs on loopback; the credentials,
//! the CA and the proxy given only through `wyrcan customize --initrd`,
//! nothing on the cmdline but the console. No password may show on the
//! console (with `wyrcan.debug`), in the booted system's `/proc/cmdline`
//! or in its `/etc/wyrcan/booted.json`.

mod common;
mod vmharness;

use std::time::Duration;

use common::connect_proxy::ConnectProxy;
use common::image::push;
use common::registry::Registry;
use common::{assert_success, wyrcan};
use vmharness::{artifact, bootable_showing_booted, Net, Vm, VmConfig, BOOT};

const USER: &str = "operator";
const PASS: &str = "Reg1stry-s3cret";
const PROXY_USER: &str = "proxyuser";
const PROXY_PASS: &str = "Pr0xy-s3cret";
/// The registry's name: only the proxy resolves it.
const NAME: &str = "registry.test";

/// The site's registry and proxy, and a VM booting Wyrcan customized with
/// `password` for the registry (the right one or not).
struct Site {
    _registry: Registry,
    proxy: ConnectProxy,
    _dir: tempfile::TempDir,
    host: String,
    image_ref: String,
    vm: Vm,
}

fn site(name: &str, password: &str) -> Site {
    let registry = Registry::start_tls_basic(USER, PASS);
    let proxy = ConnectProxy::with_auth(&[NAME], PROXY_USER, PROXY_PASS);
    push(
        &registry,
        "private/os",
        "v1",
        &bootable_showing_booted("private"),
    );
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.json");
    let host = format!("{NAME}:{}", registry.port());
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"{host}":{{"username":"{USER}","password":"{password}"}}}}}}"#),
    )
    .unwrap();
    let custom = dir.path().join("custom.initrd");
    let base = artifact("wyrcan.initrd");
    // The guest reaches 10.0.2.100:5000, which QEMU forwards to the proxy.
    let proxy_url = format!("http://{PROXY_USER}:{PROXY_PASS}@10.0.2.100:5000");
    let image_ref = format!("{host}/private/os:v1");
    let out = wyrcan(&[
        "customize",
        "--initrd",
        base.to_str().unwrap(),
        "-o",
        custom.to_str().unwrap(),
        "--image",
        &image_ref,
        "--auth",
        auth.to_str().unwrap(),
        "--ca",
        registry.ca_path().unwrap().to_str().unwrap(),
        "--proxy",
        &proxy_url,
        // Kernel messages would interleave with the container's lines.
        "--arg",
        "quiet",
    ]);
    assert_success(&out, "wyrcan customize");
    let proxy_port: u16 = proxy.addr().rsplit(':').next().unwrap().parse().unwrap();
    let vm = Vm::start(
        name,
        &VmConfig {
            kernel: Some(artifact("wyrcan.kernel")),
            initrd: Some(custom),
            append: Some("console=ttyS0 panic=-1 wyrcan.debug".into()),
            net: Net::User {
                registry: Some(proxy_port),
                model: "virtio-net-pci",
                tftp: None,
            },
            ..VmConfig::default()
        },
    );
    Site {
        _registry: registry,
        proxy,
        _dir: dir,
        host,
        image_ref,
        vm,
    }
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn a_private_image_through_a_proxy_with_credentials_only_in_the_boot_media() {
    // Bound whole: the registry and the files must live as long as the VM.
    let mut s = site("private", PASS);
    let (proxy, host, image_ref, vm) = (&s.proxy, s.host.clone(), s.image_ref.clone(), &mut s.vm);
    vm.wait_for("Wyrcan", BOOT);
    let container = vm.container("private");
    container.assert_image_kernel();
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
    let log = vm.log();
    for secret in [PASS, PROXY_PASS] {
        assert!(
            !log.contains(secret),
            "a password reached the console:\n{log}"
        );
    }
    assert!(
        !container.cmdline.contains("s3cret"),
        "{}",
        container.cmdline
    );
    let booted = vm.printed("BOOTED=");
    assert!(!booted.contains("s3cret"), "{booted}");
    let b: serde_json::Value = serde_json::from_str(&booted)
        .unwrap_or_else(|e| panic!("{e}: {booted:?}\n--- console ---\n{log}"));
    assert_eq!(b["reference"], image_ref.as_str());
    // Every request of the guest went through the proxy, tunnelled.
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| format!("{s:?}").contains(&host)),
        "the proxy saw no CONNECT to {host}"
    );
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn wrong_credentials_end_in_a_clear_error_and_the_countdown() {
    let mut s = site("private-wrong", "not-the-password");
    let line = s.vm.boot_failed();
    assert!(line.contains("refused access"), "{line}");
    s.vm.wait_for("Rebooting in", Duration::from_secs(30));
    s.vm.assert_no_panic();
    let log = s.vm.log();
    for secret in ["not-the-password", PROXY_PASS] {
        assert!(
            !log.contains(secret),
            "a password reached the console:\n{log}"
        );
    }
    assert!(
        !s.proxy.seen().is_empty(),
        "the pull did not go through the proxy"
    );
}
