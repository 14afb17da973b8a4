//! Reading containers-policy.json(5) from its JSON tree, each error
//! located by its JSON path so the operator finds the line to fix.

use base64::Engine as _;

use super::{
    is_name_only, scope, Key, PolicyError, Requirement, SignedIdentity, SigstoreSigned, KEY_DATA,
};
use crate::reference::Reference;
use crate::trust::json::{self, FieldProblem, Json};
use crate::trust::key::PublicKey;

pub(super) fn invalid(at: &str, problem: &str) -> PolicyError {
    PolicyError::Invalid {
        at: at.to_string(),
        problem: problem.to_string(),
    }
}

/// An object's fields; with `allowed`, unknown keys are errors too.
/// Duplicated keys always are.
pub(super) fn object<'a>(
    v: &'a Json,
    at: &str,
    allowed: Option<&[&str]>,
) -> Result<&'a [(String, Json)], PolicyError> {
    let Json::Object(fields) = v else {
        return Err(invalid(
            at,
            &format!("expected an object, found {}", v.kind()),
        ));
    };
    object_fields(fields, at, allowed)?;
    Ok(fields)
}

fn string<'a>(v: &'a Json, at: &str) -> Result<&'a str, PolicyError> {
    match v {
        Json::String(s) if !s.is_empty() => Ok(s),
        Json::String(_) => Err(invalid(at, "must not be empty")),
        other => Err(invalid(
            at,
            &format!("expected a string, found {}", other.kind()),
        )),
    }
}

pub(super) fn requirements(v: &Json, at: &str) -> Result<Vec<Requirement>, PolicyError> {
    let Json::Array(items) = v else {
        return Err(invalid(
            at,
            &format!("expected an array of requirements, found {}", v.kind()),
        ));
    };
    if items.is_empty() {
        return Err(invalid(at, EMPTY_LIST));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, r)| requirement(r, &format!("{at}[{i}]")))
        .collect()
}

/// Where a sigstoreSigned requirement's keys come from (`keyDatas` is
/// containers/image's newer plural of `keyData`).
const KEY_SOURCES: &[&str] = &["keyPath", "keyPaths", "keyData", "keyDatas"];
/// Every sigstoreSigned field Wyrcan reads.
const SIGSTORE_FIELDS: &[&str] = &[
    "type",
    "keyPath",
    "keyPaths",
    "keyData",
    "keyDatas",
    "signedIdentity",
];
const ONE_KEY_SOURCE: &str = "sigstoreSigned needs exactly one of keyPath, keyPaths and keyData";
const EMPTY_LIST: &str =
    "the list of requirements must not be empty (to refuse everything, use [{\"type\": \"reject\"}])";
const KNOWN_TYPES: &str = "Wyrcan knows insecureAcceptAnything, reject and sigstoreSigned";

/// sigstoreSigned fields for verification Wyrcan does not do.
const KEYLESS_FIELDS: &[(&str, &str)] = &[
    ("fulcio", "keyless signing (fulcio)"),
    (
        "rekorPublicKeyPath",
        "Rekor transparency log verification (rekorPublicKeyPath)",
    ),
    (
        "rekorPublicKeyPaths",
        "Rekor transparency log verification (rekorPublicKeyPaths)",
    ),
    (
        "rekorPublicKeyData",
        "Rekor transparency log verification (rekorPublicKeyData)",
    ),
    (
        "rekorPublicKeyDatas",
        "Rekor transparency log verification (rekorPublicKeyDatas)",
    ),
    ("pki", "X.509 certificate verification (pki)"),
];

fn requirement(v: &Json, at: &str) -> Result<Requirement, PolicyError> {
    let fields = object(v, at, None)?;
    let kind = match json::get(fields, "type") {
        Some(t) => string(t, &format!("{at}.type"))?,
        None => return Err(invalid(at, "the requirement has no \"type\"")),
    };
    match kind {
        "insecureAcceptAnything" => {
            object(v, at, Some(&["type"]))?;
            Ok(Requirement::InsecureAcceptAnything)
        }
        "reject" => {
            object(v, at, Some(&["type"]))?;
            Ok(Requirement::Reject)
        }
        "signedBy" => Err(PolicyError::Unsupported {
            at: at.to_string(),
            what: "requirement type \"signedBy\" (GPG signatures)".to_string(),
        }),
        "signedBaseLayer" => Err(PolicyError::Unsupported {
            at: at.to_string(),
            what: "requirement type \"signedBaseLayer\"".to_string(),
        }),
        "sigstoreSigned" => sigstore_signed(fields, at).map(Requirement::SigstoreSigned),
        other => Err(invalid(
            at,
            &format!("unknown requirement type {other:?} ({KNOWN_TYPES})"),
        )),
    }
}

fn sigstore_signed(fields: &[(String, Json)], at: &str) -> Result<SigstoreSigned, PolicyError> {
    for (k, _) in fields {
        if let Some((_, what)) = KEYLESS_FIELDS.iter().find(|(f, _)| f == k) {
            return Err(PolicyError::Unsupported {
                at: format!("{at}.{k}"),
                what: what.to_string(),
            });
        }
    }
    object_fields(fields, at, Some(SIGSTORE_FIELDS))?;
    let given: Vec<(&str, &Json)> = fields
        .iter()
        .filter(|(k, _)| KEY_SOURCES.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let (source, value) = match given.as_slice() {
        [(source, value)] => (*source, *value),
        [] => return Err(invalid(at, &format!("{ONE_KEY_SOURCE}; none is given"))),
        many => {
            let names: Vec<&str> = many.iter().map(|(k, _)| *k).collect();
            let problem = format!("{ONE_KEY_SOURCE}; {} are given", names.join(", "));
            return Err(invalid(at, &problem));
        }
    };
    let at_src = format!("{at}.{source}");
    let keys = match source {
        "keyPath" => vec![Key::Path(string(value, &at_src)?.to_string())],
        "keyData" => vec![key_data(value, &at_src)?],
        plural => {
            let Json::Array(items) = value else {
                return Err(invalid(
                    &at_src,
                    &format!("expected an array, found {}", value.kind()),
                ));
            };
            if items.is_empty() {
                return Err(invalid(&at_src, "must not be empty"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let at = format!("{at_src}[{i}]");
                    if plural == "keyPaths" {
                        Ok(Key::Path(string(v, &at)?.to_string()))
                    } else {
                        key_data(v, &at)
                    }
                })
                .collect::<Result<_, _>>()?
        }
    };
    let identity = match json::get(fields, "signedIdentity") {
        Some(v) => signed_identity(v, &format!("{at}.signedIdentity"))?,
        None => SignedIdentity::MatchRepoDigestOrExact,
    };
    Ok(SigstoreSigned { keys, identity })
}

/// Duplicate (and, with `allowed`, unknown) field check on fields already
/// known to be an object.
fn object_fields(
    fields: &[(String, Json)],
    at: &str,
    allowed: Option<&[&str]>,
) -> Result<(), PolicyError> {
    json::check_fields(fields, allowed).map_err(|(key, problem)| match problem {
        FieldProblem::Duplicate => invalid(at, &format!("{key:?} appears twice")),
        FieldProblem::Unknown => invalid(at, &format!("unknown field {key:?}")),
    })
}

/// keyData is what `base64 -w0 cosign.pub` prints.
fn key_data(v: &Json, at: &str) -> Result<Key, PolicyError> {
    let b64 = string(v, at)?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| {
            let problem = format!("not base64 ({e}); {KEY_DATA_FORM}");
            invalid(at, &problem)
        })?;
    let key = PublicKey::from_pem(&pem).map_err(|e| invalid(at, &e.to_string()))?;
    Ok(Key::Loaded {
        origin: KEY_DATA.to_string(),
        key,
    })
}

const KEY_DATA_FORM: &str =
    "keyData is the base64 of the public key PEM, e.g. the output of base64 -w0 cosign.pub";
const IDENTITY_TYPES: &str = "matchRepoDigestOrExact, matchRepository, matchExact, exactReference, exactRepository or remapIdentity";

fn signed_identity(v: &Json, at: &str) -> Result<SignedIdentity, PolicyError> {
    let fields = object(v, at, None)?;
    let kind = match json::get(fields, "type") {
        Some(t) => string(t, &format!("{at}.type"))?,
        None => return Err(invalid(at, "signedIdentity has no \"type\"")),
    };
    let allowed: &[&str] = match kind {
        "matchExact" | "matchRepoDigestOrExact" | "matchRepository" => &["type"],
        "exactReference" => &["type", "dockerReference"],
        "exactRepository" => &["type", "dockerRepository"],
        "remapIdentity" => &["type", "prefix", "signedPrefix"],
        other => {
            let problem = format!("unknown signedIdentity type {other:?} ({IDENTITY_TYPES})");
            return Err(invalid(at, &problem));
        }
    };
    object_fields(fields, at, Some(allowed))?;
    // A required string field, with its location for errors.
    let field = |name: &str| -> Result<(&str, String), PolicyError> {
        let at_field = format!("{at}.{name}");
        match json::get(fields, name) {
            Some(v) => Ok((string(v, &at_field)?, at_field)),
            None => Err(invalid(at, &format!("{kind} needs {name:?}"))),
        }
    };
    let reference = |name: &str| -> Result<(String, bool), PolicyError> {
        let (s, at_field) = field(name)?;
        s.parse::<Reference>()
            .map_err(|e| invalid(&at_field, &e.to_string()))?;
        Ok((s.to_string(), is_name_only(s)))
    };
    Ok(match kind {
        "matchExact" => SignedIdentity::MatchExact,
        "matchRepoDigestOrExact" => SignedIdentity::MatchRepoDigestOrExact,
        "matchRepository" => SignedIdentity::MatchRepository,
        "exactReference" => match reference("dockerReference")? {
            (s, false) => SignedIdentity::ExactReference(s),
            (s, true) => {
                let problem = format!(
                    "{s:?} has neither a tag nor a digest (use exactRepository for a repository)"
                );
                return Err(invalid(&format!("{at}.dockerReference"), &problem));
            }
        },
        "exactRepository" => match reference("dockerRepository")? {
            (s, true) => SignedIdentity::ExactRepository(s),
            (s, false) => {
                let problem = format!(
                    "{s:?} has a tag or digest; give the repository alone (or use exactReference)"
                );
                return Err(invalid(&format!("{at}.dockerRepository"), &problem));
            }
        },
        _ => {
            let mut prefixes = Vec::with_capacity(2);
            for name in ["prefix", "signedPrefix"] {
                let (p, at_field) = field(name)?;
                scope::validate_prefix(p).map_err(|e| invalid(&at_field, &e))?;
                prefixes.push(p.to_string());
            }
            let signed_prefix = prefixes.pop().unwrap_or_default();
            let prefix = prefixes.pop().unwrap_or_default();
            SignedIdentity::RemapIdentity {
                prefix,
                signed_prefix,
            }
        }
    })
}
