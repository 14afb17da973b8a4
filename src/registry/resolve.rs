//! Host names to addresses for every agent of the registry client (ureq's
//! [`Resolver`]), the proxy's host included.
//!
//! Why not only the system's: PID 1 is a static musl binary, and musl's
//! `getaddrinfo` asks for A and AAAA together and fails the whole lookup
//! when the server answers either one REFUSED or SERVFAIL — which is what
//! data-centre resolvers do for the family they do not serve (dnsmasq
//! without `--local=/domain/` refuses AAAA for a name it only knows as A).
//! Wyrcan's own resolver asks each family on its own and uses whichever
//! answers with addresses. The codec is `wyrcan_core::dns`; here are the
//! sockets and the policy:
//!
//! - `/etc/hosts` first (and `localhost`, which needs no file), then DNS;
//! - the servers of `/etc/resolv.conf`, in order, UDP port 53, each family
//!   asked [`TRIES`] times [`TRY_TIMEOUT`] apart, over TCP when the answer
//!   is truncated; a family a server answered (addresses, no records,
//!   NXDOMAIN) is not asked of the next server, one it refused, failed or
//!   did not answer is; the lookup stops at the first server after which
//!   some family has addresses;
//! - `search` domains for names without a dot (musl's `ndots:1`), tried
//!   before the name itself;
//! - IPv4 addresses first, then IPv6;
//! - when no family has an address, the error says what each server
//!   answered for each family.
//!
//! Which resolver runs is [`DnsMode`]: on hosts the system's first (it
//! knows nsswitch, systemd-resolved, `/etc/hosts`), Wyrcan's only when it
//! fails; in PID 1 Wyrcan's.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use tracing::debug;
use ureq::config::{Config, IpFamily};
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;
use wyrcan_core::dns::{self, Answer, DnsError, QType};

/// The resolver configuration read in [`DnsMode::Own`] (and as the
/// fallback of [`DnsMode::System`]).
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The static host table read in [`DnsMode::Own`].
pub const HOSTS: &str = "/etc/hosts";
/// The wait for one server's answer to one try.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// Tries of one server over UDP before the next server.
pub const TRIES: usize = 2;
/// Most bytes read of `/etc/hosts` or `/etc/resolv.conf`.
const MAX_FILE: u64 = 4 << 20;
/// Most addresses handed to ureq (the capacity of [`ResolvedSocketAddrs`]).
const MAX_ADDRS: usize = 16;

/// How the registry client turns host names into addresses
/// ([`super::PullOptions::dns`]). IP literals never need either.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DnsMode {
    /// The system's resolver (`getaddrinfo`: nsswitch, `/etc/hosts`,
    /// systemd-resolved…) first; only when it fails (not when it runs out
    /// of time), Wyrcan's own asks the servers of `/etc/resolv.conf` each
    /// family separately. For hosts.
    #[default]
    System,
    /// Wyrcan's own: `/etc/hosts` and `localhost`, then each family asked
    /// separately of the servers of `/etc/resolv.conf`; the system's only
    /// when that file names no server. For PID 1, which writes that file.
    Own,
    /// As [`DnsMode::Own`], with these servers (`IP:PORT`) asked instead
    /// of `/etc/resolv.conf`'s (its `search` domains still count): servers
    /// on another port than 53, and tests.
    Servers(Vec<SocketAddr>),
}

/// The resolver of the registry client's agents.
#[derive(Debug, Clone)]
pub(super) struct DnsResolver {
    mode: DnsMode,
}

impl DnsResolver {
    pub(super) fn new(mode: &DnsMode) -> Self {
        DnsResolver { mode: mode.clone() }
    }
}

impl Resolver for DnsResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (host, port) = host_and_port(uri)?;
        let family = config.ip_family();
        if let Some(ip) = literal(host) {
            return self.addrs(&[ip], port, family);
        }
        let deadline = Instant::now().checked_add(*timeout.after);
        let families = families(family);
        match &self.mode {
            DnsMode::System => {
                let system = match DefaultResolver::default().resolve(uri, config, timeout) {
                    Ok(addrs) => return Ok(addrs),
                    // No time left to ask again.
                    Err(e @ ureq::Error::Timeout(_)) => return Err(e),
                    Err(e) => e,
                };
                let conf = dns::parse_resolv_conf(&read_file(RESOLV_CONF));
                if conf.nameservers.is_empty() {
                    return Err(system);
                }
                let servers = on_port_53(&conf.nameservers);
                debug!(
                    "the system resolver failed for {host} ({}): asking {} directly",
                    detail(&system),
                    show_servers(&servers)
                );
                match lookup(host, &conf.search, &servers, &families, deadline) {
                    Ok(ips) => self.addrs(&ips, port, family),
                    Err(mut failed) => {
                        failed.report = format!(
                            "the system resolver: {}; the servers of {RESOLV_CONF}: {}",
                            detail(&system),
                            failed.report
                        );
                        Err(failed.into())
                    }
                }
            }
            DnsMode::Own | DnsMode::Servers(_) => {
                let hosts = hosts_addresses(&read_file(HOSTS), host);
                if let Ok(addrs) = self.addrs(&hosts, port, family) {
                    debug!("{host}: {hosts:?} from {HOSTS}");
                    return Ok(addrs);
                }
                let conf = dns::parse_resolv_conf(&read_file(RESOLV_CONF));
                let servers = match &self.mode {
                    DnsMode::Servers(s) => s.clone(),
                    _ => on_port_53(&conf.nameservers),
                };
                if servers.is_empty() {
                    debug!("{RESOLV_CONF} names no server: asking the system resolver for {host}");
                    return DefaultResolver::default().resolve(uri, config, timeout);
                }
                let ips = lookup(host, &conf.search, &servers, &families, deadline)?;
                self.addrs(&ips, port, family)
            }
        }
    }
}

impl DnsResolver {
    /// `ips` with `port`, of the families `family` allows, at most
    /// [`MAX_ADDRS`]; [`ureq::Error::HostNotFound`] when none is left (as
    /// the trait asks).
    fn addrs(
        &self,
        ips: &[IpAddr],
        port: u16,
        family: IpFamily,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        let all = ips.iter().map(|&ip| SocketAddr::new(ip, port));
        for addr in family.keep_wanted(all).take(MAX_ADDRS) {
            out.push(addr);
        }
        if out.is_empty() {
            Err(ureq::Error::HostNotFound)
        } else {
            Ok(out)
        }
    }
}

/// The host (IPv6 brackets kept) and port of a URL, the port by scheme
/// when the URL has none.
fn host_and_port(uri: &Uri) -> Result<(&str, u16), ureq::Error> {
    let authority = uri
        .authority()
        .ok_or_else(|| ureq::Error::BadUri(format!("{uri} has no host")))?;
    let port = match (authority.port_u16(), uri.scheme_str()) {
        (Some(p), _) => p,
        (None, Some("http")) => 80,
        (None, Some("https")) => 443,
        (None, _) => return Err(ureq::Error::BadUri(format!("{uri} has no port"))),
    };
    Ok((authority.host(), port))
}

/// The address a host written as one stands for (`10.0.0.1`, `[::1]`).
fn literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// The families to ask, IPv4 first.
fn families(family: IpFamily) -> Vec<QType> {
    match family {
        IpFamily::Ipv4Only => vec![QType::A],
        IpFamily::Ipv6Only => vec![QType::Aaaa],
        IpFamily::Any => vec![QType::A, QType::Aaaa],
    }
}

fn family_name(q: QType) -> &'static str {
    match q {
        QType::A => "A",
        QType::Aaaa => "AAAA",
    }
}

fn on_port_53(ips: &[IpAddr]) -> Vec<SocketAddr> {
    ips.iter()
        .map(|&ip| SocketAddr::new(ip, dns::PORT))
        .collect()
}

/// A server for messages: its address, and its port when not 53.
fn show_server(s: &SocketAddr) -> String {
    if s.port() == dns::PORT {
        s.ip().to_string()
    } else {
        s.to_string()
    }
}

fn show_servers(servers: &[SocketAddr]) -> String {
    let shown: Vec<String> = servers.iter().map(show_server).collect();
    shown.join(", ")
}

/// A ureq error for messages, without ureq's `io: ` in front of an I/O error.
fn detail(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        e => e.to_string(),
    }
}

/// A file's text, empty when it cannot be read (a missing file means the
/// same as an empty one to resolvers).
fn read_file(path: &str) -> String {
    let mut bytes = Vec::new();
    match std::fs::File::open(path).and_then(|f| f.take(MAX_FILE).read_to_end(&mut bytes)) {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// The addresses `/etc/hosts` (its text) gives `name`, IPv4 first, each
/// once; `127.0.0.1` and `::1` for `localhost` when the file has no line
/// for it. Names compare case-insensitively, trailing dots aside;
/// addresses with an IPv6 zone are skipped.
pub(super) fn hosts_addresses(text: &str, name: &str) -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if words.any(|w| dns::name::same(w, name)) && !found.contains(&ip) {
            found.push(ip);
        }
    }
    if found.is_empty() && dns::name::same(name, "localhost") {
        found = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    }
    found.sort_by_key(IpAddr::is_ipv6);
    found
}

/// The names to ask for `host`, in order: with each search domain first
/// when it has no dot (musl's `ndots:1`), then as written; a trailing dot
/// means exactly this name.
pub(super) fn candidates(host: &str, search: &[String]) -> Vec<String> {
    if let Some(absolute) = host.strip_suffix('.') {
        return vec![absolute.to_string()];
    }
    let mut out = Vec::new();
    if !host.contains('.') {
        out.extend(search.iter().map(|domain| format!("{host}.{domain}")));
    }
    out.push(host.to_string());
    out
}

/// No address for a name: what each server said, and whether asking again
/// later may help.
#[derive(Debug)]
pub(super) struct LookupFailed {
    /// `NAME: A: NXDOMAIN from 10.0.2.3; AAAA: REFUSED from 10.0.2.3`.
    pub(super) report: String,
    /// Some server did not answer, failed (SERVFAIL) or could not be
    /// reached, or time ran out: the next attempt may get an answer. Not
    /// when every family got an answer that stays (NXDOMAIN, no records,
    /// REFUSED).
    pub(super) transient: bool,
}

impl fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report)
    }
}

impl std::error::Error for LookupFailed {}

impl From<LookupFailed> for ureq::Error {
    fn from(e: LookupFailed) -> ureq::Error {
        let kind = if e.transient {
            io::ErrorKind::Other
        } else {
            io::ErrorKind::NotFound
        };
        ureq::Error::Io(io::Error::new(kind, e))
    }
}

/// Ours, when `e` is a failed lookup of [`DnsResolver`].
pub(super) fn lookup_failure(e: &ureq::Error) -> Option<&LookupFailed> {
    match e {
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<LookupFailed>(),
        _ => None,
    }
}

/// What one server said about one name and family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Said {
    Addresses(Vec<IpAddr>),
    NoData,
    NxDomain,
    Refused,
    ServFail,
    /// Nothing within the tries (or before the deadline).
    NoAnswer,
    /// The socket failed: unreachable, refused (nothing listens), closed.
    Io(String),
    /// An answer we cannot use: another error code, a malformed message.
    Bad(String),
}

impl Said {
    /// Whether this answer holds for the name whichever server is asked.
    fn settles(&self) -> bool {
        matches!(self, Said::Addresses(_) | Said::NoData | Said::NxDomain)
    }

    /// Whether asking again later may get another answer.
    fn transient(&self) -> bool {
        matches!(self, Said::ServFail | Said::NoAnswer | Said::Io(_))
    }

    fn from_answer(a: Answer) -> Said {
        match a {
            Answer::Addresses(v) => Said::Addresses(v),
            Answer::NoData => Said::NoData,
            Answer::NxDomain => Said::NxDomain,
        }
    }

    fn from_error(e: DnsError) -> Said {
        match e {
            DnsError::Refused => Said::Refused,
            DnsError::ServFail => Said::ServFail,
            e => Said::Bad(e.to_string()),
        }
    }
}

impl fmt::Display for Said {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Said::Addresses(v) => write!(f, "{v:?}"),
            Said::NoData => f.write_str("no records"),
            Said::NxDomain => f.write_str("NXDOMAIN"),
            Said::Refused => f.write_str("REFUSED"),
            Said::ServFail => f.write_str("SERVFAIL"),
            Said::NoAnswer => f.write_str("no answer"),
            Said::Io(e) | Said::Bad(e) => f.write_str(e),
        }
    }
}

/// Looks `host` up in DNS: each candidate name ([`candidates`]) in turn,
/// each of `servers` in order for the families not settled yet. The
/// addresses (IPv4 first), or what every server said.
pub(super) fn lookup(
    host: &str,
    search: &[String],
    servers: &[SocketAddr],
    families: &[QType],
    deadline: Option<Instant>,
) -> Result<Vec<IpAddr>, LookupFailed> {
    let mut reports = Vec::new();
    let mut transient = false;
    for name in candidates(host, search) {
        if let Err(e) = dns::query(0, &name, QType::A) {
            reports.push(e.to_string());
            continue;
        }
        let mut trails: Vec<(QType, Vec<(SocketAddr, Said)>)> =
            families.iter().map(|&f| (f, Vec::new())).collect();
        let mut pending = families.to_vec();
        let mut out_of_time = false;
        for &server in servers {
            if pending.is_empty() {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                out_of_time = true;
                break;
            }
            for (family, said) in ask(server, &name, &pending, deadline) {
                if said.settles() {
                    pending.retain(|&f| f != family);
                }
                if let Some((_, trail)) = trails.iter_mut().find(|(f, _)| *f == family) {
                    trail.push((server, said));
                }
            }
            let has_addresses = trails
                .iter()
                .any(|(_, t)| t.iter().any(|(_, s)| matches!(s, Said::Addresses(_))));
            if has_addresses {
                break;
            }
        }
        let ips: Vec<IpAddr> = trails
            .iter()
            .flat_map(|(_, t)| t.iter())
            .filter_map(|(_, s)| match s {
                Said::Addresses(v) => Some(v.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        if !ips.is_empty() {
            debug!("{host}: {ips:?} from dns ({name})");
            return Ok(ips);
        }
        transient |= out_of_time
            || trails
                .iter()
                .any(|(_, t)| t.iter().any(|(_, s)| s.transient()));
        let parts: Vec<String> = trails
            .iter()
            .map(|(family, trail)| {
                let said: Vec<String> = trail
                    .iter()
                    .map(|(server, s)| format!("{s} from {}", show_server(server)))
                    .collect();
                let said = if said.is_empty() {
                    "not asked".to_string()
                } else {
                    said.join(", ")
                };
                format!("{}: {said}", family_name(*family))
            })
            .collect();
        let mut report = format!("{name}: {}", parts.join("; "));
        if out_of_time {
            report.push_str(" (out of time)");
        }
        reports.push(report);
    }
    Err(LookupFailed {
        report: reports.join("; then "),
        transient,
    })
}

/// A fresh query id: unpredictable to anyone off the path (std keys its
/// hasher from the OS's random source, and each key is used once).
fn random_id() -> u16 {
    let mut h = RandomState::new().build_hasher();
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish() as u16
}

/// The end of one try: [`TRY_TIMEOUT`] from now or the deadline, whichever
/// comes first; `None` once the deadline has passed.
fn try_end(deadline: Option<Instant>) -> Option<Instant> {
    let now = Instant::now();
    let end = now + TRY_TIMEOUT;
    match deadline {
        Some(d) if d <= now => None,
        Some(d) => Some(end.min(d)),
        None => Some(end),
    }
}

/// Whether an I/O error is a timer running out.
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One query in flight.
struct Query {
    family: QType,
    id: u16,
    bytes: Vec<u8>,
    said: Option<Said>,
}

/// Asks `server` for `name`'s records of each of `families` at once over
/// one UDP socket (connected: only the server's datagrams arrive), up to
/// [`TRIES`] times for those still unanswered; a truncated answer is asked
/// again over TCP.
fn ask(
    server: SocketAddr,
    name: &str,
    families: &[QType],
    deadline: Option<Instant>,
) -> Vec<(QType, Said)> {
    let mut queries: Vec<Query> = Vec::new();
    for &family in families {
        let mut id = random_id();
        while queries.iter().any(|q| q.id == id) {
            id = id.wrapping_add(1);
        }
        match dns::query(id, name, family) {
            Ok(bytes) => queries.push(Query {
                family,
                id,
                bytes,
                said: None,
            }),
            Err(e) => {
                return families
                    .iter()
                    .map(|&f| (f, Said::from_error(e.clone())))
                    .collect()
            }
        }
    }
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).and_then(|s| s.connect(server).map(|()| s));
    let socket = match socket {
        Ok(s) => s,
        Err(e) => {
            return families
                .iter()
                .map(|&f| (f, Said::Io(e.to_string())))
                .collect()
        }
    };
    // Larger than any UDP answer, so that none is cut short here.
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..TRIES {
        let Some(until) = try_end(deadline) else {
            break;
        };
        // A failed send is the socket's failure (e.g. the ICMP error that
        // the previous datagram drew): it ends every query.
        let sent = queries
            .iter()
            .filter(|q| q.said.is_none())
            .try_for_each(|q| socket.send(&q.bytes).map(drop));
        if let Err(e) = sent {
            for q in queries.iter_mut().filter(|q| q.said.is_none()) {
                q.said = Some(Said::Io(e.to_string()));
            }
        }
        while queries.iter().any(|q| q.said.is_none()) {
            let now = Instant::now();
            if now >= until {
                break;
            }
            if let Err(e) =
                socket.set_read_timeout(Some((until - now).max(Duration::from_millis(1))))
            {
                for q in queries.iter_mut().filter(|q| q.said.is_none()) {
                    q.said = Some(Said::Io(e.to_string()));
                }
                break;
            }
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if timed_out(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error (port unreachable: nothing listens there).
                Err(e) => {
                    for q in queries.iter_mut().filter(|q| q.said.is_none()) {
                        q.said = Some(Said::Io(e.to_string()));
                    }
                    break;
                }
            };
            let msg = &buf[..n];
            let Some(id) = msg.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                continue;
            };
            let Some(q) = queries.iter_mut().find(|q| q.id == id && q.said.is_none()) else {
                continue;
            };
            q.said = match dns::parse_response(msg, id, name, q.family) {
                Ok(a) => Some(Said::from_answer(a)),
                Err(DnsError::Truncated) => Some(ask_tcp(server, name, q.family, deadline)),
                // Not an answer to this question (late, spoofed, garbage):
                // keep waiting for the real one.
                Err(
                    DnsError::IdMismatch { .. }
                    | DnsError::QuestionMismatch
                    | DnsError::NotAResponse(_)
                    | DnsError::Short(_),
                ) => None,
                Err(e) => Some(Said::from_error(e)),
            };
        }
    }
    queries
        .into_iter()
        .map(|q| (q.family, q.said.unwrap_or(Said::NoAnswer)))
        .collect()
}

/// Asks `server` over TCP (after a truncated UDP answer), within one try.
fn ask_tcp(server: SocketAddr, name: &str, family: QType, deadline: Option<Instant>) -> Said {
    let id = random_id();
    let query = match dns::query(id, name, family) {
        Ok(q) => q,
        Err(e) => return Said::from_error(e),
    };
    let Some(frame) = dns::tcp_frame(&query) else {
        return Said::Bad("query too long for tcp".into());
    };
    let Some(until) = try_end(deadline) else {
        return Said::NoAnswer;
    };
    let left = || {
        until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let io = |e: io::Error| {
        if timed_out(&e) {
            Said::NoAnswer
        } else {
            Said::Io(format!("over tcp: {e}"))
        }
    };
    let mut stream = match TcpStream::connect_timeout(&server, left()) {
        Ok(s) => s,
        Err(e) => return io(e),
    };
    if let Err(e) = stream
        .set_write_timeout(Some(left()))
        .and_then(|()| stream.write_all(&frame))
    {
        return io(e);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(msg) = dns::tcp_unframe(&got) {
            return match dns::parse_response(msg, id, name, family) {
                Ok(a) => Said::from_answer(a),
                Err(e @ (DnsError::Refused | DnsError::ServFail)) => Said::from_error(e),
                Err(e) => Said::Bad(format!("over tcp: {e}")),
            };
        }
        if Instant::now() >= until {
            return Said::NoAnswer;
        }
        if let Err(e) = stream.set_read_timeout(Some(left())) {
            return io(e);
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                return Said::Io("the server closed the tcp connection before answering".into())
            }
            // At most 2 + 65535 bytes and one read more: tcp_unframe has
            // the whole message by then.
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn hosts_file() {
        let text = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n\
                    10.0.0.5   Registry.LAN reg # the rack's\n\
                    fe80::1%eth0 reg\n# 10.0.0.9 reg\nbogus reg\n2001:db8::5 reg\n10.0.0.5 reg\n";
        assert_eq!(
            hosts_addresses(text, "reg"),
            vec![ip("10.0.0.5"), ip("2001:db8::5")]
        );
        assert_eq!(hosts_addresses(text, "registry.lan."), vec![ip("10.0.0.5")]);
        assert_eq!(
            hosts_addresses(text, "localhost"),
            vec![ip("127.0.0.1"), ip("::1")]
        );
        assert!(hosts_addresses(text, "other").is_empty());
        assert!(hosts_addresses(text, "lan").is_empty());
        // No file: localhost still resolves, nothing else does.
        assert_eq!(
            hosts_addresses("", "LOCALHOST"),
            vec![ip("127.0.0.1"), ip("::1")]
        );
        assert!(hosts_addresses("", "reg").is_empty());
        // The file's localhost wins.
        assert_eq!(
            hosts_addresses("127.0.1.1 localhost\n", "localhost"),
            vec![ip("127.0.1.1")]
        );
    }

    #[test]
    fn search_only_for_names_without_a_dot() {
        let search = vec!["dc1.lan".to_string(), "lan".to_string()];
        assert_eq!(
            candidates("reg", &search),
            ["reg.dc1.lan", "reg.lan", "reg"]
        );
        assert_eq!(candidates("reg.lan", &search), ["reg.lan"]);
        assert_eq!(candidates("reg.", &search), ["reg"]);
        assert_eq!(candidates("reg", &[]), ["reg"]);
    }

    #[test]
    fn literals_and_ports() {
        assert_eq!(literal("10.0.0.1"), Some(ip("10.0.0.1")));
        assert_eq!(literal("[::1]"), Some(ip("::1")));
        assert_eq!(literal("reg.lan"), None);
        let uri: Uri = "https://reg.lan/v2/".parse().unwrap();
        assert_eq!(host_and_port(&uri).unwrap(), ("reg.lan", 443));
        let uri: Uri = "http://[::1]:5000/v2/".parse().unwrap();
        assert_eq!(host_and_port(&uri).unwrap(), ("[::1]", 5000));
        let uri: Uri = "http://reg.lan/".parse().unwrap();
        assert_eq!(host_and_port(&uri).unwrap(), ("reg.lan", 80));
    }

    /// A DNS server on 127.0.0.1 (UDP, and TCP on the same port) that
    /// answers each question with `reply(name, qtype)`: `Ok(addresses)`
    /// (empty: no records), or `Err(rcode)`; `None` leaves it unanswered.
    /// `truncate_udp` sets TC on every UDP answer.
    struct FakeDns {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
    }

    type Reply = fn(&str, u16) -> Option<Result<Vec<IpAddr>, u8>>;

    impl FakeDns {
        fn start(reply: Reply, truncate_udp: bool) -> FakeDns {
            let (udp, tcp) = loop {
                let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
                if let Ok(tcp) = std::net::TcpListener::bind(udp.local_addr().unwrap()) {
                    break (udp, tcp);
                }
            };
            let addr = udp.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            udp.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            tcp.set_nonblocking(true).unwrap();
            let s = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !s.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = udp.recv_from(&mut buf) {
                        if let Some(out) = answer(&buf[..n], reply, truncate_udp) {
                            let _ = udp.send_to(&out, from);
                        }
                    }
                    if let Ok((mut conn, _)) = tcp.accept() {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut len = [0u8; 2];
                        if conn.read_exact(&mut len).is_ok() {
                            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                            if conn.read_exact(&mut q).is_ok() {
                                if let Some(out) = answer(&q, reply, false) {
                                    let _ = conn.write_all(&dns::tcp_frame(&out).unwrap());
                                }
                            }
                        }
                    }
                }
            });
            FakeDns { addr, stop }
        }
    }

    impl Drop for FakeDns {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// The answer to the query `q` (one question, uncompressed name).
    fn answer(q: &[u8], reply: Reply, tc: bool) -> Option<Vec<u8>> {
        let (name, end) = dns::name::read(q, 12).ok()?;
        let qtype = u16::from_be_bytes([q[end], q[end + 1]]);
        let result = reply(&name, qtype)?;
        let mut m = q[..end + 4].to_vec();
        m[2] = 0x81 | if tc { 0x02 } else { 0 };
        m[3] = 0x80 | result.as_ref().err().copied().unwrap_or(0);
        for rr in result.unwrap_or_default() {
            m[7] += 1;
            m.extend_from_slice(&[0xc0, 12]);
            let data = match rr {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            m.extend_from_slice(&qtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, data.len() as u8]);
            m.extend_from_slice(&data);
        }
        Some(m)
    }

    const BOTH: [QType; 2] = [QType::A, QType::Aaaa];

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(10))
    }

    #[test]
    fn one_family_refused() {
        let dns = FakeDns::start(
            |name, qtype| match (name, qtype) {
                ("reg.test", 1) => Some(Ok(vec!["10.0.0.7".parse().unwrap()])),
                _ => Some(Err(5)),
            },
            false,
        );
        assert_eq!(
            lookup("reg.test", &[], &[dns.addr], &BOTH, soon()).unwrap(),
            vec![ip("10.0.0.7")]
        );
        let e = lookup("other.test", &[], &[dns.addr], &BOTH, soon()).unwrap_err();
        assert_eq!(
            e.report,
            format!(
                "other.test: A: REFUSED from {0}; AAAA: REFUSED from {0}",
                dns.addr
            )
        );
        assert!(!e.transient);
    }

    #[test]
    fn only_aaaa_and_servfail() {
        let dns = FakeDns::start(
            |_, qtype| match qtype {
                28 => Some(Ok(vec!["2001:db8::7".parse().unwrap()])),
                _ => Some(Err(2)),
            },
            false,
        );
        assert_eq!(
            lookup("reg.test", &[], &[dns.addr], &BOTH, soon()).unwrap(),
            vec![ip("2001:db8::7")]
        );
        let e = lookup("reg.test", &[], &[dns.addr], &[QType::A], soon()).unwrap_err();
        assert!(e.transient, "{}", e.report);
        assert_eq!(e.report, format!("reg.test: A: SERVFAIL from {}", dns.addr));
    }

    #[test]
    fn truncated_answers_go_over_tcp() {
        let dns = FakeDns::start(
            |_, qtype| match qtype {
                1 => Some(Ok(vec![
                    "10.0.0.1".parse().unwrap(),
                    "10.0.0.2".parse().unwrap(),
                ])),
                _ => Some(Ok(vec![])),
            },
            true,
        );
        assert_eq!(
            lookup("reg.test", &[], &[dns.addr], &BOTH, soon()).unwrap(),
            vec![ip("10.0.0.1"), ip("10.0.0.2")]
        );
    }

    #[test]
    fn next_server_search_domains_and_nxdomain() {
        let refusing = FakeDns::start(|_, _| Some(Err(5)), false);
        let good = FakeDns::start(
            |name, qtype| match (name, qtype) {
                ("reg.dc1.lan", 1) => Some(Ok(vec!["10.0.0.3".parse().unwrap()])),
                ("reg.dc1.lan", _) => Some(Ok(vec![])),
                _ => Some(Err(3)),
            },
            false,
        );
        let servers = [refusing.addr, good.addr];
        let search = vec!["lan".to_string(), "dc1.lan".to_string()];
        assert_eq!(
            lookup("reg", &search, &servers, &BOTH, soon()).unwrap(),
            vec![ip("10.0.0.3")]
        );
        let e = lookup("nope", &search, &servers, &BOTH, soon()).unwrap_err();
        let (r, g) = (refusing.addr, good.addr);
        assert_eq!(
            e.report,
            format!(
                "nope.lan: A: REFUSED from {r}, NXDOMAIN from {g}; AAAA: REFUSED from {r}, NXDOMAIN from {g}; \
                 then nope.dc1.lan: A: REFUSED from {r}, NXDOMAIN from {g}; AAAA: REFUSED from {r}, NXDOMAIN from {g}; \
                 then nope: A: REFUSED from {r}, NXDOMAIN from {g}; AAAA: REFUSED from {r}, NXDOMAIN from {g}"
            )
        );
        assert!(!e.transient);
    }

    #[test]
    fn silence_and_closed_ports_end_in_time() {
        let silent = FakeDns::start(|_, _| None, false);
        // Nothing listens there once the socket is gone.
        let closed = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let start = Instant::now();
        let e = lookup(
            "reg.test",
            &[],
            &[closed, silent.addr],
            &BOTH,
            Some(Instant::now() + Duration::from_millis(300)),
        )
        .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(e.transient);
        assert!(
            e.report.contains(&format!(
                "A: Connection refused (os error 111) from {closed}, no answer from {}",
                silent.addr
            )),
            "{}",
            e.report
        );
    }

    #[test]
    fn failures_reach_the_classifier() {
        let e: ureq::Error = LookupFailed {
            report: "x: A: NXDOMAIN from 10.0.2.3".into(),
            transient: false,
        }
        .into();
        assert_eq!(
            lookup_failure(&e).unwrap().report,
            "x: A: NXDOMAIN from 10.0.2.3"
        );
        assert_eq!(detail(&e), "x: A: NXDOMAIN from 10.0.2.3");
        assert!(lookup_failure(&ureq::Error::HostNotFound).is_none());
    }
}
