//! The options a data-centre network sends beyond an address, a router and
//! DNS servers: interface MTU (26), NTP servers (42), the domain search list
//! (119, RFC 3397) and classless static routes (121, RFC 3442).
//!
//! These are extras: a machine boots without them, just less well. So a
//! malformed one does not cost the lease as a malformed lease time does;
//! the decoder leaves it uninterpreted in [`Options::other`](super::Options::other)
//! (where it also re-encodes unchanged) and the lease goes on without it.
//!
//! The search list's names are compressed like DNS names, with pointers
//! into the option's data (after RFC 3396 concatenation): they are read by
//! the same bounded decoder as DNS responses, [`crate::dns::name::read`].

use std::fmt;
use std::net::Ipv4Addr;

use crate::dns::name;

/// Search domains kept from option 119: a bound on what a few hundred
/// bytes of compressed names can expand to (each may be 253 characters),
/// and more than any resolver tries.
pub const MAX_SEARCH_DOMAINS: usize = 32;

/// A route from option 121 (or the default route from option 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The destination network, with no bits set past `prefix_len`.
    pub dest: Ipv4Addr,
    /// Its prefix length, 0 (the default route) to 32.
    pub prefix_len: u8,
    /// The router to send through; `0.0.0.0` means the destination is on
    /// the link (no router), as RFC 3442 servers use it.
    pub gateway: Ipv4Addr,
}

impl Route {
    /// The default route through `gateway`.
    pub fn default_via(gateway: Ipv4Addr) -> Route {
        Route {
            dest: Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
            gateway,
        }
    }

    /// Whether the route needs no router.
    pub fn is_on_link(&self) -> bool {
        self.gateway.is_unspecified()
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dest, self.prefix_len)?;
        if self.is_on_link() {
            write!(f, " on-link")
        } else {
            write!(f, " via {}", self.gateway)
        }
    }
}

/// The netmask of a prefix length up to 32, as a number.
fn mask(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0)
}

/// Option 121: each route is a prefix length, the destination's significant
/// octets (`ceil(len / 8)` of them), then the router. `None` if any route
/// is cut short or has a prefix over 32 (RFC 3442 gives no way to skip a
/// bad one), or if there are none.
pub(super) fn decode_routes(data: &[u8]) -> Option<Vec<Route>> {
    let mut routes = Vec::new();
    let mut rest = data;
    while let Some((&prefix_len, tail)) = rest.split_first() {
        if prefix_len > 32 {
            return None;
        }
        let (dest, tail) = tail.split_at_checked(usize::from(prefix_len).div_ceil(8))?;
        let (gateway, tail) = tail.split_at_checked(4)?;
        let mut octets = [0; 4];
        octets.get_mut(..dest.len())?.copy_from_slice(dest);
        // Bits past the prefix would make the kernel refuse the route.
        let dest = Ipv4Addr::from(u32::from_be_bytes(octets) & mask(prefix_len));
        let gateway = Ipv4Addr::from(<[u8; 4]>::try_from(gateway).ok()?);
        routes.push(Route {
            dest,
            prefix_len,
            gateway,
        });
        rest = tail;
    }
    (!routes.is_empty()).then_some(routes)
}

/// The data of option 121 for `routes`.
pub(super) fn encode_routes(routes: &[Route]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in routes {
        let len = r.prefix_len.min(32);
        out.push(len);
        let dest = r.dest.octets();
        out.extend(dest.iter().take(usize::from(len).div_ceil(8)));
        out.extend_from_slice(&r.gateway.octets());
    }
    out
}

/// Option 119: DNS names one after another, compressed with pointers into
/// the option's data. `None` if a name cannot be read or is not a valid
/// host name (it is bound for resolv.conf), or if there are none; names
/// past [`MAX_SEARCH_DOMAINS`] are dropped.
pub(super) fn decode_search(data: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut pos = 0;
    while pos < data.len() && names.len() < MAX_SEARCH_DOMAINS {
        let (n, next) = name::read(data, pos).ok()?;
        name::validate(&n).ok()?;
        names.push(n);
        pos = next;
    }
    (!names.is_empty()).then_some(names)
}

/// The data of option 119 for `names`, uncompressed (compression is optional).
pub(super) fn encode_search(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        name::write(&mut out, n);
    }
    out
}

/// Option 42: one or more IPv4 addresses.
pub(super) fn decode_addrs(data: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if data.is_empty() || data.len() % 4 != 0 {
        return None;
    }
    Some(
        data.chunks_exact(4)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dest: [u8; 4], prefix_len: u8, gateway: [u8; 4]) -> Route {
        Route {
            dest: dest.into(),
            prefix_len,
            gateway: gateway.into(),
        }
    }

    /// RFC 3442 §4's examples, and a default route.
    #[test]
    fn classless_routes() {
        let data = [
            0, 10, 0, 0, 1, // 0.0.0.0/0 via 10.0.0.1
            8, 10, 10, 0, 0, 254, // 10.0.0.0/8 via 10.0.0.254
            24, 192, 168, 5, 0, 0, 0, 0, // 192.168.5.0/24 on-link
            32, 169, 254, 169, 254, 10, 0, 0, 2, // the metadata service
            18, 172, 16, 64, 10, 0, 0, 3, // 172.16.64.0/18
        ];
        let want = vec![
            route([0, 0, 0, 0], 0, [10, 0, 0, 1]),
            route([10, 0, 0, 0], 8, [10, 0, 0, 254]),
            route([192, 168, 5, 0], 24, [0, 0, 0, 0]),
            route([169, 254, 169, 254], 32, [10, 0, 0, 2]),
            route([172, 16, 64, 0], 18, [10, 0, 0, 3]),
        ];
        assert_eq!(decode_routes(&data), Some(want.clone()));
        assert_eq!(encode_routes(&want), data);
        assert_eq!(want[2].to_string(), "192.168.5.0/24 on-link");
        assert_eq!(want[1].to_string(), "10.0.0.0/8 via 10.0.0.254");
        // Host bits are cleared: 10.1.2.3/12 → 10.0.0.0/12.
        assert_eq!(
            decode_routes(&[12, 10, 0x1f, 10, 0, 0, 1]),
            Some(vec![route([10, 16, 0, 0], 12, [10, 0, 0, 1])])
        );
        assert_eq!(mask(0), 0);
        assert_eq!(mask(12), 0xfff0_0000);
        assert_eq!(mask(32), u32::MAX);
    }

    #[test]
    fn malformed_routes_are_none() {
        for bad in [
            &[][..],
            &[33, 10, 0, 0, 0, 0, 10, 0, 0, 1],
            &[24, 10, 0, 0, 10, 0, 0],
            &[0, 10, 0, 0, 1, 8],
            &[8, 10],
            &[0, 10, 0, 0, 1, 8, 10, 10, 0, 0],
        ] {
            assert_eq!(decode_routes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn search_list() {
        // RFC 3397 §3's example: eng.apple.com and marketing.apple.com,
        // the second pointing into the first.
        let data = b"\x03eng\x05apple\x03com\x00\x09marketing\xc0\x04";
        assert_eq!(
            decode_search(data),
            Some(vec!["eng.apple.com".into(), "marketing.apple.com".into()])
        );
        let names = vec!["dc1.example.com".to_string(), "example.com".to_string()];
        assert_eq!(decode_search(&encode_search(&names)), Some(names));
        // A loop, a forward pointer, a cut name, a root name, a name that
        // would inject a line into resolv.conf: the whole option is refused.
        for bad in [
            &b""[..],
            b"\xc0\x00",
            b"\x03eng\xc0\x06\x00",
            b"\x03eng\x05app",
            b"\x00",
            b"\x03eng\x00\x00",
            b"\x08evil\nfoo\x00",
        ] {
            assert_eq!(decode_search(bad), None, "{bad:?}");
        }
        // At most MAX_SEARCH_DOMAINS names: each pointer here costs 2 bytes.
        let mut many = b"\x07example\x03com\x00".to_vec();
        for _ in 0..100 {
            many.extend_from_slice(b"\xc0\x00");
        }
        assert_eq!(decode_search(&many).unwrap().len(), MAX_SEARCH_DOMAINS);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            decode_addrs(&[10, 0, 0, 1, 10, 0, 0, 2]),
            Some(vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)])
        );
        assert_eq!(decode_addrs(&[]), None);
        assert_eq!(decode_addrs(&[10, 0, 0]), None);
    }
}
