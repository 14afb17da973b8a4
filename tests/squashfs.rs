//! The squashfs writer against squashfs-tools as the oracle: images built
//! through `wyrcan_core::squashfs::Writer` with real compressors are
//! listed (`unsquashfs -lln`) and extracted (`unsquashfs -d`), and every
//! name, type, mode, owner, mtime, link target, device number, hard link
//! and byte of content must come out as written. A host test: no VM.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;
use std::process::Command;

use wyrcan_core::squashfs::{Codec, Compress, Writer, DEFAULT_BLOCK_SIZE};
use wyrcan_core::tree::{Meta, Special};

/// zstd at a level (3 as Wyrcan writes, 15 as mksquashfs's default).
struct Zstd(i32);
impl Compress for Zstd {
    fn codec(&self) -> Codec {
        Codec::Zstd
    }
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(&zstd::bulk::compress(input, self.0)?);
        Ok(())
    }
}

struct Zlib;
impl Compress for Zlib {
    fn codec(&self) -> Codec {
        Codec::Gzip
    }
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut e = flate2::write::ZlibEncoder::new(out, flate2::Compression::default());
        e.write_all(input)?;
        e.finish()?;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Want {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

fn meta(mode: u32, uid: u64, gid: u64, mtime: i64) -> Meta {
    Meta {
        mode,
        uid,
        gid,
        mtime,
    }
}

/// Bytes that compress somewhat but are not all alike.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 7 == 0 {
                b'a'
            } else {
                (x % 61) as u8
            }
        })
        .collect()
}

/// The tree every codec is tested with: each kind of entry, each shape of
/// file content, and the directory shapes that need more than the simple
/// encodings.
struct Spec {
    wants: BTreeMap<String, Want>,
    /// Hard-link groups: paths that must share an inode.
    links: Vec<Vec<String>>,
}

fn build(w: &mut Writer<fs::File>) -> Spec {
    let bs = DEFAULT_BLOCK_SIZE as usize;
    let mut wants = BTreeMap::new();
    let mut links = Vec::new();
    let mut want = |path: &str, kind: Kind, m: &Meta| {
        let mtime = m.mtime.clamp(0, i64::from(u32::MAX));
        wants.insert(
            path.to_string(),
            Want {
                kind,
                mode: m.mode,
                uid: m.uid as u32,
                gid: m.gid as u32,
                mtime,
            },
        );
    };
    let root = meta(0o755, 0, 0, 1_700_000_000);
    w.dir(b".", &root).unwrap();
    want(".", Kind::Dir, &root);

    let mut dir = |w: &mut Writer<fs::File>, path: &str, m: Meta| {
        w.dir(path.as_bytes(), &m).unwrap();
        want(path, Kind::Dir, &m);
    };
    dir(w, "etc", meta(0o755, 0, 0, 1_600_000_000));
    dir(w, "tmp", meta(0o1777, 0, 0, -5));
    dir(w, "usr", meta(0o755, 0, 0, 1));
    dir(w, "usr/bin", meta(0o755, 0, 0, 2));
    dir(w, "dev", meta(0o755, 0, 0, 3));
    dir(w, "home", meta(0o750, 1000, 1000, 4));
    dir(w, "home/big", meta(0o700, 4_000_000_000, 4_000_000_001, 5));
    dir(w, "empty", meta(0o555, 0, 0, 6));
    dir(w, "many", meta(0o755, 0, 0, 7));
    dir(w, "huge", meta(0o755, 0, 0, 8));
    dir(w, "deep", meta(0o755, 0, 0, 9));
    let mut deep = String::from("deep");
    for i in 0..100 {
        deep.push_str(&format!("/d{i}"));
        dir(w, &deep, meta(0o755, 0, 0, 10));
    }
    let long = "L".repeat(255);
    let long_dir = format!("{deep}/{long}");
    dir(w, &long_dir, meta(0o711, 0, 0, 11));

    let mut spill = sparse_like(bs);
    let long_file = format!("{long_dir}/{long}");
    let contents: Vec<(&str, Vec<u8>, Meta)> = vec![
        ("etc/empty", Vec::new(), meta(0o644, 0, 0, 100)),
        ("etc/tail", noise(100, 1), meta(0o600, 0, 42, 101)),
        ("etc/one-block", noise(bs, 2), meta(0o644, 0, 0, 102)),
        ("etc/block-tail", noise(bs + 1, 3), meta(0o644, 0, 0, 103)),
        ("etc/multi", noise(3 * bs + 777, 4), meta(0o644, 0, 0, 104)),
        (
            "etc/sparse",
            std::mem::take(&mut spill),
            meta(0o644, 0, 0, 105),
        ),
        ("etc/zeros", vec![0; 2 * bs], meta(0o644, 0, 0, 106)),
        ("etc/five-mib", noise(5 << 20, 5), meta(0o644, 0, 0, 107)),
        ("etc/random", random(bs + 5000), meta(0o644, 0, 0, 108)),
        ("usr/bin/su", noise(40_000, 6), meta(0o4755, 0, 0, 109)),
        ("usr/bin/wall", noise(900, 7), meta(0o2755, 0, 5, 110)),
        (
            "home/big/file",
            noise(10, 8),
            meta(0o600, 4_000_000_000, 7, 111),
        ),
        ("home/neg", noise(10, 9), meta(0o644, 1000, 1000, -100)),
        ("home/late", noise(10, 9), meta(0o644, 1000, 1000, i64::MAX)),
        (&long_file, noise(3000, 10), meta(0o644, 0, 0, 112)),
    ];
    for (path, data, m) in contents {
        let fd = w_data(w, &data);
        w.file(&[path.as_bytes().to_vec()], &m, fd).unwrap();
        want(path, Kind::File(data), &m);
    }

    // A hard-link group across directories.
    let data = noise(bs + 10, 11);
    let m = meta(0o755, 0, 0, 200);
    let paths = ["usr/bin/busybox", "usr/bin/ls", "etc/ls-too"];
    let fd = w_data(w, &data);
    let owned: Vec<Vec<u8>> = paths.iter().map(|p| p.as_bytes().to_vec()).collect();
    w.file(&owned, &m, fd).unwrap();
    for p in paths {
        want(p, Kind::File(data.clone()), &m);
    }
    links.push(paths.iter().map(|p| p.to_string()).collect());
    // And a tail-only pair.
    let data = b"shared tail".to_vec();
    let paths = ["etc/a", "etc/b"];
    let fd = w_data(w, &data);
    let owned: Vec<Vec<u8>> = paths.iter().map(|p| p.as_bytes().to_vec()).collect();
    w.file(&owned, &m, fd).unwrap();
    for p in paths {
        want(p, Kind::File(data.clone()), &m);
    }
    links.push(paths.iter().map(|p| p.to_string()).collect());

    let m = meta(0o777, 0, 0, 300);
    for (path, target) in [
        ("usr/bin/sh", "busybox".to_string()),
        ("etc/abs", "/usr/bin/busybox".to_string()),
        ("etc/longlink", "x/".repeat(2000)),
    ] {
        w.symlink(path.as_bytes(), target.as_bytes(), &m).unwrap();
        want(path, Kind::Symlink(target.into_bytes()), &m);
    }
    let m = meta(0o620, 0, 5, 400);
    for (path, kind, k) in [
        (
            "dev/null",
            Special::Char { major: 1, minor: 3 },
            Kind::Char(1, 3),
        ),
        (
            "dev/sda",
            Special::Block { major: 8, minor: 0 },
            Kind::Block(8, 0),
        ),
        (
            "dev/wide",
            Special::Char {
                major: 300,
                minor: 70_000,
            },
            Kind::Char(300, 70_000),
        ),
        ("dev/fifo", Special::Fifo, Kind::Fifo),
    ] {
        w.special(path.as_bytes(), kind, &m).unwrap();
        want(path, k, &m);
    }

    // 400 entries in one directory: headers split at 256.
    for i in 0..400 {
        let path = format!("many/f{i:04}");
        let data = format!("file {i}\n").into_bytes();
        let m = meta(0o644, i % 3, 0, 500 + i64::from(i as u32));
        let fd = w_data(w, &data);
        w.file(&[path.clone().into_bytes()], &m, fd).unwrap();
        want(&path, Kind::File(data), &m);
    }
    // A listing over 64 KiB: needs the extended directory inode.
    for i in 0..300 {
        let path = format!("huge/{i:03}{}", "n".repeat(247));
        let m = meta(0o644, 0, 0, 600);
        let fd = w_data(w, b"");
        w.file(&[path.clone().into_bytes()], &m, fd).unwrap();
        want(&path, Kind::File(Vec::new()), &m);
    }
    Spec { wants, links }
}

fn w_data(w: &mut Writer<fs::File>, data: &[u8]) -> wyrcan_core::squashfs::FileData {
    w.write_data(data.len() as u64, &mut &data[..]).unwrap()
}

/// Zero blocks between data, and a zero tail.
fn sparse_like(bs: usize) -> Vec<u8> {
    let mut v = vec![0; bs];
    v.extend(noise(bs, 12));
    v.extend(vec![0; 2 * bs]);
    v.extend(noise(10, 13));
    v.extend(vec![0; bs + 3]);
    v
}

/// Incompressible bytes: blocks stored raw.
fn random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 7;
            x ^= x >> 9;
            (x >> 24) as u8
        })
        .collect()
}

fn unsquashfs(args: &[&str]) -> String {
    let out = Command::new("unsquashfs")
        .args(args)
        .output()
        .expect("unsquashfs (squashfs-tools; scripts/install-deps) must be installed");
    assert!(
        out.status.success(),
        "unsquashfs {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn check(compress: Box<dyn Compress>) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("root.sqfs");
    let mut w = Writer::new(
        fs::File::create(&image).unwrap(),
        compress,
        DEFAULT_BLOCK_SIZE,
        1_700_000_000,
    )
    .unwrap();
    let spec = build(&mut w);
    let done = w.finish().unwrap();
    assert_eq!(done.len % 4096, 0);
    assert_eq!(fs::metadata(&image).unwrap().len(), done.len);
    let img = image.to_str().unwrap();

    // The listing: every path, nothing else; numeric owners.
    let listing = unsquashfs(&["-lln", img]);
    let mut listed = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first().is_none_or(|perm| perm.len() != 10) {
            continue;
        }
        let owner = f[1];
        // A device's size column is "major, minor" (or "major,minor").
        let at = if f[2].ends_with(',') { 6 } else { 5 };
        let path = match f[at].strip_prefix("squashfs-root") {
            Some("") => ".",
            Some(p) => p.trim_start_matches('/'),
            None => panic!("unexpected line {line}"),
        };
        let want = spec
            .wants
            .get(path)
            .unwrap_or_else(|| panic!("unexpected {path:?} in {line}"));
        assert_eq!(owner, format!("{}/{}", want.uid, want.gid), "{path}");
        listed.push(path.to_string());
    }
    let expected: Vec<&String> = spec.wants.keys().collect();
    listed.sort();
    assert_eq!(listed.iter().collect::<Vec<_>>(), expected);

    // The extracted tree.
    let out = dir.path().join("x");
    unsquashfs(&["-no-progress", "-d", out.to_str().unwrap(), img]);
    compare(&out, &spec);

    // The running kernel's squashfs, when this host lets us loop-mount:
    // copied out with `cp -a` inside a mount namespace of its own, so the
    // mount goes away with it whatever happens.
    let copy = dir.path().join("kernel");
    fs::create_dir(&copy).unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let script = "mount -t squashfs -o loop,ro \"$1\" \"$2\" && cp -a \"$2/.\" \"$3/\"";
    let run = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args([&image, &mnt, &copy])
        .output();
    match run {
        Ok(o) if o.status.success() => compare(&copy, &spec),
        Ok(o) => eprintln!(
            "not checked with the kernel (cannot loop-mount here): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("not checked with the kernel (no unshare: {e})"),
    }
}

/// `out` holds exactly the spec's tree.
fn compare(out: &Path, spec: &Spec) {
    for (path, want) in &spec.wants {
        let p = out.join(path);
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{path}: {e}"));
        let ft = md.file_type();
        match &want.kind {
            Kind::Dir => assert!(ft.is_dir(), "{path}"),
            Kind::File(data) => {
                assert!(ft.is_file(), "{path}");
                let got = fs::read(&p).unwrap();
                assert!(
                    got == *data,
                    "{path}: {} bytes, want {}",
                    got.len(),
                    data.len()
                );
            }
            Kind::Symlink(t) => {
                assert!(ft.is_symlink(), "{path}");
                assert_eq!(
                    fs::read_link(&p).unwrap().as_os_str().len(),
                    t.len(),
                    "{path}"
                );
                assert_eq!(
                    std::os::unix::ffi::OsStrExt::as_bytes(fs::read_link(&p).unwrap().as_os_str()),
                    &t[..]
                );
            }
            Kind::Char(ma, mi) | Kind::Block(ma, mi) => {
                assert!(
                    if matches!(want.kind, Kind::Char(..)) {
                        ft.is_char_device()
                    } else {
                        ft.is_block_device()
                    },
                    "{path}"
                );
                let rdev = md.rdev();
                assert_eq!(
                    ((rdev >> 8) & 0xfff) as u32 | ((rdev >> 32) & !0xfff) as u32,
                    *ma,
                    "{path}"
                );
                assert_eq!(
                    (rdev & 0xff) as u32 | ((rdev >> 12) & !0xff) as u32,
                    *mi,
                    "{path}"
                );
            }
            Kind::Fifo => assert!(ft.is_fifo(), "{path}"),
        }
        if !ft.is_symlink() {
            assert_eq!(md.mode() & 0o7777, want.mode, "mode of {path}");
        }
        assert_eq!(
            (md.uid(), md.gid()),
            (want.uid, want.gid),
            "owner of {path}"
        );
        assert_eq!(md.mtime(), want.mtime, "mtime of {path}");
    }
    for group in &spec.links {
        let inos: Vec<u64> = group
            .iter()
            .map(|p| fs::metadata(out.join(p)).unwrap().ino())
            .collect();
        assert!(inos.iter().all(|&i| i == inos[0]), "{group:?}: {inos:?}");
        assert_eq!(
            fs::metadata(out.join(&group[0])).unwrap().nlink(),
            group.len() as u64
        );
    }
    // Nothing beyond the spec was extracted.
    let mut count = 0;
    walk(out, &mut count);
    assert_eq!(count, spec.wants.len());
}

fn walk(p: &Path, count: &mut usize) {
    *count += 1;
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            walk(&e.unwrap().path(), count);
        }
    }
}

#[test]
fn zstd_image_reads_back_exactly() {
    check(Box::new(Zstd(3)));
}

#[test]
fn zlib_image_reads_back_exactly() {
    check(Box::new(Zlib));
}

/// Size and time against mksquashfs on a host directory (default
/// `/usr/lib/python3.11`; `WYRCAN_SQUASHFS_DIR` to choose), both zstd
/// level 15 (mksquashfs's default), 128 KiB blocks, no xattrs, all owned
/// by root. A measurement, not a check: run with `--ignored --nocapture`.
#[test]
#[ignore]
fn compare_with_mksquashfs() {
    use std::time::Instant;
    let src = std::env::var("WYRCAN_SQUASHFS_DIR").unwrap_or("/usr/lib/python3.11".into());
    let src = Path::new(&src);
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.sqfs");
    let t = Instant::now();
    let mut w = Writer::new(
        fs::File::create(&ours).unwrap(),
        Box::new(Zstd(15)),
        DEFAULT_BLOCK_SIZE,
        0,
    )
    .unwrap();
    let mut stack = vec![src.to_path_buf()];
    let mut entries = 0;
    while let Some(d) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let rel = p
                .strip_prefix(src)
                .unwrap()
                .as_os_str()
                .as_encoded_bytes()
                .to_vec();
            let md = fs::symlink_metadata(&p).unwrap();
            let m = meta(md.mode() & 0o7777, 0, 0, md.mtime());
            entries += 1;
            if md.is_dir() {
                w.dir(&rel, &m).unwrap();
                stack.push(p);
            } else if md.is_symlink() {
                let t = fs::read_link(&p).unwrap();
                w.symlink(&rel, t.as_os_str().as_encoded_bytes(), &m)
                    .unwrap();
            } else if md.is_file() {
                let f = w
                    .write_data(md.len(), &mut fs::File::open(&p).unwrap())
                    .unwrap();
                w.file(&[rel], &m, f).unwrap();
            }
        }
    }
    let len = w.finish().unwrap().len;
    let ours_time = t.elapsed();
    let theirs = dir.path().join("theirs.sqfs");
    let t = Instant::now();
    let st = Command::new("mksquashfs")
        .args([src.as_os_str(), theirs.as_os_str()])
        .args([
            "-comp",
            "zstd",
            "-noappend",
            "-all-root",
            "-no-xattrs",
            "-processors",
            "1",
            "-quiet",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let theirs_time = t.elapsed();
    let theirs_len = fs::metadata(&theirs).unwrap().len();
    println!(
        "{} ({entries} entries): ours {len} bytes in {ours_time:?}, mksquashfs {theirs_len} bytes in {theirs_time:?} (one thread each)",
        src.display()
    );
    unsquashfs(&[
        "-no-progress",
        "-d",
        dir.path().join("x").to_str().unwrap(),
        ours.to_str().unwrap(),
    ]);
}
