//! The two passes over a layer's tar stream: [`index_layer`] reads headers
//! only (first pass), [`for_each_file`] streams the planned files' bytes
//! (second pass).

use std::io::{self, Read};

use super::*;

fn header_meta(entry: &mut tar::Entry<'_, impl Read>) -> io::Result<Meta> {
    let h = entry.header();
    let mut meta = Meta {
        mode: h.mode()? & 0o7777,
        uid: h.uid()?,
        gid: h.gid()?,
        mtime: h.mtime()? as i64,
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax.flatten() {
            let Ok(v) = ext.value() else { continue };
            match ext.key_bytes() {
                b"uid" => meta.uid = v.parse().unwrap_or(meta.uid),
                b"gid" => meta.gid = v.parse().unwrap_or(meta.gid),
                b"mtime" => {
                    let secs = v.split('.').next().unwrap_or("");
                    meta.mtime = secs.parse().unwrap_or(meta.mtime);
                }
                _ => {}
            }
        }
    }
    Ok(meta)
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// First pass over one (decompressed) layer: read every header, skip the
/// contents.
pub fn index_layer<R: Read>(tar: R) -> Result<Vec<LayerEntry>, TreeError> {
    let consumed = Rc::new(Cell::new(0u64));
    let mut archive = tar::Archive::new(Counting {
        inner: tar,
        count: consumed.clone(),
    });
    let mut out = Vec::new();
    // Where the last entry's data ends in the stream.
    let mut data_end = 0u64;
    for (i, entry) in archive.entries().map_err(TreeError::Tar)?.enumerate() {
        let mut entry = match entry {
            Ok(e) => e,
            // Some writers (umoci 0.4's `insert`, seen in our tests) stop
            // right after the last file's bytes: no padding, no end-of-
            // archive blocks. Nothing is missing then, so accept it; a
            // stream cut inside a file's data is still an error.
            Err(e)
                if (e.kind() == io::ErrorKind::UnexpectedEof
                    || e.to_string().contains("unexpected EOF"))
                    && consumed.get() >= data_end =>
            {
                break;
            }
            Err(e) => return Err(TreeError::Tar(e)),
        };
        data_end = entry.raw_file_position() + entry.size();
        let path = entry.path_bytes().into_owned();
        let meta = header_meta(&mut entry).map_err(TreeError::Tar)?;
        let link = || {
            entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default()
        };
        let h = entry.header();
        let dev = || -> io::Result<(u32, u32)> {
            Ok((
                h.device_major()?.unwrap_or(0),
                h.device_minor()?.unwrap_or(0),
            ))
        };
        let kind = match h.entry_type().as_byte() {
            // Old (V7) tars mark directories only by a trailing slash.
            b'0' | b'\0' | b'7' if path.ends_with(b"/") => EntryKind::Dir,
            b'0' | b'\0' | b'7' => EntryKind::File { size: entry.size() },
            b'1' => EntryKind::Hardlink { target: link() },
            b'2' => EntryKind::Symlink { target: link() },
            b'3' => {
                let (major, minor) = dev().map_err(TreeError::Tar)?;
                EntryKind::Special(Special::Char { major, minor })
            }
            b'4' => {
                let (major, minor) = dev().map_err(TreeError::Tar)?;
                EntryKind::Special(Special::Block { major, minor })
            }
            b'5' => EntryKind::Dir,
            b'6' => EntryKind::Special(Special::Fifo),
            b'g' | b'V' => EntryKind::Ignored,
            other => {
                return Err(TreeError::Unsupported {
                    path: lossy(&path),
                    typeflag: other as char,
                })
            }
        };
        out.push(LayerEntry {
            index: i as u32,
            path,
            kind,
            meta,
        });
    }
    Ok(out)
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
    let mut archive = tar::Archive::new(tar);
    let mut next = jobs.iter().peekable();
    for (i, entry) in archive.entries().map_err(TreeError::Tar)?.enumerate() {
        let mut entry = entry.map_err(TreeError::Tar)?;
        let Some(job) = next.peek() else { break };
        if job.entry as usize != i {
            continue;
        }
        if entry.size() != job.size {
            return Err(TreeError::Tar(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "entry {} changed size between passes ({} then {})",
                    lossy(&entry.path_bytes()),
                    job.size,
                    entry.size()
                ),
            )));
        }
        f(job, &mut entry).map_err(TreeError::Tar)?;
        next.next();
        if next.peek().is_none() {
            return Ok(());
        }
    }
    match next.peek() {
        None => Ok(()),
        Some(job) => Err(TreeError::Tar(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("layer ended before entry {} was reached", job.entry),
        ))),
    }
}
