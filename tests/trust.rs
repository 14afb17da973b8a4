//! Trust on the host: `--policy` (containers-policy.json) with cosign
//! signatures in the real `docker-registry`, made by an independent signer
//! (OpenSSL, see `common/cosign.rs`), through `wyrcan inspect` and
//! `wyrcan morph`; and real cosign-made signatures from public projects'
//! test data (`tests/fixtures/cosign/`) through the verifier itself.

mod common;

use std::path::Path;

use common::cosign::{
    payload, policy, push_referrer_signature, push_signatures, sign_and_push, Signer,
};
use common::image::{push, small_bootable, Image};
use common::registry::Registry;
use common::{assert_failure, assert_mentions, assert_success, wyrcan, Outputs};
use wyrcan_core::digest::Digest;

fn image(mark: &str) -> Image {
    small_bootable(mark)
}

struct Case {
    registry: Registry,
    dir: tempfile::TempDir,
    host: String,
}

impl Case {
    fn new() -> Case {
        let registry = Registry::start();
        let host = registry.addr();
        Case {
            registry,
            dir: tempfile::tempdir().unwrap(),
            host,
        }
    }

    /// Push `repo:tag`; returns its reference and digest.
    fn push(&self, repo: &str, tag: &str) -> (String, Digest) {
        let d = push(&self.registry, repo, tag, &image(&format!("{repo}:{tag}")));
        (format!("{}/{repo}:{tag}", self.host), d)
    }

    fn inspect(&self, reference: &str, policy: &Path) -> std::process::Output {
        self.run("inspect", reference, policy, &["--no-kernel"])
    }

    /// `wyrcan CMD REFERENCE --insecure HOST --policy POLICY EXTRA…`.
    fn run(
        &self,
        cmd: &str,
        reference: &str,
        policy: &Path,
        extra: &[&str],
    ) -> std::process::Output {
        let mut args = vec![
            cmd,
            reference,
            "--insecure",
            &self.host,
            "--policy",
            policy.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        wyrcan(&args)
    }

    /// `wyrcan morph` of `reference` under `policy` into `outputs`.
    fn morph(
        &self,
        reference: &str,
        policy: &Path,
        outputs: &Outputs,
        extra: &[&str],
    ) -> std::process::Output {
        let out = outputs.args();
        let mut args: Vec<&str> = out.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        self.run("morph", reference, policy, &args)
    }

    /// The layer digests of the image pushed as `reference`.
    fn layers(&self, reference: &str) -> Vec<String> {
        let (_, repo_tag) = reference.split_once('/').unwrap();
        image(repo_tag)
            .build()
            .layers
            .iter()
            .map(|l| l.digest.to_string())
            .collect()
    }
}

#[test]
fn signed_image_is_accepted_and_the_verdict_names_rule_key_and_identity() {
    let c = Case::new();
    let (reference, digest) = c.push("trust/os", "v1");
    let signer = Signer::ecdsa();
    sign_and_push(&c.registry, "trust/os", &reference, &digest, &signer);
    let scope = format!("{}/trust/os", c.host);
    let p = policy(c.dir.path(), "reject", &scope, &[&signer.public], None);

    let out = c.run("inspect", &reference, &p, &["--json"]);
    assert_success(&out, "inspect of a signed image");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["digest"], digest.to_string());
    assert_eq!(r["policy"]["accepted"], true, "{r}");
    let v = &r["policy"]["verdict"];
    assert_eq!(v["scope"], scope);
    assert_eq!(v["requirement"], "sigstoreSigned");
    assert!(v["key"].as_str().unwrap().starts_with("sha256:"), "{v}");
    assert_eq!(v["identity"], reference);
    assert_eq!(r["kernel"]["path"], "/boot/vmlinuz-6.1", "{r}");
    assert_eq!(r["cmdline"], "console=ttyS0", "{r}");
    assert!(r["ram_needed"].as_u64().unwrap() > 128 << 20);
    assert!(r["ram_needed_squashfs"].as_u64().unwrap() > 192 << 20);

    // morph with the policy: the verdict is in booted.json.
    let outputs = Outputs::new();
    let out = c.morph(&reference, &p, &outputs, &["--compression", "none"]);
    assert_success(&out, "morph of a signed image");
    let initrd = std::fs::read(outputs.initrd()).unwrap();
    let text = String::from_utf8_lossy(&initrd);
    assert!(
        text.contains("\"requirement\": \"sigstoreSigned\""),
        "booted.json has the verdict"
    );
}

/// One rejected case: `inspect` and `morph` fail with `reason`, and no
/// layer blob of the image was requested (signatures come first).
fn rejected(c: &Case, reference: &str, p: &Path, reason: &str) {
    let out = c.inspect(reference, p);
    let err = assert_failure(&out, "inspect under a policy that rejects");
    assert_mentions(&err, "is not trusted", "the rejection");
    assert_mentions(&err, reason, "the reason");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("REJECTED"), "the report says so: {report}");
    let outputs = Outputs::new();
    let err = assert_failure(
        &c.morph(reference, p, &outputs, &[]),
        "morph under a policy that rejects",
    );
    assert_mentions(&err, reason, "the reason");
    outputs.assert_nothing_left();
    let log = c.registry.log();
    for layer in c.layers(reference) {
        assert!(
            !log.lines()
                .any(|l| l.contains("GET /v2/") && l.contains(&layer)),
            "layer {layer} of {reference} was requested"
        );
    }
}

#[test]
fn every_rejection_says_why_and_downloads_no_layer() {
    let c = Case::new();
    let signer = Signer::ecdsa();
    let other = Signer::ecdsa();
    let scope = format!("{}/trust", c.host);
    let p = policy(c.dir.path(), "reject", &scope, &[&signer.public], None);

    // Unsigned.
    let (unsigned, _) = c.push("trust/unsigned", "v1");
    rejected(&c, &unsigned, &p, "no signature");

    // Signed by another key.
    let (wrong, d) = c.push("trust/wrongkey", "v1");
    sign_and_push(&c.registry, "trust/wrongkey", &wrong, &d, &other);
    rejected(&c, &wrong, &p, "no key matched");

    // A valid signature of another image copied under this one's tag.
    let (victim, vd) = c.push("trust/copied", "v1");
    let (_, donor) = c.push("trust/copied", "donor");
    let pl = payload(&victim, &donor);
    let sig = signer.sign(&pl);
    push_signatures(&c.registry, "trust/copied", &vd, &[(pl, sig)]);
    rejected(&c, &victim, &p, "digest mismatch");

    // A payload changed after signing.
    let (tampered, td) = c.push("trust/tampered", "v1");
    let pl = payload(&tampered, &td);
    let sig = signer.sign(&pl);
    let mut changed = pl.clone();
    let at = changed.len() - 2;
    changed[at] = b' ';
    push_signatures(&c.registry, "trust/tampered", &td, &[(changed, sig)]);
    rejected(&c, &tampered, &p, "no key matched");

    // Outside the scope: the default rejects.
    let (outside, od) = c.push("elsewhere/os", "v1");
    sign_and_push(&c.registry, "elsewhere/os", &outside, &od, &signer);
    rejected(&c, &outside, &p, "rejected");
}

#[test]
fn identity_rules_and_key_rotation() {
    let c = Case::new();
    let old = Signer::ecdsa();
    let new = Signer::rsa();
    let (reference, digest) = c.push("rot/os", "v2");
    // Signed as another tag of the same repository, by the new (RSA) key.
    let as_other_tag = format!("{}/rot/os:latest", c.host);
    let pl = payload(&as_other_tag, &digest);
    let sig = new.sign(&pl);
    push_signatures(&c.registry, "rot/os", &digest, &[(pl, sig)]);
    let scope = format!("{}/rot/os", c.host);

    let exact = policy(
        c.dir.path(),
        "reject",
        &scope,
        &[&old.public, &new.public],
        Some("matchExact"),
    );
    let out = c.inspect(&reference, &exact);
    let err = assert_failure(&out, "matchExact with a signature for another tag");
    assert_mentions(&err, "identity", "the reason");
    assert_mentions(&err, &as_other_tag, "the signed identity");

    let repo = policy(
        c.dir.path(),
        "reject",
        &scope,
        &[&old.public, &new.public],
        Some("matchRepository"),
    );
    let out = c.inspect(&reference, &repo);
    assert_success(&out, "matchRepository, the second of two keys (rotation)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("accepted"), "{text}");

    // Only the old key: no key matches.
    let only_old = policy(
        c.dir.path(),
        "reject",
        &scope,
        &[&old.public],
        Some("matchRepository"),
    );
    let err = assert_failure(&c.inspect(&reference, &only_old), "the old key only");
    assert_mentions(&err, "no key matched", "the reason");
}

#[test]
fn a_signature_stored_as_an_oci_referrer_is_found_through_the_fallback_tag() {
    let c = Case::new();
    let (reference, digest) = c.push("ref/os", "v1");
    let signer = Signer::ecdsa();
    let pl = payload(&reference, &digest);
    let sig = signer.sign(&pl);
    let size = image("ref/os:v1").build().manifest.data.len();
    push_referrer_signature(&c.registry, "ref/os", &digest, size, pl, sig);
    let scope = format!("{}/ref", c.host);
    let p = policy(c.dir.path(), "reject", &scope, &[&signer.public], None);
    let out = c.run("inspect", &reference, &p, &["--json", "--no-kernel"]);
    assert_success(&out, "a referrer signature");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let source = r["policy"]["verdict"]["signature"].as_str().unwrap();
    assert!(source.starts_with("referrer sha256:"), "{source}");
    // No layer was read with --no-kernel.
    assert!(r["kernel"].is_null() && r["unpacked"].is_null(), "{r}");
}

#[test]
fn reject_by_default_with_an_accept_anything_scope() {
    let c = Case::new();
    let (open, _) = c.push("open/os", "v1");
    let (closed, _) = c.push("closed/os", "v1");
    let path = c.dir.path().join("policy.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}/open":[{{"type":"insecureAcceptAnything"}}]}}}}}}"#,
            c.host
        ),
    )
    .unwrap();
    assert_success(&c.inspect(&open, &path), "an insecureAcceptAnything scope");
    let err = assert_failure(&c.inspect(&closed, &path), "the reject default");
    assert_mentions(&err, "rejected", "the reason");
}

#[test]
fn a_policy_with_an_unknown_requirement_type_is_an_error_not_an_accept() {
    let c = Case::new();
    let (reference, _) = c.push("unknown/os", "v1");
    let path = c.dir.path().join("policy.json");
    std::fs::write(
        &path,
        r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"x.io":[{"type":"sigstoreSignd","keyPath":"/k"}]}}}"#,
    )
    .unwrap();
    let err = assert_failure(&c.inspect(&reference, &path), "an unknown requirement type");
    assert_mentions(&err, "sigstoreSignd", "the unknown type");
    assert_mentions(&err, "--policy", "which flag");
}

// ------------------------------------------------- real cosign signatures

fn fixture(name: &str, file: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cosign")
        .join(name)
        .join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn verify_fixture(name: &str) -> Result<(), String> {
    use wyrcan_core::trust::key::PublicKey;
    use wyrcan_core::trust::payload::parse_payload;
    let key = PublicKey::from_pem(&fixture(name, "key.pub")).map_err(|e| e.to_string())?;
    let sig_b64: String = String::from_utf8(fixture(name, "signature.b64"))
        .unwrap()
        .split_whitespace()
        .collect();
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .map_err(|e| e.to_string())?;
    let payload = fixture(name, "payload.json");
    if !key.verify(&payload, &sig) {
        return Err("signature does not verify".into());
    }
    let p = parse_payload(&payload).map_err(|e| e.to_string())?;
    let want = String::from_utf8(fixture(name, "manifest.digest")).unwrap();
    if p.manifest_digest.to_string() != want.trim() {
        return Err(format!(
            "payload names {}, fixture says {want}",
            p.manifest_digest
        ));
    }
    let reference = String::from_utf8(fixture(name, "reference")).unwrap();
    if p.docker_reference != reference.trim() {
        return Err(format!(
            "payload signs {}, fixture says {reference}",
            p.docker_reference
        ));
    }
    Ok(())
}

#[test]
fn real_cosign_signatures_verify_and_wrong_ones_do_not() {
    // Made by cosign (ECDSA P-256, and RSA-4096 under a private PKI) and by
    // containers/image, from containers/image and sigstore-rs test data.
    for ok in [
        "ci-cosign-valid",
        "ci-cosign-valid-2nd-sig",
        "ci-cosign-key-rekor",
        "ci-cosign-fulcio-rekor",
        "ci-cosign-pki-rsa",
        "ci-skopeo-valid-with-tag",
        "rs-busybox-ecdsa",
    ] {
        verify_fixture(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["neg-ci-unknown-key", "neg-rs-wrong-key"] {
        let e = verify_fixture(bad).unwrap_err();
        assert!(e.contains("does not verify"), "{bad}: {e}");
    }
    // A valid signature whose image manifest was modified afterwards.
    let m = fixture("neg-ci-modified-manifest", "manifest.json");
    let want = String::from_utf8(fixture("neg-ci-modified-manifest", "manifest.digest")).unwrap();
    assert_ne!(Digest::of(&m).to_string(), want.trim());
    let m = fixture("ci-cosign-valid", "manifest.json");
    let want = String::from_utf8(fixture("ci-cosign-valid", "manifest.digest")).unwrap();
    assert_eq!(Digest::of(&m).to_string(), want.trim());
}
