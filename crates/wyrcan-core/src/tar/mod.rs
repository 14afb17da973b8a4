//! A streaming tar reader with the semantics of GNU tar, Go's
//! `archive/tar` and libarchive: v7, ustar, star, GNU (long names and
//! links, old sparse `S`, `7` as a regular file, volume labels skipped) and
//! PAX (local `x` and global `g` headers, sparse formats 0.0, 0.1 and 1.0,
//! `path`/`linkpath`/`size`/`uid`/`gid`/`mtime` overrides); numeric fields
//! in octal padded with spaces or NULs, or base-256; the size of entries
//! that carry no data ignored. Repeated extension headers before one
//! member: the last wins.
//!
//! It reads from any `Read` and never holds more than one extension header
//! (at most [`Limits::extension`] bytes) or one sparse map in memory. Names
//! are checked here: no NUL (the kernel's initramfs reader would cut the
//! name there), at most [`Limits::path`] bytes.

mod error;
mod header;
mod pax;

use std::io::{self, Read};

pub use error::{FormatError, TarError};
pub use header::{Header, Layout, BLOCK};

/// Sparse chunks: (offset in the file, length), in order.
pub type SparseMap = Vec<(u64, u64)>;
/// PAX records: (key, value), in order.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// What the reader refuses to hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest extension header (`L`, `K`, `x`, `g`) or sparse map.
    pub extension: u64,
    /// Longest name or link target (Linux's `PATH_MAX`).
    pub path: usize,
    /// Most chunks of one sparse file.
    pub sparse_chunks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            extension: 1 << 20,
            path: 4096,
            sparse_chunks: 1 << 16,
        }
    }
}

/// What a member is, from its typeflag (never from its mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file (`0`, NUL, `7`, sparse, and unknown types as GNU tar does).
    File,
    /// Hard link (`1`).
    Hardlink,
    /// Symbolic link (`2`).
    Symlink,
    /// Character device (`3`).
    Char,
    /// Block device (`4`).
    Block,
    /// Directory (`5`, GNU dumpdir `D`, or an old-style name ending in `/`).
    Dir,
    /// Named pipe (`6`).
    Fifo,
}

/// One member, extension headers applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Member number, 0-based, in stream order.
    pub index: u32,
    /// Name (raw bytes; may be absolute or hold `..`: cleaning is the caller's).
    pub path: Vec<u8>,
    /// Link target (hard and symbolic links).
    pub link: Vec<u8>,
    /// Type.
    pub kind: Kind,
    /// Mode bits (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Device numbers.
    pub major: u32,
    /// Device numbers.
    pub minor: u32,
    /// Size of the file's contents (holes of sparse files included).
    pub size: u64,
}

/// Extension state collected before a member.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Records,
}

/// Reads members one by one; [`Reader::data`] reads the current one's
/// contents (skipped automatically when not read).
pub struct Reader<R> {
    r: R,
    limits: Limits,
    next_index: u32,
    /// Stored data bytes of the current member not consumed yet.
    data_left: u64,
    /// Padding after them.
    pad_left: u64,
    /// The current member's sparse chunks (offset, length) and size.
    sparse: Option<Sparse>,
    globals: Records,
    done: bool,
    /// The current member's name, for messages.
    current: Vec<u8>,
}

/// Where the stored bytes of a sparse file go.
struct Sparse {
    chunks: SparseMap,
    size: u64,
}

fn fmt_err(entry: u32, path: &[u8], error: FormatError) -> TarError {
    TarError::Format {
        entry,
        path: String::from_utf8_lossy(path).into_owned(),
        error,
    }
}

fn padding(n: u64) -> u64 {
    (BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64
}

impl<R: Read> Reader<R> {
    /// A reader with the default limits.
    pub fn new(r: R) -> Self {
        Reader::with_limits(r, Limits::default())
    }

    /// A reader with these limits.
    pub fn with_limits(r: R, limits: Limits) -> Self {
        Reader {
            r,
            limits,
            next_index: 0,
            data_left: 0,
            pad_left: 0,
            sparse: None,
            globals: Vec::new(),
            done: false,
            current: Vec::new(),
        }
    }

    /// Read and drop `n` bytes; `Ok(false)` if the stream ended first.
    fn discard(&mut self, n: u64) -> io::Result<bool> {
        let got = io::copy(&mut (&mut self.r).take(n), &mut io::sink())?;
        Ok(got == n)
    }

    /// Skip whatever is left of the current member. Some writers (umoci
    /// 0.4's `insert`) stop right after the last file's bytes, with no
    /// padding and no end blocks: an end inside padding is the end.
    fn finish_member(&mut self) -> Result<(), TarError> {
        if self.data_left > 0 {
            let n = self.data_left;
            self.data_left = 0;
            if !self.discard(n)? {
                return Err(fmt_err(
                    self.next_index.saturating_sub(1),
                    &self.current,
                    FormatError::Truncated("the entry's data"),
                ));
            }
        }
        if self.pad_left > 0 {
            let n = self.pad_left;
            self.pad_left = 0;
            if !self.discard(n)? {
                self.done = true;
            }
        }
        self.sparse = None;
        Ok(())
    }

    /// One block; `None` at a clean end of the stream.
    fn block(&mut self) -> Result<Option<[u8; BLOCK]>, TarError> {
        let mut b = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.r.read(&mut b[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        match got {
            0 => Ok(None),
            BLOCK => Ok(Some(b)),
            _ => Err(fmt_err(
                self.next_index,
                b"",
                FormatError::Truncated("a header"),
            )),
        }
    }

    /// The whole data of an extension header, within the limit.
    fn extension(&mut self, h: &Header, what: &'static str) -> Result<Vec<u8>, TarError> {
        if h.size > self.limits.extension {
            return Err(fmt_err(
                self.next_index,
                &h.name,
                FormatError::TooBig {
                    what,
                    size: h.size,
                    limit: self.limits.extension,
                },
            ));
        }
        let mut data = Vec::with_capacity(h.size as usize);
        (&mut self.r).take(h.size).read_to_end(&mut data)?;
        if data.len() as u64 != h.size {
            return Err(fmt_err(
                self.next_index,
                &h.name,
                FormatError::Truncated(what),
            ));
        }
        let pad = padding(h.size);
        if !self.discard(pad)? {
            return Err(fmt_err(
                self.next_index,
                &h.name,
                FormatError::Truncated(what),
            ));
        }
        Ok(data)
    }

    /// The next member, or `None` at the end of the archive.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        self.finish_member()?;
        let mut pending = Pending::default();
        // Bounded by the stream: every pass consumes at least one block.
        loop {
            if self.done {
                return Ok(None);
            }
            let Some(block) = self.block()? else {
                self.done = true;
                return Ok(None);
            };
            if header::is_zero(&block) {
                // End of archive; whatever follows is not ours to read.
                self.done = true;
                return Ok(None);
            }
            let h = Header::parse(&block).map_err(|e| fmt_err(self.next_index, b"", e))?;
            match h.typeflag {
                b'L' => {
                    let d = self.extension(&h, "GNU long name")?;
                    pending.long_name = Some(header::cstr(&d).to_vec());
                }
                b'K' => {
                    let d = self.extension(&h, "GNU long link name")?;
                    pending.long_link = Some(header::cstr(&d).to_vec());
                }
                b'x' | b'X' => {
                    let d = self.extension(&h, "PAX header")?;
                    pending.pax =
                        pax::parse_records(&d).map_err(|e| fmt_err(self.next_index, &h.name, e))?;
                }
                b'g' => {
                    let d = self.extension(&h, "PAX global header")?;
                    let recs =
                        pax::parse_records(&d).map_err(|e| fmt_err(self.next_index, &h.name, e))?;
                    for (k, v) in recs {
                        // Readers disagree on a global name (GNU tar and
                        // Python rename every later member, Go and libarchive
                        // ignore or refuse it): refuse it rather than boot a
                        // tree that another tool would see otherwise.
                        if matches!(k.as_slice(), b"path" | b"linkpath" | b"size") {
                            return Err(fmt_err(
                                self.next_index,
                                &h.name,
                                FormatError::GlobalName(String::from_utf8_lossy(&k).into_owned()),
                            ));
                        }
                        self.globals.retain(|(gk, _)| *gk != k);
                        self.globals.push((k, v));
                    }
                }
                b'V' => {
                    let n = h.size + padding(h.size);
                    if !self.discard(n)? {
                        self.done = true;
                    }
                }
                b'M' | b'N' => {
                    return Err(fmt_err(
                        self.next_index,
                        &h.name,
                        FormatError::Unsupported(h.typeflag as char),
                    ))
                }
                _ => {
                    let index = self.next_index;
                    self.next_index += 1;
                    let entry = self.member(index, &h, &block, pending)?;
                    self.current.clone_from(&entry.path);
                    return Ok(Some(entry));
                }
            }
        }
    }

    fn member(
        &mut self,
        index: u32,
        h: &Header,
        block: &[u8; BLOCK],
        pending: Pending,
    ) -> Result<Entry, TarError> {
        let err = |path: &[u8], e| fmt_err(index, path, e);
        let mut path = pending.long_name.unwrap_or_else(|| h.name.clone());
        let mut link = pending.long_link.unwrap_or_else(|| h.linkname.clone());
        let mut uid = h.uid;
        let mut gid = h.gid;
        let mut mtime = h.mtime;
        let mut stored = h.size;
        let mut sparse_size: Option<u64> = None;
        let mut sparse_name: Option<Vec<u8>> = None;
        let mut sparse_map: Vec<u64> = Vec::new();
        let mut sparse_major: Option<u64> = None;
        // Globals first, then the member's own records: later ones win.
        let records = self.globals.iter().map(|(k, v)| (k, v, true));
        let records = records.chain(pending.pax.iter().map(|(k, v)| (k, v, false)));
        for (k, v, global) in records {
            let n = |key| pax::decimal(v, key);
            match k.as_slice() {
                b"path" if !global => path = v.clone(),
                b"linkpath" if !global => link = v.clone(),
                b"size" if !global => stored = n("size").map_err(|e| err(&path, e))?,
                b"uid" => uid = n("uid").map_err(|e| err(&path, e))?,
                b"gid" => gid = n("gid").map_err(|e| err(&path, e))?,
                b"mtime" => mtime = pax::seconds(v).map_err(|e| err(&path, e))?,
                b"GNU.sparse.size" | b"GNU.sparse.realsize" if !global => {
                    sparse_size = Some(n("GNU.sparse.size").map_err(|e| err(&path, e))?)
                }
                b"GNU.sparse.name" if !global => sparse_name = Some(v.clone()),
                b"GNU.sparse.major" if !global => {
                    sparse_major = Some(n("GNU.sparse.major").map_err(|e| err(&path, e))?)
                }
                b"GNU.sparse.offset" | b"GNU.sparse.numbytes" if !global => {
                    sparse_map.push(n("GNU.sparse.offset").map_err(|e| err(&path, e))?)
                }
                b"GNU.sparse.map" if !global => {
                    sparse_map = pax::number_list(v, "GNU.sparse.map").map_err(|e| err(&path, e))?
                }
                _ => {}
            }
        }
        if let Some(name) = sparse_name {
            path = name;
        }
        self.check_name(index, &path, "name")?;
        let old_dir = matches!(h.typeflag, b'0' | 0 | b'7') && path.ends_with(b"/");
        let kind = match h.typeflag {
            _ if old_dir => Kind::Dir,
            b'1' => Kind::Hardlink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' | b'D' => Kind::Dir,
            b'6' => Kind::Fifo,
            _ => Kind::File,
        };
        if matches!(kind, Kind::Hardlink | Kind::Symlink) {
            self.check_name(index, &link, "link target")?;
        }
        // Entries that carry no data: their size field is ignored, as Go,
        // GNU tar and Python do (a dumpdir's listing is skipped).
        let header_only = matches!(
            kind,
            Kind::Hardlink | Kind::Symlink | Kind::Char | Kind::Block | Kind::Fifo
        ) || (kind == Kind::Dir && h.typeflag != b'D');
        if header_only {
            stored = 0;
        }
        self.data_left = stored;
        self.pad_left = padding(stored);
        let mut size = stored;
        if kind == Kind::File {
            let chunks = if h.typeflag == b'S' {
                let (mut map, mut more, real) =
                    header::gnu_sparse_header(block).map_err(|e| err(&path, e))?;
                while more {
                    if map.len() > self.limits.sparse_chunks {
                        return Err(err(&path, FormatError::BadSparse("too many entries")));
                    }
                    let Some(ext) = self.block()? else {
                        return Err(err(&path, FormatError::Truncated("a sparse map")));
                    };
                    let (m, again) =
                        header::gnu_sparse_extension(&ext).map_err(|e| err(&path, e))?;
                    map.extend(m);
                    more = again;
                }
                Some((map, real))
            } else if sparse_major == Some(1) {
                let real = sparse_size
                    .ok_or_else(|| err(&path, FormatError::BadSparse("no GNU.sparse.realsize")))?;
                Some((self.sparse_1_0_map(index, &path)?, real))
            } else if !sparse_map.is_empty() || sparse_size.is_some() {
                let real = sparse_size
                    .ok_or_else(|| err(&path, FormatError::BadSparse("no GNU.sparse.size")))?;
                Some((pax::pairs(&sparse_map).map_err(|e| err(&path, e))?, real))
            } else {
                None
            };
            if let Some((chunks, real)) = chunks {
                check_sparse(&chunks, real, self.data_left, self.limits.sparse_chunks)
                    .map_err(|e| err(&path, e))?;
                size = real;
                self.sparse = Some(Sparse { chunks, size: real });
            }
        } else {
            size = 0;
        }
        Ok(Entry {
            index,
            path,
            link,
            kind,
            mode: (h.mode & 0o7777) as u32,
            uid,
            gid,
            mtime,
            major: h.devmajor,
            minor: h.devminor,
            size,
        })
    }

    /// The map of a sparse 1.0 file, at the start of its data.
    fn sparse_1_0_map(&mut self, index: u32, path: &[u8]) -> Result<SparseMap, TarError> {
        let mut buf = Vec::new();
        loop {
            if buf.len() as u64 >= self.limits.extension || buf.len() as u64 >= self.data_left {
                return Err(fmt_err(
                    index,
                    path,
                    FormatError::BadSparse("no complete map"),
                ));
            }
            let Some(b) = self.block()? else {
                return Err(fmt_err(index, path, FormatError::Truncated("a sparse map")));
            };
            buf.extend_from_slice(&b);
            if let Some((map, used)) = pax::sparse_map_1_0(&buf, self.limits.sparse_chunks)
                .map_err(|e| fmt_err(index, path, e))?
            {
                // The map took whole blocks, all of them read by now.
                debug_assert_eq!(used, buf.len());
                self.data_left = self.data_left.saturating_sub(used as u64);
                return Ok(map);
            }
        }
    }

    fn check_name(&self, index: u32, name: &[u8], what: &'static str) -> Result<(), TarError> {
        if name.contains(&0) {
            return Err(fmt_err(index, name, FormatError::Nul { what }));
        }
        if name.len() > self.limits.path {
            return Err(fmt_err(
                index,
                &name[..64],
                FormatError::PathTooLong {
                    what,
                    len: name.len(),
                    limit: self.limits.path,
                },
            ));
        }
        Ok(())
    }

    /// The current member's contents (holes of sparse files as zeros);
    /// reads at most [`Entry::size`] bytes.
    pub fn data(&mut self) -> Data<'_, R> {
        Data {
            reader: self,
            pos: 0,
            chunk: 0,
        }
    }
}

fn check_sparse(
    chunks: &[(u64, u64)],
    size: u64,
    stored: u64,
    max: usize,
) -> Result<(), FormatError> {
    if chunks.len() > max {
        return Err(FormatError::BadSparse("too many entries"));
    }
    let mut end = 0u64;
    let mut total = 0u64;
    for &(off, len) in chunks {
        let stop = off
            .checked_add(len)
            .ok_or(FormatError::BadSparse("an entry past 2^64"))?;
        if off < end || stop > size {
            return Err(FormatError::BadSparse(
                "overlapping or out-of-range entries",
            ));
        }
        end = stop;
        total += len;
    }
    if total != stored {
        return Err(FormatError::BadSparse(
            "a total length that differs from the stored data",
        ));
    }
    Ok(())
}

/// The contents of the current member.
pub struct Data<'a, R> {
    reader: &'a mut Reader<R>,
    /// Logical position (sparse files).
    pos: u64,
    /// Current chunk (sparse files).
    chunk: usize,
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rd = &mut *self.reader;
        let Some(sp) = &rd.sparse else {
            let want = (buf.len() as u64).min(rd.data_left) as usize;
            if want == 0 {
                return Ok(0);
            }
            let n = rd.r.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the layer ends inside a file's data",
                ));
            }
            rd.data_left -= n as u64;
            return Ok(n);
        };
        if self.pos >= sp.size || buf.is_empty() {
            return Ok(0);
        }
        // Skip chunks that are used up (bounded by their number).
        let (off, len) = loop {
            match sp.chunks.get(self.chunk).copied() {
                Some((off, len)) if off + len <= self.pos => self.chunk += 1,
                Some(c) => break c,
                None => break (sp.size, 0),
            }
        };
        // In a hole: zeros up to the next chunk (or the end).
        if self.pos < off {
            let n = ((off - self.pos) as usize).min(buf.len());
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        let want = (buf.len() as u64).min(off + len - self.pos) as usize;
        let n = rd.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the layer ends inside a sparse file's data",
            ));
        }
        rd.data_left -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
