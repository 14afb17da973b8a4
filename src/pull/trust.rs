//! Signatures before layers: for the digest the reference resolved to,
//! collect cosign signatures from every place cosign keeps them (through
//! the same client, so the same credentials, CAs and proxy), and let the
//! policy decide. Runs after the manifests are fetched and verified and
//! before any other blob is requested.

use anyhow::{Context, Result};
use wyrcan_core::digest::Digest;
use wyrcan_core::manifest::Descriptor;
use wyrcan_core::reference::Reference;
use wyrcan_core::signatures::{self, MAX_SIGNATURES};
use wyrcan_core::trust::{self, Candidate, Policy, Rejection, Requirement, Verdict};

use crate::registry::{Client, RegistryError};

/// The image was refused by the policy: the rejection names the rule, the
/// image, the digest and why. PID 1 shows it and does not boot; the host
/// commands exit non-zero.
#[derive(Debug, thiserror::Error)]
#[error("{} is not trusted: {rejection}", rejection.image)]
pub struct Untrusted {
    /// Which rule and why.
    pub rejection: Rejection,
}

/// Check `reference` (resolved to `top`, and for an index to the platform
/// manifest `platform`) against `policy`. Signatures are looked up only
/// when the applying rule asks for them. A signature of the index is what
/// `cosign sign IMAGE` makes; one of the platform manifest (`cosign sign
/// IMAGE@sha256:…` of one entry) is accepted too.
pub fn verify(
    client: &Client,
    policy: &Policy,
    reference: &Reference,
    top: &Digest,
    platform: &Digest,
) -> Result<Verdict> {
    let (_, requirements) = policy.requirements_for(reference);
    let wants_signatures = requirements
        .iter()
        .any(|r| matches!(r, Requirement::SigstoreSigned(_)));
    let mut digests = vec![top];
    if platform != top {
        digests.push(platform);
    }
    let mut first_rejection = None;
    for digest in digests {
        let candidates = if wants_signatures {
            candidates(client, reference, digest)?
        } else {
            Vec::new()
        };
        match trust::evaluate(policy, reference, digest, &candidates) {
            Ok(v) => {
                tracing::info!("{reference}: {digest} accepted by {}", describe(&v));
                return Ok(v);
            }
            Err(r) => {
                tracing::debug!("{reference}: {digest}: {r}");
                first_rejection.get_or_insert(r);
            }
        }
    }
    let rejection = first_rejection.expect("at least one digest was checked");
    Err(Untrusted { rejection }.into())
}

/// One line for logs and `inspect`.
pub fn describe(v: &Verdict) -> String {
    let mut s = format!("rule {} ({})", v.scope, v.requirement);
    if let Some(k) = &v.key {
        s.push_str(&format!(", key {k}"));
    }
    if let Some(i) = &v.identity {
        s.push_str(&format!(", signed as {i}"));
    }
    s
}

/// Every signature of `digest` the registry has, each payload fetched and
/// checked against its blob digest (the fetch verifies it).
pub fn candidates(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
) -> Result<Vec<Candidate>> {
    let mut manifests: Vec<(String, Vec<u8>)> = Vec::new();
    let tag = signatures::sig_tag(digest);
    if let Some(m) = absent_is_none(client.fetch_manifest(&tag, None))? {
        manifests.push((format!("tag {tag}"), m.body));
    }
    let index = match client
        .fetch_referrers(digest)
        .with_context(|| format!("looking up the referrers of {digest}"))?
    {
        Some(i) => Some(("referrers API", i.body)),
        None => absent_is_none(client.fetch_manifest(&signatures::referrers_tag(digest), None))?
            .map(|i| ("referrers tag", i.body)),
    };
    if let Some((how, body)) = index {
        let refs = signatures::sig_referrers(&body)
            .with_context(|| format!("reading the {how} index of {digest}"))?;
        for r in refs {
            let m = client.fetch_manifest(&r.to_string(), Some(&r))?;
            manifests.push((format!("referrer {}", r.short()), m.body));
        }
    }
    let mut out = Vec::new();
    for (source, body) in manifests {
        let layers = signatures::sig_layers(&body)
            .with_context(|| format!("reading the signature manifest ({source}) of {reference}"))?;
        for (i, l) in layers.into_iter().enumerate() {
            if out.len() >= MAX_SIGNATURES {
                tracing::warn!("{reference}: more than {MAX_SIGNATURES} signatures; reading the first {MAX_SIGNATURES}");
                return Ok(out);
            }
            let desc = Descriptor {
                media_type: signatures::SIMPLESIGNING.to_string(),
                digest: l.digest.clone(),
                size: l.size,
                platform: None,
                urls: Vec::new(),
                annotations: Default::default(),
            };
            let payload = client
                .fetch_blob_bytes(&desc)
                .with_context(|| format!("fetching signature payload {} ({source})", l.digest))?;
            out.push(Candidate {
                payload,
                signature_b64: l.signature,
                source: format!("{source} layer {i}"),
            });
        }
    }
    tracing::debug!("{reference}: {} signature(s) of {digest}", out.len());
    Ok(out)
}

/// A 404 for a tag is "nothing signed here", not an error.
fn absent_is_none<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if matches!(
                RegistryError::find(&e),
                Some(RegistryError::ManifestNotFound { .. })
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
