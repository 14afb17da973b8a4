//! Where cosign keeps an image's signatures, and how to read them out of
//! the registry's documents. The cryptography and the policy are in
//! [`crate::trust`]; this module only names places and parses manifests.
//!
//! For a manifest digest `D = sha256:<hex>` cosign writes, in the same
//! repository:
//! - the tag `sha256-<hex>.sig`: an image manifest whose layers are
//!   simple-signing payloads, each with the base64 signature in the
//!   annotation `dev.cosignproject.cosign/signature` (cosign's default);
//! - with OCI 1.1 referrers (`--registry-referrers-mode=oci-1-1`), a
//!   manifest whose `subject` is `D` and whose `artifactType` is
//!   [`SIG_ARTIFACT_TYPE`], listed by `GET /v2/<repo>/referrers/D`, or, on
//!   a registry without that API, in the index tagged `sha256-<hex>`.
//!
//! Every count and size here is bounded: a registry (or anything between)
//! could serve a signature manifest with a million layers.

use serde::Deserialize;

use crate::digest::Digest;

/// The layer media type of a cosign signature payload.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 signature over the layer's bytes.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `artifactType` cosign gives signature manifests in referrers mode.
pub const SIG_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Signature layers read per image (over every place): more is a registry
/// filling memory, not a site rotating keys.
pub const MAX_SIGNATURES: usize = 32;
/// Signature manifests followed from the referrers list.
pub const MAX_REFERRERS: usize = 16;
/// Bytes of one payload (cosign's are a few hundred).
pub const MAX_PAYLOAD: u64 = 64 << 10;

/// The tag cosign stores the signatures of `digest` under.
pub fn sig_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

/// The OCI 1.1 referrers fallback tag for `digest`.
pub fn referrers_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.hex())
}

/// One signature layer: fetch the blob `digest` (at most `size` bytes,
/// which must be ≤ [`MAX_PAYLOAD`]) and check `signature` over its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigLayer {
    /// The payload blob.
    pub digest: Digest,
    /// Its size from the descriptor.
    pub size: u64,
    /// The base64 signature from the annotation.
    pub signature: String,
}

/// What was wrong with a signature document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignaturesError {
    /// Not JSON of the expected shape.
    #[error("not a signature manifest: {0}")]
    Json(String),
    /// Too many entries.
    #[error("{what}: {count} entries, more than the {max} Wyrcan reads")]
    TooMany {
        /// Layers or referrers.
        what: &'static str,
        /// How many there were.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A payload descriptor larger than a payload can be.
    #[error("signature payload {digest} claims {size} bytes, more than {MAX_PAYLOAD}")]
    TooBig {
        /// The blob.
        digest: Digest,
        /// Its claimed size.
        size: u64,
    },
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    layers: Vec<Desc>,
    #[serde(default)]
    manifests: Vec<Desc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Desc {
    #[serde(default)]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

fn doc(bytes: &[u8]) -> Result<Doc, SignaturesError> {
    serde_json::from_slice(bytes).map_err(|e| SignaturesError::Json(e.to_string()))
}

/// The signature layers of a cosign signature manifest: layers of type
/// [`SIMPLESIGNING`] that carry [`SIGNATURE_ANNOTATION`]. Other layers
/// (attestations, certificates kept beside) are skipped.
pub fn sig_layers(manifest: &[u8]) -> Result<Vec<SigLayer>, SignaturesError> {
    let d = doc(manifest)?;
    if d.layers.len() > MAX_SIGNATURES {
        return Err(SignaturesError::TooMany {
            what: "signature layers",
            count: d.layers.len(),
            max: MAX_SIGNATURES,
        });
    }
    let mut out = Vec::new();
    for l in d.layers {
        if l.media_type != SIMPLESIGNING {
            continue;
        }
        let Some(sig) = l.annotations.get(SIGNATURE_ANNOTATION) else {
            continue;
        };
        if l.size > MAX_PAYLOAD {
            return Err(SignaturesError::TooBig {
                digest: l.digest,
                size: l.size,
            });
        }
        out.push(SigLayer {
            digest: l.digest,
            size: l.size,
            signature: sig.clone(),
        });
    }
    Ok(out)
}

/// The signature manifests a referrers index lists: entries whose
/// `artifactType` is cosign's signature type.
pub fn sig_referrers(index: &[u8]) -> Result<Vec<Digest>, SignaturesError> {
    let d = doc(index)?;
    let sigs: Vec<Digest> = d
        .manifests
        .into_iter()
        .filter(|m| m.artifact_type.as_deref() == Some(SIG_ARTIFACT_TYPE))
        .map(|m| m.digest)
        .collect();
    if sigs.len() > MAX_REFERRERS {
        return Err(SignaturesError::TooMany {
            what: "signature referrers",
            count: sigs.len(),
            max: MAX_REFERRERS,
        });
    }
    Ok(sigs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:4f5b2a8bd5d8d1bc2b9e0a7bd1a1ffb1f5b56c2c7a1e0b4e4a5b1c2d3e4f5a6b";

    #[test]
    fn tags() {
        let d: Digest = D.parse().unwrap();
        assert_eq!(sig_tag(&d), format!("sha256-{}.sig", d.hex()));
        assert_eq!(referrers_tag(&d), format!("sha256-{}", d.hex()));
    }

    #[test]
    fn cosign_manifest_layers() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"{D}"}},
            "layers":[
              {{"mediaType":"{SIMPLESIGNING}","size":245,"digest":"{D}","annotations":{{"{SIGNATURE_ANNOTATION}":"MEUCIQ=="}}}},
              {{"mediaType":"{SIMPLESIGNING}","size":245,"digest":"{D}"}},
              {{"mediaType":"application/vnd.dsse.envelope.v1+json","size":9,"digest":"{D}","annotations":{{"{SIGNATURE_ANNOTATION}":"x"}}}}
            ]}}"#
        );
        let l = sig_layers(m.as_bytes()).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].signature, "MEUCIQ==");
        assert_eq!(l[0].size, 245);
    }

    #[test]
    fn bounds() {
        let layer = format!(
            r#"{{"mediaType":"{SIMPLESIGNING}","size":1,"digest":"{D}","annotations":{{"{SIGNATURE_ANNOTATION}":"x"}}}}"#
        );
        let many = vec![layer.as_str(); MAX_SIGNATURES + 1].join(",");
        let e = sig_layers(format!(r#"{{"layers":[{many}]}}"#).as_bytes()).unwrap_err();
        assert!(matches!(e, SignaturesError::TooMany { .. }), "{e}");
        let big = format!(
            r#"{{"layers":[{{"mediaType":"{SIMPLESIGNING}","size":{},"digest":"{D}","annotations":{{"{SIGNATURE_ANNOTATION}":"x"}}}}]}}"#,
            MAX_PAYLOAD + 1
        );
        assert!(matches!(
            sig_layers(big.as_bytes()),
            Err(SignaturesError::TooBig { .. })
        ));
        assert!(sig_layers(b"null").is_err());
        assert!(sig_layers(b"{}").unwrap().is_empty());
    }

    #[test]
    fn referrers_keep_cosign_signatures_only() {
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"{D}","artifactType":"{SIG_ARTIFACT_TYPE}"}},
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"{D}","artifactType":"application/spdx+json"}}
            ]}}"#
        );
        assert_eq!(sig_referrers(idx.as_bytes()).unwrap().len(), 1);
        assert!(sig_referrers(br#"{"manifests":[]}"#).unwrap().is_empty());
    }
}
