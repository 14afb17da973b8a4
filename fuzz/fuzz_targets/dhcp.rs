//! DHCP replies are network input to PID 1: decoding never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::dhcp;

fuzz_target!(|data: &[u8]| {
    let _ = dhcp::Message::decode(data);
    let mut c = dhcp::Client::new([2, 0, 0, 0, 0, 1], 7);
    let _ = c.start(std::time::Duration::ZERO);
    let _ = c.on_packet(data, std::time::Duration::from_secs(1));
});
