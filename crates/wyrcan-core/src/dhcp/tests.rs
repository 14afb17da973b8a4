//! Codec and client state machine tests.

use std::time::Duration;

use super::client::lease_from;
use super::*;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const XID: u32 = 0x1234_5678;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A reply as QEMU's slirp (libslirp `bootp.c`) builds it: a fixed
/// 548-byte `struct bootp_t`, siaddr = the virtual host 10.0.2.2, the
/// guest gets 10.0.2.15/24 for a day. With `restrict=on` there is no
/// router (3) and no DNS (6) option.
fn slirp_reply(kind: u8, xid: u32, mac: [u8; 6], restricted: bool) -> Vec<u8> {
    let mut p = vec![0u8; 548];
    p[0] = 2; // BOOTREPLY
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[16..20].copy_from_slice(&[10, 0, 2, 15]); // yiaddr
    p[20..24].copy_from_slice(&[10, 0, 2, 2]); // siaddr
    p[28..34].copy_from_slice(&mac);
    p[236..240].copy_from_slice(&MAGIC_COOKIE);
    let mut opts = vec![53, 1, kind, 54, 4, 10, 0, 2, 2, 51, 4, 0, 1, 0x51, 0x80];
    opts.extend_from_slice(&[1, 4, 255, 255, 255, 0]);
    if !restricted {
        opts.extend_from_slice(&[3, 4, 10, 0, 2, 2, 6, 4, 10, 0, 2, 3]);
    }
    opts.push(255);
    p[240..240 + opts.len()].copy_from_slice(&opts);
    p
}

fn send(a: Option<Action>) -> Message {
    match a {
        Some(Action::Send(b)) => Message::decode(&b).unwrap(),
        other => panic!("expected bytes to send, got {other:?}"),
    }
}

#[test]
fn round_trip() {
    let m = Message {
        op: BOOTREPLY,
        hops: 3,
        xid: 0xdead_beef,
        secs: 7,
        flags: FLAG_BROADCAST,
        ciaddr: Ipv4Addr::new(1, 2, 3, 4),
        yiaddr: Ipv4Addr::new(192, 168, 1, 20),
        siaddr: Ipv4Addr::new(192, 168, 1, 1),
        giaddr: Ipv4Addr::new(10, 9, 8, 7),
        chaddr: [1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        options: Options {
            message_type: Some(MessageType::Ack),
            requested_ip: Some(Ipv4Addr::new(192, 168, 1, 20)),
            server_id: Some(Ipv4Addr::new(192, 168, 1, 1)),
            lease_time: Some(3600),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            routers: vec![Ipv4Addr::new(192, 168, 1, 1), Ipv4Addr::new(192, 168, 1, 2)],
            dns: vec![Ipv4Addr::new(9, 9, 9, 9)],
            hostname: Some("box".into()),
            parameter_request_list: vec![1, 3, 6],
            client_id: Some(vec![1, 1, 2, 3, 4, 5, 6]),
            other: vec![(15, b"example.org".to_vec()), (80, vec![])],
            ..Options::default()
        },
        ..Message::default()
    };
    assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    // Short messages are padded to the BOOTP minimum.
    let d = Message::default();
    assert_eq!(d.encode().len(), MIN_MESSAGE_LEN);
    assert_eq!(Message::decode(&d.encode()).unwrap(), d);
}

/// Values over 255 bytes are split and joined again (RFC 3396).
#[test]
fn long_options_round_trip() {
    let dns: Vec<Ipv4Addr> = (0..100).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    let m = Message {
        options: Options {
            dns: dns.clone(),
            hostname: Some("h".repeat(300)),
            ..Options::default()
        },
        ..Message::default()
    };
    let bytes = m.encode();
    assert!(bytes.len() > 700);
    assert_eq!(Message::decode(&bytes).unwrap(), m);
}

#[test]
fn decodes_a_slirp_offer() {
    let m = Message::decode(&slirp_reply(2, XID, MAC, true)).unwrap();
    assert_eq!(m.op, BOOTREPLY);
    assert_eq!(m.xid, XID);
    assert_eq!(m.yiaddr, Ipv4Addr::new(10, 0, 2, 15));
    assert_eq!(m.chaddr[..6], MAC);
    assert_eq!(
        m.options,
        Options {
            message_type: Some(MessageType::Offer),
            server_id: Some(Ipv4Addr::new(10, 0, 2, 2)),
            lease_time: Some(86400),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            ..Options::default()
        }
    );
}

/// The whole exchange against slirp with `restrict=on`: no router, no DNS.
#[test]
fn binds_against_restricted_slirp() {
    let mut c = Client::new(MAC, XID);
    let d = Message::decode(&c.start(secs(10))).unwrap();
    assert_eq!(d.op, BOOTREQUEST);
    assert_eq!(d.options.message_type, Some(MessageType::Discover));
    assert_eq!(d.flags & FLAG_BROADCAST, FLAG_BROADCAST);
    assert_eq!(d.xid, XID);
    assert_eq!(d.chaddr[..6], MAC);
    assert_eq!(
        d.options.client_id,
        Some(vec![1, 0x52, 0x54, 0, 0x12, 0x34, 0x56])
    );
    assert!(d.options.parameter_request_list.contains(&code::ROUTER));
    assert_eq!(c.next_timeout(), Some(secs(14)));

    let r = send(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(11)));
    assert_eq!(r.options.message_type, Some(MessageType::Request));
    assert_eq!(r.options.requested_ip, Some(Ipv4Addr::new(10, 0, 2, 15)));
    assert_eq!(r.options.server_id, Some(Ipv4Addr::new(10, 0, 2, 2)));
    assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.flags & FLAG_BROADCAST, FLAG_BROADCAST);
    assert_eq!(r.secs, 1);

    let want = Lease {
        address: Ipv4Addr::new(10, 0, 2, 15),
        prefix_len: 24,
        router: None,
        dns: vec![],
        lease_time: Some(secs(86400)),
        server: Ipv4Addr::new(10, 0, 2, 2),
        mtu: None,
        ntp: vec![],
        domain_search: vec![],
        classless_routes: vec![],
    };
    assert_eq!(want.routes(), vec![]);
    assert_eq!(
        c.on_packet(&slirp_reply(5, XID, MAC, true), secs(11)),
        Some(Action::Bound(want.clone()))
    );
    assert_eq!(c.lease(), Some(&want));
    assert_eq!(c.next_timeout(), None);
    assert_eq!(c.on_timeout(secs(1000)), None);
    // Late duplicates change nothing.
    assert_eq!(c.on_packet(&slirp_reply(5, XID, MAC, true), secs(12)), None);
}

#[test]
fn unrestricted_slirp_gives_router_and_dns() {
    let mut c = Client::new(MAC, XID);
    c.start(Duration::ZERO);
    send(c.on_packet(&slirp_reply(2, XID, MAC, false), secs(1)));
    let Some(Action::Bound(l)) = c.on_packet(&slirp_reply(5, XID, MAC, false), secs(1)) else {
        panic!("not bound");
    };
    assert_eq!(l.router, Some(Ipv4Addr::new(10, 0, 2, 2)));
    assert_eq!(l.dns, vec![Ipv4Addr::new(10, 0, 2, 3)]);
    assert_eq!(
        l.routes(),
        vec![Route::default_via(Ipv4Addr::new(10, 0, 2, 2))]
    );
}

#[test]
fn ignores_what_is_not_for_us() {
    let mut c = Client::new(MAC, XID);
    c.start(Duration::ZERO);
    let other_mac = [0x52, 0x54, 0, 0, 0, 1];
    assert_eq!(
        c.on_packet(&slirp_reply(2, XID + 1, MAC, true), secs(1)),
        None
    );
    assert_eq!(
        c.on_packet(&slirp_reply(2, XID, other_mac, true), secs(1)),
        None
    );
    let mut request = slirp_reply(2, XID, MAC, true);
    request[0] = BOOTREQUEST;
    assert_eq!(c.on_packet(&request, secs(1)), None);
    // An ACK or NAK while selecting answers someone else's question.
    assert_eq!(c.on_packet(&slirp_reply(5, XID, MAC, true), secs(1)), None);
    assert_eq!(c.on_packet(&slirp_reply(6, XID, MAC, true), secs(1)), None);
    let mut zero_offer = slirp_reply(2, XID, MAC, true);
    zero_offer[16..20].fill(0);
    assert_eq!(c.on_packet(&zero_offer, secs(1)), None);
    assert_eq!(c.on_packet(b"garbage", secs(1)), None);
    // Still selecting: a real offer is taken.
    send(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(1)));
    // A second offer (another server) is ignored once requesting.
    assert_eq!(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(1)), None);
    // An ACK from a server we did not pick is ignored.
    let mut other_server = slirp_reply(5, XID, MAC, true);
    other_server[245..249].copy_from_slice(&[10, 0, 2, 9]);
    assert_eq!(c.on_packet(&other_server, secs(1)), None);
    assert!(c.lease().is_none());
}

#[test]
fn nak_starts_over_with_a_new_xid() {
    let mut c = Client::new(MAC, XID);
    c.start(Duration::ZERO);
    send(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(1)));
    let d = send(c.on_packet(&slirp_reply(6, XID, MAC, true), secs(2)));
    assert_eq!(d.options.message_type, Some(MessageType::Discover));
    assert_eq!(d.xid, XID + 1);
    assert_eq!(c.xid(), XID + 1);
    assert_eq!(c.next_timeout(), Some(secs(6)));
    assert_eq!(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(3)), None);
    send(c.on_packet(&slirp_reply(2, XID + 1, MAC, true), secs(3)));
}

#[test]
fn retransmits_with_exponential_backoff() {
    let mut c = Client::new(MAC, XID);
    assert_eq!(c.on_timeout(secs(100)), None, "not started");
    c.start(Duration::ZERO);
    assert_eq!(c.on_timeout(secs(3)), None, "too early");
    let mut at = Duration::ZERO;
    let mut delays = Vec::new();
    for _ in 0..7 {
        let due = c.next_timeout().unwrap();
        delays.push((due - at).as_secs());
        at = due;
        let d = Message::decode(&c.on_timeout(due).unwrap()).unwrap();
        assert_eq!(d.options.message_type, Some(MessageType::Discover));
        assert_eq!(u64::from(d.secs), due.as_secs());
    }
    assert_eq!(delays, vec![4, 8, 16, 32, 64, 64, 64]);
}

#[test]
fn unanswered_requests_fall_back_to_discover() {
    let mut c = Client::new(MAC, XID);
    c.start(Duration::ZERO);
    send(c.on_packet(&slirp_reply(2, XID, MAC, true), secs(1)));
    let mut kinds = Vec::new();
    for _ in 0..5 {
        let due = c.next_timeout().unwrap();
        let m = Message::decode(&c.on_timeout(due).unwrap()).unwrap();
        kinds.push((m.options.message_type.unwrap(), m.xid));
    }
    use MessageType::*;
    assert_eq!(
        kinds,
        vec![
            (Request, XID),
            (Request, XID),
            (Request, XID),
            (Discover, XID + 1),
            (Discover, XID + 1)
        ]
    );
}

#[test]
fn lease_defaults() {
    // No mask: the class of the address, as the kernel's ipconfig does.
    let m = Message {
        yiaddr: Ipv4Addr::new(172, 16, 5, 4),
        options: Options {
            lease_time: Some(u32::MAX),
            routers: vec![Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(172, 16, 0, 1)],
            dns: vec![Ipv4Addr::new(0, 0, 0, 0), Ipv4Addr::new(1, 1, 1, 1)],
            subnet_mask: Some(Ipv4Addr::new(255, 0, 255, 0)),
            ..Options::default()
        },
        ..Message::default()
    };
    let l = lease_from(&m, Ipv4Addr::new(172, 16, 0, 1));
    assert_eq!(l.prefix_len, 16);
    assert_eq!(l.lease_time, None);
    assert_eq!(l.router, Some(Ipv4Addr::new(172, 16, 0, 1)));
    assert_eq!(l.dns, vec![Ipv4Addr::new(1, 1, 1, 1)]);
    assert_eq!(l.server, Ipv4Addr::new(172, 16, 0, 1));
}

#[test]
fn truncated_and_garbage_inputs_are_errors() {
    let good = slirp_reply(2, XID, MAC, false);
    assert_eq!(Message::decode(&[]), Err(DhcpError::Truncated { len: 0 }));
    assert_eq!(
        Message::decode(&good[..239]),
        Err(DhcpError::Truncated { len: 239 })
    );
    assert_eq!(Message::decode(&good[..240]), Err(DhcpError::MissingEnd));
    // Cut inside the lease time option (starts at 249).
    assert_eq!(
        Message::decode(&good[..252]),
        Err(DhcpError::TruncatedOption {
            code: 51,
            offset: 249
        })
    );
    assert_eq!(
        Message::decode(&good[..250]),
        Err(DhcpError::TruncatedOption {
            code: 51,
            offset: 249
        })
    );
    // Every prefix of a real message is rejected or (past the end option) accepted, never a panic.
    // The end option: 15 bytes of type, server id and lease time, 6 of
    // mask, 12 of router and DNS after the cookie.
    let end = 240 + 15 + 6 + 12;
    assert_eq!(good[end], 255);
    for n in 0..good.len() {
        assert_eq!(Message::decode(&good[..n]).is_ok(), n > end, "{n}");
    }

    let mut bad = good.clone();
    bad[236] = 0;
    assert_eq!(
        Message::decode(&bad),
        Err(DhcpError::BadCookie([0, 130, 83, 99]))
    );
    let mut bad = good.clone();
    bad[2] = 17;
    assert_eq!(Message::decode(&bad), Err(DhcpError::BadHardwareLength(17)));
    let mut bad = good.clone();
    bad[242] = 9;
    assert_eq!(Message::decode(&bad), Err(DhcpError::UnknownMessageType(9)));
    let with_options = |opts: &[u8]| {
        let mut p = Message::default().encode();
        p.truncate(240);
        p.extend_from_slice(opts);
        Message::decode(&p)
    };
    assert!(matches!(
        with_options(&[54, 3, 10, 0, 2, 255]),
        Err(DhcpError::BadOptionLength {
            code: 54,
            len: 3,
            ..
        })
    ));
    assert!(matches!(
        with_options(&[53, 2, 1, 1, 255]),
        Err(DhcpError::BadOptionLength {
            code: 53,
            len: 2,
            ..
        })
    ));
    // Repeated options are concatenated (RFC 3396) before their length is checked.
    assert!(matches!(
        with_options(&[53, 1, 1, 53, 1, 1, 255]),
        Err(DhcpError::BadOptionLength {
            code: 53,
            len: 2,
            ..
        })
    ));
    assert!(matches!(
        with_options(&[6, 0, 255]),
        Err(DhcpError::BadOptionLength {
            code: 6,
            len: 0,
            ..
        })
    ));
    assert!(matches!(
        with_options(&[51, 2, 0, 1, 255]),
        Err(DhcpError::BadOptionLength {
            code: 51,
            len: 2,
            ..
        })
    ));
    assert_eq!(
        with_options(&[0, 0, 255]).unwrap().options,
        Options::default()
    );
    assert_eq!(
        with_options(&[0, 0, 7]),
        Err(DhcpError::TruncatedOption {
            code: 7,
            offset: 242
        })
    );
    let e = DhcpError::BadOptionLength {
        code: 6,
        len: 5,
        expected: "a non-zero multiple of 4 (IPv4 addresses)",
    };
    assert_eq!(
        e.to_string(),
        "dhcp option 6 is 5 bytes long: expected a non-zero multiple of 4 (IPv4 addresses)"
    );
}

/// xorshift64*: a fixed seed keeps failures reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random bytes and random mutations of real messages never panic the
/// decoder or the client, and whatever decodes re-encodes and decodes the same.
#[test]
fn fuzz_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = [
        slirp_reply(2, XID, MAC, false),
        slirp_reply(5, XID, MAC, true),
        slirp_reply(6, XID, MAC, true),
    ];
    let mut decoded = 0;
    for i in 0..20_000 {
        let pkt: Vec<u8> = if i % 2 == 0 {
            let len = rng.below(700);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let mut p = seeds[rng.below(seeds.len())].clone();
            // Keep header and cookie mostly intact so the options parser is exercised.
            for _ in 0..1 + rng.below(8) {
                let at = 236 + rng.below(p.len() - 236);
                p[at] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                p.truncate(rng.below(p.len() + 1));
            }
            p
        };
        if let Ok(m) = Message::decode(&pkt) {
            decoded += 1;
            let again = Message::decode(&m.encode()).unwrap();
            // Hostnames that were not UTF-8 were already replaced on the first pass.
            assert_eq!(again, m);
        }
        let mut c = Client::new(MAC, XID);
        c.start(Duration::ZERO);
        let _ = c.on_packet(&pkt, secs(1));
        let _ = c.on_packet(&seeds[0], secs(1));
        let _ = c.on_packet(&pkt, secs(1));
        let _ = c.on_timeout(secs(1000));
    }
    assert!(
        decoded > 1_000,
        "only {decoded} inputs decoded: the mutations miss the parser"
    );
}
