//! Pulling an image: reference → manifest (through an index if needed) →
//! config → layers downloaded in parallel into a scratch directory, each
//! verified against its digest and then indexed (first flattening pass).
//!
//! Blobs are kept compressed on local storage between the passes: that is
//! what makes the digest check happen *before* any byte reaches an output,
//! what lets an interrupted download resume with a Range request, and what
//! keeps memory flat whatever the image size.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use wyrcan_core::digest::Digest;
use wyrcan_core::manifest::{self, Compression, Descriptor, ImageManifest, Manifest, Platform};
use wyrcan_core::reference::Reference;
use wyrcan_core::tree::{self, LayerEntry};

use crate::progress::Progress;
use crate::registry::{Client, ClientOptions};

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registry access (insecure hosts, CAs, credentials, retries).
    pub client: ClientOptions,
    /// Platform to pick from an index; the running machine's by default.
    pub platform: Option<Platform>,
    /// Layers downloading at once.
    pub jobs: usize,
}

/// An image resolved to one manifest.
#[derive(Debug)]
pub struct Resolved {
    /// What the user asked for.
    pub reference: Reference,
    /// Digest of the platform manifest that was chosen.
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// Compression of each layer, checked before any download starts.
    pub compressions: Vec<Compression>,
}

/// A layer on local storage, verified and indexed.
pub struct LocalLayer {
    /// Its descriptor from the manifest.
    pub desc: Descriptor,
    /// How its bytes are compressed.
    pub compression: Compression,
    /// The verified compressed blob.
    pub file: File,
    /// Headers, in tar order (first pass).
    pub entries: Vec<LayerEntry>,
}

/// Resolve a reference to the platform's manifest and check every layer
/// type is one we can read, before downloading anything big.
pub fn resolve(client: &Client, reference: &Reference, platform: &Platform) -> Result<Resolved> {
    let top = client
        .fetch_manifest(&reference.manifest_ref(), reference.digest())
        .with_context(|| format!("fetching the manifest of {reference}"))?;
    let (manifest, digest) = match manifest::parse(top.content_type.as_deref(), &top.body)
        .with_context(|| format!("reading the manifest of {reference}"))?
    {
        Manifest::Image(m) => (m, top.digest),
        Manifest::Index(index) => {
            let desc = manifest::select_platform(&index, platform)
                .with_context(|| format!("choosing a platform from the index of {reference}"))?;
            tracing::info!(
                "{reference}: using the {platform} manifest {}",
                desc.digest.short()
            );
            let got = client
                .fetch_manifest(&desc.digest.to_string(), Some(&desc.digest))
                .with_context(|| format!("fetching the {platform} manifest of {reference}"))?;
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
        manifest_digest: digest,
        manifest,
        compressions,
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

/// Decompressing reader for a layer blob.
pub fn decoder<'a>(compression: Compression, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let r = BufReader::with_capacity(256 * 1024, r);
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

/// Download every layer (in parallel), verify it, and index it.
pub fn fetch_layers(
    client: &Client,
    r: &Resolved,
    scratch: &Path,
    jobs: usize,
    progress: &Progress,
) -> Result<Vec<LocalLayer>> {
    let layers = &r.manifest.layers;
    let slots: Vec<Mutex<Option<Result<LocalLayer>>>> =
        layers.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = jobs.clamp(1, layers.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(desc) = layers.get(i) else { break };
                let res = fetch_one(client, r, i, desc, r.compressions[i], scratch, progress);
                let failed = res.is_err();
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(res);
                if failed {
                    // Stop handing out work: the pull is lost anyway.
                    next.store(layers.len(), Ordering::SeqCst);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(layers.len());
    for slot in slots {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(res) => out.push(res?),
            None => bail!("a layer download was abandoned after another one failed"),
        }
    }
    Ok(out)
}

fn fetch_one(
    client: &Client,
    r: &Resolved,
    i: usize,
    desc: &Descriptor,
    compression: Compression,
    scratch: &Path,
    progress: &Progress,
) -> Result<LocalLayer> {
    let n = r.manifest.layers.len();
    let what = format!("layer {}/{n} {}", i + 1, desc.digest);
    let started = Instant::now();
    let bar = progress.download(
        &format!("layer {}/{n} {}", i + 1, desc.digest.short()),
        desc.size,
    );
    let mut file = tempfile::tempfile_in(scratch).with_context(|| {
        format!(
            "creating a scratch file in {} for {what}",
            scratch.display()
        )
    })?;
    client
        .download_blob(desc, &mut file, &|done| bar.set(done))
        .with_context(|| format!("downloading {what} of {}", r.reference))?;
    bar.finish();
    file.rewind().context("rewinding a scratch file")?;
    let entries = tree::index_layer(decoder(compression, &mut file)?).with_context(|| {
        format!(
            "reading {what} of {} (a {:?} tar)",
            r.reference, compression
        )
    })?;
    tracing::info!(
        "{what}: {} entries, {} in {:.1?}",
        entries.len(),
        crate::progress::human(desc.size),
        started.elapsed()
    );
    file.rewind().context("rewinding a scratch file")?;
    Ok(LocalLayer {
        desc: desc.clone(),
        compression,
        file,
        entries,
    })
}
