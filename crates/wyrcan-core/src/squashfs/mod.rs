//! A squashfs 4.0 image writer, as the Linux kernel (`fs/squashfs`) and
//! `unsquashfs` read it, fed in the order container layers deliver files.
//!
//! File contents are written as they arrive (full blocks straight out,
//! tails packed into shared fragment blocks); the tree is only held as
//! names and fixed-size records, and the inode, directory, fragment and id
//! tables are written by [`Writer::finish`], when every inode's place is
//! known. Memory is proportional to the number of entries (plus one block
//! word per data block of each file), never to file sizes.
//!
//! Choices the format dictates or that we made:
//! - no xattrs and no export (NFS lookup) table: a booted root needs
//!   neither, and the kernel mounts an image without them;
//! - directory listings are sorted by name bytes (the kernel's lookup stops
//!   early relying on that order) and have no index (allowed; lookups in
//!   huge directories scan linearly);
//! - mtimes are 32-bit: earlier than 1970 is clamped to 0, after 2106 to
//!   `u32::MAX`, since squashfs has no way to say more;
//! - ids (uid and gid values) go through a table of at most 65535 entries
//!   (its count is a u16), and each must fit 32 bits: more is an error
//!   naming the path;
//! - device numbers use the kernel's `new_encode_dev` (12-bit major, 20-bit
//!   minor).
//!
//! Data can come from several threads: callers may compress blocks
//! themselves and hand them over with [`Writer::add_block`], as long as
//! each file's blocks arrive together.

mod layout;
mod meta;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::tree::{Meta, Sink, Special};

/// Bytes of the superblock at the start of every image.
pub const SUPERBLOCK_LEN: u64 = 96;
/// mksquashfs's default data block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 128 * 1024;

const MAGIC: u32 = 0x7371_7368;
/// Data block size word: the block is stored raw.
const BLOCK_RAW: u32 = 1 << 24;
/// Flags in the superblock.
const FLAG_NO_FRAGMENTS: u16 = 1 << 4;
const FLAG_NO_XATTRS: u16 = 1 << 9;
const FLAG_COMP_OPTS: u16 = 1 << 10;
/// Table start meaning "no such table".
const NO_TABLE: u64 = u64::MAX;
/// The kernel refuses symlinks longer than a page.
const MAX_SYMLINK: usize = 4096;
/// Name bytes a directory entry can hold (its size field is `len - 1`).
const MAX_NAME: usize = 256;
/// Distinct ids: the superblock counts them in a u16.
const MAX_IDS: usize = 65535;

/// Compression of data and metadata blocks, with squashfs's id for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zlib streams (RFC 1950, not gzip framing), id 1.
    Gzip,
    /// LZO1X, id 3.
    Lzo,
    /// xz streams with CRC32 or no check, id 4.
    Xz,
    /// Raw LZ4 blocks (the "legacy" format, no frame), id 5. The writer
    /// adds the compressor options block the kernel insists on for LZ4.
    Lz4,
    /// zstd frames, id 6.
    Zstd,
}

impl Codec {
    /// The superblock's compression id.
    pub fn id(self) -> u16 {
        match self {
            Codec::Gzip => 1,
            Codec::Lzo => 3,
            Codec::Xz => 4,
            Codec::Lz4 => 5,
            Codec::Zstd => 6,
        }
    }

    /// The codec of a superblock's compression id.
    pub fn from_id(id: u16) -> Option<Codec> {
        Some(match id {
            1 => Codec::Gzip,
            3 => Codec::Lzo,
            4 => Codec::Xz,
            5 => Codec::Lz4,
            6 => Codec::Zstd,
            _ => return None,
        })
    }
}

/// Compresses one block (metadata blocks of 8 KiB and fragment blocks).
/// The writer stores the block raw when the output is not smaller.
pub trait Compress: Send {
    /// Which codec this is, for the superblock.
    fn codec(&self) -> Codec;
    /// Appends the compressed form of `input` to `out` (passed empty).
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()>;
}

/// Where one regular file's bytes are in the image (built by
/// [`Writer::add_block`], [`Writer::add_sparse_block`], [`Writer::add_tail`]).
#[derive(Debug, Clone, Default)]
pub struct FileData {
    /// Image offset of the first stored block.
    start: u64,
    /// Bytes stored in blocks so far (the next block goes at start + this).
    stored: u64,
    /// One size word per block: stored length, bit 24 = raw, 0 = sparse.
    blocks: Vec<u32>,
    /// Fragment index and offset in it of the tail, if any.
    fragment: Option<(u32, u32)>,
    /// Uncompressed length.
    size: u64,
    /// Bytes of sparse (all-zero, unstored) blocks.
    sparse: u64,
    /// The last block was shorter than a block: nothing may follow.
    ended: bool,
    /// A sparse block was added out of order: [`Writer::file`] refuses it.
    misused: bool,
}

impl FileData {
    /// Uncompressed length so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// One piece of a file's bytes in a finished image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset from the image start of the stored block.
    pub offset: u64,
    /// Bytes stored there; 0 means a sparse block: `raw_len` zero bytes.
    pub stored_len: u32,
    /// The stored bytes need decompressing with the image's codec.
    pub compressed: bool,
    /// Length of the block once decompressed.
    pub raw_len: u32,
    /// For a fragment: offset and length of this file's tail inside the
    /// decompressed block.
    pub cut: Option<(u32, u32)>,
}

/// Why an entry cannot go into the image.
#[derive(Debug, thiserror::Error)]
pub enum SquashError {
    /// The path is already in the image.
    #[error("{path:?} is added twice to the squashfs image")]
    Exists {
        /// The path.
        path: String,
    },
    /// The parent is missing or is not a directory.
    #[error("the parent of {path:?} is not a directory already in the squashfs image (parents must come first)")]
    NoParent {
        /// The path.
        path: String,
    },
    /// An empty, `.`, `..` or too long component, or a NUL byte.
    #[error("{path:?} is not a relative path squashfs can hold (empty, `.` or `..` components, NUL bytes, or a name over 256 bytes)")]
    BadPath {
        /// The path.
        path: String,
    },
    /// A uid or gid over 32 bits.
    #[error("{what} {id} of {path:?} does not fit squashfs's 32-bit ids")]
    IdTooBig {
        /// "uid" or "gid".
        what: &'static str,
        /// The value.
        id: u64,
        /// The path.
        path: String,
    },
    /// More distinct ids than the id table can count.
    #[error("{path:?} brings the squashfs image to more than 65535 distinct uids and gids")]
    TooManyIds {
        /// The path.
        path: String,
    },
    /// A device number outside 12-bit major / 20-bit minor.
    #[error("device {major}:{minor} of {path:?} does not fit squashfs's device numbers (major < 4096, minor < 1048576)")]
    Device {
        /// The path.
        path: String,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A sparse block was added after the file's last block or tail.
    #[error("the data of {path:?} was built out of order (a block after its last block or tail)")]
    BadData {
        /// The path.
        path: String,
    },
    /// A symlink target the kernel would refuse.
    #[error("symlink {path:?} has a {len}-byte target; squashfs on Linux holds 1 to 4096 bytes")]
    SymlinkTarget {
        /// The path.
        path: String,
        /// Target length.
        len: usize,
    },
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// What every inode carries besides its type, already in squashfs terms.
#[derive(Debug, Clone, Copy, Default)]
struct Attr {
    /// Permission bits (0o7777).
    perm: u16,
    uid: u16,
    gid: u16,
    mtime: u32,
}

#[derive(Debug)]
enum Kind {
    Dir(BTreeMap<Box<[u8]>, u32>),
    /// Index into `files`.
    File(u32),
    Symlink(Box<[u8]>),
    Dev {
        block: bool,
        rdev: u32,
    },
    Fifo,
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    attr: Attr,
}

#[derive(Debug)]
struct FileInode {
    data: FileData,
    nlink: u32,
}

/// A fragment block as written.
#[derive(Debug, Clone, Copy)]
struct Fragment {
    start: u64,
    word: u32,
    raw_len: u32,
}

const ROOT: u32 = 0;

/// The tree: names and fixed-size records only.
#[derive(Debug)]
struct Tree {
    nodes: Vec<Node>,
    files: Vec<FileInode>,
    root_set: bool,
    /// The last parent looked up: entries come parents-first, so siblings
    /// follow each other and this saves walking the path again.
    cache: Option<(Vec<u8>, u32)>,
}

impl Tree {
    fn new() -> Self {
        Tree {
            nodes: vec![Node {
                kind: Kind::Dir(BTreeMap::new()),
                attr: Attr {
                    perm: 0o755,
                    ..Attr::default()
                },
            }],
            files: Vec::new(),
            root_set: false,
            cache: None,
        }
    }

    /// The node at a relative path, if there is one.
    fn lookup(&self, path: &[u8]) -> Option<u32> {
        if path == b"." {
            return Some(ROOT);
        }
        let mut at = ROOT;
        for name in path.split(|&c| c == b'/') {
            match &self.nodes[at as usize].kind {
                Kind::Dir(children) => at = *children.get(name)?,
                _ => return None,
            }
        }
        Some(at)
    }

    fn parent_dir(&mut self, parent: &[u8]) -> Option<u32> {
        if let Some((p, id)) = &self.cache {
            if p == parent {
                return Some(*id);
            }
        }
        let id = if parent.is_empty() {
            ROOT
        } else {
            self.lookup(parent)?
        };
        if !matches!(self.nodes[id as usize].kind, Kind::Dir(_)) {
            return None;
        }
        self.cache = Some((parent.to_vec(), id));
        Some(id)
    }

    /// Checks `path` can be added; returns its parent and name.
    fn place<'p>(&mut self, path: &'p [u8]) -> Result<(u32, &'p [u8]), SquashError> {
        if path == b"." {
            return Err(SquashError::Exists { path: lossy(path) });
        }
        let bad = |n: &[u8]| {
            n.is_empty() || n == b"." || n == b".." || n.len() > MAX_NAME || n.contains(&0)
        };
        let (parent, name) = match path.iter().rposition(|&c| c == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&path[..0], path),
        };
        let slash = parent.len() < path.len() - name.len();
        if bad(name) || (slash && parent.split(|&c| c == b'/').any(bad)) {
            return Err(SquashError::BadPath { path: lossy(path) });
        }
        let dir = self
            .parent_dir(parent)
            .ok_or_else(|| SquashError::NoParent { path: lossy(path) })?;
        let Kind::Dir(children) = &self.nodes[dir as usize].kind else {
            unreachable!("parent_dir returns directories")
        };
        if children.contains_key(name) {
            return Err(SquashError::Exists { path: lossy(path) });
        }
        Ok((dir, name))
    }

    fn insert(&mut self, dir: u32, name: &[u8], node: Node) -> u32 {
        let id = self.nodes.len() as u32;
        self.nodes.push(node);
        if let Kind::Dir(children) = &mut self.nodes[dir as usize].kind {
            children.insert(name.into(), id);
        }
        id
    }
}

/// Distinct uid/gid values, indexed by u16 in inodes.
#[derive(Debug, Default)]
struct Ids {
    list: Vec<u32>,
    index: HashMap<u32, u16>,
}

impl Ids {
    fn get(&mut self, id: u64, what: &'static str, path: &[u8]) -> Result<u16, SquashError> {
        let v = u32::try_from(id).map_err(|_| SquashError::IdTooBig {
            what,
            id,
            path: lossy(path),
        })?;
        if let Some(&i) = self.index.get(&v) {
            return Ok(i);
        }
        if self.list.len() >= MAX_IDS {
            return Err(SquashError::TooManyIds { path: lossy(path) });
        }
        let i = self.list.len() as u16;
        self.list.push(v);
        self.index.insert(v, i);
        Ok(i)
    }
}

/// A squashfs image being written to `W`.
pub struct Writer<W: Write + Seek> {
    out: W,
    /// Stream position of the image start.
    base: u64,
    /// Bytes of the image written so far.
    pos: u64,
    compress: Box<dyn Compress>,
    block_size: u32,
    mkfs_time: u32,
    tree: Tree,
    ids: Ids,
    fragments: Vec<Fragment>,
    /// Tails waiting for the next fragment block.
    frag_buf: Vec<u8>,
    /// Compressor output.
    scratch: Vec<u8>,
    /// One block read by [`Writer::write_data`].
    block: Vec<u8>,
}

/// A written image.
pub struct Finished<W> {
    /// The output, positioned at the end of the image.
    pub out: W,
    /// Image length including padding to 4 KiB.
    pub len: u64,
    /// The superblock as written.
    pub superblock: Superblock,
    tree: Tree,
    fragments: Vec<Fragment>,
    block_size: u32,
}

impl<W: Write + Seek> Writer<W> {
    /// `out` is positioned where the image starts (it may be inside a
    /// bigger file). Writes [`SUPERBLOCK_LEN`] zero bytes now; `finish`
    /// comes back to fill them.
    pub fn new(
        mut out: W,
        compress: Box<dyn Compress>,
        block_size: u32,
        mkfs_time: u32,
    ) -> io::Result<Self> {
        if !block_size.is_power_of_two() || !(4096..=1 << 20).contains(&block_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "squashfs block size {block_size} is not a power of two from 4 KiB to 1 MiB"
                ),
            ));
        }
        let base = out.stream_position()?;
        out.write_all(&[0; SUPERBLOCK_LEN as usize])?;
        let mut pos = SUPERBLOCK_LEN;
        if compress.codec() == Codec::Lz4 {
            // The kernel refuses LZ4 images without options; version 1 is
            // the "legacy" raw block format, flags 0 = not high compression.
            let mut opts = Vec::new();
            opts.extend_from_slice(&(8u16 | 0x8000).to_le_bytes());
            opts.extend_from_slice(&1u32.to_le_bytes());
            opts.extend_from_slice(&0u32.to_le_bytes());
            out.write_all(&opts)?;
            pos += opts.len() as u64;
        }
        // The kernel refuses an empty id table; the default root uses id 0.
        let mut ids = Ids::default();
        ids.list.push(0);
        ids.index.insert(0, 0);
        Ok(Writer {
            out,
            base,
            pos,
            compress,
            block_size,
            mkfs_time,
            tree: Tree::new(),
            ids,
            fragments: Vec::new(),
            frag_buf: Vec::new(),
            scratch: Vec::new(),
            block: Vec::new(),
        })
    }

    /// Data block size.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Bytes of the image written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Starts a file whose data begins at the current offset.
    pub fn begin_file(&mut self) -> FileData {
        FileData {
            start: self.pos,
            ..FileData::default()
        }
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn misuse(msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, msg)
    }

    /// One full block of a file (uncompressed length == block_size, except
    /// it may be the last, shorter block if the caller does not want a
    /// fragment). `stored` is what goes on disk; `compressed` says whether
    /// it is compressed. Blocks of one file must be added contiguously (no
    /// other file's blocks in between): the caller guarantees that.
    pub fn add_block(
        &mut self,
        f: &mut FileData,
        stored: &[u8],
        compressed: bool,
        raw_len: u32,
    ) -> io::Result<()> {
        self.check_more(f, raw_len)?;
        if stored.is_empty() || stored.len() > self.block_size as usize {
            return Err(Self::misuse(format!(
                "squashfs data block of {} stored bytes (must be 1 to the block size, {})",
                stored.len(),
                self.block_size
            )));
        }
        if f.stored == 0 {
            f.start = self.pos;
        } else if f.start + f.stored != self.pos {
            return Err(Self::misuse(
                "squashfs data blocks of one file were interleaved with other data".into(),
            ));
        }
        self.put(stored)?;
        f.stored += stored.len() as u64;
        let word = stored.len() as u32 | if compressed { 0 } else { BLOCK_RAW };
        f.blocks.push(word);
        self.end_block(f, raw_len);
        Ok(())
    }

    /// An all-zero block: size word 0, no bytes.
    pub fn add_sparse_block(&mut self, f: &mut FileData, raw_len: u32) {
        if self.check_more(f, raw_len).is_err() {
            f.misused = true;
            return;
        }
        f.blocks.push(0);
        f.sparse += u64::from(raw_len);
        self.end_block(f, raw_len);
    }

    fn check_more(&self, f: &FileData, raw_len: u32) -> io::Result<()> {
        if f.ended || f.fragment.is_some() {
            return Err(Self::misuse(
                "squashfs data block added after a file's short last block or tail".into(),
            ));
        }
        if raw_len == 0 || raw_len > self.block_size {
            return Err(Self::misuse(format!(
                "squashfs data block of {raw_len} bytes (must be 1 to the block size, {})",
                self.block_size
            )));
        }
        Ok(())
    }

    fn end_block(&self, f: &mut FileData, raw_len: u32) {
        f.size += u64::from(raw_len);
        f.ended = raw_len < self.block_size;
    }

    /// The tail (< block_size bytes) goes into the shared fragment packer;
    /// a full fragment block is compressed and written at the current
    /// offset, so call this only after the file's last block or before its
    /// first.
    pub fn add_tail(&mut self, f: &mut FileData, tail: &[u8]) -> io::Result<()> {
        if tail.is_empty() {
            return Ok(());
        }
        if f.ended || f.fragment.is_some() || tail.len() >= self.block_size as usize {
            return Err(Self::misuse(format!(
                "squashfs tail of {} bytes after a short block or tail, or not shorter than a block",
                tail.len()
            )));
        }
        if self.frag_buf.len() + tail.len() > self.block_size as usize {
            self.flush_fragment()?;
        }
        f.fragment = Some((self.fragments.len() as u32, self.frag_buf.len() as u32));
        self.frag_buf.extend_from_slice(tail);
        f.size += tail.len() as u64;
        f.ended = true;
        Ok(())
    }

    fn flush_fragment(&mut self) -> io::Result<()> {
        if self.frag_buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.frag_buf);
        let start = self.pos;
        let word = self.write_compressed(&data)?;
        self.fragments.push(Fragment {
            start,
            word,
            raw_len: data.len() as u32,
        });
        self.frag_buf = data;
        self.frag_buf.clear();
        Ok(())
    }

    /// Compresses and writes one data block; returns its size word.
    fn write_compressed(&mut self, data: &[u8]) -> io::Result<u32> {
        let mut c = std::mem::take(&mut self.scratch);
        c.clear();
        let r = self.compress.compress(data, &mut c);
        let word = match r {
            Ok(()) if !c.is_empty() && c.len() < data.len() => {
                self.put(&c).map(|()| c.len() as u32)
            }
            Ok(()) => self.put(data).map(|()| data.len() as u32 | BLOCK_RAW),
            Err(e) => Err(e),
        };
        self.scratch = c;
        word
    }

    /// Convenience single-thread path: reads exactly `size` bytes,
    /// compresses full blocks with the writer's compressor (all-zero
    /// blocks become sparse), the tail into a fragment.
    pub fn write_data(&mut self, size: u64, data: &mut dyn Read) -> io::Result<FileData> {
        let mut f = self.begin_file();
        let bs = u64::from(self.block_size);
        let mut block = std::mem::take(&mut self.block);
        block.resize(self.block_size as usize, 0);
        let mut left = size;
        let result = (|| {
            while left > 0 {
                let n = left.min(bs) as usize;
                let buf = &mut block[..n];
                read_exact(data, buf, size - left, size)?;
                left -= n as u64;
                if n < bs as usize {
                    self.add_tail(&mut f, buf)?;
                } else if buf.iter().all(|&b| b == 0) {
                    self.add_sparse_block(&mut f, n as u32);
                } else {
                    let word = self.write_compressed(buf)?;
                    if f.stored == 0 {
                        f.start = self.pos - u64::from(word & !BLOCK_RAW);
                    }
                    f.stored += u64::from(word & !BLOCK_RAW);
                    f.blocks.push(word);
                    self.end_block(&mut f, n as u32);
                }
            }
            Ok(())
        })();
        self.block = block;
        result.map(|()| f)
    }

    /// A directory. `.` is the root (default 0755 root:root, mtime 0).
    pub fn dir(&mut self, path: &[u8], meta: &Meta) -> Result<(), SquashError> {
        let attr = self.attr(path, meta)?;
        if path == b"." {
            if self.tree.root_set {
                return Err(SquashError::Exists { path: lossy(path) });
            }
            self.tree.root_set = true;
            self.tree.nodes[ROOT as usize].attr = attr;
            return Ok(());
        }
        let (dir, name) = self.tree.place(path)?;
        let node = Node {
            kind: Kind::Dir(BTreeMap::new()),
            attr,
        };
        self.tree.insert(dir, name, node);
        Ok(())
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> Result<(), SquashError> {
        let attr = self.attr(path, meta)?;
        if target.is_empty() || target.len() > MAX_SYMLINK {
            return Err(SquashError::SymlinkTarget {
                path: lossy(path),
                len: target.len(),
            });
        }
        let (dir, name) = self.tree.place(path)?;
        let node = Node {
            kind: Kind::Symlink(target.into()),
            attr,
        };
        self.tree.insert(dir, name, node);
        Ok(())
    }

    /// A device node or fifo.
    pub fn special(&mut self, path: &[u8], kind: Special, meta: &Meta) -> Result<(), SquashError> {
        let attr = self.attr(path, meta)?;
        let kind = match kind {
            Special::Fifo => Kind::Fifo,
            Special::Char { major, minor } | Special::Block { major, minor } => {
                if major > 0xfff || minor > 0xf_ffff {
                    return Err(SquashError::Device {
                        path: lossy(path),
                        major,
                        minor,
                    });
                }
                // The kernel's new_encode_dev.
                let rdev = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
                Kind::Dev {
                    block: matches!(kind, Special::Block { .. }),
                    rdev,
                }
            }
        };
        let (dir, name) = self.tree.place(path)?;
        self.tree.insert(dir, name, Node { kind, attr });
        Ok(())
    }

    /// One inode under every path in `paths` (hard links; nlink =
    /// paths.len()). All paths are checked before any is added.
    pub fn file(
        &mut self,
        paths: &[Vec<u8>],
        meta: &Meta,
        data: FileData,
    ) -> Result<(), SquashError> {
        let Some(first) = paths.first() else {
            return Ok(());
        };
        if data.misused {
            return Err(SquashError::BadData { path: lossy(first) });
        }
        let attr = self.attr(first, meta)?;
        let mut places = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let (dir, name) = self.tree.place(p)?;
            if paths[..i].contains(p) {
                return Err(SquashError::Exists { path: lossy(p) });
            }
            places.push((dir, name));
        }
        let idx = self.tree.files.len() as u32;
        self.tree.files.push(FileInode {
            data,
            nlink: paths.len() as u32,
        });
        for (dir, name) in places {
            let node = Node {
                kind: Kind::File(idx),
                attr,
            };
            self.tree.insert(dir, name, node);
        }
        Ok(())
    }

    fn attr(&mut self, path: &[u8], meta: &Meta) -> Result<Attr, SquashError> {
        Ok(Attr {
            perm: (meta.mode & 0o7777) as u16,
            uid: self.ids.get(meta.uid, "uid", path)?,
            gid: self.ids.get(meta.gid, "gid", path)?,
            mtime: meta.mtime.clamp(0, i64::from(u32::MAX)) as u32,
        })
    }

    /// Flushes the last fragment, writes the inode, directory, fragment
    /// and id tables (no export table), pads the image to a multiple of
    /// 4096, and fills in the superblock. Leaves `out` at the end of the
    /// image.
    pub fn finish(mut self) -> io::Result<Finished<W>> {
        self.flush_fragment()?;
        let sb = layout::write_tables(&mut self)?;
        let pad = (4096 - self.pos % 4096) % 4096;
        self.put(&vec![0; pad as usize])?;
        let len = self.pos;
        self.out.seek(SeekFrom::Start(self.base))?;
        self.out.write_all(&sb.encode())?;
        self.out.seek(SeekFrom::Start(self.base + len))?;
        Ok(Finished {
            out: self.out,
            len,
            superblock: sb,
            tree: self.tree,
            fragments: self.fragments,
            block_size: self.block_size,
        })
    }
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8], done: u64, size: u64) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "file data ended after {} of {size} bytes",
                        done + got as u64
                    ),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<W> Finished<W> {
    /// Where the bytes of the file at `path` (exactly as given to
    /// [`Writer::file`]) are, in order, so a caller can read it back out
    /// of the image.
    pub fn extents(&self, path: &[u8]) -> Option<Vec<Extent>> {
        let id = self.tree.lookup(path)?;
        let Kind::File(f) = self.tree.nodes[id as usize].kind else {
            return None;
        };
        let data = &self.tree.files[f as usize].data;
        let bs = u64::from(self.block_size);
        let mut out = Vec::with_capacity(data.blocks.len() + 1);
        let mut at = data.start;
        let mut left = data.size;
        for &word in &data.blocks {
            let raw_len = left.min(bs) as u32;
            left -= u64::from(raw_len);
            let stored_len = word & !BLOCK_RAW;
            out.push(Extent {
                offset: at,
                stored_len,
                compressed: word != 0 && word & BLOCK_RAW == 0,
                raw_len,
                cut: None,
            });
            at += u64::from(stored_len);
        }
        if let Some((idx, offset)) = data.fragment {
            let frag = self.fragments.get(idx as usize)?;
            out.push(Extent {
                offset: frag.start,
                stored_len: frag.word & !BLOCK_RAW,
                compressed: frag.word & BLOCK_RAW == 0,
                raw_len: frag.raw_len,
                cut: Some((offset, left as u32)),
            });
        }
        Some(out)
    }
}

fn sink_err(e: SquashError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<W: Write + Seek> Sink for Writer<W> {
    fn dir(&mut self, path: &[u8], meta: &Meta) -> io::Result<()> {
        Writer::dir(self, path, meta).map_err(sink_err)
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> io::Result<()> {
        Writer::symlink(self, path, target, meta).map_err(sink_err)
    }

    fn special(&mut self, path: &[u8], kind: Special, meta: &Meta) -> io::Result<()> {
        Writer::special(self, path, kind, meta).map_err(sink_err)
    }

    fn file(
        &mut self,
        paths: &[Vec<u8>],
        meta: &Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let Some(first) = paths.first() else {
            return Ok(());
        };
        let f = self.write_data(size, data).map_err(|e| {
            io::Error::new(e.kind(), format!("{}: {e}", String::from_utf8_lossy(first)))
        })?;
        Writer::file(self, paths, meta, f).map_err(sink_err)
    }
}

/// The 96-byte superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Superblock {
    /// Number of inodes.
    pub inodes: u32,
    /// Creation time.
    pub mkfs_time: u32,
    /// Data block size.
    pub block_size: u32,
    /// Number of fragment blocks.
    pub fragments: u32,
    /// Compression id ([`Codec::id`]).
    pub compression: u16,
    /// log2 of the block size.
    pub block_log: u16,
    /// Feature flags.
    pub flags: u16,
    /// Number of distinct ids.
    pub ids: u16,
    /// Reference of the root directory's inode.
    pub root_inode: u64,
    /// Image bytes without the padding.
    pub bytes_used: u64,
    /// Offset of the id table's index.
    pub id_table_start: u64,
    /// Offset of the xattr id table, `u64::MAX` for none.
    pub xattr_id_table_start: u64,
    /// Offset of the inode table.
    pub inode_table_start: u64,
    /// Offset of the directory table.
    pub directory_table_start: u64,
    /// Offset of the fragment table's index.
    pub fragment_table_start: u64,
    /// Offset of the export table's index, `u64::MAX` for none.
    pub export_table_start: u64,
}

impl Superblock {
    /// On-disk form.
    pub fn encode(&self) -> [u8; SUPERBLOCK_LEN as usize] {
        let mut b = Vec::with_capacity(SUPERBLOCK_LEN as usize);
        for v in [
            MAGIC,
            self.inodes,
            self.mkfs_time,
            self.block_size,
            self.fragments,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.compression, self.block_log, self.flags, self.ids, 4, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [
            self.root_inode,
            self.bytes_used,
            self.id_table_start,
            self.xattr_id_table_start,
            self.inode_table_start,
            self.directory_table_start,
            self.fragment_table_start,
            self.export_table_start,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.try_into().expect("96 bytes")
    }

    /// Reads a squashfs 4.0 superblock; `None` if `b` is not one.
    pub fn parse(b: &[u8]) -> Option<Superblock> {
        let b = b.get(..SUPERBLOCK_LEN as usize)?;
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        if u32_at(0) != MAGIC || u16_at(28) != 4 || u16_at(30) != 0 {
            return None;
        }
        Some(Superblock {
            inodes: u32_at(4),
            mkfs_time: u32_at(8),
            block_size: u32_at(12),
            fragments: u32_at(16),
            compression: u16_at(20),
            block_log: u16_at(22),
            flags: u16_at(24),
            ids: u16_at(26),
            root_inode: u64_at(32),
            bytes_used: u64_at(40),
            id_table_start: u64_at(48),
            xattr_id_table_start: u64_at(56),
            inode_table_start: u64_at(64),
            directory_table_start: u64_at(72),
            fragment_table_start: u64_at(80),
            export_table_start: u64_at(88),
        })
    }
}
