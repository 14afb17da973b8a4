//! DHCPv6 replies are network input to PID 1: decoding never panics, what
//! decodes encodes back to the same message, and the client, fed the input
//! both as it is and re-addressed to its own transaction (so that it gets
//! past the checks and into every state), never panics and only ever
//! reports usable addresses.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wyrcan_core::dhcp6::{Action, Client, Message, MessageType, Mode};

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// `m` as an answer to `c`'s current transaction.
fn readdressed(m: &Message, c: &Client, kind: MessageType) -> Vec<u8> {
    let mut m = m.clone();
    m.kind = kind;
    m.xid = c.xid();
    m.options.client_id = Some(c.duid().to_vec());
    for ia in &mut m.options.ia_na {
        ia.iaid = c.iaid();
    }
    m.encode()
}

fn check(c: &Client, action: Option<Action>) {
    if let Some(Action::Done(lease)) = action {
        for (addr, preferred, valid) in &lease.addresses {
            assert!(*valid > 0 && preferred <= valid && !addr.is_multicast());
        }
        assert_eq!(c.lease(), Some(&lease));
        assert_eq!(c.next_timeout(), None);
    }
}

fuzz_target!(|data: &[u8]| {
    let decoded = Message::decode(data);
    if let Ok(m) = &decoded {
        assert_eq!(Message::decode(&m.encode()).as_ref(), Ok(m));
    }
    // Randomness from the input, so that it steers retransmission too.
    let rand = data
        .iter()
        .fold(0x9e37_79b9u32, |h, &b| h.rotate_left(5) ^ u32::from(b));
    for mode in [Mode::Stateful, Mode::Stateless] {
        let mut c = Client::new(MAC, 7, mode);
        let mut now = Duration::ZERO;
        let _ = c.start(now, rand);
        // The input as it came, to a copy: the re-addressed run goes on from here.
        let mut raw = c.clone();
        let action = raw.on_packet(data, now, rand);
        check(&raw, action);
        let Ok(m) = &decoded else { continue };
        for step in 0..4u32 {
            now += Duration::from_millis(700);
            let kind = if step % 2 == 0 && mode == Mode::Stateful {
                MessageType::Advertise
            } else {
                MessageType::Reply
            };
            let action = c.on_packet(&readdressed(m, &c, kind), now, rand ^ step);
            check(&c, action);
            if c.next_timeout()
                .is_some_and(|t| t <= now + Duration::from_secs(2))
            {
                now += Duration::from_secs(2);
                let _ = c.on_timeout(now, rand.rotate_left(step));
            }
        }
    }
});
