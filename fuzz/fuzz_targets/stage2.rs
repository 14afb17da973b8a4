//! The stage-2 config never panics the parser; whatever parses writes back
//! as a file that parses to the same config.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::stage2::Stage2Config;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Stage2Config::parse(data) else {
        return;
    };
    let again = Stage2Config::parse(&c.to_json()).expect("a written config parses");
    assert_eq!(again, c);
    assert!(c.init.starts_with('/') && c.root.starts_with('/'));
    if let Some(size) = &c.overlay_size {
        assert!(!size.contains(','));
    }
});
