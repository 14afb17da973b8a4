//! Cosign-style signatures made by an independent signer: keys and
//! signatures come from the `openssl` command (OpenSSL's ECDSA and RSA,
//! not the `ring` our verifier uses), laid out in the registry exactly as
//! `cosign sign --key` lays them out: the tag `sha256-<hex>.sig`, an OCI
//! manifest whose simple-signing layers carry the base64 signature in the
//! annotation `dev.cosignproject.cosign/signature`.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::json;
use wyrcan_core::digest::Digest;

use super::image::{push_blob, push_manifest, Blob};
use super::registry::Registry;

const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// A key pair on disk.
pub struct Signer {
    _dir: tempfile::TempDir,
    private: PathBuf,
    /// The PEM public key (what a policy's `keyPath` names).
    pub public: PathBuf,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("running openssl (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Signer {
    /// ECDSA P-256, cosign's default.
    pub fn ecdsa() -> Signer {
        Signer::generate(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
    }

    /// RSA 2048.
    pub fn rsa() -> Signer {
        Signer::generate(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
    }

    fn generate(alg: &[&str]) -> Signer {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("key.pem");
        let public = dir.path().join("key.pub");
        let mut args = vec!["genpkey"];
        args.extend_from_slice(alg);
        args.extend_from_slice(&["-out", private.to_str().unwrap()]);
        openssl(&args);
        openssl(&[
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);
        Signer {
            _dir: dir,
            private,
            public,
        }
    }

    /// The base64 signature over exactly `data` (SHA-256; DER for ECDSA,
    /// PKCS#1 v1.5 for RSA), as cosign puts it in the annotation.
    pub fn sign(&self, data: &[u8]) -> String {
        let input = self._dir.path().join("payload");
        std::fs::write(&input, data).unwrap();
        let sig = openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            self.private.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        base64::engine::general_purpose::STANDARD.encode(sig)
    }

    /// The public key file's path as a string.
    pub fn public_path(&self) -> &str {
        self.public.to_str().unwrap()
    }
}

/// cosign's payload for `digest` signed as `reference`, byte for byte as
/// cosign writes it (compact, `optional` null).
pub fn payload(reference: &str, digest: &Digest) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

/// Push `signatures` (payload, base64 signature) as the signatures of
/// `signed` in `repo`, under cosign's tag.
pub fn push_signatures(
    registry: &Registry,
    repo: &str,
    signed: &Digest,
    signatures: &[(Vec<u8>, String)],
) {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (payload, sig) in signatures {
        let blob = Blob::new(SIMPLESIGNING, payload.clone());
        push_blob(registry, repo, &blob);
        let mut d = blob.descriptor();
        d["annotations"] = json!({ "dev.cosignproject.cosign/signature": sig });
        layers.push(d);
        diff_ids.push(blob.digest.to_string());
    }
    let config = Blob::new(
        "application/vnd.oci.image.config.v1+json",
        serde_json::to_vec(&json!({
            "architecture": "", "os": "", "config": {},
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .unwrap(),
    );
    push_blob(registry, repo, &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config.descriptor(),
        "layers": layers,
    });
    let manifest = Blob::new(
        "application/vnd.oci.image.manifest.v1+json",
        serde_json::to_vec(&manifest).unwrap(),
    );
    push_manifest(
        registry,
        repo,
        &format!("sha256-{}.sig", signed.hex()),
        &manifest,
    );
}

/// Sign `digest` as `reference` with `signer` and push it.
pub fn sign_and_push(
    registry: &Registry,
    repo: &str,
    reference: &str,
    digest: &Digest,
    signer: &Signer,
) {
    let p = payload(reference, digest);
    let sig = signer.sign(&p);
    push_signatures(registry, repo, digest, &[(p, sig)]);
}

/// A containers-policy.json accepting `scope` only when signed by one of
/// `keys` (`keyPaths` with two or more), everything else per `default`.
pub fn policy(
    dir: &Path,
    default: &str,
    scope: &str,
    keys: &[&Path],
    identity: Option<&str>,
) -> PathBuf {
    let mut req = json!({ "type": "sigstoreSigned" });
    match keys {
        [one] => req["keyPath"] = json!(one),
        many => req["keyPaths"] = json!(many),
    }
    if let Some(i) = identity {
        req["signedIdentity"] = json!({ "type": i });
    }
    let p = json!({
        "default": [{ "type": default }],
        "transports": { "docker": { scope: [req] } },
    });
    let path = dir.join("policy.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    path
}

/// Push one signature the OCI 1.1 way cosign writes with
/// `--registry-referrers-mode=oci-1-1`: a manifest with `artifactType` and
/// `subject`, listed in the referrers fallback index tagged `sha256-<hex>`
/// (this `docker-registry` has no referrers API, so clients fall back to
/// the tag).
pub fn push_referrer_signature(
    registry: &Registry,
    repo: &str,
    signed: &Digest,
    subject_size: usize,
    payload: Vec<u8>,
    sig: String,
) {
    const ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
    let blob = Blob::new(SIMPLESIGNING, payload);
    push_blob(registry, repo, &blob);
    let mut layer = blob.descriptor();
    layer["annotations"] = json!({ "dev.cosignproject.cosign/signature": sig });
    let config = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
    push_blob(registry, repo, &config);
    let manifest = Blob::new(
        "application/vnd.oci.image.manifest.v1+json",
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": ARTIFACT,
            "config": config.descriptor(),
            "layers": [layer],
            "subject": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": signed.to_string(),
                "size": subject_size,
            },
        }))
        .unwrap(),
    );
    let digest = push_manifest(registry, repo, &manifest.digest.to_string(), &manifest);
    let mut entry = manifest.descriptor();
    entry["artifactType"] = json!(ARTIFACT);
    let index = Blob::new(
        "application/vnd.oci.image.index.v1+json",
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry],
        }))
        .unwrap(),
    );
    assert_eq!(entry["digest"], digest.to_string());
    push_manifest(registry, repo, &format!("sha256-{}", signed.hex()), &index);
}
