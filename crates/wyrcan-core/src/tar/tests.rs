//! Headers written byte by byte, so every odd form other tools produce can
//! be made exactly (the `tar` crate, used as an independent writer in the
//! tree tests, cannot write most of them).

use std::io::Read;

use super::*;

/// A header block; `f` edits it before the checksum is set.
fn block(name: &[u8], typeflag: u8, size: u64, f: impl FnOnce(&mut [u8; BLOCK])) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name);
    b[100..107].copy_from_slice(b"0000644");
    b[108..115].copy_from_slice(b"0000000");
    b[116..123].copy_from_slice(b"0000000");
    b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    b[136..147].copy_from_slice(b"14000000000");
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    f(&mut b);
    seal(&mut b);
    b
}

fn seal(b: &mut [u8; BLOCK]) {
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// Data padded to whole blocks.
fn data(d: &[u8]) -> Vec<u8> {
    let mut v = d.to_vec();
    v.resize(d.len().div_ceil(BLOCK) * BLOCK, 0);
    v
}

fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3;
        // The length counts its own digits.
        let mut len = body + 1;
        while format!("{len}").len() + body != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

struct T(Vec<u8>);

impl T {
    fn new() -> Self {
        T(Vec::new())
    }
    fn h(mut self, b: [u8; BLOCK]) -> Self {
        self.0.extend_from_slice(&b);
        self
    }
    fn d(mut self, d: &[u8]) -> Self {
        self.0.extend_from_slice(&data(d));
        self
    }
    fn file(self, name: &str, content: &[u8]) -> Self {
        self.h(block(name.as_bytes(), b'0', content.len() as u64, |_| {}))
            .d(content)
    }
    fn ext(self, typeflag: u8, content: &[u8]) -> Self {
        self.h(block(
            b"././@LongLink",
            typeflag,
            content.len() as u64,
            |_| {},
        ))
        .d(content)
    }
    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

/// Every member with its contents.
fn read_all(bytes: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, TarError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        let mut d = Vec::new();
        r.data().read_to_end(&mut d)?;
        out.push((e, d));
    }
    Ok(out)
}

fn names(v: &[(Entry, Vec<u8>)]) -> Vec<String> {
    v.iter()
        .map(|(e, _)| String::from_utf8_lossy(&e.path).into_owned())
        .collect()
}

#[test]
fn ustar_types_prefix_and_contents() {
    let t = T::new()
        .h(block(b"d/", b'5', 0, |_| {}))
        .h(block(b"f", b'0', 3, |b| {
            b[345..350].copy_from_slice(b"d/sub")
        }))
        .d(b"abc")
        .h(block(b"l", b'2', 0, |b| {
            b[157..160].copy_from_slice(b"d/f")
        }))
        .h(block(b"h", b'1', 0, |b| {
            b[157..160].copy_from_slice(b"d/f")
        }))
        .h(block(b"c", b'3', 0, |b| {
            b[329..336].copy_from_slice(b"0000001");
            b[337..344].copy_from_slice(b"0000003");
        }))
        .h(block(b"p", b'6', 0, |_| {}))
        .h(block(b"c7", b'7', 1, |_| {}))
        .d(b"x")
        .end();
    let all = read_all(&t).unwrap();
    assert_eq!(names(&all), ["d/", "d/sub/f", "l", "h", "c", "p", "c7"]);
    let kinds: Vec<Kind> = all.iter().map(|(e, _)| e.kind).collect();
    use Kind::*;
    assert_eq!(kinds, [Dir, File, Symlink, Hardlink, Char, Fifo, File]);
    assert_eq!(all[1].1, b"abc");
    assert_eq!(all[2].0.link, b"d/f");
    assert_eq!((all[4].0.major, all[4].0.minor), (1, 3));
    assert_eq!(all[6].1, b"x");
    assert_eq!(all[1].0.mode, 0o644);
    assert_eq!(all[1].0.mtime, 0o14000000000);
    assert_eq!(
        all.iter().map(|(e, _)| e.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6]
    );
}

#[test]
fn entries_without_data_ignore_their_size() {
    // An old-style directory (NUL type, trailing slash) of size 1 and a v7
    // hard link of size 501: the next headers follow at once.
    let t = T::new()
        .h(block(b"old/", 0, 1, |b| b[257..265].fill(0)))
        .h(block(b"hl", b'1', 501, |b| {
            b[157..159].copy_from_slice(b"xx");
            b[257..265].fill(0)
        }))
        .h(block(b"next/", b'5', 0, |_| {}))
        .file("f", b"data")
        .end();
    let all = read_all(&t).unwrap();
    assert_eq!(names(&all), ["old/", "hl", "next/", "f"]);
    assert_eq!(all[0].0.kind, Kind::Dir);
    assert_eq!(all[3].1, b"data");
}

#[test]
fn numeric_fields_padded_with_nuls_or_spaces_or_in_base_256() {
    let t = T::new()
        .h(block(b"a", b'0', 0, |b| {
            b[108..116].fill(0); // uid: eight NULs
            b[116..124].copy_from_slice(b"  1750  "); // gid with spaces
            b[124..136].copy_from_slice(b"\x00\x00000000002\x00"); // NUL-led size
        }))
        .d(b"hi")
        .h(block(b"b", b'0', 0, |b| {
            // base-256 uid 2^40, negative mtime -1
            b[108..116].copy_from_slice(&[0x80, 0, 1, 0, 0, 0, 0, 0]);
            b[136..148].fill(0xff);
            b[124..136].copy_from_slice(b"00000000000\0");
        }))
        .end();
    let all = read_all(&t).unwrap();
    assert_eq!((all[0].0.uid, all[0].0.gid), (0, 0o1750));
    assert_eq!(all[0].1, b"hi");
    assert_eq!(all[1].0.uid, 1 << 40);
    assert_eq!(all[1].0.mtime, -1);
}

#[test]
fn gnu_long_names_and_links_last_one_wins() {
    let long = "d/".repeat(80) + "file";
    let t = T::new()
        .ext(b'L', b"first/ignored\0")
        .ext(b'L', format!("{long}\0").as_bytes())
        .ext(b'K', b"target/of/link\0")
        .h(block(b"short", b'2', 0, |b| {
            b[257..265].copy_from_slice(b"ustar  \0")
        }))
        .end();
    let all = read_all(&t).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.path, long.as_bytes());
    assert_eq!(all[0].0.link, b"target/of/link");
}

#[test]
fn pax_overrides_last_header_wins_and_globals_apply() {
    let t = T::new()
        .ext(b'g', &pax(&[("uid", b"77"), ("gname", b"wheel")]))
        .ext(b'x', &pax(&[("path", b"ignored")]))
        .ext(
            b'x',
            &pax(&[
                ("path", "é/long".as_bytes()),
                ("gid", b"5"),
                ("mtime", b"1700000000.123"),
                ("size", b"3"),
            ]),
        )
        .h(block(b"short", b'0', 99, |_| {}))
        .d(b"abc")
        .file("later", b"")
        .end();
    let all = read_all(&t).unwrap();
    assert_eq!(names(&all), ["é/long", "later"]);
    assert_eq!((all[0].0.uid, all[0].0.gid), (77, 5));
    assert_eq!(all[0].0.mtime, 1_700_000_000);
    assert_eq!(all[0].1, b"abc");
    // The global uid stays; the local records do not.
    assert_eq!((all[1].0.uid, all[1].0.gid), (77, 0));
}

#[test]
fn volume_labels_are_skipped() {
    let t = T::new()
        .h(block(b"label", b'V', 0, |_| {}))
        .file("f", b"1")
        .end();
    let all = read_all(&t).unwrap();
    assert_eq!(names(&all), ["f"]);
    assert_eq!(all[0].0.index, 0);
}

/// 1 MiB with "data" at 100 KiB and "end" at its last bytes.
fn sparse_expected() -> Vec<u8> {
    let mut v = vec![0u8; 1 << 20];
    v[100 * 1024..100 * 1024 + 4].copy_from_slice(b"data");
    let n = v.len();
    v[n - 3..].copy_from_slice(b"end");
    v
}

fn check_sparse_file(t: &[u8], name: &str) {
    let all = read_all(t).unwrap();
    assert_eq!(names(&all), [name]);
    assert_eq!(all[0].0.size, 1 << 20);
    assert!(all[0].1 == sparse_expected(), "contents differ");
}

#[test]
fn sparse_pax_0_0_0_1_and_1_0() {
    let chunks: &[(u64, &[u8])] = &[(100 * 1024, b"data"), ((1 << 20) - 3, b"end")];
    let stored: Vec<u8> = chunks.iter().flat_map(|(_, d)| d.to_vec()).collect();
    let real = (1u64 << 20).to_string();

    let mut recs0: Vec<(&str, Vec<u8>)> = vec![("GNU.sparse.size", real.clone().into_bytes())];
    for (off, d) in chunks {
        recs0.push(("GNU.sparse.offset", off.to_string().into_bytes()));
        recs0.push(("GNU.sparse.numbytes", d.len().to_string().into_bytes()));
    }
    let r0: Vec<(&str, &[u8])> = recs0.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    let t = T::new()
        .ext(b'x', &pax(&r0))
        .h(block(b"s", b'0', stored.len() as u64, |_| {}))
        .d(&stored)
        .end();
    check_sparse_file(&t, "s");

    let map = format!("{},4,{},3", 100 * 1024, (1 << 20) - 3);
    let t = T::new()
        .ext(
            b'x',
            &pax(&[
                ("GNU.sparse.size", real.as_bytes()),
                ("GNU.sparse.map", map.as_bytes()),
                ("GNU.sparse.name", b"s"),
            ]),
        )
        .h(block(b"GNUSparseFile.1/s", b'0', 7, |_| {}))
        .d(&stored)
        .end();
    check_sparse_file(&t, "s");

    let mut body = format!("2\n{}\n4\n{}\n3\n", 100 * 1024, (1 << 20) - 3).into_bytes();
    body.resize(BLOCK, 0);
    body.extend_from_slice(&stored);
    let t = T::new()
        .ext(
            b'x',
            &pax(&[
                ("GNU.sparse.major", b"1"),
                ("GNU.sparse.minor", b"0"),
                ("GNU.sparse.name", b"s"),
                ("GNU.sparse.realsize", real.as_bytes()),
            ]),
        )
        .h(block(b"GNUSparseFile.1/s", b'0', body.len() as u64, |_| {}))
        .d(&body)
        .end();
    check_sparse_file(&t, "s");
}

#[test]
fn old_gnu_sparse_with_an_extension_block() {
    // Five chunks: four in the header, one in an extension block.
    let chunks: Vec<(u64, u64)> = (0..5).map(|i| (i * 4096, 2)).collect();
    let stored = b"aabbccddee";
    let set = |area: &mut [u8], (off, len): (u64, u64)| {
        area[..11].copy_from_slice(format!("{off:011o}").as_bytes());
        area[12..23].copy_from_slice(format!("{len:011o}").as_bytes());
    };
    let hdr = block(b"old", b'S', stored.len() as u64, |b| {
        b[257..265].copy_from_slice(b"ustar  \0");
        for (i, c) in chunks[..4].iter().enumerate() {
            set(&mut b[386 + i * 24..386 + (i + 1) * 24], *c);
        }
        b[482] = 1;
        b[483..494].copy_from_slice(format!("{:011o}", 5 * 4096).as_bytes());
    });
    let mut ext = [0u8; BLOCK];
    set(&mut ext[..24], chunks[4]);
    let t = T::new().h(hdr).h(ext).d(stored).end();
    let all = read_all(&t).unwrap();
    assert_eq!(all[0].0.size, 5 * 4096);
    let want: Vec<u8> = (0..5 * 4096)
        .map(|i| {
            if i % 4096 < 2 {
                stored[(i / 4096) * 2 + i % 4096]
            } else {
                0
            }
        })
        .collect();
    assert!(all[0].1 == want);
}

#[test]
fn hostile_extensions_and_names_are_refused_before_they_are_read() {
    // A 2 GiB long name: refused from its header alone.
    let t = T::new()
        .h(block(b"././@LongLink", b'L', 2 << 30, |_| {}))
        .end();
    let e = read_all(&t).unwrap_err().to_string();
    assert!(e.contains("GNU long name of 2147483648 bytes"), "{e}");
    let huge = "a/".repeat(2100);
    let t = T::new()
        .ext(b'x', &pax(&[("path", huge.as_bytes())]))
        .file("x", b"")
        .end();
    let e = read_all(&t).unwrap_err().to_string();
    assert!(e.contains("more than the 4096 a path may have"), "{e}");
    let t = T::new()
        .ext(b'x', &pax(&[("path", b"etc/foo\0../../bar")]))
        .file("x", b"")
        .end();
    let e = read_all(&t).unwrap_err().to_string();
    assert!(
        e.contains("entry 0") && e.contains("holds a NUL byte"),
        "{e}"
    );
}

#[test]
fn ends_and_truncations() {
    // Stops right after the last file's bytes: no padding, no end blocks.
    let mut t = T::new().file("a", b"1").0;
    t.truncate(BLOCK + 1);
    assert_eq!(names(&read_all(&t).unwrap()), ["a"]);
    // Cut inside the data: an error.
    let mut t = T::new().file("a", b"12345").0;
    t.truncate(BLOCK + 2);
    assert!(read_all(&t)
        .unwrap_err()
        .to_string()
        .contains("ends inside"));
    // Cut inside a header.
    let t = T::new().file("a", b"").0;
    let e = read_all(&t[..100]).unwrap_err().to_string();
    assert!(e.contains("ends inside a header"), "{e}");
    // No end blocks at all.
    assert_eq!(names(&read_all(&T::new().file("a", b"").0).unwrap()), ["a"]);
    // A damaged header.
    let mut t = T::new().file("a", b"").end();
    t[0] = b'b';
    let e = read_all(&t).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
}

#[test]
fn a_bad_sparse_map_is_an_error() {
    let t = T::new()
        .ext(
            b'x',
            &pax(&[("GNU.sparse.size", b"10"), ("GNU.sparse.map", b"5,10")]),
        )
        .h(block(b"s", b'0', 10, |_| {}))
        .d(&[1; 10])
        .end();
    let e = read_all(&t).unwrap_err().to_string();
    assert!(e.contains("sparse file map has"), "{e}");
}

#[test]
fn sparse_files_written_by_gnu_tar() {
    let mut want = vec![0u8; 64 << 10];
    want[10 << 10..(10 << 10) + 4].copy_from_slice(b"data");
    for (name, bytes) in [
        (
            "pax-sparse-0.0",
            &include_bytes!("../../tests/fixtures/tar/pax-sparse-0.0")[..],
        ),
        (
            "pax-sparse-0.1",
            &include_bytes!("../../tests/fixtures/tar/pax-sparse-0.1")[..],
        ),
        (
            "pax-sparse-1.0",
            &include_bytes!("../../tests/fixtures/tar/pax-sparse-1.0")[..],
        ),
        (
            "gnu-sparse",
            &include_bytes!("../../tests/fixtures/tar/gnu-sparse")[..],
        ),
    ] {
        let all = read_all(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(names(&all), ["s"], "{name}");
        assert_eq!(all[0].0.size, 64 << 10, "{name}");
        assert!(all[0].1 == want, "{name}: contents differ");
    }
}

#[test]
fn a_global_name_is_refused() {
    let t = T::new()
        .ext(b'g', &pax(&[("path", b"global.txt")]))
        .file("raw.txt", b"")
        .end();
    let e = read_all(&t).unwrap_err().to_string();
    assert!(e.contains("global PAX header sets \"path\""), "{e}");
}
