//! DHCPv4 (RFC 2131/2132) without I/O: the message codec and a client state
//! machine that turns received bytes and the passing of time (given by the
//! caller) into bytes to send and, in the end, a [`Lease`].
//!
//! PID 1 owns the socket and the clock; this module owns the protocol. The
//! decoder parses untrusted network input inside PID 1, where a panic is a
//! kernel panic, so it checks every length and returns errors instead.
//!
//! Beyond the basics it reads what data-centre networks send at boot: MTU,
//! NTP servers, the domain search list and classless static routes (see
//! [`options`] for why a malformed one of those is ignored
//! rather than fatal).
//!
//! The client only acquires a lease (DISCOVER → OFFER → REQUEST → ACK): the
//! boot environment lives for seconds before it kexecs, far less than any
//! lease, so renewal and release are deliberately absent.

use std::net::Ipv4Addr;

use crate::ipconfig::{default_prefix_len, mask_to_prefix};

/// UDP port DHCP servers listen on.
pub const SERVER_PORT: u16 = 67;
/// UDP port DHCP clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// `op` of a message from a client.
pub const BOOTREQUEST: u8 = 1;
/// `op` of a message from a server.
pub const BOOTREPLY: u8 = 2;
/// `htype` of Ethernet.
pub const HTYPE_ETHERNET: u8 = 1;
/// The `flags` bit asking the server to broadcast its answer: a client with
/// no address yet cannot receive unicast on most stacks (RFC 2131 §4.1).
pub const FLAG_BROADCAST: u16 = 0x8000;
/// The magic cookie that starts the options field (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Fixed BOOTP header length (op … file), before the magic cookie.
const HEADER_LEN: usize = 236;
/// BOOTP relays may drop shorter messages (RFC 1542 §3.1.1), so pad up to this.
const MIN_MESSAGE_LEN: usize = 300;

/// Option codes this module understands (RFC 2132).
pub mod code {
    /// Pad (no length byte).
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Routers, in order of preference.
    pub const ROUTER: u8 = 3;
    /// DNS servers, in order of preference.
    pub const DNS: u8 = 6;
    /// Host name.
    pub const HOSTNAME: u8 = 12;
    /// Domain name.
    pub const DOMAIN_NAME: u8 = 15;
    /// Interface MTU.
    pub const INTERFACE_MTU: u8 = 26;
    /// NTP servers, in order of preference.
    pub const NTP_SERVERS: u8 = 42;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// IP address lease time, in seconds.
    pub const LEASE_TIME: u8 = 51;
    /// DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// Domain search list (RFC 3397).
    pub const DOMAIN_SEARCH: u8 = 119;
    /// Classless static routes (RFC 3442).
    pub const CLASSLESS_ROUTES: u8 = 121;
    /// End of options (no length byte).
    pub const END: u8 = 255;
}

/// Option 53: what a DHCP message means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Client looks for servers.
    Discover = 1,
    /// Server offers an address.
    Offer = 2,
    /// Client asks for the offered address.
    Request = 3,
    /// Client found the address in use.
    Decline = 4,
    /// Server confirms the lease.
    Ack = 5,
    /// Server refuses the request.
    Nak = 6,
    /// Client gives the address back.
    Release = 7,
    /// Client asks for parameters only.
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match v {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            _ => return None,
        })
    }
}

/// Why bytes are not a DHCP message this client can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhcpError {
    /// Shorter than the fixed header plus the magic cookie.
    #[error("dhcp message is {len} bytes: expected at least 240 (bootp header and magic cookie)")]
    Truncated {
        /// The length received.
        len: usize,
    },
    /// The options field does not start with 99.130.83.99.
    #[error("dhcp message has magic cookie {0:?}: expected [99, 130, 83, 99] (plain bootp or not dhcp at all)")]
    BadCookie([u8; 4]),
    /// An option's length runs past the end of the message.
    #[error("dhcp option {code} at byte {offset} runs past the end of the message: the message is truncated")]
    TruncatedOption {
        /// The option code.
        code: u8,
        /// Where the option starts in the message.
        offset: usize,
    },
    /// The options never reach the end option.
    #[error("dhcp options have no end option (255): the message is truncated")]
    MissingEnd,
    /// A known option with a length its type does not allow.
    #[error("dhcp option {code} is {len} bytes long: expected {expected}")]
    BadOptionLength {
        /// The option code.
        code: u8,
        /// Its total length (after RFC 3396 concatenation).
        len: usize,
        /// What the option's type needs, in words.
        expected: &'static str,
    },
    /// Option 53 holds a value outside 1..=8.
    #[error("dhcp message type {0} is unknown: expected 1 (discover) to 8 (inform)")]
    UnknownMessageType(u8),
    /// `hlen` larger than the 16-byte `chaddr` field.
    #[error("dhcp hardware address length is {0}: expected at most 16")]
    BadHardwareLength(u8),
}

/// The options this client reads or writes, decoded. Unknown options are kept
/// in [`Options::other`] so a message re-encodes to the same meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// 53: the DHCP message type (absent in plain BOOTP).
    pub message_type: Option<MessageType>,
    /// 50: the address a client asks for.
    pub requested_ip: Option<Ipv4Addr>,
    /// 54: the server that made the offer / gave the lease.
    pub server_id: Option<Ipv4Addr>,
    /// 51: lease time in seconds (`u32::MAX` is infinite).
    pub lease_time: Option<u32>,
    /// 1: the subnet mask.
    pub subnet_mask: Option<Ipv4Addr>,
    /// 3: routers, most preferred first.
    pub routers: Vec<Ipv4Addr>,
    /// 6: DNS servers, most preferred first.
    pub dns: Vec<Ipv4Addr>,
    /// 12: host name (bytes that are not UTF-8 are replaced by U+FFFD).
    pub hostname: Option<String>,
    /// 55: option codes the client wants.
    pub parameter_request_list: Vec<u8>,
    /// 61: client identifier (type byte, then the identifier).
    pub client_id: Option<Vec<u8>>,
    /// 26: the interface MTU, as sent (the lease drops values under 68).
    pub mtu: Option<u16>,
    /// 42: NTP servers, most preferred first.
    pub ntp_servers: Vec<Ipv4Addr>,
    /// 119: the domain search list, without trailing dots.
    pub domain_search: Vec<String>,
    /// 121: classless static routes, in the server's order.
    pub classless_routes: Vec<Route>,
    /// Every other option, by code, in the order first seen.
    pub other: Vec<(u8, Vec<u8>)>,
}

/// A DHCP message: the BOOTP header and its options. `sname` and `file` are
/// not kept (option overload is not supported): they encode as zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// [`BOOTREQUEST`] or [`BOOTREPLY`].
    pub op: u8,
    /// Hardware type ([`HTYPE_ETHERNET`]).
    pub htype: u8,
    /// Hardware address length (6 for Ethernet).
    pub hlen: u8,
    /// Relay hops.
    pub hops: u8,
    /// Transaction id chosen by the client.
    pub xid: u32,
    /// Seconds since the client began acquiring an address.
    pub secs: u16,
    /// Flags ([`FLAG_BROADCAST`]).
    pub flags: u16,
    /// Client's current address (only when it has one).
    pub ciaddr: Ipv4Addr,
    /// "Your" address: what the server gives the client.
    pub yiaddr: Ipv4Addr,
    /// Next server (boot server) address.
    pub siaddr: Ipv4Addr,
    /// Relay agent address.
    pub giaddr: Ipv4Addr,
    /// Client hardware address, padded with zeros to 16 bytes.
    pub chaddr: [u8; 16],
    /// The options.
    pub options: Options,
}

impl Default for Message {
    fn default() -> Self {
        Message {
            op: BOOTREQUEST,
            htype: HTYPE_ETHERNET,
            hlen: 6,
            hops: 0,
            xid: 0,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
            options: Options::default(),
        }
    }
}

/// Appends one option; values longer than 255 bytes are split into several
/// consecutive instances, which the receiver concatenates (RFC 3396).
fn put_option(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    if data.is_empty() {
        out.extend_from_slice(&[code, 0]);
    }
    for chunk in data.chunks(255) {
        out.push(code);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

fn put_addrs(out: &mut Vec<u8>, code: u8, addrs: &[Ipv4Addr]) {
    if !addrs.is_empty() {
        let data: Vec<u8> = addrs.iter().flat_map(|a| a.octets()).collect();
        put_option(out, code, &data);
    }
}

impl Message {
    /// The message as it goes in a UDP datagram: header, magic cookie,
    /// options, end option, zero padding up to 300 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MIN_MESSAGE_LEN);
        out.extend_from_slice(&[self.op, self.htype, self.hlen, self.hops]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&a.octets());
        }
        out.extend_from_slice(&self.chaddr);
        // sname (64) and file (128).
        out.resize(HEADER_LEN, 0);
        out.extend_from_slice(&MAGIC_COOKIE);

        let o = &self.options;
        if let Some(t) = o.message_type {
            put_option(&mut out, code::MESSAGE_TYPE, &[t as u8]);
        }
        if let Some(id) = &o.client_id {
            put_option(&mut out, code::CLIENT_ID, id);
        }
        if let Some(a) = o.requested_ip {
            put_option(&mut out, code::REQUESTED_IP, &a.octets());
        }
        if let Some(a) = o.server_id {
            put_option(&mut out, code::SERVER_ID, &a.octets());
        }
        if let Some(t) = o.lease_time {
            put_option(&mut out, code::LEASE_TIME, &t.to_be_bytes());
        }
        if let Some(m) = o.subnet_mask {
            put_option(&mut out, code::SUBNET_MASK, &m.octets());
        }
        put_addrs(&mut out, code::ROUTER, &o.routers);
        put_addrs(&mut out, code::DNS, &o.dns);
        if let Some(h) = &o.hostname {
            put_option(&mut out, code::HOSTNAME, h.as_bytes());
        }
        if let Some(mtu) = o.mtu {
            put_option(&mut out, code::INTERFACE_MTU, &mtu.to_be_bytes());
        }
        put_addrs(&mut out, code::NTP_SERVERS, &o.ntp_servers);
        if !o.domain_search.is_empty() {
            let data = options::encode_search(&o.domain_search);
            put_option(&mut out, code::DOMAIN_SEARCH, &data);
        }
        if !o.classless_routes.is_empty() {
            let data = options::encode_routes(&o.classless_routes);
            put_option(&mut out, code::CLASSLESS_ROUTES, &data);
        }
        if !o.parameter_request_list.is_empty() {
            put_option(
                &mut out,
                code::PARAMETER_REQUEST_LIST,
                &o.parameter_request_list,
            );
        }
        for (c, data) in &o.other {
            put_option(&mut out, *c, data);
        }
        out.push(code::END);
        if out.len() < MIN_MESSAGE_LEN {
            out.resize(MIN_MESSAGE_LEN, 0);
        }
        out
    }

    /// Parses a DHCP message (the UDP payload). Every length is checked: any
    /// input gives a message or an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Message, DhcpError> {
        if bytes.len() < HEADER_LEN + MAGIC_COOKIE.len() {
            return Err(DhcpError::Truncated { len: bytes.len() });
        }
        let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let addr_at = |i: usize| Ipv4Addr::new(bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]);
        let hlen = bytes[2];
        if hlen > 16 {
            return Err(DhcpError::BadHardwareLength(hlen));
        }
        let mut chaddr = [0; 16];
        chaddr.copy_from_slice(&bytes[28..44]);
        let cookie = [bytes[236], bytes[237], bytes[238], bytes[239]];
        if cookie != MAGIC_COOKIE {
            return Err(DhcpError::BadCookie(cookie));
        }
        Ok(Message {
            op: bytes[0],
            htype: bytes[1],
            hlen,
            hops: bytes[3],
            xid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            secs: u16_at(8),
            flags: u16_at(10),
            ciaddr: addr_at(12),
            yiaddr: addr_at(16),
            siaddr: addr_at(20),
            giaddr: addr_at(24),
            chaddr,
            options: decode_options(&bytes[HEADER_LEN + MAGIC_COOKIE.len()..])?,
        })
    }
}

/// Splits the options field into `(code, value)` pairs, concatenating
/// repeated codes (RFC 3396), in the order each code was first seen.
fn split_options(field: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, DhcpError> {
    let mut raw: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut i = 0;
    loop {
        let Some(&c) = field.get(i) else {
            return Err(DhcpError::MissingEnd);
        };
        match c {
            code::PAD => i += 1,
            code::END => return Ok(raw),
            _ => {
                let offset = HEADER_LEN + MAGIC_COOKIE.len() + i;
                let data = field
                    .get(i + 1)
                    .and_then(|&len| field.get(i + 2..i + 2 + usize::from(len)))
                    .ok_or(DhcpError::TruncatedOption { code: c, offset })?;
                match raw.iter_mut().find(|(k, _)| *k == c) {
                    Some((_, v)) => v.extend_from_slice(data),
                    None => raw.push((c, data.to_vec())),
                }
                i += 2 + data.len();
            }
        }
    }
}

fn decode_options(field: &[u8]) -> Result<Options, DhcpError> {
    let mut o = Options::default();
    for (c, data) in split_options(field)? {
        let bad = |expected| DhcpError::BadOptionLength {
            code: c,
            len: data.len(),
            expected,
        };
        let addr = || -> Result<Ipv4Addr, DhcpError> {
            let b: [u8; 4] = data
                .as_slice()
                .try_into()
                .map_err(|_| bad("4 (an IPv4 address)"))?;
            Ok(Ipv4Addr::from(b))
        };
        let addrs = || -> Result<Vec<Ipv4Addr>, DhcpError> {
            if data.is_empty() || data.len() % 4 != 0 {
                return Err(bad("a non-zero multiple of 4 (IPv4 addresses)"));
            }
            Ok(data
                .chunks_exact(4)
                .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                .collect())
        };
        match c {
            code::MESSAGE_TYPE => {
                let [t] = data.as_slice() else {
                    return Err(bad("1 (the message type)"));
                };
                o.message_type =
                    Some(MessageType::from_u8(*t).ok_or(DhcpError::UnknownMessageType(*t))?);
            }
            code::REQUESTED_IP => o.requested_ip = Some(addr()?),
            code::SERVER_ID => o.server_id = Some(addr()?),
            code::SUBNET_MASK => o.subnet_mask = Some(addr()?),
            code::LEASE_TIME => {
                let b: [u8; 4] = data
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("4 (seconds as a 32-bit number)"))?;
                o.lease_time = Some(u32::from_be_bytes(b));
            }
            code::ROUTER => o.routers = addrs()?,
            code::DNS => o.dns = addrs()?,
            code::HOSTNAME => o.hostname = Some(String::from_utf8_lossy(&data).into_owned()),
            code::PARAMETER_REQUEST_LIST => o.parameter_request_list = data,
            code::CLIENT_ID => o.client_id = Some(data),
            // Extras: malformed, they stay uninterpreted in `other`.
            code::INTERFACE_MTU => match <[u8; 2]>::try_from(data.as_slice()) {
                Ok(b) => o.mtu = Some(u16::from_be_bytes(b)),
                Err(_) => o.other.push((c, data)),
            },
            code::NTP_SERVERS => match options::decode_addrs(&data) {
                Some(a) => o.ntp_servers = a,
                None => o.other.push((c, data)),
            },
            code::DOMAIN_SEARCH => match options::decode_search(&data) {
                Some(n) => o.domain_search = n,
                None => o.other.push((c, data)),
            },
            code::CLASSLESS_ROUTES => match options::decode_routes(&data) {
                Some(r) => o.classless_routes = r,
                None => o.other.push((c, data)),
            },
            _ => o.other.push((c, data)),
        }
    }
    Ok(o)
}

mod client;
pub mod options;

pub use client::{Action, Client, Lease};
pub use options::Route;

#[cfg(test)]
mod datacentre_tests;
#[cfg(test)]
mod tests;
