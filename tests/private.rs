//! A private image at boot, as an operator's site has it: a TLS
//! `docker-registry` with htpasswd auth and a CA the test generates,
//! reachable from the guest **only** through an HTTP CONNECT proxy (with
//! its own credentials) that the suite runs on loopback; the credentials,
//! the CA and the proxy given only through `wyrcan customize`, of the
//! initrd (nothing on the cmdline but the console) or of the ISO (booted
//! under OVMF, nothing in its menu entry but the console). No password may
//! show on the console (with `wyrcan.debug`), in the booted system's
//! `/proc/cmdline` or in its `/etc/wyrcan/booted.json`.

mod common;
mod vmharness;

use std::path::Path;
use std::time::Duration;

use common::connect_proxy::ConnectProxy;
use common::image::push;
use common::registry::Registry;
use vmharness::media::{build_iso, customize, ovmf_vars};
use vmharness::{
    artifact, bootable_showing_booted, Media, Net, Vm, VmConfig, BOOT, GUEST_REGISTRY,
};

const USER: &str = "operator";
const PASS: &str = "Reg1stry-s3cret";
const PROXY_USER: &str = "proxyuser";
const PROXY_PASS: &str = "Pr0xy-s3cret";
/// The registry's name: only the proxy resolves it.
const NAME: &str = "registry.test";
/// Where the private image is, in the registry.
const REPO: &str = "private/os";

/// The site's registry (the private image pushed) and proxy, and the
/// settings for `wyrcan customize`: credentials for the registry with
/// `password` (the right one or not), its CA, the proxy.
struct Site {
    registry: Registry,
    proxy: ConnectProxy,
    dir: tempfile::TempDir,
    host: String,
    image_ref: String,
}

impl Site {
    fn new(password: &str) -> Site {
        let registry = Registry::start_tls_basic(USER, PASS);
        let proxy = ConnectProxy::with_auth(&[NAME], PROXY_USER, PROXY_PASS);
        push(&registry, REPO, "v1", &bootable_showing_booted("private"));
        let dir = tempfile::tempdir().unwrap();
        let host = format!("{NAME}:{}", registry.port());
        std::fs::write(
            dir.path().join("auth.json"),
            format!(r#"{{"auths":{{"{host}":{{"username":"{USER}","password":"{password}"}}}}}}"#),
        )
        .unwrap();
        let image_ref = format!("{host}/{REPO}:v1");
        Site {
            registry,
            proxy,
            dir,
            host,
            image_ref,
        }
    }

    /// `wyrcan customize MEDIA IN -o OUT` with the site's settings only.
    fn customize(&self, media: &str, input: &Path, out: &Path) {
        let auth = self.dir.path().join("auth.json");
        // The guest reaches GUEST_REGISTRY, which QEMU forwards to the proxy.
        let proxy_url = format!("http://{PROXY_USER}:{PROXY_PASS}@{GUEST_REGISTRY}");
        customize(
            media,
            input,
            out,
            &[
                "--image",
                &self.image_ref,
                "--auth",
                auth.to_str().unwrap(),
                "--ca",
                self.registry.ca_path().unwrap().to_str().unwrap(),
                "--proxy",
                &proxy_url,
                // Kernel messages would interleave with the container's lines.
                "--arg",
                "quiet",
            ],
        );
    }

    /// The guest's network: the proxy at [`GUEST_REGISTRY`], nothing else.
    fn net(&self) -> Net {
        let port = self
            .proxy
            .addr()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Net::User {
            registry: Some(port),
            model: "virtio-net-pci",
            tftp: None,
        }
    }

    /// Through Wyrcan to the private image's container, powered off; then
    /// what Wyrcan's debug output, the console, the booted system and the
    /// two servers show.
    fn assert_booted(&self, vm: &mut Vm) {
        vm.wait_for("Wyrcan", BOOT);
        vm.wait_for(
            &format!(
                "site settings: default image {}, 1 CA file, registry credentials",
                self.image_ref
            ),
            BOOT,
        );
        let container = vm.container("private");
        container.assert_image_kernel();
        vm.assert_exits(Duration::from_secs(60), "the container did not power off");
        let log = vm.log();
        // wyrcan.debug is on, and says how the pull went.
        assert!(log.contains(" through proxy "), "no debug output:\n{log}");
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
        assert_eq!(b["reference"], self.image_ref.as_str());
        // The guest got in with the credentials: anonymous, no access.
        let url = format!("{}/v2/{REPO}/manifests/v1", self.registry.base_url());
        let anonymous = self.registry.agent().get(&url).call().unwrap();
        assert_eq!(
            anonymous.status().as_u16(),
            401,
            "the registry let anyone in"
        );
        // Every request of the guest went through the proxy, tunnelled.
        let seen = self.proxy.seen();
        assert!(
            seen.iter()
                .any(|s| s.method == "CONNECT" && s.target == self.host && s.status == 200),
            "the proxy tunnelled no CONNECT to {}: {seen:?}",
            self.host
        );
    }
}

/// The site's settings in Wyrcan's initrd, booted directly (with
/// `wyrcan.debug`).
fn initrd_vm(site: &Site, name: &str) -> Vm {
    let custom = site.dir.path().join("custom.initrd");
    site.customize("--initrd", &artifact("wyrcan.initrd"), &custom);
    Vm::start(
        name,
        &VmConfig {
            kernel: Some(artifact("wyrcan.kernel")),
            initrd: Some(custom),
            append: Some("console=ttyS0 panic=-1 wyrcan.debug".into()),
            net: site.net(),
            ..VmConfig::default()
        },
    )
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn a_private_image_through_a_proxy_with_credentials_only_in_the_boot_media() {
    let site = Site::new(PASS);
    let mut vm = initrd_vm(&site, "private");
    site.assert_booted(&mut vm);
}

/// The same site in an ISO's site area, booted from the CD under OVMF: the
/// menu entry (baked by `scripts/build-iso`) has only the console and
/// `wyrcan.debug`.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn customized_iso_boots_a_private_image_through_the_proxy() {
    let site = Site::new(PASS);
    let tmp = site.dir.path();
    let plain = build_iso(tmp, "plain", "wyrcan.debug");
    let iso = tmp.join("site.iso");
    site.customize("--iso", &plain, &iso);
    let vars = ovmf_vars(tmp);
    let mut vm = Vm::start(
        "private-iso",
        &VmConfig {
            net: site.net(),
            ..VmConfig::efi_iso(&site.registry, &vars, &iso, Media::Cd)
        },
    );
    let (_, line) = vm.wait_for("Command line: initrd=", BOOT);
    assert!(!line.contains("wyrcan.img"), "{line}");
    site.assert_booted(&mut vm);
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn wrong_credentials_end_in_a_clear_error_and_the_countdown() {
    let site = Site::new("not-the-password");
    let mut vm = initrd_vm(&site, "private-wrong");
    let line = vm.boot_failed();
    assert!(line.contains("refused access"), "{line}");
    vm.wait_for("Rebooting in", Duration::from_secs(30));
    vm.assert_no_panic();
    let log = vm.log();
    for secret in ["not-the-password", PROXY_PASS] {
        assert!(
            !log.contains(secret),
            "a password reached the console:\n{log}"
        );
    }
    assert!(
        !site.proxy.seen().is_empty(),
        "the pull did not go through the proxy"
    );
}
