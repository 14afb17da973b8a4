//! Manifest parsing and platform choice never panic on registry input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::manifest::{self, Manifest, Platform};

fuzz_target!(|data: &[u8]| {
    if let Ok(Manifest::Index(ix)) = manifest::parse(None, data) {
        let _ = manifest::select_platform(&ix, &Platform::current());
    }
    let _ = manifest::parse_config(data);
});
