//! Tar files from other projects' test suites, each packed as the one
//! layer of an image, pushed to the real `docker-registry`, flattened by
//! `wyrcan unpack`, and compared with the oracle: `umoci unpack` of the
//! same layer, or GNU tar's extraction (`tar --numeric-owner -xpf`) where
//! umoci refuses the tar (it has no `S`, `g`, `V`, `A`, `7` support).
//!
//! The committed corpus, `tests/fixtures/tar-corpus/` (libarchive's and
//! Go's text-encoded test archives: `.uu`, `.base64`, some compressed; see
//! its `SOURCES.md`), always runs. Binary test archives of tar-rs,
//! node-tar, Go, CPython and libarchive's current tree run too when their
//! directory is given in `WYRCAN_TAR_CORPUS_EXTRA` or is found as
//! `shared/tar-corpus` beside the checkout (`SOURCES.md` lists them).
//!
//! Every file has an expected class in [`COMMITTED`] or [`EXTRA`]. The
//! test fails when a file expected `equal` is not, when a committed file
//! has no expectation, or when an expected committed file is missing.
//! Other changes of class are printed, not failed: a `// BUG:` entry that
//! becomes `equal` after a fix is flipped by hand.
//!
//! `WYRCAN_TAR_CORPUS_ONLY=TEXT` runs only the files whose name holds TEXT
//! (and prints wyrcan's stderr); `WYRCAN_TAR_CORPUS_KEEP=1` keeps each
//! file's work dir (the tar, the oracle's tree, wyrcan's tree).

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use wyrcan_core::digest::Digest;

use common::image::{push_blob, push_manifest, Blob, OCI_CONFIG, OCI_MANIFEST};
use common::oracle::{compare, node_at, FileKind, Snapshot};
use common::registry::{self, Registry};

/// What happened to one corpus file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Both flattened it, to the same tree.
    Equal,
    /// Neither could flatten it.
    RefusedByBoth,
    /// The oracle flattened it; `wyrcan unpack` failed.
    RefusedByWyrcan,
    /// `wyrcan unpack` flattened it; umoci and GNU tar both failed.
    RefusedByOracle,
    /// Both flattened it, to different trees.
    Differs,
    /// Not run: a member's contents are too large to write out here.
    Skipped,
}

use Class::*;

impl Class {
    fn label(self) -> &'static str {
        match self {
            Equal => "equal",
            RefusedByBoth => "refused by both",
            RefusedByWyrcan => "refused by wyrcan only",
            RefusedByOracle => "refused by oracle only",
            Differs => "differs",
            Skipped => "skipped",
        }
    }
}

/// One expectation: a file (relative to the corpus root), its class, and
/// why it is not `equal` (empty for `equal`).
type Expect = (&'static str, Class, &'static str);

/// The committed corpus, `tests/fixtures/tar-corpus/`.
const COMMITTED: &[Expect] = &[
    ("go/neg-size.tar.base64", RefusedByBoth, "fuzzed header: negative base-256 mode and size"),
    ("libarchive/test_archive_read_open_archive.tar.uu", Equal, ""),
    ("libarchive/test_compat_gtar_1.tgz.uu", Equal, ""),
    ("libarchive/test_compat_gtar_2.tar.uu", Equal, ""),
    ("libarchive/test_compat_mac_gnutar.tar.Z.uu", Equal, ""),
    ("libarchive/test_compat_mac_gnutar.tgz.uu", Equal, ""),
    ("libarchive/test_compat_zstd_3.tar.zst.uu", Equal, ""),
    ("libarchive/test_edit_pathname_hardlink.tar.Z.uu", RefusedByBoth, "a hard link to `/`"),
    ("libarchive/test_option_keep_newer_files.tgz.uu", Equal, ""),
    ("libarchive/test_patterns.tgz.uu", Equal, ""),
    ("libarchive/test_patterns_2.tgz.uu", Equal, ""),
    ("libarchive/test_patterns_3.tgz.uu", Equal, ""),
    ("libarchive/test_pax_filename_encoding.tar.gz.uu", Equal, ""),
    ("libarchive/test_read_format_gtar_sparse_1_13.tgz.uu", Equal, ""),
    ("libarchive/test_read_format_gtar_sparse_1_17.tgz.uu", Equal, ""),
    ("libarchive/test_read_format_gtar_sparse_1_17_posix00.tgz.uu", Equal, ""),
    ("libarchive/test_read_format_gtar_sparse_1_17_posix01.tgz.uu", Equal, ""),
    ("libarchive/test_read_format_gtar_sparse_1_17_posix10.tgz.uu", Equal, ""),
    ("libarchive/test_read_format_gtar_sparse_exceeds_length.tar.Z.uu", RefusedByBoth, "a sparse map entry past the file's size"),
    ("libarchive/test_read_format_tar_pax_global_header.tar.uu", RefusedByWyrcan, "global `path=global.txt` before `raw.txt`: GNU tar and Python apply it, Go ignores it, current libarchive refuses the archive as wyrcan does"),
    ("libarchive/test_read_format_tar_pax_global_header_concatenated.tar.uu", RefusedByWyrcan, "a global `path` record: readers disagree on it, wyrcan refuses (as libarchive)"),
    ("libarchive/test_read_format_tar_pax_global_header_ignorable.tar.uu", Equal, ""),
    ("libarchive/test_read_pax_vendor_attributes.tar.uu", Equal, ""),
];

/// The optional corpus of binary tars (not committed; see the module doc).
const EXTRA: &[Expect] = &[
    ("cpython/recursion.tar", RefusedByBoth, "ends inside a PAX global header (CPython's header-recursion test)"),
    ("cpython/testtar.tar", Equal, ""),
    ("cpython/testtar.tar.xz", Equal, ""),
    ("go/file-and-dir.tar", Equal, ""),
    ("go/gnu-incremental.tar", Skipped, "test2/sparse is a 512 MiB sparse file"),
    ("go/gnu-long-nul.tar", Equal, ""),
    ("go/gnu-multi-hdrs.tar", Equal, ""),
    ("go/gnu-nil-sparse-data.tar", Equal, ""),
    ("go/gnu-nil-sparse-hole.tar", Equal, ""),
    ("go/gnu-not-utf8.tar", Equal, ""),
    ("go/gnu-sparse-big.tar", Skipped, "a 60 GB sparse file"),
    ("go/gnu-utf8.tar", Equal, ""),
    ("go/gnu.tar", Equal, ""),
    ("go/hardlink.tar", Equal, ""),
    ("go/hdr-only.tar", Equal, ""),
    // COMPAT: the oracle's Go-1.7 compatibility reading; wyrcan reads as GNU tar does.
    ("go/invalid-go17.tar", Differs, "GNU magic with text where GNU keeps atime/ctime: umoci (Go) reads it as a ustar prefix, as Go <= 1.7 wrote it; GNU tar, libarchive, Python and wyrcan do not"),
    ("go/issue10968.tar", RefusedByBoth, "fuzzed header: checksum field not a number"),
    ("go/issue11169.tar", RefusedByBoth, "fuzzed header: checksum field not a number"),
    ("go/issue12435.tar", RefusedByBoth, "fuzzed header: negative base-256 mode"),
    ("go/neg-size.tar", RefusedByBoth, "fuzzed header: negative base-256 mode and size"),
    ("go/nil-uid.tar", Equal, ""),
    ("go/pax-bad-hdr-file.tar", RefusedByBoth, "a PAX record without its newline"),
    ("go/pax-bad-hdr-large.tar.bz2", RefusedByBoth, "a PAX header over 1 MiB (Go's limit too)"),
    ("go/pax-bad-mtime-file.tar", RefusedByWyrcan, "PAX mtime `999xxx9324.43…`: umoci (Go) refuses it too; GNU tar reads the leading digits"),
    // BUG (same cause): refusing global `path` would make this refused by both.
    ("go/pax-global-records.tar", RefusedByBoth, "global `path` records: umoci cannot read `g`, GNU tar applies an empty global path and fails, wyrcan refuses a global path"),
    ("go/pax-multi-hdrs.tar", Equal, ""),
    ("go/pax-nil-sparse-data.tar", Equal, ""),
    ("go/pax-nil-sparse-hole.tar", Equal, ""),
    ("go/pax-nul-path.tar", RefusedByWyrcan, "a PAX path ending in NUL: wyrcan and umoci (Go) refuse it, GNU tar cuts the name at the NUL"),
    ("go/pax-nul-xattrs.tar", RefusedByOracle, "an xattr key holding NUL: Go and GNU tar reject the record, wyrcan ignores xattr records"),
    ("go/pax-path-hdr.tar", Equal, ""),
    ("go/pax-pos-size-file.tar", Equal, ""),
    ("go/pax-records.tar", Equal, ""),
    ("go/pax-sparse-big.tar", Skipped, "a 60 GB sparse file"),
    ("go/pax.tar", Equal, ""),
    ("go/sparse-formats.tar", RefusedByOracle, "umoci cannot read `S`; GNU tar 1.34 fails on the old-GNU sparse member; Python's tarfile extracts the same tree as wyrcan"),
    ("go/star.tar", Equal, ""),
    ("go/trailing-slash.tar", Equal, ""),
    ("go/ustar-file-devs.tar", Equal, ""),
    ("go/ustar-file-reg.tar", Equal, ""),
    ("go/ustar.tar", Equal, ""),
    ("go/v7.tar", Equal, ""),
    ("go/writer-big-long.tar", Skipped, "a 16 GiB member (header only)"),
    ("go/writer-big.tar", Skipped, "a 16 GiB member (header only)"),
    ("go/writer.tar", Equal, ""),
    ("go/xattrs.tar", Equal, ""),
    ("libarchive-master/test_acl_pax_nfs4.tar.uu", Equal, ""),
    ("libarchive-master/test_acl_pax_posix1e.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_gtar_1.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_gtar_2.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_gzip_1.tgz.uu", Equal, ""),
    ("libarchive-master/test_compat_mac-1.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_compat_mac-2.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_compat_perl_archive_tar.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_plexus_archiver_tar.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_solaris_pax_sparse_1.pax.Z.uu", Equal, ""),
    ("libarchive-master/test_compat_solaris_pax_sparse_2.pax.Z.uu", Equal, ""),
    ("libarchive-master/test_compat_solaris_tar_acl.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_star_acl_nfs4.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_star_acl_posix1e.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_tar_directory_1.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_tar_hardlink_1.tar.uu", Equal, ""),
    ("libarchive-master/test_compat_zstd_1.tar.zst.uu", Equal, ""),
    ("libarchive-master/test_compat_zstd_2.tar.zst.uu", Equal, ""),
    ("libarchive-master/test_extract.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_extract.tar.bz2.uu", Equal, ""),
    ("libarchive-master/test_extract.tar.gz.uu", Equal, ""),
    ("libarchive-master/test_extract.tar.xz.uu", Equal, ""),
    ("libarchive-master/test_extract.tar.zst.uu", Equal, ""),
    ("libarchive-master/test_gcpio_compat_ref.ustar.uu", Equal, ""),
    ("libarchive-master/test_gcpio_compat_ref_nosym.ustar.uu", Equal, ""),
    ("libarchive-master/test_leading_slash.tar.uu", Equal, ""),
    ("libarchive-master/test_list_item.tar.uu", Equal, ""),
    ("libarchive-master/test_option_keep_newer_files.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_option_s.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_patterns_2.tar.uu", Equal, ""),
    ("libarchive-master/test_patterns_3.tar.uu", Equal, ""),
    ("libarchive-master/test_patterns_4.tar.uu", Equal, ""),
    ("libarchive-master/test_pax_filename_encoding.tar.uu", Equal, ""),
    ("libarchive-master/test_pax_xattr_header_all.tar.uu", Equal, ""),
    ("libarchive-master/test_pax_xattr_header_libarchive.tar.uu", Equal, ""),
    ("libarchive-master/test_pax_xattr_header_schily.tar.uu", Equal, ""),
    ("libarchive-master/test_print_longpath.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_filename_cp866.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_filename_eucjp.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_filename_koi8r.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_redundant_L.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_sparse_1_13.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_sparse_1_17.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_sparse_1_17_posix00.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_sparse_1_17_posix01.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_sparse_1_17_posix10.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_sparse_1_17_posix10_modified.tar.uu", RefusedByBoth, "a sparse 1.0 map with a line that is not a number"),
    ("libarchive-master/test_read_format_gtar_sparse_length.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_sparse_reuse.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_gtar_sparse_skip_entry.tar.Z.uu", Skipped, "a 10 GiB sparse file; wyrcan refuses it (its sparse 1.0 map covers 4099 of 4100 stored bytes, as Go does), GNU tar and libarchive ignore the byte"),
    ("libarchive-master/test_read_format_tar_V_negative_size.tar.uu", RefusedByBoth, "a `V` header with a negative size"),
    ("libarchive-master/test_read_format_tar_acl_oob_read.tar.uu", RefusedByBoth, "a PAX record without its newline"),
    ("libarchive-master/test_read_format_tar_concatenated.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_tar_empty_filename.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_tar_empty_pax.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_tar_empty_with_gnulabel.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_tar_filename_koi8r.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_tar_invalid_pax_size.tar.uu", RefusedByBoth, "a PAX record length that is not a number"),
    ("libarchive-master/test_read_format_tar_mac_metadata_1.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_tar_pax_g_large.tar.uu", RefusedByBoth, "a 4 GiB PAX global header"),
    ("libarchive-master/test_read_format_tar_pax_large_attr.tar.Z.uu", RefusedByWyrcan, "an 8 MB PAX header, over wyrcan's (and Go's) 1 MiB limit; GNU tar reads it"),
    ("libarchive-master/test_read_format_tar_pax_negative_time.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_tar_pax_sun_holesdata.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_tar_pax_timestamps.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_tar_timestamp_overflow.tar.uu", Equal, ""),
    ("libarchive-master/test_read_format_ustar_filename_cp866.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_ustar_filename_eucjp.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_format_ustar_filename_koi8r.tar.Z.uu", Equal, ""),
    ("libarchive-master/test_read_pax_empty_val_no_nl.tar.uu", RefusedByBoth, "a PAX record without its newline"),
    ("libarchive-master/test_read_pax_xattr_rht_security_selinux.tar.uu", Equal, ""),
    ("libarchive-master/test_read_pax_xattr_schily.tar.uu", Equal, ""),
    ("libarchive-master/test_write_disk_mac_metadata.tar.gz.uu", Equal, ""),
    ("node-tar/bad-cksum.tar", RefusedByBoth, "a header checksum mismatch"),
    ("node-tar/body-byte-counts.tar", Equal, ""),
    ("node-tar/dir.tar", Equal, ""),
    ("node-tar/emptypax.tar", Equal, ""),
    ("node-tar/excessively-deep.tar", RefusedByBoth, "a 444749-byte path"),
    ("node-tar/file.tar", Equal, ""),
    ("node-tar/global-header.tar", RefusedByWyrcan, "global `path=ab`: readers disagree, wyrcan refuses (as libarchive)"),
    ("node-tar/links-invalid.tar", RefusedByBoth, "a hard link to a missing target"),
    ("node-tar/links-strip.tar", Equal, ""),
    ("node-tar/links.tar", Equal, ""),
    ("node-tar/long-linkname.tar", Equal, ""),
    ("node-tar/long-paths.tar", Equal, ""),
    ("node-tar/long-pax.tar", Equal, ""),
    ("node-tar/next-file-has-long.tar", Equal, ""),
    ("node-tar/null-byte.tar", Equal, ""),
    ("node-tar/parses.tar", Equal, ""),
    ("node-tar/path-missing.tar", RefusedByOracle, "a file with an empty name: umoci refuses to replace the root, GNU tar fails; wyrcan skips the member"),
    ("node-tar/sync-gzip-fail.tgz", Equal, ""),
    ("node-tar/trailing-slash-corner-case.tar", Equal, ""),
    ("node-tar/utf8.tar", Equal, ""),
    ("tar-rs/7z_long_path.tar", Equal, ""),
    ("tar-rs/biguid_gnu.tar", Equal, ""),
    ("tar-rs/biguid_pax.tar", Equal, ""),
    ("tar-rs/directory.tar", Equal, ""),
    ("tar-rs/duplicate_dirs.tar", Equal, ""),
    ("tar-rs/empty_filename.tar", Equal, ""),
    ("tar-rs/file_times.tar", Equal, ""),
    ("tar-rs/link.tar", Equal, ""),
    ("tar-rs/pax.tar", Equal, ""),
    ("tar-rs/pax2.tar", Equal, ""),
    ("tar-rs/pax_size.tar", Equal, ""),
    ("tar-rs/reading_files.tar", Equal, ""),
    ("tar-rs/simple.tar", Equal, ""),
    ("tar-rs/simple_missing_last_header.tar", Equal, ""),
    ("tar-rs/spaces.tar", Equal, ""),
    ("tar-rs/sparse-1.tar", Equal, ""),
    ("tar-rs/sparse-large.tar", Skipped, "a 12 GB sparse file"),
    ("tar-rs/sparse.tar", Equal, ""),
    ("tar-rs/xattrs.tar", Equal, ""),
];

/// Members larger than this are not written out (Go's sparse tests
/// describe 60 GB files).
const MAX_MEMBER: u64 = 128 << 20;
/// The longest one external command (umoci, tar, wyrcan, a decompressor) may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// After this long no new file is started.
const BUDGET: Duration = Duration::from_secs(150);

// ------------------------------------------------------------- running

/// Runs `cmd` with `stdin` fed in, for at most `limit`; `None` if it ran over
/// (the process is killed).
fn run_bounded(cmd: &mut Command, stdin: Option<Vec<u8>>, limit: Duration) -> Option<Output> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

/// The last non-empty line of a command's stderr, shortened.
fn last_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no message)")
        .trim();
    short(line, 160)
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

// ------------------------------------------------------------ decoding

/// A uuencoded file's bytes (`begin MODE NAME` … `end`).
fn uudecode(text: &[u8]) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(text);
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with("begin "))
        .ok_or("no `begin` line")?;
    let mut out = Vec::new();
    for line in lines {
        let line = line.as_bytes();
        if line == b"end" {
            return Ok(out);
        }
        let Some((&len, rest)) = line.split_first() else {
            continue;
        };
        let len = usize::from(len.wrapping_sub(b' ') & 63);
        let six = |c: u8| u32::from(c.wrapping_sub(b' ') & 63);
        let mut bytes = Vec::new();
        for group in rest.chunks(4) {
            let mut g = [b'`'; 4];
            g[..group.len()].copy_from_slice(group);
            let v = (six(g[0]) << 18) | (six(g[1]) << 12) | (six(g[2]) << 6) | six(g[3]);
            bytes.extend_from_slice(&v.to_be_bytes()[1..]);
        }
        if bytes.len() < len {
            return Err(format!("a line shorter than its length {len}"));
        }
        out.extend_from_slice(&bytes[..len]);
    }
    Err("no `end` line".into())
}

/// node-tar's old `.hex` fixtures: `--` comment lines, and data lines of
/// hex digits followed by a printable rendering.
fn hexdecode(text: &[u8]) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(hex) = line.split_whitespace().next() else {
            continue;
        };
        if hex.starts_with("--") {
            continue;
        }
        if hex.len() % 2 != 0 {
            return Err(format!("odd hex line {}", short(hex, 20)));
        }
        for i in (0..hex.len()).step_by(2) {
            let b = u8::from_str_radix(&hex[i..i + 2], 16)
                .map_err(|e| format!("bad hex {:?}: {e}", &hex[i..i + 2]))?;
            out.push(b);
        }
    }
    Ok(out)
}

/// Decompresses with an external tool (`gzip -dc` also reads `.Z`).
fn external(tool: &str, data: Vec<u8>) -> Result<Vec<u8>, String> {
    let out = run_bounded(Command::new(tool).arg("-dc"), Some(data), COMMAND_TIMEOUT)
        .ok_or_else(|| format!("{tool} -dc ran over {COMMAND_TIMEOUT:?}"))?;
    if !out.status.success() {
        return Err(format!("{tool} -dc: {}", last_line(&out)));
    }
    Ok(out.stdout)
}

/// The tar stream a corpus file holds: text encodings (`.uu`, `.base64`,
/// `.hex`) undone, then compression (`.gz`/`.tgz`, `.Z`, `.bz2`, `.xz`,
/// `.zst`).
fn tar_bytes(name: &str, raw: Vec<u8>) -> Result<Vec<u8>, String> {
    let (name, data) = if let Some(n) = name.strip_suffix(".uu") {
        (n, uudecode(&raw)?)
    } else if let Some(n) = name.strip_suffix(".base64") {
        let text: Vec<u8> = raw
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let data = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("base64: {e}"))?;
        (n, data)
    } else if let Some(n) = name.strip_suffix(".hex") {
        (n, hexdecode(&raw)?)
    } else {
        (name, raw)
    };
    if name.ends_with(".gz") || name.ends_with(".tgz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?;
        Ok(out)
    } else if name.ends_with(".Z") {
        external("gzip", data)
    } else if name.ends_with(".bz2") {
        external("bzip2", data)
    } else if name.ends_with(".xz") {
        external("xz", data)
    } else if name.ends_with(".zst") {
        zstd::decode_all(&data[..]).map_err(|e| format!("zstd: {e}"))
    } else {
        Ok(data)
    }
}

/// The largest member as wyrcan's reader sees it (up to where the stream
/// stops reading), and the largest size any PAX sparse record announces
/// (for streams wyrcan refuses but the oracle writes out): used only to
/// keep 60 GB sparse files from being written.
fn largest_member(tar: &[u8]) -> u64 {
    let mut reader = wyrcan_core::tar::Reader::new(tar);
    let mut largest = 0;
    while let Ok(Some(e)) = reader.next_entry() {
        largest = largest.max(e.size);
    }
    for key in [&b"GNU.sparse.realsize="[..], b"GNU.sparse.size="] {
        let mut rest = tar;
        while let Some(at) = rest.windows(key.len()).position(|w| w == key) {
            rest = &rest[at + key.len()..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let n = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            largest = largest.max(n);
        }
    }
    largest
}

// --------------------------------------------------------------- image

/// A one-layer OCI image of `tar` (the layer gzip-compressed).
struct OneLayer {
    config: Blob,
    layer: Blob,
    manifest: Blob,
}

fn one_layer(tar: &[u8]) -> OneLayer {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(tar).unwrap();
    let layer = Blob::new(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        enc.finish().unwrap(),
    );
    let config = json!({
        "created": "2023-11-14T22:13:20Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/init"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(tar).to_string()]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "corpus file"}],
    });
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    });
    let manifest = Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap());
    OneLayer {
        config,
        layer,
        manifest,
    }
}

/// Writes the image as an OCI layout for umoci, tagged `t`.
fn write_layout(dir: &Path, image: &OneLayer) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    for b in [&image.config, &image.layer, &image.manifest] {
        fs::write(blobs.join(b.digest.hex()), &b.data).unwrap();
    }
    let mut desc = image.manifest.descriptor();
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "t"});
    let index = json!({"schemaVersion": 2, "manifests": [desc]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

// ------------------------------------------------------------ snapshot

/// A name as text: UTF-8 as is, other bytes as `\xNN` (corpus names in
/// KOI8-R, CP866, EUC-JP…, which `common::oracle::snapshot` cannot walk).
fn escaped(name: &OsStr) -> String {
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `common::oracle::snapshot` for trees whose names need not be UTF-8.
fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    walk(root, Path::new(""), "", &mut out);
    out
}

fn walk(root: &Path, rel: &Path, key: &str, out: &mut Snapshot) {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let key = if key.is_empty() {
            escaped(&name)
        } else {
            format!("{key}/{}", escaped(&name))
        };
        // `compare` groups hardlinks by inode itself.
        let node = node_at(&root.join(&rel), escaped);
        let kind = node.kind;
        out.insert(key.clone(), node);
        if kind == FileKind::Dir {
            walk(root, &rel, &key, out);
        }
    }
}

// -------------------------------------------------------------- one file

/// What one corpus file gave.
struct Outcome {
    file: String,
    size: usize,
    class: Class,
    reason: String,
}

/// The oracle's tree: umoci's rootfs, or GNU tar's extraction when umoci
/// refuses; `Err` with both messages when neither succeeds.
fn oracle(work: &Path, tar_file: &Path, image: &OneLayer) -> Result<(PathBuf, String), String> {
    let layout = work.join("layout");
    let bundle = work.join("bundle");
    write_layout(&layout, image);
    let umoci = run_bounded(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:t", layout.display()))
            .arg(&bundle),
        None,
        COMMAND_TIMEOUT,
    );
    let umoci_err = match umoci {
        Some(out) if out.status.success() => return Ok((bundle.join("rootfs"), String::new())),
        Some(out) => last_line(&out),
        None => format!("ran over {COMMAND_TIMEOUT:?}"),
    };
    let root = work.join("gnutar");
    fs::create_dir(&root).unwrap();
    let tar = run_bounded(
        Command::new("tar")
            .arg("--numeric-owner")
            .arg("-xpf")
            .arg(tar_file)
            .arg("-C")
            .arg(&root),
        None,
        COMMAND_TIMEOUT,
    );
    match tar {
        Some(out) if out.status.success() => Ok((root, format!("umoci refused ({umoci_err}); "))),
        Some(out) => Err(format!("umoci: {umoci_err}; GNU tar: {}", last_line(&out))),
        None => Err(format!(
            "umoci: {umoci_err}; GNU tar ran over {COMMAND_TIMEOUT:?}"
        )),
    }
}

/// `wyrcan unpack` of `repo:t` into `dir`: `Err` with its message on failure.
fn wyrcan_unpack(reg: &Registry, repo: &str, dir: &Path, home: &Path) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wyrcan"));
    cmd.arg("unpack")
        .arg(format!("{}/{repo}:t", reg.addr()))
        .arg(dir)
        .arg("--insecure")
        .arg(reg.addr())
        .env("HOME", home)
        .env("NO_COLOR", "1");
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
    ] {
        cmd.env_remove(var);
    }
    match run_bounded(&mut cmd, None, COMMAND_TIMEOUT) {
        Some(out) if out.status.success() => Ok(()),
        Some(out) => {
            if std::env::var_os("WYRCAN_TAR_CORPUS_ONLY").is_some() {
                eprintln!(
                    "--- wyrcan stderr\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Err(wyrcan_reason(&out))
        }
        None => Err(format!("ran over {COMMAND_TIMEOUT:?}")),
    }
}

/// What a failed `wyrcan unpack` says, without the layer digest and
/// reference that every message starts with.
fn wyrcan_reason(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("panicked") {
        let line = err.lines().find(|l| l.contains("panicked")).unwrap_or("");
        let next = err
            .lines()
            .skip_while(|l| !l.contains("panicked"))
            .nth(1)
            .unwrap_or("");
        return short(&format!("PANIC {line} {next}"), 300);
    }
    let Some(line) = err.lines().find(|l| l.starts_with("error:")) else {
        return last_line(out);
    };
    // `reading layer 1/1 sha256:… of REF (a Gzip tar): …` and
    // `applying layer 1/1 sha256:… of REF: …`: the reference ends in `:t`.
    let line = match (line.find(":t (a Gzip tar): "), line.find(":t: ")) {
        (Some(i), _) => &line[i + ":t (a Gzip tar): ".len()..],
        (None, Some(i)) => &line[i + ":t: ".len()..],
        (None, None) => line.trim_start_matches("error: "),
    };
    short(line, 200)
}

fn run_one(reg: &Registry, n: usize, file: &str, path: &Path) -> Outcome {
    let raw = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let size = raw.len();
    let done = |class, reason: String| Outcome {
        file: file.to_string(),
        size,
        class,
        reason,
    };
    let tar = match tar_bytes(file, raw) {
        Ok(t) => t,
        Err(e) => panic!("{file}: cannot decode the corpus file: {e}"),
    };
    let largest = largest_member(&tar);
    if largest > MAX_MEMBER {
        return done(Skipped, format!("a member of {largest} bytes"));
    }
    let work = tempfile::Builder::new()
        .prefix("wyrcan-corpus-")
        .tempdir()
        .unwrap();
    if std::env::var_os("WYRCAN_TAR_CORPUS_KEEP").is_some() {
        eprintln!("{file}: work dir kept at {}", work.path().display());
    }
    let tar_file = work.path().join("layer.tar");
    fs::write(&tar_file, &tar).unwrap();
    let image = one_layer(&tar);

    let oracle = oracle(work.path(), &tar_file, &image);

    let repo = format!("corpus/f{n}");
    push_blob(reg, &repo, &image.config);
    push_blob(reg, &repo, &image.layer);
    push_manifest(reg, &repo, "t", &image.manifest);
    let out = work.path().join("wyrcan");
    let home = work.path().join("home");
    fs::create_dir(&home).unwrap();
    let wyrcan = wyrcan_unpack(reg, &repo, &out, &home);

    if std::env::var_os("WYRCAN_TAR_CORPUS_KEEP").is_some() {
        let _ = work.keep();
    }
    match (oracle, wyrcan) {
        (Err(o), Err(w)) => done(RefusedByBoth, format!("{o}; wyrcan: {w}")),
        (Err(o), Ok(())) => done(RefusedByOracle, o),
        (Ok((_, note)), Err(w)) => done(RefusedByWyrcan, format!("{note}wyrcan: {w}")),
        (Ok((root, note)), Ok(())) => {
            let expected = snapshot(&root);
            let actual = snapshot(&out);
            match compare(&expected, &actual, &[]) {
                Ok(()) => done(Equal, note.trim_end_matches("; ").to_string()),
                Err(e) => {
                    let mut lines = e.lines();
                    let head = lines.next().unwrap_or("");
                    let first = lines.next().unwrap_or("").trim();
                    done(Differs, format!("{note}{head} {}", short(first, 200)))
                }
            }
        }
    }
}

// ---------------------------------------------------------------- corpus

/// Every file under `root` (relative paths, sorted), SOURCES and licence
/// texts left out.
fn corpus_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(projects) = fs::read_dir(root) else {
        return out;
    };
    for project in projects {
        let project = project.unwrap();
        if !project.file_type().unwrap().is_dir() {
            continue;
        }
        for f in fs::read_dir(project.path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            if !f.file_type().unwrap().is_file() || name.starts_with("LICENSE") || name == "COPYING"
            {
                continue;
            }
            out.push(format!("{}/{name}", project.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}

fn committed_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tar-corpus")
}

fn extra_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WYRCAN_TAR_CORPUS_EXTRA") {
        return Some(PathBuf::from(dir));
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tar-corpus");
    beside.is_dir().then_some(beside)
}

#[test]
fn corpus_flattens_like_the_oracle() {
    let start = Instant::now();
    let reg = registry::shared();
    let mut jobs: Vec<(String, PathBuf)> = Vec::new();
    let mut problems: Vec<String> = Vec::new();

    let committed = committed_root();
    let found = corpus_files(&committed);
    for f in &found {
        if !COMMITTED.iter().any(|(e, _, _)| e == f) {
            problems.push(format!(
                "{f}: committed but has no expectation in COMMITTED"
            ));
        }
        jobs.push((f.clone(), committed.join(f)));
    }
    for (e, _, _) in COMMITTED {
        if !found.iter().any(|f| f == e) {
            problems.push(format!(
                "{e}: expected in COMMITTED but not in {}",
                committed.display()
            ));
        }
    }
    let extra = extra_root();
    if let Some(root) = &extra {
        let committed_found = jobs.len();
        let found = corpus_files(root);
        for f in &found {
            if jobs[..committed_found].iter().any(|(j, _)| j == f) {
                continue;
            }
            if !EXTRA.iter().any(|(e, _, _)| e == f) && !COMMITTED.iter().any(|(e, _, _)| e == f) {
                problems.push(format!(
                    "{f}: extra corpus file without an expectation in EXTRA"
                ));
            }
            jobs.push((f.clone(), root.join(f)));
        }
        let missing = EXTRA
            .iter()
            .filter(|(e, _, _)| !found.iter().any(|f| f == e))
            .count();
        if missing > 0 {
            eprintln!(
                "note: {missing} file(s) of EXTRA are not in {}",
                root.display()
            );
        }
    }

    // For looking into one file: run only the files whose name holds this.
    if let Ok(only) = std::env::var("WYRCAN_TAR_CORPUS_ONLY") {
        jobs.retain(|(f, _)| f.contains(&only));
    }

    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some((file, path)) = jobs.get(n) else {
                    break;
                };
                if start.elapsed() > BUDGET {
                    outcomes.lock().unwrap().push(Outcome {
                        file: file.clone(),
                        size: 0,
                        class: Skipped,
                        reason: format!("not run: over the {BUDGET:?} budget"),
                    });
                    continue;
                }
                let o = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_one(reg, n, file, path)
                }))
                .unwrap_or_else(|e| Outcome {
                    file: file.clone(),
                    size: 0,
                    class: Skipped,
                    reason: format!(
                        "harness error: {}",
                        e.downcast_ref::<String>()
                            .map(String::as_str)
                            .or(e.downcast_ref::<&str>().copied())
                            .unwrap_or("panic")
                    ),
                });
                outcomes.lock().unwrap().push(o);
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| a.file.cmp(&b.file));

    // The table.
    let mut counts = std::collections::BTreeMap::new();
    eprintln!(
        "\n{:<62} {:>8}  {:<22} {:<22} reason",
        "file", "bytes", "result", "expected"
    );
    for o in &outcomes {
        let expected = COMMITTED
            .iter()
            .chain(EXTRA)
            .find(|(e, _, _)| *e == o.file)
            .map(|(_, c, _)| *c);
        *counts.entry(o.class.label()).or_insert(0) += 1;
        let mark = match expected {
            Some(c) if c == o.class => "",
            Some(_) => " <-- changed",
            None => " <-- no expectation",
        };
        eprintln!(
            "{:<62} {:>8}  {:<22} {:<22} {}{mark}",
            o.file,
            o.size,
            o.class.label(),
            expected.map_or("-", Class::label),
            o.reason
        );
        match expected {
            Some(Equal) if o.class != Equal => problems.push(format!(
                "{}: expected equal, got {}: {}",
                o.file,
                o.class.label(),
                o.reason
            )),
            Some(c) if c != o.class => eprintln!(
                "note: {} was expected {}, is now {}: update its expectation",
                o.file,
                c.label(),
                o.class.label()
            ),
            _ => {}
        }
    }
    eprintln!(
        "\n{} files in {:.0?}: {}",
        outcomes.len(),
        start.elapsed(),
        counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(problems.is_empty(), "corpus:\n  {}", problems.join("\n  "));
}
