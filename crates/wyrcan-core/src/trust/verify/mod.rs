//! Deciding whether an image may boot: the policy's rule for the image,
//! applied to the cosign signatures found for its manifest digest.
//!
//! Every requirement of the applying rule must accept (a `reject` anywhere
//! refuses). A `sigstoreSigned` requirement accepts when one signature
//! passes, in this order: its base64 decodes and verifies with one of the
//! rule's keys over the exact payload bytes; only then is the payload
//! parsed (until verified it is attacker-controlled); it names this
//! manifest digest; and its docker-reference satisfies the rule's
//! `signedIdentity` for the image as the user named it. When none passes,
//! the refusal reports how far the best signature got, so the operator
//! hears "signed for another tag" rather than "no valid signature".

#[cfg(test)]
mod tests;

use std::fmt;

use base64::Engine as _;

use super::payload::parse_payload;
use super::policy::{
    is_name_only, rule_name, Key, Policy, Requirement, SignedIdentity, SigstoreSigned,
};
use crate::digest::Digest;
use crate::reference::Reference;

/// Longest base64 signature looked at: an RSA-8192 signature is 1.4 KB.
const MAX_SIGNATURE_B64: usize = 16 * 1024;

/// One signature found for the image: a layer of its `.sig` image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The payload layer's bytes, exactly as stored.
    pub payload: Vec<u8>,
    /// The layer's `dev.cosignproject.cosign/signature` annotation.
    pub signature_b64: String,
    /// Where it came from, for messages: `tag sha256-….sig layer 0`.
    pub source: String,
}

/// Why the image was accepted, for booted.json and the boot log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// The rule applied: a `transports.docker` scope or `default`.
    pub scope: String,
    /// `sigstoreSigned` when a signature was checked, else `insecureAcceptAnything`.
    pub requirement: String,
    /// Fingerprint of the key that verified the signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where that key came from: its path, or `keyData`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_origin: Option<String>,
    /// The docker-reference the signature names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The signature's [`Candidate::source`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Why the image may not boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The rule applied: a `transports.docker` scope or `default`.
    pub scope: String,
    /// What failed.
    pub reason: Reason,
    /// The image as the user named it.
    pub image: Reference,
    /// Its manifest digest.
    pub digest: Digest,
    /// Fingerprints of the failing requirement's keys (empty for `reject`).
    pub keys: Vec<String>,
}

/// What failed, from least to most advanced for signature failures: when
/// several signatures fail, the one that got furthest is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A `reject` requirement (or an empty requirement list).
    Rejected,
    /// No signature was found for the digest.
    NoSignature,
    /// Signatures were found; none verifies with any of the keys.
    NoKeyMatched {
        /// How many signatures were tried.
        signatures: usize,
        /// How many keys.
        keys: usize,
    },
    /// A verified payload that is not a valid cosign payload.
    BadPayload(String),
    /// A verified signature of another manifest.
    DigestMismatch {
        /// The digest it signs.
        signed: String,
    },
    /// A verified signature of this manifest under a name the rule refuses.
    IdentityMismatch {
        /// The docker-reference it names.
        signed: String,
        /// The signedIdentity rule.
        rule: String,
    },
    /// The rule's key at this path was never read ([`Policy::load_keys`]).
    KeyNotLoaded(String),
}

impl Reason {
    /// The reason in two or three words, first in every message.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::NoSignature => "no signature",
            Reason::NoKeyMatched { .. } => "no key matched",
            Reason::BadPayload(_) => "bad payload",
            Reason::DigestMismatch { .. } => "digest mismatch",
            Reason::IdentityMismatch { .. } => "identity mismatch",
            Reason::KeyNotLoaded(_) => "key not loaded",
        }
    }

    /// How far a signature got: higher is more advanced.
    fn rank(&self) -> u8 {
        match self {
            Reason::Rejected | Reason::KeyNotLoaded(_) | Reason::NoSignature => 0,
            Reason::NoKeyMatched { .. } => 1,
            Reason::BadPayload(_) => 2,
            Reason::DigestMismatch { .. } => 3,
            Reason::IdentityMismatch { .. } => 4,
        }
    }
}

impl std::error::Error for Rejection {}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let image = &self.image;
        let digest = &self.digest;
        let pinned = format!("{}/{}@{digest}", image.registry(), image.repository());
        let sign = format!("sign it with cosign sign --key <private key> {pinned}");
        write!(
            f,
            "rule {}: {}: ",
            rule_name(&self.scope),
            self.reason.label()
        )?;
        match &self.reason {
            Reason::Rejected => write!(
                f,
                "{image} is refused by a \"reject\" requirement; to boot it, change the policy"
            ),
            Reason::NoSignature => write!(
                f,
                "{image} ({digest}) has no cosign signature; {sign}, or fix the policy"
            ),
            Reason::NoKeyMatched { signatures, keys } => {
                let shown: Vec<String> = self.keys.iter().map(|k| short(k)).collect();
                let by = match keys {
                    1 => format!("the policy's key ({})", shown.join(", ")),
                    n => format!("any of the {n} keys ({})", shown.join(", ")),
                };
                write!(
                    f,
                    "no signature of {digest} ({signatures} found) was made by {by}; {sign} using one of these keys, or add the signer's public key to the policy"
                )
            }
            Reason::BadPayload(e) => write!(
                f,
                "a signature of {image} by a trusted key has an unusable payload ({e}); sign it again: cosign sign --key <private key> {pinned}"
            ),
            Reason::DigestMismatch { signed } => write!(
                f,
                "the signature by a trusted key is for manifest {signed}, not {digest} (was the image pushed again after signing?); {sign}"
            ),
            Reason::IdentityMismatch { signed, rule } => {
                let by_digest_helps = rule.starts_with("matchRepoDigestOrExact")
                    || rule.starts_with("remapIdentity");
                let hint = match (is_name_only(signed), by_digest_helps) {
                    (true, true) => "cosign names the repository without a tag: set signedIdentity to {\"type\": \"matchRepository\"} in the policy, or boot the image by digest",
                    (true, false) => "cosign names the repository without a tag: set signedIdentity to {\"type\": \"matchRepository\"} in the policy",
                    _ => "sign the image under the name it is booted by, or change signedIdentity in the policy",
                };
                write!(
                    f,
                    "the signature by a trusted key names {signed:?}, which signedIdentity {rule} does not accept for {image}; {hint}"
                )
            }
            Reason::KeyNotLoaded(path) => write!(
                f,
                "key {path} was not read, so nothing can be verified with it (load the policy's keys first)"
            ),
        }
    }
}

/// A fingerprint shortened for messages: `sha256:0123456789ab…`.
fn short(fingerprint: &str) -> String {
    match fingerprint.get(..19) {
        Some(s) if fingerprint.len() > 19 => format!("{s}…"),
        _ => fingerprint.to_string(),
    }
}

/// Decide whether the image `reference` (as the user named it, by tag or
/// digest), whose manifest is `digest`, may boot under `policy`, given the
/// signatures found for that digest. `policy` must have its keys loaded.
// Evaluated once per boot, and the refusal carries what its message names:
// its size costs nothing worth a Box in the API.
#[allow(clippy::result_large_err)]
pub fn evaluate(
    policy: &Policy,
    reference: &Reference,
    digest: &Digest,
    candidates: &[Candidate],
) -> Result<Verdict, Rejection> {
    let (scope, reqs) = policy.requirements_for(reference);
    let reject = |reason: Reason, keys: Vec<String>| Rejection {
        scope: scope.to_string(),
        reason,
        image: reference.clone(),
        digest: digest.clone(),
        keys,
    };
    // A reject anywhere decides, whatever the signatures; so does an empty
    // list (only a hand-built policy has one), failing closed.
    if reqs.is_empty() || reqs.iter().any(|r| matches!(r, Requirement::Reject)) {
        return Err(reject(Reason::Rejected, Vec::new()));
    }
    let verdict = |requirement: &str| Verdict {
        scope: scope.to_string(),
        requirement: requirement.to_string(),
        key: None,
        key_origin: None,
        identity: None,
        signature: None,
    };
    let mut signed: Option<Verdict> = None;
    for req in reqs {
        let Requirement::SigstoreSigned(s) = req else {
            continue;
        };
        match check(s, reference, digest, candidates) {
            Ok(accepted) => {
                signed.get_or_insert(Verdict {
                    key: Some(accepted.key),
                    key_origin: Some(accepted.key_origin),
                    identity: Some(accepted.identity),
                    signature: Some(accepted.source),
                    ..verdict("sigstoreSigned")
                });
            }
            Err(reason) => return Err(reject(reason, fingerprints(s))),
        }
    }
    Ok(signed.unwrap_or_else(|| verdict("insecureAcceptAnything")))
}

fn fingerprints(s: &SigstoreSigned) -> Vec<String> {
    s.keys
        .iter()
        .filter_map(|k| match k {
            Key::Loaded { key, .. } => Some(key.fingerprint()),
            Key::Path(_) => None,
        })
        .collect()
}

/// The signature a sigstoreSigned requirement accepted.
struct Accepted {
    key: String,
    key_origin: String,
    identity: String,
    source: String,
}

fn check(
    s: &SigstoreSigned,
    reference: &Reference,
    digest: &Digest,
    candidates: &[Candidate],
) -> Result<Accepted, Reason> {
    let mut keys = Vec::with_capacity(s.keys.len());
    for k in &s.keys {
        match k {
            Key::Path(p) => return Err(Reason::KeyNotLoaded(p.clone())),
            Key::Loaded { origin, key } => keys.push((origin, key)),
        }
    }
    let mut best = Reason::NoSignature;
    for c in candidates {
        let failure = match check_one(s, &keys, c, reference, digest) {
            Ok(accepted) => return Ok(accepted),
            Err(Reason::NoKeyMatched { .. }) => Reason::NoKeyMatched {
                signatures: candidates.len(),
                keys: keys.len(),
            },
            Err(other) => other,
        };
        if failure.rank() > best.rank() {
            best = failure;
        }
    }
    Err(best)
}

fn check_one(
    s: &SigstoreSigned,
    keys: &[(&String, &super::key::PublicKey)],
    c: &Candidate,
    reference: &Reference,
    digest: &Digest,
) -> Result<Accepted, Reason> {
    let no_key = Reason::NoKeyMatched {
        signatures: 1,
        keys: keys.len(),
    };
    if c.signature_b64.len() > MAX_SIGNATURE_B64 {
        return Err(no_key);
    }
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(c.signature_b64.trim())
    else {
        return Err(no_key);
    };
    let Some((origin, key)) = keys.iter().find(|(_, k)| k.verify(&c.payload, &signature)) else {
        return Err(no_key);
    };
    let payload = parse_payload(&c.payload).map_err(|e| Reason::BadPayload(e.to_string()))?;
    if payload.manifest_digest != *digest {
        return Err(Reason::DigestMismatch {
            signed: payload.manifest_digest.to_string(),
        });
    }
    if !identity_matches(&s.identity, reference, &payload.docker_reference) {
        return Err(Reason::IdentityMismatch {
            signed: payload.docker_reference,
            rule: s.identity.to_string(),
        });
    }
    Ok(Accepted {
        key: key.fingerprint(),
        key_origin: (*origin).clone(),
        identity: payload.docker_reference,
        source: c.source.clone(),
    })
}

/// Whether a signature naming `signed` satisfies `rule` for `image`.
/// Names compare after normalization (`busybox` is
/// `docker.io/library/busybox`), but a signed name without tag or digest
/// gets no `:latest`: it matches only rules that ignore the tag.
pub(crate) fn identity_matches(rule: &SignedIdentity, image: &Reference, signed: &str) -> bool {
    let Ok(signed_ref) = signed.parse::<Reference>() else {
        return false;
    };
    let name_only = is_name_only(signed);
    match rule {
        SignedIdentity::MatchRepoDigestOrExact => {
            repo_digest_or_exact(image, &signed_ref, name_only)
        }
        SignedIdentity::MatchRepository => same_repository(image, &signed_ref),
        SignedIdentity::MatchExact => !name_only && exact(image, &signed_ref),
        SignedIdentity::ExactReference(r) => {
            !name_only && r.parse().is_ok_and(|r: Reference| exact(&r, &signed_ref))
        }
        SignedIdentity::ExactRepository(r) => r
            .parse()
            .is_ok_and(|r: Reference| same_repository(&r, &signed_ref)),
        SignedIdentity::RemapIdentity {
            prefix,
            signed_prefix,
        } => match remap(image, prefix, signed_prefix) {
            None => repo_digest_or_exact(image, &signed_ref, name_only),
            Some(Some(remapped)) => repo_digest_or_exact(&remapped, &signed_ref, name_only),
            // Remapped into something that is not a reference: no match.
            Some(None) => false,
        },
    }
}

fn same_repository(a: &Reference, b: &Reference) -> bool {
    a.registry() == b.registry() && a.repository() == b.repository()
}

fn exact(a: &Reference, b: &Reference) -> bool {
    same_repository(a, b) && a.tag() == b.tag() && a.digest() == b.digest()
}

/// A tagged image needs the same repository and tag; one pinned by digest
/// (with or without a tag, which is then only a label) the same repository:
/// the digest itself was checked against the payload already.
///
/// containers/image also refuses a signed name without tag or digest for
/// an image by digest; Wyrcan accepts it (same repository, same verified
/// digest), so cosign's repository-only signatures boot by digest under
/// the default rule.
fn repo_digest_or_exact(image: &Reference, signed: &Reference, signed_name_only: bool) -> bool {
    if image.digest().is_some() {
        same_repository(image, signed)
    } else {
        !signed_name_only && exact(image, signed)
    }
}

/// `image` with `prefix` replaced by `signed_prefix`: `None` when the
/// prefix does not apply, `Some(None)` when the result is no valid
/// reference. The prefix applies at a path-component boundary only, so
/// `quay.io/acme` covers `quay.io/acme/os` but not `quay.io/acmeco/os`.
fn remap(image: &Reference, prefix: &str, signed_prefix: &str) -> Option<Option<Reference>> {
    let name = format!("{}/{}", image.registry(), image.repository());
    let rest = name.strip_prefix(prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let mut remapped = format!("{signed_prefix}{rest}");
    if let Some(t) = image.tag() {
        remapped.push(':');
        remapped.push_str(t);
    }
    if let Some(d) = image.digest() {
        remapped.push('@');
        remapped.push_str(&d.to_string());
    }
    // Only a name already in normalized form: `docker.io/busybox` would
    // silently become `docker.io/library/busybox` otherwise.
    Some(
        remapped
            .parse::<Reference>()
            .ok()
            .filter(|r| r.to_string() == remapped),
    )
}
