//! dracut's link arguments: `ifname=` (a stable name for the NIC with a
//! given MAC address), `vlan=` and `bond=` (virtual links built on NICs),
//! checked before PID 1 creates or renames anything.
//!
//! The syntax and defaults are dracut's (`modules.d/35network-legacy/parse-*.sh`)
//! so that operators' PXE menus carry over; the values end up in netlink
//! requests and sysfs paths, so names and bonding options are held to what
//! the kernel accepts, and a key can never name a path outside the bond's
//! `bonding/` directory.

use super::parse::{is_ifname, MTU_MAX, MTU_MIN};

/// `ifname=<name>:<mac>`: give the NIC with this hardware address this name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfName {
    /// The name to give.
    pub name: String,
    /// The NIC's hardware address.
    pub mac: [u8; 6],
}

/// `vlan=<name>:<parent>`: an 802.1Q VLAN link on a parent link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vlan {
    /// The VLAN link's name (`eth0.10`, `vlan0010`, …).
    pub name: String,
    /// The link it is created on.
    pub parent: String,
    /// The VLAN id, 1 to 4094, taken from the name.
    pub id: u16,
}

/// `bond=<name>[:<slaves>[:<options>[:<mtu>]]]`: a bonding master over NICs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bond {
    /// The bond's name.
    pub name: String,
    /// Its slave links, in order.
    pub slaves: Vec<String>,
    /// Bonding driver attributes as `/sys/class/net/<bond>/bonding/<key>`
    /// takes them (`mode` = `active-backup`, `miimon` = `100`), in order;
    /// `arp_ip_target`'s `;`-separated addresses come out `,`-separated,
    /// as dracut hands them on.
    pub options: Vec<(String, String)>,
    /// The MTU to set on the bond.
    pub mtu: Option<u32>,
}

/// An `ifname=`, `vlan=` or `bond=` value Wyrcan cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A bad `ifname=`.
    #[error(
        "ifname={input:?}: {problem}: expected ifname=<name>:<mac>, e.g. \
         ifname=bootnet:52:54:00:12:34:56"
    )]
    IfName {
        /// The value as written.
        input: String,
        /// What is wrong.
        problem: String,
    },
    /// A bad `vlan=`.
    #[error(
        "vlan={input:?}: {problem}: expected vlan=<name>:<parent> with the VLAN id (1 to 4094) \
         in the name as <parent>.<id> or vlan<id>, e.g. vlan=eth0.10:eth0 or vlan=vlan0010:bond0"
    )]
    Vlan {
        /// The value as written.
        input: String,
        /// What is wrong.
        problem: String,
    },
    /// A bad `bond=`.
    #[error(
        "bond={input:?}: {problem}: expected bond=<name>[:<slaves>[:<options>[:<mtu>]]], \
         e.g. bond=bond0:eth0,eth1:mode=active-backup,miimon=100"
    )]
    Bond {
        /// The value as written.
        input: String,
        /// What is wrong.
        problem: String,
    },
}

fn bad_name(what: &str, name: &str) -> String {
    format!(
        "the {what} {name:?} is not an interface name (1 to 15 characters, no '/', ':' or spaces)"
    )
}

/// A MAC address as `/sys` writes it and dracut takes it: six hex bytes
/// separated by colons, either case. Multicast and all-zero addresses are
/// refused: no NIC has one, and the kernel refuses to set one.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        // from_str_radix alone would take "+f".
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    let unicast = mac[0] & 1 == 0 && mac != [0; 6];
    (parts.next().is_none() && unicast).then_some(mac)
}

/// Parses one `ifname=` value: `<name>:<mac>` (`bootnet:52:54:00:12:34:56`).
///
/// dracut warns against `eth<N>` names (they race with the kernel's own);
/// the warning is PID 1's to give, the value is valid.
pub fn parse_ifname(s: &str) -> Result<IfName, LinkError> {
    let bad = |problem: String| LinkError::IfName {
        input: s.to_string(),
        problem,
    };
    let Some((name, mac)) = s.split_once(':') else {
        return Err(bad("there is no MAC address".into()));
    };
    if !is_ifname(name) {
        return Err(bad(bad_name("name", name)));
    }
    let mac = parse_mac(mac).ok_or_else(|| {
        bad(format!(
            "{mac:?} is not a unicast Ethernet MAC address (6 hex bytes separated by colons)"
        ))
    })?;
    Ok(IfName {
        name: name.to_string(),
        mac,
    })
}

/// The VLAN id a name carries, in the four styles the kernel's
/// `vconfig set_name_type` knows and dracut reads: `vlan0005`, `vlan5`,
/// `eth0.0005`, `eth0.5`.
///
/// The digits are decimal, as the kernel writes them. (dracut's legacy
/// `ifup` passes `0010` on to `ip link`, which would read it as octal; the
/// name means VLAN 10, and that is what Wyrcan creates.)
fn vlan_id(name: &str) -> Option<u32> {
    let digits = match name.strip_prefix("vlan") {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => d,
        _ => name.rsplit_once('.')?.1,
    };
    // Names are at most 15 bytes, so this never overflows; the length
    // check keeps it that way should that change.
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses one `vlan=` value: `<name>:<parent>`, the VLAN id taken from the
/// name (`eth0.10:eth0`, `vlan0010:bond0`).
pub fn parse_vlan(s: &str) -> Result<Vlan, LinkError> {
    let bad = |problem: String| LinkError::Vlan {
        input: s.to_string(),
        problem,
    };
    let fields: Vec<&str> = s.split(':').collect();
    let [name, parent] = fields[..] else {
        return Err(bad(format!("it has {} fields, not 2", fields.len())));
    };
    if !is_ifname(name) {
        return Err(bad(bad_name("name", name)));
    }
    if !is_ifname(parent) {
        return Err(bad(bad_name("parent", parent)));
    }
    if name == parent {
        return Err(bad("the VLAN and its parent have the same name".into()));
    }
    let id = vlan_id(name).ok_or_else(|| bad(format!("the name {name:?} carries no VLAN id")))?;
    let id = u16::try_from(id)
        .ok()
        .filter(|id| (1..=4094).contains(id))
        .ok_or_else(|| bad(format!("VLAN id {id} is out of range")))?;
    Ok(Vlan {
        name: name.to_string(),
        parent: parent.to_string(),
        id,
    })
}

/// The bonding modes by name, in the order of their numbers (`mode=1` is
/// `active-backup`); the driver takes either.
const BOND_MODES: [&str; 7] = [
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
];

/// dracut's bond when `bond` comes without a value, and its slaves when
/// only a name is given.
const DEFAULT_SLAVES: [&str; 2] = ["eth0", "eth1"];

/// Parses one `bond=` value: `<name>[:<slaves>[:<options>[:<mtu>]]]`, the
/// slaves and options comma-separated (`bond0:eth0,eth1:mode=active-backup,miimon=100:9000`).
///
/// As in dracut, an empty value (a bare `bond` on the command line) means
/// `bond0:eth0,eth1:mode=balance-rr`, and a name alone takes `eth0,eth1`
/// as slaves.
pub fn parse_bond(s: &str) -> Result<Bond, LinkError> {
    let bad = |problem: String| LinkError::Bond {
        input: s.to_string(),
        problem,
    };
    let defaults = || DEFAULT_SLAVES.iter().map(|s| s.to_string()).collect();
    if s.is_empty() {
        return Ok(Bond {
            name: "bond0".into(),
            slaves: defaults(),
            options: vec![("mode".into(), "balance-rr".into())],
            mtu: None,
        });
    }
    let fields: Vec<&str> = s.split(':').collect();
    if fields.len() > 4 {
        return Err(bad(format!(
            "it has {} fields, not at most 4",
            fields.len()
        )));
    }
    let field = |i: usize| fields.get(i).copied();
    let name = field(0).unwrap_or("");
    if !is_ifname(name) {
        return Err(bad(bad_name("bond name", name)));
    }
    let slaves: Vec<String> = match field(1) {
        None => defaults(),
        Some(list) => {
            let mut slaves: Vec<String> = Vec::new();
            for slave in list.split(',') {
                if !is_ifname(slave) {
                    return Err(bad(bad_name("slave", slave)));
                }
                if slave == name || slaves.iter().any(|s| s == slave) {
                    return Err(bad(format!("the slave {slave:?} is named twice")));
                }
                slaves.push(slave.to_string());
            }
            slaves
        }
    };
    let mut options = Vec::new();
    for opt in field(2).unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        options.push(bond_option(opt).map_err(bad)?);
    }
    let mtu = match field(3).unwrap_or("") {
        "" => None,
        m => Some(
            m.parse::<u32>()
                .ok()
                .filter(|n| {
                    m.bytes().all(|b| b.is_ascii_digit()) && (MTU_MIN..=MTU_MAX).contains(n)
                })
                .ok_or_else(|| {
                    bad(format!(
                        "the MTU {m:?} is not a number from {MTU_MIN} to {MTU_MAX}"
                    ))
                })?,
        ),
    };
    Ok(Bond {
        name: name.to_string(),
        slaves,
        options,
        mtu,
    })
}

/// One `key=value` bonding option. The key becomes a file name under
/// `bonding/`, so it is held to the attribute names' alphabet.
fn bond_option(opt: &str) -> Result<(String, String), String> {
    let Some((key, value)) = opt.split_once('=') else {
        return Err(format!("the option {opt:?} is not key=value"));
    };
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "the option name {key:?} is not a bonding attribute (lower-case letters, digits and _, e.g. miimon)"
        ));
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("the option {key} has no usable value"));
    }
    if key == "mode"
        && !BOND_MODES.contains(&value)
        && !matches!(value.parse::<usize>(), Ok(n) if n < BOND_MODES.len() && value.len() == 1)
    {
        return Err(format!(
            "the bonding mode {value:?} is not one of {} (or 0 to 6)",
            BOND_MODES.join(", ")
        ));
    }
    Ok((key.to_string(), value.replace(';', ",")))
}
