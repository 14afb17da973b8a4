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
//!
//! No request waits forever: each attempt has a deadline and a transfer-rate
//! floor (`pace`), and a cut for slowness counts against the retries.
//!
//! Layout: [`client`] (requests, auth challenges, manifests),
//! [`download`] (small blobs in memory, resumable verified blob downloads),
//! `pace` (deadlines and the rate floor), `transport` (agents, retries,
//! failure classification, URL helpers), `resolve` (host names to
//! addresses: [`DnsMode`]), `tls` (trust anchors),
//! [`auth`] (credentials files, challenges), [`helper`] (docker
//! credential helpers).

pub mod auth;
pub mod client;
pub mod download;
mod fallback;
pub mod helper;
mod pace;
mod resolve;
mod tls;
mod token;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wyrcan_core::digest::Digest;
use wyrcan_core::manifest::Platform;
use wyrcan_core::mirror::Mirror;
pub use wyrcan_core::proxy::ProxyUrl;
use wyrcan_core::trust::Policy;

pub use auth::Credentials;
pub use client::Endpoint;
pub use download::{BlobTee, NoTee};
pub use fallback::Client;
pub use resolve::DnsMode;
pub use tls::CertTime;

/// Everything that says how to pull an image: registry access (insecure
/// hosts, trust, credentials, proxy, retries), which platform, how many
/// layers at once, where layers wait. The one options type of a pull: the
/// CLI builds it from flags, PID 1 from its boot configuration. `Debug`
/// masks the proxy's password ([`ProxyUrl`] does).
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Registries (`HOST` or `HOST:PORT`) for which plain HTTP and unverified
    /// TLS are allowed. A `HOST` without a port covers every port of that
    /// host. Nothing is insecure unless listed here.
    pub insecure: Vec<String>,
    /// Extra PEM files of CA certificates to trust.
    pub ca_files: Vec<PathBuf>,
    /// Whether the machine's CA store is trusted too (without it and without
    /// `ca_files`: the bundled Mozilla roots). Tests turn it off.
    pub system_roots: bool,
    /// Where credentials come from.
    pub credentials: CredentialSource,
    /// The HTTP proxy of every request, both schemes (`--proxy`,
    /// `wyrcan.proxy=`). Without it, hosts read the environment's (see
    /// `proxy_env`). Loopback hosts always go direct.
    pub proxy: Option<ProxyUrl>,
    /// Hosts that go direct, one `NO_PROXY` entry each (`--no-proxy`):
    /// `host`, `.domain`, an IP, a CIDR like `10.0.0.0/8`, `*`, each
    /// optionally with `:port` (see `wyrcan_core::proxy`).
    pub no_proxy: Vec<String>,
    /// Whether `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`
    /// (lowercase too) count, as curl and Docker read them: on hosts, not
    /// in PID 1 (whose environment means nothing) nor in hermetic tests.
    pub proxy_env: bool,
    /// Platform to pick from an index; the running machine's by default.
    pub platform: Option<Platform>,
    /// Layers downloading at once.
    pub jobs: usize,
    /// Where compressed layers wait between the two passes (`$TMPDIR` if unset).
    pub tmpdir: Option<PathBuf>,
    /// Most tar entries all layers may hold together: headers are kept
    /// between the passes, so this bounds their memory (about 200 bytes
    /// each plus the name). PID 1 lowers it to what its RAM holds.
    pub max_entries: u64,
    /// How many times a failed request is retried (so `retries + 1` attempts).
    pub retries: u32,
    /// The first wait between attempts; it doubles after each failure, up to 8 s.
    pub backoff: Duration,
    /// The slowest transfer accepted, in bytes per second averaged over
    /// `rate_window`: a request below it is cut and retried, and the cut
    /// counts against `retries` even when bytes arrived.
    pub min_rate: u64,
    /// The window `min_rate` is averaged over; also the longest wait for
    /// response headers or for the next byte.
    pub rate_window: Duration,
    /// The total time of one request for a manifest or token (their size
    /// is not known in advance).
    pub request_deadline: Duration,
    /// With `deadline_rate`, the total time of one blob request:
    /// `blob_deadline + bytes still missing / deadline_rate`.
    pub blob_deadline: Duration,
    /// See `blob_deadline`, in bytes per second.
    pub deadline_rate: u64,
    /// The trust policy (`--policy`, `/etc/wyrcan/policy.json`), its keys
    /// loaded. `None`: every image is accepted as served.
    pub policy: Option<Arc<Policy>>,
    /// Where layers download to files named by digest that outlive a failed
    /// pull, so the next pull resumes them with `Range` (PID 1, whose
    /// whole-pull retries would otherwise start every layer over).
    pub keep_partial: Option<PathBuf>,
    /// Mirrors per registry (`--mirror`, `wyrcan.mirror=`, the site's,
    /// registries.conf's), tried before the registry.
    pub mirrors: Vec<Mirror>,
    /// How host names become addresses (the registry's, a mirror's, a
    /// redirect's, the proxy's): the system's resolver on hosts
    /// ([`DnsMode::System`], the default), Wyrcan's own in PID 1
    /// ([`DnsMode::Own`]), which asks for IPv4 and IPv6 addresses
    /// separately so that a server refusing one family cannot fail the
    /// lookup.
    pub dns: DnsMode,
}

/// Default of [`PullOptions::min_rate`]: 1 KiB/s. Any working link, even a
/// congested one, averages far more; a registry that drips is not working.
pub const MIN_RATE: u64 = 1 << 10;
/// Default of [`PullOptions::rate_window`]: 30 s, the idle limit this
/// client always had; long enough to ride out a TCP retransmit backoff.
pub const RATE_WINDOW: Duration = Duration::from_secs(30);
/// Default of [`PullOptions::request_deadline`] and
/// [`PullOptions::blob_deadline`]: 60 s, for connecting, TLS, redirects and
/// a token, with room to spare.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// Default of [`PullOptions::deadline_rate`]: 16 KiB/s (128 kbit/s), far
/// under any link that boots an OS image, so it only stops a server that
/// stays just above the floor for hours.
pub const DEADLINE_RATE: u64 = 16 << 10;

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            insecure: Vec::new(),
            ca_files: Vec::new(),
            system_roots: true,
            credentials: CredentialSource::AuthFiles,
            proxy: None,
            no_proxy: Vec::new(),
            proxy_env: true,
            platform: None,
            jobs: 4,
            tmpdir: None,
            max_entries: DEFAULT_MAX_ENTRIES,
            retries: 5,
            backoff: Duration::from_millis(500),
            min_rate: MIN_RATE,
            rate_window: RATE_WINDOW,
            request_deadline: REQUEST_DEADLINE,
            blob_deadline: REQUEST_DEADLINE,
            deadline_rate: DEADLINE_RATE,
            policy: None,
            mirrors: Vec::new(),
            keep_partial: None,
            dns: DnsMode::System,
        }
    }
}

/// Entries an image may have unless told otherwise: 50 times a Debian
/// image with systemd and a kernel (13 000), about 200 MiB of headers at worst.
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

/// Where a pull's credentials come from. `Debug` shows no secret.
#[derive(Debug, Clone, Default)]
pub enum CredentialSource {
    /// The host's, as docker and podman find them: `$REGISTRY_AUTH_FILE`,
    /// the containers `auth.json`, `~/.docker/config.json`, and the
    /// credential helpers these name (`credHelpers`, `credsStore`).
    #[default]
    AuthFiles,
    /// This one containers-auth.json / docker config.json only (`auth`,
    /// `username`/`password`, `identitytoken` entries; no helper is run):
    /// `--creds-file`, or the boot environment's `/etc/wyrcan/auth.json`.
    /// A missing file means anonymous; one that cannot be read or parsed
    /// is an error naming it.
    AuthFile(PathBuf),
    /// These, for the image's registry.
    Given(Credentials),
    /// None: anonymous pulls only.
    Anonymous,
}

/// Check a PEM CA file before it is baked into boot media: the number of
/// certificates in it, or an error naming the file.
pub fn check_ca_file(path: &std::path::Path) -> anyhow::Result<usize> {
    tls::read_ca_file(path).map(|c| c.len())
}

/// Failures a caller may want to tell apart, e.g. to tell the user what to
/// do. They reach callers inside an `anyhow::Error`; find them with
/// [`RegistryError::find`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry answered 401/403 even after authenticating (or there
    /// was nothing to authenticate with).
    #[error("registry {registry} refused access to {repository} ({status}): check the credentials (--creds USER:PASS or docker/podman login){hint}")]
    Unauthorized {
        /// The registry as named in the image reference.
        registry: String,
        /// The repository path.
        repository: String,
        /// The HTTP status (401 or 403).
        status: u16,
        /// Empty, or `; ` and where the credentials came from or why there
        /// were none (a credential helper, an auth file), never a secret.
        hint: String,
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
    /// certificate. Not retried: it does not fix itself. A certificate
    /// refused only for its validity period (`clock`) is said as such,
    /// with both times: the machine's clock is often what is wrong.
    #[error("{}", match .clock {
        Some(c) => c.message(host),
        None => format!("TLS with {host} failed ({detail}): trust its CA with --ca FILE, or allow it with --insecure {host}"),
    })]
    Tls {
        /// The URL requested.
        url: String,
        /// The server's `host[:port]`.
        host: String,
        /// What TLS said.
        detail: String,
        /// The certificate's validity against this machine's clock, when
        /// that is why it was refused.
        clock: Option<CertTime>,
    },
    /// Nothing accepted the connection (refused, unreachable, timed out).
    /// Retried: a registry may be starting.
    #[error("cannot connect to {host} ({detail}): check that a registry runs there, that the address and port are right, and that no firewall or proxy is in the way")]
    Connect {
        /// The URL requested.
        url: String,
        /// The server's `host[:port]`.
        host: String,
        /// What the connection attempt said.
        detail: String,
    },
    /// The proxy could not be reached: refused, unreachable, no answer, or
    /// its name does not resolve. Retried (except the name): a proxy may be
    /// starting.
    #[error("cannot connect to proxy {proxy} ({detail}): check that a proxy runs there and that its address and port are right (--proxy, wyrcan.proxy=, or HTTPS_PROXY/HTTP_PROXY)")]
    ProxyConnect {
        /// The proxy, password masked.
        proxy: String,
        /// The URL requested through it.
        url: String,
        /// What the connection attempt said.
        detail: String,
    },
    /// The proxy refused the request: 407 (credentials), 403 (not allowed),
    /// 5xx (it could not reach the registry; retried).
    #[error("proxy {proxy} refused {target} (HTTP {status}): {hint}")]
    ProxyRefused {
        /// The proxy, password masked.
        proxy: String,
        /// The URL requested through it.
        url: String,
        /// The `host[:port]` the request was for.
        target: String,
        /// The proxy's status.
        status: u16,
        /// What to check.
        hint: String,
    },
    /// The host name has no address. Not retried: it does not fix itself.
    #[error("cannot resolve {host} ({detail}): check the name, and the DNS server (nameserver= on the boot cmdline, /etc/resolv.conf on a host)")]
    Resolve {
        /// The URL requested.
        url: String,
        /// The host name.
        host: String,
        /// What the resolver said.
        detail: String,
    },
    /// The server was too slow: below the rate floor for a whole window,
    /// no headers or no byte within one, or past the attempt's deadline.
    /// Retried (a blob resumes), but every cut counts against the retries;
    /// not worth retrying the whole operation after that.
    #[error("{url}: {detail}: check the network or the registry")]
    Stalled {
        /// The URL that was too slow.
        url: String,
        /// What was measured, against which limit.
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
/// failures (to the registry or the proxy) and server errors (the proxy's
/// 5xx too), not "not found" or "access refused", nor a
/// registry that stayed too slow through every retry
/// ([`RegistryError::Stalled`]: a boot must end in an error within minutes).
pub fn worth_retrying(err: &anyhow::Error) -> bool {
    matches!(
        RegistryError::find(err),
        Some(
            RegistryError::Transport { .. }
                | RegistryError::Status { .. }
                | RegistryError::Connect { .. }
                | RegistryError::ProxyConnect { .. }
                | RegistryError::ProxyRefused {
                    status: 500..=599,
                    ..
                }
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_debug_shows_no_secret() {
        for credentials in [
            CredentialSource::Given(Credentials {
                username: "alice".into(),
                password: "hunter2-secret".into(),
            }),
            CredentialSource::Given(Credentials::identity_token("hunter2-secret")),
        ] {
            let opts = PullOptions {
                credentials,
                ..PullOptions::default()
            };
            let shown = format!("{opts:?} {opts:#?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let opts = PullOptions {
            credentials: CredentialSource::AuthFile("/etc/wyrcan/auth.json".into()),
            ..PullOptions::default()
        };
        assert!(format!("{opts:?}").contains("AuthFile(\"/etc/wyrcan/auth.json\")"));
    }

    #[test]
    fn unauthorized_hint() {
        let e = RegistryError::Unauthorized {
            registry: "r.io".into(),
            repository: "a/b".into(),
            status: 401,
            hint: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "registry r.io refused access to a/b (401): check the credentials \
             (--creds USER:PASS or docker/podman login)"
        );
    }
}
