//! A stub resolver's codec (RFC 1035), without I/O: the query for one name
//! and one address family, and what the answer means.
//!
//! Why Wyrcan has its own: the boot environment is a static musl binary,
//! and musl's `getaddrinfo` asks for A and AAAA together and fails the whole
//! lookup when the server answers either one REFUSED or SERVFAIL. Data-centre
//! resolvers do exactly that for the family they do not serve, so a registry
//! with a perfectly good IPv4 address would not resolve. PID 1 instead asks
//! each family on its own ([`query`]) and uses whichever [`parse_response`]
//! turns into addresses; the caller owns the sockets, the retries and the
//! choice of server ([`parse_resolv_conf`]).
//!
//! Queries carry no EDNS0 record: servers that choke on it still exist, and
//! A/AAAA answers for one name fit in 512 bytes; when they do not, the
//! server sets TC and [`DnsError::Truncated`] tells the caller to ask again
//! over TCP ([`tcp_frame`]).
//!
//! Responses are untrusted network input parsed inside PID 1: every length
//! is checked, names are decompressed with the bounds of [`name::read`], a
//! CNAME chain is followed at most [`MAX_CNAME_HOPS`] times, and nothing is
//! allocated from a count the message states: the record counts only bound
//! loops that each consume bytes of the message, so memory stays within a
//! small multiple of the message's size (at most 64 KiB, over TCP).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub mod name;
mod resolv_conf;

pub use name::NameError;
pub use resolv_conf::{parse_resolv_conf, ResolvConf, MAX_NAMESERVERS, MAX_SEARCH};

/// The port DNS servers listen on, over UDP and TCP.
pub const PORT: u16 = 53;
/// CNAME records followed from the name asked for before giving up.
pub const MAX_CNAME_HOPS: usize = 8;

/// The fixed header (RFC 1035 §4.1.1).
const HEADER_LEN: usize = 12;
/// Header flag bits.
const QR: u16 = 0x8000;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
/// Class IN.
const CLASS_IN: u16 = 1;
/// Record type CNAME.
const TYPE_CNAME: u16 = 5;

/// The record type asked for: one address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    /// IPv4 addresses (type 1).
    A,
    /// IPv6 addresses (type 28, RFC 3596).
    Aaaa,
}

impl QType {
    /// The type's number on the wire.
    pub fn code(self) -> u16 {
        match self {
            QType::A => 1,
            QType::Aaaa => 28,
        }
    }

    /// The address in a record's data, if it has the right length for this type.
    fn address(self, rdata: &[u8]) -> Option<IpAddr> {
        match self {
            QType::A => <[u8; 4]>::try_from(rdata)
                .ok()
                .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            QType::Aaaa => <[u8; 16]>::try_from(rdata)
                .ok()
                .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        }
    }
}

/// What a server said about a name and a type: the outcomes a resolver
/// acts on. Server failures are errors ([`DnsError`]) instead, so that the
/// caller can try the next server or the other family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The addresses, in the server's order, after any CNAMEs.
    Addresses(Vec<IpAddr>),
    /// The name exists but has no record of this type (NOERROR, no data):
    /// the other family may still have some.
    NoData,
    /// The name does not exist (NXDOMAIN): no family will have it.
    NxDomain,
}

/// Why a query could not be built or a response not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name asked for is not a valid host name.
    #[error("{name:?} cannot be looked up in dns: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Shorter than the 12-byte header.
    #[error("dns response is {0} bytes: expected at least 12 (the header)")]
    Short(usize),
    /// Another query's answer (or a spoofed one).
    #[error("dns response has id {got:#06x}: expected {expected:#06x}")]
    IdMismatch {
        /// The id we sent.
        expected: u16,
        /// The id received.
        got: u16,
    },
    /// The QR bit is clear or the opcode is not a standard query.
    #[error("dns message is not a response to a standard query (flags {0:#06x})")]
    NotAResponse(u16),
    /// The question section does not repeat what we asked.
    #[error("dns response answers another question than the one asked")]
    QuestionMismatch,
    /// TC: the answer did not fit in the UDP datagram; ask again over TCP.
    #[error("dns response is truncated (TC set): ask again over tcp")]
    Truncated,
    /// REFUSED (5): this server will not answer this; try another server
    /// or the other address family.
    #[error("dns server refused the query")]
    Refused,
    /// SERVFAIL (2): the server could not get an answer.
    #[error("dns server failed to answer (servfail)")]
    ServFail,
    /// Any other error code: FORMERR (1), NOTIMP (4) and the rest.
    #[error("dns server answered with error code {0}")]
    Rcode(u8),
    /// A record runs past the end of the message or has a data length
    /// that its type does not allow.
    #[error("dns response is malformed: {what} at byte {at}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// Where.
        at: usize,
    },
    /// A name in the response could not be read.
    #[error("dns response has a bad name: {0}")]
    Name(#[from] NameError),
    /// More than [`MAX_CNAME_HOPS`] CNAMEs (a loop, most likely).
    #[error("dns response has a chain of more than {MAX_CNAME_HOPS} cnames")]
    CnameChain,
}

/// The query for `name`'s records of type `qtype`: one question, recursion
/// desired. `id` should be random (it and the source port are all that
/// tell a real answer from a spoofed one).
pub fn query(id: u16, name: &str, qtype: QType) -> Result<Vec<u8>, DnsError> {
    let bare = name::validate(name).map_err(|reason| DnsError::InvalidName {
        name: name.to_owned(),
        reason,
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + name::MAX_WIRE_LEN + 4);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&RD.to_be_bytes());
    // One question; no answer, authority or additional records.
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    name::write(&mut out, bare);
    out.extend_from_slice(&qtype.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// A message as sent over TCP (RFC 1035 §4.2.2): a 2-byte length, then the
/// message. `None` for a message over 65535 bytes, which TCP cannot carry
/// (and a [`query`] never is).
pub fn tcp_frame(message: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(message.len()).ok()?;
    let mut out = Vec::with_capacity(message.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Some(out)
}

/// The first message in bytes read from a TCP connection, once all of it
/// has arrived; `None` while more is needed.
pub fn tcp_unframe(bytes: &[u8]) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    bytes.get(2..2 + len)
}

/// What the response `bytes` to [`query`]`(id, name, qtype)` says.
///
/// Checks that it is a response with our id and our question, then reads
/// the answer section: the addresses of `name`, or of the name its CNAME
/// chain in the answer leads to.
pub fn parse_response(bytes: &[u8], id: u16, name: &str, qtype: QType) -> Result<Answer, DnsError> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or(DnsError::Short(bytes.len()))?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let got = word(0);
    if got != id {
        return Err(DnsError::IdMismatch { expected: id, got });
    }
    let flags = word(2);
    // Opcode (bits 11-14) 0 is QUERY.
    if flags & QR == 0 || flags & 0x7800 != 0 {
        return Err(DnsError::NotAResponse(flags));
    }
    let rcode = (flags & 0x000f) as u8;
    let (qdcount, ancount) = (word(4), word(6));

    let mut pos = HEADER_LEN;
    match qdcount {
        // Some servers leave the question out of an error (FORMERR,
        // REFUSED); nothing in such an answer is used, so take its code.
        0 if !matches!(rcode, 0 | 3) => {}
        1 => {
            let (qname, end) = name::read(bytes, pos)?;
            let fixed = bytes.get(end..end + 4).ok_or(DnsError::Malformed {
                what: "question",
                at: pos,
            })?;
            let qt = u16::from_be_bytes([fixed[0], fixed[1]]);
            let qc = u16::from_be_bytes([fixed[2], fixed[3]]);
            if !name::same(&qname, name) || qt != qtype.code() || qc != CLASS_IN {
                return Err(DnsError::QuestionMismatch);
            }
            pos = end + 4;
        }
        _ => return Err(DnsError::QuestionMismatch),
    }
    if flags & TC != 0 {
        return Err(DnsError::Truncated);
    }
    match rcode {
        0 => {}
        2 => return Err(DnsError::ServFail),
        3 => return Ok(Answer::NxDomain),
        5 => return Err(DnsError::Refused),
        other => return Err(DnsError::Rcode(other)),
    }

    let records = answers(bytes, pos, ancount, qtype)?;
    let mut current = name.to_owned();
    let mut hops = 0;
    loop {
        let addrs: Vec<IpAddr> = records
            .iter()
            .filter(|r| name::same(&r.owner, &current))
            .filter_map(|r| match r.data {
                Data::Address(a) => Some(a),
                Data::Cname(_) => None,
            })
            .collect();
        if !addrs.is_empty() {
            return Ok(Answer::Addresses(addrs));
        }
        let next = records.iter().find_map(|r| match &r.data {
            Data::Cname(target) if name::same(&r.owner, &current) => Some(target),
            _ => None,
        });
        // A CNAME whose target the answer does not cover: the server found
        // nothing of this type at the end of the chain.
        let Some(next) = next else {
            return Ok(Answer::NoData);
        };
        hops += 1;
        if hops > MAX_CNAME_HOPS {
            return Err(DnsError::CnameChain);
        }
        current = next.clone();
    }
}

/// An answer record this resolver can use.
struct Record {
    owner: String,
    data: Data,
}

enum Data {
    Address(IpAddr),
    Cname(String),
}

/// Reads `count` answer records from `pos`, keeping the addresses of type
/// `qtype` and CNAMEs of class IN; others (RRSIG, the other family) are skipped.
fn answers(
    bytes: &[u8],
    mut pos: usize,
    count: u16,
    qtype: QType,
) -> Result<Vec<Record>, DnsError> {
    // Each record takes at least 11 bytes of the message, so this loop
    // and the vector stay within the message's size whatever count says.
    let mut records = Vec::new();
    for _ in 0..count {
        let (owner, end) = name::read(bytes, pos)?;
        let malformed = |what| DnsError::Malformed { what, at: pos };
        let fixed = bytes.get(end..end + 10).ok_or(malformed("record header"))?;
        let word = |i: usize| u16::from_be_bytes([fixed[i], fixed[i + 1]]);
        let (rtype, class, rdlen) = (word(0), word(2), usize::from(word(8)));
        let start = end + 10;
        let rdata = bytes
            .get(start..start + rdlen)
            .ok_or(malformed("record data"))?;
        if class == CLASS_IN {
            if rtype == qtype.code() {
                let addr = qtype
                    .address(rdata)
                    .ok_or(malformed("address of the wrong length"))?;
                records.push(Record {
                    owner,
                    data: Data::Address(addr),
                });
            } else if rtype == TYPE_CNAME {
                let (target, target_end) = name::read(bytes, start)?;
                if target_end > start + rdlen {
                    return Err(malformed("cname longer than its record"));
                }
                records.push(Record {
                    owner,
                    data: Data::Cname(target),
                });
            }
        }
        pos = start + rdlen;
    }
    Ok(records)
}

#[cfg(test)]
mod tests;
