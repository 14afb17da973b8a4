//! A blocking client for the OCI distribution API: manifests and blobs of one
//! repository, with the auth flows registries use in practice (anonymous or
//! credentialed bearer tokens, HTTP basic), retries with exponential backoff,
//! and resumable, verified blob downloads.
//!
//! Every byte handed back has been checked against the digest that named it:
//! [`Client::fetch_blob_bytes`] and [`Client::fetch_manifest`] (when given a
//! digest) verify in memory, [`Client::download_blob`] hashes while it writes
//! and never returns `Ok` for a file whose digest or size is wrong.
//!
//! The client is synchronous on purpose (see DESIGN.md §5): callers download
//! layers in parallel by sharing one `&Client` across threads. Shared state
//! (the auth header, the scheme chosen for an `--insecure` host) sits behind
//! mutexes; everything else is immutable after [`Client::new`].
//!
//! Redirects are followed here rather than by ureq, so that each hop picks its
//! own TLS policy and the registry's `Authorization` header is only ever sent
//! to the registry itself, never to the CDN or object store a blob redirects to.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tracing::{debug, info, warn};
use ureq::http::{Response, Uri};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Body};
use wyrcan_core::digest::{Digest, Hasher};
use wyrcan_core::manifest::{Descriptor, MANIFEST_ACCEPT};
use wyrcan_core::reference::Reference;

use crate::auth::{self, Challenge, Credentials};

/// Upper bound of a manifest body; the distribution spec asks registries to
/// accept at least 4 MiB, so anything far above is not a manifest.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Upper bound of a blob read into memory by [`Client::fetch_blob_bytes`]
/// (image configs are kilobytes; this only stops a hostile descriptor from
/// making us allocate gigabytes).
const MAX_BLOB_IN_MEMORY: u64 = 64 << 20;
/// Upper bound of a token endpoint answer.
const MAX_TOKEN_BYTES: u64 = 1 << 20;
/// Redirect hops followed per request (registry → CDN is one or two).
const MAX_REDIRECTS: u32 = 10;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Attempts that fail after making progress resume without counting against
/// `retries`, so a flaky link still finishes a big layer; this caps them.
const MAX_PROGRESS_RESUMES: u32 = 32;
/// Read buffer for blob bodies.
const CHUNK: usize = 256 << 10;

/// How to reach a registry: TLS trust, plain-HTTP exceptions, credentials
/// and the retry policy.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`HOST` or `HOST:PORT`) for which plain HTTP and unverified
    /// TLS are allowed. A `HOST` without a port covers every port of that
    /// host. Nothing is insecure unless listed here.
    pub insecure: Vec<String>,
    /// Extra PEM files of CA certificates to trust, on top of the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Credentials to use instead of the ones in the docker/podman auth files.
    pub credentials: Option<Credentials>,
    /// How many times a failed request is retried (so `retries + 1` attempts).
    pub retries: u32,
    /// The first wait between attempts; it doubles after each failure, up to 8 s.
    pub backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: Vec::new(),
            ca_files: Vec::new(),
            credentials: None,
            retries: 5,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Failures a caller may want to tell apart, e.g. to tell the user what to
/// do. They reach callers inside an `anyhow::Error`; find them with
/// [`RegistryError::find`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry answered 401/403 even after authenticating (or there
    /// was nothing to authenticate with).
    #[error("registry {registry} refused access to {repository} ({status}): check the credentials (--creds USER:PASS or docker/podman login)")]
    Unauthorized {
        /// The registry as named in the image reference.
        registry: String,
        /// The repository path.
        repository: String,
        /// The HTTP status (401 or 403).
        status: u16,
    },
    /// The manifest endpoint answered 404.
    #[error("image {image} not found at {registry}: check the name and tag")]
    ManifestNotFound {
        /// The image, with the tag or digest asked for.
        image: String,
        /// The registry as named in the image reference.
        registry: String,
    },
    /// The blob endpoint answered 404.
    #[error("blob {digest} of {image} is missing at {registry} (404 from {url})")]
    BlobNotFound {
        /// The blob's digest.
        digest: Digest,
        /// The image it belongs to.
        image: String,
        /// The registry as named in the image reference.
        registry: String,
        /// The URL that answered 404.
        url: String,
    },
    /// The bytes received do not hash to the digest that names them.
    #[error("{what} from {url}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched (`blob sha256:…`, `manifest sha256:…`).
        what: String,
        /// Where the bytes came from (after redirects).
        url: String,
        /// The digest that names the content.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// More or fewer bytes than the descriptor's size.
    #[error("{what} from {url}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was fetched.
        what: String,
        /// Where the bytes came from (after redirects).
        url: String,
        /// The size in the descriptor.
        expected: u64,
        /// How many bytes arrived (a lower bound when the body was too long).
        actual: u64,
    },
    /// An HTTP status we do not handle.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL that answered.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The TLS handshake failed: an unknown CA, a name mismatch, an expired
    /// certificate. Not retried: it does not fix itself.
    #[error("TLS with {host} failed ({detail}): trust its CA with --ca FILE, or allow it with --insecure {host}")]
    Tls {
        /// The URL requested.
        url: String,
        /// The server's `host[:port]`.
        host: String,
        /// What TLS said.
        detail: String,
    },
    /// Connecting or reading the answer failed.
    #[error("requesting {url}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What went wrong.
        #[source]
        source: ureq::Error,
    },
}

impl RegistryError {
    /// The first `RegistryError` in an error's chain, if any.
    pub fn find(err: &anyhow::Error) -> Option<&RegistryError> {
        err.chain().find_map(|e| e.downcast_ref::<RegistryError>())
    }
}

/// Whether trying the whole operation again later may help: connection
/// failures and server errors, not "not found" or "access refused".
pub fn worth_retrying(err: &anyhow::Error) -> bool {
    matches!(
        RegistryError::find(err),
        Some(RegistryError::Transport { .. } | RegistryError::Status { .. })
    )
}

/// A manifest (or index) as received, with the digest of its exact bytes.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The body, byte for byte: its digest is what a reference pins.
    pub body: Vec<u8>,
    /// The `Content-Type` the registry sent, which names the manifest's media type.
    pub content_type: Option<String>,
    /// sha256 of `body`.
    pub digest: Digest,
}

/// A client for one repository of one registry. `Send + Sync`: share it by
/// reference (or `Arc`) between download threads.
pub struct Client {
    /// The registry as written in the reference (`docker.io`), for messages.
    registry: String,
    /// Where the API answers (`registry-1.docker.io`, `host:port`).
    api_host: String,
    /// `api_host` split, lowercased, for comparing against URLs.
    api_origin: (String, Option<u16>),
    repository: String,
    /// The reference as given, for messages.
    image: String,
    insecure: Vec<String>,
    /// Whether the registry itself is listed in `insecure`.
    registry_insecure: bool,
    credentials: Option<Credentials>,
    retries: u32,
    backoff: Duration,
    /// Verifies TLS against the system roots and `--ca` files.
    verified: Agents,
    /// Skips TLS verification; used only for hosts listed in `insecure`.
    unverified: Agents,
    /// `http` or `https` for an insecure registry, found by the first request.
    scheme: Mutex<Option<&'static str>>,
    /// The `Authorization` value for the registry, once a challenge was met.
    auth: Mutex<Option<String>>,
}

/// Why one attempt failed, and whether another attempt may succeed.
struct Failure {
    err: anyhow::Error,
    transient: bool,
    /// The server's `Retry-After`, when it sent one.
    retry_after: Option<Duration>,
}

impl Failure {
    fn fatal(err: impl Into<anyhow::Error>) -> Self {
        Failure {
            err: err.into(),
            transient: false,
            retry_after: None,
        }
    }

    fn transient(err: impl Into<anyhow::Error>) -> Self {
        Failure {
            err: err.into(),
            transient: true,
            retry_after: None,
        }
    }

    fn transport(url: &str, source: ureq::Error) -> Self {
        if is_tls_failure(&source) {
            let host = url
                .parse::<Uri>()
                .ok()
                .and_then(|u| u.authority().map(|a| a.to_string()))
                .unwrap_or_default();
            return Failure::fatal(RegistryError::Tls {
                url: url.to_string(),
                host,
                detail: source.to_string(),
            });
        }
        let transient = is_transient(&source);
        Failure {
            err: RegistryError::Transport {
                url: url.to_string(),
                source,
            }
            .into(),
            transient,
            retry_after: None,
        }
    }
}

/// Which `Authorization` header a request carries.
enum Auth<'a> {
    /// The registry's cached credentials, sent only to the registry's own
    /// host; a 401 from it runs the challenge flow.
    Registry,
    /// A fixed header for the first URL's origin only (the token endpoint).
    Fixed(Option<&'a str>),
}

/// A response and the URL that produced it (after redirects).
struct Sent {
    resp: Response<Body>,
    url: String,
}

impl Client {
    /// A client for `reference`'s repository. Reads the `--ca` files and the
    /// system roots now, so a bad CA file fails here rather than mid-pull;
    /// looks up credentials in the auth files unless `opts.credentials` is set.
    pub fn new(reference: &Reference, opts: &ClientOptions) -> anyhow::Result<Client> {
        let registry = reference.registry().to_string();
        let api_host = reference.api_host().to_string();
        let registry_insecure =
            is_insecure(&opts.insecure, &registry) || is_insecure(&opts.insecure, &api_host);
        let (h, p) = split_host_port(&api_host);
        let api_origin = (h.to_ascii_lowercase(), p);

        let credentials = match &opts.credentials {
            Some(c) => Some(c.clone()),
            // A broken auth file must not stop a pull that needs no credentials.
            None => auth::lookup(&registry).unwrap_or_else(|e| {
                warn!("ignoring the auth files: {e:#}");
                None
            }),
        };

        let roots = root_certs(&opts.ca_files)?;
        let verified = Agents::new(TlsConfig::builder().root_certs(roots).build());
        let unverified = Agents::new(TlsConfig::builder().disable_verification(true).build());
        if registry_insecure {
            warn!("registry {registry} is insecure: plain HTTP or unverified TLS (image digests are still verified)");
        }

        Ok(Client {
            registry,
            api_host,
            api_origin,
            repository: reference.repository().to_string(),
            image: reference.to_string(),
            insecure: opts.insecure.clone(),
            registry_insecure,
            credentials,
            retries: opts.retries,
            backoff: opts.backoff,
            verified,
            unverified,
            scheme: Mutex::new(None),
            auth: Mutex::new(None),
        })
    }

    /// GET `/v2/<repo>/manifests/<reference>` (a tag or a digest) with
    /// `Accept: MANIFEST_ACCEPT`. Returns the body, its content type and the
    /// sha256 of the body. With `expected`, a body that hashes differently is
    /// retried and then an error; it is never returned.
    pub fn fetch_manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> anyhow::Result<FetchedManifest> {
        let what = || format!("fetching manifest {}", self.image_at(reference));
        self.retrying(what, || {
            let url = format!(
                "{}/v2/{}/manifests/{reference}",
                self.base()?,
                self.repository
            );
            let sent = self.send(
                &url,
                &[("Accept", MANIFEST_ACCEPT.to_string())],
                Auth::Registry,
            )?;
            match sent.resp.status().as_u16() {
                200 => {}
                404 => {
                    return Err(Failure::fatal(RegistryError::ManifestNotFound {
                        image: self.image_at(reference),
                        registry: self.registry.clone(),
                    }))
                }
                _ => return Err(self.status_failure(&sent)),
            }
            let header = |name: &str| {
                sent.resp
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let content_type = header("content-type");
            let announced = header("docker-content-digest");
            let body =
                read_limited(sent.resp, MAX_MANIFEST_BYTES, &sent.url)?.ok_or_else(|| {
                    Failure::fatal(anyhow!(
                        "{}: manifest is larger than {MAX_MANIFEST_BYTES} bytes",
                        sent.url
                    ))
                })?;
            let digest = Digest::of(&body);
            if let Some(expected) = expected {
                if *expected != digest {
                    return Err(Failure::transient(RegistryError::DigestMismatch {
                        what: format!("manifest {expected}"),
                        url: sent.url,
                        expected: expected.clone(),
                        actual: digest,
                    }));
                }
            } else if let Some(announced) = announced.filter(|a| *a != digest.to_string()) {
                // Only informative: the body's own hash is what gets pinned.
                debug!(
                    "{}: Docker-Content-Digest {announced} differs from the body's {digest}",
                    sent.url
                );
            }
            Ok(FetchedManifest {
                body,
                content_type,
                digest,
            })
        })
    }

    /// GET a small blob (an image config) into memory, verified against
    /// `desc.digest` and `desc.size`. Blobs over 64 MiB are refused: stream
    /// those with [`Client::download_blob`].
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
            let sent = self.send(&url, &[], Auth::Registry)?;
            match sent.resp.status().as_u16() {
                200 => {}
                404 => return Err(Failure::fatal(self.blob_not_found(digest, &sent.url))),
                _ => return Err(self.status_failure(&sent)),
            }
            // More than the size is wrong whatever it holds: do not read it all.
            let body = read_limited(sent.resp, desc.size, &sent.url)?.ok_or_else(|| {
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

    /// Run `op` until it succeeds, fails for good, or the retries are spent.
    fn retrying<T>(
        &self,
        what: impl Fn() -> String,
        mut op: impl FnMut() -> Result<T, Failure>,
    ) -> anyhow::Result<T> {
        // Bounded by `retries`.
        for attempt in 0.. {
            match op() {
                Ok(v) => return Ok(v),
                Err(f) if !f.transient => return Err(with_what(f.err, what)),
                Err(f) if attempt >= self.retries => {
                    return Err(f.err.context(format!(
                        "{}: giving up after {} attempts",
                        what(),
                        attempt + 1
                    )))
                }
                Err(f) => {
                    let delay = self.delay(attempt, f.retry_after);
                    warn!(
                        "{}: {:#}; retrying in {delay:?} ({}/{})",
                        what(),
                        f.err,
                        attempt + 1,
                        self.retries
                    );
                    std::thread::sleep(delay);
                }
            }
        }
        unreachable!("the retry loop returns")
    }

    /// The wait before retry number `failures` (0-based).
    fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = backoff_delay(self.backoff, failures);
        // Honour the server's request, but never wait longer than the cap.
        retry_after.map_or(backoff, |r| backoff.max(r.min(MAX_BACKOFF)))
    }

    /// `scheme://api_host`. For an insecure registry the first call finds out
    /// whether it speaks plain HTTP or only TLS.
    fn base(&self) -> Result<String, Failure> {
        if !self.registry_insecure {
            return Ok(format!("https://{}", self.api_host));
        }
        let mut scheme = lock(&self.scheme);
        if let Some(s) = *scheme {
            return Ok(format!("{s}://{}", self.api_host));
        }
        let found = self.probe_scheme()?;
        *scheme = Some(found);
        Ok(format!("{found}://{}", self.api_host))
    }

    /// Plain HTTP first; a TLS-only server refuses it (connection error, or
    /// Go's "400 client sent an HTTP request to an HTTPS server"), and then
    /// HTTPS without verification is tried.
    fn probe_scheme(&self) -> Result<&'static str, Failure> {
        let http_url = format!("http://{}/v2/", self.api_host);
        let http_err = match self.agent_for_url(&http_url).get(&http_url).call() {
            // `http://` redirected to `https://`: the server wants TLS.
            Ok(r) if r.status().is_redirection() && location_is_https(&r) => None,
            Ok(r) if r.status().as_u16() != 400 => {
                debug!("insecure registry {} speaks plain HTTP", self.api_host);
                return Ok("http");
            }
            Ok(_) => None,
            Err(e) => Some(e),
        };
        let https_url = format!("https://{}/v2/", self.api_host);
        match self.agent_for_url(&https_url).get(&https_url).call() {
            Ok(_) => {
                debug!("insecure registry {} speaks TLS only", self.api_host);
                Ok("https")
            }
            // Something answered HTTP (if only with 400): keep to it.
            Err(_) if http_err.is_none() => Ok("http"),
            Err(e) => Err(Failure::transport(&https_url, e)),
        }
    }

    fn blob_url(&self, digest: &Digest) -> Result<String, Failure> {
        Ok(format!(
            "{}/v2/{}/blobs/{digest}",
            self.base()?,
            self.repository
        ))
    }

    /// `registry/repo:tag` or `registry/repo@digest`, for messages.
    fn image_at(&self, reference: &str) -> String {
        let sep = if reference.contains(':') { '@' } else { ':' };
        format!("{}/{}{sep}{reference}", self.registry, self.repository)
    }

    fn blob_not_found(&self, digest: &Digest, url: &str) -> RegistryError {
        RegistryError::BlobNotFound {
            digest: digest.clone(),
            image: self.image.clone(),
            registry: self.registry.clone(),
            url: url.to_string(),
        }
    }

    fn unauthorized(&self, status: u16) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            status,
        }
    }

    /// A failure for a status the caller does not handle itself.
    fn status_failure(&self, sent: &Sent) -> Failure {
        let status = sent.resp.status().as_u16();
        let uri: Option<Uri> = sent.url.parse().ok();
        let from_registry = uri.as_ref().is_some_and(|u| self.is_registry(u));
        let err = RegistryError::Status {
            url: sent.url.clone(),
            status,
        };
        if from_registry && matches!(status, 401 | 403) {
            return Failure::fatal(self.unauthorized(status));
        }
        // A CDN's 401/403 is usually an expired signed URL: the registry
        // hands out a fresh one on the next attempt.
        let transient = matches!(status, 408 | 429 | 500..=599)
            || (!from_registry && matches!(status, 401 | 403));
        Failure {
            err: err.into(),
            transient,
            retry_after: retry_after(&sent.resp),
        }
    }

    /// Whether `uri` points at the registry's API host.
    fn is_registry(&self, uri: &Uri) -> bool {
        let (host, port) = &self.api_origin;
        origin(uri)
            .is_some_and(|(h, p)| h == *host && p == port.unwrap_or_else(|| default_port(uri)))
    }

    /// The agent for `uri`: unverified TLS only for hosts the user listed,
    /// no proxy for loopback hosts.
    fn agent_for(&self, uri: &Uri) -> &Agent {
        let listed = uri
            .authority()
            .is_some_and(|a| is_insecure(&self.insecure, a.as_str()));
        let agents = if listed {
            &self.unverified
        } else {
            &self.verified
        };
        if uri.host().is_some_and(is_loopback) {
            &agents.direct
        } else {
            &agents.proxied
        }
    }

    fn agent_for_url(&self, url: &str) -> &Agent {
        match url.parse::<Uri>() {
            Ok(uri) => self.agent_for(&uri),
            Err(_) => &self.verified.proxied,
        }
    }

    /// GET `url`, following redirects and answering auth challenges; returns
    /// whatever final status the server gave.
    fn send(&self, url: &str, headers: &[(&str, String)], auth: Auth<'_>) -> Result<Sent, Failure> {
        let mut url = url.to_string();
        let mut authenticated = false;
        let first_origin = url.parse::<Uri>().ok().as_ref().and_then(origin);
        // Bounded: each pass follows a redirect (at most MAX_REDIRECTS) or
        // answers a challenge (at most once), or returns.
        let mut hops = 0;
        loop {
            let uri: Uri = url
                .parse()
                .map_err(|e| Failure::fatal(anyhow!("invalid URL {url:?}: {e}")))?;
            if uri.scheme_str() != Some("https") {
                let allowed = uri.scheme_str() == Some("http")
                    && uri
                        .authority()
                        .is_some_and(|a| is_insecure(&self.insecure, a.as_str()));
                if !allowed {
                    let host = uri.authority().map_or("", |a| a.as_str());
                    return Err(Failure::fatal(anyhow!(
                        "refusing {url}: not HTTPS (allow plain HTTP to this host with --insecure {host})"
                    )));
                }
            }
            let header_value = match &auth {
                Auth::Registry if self.is_registry(&uri) => lock(&self.auth).clone(),
                Auth::Fixed(Some(v)) if origin(&uri) == first_origin => Some(v.to_string()),
                _ => None,
            };
            let mut req = self.agent_for(&uri).get(&url);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(v) = &header_value {
                req = req.header("Authorization", v);
            }
            let resp = req.call().map_err(|e| Failure::transport(&url, e))?;
            let status = resp.status().as_u16();

            if status == 401 && matches!(auth, Auth::Registry) && self.is_registry(&uri) {
                if authenticated {
                    return Err(Failure::fatal(self.unauthorized(401)));
                }
                self.authenticate(&resp, header_value.as_deref())?;
                authenticated = true;
                continue;
            }
            if resp.status().is_redirection() {
                if let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) {
                    hops += 1;
                    if hops > MAX_REDIRECTS {
                        return Err(Failure::fatal(anyhow!(
                            "{url}: more than {MAX_REDIRECTS} redirects"
                        )));
                    }
                    let next = resolve_location(&uri, loc)
                        .ok_or_else(|| Failure::fatal(anyhow!("{url}: bad redirect to {loc:?}")))?;
                    debug!("{url} redirects to {next}");
                    url = next;
                    continue;
                }
            }
            return Ok(Sent { resp, url });
        }
    }

    /// Meet the challenge of a 401: fetch a bearer token, or use basic
    /// credentials. `sent` is the header the refused request carried.
    fn authenticate(&self, resp: &Response<Body>, sent: Option<&str>) -> Result<(), Failure> {
        // Holding the lock across the token request makes threads that were
        // refused together wait for one token instead of each fetching one.
        let mut cached = lock(&self.auth);
        if cached.as_deref() != sent {
            // Another thread already got a newer header: use it.
            return Ok(());
        }
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::parse_challenge)
            .collect();
        let bearer = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }));
        match bearer.or(challenges.first()) {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let token = self.fetch_token(realm, service.as_deref(), scope.as_deref())?;
                *cached = Some(format!("Bearer {token}"));
            }
            Some(Challenge::Basic) => match &self.credentials {
                Some(c) => *cached = Some(c.basic_header()),
                None => return Err(Failure::fatal(self.unauthorized(401))),
            },
            None => {
                return Err(Failure::fatal(anyhow!(
                    "{}: registry {} answered 401 without a challenge we can answer (WWW-Authenticate: {:?})",
                    self.unauthorized(401),
                    self.registry,
                    resp.headers().get("www-authenticate")
                )))
            }
        }
        Ok(())
    }

    /// GET a token from the realm of a bearer challenge, with basic auth
    /// when we have credentials (anonymous pulls work without).
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, Failure> {
        let default_scope = format!("repository:{}:pull", self.repository);
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in [
            ("service", service),
            ("scope", Some(scope.unwrap_or(&default_scope))),
        ] {
            if let Some(v) = v {
                url.push(sep);
                url.push_str(k);
                url.push('=');
                url.push_str(&percent_encode(v));
                sep = '&';
            }
        }
        debug!("fetching a token from {url}");
        let basic = self.credentials.as_ref().map(Credentials::basic_header);
        let sent = self.send(&url, &[], Auth::Fixed(basic.as_deref()))?;
        match sent.resp.status().as_u16() {
            200 => {}
            401 | 403 => {
                return Err(Failure::fatal(
                    self.unauthorized(sent.resp.status().as_u16()),
                ))
            }
            _ => return Err(self.status_failure(&sent)),
        }
        let body = read_limited(sent.resp, MAX_TOKEN_BYTES, &sent.url)?.ok_or_else(|| {
            Failure::fatal(anyhow!(
                "token endpoint {} sent more than {MAX_TOKEN_BYTES} bytes",
                sent.url
            ))
        })?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Failure::fatal(anyhow!(
                "token endpoint {} sent invalid JSON: {e}",
                sent.url
            ))
        })?;
        answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| Failure::fatal(anyhow!("token endpoint {} sent no token", sent.url)))
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain strings: a panic elsewhere cannot leave
    // them half-written, so a poisoned lock is still good to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One TLS policy, through the environment's proxy (`HTTPS_PROXY`, …,
/// honouring `NO_PROXY`) or direct. Loopback hosts always go direct: a proxy
/// cannot reach our loopback (Go's net/http, hence docker and podman, make
/// the same exception).
struct Agents {
    proxied: Agent,
    direct: Agent,
}

impl Agents {
    fn new(tls: TlsConfig) -> Self {
        Agents {
            proxied: new_agent(tls.clone(), ureq::Proxy::try_from_env()),
            direct: new_agent(tls, None),
        }
    }
}

/// `localhost` or a loopback address (`Uri::host` keeps IPv6 brackets).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An agent with our timeouts and user agent, that hands every status and
/// redirect back to us.
fn new_agent(tls: TlsConfig, proxy: Option<ureq::Proxy>) -> Agent {
    Agent::config_builder()
        .proxy(proxy)
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("wyrcan/", env!("CARGO_PKG_VERSION")))
        // Byte ranges and digests are about the bytes as stored: no
        // transparent compression.
        .accept_encoding("")
        .timeout_resolve(Some(Duration::from_secs(10)))
        .timeout_connect(Some(Duration::from_secs(10)))
        // An idle limit, not a total: big layers take as long as they take.
        .timeout_per_read(Some(Duration::from_secs(30)))
        .timeout_per_write(Some(Duration::from_secs(30)))
        .tls_config(tls)
        .build()
        .new_agent()
}

/// Trust anchors: the system's roots plus the `--ca` files. Without any
/// system roots (a bare boot environment) and no `--ca`, the bundled
/// Mozilla roots.
fn root_certs(ca_files: &[PathBuf]) -> anyhow::Result<RootCerts> {
    let mut extra = Vec::new();
    for path in ca_files {
        extra.extend(read_ca_file(path)?);
    }
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        debug!("loading system CA roots: {e}");
    }
    if system.certs.is_empty() && extra.is_empty() {
        info!("no system CA roots found: using the bundled roots");
        return Ok(RootCerts::WebPki);
    }
    if system.certs.is_empty() {
        warn!("no system CA roots found: trusting only the --ca files");
    }
    let mut certs: Vec<Certificate<'static>> = system
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    certs.extend(extra);
    Ok(RootCerts::new_with_certs(&certs))
}

/// The certificates of a PEM file; an error when it holds none.
fn read_ca_file(path: &Path) -> anyhow::Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading CA file {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(c) =
            item.with_context(|| format!("parsing CA file {}", path.display()))?
        {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        anyhow::bail!("CA file {} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// Read a whole body of at most `max` bytes; `None` when it is longer.
fn read_limited(resp: Response<Body>, max: u64, url: &str) -> Result<Option<Vec<u8>>, Failure> {
    // ureq fails a read once `limit` bytes are consumed, even at the end of
    // the body, so a body of exactly `max` bytes needs one byte of room.
    match resp
        .into_body()
        .into_with_config()
        .limit(max.saturating_add(1))
        .read_to_vec()
    {
        Ok(v) => Ok(Some(v)),
        Err(ureq::Error::BodyExceedsLimit(_)) => Ok(None),
        Err(e) => Err(Failure::transport(url, e)),
    }
}

/// Name the operation in a final error, unless the error already says it
/// all (those carry the image or blob and what to do, and read best alone).
fn with_what(err: anyhow::Error, what: impl FnOnce() -> String) -> anyhow::Error {
    match err.downcast_ref::<RegistryError>() {
        Some(
            RegistryError::Unauthorized { .. }
            | RegistryError::ManifestNotFound { .. }
            | RegistryError::BlobNotFound { .. },
        ) => err,
        _ => err.context(what()),
    }
}

fn location_is_https(resp: &Response<Body>) -> bool {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|l| l.starts_with("https://"))
}

/// Whether TLS failed. rustls reports handshake failures (certificate
/// errors, alerts) through `io::ErrorKind::InvalidData`.
fn is_tls_failure(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::TlsRequired => true,
        _ => false,
    }
}

/// Whether retrying after this error may help.
fn is_transient(e: &ureq::Error) -> bool {
    !is_tls_failure(e)
        && matches!(
            e,
            ureq::Error::Io(_)
                | ureq::Error::Timeout(_)
                | ureq::Error::HostNotFound
                | ureq::Error::ConnectionFailed
                | ureq::Error::Protocol(_)
                | ureq::Error::BodyStalled
        )
}

/// `Retry-After` in seconds (the HTTP-date form is rare for registries).
fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `base * 2^failures`, capped at [`MAX_BACKOFF`].
fn backoff_delay(base: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

/// Split `host[:port]`, keeping IPv6 brackets on the host.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(i) => (&s[..=i], s[i + 1..].strip_prefix(':')),
            None => (s, None),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    match port.map(str::parse::<u16>) {
        Some(Ok(p)) => (host, Some(p)),
        Some(Err(_)) => (s, None),
        None => (host, None),
    }
}

/// Whether `authority` (`host[:port]`) is covered by the `--insecure` list:
/// an exact entry, or an entry naming the host without a port.
fn is_insecure(list: &[String], authority: &str) -> bool {
    let (host, _) = split_host_port(authority);
    list.iter().any(|entry| {
        let entry = entry.trim();
        entry.eq_ignore_ascii_case(authority)
            || (split_host_port(entry).1.is_none() && entry.eq_ignore_ascii_case(host))
    })
}

/// Lowercased host and effective port of a URL.
fn origin(uri: &Uri) -> Option<(String, u16)> {
    let host = uri.host()?.to_ascii_lowercase();
    Some((host, uri.port_u16().unwrap_or_else(|| default_port(uri))))
}

fn default_port(uri: &Uri) -> u16 {
    if uri.scheme_str() == Some("http") {
        80
    } else {
        443
    }
}

/// Resolve a `Location` header against the URL that sent it.
fn resolve_location(base: &Uri, loc: &str) -> Option<String> {
    let loc = loc.trim();
    let resolved = if loc.contains("://") {
        loc.to_string()
    } else {
        let scheme = base.scheme_str()?;
        let authority = base.authority()?.as_str();
        if let Some(rest) = loc.strip_prefix("//") {
            format!("{scheme}://{rest}")
        } else if loc.starts_with('/') {
            format!("{scheme}://{authority}{loc}")
        } else {
            let path = base.path();
            let dir = &path[..=path.rfind('/').unwrap_or(0)];
            let dir = if dir.is_empty() { "/" } else { dir };
            format!("{scheme}://{authority}{dir}{loc}")
        }
    };
    // Only hand back something we can request.
    resolved
        .parse::<Uri>()
        .ok()
        .filter(|u| u.host().is_some())?;
    Some(resolved)
}

/// Percent-encode a query value (everything but RFC 3986 unreserved characters).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Unit tests of the helpers, and of the client against an in-process
    //! HTTP/1.1 server that misbehaves on purpose (cut bodies, ignored
    //! ranges, wrong bytes): faults a real registry cannot be made to produce.

    use super::*;
    use std::collections::BTreeMap;
    use std::io::{BufRead as _, BufReader};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    /// A request as the fake server saw it.
    #[derive(Debug, Clone)]
    struct Req {
        path: String,
        headers: Vec<(String, String)>,
    }

    impl Req {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// What the fake server answers.
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// Announce this length but send only `body`, then hang up.
        announce: Option<u64>,
    }

    impl Reply {
        fn new(status: u16) -> Self {
            Reply {
                status,
                headers: Vec::new(),
                body: Vec::new(),
                announce: None,
            }
        }
        fn body(mut self, body: &[u8]) -> Self {
            self.body = body.to_vec();
            self
        }
        fn header(mut self, k: &str, v: &str) -> Self {
            self.headers.push((k.to_string(), v.to_string()));
            self
        }
        /// Send `body[..n]` while announcing all of it.
        fn cut_at(mut self, n: usize) -> Self {
            self.announce = Some(self.body.len() as u64);
            self.body.truncate(n);
            self
        }
    }

    type Handler = dyn Fn(&Req, &str) -> Reply + Send + Sync;

    /// A minimal HTTP/1.1 server on 127.0.0.1 that answers one request per
    /// connection (`Connection: close`) from a handler, and logs requests.
    /// `/v2/` always answers 200, for the client's plain-HTTP probe.
    struct FakeServer {
        addr: SocketAddr,
        log: Arc<Mutex<Vec<Req>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    /// No test needs more; it keeps a runaway client from spinning forever.
    const MAX_CONNECTIONS: usize = 200;

    impl FakeServer {
        fn start(handler: impl Fn(&Req, &str) -> Reply + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let log = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let handler: Arc<Handler> = Arc::new(handler);
            let thread = {
                let (log, stop) = (log.clone(), stop.clone());
                std::thread::spawn(move || {
                    for _ in 0..MAX_CONNECTIONS {
                        let Ok((stream, _)) = listener.accept() else {
                            return;
                        };
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        serve(stream, &addr.to_string(), &*handler, &log);
                    }
                })
            };
            FakeServer {
                addr,
                log,
                stop,
                thread: Some(thread),
            }
        }

        fn authority(&self) -> String {
            self.addr.to_string()
        }

        fn requests(&self, prefix: &str) -> Vec<Req> {
            lock(&self.log)
                .iter()
                .filter(|r| r.path.starts_with(prefix))
                .cloned()
                .collect()
        }
    }

    impl Drop for FakeServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wake the blocking accept so the thread sees the flag.
            let _ = TcpStream::connect(self.addr);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn serve(stream: TcpStream, authority: &str, handler: &Handler, log: &Mutex<Vec<Req>>) {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        for _ in 0..100 {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let req = Req { path, headers };
        lock(log).push(req.clone());
        let reply = if req.path == "/v2/" {
            Reply::new(200).body(b"{}")
        } else {
            handler(&req, authority)
        };
        let mut out = stream;
        let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let len = reply.announce.unwrap_or(reply.body.len() as u64);
        head.push_str(&format!(
            "Content-Length: {len}\r\nConnection: close\r\n\r\n"
        ));
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(&reply.body);
        let _ = out.flush();
        let _ = out.shutdown(std::net::Shutdown::Both);
    }

    fn opts(insecure: &[String], credentials: Option<Credentials>) -> ClientOptions {
        ClientOptions {
            insecure: insecure.to_vec(),
            ca_files: Vec::new(),
            credentials,
            retries: 2,
            backoff: Duration::from_millis(1),
        }
    }

    fn client_with(server: &FakeServer, o: ClientOptions) -> Client {
        let r: Reference = format!("{}/test/img:latest", server.authority())
            .parse()
            .unwrap();
        Client::new(&r, &o).unwrap()
    }

    fn client(server: &FakeServer, credentials: Option<Credentials>) -> Client {
        client_with(server, opts(&[server.authority()], credentials))
    }

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    fn desc(data: &[u8]) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: Digest::of(data),
            size: data.len() as u64,
            platform: None,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// Deterministic bytes that do not repeat with a short period.
    fn blob(n: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    fn blob_path(d: &Digest) -> String {
        format!("/v2/test/img/blobs/{d}")
    }

    /// Download into a temp file; return the file's bytes and the progress seen.
    fn download(c: &Client, d: &Descriptor) -> (anyhow::Result<()>, Vec<u8>, Vec<u64>) {
        let mut f = tempfile::tempfile().unwrap();
        let seen = Mutex::new(Vec::new());
        let r = c.download_blob(d, &mut f, &|n| lock(&seen).push(n));
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        (r, bytes, seen.into_inner().unwrap())
    }

    const MANIFEST: &[u8] =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn bearer_registry(token_field: &'static str, want_basic: Option<String>) -> FakeServer {
        FakeServer::start(move |req, authority| {
            if req.path.starts_with("/token") {
                if want_basic.is_some() && req.header("authorization") != want_basic.as_deref() {
                    return Reply::new(401);
                }
                return Reply::new(200)
                    .body(format!(r#"{{"{token_field}":"tok123","expires_in":300}}"#).as_bytes());
            }
            if req.header("authorization") != Some("Bearer tok123") {
                let challenge = format!(
                    r#"Bearer realm="http://{authority}/token",service="fake",scope="repository:test/img:pull""#
                );
                return Reply::new(401).header("WWW-Authenticate", &challenge);
            }
            match req.path.as_str() {
                "/v2/test/img/manifests/latest" => Reply::new(200)
                    .header("Content-Type", OCI_MANIFEST)
                    .body(MANIFEST),
                _ => Reply::new(404),
            }
        })
    }

    #[test]
    fn bearer_token_flow_with_credentials_and_cache() {
        let basic = creds("alice", "s3cret").basic_header();
        let server = bearer_registry("token", Some(basic.clone()));
        let c = client(&server, Some(creds("alice", "s3cret")));
        let m = c.fetch_manifest("latest", None).unwrap();
        assert_eq!(m.body, MANIFEST);
        assert_eq!(m.content_type.as_deref(), Some(OCI_MANIFEST));
        assert_eq!(m.digest, Digest::of(MANIFEST));

        let tokens = server.requests("/token");
        assert_eq!(tokens.len(), 1);
        assert_eq!(
            tokens[0].path,
            "/token?service=fake&scope=repository%3Atest%2Fimg%3Apull"
        );
        assert_eq!(tokens[0].header("authorization"), Some(basic.as_str()));
        let manifests = server.requests("/v2/test/img/manifests/");
        assert_eq!(manifests[0].header("accept"), Some(MANIFEST_ACCEPT));
        assert!(manifests[0]
            .header("user-agent")
            .unwrap()
            .starts_with("wyrcan/"));

        // The token is cached: a second fetch asks no new one.
        c.fetch_manifest("latest", Some(&Digest::of(MANIFEST)))
            .unwrap();
        assert_eq!(server.requests("/token").len(), 1);
    }

    #[test]
    fn threads_share_one_client_and_one_token() {
        let blobs: Vec<Vec<u8>> = (1..=4).map(|i| blob(20_000 * i)).collect();
        let server = {
            let blobs = blobs.clone();
            FakeServer::start(move |req, authority| {
                if req.path.starts_with("/token") {
                    return Reply::new(200).body(br#"{"token":"tok123"}"#);
                }
                if req.header("authorization") != Some("Bearer tok123") {
                    let challenge = format!(r#"Bearer realm="http://{authority}/token""#);
                    return Reply::new(401).header("WWW-Authenticate", &challenge);
                }
                match blobs.iter().find(|b| req.path == blob_path(&Digest::of(b))) {
                    Some(b) => Reply::new(200).body(b),
                    None => Reply::new(404),
                }
            })
        };
        let c = client(&server, None);
        std::thread::scope(|s| {
            for b in &blobs {
                let c = &c;
                s.spawn(move || {
                    let (r, bytes, _) = download(c, &desc(b));
                    r.unwrap();
                    assert!(bytes == *b);
                });
            }
        });
        // Threads refused together wait for one token rather than each fetching one.
        assert_eq!(server.requests("/token").len(), 1);
    }

    #[test]
    fn anonymous_bearer_with_access_token() {
        let server = bearer_registry("access_token", None);
        let c = client(&server, None);
        assert_eq!(c.fetch_manifest("latest", None).unwrap().body, MANIFEST);
        assert_eq!(server.requests("/token")[0].header("authorization"), None);
    }

    #[test]
    fn token_endpoint_refusing_credentials_is_a_clear_error() {
        let server = bearer_registry("token", Some(creds("alice", "right").basic_header()));
        let c = client(&server, Some(creds("alice", "wrong")));
        let err = c.fetch_manifest("latest", None).unwrap_err();
        assert!(matches!(
            RegistryError::find(&err),
            Some(RegistryError::Unauthorized { .. })
        ));
        let msg = format!("{err:#}");
        assert!(msg.contains("refused access to test/img (401)"), "{msg}");
        assert!(
            msg.contains("--creds USER:PASS or docker/podman login"),
            "{msg}"
        );
        // Not retried: it will not get better.
        assert_eq!(server.requests("/token").len(), 1);
    }

    fn basic_registry() -> FakeServer {
        let want = creds("bob", "pw").basic_header();
        FakeServer::start(move |req, _| {
            if req.header("authorization") != Some(want.as_str()) {
                return Reply::new(401).header("WWW-Authenticate", r#"Basic realm="fake""#);
            }
            Reply::new(200)
                .header("Content-Type", OCI_MANIFEST)
                .body(MANIFEST)
        })
    }

    #[test]
    fn basic_auth() {
        let server = basic_registry();
        let c = client(&server, Some(creds("bob", "pw")));
        assert_eq!(c.fetch_manifest("latest", None).unwrap().body, MANIFEST);
        // The header is kept: the next request sends it straight away.
        c.fetch_manifest("latest", None).unwrap();
        let reqs = server.requests("/v2/test/img/manifests/");
        assert_eq!(reqs.len(), 3);
        assert!(reqs[2].header("authorization").is_some());
    }

    #[test]
    fn basic_auth_without_or_with_wrong_credentials() {
        let server = basic_registry();
        // (Without --creds the auth files are read; they hold nothing for a
        // random 127.0.0.1 port.)
        for o in [None, Some(creds("bob", "nope"))] {
            let c = client(&server, o);
            let err = c.fetch_manifest("latest", None).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains(&format!("registry {} refused access", server.authority())),
                "{msg}"
            );
        }
    }

    #[test]
    fn manifest_404_is_a_clear_error_without_retries() {
        let server = FakeServer::start(|_, _| Reply::new(404));
        let c = client(&server, None);
        let err = c.fetch_manifest("v9", None).unwrap_err();
        assert!(matches!(
            RegistryError::find(&err),
            Some(RegistryError::ManifestNotFound { .. })
        ));
        // One line that says what failed and what to do.
        assert_eq!(
            format!("{err:#}"),
            format!(
                "image {}/test/img:v9 not found at {}: check the name and tag",
                server.authority(),
                server.authority()
            )
        );
        assert_eq!(server.requests("/v2/test/").len(), 1);
    }

    #[test]
    fn manifest_503_twice_then_ok() {
        let n = Arc::new(AtomicUsize::new(0));
        let server = {
            let n = n.clone();
            FakeServer::start(move |_, _| {
                if n.fetch_add(1, Ordering::SeqCst) < 2 {
                    Reply::new(503)
                } else {
                    Reply::new(200)
                        .header("Content-Type", OCI_MANIFEST)
                        .body(MANIFEST)
                }
            })
        };
        let c = client(&server, None);
        assert_eq!(c.fetch_manifest("latest", None).unwrap().body, MANIFEST);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn manifest_503_forever_gives_up_after_the_retries() {
        let server = FakeServer::start(|_, _| Reply::new(503));
        let c = client(&server, None);
        let err = c.fetch_manifest("latest", None).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("giving up after 3 attempts"), "{msg}");
        assert!(msg.contains("answered HTTP 503"), "{msg}");
        assert_eq!(server.requests("/v2/test/").len(), 3);
    }

    #[test]
    fn manifest_with_the_wrong_digest_is_an_error() {
        let server = FakeServer::start(|_, _| {
            Reply::new(200)
                .header("Content-Type", OCI_MANIFEST)
                .body(MANIFEST)
        });
        let c = client(&server, None);
        let other = Digest::of(b"other");
        let err = c
            .fetch_manifest(&other.to_string(), Some(&other))
            .unwrap_err();
        assert!(matches!(
            RegistryError::find(&err),
            Some(RegistryError::DigestMismatch { .. })
        ));
        assert_eq!(server.requests("/v2/test/").len(), 3);
    }

    #[test]
    fn blob_cut_mid_body_resumes_with_range() {
        let data = blob(300_000);
        let d = desc(&data);
        let server = {
            let data = data.clone();
            FakeServer::start(move |req, _| match req.header("range") {
                None => Reply::new(200).body(&data).cut_at(100_000),
                Some(r) => {
                    let start: usize = r
                        .strip_prefix("bytes=")
                        .unwrap()
                        .trim_end_matches('-')
                        .parse()
                        .unwrap();
                    let range = format!("bytes {start}-{}/{}", data.len() - 1, data.len());
                    Reply::new(206)
                        .header("Content-Range", &range)
                        .body(&data[start..])
                }
            })
        };
        let c = client(&server, None);
        let (r, bytes, seen) = download(&c, &d);
        r.unwrap();
        assert!(bytes == data, "downloaded bytes differ");
        let reqs = server.requests(&blob_path(&d.digest));
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].header("range"), None);
        let resumed_from: u64 = reqs[1].header("range").unwrap()["bytes=".len()..]
            .trim_end_matches('-')
            .parse()
            .unwrap();
        assert!(
            resumed_from > 0 && resumed_from <= 100_000,
            "resumed from {resumed_from}"
        );
        assert_eq!(seen.last(), Some(&300_000));
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "progress went back on a resume"
        );
    }

    #[test]
    fn blob_server_ignoring_range_restarts_from_zero() {
        let data = blob(200_000);
        let d = desc(&data);
        let n = Arc::new(AtomicUsize::new(0));
        let server = {
            let (data, n) = (data.clone(), n.clone());
            FakeServer::start(move |_, _| {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    Reply::new(200).body(&data).cut_at(50_000)
                } else {
                    Reply::new(200).body(&data)
                }
            })
        };
        let c = client(&server, None);
        let (r, bytes, seen) = download(&c, &d);
        r.unwrap();
        assert!(bytes == data, "downloaded bytes differ");
        let reqs = server.requests(&blob_path(&d.digest));
        assert_eq!(reqs.len(), 2);
        assert!(reqs[1].header("range").is_some());
        assert!(seen.contains(&0), "progress was not reset on the restart");
        assert_eq!(seen.last(), Some(&200_000));
    }

    #[test]
    fn blob_with_wrong_bytes_is_an_error_after_the_retries() {
        let data = blob(10_000);
        let d = desc(&data);
        let mut bad = data.clone();
        bad[5_000] ^= 1;
        let server = FakeServer::start(move |_, _| Reply::new(200).body(&bad));
        let c = client(&server, None);
        let (r, _, _) = download(&c, &d);
        let err = r.unwrap_err();
        match RegistryError::find(&err) {
            Some(RegistryError::DigestMismatch {
                expected, actual, ..
            }) => {
                assert_eq!(*expected, d.digest);
                assert_ne!(*actual, d.digest);
            }
            other => panic!("expected a digest mismatch, got {other:?} ({err:#})"),
        }
        assert!(
            format!("{err:#}").contains("giving up after 3 attempts"),
            "{err:#}"
        );
        // Each retry starts from scratch, never with a Range.
        let reqs = server.requests(&blob_path(&d.digest));
        assert_eq!(reqs.len(), 3);
        assert!(reqs.iter().all(|r| r.header("range").is_none()));
    }

    #[test]
    fn blob_longer_than_announced_is_an_error() {
        let data = blob(1_000);
        let d = desc(&data[..900]);
        let server = FakeServer::start(move |_, _| Reply::new(200).body(&data));
        let c = client(&server, None);
        let (r, _, _) = download(&c, &d);
        let err = r.unwrap_err();
        assert!(
            matches!(
                RegistryError::find(&err),
                Some(RegistryError::SizeMismatch { .. })
            ),
            "{err:#}"
        );
    }

    #[test]
    fn blob_404_says_it_is_missing() {
        let server = FakeServer::start(|_, _| Reply::new(404));
        let c = client(&server, None);
        let d = desc(b"gone");
        let (r, _, _) = download(&c, &d);
        let err = r.unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("blob {} of", d.digest)) && msg.contains("is missing"),
            "{msg}"
        );
        assert_eq!(server.requests("/v2/test/").len(), 1);
        let err = c.fetch_blob_bytes(&d).unwrap_err();
        assert!(matches!(
            RegistryError::find(&err),
            Some(RegistryError::BlobNotFound { .. })
        ));
    }

    #[test]
    fn fetch_blob_bytes_verifies_size_and_digest() {
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        let good = desc(&config);
        let server = {
            let config = config.clone();
            FakeServer::start(move |_, _| Reply::new(200).body(&config))
        };
        let c = client(&server, None);
        assert_eq!(c.fetch_blob_bytes(&good).unwrap(), config);

        let mut short = good.clone();
        short.size -= 1;
        let err = c.fetch_blob_bytes(&short).unwrap_err();
        assert!(
            matches!(
                RegistryError::find(&err),
                Some(RegistryError::SizeMismatch { .. })
            ),
            "{err:#}"
        );

        let mut wrong = good.clone();
        wrong.digest = Digest::of(b"something else");
        let err = c.fetch_blob_bytes(&wrong).unwrap_err();
        assert!(
            matches!(
                RegistryError::find(&err),
                Some(RegistryError::DigestMismatch { .. })
            ),
            "{err:#}"
        );

        let mut huge = good;
        huge.size = MAX_BLOB_IN_MEMORY + 1;
        assert!(c.fetch_blob_bytes(&huge).is_err());
    }

    #[test]
    fn redirects_do_not_carry_the_registry_credentials() {
        let data = blob(70_000);
        let d = desc(&data);
        let cdn = {
            let data = data.clone();
            FakeServer::start(move |_, _| Reply::new(200).body(&data))
        };
        let cdn_url = format!("http://{}/bucket/object?sig=abc", cdn.authority());
        let registry = FakeServer::start(move |req, authority| {
            if req.path.starts_with("/token") {
                return Reply::new(200).body(br#"{"token":"tok123"}"#);
            }
            if req.header("authorization") != Some("Bearer tok123") {
                let challenge =
                    format!(r#"Bearer realm="http://{authority}/token",service="fake""#);
                return Reply::new(401).header("WWW-Authenticate", &challenge);
            }
            Reply::new(307).header("Location", &cdn_url)
        });
        let c = client_with(
            &registry,
            opts(&[registry.authority(), cdn.authority()], None),
        );
        let (r, bytes, _) = download(&c, &d);
        r.unwrap();
        assert!(bytes == data);
        assert_eq!(cdn.requests("/bucket/object?sig=abc").len(), 1);
        assert_eq!(cdn.requests("/")[0].header("authorization"), None);
        assert_eq!(
            registry
                .requests(&blob_path(&d.digest))
                .last()
                .unwrap()
                .header("authorization"),
            Some("Bearer tok123")
        );
    }

    #[test]
    fn redirect_to_plain_http_needs_insecure() {
        let cdn = FakeServer::start(|_, _| Reply::new(200).body(b"x"));
        let cdn_url = format!("http://{}/object", cdn.authority());
        let registry = FakeServer::start(move |_, _| Reply::new(302).header("Location", &cdn_url));
        let c = client(&registry, None);
        let err = c.fetch_blob_bytes(&desc(b"x")).unwrap_err();
        assert!(format!("{err:#}").contains("not HTTPS"), "{err:#}");
        assert!(cdn.requests("/object").is_empty());
    }

    #[test]
    fn plain_http_is_refused_unless_insecure() {
        // Not listed: the client speaks TLS to the fake HTTP server, which fails.
        let server = FakeServer::start(|_, _| Reply::new(200).body(MANIFEST));
        let mut o = opts(&[], None);
        o.retries = 0;
        let c = client_with(&server, o);
        assert!(c.fetch_manifest("latest", None).is_err());
    }

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Client>();
    }

    #[test]
    fn host_port_and_insecure_matching() {
        assert_eq!(split_host_port("a.b:5000"), ("a.b", Some(5000)));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
        assert_eq!(split_host_port("[::1]:5000"), ("[::1]", Some(5000)));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
        let list = vec!["reg.lan".to_string(), "127.0.0.1:5000".to_string()];
        assert!(is_insecure(&list, "reg.lan"));
        assert!(is_insecure(&list, "REG.lan:8443"));
        assert!(is_insecure(&list, "127.0.0.1:5000"));
        assert!(!is_insecure(&list, "127.0.0.1:5001"));
        assert!(!is_insecure(&list, "127.0.0.1"));
        assert!(!is_insecure(&list, "other.lan"));
        assert!(!is_insecure(&[], "reg.lan"));
        assert!(is_loopback("127.0.0.1") && is_loopback("127.1.2.3") && is_loopback("[::1]"));
        assert!(is_loopback("LOCALHOST"));
        assert!(!is_loopback("10.0.0.1") && !is_loopback("[::2]") && !is_loopback("reg.lan"));
    }

    #[test]
    fn locations_resolve_against_the_request() {
        let base: Uri = "https://reg.example:5000/v2/a/blobs/sha256:x"
            .parse()
            .unwrap();
        assert_eq!(
            resolve_location(&base, "https://cdn.example/o?s=1").unwrap(),
            "https://cdn.example/o?s=1"
        );
        assert_eq!(
            resolve_location(&base, "//cdn.example/o").unwrap(),
            "https://cdn.example/o"
        );
        assert_eq!(
            resolve_location(&base, "/other").unwrap(),
            "https://reg.example:5000/other"
        );
        assert_eq!(
            resolve_location(&base, "rel").unwrap(),
            "https://reg.example:5000/v2/a/blobs/rel"
        );
    }

    #[test]
    fn small_helpers() {
        assert_eq!(content_range_start("bytes 100-299/300"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("bytes */300"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
        let ms = Duration::from_millis;
        assert_eq!(backoff_delay(ms(500), 0), ms(500));
        assert_eq!(backoff_delay(ms(500), 3), ms(4000));
        assert_eq!(backoff_delay(ms(500), 4), MAX_BACKOFF);
        assert_eq!(backoff_delay(ms(500), 40), MAX_BACKOFF);
        assert_eq!(
            percent_encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(percent_encode("a-b.c_d~e"), "a-b.c_d~e");
        let io = |k| ureq::Error::Io(std::io::Error::new(k, "x"));
        assert!(is_tls_failure(&io(std::io::ErrorKind::InvalidData)));
        assert!(!is_transient(&io(std::io::ErrorKind::InvalidData)));
        assert!(is_transient(&io(std::io::ErrorKind::ConnectionReset)));
        assert!(is_transient(&io(std::io::ErrorKind::UnexpectedEof)));
        assert!(is_transient(&ureq::Error::ConnectionFailed));
        assert!(!is_transient(&ureq::Error::BadUri("x".into())));
    }

    #[test]
    fn ca_files() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["reg.lan".to_string()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, cert.cert.pem()).unwrap();
        assert_eq!(read_ca_file(&good).unwrap().len(), 1);
        root_certs(std::slice::from_ref(&good)).unwrap();

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = read_ca_file(&empty).unwrap_err();
        assert!(
            format!("{err:#}").contains("holds no PEM certificate"),
            "{err:#}"
        );
        let missing = dir.path().join("missing.pem");
        assert!(format!("{:#}", read_ca_file(&missing).unwrap_err()).contains("missing.pem"));
    }
}
