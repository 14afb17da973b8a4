use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::*;
use crate::pid1::config::NetConfig;
use crate::pid1::net::up;
use crate::sys::fake::FakeSys;
use crate::sys::fake6::{advert, Server6};

const MAC: &str = "52:54:00:12:34:56";

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// `/proc/net/if_inet6` lines for eth0: `(address, prefix, scope, flags)`.
fn if_inet6(sys: &FakeSys, addrs: &[(&str, u8, u8, u8)]) {
    let mut text = String::new();
    for (a, p, scope, flags) in addrs {
        text.push_str(&format!(
            "{:032x} 02 {p:02x} {scope:02x} {flags:02x}     eth0\n",
            u128::from(v6(a))
        ));
    }
    text.push_str("00000000000000000000000000000001 01 80 10 80       lo\n");
    sys.put("/proc/net/if_inet6", text.as_bytes());
}

const LINK_LOCAL: (&str, u8, u8, u8) = ("fe80::5054:ff:fe12:3456", 64, 0x20, 0x80);

fn cfg(ip: &[&str], ns: &[&str]) -> NetConfig {
    NetConfig {
        ip: ip
            .iter()
            .map(|s| wyrcan_core::ipconfig::parse(s).unwrap())
            .collect(),
        nameservers: ns
            .iter()
            .map(|s| wyrcan_core::ipconfig::parse_nameserver(s).unwrap())
            .collect(),
        ..NetConfig::default()
    }
}

fn resolv(sys: &FakeSys) -> String {
    String::from_utf8(sys.get("/etc/resolv.conf").unwrap()).unwrap()
}

#[test]
fn if_inet6_lines() {
    let text = "fe80000000000000505400fffe1234ff 02 40 20 c0     eth0\n\
                fd770000000000000000000000000042 02 40 00 80     eth0\n\
                00000000000000000000000000000001 01 80 10 80       lo\n";
    let a = parse_if_inet6(text, "eth0");
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].addr, v6("fe80::5054:ff:fe12:34ff"));
    assert!(!a[0].usable(), "tentative");
    assert_eq!(
        a[1],
        Inet6 {
            addr: v6("fd77::42"),
            prefix_len: 64,
            scope: 0,
            flags: 0x80
        }
    );
    assert!(a[1].usable());
    assert!(parse_if_inet6(text, "eth1").is_empty());
}

/// An IPv6-only network (RA with M and O, DHCPv6, no DHCPv4): the default
/// case finishes after the grace period, not DHCPv4's minute.
#[test]
fn default_on_an_ipv6_only_network() {
    let mut sys = FakeSys::default();
    sys.add_link("eth0", MAC);
    sys.put("/proc/sys/net/ipv6/conf/eth0/accept_ra", b"0\n");
    if_inet6(&sys, &[LINK_LOCAL, ("fd77::8e", 128, 0, 0x80)]);
    sys.net6.ra = Some(advert(
        0xc0,
        None,
        &[v6("fe80::1"), v6("fd77::1")],
        &["test"],
    ));
    sys.net6.dhcp6 = Some(Server6 {
        address: Some(v6("fd77::8e")),
        dns: vec![v6("fd77::1"), v6("fd77::2")],
        ntp: vec![v6("fd77::123")],
    });
    let t = Instant::now();
    let learned = up(&sys, &NetConfig::default()).unwrap();
    assert!(
        t.elapsed() < GRACE + Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    let calls = sys.calls();
    let pos = |s: &str| {
        calls
            .iter()
            .position(|c| c == s)
            .unwrap_or_else(|| panic!("no {s} in {calls:#?}"))
    };
    assert!(pos("write /proc/sys/net/ipv6/conf/eth0/accept_ra") < pos("link_up eth0"));
    assert!(pos("icmp6 type 133 to ff02::2") < pos("dhcp6 Solicit"));
    assert!(pos("dhcp6 Request") < pos("set_ipv6 eth0 fd77::8e/128"));
    assert!(
        !calls.iter().any(|c| c.starts_with("set_ipv4")),
        "{calls:?}"
    );
    assert_eq!(
        sys.get("/proc/sys/net/ipv6/conf/eth0/accept_ra").unwrap(),
        b"1"
    );
    assert_eq!(
        resolv(&sys),
        "nameserver fd77::1\nnameserver fd77::2\nsearch test\n"
    );
    assert_eq!(learned.ntp, [IpAddr::V6(v6("fd77::123"))]);
}

/// DHCPv4 and SLAAC both: both families' DNS in resolv.conf.
#[test]
fn default_with_dhcpv4_and_slaac() {
    let mut sys = FakeSys::default();
    sys.dhcp_server = true;
    sys.add_link("eth0", MAC);
    if_inet6(
        &sys,
        &[LINK_LOCAL, ("fd77::5054:ff:fe12:3456", 64, 0, 0x00)],
    );
    sys.net6.ra = Some(advert(0, Some(v6("fd77::")), &[v6("fd77::1")], &[]));
    up(&sys, &NetConfig::default()).unwrap();
    let calls = sys.calls();
    assert!(
        calls.contains(&"set_ipv4 eth0 10.0.2.15/24".into()),
        "{calls:?}"
    );
    // SLAAC is the kernel's: no address is set, no DHCPv6 is run.
    assert!(
        !calls.iter().any(|c| c.starts_with("set_ipv6")),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.starts_with("dhcp6")), "{calls:?}");
    assert_eq!(resolv(&sys), "nameserver fd77::1\n");
}

/// Stateless DHCPv6 (O flag only) adds DNS and NTP to SLAAC.
#[test]
fn auto6_with_the_o_flag() {
    let mut sys = FakeSys::default();
    sys.add_link("eth0", MAC);
    if_inet6(
        &sys,
        &[LINK_LOCAL, ("fd77::5054:ff:fe12:3456", 64, 0, 0x00)],
    );
    sys.net6.ra = Some(advert(0x40, Some(v6("fd77::")), &[], &[]));
    sys.net6.dhcp6 = Some(Server6 {
        address: None,
        dns: vec![v6("fd77::53")],
        ntp: vec![v6("fd77::123")],
    });
    let learned = up(&sys, &cfg(&["eth0:auto6"], &[])).unwrap();
    let calls = sys.calls();
    assert!(
        calls.contains(&"dhcp6 InformationRequest".into()),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("set_ipv6")),
        "{calls:?}"
    );
    assert_eq!(resolv(&sys), "nameserver fd77::53\n");
    assert_eq!(learned.ntp, [IpAddr::V6(v6("fd77::123"))]);
}

/// `ip=eth0:dhcp6` runs a stateful exchange even when the RA does not ask.
#[test]
fn dhcp6_is_stateful_whatever_the_router_says() {
    let mut sys = FakeSys::default();
    sys.add_link("eth0", MAC);
    if_inet6(&sys, &[LINK_LOCAL, ("fd77::8e", 128, 0, 0x80)]);
    sys.net6.ra = Some(advert(0, None, &[], &[]));
    sys.net6.dhcp6 = Some(Server6 {
        address: Some(v6("fd77::8e")),
        ..Server6::default()
    });
    up(&sys, &cfg(&["eth0:dhcp6"], &["[fd77::1]"])).unwrap();
    let calls = sys.calls();
    assert!(
        calls.contains(&"set_ipv6 eth0 fd77::8e/128".into()),
        "{calls:?}"
    );
    assert_eq!(resolv(&sys), "nameserver fd77::1\n");
}

#[test]
fn static_ipv6_address_route_and_nameserver() {
    let sys = FakeSys::default();
    sys.add_link("eth0", MAC);
    if_inet6(&sys, &[LINK_LOCAL, ("fd77::42", 64, 0, 0x80)]);
    up(
        &sys,
        &cfg(&["[fd77::42]::[fd77::1]:64::eth0:none"], &["[fd77::1]"]),
    )
    .unwrap();
    let calls = sys.calls();
    let pos = |s: &str| {
        calls
            .iter()
            .position(|c| c == s)
            .unwrap_or_else(|| panic!("no {s} in {calls:#?}"))
    };
    assert!(pos("set_ipv6 eth0 fd77::42/64") < pos("add_route6 eth0 ::/0 via fd77::1"));
    assert!(!calls.iter().any(|c| c.starts_with("icmp6")), "{calls:?}");
    assert_eq!(resolv(&sys), "nameserver fd77::1\n");
}

#[test]
fn no_router_names_the_interface() {
    let sys = FakeSys::default();
    sys.add_link("eth0", MAC);
    if_inet6(&sys, &[LINK_LOCAL]);
    let e = up(&sys, &cfg(&["eth0:auto6"], &[])).unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("no IPv6 router advertisement on eth0 within 10 s: is RA enabled"),
        "{e}"
    );
}

#[test]
fn no_ipv6_in_the_kernel_says_so() {
    let sys = FakeSys::default();
    sys.add_link("eth0", MAC);
    let e = up(&sys, &cfg(&["eth0:auto6"], &[])).unwrap_err();
    assert!(format!("{e:#}").contains("IPv6 is not available"), "{e:#}");
}
