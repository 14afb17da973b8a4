//! Blobs: small ones (configs) verified in memory, big ones (layers)
//! downloaded resumably: bytes are hashed as they are written, a cut
//! resumes with `Range`, and a file whose digest or size is wrong is never
//! handed back as done. Every attempt has a deadline from the bytes still
//! missing and a rate floor (`pace`).

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

use anyhow::anyhow;
use tracing::{debug, warn};
use wyrcan_core::digest::{Digest, Hasher};
use wyrcan_core::manifest::Descriptor;

use super::pace::{is_stall, is_timeout, Pace};
use super::transport::{content_range_start, read_limited, with_what, Auth, Failure};
use super::{Endpoint, RegistryError};

/// Attempts that fail after making progress resume without counting against
/// `retries`, so a flaky link still finishes a big layer; this caps them.
/// Cuts for slowness always count against `retries` (a drip makes
/// progress too), so a download makes at most `retries + 1 +
/// MAX_PROGRESS_RESUMES` attempts, each within its deadline.
const MAX_PROGRESS_RESUMES: u32 = 32;
/// Upper bound of a blob read into memory by [`Endpoint::fetch_blob_bytes`]
/// (image configs are kilobytes; this only stops a hostile descriptor from
/// making us allocate gigabytes).
const MAX_BLOB_IN_MEMORY: u64 = 64 << 20;
/// Read buffer for blob bodies.
const CHUNK: usize = 256 << 10;

/// Hears a blob's bytes as they land in the output file, in file order
/// from byte 0 (the bytes an earlier attempt left there included), so a
/// reader can work while the download goes on. Nothing it heard is
/// verified until the download returns `Ok`.
pub trait BlobTee {
    /// The output was emptied and the download starts over: everything
    /// heard so far is void.
    fn restart(&mut self);
    /// The next bytes of the file.
    fn data(&mut self, bytes: &[u8]);
}

/// A [`BlobTee`] that hears nothing.
pub struct NoTee;

impl BlobTee for NoTee {
    fn restart(&mut self) {}
    fn data(&mut self, _: &[u8]) {}
}

impl Endpoint {
    /// GET a small blob (an image config) into memory, verified against
    /// `desc.digest` and `desc.size`. Blobs over 64 MiB are refused: stream
    /// those with [`Endpoint::download_blob`].
    pub fn fetch_blob_bytes(&self, desc: &Descriptor) -> anyhow::Result<Vec<u8>> {
        let digest = &desc.digest;
        if desc.size > MAX_BLOB_IN_MEMORY {
            anyhow::bail!(
                "blob {digest} of {} is {} bytes, too big to hold in memory (limit {MAX_BLOB_IN_MEMORY})",
                self.image,
                desc.size
            );
        }
        let what = || format!("fetching blob {digest} of {}", self.image);
        self.retrying(what, || {
            let url = self.blob_url(digest)?;
            let deadline = self.limits.for_size(desc.size);
            let sent = self.send(&url, &[], Auth::Registry, &deadline)?;
            match sent.resp.status().as_u16() {
                200 => {}
                404 => return Err(Failure::fatal(self.blob_not_found(digest, &sent.url))),
                _ => return Err(self.status_failure(&sent)),
            }
            // More than the size is wrong whatever it holds: do not read it all.
            let pace = Pace::start(self.limits, deadline);
            let body = read_limited(sent.resp, desc.size, &sent.url, pace)?.ok_or_else(|| {
                Failure::transient(RegistryError::SizeMismatch {
                    what: format!("blob {digest}"),
                    url: sent.url.clone(),
                    expected: desc.size,
                    actual: desc.size + 1,
                })
            })?;
            if body.len() as u64 != desc.size {
                return Err(Failure::transient(RegistryError::SizeMismatch {
                    what: format!("blob {digest}"),
                    url: sent.url,
                    expected: desc.size,
                    actual: body.len() as u64,
                }));
            }
            let actual = Digest::of(&body);
            if actual != *digest {
                return Err(Failure::transient(RegistryError::DigestMismatch {
                    what: format!("blob {digest}"),
                    url: sent.url,
                    expected: digest.clone(),
                    actual,
                }));
            }
            Ok(body)
        })
    }

    /// Download a blob into `out` (opened read+write; it is truncated first),
    /// verifying its sha256 and size as the bytes arrive. `progress` gets the
    /// number of bytes held so far; it goes back to 0 when a download has to
    /// start over.
    ///
    /// Transient failures (connect errors, timeouts, resets, a truncated
    /// body, HTTP 408/429/5xx, a cut for slowness) are retried with
    /// exponential backoff up to `retries` times and resume with
    /// `Range: bytes=N-` when the server answers 206; a 200 restarts from 0.
    /// Attempts that made progress before failing do not use up the retries
    /// (up to [`MAX_PROGRESS_RESUMES`] of them), unless they were cut for
    /// slowness. A digest mismatch starts over from scratch, with a warning,
    /// and is an error once the retries are spent: this never returns `Ok`
    /// with the wrong bytes in `out`.
    ///
    /// With `resume`, the bytes already in `out` (an earlier pull's, cut
    /// short) are hashed and the download continues after them.
    ///
    /// `tee` hears every byte of `out` in order, and every start over.
    pub fn download_blob(
        &self,
        desc: &Descriptor,
        out: &mut File,
        resume: bool,
        progress: &(dyn Fn(u64) + Sync),
        tee: &mut dyn BlobTee,
    ) -> anyhow::Result<()> {
        let digest = &desc.digest;
        let mut st = Partial {
            hasher: Hasher::new(),
            written: 0,
            tee,
        };
        if !resume || !st.resume(out, desc).map_err(|f| f.err)? {
            st.reset(out, digest).map_err(|f| f.err)?;
        }
        if st.written == desc.size && st.written > 0 {
            // Complete already: no request (a Range past the end is a 416).
            let hasher = std::mem::replace(&mut st.hasher, Hasher::new());
            if hasher.finish() == *digest {
                progress(st.written);
                return Ok(());
            }
            st.reset(out, digest).map_err(|f| f.err)?;
        }
        if st.written > 0 {
            tracing::info!(
                "blob {} of {}: resuming after {} of {} bytes from an earlier attempt",
                digest.short(),
                self.image,
                st.written,
                desc.size
            );
            progress(st.written);
        }
        let mut failures = 0u32;
        let mut resumes = 0u32;
        // Bounded: each pass either returns or increments `failures` (at most
        // retries + 1) or `resumes` (at most MAX_PROGRESS_RESUMES), and each
        // attempt ends by its deadline.
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
            if st.written > before && resumes < MAX_PROGRESS_RESUMES && !is_stall(&f.err) {
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
        let deadline = self.limits.for_size(size.saturating_sub(st.written));
        let sent = self.send(&url, &headers, Auth::Registry, &deadline)?;
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
        let mut pace = Pace::start(self.limits, deadline);
        let mut buf = vec![0u8; CHUNK];
        // Bounded: every pass adds at least one byte to `written`, which may
        // not pass `size`, or leaves the loop.
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                // All bytes are here; a reset while closing does not matter.
                Err(_) if st.written == size => break,
                Err(e) if is_timeout(&e) => return Err(pace.read_failure(&final_url, e)),
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
            st.tee.data(&buf[..n]);
            st.written += n as u64;
            progress(st.written);
            if st.written < size {
                pace.add(n, &final_url)?;
            }
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
struct Partial<'t> {
    hasher: Hasher,
    written: u64,
    tee: &'t mut dyn BlobTee,
}

impl Partial<'_> {
    /// Take the bytes already in `out` as downloaded: hash them and
    /// continue after them. False (start over) when there are more than
    /// the blob has. A complete file is still checked by the next request's
    /// end: a full one is verified here and returns without a request.
    fn resume(&mut self, out: &mut File, desc: &Descriptor) -> Result<bool, Failure> {
        let fail = |e: std::io::Error| {
            Failure::fatal(anyhow::Error::new(e).context(format!(
                "reading the partial download of blob {}",
                desc.digest
            )))
        };
        let len = out.metadata().map_err(fail)?.len();
        if len == 0 || len > desc.size {
            return Ok(false);
        }
        out.seek(SeekFrom::Start(0)).map_err(fail)?;
        let mut buf = vec![0u8; CHUNK];
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = out.read(&mut buf[..want]).map_err(fail)?;
            if n == 0 {
                return Ok(false);
            }
            self.hasher.update(&buf[..n]);
            self.tee.data(&buf[..n]);
            left -= n as u64;
        }
        self.written = len;
        Ok(true)
    }

    /// Start over: empty file, fresh hasher.
    fn reset(&mut self, out: &mut File, digest: &Digest) -> Result<(), Failure> {
        self.hasher = Hasher::new();
        self.written = 0;
        self.tee.restart();
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
