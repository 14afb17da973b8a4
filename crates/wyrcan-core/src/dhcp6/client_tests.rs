//! Client state machine tests: systemd's test Advertise and Reply,
//! addressed to our client, and the retransmission schedule of RFC 8415 §15.

use std::time::Duration;

use super::tests::{v6, ADVERTISE, REPLY, SERVER_DUID};
use super::*;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const XID: u32 = 0x12_3456;
/// RAND = 0 for [-0.1, 0.1] (and 0.05 for the first Solicit RT, which must be above 0).
const MID: u32 = 0x7fff_ffff;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn decode(b: &[u8]) -> Message {
    Message::decode(b).unwrap()
}

fn sent(a: Option<Action>) -> Message {
    match a {
        Some(Action::Send(b)) => decode(&b),
        other => panic!("expected bytes to send, got {other:?}"),
    }
}

/// A server message as the client would get it: `base` re-addressed to
/// `c`'s transaction, DUID and IAID, then changed by `edit`.
fn answer(base: &[u8], c: &Client, edit: impl FnOnce(&mut Options)) -> Vec<u8> {
    let mut m = decode(base);
    m.xid = c.xid();
    m.options.client_id = Some(c.duid().to_vec());
    for ia in &mut m.options.ia_na {
        ia.iaid = c.iaid();
    }
    edit(&mut m.options);
    m.encode()
}

fn advertise(c: &Client, edit: impl FnOnce(&mut Options)) -> Vec<u8> {
    answer(&ADVERTISE, c, edit)
}

fn reply(c: &Client, edit: impl FnOnce(&mut Options)) -> Vec<u8> {
    answer(&REPLY, c, edit)
}

const ADDR: &str = "2001:db8:dead:beef:78ee:1cf3:93c:55ad";

/// The whole stateful exchange, against systemd's test messages.
#[test]
fn stateful_exchange() {
    let mut c = Client::new(MAC, XID, Mode::Stateful);
    assert_eq!(c.duid(), [0, 3, 0, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    assert_eq!(c.iaid(), 0x0012_3456);
    assert_eq!(c.next_timeout(), None);

    let s = decode(&c.start(secs(10), MID));
    assert_eq!(s.kind, MessageType::Solicit);
    assert_eq!(s.xid, XID);
    assert_eq!(s.options.client_id.as_deref(), Some(c.duid()));
    assert_eq!(s.options.server_id, None);
    assert_eq!(s.options.elapsed_time, Some(0));
    assert_eq!(
        s.options.ia_na,
        vec![IaNa {
            iaid: 0x0012_3456,
            t1: 0,
            t2: 0,
            addresses: vec![],
            status: None
        }]
    );
    assert_eq!(s.options.oro, [23, 24, 56, 31, 82]);
    // IRT 1 s plus RAND (0.05 here): strictly above 1 s.
    assert_eq!(c.next_timeout(), Some(secs(10) + ms(1050)));

    // Preference 0: collected until the first RT is over.
    assert_eq!(
        c.on_packet(&advertise(&c, |_| {}), secs(10) + ms(100), MID),
        None
    );
    assert_eq!(c.on_timeout(secs(11), MID), None);
    let r = decode(&c.on_timeout(secs(10) + ms(1050), MID).unwrap());
    assert_eq!(r.kind, MessageType::Request);
    // A new transaction, and its own elapsed time.
    assert_eq!(r.xid, XID + 1);
    assert_eq!(c.xid(), XID + 1);
    assert_eq!(r.options.elapsed_time, Some(0));
    assert_eq!(r.options.server_id.as_deref(), Some(&SERVER_DUID[..]));
    assert_eq!(r.options.client_id.as_deref(), Some(c.duid()));
    assert_eq!(r.options.oro, [23, 24, 56, 31]);
    assert_eq!(
        r.options.ia_na,
        vec![IaNa {
            iaid: c.iaid(),
            t1: 0,
            t2: 0,
            addresses: vec![IaAddr {
                addr: v6(ADDR),
                preferred: 0,
                valid: 0,
                status: None
            }],
            status: None
        }]
    );
    assert_eq!(c.next_timeout(), Some(secs(10) + ms(2050)));

    let dead_beef_1 = v6("2001:db8:dead:beef::1");
    let want = Lease6 {
        addresses: vec![(v6(ADDR), 150, 180)],
        dns: vec![dead_beef_1],
        search: vec!["lab.intra".into()],
        ntp: vec![NtpServer6::Address(dead_beef_1)],
        server_id: SERVER_DUID.to_vec(),
    };
    assert_eq!(
        c.on_packet(&reply(&c, |_| {}), secs(11), MID),
        Some(Action::Done(want.clone()))
    );
    assert_eq!(c.lease(), Some(&want));
    assert_eq!(c.next_timeout(), None);
    assert_eq!(c.on_timeout(secs(100), MID), None);
    assert_eq!(c.on_packet(&reply(&c, |_| {}), secs(12), MID), None);
}

#[test]
fn preference_255_is_taken_at_once() {
    let mut c = Client::new(MAC, XID, Mode::Stateful);
    c.start(Duration::ZERO, MID);
    let a = advertise(&c, |o| o.preference = Some(255));
    let r = sent(c.on_packet(&a, ms(5), MID));
    assert_eq!(r.kind, MessageType::Request);
}

/// The highest preference collected in the first RT wins; of equals, the first.
#[test]
fn best_advertise_wins() {
    let mut c = Client::new(MAC, XID, Mode::Stateful);
    c.start(Duration::ZERO, MID);
    let server = |id: &[u8], pref: u8, addr: &str| {
        let addr = v6(addr);
        advertise(&c, |o| {
            o.server_id = Some(id.to_vec());
            o.preference = Some(pref);
            o.ia_na[0].addresses[0].addr = addr;
        })
    };
    let offers = [
        server(b"low", 10, "fd00::1"),
        server(b"high", 200, "fd00::2"),
        server(b"also-high", 200, "fd00::3"),
        server(b"none", 0, "fd00::4"),
    ];
    for o in &offers {
        assert_eq!(c.on_packet(o, ms(10), MID), None);
    }
    let r = decode(&c.on_timeout(secs(2), MID).unwrap());
    assert_eq!(r.options.server_id.as_deref(), Some(&b"high"[..]));
    assert_eq!(r.options.ia_na[0].addresses[0].addr, v6("fd00::2"));
    // The Reply must come from that server.
    let other = reply(&c, |o| o.server_id = Some(b"low".to_vec()));
    assert_eq!(c.on_packet(&other, secs(3), MID), None);
    let ours = reply(&c, |o| o.server_id = Some(b"high".to_vec()));
    assert!(matches!(
        c.on_packet(&ours, secs(3), MID),
        Some(Action::Done(_))
    ));
}

/// After the first RT with nothing, the first usable Advertise is taken.
#[test]
fn late_advertise_is_taken_at_once() {
    let mut c = Client::new(MAC, XID, Mode::Stateful);
    c.start(Duration::ZERO, MID);
    let s = decode(&c.on_timeout(ms(1050), MID).unwrap());
    assert_eq!(s.kind, MessageType::Solicit);
    assert_eq!(s.xid, XID);
    assert_eq!(s.options.elapsed_time, Some(105));
    let r = sent(c.on_packet(&advertise(&c, |_| {}), ms(1500), MID));
    assert_eq!(r.kind, MessageType::Request);
}

#[test]
fn unusable_and_foreign_messages_are_ignored() {
    let mut c = Client::new(MAC, XID, Mode::Stateful);
    c.start(Duration::ZERO, MID);
    c.on_timeout(secs(2), MID);
    let no_addrs = Some(Status {
        code: status::NO_ADDRS_AVAIL,
        message: "none left".into(),
    });
    let ignored: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", vec![2, 1, 2]),
        ("another transaction", {
            let mut m = decode(&advertise(&c, |_| {}));
            m.xid ^= 1;
            m.encode()
        }),
        (
            "another client",
            advertise(&c, |o| o.client_id = Some(b"someone".to_vec())),
        ),
        ("no client id", advertise(&c, |o| o.client_id = None)),
        ("no server id", advertise(&c, |o| o.server_id = None)),
        (
            "NoAddrsAvail",
            advertise(&c, |o| o.status = no_addrs.clone()),
        ),
        (
            "NoAddrsAvail in the IA",
            advertise(&c, |o| o.ia_na[0].status = no_addrs.clone()),
        ),
        ("another IAID", advertise(&c, |o| o.ia_na[0].iaid ^= 1)),
        ("no IA", advertise(&c, |o| o.ia_na.clear())),
        (
            "valid 0",
            advertise(&c, |o| o.ia_na[0].addresses[0].valid = 0),
        ),
        (
            "preferred over valid",
            advertise(&c, |o| o.ia_na[0].addresses[0].preferred = 181),
        ),
        (
            "multicast address",
            advertise(&c, |o| o.ia_na[0].addresses[0].addr = v6("ff02::1")),
        ),
        (
            "address status",
            advertise(&c, |o| o.ia_na[0].addresses[0].status = no_addrs.clone()),
        ),
        ("a Reply while soliciting", reply(&c, |_| {})),
    ];
    for (what, pkt) in &ignored {
        assert_eq!(c.on_packet(pkt, secs(3), MID), None, "{what}");
    }
    // The client is still soliciting: a good Advertise is taken.
    assert!(c.on_packet(&advertise(&c, |_| {}), secs(3), MID).is_some());
}

/// NotOnLink or no addresses in the Reply: solicit again; UnspecFail: wait.
#[test]
fn failed_replies() {
    let requesting = || {
        let mut c = Client::new(MAC, XID, Mode::Stateful);
        c.start(Duration::ZERO, MID);
        let a = advertise(&c, |o| o.preference = Some(255));
        c.on_packet(&a, ms(1), MID);
        c
    };
    let status = |code| {
        Some(Status {
            code,
            message: String::new(),
        })
    };
    let mut c = requesting();
    let unspec = reply(&c, |o| o.status = status(status::UNSPEC_FAIL));
    assert_eq!(c.on_packet(&unspec, ms(2), MID), None);
    assert_eq!(c.xid(), XID + 1);

    for edit in [
        Box::new(|o: &mut Options| o.status = status(status::NOT_ON_LINK))
            as Box<dyn Fn(&mut Options)>,
        Box::new(|o: &mut Options| o.ia_na[0].status = status(status::NO_ADDRS_AVAIL)),
        Box::new(|o: &mut Options| o.ia_na[0].addresses.clear()),
    ] {
        let mut c = requesting();
        let r = reply(&c, |o| edit(o));
        let s = sent(c.on_packet(&r, ms(2), MID));
        assert_eq!(s.kind, MessageType::Solicit);
        assert_eq!(s.xid, XID + 2);
        assert_eq!(c.next_timeout(), Some(ms(2) + ms(1050)));
    }
}

/// RFC 8415 §15 with RAND = 0: 1.05 s (Solicit's first RT is above IRT),
/// then doubling up to SOL_MAX_RT, 3600 s.
#[test]
fn solicit_backoff() {
    let mut c = Client::new(MAC, XID, Mode::Stateful);
    let mut now = Duration::ZERO;
    c.start(now, MID);
    let mut rts = Vec::new();
    for _ in 0..15 {
        let next = c.next_timeout().unwrap();
        rts.push((next - now).as_millis());
        now = next;
        assert_eq!(
            decode(&c.on_timeout(now, MID).unwrap()).kind,
            MessageType::Solicit
        );
    }
    assert_eq!(
        rts,
        [
            1050, 2100, 4200, 8400, 16800, 33600, 67200, 134400, 268800, 537600, 1075200, 2150400,
            3600000, 3600000, 3600000
        ]
    );
    // Elapsed time saturates at 0xffff hundredths (655.35 s).
    let s = decode(&c.on_timeout(c.next_timeout().unwrap(), MID).unwrap());
    assert_eq!(s.options.elapsed_time, Some(0xffff));
}

/// RAND's extremes, and a server's SOL_MAX_RT.
#[test]
fn randomization_and_sol_max_rt() {
    let mut c = Client::new(MAC, XID, Mode::Stateful);
    c.start(Duration::ZERO, 0);
    // RAND just above 0 for the first Solicit RT.
    assert_eq!(c.next_timeout(), Some(ms(1001)));
    c.on_timeout(ms(1001), u32::MAX);
    // 2·RT + 0.1·RT.
    assert_eq!(c.next_timeout(), Some(ms(1001 + 2102)));
    c.on_timeout(ms(3103), 0);
    // 2·RT - 0.1·RT.
    assert_eq!(c.next_timeout(), Some(ms(3103 + 3994)));

    // An unusable Advertise still lowers SOL_MAX_RT (RFC 8415 §18.2.9)…
    let a = advertise(&c, |o| {
        o.sol_max_rt = Some(60);
        o.ia_na.clear();
    });
    assert_eq!(c.on_packet(&a, ms(7000), MID), None);
    let mut rts = Vec::new();
    let mut now = ms(7097);
    for _ in 0..6 {
        c.on_timeout(now, MID);
        let next = c.next_timeout().unwrap();
        rts.push((next - now).as_millis());
        now = next;
    }
    assert_eq!(rts, [7988, 15976, 31952, 60000, 60000, 60000]);
    // …but not to a value out of range (60 to 86400 s).
    let a = advertise(&c, |o| {
        o.sol_max_rt = Some(59);
        o.ia_na.clear();
    });
    c.on_packet(&a, now, MID);
    c.on_timeout(now, MID);
    assert_eq!(c.next_timeout().unwrap() - now, secs(60));
}

/// REQ_TIMEOUT 1 s doubling to REQ_MAX_RT 30 s; after REQ_MAX_RC (10)
/// Requests, a new Solicit.
#[test]
fn request_retransmission() {
    let mut c = Client::new(MAC, XID, Mode::Stateful);
    c.start(Duration::ZERO, MID);
    c.on_packet(&advertise(&c, |o| o.preference = Some(255)), ms(1), MID);
    let mut now = ms(1);
    let mut rts = Vec::new();
    for _ in 1..10 {
        let next = c.next_timeout().unwrap();
        rts.push((next - now).as_millis());
        now = next;
        let r = decode(&c.on_timeout(now, MID).unwrap());
        assert_eq!(r.kind, MessageType::Request);
        assert_eq!(r.xid, XID + 1);
    }
    assert_eq!(
        rts,
        [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
    );
    let r = decode(&c.on_timeout(c.next_timeout().unwrap(), MID).unwrap());
    assert_eq!(r.kind, MessageType::Solicit);
    assert_eq!(r.xid, XID + 2);
}

#[test]
fn stateless_exchange() {
    let mut c = Client::new(MAC, 0xff_ffff, Mode::Stateless);
    let i = decode(&c.start(secs(1), MID));
    assert_eq!(i.kind, MessageType::InformationRequest);
    assert_eq!(i.xid, 0xff_ffff);
    assert_eq!(i.options.client_id.as_deref(), Some(c.duid()));
    assert!(i.options.ia_na.is_empty());
    assert_eq!(i.options.oro, [23, 24, 56, 31, 83]);
    assert_eq!(c.next_timeout(), Some(secs(2)));
    // INF_TIMEOUT 1 s, doubling.
    let again = decode(&c.on_timeout(secs(2), MID).unwrap());
    assert_eq!(again.kind, MessageType::InformationRequest);
    assert_eq!(again.options.elapsed_time, Some(100));
    assert_eq!(c.next_timeout(), Some(secs(4)));

    let failed = answer(&REPLY, &c, |o| {
        o.status = Some(Status {
            code: status::UNSPEC_FAIL,
            message: String::new(),
        })
    });
    assert_eq!(c.on_packet(&failed, secs(3), MID), None);
    // No IA in the answer to an Information-request; any addresses are not ours to take.
    let r = answer(&REPLY, &c, |o| {
        o.ntp = vec![
            NtpServer6::Fqdn("ntp.lab.intra".into()),
            NtpServer6::Address(v6("2001:db8:dead:beef::1")),
        ];
        o.dns.push(v6("::1"));
    });
    let Some(Action::Done(lease)) = c.on_packet(&r, secs(3), MID) else {
        panic!("no lease");
    };
    assert_eq!(
        lease,
        Lease6 {
            addresses: vec![],
            dns: vec![v6("2001:db8:dead:beef::1")],
            search: vec!["lab.intra".into()],
            // Option 56 first, the SNTP duplicate dropped.
            ntp: vec![
                NtpServer6::Fqdn("ntp.lab.intra".into()),
                NtpServer6::Address(v6("2001:db8:dead:beef::1")),
            ],
            server_id: SERVER_DUID.to_vec(),
        }
    );
}

#[test]
fn xid_is_24_bits() {
    let mut c = Client::new(MAC, 0xffff_ffff, Mode::Stateful);
    assert_eq!(c.xid(), 0xff_ffff);
    c.start(Duration::ZERO, MID);
    c.on_packet(&advertise(&c, |o| o.preference = Some(255)), ms(1), MID);
    assert_eq!(c.xid(), 0);
}

#[test]
fn nothing_before_start() {
    let mut c = Client::new(MAC, XID, Mode::Stateful);
    assert_eq!(c.on_timeout(secs(100), MID), None);
    assert_eq!(c.on_packet(&ADVERTISE, secs(100), MID), None);
    assert_eq!(c.lease(), None);
}
