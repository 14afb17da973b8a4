//! Network bring-up in the boot environment: every Ethernet link up, then
//! each `ip=` setting applied (default: DHCPv4 on every link with carrier,
//! first lease wins), then `/etc/resolv.conf`. IPv6 needs nothing from us:
//! the kernel does SLAAC on links that are up.
//!
//! The DHCP protocol itself is `wyrcan_core::dhcp`; this module only moves
//! its packets and applies the lease.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::cmdline::WyrcanArgs;
use wyrcan_core::dhcp::{self, Lease};
use wyrcan_core::ipconfig::{self, IpConfig};

use crate::sys::{self, Sys};

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

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
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
pub fn links(class_net: &Path) -> Vec<Link> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(class_net) else {
        return out;
    };
    for e in dir.flatten() {
        let p = e.path();
        if read(&p.join("type")) != "1" {
            continue;
        }
        if let Some(mac) = parse_mac(&read(&p.join("address"))) {
            out.push(Link {
                name: e.file_name().to_string_lossy().into_owned(),
                mac,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn has_carrier(name: &str) -> bool {
    read(&Path::new(CLASS_NET).join(name).join("carrier")) == "1"
}

/// Bring the network up as `cfg` says.
pub fn up(sys: &dyn Sys, cfg: &WyrcanArgs) -> Result<()> {
    let all = links(Path::new(CLASS_NET));
    if all.is_empty() {
        bail!(
            "no Ethernet interface found: the NIC's driver may be missing from the boot environment \
             (see the module messages above), or the machine has no network card"
        );
    }
    for l in &all {
        sys.link_up(&l.name)?;
    }
    let deadline = Instant::now() + CARRIER_WAIT;
    let mut with_carrier: Vec<Link> = Vec::new();
    while Instant::now() < deadline {
        with_carrier = all
            .iter()
            .filter(|l| has_carrier(&l.name))
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
    let mut configs = Vec::new();
    for s in &cfg.ip {
        configs.push(ipconfig::parse(s).map_err(|e| anyhow!("ip={s}: {e}"))?);
    }
    if configs.is_empty() {
        configs.push(IpConfig::Dhcp { iface: None });
    }
    let mut dns: Vec<IpAddr> = Vec::new();
    for c in configs {
        match c {
            IpConfig::Off => {}
            IpConfig::Dhcp6 { .. } => {
                tracing::info!("ip=dhcp6: IPv6 addresses come from the kernel's SLAAC on the links that are up");
            }
            IpConfig::Static(s) => {
                let iface = match &s.iface {
                    Some(i) => i.clone(),
                    None => pick(&with_carrier, &all)?.name.clone(),
                };
                sys.set_ipv4(&iface, s.address, s.prefix_len)?;
                if let Some(gw) = s.gateway {
                    sys.default_route(&iface, gw)?;
                }
                tracing::info!("{iface}: {}/{} (static)", s.address, s.prefix_len);
                dns.extend(s.dns.iter().map(|a| IpAddr::V4(*a)));
            }
            IpConfig::Dhcp { iface } => {
                let candidates: Vec<Link> = match iface {
                    Some(i) => all.iter().filter(|l| l.name == i).cloned().collect(),
                    None if with_carrier.is_empty() => all.clone(),
                    None => with_carrier.clone(),
                };
                if candidates.is_empty() {
                    bail!(
                        "ip=: no interface by that name (have: {})",
                        names.join(", ")
                    );
                }
                let (link, lease) = dhcp_any(&candidates)?;
                apply(sys, &link.name, &lease)?;
                dns.extend(lease.dns.iter().map(|a| IpAddr::V4(*a)));
            }
        }
    }
    for n in &cfg.nameservers {
        dns.push(ipconfig::parse_nameserver(n).map_err(|e| anyhow!("nameserver={n}: {e}"))?);
    }
    write_resolv_conf(&dns)
}

fn pick<'a>(with_carrier: &'a [Link], all: &'a [Link]) -> Result<&'a Link> {
    with_carrier
        .first()
        .or_else(|| all.first())
        .ok_or_else(|| anyhow!("no interface to configure"))
}

fn apply(sys: &dyn Sys, iface: &str, lease: &Lease) -> Result<()> {
    sys.set_ipv4(iface, lease.address, lease.prefix_len)?;
    if let Some(gw) = lease.router {
        sys.default_route(iface, gw)?;
    }
    tracing::info!(
        "{iface}: {}/{} from DHCP server {}{}",
        lease.address,
        lease.prefix_len,
        lease.server,
        lease
            .router
            .map(|r| format!(", router {r}"))
            .unwrap_or_default()
    );
    Ok(())
}

fn write_resolv_conf(dns: &[IpAddr]) -> Result<()> {
    let mut text = String::new();
    for d in dns {
        text.push_str(&format!("nameserver {d}\n"));
    }
    std::fs::create_dir_all("/etc").ok();
    std::fs::write("/etc/resolv.conf", text).context("writing /etc/resolv.conf")
}

/// DHCP on every candidate at once; the first lease wins.
fn dhcp_any(candidates: &[Link]) -> Result<(Link, Lease)> {
    let (tx, rx) = mpsc::channel();
    for link in candidates {
        let link = link.clone();
        let tx = tx.clone();
        // Losers keep running until their own timeout; they hold nothing
        // but a socket.
        std::thread::spawn(move || {
            let res = dhcp_one(&link);
            let _ = tx.send((link, res));
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
}

fn dhcp_one(link: &Link) -> Result<Lease> {
    let sock = sys::net::dhcp_socket(&link.name)?;
    let server = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let xid = u32::from_be_bytes([link.mac[2], link.mac[3], link.mac[4], link.mac[5]])
        ^ (std::process::id() << 16)
        ^ Instant::now().elapsed().subsec_nanos();
    let start = Instant::now();
    let mut client = dhcp::Client::new(link.mac, xid);
    let first = client.start(start.elapsed());
    sock.send_to(&first, server)
        .with_context(|| format!("sending DHCPDISCOVER on {}", link.name))?;
    tracing::debug!("{}: DHCPDISCOVER sent", link.name);
    let mut buf = vec![0u8; 1500];
    while start.elapsed() < DHCP_TIMEOUT {
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => match client.on_packet(&buf[..n], start.elapsed()) {
                Some(dhcp::Action::Send(pkt)) => {
                    sock.send_to(&pkt, server)?;
                }
                Some(dhcp::Action::Bound(lease)) => return Ok(lease),
                None => {}
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("receiving DHCP replies"),
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
        let d = tempfile::tempdir().unwrap();
        for (name, ty, mac) in [
            ("eth0", "1", "52:54:00:00:00:01"),
            ("lo", "772", "00:00:00:00:00:00"),
            ("enp1s0", "1", "52:54:00:00:00:02"),
        ] {
            let p = d.path().join(name);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("type"), format!("{ty}\n")).unwrap();
            std::fs::write(p.join("address"), format!("{mac}\n")).unwrap();
        }
        let l = links(d.path());
        assert_eq!(
            l.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["enp1s0", "eth0"]
        );
    }
}
