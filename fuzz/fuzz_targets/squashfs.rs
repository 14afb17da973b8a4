//! Arbitrary sequences of squashfs writer calls (directories, files built
//! through every data path, symlinks, devices, the root) with small data
//! and hostile paths and ids: nothing panics, errors are fine, and the
//! finished image's superblock and extents are consistent.
#![no_main]
use std::io::{self, Cursor};

use libfuzzer_sys::fuzz_target;
use wyrcan_core::squashfs::{Codec, Compress, Superblock, Writer};
use wyrcan_core::tree::{Meta, Special};

/// Never shrinks: blocks stay raw. Odd calls "compress" to half the input
/// to exercise the compressed paths too.
struct Store(u32);
impl Compress for Store {
    fn codec(&self) -> Codec {
        Codec::Zstd
    }
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.0 += 1;
        let n = if self.0 % 2 == 0 { input.len() } else { input.len() / 2 };
        out.extend_from_slice(&input[..n]);
        Ok(())
    }
}

struct Input<'a>(&'a [u8]);
impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn path(&mut self) -> Option<Vec<u8>> {
        let n = self.byte()? % 4 + 1;
        let mut p = Vec::new();
        for i in 0..n {
            if i > 0 {
                p.push(b'/');
            }
            let c = self.byte()?;
            match c % 10 {
                0..=3 => p.push(b'a' + c % 4),
                4 => p.extend_from_slice(b".."),
                5 => p.push(b'.'),
                6 => {}
                7 => p.extend(std::iter::repeat_n(b'n', 254 + usize::from(c % 4))),
                8 => p.push(0),
                _ => p.extend_from_slice(&[c, b'z']),
            }
        }
        Some(p)
    }
    fn meta(&mut self) -> Option<Meta> {
        let ids = [0, 1, 65_535, u64::from(u32::MAX), 1 << 32];
        Some(Meta {
            mode: u32::from(self.byte()?) << 4 | u32::from(self.byte()? % 16),
            uid: ids[usize::from(self.byte()?) % ids.len()],
            gid: u64::from(self.byte()?),
            mtime: i64::from(self.byte()? as i8) << 28,
        })
    }
    fn data(&mut self) -> Option<Vec<u8>> {
        let len = usize::from(self.byte()?) * 97 + usize::from(self.byte()?);
        let fill = self.byte()?;
        Some((0..len).map(|i| if fill < 64 { 0 } else { fill ^ (i as u8) }).collect())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(bs_log) = input.byte() else { return };
    let bs = 1u32 << (12 + u32::from(bs_log % 3));
    let mut w = Writer::new(Cursor::new(Vec::new()), Box::new(Store(0)), bs, 1).unwrap();
    let mut files = Vec::new();
    while let Some(op) = input.byte() {
        let Some(path) = input.path() else { break };
        let Some(meta) = input.meta() else { break };
        match op % 6 {
            0 => drop(w.dir(&path, &meta)),
            1 => drop(w.dir(b".", &meta)),
            2 => {
                let Some(target) = input.path() else { break };
                drop(w.symlink(&path, &target, &meta));
            }
            3 => {
                let Some(k) = input.byte() else { break };
                let kind = match k % 3 {
                    0 => Special::Fifo,
                    1 => Special::Char { major: u32::from(k) << 4, minor: u32::from(k) << 12 },
                    _ => Special::Block { major: 8, minor: u32::from(k) },
                };
                drop(w.special(&path, kind, &meta));
            }
            4 => {
                // Through write_data, maybe as a hard-link group.
                let Some(bytes) = input.data() else { break };
                let Some(second) = input.path() else { break };
                let f = w.write_data(bytes.len() as u64, &mut &bytes[..]).unwrap();
                let paths = if op & 0x80 != 0 { vec![path, second] } else { vec![path] };
                if w.file(&paths, &meta, f).is_ok() {
                    files.extend(paths.into_iter().map(|p| (p, bytes.len() as u64)));
                }
            }
            _ => {
                // The parallel path: blocks, sparse blocks, short blocks and
                // tails in whatever order the input says.
                let mut f = w.begin_file();
                let Some(steps) = input.byte() else { break };
                for _ in 0..steps % 5 {
                    let Some(s) = input.byte() else { break };
                    let raw = if s & 1 == 0 { bs } else { u32::from(s) * 13 };
                    let _ = match s % 3 {
                        0 => w.add_block(&mut f, &vec![s; usize::from(s) + 1], s & 4 != 0, raw),
                        1 => Ok(w.add_sparse_block(&mut f, raw)),
                        _ => w.add_tail(&mut f, &vec![s; usize::from(s) * 7]),
                    };
                }
                let size = f.size();
                if w.file(&[path.clone()], &meta, f).is_ok() {
                    files.push((path, size));
                }
            }
        }
    }
    let done = w.finish().unwrap();
    let img = done.out.get_ref();
    assert_eq!(img.len() as u64, done.len);
    assert_eq!(done.len % 4096, 0);
    let sb = Superblock::parse(img).expect("our own superblock");
    assert_eq!(sb, done.superblock);
    assert!(sb.bytes_used <= done.len);
    assert!(sb.inode_table_start < sb.directory_table_start);
    assert!(sb.directory_table_start < sb.id_table_start);
    if sb.fragments > 0 {
        assert!(sb.directory_table_start < sb.fragment_table_start);
        assert!(sb.fragment_table_start < sb.id_table_start);
    }
    assert!(sb.id_table_start + 8 * u64::from(sb.ids).div_ceil(2048) == sb.bytes_used);
    assert_eq!(sb.block_size, bs);
    for (path, size) in files {
        let extents = done.extents(&path).expect("a file that was added");
        let mut total = 0u64;
        for e in extents {
            assert!(e.offset + u64::from(e.stored_len) <= sb.inode_table_start);
            total += match e.cut {
                Some((o, l)) => {
                    assert!(o + l <= e.raw_len);
                    u64::from(l)
                }
                None => u64::from(e.raw_len),
            };
        }
        assert_eq!(total, size);
    }
});
