//! The network settings of the kernel command line: `ip=` in the syntax of
//! the kernel's own IP autoconfiguration (`Documentation/admin-guide/nfs/nfsroot.rst`)
//! and of dracut (`man dracut.cmdline`, "Network"), `nameserver=`, and
//! dracut's `ifname=`, `vlan=` and `bond=` ([`parse_ifname`], [`parse_vlan`],
//! [`parse_bond`]) (DESIGN §2).
//!
//! Operators copy these lines from working set-ups (PXE menus written for
//! dracut-based installers), so a line that the kernel or dracut accepts
//! should mean the same here; what Wyrcan cannot do (BOOTP/RARP, iBFT,
//! `either6`, `link6`) is an error that says so rather than being ignored,
//! because a silently different network is harder to debug at a console
//! than a clear refusal.
//!
//! Nothing here looks at the machine: whether a named interface exists is
//! PID 1's question, asked after `ifname=`, `vlan=` and `bond=` made theirs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

mod links;
mod parse;

pub use links::{parse_bond, parse_ifname, parse_mac, parse_vlan, Bond, IfName, LinkError, Vlan};
pub use parse::parse;

/// How to configure the network, from one `ip=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpConfig {
    /// DHCPv4, on one interface or (`None`) on every Ethernet link with carrier.
    Dhcp {
        /// The interface, if one was named.
        iface: Option<String>,
        /// MTU and MAC address to set first (only with an interface).
        link: LinkSettings,
    },
    /// DHCPv6, on one interface or (`None`) on every Ethernet link.
    Dhcp6 {
        /// The interface, if one was named.
        iface: Option<String>,
        /// MTU and MAC address to set first (only with an interface).
        link: LinkSettings,
    },
    /// IPv6 stateless autoconfiguration (router advertisements, SLAAC), on
    /// one interface or (`None`) on every Ethernet link.
    Auto6 {
        /// The interface, if one was named.
        iface: Option<String>,
        /// MTU and MAC address to set first (only with an interface).
        link: LinkSettings,
    },
    /// No network configuration at all.
    Off,
    /// A fixed IPv4 address.
    Static(StaticIp),
    /// A fixed IPv6 address (dracut's `ip=[<addr>]::[<gw>]:<prefix>:…`).
    Static6(StaticIp6),
}

/// What dracut's per-interface forms carry after the method
/// (`…:<mtu>:<macaddr>`): settings of the link rather than of an address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkSettings {
    /// The MTU to set on the interface.
    pub mtu: Option<u32>,
    /// The hardware address to set on the interface (dracut: "optionally
    /// **set** <macaddr> on the <interface>"; to find a NIC by its address,
    /// `ifname=` is the tool).
    pub mac: Option<[u8; 6]>,
}

impl LinkSettings {
    /// Neither an MTU nor a MAC address.
    pub fn is_empty(&self) -> bool {
        self.mtu.is_none() && self.mac.is_none()
    }
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
    /// MTU and MAC address from dracut's `…:none:<mtu>:<macaddr>` form.
    pub link: LinkSettings,
}

/// A static IPv6 configuration (`ip=[<client-ip>]::[<gw-ip>]:<prefix-len>:<hostname>:<device>:none`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp6 {
    /// The address to assign.
    pub address: Ipv6Addr,
    /// Prefix length of the subnet (required: IPv6 has no address classes to guess from).
    pub prefix_len: u8,
    /// Default gateway; `None` when empty, `[]` or `[::]`.
    pub gateway: Option<Ipv6Addr>,
    /// Host name to set, if given.
    pub hostname: Option<String>,
    /// The interface; `None` means the first Ethernet link with carrier.
    pub iface: Option<String>,
    /// DNS servers from the `<dns0-ip>` and `<dns1-ip>` fields (IPv6 ones in brackets).
    pub dns: Vec<IpAddr>,
    /// MTU and MAC address from dracut's `…:none:<mtu>:<macaddr>` form.
    pub link: LinkSettings,
}

/// An `ip=` or `nameserver=` value Wyrcan cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// A single word that is not a known method.
    #[error(
        "ip={input:?} is not understood: expected dhcp, dhcp6, auto6, off, none, \
         <interface>:<method>[:<mtu>[:<macaddr>]], \
         <client-ip>::<gateway-ip>:<netmask>:<hostname>:<interface>:none[:<dns0-ip>[:<dns1-ip>]] or \
         [<client-ipv6>]::[<gateway-ipv6>]:<prefix-len>:<hostname>:<interface>:none"
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
    /// A field that must hold an address does not (or one of the wrong family).
    #[error("ip={input:?}: the {field} {value:?} is not {expected}")]
    Address {
        /// The whole value.
        input: String,
        /// Which field (client address, gateway, …).
        field: &'static str,
        /// The field as written.
        value: String,
        /// What it should be, with an example.
        expected: &'static str,
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
    /// The prefix length of a static IPv6 address is missing or out of range.
    #[error(
        "ip={input:?}: the prefix length {value:?} of the IPv6 address is not a number from 0 \
         to 128 (e.g. 64)"
    )]
    Prefix6 {
        /// The whole value.
        input: String,
        /// The field as written.
        value: String,
    },
    /// The autoconf field is not a known method.
    #[error(
        "ip={input:?}: the autoconf method {value:?} is not one of off, none, dhcp, on, any, \
         dhcp6, auto6"
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
    /// The MTU field is not a number the kernel takes.
    #[error("ip={input:?}: the MTU {value:?} is not a number from {min} to 65535")]
    Mtu {
        /// The whole value.
        input: String,
        /// The field as written.
        value: String,
        /// The smallest MTU allowed: 68 for IPv4, 1280 for IPv6 (RFC 8200 §5).
        min: u32,
    },
    /// The MAC address fields are not one.
    #[error(
        "ip={input:?}: the MAC address {value:?} is not a unicast Ethernet address: expected \
         6 hex bytes separated by colons (e.g. 52:54:00:12:34:56)"
    )]
    Mac {
        /// The whole value.
        input: String,
        /// The fields as written, joined by colons.
        value: String,
    },
    /// A `[` without its `]`, or the reverse.
    #[error(
        "ip={input:?}: unbalanced brackets: an IPv6 address goes in brackets, \
         e.g. [2001:db8::2]::[2001:db8::1]:64::eth0:none"
    )]
    Brackets {
        /// The whole value.
        input: String,
    },
    /// More colon-separated fields than the syntax has.
    #[error("ip={input:?} has {count} fields: expected at most 10 (<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>), or 14 when the last ones are <mtu>:<macaddr>")]
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

impl Default for IpConfig {
    /// DHCPv4 on every link with carrier: what no `ip=` at all means (DESIGN §2).
    fn default() -> Self {
        IpConfig::Dhcp {
            iface: None,
            link: LinkSettings::default(),
        }
    }
}

impl IpConfig {
    /// The interface this configuration names, if any.
    pub fn iface(&self) -> Option<&str> {
        match self {
            IpConfig::Dhcp { iface, .. }
            | IpConfig::Dhcp6 { iface, .. }
            | IpConfig::Auto6 { iface, .. } => iface.as_deref(),
            IpConfig::Static(s) => s.iface.as_deref(),
            IpConfig::Static6(s) => s.iface.as_deref(),
            IpConfig::Off => None,
        }
    }

    /// The MTU and MAC address to set on the interface.
    pub fn link(&self) -> LinkSettings {
        match self {
            IpConfig::Dhcp { link, .. }
            | IpConfig::Dhcp6 { link, .. }
            | IpConfig::Auto6 { link, .. } => *link,
            IpConfig::Static(s) => s.link,
            IpConfig::Static6(s) => s.link,
            IpConfig::Off => LinkSettings::default(),
        }
    }
}

/// Every `ip=` value of the command line, in order; with none, DHCPv4 on
/// every link (DESIGN §2's default).
pub fn parse_all(values: &[String]) -> Result<Vec<IpConfig>, IpError> {
    if values.is_empty() {
        return Ok(vec![IpConfig::default()]);
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

/// `aa:bb:cc:dd:ee:ff`, the form `ip=`, `ifname=` and `/sys` use.
pub(crate) fn mac_string(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// `:<mtu>[:<mac>]`, or nothing.
fn write_link(f: &mut fmt::Formatter<'_>, link: &LinkSettings) -> fmt::Result {
    if link.is_empty() {
        return Ok(());
    }
    f.write_str(":")?;
    if let Some(mtu) = link.mtu {
        write!(f, "{mtu}")?;
    }
    if let Some(mac) = link.mac {
        write!(f, ":{}", mac_string(mac))?;
    }
    Ok(())
}

/// An address as a field: IPv6 in brackets.
fn field(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

impl fmt::Display for IpConfig {
    /// The canonical `ip=` value (without `ip=`) that parses back to the same
    /// config. Static configs use the kernel's form (IPv4 with a dotted
    /// netmask); the form holds at most two DNS servers, and either DNS
    /// servers or MTU and MAC address (the latter win), so the rest is not written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, iface, link) = match self {
            IpConfig::Off => return f.write_str("off"),
            IpConfig::Dhcp { iface, link } => ("dhcp", iface, link),
            IpConfig::Dhcp6 { iface, link } => ("dhcp6", iface, link),
            IpConfig::Auto6 { iface, link } => ("auto6", iface, link),
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
                if !s.link.is_empty() {
                    return write_link(f, &s.link);
                }
                for d in s.dns.iter().take(2) {
                    write!(f, ":{d}")?;
                }
                return Ok(());
            }
            IpConfig::Static6(s) => {
                let gw = s.gateway.map(|a| field(IpAddr::V6(a))).unwrap_or_default();
                write!(
                    f,
                    "[{}]::{gw}:{}:{}:{}:none",
                    s.address,
                    s.prefix_len,
                    s.hostname.as_deref().unwrap_or(""),
                    s.iface.as_deref().unwrap_or(""),
                )?;
                if !s.link.is_empty() {
                    return write_link(f, &s.link);
                }
                for d in s.dns.iter().take(2) {
                    write!(f, ":{}", field(*d))?;
                }
                return Ok(());
            }
        };
        match (iface.as_deref(), link.is_empty()) {
            (None, true) => f.write_str(word),
            // An interface named like an address would start the kernel's
            // form, where it is the client address: name it in the device field.
            (Some(i), _) if parse::looks_like_address(i) => {
                write!(f, ":::::{i}:{word}")?;
                write_link(f, link)
            }
            (iface, _) => {
                write!(f, "{}:{word}", iface.unwrap_or(""))?;
                write_link(f, link)
            }
        }
    }
}

#[cfg(test)]
mod dracut_tests;
#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod tests;
