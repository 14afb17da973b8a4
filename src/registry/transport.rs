//! What every request shares: the agents (one per TLS policy, proxied or
//! direct), how a failed attempt is classified (transient or not, and what
//! to tell the user), and the small URL and header helpers.

use std::io::Read as _;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{Response, Uri};
use ureq::tls::TlsConfig;
use ureq::{Agent, Body};

use super::pace::{Limits, Pace};
use super::RegistryError;

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
                    detail: source.to_string(),
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

/// Sort a transport error. std reports a failed `getaddrinfo` only as text
/// ("failed to lookup address information: …"), so the text decides there;
/// `EAI_AGAIN` ("Temporary failure in name resolution") stays transient: at
/// boot, the DNS server may not answer yet.
pub(super) fn classify(e: &ureq::Error) -> Kind {
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
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain strings: a panic elsewhere cannot leave
    // them half-written, so a poisoned lock is still good to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One TLS policy, through the environment's proxy (`HTTPS_PROXY`, …,
/// honouring `NO_PROXY`) or direct. Loopback hosts always go direct: a proxy
/// cannot reach our loopback (Go's net/http, hence docker and podman, make
/// the same exception).
pub(super) struct Agents {
    pub(super) proxied: Agent,
    pub(super) direct: Agent,
}

impl Agents {
    pub(super) fn new(tls: TlsConfig, limits: &Limits) -> Self {
        Agents {
            proxied: new_agent(tls.clone(), ureq::Proxy::try_from_env(), limits),
            direct: new_agent(tls, None, limits),
        }
    }
}

/// `localhost` or a loopback address (`Uri::host` keeps IPv6 brackets).
pub(super) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An agent with our timeouts and user agent, that hands every status and
/// redirect back to us. Each request adds its own deadline (`pace`).
pub(super) fn new_agent(tls: TlsConfig, proxy: Option<ureq::Proxy>, limits: &Limits) -> Agent {
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
        // Headers within one rate window, and no read idle for longer: a
        // whole window without a byte is below any floor. The average rate
        // and the deadline are checked per request (`pace`).
        .timeout_recv_response(Some(limits.window))
        .timeout_per_read(Some(limits.window))
        .timeout_per_write(Some(Duration::from_secs(30)))
        .tls_config(tls)
        .build()
        .new_agent()
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
