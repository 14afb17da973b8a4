//! Resumable, verified blob downloads: bytes are hashed as they are
//! written, a cut resumes with `Range`, and a file whose digest or size is
//! wrong is never handed back as done.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

use anyhow::anyhow;
use tracing::{debug, warn};
use wyrcan_core::digest::{Digest, Hasher};
use wyrcan_core::manifest::Descriptor;

use super::transport::{content_range_start, with_what, Auth, Failure};
use super::{Client, RegistryError};

/// Attempts that fail after making progress resume without counting against
/// `retries`, so a flaky link still finishes a big layer; this caps them.
const MAX_PROGRESS_RESUMES: u32 = 32;
/// Read buffer for blob bodies.
const CHUNK: usize = 256 << 10;

impl Client {
    /// Download a blob into `out` (opened read+write; it is truncated first),
    /// verifying its sha256 and size as the bytes arrive. `progress` gets the
    /// number of bytes held so far; it goes back to 0 when a download has to
    /// start over.
    ///
    /// Transient failures (connect errors, timeouts, resets, a truncated
    /// body, HTTP 408/429/5xx) are retried with exponential backoff up to
    /// `retries` times and resume with `Range: bytes=N-` when the server
    /// answers 206; a 200 restarts from 0. Attempts that made progress before
    /// failing do not use up the retries. A digest mismatch starts over from
    /// scratch, with a warning, and is an error once the retries are spent:
    /// this never returns `Ok` with the wrong bytes in `out`.
    pub fn download_blob(
        &self,
        desc: &Descriptor,
        out: &mut File,
        progress: &(dyn Fn(u64) + Sync),
    ) -> anyhow::Result<()> {
        let digest = &desc.digest;
        let mut st = Partial {
            hasher: Hasher::new(),
            written: 0,
        };
        st.reset(out, digest).map_err(|f| f.err)?;
        let mut failures = 0u32;
        let mut resumes = 0u32;
        // Bounded: each pass either returns or increments `failures` (at most
        // retries + 1) or `resumes` (at most MAX_PROGRESS_RESUMES).
        loop {
            let before = st.written;
            let f = match self.blob_attempt(desc, out, &mut st, progress) {
                Ok(()) => return Ok(()),
                Err(f) => f,
            };
            let what = format!("downloading blob {digest} of {}", self.image);
            if !f.transient {
                return Err(with_what(f.err, || what));
            }
            if st.written > before && resumes < MAX_PROGRESS_RESUMES {
                resumes += 1;
            } else {
                failures += 1;
            }
            if failures > self.retries {
                let attempts = failures + resumes;
                return Err(f
                    .err
                    .context(format!("{what}: giving up after {attempts} attempts")));
            }
            let delay = self.delay(failures.saturating_sub(1), f.retry_after);
            warn!(
                "{what}: {:#}; retrying in {delay:?} (have {} of {} bytes)",
                f.err, st.written, desc.size
            );
            std::thread::sleep(delay);
        }
    }

    /// One GET of a blob into `out`, continuing from `st`.
    fn blob_attempt(
        &self,
        desc: &Descriptor,
        out: &mut File,
        st: &mut Partial,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), Failure> {
        let digest = &desc.digest;
        let size = desc.size;
        let url = self.blob_url(digest)?;
        let mut headers = Vec::new();
        if st.written > 0 {
            headers.push(("Range", format!("bytes={}-", st.written)));
        }
        let sent = self.send(&url, &headers, Auth::Registry)?;
        match sent.resp.status().as_u16() {
            200 => {
                if st.written > 0 {
                    debug!("{}: range not honoured (200), starting over", sent.url);
                    st.reset(out, digest)?;
                    progress(0);
                }
            }
            206 => {
                let range = sent
                    .resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok());
                let start = range.and_then(content_range_start);
                if start != Some(st.written) {
                    // Bytes from elsewhere in the blob would corrupt the hash.
                    st.reset(out, digest)?;
                    progress(0);
                    return Err(Failure::transient(anyhow!(
                        "{} answered 206 with Content-Range {range:?}, not from byte {}",
                        sent.url,
                        st.written
                    )));
                }
            }
            404 => return Err(Failure::fatal(self.blob_not_found(digest, &sent.url))),
            416 => {
                st.reset(out, digest)?;
                progress(0);
                return Err(Failure::transient(RegistryError::Status {
                    url: sent.url,
                    status: 416,
                }));
            }
            _ => return Err(self.status_failure(&sent)),
        }

        let what = format!("blob {digest}");
        let final_url = sent.url;
        let mut reader = sent.resp.into_body().into_reader();
        let mut buf = vec![0u8; CHUNK];
        // Bounded: every pass adds at least one byte to `written`, which may
        // not pass `size`, or leaves the loop.
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                // All bytes are here; a reset while closing does not matter.
                Err(_) if st.written == size => break,
                Err(e) => {
                    return Err(Failure::transient(anyhow::Error::new(e).context(format!(
                        "reading {what} from {final_url} (have {} of {size} bytes)",
                        st.written
                    ))))
                }
            };
            if st.written + n as u64 > size {
                let actual = st.written + n as u64;
                warn!("{what} from {final_url} is longer than the {size} bytes announced: starting over");
                st.reset(out, digest)?;
                progress(0);
                return Err(Failure::transient(RegistryError::SizeMismatch {
                    what,
                    url: final_url,
                    expected: size,
                    actual,
                }));
            }
            st.hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| {
                Failure::fatal(
                    anyhow::Error::new(e).context(format!("writing {what} to its output file")),
                )
            })?;
            st.written += n as u64;
            progress(st.written);
        }
        if st.written < size {
            return Err(Failure::transient(anyhow!(
                "{what} from {final_url} ended after {} of {size} bytes",
                st.written
            )));
        }
        let actual = std::mem::take(&mut st.hasher).finish();
        if actual != *digest {
            warn!("{what} from {final_url} has digest {actual}: starting over");
            st.reset(out, digest)?;
            progress(0);
            return Err(Failure::transient(RegistryError::DigestMismatch {
                what,
                url: final_url,
                expected: digest.clone(),
                actual,
            }));
        }
        Ok(())
    }
}

/// A blob download in progress.
struct Partial {
    hasher: Hasher,
    written: u64,
}

impl Partial {
    /// Start over: empty file, fresh hasher.
    fn reset(&mut self, out: &mut File, digest: &Digest) -> Result<(), Failure> {
        self.hasher = Hasher::new();
        self.written = 0;
        out.set_len(0)
            .and_then(|()| out.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| {
                Failure::fatal(
                    anyhow::Error::new(e)
                        .context(format!("truncating the output file of blob {digest}")),
                )
            })
    }
}
