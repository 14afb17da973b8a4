//! The two passes over a layer's tar stream, both through
//! [`crate::tar::Reader`]: [`index_layer`] reads headers only (first pass),
//! [`for_each_file`] streams the planned files' bytes (second pass). Member
//! numbers are the reader's, so both passes agree on them.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::tar::{Kind, Reader, TarError};

/// First pass over one (decompressed) layer: read every header, skip the
/// contents.
pub fn index_layer<R: Read>(tar: R) -> Result<Vec<LayerEntry>, TreeError> {
    index_layer_bounded(tar, &AtomicU64::new(u64::MAX))
}

/// [`index_layer`] taking each entry from `budget`, shared by the layers of
/// one image (indexed in parallel): an image whose layers hold more entries
/// in total is refused before its headers can fill memory. A failed index
/// gives back what it took, so one thrown away (a download that started
/// over) does not count.
pub fn index_layer_bounded<R: Read>(
    tar: R,
    budget: &AtomicU64,
) -> Result<Vec<LayerEntry>, TreeError> {
    let mut out = Vec::new();
    let res = index_into(tar, budget, &mut out);
    if res.is_err() {
        budget.fetch_add(out.len() as u64, Ordering::Relaxed);
    }
    res.map(|()| out)
}

fn index_into<R: Read>(
    tar: R,
    budget: &AtomicU64,
    out: &mut Vec<LayerEntry>,
) -> Result<(), TreeError> {
    let mut reader = Reader::new(tar);
    while let Some(e) = reader.next_entry()? {
        if budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_err()
        {
            return Err(TreeError::TooManyEntries {
                entry: e.index,
                path: lossy(&e.path),
            });
        }
        let kind = match e.kind {
            Kind::Dir => EntryKind::Dir,
            Kind::File => EntryKind::File { size: e.size },
            Kind::Hardlink => EntryKind::Hardlink { target: e.link },
            Kind::Symlink => EntryKind::Symlink { target: e.link },
            Kind::Char => EntryKind::Special(Special::Char {
                major: e.major,
                minor: e.minor,
            }),
            Kind::Block => EntryKind::Special(Special::Block {
                major: e.major,
                minor: e.minor,
            }),
            Kind::Fifo => EntryKind::Special(Special::Fifo),
        };
        out.push(LayerEntry {
            index: e.index,
            path: e.path,
            kind,
            meta: Meta {
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                mtime: e.mtime,
            },
        });
    }
    Ok(())
}

/// Second pass over one (decompressed) layer: hand each planned file's
/// bytes to `f`, in stream order. Stops reading the layer as soon as its
/// last planned file is done, so trailing deleted data is never inflated.
pub fn for_each_file<R: Read>(
    tar: R,
    jobs: &[FileJob],
    mut f: impl FnMut(&FileJob, &mut dyn Read) -> io::Result<()>,
) -> Result<(), TreeError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let mut reader = Reader::new(tar);
    let mut next = jobs.iter().peekable();
    while let Some(entry) = reader.next_entry()? {
        let Some(job) = next.peek() else { break };
        if job.entry != entry.index {
            continue;
        }
        if entry.size != job.size {
            return Err(TreeError::Tar(TarError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "entry {} changed size between passes ({} then {})",
                    lossy(&entry.path),
                    job.size,
                    entry.size
                ),
            ))));
        }
        f(job, &mut reader.data()).map_err(|e| TreeError::Tar(TarError::Io(e)))?;
        next.next();
        if next.peek().is_none() {
            return Ok(());
        }
    }
    match next.peek() {
        None => Ok(()),
        Some(job) => Err(TreeError::Tar(TarError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("layer ended before entry {} was reached", job.entry),
        )))),
    }
}
