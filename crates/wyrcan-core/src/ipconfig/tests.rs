//! `ip=` and `nameserver=` tests, many from dracut.cmdline(7) and the kernel's nfsroot.rst.

use super::parse::ANY_ADDRESS as ANY;
use super::*;

pub(super) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub(super) fn dhcp(iface: Option<&str>) -> IpConfig {
    IpConfig::Dhcp {
        iface: iface.map(str::to_string),
        link: LinkSettings::default(),
    }
}

pub(super) fn dhcp6(iface: Option<&str>) -> IpConfig {
    IpConfig::Dhcp6 {
        iface: iface.map(str::to_string),
        link: LinkSettings::default(),
    }
}

pub(super) fn auto6(iface: Option<&str>) -> IpConfig {
    IpConfig::Auto6 {
        iface: iface.map(str::to_string),
        link: LinkSettings::default(),
    }
}

pub(super) fn link(mtu: Option<u32>, mac: Option<[u8; 6]>) -> LinkSettings {
    LinkSettings { mtu, mac }
}

pub(super) const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

pub(super) fn stat(address: &str, prefix_len: u8) -> StaticIp {
    StaticIp {
        address: ip(address),
        prefix_len,
        gateway: None,
        hostname: None,
        iface: None,
        dns: vec![],
        link: LinkSettings::default(),
    }
}

pub(super) fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub(super) fn stat6(address: &str, prefix_len: u8) -> StaticIp6 {
    StaticIp6 {
        address: v6(address),
        prefix_len,
        gateway: None,
        hostname: None,
        iface: None,
        dns: vec![],
        link: LinkSettings::default(),
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
                expected: ANY,
            },
        ),
        (
            "10.0.0.2::gw:::eth0:none",
            IpError::Address {
                input: s("10.0.0.2::gw:::eth0:none"),
                field: "gateway",
                value: s("gw"),
                expected: ANY,
            },
        ),
        (
            "10.0.0.2:x::::eth0:none",
            IpError::Address {
                input: s("10.0.0.2:x::::eth0:none"),
                field: "server address",
                value: s("x"),
                expected: ANY,
            },
        ),
        (
            "10.0.0.2::::::none:dns",
            IpError::Address {
                input: s("10.0.0.2::::::none:dns"),
                field: "first DNS server",
                value: s("dns"),
                expected: ANY,
            },
        ),
        (
            "10.0.0.2::::::none:1.1.1.1:x",
            IpError::Address {
                input: s("10.0.0.2::::::none:1.1.1.1:x"),
                field: "second DNS server",
                value: s("x"),
                expected: ANY,
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
            "1:2:3:4:5:6:7:8:9:10:11:12:13:14:15",
            IpError::TooManyFields {
                input: s("1:2:3:4:5:6:7:8:9:10:11:12:13:14:15"),
                count: 15,
            },
        ),
        // Without an MTU in the eighth field, the kernel's ten at most.
        (
            "10.0.0.2::::::none:1.1.1.1:1.0.0.1:9.9.9.9:x",
            IpError::TooManyFields {
                input: s("10.0.0.2::::::none:1.1.1.1:1.0.0.1:9.9.9.9:x"),
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
        "both",
        "either6",
        "eth0:link6",
        "ibft",
        ":::::eth0:ibft",
        ":::::eth0:dhcp:1.1.1.1",
        "::::::::8.8.8.8",
        // MTU and MAC need an interface, and something to configure.
        ":dhcp:1500",
        "eth0:off:1500",
        "::::::none:1500",
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
        "1:2:3:4:5:6:7:8:9:10:11:12:13:14:15",
        "[::1",
        "eth0:dhcp:9",
        "eth0:dhcp:1500:52:54",
        "[2001:db8::2]::::::none",
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
        "auto6",
        "eth0:auto6",
        "eth0:dhcp:9000",
        "eth0:dhcp::52:54:00:12:34:56",
        "eth0:dhcp6:1500:52:54:00:12:34:56",
        "10.0.0.2::10.0.0.1:24::eth0:none:9000:52:54:00:12:34:56",
        "10.0.0.2::::::none::52:54:00:12:34:56",
        "[2001:db8::2]::[2001:db8::1]:64:box:eth0:none",
        "[2001:db8::2]:::64:::none:[2001:db8::53]:9.9.9.9",
        "[2001:db8::2]:::48::eth0:none:1500",
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
