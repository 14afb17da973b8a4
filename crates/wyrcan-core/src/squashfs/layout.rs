//! The tables written by [`Writer::finish`]: inodes and directory listings
//! (children before their directory, so every entry's inode reference is
//! known when its listing is written), then fragments and ids.

use std::collections::btree_map;

use super::meta::{self, MetaWriter};
use super::*;

const T_DIR: u16 = 1;
const T_REG: u16 = 2;
const T_SYMLINK: u16 = 3;
const T_BLKDEV: u16 = 4;
const T_CHRDEV: u16 = 5;
const T_FIFO: u16 = 6;
const T_LDIR: u16 = 8;
const T_LREG: u16 = 9;

const NO_FRAGMENT: u32 = u32::MAX;
const NO_XATTR: u32 = u32::MAX;
/// Entries one directory header may announce (its count is stored - 1).
const DIR_COUNT: usize = 256;
/// Framed inode table bytes kept before writing them out.
const INODE_FLUSH: usize = 64 * 1024;

/// A directory's children still to write.
type Children<'a> = btree_map::Values<'a, Box<[u8]>, u32>;

/// Basic type of a node, as directory entries give it.
fn basic_type(kind: &Kind) -> u16 {
    match kind {
        Kind::Dir(_) => T_DIR,
        Kind::File(_) => T_REG,
        Kind::Symlink(_) => T_SYMLINK,
        Kind::Dev { block: true, .. } => T_BLKDEV,
        Kind::Dev { block: false, .. } => T_CHRDEV,
        Kind::Fifo => T_FIFO,
    }
}

struct Buf(Vec<u8>);

impl Buf {
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// The mode holds permission bits only, like mksquashfs writes it:
    /// the type is the inode's, and Linux 6.18 refuses an inode whose mode
    /// carries type bits.
    fn header(&mut self, ty: u16, attr: &Attr, ino: u32) -> &mut Self {
        self.u16(ty)
            .u16(attr.perm)
            .u16(attr.uid)
            .u16(attr.gid)
            .u32(attr.mtime)
            .u32(ino)
    }
}

fn too_big(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the squashfs {what} is over 4 GiB, more than the format can address"),
    )
}

/// Inode numbers: the root is 1 and each directory's children are
/// numbered together, so a listing's numbers are close and fit few
/// headers. A hard-link group takes its number where first met.
fn number(tree: &Tree) -> (Vec<u32>, u32) {
    let mut ino = vec![0u32; tree.nodes.len()];
    let mut file_ino = vec![0u32; tree.files.len()];
    ino[ROOT as usize] = 1;
    let mut next = 2u32;
    let mut stack = vec![ROOT];
    while let Some(d) = stack.pop() {
        let Kind::Dir(children) = &tree.nodes[d as usize].kind else {
            continue;
        };
        for &c in children.values() {
            let n = match tree.nodes[c as usize].kind {
                Kind::File(f) => {
                    let slot = &mut file_ino[f as usize];
                    if *slot == 0 {
                        *slot = next;
                        next += 1;
                    }
                    *slot
                }
                Kind::Dir(_) => {
                    stack.push(c);
                    next += 1;
                    next - 1
                }
                _ => {
                    next += 1;
                    next - 1
                }
            };
            ino[c as usize] = n;
        }
    }
    (ino, next - 1)
}

/// Writes the tables at the current offset; returns the superblock.
pub(super) fn write_tables<W: Write + Seek>(w: &mut Writer<W>) -> io::Result<Superblock> {
    let Writer {
        out,
        pos,
        compress,
        block_size,
        mkfs_time,
        tree,
        ids,
        fragments,
        scratch,
        ..
    } = w;
    let c: &mut dyn Compress = compress.as_mut();
    let (ino, inodes) = number(tree);

    let inode_table_start = *pos;
    let mut itab = MetaWriter::default();
    let mut dtab = MetaWriter::default();
    let mut refs = vec![u64::MAX; tree.nodes.len()];
    let mut file_ref = vec![u64::MAX; tree.files.len()];
    let mut buf = Buf(Vec::new());

    // Appends `buf` as one inode; returns its reference.
    let put_inode = |itab: &mut MetaWriter,
                     buf: &Buf,
                     c: &mut dyn Compress,
                     scratch: &mut Vec<u8>,
                     out: &mut W,
                     pos: &mut u64|
     -> io::Result<u64> {
        let (block, offset) = itab.pos();
        if block > u64::from(u32::MAX) {
            return Err(too_big("inode table"));
        }
        itab.push(&buf.0, c, scratch)?;
        if itab.ready() >= INODE_FLUSH {
            let done = itab.take();
            out.write_all(&done)?;
            *pos += done.len() as u64;
        }
        Ok(block << 16 | u64::from(offset))
    };

    let Kind::Dir(root_children) = &tree.nodes[ROOT as usize].kind else {
        unreachable!("the root is a directory")
    };
    let mut stack: Vec<(u32, Children<'_>)> = vec![(ROOT, root_children.values())];
    while let Some((d, iter)) = stack.last_mut() {
        let d = *d;
        if let Some(&child) = iter.next() {
            let node = &tree.nodes[child as usize];
            let n = ino[child as usize];
            buf.0.clear();
            match &node.kind {
                Kind::Dir(children) => {
                    stack.push((child, children.values()));
                    continue;
                }
                Kind::File(f) => {
                    let slot = &mut file_ref[*f as usize];
                    if *slot == u64::MAX {
                        let file = &tree.files[*f as usize];
                        file_inode(&mut buf, &node.attr, n, file);
                        *slot = put_inode(&mut itab, &buf, c, scratch, out, pos)?;
                    }
                    refs[child as usize] = *slot;
                    continue;
                }
                Kind::Symlink(target) => {
                    buf.header(T_SYMLINK, &node.attr, n)
                        .u32(1)
                        .u32(target.len() as u32);
                    buf.0.extend_from_slice(target);
                }
                Kind::Dev { block, rdev } => {
                    let ty = if *block { T_BLKDEV } else { T_CHRDEV };
                    buf.header(ty, &node.attr, n).u32(1).u32(*rdev);
                }
                Kind::Fifo => {
                    buf.header(T_FIFO, &node.attr, n).u32(1);
                }
            }
            refs[child as usize] = put_inode(&mut itab, &buf, c, scratch, out, pos)?;
            continue;
        }
        // Every child of `d` is written: its listing, then its inode.
        stack.pop();
        let parent = match stack.last() {
            Some(&(p, _)) => ino[p as usize],
            // mksquashfs's convention for the root's "..".
            None => inodes + 1,
        };
        let node = &tree.nodes[d as usize];
        let Kind::Dir(children) = &node.kind else {
            unreachable!("only directories are stacked")
        };
        let (lblock, loffset) = dtab.pos();
        let lblock = u32::try_from(lblock).map_err(|_| too_big("directory table"))?;
        let size = listing(&mut dtab, tree, children, &refs, &ino, c, scratch)?;
        let subdirs = children
            .values()
            .filter(|&&k| matches!(tree.nodes[k as usize].kind, Kind::Dir(_)))
            .count() as u32;
        // The kernel counts "." and ".." as 3 bytes of the listing.
        let file_size = size + 3;
        buf.0.clear();
        if let Ok(small) = u16::try_from(file_size) {
            buf.header(T_DIR, &node.attr, ino[d as usize])
                .u32(lblock)
                .u32(2 + subdirs)
                .u16(small)
                .u16(loffset)
                .u32(parent);
        } else {
            let file_size = u32::try_from(file_size).map_err(|_| too_big("directory listing"))?;
            buf.header(T_LDIR, &node.attr, ino[d as usize])
                .u32(2 + subdirs)
                .u32(file_size)
                .u32(lblock)
                .u32(parent)
                .u16(0)
                .u16(loffset)
                .u32(NO_XATTR);
        }
        refs[d as usize] = put_inode(&mut itab, &buf, c, scratch, out, pos)?;
    }

    itab.flush(c, scratch)?;
    let done = itab.take();
    out.write_all(&done)?;
    *pos += done.len() as u64;

    let directory_table_start = *pos;
    dtab.flush(c, scratch)?;
    if dtab.pos() == (0, 0) {
        // Only empty directories: the kernel wants the directory table to
        // start before the next table, so give it one unused byte.
        dtab.push(&[0], c, scratch)?;
        dtab.flush(c, scratch)?;
    }
    let done = dtab.take();
    out.write_all(&done)?;
    *pos += done.len() as u64;

    let mut fragment_table_start = *pos;
    if !fragments.is_empty() {
        let mut bytes = Buf(Vec::with_capacity(fragments.len() * 16));
        for f in fragments.iter() {
            bytes.u64(f.start).u32(f.word).u32(0);
        }
        let (framed, index_at) = meta::table(&bytes.0, *pos, c, scratch)?;
        out.write_all(&framed)?;
        *pos += framed.len() as u64;
        fragment_table_start = index_at;
    }

    let mut bytes = Buf(Vec::with_capacity(ids.list.len() * 4));
    for &id in &ids.list {
        bytes.u32(id);
    }
    let (framed, id_table_start) = meta::table(&bytes.0, *pos, c, scratch)?;
    out.write_all(&framed)?;
    *pos += framed.len() as u64;

    let mut flags = FLAG_NO_XATTRS;
    if fragments.is_empty() {
        flags |= FLAG_NO_FRAGMENTS;
    }
    if c.codec() == Codec::Lz4 {
        flags |= FLAG_COMP_OPTS;
    }
    Ok(Superblock {
        inodes,
        mkfs_time: *mkfs_time,
        block_size: *block_size,
        fragments: fragments.len() as u32,
        compression: c.codec().id(),
        block_log: block_size.trailing_zeros() as u16,
        flags,
        ids: ids.list.len() as u16,
        root_inode: refs[ROOT as usize],
        bytes_used: *pos,
        id_table_start,
        xattr_id_table_start: NO_TABLE,
        inode_table_start,
        directory_table_start,
        fragment_table_start,
        export_table_start: NO_TABLE,
    })
}

fn file_inode(buf: &mut Buf, attr: &Attr, n: u32, file: &FileInode) {
    let d = &file.data;
    // Without stored blocks the start is never read; 0 keeps the inode basic.
    let start = if d.stored == 0 { 0 } else { d.start };
    let (frag, frag_offset) = d.fragment.unwrap_or((NO_FRAGMENT, 0));
    let basic = file.nlink == 1 && d.sparse == 0;
    match (basic, u32::try_from(start), u32::try_from(d.size)) {
        (true, Ok(start), Ok(size)) => {
            buf.header(T_REG, attr, n)
                .u32(start)
                .u32(frag)
                .u32(frag_offset)
                .u32(size);
        }
        _ => {
            buf.header(T_LREG, attr, n)
                .u64(start)
                .u64(d.size)
                .u64(d.sparse)
                .u32(file.nlink)
                .u32(frag)
                .u32(frag_offset)
                .u32(NO_XATTR);
        }
    }
    for &word in &d.blocks {
        buf.u32(word);
    }
}

/// Writes one directory's listing; returns its length in bytes. A header
/// covers at most 256 entries whose inodes share one inode-table block and
/// whose numbers are within an i16 of the header's.
fn listing(
    dtab: &mut MetaWriter,
    tree: &Tree,
    children: &BTreeMap<Box<[u8]>, u32>,
    refs: &[u64],
    ino: &[u32],
    c: &mut dyn Compress,
    scratch: &mut Vec<u8>,
) -> io::Result<u64> {
    let entries: Vec<(&[u8], u32)> = children.iter().map(|(k, &v)| (&**k, v)).collect();
    let mut buf = Buf(Vec::new());
    let mut size = 0u64;
    let mut i = 0;
    while i < entries.len() {
        let first = entries[i].1 as usize;
        let block = refs[first] >> 16;
        let base = ino[first];
        let fits = |&(_, k): &(&[u8], u32)| {
            refs[k as usize] >> 16 == block
                && i16::try_from(i64::from(ino[k as usize]) - i64::from(base)).is_ok()
        };
        let mut j = i + 1;
        while j < entries.len() && j - i < DIR_COUNT && fits(&entries[j]) {
            j += 1;
        }
        buf.0.clear();
        buf.u32((j - i - 1) as u32).u32(block as u32).u32(base);
        for &(name, k) in &entries[i..j] {
            let k = k as usize;
            let delta = (i64::from(ino[k]) - i64::from(base)) as i16;
            buf.u16((refs[k] & 0xffff) as u16)
                .u16(delta as u16)
                .u16(basic_type(&tree.nodes[k].kind))
                .u16((name.len() - 1) as u16);
            buf.0.extend_from_slice(name);
        }
        dtab.push(&buf.0, c, scratch)?;
        size += buf.0.len() as u64;
        i = j;
    }
    Ok(size)
}
