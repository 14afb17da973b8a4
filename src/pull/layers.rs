//! Layers: downloaded in parallel into a scratch directory and indexed
//! (the first flattening pass) while they download; an index is used only
//! once its blob's digest is verified.
//!
//! Blobs are kept compressed on local storage between the passes: that is
//! what makes the digest check happen *before* any byte reaches an output,
//! what lets an interrupted download resume with a Range request, and what
//! keeps memory flat whatever the image size.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use wyrcan_core::manifest::{Compression, Descriptor};
use wyrcan_core::tree::{self, LayerEntry};

use super::Resolved;
use crate::convert::pipe::{pipe, PipeWriter};
use crate::progress::{human, Progress};
use crate::registry::{BlobTee, Client};

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

/// Decompressing reader for a layer blob.
pub fn decoder<'a>(compression: Compression, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let r = BufReader::with_capacity(256 * 1024, r);
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

/// Download every layer (in parallel), verify it, and index it. With
/// `keep`, layers are downloaded into files named by digest there, which a
/// failed pull leaves behind for the next one to resume; after a complete
/// pull they are unlinked (the open files stay readable).
#[allow(clippy::too_many_arguments)]
pub fn fetch_layers(
    client: &Client,
    r: &Resolved,
    scratch: &Path,
    keep: Option<&Path>,
    jobs: usize,
    max_entries: u64,
    progress: &Progress,
) -> Result<Vec<LocalLayer>> {
    let budget = AtomicU64::new(max_entries);
    let layers = &r.manifest.layers;
    if let Some(dir) = keep {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Another image's leftovers only take memory.
        let wanted: Vec<&str> = layers.iter().map(|l| l.digest.hex()).collect();
        forget_partials(dir, &wanted);
    }
    let slots: Vec<Mutex<Option<Result<LocalLayer>>>> =
        layers.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = jobs.clamp(1, layers.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(desc) = layers.get(i) else { break };
                let res = fetch_one(client, r, i, desc, scratch, keep, &budget, progress);
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
    if let Some(dir) = keep {
        forget_partials(dir, &[]);
    }
    Ok(out)
}

/// Unlink the files in `dir` not named in `wanted`.
fn forget_partials(dir: &Path, wanted: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if !wanted.iter().any(|w| name.to_str() == Some(*w)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn fetch_one(
    client: &Client,
    r: &Resolved,
    i: usize,
    desc: &Descriptor,
    scratch: &Path,
    keep: Option<&Path>,
    budget: &AtomicU64,
    progress: &Progress,
) -> Result<LocalLayer> {
    let compression = r.compressions[i];
    let n = r.manifest.layers.len();
    let what = format!("layer {}/{n} {}", i + 1, desc.digest);
    let started = Instant::now();
    let bar = progress.download(
        &format!("layer {}/{n} {}", i + 1, desc.digest.short()),
        desc.size,
    );
    let (mut file, resume) = match keep {
        // Named by digest, so the next attempt finds what this one got.
        Some(dir) => {
            let path = dir.join(desc.digest.hex());
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("opening {} for {what}", path.display()))?;
            (f, true)
        }
        None => (
            tempfile::tempfile_in(scratch).with_context(|| {
                format!(
                    "creating a scratch file in {} for {what}",
                    scratch.display()
                )
            })?,
            false,
        ),
    };
    let entries = std::thread::scope(|s| {
        let mut live = LiveIndex {
            scope: s,
            compression,
            budget,
            feed: None,
            indexer: None,
        };
        let res =
            client.download_blob_tee(desc, &mut file, resume, &|done| bar.set(done), &mut live);
        match res {
            // Verified: the index heard exactly these bytes.
            Ok(()) => Ok(live.finish()),
            Err(e) => {
                live.restart();
                Err(e)
            }
        }
    })
    .with_context(|| format!("downloading {what} of {}", r.reference))?;
    bar.finish();
    let entries = entries.with_context(|| {
        format!(
            "reading {what} of {} (a {:?} tar)",
            r.reference, compression
        )
    })?;
    tracing::info!(
        "{what}: {} entries, {} in {:.1?}",
        entries.len(),
        human(desc.size),
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

/// The first pass run while a layer downloads: the bytes landing in the
/// scratch file are also piped into a thread that inflates and indexes
/// them. A start over of the download throws that index away (its
/// entries go back to the budget) and starts a new one on the new bytes.
struct LiveIndex<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    compression: Compression,
    budget: &'env AtomicU64,
    feed: Option<PipeWriter>,
    indexer: Option<ScopedJoinHandle<'scope, Result<Vec<LayerEntry>>>>,
}

impl LiveIndex<'_, '_> {
    /// The index of every byte heard, once the download is verified.
    fn finish(mut self) -> Result<Vec<LayerEntry>> {
        if self.indexer.is_none() {
            // An empty blob: nothing was heard.
            self.start();
        }
        drop(self.feed.take());
        match self.indexer.take().map(|h| h.join()) {
            Some(Ok(res)) => res,
            _ => bail!("the indexing thread panicked"),
        }
    }

    fn start(&mut self) {
        let (feed, bytes) = pipe();
        let (compression, budget) = (self.compression, self.budget);
        self.indexer = Some(self.scope.spawn(move || {
            let dec = decoder(compression, bytes)?;
            Ok(tree::index_layer_bounded(dec, budget)?)
        }));
        self.feed = Some(feed);
    }
}

impl BlobTee for LiveIndex<'_, '_> {
    fn restart(&mut self) {
        if let Some(feed) = self.feed.take() {
            feed.fail("the download started over".into());
        }
        if let Some(Ok(Ok(entries))) = self.indexer.take().map(|h| h.join()) {
            // A failed index gave its entries back itself.
            self.budget
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
        }
    }

    fn data(&mut self, bytes: &[u8]) {
        if self.indexer.is_none() {
            self.start();
        }
        if let Some(feed) = self.feed.as_mut() {
            // An indexer that stopped early (at the end of the tar, or on
            // an error it reports at `finish`) needs no more bytes.
            if std::io::Write::write_all(feed, bytes).is_err() {
                self.feed = None;
            }
        }
    }
}
