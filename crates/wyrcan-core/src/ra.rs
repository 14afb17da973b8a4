//! ICMPv6 router discovery without I/O (RFC 4861 §4.1–4.2, §4.6; RFC 8106):
//! the Router Solicitation PID 1 sends, the Router Advertisement it gets
//! back parsed into what an IPv6 boot needs (whether to run DHCPv6, the
//! prefixes, the MTU, DNS servers and search domains), and the SLAAC
//! address the kernel will form from a prefix.
//!
//! The kernel does SLAAC by itself on every link that is up; Wyrcan reads
//! advertisements to learn what the kernel does not tell userspace in one
//! place (the M and O flags that say DHCPv6 is expected, RDNSS and DNSSL
//! for `/etc/resolv.conf`). An advertisement is untrusted network input
//! parsed inside PID 1, where a panic is a kernel panic: every length is
//! checked, and a malformed message is an error, never a panic.
//!
//! DNS names here (DNSSL, and DHCPv6's search list and NTP FQDNs through
//! [`decode_names`]) are RFC 1035 §3.1 wire names without compression.

use std::net::Ipv6Addr;

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// Where routers listen for solicitations: all-routers, link-local scope.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// Fixed part of a Router Advertisement: type, code, checksum, hop limit,
/// flags, router lifetime, reachable time, retrans timer.
const RA_HEADER_LEN: usize = 16;

/// Neighbor Discovery option types this module reads (RFC 4861 §4.6, RFC 8106 §5).
pub mod option {
    /// Source link-layer address.
    pub const SOURCE_LLADDR: u8 = 1;
    /// Prefix information.
    pub const PREFIX_INFO: u8 = 3;
    /// MTU.
    pub const MTU: u8 = 5;
    /// Recursive DNS servers.
    pub const RDNSS: u8 = 25;
    /// DNS search list.
    pub const DNSSL: u8 = 31;
}

/// One Prefix Information option (RFC 4861 §4.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix (bits past `len` are as sent, usually zero).
    pub prefix: Ipv6Addr,
    /// Its length in bits, 0 to 128.
    pub len: u8,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: the prefix may be used for SLAAC.
    pub autonomous: bool,
    /// Valid lifetime in seconds (`u32::MAX` is infinite).
    pub valid: u32,
    /// Preferred lifetime in seconds (`u32::MAX` is infinite).
    pub preferred: u32,
}

/// A Router Advertisement (RFC 4861 §4.2), with the options a booting host uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterAdvert {
    /// Cur Hop Limit (0: unspecified).
    pub hop_limit: u8,
    /// M: addresses are available by DHCPv6.
    pub managed: bool,
    /// O: other configuration (DNS, NTP) is available by DHCPv6.
    pub other: bool,
    /// Router lifetime in seconds; 0 means "not a default router".
    pub router_lifetime: u16,
    /// Reachable time in milliseconds (0: unspecified).
    pub reachable: u32,
    /// Retransmission timer in milliseconds (0: unspecified).
    pub retrans: u32,
    /// The link MTU (option 5).
    pub mtu: Option<u32>,
    /// Prefix Information options, in order.
    pub prefixes: Vec<PrefixInfo>,
    /// Recursive DNS servers with their lifetime in seconds, in order (RFC 8106 option 25).
    pub rdnss: Vec<(Ipv6Addr, u32)>,
    /// Search domains with their lifetime in seconds, in order (RFC 8106 option 31).
    pub dnssl: Vec<(String, u32)>,
    /// The router's Ethernet address (option 1).
    pub source_lladdr: Option<[u8; 6]>,
}

/// Why bytes are not a Router Advertisement this host can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaError {
    /// Shorter than the fixed part.
    #[error("router advertisement is {len} bytes: expected at least 16")]
    Truncated {
        /// The length received.
        len: usize,
    },
    /// Another ICMPv6 message.
    #[error("icmpv6 message has type {kind} code {code}: expected a router advertisement (type 134, code 0)")]
    NotAdvert {
        /// The ICMPv6 type.
        kind: u8,
        /// The ICMPv6 code.
        code: u8,
    },
    /// An option with length 0, which RFC 4861 §4.6 says to discard the
    /// message for (it would make a parser loop forever).
    #[error(
        "router advertisement option {kind} at byte {offset} has length 0: the message is invalid"
    )]
    ZeroLengthOption {
        /// The option type.
        kind: u8,
        /// Where the option starts in the message.
        offset: usize,
    },
    /// An option whose length runs past the end of the message.
    #[error("router advertisement option {kind} at byte {offset} runs past the end of the message: the message is truncated")]
    TruncatedOption {
        /// The option type.
        kind: u8,
        /// Where the option starts in the message.
        offset: usize,
    },
    /// A known option with a length its type does not allow.
    #[error("router advertisement option {kind} is {len} bytes long: expected {expected}")]
    BadOptionLength {
        /// The option type.
        kind: u8,
        /// Its length in bytes.
        len: usize,
        /// What the option's type needs, in words.
        expected: &'static str,
    },
    /// A Prefix Information option with a prefix length over 128.
    #[error("router advertisement prefix length {0} is over 128")]
    PrefixLength(u8),
    /// A DNS Search List that is not a list of wire-format names.
    #[error("router advertisement search list: {0}")]
    SearchList(#[from] NameError),
}

/// Why bytes are not a list of uncompressed DNS names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A label runs past the end of the data, or the last name is not ended by a zero byte.
    #[error("a domain name is truncated")]
    Truncated,
    /// A length byte of 64 or more: a compression pointer or a reserved label type.
    #[error("a domain name has label length byte {0:#04x}: compression and extended labels are not allowed here")]
    BadLabel(u8),
    /// More than 255 bytes in wire form (RFC 1035 §2.3.4).
    #[error("a domain name is longer than 255 bytes")]
    TooLong,
    /// A byte that does not belong in a host name: names go into
    /// `/etc/resolv.conf`, where a space or newline would change its meaning.
    #[error("a domain name has the byte {0:#04x}: expected letters, digits, '-' and '_'")]
    BadByte(u8),
}

/// The longest domain name in wire form (RFC 1035 §2.3.4).
const NAME_MAX: usize = 255;

/// Decodes a list of uncompressed wire-format DNS names (RFC 1035 §3.1),
/// as DHCPv6's Domain Search List (RFC 3646) and the RA DNSSL (RFC 8106)
/// carry them. Empty names (a lone zero byte) are skipped: they are the
/// padding DNSSL ends with. Names come out dotted, without the trailing dot.
pub fn decode_names(mut data: &[u8]) -> Result<Vec<String>, NameError> {
    let mut names = Vec::new();
    while !data.is_empty() {
        let mut name = String::new();
        let mut wire_len = 0;
        loop {
            let (&len, rest) = data.split_first().ok_or(NameError::Truncated)?;
            wire_len += 1 + usize::from(len);
            if wire_len > NAME_MAX {
                return Err(NameError::TooLong);
            }
            if len == 0 {
                data = rest;
                break;
            }
            if len >= 64 {
                return Err(NameError::BadLabel(len));
            }
            let label = rest.get(..usize::from(len)).ok_or(NameError::Truncated)?;
            if let Some(&b) = label
                .iter()
                .find(|&&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            {
                return Err(NameError::BadByte(b));
            }
            if !name.is_empty() {
                name.push('.');
            }
            // Checked ASCII above.
            name.extend(label.iter().map(|&b| char::from(b)));
            data = rest.get(usize::from(len)..).unwrap_or(&[]);
        }
        if !name.is_empty() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Encodes names in wire form, the inverse of [`decode_names`] (for tests
/// and for building messages). Labels longer than 63 bytes are cut.
pub fn encode_names(names: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        for label in name.split('.').filter(|l| !l.is_empty()) {
            let label = &label.as_bytes()[..label.len().min(63)];
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
    }
    out
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn addr_at(b: &[u8], i: usize) -> Option<Ipv6Addr> {
    let octets: [u8; 16] = b.get(i..i + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}

impl RouterAdvert {
    /// Parses an ICMPv6 Router Advertisement, from its type byte on (what
    /// a raw `IPPROTO_ICMPV6` socket returns). The checksum is not checked:
    /// the kernel already did. Options this host does not use are skipped.
    pub fn parse(msg: &[u8]) -> Result<RouterAdvert, RaError> {
        let header = msg
            .get(..RA_HEADER_LEN)
            .ok_or(RaError::Truncated { len: msg.len() })?;
        if header[0] != ROUTER_ADVERTISEMENT || header[1] != 0 {
            return Err(RaError::NotAdvert {
                kind: header[0],
                code: header[1],
            });
        }
        let mut ra = RouterAdvert {
            hop_limit: header[4],
            managed: header[5] & 0x80 != 0,
            other: header[5] & 0x40 != 0,
            router_lifetime: u16_at(header, 6).unwrap_or(0),
            reachable: u32_at(header, 8).unwrap_or(0),
            retrans: u32_at(header, 12).unwrap_or(0),
            ..RouterAdvert::default()
        };
        let mut offset = RA_HEADER_LEN;
        while let Some(&[kind, units]) = msg.get(offset..offset + 2) {
            if units == 0 {
                return Err(RaError::ZeroLengthOption { kind, offset });
            }
            let len = usize::from(units) * 8;
            let opt = msg
                .get(offset..offset + len)
                .ok_or(RaError::TruncatedOption { kind, offset })?;
            ra.read_option(kind, opt)?;
            offset += len;
        }
        if offset != msg.len() {
            // One stray byte: too short to be an option.
            return Err(RaError::TruncatedOption {
                kind: msg.get(offset).copied().unwrap_or(0),
                offset,
            });
        }
        Ok(ra)
    }

    /// One option, `opt` from its type byte on, a multiple of 8 bytes long.
    fn read_option(&mut self, kind: u8, opt: &[u8]) -> Result<(), RaError> {
        let bad = |expected| RaError::BadOptionLength {
            kind,
            len: opt.len(),
            expected,
        };
        match kind {
            option::SOURCE_LLADDR => {
                // 8 bytes holds an Ethernet address; other link types differ.
                if let Some(mac) = opt.get(2..8).filter(|_| opt.len() == 8) {
                    self.source_lladdr = mac.try_into().ok();
                }
            }
            option::PREFIX_INFO => {
                if opt.len() != 32 {
                    return Err(bad("32 (prefix information)"));
                }
                let len = opt[2];
                if len > 128 {
                    return Err(RaError::PrefixLength(len));
                }
                self.prefixes.push(PrefixInfo {
                    prefix: addr_at(opt, 16).ok_or(bad("32 (prefix information)"))?,
                    len,
                    on_link: opt[3] & 0x80 != 0,
                    autonomous: opt[3] & 0x40 != 0,
                    valid: u32_at(opt, 4).unwrap_or(0),
                    preferred: u32_at(opt, 8).unwrap_or(0),
                });
            }
            option::MTU => {
                if opt.len() != 8 {
                    return Err(bad("8 (mtu)"));
                }
                self.mtu = u32_at(opt, 4);
            }
            option::RDNSS => {
                // 8 bytes of header, then at least one address (RFC 8106 §5.1).
                if opt.len() < 24 || (opt.len() - 8) % 16 != 0 {
                    return Err(bad(
                        "8 plus a non-zero multiple of 16 (dns server addresses)",
                    ));
                }
                let lifetime = u32_at(opt, 4).unwrap_or(0);
                let addrs = opt.get(8..).unwrap_or(&[]);
                self.rdnss.extend(
                    addrs
                        .chunks_exact(16)
                        .filter_map(|c| addr_at(c, 0))
                        .map(|a| (a, lifetime)),
                );
            }
            option::DNSSL => {
                if opt.len() < 16 {
                    return Err(bad("at least 16 (a search list)"));
                }
                let lifetime = u32_at(opt, 4).unwrap_or(0);
                let names = decode_names(opt.get(8..).unwrap_or(&[]))?;
                self.dnssl.extend(names.into_iter().map(|n| (n, lifetime)));
            }
            _ => {}
        }
        Ok(())
    }
}

/// A Router Solicitation (RFC 4861 §4.1), from its type byte on, to send
/// to [`ALL_ROUTERS`] from a raw `IPPROTO_ICMPV6` socket with hop limit 255.
///
/// The checksum is left 0: for raw ICMPv6 sockets the kernel computes it
/// (RFC 3542 §3.1), as it needs the IPv6 source address, which only the
/// kernel picks. `source_lladdr` must be `None` while the host has no
/// address yet (RFC 4861 §4.1: not with the unspecified source address).
pub fn router_solicitation(source_lladdr: Option<[u8; 6]>) -> Vec<u8> {
    let mut out = vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    if let Some(mac) = source_lladdr {
        out.extend_from_slice(&[option::SOURCE_LLADDR, 1]);
        out.extend_from_slice(&mac);
    }
    out
}

/// The address SLAAC forms from a /64 `prefix` and an Ethernet address:
/// the prefix, then the modified EUI-64 interface identifier (RFC 4291
/// appendix A: `ff:fe` in the middle, the universal/local bit flipped).
///
/// This is what the kernel picks with `addr_gen_mode` 0 (its default);
/// stable-privacy (mode 2) or privacy extensions give other addresses, so
/// this is a prediction for tests and logs, not something to configure.
pub fn slaac_address(prefix: Ipv6Addr, mac: [u8; 6]) -> Ipv6Addr {
    let mut o = prefix.octets();
    o[8..].copy_from_slice(&[
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ]);
    Ipv6Addr::from(o)
}

#[cfg(test)]
mod tests;
