use std::collections::HashMap;
use std::io::Cursor;

use super::*;

/// Never shrinks anything, so every block is stored raw and the image can
/// be read without a decompressor.
struct Store;
impl Compress for Store {
    fn codec(&self) -> Codec {
        Codec::Zstd
    }
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(input);
        Ok(())
    }
}

/// "Compresses" to one byte: for framing tests only.
struct Tiny;
impl Compress for Tiny {
    fn codec(&self) -> Codec {
        Codec::Lz4
    }
    fn compress(&mut self, _: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.push(0xAB);
        Ok(())
    }
}

const BS: u32 = 4096;

fn m(mode: u32, uid: u64, mtime: i64) -> Meta {
    Meta {
        mode,
        uid,
        gid: uid,
        mtime,
    }
}

fn writer() -> Writer<Cursor<Vec<u8>>> {
    Writer::new(Cursor::new(Vec::new()), Box::new(Store), BS, 7).unwrap()
}

fn add_file(w: &mut Writer<Cursor<Vec<u8>>>, paths: &[&str], data: &[u8]) {
    let f = w.write_data(data.len() as u64, &mut &data[..]).unwrap();
    let paths: Vec<Vec<u8>> = paths.iter().map(|p| p.as_bytes().to_vec()).collect();
    w.file(&paths, &m(0o644, 0, 1), f).unwrap();
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// A metadata table, uncompressed, with where each block starts in it.
struct Table {
    bytes: Vec<u8>,
    blocks: HashMap<u64, usize>,
}

fn table(img: &[u8], start: u64, end: u64) -> Table {
    let mut t = Table {
        bytes: Vec::new(),
        blocks: HashMap::new(),
    };
    let mut at = start as usize;
    while at < end as usize {
        let h = u16_at(img, at);
        assert!(h & 0x8000 != 0, "Store keeps metadata raw");
        let len = (h & 0x7fff) as usize;
        assert!(len > 0 && len <= 8192);
        t.blocks.insert(at as u64 - start, t.bytes.len());
        t.bytes.extend_from_slice(&img[at + 2..at + 2 + len]);
        at += 2 + len;
    }
    assert_eq!(at as u64, end);
    t
}

#[derive(Debug, Clone)]
struct Inode {
    ty: u16,
    mode: u16,
    uid: u16,
    mtime: u32,
    number: u32,
    /// Type-specific fields, in order, as u64.
    fields: Vec<u64>,
    blocks: Vec<u32>,
    target: Vec<u8>,
}

struct Image {
    img: Vec<u8>,
    sb: Superblock,
    inodes: Table,
    dirs: Table,
}

#[derive(Debug, Clone)]
struct DirEntry {
    name: Vec<u8>,
    ty: u16,
    reference: u64,
    number: u32,
    /// Index of the header it came under.
    header: usize,
}

impl Image {
    fn open(img: Vec<u8>) -> Image {
        let sb = Superblock::parse(&img).expect("superblock");
        let inodes = table(&img, sb.inode_table_start, sb.directory_table_start);
        let dir_end = if sb.fragments > 0 {
            u64_at(&img, sb.fragment_table_start as usize)
        } else {
            u64_at(&img, sb.id_table_start as usize)
        };
        let dirs = table(&img, sb.directory_table_start, dir_end);
        Image {
            img,
            sb,
            inodes,
            dirs,
        }
    }

    fn inode(&self, reference: u64) -> Inode {
        let b = &self.inodes.bytes;
        let o = self.inodes.blocks[&(reference >> 16)] + (reference & 0xffff) as usize;
        let ty = u16_at(b, o);
        let mut i = Inode {
            ty,
            mode: u16_at(b, o + 2),
            uid: u16_at(b, o + 4),
            mtime: u32_at(b, o + 8),
            number: u32_at(b, o + 12),
            fields: Vec::new(),
            blocks: Vec::new(),
            target: Vec::new(),
        };
        let o = o + 16;
        let sizes: &[usize] = match ty {
            1 => &[4, 4, 2, 2, 4],
            2 => &[4, 4, 4, 4],
            3 => &[4, 4],
            4 | 5 => &[4, 4],
            6 => &[4],
            8 => &[4, 4, 4, 4, 2, 2, 4],
            9 => &[8, 8, 8, 4, 4, 4, 4],
            _ => panic!("inode type {ty}"),
        };
        let mut at = o;
        for &s in sizes {
            i.fields.push(match s {
                2 => u64::from(u16_at(b, at)),
                4 => u64::from(u32_at(b, at)),
                _ => u64_at(b, at),
            });
            at += s;
        }
        match ty {
            2 | 9 => {
                let (size, frag) = if ty == 2 {
                    (i.fields[3], i.fields[1])
                } else {
                    (i.fields[1], i.fields[4])
                };
                let bs = u64::from(self.sb.block_size);
                let n = if frag == u64::from(u32::MAX) {
                    size.div_ceil(bs)
                } else {
                    size / bs
                };
                for k in 0..n as usize {
                    i.blocks.push(u32_at(b, at + 4 * k));
                }
            }
            3 => i.target = b[at..at + i.fields[1] as usize].to_vec(),
            _ => {}
        }
        i
    }

    /// (listing start block, offset, file_size) of a directory inode.
    fn listing(&self, dir: &Inode) -> Vec<DirEntry> {
        let (block, offset, size) = match dir.ty {
            1 => (dir.fields[0], dir.fields[3], dir.fields[2]),
            8 => (dir.fields[2], dir.fields[5], dir.fields[1]),
            t => panic!("not a directory: {t}"),
        };
        let b = &self.dirs.bytes;
        let mut at = self.dirs.blocks.get(&block).copied().unwrap_or(b.len()) + offset as usize;
        let end = at + size as usize - 3;
        let mut out = Vec::new();
        let mut header = 0;
        while at < end {
            let count = u32_at(b, at) + 1;
            let start = u64::from(u32_at(b, at + 4));
            let base = u32_at(b, at + 8);
            assert!(count <= 256);
            at += 12;
            for _ in 0..count {
                let off = u16_at(b, at);
                let delta = u16_at(b, at + 2) as i16;
                let ty = u16_at(b, at + 4);
                let len = u16_at(b, at + 6) as usize + 1;
                out.push(DirEntry {
                    name: b[at + 8..at + 8 + len].to_vec(),
                    ty,
                    reference: start << 16 | u64::from(off),
                    number: (i64::from(base) + i64::from(delta)) as u32,
                    header,
                });
                at += 8 + len;
            }
            header += 1;
        }
        assert_eq!(at, end);
        out
    }

    /// Every path with its inode, checking on the way that entries are
    /// sorted and agree with the inodes they point to.
    fn walk(&self) -> HashMap<Vec<u8>, (DirEntry, Inode)> {
        let root = self.inode(self.sb.root_inode);
        let mut out = HashMap::new();
        let mut stack = vec![(Vec::new(), root)];
        while let Some((path, dir)) = stack.pop() {
            let entries = self.listing(&dir);
            for pair in entries.windows(2) {
                assert!(pair[0].name < pair[1].name, "sorted");
            }
            for e in entries {
                let inode = self.inode(e.reference);
                assert_eq!(inode.number, e.number, "{:?}", e.name);
                assert_eq!(e.ty, if inode.ty > 7 { inode.ty - 7 } else { inode.ty });
                let mut p = path.clone();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(&e.name);
                if e.ty == 1 {
                    stack.push((p.clone(), inode.clone()));
                }
                out.insert(p, (e, inode));
            }
        }
        out
    }

    /// A file's bytes, from its inode (raw blocks only).
    fn read(&self, i: &Inode) -> Vec<u8> {
        let (start, size, frag, frag_off) = if i.ty == 2 {
            (i.fields[0], i.fields[3], i.fields[1], i.fields[2])
        } else {
            (i.fields[0], i.fields[1], i.fields[4], i.fields[5])
        };
        let bs = self.sb.block_size as usize;
        let mut out = Vec::new();
        let mut at = start as usize;
        for &w in &i.blocks {
            let n = (size as usize - out.len()).min(bs);
            if w == 0 {
                out.extend(std::iter::repeat_n(0, n));
            } else {
                assert!(w & BLOCK_RAW != 0);
                let len = (w & !BLOCK_RAW) as usize;
                out.extend_from_slice(&self.img[at..at + len]);
                at += len;
            }
        }
        if frag != u64::from(u32::MAX) {
            let index = u64_at(&self.img, self.sb.fragment_table_start as usize);
            let frags = table(&self.img, index, self.sb.fragment_table_start);
            let e = &frags.bytes[frag as usize * 16..];
            let fstart = u64_at(e, 0) as usize;
            let word = u32_at(e, 8);
            assert!(word & BLOCK_RAW != 0);
            let tail = size as usize - out.len();
            let o = fstart + frag_off as usize;
            out.extend_from_slice(&self.img[o..o + tail]);
        }
        out
    }

    fn ids(&self) -> Vec<u32> {
        let index = u64_at(&self.img, self.sb.id_table_start as usize);
        let t = table(&self.img, index, self.sb.id_table_start);
        t.bytes.chunks(4).map(|c| u32_at(c, 0)).collect()
    }
}

fn finish(w: Writer<Cursor<Vec<u8>>>) -> Image {
    let done = w.finish().unwrap();
    assert_eq!(done.len % 4096, 0);
    let img = done.out.into_inner();
    assert_eq!(img.len() as u64, done.len);
    Image::open(img)
}

#[test]
fn superblock_of_an_empty_image() {
    let img = finish(writer());
    let sb = img.sb;
    assert_eq!(&img.img[..4], b"hsqs");
    assert_eq!(u16_at(&img.img, 28), 4);
    assert_eq!(u16_at(&img.img, 30), 0);
    assert_eq!(sb.inodes, 1);
    assert_eq!(sb.mkfs_time, 7);
    assert_eq!((sb.block_size, sb.block_log), (BS, 12));
    assert_eq!(sb.compression, 6);
    assert_eq!(sb.flags, FLAG_NO_XATTRS | FLAG_NO_FRAGMENTS);
    assert_eq!(sb.fragments, 0);
    assert_eq!(sb.ids, 1);
    assert_eq!(sb.xattr_id_table_start, u64::MAX);
    assert_eq!(sb.export_table_start, u64::MAX);
    assert!(sb.inode_table_start == SUPERBLOCK_LEN);
    assert!(sb.inode_table_start < sb.directory_table_start);
    assert!(sb.directory_table_start < sb.id_table_start);
    // The id index is the last thing before the padding.
    assert_eq!(sb.bytes_used, sb.id_table_start + 8);
    assert!(sb.bytes_used <= img.img.len() as u64);
    let root = img.inode(sb.root_inode);
    assert_eq!(root.ty, 1);
    assert_eq!(root.mode, 0o755);
    // nlink 2, listing size 3, parent = inodes + 1.
    assert_eq!(&root.fields[1..3], &[2, 3]);
    assert_eq!(root.fields[4], 2);
    assert_eq!(img.ids(), vec![0]);
    assert!(img.walk().is_empty());
}

#[test]
fn block_size_must_be_a_power_of_two_in_range() {
    for bs in [0, 2048, 5000, 2 << 20] {
        assert!(Writer::new(Cursor::new(Vec::new()), Box::new(Store), bs, 0).is_err());
    }
    for bs in [4096, DEFAULT_BLOCK_SIZE, 1 << 20] {
        let w = Writer::new(Cursor::new(Vec::new()), Box::new(Store), bs, 0).unwrap();
        assert_eq!(
            w.finish().unwrap().superblock.block_log,
            bs.trailing_zeros() as u16
        );
    }
}

#[test]
fn metadata_blocks_are_framed() {
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    meta::frame(&[1, 2, 3], &mut Store, &mut scratch, &mut out).unwrap();
    assert_eq!(out, [3, 0x80, 1, 2, 3]);
    out.clear();
    meta::frame(&[1, 2, 3], &mut Tiny, &mut scratch, &mut out).unwrap();
    assert_eq!(out, [1, 0, 0xAB]);

    let mut mw = meta::MetaWriter::default();
    mw.push(&vec![9; 10_000], &mut Store, &mut scratch).unwrap();
    assert_eq!(mw.pos(), (8194, 10_000 - 8192));
    mw.flush(&mut Store, &mut scratch).unwrap();
    let all = mw.take();
    assert_eq!(all.len(), 2 + 8192 + 2 + 1808);
    assert_eq!(u16_at(&all, 0), 0x8000 | 8192);
    assert_eq!(u16_at(&all, 8194), 0x8000 | 1808);
    assert_eq!(mw.pos(), (all.len() as u64, 0));
}

#[test]
fn lz4_gets_its_options_block() {
    let w = Writer::new(Cursor::new(Vec::new()), Box::new(Tiny), BS, 0).unwrap();
    let done = w.finish().unwrap();
    let img = done.out.into_inner();
    assert_eq!(done.superblock.compression, 5);
    assert!(done.superblock.flags & FLAG_COMP_OPTS != 0);
    assert_eq!(&img[96..106], &[8, 0x80, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(done.superblock.inode_table_start, 106);
}

#[test]
fn headers_split_at_256_entries() {
    let mut w = writer();
    w.dir(b"d", &m(0o755, 0, 0)).unwrap();
    for i in 0..300 {
        add_file(&mut w, &[&format!("d/{i:03}")], b"x");
    }
    let img = finish(w);
    let all = img.walk();
    assert_eq!(all.len(), 301);
    let d = img.listing(&all[&b"d".to_vec()].1);
    assert_eq!(d.len(), 300);
    let per_header: Vec<usize> = (0..=d.last().unwrap().header)
        .map(|h| d.iter().filter(|e| e.header == h).count())
        .collect();
    assert_eq!(per_header, [256, 44]);
    // Root: one subdirectory.
    assert_eq!(img.inode(img.sb.root_inode).fields[1], 3);
}

#[test]
fn headers_split_where_inodes_cross_a_metadata_block() {
    let mut w = writer();
    // Files of 300 blocks: 1,200 bytes of block words per inode, so a few
    // inodes fill each 8 KiB metadata block.
    let data = vec![1u8; 300 * BS as usize];
    for i in 0..20 {
        add_file(&mut w, &[&format!("f{i:02}")], &data);
    }
    let img = finish(w);
    let all = img.walk();
    assert_eq!(all.len(), 20);
    let root = img.listing(&img.inode(img.sb.root_inode));
    let headers = root.last().unwrap().header + 1;
    assert!(headers > 2, "{headers} headers");
    for e in &root {
        let first = root.iter().find(|f| f.header == e.header).unwrap();
        assert_eq!(e.reference >> 16, first.reference >> 16);
    }
    for (_, i) in all.values() {
        assert_eq!(img.read(i), data);
    }
}

#[test]
fn inode_numbers_far_apart_start_a_new_header() {
    let mut w = writer();
    w.dir(b"a", &m(0o755, 0, 0)).unwrap();
    // 40,000 entries in `a` get numbered before `b`'s children, so a
    // hard link from `b` into `a`'s range is more than an i16 away.
    for i in 0..40_000 {
        w.special(format!("a/{i}").as_bytes(), Special::Fifo, &m(0o644, 0, 0))
            .unwrap();
    }
    w.dir(b"b", &m(0o755, 0, 0)).unwrap();
    add_file(&mut w, &["b/x", "a/~late"], b"hello");
    add_file(&mut w, &["b/y"], b"hi");
    let img = finish(w);
    let all = img.walk();
    assert_eq!(all.len(), 40_005);
    let xi = &all[&b"b/x".to_vec()].1;
    let (late, li) = &all[&b"a/~late".to_vec()];
    assert_eq!(xi.number, li.number);
    assert!(xi.fields[3] == 2, "nlink 2");
    let alone = all
        .iter()
        .filter(|(p, (e, _))| p.starts_with(b"a/") && e.header == late.header)
        .count();
    assert_eq!(alone, 1, "the far link has a header of its own");
}

#[test]
fn listing_over_64k_uses_the_extended_directory() {
    let mut w = writer();
    w.dir(b"big", &m(0o755, 0, 0)).unwrap();
    w.dir(b"small", &m(0o755, 0, 0)).unwrap();
    for i in 0..300 {
        let name = format!("big/{i:03}{}", "n".repeat(252));
        add_file(&mut w, &[&name], b"");
    }
    let img = finish(w);
    let all = img.walk();
    assert_eq!(all.len(), 302);
    let big = &all[&b"big".to_vec()].1;
    assert_eq!(big.ty, 8);
    assert!(big.fields[1] > 65535);
    assert_eq!(all[&b"small".to_vec()].1.ty, 1);
    let long = all.keys().filter(|k| k.len() == 4 + 255).count();
    assert_eq!(long, 300);
}

#[test]
fn hard_links_share_one_extended_inode() {
    let mut w = writer();
    w.dir(b"x", &m(0o755, 0, 0)).unwrap();
    add_file(&mut w, &["one", "x/two", "x/three"], b"shared");
    add_file(&mut w, &["single"], b"alone");
    let img = finish(w);
    let all = img.walk();
    let refs: Vec<u64> = ["one", "x/two", "x/three"]
        .iter()
        .map(|p| all[&p.as_bytes().to_vec()].0.reference)
        .collect();
    assert!(refs.iter().all(|&r| r == refs[0]));
    let i = &all[&b"one".to_vec()].1;
    assert_eq!(i.ty, 9);
    assert_eq!(i.fields[3], 3);
    assert_eq!(img.read(i), b"shared");
    assert_eq!(all[&b"single".to_vec()].1.ty, 2);
    // 1 root + x + one inode for the group + single.
    assert_eq!(img.sb.inodes, 4);
}

#[test]
fn ids_go_through_the_id_table() {
    let mut w = writer();
    w.dir(b"d", &m(0o755, 4_000_000_000, 0)).unwrap();
    w.symlink(b"l", b"d", &m(0o777, 1000, 0)).unwrap();
    let err = w.dir(b"e", &m(0o755, 1 << 32, 0)).unwrap_err();
    assert!(err.to_string().contains("\"e\""), "{err}");
    let img = finish(w);
    assert_eq!(img.ids(), vec![0, 4_000_000_000, 1000]);
    assert_eq!(img.sb.ids, 3);
    let all = img.walk();
    assert_eq!(all[&b"d".to_vec()].1.uid, 1);
    assert_eq!(all[&b"l".to_vec()].1.uid, 2);
    assert_eq!(all[&b"l".to_vec()].1.target, b"d");
}

#[test]
fn too_many_ids_is_an_error() {
    let mut w = writer();
    for i in 0..MAX_IDS as u64 - 1 {
        w.ids.get(i + 1, "uid", b"x").unwrap();
    }
    let err = w.dir(b"last", &m(0o755, 1 << 20, 0)).unwrap_err();
    assert!(matches!(err, SquashError::TooManyIds { .. }), "{err}");
}

#[test]
fn sparse_blocks_have_no_bytes() {
    let mut w = writer();
    let bs = BS as usize;
    let mut data = vec![0; 2 * bs];
    data.extend(vec![5; bs]);
    data.extend(vec![0; bs]);
    data.extend(vec![0; 10]);
    add_file(&mut w, &["s"], &data);
    let img = finish(w);
    let all = img.walk();
    let i = &all[&b"s".to_vec()].1;
    assert_eq!(i.ty, 9, "sparse bytes need the extended inode");
    assert_eq!(i.fields[2], 3 * BS as u64);
    assert_eq!(i.blocks, [0, 0, BS | BLOCK_RAW, 0]);
    assert_eq!(img.read(i), data);
}

#[test]
fn tails_share_fragments() {
    let mut w = writer();
    add_file(&mut w, &["a"], &[1; 3000]);
    add_file(&mut w, &["b"], &[2; 1000]);
    // Does not fit the first fragment any more: a second one.
    add_file(&mut w, &["c"], &[3; 500]);
    add_file(&mut w, &["d"], &[4; BS as usize + 7]);
    let img = finish(w);
    assert_eq!(img.sb.fragments, 2);
    assert_eq!(img.sb.flags & FLAG_NO_FRAGMENTS, 0);
    let all = img.walk();
    let frag = |p: &str| {
        let i = &all[&p.as_bytes().to_vec()].1;
        (i.fields[1], i.fields[2])
    };
    assert_eq!(frag("a"), (0, 0));
    assert_eq!(frag("b"), (0, 3000));
    assert_eq!(frag("c"), (1, 0));
    assert_eq!(frag("d"), (1, 500));
    assert_eq!(img.read(&all[&b"d".to_vec()].1), vec![4; BS as usize + 7]);
    assert_eq!(img.read(&all[&b"b".to_vec()].1), vec![2; 1000]);
}

#[test]
fn extents_read_files_back() {
    let mut w = writer();
    let bs = BS as usize;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("tail", vec![7; 100]),
        ("block", vec![8; bs]),
        ("mixed", (0..3 * bs + 99).map(|i| (i % 251) as u8).collect()),
        ("holes", [vec![0; bs], vec![1; bs], vec![0; 5]].concat()),
    ];
    w.dir(b"lib", &m(0o755, 0, 0)).unwrap();
    for (p, d) in &files {
        add_file(&mut w, &[&format!("lib/{p}")], d);
    }
    let done = w.finish().unwrap();
    assert!(done.extents(b"lib").is_none());
    assert!(done.extents(b"nope").is_none());
    let img = done.out.get_ref();
    for (p, want) in &files {
        let mut got = Vec::new();
        for e in done.extents(format!("lib/{p}").as_bytes()).unwrap() {
            assert!(!e.compressed);
            let block = if e.stored_len == 0 {
                vec![0; e.raw_len as usize]
            } else {
                assert_eq!(e.stored_len, e.raw_len);
                img[e.offset as usize..][..e.stored_len as usize].to_vec()
            };
            match e.cut {
                Some((o, l)) => got.extend_from_slice(&block[o as usize..][..l as usize]),
                None => got.extend_from_slice(&block),
            }
        }
        assert_eq!(&got, want, "{p}");
    }
}

#[test]
fn image_inside_a_bigger_file_has_offsets_from_its_start() {
    let mut out = Cursor::new(vec![0xEE; 1000]);
    out.set_position(1000);
    let mut w = Writer::new(out, Box::new(Store), BS, 0).unwrap();
    add_file(&mut w, &["f"], &[3; 5000]);
    let done = w.finish().unwrap();
    assert_eq!(done.out.position(), 1000 + done.len);
    let bytes = done.out.into_inner();
    assert!(bytes[..1000].iter().all(|&b| b == 0xEE));
    let img = Image::open(bytes[1000..].to_vec());
    let all = img.walk();
    assert_eq!(img.read(&all[&b"f".to_vec()].1), vec![3; 5000]);
}

#[test]
fn caller_compressed_blocks_and_short_last_block() {
    let mut w = writer();
    let mut f = w.begin_file();
    w.add_block(&mut f, &[1; 100], true, BS).unwrap();
    w.add_block(&mut f, &[2; 10], false, 10).unwrap();
    // After a short block nothing may follow.
    assert!(w.add_block(&mut f, &[2; 10], false, 10).is_err());
    assert!(w.add_tail(&mut f, b"x").is_err());
    w.file(&[b"f".to_vec()], &m(0o644, 0, 0), f).unwrap();
    // Blocks of another file in between: refused.
    let mut g = w.begin_file();
    w.add_block(&mut g, &[1; 10], true, BS).unwrap();
    let mut h = w.begin_file();
    w.add_block(&mut h, &[1; 10], true, BS).unwrap();
    assert!(w.add_block(&mut g, &[1; 10], true, BS).is_err());
    let img = finish(w);
    let all = img.walk();
    let i = &all[&b"f".to_vec()].1;
    assert_eq!(i.blocks, [100, 10 | BLOCK_RAW]);
    assert_eq!(i.fields[3], u64::from(BS) + 10);
    assert_eq!(i.fields[1], u64::from(u32::MAX));
}

#[test]
fn misuse_and_bad_paths_are_errors_naming_the_path() {
    let mut w = writer();
    let mm = m(0o755, 0, 0);
    w.dir(b".", &mm).unwrap();
    assert!(matches!(w.dir(b".", &mm), Err(SquashError::Exists { .. })));
    w.dir(b"a", &mm).unwrap();
    assert!(matches!(w.dir(b"a", &mm), Err(SquashError::Exists { .. })));
    assert!(matches!(
        w.dir(b"b/c", &mm),
        Err(SquashError::NoParent { .. })
    ));
    w.symlink(b"a/l", b"x", &mm).unwrap();
    assert!(matches!(
        w.dir(b"a/l/c", &mm),
        Err(SquashError::NoParent { .. })
    ));
    for bad in [
        &b""[..],
        b"/a",
        b"a//b",
        b"a/./b",
        b"a/..",
        b"a/b\0",
        &[b'x'; 257],
    ] {
        let err = w.dir(bad, &mm).unwrap_err();
        assert!(matches!(err, SquashError::BadPath { .. }), "{bad:?}: {err}");
    }
    w.dir(&[b'x'; 256], &mm).unwrap();
    let err = w
        .special(
            b"a/dev",
            Special::Char {
                major: 4096,
                minor: 0,
            },
            &mm,
        )
        .unwrap_err();
    assert!(err.to_string().contains("a/dev"), "{err}");
    assert!(w.symlink(b"a/empty", b"", &mm).is_err());
    assert!(w.symlink(b"a/long", &[b'x'; 4097], &mm).is_err());
    let f = w.write_data(3, &mut &b"abc"[..]).unwrap();
    let err = w
        .file(&[b"a/f".to_vec(), b"a/f".to_vec()], &mm, f.clone())
        .unwrap_err();
    assert!(matches!(err, SquashError::Exists { .. }));
    w.file(&[b"a/f".to_vec()], &mm, f).unwrap();
    assert!(w.write_data(10, &mut &b"short"[..]).is_err());
    let img = finish(w);
    let all = img.walk();
    assert_eq!(all.len(), 4);
    assert_eq!(img.read(&all[&b"a/f".to_vec()].1), b"abc");
}

#[test]
fn devices_modes_and_mtimes() {
    let mut w = writer();
    let dev = |major, minor| Special::Char { major, minor };
    w.special(b"null", dev(1, 3), &m(0o666, 0, -1)).unwrap();
    w.special(b"wide", dev(300, 70_000), &m(0o600, 0, i64::MAX))
        .unwrap();
    w.special(
        b"sda",
        Special::Block { major: 8, minor: 1 },
        &m(0o660, 0, 5),
    )
    .unwrap();
    w.special(b"fifo", Special::Fifo, &m(0o644, 0, 5)).unwrap();
    w.dir(b"tmp", &m(0o1777, 0, 5)).unwrap();
    add_file(&mut w, &["su"], b"#!");
    let img = finish(w);
    let all = img.walk();
    let get = |p: &str| all[&p.as_bytes().to_vec()].1.clone();
    assert_eq!(get("null").fields[1], (1 << 8) | 3);
    assert_eq!(get("null").mtime, 0);
    assert_eq!(
        get("wide").fields[1],
        (300 << 8) | (70_000 & 0xff) | ((70_000 & !0xff) << 12)
    );
    assert_eq!(get("wide").mtime, u32::MAX);
    assert_eq!((get("sda").ty, get("sda").mode), (4, 0o660));
    assert_eq!((get("fifo").ty, get("fifo").mode), (6, 0o644));
    assert_eq!(get("tmp").mode, 0o1777);
    assert_eq!(get("su").mode, 0o644);
}

#[test]
fn sink_writes_a_flattened_tree() {
    let mut w = writer();
    let mm = m(0o755, 0, 0);
    Sink::dir(&mut w, b".", &mm).unwrap();
    Sink::dir(&mut w, b"bin", &mm).unwrap();
    Sink::symlink(&mut w, b"sbin", b"bin", &mm).unwrap();
    Sink::special(&mut w, b"bin/fifo", Special::Fifo, &mm).unwrap();
    w.file(
        &[b"bin/a".to_vec(), b"bin/b".to_vec()],
        &mm,
        FileData::default(),
    )
    .unwrap();
    let err = Sink::file(&mut w, &[b"bin/c".to_vec()], &mm, 10, &mut &b"abc"[..]).unwrap_err();
    assert!(err.to_string().contains("bin/c"), "{err}");
    Sink::file(&mut w, &[b"bin/d".to_vec()], &mm, 3, &mut &b"abc"[..]).unwrap();
    assert!(Sink::dir(&mut w, b"bin", &mm).is_err());
    let img = finish(w);
    assert_eq!(img.walk().len(), 6);
}
