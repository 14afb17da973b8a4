//! Layers: downloaded in parallel into a scratch directory, each verified
//! against its digest, then indexed (the first flattening pass).
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
use std::time::Instant;

use anyhow::{bail, Context, Result};
use wyrcan_core::manifest::{Compression, Descriptor};
use wyrcan_core::tree::{self, LayerEntry};

use super::Resolved;
use crate::progress::{human, Progress};
use crate::registry::Client;

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
    client
        .download_blob(desc, &mut file, resume, &|done| bar.set(done))
        .with_context(|| format!("downloading {what} of {}", r.reference))?;
    bar.finish();
    file.rewind().context("rewinding a scratch file")?;
    let entries = tree::index_layer_bounded(decoder(compression, &mut file)?, budget)
        .with_context(|| {
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
