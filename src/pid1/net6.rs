//! IPv6 bring-up: the kernel does SLAAC and installs the default route
//! from router advertisements (`accept_ra`, `autoconf`); this module sends
//! a Router Solicitation and reads the advertisement for what the kernel
//! does not apply — RDNSS and DNSSL (RFC 8106) for resolv.conf, the M and
//! O flags — then runs DHCPv6 (`wyrcan_core::dhcp6`) stateful or stateless
//! as they say, or as `ip=…:dhcp6` says. Static addresses (`ip=[…]::…`)
//! and the default case (DHCPv4 and IPv6 side by side, the first family
//! configured wins and the other gets [`GRACE`] more) are here too.

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::dhcp6::{self, Lease6, Mode, NtpServer6};
use wyrcan_core::ipconfig::StaticIp6;
use wyrcan_core::ra::{self, RaError, RouterAdvert};

use super::net::Link;
use crate::sys::Sys;

/// How long a router gets to answer a solicitation.
const RA_TIMEOUT: Duration = Duration::from_secs(10);
/// RFC 4861 §10 RTR_SOLICITATION_INTERVAL.
const RS_INTERVAL: Duration = Duration::from_secs(4);
/// How long an address may stay tentative (duplicate address detection
/// takes a second by default) or SLAAC may take to form one.
const ADDR_WAIT: Duration = Duration::from_secs(8);
/// How long DHCPv6 may take.
const DHCP6_TIMEOUT: Duration = Duration::from_secs(30);
/// In the default case: how long the second address family gets once the
/// first one is configured.
pub const GRACE: Duration = Duration::from_secs(3);

const IF_INET6: &str = "/proc/net/if_inet6";
/// `IFA_F_TENTATIVE`, `IFA_F_DADFAILED` of `<linux/if_addr.h>`.
const TENTATIVE: u32 = 0x40;
const DADFAILED: u32 = 0x08;

/// What IPv6 configuration of one interface gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Got6 {
    /// The interface.
    pub iface: String,
    /// DNS servers (RDNSS, then DHCPv6).
    pub dns: Vec<Ipv6Addr>,
    /// Search domains (DNSSL, then DHCPv6).
    pub search: Vec<String>,
    /// NTP servers from DHCPv6 (options 56 and 31).
    pub ntp: Vec<IpAddr>,
}

/// Which IPv6 method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// SLAAC + RDNSS, DHCPv6 as the router's M / O flags say.
    Auto,
    /// DHCPv6 stateful whatever the router says (plus the RA's routes).
    Dhcp6,
}

/// One line of `/proc/net/if_inet6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inet6 {
    /// The address.
    pub addr: Ipv6Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// `0x00` global, `0x20` link-local, `0x10` host.
    pub scope: u32,
    /// `IFA_F_*` flags.
    pub flags: u32,
}

impl Inet6 {
    fn usable(&self) -> bool {
        self.flags & (TENTATIVE | DADFAILED) == 0
    }
}

/// The addresses of `iface` in `/proc/net/if_inet6` text
/// (`addr ifindex prefixlen scope flags name`, all hex).
pub fn parse_if_inet6(text: &str, iface: &str) -> Vec<Inet6> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 6 || f[5] != iface || f[0].len() != 32 {
                return None;
            }
            let addr = u128::from_str_radix(f[0], 16).ok()?;
            Some(Inet6 {
                addr: Ipv6Addr::from(addr),
                prefix_len: u8::from_str_radix(f[2], 16).ok()?,
                scope: u32::from_str_radix(f[3], 16).ok()?,
                flags: u32::from_str_radix(f[4], 16).ok()?,
            })
        })
        .collect()
}

/// Turn on router advertisements and SLAAC on `iface` (before it is up):
/// the kernel's defaults, unless something turned them off.
pub fn prepare(sys: &dyn Sys, iface: &str) {
    let dir = Path::new("/proc/sys/net/ipv6/conf").join(iface);
    if !sys.exists(&dir) {
        return;
    }
    for knob in ["accept_ra", "autoconf"] {
        if let Err(e) = sys.write(&dir.join(knob), b"1") {
            tracing::debug!("{iface}: setting {knob}: {e}");
        }
    }
}

/// Waits until `iface` has an address `pick` accepts that is no longer
/// tentative; `None` when `limit` passed or `stop` was set.
fn wait_addr(
    sys: &dyn Sys,
    iface: &str,
    limit: Duration,
    stop: &AtomicBool,
    pick: impl Fn(&Inet6) -> bool,
) -> Result<Option<Inet6>> {
    let start = Instant::now();
    loop {
        let text = sys.read(Path::new(IF_INET6)).map_err(|e| {
            anyhow!("IPv6 is not available in this kernel ({IF_INET6}: {e}): is it disabled with ipv6.disable=1?")
        })?;
        let text = String::from_utf8_lossy(&text);
        let mine: Vec<Inet6> = parse_if_inet6(&text, iface)
            .into_iter()
            .filter(|a| pick(a))
            .collect();
        if let Some(a) = mine.iter().find(|a| a.usable()) {
            return Ok(Some(*a));
        }
        if let Some(a) = mine.iter().find(|a| a.flags & DADFAILED != 0) {
            bail!(
                "{iface}: {} is already in use on this network (duplicate address detection failed)",
                a.addr
            );
        }
        if start.elapsed() >= limit || stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Sends Router Solicitations and returns the first advertisement and its
/// router; `None` if `stop` was set first.
fn solicit(
    sys: &dyn Sys,
    link: &Link,
    stop: &AtomicBool,
) -> Result<Option<(RouterAdvert, Ipv6Addr)>> {
    let iface = &link.name;
    let sock = sys.icmp6_socket(iface)?;
    let rs = ra::router_solicitation(Some(link.mac));
    let start = Instant::now();
    let mut next_rs = Duration::ZERO;
    let mut buf = vec![0u8; 1500];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if start.elapsed() >= RA_TIMEOUT {
            bail!(
                "no IPv6 router advertisement on {iface} within {} s: is RA enabled on this network?",
                RA_TIMEOUT.as_secs()
            );
        }
        if start.elapsed() >= next_rs {
            if let Err(e) = sock.send_to(&rs, ra::ALL_ROUTERS, 0) {
                tracing::debug!("{iface}: sending a router solicitation: {e}");
            }
            next_rs += RS_INTERVAL;
        }
        let got = sock
            .recv(&mut buf, Duration::from_millis(250))
            .with_context(|| format!("receiving router advertisements on {iface}"))?;
        if let Some((n, from)) = got {
            match RouterAdvert::parse(&buf[..n]) {
                Ok(adv) => return Ok(Some((adv, from))),
                Err(RaError::NotAdvert { .. }) => {}
                Err(e) => {
                    tracing::debug!("{iface}: ignoring a bad router advertisement from {from}: {e}")
                }
            }
        }
    }
}

/// One DHCPv6 exchange on `link`; `None` if `stop` was set first.
fn dhcp6(
    sys: &dyn Sys,
    link: &Link,
    mode: Mode,
    stop: &AtomicBool,
) -> Result<Option<(Lease6, Ipv6Addr)>> {
    let iface = &link.name;
    let sock = sys.dhcp6_socket(iface)?;
    let to = dhcp6::ALL_DHCP_RELAY_AGENTS_AND_SERVERS;
    let port = dhcp6::SERVER_PORT;
    let start = Instant::now();
    let mut client = dhcp6::Client::new(link.mac, sys.random_u32(), mode);
    let first = client.start(start.elapsed(), sys.random_u32());
    sock.send_to(&first, to, port)
        .with_context(|| format!("sending a DHCPv6 {mode:?} request on {iface}"))?;
    let mut buf = vec![0u8; 2048];
    while start.elapsed() < DHCP6_TIMEOUT {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let got = sock
            .recv(&mut buf, Duration::from_millis(200))
            .with_context(|| format!("receiving DHCPv6 replies on {iface}"))?;
        if let Some((n, from)) = got {
            match client.on_packet(&buf[..n], start.elapsed(), sys.random_u32()) {
                Some(dhcp6::Action::Send(p)) => {
                    sock.send_to(&p, to, port)?;
                }
                Some(dhcp6::Action::Done(lease)) => return Ok(Some((lease, from))),
                None => {}
            }
        }
        if let Some(p) = client.on_timeout(start.elapsed(), sys.random_u32()) {
            sock.send_to(&p, to, port)?;
        }
    }
    bail!(
        "no answer from a DHCPv6 server on {iface} within {} s: is a DHCPv6 server running on this network?",
        DHCP6_TIMEOUT.as_secs()
    )
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// IPv6 on one link: RA, then DHCPv6 as `want` or the router says, then a
/// usable global address. `None` if `stop` was set first.
pub fn configure(
    sys: &dyn Sys,
    link: &Link,
    want: Want,
    stop: &AtomicBool,
) -> Result<Option<Got6>> {
    let iface = &link.name;
    let Some(ll) = wait_addr(sys, iface, ADDR_WAIT, stop, |a| is_link_local(&a.addr))? else {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        bail!(
            "{iface} has no usable IPv6 link-local address within {} s: is IPv6 turned off on it?",
            ADDR_WAIT.as_secs()
        );
    };
    tracing::debug!("{iface}: link-local {}", ll.addr);
    let mut got = Got6 {
        iface: iface.clone(),
        ..Got6::default()
    };
    let advert = match solicit(sys, link, stop) {
        Ok(None) => return Ok(None),
        Ok(Some(a)) => Some(a),
        Err(e) if want == Want::Dhcp6 => {
            tracing::warn!("{e:#}; trying DHCPv6 anyway (no default route then)");
            None
        }
        Err(e) => return Err(e),
    };
    if let Some((adv, _)) = &advert {
        got.dns
            .extend(adv.rdnss.iter().filter(|(_, l)| *l > 0).map(|(a, _)| *a));
        got.search.extend(
            adv.dnssl
                .iter()
                .filter(|(_, l)| *l > 0)
                .map(|(n, _)| n.clone()),
        );
    }
    let mode = match (&advert, want) {
        (_, Want::Dhcp6) => Some(Mode::Stateful),
        (Some((adv, _)), _) if adv.managed => Some(Mode::Stateful),
        (Some((adv, _)), _) if adv.other => Some(Mode::Stateless),
        _ => None,
    };
    let slaac: Vec<(Ipv6Addr, u8)> = advert
        .iter()
        .flat_map(|(adv, _)| adv.prefixes.iter())
        .filter(|p| p.autonomous && p.len == 64 && p.valid > 0)
        .map(|p| (p.prefix, p.len))
        .collect();
    let mut leased: Option<(Ipv6Addr, Ipv6Addr)> = None;
    if let Some(mode) = mode {
        match dhcp6(sys, link, mode, stop) {
            Ok(None) => return Ok(None),
            Ok(Some((lease, server))) => {
                if let Some((addr, _, _)) = lease.addresses.first() {
                    sys.set_ipv6(iface, *addr, 128)?;
                    leased = Some((*addr, server));
                }
                got.dns.extend(&lease.dns);
                got.search.extend(lease.search.iter().cloned());
                for n in &lease.ntp {
                    match n {
                        NtpServer6::Address(a) | NtpServer6::Multicast(a) => {
                            got.ntp.push(IpAddr::V6(*a))
                        }
                        NtpServer6::Fqdn(name) => {
                            tracing::debug!("{iface}: NTP server {name} by name is not used")
                        }
                    }
                }
            }
            // Stateless DHCPv6 only adds to what the RA gave; SLAAC may
            // still give an address when the M flag's DHCPv6 fails.
            Err(e) if mode == Mode::Stateless || (want == Want::Auto && !slaac.is_empty()) => {
                tracing::warn!("{e:#}");
            }
            Err(e) => return Err(e),
        }
    }
    dedup(&mut got.dns);
    // A link-local server needs a scope (`%eth0`) that resolv.conf's
    // plain list does not carry: only when it is the only one is it kept.
    if got.dns.iter().any(|a| !is_link_local(a)) {
        got.dns.retain(|a| !is_link_local(a));
    }
    dedup(&mut got.search);
    dedup(&mut got.ntp);
    let mut extra = String::new();
    if !got.dns.is_empty() {
        extra.push_str(&format!(", DNS {}", join(&got.dns)));
    }
    if !got.search.is_empty() {
        extra.push_str(&format!(", search {}", join(&got.search)));
    }
    if !got.ntp.is_empty() {
        extra.push_str(&format!(", NTP {}", join(&got.ntp)));
    }
    if let Some((addr, server)) = leased {
        let Some(a) = wait_addr(sys, iface, ADDR_WAIT, stop, |a| a.addr == addr)? else {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            bail!(
                "{iface}: {addr} from DHCPv6 did not become usable within {} s",
                ADDR_WAIT.as_secs()
            );
        };
        let router = advert
            .as_ref()
            .map(|(_, r)| format!(", router {r}"))
            .unwrap_or_default();
        tracing::info!(
            "{iface}: {}/128 from DHCPv6 server {server}{router}{extra}",
            a.addr
        );
        return Ok(Some(got));
    }
    let Some((adv, router)) = &advert else {
        bail!("{iface}: no IPv6 address: no router advertisement and no address from DHCPv6");
    };
    if slaac.is_empty() {
        bail!(
            "{iface}: no IPv6 address: the router {router} advertises no prefix for SLAAC{}",
            if adv.managed {
                " and DHCPv6 gave none"
            } else {
                " and does not ask for DHCPv6 (M flag)"
            }
        );
    }
    let in_prefix = |a: &Inet6| {
        a.scope == 0
            && slaac
                .iter()
                .any(|(p, _)| a.addr.segments()[..4] == p.segments()[..4])
    };
    let Some(a) = wait_addr(sys, iface, ADDR_WAIT, stop, in_prefix)? else {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        bail!(
            "{iface}: no SLAAC address in {} within {} s: is accept_ra or autoconf off?",
            slaac
                .iter()
                .map(|(p, l)| format!("{p}/{l}"))
                .collect::<Vec<_>>()
                .join(", "),
            ADDR_WAIT.as_secs()
        );
    };
    tracing::info!(
        "{iface}: {}/{} (SLAAC from router {router}){extra}",
        a.addr,
        a.prefix_len
    );
    Ok(Some(got))
}

fn dedup<T: PartialEq + Clone>(v: &mut Vec<T>) {
    let mut out: Vec<T> = Vec::new();
    for x in v.drain(..) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    *v = out;
}

/// IPv6 on every candidate at once; the first configured wins.
pub fn any(sys: &dyn Sys, candidates: &[Link], want: Want) -> Result<Got6> {
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for link in candidates {
            let tx = tx.clone();
            let stop = &stop;
            s.spawn(move || {
                let _ = tx.send(configure(sys, link, want, stop));
            });
        }
        drop(tx);
        let mut errors = Vec::new();
        for res in rx.iter() {
            match res {
                Ok(Some(g)) => {
                    stop.store(true, Ordering::Relaxed);
                    return Ok(g);
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        Err(anyhow!("no IPv6 configuration ({})", errors.join("; ")))
    })
}

/// The default case: DHCPv4 (`v4`, which must end soon after its stop flag
/// is set) and IPv6 autoconfiguration on every candidate side by side. The
/// first family configured wins; the other gets [`GRACE`] more.
pub fn dual<T: Send>(
    sys: &dyn Sys,
    candidates: &[Link],
    v4: impl FnOnce(&AtomicBool) -> Result<T> + Send,
) -> Result<(Option<T>, Option<Got6>)> {
    enum Ev<T> {
        V4(Result<T>),
        V6(Result<Option<Got6>>),
    }
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        let stop = &stop;
        {
            let tx = tx.clone();
            s.spawn(move || {
                let _ = tx.send(Ev::V4(v4(stop)));
            });
        }
        for link in candidates {
            let tx = tx.clone();
            s.spawn(move || {
                let _ = tx.send(Ev::V6(configure(sys, link, Want::Auto, stop)));
            });
        }
        drop(tx);
        let mut v4_res: Option<Result<T>> = None;
        let mut v6_ok: Option<Got6> = None;
        let mut v6_errors: Vec<String> = Vec::new();
        let mut deadline: Option<Instant> = None;
        loop {
            let v6_done = v6_ok.is_some() || v6_errors.len() == candidates.len();
            if v4_res.is_some() && v6_done {
                break;
            }
            let ev = match deadline {
                None => match rx.recv() {
                    Ok(ev) => ev,
                    Err(_) => break,
                },
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(ev) => ev,
                    Err(_) => break,
                },
            };
            match ev {
                Ev::V4(r) => v4_res = Some(r),
                Ev::V6(Ok(Some(g))) if v6_ok.is_none() => v6_ok = Some(g),
                Ev::V6(Ok(_)) => {}
                Ev::V6(Err(e)) => v6_errors.push(format!("{e:#}")),
            }
            let v4_ok = matches!(v4_res, Some(Ok(_)));
            if deadline.is_none() && (v4_ok || v6_ok.is_some()) {
                deadline = Some(Instant::now() + GRACE);
            }
        }
        stop.store(true, Ordering::Relaxed);
        // Late results, as the threads end (they stop within a second).
        for ev in rx.iter() {
            match ev {
                Ev::V4(r) => v4_res = Some(r),
                Ev::V6(Ok(Some(g))) if v6_ok.is_none() => v6_ok = Some(g),
                Ev::V6(Ok(_)) => {}
                Ev::V6(Err(e)) => v6_errors.push(format!("{e:#}")),
            }
        }
        let v4 = match v4_res {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) if v6_ok.is_none() => {
                bail!(
                    "{e:#}; and no IPv6 either ({})",
                    if v6_errors.is_empty() {
                        "stopped".to_string()
                    } else {
                        v6_errors.join("; ")
                    }
                )
            }
            Some(Err(e)) => {
                tracing::info!("no IPv4 address: {e:#}");
                None
            }
            None => None,
        };
        if v6_ok.is_none() && !v6_errors.is_empty() {
            tracing::info!("no IPv6 address: {}", v6_errors.join("; "));
        }
        if v4.is_none() && v6_ok.is_none() {
            bail!("no network configuration: neither DHCPv4 nor IPv6 autoconfiguration succeeded");
        }
        Ok((v4, v6_ok))
    })
}

/// `ip=[ADDR]::[GW]:PREFIX:…:none`: the address, DAD, the default route.
pub fn static6(sys: &dyn Sys, s: &StaticIp6, iface: &str) -> Result<()> {
    sys.set_ipv6(iface, s.address, s.prefix_len)?;
    let never = AtomicBool::new(false);
    if wait_addr(sys, iface, ADDR_WAIT, &never, |a| a.addr == s.address)?.is_none() {
        tracing::warn!(
            "{iface}: {} is still tentative after {} s (duplicate address detection)",
            s.address,
            ADDR_WAIT.as_secs()
        );
    }
    let mut extra = String::new();
    if let Some(gw) = s.gateway {
        sys.add_route6(iface, Ipv6Addr::UNSPECIFIED, 0, Some(gw))
            .with_context(|| format!("{iface}: is the gateway {gw} on the link's prefix?"))?;
        extra = format!(", router {gw}");
    }
    tracing::info!("{iface}: {}/{} (static){extra}", s.address, s.prefix_len);
    Ok(())
}

/// The links an `ip=` of `iface` (or all, `None`) applies to.
pub fn candidates(iface: Option<&str>, all: &[Link], with_carrier: &[Link]) -> Result<Vec<Link>> {
    let c: Vec<Link> = match iface {
        Some(i) => all.iter().filter(|l| l.name == i).cloned().collect(),
        None if with_carrier.is_empty() => all.to_vec(),
        None => with_carrier.to_vec(),
    };
    if c.is_empty() {
        let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
        bail!(
            "ip=: no interface {} (have: {})",
            iface.unwrap_or("?"),
            names.join(", ")
        );
    }
    Ok(c)
}

#[cfg(test)]
#[path = "net6_tests.rs"]
mod tests;
