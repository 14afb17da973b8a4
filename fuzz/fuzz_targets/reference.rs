//! parse → Display → parse is the identity on valid references.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::reference::Reference;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = s.parse::<Reference>() {
        let again: Reference = r.to_string().parse().expect("Display output must parse");
        assert_eq!(r, again);
    }
});
