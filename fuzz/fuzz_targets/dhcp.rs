//! DHCP replies are network input to PID 1: decoding never panics, what
//! decodes re-encodes to the same message, and an OFFER for our client,
//! turned into the matching ACK, gives a lease whose routes are sound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use wyrcan_core::dhcp;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = dhcp::Message::decode(data) {
        assert_eq!(dhcp::Message::decode(&m.encode()).as_ref(), Ok(&m));
    }
    let mut c = dhcp::Client::new([2, 0, 0, 0, 0, 1], 7);
    let _ = c.start(Duration::ZERO);
    let _ = c.on_packet(data, Duration::from_secs(1));
    // The seeds start their options with the message type: an OFFER there
    // becomes the ACK that completes the exchange.
    if data.get(240..243) == Some(&[53, 1, 2]) {
        let mut ack = data.to_vec();
        ack[242] = 5;
        if let Some(dhcp::Action::Bound(l)) = c.on_packet(&ack, Duration::from_secs(1)) {
            let routes = l.routes();
            assert!(routes.iter().all(|r| r.prefix_len <= 32));
            assert!(l.mtu.is_none_or(|m| m >= 68));
            if l.classless_routes.is_empty() {
                assert_eq!(routes.len(), usize::from(l.router.is_some()));
            }
        }
    }
});
