//! What every request shares: the agents (one per TLS policy, direct or
//! through a proxy), how a request reaches its URL ([`Route`]), how a
//! failed attempt is classified (transient or not, and what to tell the
//! user), and the small URL and header helpers.
//!
//! Proxies: which proxy a URL goes through is `wyrcan_core::proxy`'s
//! decision, made per request URL (each redirect hop again). An `https://`
//! URL goes through a `CONNECT` tunnel (ureq's own, which sends
//! `Proxy-Authorization` from the proxy URL's user and password); a plain
//! `http://` URL is sent to the proxy in absolute form (`GET http://host/path`,
//! what curl and Go do, and what proxies that allow `CONNECT` only to port
//! 443 accept). ureq writes only origin-form requests, so the absolute form
//! is a small [`Transport`] wrapper of ours on a connection to the proxy
//! (ureq's `unversioned` connector API, outside its semver promise: a ureq
//! update may need this adjusted; `tests/proxy.rs` would say so).

use std::io::Read as _;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::anyhow;
use base64::Engine as _;
use tracing::warn;
use ureq::config::Config;
use ureq::http::{Response, Uri};
use ureq::tls::TlsConfig;
use ureq::typestate::WithoutBody;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, TcpConnector, Transport,
};
use ureq::{Agent, Body, RequestBuilder};
use wyrcan_core::proxy::{NoProxy, ProxyConfig, ProxyUrl};

use super::pace::{call_failure, Deadline, Limits, Pace};
use super::resolve::{lookup_failure, DnsResolver};
use super::{PullOptions, RegistryError};

/// Longest wait between two attempts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Why one attempt failed, and whether another attempt may succeed.
pub(super) struct Failure {
    pub(super) err: anyhow::Error,
    pub(super) transient: bool,
    /// The server's `Retry-After`, when it sent one.
    pub(super) retry_after: Option<Duration>,
}

impl Failure {
    pub(super) fn fatal(err: impl Into<anyhow::Error>) -> Self {
        Failure {
            err: err.into(),
            transient: false,
            retry_after: None,
        }
    }

    pub(super) fn transient(err: impl Into<anyhow::Error>) -> Self {
        Failure {
            err: err.into(),
            transient: true,
            retry_after: None,
        }
    }

    pub(super) fn transport(url: &str, source: ureq::Error) -> Self {
        let authority = || {
            url.parse::<Uri>()
                .ok()
                .and_then(|u| u.authority().map(|a| a.to_string()))
                .unwrap_or_default()
        };
        if is_tls_failure(&source) {
            return Failure::fatal(RegistryError::Tls {
                url: url.to_string(),
                host: authority(),
                detail: source.to_string(),
                clock: super::tls::cert_time(&source),
            });
        }
        match classify(&source) {
            Kind::NoSuchHost => {
                let host = url
                    .parse::<Uri>()
                    .ok()
                    .and_then(|u| u.host().map(str::to_string))
                    .unwrap_or_default();
                return Failure::fatal(RegistryError::Resolve {
                    url: url.to_string(),
                    host,
                    detail: resolve_detail(&source),
                });
            }
            Kind::NoConnection => {
                return Failure::transient(RegistryError::Connect {
                    url: url.to_string(),
                    host: authority(),
                    detail: source.to_string(),
                });
            }
            Kind::Other => {}
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

/// What a transport error means for the user.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// The name has no address (not a temporary resolver failure).
    NoSuchHost,
    /// Nothing accepted the connection.
    NoConnection,
    /// Anything else (resets, timeouts mid-answer, protocol errors).
    Other,
}

/// What a failed lookup said, for messages: our resolver's report as is
/// (without ureq's `io: `).
fn resolve_detail(e: &ureq::Error) -> String {
    match lookup_failure(e) {
        Some(f) => f.to_string(),
        None => e.to_string(),
    }
}

/// Sort a transport error. Our resolver says whether its failure may pass
/// (`resolve::LookupFailed`); std reports a failed `getaddrinfo` only as
/// text ("failed to lookup address information: …"), so the text decides
/// there; `EAI_AGAIN` ("Temporary failure in name resolution") stays
/// transient: at boot, the DNS server may not answer yet.
pub(super) fn classify(e: &ureq::Error) -> Kind {
    if let Some(f) = lookup_failure(e) {
        return if f.transient {
            Kind::Other
        } else {
            Kind::NoSuchHost
        };
    }
    match e {
        ureq::Error::HostNotFound => Kind::NoSuchHost,
        ureq::Error::ConnectionFailed => Kind::NoConnection,
        ureq::Error::Io(io) => {
            let text = io.to_string();
            if text.contains("failed to lookup address") {
                if text.contains("Temporary failure") || text.contains("try again") {
                    Kind::Other
                } else {
                    Kind::NoSuchHost
                }
            } else if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::AddrNotAvailable
            ) {
                Kind::NoConnection
            } else {
                Kind::Other
            }
        }
        _ => Kind::Other,
    }
}

/// Which `Authorization` header a request carries.
pub(super) enum Auth<'a> {
    /// The registry's cached credentials, sent only to the registry's own
    /// host; a 401 from it runs the challenge flow.
    Registry,
    /// A fixed header for the first URL's origin only (the token endpoint).
    Fixed(Option<&'a str>),
}

/// A response and the URL that produced it (after redirects).
pub(super) struct Sent {
    pub(super) resp: Response<Body>,
    pub(super) url: String,
    /// The proxy that forwarded it (a plain-HTTP request), password
    /// masked: a gateway error may be the proxy's own. (Through a `CONNECT`
    /// tunnel every status is the server's.)
    pub(super) via: Option<String>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain strings: a panic elsewhere cannot leave
    // them half-written, so a poisoned lock is still good to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The proxy settings of a pull: `opts.proxy` for both schemes, else (when
/// `opts.proxy_env`, on hosts) `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`
/// (lowercase too); `opts.no_proxy` and (on hosts) `NO_PROXY` merged.
pub(super) fn proxy_config(opts: &PullOptions) -> anyhow::Result<ProxyConfig> {
    let no_proxy = NoProxy::parse(opts.no_proxy.iter().map(String::as_str))?;
    if !opts.proxy_env {
        return Ok(ProxyConfig::explicit(opts.proxy.clone(), no_proxy));
    }
    let (config, skipped) =
        ProxyConfig::with_env(opts.proxy.clone(), no_proxy, |var| std::env::var(var).ok())?;
    for e in skipped {
        warn!("ignoring NO_PROXY's {e}");
    }
    Ok(config)
}

/// One TLS policy: direct, and through the HTTPS proxy's `CONNECT` tunnel
/// when there is one.
pub(super) struct Agents {
    pub(super) direct: Agent,
    pub(super) tunnel: Option<Agent>,
}

impl Agents {
    /// Both resolve names (the proxy's too) with `resolver`.
    pub(super) fn new(
        tls: TlsConfig,
        limits: &Limits,
        https_proxy: Option<&ProxyUrl>,
        resolver: &DnsResolver,
    ) -> anyhow::Result<Self> {
        let agent = |proxy| {
            Agent::with_parts(
                agent_config(tls.clone(), proxy, limits),
                DefaultConnector::default(),
                resolver.clone(),
            )
        };
        let tunnel = match https_proxy {
            Some(p) => Some(agent(Some(ureq_proxy(p)?))),
            None => None,
        };
        Ok(Agents {
            direct: agent(None),
            tunnel,
        })
    }
}

/// ureq's `CONNECT` proxy for `p`: ureq sends `Proxy-Authorization: Basic`
/// with the user and password on every `CONNECT`.
fn ureq_proxy(p: &ProxyUrl) -> anyhow::Result<ureq::Proxy> {
    let mut b = ureq::Proxy::builder(ureq::ProxyProtocol::Http)
        .host(p.host())
        .port(p.port());
    if p.has_credentials() {
        b = b.username(p.user().unwrap_or(""));
    }
    if let Some(pass) = p.password() {
        b = b.password(pass);
    }
    // ureq's message for a bad proxy never quotes it.
    b.build().map_err(|e| anyhow!("proxy {p}: {e}"))
}

/// How one request reaches its URL.
#[derive(Clone, Copy)]
pub(super) enum Route<'a> {
    /// Straight to the server.
    Direct(&'a Agent),
    /// An `https://` URL through the proxy's `CONNECT` tunnel.
    Tunnel(&'a Agent, &'a ProxyUrl),
    /// An `http://` URL sent to the proxy in absolute form.
    Forward(&'a Agent, &'a ProxyUrl),
}

impl<'a> Route<'a> {
    /// The proxy on the way, if any.
    pub(super) fn proxy(&self) -> Option<&'a ProxyUrl> {
        match *self {
            Route::Direct(_) => None,
            Route::Tunnel(_, p) | Route::Forward(_, p) => Some(p),
        }
    }

    /// A GET of `url` along this route.
    pub(super) fn get(&self, url: &str) -> RequestBuilder<WithoutBody> {
        self.request(false, url)
    }

    /// A HEAD request (a tag's digest, without its body).
    pub(super) fn head(&self, url: &str) -> RequestBuilder<WithoutBody> {
        self.request(true, url)
    }

    fn request(&self, head: bool, url: &str) -> RequestBuilder<WithoutBody> {
        let start = |a: &Agent| if head { a.head(url) } else { a.get(url) };
        match *self {
            Route::Direct(a) | Route::Tunnel(a, _) => start(a),
            // The tunnel authenticates in its CONNECT; a forwarded request
            // carries the credentials itself.
            Route::Forward(a, p) => match p.basic_credentials() {
                Some(c) => start(a).header(
                    "Proxy-Authorization",
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(c)
                    ),
                ),
                None => start(a),
            },
        }
    }

    /// A POST to `url` along this route (the OAuth2 token exchange).
    pub(super) fn post(&self, url: &str) -> RequestBuilder<ureq::typestate::WithBody> {
        match *self {
            Route::Direct(a) | Route::Tunnel(a, _) => a.post(url),
            Route::Forward(a, p) => match p.basic_credentials() {
                Some(c) => a.post(url).header(
                    "Proxy-Authorization",
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(c)
                    ),
                ),
                None => a.post(url),
            },
        }
    }

    /// The failure of a request along this route before any body byte:
    /// the proxy's own ([`proxy_failure`]) when it is one, else as
    /// [`call_failure`] says.
    pub(super) fn failure(
        &self,
        limits: Limits,
        deadline: Deadline,
        url: &str,
        e: ureq::Error,
    ) -> Failure {
        let e = match self.proxy() {
            Some(p) => match proxy_failure(p, url, e) {
                Ok(f) => return f,
                Err(e) => e,
            },
            None => e,
        };
        call_failure(limits, deadline, url, e)
    }
}

/// The `host[:port]` of a URL, for messages.
fn authority_of(url: &str) -> String {
    url.parse::<Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// The failure of a request through `proxy`, when it is the proxy's: it
/// could not be resolved or reached (every connection of a proxied request
/// goes to the proxy), or it refused the `CONNECT`. Anything else (TLS with
/// the registry, a reset mid-answer) comes back to be classified as usual.
pub(super) fn proxy_failure(
    proxy: &ProxyUrl,
    url: &str,
    e: ureq::Error,
) -> Result<Failure, ureq::Error> {
    let connect = |detail: String| RegistryError::ProxyConnect {
        proxy: proxy.to_string(),
        url: url.to_string(),
        detail,
    };
    if let ureq::Error::ConnectProxyFailed(reason) = &e {
        // ureq says "proxy server responded 407/Proxy Authentication
        // Required" or "proxy server did not respond".
        let status = reason
            .strip_prefix("proxy server responded ")
            .and_then(|r| r.split('/').next())
            .and_then(|s| s.trim().parse::<u16>().ok());
        return Ok(match status {
            Some(status) => proxy_refused(proxy, url, status),
            None => Failure::transient(connect(reason.clone())),
        });
    }
    match (classify(&e), &e) {
        (Kind::NoSuchHost, _) => Ok(Failure::fatal(connect(format!(
            "its host name does not resolve: {}",
            resolve_detail(&e)
        )))),
        (Kind::NoConnection, _) => Ok(Failure::transient(connect(e.to_string()))),
        (_, ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect)) => Ok(
            Failure::transient(connect(format!("no answer in time: {e}"))),
        ),
        _ => Err(e),
    }
}

/// A proxy's refusal (`status` of its `CONNECT`, or a 407 to a forwarded
/// request): what to check depends on the status. 5xx (the proxy could not
/// reach the registry) is retried.
pub(super) fn proxy_refused(proxy: &ProxyUrl, url: &str, status: u16) -> Failure {
    let target = authority_of(url);
    let hint = match status {
        407 if proxy.has_credentials() => {
            "check the user and password in the proxy URL (http://USER:PASS@HOST:PORT, special characters percent-encoded)".to_string()
        }
        407 => "the proxy wants credentials: put them in the proxy URL (http://USER:PASS@HOST:PORT)".to_string(),
        403 => format!("check that the proxy allows connections to {target}"),
        500..=599 => format!("the proxy could not reach {target}: check that the registry is up and that the proxy can reach it"),
        _ => "check the proxy URL and the proxy's settings".to_string(),
    };
    let err = RegistryError::ProxyRefused {
        proxy: proxy.to_string(),
        url: url.to_string(),
        target,
        status,
        hint,
    };
    if (500..=599).contains(&status) {
        Failure::transient(err)
    } else {
        Failure::fatal(err)
    }
}

/// An agent for plain `http://` URLs through `proxy`: every connection goes
/// to the proxy (its name resolved by `resolver`), and each request on it
/// is written in absolute form.
pub(super) fn forward_agent(
    proxy: &ProxyUrl,
    limits: &Limits,
    resolver: &DnsResolver,
) -> anyhow::Result<Agent> {
    let proxy_uri: Uri = format!("http://{}/", proxy.authority())
        .parse()
        .map_err(|e| anyhow!("proxy {proxy}: {e}"))?;
    let connector = ().chain(TcpConnector::default()).chain(AbsoluteForm);
    Ok(Agent::with_parts(
        agent_config(TlsConfig::default(), None, limits),
        connector,
        ToProxy {
            proxy: proxy_uri,
            inner: resolver.clone(),
        },
    ))
}

/// Resolves every URL to the proxy's addresses.
#[derive(Debug)]
struct ToProxy {
    proxy: Uri,
    inner: DnsResolver,
}

impl Resolver for ToProxy {
    fn resolve(
        &self,
        _uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        self.inner.resolve(&self.proxy, config, timeout)
    }
}

/// Wraps a connection to the proxy in [`AbsoluteTarget`].
#[derive(Debug)]
struct AbsoluteForm;

impl<In: Transport> Connector<In> for AbsoluteForm {
    type Out = AbsoluteTarget;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<AbsoluteTarget>, ureq::Error> {
        let Some(inner) = chained else {
            return Ok(None);
        };
        let authority = details
            .uri
            .authority()
            .ok_or_else(|| ureq::Error::BadUri(format!("{} has no host", details.uri)))?;
        // ureq pools connections per scheme and authority of the URL, so
        // this connection only ever carries requests for this origin.
        Ok(Some(AbsoluteTarget {
            inner: Box::new(inner),
            origin: format!("http://{authority}"),
            at_start: true,
        }))
    }
}

/// A connection to a proxy on which each request's origin-form target
/// (`GET /v2/ HTTP/1.1`) goes out in absolute form (`GET http://host/v2/
/// HTTP/1.1`). Only for requests without a body (ours are all GETs): a
/// request starts where the previous head ended.
#[derive(Debug)]
struct AbsoluteTarget {
    inner: Box<dyn Transport>,
    /// `http://host[:port]`, put before each target.
    origin: String,
    /// Whether the next bytes sent begin a request.
    at_start: bool,
}

impl Transport for AbsoluteTarget {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if amount == 0 {
            return self.inner.transmit_output(0, timeout);
        }
        let out = self.inner.buffers().output();
        let mut len = amount;
        if self.at_start {
            // "GET /path HTTP/1.1\r\n…": the target starts after the first space.
            let target = out[..amount]
                .iter()
                .position(|&b| b == b' ')
                .map(|i| i + 1)
                .filter(|&i| out.get(i) == Some(&b'/'));
            if let Some(at) = target {
                let prefix = self.origin.as_bytes();
                len = amount + prefix.len();
                if len > out.len() {
                    return Err(ureq::Error::Io(std::io::Error::other(
                        "request head too large for the output buffer",
                    )));
                }
                out.copy_within(at..amount, at + prefix.len());
                out[at..at + prefix.len()].copy_from_slice(prefix);
            }
        }
        // A GET's head ends with a blank line; the next bytes are the next request.
        self.at_start = out[..len].ends_with(b"\r\n\r\n");
        self.inner.transmit_output(len, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }
}

/// The configuration of our agents: our timeouts and user agent, every
/// status and redirect handed back to us. Each request adds its own
/// deadline (`pace`).
pub(super) fn agent_config(tls: TlsConfig, proxy: Option<ureq::Proxy>, limits: &Limits) -> Config {
    Agent::config_builder()
        .proxy(proxy)
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("wyrcan/", env!("CARGO_PKG_VERSION")))
        // Byte ranges and digests are about the bytes as stored: no
        // transparent compression.
        .accept_encoding("")
        .timeout_resolve(Some(limits.connect))
        .timeout_connect(Some(limits.connect))
        // Headers within one rate window, and no read idle for longer: a
        // whole window without a byte is below any floor. The average rate
        // and the deadline are checked per request (`pace`).
        .timeout_recv_response(Some(limits.window))
        .timeout_per_read(Some(limits.window))
        .timeout_per_write(Some(Duration::from_secs(30)))
        .tls_config(tls)
        .build()
}

/// Read a whole body of at most `max` bytes, no slower than `pace` allows;
/// `None` when it is longer.
pub(super) fn read_limited(
    resp: Response<Body>,
    max: u64,
    url: &str,
    mut pace: Pace,
) -> Result<Option<Vec<u8>>, Failure> {
    let mut reader = resp.into_body().into_reader();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    // Bounded: every pass adds at least one byte, up to `max`, or leaves.
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(Some(out)),
            Ok(n) => n,
            Err(e) => return Err(pace.read_failure(url, e)),
        };
        if out.len() as u64 + n as u64 > max {
            return Ok(None);
        }
        out.extend_from_slice(&buf[..n]);
        pace.add(n, url)?;
    }
}

/// Name the operation in a final error, unless the error already says it
/// all (those carry the image or blob and what to do, and read best alone).
pub(super) fn with_what(err: anyhow::Error, what: impl FnOnce() -> String) -> anyhow::Error {
    match err.downcast_ref::<RegistryError>() {
        Some(
            RegistryError::Unauthorized { .. }
            | RegistryError::ManifestNotFound { .. }
            | RegistryError::BlobNotFound { .. },
        ) => err,
        _ => err.context(what()),
    }
}

pub(super) fn location_is_https(resp: &Response<Body>) -> bool {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|l| l.starts_with("https://"))
}

/// Whether TLS failed. rustls reports handshake failures (certificate
/// errors, alerts) through `io::ErrorKind::InvalidData`.
pub(super) fn is_tls_failure(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::TlsRequired => true,
        _ => false,
    }
}

/// Whether retrying after this error may help.
pub(super) fn is_transient(e: &ureq::Error) -> bool {
    !is_tls_failure(e)
        && matches!(
            e,
            ureq::Error::Io(_)
                | ureq::Error::Timeout(_)
                | ureq::Error::ConnectionFailed
                | ureq::Error::Protocol(_)
                | ureq::Error::BodyStalled
        )
}

/// `Retry-After` in seconds (the HTTP-date form is rare for registries).
pub(super) fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `base * 2^failures`, capped at [`MAX_BACKOFF`].
pub(super) fn backoff_delay(base: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
pub(super) fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

/// Split `host[:port]`, keeping IPv6 brackets on the host.
pub(super) fn split_host_port(s: &str) -> (&str, Option<u16>) {
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
pub(super) fn is_insecure(list: &[String], authority: &str) -> bool {
    let (host, _) = split_host_port(authority);
    list.iter().any(|entry| {
        let entry = entry.trim();
        entry.eq_ignore_ascii_case(authority)
            || (split_host_port(entry).1.is_none() && entry.eq_ignore_ascii_case(host))
    })
}

/// Lowercased host and effective port of a URL.
pub(super) fn origin(uri: &Uri) -> Option<(String, u16)> {
    let host = uri.host()?.to_ascii_lowercase();
    Some((host, uri.port_u16().unwrap_or_else(|| default_port(uri))))
}

pub(super) fn default_port(uri: &Uri) -> u16 {
    if uri.scheme_str() == Some("http") {
        80
    } else {
        443
    }
}

/// Resolve a `Location` header against the URL that sent it.
pub(super) fn resolve_location(base: &Uri, loc: &str) -> Option<String> {
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
pub(super) fn percent_encode(s: &str) -> String {
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
    use super::*;

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::super::Client>();
        check::<super::super::Endpoint>();
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
    }

    /// An inner transport that records what is sent.
    #[derive(Debug)]
    struct Recorder {
        buffers: ureq::unversioned::transport::LazyBuffers,
        sent: std::sync::Arc<Mutex<Vec<u8>>>,
    }

    impl Transport for Recorder {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            let out = self.buffers.output();
            lock(&self.sent).extend_from_slice(&out[..amount]);
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            Ok(false)
        }
        fn is_open(&mut self) -> bool {
            true
        }
    }

    #[test]
    fn forwarded_requests_go_out_in_absolute_form() {
        let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut t = AbsoluteTarget {
            inner: Box::new(Recorder {
                buffers: ureq::unversioned::transport::LazyBuffers::new(1024, 256),
                sent: sent.clone(),
            }),
            origin: "http://reg.lan:5000".into(),
            at_start: true,
        };
        let mut send = |bytes: &[u8]| {
            t.buffers().output()[..bytes.len()].copy_from_slice(bytes);
            t.transmit_output(bytes.len(), NextTimeout::default())
        };
        // A head in two pieces, then a second request on the same connection.
        send(b"GET /v2/a?x=1 HTTP/1.1\r\nhost: reg.lan:5000\r\n").unwrap();
        send(b"accept: */*\r\n\r\n").unwrap();
        send(b"GET /v2/b HTTP/1.1\r\nhost: reg.lan:5000\r\n\r\n").unwrap();
        // Too long for the buffer once the origin is added: an error, not a cut.
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "x".repeat(230));
        assert!(send(long.as_bytes()).is_err());
        assert_eq!(
            String::from_utf8_lossy(&lock(&sent)),
            "GET http://reg.lan:5000/v2/a?x=1 HTTP/1.1\r\nhost: reg.lan:5000\r\naccept: */*\r\n\r\n\
             GET http://reg.lan:5000/v2/b HTTP/1.1\r\nhost: reg.lan:5000\r\n\r\n"
        );
    }

    #[test]
    fn proxy_failures_name_the_proxy_masked() {
        let p = ProxyUrl::parse("http://me:hunter2@proxy.lan:3128").unwrap();
        let url = "https://reg.lan:5000/v2/";
        let refused = |status: &str| {
            proxy_failure(
                &p,
                url,
                ureq::Error::ConnectProxyFailed(format!("proxy server responded {status}")),
            )
            .ok()
            .unwrap()
        };
        let check = |f: &Failure, transient: bool, text: &str| {
            let shown = format!("{:#}", f.err);
            assert_eq!(f.transient, transient, "{shown}");
            assert!(shown.contains(text), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert_eq!(super::super::worth_retrying(&f.err), transient, "{shown}");
        };
        check(
            &refused("407/Proxy Authentication Required"),
            false,
            "proxy http://me:***@proxy.lan:3128 refused reg.lan:5000 (HTTP 407): check the user and password",
        );
        check(
            &refused("403/Forbidden"),
            false,
            "(HTTP 403): check that the proxy allows connections to reg.lan:5000",
        );
        check(
            &refused("502/Bad Gateway"),
            true,
            "(HTTP 502): the proxy could not reach reg.lan:5000",
        );
        let anonymous = ProxyUrl::parse("http://proxy.lan:3128").unwrap();
        let f = proxy_refused(&anonymous, url, 407);
        check(
            &f,
            false,
            "the proxy wants credentials: put them in the proxy URL",
        );
        let f = proxy_failure(
            &p,
            url,
            ureq::Error::ConnectProxyFailed("proxy server did not respond".into()),
        )
        .ok()
        .unwrap();
        check(&f, true, "cannot connect to proxy http://me:***@proxy.lan:3128 (proxy server did not respond): check that a proxy runs there");
        let f = proxy_failure(
            &p,
            url,
            ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        )
        .ok()
        .unwrap();
        check(
            &f,
            true,
            "cannot connect to proxy http://me:***@proxy.lan:3128",
        );
        let f = proxy_failure(&p, url, ureq::Error::HostNotFound)
            .ok()
            .unwrap();
        assert!(!f.transient);
        assert!(format!("{:#}", f.err).contains("its host name does not resolve"));
        let f = proxy_failure(&p, url, ureq::Error::Timeout(ureq::Timeout::Connect))
            .ok()
            .unwrap();
        check(&f, true, "no answer in time");
        // TLS with the registry, through the tunnel: not the proxy's.
        let tls = ureq::Error::Io(std::io::ErrorKind::InvalidData.into());
        assert!(proxy_failure(&p, url, tls).is_err());
    }

    #[test]
    fn pull_options_debug_masks_the_proxy() {
        let opts = PullOptions {
            proxy: Some(ProxyUrl::parse("http://me:hunter2@proxy.lan:3128").unwrap()),
            no_proxy: vec![".lan".into()],
            ..PullOptions::default()
        };
        let shown = format!("{opts:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("http://me:***@proxy.lan:3128"), "{shown}");
    }

    #[test]
    fn proxy_settings_of_a_pull() {
        let opts = PullOptions {
            proxy: Some(ProxyUrl::parse("http://proxy.lan:3128").unwrap()),
            no_proxy: vec!["reg.lan".into()],
            proxy_env: false,
            ..PullOptions::default()
        };
        let c = proxy_config(&opts).unwrap();
        assert!(c.proxy_for("https", "other.lan", 443).is_some());
        assert!(c.proxy_for("https", "reg.lan", 443).is_none());
        let bad = PullOptions {
            no_proxy: vec!["10.0.0.0/40".into()],
            proxy_env: false,
            ..PullOptions::default()
        };
        assert!(proxy_config(&bad).is_err());
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
        // A name that does not resolve stays that way: no 30 s of retries.
        assert!(!is_transient(&ureq::Error::HostNotFound));
        let f = Failure::transport("https://no.such.host/v2/", ureq::Error::HostNotFound);
        assert!(!f.transient);
        assert!(
            f.err.to_string().contains("cannot resolve no.such.host"),
            "{}",
            f.err
        );
        let lookup = |msg: &str| ureq::Error::Io(std::io::Error::other(msg.to_string()));
        assert_eq!(
            classify(&lookup(
                "failed to lookup address information: Name does not resolve"
            )),
            Kind::NoSuchHost
        );
        assert_eq!(
            classify(&lookup(
                "failed to lookup address information: Temporary failure in name resolution"
            )),
            Kind::Other
        );
        let refused = ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        let f = Failure::transport("http://127.0.0.1:9/v2/", refused);
        assert!(f.transient);
        let text = f.err.to_string();
        assert!(
            text.contains("cannot connect to 127.0.0.1:9")
                && text.contains("check that a registry runs there"),
            "{text}"
        );
        assert!(!is_transient(&ureq::Error::BadUri("x".into())));
    }
}
