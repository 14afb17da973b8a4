//! `/etc/resolv.conf` (resolv.conf(5)), the parts a stub resolver uses:
//! which servers to ask and which domains to try short names in.
//!
//! Read the way glibc and musl read it, so a file that works for the rest of
//! the system means the same here: at most three `nameserver` lines count,
//! `search` and `domain` replace each other with the last one winning, and
//! anything not understood is skipped rather than refused (the file is
//! written by DHCP clients, cloud agents and people).

use std::net::IpAddr;

use super::name;

/// Name servers used, as `MAXNS` in glibc and musl.
pub const MAX_NAMESERVERS: usize = 3;
/// Search domains kept, as `MAXDNSRCH` in glibc before 2.26: more only
/// multiplies the queries for a name that does not exist.
pub const MAX_SEARCH: usize = 6;

/// What a resolver needs from resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// The first [`MAX_NAMESERVERS`] usable `nameserver` addresses, in order.
    pub nameservers: Vec<IpAddr>,
    /// Domains to append to names with fewer dots than `ndots`, in order,
    /// without trailing dots.
    pub search: Vec<String>,
}

/// Parses the text of a resolv.conf.
///
/// Comments start with `#` or `;`. A nameserver with an IPv6 zone
/// (`fe80::1%eth0`) is skipped: [`IpAddr`] cannot carry the zone, and the
/// address without it would go to the wrong link. Search domains that are
/// not valid names are skipped.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") if conf.nameservers.len() < MAX_NAMESERVERS => {
                // Anything after the address is ignored, as by glibc.
                if let Some(addr) = words.next().and_then(|w| w.parse().ok()) {
                    conf.nameservers.push(addr);
                }
            }
            Some("search") | Some("domain") => {
                conf.search = words
                    .filter_map(|w| name::validate(w).ok())
                    .take(MAX_SEARCH)
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    conf
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn systemd_resolved_stub_and_dhcp_files() {
        let text =
            "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n\
                    nameserver 127.0.0.53\n\
                    options edns0 trust-ad\n\
                    search dc1.example.com example.com.\n";
        assert_eq!(
            parse_resolv_conf(text),
            ResolvConf {
                nameservers: vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53))],
                search: vec!["dc1.example.com".into(), "example.com".into()],
            }
        );
        let text = "domain corp.lan\nnameserver 10.0.0.2 # primary\n\
                    nameserver   2001:db8::53\nnameserver fe80::1%eth0\n\
                    nameserver bogus\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n\
                    ; comment\n   \n\tnameserver 10.0.0.5\n";
        assert_eq!(
            parse_resolv_conf(text),
            ResolvConf {
                nameservers: vec![
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)),
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
                ],
                search: vec!["corp.lan".into()],
            }
        );
    }

    #[test]
    fn last_search_or_domain_wins() {
        let c = parse_resolv_conf("search a.lan b.lan\ndomain c.lan\n");
        assert_eq!(c.search, vec!["c.lan".to_string()]);
        let c = parse_resolv_conf("domain c.lan\nsearch a.lan bad..name b.lan\n");
        assert_eq!(c.search, vec!["a.lan".to_string(), "b.lan".to_string()]);
        let c = parse_resolv_conf("search a b c d e f g h\n");
        assert_eq!(c.search.len(), MAX_SEARCH);
        // A keyword must be a whole word.
        let c = parse_resolv_conf("searching x.lan\nnameserver1 1.1.1.1\n");
        assert_eq!(c, ResolvConf::default());
        assert_eq!(parse_resolv_conf(""), ResolvConf::default());
    }
}
