//! DNS responses are network input to PID 1, resolv.conf is whatever the
//! network or an image wrote: parsing either never panics or loops, and
//! what comes out keeps the limits the parsers promise.
#![no_main]
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use wyrcan_core::dns::{self, name, Answer, QType};

const NAMES: [&str; 4] = ["example.com", "www.github.com", "c0.lan", "a"];

fuzz_target!(|data: &[u8]| {
    // The response's own id, so the checks past it run.
    let id = data.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    for n in NAMES {
        for qtype in [QType::A, QType::Aaaa] {
            match dns::parse_response(data, id, n, qtype) {
                Ok(Answer::Addresses(addrs)) => {
                    assert!(!addrs.is_empty());
                    assert!(addrs.iter().all(|a| match qtype {
                        QType::A => matches!(a, IpAddr::V4(_)),
                        QType::Aaaa => matches!(a, IpAddr::V6(_)),
                    }));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
    for start in [0, 12] {
        if let Ok((n, end)) = name::read(data, start) {
            assert!(end <= data.len());
            // 253 characters, each escaped to at most 4.
            assert!(n.len() <= 4 * 253);
        }
    }

    let text = String::from_utf8_lossy(data);
    let conf = dns::parse_resolv_conf(&text);
    assert!(conf.nameservers.len() <= dns::MAX_NAMESERVERS);
    assert!(conf.search.len() <= dns::MAX_SEARCH);
    for s in &conf.search {
        assert_eq!(name::validate(s), Ok(s.as_str()));
    }
    // A name that makes a query comes back from it as itself.
    if let Ok(q) = dns::query(id, &text, QType::A) {
        let (n, _) = name::read(&q, 12).expect("our own query's name");
        assert!(name::same(&n, &text));
    }
});
