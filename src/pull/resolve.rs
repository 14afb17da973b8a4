//! From a reference to one verified image manifest: the index resolved to
//! this machine's platform, the layer count, sizes and media types checked
//! before any download, and the config read for a platform sanity check.

use anyhow::{bail, Context, Result};
use wyrcan_core::digest::Digest;
use wyrcan_core::manifest::{self, Compression, ImageManifest, Manifest, Platform};
use wyrcan_core::reference::Reference;
use wyrcan_core::trust::Verdict;

use crate::registry::Client;

/// An image resolved to one manifest.
#[derive(Debug)]
pub struct Resolved {
    /// What the user asked for.
    pub reference: Reference,
    /// Digest of what the reference names: the index, or the manifest
    /// itself (what `cosign sign IMAGE` signs).
    pub top_digest: Digest,
    /// Digest of the platform manifest that was chosen.
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// Compression of each layer, checked before any download starts.
    pub compressions: Vec<Compression>,
    /// The policy's verdict, when a policy was given (see [`super::trust`]).
    pub verdict: Option<Verdict>,
    /// For an index: the platforms it offers, in its order.
    pub platforms: Vec<String>,
}

/// Resolve a reference to the platform's manifest and check, before any
/// blob is requested, the layer count and sizes ([`super::limits`]) and
/// that every layer type is one we can read.
pub fn resolve(client: &Client, reference: &Reference, platform: &Platform) -> Result<Resolved> {
    // The client's errors already name the image and what was fetched.
    let top = client.fetch_manifest(&reference.manifest_ref(), reference.digest())?;
    let top_digest = top.digest.clone();
    let mut platforms = Vec::new();
    let (manifest, digest) = match manifest::parse(top.content_type.as_deref(), &top.body)
        .with_context(|| format!("reading the manifest of {reference}"))?
    {
        Manifest::Image(m) => (m, top.digest),
        Manifest::Index(index) => {
            platforms = index
                .manifests
                .iter()
                .map(|m| {
                    m.platform
                        .as_ref()
                        .map_or_else(|| "(none)".to_string(), |p| p.to_string())
                })
                .collect();
            let desc = manifest::select_platform(&index, platform)
                .with_context(|| format!("choosing a platform from the index of {reference}"))?;
            tracing::info!(
                "{reference}: using the {platform} manifest {}",
                desc.digest.short()
            );
            let got = client.fetch_manifest(&desc.digest.to_string(), Some(&desc.digest))?;
            match manifest::parse(got.content_type.as_deref(), &got.body)
                .with_context(|| format!("reading the {platform} manifest of {reference}"))?
            {
                Manifest::Image(m) => (m, got.digest),
                Manifest::Index(_) => bail!(
                    "the {platform} entry of {reference}'s index is another index; nested indexes are not supported"
                ),
            }
        }
    };
    // Before any blob request (the config included): how many layers, how big.
    super::limits::check_manifest(reference, &manifest)?;
    let compressions = manifest
        .layers
        .iter()
        .map(|l| {
            manifest::layer_compression(&l.media_type)
                .with_context(|| format!("layer {} of {reference}", l.digest))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Resolved {
        reference: reference.clone(),
        top_digest,
        manifest_digest: digest,
        manifest,
        compressions,
        verdict: None,
        platforms,
    })
}

/// Fetch and sanity-check the image config: warn when it says another
/// platform than the one we boot.
pub fn check_config(client: &Client, r: &Resolved, platform: &Platform) -> Result<()> {
    let body = client
        .fetch_blob_bytes(&r.manifest.config)
        .with_context(|| {
            format!(
                "fetching the config {} of {}",
                r.manifest.config.digest, r.reference
            )
        })?;
    let config = manifest::parse_config(&body).with_context(|| {
        format!(
            "reading the config {} of {}",
            r.manifest.config.digest, r.reference
        )
    })?;
    if let Some(arch) = &config.architecture {
        if *arch != platform.architecture {
            tracing::warn!(
                "{} is built for {arch}, not {}: its kernel will likely not boot here",
                r.reference,
                platform.architecture
            );
        }
    }
    Ok(())
}
