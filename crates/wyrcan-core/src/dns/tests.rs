//! Codec tests. The responses are written out as a packet capture shows
//! them (header, question, records), in the shape real servers send.

use super::*;

/// Bytes from hex; spaces and newlines are for the reader.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// `example.com A` from a recursive resolver (RD, RA), one answer
/// compressed against the question.
const EXAMPLE_A: &str = "
    a1b2 8180 0001 0001 0000 0000
    07 6578616d706c65 03 636f6d 00 0001 0001
    c00c 0001 0001 00000e10 0004 5db8d822";

/// `example.com AAAA`.
const EXAMPLE_AAAA: &str = "
    a1b3 8180 0001 0001 0000 0000
    07 6578616d706c65 03 636f6d 00 001c 0001
    c00c 001c 0001 00000e10 0010 26062800 02200001 02481893 25c81946";

/// `www.github.com A`: a CNAME to github.com (a pointer into the question),
/// then github.com's address (owner: the same pointer).
const GITHUB_A: &str = "
    4242 8180 0001 0002 0000 0000
    03 777777 06 676974687562 03 636f6d 00 0001 0001
    c00c 0005 0001 00000e10 0002 c010
    c010 0001 0001 0000003c 0004 8c527904";

/// `www.github.com AAAA`: github.com has none, so the CNAME and the zone's
/// SOA in the authority section (NOERROR, no data).
const GITHUB_AAAA: &str = "
    4243 8180 0001 0001 0001 0000
    03 777777 06 676974687562 03 636f6d 00 001c 0001
    c00c 0005 0001 00000e10 0002 c010
    c010 0006 0001 00000384 0027
      03 6e7331 c010  0a 686f73746d6173746572 c010
      78a1b2c3 00000e10 00000258 00093a80 00000384";

/// `nonexistent.example.com A`: NXDOMAIN with the SOA.
const NXDOMAIN: &str = "
    0001 8183 0001 0000 0001 0000
    0b 6e6f6e6578697374656e74 07 6578616d706c65 03 636f6d 00 0001 0001
    c018 0006 0001 00000384 0021
      02 6e73 c018  05 61646d696e c018
      78a1b2c3 00000e10 00000258 00093a80 00000384";

#[test]
fn query_bytes() {
    assert_eq!(
        query(0xa1b2, "example.com", QType::A).unwrap(),
        hex("a1b2 0100 0001 0000 0000 0000 07 6578616d706c65 03 636f6d 00 0001 0001")
    );
    // The trailing dot changes nothing; AAAA is type 28.
    assert_eq!(
        query(7, "Example.COM.", QType::Aaaa).unwrap(),
        hex("0007 0100 0001 0000 0000 0000 07 4578616d706c65 03 434f4d 00 001c 0001")
    );
    let long = ["a".repeat(63).as_str(); 4].join(".");
    assert_eq!(
        query(1, &long[..253], QType::A).unwrap().len(),
        12 + 255 + 4
    );
    for bad in ["", ".", "a..b", "a b", "-\n", &long[..254], &"x".repeat(64)] {
        assert!(
            matches!(query(1, bad, QType::A), Err(DnsError::InvalidName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn real_answers() {
    assert_eq!(
        parse_response(&hex(EXAMPLE_A), 0xa1b2, "example.com", QType::A),
        Ok(Answer::Addresses(vec![v4(93, 184, 216, 34)]))
    );
    assert_eq!(
        parse_response(&hex(EXAMPLE_AAAA), 0xa1b3, "example.com.", QType::Aaaa),
        Ok(Answer::Addresses(vec![
            "2606:2800:220:1:248:1893:25c8:1946".parse().unwrap()
        ]))
    );
    // The question comes back in any case (0x20 mixing, RFC 4343).
    assert_eq!(
        parse_response(&hex(EXAMPLE_A), 0xa1b2, "EXAMPLE.com", QType::A),
        Ok(Answer::Addresses(vec![v4(93, 184, 216, 34)]))
    );
}

#[test]
fn follows_a_cname() {
    assert_eq!(
        parse_response(&hex(GITHUB_A), 0x4242, "www.github.com", QType::A),
        Ok(Answer::Addresses(vec![v4(140, 82, 121, 4)]))
    );
    assert_eq!(
        parse_response(&hex(GITHUB_AAAA), 0x4243, "www.github.com", QType::Aaaa),
        Ok(Answer::NoData)
    );
}

#[test]
fn rcodes_are_told_apart() {
    assert_eq!(
        parse_response(&hex(NXDOMAIN), 1, "nonexistent.example.com", QType::A),
        Ok(Answer::NxDomain)
    );
    let mut m = hex(EXAMPLE_AAAA);
    // No answer: NOERROR/NODATA.
    m[7] = 0;
    m.truncate(12 + 17);
    assert_eq!(
        parse_response(&m, 0xa1b3, "example.com", QType::Aaaa),
        Ok(Answer::NoData)
    );
    for (code, want) in [
        (1, DnsError::Rcode(1)),
        (2, DnsError::ServFail),
        (4, DnsError::Rcode(4)),
        (5, DnsError::Refused),
        (9, DnsError::Rcode(9)),
    ] {
        m[3] = 0x80 | code;
        assert_eq!(
            parse_response(&m, 0xa1b3, "example.com", QType::Aaaa),
            Err(want.clone())
        );
        // Without the question, as some servers answer errors.
        let bare = [&m[..4], &[0; 8]].concat();
        assert_eq!(
            parse_response(&bare, 0xa1b3, "example.com", QType::Aaaa),
            Err(want)
        );
    }
    // NOERROR or NXDOMAIN must say which question they answer.
    for code in [0x80, 0x83] {
        let bare = [&[0xa1, 0xb3, 0x81, code], &[0u8; 8][..]].concat();
        assert_eq!(
            parse_response(&bare, 0xa1b3, "example.com", QType::Aaaa),
            Err(DnsError::QuestionMismatch)
        );
    }
}

#[test]
fn truncated_answers_ask_for_tcp() {
    let mut m = hex(EXAMPLE_A);
    m[2] |= 0x02;
    m[7] = 0;
    m.truncate(12 + 17);
    assert_eq!(
        parse_response(&m, 0xa1b2, "example.com", QType::A),
        Err(DnsError::Truncated)
    );
    let q = query(0xa1b2, "example.com", QType::A).unwrap();
    let framed = tcp_frame(&q).unwrap();
    assert_eq!(framed[..2], [0, 29]);
    assert_eq!(tcp_unframe(&framed), Some(&q[..]));
    assert_eq!(tcp_unframe(&framed[..20]), None);
    assert_eq!(tcp_unframe(&[0]), None);
    assert_eq!(tcp_unframe(&[0, 0, 9]), Some(&[][..]));
    assert_eq!(tcp_frame(&vec![0; 65_536]), None);
}

#[test]
fn refuses_answers_to_other_questions() {
    let m = hex(EXAMPLE_A);
    assert_eq!(
        parse_response(&m, 0xa1b3, "example.com", QType::A),
        Err(DnsError::IdMismatch {
            expected: 0xa1b3,
            got: 0xa1b2
        })
    );
    assert_eq!(
        parse_response(&m, 0xa1b2, "example.org", QType::A),
        Err(DnsError::QuestionMismatch)
    );
    assert_eq!(
        parse_response(&m, 0xa1b2, "www.example.com", QType::A),
        Err(DnsError::QuestionMismatch)
    );
    assert_eq!(
        parse_response(&m, 0xa1b2, "example.com", QType::Aaaa),
        Err(DnsError::QuestionMismatch)
    );
    // Our own query, looped back.
    let q = query(0xa1b2, "example.com", QType::A).unwrap();
    assert_eq!(
        parse_response(&q, 0xa1b2, "example.com", QType::A),
        Err(DnsError::NotAResponse(0x0100))
    );
    // An opcode other than QUERY.
    let mut notify = m.clone();
    notify[2] = 0xa0;
    assert!(matches!(
        parse_response(&notify, 0xa1b2, "example.com", QType::A),
        Err(DnsError::NotAResponse(_))
    ));
    // Class CH.
    let mut chaos = m.clone();
    chaos[28] = 3;
    assert_eq!(
        parse_response(&chaos, 0xa1b2, "example.com", QType::A),
        Err(DnsError::QuestionMismatch)
    );
    // Two questions.
    let mut two = m.clone();
    two[5] = 2;
    assert_eq!(
        parse_response(&two, 0xa1b2, "example.com", QType::A),
        Err(DnsError::QuestionMismatch)
    );
}

#[test]
fn compression_loops_are_refused() {
    let mut m = hex(EXAMPLE_A);
    // The answer's owner points to itself (it sits at 29).
    m[29..31].copy_from_slice(&[0xc0, 29]);
    assert_eq!(
        parse_response(&m, 0xa1b2, "example.com", QType::A),
        Err(DnsError::Name(NameError::ForwardPointer { at: 29, to: 29 }))
    );
    // The question's name points forward, into the answer.
    let mut m = hex(EXAMPLE_A);
    m[12..14].copy_from_slice(&[0xc0, 29]);
    assert!(matches!(
        parse_response(&m, 0xa1b2, "example.com", QType::A),
        Err(DnsError::Name(NameError::ForwardPointer { .. }))
    ));
    // A CNAME whose target points into itself.
    let mut m = hex(GITHUB_A);
    m[44..46].copy_from_slice(&[0xc0, 44]);
    assert!(matches!(
        parse_response(&m, 0x4242, "www.github.com", QType::A),
        Err(DnsError::Name(NameError::ForwardPointer { at: 44, to: 44 }))
    ));
}

/// A response to `name A` (id 9) with the given answer records, names
/// uncompressed.
fn response(name: &str, records: &[(&str, u16, Vec<u8>)]) -> Vec<u8> {
    let mut m = hex("0009 8180 0001 0000 0000 0000");
    m[7] = records.len() as u8;
    name::write(&mut m, name);
    m.extend_from_slice(&[0, 1, 0, 1]);
    for (owner, rtype, data) in records {
        name::write(&mut m, owner);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(data);
    }
    m
}

fn cname(target: &str) -> Vec<u8> {
    let mut d = Vec::new();
    name::write(&mut d, target);
    d
}

#[test]
fn cname_chains_are_bounded() {
    // c0 → c1 → … → cN, which has the address; records in reverse order.
    let chain = |n: usize| {
        let mut recs: Vec<(String, u16, Vec<u8>)> = (0..n)
            .map(|i| (format!("c{i}.lan"), 5, cname(&format!("C{}.LAN", i + 1))))
            .collect();
        recs.push((format!("c{n}.lan"), 1, vec![10, 0, 0, 1]));
        recs.reverse();
        let recs: Vec<_> = recs
            .iter()
            .map(|(o, t, d)| (o.as_str(), *t, d.clone()))
            .collect();
        response("c0.lan", &recs)
    };
    assert_eq!(
        parse_response(&chain(MAX_CNAME_HOPS), 9, "c0.lan", QType::A),
        Ok(Answer::Addresses(vec![v4(10, 0, 0, 1)]))
    );
    assert_eq!(
        parse_response(&chain(MAX_CNAME_HOPS + 1), 9, "c0.lan", QType::A),
        Err(DnsError::CnameChain)
    );
    // A loop.
    let m = response(
        "a.lan",
        &[("a.lan", 5, cname("b.lan")), ("b.lan", 5, cname("a.lan"))],
    );
    assert_eq!(
        parse_response(&m, 9, "a.lan", QType::A),
        Err(DnsError::CnameChain)
    );
}

#[test]
fn picks_the_right_records() {
    let m = response(
        "h.lan",
        &[
            // Another family, another owner, an RRSIG: all skipped.
            ("h.lan", 28, vec![0; 16]),
            ("other.lan", 1, vec![10, 0, 0, 9]),
            ("h.lan", 46, vec![1, 2, 3]),
            ("H.lan", 1, vec![10, 0, 0, 1]),
            ("h.lan", 1, vec![10, 0, 0, 2]),
        ],
    );
    assert_eq!(
        parse_response(&m, 9, "h.lan", QType::A),
        Ok(Answer::Addresses(vec![v4(10, 0, 0, 1), v4(10, 0, 0, 2)]))
    );
    // An A record of 5 bytes.
    let m = response("h.lan", &[("h.lan", 1, vec![10, 0, 0, 1, 0])]);
    assert!(matches!(
        parse_response(&m, 9, "h.lan", QType::A),
        Err(DnsError::Malformed { .. })
    ));
}

#[test]
fn every_prefix_is_an_error_not_a_panic() {
    // The SOA in the authority section (51 bytes) is not read.
    for (text, id, name, qtype, unread) in [
        (EXAMPLE_A, 0xa1b2, "example.com", QType::A, 0),
        (GITHUB_A, 0x4242, "www.github.com", QType::A, 0),
        (GITHUB_AAAA, 0x4243, "www.github.com", QType::Aaaa, 51),
    ] {
        let m = hex(text);
        assert!(parse_response(&m, id, name, qtype).is_ok());
        for n in 0..m.len() {
            let r = parse_response(&m[..n], id, name, qtype);
            assert_eq!(r.is_ok(), n >= m.len() - unread, "{n}: {r:?}");
        }
    }
    assert_eq!(
        parse_response(&[], 0, "a", QType::A),
        Err(DnsError::Short(0))
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
}

/// Mutations of real responses never panic the parser.
#[test]
fn mutations_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = [
        hex(EXAMPLE_A),
        hex(GITHUB_A),
        hex(GITHUB_AAAA),
        hex(NXDOMAIN),
    ];
    let mut answered = 0;
    for i in 0..20_000 {
        let mut m = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = 2 + (rng.next() as usize) % (m.len() - 2);
            m[at] = rng.next() as u8;
        }
        let id = u16::from_be_bytes([m[0], m[1]]);
        for (name, qtype) in [("example.com", QType::A), ("www.github.com", QType::Aaaa)] {
            if let Ok(Answer::Addresses(_)) = parse_response(&m, id, name, qtype) {
                answered += 1;
            }
        }
    }
    assert!(
        answered > 100,
        "only {answered}: the mutations miss the parser"
    );
}
