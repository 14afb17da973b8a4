//! The cosign "simple signing" payload: the JSON document a cosign
//! signature is made over, stored as a layer of the `sha256-<digest>.sig`
//! image with the base64 signature in an annotation.
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"reg/os"},
//!              "image":{"docker-manifest-digest":"sha256:…"},
//!              "type":"cosign container image signature"},
//!  "optional":null}
//! ```
//!
//! Parsed as strictly as containers/image does (`signature/internal/
//! cosign_payload.go`): the three critical fields are required, the type
//! must be exactly cosign's, and an unknown or duplicated key anywhere in
//! `critical` is an error, since a verifier that skips a critical field it
//! does not understand would accept what the signer did not mean.
//! `optional` is free-form (cosign puts `-a key=value` annotations there).
//!
//! Only ever parse a payload after its signature verified: until then it
//! is attacker-controlled bytes, and even the error text should not matter.

use super::json::{self, FieldProblem, Json};
use crate::digest::Digest;

/// Media type of the signature image's payload layer.
pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature over the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The only `critical.type` there is.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
/// Largest payload read: cosign's are a few hundred bytes, plus annotations.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// What a payload says was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `critical.identity.docker-reference`: the image name the signer
    /// meant, as written (cosign writes the repository without a tag).
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`: the manifest signed.
    pub manifest_digest: Digest,
}

/// Why a payload is unusable. The location is a JSON path (`critical.type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Larger than [`MAX_PAYLOAD`].
    #[error("signature payload is {0} bytes; the limit is 65536")]
    TooLarge(usize),
    /// Not JSON.
    #[error("signature payload is not JSON: {0}")]
    Json(String),
    /// A field of the wrong kind, missing, unknown or duplicated.
    #[error("signature payload: {at}: {problem}")]
    Field {
        /// Where.
        at: String,
        /// What is wrong.
        problem: String,
    },
    /// `critical.type` is not cosign's.
    #[error("signature payload has type {0:?}, not {SIGNATURE_TYPE:?}")]
    Type(String),
    /// The digest is not `sha256:<64 hex>`.
    #[error("signature payload: critical.image.docker-manifest-digest: {0}")]
    Digest(String),
}

/// Parse a payload (see the module docs for what is accepted).
pub fn parse_payload(bytes: &[u8]) -> Result<Payload, PayloadError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(PayloadError::TooLarge(bytes.len()));
    }
    let root = Json::parse(bytes).map_err(PayloadError::Json)?;
    let top = object(&root, "(top level)", &["critical", "optional"])?;
    match json::get(top, "optional") {
        None | Some(Json::Null | Json::Object(_)) => {}
        Some(other) => return Err(wrong_kind("optional", "an object or null", other)),
    }
    let critical = object(
        required(top, "critical", "")?,
        "critical",
        &["identity", "image", "type"],
    )?;
    let kind = string(required(critical, "type", "critical")?, "critical.type")?;
    if kind != SIGNATURE_TYPE {
        return Err(PayloadError::Type(kind.to_string()));
    }
    let image = object(
        required(critical, "image", "critical")?,
        "critical.image",
        &["docker-manifest-digest"],
    )?;
    let digest = string(
        required(image, "docker-manifest-digest", "critical.image")?,
        "critical.image.docker-manifest-digest",
    )?;
    let manifest_digest = digest
        .parse()
        .map_err(|e: crate::digest::DigestError| PayloadError::Digest(e.to_string()))?;
    let identity = object(
        required(critical, "identity", "critical")?,
        "critical.identity",
        &["docker-reference"],
    )?;
    let docker_reference = string(
        required(identity, "docker-reference", "critical.identity")?,
        "critical.identity.docker-reference",
    )?;
    Ok(Payload {
        docker_reference: docker_reference.to_string(),
        manifest_digest,
    })
}

fn object<'a>(
    v: &'a Json,
    at: &str,
    allowed: &[&str],
) -> Result<&'a [(String, Json)], PayloadError> {
    let Json::Object(fields) = v else {
        return Err(wrong_kind(at, "an object", v));
    };
    json::check_fields(fields, Some(allowed)).map_err(|(key, problem)| PayloadError::Field {
        at: at.to_string(),
        problem: match problem {
            FieldProblem::Duplicate => format!("field {key:?} appears twice"),
            FieldProblem::Unknown => format!("unknown field {key:?}"),
        },
    })?;
    Ok(fields)
}

fn required<'a>(
    fields: &'a [(String, Json)],
    key: &str,
    parent: &str,
) -> Result<&'a Json, PayloadError> {
    json::get(fields, key).ok_or_else(|| PayloadError::Field {
        at: if parent.is_empty() {
            key.to_string()
        } else {
            format!("{parent}.{key}")
        },
        problem: "missing".to_string(),
    })
}

fn string<'a>(v: &'a Json, at: &str) -> Result<&'a str, PayloadError> {
    match v {
        Json::String(s) => Ok(s),
        other => Err(wrong_kind(at, "a string", other)),
    }
}

fn wrong_kind(at: &str, want: &str, got: &Json) -> PayloadError {
    PayloadError::Field {
        at: at.to_string(),
        problem: format!("expected {want}, found {}", got.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn payload(critical: &str, optional: &str) -> String {
        format!(r#"{{"critical":{critical}{optional}}}"#)
    }

    fn critical(identity: &str, image: &str, kind: &str) -> String {
        format!(r#"{{"identity":{identity},"image":{image},"type":{kind}}}"#)
    }

    fn good_critical() -> String {
        critical(
            r#"{"docker-reference":"127.0.0.1:5000/os"}"#,
            &format!(r#"{{"docker-manifest-digest":"{D}"}}"#),
            r#""cosign container image signature""#,
        )
    }

    #[test]
    fn cosign_payloads_parse() {
        let want = Payload {
            docker_reference: "127.0.0.1:5000/os".into(),
            manifest_digest: D.parse().unwrap(),
        };
        assert_eq!(
            parse_payload(include_bytes!("testdata/payload.json")).unwrap(),
            want
        );
        for optional in [
            "",
            r#","optional":null"#,
            r#","optional":{}"#,
            r#","optional":{"creator":"containers/image","timestamp":1700000000,"x":[1,{"y":null}]}"#,
        ] {
            let p = payload(&good_critical(), optional);
            assert_eq!(parse_payload(p.as_bytes()).unwrap(), want, "{p}");
        }
        // Key order does not matter.
        let reordered = format!(
            r#"{{"optional":null,"critical":{{"type":"{SIGNATURE_TYPE}","image":{{"docker-manifest-digest":"{D}"}},"identity":{{"docker-reference":"r/x"}}}}}}"#
        );
        assert_eq!(
            parse_payload(reordered.as_bytes())
                .unwrap()
                .docker_reference,
            "r/x"
        );
    }

    #[test]
    fn strictness() {
        let id = r#"{"docker-reference":"r/x"}"#;
        let img = format!(r#"{{"docker-manifest-digest":"{D}"}}"#);
        let ty = format!("{SIGNATURE_TYPE:?}");
        let cases: Vec<(String, &str)> = vec![
            ("nope".into(), "not JSON"),
            ("[]".into(), "(top level): expected an object, found an array"),
            (r#"{"optional":null}"#.into(), "critical: missing"),
            (payload(&good_critical(), r#","extra":1"#), r#"(top level): unknown field "extra""#),
            (payload(&good_critical(), r#","optional":"x""#), "optional: expected an object or null, found a string"),
            (payload(&good_critical(), r#","critical":{}"#), r#"(top level): field "critical" appears twice"#),
            (payload(&critical(id, &img, r#""atomic container signature""#), ""), r#"has type "atomic container signature""#),
            (payload(&critical(id, &img, r#""Cosign container image signature""#), ""), "has type"),
            (payload(&critical(id, &img, "1"), ""), "critical.type: expected a string, found a number"),
            (payload(&format!(r#"{{"identity":{id},"image":{img}}}"#), ""), "critical.type: missing"),
            (payload(&format!(r#"{{"identity":{id},"type":{ty}}}"#), ""), "critical.image: missing"),
            (payload(&format!(r#"{{"image":{img},"type":{ty}}}"#), ""), "critical.identity: missing"),
            (payload(&format!(r#"{{"identity":{id},"image":{img},"type":{ty},"x":1}}"#), ""), r#"critical: unknown field "x""#),
            (payload(&critical(r#"{"docker-reference":"r/x","tag":"1"}"#, &img, &ty), ""), r#"critical.identity: unknown field "tag""#),
            (payload(&critical(r#"{}"#, &img, &ty), ""), "critical.identity.docker-reference: missing"),
            (payload(&critical(r#"{"docker-reference":null}"#, &img, &ty), ""), "critical.identity.docker-reference: expected a string, found null"),
            (payload(&critical(id, &format!(r#"{{"docker-manifest-digest":"{D}","size":1}}"#), &ty), ""), r#"critical.image: unknown field "size""#),
            (payload(&critical(id, r#"{"docker-manifest-digest":"sha512:00"}"#, &ty), ""), "critical.image.docker-manifest-digest: digest \"sha512:00\" uses an unsupported algorithm"),
            (payload(&critical(id, &format!(r#"{{"docker-manifest-digest":"{D}","docker-manifest-digest":"{D}"}}"#), &ty), ""), "appears twice"),
            (payload(&critical(id, &img, &ty), r#","optional":null,"optional":{}"#), "appears twice"),
        ];
        for (input, want) in cases {
            let e = parse_payload(input.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{input}\n  got: {e}\n want: {want}");
        }
        let big = vec![b' '; MAX_PAYLOAD + 1];
        assert_eq!(
            parse_payload(&big),
            Err(PayloadError::TooLarge(MAX_PAYLOAD + 1))
        );
    }
}
