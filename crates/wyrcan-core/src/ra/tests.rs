//! Router Advertisement, Router Solicitation, DNS name and SLAAC tests.

use super::*;

/// The advertisement systemd's NDisc test (`test-ndisc-rs.c`) sends:
/// M and O set, a 64-bit autonomous on-link prefix 2001:db8:dead:beef::/64,
/// one RDNSS, the search domain `lab.intra`, the router's MAC.
const SYSTEMD_RA: [u8; 104] = [
    0x86, 0x00, 0xde, 0x83, 0x40, 0xc0, 0x00, 0xb4, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x03, 0x04, 0x40, 0xc0, 0x00, 0x00, 0x01, 0xf4, //
    0x00, 0x00, 0x01, 0xb8, 0x00, 0x00, 0x00, 0x00, //
    0x20, 0x01, 0x0d, 0xb8, 0xde, 0xad, 0xbe, 0xef, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x19, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, //
    0x20, 0x01, 0x0d, 0xb8, 0xde, 0xad, 0xbe, 0xef, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
    0x1f, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, //
    0x03, 0x6c, 0x61, 0x62, 0x05, 0x69, 0x6e, 0x74, //
    0x72, 0x61, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x01, 0x01, 0x78, 0x2b, 0xcb, 0xb3, 0x6d, 0x53, //
];

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn parses_systemds_test_advertisement() {
    let ra = RouterAdvert::parse(&SYSTEMD_RA).unwrap();
    assert_eq!(
        ra,
        RouterAdvert {
            hop_limit: 64,
            managed: true,
            other: true,
            router_lifetime: 180,
            reachable: 0,
            retrans: 0,
            mtu: None,
            prefixes: vec![PrefixInfo {
                prefix: v6("2001:db8:dead:beef::"),
                len: 64,
                on_link: true,
                autonomous: true,
                valid: 500,
                preferred: 440,
            }],
            rdnss: vec![(v6("2001:db8:dead:beef::1"), 60)],
            dnssl: vec![("lab.intra".into(), 60)],
            source_lladdr: Some([0x78, 0x2b, 0xcb, 0xb3, 0x6d, 0x53]),
        }
    );
    // The flags byte as the test varies it.
    let mut m = SYSTEMD_RA;
    m[5] = 0x40;
    let ra = RouterAdvert::parse(&m).unwrap();
    assert_eq!((ra.managed, ra.other), (false, true));
    m[5] = 0;
    let ra = RouterAdvert::parse(&m).unwrap();
    assert_eq!((ra.managed, ra.other), (false, false));
}

/// An RA as radvd sends with `AdvLinkMTU 9000`, two RDNSS addresses,
/// two search domains, an unknown option (24, route information) and a
/// non-autonomous prefix.
#[test]
fn mtu_several_servers_and_unknown_options() {
    let mut m = vec![
        134, 0, 0, 0, 255, 0, 0x07, 0x08, 0, 0, 0x75, 0x30, 0, 0, 0x03, 0xe8,
    ];
    m.extend_from_slice(&[5, 1, 0, 0, 0, 0, 0x23, 0x28]);
    m.extend_from_slice(&[25, 5, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    m.extend_from_slice(&v6("fd00::53").octets());
    m.extend_from_slice(&v6("fd00::54").octets());
    let names = encode_names(&["dc1.example.com", "example.com"]);
    let mut dnssl = vec![31, 0, 0, 0, 0, 0, 0x0e, 0x10];
    dnssl.extend_from_slice(&names);
    while dnssl.len() % 8 != 0 {
        dnssl.push(0);
    }
    dnssl[1] = (dnssl.len() / 8) as u8;
    m.extend_from_slice(&dnssl);
    m.extend_from_slice(&[24, 2, 48, 0, 0, 0, 0, 60]);
    m.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0]);
    m.extend_from_slice(&[3, 4, 48, 0x80, 0, 0, 0, 10, 0, 0, 0, 5, 0, 0, 0, 0]);
    m.extend_from_slice(&v6("2001:db8:1::").octets());

    let ra = RouterAdvert::parse(&m).unwrap();
    assert_eq!(ra.hop_limit, 255);
    assert_eq!(ra.router_lifetime, 0x0708);
    assert_eq!(ra.reachable, 30000);
    assert_eq!(ra.retrans, 1000);
    assert_eq!(ra.mtu, Some(9000));
    assert_eq!(
        ra.rdnss,
        vec![(v6("fd00::53"), u32::MAX), (v6("fd00::54"), u32::MAX)]
    );
    assert_eq!(
        ra.dnssl,
        vec![
            ("dc1.example.com".into(), 3600),
            ("example.com".into(), 3600)
        ]
    );
    assert_eq!(
        ra.prefixes,
        vec![PrefixInfo {
            prefix: v6("2001:db8:1::"),
            len: 48,
            on_link: true,
            autonomous: false,
            valid: 10,
            preferred: 5,
        }]
    );
    assert_eq!(ra.source_lladdr, None);
}

#[test]
fn malformed_advertisements_are_errors() {
    let ra = SYSTEMD_RA;
    assert_eq!(
        RouterAdvert::parse(&ra[..15]),
        Err(RaError::Truncated { len: 15 })
    );
    assert_eq!(RouterAdvert::parse(&[]), Err(RaError::Truncated { len: 0 }));
    let mut m = ra;
    m[0] = 133;
    assert_eq!(
        RouterAdvert::parse(&m),
        Err(RaError::NotAdvert { kind: 133, code: 0 })
    );
    m = ra;
    m[1] = 1;
    assert_eq!(
        RouterAdvert::parse(&m),
        Err(RaError::NotAdvert { kind: 134, code: 1 })
    );
    // Length 0 would loop forever: RFC 4861 says to drop the message.
    m = ra;
    m[17] = 0;
    assert_eq!(
        RouterAdvert::parse(&m),
        Err(RaError::ZeroLengthOption {
            kind: 3,
            offset: 16
        })
    );
    // Cut inside the last option, and one byte past the end of it.
    assert_eq!(
        RouterAdvert::parse(&ra[..100]),
        Err(RaError::TruncatedOption {
            kind: 1,
            offset: 96
        })
    );
    let mut long = ra.to_vec();
    long.push(7);
    assert_eq!(
        RouterAdvert::parse(&long),
        Err(RaError::TruncatedOption {
            kind: 7,
            offset: 104
        })
    );
    // A length past the end.
    m = ra;
    m[97] = 2;
    assert_eq!(
        RouterAdvert::parse(&m),
        Err(RaError::TruncatedOption {
            kind: 1,
            offset: 96
        })
    );
    // Prefix information of the wrong size, and with a prefix length over 128.
    let mut short_prefix = ra[..16].to_vec();
    short_prefix.extend_from_slice(&[3, 1, 64, 0xc0, 0, 0, 0, 0]);
    assert!(matches!(
        RouterAdvert::parse(&short_prefix),
        Err(RaError::BadOptionLength {
            kind: 3,
            len: 8,
            ..
        })
    ));
    m = ra;
    m[18] = 129;
    assert_eq!(RouterAdvert::parse(&m), Err(RaError::PrefixLength(129)));
    // RDNSS without an address, MTU of the wrong size, DNSSL of 8 bytes.
    for opt in [
        [25u8, 1, 0, 0, 0, 0, 0, 60],
        [5, 2, 0, 0, 0, 0, 5, 0xdc],
        [31, 1, 0, 0, 0, 0, 0, 60],
    ] {
        let mut m = ra[..16].to_vec();
        m.extend_from_slice(&opt);
        if opt[1] == 2 {
            m.extend_from_slice(&[0; 8]);
        }
        assert!(
            matches!(
                RouterAdvert::parse(&m),
                Err(RaError::BadOptionLength { .. })
            ),
            "{opt:?}: {:?}",
            RouterAdvert::parse(&m)
        );
    }
    // RDNSS with half an address.
    let mut m = ra[..16].to_vec();
    m.extend_from_slice(&[25, 2, 0, 0, 0, 0, 0, 60]);
    m.extend_from_slice(&[0; 8]);
    assert!(matches!(
        RouterAdvert::parse(&m),
        Err(RaError::BadOptionLength { kind: 25, .. })
    ));
    // A search domain with a space in it would split a resolv.conf line.
    let mut m = ra;
    m[82] = b' ';
    assert_eq!(
        RouterAdvert::parse(&m),
        Err(RaError::SearchList(NameError::BadByte(b' ')))
    );
    let e = RouterAdvert::parse(&m).unwrap_err().to_string();
    assert_eq!(
        e,
        "router advertisement search list: a domain name has the byte 0x20: expected letters, digits, '-' and '_'"
    );
}

/// A source link-layer option for another link type is ignored, not an error.
#[test]
fn other_link_layer_addresses_are_ignored() {
    let mut m = SYSTEMD_RA[..16].to_vec();
    m.extend_from_slice(&[1, 2, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0]);
    assert_eq!(RouterAdvert::parse(&m).unwrap().source_lladdr, None);
}

#[test]
fn names() {
    assert_eq!(
        decode_names(&encode_names(&["lab.intra", "a-b_c.example", "x"])),
        Ok(vec!["lab.intra".into(), "a-b_c.example".into(), "x".into()])
    );
    assert_eq!(decode_names(&[]), Ok(vec![]));
    // Padding and the root name are skipped.
    assert_eq!(decode_names(&[0, 0, 1, b'a', 0, 0]), Ok(vec!["a".into()]));
    for (bad, want) in [
        (&[3, b'l', b'a'][..], NameError::Truncated),
        (&[3, b'l', b'a', b'b'][..], NameError::Truncated),
        (&[0xc0, 0x0c][..], NameError::BadLabel(0xc0)),
        (&[64][..], NameError::BadLabel(64)),
        (&[1, b'.', 0][..], NameError::BadByte(b'.')),
        (&[1, b'\n', 0][..], NameError::BadByte(b'\n')),
        (&[1, 0xff, 0][..], NameError::BadByte(0xff)),
    ] {
        assert_eq!(decode_names(bad), Err(want), "{bad:?}");
    }
    // 4 labels of 63 bytes: 256 bytes with their length bytes, plus the end.
    let long = vec!["a".repeat(63); 4].join(".");
    assert_eq!(
        decode_names(&encode_names(&[&long])),
        Err(NameError::TooLong)
    );
    let max = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
    assert_eq!(decode_names(&encode_names(&[&max])), Ok(vec![max.clone()]));
    assert_eq!(encode_names(&["a.", ""]), vec![1, b'a', 0, 0]);
}

#[test]
fn router_solicitations() {
    assert_eq!(router_solicitation(None), vec![133, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        router_solicitation(Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])),
        vec![133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]
    );
}

/// The kernel's SLAAC addresses (addr_gen_mode 0) for QEMU's default MAC
/// and for a MAC with the universal/local bit already set.
#[test]
fn slaac_addresses() {
    assert_eq!(
        slaac_address(v6("fec0::"), [0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        v6("fec0::5054:ff:fe12:3456")
    );
    assert_eq!(
        slaac_address(
            v6("2001:db8:dead:beef:1:2:3:4"),
            [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]
        ),
        v6("2001:db8:dead:beef:21b:21ff:feaa:bbcc")
    );
    assert_eq!(
        slaac_address(v6("fe80::"), [0x02, 0, 0, 0, 0, 1]),
        v6("fe80::ff:fe00:1")
    );
}
