//! DHCPv4 (RFC 2131/2132) without I/O: the message codec and a client state
//! machine that turns received bytes and the passing of time (given by the
//! caller) into bytes to send and, in the end, a [`Lease`].
//!
//! PID 1 owns the socket and the clock; this module owns the protocol. The
//! decoder parses untrusted network input inside PID 1, where a panic is a
//! kernel panic, so it checks every length and returns errors instead.
//!
//! The client only acquires a lease (DISCOVER → OFFER → REQUEST → ACK): the
//! boot environment lives for seconds before it kexecs, far less than any
//! lease, so renewal and release are deliberately absent.

use std::net::Ipv4Addr;
use std::time::Duration;

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
            _ => o.other.push((c, data)),
        }
    }
    Ok(o)
}

/// What the network gave us: everything needed to configure the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address.
    pub address: Ipv4Addr,
    /// Prefix length of the subnet (from the subnet mask; the address's
    /// class when the server sends none, as the kernel's ipconfig does).
    pub prefix_len: u8,
    /// Default gateway. `None` is normal: QEMU's slirp with `restrict=on`
    /// sends none, and everything needed is on-link.
    pub router: Option<Ipv4Addr>,
    /// DNS servers, most preferred first; may be empty (slirp `restrict=on`).
    pub dns: Vec<Ipv4Addr>,
    /// How long the lease lasts; `None` when the server gave no time or an infinite one.
    pub lease_time: Option<Duration>,
    /// The server that gave the lease.
    pub server: Ipv4Addr,
}

/// What the caller should do after [`Client::on_packet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Broadcast these bytes to [`SERVER_PORT`] from [`CLIENT_PORT`].
    Send(Vec<u8>),
    /// A lease was acknowledged: configure the interface with it.
    Bound(Lease),
}

/// Where the client is in the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// [`Client::start`] not called yet.
    Init,
    /// DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST sent for an offered address, waiting for ACK or NAK.
    Requesting {
        address: Ipv4Addr,
        server: Ipv4Addr,
        /// REQUESTs sent so far for this offer.
        sent: u32,
    },
    /// Done.
    Bound(Lease),
}

/// First retransmission delay (RFC 2131 §4.1).
const FIRST_TIMEOUT: Duration = Duration::from_secs(4);
/// Delays double up to this (RFC 2131 §4.1).
const MAX_TIMEOUT: Duration = Duration::from_secs(64);
/// REQUESTs sent for one offer before starting over with a DISCOVER: the
/// offering server may have gone away, another may answer.
const MAX_REQUESTS: u32 = 4;

/// Options the client asks for: mask, router, DNS, host name, domain name, lease time.
const PARAMETERS: [u8; 6] = [
    code::SUBNET_MASK,
    code::ROUTER,
    code::DNS,
    code::HOSTNAME,
    15,
    code::LEASE_TIME,
];

/// A DHCPv4 client for one Ethernet interface, driven by the caller.
///
/// The caller sends what [`start`](Client::start) returns, feeds every UDP
/// payload received on port 68 to [`on_packet`](Client::on_packet), and
/// calls [`on_timeout`](Client::on_timeout) when
/// [`next_timeout`](Client::next_timeout) has passed. `now` is any monotonic
/// clock (e.g. time since boot); only differences matter.
#[derive(Debug, Clone)]
pub struct Client {
    mac: [u8; 6],
    xid: u32,
    state: State,
    /// When this acquisition began, for the `secs` field.
    started: Duration,
    /// When to retransmit, if waiting.
    deadline: Option<Duration>,
    /// The delay that led to `deadline`; doubles on each retransmission.
    interval: Duration,
}

impl Client {
    /// A client for the interface with hardware address `mac`, using
    /// transaction id `xid` (the caller picks it at random so that several
    /// clients on one network tell their answers apart).
    pub fn new(mac: [u8; 6], xid: u32) -> Client {
        Client {
            mac,
            xid,
            state: State::Init,
            started: Duration::ZERO,
            deadline: None,
            interval: FIRST_TIMEOUT,
        }
    }

    /// The transaction id in use (it changes when the exchange starts over).
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// The lease, once bound.
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound(l) => Some(l),
            _ => None,
        }
    }

    /// When [`on_timeout`](Client::on_timeout) should next be called; `None`
    /// when nothing is pending (not started, or bound).
    pub fn next_timeout(&self) -> Option<Duration> {
        self.deadline
    }

    /// Begins (or begins again) acquiring an address: the DISCOVER to broadcast.
    pub fn start(&mut self, now: Duration) -> Vec<u8> {
        self.started = now;
        self.state = State::Selecting;
        self.arm(now, FIRST_TIMEOUT);
        self.discover(now)
    }

    /// Handles one received UDP payload. Anything that is not a well-formed
    /// answer to this client's current question is ignored (`None`): other
    /// clients' traffic, other transactions, garbage.
    pub fn on_packet(&mut self, pkt: &[u8], now: Duration) -> Option<Action> {
        let msg = Message::decode(pkt).ok()?;
        if msg.op != BOOTREPLY
            || msg.xid != self.xid
            || msg.htype != HTYPE_ETHERNET
            || msg.hlen != 6
            || msg.chaddr[..6] != self.mac
        {
            return None;
        }
        let server_id = msg.options.server_id;
        match (&self.state, msg.options.message_type?) {
            (State::Selecting, MessageType::Offer) => {
                // RFC 2131 requires option 54 in an OFFER; siaddr is the
                // fallback for servers that forget it.
                let server = server_id.or(Some(msg.siaddr).filter(|a| !a.is_unspecified()))?;
                if !usable(msg.yiaddr) {
                    return None;
                }
                self.state = State::Requesting {
                    address: msg.yiaddr,
                    server,
                    sent: 1,
                };
                self.arm(now, FIRST_TIMEOUT);
                Some(Action::Send(self.request(now, msg.yiaddr, server)))
            }
            (State::Requesting { server, .. }, MessageType::Ack) => {
                let server = *server;
                if server_id.is_some_and(|s| s != server) || !usable(msg.yiaddr) {
                    return None;
                }
                let lease = lease_from(&msg, server);
                self.state = State::Bound(lease.clone());
                self.deadline = None;
                Some(Action::Bound(lease))
            }
            (State::Requesting { server, .. }, MessageType::Nak) => {
                if server_id.is_some_and(|s| s != *server) {
                    return None;
                }
                Some(Action::Send(self.restart(now)))
            }
            _ => None,
        }
    }

    /// Retransmits if the deadline has passed: the bytes to send, or `None`
    /// if it is not time yet (or nothing is pending). Delays go 4 s, 8 s,
    /// 16 s … up to 64 s; a REQUEST that stays unanswered
    /// [`MAX_REQUESTS`] times gives way to a new DISCOVER.
    pub fn on_timeout(&mut self, now: Duration) -> Option<Vec<u8>> {
        if now < self.deadline? {
            return None;
        }
        let interval = (self.interval * 2).min(MAX_TIMEOUT);
        match self.state.clone() {
            State::Selecting => {
                self.arm(now, interval);
                Some(self.discover(now))
            }
            State::Requesting { sent, .. } if sent >= MAX_REQUESTS => Some(self.restart(now)),
            State::Requesting {
                address,
                server,
                sent,
            } => {
                self.state = State::Requesting {
                    address,
                    server,
                    sent: sent + 1,
                };
                self.arm(now, interval);
                Some(self.request(now, address, server))
            }
            State::Init | State::Bound(_) => None,
        }
    }

    /// Starts over with a new transaction id, so late answers to the old
    /// exchange are ignored.
    fn restart(&mut self, now: Duration) -> Vec<u8> {
        self.xid = self.xid.wrapping_add(1);
        self.start(now)
    }

    fn arm(&mut self, now: Duration, interval: Duration) {
        self.interval = interval;
        self.deadline = Some(now.saturating_add(interval));
    }

    fn base(&self, now: Duration, kind: MessageType) -> Message {
        let mut chaddr = [0; 16];
        chaddr[..6].copy_from_slice(&self.mac);
        let mut client_id = vec![HTYPE_ETHERNET];
        client_id.extend_from_slice(&self.mac);
        let secs = now.saturating_sub(self.started).as_secs();
        Message {
            xid: self.xid,
            secs: u16::try_from(secs).unwrap_or(u16::MAX),
            flags: FLAG_BROADCAST,
            chaddr,
            options: Options {
                message_type: Some(kind),
                client_id: Some(client_id),
                parameter_request_list: PARAMETERS.to_vec(),
                ..Options::default()
            },
            ..Message::default()
        }
    }

    fn discover(&self, now: Duration) -> Vec<u8> {
        self.base(now, MessageType::Discover).encode()
    }

    fn request(&self, now: Duration, address: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
        let mut m = self.base(now, MessageType::Request);
        m.options.requested_ip = Some(address);
        m.options.server_id = Some(server);
        m.encode()
    }
}

/// An address a server may hand out to a host.
fn usable(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

fn lease_from(msg: &Message, server: Ipv4Addr) -> Lease {
    let o = &msg.options;
    let prefix_len = o
        .subnet_mask
        .and_then(mask_to_prefix)
        .unwrap_or_else(|| default_prefix_len(msg.yiaddr));
    Lease {
        address: msg.yiaddr,
        prefix_len,
        router: o.routers.iter().copied().find(|r| usable(*r)),
        dns: o.dns.iter().copied().filter(|d| usable(*d)).collect(),
        lease_time: o
            .lease_time
            .filter(|&t| t != u32::MAX)
            .map(|t| Duration::from_secs(t.into())),
        server: o.server_id.unwrap_or(server),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const XID: u32 = 0x1234_5678;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A reply as QEMU's slirp (libslirp `bootp.c`) builds it: a fixed
    /// 548-byte `struct bootp_t`, siaddr = the virtual host 10.0.2.2, the
    /// guest gets 10.0.2.15/24 for a day. With `restrict=on` there is no
    /// router (3) and no DNS (6) option.
    fn slirp_reply(kind: u8, xid: u32, mac: [u8; 6], restricted: bool) -> Vec<u8> {
        let mut p = vec![0u8; 548];
        p[0] = 2; // BOOTREPLY
        p[1] = 1; // Ethernet
        p[2] = 6;
        p[4..8].copy_from_slice(&xid.to_be_bytes());
        p[16..20].copy_from_slice(&[10, 0, 2, 15]); // yiaddr
        p[20..24].copy_from_slice(&[10, 0, 2, 2]); // siaddr
        p[28..34].copy_from_slice(&mac);
        p[236..240].copy_from_slice(&MAGIC_COOKIE);
        let mut opts = vec![53, 1, kind, 54, 4, 10, 0, 2, 2, 51, 4, 0, 1, 0x51, 0x80];
        opts.extend_from_slice(&[1, 4, 255, 255, 255, 0]);
        if !restricted {
            opts.extend_from_slice(&[3, 4, 10, 0, 2, 2, 6, 4, 10, 0, 2, 3]);
        }
        opts.push(255);
        p[240..240 + opts.len()].copy_from_slice(&opts);
        p
    }

    fn send(a: Option<Action>) -> Message {
        match a {
            Some(Action::Send(b)) => Message::decode(&b).unwrap(),
            other => panic!("expected bytes to send, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let m = Message {
            op: BOOTREPLY,
            hops: 3,
            xid: 0xdead_beef,
            secs: 7,
            flags: FLAG_BROADCAST,
            ciaddr: Ipv4Addr::new(1, 2, 3, 4),
            yiaddr: Ipv4Addr::new(192, 168, 1, 20),
            siaddr: Ipv4Addr::new(192, 168, 1, 1),
            giaddr: Ipv4Addr::new(10, 9, 8, 7),
            chaddr: [1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            options: Options {
                message_type: Some(MessageType::Ack),
                requested_ip: Some(Ipv4Addr::new(192, 168, 1, 20)),
                server_id: Some(Ipv4Addr::new(192, 168, 1, 1)),
                lease_time: Some(3600),
                subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                routers: vec![Ipv4Addr::new(192, 168, 1, 1), Ipv4Addr::new(192, 168, 1, 2)],
                dns: vec![Ipv4Addr::new(9, 9, 9, 9)],
                hostname: Some("box".into()),
                parameter_request_list: vec![1, 3, 6],
                client_id: Some(vec![1, 1, 2, 3, 4, 5, 6]),
                other: vec![(15, b"example.org".to_vec()), (80, vec![])],
            },
            ..Message::default()
        };
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        // Short messages are padded to the BOOTP minimum.
        let d = Message::default();
        assert_eq!(d.encode().len(), MIN_MESSAGE_LEN);
        assert_eq!(Message::decode(&d.encode()).unwrap(), d);
    }

    /// Values over 255 bytes are split and joined again (RFC 3396).
    #[test]
    fn long_options_round_trip() {
        let dns: Vec<Ipv4Addr> = (0..100).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let m = Message {
            options: Options {
                dns: dns.clone(),
                hostname: Some("h".repeat(300)),
                ..Options::default()
            },
            ..Message::default()
        };
        let bytes = m.encode();
        assert!(bytes.len() > 700);
        assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn decodes_a_slirp_offer() {
        let m = Message::decode(&slirp_reply(2, XID, MAC, true)).unwrap();
        assert_eq!(m.op, BOOTREPLY);
        assert_eq!(m.xid, XID);
        assert_eq!(m.yiaddr, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(m.chaddr[..6], MAC);
        assert_eq!(
            m.options,
            Options {
                message_type: Some(MessageType::Offer),
                server_id: Some(Ipv4Addr::new(10, 0, 2, 2)),
                lease_time: Some(86400),
                subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                ..Options::default()
            }
        );
    }

    /// The whole exchange against slirp with `restrict=on`: no router, no DNS.
    #[test]
    fn binds_against_restricted_slirp() {
        let mut c = Client::new(MAC, XID);
        let d = Message::decode(&c.start(secs(10))).unwrap();
        assert_eq!(d.op, BOOTREQUEST);
        assert_eq!(d.options.message_type, Some(MessageType::Discover));
        assert_eq!(d.flags & FLAG_BROADCAST, FLAG_BROADCAST);
        assert_eq!(d.xid, XID);
        assert_eq!(d.chaddr[..6], MAC);
        assert_eq!(
            d.options.client_id,
            Some(vec![1, 0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert!(d.options.parameter_request_list.contains(&code::ROUTER));
        assert_eq!(c.next_timeout(), Some(secs(14)));

        let r = send(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(11)));
        assert_eq!(r.options.message_type, Some(MessageType::Request));
        assert_eq!(r.options.requested_ip, Some(Ipv4Addr::new(10, 0, 2, 15)));
        assert_eq!(r.options.server_id, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(r.flags & FLAG_BROADCAST, FLAG_BROADCAST);
        assert_eq!(r.secs, 1);

        let want = Lease {
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix_len: 24,
            router: None,
            dns: vec![],
            lease_time: Some(secs(86400)),
            server: Ipv4Addr::new(10, 0, 2, 2),
        };
        assert_eq!(
            c.on_packet(&slirp_reply(5, XID, MAC, true), secs(11)),
            Some(Action::Bound(want.clone()))
        );
        assert_eq!(c.lease(), Some(&want));
        assert_eq!(c.next_timeout(), None);
        assert_eq!(c.on_timeout(secs(1000)), None);
        // Late duplicates change nothing.
        assert_eq!(c.on_packet(&slirp_reply(5, XID, MAC, true), secs(12)), None);
    }

    #[test]
    fn unrestricted_slirp_gives_router_and_dns() {
        let mut c = Client::new(MAC, XID);
        c.start(Duration::ZERO);
        send(c.on_packet(&slirp_reply(2, XID, MAC, false), secs(1)));
        let Some(Action::Bound(l)) = c.on_packet(&slirp_reply(5, XID, MAC, false), secs(1)) else {
            panic!("not bound");
        };
        assert_eq!(l.router, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(l.dns, vec![Ipv4Addr::new(10, 0, 2, 3)]);
    }

    #[test]
    fn ignores_what_is_not_for_us() {
        let mut c = Client::new(MAC, XID);
        c.start(Duration::ZERO);
        let other_mac = [0x52, 0x54, 0, 0, 0, 1];
        assert_eq!(
            c.on_packet(&slirp_reply(2, XID + 1, MAC, true), secs(1)),
            None
        );
        assert_eq!(
            c.on_packet(&slirp_reply(2, XID, other_mac, true), secs(1)),
            None
        );
        let mut request = slirp_reply(2, XID, MAC, true);
        request[0] = BOOTREQUEST;
        assert_eq!(c.on_packet(&request, secs(1)), None);
        // An ACK or NAK while selecting answers someone else's question.
        assert_eq!(c.on_packet(&slirp_reply(5, XID, MAC, true), secs(1)), None);
        assert_eq!(c.on_packet(&slirp_reply(6, XID, MAC, true), secs(1)), None);
        let mut zero_offer = slirp_reply(2, XID, MAC, true);
        zero_offer[16..20].fill(0);
        assert_eq!(c.on_packet(&zero_offer, secs(1)), None);
        assert_eq!(c.on_packet(b"garbage", secs(1)), None);
        // Still selecting: a real offer is taken.
        send(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(1)));
        // A second offer (another server) is ignored once requesting.
        assert_eq!(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(1)), None);
        // An ACK from a server we did not pick is ignored.
        let mut other_server = slirp_reply(5, XID, MAC, true);
        other_server[245..249].copy_from_slice(&[10, 0, 2, 9]);
        assert_eq!(c.on_packet(&other_server, secs(1)), None);
        assert!(c.lease().is_none());
    }

    #[test]
    fn nak_starts_over_with_a_new_xid() {
        let mut c = Client::new(MAC, XID);
        c.start(Duration::ZERO);
        send(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(1)));
        let d = send(c.on_packet(&slirp_reply(6, XID, MAC, true), secs(2)));
        assert_eq!(d.options.message_type, Some(MessageType::Discover));
        assert_eq!(d.xid, XID + 1);
        assert_eq!(c.xid(), XID + 1);
        assert_eq!(c.next_timeout(), Some(secs(6)));
        assert_eq!(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(3)), None);
        send(c.on_packet(&slirp_reply(2, XID + 1, MAC, true), secs(3)));
    }

    #[test]
    fn retransmits_with_exponential_backoff() {
        let mut c = Client::new(MAC, XID);
        assert_eq!(c.on_timeout(secs(100)), None, "not started");
        c.start(Duration::ZERO);
        assert_eq!(c.on_timeout(secs(3)), None, "too early");
        let mut at = Duration::ZERO;
        let mut delays = Vec::new();
        for _ in 0..7 {
            let due = c.next_timeout().unwrap();
            delays.push((due - at).as_secs());
            at = due;
            let d = Message::decode(&c.on_timeout(due).unwrap()).unwrap();
            assert_eq!(d.options.message_type, Some(MessageType::Discover));
            assert_eq!(u64::from(d.secs), due.as_secs());
        }
        assert_eq!(delays, vec![4, 8, 16, 32, 64, 64, 64]);
    }

    #[test]
    fn unanswered_requests_fall_back_to_discover() {
        let mut c = Client::new(MAC, XID);
        c.start(Duration::ZERO);
        send(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(1)));
        let mut kinds = Vec::new();
        for _ in 0..5 {
            let due = c.next_timeout().unwrap();
            let m = Message::decode(&c.on_timeout(due).unwrap()).unwrap();
            kinds.push((m.options.message_type.unwrap(), m.xid));
        }
        use MessageType::*;
        assert_eq!(
            kinds,
            vec![
                (Request, XID),
                (Request, XID),
                (Request, XID),
                (Discover, XID + 1),
                (Discover, XID + 1)
            ]
        );
    }

    #[test]
    fn lease_defaults() {
        // No mask: the class of the address, as the kernel's ipconfig does.
        let m = Message {
            yiaddr: Ipv4Addr::new(172, 16, 5, 4),
            options: Options {
                lease_time: Some(u32::MAX),
                routers: vec![Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(172, 16, 0, 1)],
                dns: vec![Ipv4Addr::new(0, 0, 0, 0), Ipv4Addr::new(1, 1, 1, 1)],
                subnet_mask: Some(Ipv4Addr::new(255, 0, 255, 0)),
                ..Options::default()
            },
            ..Message::default()
        };
        let l = lease_from(&m, Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(l.prefix_len, 16);
        assert_eq!(l.lease_time, None);
        assert_eq!(l.router, Some(Ipv4Addr::new(172, 16, 0, 1)));
        assert_eq!(l.dns, vec![Ipv4Addr::new(1, 1, 1, 1)]);
        assert_eq!(l.server, Ipv4Addr::new(172, 16, 0, 1));
    }

    #[test]
    fn truncated_and_garbage_inputs_are_errors() {
        let good = slirp_reply(2, XID, MAC, false);
        assert_eq!(Message::decode(&[]), Err(DhcpError::Truncated { len: 0 }));
        assert_eq!(
            Message::decode(&good[..239]),
            Err(DhcpError::Truncated { len: 239 })
        );
        assert_eq!(Message::decode(&good[..240]), Err(DhcpError::MissingEnd));
        // Cut inside the lease time option (starts at 249).
        assert_eq!(
            Message::decode(&good[..252]),
            Err(DhcpError::TruncatedOption {
                code: 51,
                offset: 249
            })
        );
        assert_eq!(
            Message::decode(&good[..250]),
            Err(DhcpError::TruncatedOption {
                code: 51,
                offset: 249
            })
        );
        // Every prefix of a real message is rejected or (past the end option) accepted, never a panic.
        // The end option: 15 bytes of type, server id and lease time, 6 of
        // mask, 12 of router and DNS after the cookie.
        let end = 240 + 15 + 6 + 12;
        assert_eq!(good[end], 255);
        for n in 0..good.len() {
            assert_eq!(Message::decode(&good[..n]).is_ok(), n > end, "{n}");
        }

        let mut bad = good.clone();
        bad[236] = 0;
        assert_eq!(
            Message::decode(&bad),
            Err(DhcpError::BadCookie([0, 130, 83, 99]))
        );
        let mut bad = good.clone();
        bad[2] = 17;
        assert_eq!(Message::decode(&bad), Err(DhcpError::BadHardwareLength(17)));
        let mut bad = good.clone();
        bad[242] = 9;
        assert_eq!(Message::decode(&bad), Err(DhcpError::UnknownMessageType(9)));
        let with_options = |opts: &[u8]| {
            let mut p = Message::default().encode();
            p.truncate(240);
            p.extend_from_slice(opts);
            Message::decode(&p)
        };
        assert!(matches!(
            with_options(&[54, 3, 10, 0, 2, 255]),
            Err(DhcpError::BadOptionLength {
                code: 54,
                len: 3,
                ..
            })
        ));
        assert!(matches!(
            with_options(&[53, 2, 1, 1, 255]),
            Err(DhcpError::BadOptionLength {
                code: 53,
                len: 2,
                ..
            })
        ));
        // Repeated options are concatenated (RFC 3396) before their length is checked.
        assert!(matches!(
            with_options(&[53, 1, 1, 53, 1, 1, 255]),
            Err(DhcpError::BadOptionLength {
                code: 53,
                len: 2,
                ..
            })
        ));
        assert!(matches!(
            with_options(&[6, 0, 255]),
            Err(DhcpError::BadOptionLength {
                code: 6,
                len: 0,
                ..
            })
        ));
        assert!(matches!(
            with_options(&[51, 2, 0, 1, 255]),
            Err(DhcpError::BadOptionLength {
                code: 51,
                len: 2,
                ..
            })
        ));
        assert_eq!(
            with_options(&[0, 0, 255]).unwrap().options,
            Options::default()
        );
        assert_eq!(
            with_options(&[0, 0, 7]),
            Err(DhcpError::TruncatedOption {
                code: 7,
                offset: 242
            })
        );
        let e = DhcpError::BadOptionLength {
            code: 6,
            len: 5,
            expected: "a non-zero multiple of 4 (IPv4 addresses)",
        };
        assert_eq!(
            e.to_string(),
            "dhcp option 6 is 5 bytes long: expected a non-zero multiple of 4 (IPv4 addresses)"
        );
    }

    /// xorshift64*: a fixed seed keeps failures reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random bytes and random mutations of real messages never panic the
    /// decoder or the client, and whatever decodes re-encodes and decodes the same.
    #[test]
    fn fuzz_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let seeds = [
            slirp_reply(2, XID, MAC, false),
            slirp_reply(5, XID, MAC, true),
            slirp_reply(6, XID, MAC, true),
        ];
        let mut decoded = 0;
        for i in 0..20_000 {
            let pkt: Vec<u8> = if i % 2 == 0 {
                let len = rng.below(700);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                let mut p = seeds[rng.below(seeds.len())].clone();
                // Keep header and cookie mostly intact so the options parser is exercised.
                for _ in 0..1 + rng.below(8) {
                    let at = 236 + rng.below(p.len() - 236);
                    p[at] = rng.next() as u8;
                }
                if rng.below(4) == 0 {
                    p.truncate(rng.below(p.len() + 1));
                }
                p
            };
            if let Ok(m) = Message::decode(&pkt) {
                decoded += 1;
                let again = Message::decode(&m.encode()).unwrap();
                // Hostnames that were not UTF-8 were already replaced on the first pass.
                assert_eq!(again, m);
            }
            let mut c = Client::new(MAC, XID);
            c.start(Duration::ZERO);
            let _ = c.on_packet(&pkt, secs(1));
            let _ = c.on_packet(&seeds[0], secs(1));
            let _ = c.on_packet(&pkt, secs(1));
            let _ = c.on_timeout(secs(1000));
        }
        assert!(
            decoded > 1_000,
            "only {decoded} inputs decoded: the mutations miss the parser"
        );
    }
}
