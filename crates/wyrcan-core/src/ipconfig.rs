//! The network settings of the kernel command line: `ip=` in the syntax of
//! the kernel's own IP autoconfiguration (`Documentation/admin-guide/nfs/nfsroot.rst`)
//! and dracut (`man dracut.cmdline`), and `nameserver=` (DESIGN §2).
//!
//! Operators copy these lines from working set-ups, so a line that the
//! kernel or dracut accepts should mean the same here; what Wyrcan cannot do
//! (static IPv6, MTU and MAC fields, BOOTP/RARP) is an error that says so
//! rather than being ignored, because a silently different network is harder
//! to debug at a console than a clear refusal.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// How to configure the network, from one `ip=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpConfig {
    /// DHCPv4, on one interface or (`None`) on every Ethernet link with carrier.
    Dhcp {
        /// The interface, if one was named.
        iface: Option<String>,
    },
    /// DHCPv6, on one interface or (`None`) on every Ethernet link.
    Dhcp6 {
        /// The interface, if one was named.
        iface: Option<String>,
    },
    /// No network configuration at all.
    Off,
    /// A fixed IPv4 address.
    Static(StaticIp),
}

/// A static IPv4 configuration (`ip=<client-ip>::<gw-ip>:<netmask>:<hostname>:<device>:none`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    /// The address to assign.
    pub address: Ipv4Addr,
    /// Prefix length of the subnet (from the netmask, or the address's class without one, as the kernel does).
    pub prefix_len: u8,
    /// Default gateway; `None` when empty or `0.0.0.0`.
    pub gateway: Option<Ipv4Addr>,
    /// Host name to set, if given.
    pub hostname: Option<String>,
    /// The interface; `None` means the first Ethernet link with carrier.
    pub iface: Option<String>,
    /// DNS servers from the `<dns0-ip>` and `<dns1-ip>` fields.
    pub dns: Vec<Ipv4Addr>,
}

/// An `ip=` or `nameserver=` value Wyrcan cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// A single word that is not a known method.
    #[error(
        "ip={input:?} is not understood: expected dhcp, dhcp6, off, none, <interface>:dhcp or \
         <client-ip>::<gateway-ip>:<netmask>:<hostname>:<interface>:none[:<dns0-ip>[:<dns1-ip>]]"
    )]
    Keyword {
        /// The whole value.
        input: String,
    },
    /// Something valid for the kernel or dracut that Wyrcan does not do.
    #[error("ip={input:?}: {what}")]
    Unsupported {
        /// The whole value.
        input: String,
        /// What is not supported and what to use instead.
        what: &'static str,
    },
    /// A field that must hold an IPv4 address does not.
    #[error(
        "ip={input:?}: the {field} {value:?} is not an IPv4 address (expected e.g. 192.168.1.10)"
    )]
    Address {
        /// The whole value.
        input: String,
        /// Which field (client address, gateway, …).
        field: &'static str,
        /// The field as written.
        value: String,
    },
    /// The netmask field is neither a dotted mask nor a prefix length.
    #[error(
        "ip={input:?}: the netmask {value:?} is neither a dotted mask (255.255.255.0) nor a \
         prefix length (0 to 32)"
    )]
    Netmask {
        /// The whole value.
        input: String,
        /// The field as written.
        value: String,
    },
    /// The autoconf field is not a known method.
    #[error(
        "ip={input:?}: the autoconf method {value:?} is not one of off, none, dhcp, on, any, dhcp6"
    )]
    Autoconf {
        /// The whole value.
        input: String,
        /// The field as written.
        value: String,
    },
    /// The device field is not a possible interface name.
    #[error(
        "ip={input:?}: the interface name {value:?} is not valid: expected 1 to 15 characters, \
         no '/' and no spaces (e.g. eth0, enp1s0)"
    )]
    Interface {
        /// The whole value.
        input: String,
        /// The field as written.
        value: String,
    },
    /// The hostname field is longer than the kernel allows.
    #[error("ip={input:?}: the hostname is {len} bytes: expected at most 64")]
    Hostname {
        /// The whole value.
        input: String,
        /// Its length.
        len: usize,
    },
    /// More colon-separated fields than the syntax has.
    #[error("ip={input:?} has {count} fields: expected at most 10 (<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>)")]
    TooManyFields {
        /// The whole value.
        input: String,
        /// How many fields it has.
        count: usize,
    },
    /// A `nameserver=` value that is not an address.
    #[error(
        "nameserver={value:?} is not an IP address (expected e.g. 192.168.1.1 or 2001:db8::1)"
    )]
    Nameserver {
        /// The value as written.
        value: String,
    },
}

/// What the autoconf field (or a whole one-word `ip=`) asks for.
enum Method {
    Off,
    Dhcp,
    Dhcp6,
}

/// Maps an autoconf word to a method; `Err` carries the "unsupported" text
/// for words the kernel or dracut know but Wyrcan does not do.
fn method(word: &str) -> Option<Result<Method, &'static str>> {
    Some(Ok(match word {
        "off" | "none" => Method::Off,
        "dhcp" | "on" | "any" => Method::Dhcp,
        "dhcp6" => Method::Dhcp6,
        "bootp" | "rarp" | "both" => {
            return Some(Err(
                "BOOTP and RARP are not supported: use dhcp (DHCP servers answer BOOTP clients, not the reverse)",
            ))
        }
        "auto6" | "either6" | "link6" => {
            return Some(Err(
                "this IPv6 method is not supported: the kernel configures IPv6 by SLAAC on its own; use dhcp6 for DHCPv6",
            ))
        }
        "single-dhcp" | "ibft" => {
            return Some(Err("this dracut method is not supported: use dhcp"))
        }
        _ => return None,
    }))
}

/// The longest interface name Linux allows (`IFNAMSIZ` - 1).
const IFNAME_MAX: usize = 15;
/// The longest hostname the kernel keeps (`__NEW_UTS_LEN`).
const HOSTNAME_MAX: usize = 64;

/// Parses one `ip=` value (without the `ip=`).
///
/// Accepted forms:
/// - `dhcp`, `on`, `any` → [`IpConfig::Dhcp`]; `dhcp6` → [`IpConfig::Dhcp6`];
///   `off`, `none` or empty → [`IpConfig::Off`];
/// - dracut's `<interface>:<autoconf>[:<mtu>[:<macaddr>]]` (MTU and MAC must be empty);
/// - the kernel's `<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>`,
///   where any trailing fields may be left out and any field may be empty.
///   `<server-ip>` and `<ntp0-ip>` are checked but unused. `<netmask>` may be a prefix
///   length. With a client address and `off`/`none`/empty autoconf the
///   result is [`IpConfig::Static`]; without one, `off`/`none` is
///   [`IpConfig::Off`] and empty autoconf means DHCP, as in the kernel.
///   With DHCP the hostname, gateway and netmask fields are ignored (the
///   server supplies them).
pub fn parse(s: &str) -> Result<IpConfig, IpError> {
    let input = s.to_string();
    if s.is_empty() {
        // The kernel: "If no static IP is given, turn off autoconfig".
        return Ok(IpConfig::Off);
    }
    let unsupported = |what| IpError::Unsupported {
        input: input.clone(),
        what,
    };
    if s.contains('[') {
        return Err(unsupported(
            "static IPv6 addresses are not supported: the kernel configures IPv6 by SLAAC on its own; use dhcp6 for DHCPv6",
        ));
    }
    let fields: Vec<&str> = s.split(':').collect();
    if fields.len() == 1 {
        return match method(s) {
            Some(Ok(m)) => Ok(dynamic(m, None)),
            Some(Err(what)) => Err(unsupported(what)),
            None => Err(IpError::Keyword { input }),
        };
    }
    if fields.len() > 10 {
        return Err(IpError::TooManyFields {
            input,
            count: fields.len(),
        });
    }
    let autoconf = |word: &str| -> Result<Option<Method>, IpError> {
        if word.is_empty() {
            return Ok(None);
        }
        match method(word) {
            Some(Ok(m)) => Ok(Some(m)),
            Some(Err(what)) => Err(unsupported(what)),
            None => Err(IpError::Autoconf {
                input: input.clone(),
                value: word.to_string(),
            }),
        }
    };
    let iface = |name: &str| -> Result<Option<String>, IpError> {
        if name.is_empty() {
            return Ok(None);
        }
        if name.len() > IFNAME_MAX
            || name == "."
            || name == ".."
            || name.contains(|c: char| c == '/' || c.is_whitespace() || c.is_control())
        {
            return Err(IpError::Interface {
                input: input.clone(),
                value: name.to_string(),
            });
        }
        Ok(Some(name.to_string()))
    };
    // An address field; empty and 0.0.0.0 both mean "not given", as for the kernel.
    let addr = |field: &'static str, value: &str| -> Result<Option<Ipv4Addr>, IpError> {
        if value.is_empty() {
            return Ok(None);
        }
        match value.parse::<Ipv4Addr>() {
            Ok(a) if a.is_unspecified() => Ok(None),
            Ok(a) => Ok(Some(a)),
            Err(_) => Err(IpError::Address {
                input: input.clone(),
                field,
                value: value.to_string(),
            }),
        }
    };

    // dracut's `<interface>:<autoconf>[:<mtu>[:<macaddr>]]`; the kernel's
    // form starts with an address, which an interface name never is.
    if fields.len() <= 4 && fields[0].parse::<Ipv4Addr>().is_err() {
        let dev = iface(fields[0])?;
        let m = autoconf(fields[1])?;
        if fields[2..].iter().any(|f| !f.is_empty()) {
            return Err(unsupported(
                "the MTU and MAC address fields are not supported: leave them out",
            ));
        }
        return Ok(match m {
            Some(Method::Off) => IpConfig::Off,
            Some(m) => dynamic(m, dev),
            None => dynamic(Method::Dhcp, dev),
        });
    }

    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let client = addr("client address", field(0))?;
    addr("server address", field(1))?;
    let gateway = addr("gateway", field(2))?;
    let netmask = field(3);
    let hostname = field(4);
    let dev = iface(field(5))?;
    let m = autoconf(field(6))?;
    let mut dns = Vec::new();
    for (i, name) in [(7, "first DNS server"), (8, "second DNS server")] {
        if let Some(a) = addr(name, field(i))? {
            dns.push(a);
        }
    }
    addr("NTP server", field(9))?;

    match (m, client) {
        (Some(m @ (Method::Dhcp | Method::Dhcp6)), _) => {
            if !dns.is_empty() {
                return Err(unsupported(
                    "DNS servers in ip= apply to a static address only: with DHCP, add nameserver=<ip> instead",
                ));
            }
            Ok(dynamic(m, dev))
        }
        (None, None) => {
            if !dns.is_empty() {
                return Err(unsupported(
                    "DNS servers in ip= apply to a static address only: with DHCP, add nameserver=<ip> instead",
                ));
            }
            Ok(dynamic(Method::Dhcp, dev))
        }
        (Some(Method::Off), None) => Ok(IpConfig::Off),
        (Some(Method::Off) | None, Some(address)) => {
            let prefix_len = match netmask {
                "" => default_prefix_len(address),
                m => parse_netmask(m).ok_or_else(|| IpError::Netmask {
                    input: input.clone(),
                    value: m.to_string(),
                })?,
            };
            if hostname.len() > HOSTNAME_MAX {
                return Err(IpError::Hostname {
                    input,
                    len: hostname.len(),
                });
            }
            Ok(IpConfig::Static(StaticIp {
                address,
                prefix_len,
                gateway,
                hostname: (!hostname.is_empty()).then(|| hostname.to_string()),
                iface: dev,
                dns,
            }))
        }
    }
}

fn dynamic(m: Method, iface: Option<String>) -> IpConfig {
    match m {
        Method::Off => IpConfig::Off,
        Method::Dhcp => IpConfig::Dhcp { iface },
        Method::Dhcp6 => IpConfig::Dhcp6 { iface },
    }
}

/// A dotted netmask or a prefix length (`24` or `/24`).
fn parse_netmask(s: &str) -> Option<u8> {
    if let Ok(mask) = s.parse::<Ipv4Addr>() {
        return mask_to_prefix(mask);
    }
    let digits = s.strip_prefix('/').unwrap_or(s);
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u8>().ok().filter(|&p| p <= 32)
}

/// Every `ip=` value of the command line, in order; with none, DHCPv4 on
/// every link (DESIGN §2's default).
pub fn parse_all(values: &[String]) -> Result<Vec<IpConfig>, IpError> {
    if values.is_empty() {
        return Ok(vec![IpConfig::Dhcp { iface: None }]);
    }
    values.iter().map(|v| parse(v)).collect()
}

/// Parses one `nameserver=` value: an IPv4 or IPv6 address, IPv6 optionally
/// in brackets as dracut writes it (`[2001:db8::1]`).
pub fn parse_nameserver(s: &str) -> Result<IpAddr, IpError> {
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .map(|v6| v6.parse::<Ipv6Addr>().map(IpAddr::V6));
    match bare {
        Some(r) => r.ok(),
        None => s.parse::<IpAddr>().ok(),
    }
    .ok_or_else(|| IpError::Nameserver {
        value: s.to_string(),
    })
}

/// Every `nameserver=` value, in order.
pub fn parse_nameservers(values: &[String]) -> Result<Vec<IpAddr>, IpError> {
    values.iter().map(|v| parse_nameserver(v)).collect()
}

/// The prefix length of a contiguous netmask (`255.255.255.0` → 24);
/// `None` for a mask with holes, which no interface can have.
pub fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    // Contiguous: nothing set after the leading ones.
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The netmask of a prefix length (`24` → `255.255.255.0`); lengths over 32 count as 32.
pub fn prefix_to_mask(prefix_len: u8) -> Ipv4Addr {
    let n = u32::from(prefix_len.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - n).unwrap_or(0))
}

/// The prefix length of the address's class (A → 8, B → 16, C → 24, else
/// 32): what the kernel's ipconfig assumes when no netmask is given.
pub fn default_prefix_len(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        192..=223 => 24,
        _ => 32,
    }
}

impl FromStr for IpConfig {
    type Err = IpError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl fmt::Display for IpConfig {
    /// The canonical `ip=` value (without `ip=`) that parses back to the same
    /// config. Static configs use the kernel's form with a dotted netmask;
    /// the form holds at most two DNS servers, so further ones are not written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpConfig::Off => f.write_str("off"),
            IpConfig::Dhcp { iface: None } => f.write_str("dhcp"),
            IpConfig::Dhcp { iface: Some(i) } => write!(f, "{i}:dhcp"),
            IpConfig::Dhcp6 { iface: None } => f.write_str("dhcp6"),
            IpConfig::Dhcp6 { iface: Some(i) } => write!(f, "{i}:dhcp6"),
            IpConfig::Static(s) => {
                let opt = |a: Option<Ipv4Addr>| a.map(|a| a.to_string()).unwrap_or_default();
                write!(
                    f,
                    "{}::{}:{}:{}:{}:none",
                    s.address,
                    opt(s.gateway),
                    prefix_to_mask(s.prefix_len),
                    s.hostname.as_deref().unwrap_or(""),
                    s.iface.as_deref().unwrap_or(""),
                )?;
                for d in s.dns.iter().take(2) {
                    write!(f, ":{d}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn dhcp(iface: Option<&str>) -> IpConfig {
        IpConfig::Dhcp {
            iface: iface.map(str::to_string),
        }
    }

    fn dhcp6(iface: Option<&str>) -> IpConfig {
        IpConfig::Dhcp6 {
            iface: iface.map(str::to_string),
        }
    }

    fn stat(address: &str, prefix_len: u8) -> StaticIp {
        StaticIp {
            address: ip(address),
            prefix_len,
            gateway: None,
            hostname: None,
            iface: None,
            dns: vec![],
        }
    }

    #[test]
    fn parse_table() {
        let ok: Vec<(&str, IpConfig)> = vec![
            ("dhcp", dhcp(None)),
            ("on", dhcp(None)),
            ("any", dhcp(None)),
            ("dhcp6", dhcp6(None)),
            ("off", IpConfig::Off),
            ("none", IpConfig::Off),
            ("", IpConfig::Off),
            // dracut's interface forms.
            ("eth0:dhcp", dhcp(Some("eth0"))),
            ("enp1s0:dhcp6", dhcp6(Some("enp1s0"))),
            ("eth0:on", dhcp(Some("eth0"))),
            ("eth0:", dhcp(Some("eth0"))),
            (":dhcp", dhcp(None)),
            ("eth0:dhcp::", dhcp(Some("eth0"))),
            ("eth1:off", IpConfig::Off),
            // The kernel's form.
            (
                "10.0.0.2::10.0.0.1:255.255.255.0:box:eth1:none",
                IpConfig::Static(StaticIp {
                    gateway: Some(ip("10.0.0.1")),
                    hostname: Some("box".into()),
                    iface: Some("eth1".into()),
                    ..stat("10.0.0.2", 24)
                }),
            ),
            (
                "10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3:1.1.1.1",
                IpConfig::Static(StaticIp {
                    gateway: Some(ip("10.0.2.2")),
                    iface: Some("eth0".into()),
                    dns: vec![ip("10.0.2.3"), ip("1.1.1.1")],
                    ..stat("10.0.2.15", 24)
                }),
            ),
            // Netmask as a prefix length, server and NTP fields checked and unused.
            (
                "192.168.7.9:192.168.7.1::/20:::none::9.9.9.9:192.168.7.1",
                IpConfig::Static(StaticIp {
                    dns: vec![ip("9.9.9.9")],
                    ..stat("192.168.7.9", 20)
                }),
            ),
            ("10.1.2.3::::::none", IpConfig::Static(stat("10.1.2.3", 8))),
            ("10.1.2.3:::28", IpConfig::Static(stat("10.1.2.3", 28))),
            // Trailing fields left out; no netmask → the class (B here), as the kernel does.
            (
                "172.16.0.5::172.16.0.1",
                IpConfig::Static(StaticIp {
                    gateway: Some(ip("172.16.0.1")),
                    ..stat("172.16.0.5", 16)
                }),
            ),
            ("10.1.2.3::0.0.0.0:0", IpConfig::Static(stat("10.1.2.3", 0))),
            (
                "10.1.2.3:::255.255.255.255",
                IpConfig::Static(stat("10.1.2.3", 32)),
            ),
            // No client address: autoconf, or off.
            (":::::eth0:dhcp", dhcp(Some("eth0"))),
            ("::::box:eth0:dhcp6", dhcp6(Some("eth0"))),
            (":::::eth0:", dhcp(Some("eth0"))),
            (":::::eth0", dhcp(Some("eth0"))),
            ("0.0.0.0::::::", dhcp(None)),
            (":::::eth0:none", IpConfig::Off),
            // A client address with dhcp: DHCP wins and the static fields are ignored.
            (
                "10.0.0.2::10.0.0.1:255.255.255.0:box:eth1:dhcp",
                dhcp(Some("eth1")),
            ),
            ("10.0.0.2:::::eth1:any", dhcp(Some("eth1"))),
        ];
        for (input, want) in &ok {
            assert_eq!(parse(input).as_ref(), Ok(want), "{input:?}");
            assert_eq!(input.parse::<IpConfig>().as_ref(), Ok(want), "{input:?}");
        }

        let s = |x: &str| x.to_string();
        let bad: Vec<(&str, IpError)> = vec![
            ("dhcpp", IpError::Keyword { input: s("dhcpp") }),
            ("eth0", IpError::Keyword { input: s("eth0") }),
            (
                "eth0:dchp",
                IpError::Autoconf {
                    input: s("eth0:dchp"),
                    value: s("dchp"),
                },
            ),
            (
                "10.0.0.2:::::eth0:static",
                IpError::Autoconf {
                    input: s("10.0.0.2:::::eth0:static"),
                    value: s("static"),
                },
            ),
            (
                "10.0.0.256::::::none",
                IpError::Address {
                    input: s("10.0.0.256::::::none"),
                    field: "client address",
                    value: s("10.0.0.256"),
                },
            ),
            (
                "10.0.0.2::gw:::eth0:none",
                IpError::Address {
                    input: s("10.0.0.2::gw:::eth0:none"),
                    field: "gateway",
                    value: s("gw"),
                },
            ),
            (
                "10.0.0.2:x::::eth0:none",
                IpError::Address {
                    input: s("10.0.0.2:x::::eth0:none"),
                    field: "server address",
                    value: s("x"),
                },
            ),
            (
                "10.0.0.2::::::none:dns",
                IpError::Address {
                    input: s("10.0.0.2::::::none:dns"),
                    field: "first DNS server",
                    value: s("dns"),
                },
            ),
            (
                "10.0.0.2::::::none:1.1.1.1:x",
                IpError::Address {
                    input: s("10.0.0.2::::::none:1.1.1.1:x"),
                    field: "second DNS server",
                    value: s("x"),
                },
            ),
            (
                "10.0.0.2:::255.0.255.0:::none",
                IpError::Netmask {
                    input: s("10.0.0.2:::255.0.255.0:::none"),
                    value: s("255.0.255.0"),
                },
            ),
            (
                "10.0.0.2:::33:::none",
                IpError::Netmask {
                    input: s("10.0.0.2:::33:::none"),
                    value: s("33"),
                },
            ),
            (
                "10.0.0.2:::-1:::none",
                IpError::Netmask {
                    input: s("10.0.0.2:::-1:::none"),
                    value: s("-1"),
                },
            ),
            (
                "10.0.0.2:::+8:::none",
                IpError::Netmask {
                    input: s("10.0.0.2:::+8:::none"),
                    value: s("+8"),
                },
            ),
            (
                "a/b:dhcp",
                IpError::Interface {
                    input: s("a/b:dhcp"),
                    value: s("a/b"),
                },
            ),
            (
                "averyveryverylongname:dhcp",
                IpError::Interface {
                    input: s("averyveryverylongname:dhcp"),
                    value: s("averyveryverylongname"),
                },
            ),
            (
                "1:2:3:4:5:6:7:8:9:10:11",
                IpError::TooManyFields {
                    input: s("1:2:3:4:5:6:7:8:9:10:11"),
                    count: 11,
                },
            ),
        ];
        for (input, want) in &bad {
            assert_eq!(parse(input).as_ref(), Err(want), "{input:?}");
        }
        let long_host = format!("10.0.0.2::::{}::none", "h".repeat(65));
        assert_eq!(
            parse(&long_host),
            Err(IpError::Hostname {
                input: long_host.clone(),
                len: 65
            })
        );

        for unsupported in [
            "bootp",
            "rarp",
            "auto6",
            "eth0:auto6",
            "ibft",
            "eth0:dhcp:1500",
            "eth0:dhcp::52-54-00-12-34-56",
            "[2001:db8::2]::[2001:db8::1]:64::eth0:none",
            ":::::eth0:dhcp:1.1.1.1",
            "::::::::8.8.8.8",
        ] {
            assert!(
                matches!(parse(unsupported), Err(IpError::Unsupported { .. })),
                "{unsupported:?}: {:?}",
                parse(unsupported)
            );
        }
    }

    #[test]
    fn error_messages_name_the_input_and_what_is_expected() {
        let msg = parse("10.0.0.2:::255.0.255.0:::none")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "ip=\"10.0.0.2:::255.0.255.0:::none\": the netmask \"255.0.255.0\" is neither a dotted mask (255.255.255.0) nor a prefix length (0 to 32)"
        );
        let msg = parse(":::::eth0:dhcp:1.1.1.1").unwrap_err().to_string();
        assert!(msg.contains("nameserver="), "{msg}");
        for input in [
            "x",
            "eth0:x",
            "1.2.3.4:::99",
            "bootp",
            "a/b:dhcp",
            "1:2:3:4:5:6:7:8:9:10:11",
        ] {
            let m = parse(input).unwrap_err().to_string();
            assert!(m.starts_with("ip="), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }

    #[test]
    fn display_round_trips() {
        for input in [
            "dhcp",
            "dhcp6",
            "off",
            "eth0:dhcp",
            "eth0:dhcp6",
            "10.0.0.2::10.0.0.1:255.255.255.0:box:eth1:none",
            "10.0.2.15:::255.255.255.0:::none:10.0.2.3:1.1.1.1",
            "10.1.2.3::::::none",
            "10.1.2.3:::0:::none",
        ] {
            let c = parse(input).unwrap();
            let shown = c.to_string();
            assert_eq!(parse(&shown).unwrap(), c, "{input:?} → {shown:?}");
        }
        assert_eq!(
            parse("10.0.0.2::10.0.0.1:24:box:eth1:none")
                .unwrap()
                .to_string(),
            "10.0.0.2::10.0.0.1:255.255.255.0:box:eth1:none"
        );
    }

    #[test]
    fn parse_all_defaults_to_dhcp() {
        assert_eq!(parse_all(&[]), Ok(vec![dhcp(None)]));
        assert_eq!(
            parse_all(&["eth0:dhcp".into(), "eth1:off".into()]),
            Ok(vec![dhcp(Some("eth0")), IpConfig::Off])
        );
        let e = parse_all(&["dhcp".into(), "bogus".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains(r#"ip="bogus" is not understood"#), "{e}");
    }

    #[test]
    fn nameservers() {
        let v4: IpAddr = "1.1.1.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse_nameserver("1.1.1.1"), Ok(v4));
        assert_eq!(parse_nameserver("2001:db8::1"), Ok(v6));
        assert_eq!(parse_nameserver("[2001:db8::1]"), Ok(v6));
        for bad in [
            "",
            "dns.example",
            "[1.1.1.1]",
            "1.1.1",
            "[2001:db8::1",
            "1.1.1.1:53",
        ] {
            assert_eq!(
                parse_nameserver(bad),
                Err(IpError::Nameserver {
                    value: bad.to_string()
                }),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_nameservers(&["9.9.9.9".into(), "[::1]".into()]),
            Ok(vec!["9.9.9.9".parse().unwrap(), "::1".parse().unwrap()])
        );
        assert_eq!(
            parse_nameserver("x").unwrap_err().to_string(),
            "nameserver=\"x\" is not an IP address (expected e.g. 192.168.1.1 or 2001:db8::1)"
        );
    }

    #[test]
    fn masks_and_prefixes() {
        for (mask, prefix) in [
            ("0.0.0.0", Some(0)),
            ("128.0.0.0", Some(1)),
            ("255.0.0.0", Some(8)),
            ("255.255.240.0", Some(20)),
            ("255.255.255.0", Some(24)),
            ("255.255.255.254", Some(31)),
            ("255.255.255.255", Some(32)),
            ("255.0.255.0", None),
            ("0.0.0.255", None),
            ("255.255.255.253", None),
        ] {
            assert_eq!(mask_to_prefix(ip(mask)), prefix, "{mask}");
            if let Some(p) = prefix {
                assert_eq!(prefix_to_mask(p), ip(mask));
            }
        }
        assert_eq!(prefix_to_mask(40), ip("255.255.255.255"));
        for (addr, prefix) in [
            ("10.0.2.15", 8),
            ("127.0.0.1", 8),
            ("172.16.0.1", 16),
            ("191.255.0.1", 16),
            ("192.168.1.1", 24),
            ("223.1.1.1", 24),
            ("224.0.0.1", 32),
        ] {
            assert_eq!(default_prefix_len(ip(addr)), prefix, "{addr}");
        }
    }
}
