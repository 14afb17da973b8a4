//! Trust at boot, under QEMU: a boot environment customized with a policy
//! (`wyrcan customize --policy`) boots a signed image and measures it into
//! a software TPM (`swtpm`), and the booted system's `booted.json` replays
//! to the PCR it reads from sysfs; an unsigned image is not booted (the
//! reason on the console, then the countdown); `wyrcan.tpm=required`
//! without a TPM refuses. Then every case of tests/trust.rs once more at
//! boot: wrong key, a copied signature, a tampered payload, an identity
//! `matchExact` refuses, the reject default refused with its reason and
//! never kexec'd; a rotated (RSA) key under `matchRepository` and an
//! `insecureAcceptAnything` scope booted. (A policy with an unknown
//! requirement type never reaches a boot: `customize --policy` refuses it,
//! and PID 1 refuses a site policy it cannot read — src/pid1/tests.rs.) (A boot without a TPM and without
//! `wyrcan.tpm=required` says so and goes on: tests/site.rs checks that
//! line on its boots.)

mod common;
mod vmharness;

use std::path::Path;
use std::time::Duration;

use common::cosign::{payload, policy, push_signatures, sign_and_push, Signer};
use common::image::push;
use common::registry::Registry;
use sha2::{Digest as _, Sha256};
use vmharness::media::customize;
use vmharness::tpm::Swtpm;
use vmharness::{artifact, bootable_showing_booted, Net, Vm, VmConfig, BOOT, GUEST_REGISTRY};
use wyrcan_core::digest::Digest;

/// The registry with `trust/os:v1` (signed by `signer`, or not), and the
/// boot environment customized to boot it under a policy requiring
/// `signer`'s signature.
fn setup(dir: &Path, mark: &str, signer: &Signer, sign: bool) -> (Registry, std::path::PathBuf) {
    let registry = Registry::start();
    let image = format!("{GUEST_REGISTRY}/trust/os:v1");
    let digest = push(&registry, "trust/os", "v1", &bootable_showing_booted(mark));
    if sign {
        sign_and_push(&registry, "trust/os", &image, &digest, signer);
    }
    let p = policy(
        dir,
        "reject",
        &format!("{GUEST_REGISTRY}/trust"),
        &[&signer.public],
        None,
    );
    let custom = with_policy(dir, &image, &p);
    (registry, custom)
}

/// Wyrcan's initrd customized to boot `image` (insecure registry) under
/// the policy file `policy`, written into `dir`.
fn with_policy(dir: &Path, image: &str, policy: &Path) -> std::path::PathBuf {
    let custom = dir.join("custom.initrd");
    customize(
        "--initrd",
        &artifact("wyrcan.initrd"),
        &custom,
        &[
            "--image",
            image,
            "--insecure",
            GUEST_REGISTRY,
            "--policy",
            policy.to_str().unwrap(),
            "--arg",
            "quiet",
        ],
    );
    custom
}

fn vm(name: &str, registry: &Registry, initrd: &Path, cmdline: &str, tpm: Option<&Swtpm>) -> Vm {
    Vm::start(
        name,
        &VmConfig {
            kernel: Some(artifact("wyrcan.kernel")),
            initrd: Some(initrd.to_path_buf()),
            append: Some(format!("console=ttyS0 panic=-1 {cmdline}")),
            net: Net::to_registry(registry),
            tpm: tpm.map(Swtpm::socket),
            ..VmConfig::default()
        },
    )
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn a_signed_image_boots_measured_and_its_log_replays_to_the_pcr() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::ecdsa();
    let (registry, custom) = setup(dir.path(), "trusted", &signer, true);
    let tpm = Swtpm::start();
    let mut vm = vm("trust-signed", &registry, &custom, "", Some(&tpm));
    vm.wait_for("Wyrcan", BOOT);
    let container = vm.container("trusted");
    container.assert_image_kernel();
    let log = vm.log();
    assert!(log.contains("accepted by rule"), "{log}");
    assert!(log.contains("measured 4 events into PCR 12"), "{log}");
    let booted = vm.printed("BOOTED=");
    let b: serde_json::Value = serde_json::from_str(&booted)
        .unwrap_or_else(|e| panic!("{e}: {booted:?}\n--- console ---\n{log}"));
    assert_eq!(b["policy"]["requirement"], "sigstoreSigned", "{b}");
    assert_eq!(
        b["policy"]["identity"],
        format!("{GUEST_REGISTRY}/trust/os:v1")
    );
    let t = &b["tpm"];
    assert_eq!(t["pcr"], 12, "{b}");
    let mut pcr = unhex(t["initial"].as_str().unwrap());
    let events = t["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["manifest", "kernel", "cmdline", "verdict"]);
    for e in events {
        let data = e["data"].as_str().unwrap();
        let digest: [u8; 32] = Sha256::digest(data.as_bytes()).into();
        assert_eq!(
            e["digest"].as_str().unwrap(),
            format!("sha256:{}", hex(&digest)),
            "the digest is of exactly `data`"
        );
        let mut h = Sha256::new();
        h.update(&pcr);
        h.update(digest);
        pcr = h.finalize().to_vec();
    }
    assert_eq!(events[0]["data"], b["manifest_digest"]);
    assert_eq!(events[2]["data"], b["cmdline"]);
    let read = vm.printed("PCR12=");
    assert_eq!(
        read.to_lowercase(),
        hex(&pcr),
        "the booted system's PCR 12 is the replay of booted.json's events"
    );
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn an_unsigned_image_is_not_booted_and_the_console_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::ecdsa();
    let (registry, custom) = setup(dir.path(), "untrusted", &signer, false);
    let mut vm = vm("trust-unsigned", &registry, &custom, "", None);
    let line = vm.boot_failed();
    assert!(line.contains("is not trusted"), "{line}");
    assert!(line.contains("no signature"), "{line}");
    assert!(
        line.contains(&format!("{GUEST_REGISTRY}/trust")),
        "names the rule: {line}"
    );
    assert!(line.contains("sha256:"), "names the digest: {line}");
    vm.wait_for("Rebooting in", Duration::from_secs(30));
    let log = vm.log();
    assert!(!log.contains("CONTAINER-MARKER"), "an untrusted image ran");
    assert!(!log.contains("loading the kernel for kexec"), "{log}");
    vm.assert_no_panic();
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn tpm_required_without_a_tpm_refuses_to_boot() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::ecdsa();
    let (registry, custom) = setup(dir.path(), "no-tpm", &signer, true);
    let mut vm = vm(
        "trust-no-tpm",
        &registry,
        &custom,
        "wyrcan.tpm=required",
        None,
    );
    let line = vm.boot_failed();
    assert!(line.contains("wyrcan.tpm=required"), "{line}");
    assert!(line.contains("no TPM 2.0"), "{line}");
    vm.wait_for("Rebooting in", Duration::from_secs(30));
    assert!(!vm.log().contains("CONTAINER-MARKER"));
}

// ------------------------------------------- every case of the host test, at boot

/// What a case must end in.
enum Expect {
    /// The image boots; its booted.json verdict has this requirement.
    Boots(&'static str),
    /// Not booted; the console names this reason.
    Refused(&'static str),
}

/// One boot under a policy: `repo:v1` pushed, `sign` given the registry,
/// the image's reference as the guest names it and its digest, `policy`
/// writing the policy file into the directory.
fn case(
    name: &str,
    repo: &str,
    sign: impl FnOnce(&Registry, &str, &Digest),
    policy: impl FnOnce(&Path) -> std::path::PathBuf,
    expect: Expect,
) {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let image = format!("{GUEST_REGISTRY}/{repo}:v1");
    let digest = push(&registry, repo, "v1", &bootable_showing_booted(name));
    sign(&registry, &image, &digest);
    let p = policy(dir.path());
    let custom = with_policy(dir.path(), &image, &p);
    let mut vm = vm(name, &registry, &custom, "", None);
    match expect {
        Expect::Boots(requirement) => {
            vm.wait_for("Wyrcan", BOOT);
            vm.container(name);
            let booted = vm.printed("BOOTED=");
            let b: serde_json::Value = serde_json::from_str(&booted).unwrap();
            assert_eq!(b["policy"]["requirement"], requirement, "{name}: {b}");
            vm.assert_exits(Duration::from_secs(60), "the container did not power off");
        }
        Expect::Refused(reason) => {
            let line = vm.boot_failed();
            assert!(line.contains("is not trusted"), "{name}: {line}");
            assert!(line.contains(reason), "{name}: {line}");
            vm.wait_for("Rebooting in", Duration::from_secs(30));
            let log = vm.log();
            assert!(
                !log.contains("CONTAINER-MARKER"),
                "{name}: an untrusted image ran"
            );
            assert!(
                !log.contains("loading the kernel for kexec"),
                "{name}: {log}"
            );
        }
    }
}

fn scope() -> String {
    format!("{GUEST_REGISTRY}/trust")
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn at_boot_wrong_key_copied_tampered_identity_and_reject_are_refused_with_the_reason() {
    let key = Signer::ecdsa();
    let other = Signer::ecdsa();
    let only = |dir: &Path| policy(dir, "reject", &scope(), &[&key.public], None);
    case(
        "wrong-key",
        "trust/wrongkey",
        |r, image, d| sign_and_push(r, "trust/wrongkey", image, d, &other),
        only,
        Expect::Refused("no key matched"),
    );
    case(
        "copied",
        "trust/copied",
        |r, image, d| {
            let donor = Digest::of(b"another image's manifest");
            let pl = payload(image, &donor);
            let sig = key.sign(&pl);
            push_signatures(r, "trust/copied", d, &[(pl, sig)]);
        },
        only,
        Expect::Refused("digest mismatch"),
    );
    case(
        "tampered",
        "trust/tampered",
        |r, image, d| {
            let pl = payload(image, d);
            let sig = key.sign(&pl);
            let mut changed = pl.clone();
            let at = changed.len() - 2;
            changed[at] = b' ';
            push_signatures(r, "trust/tampered", d, &[(changed, sig)]);
        },
        only,
        Expect::Refused("no key matched"),
    );
    case(
        "identity",
        "trust/identity",
        |r, _, d| {
            let as_latest = format!("{GUEST_REGISTRY}/trust/identity:latest");
            sign_and_push(r, "trust/identity", &as_latest, d, &key)
        },
        |dir: &Path| policy(dir, "reject", &scope(), &[&key.public], Some("matchExact")),
        Expect::Refused("identity mismatch"),
    );
    case(
        "outside",
        "elsewhere/os",
        |r, image, d| sign_and_push(r, "elsewhere/os", image, d, &key),
        only,
        Expect::Refused("rejected"),
    );
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn at_boot_a_rotated_key_under_match_repository_and_an_open_scope_boot() {
    let old = Signer::ecdsa();
    let new = Signer::rsa();
    // Signed by the second of two keys (RSA), under another tag.
    case(
        "rotated",
        "trust/rotated",
        |r, _, d| {
            let as_latest = format!("{GUEST_REGISTRY}/trust/rotated:latest");
            sign_and_push(r, "trust/rotated", &as_latest, d, &new)
        },
        |dir: &Path| {
            policy(
                dir,
                "reject",
                &scope(),
                &[&old.public, &new.public],
                Some("matchRepository"),
            )
        },
        Expect::Boots("sigstoreSigned"),
    );
    // Unsigned, in a scope that accepts anything, under a reject default.
    case(
        "open",
        "open/os",
        |_, _, _| {},
        |dir: &Path| {
            let p = dir.join("policy.json");
            std::fs::write(
                &p,
                format!(
                    r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{GUEST_REGISTRY}/open":[{{"type":"insecureAcceptAnything"}}]}}}}}}"#
                ),
            )
            .unwrap();
            p
        },
        Expect::Boots("insecureAcceptAnything"),
    );
}
