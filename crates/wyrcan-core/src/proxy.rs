//! HTTP proxies, the pure part: the proxy URL (`http://[USER:PASS@]HOST:PORT`,
//! parsed, checked, and masked for messages), `NO_PROXY` lists as curl and
//! Docker read them, the proxy settings of the environment (read through a
//! lookup function, so this stays free of I/O), and which proxy, if any, a
//! request URL goes through. Connecting is the caller's (`src/registry`).
//!
//! The rules, per request URL (each redirect hop decides again):
//!
//! - `https://` URLs use the HTTPS proxy (`--proxy`, `wyrcan.proxy=`, else
//!   `HTTPS_PROXY`, `https_proxy`, `ALL_PROXY`, `all_proxy`), `http://` URLs
//!   the HTTP proxy (`--proxy`, else `HTTP_PROXY`, `http_proxy`, `ALL_PROXY`,
//!   `all_proxy`); an empty variable counts as unset;
//! - loopback hosts (`localhost`, `127.0.0.0/8`, `::1`, as written in the
//!   URL) always go direct: a proxy cannot reach our loopback (Go's
//!   net/http, hence docker and podman, make the same exception);
//! - a host matching the `NO_PROXY` list (`--no-proxy` and the environment's
//!   `NO_PROXY`/`no_proxy`, merged) goes direct.
//!
//! `NO_PROXY` entries, comma-separated, follow Go's `httpproxy` (Docker):
//! `*` matches everything; `example.com` matches that host and its
//! subdomains; `.example.com` and `*.example.com` match subdomains only; an
//! IP address matches that address as written in a URL, a CIDR
//! (`10.0.0.0/8`, `fd00::/8`) any address inside it; `HOST:PORT` (`[V6]:PORT`)
//! matches that port only. Names are never resolved to be compared with IP
//! entries (neither curl nor Go do).
//!
//! A password never leaves this module in text: [`ProxyUrl`]'s `Display`
//! and `Debug` show `http://user:***@host:port`, [`mask`] does the same for
//! a string that did not parse, and no [`ProxyError`] holds any part of the
//! user information.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What stands for a password in messages.
pub const MASK: &str = "***";

/// The port of a proxy URL without one (Go's default for `http://`).
pub const DEFAULT_PORT: u16 = 80;

/// Why a proxy URL or a `NO_PROXY` entry was refused. None of these holds
/// any part of the URL's user information.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Nothing given.
    #[error("the proxy URL is empty (expected http://[USER:PASS@]HOST:PORT)")]
    Empty,
    /// A scheme other than `http://`.
    #[error(
        "only http:// proxies are supported, not {0}:// (expected http://[USER:PASS@]HOST:PORT)"
    )]
    Scheme(String),
    /// No host after the user information.
    #[error("the proxy URL has no host (expected http://[USER:PASS@]HOST:PORT)")]
    NoHost,
    /// A host that is neither a name nor an IP address.
    #[error(
        "{0:?} is not a host name or IP address (IPv6 goes in brackets: http://[fd00::1]:3128)"
    )]
    Host(String),
    /// A port that is not a number from 1 to 65535.
    #[error("{0:?} is not a port (1 to 65535)")]
    Port(String),
    /// A path, query or fragment after the host.
    #[error("a proxy URL has no path, query or fragment (expected http://[USER:PASS@]HOST:PORT)")]
    Path,
    /// User or password with a bad `%` escape, or not UTF-8 once decoded.
    #[error("the user or password of the proxy URL is not valid: percent-encode special characters (@ as %40, : as %3A, % as %25)")]
    Userinfo,
    /// A `NO_PROXY` entry that means nothing.
    #[error("no-proxy entry {entry:?}: {why} (expected HOST, .DOMAIN, IP, CIDR like 10.0.0.0/8, or *, each optionally with :PORT)")]
    NoProxy {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// An HTTP proxy: `http://[USER:PASS@]HOST[:PORT][/]`, the scheme optional
/// (`HOST:PORT`, as curl and Go accept in the environment), the port 80
/// without one. User and password are percent-decoded. `Display` and
/// `Debug` mask the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// The host as written, lowercased; IPv6 in brackets.
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
}

impl ProxyUrl {
    /// Parse and check a proxy URL. The error never quotes the user
    /// information: show [`mask`] of the input beside it.
    pub fn parse(s: &str) -> Result<ProxyUrl, ProxyError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ProxyError::Empty);
        }
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => return Err(ProxyError::Scheme(scheme.to_ascii_lowercase())),
            None => s,
        };
        // The user information ends at the last `@`: a password with an
        // unencoded `/`, `?` or `#` still parses (and is still masked).
        let (userinfo, hostport) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
        if hostport.contains(['/', '?', '#']) {
            return Err(ProxyError::Path);
        }
        if hostport.is_empty() {
            return Err(ProxyError::NoHost);
        }
        let (host, port) = split_host_port(hostport)
            .ok_or_else(|| ProxyError::Port(port_part(hostport).to_string()))?;
        let host = check_host(host)?;
        let port = match port {
            Some(p) => p,
            None => DEFAULT_PORT,
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (u, p) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                (Some(decode(u)?), p.map(decode).transpose()?)
            }
        };
        Ok(ProxyUrl {
            host,
            port,
            user,
            password,
        })
    }

    /// The host, lowercased; an IPv6 address in brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The user, decoded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The password, decoded: only for the `Proxy-Authorization` header.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Whether the URL carries credentials (a user, a password or both).
    pub fn has_credentials(&self) -> bool {
        self.user.is_some() || self.password.is_some()
    }

    /// `user:password` as HTTP Basic encodes it (before base64), when the
    /// URL carries credentials.
    pub fn basic_credentials(&self) -> Option<String> {
        self.has_credentials().then(|| {
            format!(
                "{}:{}",
                self.user.as_deref().unwrap_or(""),
                self.password.as_deref().unwrap_or("")
            )
        })
    }
}

impl fmt::Display for ProxyUrl {
    /// `http://user:***@host:port` (`http://user@host:port` without a
    /// password, `http://host:port` without either).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("http://")?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
        }
        if self.password.is_some() {
            write!(f, ":{MASK}")?;
        }
        if self.has_credentials() {
            f.write_str("@")?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

impl std::str::FromStr for ProxyUrl {
    type Err = ProxyError;
    fn from_str(s: &str) -> Result<ProxyUrl, ProxyError> {
        ProxyUrl::parse(s)
    }
}

/// A proxy URL as given, password masked, for messages about a URL that
/// may not parse: everything between `user:` and the last `@` becomes
/// `***`. A string without `@` has no password and comes back as is.
pub fn mask(raw: &str) -> String {
    let raw = raw.trim();
    let (scheme, rest) = match raw.find("://") {
        Some(i) => raw.split_at(i + 3),
        None => ("", raw),
    };
    let Some(at) = rest.rfind('@') else {
        return raw.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}{user}:{MASK}@{}", &rest[at + 1..]),
        None => raw.to_string(),
    }
}

/// Percent-decode user information (`+` stays a plus).
fn decode(s: &str) -> Result<String, ProxyError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(ProxyError::Userinfo)?;
            let hex = std::str::from_utf8(hex).map_err(|_| ProxyError::Userinfo)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ProxyError::Userinfo)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ProxyError::Userinfo)
}

/// The text after the host, for a port error.
fn port_part(hostport: &str) -> &str {
    if hostport.starts_with('[') {
        hostport.find(']').map_or("", |i| {
            let rest = &hostport[i + 1..];
            rest.strip_prefix(':').unwrap_or(rest)
        })
    } else {
        hostport.rsplit_once(':').map_or(hostport, |(_, p)| p)
    }
}

/// `host[:port]` → host (IPv6 keeps its brackets) and port; `None` for a
/// port that is not 1–65535. A bare IPv6 address (more than one `:`, no
/// brackets) is all host.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(i) => match &s[i + 1..] {
                "" => (&s[..=i], None),
                rest => (&s[..=i], Some(rest.strip_prefix(':').unwrap_or(rest))),
            },
            None => (s, None),
        }
    } else if s.matches(':').count() > 1 {
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    match port {
        None => Some((host, None)),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some((host, Some(n))),
            _ => None,
        },
    }
}

/// A host name (letters, digits, `-`, `_`, dots between labels), an IPv4
/// address, or an IPv6 address in brackets; lowercased.
fn check_host(host: &str) -> Result<String, ProxyError> {
    let bad = || ProxyError::Host(host.to_string());
    if host.is_empty() {
        return Err(ProxyError::NoHost);
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(bad)?;
        inner.parse::<Ipv6Addr>().map_err(|_| bad())?;
        return Ok(host.to_ascii_lowercase());
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Ok(host.to_string());
    }
    let labels_ok = host.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    // All digits and dots but not an IPv4 address (10.0.0.300): a typo.
    let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !labels_ok || numeric {
        return Err(bad());
    }
    Ok(host.to_ascii_lowercase())
}

/// A URL's host as an IP address, if it is one (`Uri::host` keeps IPv6
/// brackets).
fn host_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// `localhost` or a loopback address, as written in a URL (IPv6 in
/// brackets or not).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost") || host_ip(host).is_some_and(|ip| ip.is_loopback())
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// `*`.
    All,
    /// `example.com` (`subdomains_only: false`) or `.example.com` /
    /// `*.example.com` (`true`), lowercased, without the leading dot.
    Domain {
        name: String,
        subdomains_only: bool,
        port: Option<u16>,
    },
    /// An address, as a URL would write it.
    Ip { ip: IpAddr, port: Option<u16> },
    /// A network: `addr/prefix`.
    Cidr { net: IpAddr, prefix: u8 },
}

impl Entry {
    fn parse(entry: &str) -> Result<Entry, ProxyError> {
        let bad = |why| ProxyError::NoProxy {
            entry: entry.to_string(),
            why,
        };
        if entry == "*" {
            return Ok(Entry::All);
        }
        if let Some((addr, prefix)) = entry.split_once('/') {
            let net =
                host_ip(addr).ok_or_else(|| bad("a CIDR needs an IP address before the /"))?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            let prefix = prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max && !prefix.starts_with('+'))
                .ok_or_else(|| bad("the prefix length after / is out of range"))?;
            return Ok(Entry::Cidr { net, prefix });
        }
        let (host, port) =
            split_host_port(entry).ok_or_else(|| bad("the port is not 1 to 65535"))?;
        if let Some(ip) = host_ip(host) {
            return Ok(Entry::Ip { ip, port });
        }
        let (name, subdomains_only) =
            match host.strip_prefix("*.").or_else(|| host.strip_prefix('.')) {
                Some(rest) => (rest, true),
                None => (host, false),
            };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(bad("not a host name, domain, IP address or CIDR"));
        }
        Ok(Entry::Domain {
            name,
            subdomains_only,
            port,
        })
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        match self {
            Entry::All => true,
            Entry::Domain {
                name,
                subdomains_only,
                port: p,
            } => {
                let sub = host
                    .strip_suffix(name.as_str())
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1);
                (sub || (!subdomains_only && host == name)) && port_ok(p)
            }
            Entry::Ip { ip: want, port: p } => ip == Some(*want) && port_ok(p),
            Entry::Cidr { net, prefix } => ip.is_some_and(|ip| in_network(ip, *net, *prefix)),
        }
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let (a, b, bits) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = bits - u32::from(prefix);
    // A /0 compares nothing; `>> 128` would overflow.
    shift >= bits || (a >> shift) == (b >> shift)
}

/// A `NO_PROXY` list: the hosts that go direct.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    /// Each entry as given (trimmed), and parsed.
    entries: Vec<(String, Entry)>,
}

impl NoProxy {
    /// Parse lists (each comma-separated, like `NO_PROXY`); empty entries
    /// are skipped, a bad one is an error.
    pub fn parse<'a>(lists: impl IntoIterator<Item = &'a str>) -> Result<NoProxy, ProxyError> {
        let mut out = NoProxy::default();
        for entry in split_list(lists) {
            out.entries.push((entry.to_string(), Entry::parse(entry)?));
        }
        Ok(out)
    }

    /// Like [`NoProxy::parse`], but a bad entry is left out and returned
    /// beside the list (for the environment: curl and Go ignore them too).
    pub fn parse_lenient<'a>(
        lists: impl IntoIterator<Item = &'a str>,
    ) -> (NoProxy, Vec<ProxyError>) {
        let mut out = NoProxy::default();
        let mut errors = Vec::new();
        for entry in split_list(lists) {
            match Entry::parse(entry) {
                Ok(e) => out.entries.push((entry.to_string(), e)),
                Err(e) => errors.push(e),
            }
        }
        (out, errors)
    }

    /// This list, then `other`'s entries.
    pub fn merge(mut self, other: NoProxy) -> NoProxy {
        self.entries.extend(other.entries);
        self
    }

    /// Whether a request to `host` (as written in the URL: IPv6 in
    /// brackets or not, any case, a trailing dot or not) on `port` goes direct.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host_ip(&host);
        self.entries.iter().any(|(_, e)| e.matches(&host, ip, port))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn split_list<'a>(lists: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    lists
        .into_iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

impl fmt::Display for NoProxy {
    /// The entries as given, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (raw, _)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(raw)?;
        }
        Ok(())
    }
}

impl fmt::Debug for NoProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoProxy({self})")
    }
}

/// A proxy variable of the environment that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value}: {problem} (fix or unset the variable)")]
pub struct EnvError {
    /// The variable.
    pub var: &'static str,
    /// Its value, password masked.
    pub value: String,
    /// What is wrong with it.
    pub problem: ProxyError,
}

/// The variables that name the proxy of `https://` URLs, in order.
pub const HTTPS_VARS: [&str; 4] = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];
/// The variables that name the proxy of `http://` URLs, in order.
pub const HTTP_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];
/// The variables that hold the `NO_PROXY` list, in order (the first set one counts).
pub const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// Which proxy each scheme uses, and which hosts go direct.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The proxy of `http://` URLs (plain requests in absolute form).
    pub http: Option<ProxyUrl>,
    /// The proxy of `https://` URLs (a `CONNECT` tunnel).
    pub https: Option<ProxyUrl>,
    /// Hosts that go direct (loopback always does).
    pub no_proxy: NoProxy,
}

impl ProxyConfig {
    /// One proxy for both schemes (`--proxy`, `wyrcan.proxy=`), or none.
    pub fn explicit(proxy: Option<ProxyUrl>, no_proxy: NoProxy) -> ProxyConfig {
        ProxyConfig {
            http: proxy.clone(),
            https: proxy,
            no_proxy,
        }
    }

    /// The settings of a host: `explicit` for both schemes if given, else
    /// the environment's (`env` looks a variable up; an empty value counts
    /// as unset); the environment's `NO_PROXY` merged after `no_proxy`.
    /// Bad `NO_PROXY` entries are left out and returned; a bad proxy
    /// variable is an error (a silently ignored proxy only fails later,
    /// further from the cause).
    pub fn with_env(
        explicit: Option<ProxyUrl>,
        no_proxy: NoProxy,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(ProxyConfig, Vec<ProxyError>), EnvError> {
        let get = |var: &str| env(var).filter(|v| !v.trim().is_empty());
        let from_env = |vars: &[&'static str]| -> Result<Option<ProxyUrl>, EnvError> {
            let Some((var, value)) = vars.iter().find_map(|v| get(v).map(|x| (*v, x))) else {
                return Ok(None);
            };
            ProxyUrl::parse(&value)
                .map(Some)
                .map_err(|problem| EnvError {
                    var,
                    value: mask(&value),
                    problem,
                })
        };
        let (http, https) = match explicit {
            Some(p) => (Some(p.clone()), Some(p)),
            None => (from_env(&HTTP_VARS)?, from_env(&HTTPS_VARS)?),
        };
        let env_list = NO_PROXY_VARS
            .iter()
            .find_map(|v| get(v))
            .unwrap_or_default();
        let (env_no_proxy, errors) = NoProxy::parse_lenient([env_list.as_str()]);
        Ok((
            ProxyConfig {
                http,
                https,
                no_proxy: no_proxy.merge(env_no_proxy),
            },
            errors,
        ))
    }

    /// The proxy a request to `scheme://host:port` goes through, or `None`
    /// for a direct connection: loopback hosts and hosts in the `NO_PROXY`
    /// list go direct, as does any scheme but `http` and `https`.
    pub fn proxy_for(&self, scheme: &str, host: &str, port: u16) -> Option<&ProxyUrl> {
        let proxy = if scheme.eq_ignore_ascii_case("https") {
            self.https.as_ref()
        } else if scheme.eq_ignore_ascii_case("http") {
            self.http.as_ref()
        } else {
            None
        }?;
        if is_loopback(host) || self.no_proxy.matches(host, port) {
            return None;
        }
        Some(proxy)
    }

    /// Whether any scheme has a proxy.
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }
}

impl fmt::Display for ProxyConfig {
    /// `https via http://u:***@h:3128, http via …, direct: loopback, a,.b`
    /// (passwords masked).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |p: &Option<ProxyUrl>| {
            p.as_ref()
                .map_or("direct".to_string(), |p| format!("via {p}"))
        };
        write!(
            f,
            "https {}, http {}, direct: loopback",
            show(&self.https),
            show(&self.http)
        )?;
        if !self.no_proxy.is_empty() {
            write!(f, ", {}", self.no_proxy)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyConfig({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ProxyUrl {
        ProxyUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn proxy_urls_parse() {
        // input, host, port, user, password, shown
        type Case = (
            &'static str,
            &'static str,
            u16,
            Option<&'static str>,
            Option<&'static str>,
            &'static str,
        );
        let cases: &[Case] = &[
            (
                "http://proxy.lan:3128",
                "proxy.lan",
                3128,
                None,
                None,
                "http://proxy.lan:3128",
            ),
            (
                "http://proxy.lan:3128/",
                "proxy.lan",
                3128,
                None,
                None,
                "http://proxy.lan:3128",
            ),
            (
                "HTTP://Proxy.LAN:3128",
                "proxy.lan",
                3128,
                None,
                None,
                "http://proxy.lan:3128",
            ),
            (
                "proxy.lan:3128",
                "proxy.lan",
                3128,
                None,
                None,
                "http://proxy.lan:3128",
            ),
            (
                "http://proxy.lan",
                "proxy.lan",
                80,
                None,
                None,
                "http://proxy.lan:80",
            ),
            (
                "http://10.0.0.1:8080",
                "10.0.0.1",
                8080,
                None,
                None,
                "http://10.0.0.1:8080",
            ),
            (
                "http://[fd00::1]:3128",
                "[fd00::1]",
                3128,
                None,
                None,
                "http://[fd00::1]:3128",
            ),
            (
                "http://[FD00::1]",
                "[fd00::1]",
                80,
                None,
                None,
                "http://[fd00::1]:80",
            ),
            (
                "http://user:pass@proxy.lan:3128",
                "proxy.lan",
                3128,
                Some("user"),
                Some("pass"),
                "http://user:***@proxy.lan:3128",
            ),
            (
                " http://u%40corp:p%3As%25%2F@proxy.lan:3128 ",
                "proxy.lan",
                3128,
                Some("u@corp"),
                Some("p:s%/"),
                "http://u@corp:***@proxy.lan:3128",
            ),
            // Unencoded specials in the password: the last `@` ends it.
            (
                "http://user:p@ss/w?rd#1@proxy.lan:3128",
                "proxy.lan",
                3128,
                Some("user"),
                Some("p@ss/w?rd#1"),
                "http://user:***@proxy.lan:3128",
            ),
            (
                "http://user@proxy.lan:3128",
                "proxy.lan",
                3128,
                Some("user"),
                None,
                "http://user@proxy.lan:3128",
            ),
            (
                "http://:secret@proxy.lan:3128",
                "proxy.lan",
                3128,
                Some(""),
                Some("secret"),
                "http://:***@proxy.lan:3128",
            ),
            (
                "http://u:@proxy.lan:1",
                "proxy.lan",
                1,
                Some("u"),
                Some(""),
                "http://u:***@proxy.lan:1",
            ),
        ];
        for &(input, host, port, user, password, shown) in cases {
            let p = url(input);
            assert_eq!(p.host(), host, "{input}");
            assert_eq!(p.port(), port, "{input}");
            assert_eq!(p.user(), user, "{input}");
            assert_eq!(p.password(), password, "{input}");
            assert_eq!(p.to_string(), shown, "{input}");
            assert_eq!(format!("{p:?}"), format!("ProxyUrl({shown})"), "{input}");
        }
        assert_eq!(
            url("http://u:p%3A@h:1").basic_credentials().as_deref(),
            Some("u:p:")
        );
        assert_eq!(url("http://h:1").basic_credentials(), None);
        assert_eq!(url("http://h:1").authority(), "h:1");
    }

    #[test]
    fn bad_proxy_urls_are_refused_without_the_password() {
        let cases: &[(&str, ProxyError)] = &[
            ("", ProxyError::Empty),
            ("   ", ProxyError::Empty),
            ("https://proxy:3128", ProxyError::Scheme("https".into())),
            (
                "socks5://u:secret@proxy:1080",
                ProxyError::Scheme("socks5".into()),
            ),
            ("http://", ProxyError::NoHost),
            ("http://u:secret@", ProxyError::NoHost),
            ("http://u:secret@:3128", ProxyError::NoHost),
            ("http://proxy:0", ProxyError::Port("0".into())),
            ("http://proxy:65536", ProxyError::Port("65536".into())),
            ("http://proxy:+80", ProxyError::Port("+80".into())),
            ("http://proxy:", ProxyError::Port("".into())),
            (
                "http://u:secret@proxy:port",
                ProxyError::Port("port".into()),
            ),
            ("http://[fd00::1]:x", ProxyError::Port("x".into())),
            ("http://[fd00::1]x", ProxyError::Port("x".into())),
            ("http://proxy:3128/path", ProxyError::Path),
            ("http://proxy:3128?q", ProxyError::Path),
            ("http://pro xy:3128", ProxyError::Host("pro xy".into())),
            (
                "http://10.0.0.300:3128",
                ProxyError::Host("10.0.0.300".into()),
            ),
            ("http://[zz::1]:3128", ProxyError::Host("[zz::1]".into())),
            ("http://fd00::1", ProxyError::Host("fd00::1".into())),
            ("http://a..b:1", ProxyError::Host("a..b".into())),
            ("http://u:p%zz@proxy:1", ProxyError::Userinfo),
            ("http://u:p%4@proxy:1", ProxyError::Userinfo),
            ("http://u:%ff@proxy:1", ProxyError::Userinfo),
        ];
        for (input, want) in cases {
            let got = ProxyUrl::parse(input).unwrap_err();
            assert_eq!(&got, want, "{input:?}");
            assert!(!got.to_string().contains("secret"), "{input}: {got}");
        }
    }

    #[test]
    fn masking() {
        for (raw, want) in [
            ("http://proxy:3128", "http://proxy:3128"),
            ("http://user:pw@proxy:3128", "http://user:***@proxy:3128"),
            ("user:pw@proxy:3128", "user:***@proxy:3128"),
            ("http://user:p@s/s@proxy:bad", "http://user:***@proxy:bad"),
            ("socks5://u:pw@h", "socks5://u:***@h"),
            ("http://user@proxy", "http://user@proxy"),
            ("not a url", "not a url"),
            ("", ""),
        ] {
            assert_eq!(mask(raw), want, "{raw}");
        }
    }

    #[test]
    fn no_proxy_matching() {
        // list, host, port, goes direct
        let cases: &[(&str, &str, u16, bool)] = &[
            ("", "reg.example.com", 443, false),
            ("*", "anything.at.all", 443, true),
            ("*", "10.1.2.3", 80, true),
            // A name: itself and its subdomains.
            ("example.com", "example.com", 443, true),
            ("example.com", "reg.example.com", 443, true),
            ("example.com", "a.b.example.com", 443, true),
            ("example.com", "badexample.com", 443, false),
            ("example.com", "example.com.evil", 443, false),
            ("Example.COM", "REG.example.com", 443, true),
            ("example.com.", "reg.example.com.", 443, true),
            // A leading dot or `*.`: subdomains only.
            (".example.com", "reg.example.com", 443, true),
            (".example.com", "example.com", 443, false),
            ("*.example.com", "reg.example.com", 443, true),
            ("*.example.com", "example.com", 443, false),
            // Ports.
            ("reg.lan:5000", "reg.lan", 5000, true),
            ("reg.lan:5000", "reg.lan", 443, false),
            (".lan:5000", "reg.lan", 5000, true),
            // IP addresses, as written in the URL; names are not resolved.
            ("10.0.0.5", "10.0.0.5", 5000, true),
            ("10.0.0.5", "10.0.0.6", 5000, false),
            ("10.0.0.5:5000", "10.0.0.5", 5000, true),
            ("10.0.0.5:5000", "10.0.0.5", 5001, false),
            ("10.0.0.5", "reg.lan", 5000, false),
            ("fd00::5", "[fd00::5]", 443, true),
            ("[fd00::5]", "[FD00::5]", 443, true),
            ("[fd00::5]:5000", "[fd00::5]", 5000, true),
            ("[fd00::5]:5000", "[fd00::5]", 443, false),
            // Networks.
            ("10.0.0.0/8", "10.200.3.4", 443, true),
            ("10.0.0.0/8", "11.0.0.1", 443, false),
            ("10.0.0.0/8", "ten.lan", 443, false),
            ("192.168.1.0/24", "192.168.1.77", 443, true),
            ("192.168.1.0/24", "192.168.2.77", 443, false),
            ("0.0.0.0/0", "203.0.113.9", 443, true),
            ("0.0.0.0/0", "[fd00::1]", 443, false),
            ("10.1.2.3/32", "10.1.2.3", 443, true),
            ("fd00::/8", "[fd12:3456::1]", 443, true),
            ("fd00::/8", "[fe80::1]", 443, false),
            ("::/0", "[2001:db8::1]", 443, true),
            // Lists: commas, spaces, empty entries.
            ("a.lan, ,b.lan,,10.0.0.0/8 ", "b.lan", 443, true),
            ("a.lan, b.lan", "c.lan", 443, false),
        ];
        for &(list, host, port, want) in cases {
            let np = NoProxy::parse([list]).unwrap_or_else(|e| panic!("{list}: {e}"));
            assert_eq!(
                np.matches(host, port),
                want,
                "NO_PROXY={list:?}, {host}:{port}"
            );
        }
    }

    #[test]
    fn bad_no_proxy_entries() {
        for entry in [
            "10.0.0.0/33",
            "fd00::/129",
            "reg.lan/8",
            "10.0.0.0/x",
            "10.0.0.0/+8",
            "reg.lan:0",
            "reg.lan:http",
            "a b",
            "a..b",
            ".",
            "*.",
            "[fd00::1",
        ] {
            let e = NoProxy::parse([entry]).unwrap_err();
            assert!(
                matches!(&e, ProxyError::NoProxy { entry: got, .. } if got == entry),
                "{entry}: {e:?}"
            );
        }
        let (np, errors) = NoProxy::parse_lenient(["good.lan,10.0.0.0/99, .ok.lan"]);
        assert_eq!(np.to_string(), "good.lan,.ok.lan");
        assert_eq!(errors.len(), 1);
        assert!(np.matches("x.ok.lan", 1));
        let merged = NoProxy::parse(["a.lan"])
            .unwrap()
            .merge(NoProxy::parse(["b.lan", "c.lan"]).unwrap());
        assert_eq!(format!("{merged:?}"), "NoProxy(a.lan,b.lan,c.lan)");
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "[::2]",
            "reg.lan",
            "localhost.lan",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    /// Which proxy (its authority) or `direct`.
    fn route(c: &ProxyConfig, scheme: &str, host: &str, port: u16) -> String {
        c.proxy_for(scheme, host, port)
            .map_or("direct".into(), ProxyUrl::authority)
    }

    #[test]
    fn choosing_the_proxy_of_a_url() {
        // explicit, --no-proxy, environment, then (scheme, host, port, route)
        type Case = (
            Option<&'static str>,
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str, u16, &'static str)],
        );
        let cases: &[Case] = &[
            // Nothing set: all direct.
            (
                None,
                "",
                &[],
                &[
                    ("https", "reg.lan", 443, "direct"),
                    ("http", "reg.lan", 80, "direct"),
                ],
            ),
            // An explicit proxy covers both schemes, not loopback.
            (
                Some("http://p:3128"),
                "",
                &[],
                &[
                    ("https", "reg.lan", 443, "p:3128"),
                    ("http", "reg.lan", 5000, "p:3128"),
                    ("https", "127.0.0.1", 5000, "direct"),
                    ("http", "localhost", 5000, "direct"),
                    ("https", "[::1]", 5000, "direct"),
                    ("ftp", "reg.lan", 21, "direct"),
                ],
            ),
            // The explicit proxy wins over the environment's; NO_PROXY merges.
            (
                Some("http://p:3128"),
                "a.lan",
                &[("HTTPS_PROXY", "http://envp:1"), ("NO_PROXY", "b.lan")],
                &[
                    ("https", "c.lan", 443, "p:3128"),
                    ("https", "a.lan", 443, "direct"),
                    ("https", "b.lan", 443, "direct"),
                ],
            ),
            // Per scheme, uppercase first, then ALL_PROXY.
            (
                None,
                "",
                &[
                    ("HTTPS_PROXY", "http://s:1"),
                    ("https_proxy", "http://s-lower:1"),
                    ("http_proxy", "h:2"),
                    ("ALL_PROXY", "http://all:3"),
                ],
                &[
                    ("https", "reg.lan", 443, "s:1"),
                    ("http", "reg.lan", 80, "h:2"),
                ],
            ),
            (
                None,
                "",
                &[
                    ("https_proxy", "http://s-lower:1"),
                    ("all_proxy", "http://all:3"),
                ],
                &[
                    ("https", "reg.lan", 443, "s-lower:1"),
                    ("http", "reg.lan", 80, "all:3"),
                ],
            ),
            // Only HTTPS_PROXY: plain HTTP goes direct.
            (
                None,
                "",
                &[("HTTPS_PROXY", "http://s:1")],
                &[
                    ("https", "reg.lan", 443, "s:1"),
                    ("http", "reg.lan", 5000, "direct"),
                ],
            ),
            // Empty values are unset; NO_PROXY before no_proxy.
            (
                None,
                "",
                &[
                    ("HTTPS_PROXY", ""),
                    ("https_proxy", "http://s:1"),
                    ("NO_PROXY", ".corp"),
                    ("no_proxy", "other"),
                ],
                &[
                    ("https", "reg.corp", 443, "direct"),
                    ("https", "other", 443, "s:1"),
                ],
            ),
            (
                None,
                "",
                &[
                    ("HTTPS_PROXY", "http://s:1"),
                    ("NO_PROXY", " "),
                    ("no_proxy", "*"),
                ],
                &[("https", "reg.lan", 443, "direct")],
            ),
        ];
        for (explicit, cli_no_proxy, vars, checks) in cases {
            let explicit = explicit.map(url);
            let no_proxy = NoProxy::parse([*cli_no_proxy]).unwrap();
            let (c, errors) = ProxyConfig::with_env(explicit, no_proxy, env(vars)).unwrap();
            assert!(errors.is_empty());
            for (scheme, host, port, want) in *checks {
                assert_eq!(
                    route(&c, scheme, host, *port),
                    *want,
                    "{vars:?}: {scheme}://{host}:{port}"
                );
            }
        }
    }

    #[test]
    fn the_environment_errors_and_masks() {
        let e = ProxyConfig::with_env(
            None,
            NoProxy::default(),
            env(&[("HTTPS_PROXY", "socks5://me:hunter2@p:1080")]),
        )
        .unwrap_err();
        assert_eq!(e.var, "HTTPS_PROXY");
        let text = e.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.starts_with("HTTPS_PROXY=socks5://me:***@p:1080: only http:// proxies"),
            "{text}"
        );
        // A bad NO_PROXY entry is skipped, not fatal.
        let (c, errors) = ProxyConfig::with_env(
            None,
            NoProxy::default(),
            env(&[
                ("HTTP_PROXY", "http://p:1"),
                ("NO_PROXY", "10.0.0.0/40,a.lan"),
            ]),
        )
        .unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(route(&c, "http", "a.lan", 80), "direct");
        assert_eq!(route(&c, "http", "10.0.0.1", 80), "p:1");
        // The summary masks.
        let c = ProxyConfig::explicit(
            Some(url("http://u:hunter2@p:1")),
            NoProxy::parse(["x"]).unwrap(),
        );
        assert_eq!(
            c.to_string(),
            "https via http://u:***@p:1, http via http://u:***@p:1, direct: loopback, x"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(ProxyConfig::default().is_empty());
    }
}
