//! Network bring-up in the boot environment: every Ethernet link up, then
//! each `ip=` setting applied (default: DHCPv4 on every link with carrier,
//! first lease wins), then `/etc/resolv.conf`. IPv6 (router advertisements,
//! DHCPv6, static addresses; DHCPv4 and IPv6 side by side by default) is
//! `super::net6`.
//!
//! The DHCP protocol itself is `wyrcan_core::dhcp`; this module only moves
//! its packets and applies the lease.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::dhcp::{self, Lease};
use wyrcan_core::ipconfig::IpConfig;

use super::config::NetConfig;
use crate::sys::Sys;

const CLASS_NET: &str = "/sys/class/net";
/// How long links get to report carrier after being brought up.
const CARRIER_WAIT: Duration = Duration::from_secs(8);
/// How long DHCP may take on one link before giving up.
const DHCP_TIMEOUT: Duration = Duration::from_secs(60);

/// An Ethernet link.
#[derive(Debug, Clone)]
pub struct Link {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    pub mac: [u8; 6],
}

fn read(sys: &dyn Sys, path: &Path) -> String {
    sys.read(path)
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default()
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Ethernet links (ARPHRD_ETHER), sorted by name.
pub fn links(sys: &dyn Sys, class_net: &Path) -> Vec<Link> {
    let mut out = Vec::new();
    let Ok(names) = sys.read_dir(class_net) else {
        return out;
    };
    for name in names {
        let p = class_net.join(&name);
        if read(sys, &p.join("type")) != "1" {
            continue;
        }
        if let Some(mac) = parse_mac(&read(sys, &p.join("address"))) {
            out.push(Link { name, mac });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn has_carrier(sys: &dyn Sys, name: &str) -> bool {
    read(sys, &Path::new(CLASS_NET).join(name).join("carrier")) == "1"
}

/// What the network told us that later steps use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// NTP servers from DHCP (option 42).
    pub ntp: Vec<IpAddr>,
}

/// Bring the network up as `cfg` says.
pub fn up(sys: &dyn Sys, cfg: &NetConfig) -> Result<Learned> {
    super::links::setup(sys, &cfg.links, &cfg.ip)?;
    let carriers = cfg.links.carriers();
    let all = links(sys, Path::new(CLASS_NET));
    if all.is_empty() {
        bail!(
            "no Ethernet interface found: the NIC's driver may be missing from the boot environment \
             (see the module messages above), or the machine has no network card"
        );
    }
    for l in &all {
        super::net6::prepare(sys, &l.name);
        sys.link_up(&l.name)?;
    }
    let deadline = Instant::now() + CARRIER_WAIT;
    let mut with_carrier: Vec<Link> = Vec::new();
    while Instant::now() < deadline {
        with_carrier = all
            .iter()
            .filter(|l| !carriers.contains(&l.name) && has_carrier(sys, &l.name))
            .cloned()
            .collect();
        if !with_carrier.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    tracing::info!(
        "links: {}; with carrier: {}",
        names.join(", "),
        with_carrier
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Bond slaves and VLAN parents get no DHCP of their own by default.
    let free: Vec<Link> = all
        .iter()
        .filter(|l| !carriers.contains(&l.name))
        .cloned()
        .collect();
    let mut configs = cfg.ip.clone();
    if configs.is_empty() {
        configs.push(IpConfig::default());
    }
    let mut dns: Vec<IpAddr> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut learned = Learned::default();
    let default = cfg.ip.is_empty();
    let mut v6s: Vec<super::net6::Got6> = Vec::new();
    for c in configs {
        let shown = c.to_string();
        match c {
            IpConfig::Off => {}
            IpConfig::Dhcp6 { ref iface, .. } | IpConfig::Auto6 { ref iface, .. } => {
                let want = match c {
                    IpConfig::Dhcp6 { .. } => super::net6::Want::Dhcp6,
                    _ => super::net6::Want::Auto,
                };
                let cands = super::net6::candidates(iface.as_deref(), &all, &with_carrier)?;
                v6s.push(
                    super::net6::any(sys, &cands, want).with_context(|| format!("ip={shown}"))?,
                );
            }
            IpConfig::Static6(s) => {
                let iface = match &s.iface {
                    Some(i) => i.clone(),
                    None => pick(&with_carrier, &all)?.name.clone(),
                };
                super::net6::static6(sys, &s, &iface)?;
                dns.extend(&s.dns);
            }
            IpConfig::Static(s) => {
                let iface = match &s.iface {
                    Some(i) => i.clone(),
                    None => pick(&with_carrier, &free)?.name.clone(),
                };
                sys.set_ipv4(&iface, s.address, s.prefix_len)?;
                if let Some(gw) = s.gateway {
                    sys.default_route(&iface, gw)?;
                }
                tracing::info!("{iface}: {}/{} (static)", s.address, s.prefix_len);
                dns.extend(s.dns.iter().map(|a| IpAddr::V4(*a)));
            }
            IpConfig::Dhcp { iface, .. } => {
                let named = iface.is_some();
                let candidates: Vec<Link> = match iface {
                    Some(i) => all.iter().filter(|l| l.name == i).cloned().collect(),
                    None if with_carrier.is_empty() => free.clone(),
                    None => with_carrier.clone(),
                };
                if let ([one], true) = (&candidates[..], named) {
                    super::links::wait_carrier(sys, &one.name, CARRIER_WAIT)?;
                }
                if candidates.is_empty() {
                    bail!(
                        "ip=: no interface by that name (have: {})",
                        names.join(", ")
                    );
                }
                let hinted = |e: anyhow::Error| match candidates
                    .iter()
                    .find_map(|l| cfg.links.dhcp_hint(&l.name, DHCP_TIMEOUT))
                {
                    Some(hint) => e.context(hint),
                    None => e,
                };
                let (link, lease) = if default {
                    let (v4, v6) = super::net6::dual(sys, &candidates, |stop| {
                        dhcp_any(sys, &candidates, stop)
                    })
                    .map_err(hinted)?;
                    v6s.extend(v6);
                    match v4 {
                        Some(v4) => v4,
                        None => continue,
                    }
                } else {
                    dhcp_any(sys, &candidates, &AtomicBool::new(false)).map_err(hinted)?
                };
                apply(sys, &link.name, &lease)?;
                dns.extend(lease.dns.iter().map(|a| IpAddr::V4(*a)));
                search.extend(lease.domain_search.iter().cloned());
                learned.ntp.extend(lease.ntp.iter().map(|a| IpAddr::V4(*a)));
            }
        }
    }
    for g in v6s {
        dns.extend(g.dns.iter().map(|a| IpAddr::V6(*a)));
        search.extend(g.search);
        learned.ntp.extend(g.ntp);
    }
    dns.extend(&cfg.nameservers);
    write_resolv_conf(sys, &dns, &search)?;
    Ok(learned)
}

fn pick<'a>(with_carrier: &'a [Link], all: &'a [Link]) -> Result<&'a Link> {
    with_carrier
        .first()
        .or_else(|| all.first())
        .ok_or_else(|| anyhow!("no interface to configure"))
}

fn apply(sys: &dyn Sys, iface: &str, lease: &Lease) -> Result<()> {
    if let Some(mtu) = lease.mtu {
        // Before the address: a jumbo-frame network's MTU is the link's own.
        if let Err(e) = sys.set_mtu(iface, mtu) {
            tracing::warn!("{iface}: the DHCP server's MTU {mtu} was not set: {e}");
        }
    }
    sys.set_ipv4(iface, lease.address, lease.prefix_len)?;
    let routes = lease.routes();
    // On-link routes first: a route's gateway must be reachable when it is added.
    let (on_link, via): (Vec<&dhcp::Route>, Vec<&dhcp::Route>) =
        routes.iter().partition(|r| r.gateway.is_unspecified());
    for r in on_link.into_iter().chain(via) {
        let gw = (!r.gateway.is_unspecified()).then_some(r.gateway);
        sys.add_route(iface, r.dest, r.prefix_len, gw)?;
    }
    let shown: Vec<String> = routes
        .iter()
        .map(|r| match (r.prefix_len, r.gateway.is_unspecified()) {
            (0, false) => format!("router {}", r.gateway),
            (_, false) => format!("{}/{} via {}", r.dest, r.prefix_len, r.gateway),
            (_, true) => format!("{}/{} on-link", r.dest, r.prefix_len),
        })
        .collect();
    let mut extra = String::new();
    if !shown.is_empty() {
        extra.push_str(&format!(", {}", shown.join(", ")));
    }
    if let Some(mtu) = lease.mtu {
        extra.push_str(&format!(", MTU {mtu}"));
    }
    if !lease.ntp.is_empty() {
        let ntp: Vec<String> = lease.ntp.iter().map(|a| a.to_string()).collect();
        extra.push_str(&format!(", NTP {}", ntp.join(" ")));
    }
    tracing::info!(
        "{iface}: {}/{} from DHCP server {}{extra}",
        lease.address,
        lease.prefix_len,
        lease.server,
    );
    Ok(())
}

fn write_resolv_conf(sys: &dyn Sys, dns: &[IpAddr], search: &[String]) -> Result<()> {
    let mut text = String::new();
    for d in dns {
        text.push_str(&format!("nameserver {d}\n"));
    }
    if !search.is_empty() {
        // musl reads at most 6 domains, 256 characters.
        text.push_str(&format!(
            "search {}\n",
            search.iter().take(6).cloned().collect::<Vec<_>>().join(" ")
        ));
    }
    sys.write(Path::new("/etc/resolv.conf"), text.as_bytes())
        .context("writing /etc/resolv.conf")
}

/// DHCP on every candidate at once; the first lease wins.
fn dhcp_any(sys: &dyn Sys, candidates: &[Link], stop: &AtomicBool) -> Result<(Link, Lease)> {
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for link in candidates {
            let tx = tx.clone();
            let xid = sys.random_u32();
            s.spawn(move || {
                let res = dhcp_one(sys, link, xid, stop);
                let _ = tx.send((link.clone(), res));
            });
        }
        drop(tx);
        let mut errors = Vec::new();
        for (link, res) in rx.iter() {
            match res {
                Ok(lease) => return Ok((link, lease)),
                Err(e) => errors.push(format!("{}: {e:#}", link.name)),
            }
        }
        Err(anyhow!(
            "no DHCP lease ({}): check the cable and that a DHCP server serves this network, or set a static address with ip=",
            errors.join("; ")
        ))
    })
}

fn dhcp_one(sys: &dyn Sys, link: &Link, xid: u32, stop: &AtomicBool) -> Result<Lease> {
    let sock = sys.dhcp_socket(&link.name)?;
    let server = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let start = Instant::now();
    let mut client = dhcp::Client::new(link.mac, xid);
    let first = client.start(start.elapsed());
    sock.send_to(&first, server)
        .with_context(|| format!("sending DHCPDISCOVER on {}", link.name))?;
    tracing::debug!("{}: DHCPDISCOVER sent, xid {xid:#010x}", link.name);
    let mut buf = vec![0u8; 1500];
    while start.elapsed() < DHCP_TIMEOUT {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            bail!("stopped: the network is up without DHCPv4");
        }
        let got = sock
            .recv(&mut buf, Duration::from_millis(500))
            .with_context(|| format!("receiving DHCP replies on {}", link.name))?;
        if let Some(n) = got {
            match client.on_packet(&buf[..n], start.elapsed()) {
                Some(dhcp::Action::Send(pkt)) => {
                    sock.send_to(&pkt, server)?;
                }
                Some(dhcp::Action::Bound(lease)) => return Ok(lease),
                None => {}
            }
        }
        if let Some(pkt) = client.on_timeout(start.elapsed()) {
            sock.send_to(&pkt, server)?;
        }
    }
    bail!("no answer from a DHCP server within {DHCP_TIMEOUT:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
    }

    #[test]
    fn links_from_a_fake_sysfs() {
        let sys = crate::sys::fake::FakeSys::default();
        let d = Path::new("/sys/class/net");
        for (name, ty, mac) in [
            ("eth0", "1", "52:54:00:00:00:01"),
            ("lo", "772", "00:00:00:00:00:00"),
            ("enp1s0", "1", "52:54:00:00:00:02"),
        ] {
            let p = d.join(name);
            sys.put(p.join("type"), format!("{ty}\n").as_bytes());
            sys.put(p.join("address"), format!("{mac}\n").as_bytes());
        }
        let l = links(&sys, d);
        assert_eq!(
            l.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["enp1s0", "eth0"]
        );
    }

    #[test]
    fn dhcp_lease_applied_with_a_random_xid() {
        let mut sys = crate::sys::fake::FakeSys::default();
        sys.dhcp_server = true;
        sys.add_link("eth0", "52:54:00:12:34:56");
        up(&sys, &NetConfig::default()).unwrap();
        let calls = sys.calls();
        let pos = |prefix: &str| {
            calls
                .iter()
                .position(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {calls:#?}"))
        };
        assert!(pos("link_up eth0") < pos("dhcp_socket eth0"));
        // The xid is the kernel's random number, not derived from the MAC.
        assert!(
            calls[pos("dhcp Some(Discover)")].contains("xid=0x12345678"),
            "{calls:?}"
        );
        assert!(pos("dhcp Some(Request)") < pos("set_ipv4 eth0 10.0.2.15/24"));
        assert!(pos("set_ipv4") < pos("write /etc/resolv.conf"));
        assert_eq!(sys.get("/etc/resolv.conf").unwrap(), b"");
    }

    #[test]
    fn static_address_and_nameservers() {
        let sys = crate::sys::fake::FakeSys::default();
        sys.add_link("eth0", "52:54:00:12:34:56");
        let cfg = NetConfig {
            ip: vec![
                wyrcan_core::ipconfig::parse("10.0.0.5::10.0.0.1:255.255.255.0:h:eth0:none")
                    .unwrap(),
            ],
            nameservers: vec!["10.0.0.53".parse().unwrap()],
            ..NetConfig::default()
        };
        up(&sys, &cfg).unwrap();
        let calls = sys.calls();
        assert!(
            calls.contains(&"set_ipv4 eth0 10.0.0.5/24".to_string()),
            "{calls:?}"
        );
        assert!(
            calls.contains(&"default_route eth0 10.0.0.1".to_string()),
            "{calls:?}"
        );
        assert_eq!(
            sys.get("/etc/resolv.conf").unwrap(),
            b"nameserver 10.0.0.53\n"
        );
    }

    #[test]
    fn no_interface_says_why() {
        let sys = crate::sys::fake::FakeSys::default();
        let e = up(&sys, &NetConfig::default()).unwrap_err();
        assert!(e.to_string().contains("no Ethernet interface found"), "{e}");
    }
}
