//! Router advertisements are network input to PID 1: parsing never panics
//! and yields only what the format allows; DNS names decode, encode and
//! decode again to the same names.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::ra::{self, RouterAdvert};

fuzz_target!(|data: &[u8]| {
    match RouterAdvert::parse(data) {
        Ok(advert) => {
            for p in &advert.prefixes {
                assert!(p.len <= 128);
            }
            for (name, _) in &advert.dnssl {
                assert!(!name.is_empty() && name.len() <= 253);
            }
            if let Some(mac) = advert.source_lladdr {
                let _ = ra::router_solicitation(Some(mac));
                for p in &advert.prefixes {
                    let a = ra::slaac_address(p.prefix, mac);
                    assert_eq!(a.octets()[..8], p.prefix.octets()[..8]);
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(names) = ra::decode_names(data) {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(ra::decode_names(&ra::encode_names(&refs)), Ok(names));
    }
});
