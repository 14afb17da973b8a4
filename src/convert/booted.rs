//! `/etc/wyrcan/booted.json` appended to a finished initrd as one more
//! archive (compressed like the rest), once the final cmdline is known:
//! the kernel applies concatenated archives in order, so this record wins
//! over any older one in the image (a chain-booted Wyrcan replaces its
//! predecessor's).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};
use wyrcan_core::booted::{self, Booted, Kernel};
use wyrcan_core::cpio;
use wyrcan_core::digest::Hasher;
use wyrcan_core::manifest::Platform;
use wyrcan_core::tree::{Meta, Sink};

use super::{EtcState, OutputCompression};
use crate::pull::Resolved;

/// Everything the record says, besides what the pull resolved.
pub struct Facts<'a> {
    /// The reference as the user gave it.
    pub given: &'a str,
    /// The platform booted.
    pub platform: &'a Platform,
    /// The kernel's path in the image.
    pub kernel_path: &'a str,
    /// The next kernel's cmdline.
    pub cmdline: &'a str,
}

/// sha256 of a whole file, hex.
pub fn sha256_of(f: &File) -> Result<String> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = f.read_at(&mut buf, off).context("reading the kernel")?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    let d = h.finish().to_string();
    Ok(d.strip_prefix("sha256:").unwrap_or(&d).to_string())
}

/// The record for this boot.
pub fn record(r: &Resolved, facts: &Facts<'_>, kernel: &File) -> Result<Booted> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(Booted {
        version: 1,
        reference: facts.given.to_string(),
        registry: r.reference.registry().to_string(),
        repository: r.reference.repository().to_string(),
        manifest_digest: r.manifest_digest.to_string(),
        platform: facts.platform.to_string(),
        kernel: Kernel {
            path: facts.kernel_path.to_string(),
            sha256: sha256_of(kernel)?,
        },
        cmdline: facts.cmdline.to_string(),
        wyrcan_version: env!("CARGO_PKG_VERSION").to_string(),
        time: booted::rfc3339(now),
        policy: r.verdict.clone(),
        tpm: None,
    })
}

/// Append the record to `initrd` as a last archive. Skipped (with a
/// warning) when the image's `/etc` is not a directory.
pub fn append(
    initrd: &mut File,
    compression: OutputCompression,
    etc: EtcState,
    b: &Booted,
) -> Result<()> {
    let mut w = cpio::Writer::new(Vec::new());
    let dir = Meta {
        mode: 0o755,
        ..Meta::IMPLIED_DIR
    };
    match etc {
        EtcState::Dir => {}
        EtcState::Missing => w.dir(b"etc", &dir)?,
        EtcState::Other => {
            tracing::warn!("the image's /etc is not a directory: no /etc/wyrcan/booted.json");
            return Ok(());
        }
    }
    w.dir(b"etc/wyrcan", &dir)?;
    let json = b.to_json();
    let file = Meta {
        mode: 0o644,
        mtime: 0,
        uid: 0,
        gid: 0,
    };
    w.file(
        &[booted::PATH.as_bytes().to_vec()],
        &file,
        json.len() as u64,
        &mut &json[..],
    )?;
    // Plain, it starts 4-byte aligned: the initrd's own archives end so.
    let bytes = compress_archive(w.finish()?, compression)?;
    initrd.seek(SeekFrom::End(0))?;
    initrd
        .write_all(&bytes)
        .context("appending /etc/wyrcan/booted.json to the initrd")?;
    Ok(())
}

/// A small archive compressed as a whole (a last archive, the stage 2's).
pub(super) fn compress_archive(cpio: Vec<u8>, c: OutputCompression) -> Result<Vec<u8>> {
    Ok(match c {
        OutputCompression::Zstd(level) => zstd::encode_all(&cpio[..], level)?,
        OutputCompression::Gzip(level) => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            gz.write_all(&cpio)?;
            gz.finish()?
        }
        OutputCompression::None => cpio,
    })
}
