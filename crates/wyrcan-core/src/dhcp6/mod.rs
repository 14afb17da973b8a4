//! DHCPv6 (RFC 8415) without I/O: the message codec and a client state
//! machine that turns received bytes and the passing of time (given by the
//! caller) into bytes to send and, in the end, a [`Lease6`].
//!
//! PID 1 owns the socket, the clock and the randomness; this module owns
//! the protocol. The decoder parses untrusted network input inside PID 1,
//! where a panic is a kernel panic, so it checks every length, never sizes
//! an allocation from a length field, and returns errors instead.
//!
//! Two exchanges are supported: stateful (Solicit → Advertise → Request →
//! Reply: addresses plus DNS and NTP) and stateless (Information-request →
//! Reply: DNS and NTP only, for networks whose routers set only the O flag).
//! Renew, Rebind, Release and Confirm are deliberately absent: the boot
//! environment lives for seconds before it kexecs, far less than any
//! lifetime, so T1 and T2 are read and ignored. Relay messages are for
//! relays and servers, and are refused.

use std::net::Ipv6Addr;

use crate::ra::{decode_names, encode_names, NameError};

/// UDP port DHCPv6 clients listen on.
pub const CLIENT_PORT: u16 = 546;
/// UDP port DHCPv6 servers and relay agents listen on.
pub const SERVER_PORT: u16 = 547;
/// Where a client sends every message (RFC 8415 §7.1): all servers and
/// relay agents on the link, reached from the link-local address.
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// msg-type and the 3-byte transaction id.
const HEADER_LEN: usize = 4;
/// Option code and option length.
const OPTION_HEADER_LEN: usize = 4;

/// Option codes this module understands (RFC 8415 §21, RFC 3646, RFC 4075, RFC 5908).
pub mod code {
    /// Client Identifier (a DUID).
    pub const CLIENT_ID: u16 = 1;
    /// Server Identifier (a DUID).
    pub const SERVER_ID: u16 = 2;
    /// Identity Association for Non-temporary Addresses.
    pub const IA_NA: u16 = 3;
    /// IA Address, inside an IA_NA.
    pub const IAADDR: u16 = 5;
    /// Option Request.
    pub const ORO: u16 = 6;
    /// Server preference.
    pub const PREFERENCE: u16 = 7;
    /// Elapsed time, in hundredths of a second.
    pub const ELAPSED_TIME: u16 = 8;
    /// Status code.
    pub const STATUS_CODE: u16 = 13;
    /// DNS recursive name servers (RFC 3646).
    pub const DNS_SERVERS: u16 = 23;
    /// Domain search list (RFC 3646).
    pub const DOMAIN_LIST: u16 = 24;
    /// SNTP servers (RFC 4075).
    pub const SNTP_SERVERS: u16 = 31;
    /// NTP server (RFC 5908), with suboptions.
    pub const NTP_SERVER: u16 = 56;
    /// The longest Solicit retransmission time the server wants.
    pub const SOL_MAX_RT: u16 = 82;
    /// The longest Information-request retransmission time the server wants.
    pub const INF_MAX_RT: u16 = 83;
}

/// Status codes (RFC 8415 §21.13).
pub mod status {
    /// Success.
    pub const SUCCESS: u16 = 0;
    /// Failure, reason unspecified.
    pub const UNSPEC_FAIL: u16 = 1;
    /// The server has no addresses available to assign to the IA.
    pub const NO_ADDRS_AVAIL: u16 = 2;
    /// Client record (binding) unavailable.
    pub const NO_BINDING: u16 = 3;
    /// The prefix for the address is not appropriate for the link.
    pub const NOT_ON_LINK: u16 = 4;
    /// The server wants the client to use multicast.
    pub const USE_MULTICAST: u16 = 5;
}

/// Suboptions of the NTP server option (RFC 5908 §4).
pub mod ntp_suboption {
    /// A server's unicast address.
    pub const SRV_ADDR: u16 = 1;
    /// A multicast group to listen to.
    pub const MC_ADDR: u16 = 2;
    /// A server's name.
    pub const SRV_FQDN: u16 = 3;
}

/// The msg-type of a DHCPv6 message between client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Client looks for servers.
    Solicit = 1,
    /// Server offers to serve.
    Advertise = 2,
    /// Client asks a server for addresses.
    Request = 3,
    /// Client asks whether its addresses fit the link.
    Confirm = 4,
    /// Client extends its lease with its server.
    Renew = 5,
    /// Client extends its lease with any server.
    Rebind = 6,
    /// Server answers.
    Reply = 7,
    /// Client gives addresses back.
    Release = 8,
    /// Client found an address in use.
    Decline = 9,
    /// Server asks the client to renew.
    Reconfigure = 10,
    /// Client asks for configuration only.
    InformationRequest = 11,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match v {
            1 => Solicit,
            2 => Advertise,
            3 => Request,
            4 => Confirm,
            5 => Renew,
            6 => Rebind,
            7 => Reply,
            8 => Release,
            9 => Decline,
            10 => Reconfigure,
            11 => InformationRequest,
            _ => return None,
        })
    }
}

/// Why bytes are not a DHCPv6 message this client can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dhcp6Error {
    /// Shorter than msg-type and transaction id.
    #[error("dhcpv6 message is {len} bytes: expected at least 4 (type and transaction id)")]
    Truncated {
        /// The length received.
        len: usize,
    },
    /// A msg-type outside 1..=11 (relay messages included: they are not for clients).
    #[error("dhcpv6 message type {0} is not a client/server message: expected 1 (solicit) to 11 (information-request)")]
    UnknownMessageType(u8),
    /// An option's length runs past the end of the message or of its container.
    #[error("dhcpv6 option {code} at byte {offset} runs past the end of its container: the message is truncated")]
    TruncatedOption {
        /// The option code.
        code: u16,
        /// Where the option starts in its container.
        offset: usize,
    },
    /// A known option with a length its type does not allow.
    #[error("dhcpv6 option {code} is {len} bytes long: expected {expected}")]
    BadOptionLength {
        /// The option code.
        code: u16,
        /// Its length.
        len: usize,
        /// What the option's type needs, in words.
        expected: &'static str,
    },
    /// A domain name option that does not hold usable names.
    #[error("dhcpv6 option {code}: {error}")]
    BadName {
        /// The option code.
        code: u16,
        /// What is wrong with the names.
        error: NameError,
    },
}

/// A Status Code option (RFC 8415 §21.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// One of [`status`].
    pub code: u16,
    /// The server's message (bytes that are not UTF-8 are replaced by U+FFFD).
    pub message: String,
}

/// An IA Address option (RFC 8415 §21.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaAddr {
    /// The address.
    pub addr: Ipv6Addr,
    /// Preferred lifetime in seconds (`u32::MAX` is infinite).
    pub preferred: u32,
    /// Valid lifetime in seconds (`u32::MAX` is infinite).
    pub valid: u32,
    /// The status of this address, if the server gave one.
    pub status: Option<Status>,
}

/// An IA_NA option (RFC 8415 §21.4). Options inside it other than IA
/// Address and Status Code are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaNa {
    /// The client's identifier for this IA.
    pub iaid: u32,
    /// When to renew (unused: the boot environment never renews).
    pub t1: u32,
    /// When to rebind (unused, likewise).
    pub t2: u32,
    /// The addresses.
    pub addresses: Vec<IaAddr>,
    /// The status of the IA, if the server gave one.
    pub status: Option<Status>,
}

/// An NTP server from option 56 (RFC 5908), or an SNTP server from option 31.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NtpServer6 {
    /// A server's unicast address.
    Address(Ipv6Addr),
    /// A multicast group on which servers announce time.
    Multicast(Ipv6Addr),
    /// A server's name, to resolve.
    Fqdn(String),
}

/// The options this client reads or writes, decoded. Unknown options are
/// kept in [`Options::other`]; of an option that must appear once, the
/// first instance counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// 1: the client's DUID.
    pub client_id: Option<Vec<u8>>,
    /// 2: the server's DUID.
    pub server_id: Option<Vec<u8>>,
    /// 3: identity associations for addresses.
    pub ia_na: Vec<IaNa>,
    /// 6: option codes the client wants.
    pub oro: Vec<u16>,
    /// 7: how much the server wants to serve this client (255: take me now).
    pub preference: Option<u8>,
    /// 8: hundredths of a second since the client began the exchange.
    pub elapsed_time: Option<u16>,
    /// 13: the status of the whole message.
    pub status: Option<Status>,
    /// 23: DNS servers, most preferred first.
    pub dns: Vec<Ipv6Addr>,
    /// 24: DNS search domains.
    pub search: Vec<String>,
    /// 31: SNTP servers.
    pub sntp: Vec<Ipv6Addr>,
    /// 56: NTP servers.
    pub ntp: Vec<NtpServer6>,
    /// 82: the server's SOL_MAX_RT, in seconds.
    pub sol_max_rt: Option<u32>,
    /// 83: the server's INF_MAX_RT, in seconds.
    pub inf_max_rt: Option<u32>,
    /// Every other option, by code, in the order seen.
    pub other: Vec<(u16, Vec<u8>)>,
}

/// A DHCPv6 client/server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What the message is.
    pub kind: MessageType,
    /// Transaction id: 24 bits (the top 8 are ignored when encoding).
    pub xid: u32,
    /// The options.
    pub options: Options,
}

/// The largest value an option can carry.
const OPTION_MAX: usize = u16::MAX as usize;

/// Appends one option. A value over 65535 bytes cannot be expressed and
/// is cut there (nothing this module builds comes near).
fn put_option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    let data = &data[..data.len().min(OPTION_MAX)];
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn put_status(out: &mut Vec<u8>, s: &Status) {
    let mut data = s.code.to_be_bytes().to_vec();
    data.extend_from_slice(s.message.as_bytes());
    put_option(out, code::STATUS_CODE, &data);
}

fn put_addrs(out: &mut Vec<u8>, code: u16, addrs: &[Ipv6Addr]) {
    if !addrs.is_empty() {
        let data: Vec<u8> = addrs.iter().flat_map(|a| a.octets()).collect();
        put_option(out, code, &data);
    }
}

impl IaNa {
    fn encode(&self) -> Vec<u8> {
        let mut data = Vec::new();
        for v in [self.iaid, self.t1, self.t2] {
            data.extend_from_slice(&v.to_be_bytes());
        }
        for a in &self.addresses {
            let mut addr = a.addr.octets().to_vec();
            addr.extend_from_slice(&a.preferred.to_be_bytes());
            addr.extend_from_slice(&a.valid.to_be_bytes());
            if let Some(s) = &a.status {
                put_status(&mut addr, s);
            }
            put_option(&mut data, code::IAADDR, &addr);
        }
        if let Some(s) = &self.status {
            put_status(&mut data, s);
        }
        data
    }
}

impl Message {
    /// The message as it goes in a UDP datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.kind as u8];
        out.extend_from_slice(&self.xid.to_be_bytes()[1..]);
        let o = &self.options;
        if let Some(id) = &o.client_id {
            put_option(&mut out, code::CLIENT_ID, id);
        }
        if let Some(id) = &o.server_id {
            put_option(&mut out, code::SERVER_ID, id);
        }
        if let Some(t) = o.elapsed_time {
            put_option(&mut out, code::ELAPSED_TIME, &t.to_be_bytes());
        }
        if let Some(p) = o.preference {
            put_option(&mut out, code::PREFERENCE, &[p]);
        }
        if let Some(s) = &o.status {
            put_status(&mut out, s);
        }
        for ia in &o.ia_na {
            put_option(&mut out, code::IA_NA, &ia.encode());
        }
        if !o.oro.is_empty() {
            let data: Vec<u8> = o.oro.iter().flat_map(|c| c.to_be_bytes()).collect();
            put_option(&mut out, code::ORO, &data);
        }
        put_addrs(&mut out, code::DNS_SERVERS, &o.dns);
        if !o.search.is_empty() {
            let names: Vec<&str> = o.search.iter().map(String::as_str).collect();
            put_option(&mut out, code::DOMAIN_LIST, &encode_names(&names));
        }
        put_addrs(&mut out, code::SNTP_SERVERS, &o.sntp);
        for s in &o.ntp {
            let (sub, data) = match s {
                NtpServer6::Address(a) => (ntp_suboption::SRV_ADDR, a.octets().to_vec()),
                NtpServer6::Multicast(a) => (ntp_suboption::MC_ADDR, a.octets().to_vec()),
                NtpServer6::Fqdn(n) => (ntp_suboption::SRV_FQDN, encode_names(&[n.as_str()])),
            };
            let mut opt = Vec::new();
            put_option(&mut opt, sub, &data);
            put_option(&mut out, code::NTP_SERVER, &opt);
        }
        if let Some(t) = o.sol_max_rt {
            put_option(&mut out, code::SOL_MAX_RT, &t.to_be_bytes());
        }
        if let Some(t) = o.inf_max_rt {
            put_option(&mut out, code::INF_MAX_RT, &t.to_be_bytes());
        }
        for (c, data) in &o.other {
            put_option(&mut out, *c, data);
        }
        out
    }

    /// Parses a DHCPv6 message (the UDP payload). Every length is checked:
    /// any input gives a message or an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Message, Dhcp6Error> {
        let Some((&[t, x0, x1, x2], body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(Dhcp6Error::Truncated { len: bytes.len() });
        };
        let kind = MessageType::from_u8(t).ok_or(Dhcp6Error::UnknownMessageType(t))?;
        Ok(Message {
            kind,
            xid: u32::from_be_bytes([0, x0, x1, x2]),
            options: decode_options(body)?,
        })
    }
}

/// Splits an options field (of a message, an IA or an option with
/// suboptions) into `(code, value)` pairs.
fn split_options(mut field: &[u8]) -> Result<Vec<(u16, &[u8])>, Dhcp6Error> {
    let mut out = Vec::new();
    let total = field.len();
    while !field.is_empty() {
        let offset = total - field.len();
        let Some((&[c0, c1, l0, l1], rest)) = field.split_first_chunk::<OPTION_HEADER_LEN>() else {
            // 1 to 3 stray bytes: the code, if there is one, for the error.
            let code = u16::from_be_bytes([field[0], field.get(1).copied().unwrap_or(0)]);
            return Err(Dhcp6Error::TruncatedOption { code, offset });
        };
        let code = u16::from_be_bytes([c0, c1]);
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let data = rest
            .get(..len)
            .ok_or(Dhcp6Error::TruncatedOption { code, offset })?;
        out.push((code, data));
        field = rest.get(len..).unwrap_or(&[]);
    }
    Ok(out)
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn addr_at(b: &[u8], i: usize) -> Option<Ipv6Addr> {
    let octets: [u8; 16] = b.get(i..i + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}

fn bad(code: u16, data: &[u8], expected: &'static str) -> Dhcp6Error {
    Dhcp6Error::BadOptionLength {
        code,
        len: data.len(),
        expected,
    }
}

fn decode_status(data: &[u8]) -> Result<Status, Dhcp6Error> {
    let Some((&[c0, c1], message)) = data.split_first_chunk::<2>() else {
        return Err(bad(code::STATUS_CODE, data, "at least 2 (a status code)"));
    };
    Ok(Status {
        code: u16::from_be_bytes([c0, c1]),
        message: String::from_utf8_lossy(message).into_owned(),
    })
}

fn decode_addrs(code: u16, data: &[u8]) -> Result<Vec<Ipv6Addr>, Dhcp6Error> {
    if data.len() % 16 != 0 {
        return Err(bad(code, data, "a multiple of 16 (IPv6 addresses)"));
    }
    Ok(data
        .chunks_exact(16)
        .filter_map(|c| addr_at(c, 0))
        .collect())
}

fn decode_names_in(code: u16, data: &[u8]) -> Result<Vec<String>, Dhcp6Error> {
    decode_names(data).map_err(|error| Dhcp6Error::BadName { code, error })
}

fn decode_u32(code: u16, data: &[u8]) -> Result<u32, Dhcp6Error> {
    let b: [u8; 4] = data
        .try_into()
        .map_err(|_| bad(code, data, "4 (seconds as a 32-bit number)"))?;
    Ok(u32::from_be_bytes(b))
}

fn decode_ia_na(data: &[u8]) -> Result<IaNa, Dhcp6Error> {
    let (Some(iaid), Some(t1), Some(t2)) = (u32_at(data, 0), u32_at(data, 4), u32_at(data, 8))
    else {
        return Err(bad(code::IA_NA, data, "at least 12 (IAID, T1, T2)"));
    };
    let mut ia = IaNa {
        iaid,
        t1,
        t2,
        addresses: Vec::new(),
        status: None,
    };
    for (c, opt) in split_options(data.get(12..).unwrap_or(&[]))? {
        match c {
            code::IAADDR => {
                let (Some(addr), Some(preferred), Some(valid)) =
                    (addr_at(opt, 0), u32_at(opt, 16), u32_at(opt, 20))
                else {
                    return Err(bad(code::IAADDR, opt, "at least 24 (address, lifetimes)"));
                };
                let mut status = None;
                for (c, o) in split_options(opt.get(24..).unwrap_or(&[]))? {
                    if c == code::STATUS_CODE && status.is_none() {
                        status = Some(decode_status(o)?);
                    }
                }
                ia.addresses.push(IaAddr {
                    addr,
                    preferred,
                    valid,
                    status,
                });
            }
            code::STATUS_CODE if ia.status.is_none() => ia.status = Some(decode_status(opt)?),
            _ => {}
        }
    }
    Ok(ia)
}

fn decode_ntp(data: &[u8], out: &mut Vec<NtpServer6>) -> Result<(), Dhcp6Error> {
    for (sub, d) in split_options(data)? {
        let addr = || {
            addr_at(d, 0).filter(|_| d.len() == 16).ok_or(bad(
                code::NTP_SERVER,
                d,
                "16 (an IPv6 address) for suboptions 1 and 2",
            ))
        };
        match sub {
            ntp_suboption::SRV_ADDR => out.push(NtpServer6::Address(addr()?)),
            ntp_suboption::MC_ADDR => out.push(NtpServer6::Multicast(addr()?)),
            ntp_suboption::SRV_FQDN => out.extend(
                decode_names_in(code::NTP_SERVER, d)?
                    .into_iter()
                    .map(NtpServer6::Fqdn),
            ),
            _ => {}
        }
    }
    Ok(())
}

fn decode_options(field: &[u8]) -> Result<Options, Dhcp6Error> {
    let mut o = Options::default();
    for (c, data) in split_options(field)? {
        match c {
            code::CLIENT_ID if o.client_id.is_none() => o.client_id = Some(data.to_vec()),
            code::SERVER_ID if o.server_id.is_none() => o.server_id = Some(data.to_vec()),
            code::CLIENT_ID | code::SERVER_ID => {}
            code::IA_NA => o.ia_na.push(decode_ia_na(data)?),
            code::ORO => {
                if data.len() % 2 != 0 {
                    return Err(bad(c, data, "a multiple of 2 (option codes)"));
                }
                o.oro.extend(
                    data.chunks_exact(2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]])),
                );
            }
            code::PREFERENCE => {
                let [p] = data else {
                    return Err(bad(c, data, "1 (the preference)"));
                };
                o.preference.get_or_insert(*p);
            }
            code::ELAPSED_TIME => {
                let [a, b] = data else {
                    return Err(bad(c, data, "2 (hundredths of a second)"));
                };
                o.elapsed_time.get_or_insert(u16::from_be_bytes([*a, *b]));
            }
            code::STATUS_CODE => {
                let s = decode_status(data)?;
                o.status.get_or_insert(s);
            }
            code::DNS_SERVERS => o.dns.extend(decode_addrs(c, data)?),
            code::DOMAIN_LIST => o.search.extend(decode_names_in(c, data)?),
            code::SNTP_SERVERS => o.sntp.extend(decode_addrs(c, data)?),
            code::NTP_SERVER => decode_ntp(data, &mut o.ntp)?,
            code::SOL_MAX_RT => {
                let t = decode_u32(c, data)?;
                o.sol_max_rt.get_or_insert(t);
            }
            code::INF_MAX_RT => {
                let t = decode_u32(c, data)?;
                o.inf_max_rt.get_or_insert(t);
            }
            _ => o.other.push((c, data.to_vec())),
        }
    }
    Ok(o)
}

mod client;

pub use client::{Action, Client, Lease6, Mode};

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod tests;
