//! The `ip=` grammar: which of the kernel's and dracut's forms a value is
//! in, and each field checked with an error that names the field.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    default_prefix_len, mask_to_prefix, parse_mac, IpConfig, IpError, LinkSettings, StaticIp,
    StaticIp6,
};

/// What the autoconf field (or a whole one-word `ip=`) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Off,
    Dhcp,
    Dhcp6,
    Auto6,
}

impl Method {
    fn is_v6(self) -> bool {
        matches!(self, Method::Dhcp6 | Method::Auto6)
    }
}

/// Maps an autoconf word to a method; `Err` carries the "unsupported" text
/// for words the kernel or dracut know but Wyrcan does not do.
fn method(word: &str) -> Option<Result<Method, &'static str>> {
    Some(Ok(match word {
        "off" | "none" => Method::Off,
        // single-dhcp ("DHCP on every interface at once, first answer
        // wins") is what Wyrcan's dhcp does anyway.
        "dhcp" | "on" | "any" | "single-dhcp" => Method::Dhcp,
        "dhcp6" => Method::Dhcp6,
        "auto6" => Method::Auto6,
        "bootp" | "rarp" | "both" => {
            return Some(Err(
                "BOOTP and RARP are not supported: use dhcp (DHCP servers answer BOOTP clients, not the reverse)",
            ))
        }
        "either6" => {
            return Some(Err(
                "either6 is not supported: choose auto6 (router advertisements) or dhcp6",
            ))
        }
        "link6" => {
            return Some(Err(
                "link6 is not supported: every link is brought up with its link-local address anyway; leave this ip= out",
            ))
        }
        "ibft" => return Some(Err("iBFT is not supported: use dhcp or a static address")),
        _ => return None,
    }))
}

/// The longest interface name Linux allows (`IFNAMSIZ` - 1).
const IFNAME_MAX: usize = 15;
/// The longest hostname the kernel keeps (`__NEW_UTS_LEN`).
const HOSTNAME_MAX: usize = 64;
/// `<7 fixed fields>:<mtu>:<6 MAC fields>`, the longest form.
const MAX_FIELDS: usize = 14;
/// The kernel's form without MTU and MAC: 7 fixed fields, 2 DNS, 1 NTP.
const MAX_FIELDS_DNS: usize = 10;
/// The smallest MTU the kernel lets an IPv4 interface have (`ETH_MIN_MTU`).
pub(super) const MTU_MIN: u32 = 68;
/// The smallest MTU of a link that carries IPv6 (RFC 8200 §5).
const MTU_MIN_V6: u32 = 1280;
/// The largest MTU netdevices take (`ETH_MAX_MTU`).
pub(super) const MTU_MAX: u32 = 65535;

/// Whether `name` can be a Linux interface name (what `dev_valid_name()` accepts).
pub(super) fn is_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Splits at `:` outside brackets, so `[2001:db8::1]` stays one field;
/// `None` for unbalanced or nested brackets.
fn split_fields(s: &str) -> Option<Vec<&str>> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut in_brackets = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'[' if in_brackets => return None,
            b'[' => in_brackets = true,
            b']' if !in_brackets => return None,
            b']' => in_brackets = false,
            b':' if !in_brackets => {
                // `:` is ASCII, so `i` is a char boundary.
                fields.push(s.get(start..i)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_brackets {
        return None;
    }
    fields.push(s.get(start..)?);
    Some(fields)
}

/// An address field: IPv4, or IPv6 in brackets. `Ok(None)` when empty or
/// unspecified (`0.0.0.0`, `[]`, `[::]`), which the kernel reads as "not given".
fn address(value: &str) -> Result<Option<IpAddr>, ()> {
    if value.is_empty() {
        return Ok(None);
    }
    let a = match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some("") => return Ok(None),
        Some(v6) => IpAddr::V6(v6.parse().map_err(|_| ())?),
        None => IpAddr::V4(value.parse().map_err(|_| ())?),
    };
    Ok((!a.is_unspecified()).then_some(a))
}

/// Something that can only be an address (the first field of the kernel's form).
pub(super) fn looks_like_address(value: &str) -> bool {
    value.starts_with('[') || value.parse::<Ipv4Addr>().is_ok()
}

/// The parse of one value: errors name the whole value.
struct Parser<'a> {
    input: &'a str,
}

pub(super) const ANY_ADDRESS: &str =
    "an IPv4 address (e.g. 192.168.1.10) or an IPv6 address in brackets (e.g. [2001:db8::10])";
pub(super) const V4_ADDRESS: &str = "an IPv4 address like the client address (e.g. 192.168.1.1)";
pub(super) const V6_ADDRESS: &str =
    "an IPv6 address in brackets like the client address (e.g. [2001:db8::1])";
pub(super) const V4_DNS: &str =
    "an IPv4 address like the client address (give IPv6 DNS servers as nameserver=[2001:db8::53])";
const DNS_WITH_DHCP: &str =
    "DNS servers in ip= apply to a static address only: with DHCP, add nameserver=<ip> instead";

impl Parser<'_> {
    fn unsupported(&self, what: &'static str) -> IpError {
        IpError::Unsupported {
            input: self.input.to_string(),
            what,
        }
    }

    fn bad_address(&self, field: &'static str, value: &str, expected: &'static str) -> IpError {
        IpError::Address {
            input: self.input.to_string(),
            field,
            value: value.to_string(),
            expected,
        }
    }

    fn autoconf(&self, word: &str) -> Result<Option<Method>, IpError> {
        if word.is_empty() {
            return Ok(None);
        }
        match method(word) {
            Some(Ok(m)) => Ok(Some(m)),
            Some(Err(what)) => Err(self.unsupported(what)),
            None => Err(IpError::Autoconf {
                input: self.input.to_string(),
                value: word.to_string(),
            }),
        }
    }

    fn iface(&self, name: &str) -> Result<Option<String>, IpError> {
        if name.is_empty() {
            return Ok(None);
        }
        if !is_ifname(name) {
            return Err(IpError::Interface {
                input: self.input.to_string(),
                value: name.to_string(),
            });
        }
        Ok(Some(name.to_string()))
    }

    fn addr(&self, field: &'static str, value: &str) -> Result<Option<IpAddr>, IpError> {
        address(value).map_err(|()| self.bad_address(field, value, ANY_ADDRESS))
    }

    fn v4(
        &self,
        field: &'static str,
        value: &str,
        why: &'static str,
    ) -> Result<Option<Ipv4Addr>, IpError> {
        match self.addr(field, value)? {
            None => Ok(None),
            Some(IpAddr::V4(a)) => Ok(Some(a)),
            Some(IpAddr::V6(_)) => Err(self.bad_address(field, value, why)),
        }
    }

    /// `<mtu>[:<macaddr>]`, the MAC address as six fields (the `:` split them).
    fn link(&self, tail: &[&str], v6: bool) -> Result<LinkSettings, IpError> {
        let Some((mtu, mac)) = tail.split_first() else {
            return Ok(LinkSettings::default());
        };
        let min = if v6 { MTU_MIN_V6 } else { MTU_MIN };
        let mtu = match *mtu {
            "" => None,
            m => Some(
                m.parse::<u32>()
                    .ok()
                    .filter(|n| {
                        m.bytes().all(|b| b.is_ascii_digit()) && (min..=MTU_MAX).contains(n)
                    })
                    .ok_or_else(|| IpError::Mtu {
                        input: self.input.to_string(),
                        value: m.to_string(),
                        min,
                    })?,
            ),
        };
        let mac = match mac {
            [] | [""] => None,
            fields => {
                let joined = fields.join(":");
                Some(parse_mac(&joined).ok_or_else(|| IpError::Mac {
                    input: self.input.to_string(),
                    value: joined,
                })?)
            }
        };
        Ok(LinkSettings { mtu, mac })
    }

    fn dynamic(
        &self,
        m: Method,
        iface: Option<String>,
        link: LinkSettings,
    ) -> Result<IpConfig, IpError> {
        if !link.is_empty() {
            if m == Method::Off {
                return Err(self.unsupported(
                    "the MTU and MAC address fields do nothing without a configuration: leave them out",
                ));
            }
            if iface.is_none() {
                return Err(self.unsupported(
                    "the MTU and MAC address fields need an interface name, e.g. ip=eth0:dhcp:9000",
                ));
            }
        }
        Ok(match m {
            Method::Off => IpConfig::Off,
            Method::Dhcp => IpConfig::Dhcp { iface, link },
            Method::Dhcp6 => IpConfig::Dhcp6 { iface, link },
            Method::Auto6 => IpConfig::Auto6 { iface, link },
        })
    }

    /// dracut's `<interface>:<autoconf>[:<mtu>[:<macaddr>]]`.
    fn interface_form(&self, fields: &[&str]) -> Result<IpConfig, IpError> {
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        let dev = self.iface(field(0))?;
        // dracut: "Empty autoconf values default to dhcp".
        let m = self.autoconf(field(1))?.unwrap_or(Method::Dhcp);
        let link = self.link(fields.get(2..).unwrap_or(&[]), m.is_v6())?;
        self.dynamic(m, dev, link)
    }

    /// The kernel's `<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:…`
    /// with dracut's additions: bracketed IPv6 addresses and `<mtu>:<macaddr>` at the end.
    fn kernel_form(&self, fields: &[&str]) -> Result<IpConfig, IpError> {
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        let client = self.addr("client address", field(0))?;
        // dracut: the peer "may be followed by a slash and a decimal number".
        let server = field(1);
        let server = match server.rsplit_once('/') {
            Some((a, len))
                if !len.is_empty() && len.len() <= 3 && len.bytes().all(|b| b.is_ascii_digit()) =>
            {
                a
            }
            _ => server,
        };
        self.addr("server address", server)?;
        let gateway = self.addr("gateway", field(2))?;
        let netmask = field(3);
        let hostname = field(4);
        let dev = self.iface(field(5))?;
        let m = self.autoconf(field(6))?;
        let v6 = matches!(client, Some(IpAddr::V6(_))) || m.is_some_and(Method::is_v6);

        // dracut tells `<dns0>:<dns1>` from `<mtu>:<macaddr>` by the first:
        // digits alone are an MTU; empty then a MAC address is a MAC address.
        let tail = fields.get(7..).unwrap_or(&[]);
        let mtu_first = tail
            .first()
            .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
        let mac_only = tail.len() >= 2
            && tail.first() == Some(&"")
            && parse_mac(&tail[1..].join(":")).is_some();
        // (field name, as written, address): the family is checked once the
        // client address's is known.
        let mut dns: Vec<(&'static str, &str, IpAddr)> = Vec::new();
        let mut link = LinkSettings::default();
        if mtu_first || mac_only {
            link = self.link(tail, v6)?;
        } else {
            if fields.len() > MAX_FIELDS_DNS {
                return Err(IpError::TooManyFields {
                    input: self.input.to_string(),
                    count: fields.len(),
                });
            }
            for (i, name) in [(7, "first DNS server"), (8, "second DNS server")] {
                if let Some(a) = self.addr(name, field(i))? {
                    dns.push((name, field(i), a));
                }
            }
            self.addr("NTP server", field(9))?;
        }

        let (m, address) = match (m, client) {
            (Some(m @ (Method::Dhcp | Method::Dhcp6 | Method::Auto6)), _) => (m, None),
            (None, None) => (Method::Dhcp, None),
            (Some(Method::Off), None) => (Method::Off, None),
            (Some(Method::Off) | None, Some(a)) => (Method::Off, Some(a)),
        };
        let Some(address) = address else {
            if !dns.is_empty() {
                return Err(self.unsupported(DNS_WITH_DHCP));
            }
            return self.dynamic(m, dev, link);
        };
        if hostname.len() > HOSTNAME_MAX {
            return Err(IpError::Hostname {
                input: self.input.to_string(),
                len: hostname.len(),
            });
        }
        let hostname = (!hostname.is_empty()).then(|| hostname.to_string());
        match address {
            IpAddr::V4(address) => {
                let prefix_len = match netmask {
                    "" => default_prefix_len(address),
                    mask => parse_netmask(mask).ok_or_else(|| IpError::Netmask {
                        input: self.input.to_string(),
                        value: mask.to_string(),
                    })?,
                };
                let gateway = self.v4("gateway", field(2), V4_ADDRESS)?;
                let dns = dns
                    .iter()
                    .map(|&(name, value, a)| match a {
                        IpAddr::V4(a) => Ok(a),
                        IpAddr::V6(_) => Err(self.bad_address(name, value, V4_DNS)),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(IpConfig::Static(StaticIp {
                    address,
                    prefix_len,
                    gateway,
                    hostname,
                    iface: dev,
                    dns,
                    link,
                }))
            }
            IpAddr::V6(address) => {
                let gateway = match gateway {
                    None => None,
                    Some(IpAddr::V6(g)) => Some(g),
                    Some(IpAddr::V4(_)) => {
                        return Err(self.bad_address("gateway", field(2), V6_ADDRESS))
                    }
                };
                let prefix_len = parse_prefix6(netmask).ok_or_else(|| IpError::Prefix6 {
                    input: self.input.to_string(),
                    value: netmask.to_string(),
                })?;
                Ok(IpConfig::Static6(StaticIp6 {
                    address,
                    prefix_len,
                    gateway,
                    hostname,
                    iface: dev,
                    dns: dns.iter().map(|&(_, _, a)| a).collect(),
                    link,
                }))
            }
        }
    }
}

/// Parses one `ip=` value (without the `ip=`).
///
/// Accepted forms:
/// - `dhcp`, `on`, `any`, `single-dhcp` → [`IpConfig::Dhcp`]; `dhcp6` →
///   [`IpConfig::Dhcp6`]; `auto6` → [`IpConfig::Auto6`]; `off`, `none` or
///   empty → [`IpConfig::Off`];
/// - dracut's `<interface>:<autoconf>[:<mtu>[:<macaddr>]]`, the MAC address
///   with colons (`eth0:dhcp:9000:52:54:00:12:34:56`);
/// - the kernel's `<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>`,
///   where any trailing fields may be left out and any field may be empty,
///   or with dracut's `:<mtu>:<macaddr>` in place of the DNS fields.
///   `<server-ip>` and `<ntp0-ip>` are checked but unused. `<netmask>` may be a prefix
///   length. With a client address and `off`/`none`/empty autoconf the
///   result is [`IpConfig::Static`]; without one, `off`/`none` is
///   [`IpConfig::Off`] and empty autoconf means DHCP, as in the kernel.
///   With DHCP the hostname, gateway and netmask fields are ignored (the
///   server supplies them);
/// - the same with IPv6 addresses in brackets, as dracut writes them:
///   `[2001:db8::2]::[2001:db8::1]:64:box:eth0:none` → [`IpConfig::Static6`]
///   (the netmask field is the prefix length, and required).
pub fn parse(s: &str) -> Result<IpConfig, IpError> {
    if s.is_empty() {
        // The kernel: "If no static IP is given, turn off autoconfig".
        return Ok(IpConfig::Off);
    }
    let p = Parser { input: s };
    let fields = split_fields(s).ok_or_else(|| IpError::Brackets {
        input: s.to_string(),
    })?;
    if fields.len() > MAX_FIELDS {
        return Err(IpError::TooManyFields {
            input: s.to_string(),
            count: fields.len(),
        });
    }
    if let [word] = fields[..] {
        return match method(word) {
            Some(Ok(m)) => p.dynamic(m, None, LinkSettings::default()),
            Some(Err(what)) => Err(p.unsupported(what)),
            None => Err(IpError::Keyword {
                input: s.to_string(),
            }),
        };
    }
    // The kernel's form starts with an address, which an interface name
    // never is; dracut also tells them apart by a method in the second
    // field, where the kernel's form has the server address.
    let second_is_method = fields.get(1).is_some_and(|f| method(f).is_some());
    if !looks_like_address(fields[0]) && (fields.len() <= 4 || second_is_method) {
        return p.interface_form(&fields);
    }
    p.kernel_form(&fields)
}

/// A dotted netmask or a prefix length (`24` or `/24`).
fn parse_netmask(s: &str) -> Option<u8> {
    if let Ok(mask) = s.parse::<Ipv4Addr>() {
        return mask_to_prefix(mask);
    }
    parse_prefix(s, 32)
}

/// The prefix length of a static IPv6 address (`64` or `/64`).
fn parse_prefix6(s: &str) -> Option<u8> {
    parse_prefix(s, 128)
}

fn parse_prefix(s: &str, max: u8) -> Option<u8> {
    let digits = s.strip_prefix('/').unwrap_or(s);
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u8>().ok().filter(|&p| p <= max)
}
