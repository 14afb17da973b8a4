//! Hostile layers against the real binary and the real registry: each
//! ends in a clear error naming the layer and the entry, or in a correct
//! result, and never costs more than a bounded amount of memory. Memory is
//! the child's peak RSS (`getrusage(RUSAGE_CHILDREN)` read by a small
//! python wrapper), asserted against a bound; time is printed, never
//! asserted. `HOSTILE_BIN=path` runs another build (for before/after
//! numbers).

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use common::image::{compress, push_blob, push_manifest, Blob, Compression};
use common::registry::{shared, Registry};
use serde_json::json;

const BLOCK: usize = 512;

/// A raw header block with a valid checksum.
fn header(name: &[u8], typeflag: u8, size: u64, f: impl FnOnce(&mut [u8; BLOCK])) -> [u8; BLOCK] {
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
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    b
}

fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
    v
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while format!("{len}").len() + body != len {
        len += 1;
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// A bootable-enough base layer (a kernel file, /init) for `morph`.
fn base_tar() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&header(b"boot/", b'5', 0, |_| {}));
    t.extend_from_slice(&header(b"boot/vmlinuz", b'0', 6, |_| {}));
    t.extend_from_slice(&padded(b"kernel"));
    t.extend_from_slice(&header(b"init", b'0', 2, |_| {}));
    t.extend_from_slice(&padded(b"#!"));
    t
}

/// Push a two-layer image (the base, then `hostile`) and return its reference.
fn push(registry: &Registry, name: &str, hostile: Vec<u8>, compression: Compression) -> String {
    push_blob_layer(registry, name, compress(&hostile, compression), compression)
}

/// [`push`] for a layer blob already compressed as `compression` says.
fn push_blob_layer(
    registry: &Registry,
    name: &str,
    blob: Vec<u8>,
    compression: Compression,
) -> String {
    let repo = format!("hostile/{name}");
    let media = |c| match c {
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
    };
    let base = Blob::new(
        media(Compression::Gzip),
        compress(&base_tar(), Compression::Gzip),
    );
    let layer = Blob::new(media(compression), blob);
    let config = Blob::new(
        "application/vnd.oci.image.config.v1+json",
        serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap(),
    );
    for b in [&base, &layer, &config] {
        push_blob(registry, &repo, b);
    }
    let manifest = Blob::new(
        "application/vnd.oci.image.manifest.v1+json",
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.descriptor(),
            "layers": [base.descriptor(), layer.descriptor()],
        }))
        .unwrap(),
    );
    push_manifest(registry, &repo, "v1", &manifest);
    format!("{}/{repo}:v1", registry.addr())
}

struct Run {
    ok: bool,
    stderr: String,
    max_rss_mib: u64,
    initrd: u64,
}

/// `wyrcan morph` of `image` with its peak RSS.
fn morph(registry: &Registry, image: &str, extra: &[&str]) -> Run {
    let bin = std::env::var("HOSTILE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_wyrcan").into());
    let out = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let wrapper = "import resource, subprocess, sys\n\
        p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)\n\
        sys.stderr.buffer.write(p.stderr)\n\
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(p.returncode)\n";
    let initrd = out.path().join("initrd");
    let started = Instant::now();
    let o = Command::new("python3")
        .args([
            "-c",
            wrapper,
            &bin,
            "-q",
            "morph",
            image,
            "--insecure",
            &registry.addr(),
        ])
        .arg("--kernel")
        .arg(out.path().join("kernel"))
        .arg("--initrd")
        .arg(&initrd)
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("TMPDIR", out.path())
        .output()
        .unwrap();
    let kib: u64 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let run = Run {
        ok: o.status.success(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        max_rss_mib: kib / 1024,
        initrd: std::fs::metadata(&initrd).map_or(0, |m| m.len()),
    };
    eprintln!(
        "{image}: ok={} peak RSS {} MiB, {:.1?}, initrd {} B, {}",
        run.ok,
        run.max_rss_mib,
        started.elapsed(),
        run.initrd,
        run.stderr.lines().last().unwrap_or("")
    );
    run
}

fn refused(run: &Run, needle: &str, max_rss_mib: u64) {
    assert!(!run.ok, "accepted a hostile layer:\n{}", run.stderr);
    assert!(
        run.stderr.contains(needle),
        "{needle:?} not in:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("layer 2/2"),
        "the layer is named:\n{}",
        run.stderr
    );
    assert!(
        run.max_rss_mib <= max_rss_mib,
        "peak RSS {} MiB > {max_rss_mib}",
        run.max_rss_mib
    );
}

#[test]
fn a_huge_gnu_long_name_is_refused_from_its_header() {
    let registry = shared();
    // Claims 2 GiB; 1 MiB of it follows (a real attack compresses the rest).
    let mut t = header(b"././@LongLink", b'L', 2 << 30, |_| {}).to_vec();
    t.extend_from_slice(&vec![b'a'; 1 << 20]);
    let image = push(registry, "longname", t, Compression::Gzip);
    refused(
        &morph(registry, &image, &[]),
        "GNU long name of 2147483648 bytes",
        64,
    );
}

#[test]
fn a_huge_pax_header_is_refused_from_its_header() {
    let registry = shared();
    let mut t = header(b"PaxHeaders/x", b'x', 2_600_000_000, |_| {}).to_vec();
    t.extend_from_slice(&vec![b'1'; 1 << 20]);
    let image = push(registry, "paxhuge", t, Compression::Gzip);
    refused(
        &morph(registry, &image, &[]),
        "PAX header of 2600000000 bytes",
        64,
    );
}

#[test]
fn a_deep_pax_path_and_a_long_symlink_are_refused() {
    let registry = shared();
    let deep = "d/".repeat(100_000) + "f";
    let mut t = Vec::new();
    let rec = pax_record("path", deep.as_bytes());
    t.extend_from_slice(&header(b"PaxHeaders/f", b'x', rec.len() as u64, |_| {}));
    t.extend_from_slice(&padded(&rec));
    t.extend_from_slice(&header(b"f", b'0', 0, |_| {}));
    let image = push(registry, "deep", t, Compression::Gzip);
    refused(
        &morph(registry, &image, &[]),
        "more than the 4096 a path may have",
        64,
    );

    let target = "x/".repeat(100_000);
    let mut t = Vec::new();
    let rec = pax_record("linkpath", target.as_bytes());
    t.extend_from_slice(&header(b"PaxHeaders/l", b'x', rec.len() as u64, |_| {}));
    t.extend_from_slice(&padded(&rec));
    t.extend_from_slice(&header(b"l", b'2', 0, |_| {}));
    let image = push(registry, "longlink", t, Compression::Gzip);
    refused(
        &morph(registry, &image, &[]),
        "link target is 200000 bytes long",
        64,
    );
}

#[test]
fn a_nul_in_a_name_is_refused() {
    let registry = shared();
    let rec = pax_record("path", b"etc/foo\0../../bar");
    let mut t = header(b"PaxHeaders/f", b'x', rec.len() as u64, |_| {}).to_vec();
    t.extend_from_slice(&padded(&rec));
    t.extend_from_slice(&header(b"f", b'0', 0, |_| {}));
    let image = push(registry, "nul", t, Compression::Gzip);
    refused(&morph(registry, &image, &[]), "name holds a NUL byte", 64);
}

#[test]
fn more_entries_than_allowed_are_refused_with_bounded_memory() {
    let registry = shared();
    // 300 000 entries all named `a`: a few hundred KiB of zstd.
    let one = header(b"a", b'0', 0, |_| {});
    let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
    for _ in 0..300_000 {
        enc.write_all(&one).unwrap();
    }
    let blob = enc.finish().unwrap();
    let image = push_blob_layer(registry, "entries", blob, Compression::Zstd);
    // Under the limit: one surviving path, whatever the entries.
    let run = morph(registry, &image, &[]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.max_rss_mib <= 256, "peak RSS {} MiB", run.max_rss_mib);
    // Over it: refused while indexing.
    refused(
        &morph(registry, &image, &["--max-entries", "200000"]),
        "is one more than the image may have in all its layers",
        256,
    );
}

#[test]
fn many_opaque_markers_and_replacements_stay_bounded() {
    let registry = shared();
    let mut t = Vec::new();
    t.extend_from_slice(&header(b"d/", b'5', 0, |_| {}));
    for i in 0..30_000 {
        t.extend_from_slice(&header(format!("d/f{i}").as_bytes(), b'0', 0, |_| {}));
        t.extend_from_slice(&header(b"d/.wh..wh..opq", b'0', 0, |_| {}));
    }
    let image = push(registry, "opaque", t, Compression::Zstd);
    let run = morph(registry, &image, &[]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.max_rss_mib <= 256, "peak RSS {} MiB", run.max_rss_mib);
    // 30 000 empty files: about 110 bytes of cpio each, compressed.
    assert!(run.initrd < 8 << 20, "initrd {} bytes", run.initrd);
}
