//! `ip=` in dracut's forms: per-interface methods, MTU and MAC fields,
//! static IPv6 in brackets.

use super::parse::{ANY_ADDRESS as ANY, V4_ADDRESS, V4_DNS, V6_ADDRESS};
use super::tests::{auto6, dhcp, dhcp6, ip, link, stat, stat6, v6, MAC};
use super::*;

/// The `ip=` lines of dracut.cmdline(7) and of dracut's own test suite
/// (`test/TEST-*`), which operators' PXE configs are written after.
#[test]
fn dracut_examples() {
    let eth = |i: &str, m: &str| parse(&format!("{i}:{m}")).unwrap();
    for (m, want) in [
        ("dhcp", dhcp(Some("enp0s1"))),
        ("on", dhcp(Some("enp0s1"))),
        ("any", dhcp(Some("enp0s1"))),
        ("dhcp6", dhcp6(Some("enp0s1"))),
        ("auto6", auto6(Some("enp0s1"))),
    ] {
        assert_eq!(eth("enp0s1", m), want, "{m}");
    }
    for (word, want) in [
        ("dhcp", dhcp(None)),
        ("on", dhcp(None)),
        ("any", dhcp(None)),
        ("single-dhcp", dhcp(None)),
        ("dhcp6", dhcp6(None)),
        ("auto6", auto6(None)),
    ] {
        assert_eq!(parse(word), Ok(want), "{word}");
    }
    let ok: Vec<(&str, IpConfig)> = vec![
        ("bond0:dhcp", dhcp(Some("bond0"))),
        (
            "bridge0:dhcp::52:54:00:12:34:00",
            IpConfig::Dhcp {
                iface: Some("bridge0".into()),
                link: link(None, Some([0x52, 0x54, 0, 0x12, 0x34, 0])),
            },
        ),
        (
            "192.168.50.101::192.168.50.1:255.255.255.0:iscsi-1:enp0s1:off",
            IpConfig::Static(StaticIp {
                gateway: Some(ip("192.168.50.1")),
                hostname: Some("iscsi-1".into()),
                iface: Some("enp0s1".into()),
                ..stat("192.168.50.101", 24)
            }),
        ),
        (
            "192.168.51.101:::255.255.255.0::enp0s2:off",
            IpConfig::Static(StaticIp {
                iface: Some("enp0s2".into()),
                ..stat("192.168.51.101", 24)
            }),
        ),
        (
            "192.168.54.101::192.168.54.1:24:test:vlan0001:none",
            IpConfig::Static(StaticIp {
                gateway: Some(ip("192.168.54.1")),
                hostname: Some("test".into()),
                iface: Some("vlan0001".into()),
                ..stat("192.168.54.101", 24)
            }),
        ),
        (
            "192.168.57.104::192.168.57.1:24:test:net2.0004:none",
            IpConfig::Static(StaticIp {
                gateway: Some(ip("192.168.57.1")),
                hostname: Some("test".into()),
                iface: Some("net2.0004".into()),
                ..stat("192.168.57.104", 24)
            }),
        ),
        // "If you want do define a IPv6 address, put it in brackets (e.g. [2001:DB8::1])."
        (
            "[2001:DB8::1]::[2001:DB8::fffe]:64:box:eth0:none",
            IpConfig::Static6(StaticIp6 {
                gateway: Some(v6("2001:db8::fffe")),
                hostname: Some("box".into()),
                iface: Some("eth0".into()),
                ..stat6("2001:db8::1", 64)
            }),
        ),
        // `<peer>` "may be followed by a slash and a decimal number".
        (
            "10.0.0.2:10.0.0.1/30:::::none",
            IpConfig::Static(stat("10.0.0.2", 8)),
        ),
    ];
    for (input, want) in &ok {
        assert_eq!(parse(input).as_ref(), Ok(want), "{input:?}");
    }
}

#[test]
fn mtu_and_mac_fields() {
    let with = |iface: &str, l: LinkSettings| IpConfig::Dhcp {
        iface: Some(iface.into()),
        link: l,
    };
    let ok: Vec<(&str, IpConfig)> = vec![
        ("eth0:dhcp:9000", with("eth0", link(Some(9000), None))),
        ("eth0:dhcp:", with("eth0", link(None, None))),
        ("eth0:dhcp:68", with("eth0", link(Some(68), None))),
        ("eth0:dhcp:65535", with("eth0", link(Some(65535), None))),
        (
            "eth0:dhcp:1500:52:54:00:12:34:56",
            with("eth0", link(Some(1500), Some(MAC))),
        ),
        (
            "eth0:on::52:54:00:12:34:56",
            with("eth0", link(None, Some(MAC))),
        ),
        // Either case, as `ip link` takes it.
        (
            "eth0:any::52:54:00:AB:cd:EF",
            with("eth0", link(None, Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef]))),
        ),
        (
            "eth0:auto6:1280",
            IpConfig::Auto6 {
                iface: Some("eth0".into()),
                link: link(Some(1280), None),
            },
        ),
        // The kernel's form: digits in the eighth field are an MTU, not a DNS server.
        (
            "10.0.0.2::10.0.0.1:24::eth0:none:9000:52:54:00:12:34:56",
            IpConfig::Static(StaticIp {
                gateway: Some(ip("10.0.0.1")),
                iface: Some("eth0".into()),
                link: link(Some(9000), Some(MAC)),
                ..stat("10.0.0.2", 24)
            }),
        ),
        (
            "10.0.0.2:::24::eth0:none:1500",
            IpConfig::Static(StaticIp {
                iface: Some("eth0".into()),
                link: link(Some(1500), None),
                ..stat("10.0.0.2", 24)
            }),
        ),
        // Empty, then a MAC address: dracut's MAC without MTU.
        (
            "10.0.0.2:::24::eth0:none::52:54:00:12:34:56",
            IpConfig::Static(StaticIp {
                iface: Some("eth0".into()),
                link: link(None, Some(MAC)),
                ..stat("10.0.0.2", 24)
            }),
        ),
        (":::::eth0:dhcp:9000", with("eth0", link(Some(9000), None))),
        (
            "[fd00::5]:::64::eth0:none:9000:52:54:00:12:34:56",
            IpConfig::Static6(StaticIp6 {
                iface: Some("eth0".into()),
                link: link(Some(9000), Some(MAC)),
                ..stat6("fd00::5", 64)
            }),
        ),
    ];
    for (input, want) in &ok {
        assert_eq!(parse(input).as_ref(), Ok(want), "{input:?}");
        assert_eq!(parse(input).unwrap().link(), want.link(), "{input:?}");
    }

    let s = |x: &str| x.to_string();
    let mtu = |input: &str, value: &str, min| IpError::Mtu {
        input: s(input),
        value: s(value),
        min,
    };
    let mac = |input: &str, value: &str| IpError::Mac {
        input: s(input),
        value: s(value),
    };
    let bad: Vec<(&str, IpError)> = vec![
        ("eth0:dhcp:67", mtu("eth0:dhcp:67", "67", 68)),
        ("eth0:dhcp:65536", mtu("eth0:dhcp:65536", "65536", 68)),
        ("eth0:dhcp:+1500", mtu("eth0:dhcp:+1500", "+1500", 68)),
        ("eth0:dhcp:big", mtu("eth0:dhcp:big", "big", 68)),
        (
            "eth0:dhcp:99999999999",
            mtu("eth0:dhcp:99999999999", "99999999999", 68),
        ),
        // IPv6 needs 1280 (RFC 8200 §5); the kernel would turn it off below.
        ("eth0:dhcp6:1279", mtu("eth0:dhcp6:1279", "1279", 1280)),
        ("eth0:auto6:576", mtu("eth0:auto6:576", "576", 1280)),
        (
            "[fd00::5]:::64::eth0:none:1000",
            mtu("[fd00::5]:::64::eth0:none:1000", "1000", 1280),
        ),
        (
            "eth0:dhcp:1500:52-54-00-12-34-56",
            mac("eth0:dhcp:1500:52-54-00-12-34-56", "52-54-00-12-34-56"),
        ),
        (
            "eth0:dhcp:1500:52:54:00:12:34",
            mac("eth0:dhcp:1500:52:54:00:12:34", "52:54:00:12:34"),
        ),
        (
            "eth0:dhcp:1500:52:54:00:12:34:5g",
            mac("eth0:dhcp:1500:52:54:00:12:34:5g", "52:54:00:12:34:5g"),
        ),
        // Multicast and zero addresses are no NIC's.
        (
            "eth0:dhcp::01:00:5e:00:00:01",
            mac("eth0:dhcp::01:00:5e:00:00:01", "01:00:5e:00:00:01"),
        ),
        (
            "eth0:dhcp::00:00:00:00:00:00",
            mac("eth0:dhcp::00:00:00:00:00:00", "00:00:00:00:00:00"),
        ),
        (
            "10.0.0.2:::24::eth0:none:1500:52:54:00:12:34",
            mac(
                "10.0.0.2:::24::eth0:none:1500:52:54:00:12:34",
                "52:54:00:12:34",
            ),
        ),
    ];
    for (input, want) in &bad {
        assert_eq!(parse(input).as_ref(), Err(want), "{input:?}");
    }
    assert_eq!(
        parse("eth0:dhcp6:1279").unwrap_err().to_string(),
        "ip=\"eth0:dhcp6:1279\": the MTU \"1279\" is not a number from 1280 to 65535"
    );
}

#[test]
fn static_ipv6() {
    let ok: Vec<(&str, IpConfig)> = vec![
        (
            "[2001:db8::2]:::64:::none",
            IpConfig::Static6(stat6("2001:db8::2", 64)),
        ),
        // No autoconf: static, as for IPv4.
        (
            "[2001:db8::2]:::/56",
            IpConfig::Static6(stat6("2001:db8::2", 56)),
        ),
        (
            "[2001:db8::2]:::128",
            IpConfig::Static6(stat6("2001:db8::2", 128)),
        ),
        // An empty gateway, in brackets or not.
        (
            "[2001:db8::2]::[]:64:::none",
            IpConfig::Static6(stat6("2001:db8::2", 64)),
        ),
        (
            "[2001:db8::2]::[::]:64:::off",
            IpConfig::Static6(stat6("2001:db8::2", 64)),
        ),
        (
            "[2001:db8::2]::[fe80::1]:64:h:eth0:none:[2001:db8::53]:192.0.2.53",
            IpConfig::Static6(StaticIp6 {
                gateway: Some(v6("fe80::1")),
                hostname: Some("h".into()),
                iface: Some("eth0".into()),
                dns: vec![
                    "2001:db8::53".parse().unwrap(),
                    "192.0.2.53".parse().unwrap(),
                ],
                ..stat6("2001:db8::2", 64)
            }),
        ),
        // With DHCP the address is ignored, as for IPv4.
        ("[2001:db8::2]:::64::eth0:dhcp6", dhcp6(Some("eth0"))),
        ("[2001:db8::2]:::64::eth0:auto6", auto6(Some("eth0"))),
        ("[::]:::64::eth0:", dhcp(Some("eth0"))),
        // An IPv4 client may name its DNS servers; an IPv6 one in brackets is refused below.
        (
            "10.0.0.2:::24:::none:10.0.0.53",
            IpConfig::Static(StaticIp {
                dns: vec![ip("10.0.0.53")],
                ..stat("10.0.0.2", 24)
            }),
        ),
    ];
    for (input, want) in &ok {
        assert_eq!(parse(input).as_ref(), Ok(want), "{input:?}");
    }

    let s = |x: &str| x.to_string();
    let addr = |input: &str, field, value: &str, expected| IpError::Address {
        input: s(input),
        field,
        value: s(value),
        expected,
    };
    let prefix = |input: &str, value: &str| IpError::Prefix6 {
        input: s(input),
        value: s(value),
    };
    let bad: Vec<(&str, IpError)> = vec![
        (
            "[2001:db8::2]:::::eth0:none",
            prefix("[2001:db8::2]:::::eth0:none", ""),
        ),
        ("[2001:db8::2]:::129", prefix("[2001:db8::2]:::129", "129")),
        // An IPv6 netmask is not a thing: the field splits, and is no prefix length.
        (
            "[2001:db8::2]:::ffff:ffff::",
            prefix("[2001:db8::2]:::ffff:ffff::", "ffff"),
        ),
        (
            "[2001:db8::2]::192.0.2.1:64",
            addr(
                "[2001:db8::2]::192.0.2.1:64",
                "gateway",
                "192.0.2.1",
                V6_ADDRESS,
            ),
        ),
        (
            "10.0.0.2::[2001:db8::1]:24",
            addr(
                "10.0.0.2::[2001:db8::1]:24",
                "gateway",
                "[2001:db8::1]",
                V4_ADDRESS,
            ),
        ),
        (
            "10.0.0.2:::24:::none:[2001:db8::53]",
            addr(
                "10.0.0.2:::24:::none:[2001:db8::53]",
                "first DNS server",
                "[2001:db8::53]",
                V4_DNS,
            ),
        ),
        (
            "[2001:db8::g]:::64",
            addr("[2001:db8::g]:::64", "client address", "[2001:db8::g]", ANY),
        ),
        (
            "[10.0.0.1]:::64",
            addr("[10.0.0.1]:::64", "client address", "[10.0.0.1]", ANY),
        ),
        (
            "[2001:db8::2]x:::64",
            addr(
                "[2001:db8::2]x:::64",
                "client address",
                "[2001:db8::2]x",
                ANY,
            ),
        ),
        (
            "[[::1]]:::64",
            IpError::Brackets {
                input: s("[[::1]]:::64"),
            },
        ),
        (
            "::1]:::64",
            IpError::Brackets {
                input: s("::1]:::64"),
            },
        ),
    ];
    for (input, want) in &bad {
        assert_eq!(parse(input).as_ref(), Err(want), "{input:?}");
    }
}

#[test]
fn display_of_new_forms() {
    assert_eq!(
        parse("eth0:dhcp:9000:52:54:00:AB:CD:EF")
            .unwrap()
            .to_string(),
        "eth0:dhcp:9000:52:54:00:ab:cd:ef"
    );
    assert_eq!(
        parse("[2001:DB8::2]::[2001:DB8::1]:/64::eth0:none")
            .unwrap()
            .to_string(),
        "[2001:db8::2]::[2001:db8::1]:64::eth0:none"
    );
    // An interface named like an address goes in the device field.
    for input in [":::::1.2.3.4:dhcp", ":::::[x]:dhcp6:1500"] {
        let c = parse(input).unwrap();
        assert_eq!(c.to_string(), input);
        assert_eq!(parse(&c.to_string()), Ok(c));
    }
    assert_eq!(IpConfig::default(), dhcp(None));
    assert_eq!(IpConfig::default().to_string(), "dhcp");
    assert_eq!(parse("eth0:auto6").unwrap().iface(), Some("eth0"));
    assert_eq!(parse("[fd00::1]:::64::eth1").unwrap().iface(), Some("eth1"));
    assert_eq!(parse("off").unwrap().iface(), None);
}
