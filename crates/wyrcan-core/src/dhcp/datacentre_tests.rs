//! The options of data-centre networks (26, 42, 119, 121) through the
//! codec and the client, on replies shaped like a relayed Kea or ISC dhcpd
//! answer.

use std::time::Duration;

use super::*;

const MAC: [u8; 6] = [0x0c, 0xc4, 0x7a, 0x11, 0x22, 0x33];
const XID: u32 = 0x5eed_0001;

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// A reply through a relay (giaddr 10.20.30.1, one hop) with `options`
/// after the message type, and the end option.
fn relayed(kind: u8, options: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[..4].copy_from_slice(&[2, 1, 6, 1]);
    p[4..8].copy_from_slice(&XID.to_be_bytes());
    p[10] = 0x80;
    p[16..20].copy_from_slice(&[10, 20, 30, 41]); // yiaddr
    p[20..24].copy_from_slice(&[10, 20, 0, 5]); // siaddr: the next server
    p[24..28].copy_from_slice(&[10, 20, 30, 1]); // giaddr: the relay
    p[28..34].copy_from_slice(&MAC);
    p[236..240].copy_from_slice(&MAGIC_COOKIE);
    p.extend_from_slice(&[53, 1, kind]);
    p.extend_from_slice(options);
    p.push(255);
    p
}

/// Everything a data-centre server sends, with the search list split in
/// the middle of a label across two instances (RFC 3396) and compressed
/// across the split (RFC 3397).
#[rustfmt::skip]
const DATACENTRE: &[u8] = &[
    54, 4, 10, 20, 0, 5,
    51, 4, 0, 0, 0xa8, 0xc0, // 43200 s
    58, 4, 0, 0, 0x54, 0x60, // T1
    59, 4, 0, 0, 0x93, 0xa8, // T2
    1, 4, 255, 255, 255, 0,
    // The router: ignored for routing, since option 121 is present.
    3, 4, 10, 20, 30, 1,
    6, 8, 10, 20, 0, 53, 10, 20, 1, 53,
    15, 15, b'd', b'c', b'1', b'.', b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'n', b'e', b't',
    // dc1.example.net, example.net (→ 4), then "\x04c" …
    119, 21, 3, b'd', b'c', b'1', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'n', b'e', b't', 0,
        0xc0, 4, 4, b'c',
    12, 7, b'n', b'o', b'd', b'e', b'-', b'4', b'1',
    // … "orp" → corp.example.net.
    119, 5, b'o', b'r', b'p', 0xc0, 4,
    42, 8, 10, 20, 0, 123, 10, 20, 1, 123,
    26, 2, 0x23, 0x28, // 9000: jumbo frames
    121, 20,
        0, 10, 20, 30, 1, // default via 10.20.30.1
        8, 10, 10, 20, 30, 254, // 10.0.0.0/8 via 10.20.30.254
        32, 169, 254, 169, 254, 10, 20, 30, 2, // metadata service
];

fn bind(options: &[u8]) -> Lease {
    let mut c = Client::new(MAC, XID);
    let d = Message::decode(&c.start(Duration::ZERO)).unwrap();
    let prl = d.options.parameter_request_list;
    for o in [code::INTERFACE_MTU, code::NTP_SERVERS, code::DOMAIN_SEARCH] {
        assert!(prl.contains(&o), "{o} not requested");
    }
    let pos = |o| prl.iter().position(|&x| x == o).unwrap();
    assert!(
        pos(code::CLASSLESS_ROUTES) < pos(code::ROUTER),
        "RFC 3442 order"
    );

    let Some(Action::Send(_)) = c.on_packet(&relayed(2, options), Duration::from_secs(1)) else {
        panic!("offer not taken");
    };
    match c.on_packet(&relayed(5, options), Duration::from_secs(1)) {
        Some(Action::Bound(l)) => l,
        other => panic!("not bound: {other:?}"),
    }
}

#[test]
fn datacentre_ack() {
    let l = bind(DATACENTRE);
    let routes = vec![
        Route::default_via(ip(10, 20, 30, 1)),
        Route {
            dest: ip(10, 0, 0, 0),
            prefix_len: 8,
            gateway: ip(10, 20, 30, 254),
        },
        Route {
            dest: ip(169, 254, 169, 254),
            prefix_len: 32,
            gateway: ip(10, 20, 30, 2),
        },
    ];
    assert_eq!(
        l,
        Lease {
            address: ip(10, 20, 30, 41),
            prefix_len: 24,
            router: Some(ip(10, 20, 30, 1)),
            dns: vec![ip(10, 20, 0, 53), ip(10, 20, 1, 53)],
            lease_time: Some(Duration::from_secs(43200)),
            server: ip(10, 20, 0, 5),
            mtu: Some(9000),
            ntp: vec![ip(10, 20, 0, 123), ip(10, 20, 1, 123)],
            domain_search: vec![
                "dc1.example.net".into(),
                "example.net".into(),
                "corp.example.net".into()
            ],
            classless_routes: routes.clone(),
        }
    );
    assert_eq!(l.routes(), routes);
    // Unknown options (T1, T2) are kept; the ones read are not.
    let m = Message::decode(&relayed(5, DATACENTRE)).unwrap();
    let codes: Vec<u8> = m.options.other.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, vec![58, 59, 15]);
    assert_eq!(Message::decode(&m.encode()).unwrap(), m);
}

/// Classless routes without a default route: the router option is still
/// ignored (RFC 3442), so there is none.
#[test]
fn classless_routes_replace_the_router() {
    let l = bind(&[
        54, 4, 10, 20, 0, 5, 3, 4, 10, 20, 30, 1, //
        121, 6, 8, 10, 0, 0, 0, 0, // 10.0.0.0/8 on-link
        121, 7, 16, 192, 168, 224, 0, 0, 24, // multicast router: dropped
    ]);
    assert_eq!(l.router, Some(ip(10, 20, 30, 1)));
    let on_link = Route {
        dest: ip(10, 0, 0, 0),
        prefix_len: 8,
        gateway: Ipv4Addr::UNSPECIFIED,
    };
    assert_eq!(l.routes(), vec![on_link]);
}

/// Malformed extras are ignored and cost nothing else: the lease binds
/// with the router as default route and no MTU, NTP or search list.
#[test]
fn malformed_extras_are_ignored() {
    let bad = [
        54, 4, 10, 20, 0, 5, 3, 4, 10, 20, 30, 1, //
        121, 4, 24, 10, 20, 30, // cut short
        26, 2, 0, 67, // under the IPv4 minimum
        42, 3, 10, 20, 0, // not a multiple of 4
        119, 4, 3, b'a', 0xc0, 0, // a pointer loop
    ];
    let l = bind(&bad);
    assert_eq!(l.routes(), vec![Route::default_via(ip(10, 20, 30, 1))]);
    assert_eq!((l.mtu, l.ntp.len(), l.domain_search.len()), (None, 0, 0));
    let m = Message::decode(&relayed(5, &bad)).unwrap();
    assert_eq!(m.options.mtu, Some(67));
    let codes: Vec<u8> = m.options.other.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, vec![121, 42, 119]);
    // They re-encode as they came.
    assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    // MTU of the wrong length: kept raw too.
    let m = Message::decode(&relayed(5, &[26, 1, 9])).unwrap();
    assert_eq!(
        (m.options.mtu, m.options.other),
        (None, vec![(26, vec![9])])
    );
}

#[test]
fn new_options_round_trip() {
    let m = Message {
        op: BOOTREPLY,
        options: Options {
            message_type: Some(MessageType::Ack),
            mtu: Some(1500),
            ntp_servers: vec![ip(192, 0, 2, 123)],
            domain_search: (0..options::MAX_SEARCH_DOMAINS)
                .map(|i| format!("s{i}.{}.lan", "x".repeat(50)))
                .collect(),
            classless_routes: (0..60)
                .map(|i| Route {
                    dest: ip(10, i, 0, 0),
                    prefix_len: 16,
                    gateway: ip(10, 255, 0, 1),
                })
                .collect(),
            ..Options::default()
        },
        ..Message::default()
    };
    // Both lists need more than one option instance (RFC 3396).
    let o = &m.options;
    assert!(options::encode_search(&o.domain_search).len() > 255);
    assert!(options::encode_routes(&o.classless_routes).len() > 255);
    assert_eq!(Message::decode(&m.encode()).unwrap(), m);
}
