//! The client of one repository across its endpoints: the mirrors given
//! for its registry (`PullOptions::mirrors`), in order, then the registry
//! itself. Content addressed by digest may come from any of them; a tag
//! (or anything else that can change: a signature tag, the referrers
//! list) only from the registry or a `resolve+` mirror. Whatever a mirror
//! serves is verified against the digest that names it (the endpoint's
//! fetches do that), so a mirror that is down, stale or lying only costs a
//! warning and a fallback to the next endpoint.

use std::fs::File;

use tracing::warn;
use wyrcan_core::digest::Digest;
use wyrcan_core::manifest::Descriptor;
use wyrcan_core::mirror;
use wyrcan_core::reference::Reference;

use super::download::{BlobTee, NoTee};
use super::{Endpoint, FetchedManifest, PullOptions, RegistryError};

/// A client for one repository: its mirrors, then its registry. `Send +
/// Sync`: share it by reference between download threads.
pub struct Client {
    /// Mirrors first, the registry last (never empty).
    endpoints: Vec<Endpoint>,
}

/// Which endpoints may answer a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Addressed by digest: every endpoint.
    Content,
    /// A tag or a list: the registry and `resolve+` mirrors.
    Mutable,
}

impl Client {
    /// A client for `reference`'s repository and its mirrors. Reads the
    /// `--ca` files and the system roots now, so a bad CA file fails here
    /// rather than mid-pull; looks up the credentials of every endpoint now
    /// too (by its host: a mirror has its own).
    pub fn new(reference: &Reference, opts: &PullOptions) -> anyhow::Result<Client> {
        let mut endpoints = Vec::new();
        for m in mirror::endpoints_for(&opts.mirrors, reference.registry()) {
            endpoints.push(Endpoint::new(reference, opts, Some(m))?);
        }
        if !endpoints.is_empty() {
            let names: Vec<String> = endpoints.iter().map(Endpoint::name).collect();
            tracing::info!(
                "{}: trying {} before the registry",
                reference.registry(),
                names.join(", ")
            );
        }
        endpoints.push(Endpoint::new(reference, opts, None)?);
        Ok(Client { endpoints })
    }

    /// Run `op` on each endpoint that may answer, in order, until one
    /// succeeds. A mirror's failure is a warning; the registry's is the
    /// answer — except that a `resolve+` mirror's "not found" stands when
    /// the registry cannot be reached at all (a site without a route to it).
    fn each<T>(
        &self,
        kind: Kind,
        what: &str,
        mut op: impl FnMut(&Endpoint) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut mirror_not_found = None;
        let (registry, mirrors) = self.endpoints.split_last().expect("the registry is last");
        for m in mirrors {
            if kind == Kind::Mutable && !m.resolves_tags() {
                continue;
            }
            match op(m) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if is_not_found(&e) {
                        mirror_not_found.get_or_insert(e);
                        tracing::debug!(
                            "{}: {what}: not found there; trying the next endpoint",
                            m.name()
                        );
                    } else {
                        warn!("{}: {what}: {e:#}; trying the next endpoint", m.name());
                    }
                }
            }
        }
        match op(registry) {
            Err(e) if !is_not_found(&e) && mirror_not_found.is_some() && is_unreachable(&e) => {
                warn!("{what}: the registry cannot be reached ({e:#}); taking the mirror's answer");
                Err(mirror_not_found.expect("checked"))
            }
            r => r,
        }
    }

    /// GET a manifest by tag or digest (see [`Endpoint::fetch_manifest`]):
    /// by digest from any endpoint, by tag from the registry or a
    /// `resolve+` mirror.
    ///
    /// With mirrors that may not resolve tags, the registry is asked only
    /// for the tag's digest (HEAD) and the manifest itself then comes by
    /// digest from the first endpoint that has it: so a site cache holds
    /// the manifest too, and a later boot pinned to that digest works with
    /// the registry down.
    pub fn fetch_manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> anyhow::Result<FetchedManifest> {
        let pinned = expected.is_some() || reference.contains(':');
        let what = format!("manifest {reference}");
        if pinned {
            return self.each(Kind::Content, &what, |e| {
                e.fetch_manifest(reference, expected)
            });
        }
        let (registry, mirrors) = self.endpoints.split_last().expect("the registry is last");
        if mirrors.iter().all(Endpoint::resolves_tags) {
            return self.each(Kind::Mutable, &what, |e| e.fetch_manifest(reference, None));
        }
        // Resolve+ mirrors first, as for any tag; then the registry's HEAD.
        let resolving: Vec<&Endpoint> = mirrors.iter().filter(|m| m.resolves_tags()).collect();
        for m in resolving {
            match m.fetch_manifest(reference, None) {
                Ok(v) => return Ok(v),
                Err(e) => warn!("{}: {what}: {e:#}; trying the next endpoint", m.name()),
            }
        }
        match registry.head_manifest(reference)? {
            Some(digest) => {
                let by_digest = digest.to_string();
                self.each(Kind::Content, &what, |e| {
                    e.fetch_manifest(&by_digest, Some(&digest))
                })
            }
            None => registry.fetch_manifest(reference, None),
        }
    }

    /// The OCI 1.1 referrers of `digest` (see [`Endpoint::fetch_referrers`]):
    /// a list that changes, so from the registry or a `resolve+` mirror.
    pub fn fetch_referrers(&self, digest: &Digest) -> anyhow::Result<Option<FetchedManifest>> {
        self.each(Kind::Mutable, &format!("the referrers of {digest}"), |e| {
            e.fetch_referrers(digest)
        })
    }

    /// A small blob, verified (see [`Endpoint::fetch_blob_bytes`]).
    pub fn fetch_blob_bytes(&self, desc: &Descriptor) -> anyhow::Result<Vec<u8>> {
        self.each(Kind::Content, &format!("blob {}", desc.digest), |e| {
            e.fetch_blob_bytes(desc)
        })
    }

    /// A blob into `out`, verified (see [`Endpoint::download_blob`]). With
    /// `resume`, the first endpoint continues after the bytes already in
    /// `out`; a fallback endpoint starts over (a mirror's bytes are not
    /// kept for the next).
    pub fn download_blob(
        &self,
        desc: &Descriptor,
        out: &mut File,
        resume: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> anyhow::Result<()> {
        self.download_blob_tee(desc, out, resume, progress, &mut NoTee)
    }

    /// [`Client::download_blob`], with `tee` hearing the file's bytes as
    /// they land (see [`BlobTee`]); a fallback endpoint's start over is a
    /// [`BlobTee::restart`].
    pub fn download_blob_tee(
        &self,
        desc: &Descriptor,
        out: &mut File,
        resume: bool,
        progress: &(dyn Fn(u64) + Sync),
        tee: &mut dyn BlobTee,
    ) -> anyhow::Result<()> {
        let mut first = resume;
        self.each(Kind::Content, &format!("blob {}", desc.digest), |e| {
            let resume = std::mem::take(&mut first);
            e.download_blob(desc, out, resume, progress, &mut *tee)
        })
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    matches!(
        RegistryError::find(e),
        Some(RegistryError::ManifestNotFound { .. } | RegistryError::BlobNotFound { .. })
    )
}

fn is_unreachable(e: &anyhow::Error) -> bool {
    matches!(
        RegistryError::find(e),
        Some(RegistryError::Connect { .. } | RegistryError::ProxyConnect { .. })
    )
}
