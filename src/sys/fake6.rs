//! The IPv6 part of [`super::fake::FakeSys`]: a router behind every
//! interface that answers a solicitation with a scripted advertisement,
//! and a DHCPv6 server, both recorded as lines of text.

use std::collections::VecDeque;
use std::io;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wyrcan_core::dhcp6::{IaAddr, IaNa, Message, MessageType, NtpServer6, Options};

use super::Datagram6;

/// The router's link-local address.
pub const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// The scripted IPv6 network.
#[derive(Debug, Default, Clone)]
pub struct Net6 {
    /// The advertisement (from its type byte on) the router at [`ROUTER`]
    /// sends when solicited; `None`: no router.
    pub ra: Option<Vec<u8>>,
    /// The DHCPv6 server, if any.
    pub dhcp6: Option<Server6>,
}

/// What the DHCPv6 server hands out.
#[derive(Debug, Default, Clone)]
pub struct Server6 {
    /// The address offered to stateful clients.
    pub address: Option<Ipv6Addr>,
    /// DNS servers (option 23).
    pub dns: Vec<Ipv6Addr>,
    /// NTP servers (option 56).
    pub ntp: Vec<Ipv6Addr>,
}

/// A router advertisement: `flags` (0x80 M, 0x40 O), one autonomous
/// on-link /64 `prefix` if given, RDNSS `dns` if any, DNSSL `search`.
pub fn advert(flags: u8, prefix: Option<Ipv6Addr>, dns: &[Ipv6Addr], search: &[&str]) -> Vec<u8> {
    let mut m = vec![134, 0, 0, 0, 64, flags, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    if let Some(p) = prefix {
        m.extend_from_slice(&[3, 4, 64, 0xc0]);
        m.extend_from_slice(&3600u32.to_be_bytes());
        m.extend_from_slice(&1800u32.to_be_bytes());
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(&p.octets());
    }
    if !dns.is_empty() {
        m.extend_from_slice(&[25, (1 + 2 * dns.len()) as u8, 0, 0]);
        m.extend_from_slice(&600u32.to_be_bytes());
        for d in dns {
            m.extend_from_slice(&d.octets());
        }
    }
    if !search.is_empty() {
        let mut names = wyrcan_core::ra::encode_names(search);
        while (names.len() + 8) % 8 != 0 {
            names.push(0);
        }
        m.extend_from_slice(&[31, ((names.len() + 8) / 8) as u8, 0, 0]);
        m.extend_from_slice(&600u32.to_be_bytes());
        m.extend_from_slice(&names);
    }
    m
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A socket with the scripted network on the other side.
pub struct Socket {
    /// `icmp6` or `dhcp6`.
    kind: &'static str,
    net: Net6,
    pending: Mutex<VecDeque<(Vec<u8>, Ipv6Addr)>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Socket {
    /// A socket of `kind` (`icmp6` or `dhcp6`) that records into `calls`.
    pub fn new(kind: &'static str, net: &Net6, calls: Arc<Mutex<Vec<String>>>) -> Socket {
        Socket {
            kind,
            net: net.clone(),
            pending: Mutex::new(VecDeque::new()),
            calls,
        }
    }

    fn dhcp6_answer(&self, buf: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let msg = Message::decode(buf).map_err(io::Error::other)?;
        lock(&self.calls).push(format!("dhcp6 {:?}", msg.kind));
        let Some(server) = &self.net.dhcp6 else {
            return Ok(None);
        };
        let kind = match msg.kind {
            MessageType::Solicit => MessageType::Advertise,
            MessageType::Request | MessageType::InformationRequest => MessageType::Reply,
            _ => return Ok(None),
        };
        let ia_na = match (msg.options.ia_na.first(), server.address) {
            (Some(ia), Some(addr)) => vec![IaNa {
                iaid: ia.iaid,
                t1: 1800,
                t2: 2880,
                addresses: vec![IaAddr {
                    addr,
                    preferred: 3600,
                    valid: 7200,
                    status: None,
                }],
                status: None,
            }],
            _ => Vec::new(),
        };
        let m = Message {
            kind,
            xid: msg.xid,
            options: Options {
                client_id: msg.options.client_id.clone(),
                server_id: Some(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1]),
                ia_na,
                dns: server.dns.clone(),
                ntp: server.ntp.iter().map(|a| NtpServer6::Address(*a)).collect(),
                ..Options::default()
            },
        };
        Ok(Some(m.encode()))
    }
}

impl Datagram6 for Socket {
    fn send_to(&self, buf: &[u8], to: Ipv6Addr, port: u16) -> io::Result<usize> {
        let answer = if self.kind == "icmp6" {
            lock(&self.calls).push(format!("icmp6 type {} to {to}", buf[0]));
            self.net.ra.clone().filter(|_| buf[0] == 133)
        } else {
            if port != 547 {
                return Err(io::ErrorKind::InvalidInput.into());
            }
            self.dhcp6_answer(buf)?
        };
        if let Some(a) = answer {
            lock(&self.pending).push_back((a, ROUTER));
        }
        Ok(buf.len())
    }

    fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<(usize, Ipv6Addr)>> {
        match lock(&self.pending).pop_front() {
            Some((p, from)) => {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                Ok(Some((n, from)))
            }
            None => {
                std::thread::sleep(timeout.min(Duration::from_millis(20)));
                Ok(None)
            }
        }
    }
}
