//! Codec tests, on the Advertise and Reply of systemd's DHCPv6 client
//! test (`test-dhcp6-client.c`) and on hostile input.

use super::*;

/// systemd's `msg_advertise`: xid 0x0fb4e5, DUID-LLT client and server
/// ids, an IA_NA (IAID 0x0ecfa37d, T1 80, T2 120) with one address
/// (preferred 150 s, valid 180 s) and a success status, DNS, the search
/// domain `lab.intra`, an SNTP server and preference 0.
pub(super) const ADVERTISE: [u8; 198] = [
    0x02, 0x0f, 0xb4, 0xe5, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x1a, 0x6b, 0xf3, 0x30,
    0x3c, 0x97, 0x0e, 0xcf, 0xa3, 0x7d, 0x00, 0x03, 0x00, 0x5e, 0x0e, 0xcf, 0xa3, 0x7d, 0x00, 0x00,
    0x00, 0x50, 0x00, 0x00, 0x00, 0x78, 0x00, 0x05, 0x00, 0x18, 0x20, 0x01, 0x0d, 0xb8, 0xde, 0xad,
    0xbe, 0xef, 0x78, 0xee, 0x1c, 0xf3, 0x09, 0x3c, 0x55, 0xad, 0x00, 0x00, 0x00, 0x96, 0x00, 0x00,
    0x00, 0xb4, 0x00, 0x0d, 0x00, 0x32, 0x00, 0x00, 0x41, 0x64, 0x64, 0x72, 0x65, 0x73, 0x73, 0x28,
    0x65, 0x73, 0x29, 0x20, 0x72, 0x65, 0x6e, 0x65, 0x77, 0x65, 0x64, 0x2e, 0x20, 0x47, 0x72, 0x65,
    0x65, 0x74, 0x69, 0x6e, 0x67, 0x73, 0x20, 0x66, 0x72, 0x6f, 0x6d, 0x20, 0x70, 0x6c, 0x61, 0x6e,
    0x65, 0x74, 0x20, 0x45, 0x61, 0x72, 0x74, 0x68, 0x00, 0x17, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8,
    0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x18, 0x00, 0x0b,
    0x03, 0x6c, 0x61, 0x62, 0x05, 0x69, 0x6e, 0x74, 0x72, 0x61, 0x00, 0x00, 0x1f, 0x00, 0x10, 0x20,
    0x01, 0x0d, 0xb8, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x02, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x19, 0x40, 0x5c, 0x53, 0x78, 0x2b, 0xcb, 0xb3, 0x6d,
    0x53, 0x00, 0x07, 0x00, 0x01, 0x00,
];

/// systemd's `msg_reply`: xid 0xf74e57, the same server, IA_NA and DNS
/// options, the status "All addresses were assigned.".
pub(super) const REPLY: [u8; 173] = [
    0x07, 0xf7, 0x4e, 0x57, 0x00, 0x02, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x19, 0x40, 0x5c, 0x53,
    0x78, 0x2b, 0xcb, 0xb3, 0x6d, 0x53, 0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x1a, 0x6b,
    0xf3, 0x30, 0x3c, 0x97, 0x0e, 0xcf, 0xa3, 0x7d, 0x00, 0x03, 0x00, 0x4a, 0x0e, 0xcf, 0xa3, 0x7d,
    0x00, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x78, 0x00, 0x05, 0x00, 0x18, 0x20, 0x01, 0x0d, 0xb8,
    0xde, 0xad, 0xbe, 0xef, 0x78, 0xee, 0x1c, 0xf3, 0x09, 0x3c, 0x55, 0xad, 0x00, 0x00, 0x00, 0x96,
    0x00, 0x00, 0x00, 0xb4, 0x00, 0x0d, 0x00, 0x1e, 0x00, 0x00, 0x41, 0x6c, 0x6c, 0x20, 0x61, 0x64,
    0x64, 0x72, 0x65, 0x73, 0x73, 0x65, 0x73, 0x20, 0x77, 0x65, 0x72, 0x65, 0x20, 0x61, 0x73, 0x73,
    0x69, 0x67, 0x6e, 0x65, 0x64, 0x2e, 0x00, 0x17, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0xde, 0xad,
    0xbe, 0xef, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x18, 0x00, 0x0b, 0x03, 0x6c,
    0x61, 0x62, 0x05, 0x69, 0x6e, 0x74, 0x72, 0x61, 0x00, 0x00, 0x1f, 0x00, 0x10, 0x20, 0x01, 0x0d,
    0xb8, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
];

pub(super) const SERVER_DUID: [u8; 14] = [
    0x00, 0x01, 0x00, 0x01, 0x19, 0x40, 0x5c, 0x53, 0x78, 0x2b, 0xcb, 0xb3, 0x6d, 0x53,
];
const CLIENT_DUID: [u8; 14] = [
    0x00, 0x01, 0x00, 0x01, 0x1a, 0x6b, 0xf3, 0x30, 0x3c, 0x97, 0x0e, 0xcf, 0xa3, 0x7d,
];

pub(super) fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ok(message: &str) -> Option<Status> {
    Some(Status {
        code: status::SUCCESS,
        message: message.into(),
    })
}

#[test]
fn decodes_systemds_advertise() {
    let m = Message::decode(&ADVERTISE).unwrap();
    let dead_beef_1 = v6("2001:db8:dead:beef::1");
    assert_eq!(
        m,
        Message {
            kind: MessageType::Advertise,
            xid: 0x0f_b4e5,
            options: Options {
                client_id: Some(CLIENT_DUID.to_vec()),
                server_id: Some(SERVER_DUID.to_vec()),
                ia_na: vec![IaNa {
                    iaid: 0x0ecf_a37d,
                    t1: 80,
                    t2: 120,
                    addresses: vec![IaAddr {
                        addr: v6("2001:db8:dead:beef:78ee:1cf3:93c:55ad"),
                        preferred: 150,
                        valid: 180,
                        status: None,
                    }],
                    status: ok("Address(es) renewed. Greetings from planet Earth"),
                }],
                preference: Some(0),
                dns: vec![dead_beef_1],
                search: vec!["lab.intra".into()],
                sntp: vec![dead_beef_1],
                ..Options::default()
            },
        }
    );
}

#[test]
fn decodes_systemds_reply() {
    let m = Message::decode(&REPLY).unwrap();
    assert_eq!(m.kind, MessageType::Reply);
    assert_eq!(m.xid, 0xf7_4e57);
    assert_eq!(m.options.server_id.as_deref(), Some(&SERVER_DUID[..]));
    assert_eq!(m.options.client_id.as_deref(), Some(&CLIENT_DUID[..]));
    assert_eq!(m.options.ia_na.len(), 1);
    assert_eq!(
        m.options.ia_na[0].status,
        ok("All addresses were assigned.")
    );
    assert_eq!(m.options.ia_na[0].addresses[0].valid, 180);
    assert_eq!(m.options.search, ["lab.intra"]);
    assert_eq!(m.options.preference, None);
}

#[test]
fn round_trip() {
    let m = Message {
        kind: MessageType::Reply,
        // The top byte is not part of a DHCPv6 transaction id.
        xid: 0x00ab_cdef,
        options: Options {
            client_id: Some(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1]),
            server_id: Some(SERVER_DUID.to_vec()),
            ia_na: vec![
                IaNa {
                    iaid: 7,
                    t1: 0,
                    t2: u32::MAX,
                    addresses: vec![
                        IaAddr {
                            addr: v6("2001:db8::10"),
                            preferred: 3600,
                            valid: 7200,
                            status: None,
                        },
                        IaAddr {
                            addr: v6("2001:db8::11"),
                            preferred: 0,
                            valid: 0,
                            status: Some(Status {
                                code: status::NOT_ON_LINK,
                                message: "gone".into(),
                            }),
                        },
                    ],
                    status: None,
                },
                IaNa {
                    iaid: 8,
                    t1: 1,
                    t2: 2,
                    addresses: vec![],
                    status: Some(Status {
                        code: status::NO_ADDRS_AVAIL,
                        message: String::new(),
                    }),
                },
            ],
            oro: vec![23, 24, 56],
            preference: Some(255),
            elapsed_time: Some(0xffff),
            status: Some(Status {
                code: status::UNSPEC_FAIL,
                message: "nope".into(),
            }),
            dns: vec![v6("2001:db8::53"), v6("2001:db8::54")],
            search: vec!["dc1.example.com".into(), "example.com".into()],
            sntp: vec![v6("2001:db8::123")],
            ntp: vec![
                NtpServer6::Address(v6("2001:db8::124")),
                NtpServer6::Multicast(v6("ff05::101")),
                NtpServer6::Fqdn("time.example.com".into()),
            ],
            sol_max_rt: Some(120),
            inf_max_rt: Some(86400),
            other: vec![(39, b"\x00\x04host".to_vec()), (14, vec![])],
        },
    };
    let bytes = m.encode();
    assert_eq!(bytes[..4], [7, 0xab, 0xcd, 0xef]);
    assert_eq!(Message::decode(&bytes).unwrap(), m);
}

#[test]
fn ntp_suboptions() {
    // RFC 5908: one option per server; unknown suboptions are skipped.
    let mut bytes = vec![7, 0, 0, 1];
    let mut opt = Vec::new();
    put_option(
        &mut opt,
        ntp_suboption::SRV_FQDN,
        &encode_names(&["ntp.lan"]),
    );
    put_option(&mut opt, 9, b"future");
    put_option(&mut opt, ntp_suboption::SRV_ADDR, &v6("fd00::7b").octets());
    put_option(&mut bytes, code::NTP_SERVER, &opt);
    assert_eq!(
        Message::decode(&bytes).unwrap().options.ntp,
        vec![
            NtpServer6::Fqdn("ntp.lan".into()),
            NtpServer6::Address(v6("fd00::7b"))
        ]
    );
}

/// Singletons: the first instance counts; lists add up.
#[test]
fn repeated_options() {
    let mut bytes = vec![7, 0, 0, 1];
    put_option(&mut bytes, code::SERVER_ID, b"first");
    put_option(&mut bytes, code::SERVER_ID, b"second");
    put_option(&mut bytes, code::PREFERENCE, &[10]);
    put_option(&mut bytes, code::PREFERENCE, &[255]);
    put_option(&mut bytes, code::DNS_SERVERS, &v6("fd00::1").octets());
    put_option(&mut bytes, code::DNS_SERVERS, &v6("fd00::2").octets());
    let o = Message::decode(&bytes).unwrap().options;
    assert_eq!(o.server_id.as_deref(), Some(&b"first"[..]));
    assert_eq!(o.preference, Some(10));
    assert_eq!(o.dns, [v6("fd00::1"), v6("fd00::2")]);
}

#[test]
fn malformed_messages_are_errors() {
    for len in 0..4 {
        assert_eq!(
            Message::decode(&ADVERTISE[..len]),
            Err(Dhcp6Error::Truncated { len })
        );
    }
    for t in [0, 12, 13, 14, 255] {
        assert_eq!(
            Message::decode(&[t, 0, 0, 0]),
            Err(Dhcp6Error::UnknownMessageType(t))
        );
    }
    // Cut anywhere inside an option: never a panic, always an error.
    for len in 5..ADVERTISE.len() {
        let cut = &ADVERTISE[..len];
        let boundaries = [4, 22, 120, 140, 155, 175, 193, 198];
        if !boundaries.contains(&len) {
            assert!(
                matches!(
                    Message::decode(cut),
                    Err(Dhcp6Error::TruncatedOption { .. })
                ),
                "{len}: {:?}",
                Message::decode(cut)
            );
        }
    }
    assert_eq!(
        Message::decode(&ADVERTISE[..24]),
        Err(Dhcp6Error::TruncatedOption {
            code: 3,
            offset: 18
        })
    );
    let with = |code: u16, data: &[u8]| {
        let mut b = vec![7, 0, 0, 1];
        put_option(&mut b, code, data);
        Message::decode(&b)
    };
    for (code, data) in [
        (code::IA_NA, &[0u8; 11][..]),
        (code::PREFERENCE, &[1, 2][..]),
        (code::PREFERENCE, &[][..]),
        (code::ELAPSED_TIME, &[1][..]),
        (code::ORO, &[0, 23, 0][..]),
        (code::STATUS_CODE, &[0][..]),
        (code::DNS_SERVERS, &[0; 15][..]),
        (code::SNTP_SERVERS, &[0; 17][..]),
        (code::SOL_MAX_RT, &[0; 3][..]),
        (code::INF_MAX_RT, &[0; 5][..]),
        // An NTP address suboption that is not 16 bytes.
        (code::NTP_SERVER, &[0, 1, 0, 4, 1, 2, 3, 4][..]),
        // An IAADDR of 23 bytes inside an IA_NA.
        (
            code::IA_NA,
            &[&[0u8; 12][..], &[0, 5, 0, 23], &[0; 23]].concat()[..],
        ),
        // A status code of 1 byte inside an IA_NA.
        (
            code::IA_NA,
            &[&[0u8; 12][..], &[0, 13, 0, 1, 0]].concat()[..],
        ),
    ] {
        assert!(
            matches!(with(code, data), Err(Dhcp6Error::BadOptionLength { .. })),
            "{code} {data:?}: {:?}",
            with(code, data)
        );
    }
    // Suboptions that run past their container.
    assert!(matches!(
        with(code::IA_NA, &[&[0u8; 12][..], &[0, 5, 0, 40, 1]].concat()),
        Err(Dhcp6Error::TruncatedOption { code: 5, offset: 0 })
    ));
    assert!(matches!(
        with(code::NTP_SERVER, &[0, 1, 0]),
        Err(Dhcp6Error::TruncatedOption { code: 1, offset: 0 })
    ));
    // Compressed or hostile names.
    assert_eq!(
        with(code::DOMAIN_LIST, &[3, b'l', b'a', b'b', 0xc0, 0x0c]),
        Err(Dhcp6Error::BadName {
            code: code::DOMAIN_LIST,
            error: NameError::BadLabel(0xc0)
        })
    );
    assert_eq!(
        with(code::NTP_SERVER, &[0, 3, 0, 3, 1, b';', 0]),
        Err(Dhcp6Error::BadName {
            code: code::NTP_SERVER,
            error: NameError::BadByte(b';')
        })
    );
    let e = with(code::DOMAIN_LIST, &[3, b'l', b'a'])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "dhcpv6 option 24: a domain name is truncated");
}

#[test]
fn encoding_caps_option_length() {
    let m = Message {
        kind: MessageType::Solicit,
        xid: 1,
        options: Options {
            other: vec![(99, vec![7; 70_000])],
            ..Options::default()
        },
    };
    let back = Message::decode(&m.encode()).unwrap();
    assert_eq!(back.options.other[0].1.len(), 65535);
}
