//! The `newc` cpio format, as the Linux initramfs unpacker reads it
//! (`init/initramfs.c`): a writer that is a [`Sink`] for flattened trees,
//! and a reader used by tests and fuzzing.
//!
//! Choices the kernel dictates:
//! - a hard-link group shares one inode number and says `nlink >= 2` on
//!   *every* entry, or the unpacker will not link them; the data goes with
//!   the first entry, the others carry size 0 and are linked to it;
//! - fields are 32-bit, so files over 4 GiB and ids over 2^32 are refused
//!   instead of silently wrapping;
//! - names carry no leading `/` (the unpacker resolves them from `/`).

use std::io::{self, Read, Write};

use crate::tree::{Meta, Sink, Special};

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &[u8] = b"TRAILER!!!";
/// Bytes of the trailer entry: header, name with NUL, padding.
pub const TRAILER_LEN: u64 = 124;

const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const S_IFDIR: u32 = 0o040000;
const S_IFBLK: u32 = 0o060000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
/// Offset, from the start of a newc header, of its 8-digit file size
/// (after the magic and six fields): a writer that learns a size only
/// after writing the data in place fills it in with [`size_field`].
pub const SIZE_FIELD_OFFSET: u64 = 6 + 6 * 8;

/// A newc size field's bytes.
pub fn size_field(size: u32) -> [u8; 8] {
    let mut f = [0u8; 8];
    f.copy_from_slice(format!("{size:08x}").as_bytes());
    f
}

/// Mask of the file type bits in a mode.
pub const S_IFMT: u32 = 0o170000;

/// A newc archive being written to `W`.
pub struct Writer<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

/// One newc header's fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Header {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
    rdev_major: u32,
    rdev_minor: u32,
}

fn field(v: u64, what: &str, path: &[u8]) -> io::Result<u32> {
    u32::try_from(v).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} of {} is {v}, more than a newc cpio can hold (32 bits)",
                what,
                String::from_utf8_lossy(path)
            ),
        )
    })
}

impl<W: Write> Writer<W> {
    /// Start an archive.
    pub fn new(out: W) -> Self {
        Writer {
            out,
            next_ino: 1,
            written: 0,
        }
    }

    /// Start an archive whose inode numbers begin at `first_ino`: pieces
    /// written in parallel and concatenated need disjoint numbers, or the
    /// kernel would link unrelated files of two pieces.
    pub fn with_first_ino(out: W, first_ino: u32) -> Self {
        Writer {
            out,
            next_ino: first_ino.max(1),
            written: 0,
        }
    }

    /// Bytes written so far (uncompressed).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The underlying writer, e.g. to cut a compressed frame between
    /// entries (every entry ends 4-byte aligned).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Hand back the underlying writer without a trailer: a piece of an
    /// archive whose trailer another piece writes. The kernel reads
    /// concatenated pieces as one archive.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    fn header(&mut self, name: &[u8], h: &Header) -> io::Result<()> {
        let namesize = field(name.len() as u64 + 1, "name length", name)?;
        let mut buf = Vec::with_capacity(110 + name.len() + 4);
        buf.extend_from_slice(MAGIC);
        for v in [
            h.ino,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            h.mtime,
            h.size,
            0,
            0,
            h.rdev_major,
            h.rdev_minor,
            namesize,
            0,
        ] {
            buf.extend_from_slice(format!("{v:08x}").as_bytes());
        }
        buf.extend_from_slice(name);
        buf.push(0);
        self.put(&buf)?;
        self.pad()
    }

    fn base(&mut self, path: &[u8], kind: u32, meta: &Meta, nlink: u32) -> io::Result<Header> {
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1).max(1);
        Ok(Header {
            ino,
            mode: kind | (meta.mode & 0o7777),
            uid: field(meta.uid, "uid", path)?,
            gid: field(meta.gid, "gid", path)?,
            nlink,
            // Dates before 1970 cannot be expressed; clamp rather than fail.
            mtime: meta.mtime.clamp(0, i64::from(u32::MAX)) as u32,
            ..Header::default()
        })
    }

    /// Write the trailer and hand back the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        let h = Header {
            nlink: 1,
            ..Header::default()
        };
        self.header(TRAILER, &h)?;
        Ok(self.out)
    }
}

impl<W: Write> Sink for Writer<W> {
    fn dir(&mut self, path: &[u8], meta: &Meta) -> io::Result<()> {
        let h = self.base(path, S_IFDIR, meta, 2)?;
        self.header(path, &h)
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> io::Result<()> {
        let mut h = self.base(path, S_IFLNK, meta, 1)?;
        h.size = field(target.len() as u64, "symlink target length", path)?;
        self.header(path, &h)?;
        self.put(target)?;
        self.pad()
    }

    fn special(&mut self, path: &[u8], kind: Special, meta: &Meta) -> io::Result<()> {
        let (ty, major, minor) = match kind {
            Special::Char { major, minor } => (S_IFCHR, major, minor),
            Special::Block { major, minor } => (S_IFBLK, major, minor),
            Special::Fifo => (S_IFIFO, 0, 0),
        };
        let mut h = self.base(path, ty, meta, 1)?;
        h.rdev_major = major;
        h.rdev_minor = minor;
        self.header(path, &h)
    }

    fn file(
        &mut self,
        paths: &[Vec<u8>],
        meta: &Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let Some((first, rest)) = paths.split_first() else {
            return Ok(());
        };
        let nlink = field(paths.len() as u64, "link count", first)?;
        let mut h = self.base(first, S_IFREG, meta, nlink)?;
        h.size = field(size, "size", first)?;
        self.header(first, &h)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        self.written += copied;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ended after {copied} of {size} bytes",
                    String::from_utf8_lossy(first)
                ),
            ));
        }
        self.pad()?;
        for p in rest {
            let link = Header { size: 0, ..h };
            self.header(p, &link)?;
        }
        Ok(())
    }
}

/// One entry read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name as stored (no trailing NUL).
    pub name: Vec<u8>,
    /// Inode number.
    pub ino: u32,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time.
    pub mtime: u32,
    /// Device numbers for device nodes.
    pub rdev: (u32, u32),
    /// Contents (file data or symlink target).
    pub data: Vec<u8>,
}

/// Why an archive could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpioError {
    /// Not a newc header where one should be.
    #[error("bad cpio magic at offset {0} (not a newc archive, or corrupt)")]
    Magic(usize),
    /// A header field that is not hex.
    #[error("bad cpio header field at offset {0}")]
    Field(usize),
    /// The archive ends inside an entry or has no trailer.
    #[error("cpio archive truncated at offset {0}")]
    Truncated(usize),
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Read every entry up to `TRAILER!!!`. Concatenated archives (as the
/// kernel accepts them) are not followed: the first trailer ends the list.
pub fn read(data: &[u8]) -> Result<Vec<Entry>, CpioError> {
    read_first(data).map(|(entries, _)| entries)
}

/// [`read`], and the offset just after the first archive's trailer
/// (4-byte aligned): where a concatenated next archive, or its zero
/// padding, starts.
pub fn read_first(data: &[u8]) -> Result<(Vec<Entry>, usize), CpioError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    loop {
        let hdr = data.get(off..off + 110).ok_or(CpioError::Truncated(off))?;
        if &hdr[..6] != MAGIC {
            return Err(CpioError::Magic(off));
        }
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            let s = &hdr[6 + i * 8..14 + i * 8];
            let s = std::str::from_utf8(s).map_err(|_| CpioError::Field(off))?;
            *v = u32::from_str_radix(s, 16).map_err(|_| CpioError::Field(off))?;
        }
        let namesize = f[11] as usize;
        let size = f[6] as usize;
        let name_end = off + 110 + namesize;
        let name = data
            .get(off + 110..name_end)
            .ok_or(CpioError::Truncated(off))?;
        let name = name.strip_suffix(&[0]).unwrap_or(name).to_vec();
        let data_start = align4(name_end);
        let data_end = data_start
            .checked_add(size)
            .ok_or(CpioError::Truncated(off))?;
        let body = data
            .get(data_start..data_end)
            .ok_or(CpioError::Truncated(off))?;
        if name == TRAILER {
            return Ok((out, align4(data_end)));
        }
        out.push(Entry {
            name,
            ino: f[0],
            mode: f[1],
            uid: f[2],
            gid: f[3],
            nlink: f[4],
            mtime: f[5],
            rdev: (f[9], f[10]),
            data: body.to_vec(),
        });
        off = align4(data_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            uid: 1000,
            gid: 100,
            mtime: 1_700_000_000,
        }
    }

    #[test]
    fn a_size_filled_in_after_the_data() {
        // As a filesystem image written in place after its header.
        let mut w = Writer::new(Vec::new());
        w.dir(b"d", &meta(0o755)).unwrap();
        let at = (w.written() + SIZE_FIELD_OFFSET) as usize;
        w.file(&[b"d/img".to_vec()], &meta(0o400), 0, &mut io::empty())
            .unwrap();
        let mut out = w.into_inner();
        out.extend_from_slice(b"12345678");
        out[at..at + 8].copy_from_slice(&size_field(8));
        out.extend(Writer::new(Vec::new()).finish().unwrap());
        let len = out.len();
        out.extend_from_slice(b"\0\0\0\0(next archive)");
        let (entries, end) = read_first(&out).unwrap();
        assert_eq!(end, len);
        assert_eq!(entries[1].name, b"d/img");
        assert_eq!(entries[1].data, b"12345678");
    }

    #[test]
    fn round_trip_every_kind() {
        let mut w = Writer::new(Vec::new());
        w.dir(b"etc", &meta(0o755)).unwrap();
        w.symlink(b"etc/l", &[b'x'; 300], &meta(0o777)).unwrap();
        w.special(
            b"etc/tty",
            Special::Char { major: 5, minor: 0 },
            &meta(0o620),
        )
        .unwrap();
        w.special(
            b"etc/sda",
            Special::Block { major: 8, minor: 1 },
            &meta(0o660),
        )
        .unwrap();
        w.special(b"etc/p", Special::Fifo, &meta(0o644)).unwrap();
        let paths = vec![b"etc/a".to_vec(), b"etc/b".to_vec()];
        w.file(&paths, &meta(0o4755), 5, &mut &b"hello"[..])
            .unwrap();
        let before = w.written();
        let out = w.finish().unwrap();
        assert_eq!(out.len() as u64 - before, TRAILER_LEN);
        assert_eq!(out.len() % 4, 0);
        let e = read(&out).unwrap();
        assert_eq!(e.len(), 7);
        assert_eq!(e[0].mode, S_IFDIR | 0o755);
        assert_eq!(e[1].data.len(), 300);
        assert_eq!(e[2].rdev, (5, 0));
        assert_eq!(e[3].mode & S_IFMT, S_IFBLK);
        assert_eq!(e[4].mode & S_IFMT, S_IFIFO);
        assert_eq!(e[5].data, b"hello");
        assert_eq!(e[5].mode, S_IFREG | 0o4755);
        assert_eq!((e[5].nlink, e[6].nlink), (2, 2));
        assert_eq!(e[5].ino, e[6].ino);
        assert!(e[6].data.is_empty());
        assert_eq!(e[5].uid, 1000);
    }

    #[test]
    fn short_data_is_an_error() {
        let mut w = Writer::new(Vec::new());
        let err = w
            .file(&[b"f".to_vec()], &meta(0o644), 10, &mut &b"abc"[..])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn oversized_fields_are_refused() {
        let mut w = Writer::new(Vec::new());
        let m = Meta {
            uid: 1 << 33,
            ..meta(0o644)
        };
        let e = w.dir(b"d", &m).unwrap_err().to_string();
        assert!(e.contains("more than a newc cpio can hold"), "{e}");
    }

    #[test]
    fn truncated_and_garbage() {
        let mut w = Writer::new(Vec::new());
        w.dir(b"d", &meta(0o755)).unwrap();
        let out = w.finish().unwrap();
        assert!(matches!(
            read(&out[..out.len() - 8]),
            Err(CpioError::Truncated(_))
        ));
        assert!(matches!(
            read(b"garbage garbage"),
            Err(CpioError::Truncated(_))
        ));
        let mut bad = out.clone();
        bad[0] = b'x';
        assert_eq!(read(&bad), Err(CpioError::Magic(0)));
    }
}
