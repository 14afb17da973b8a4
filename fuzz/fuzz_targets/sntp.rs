//! NTP replies are network input to PID 1: parsing never panics, a sample
//! it accepts is well-formed, and Unix time survives the trip through an
//! NTP timestamp across both eras.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::sntp::{self, NtpTime};

fn ntp_at(data: &[u8], at: usize) -> Option<NtpTime> {
    let b: [u8; 8] = data.get(at..at + 8)?.try_into().ok()?;
    Some(NtpTime::from_bits(u64::from_be_bytes(b)))
}

fuzz_target!(|data: &[u8]| {
    // T1 is the reply's own originate timestamp, so the checks past it run;
    // T4 comes from the bytes after the packet (ignored by the parser).
    let sent = ntp_at(data, 24).unwrap_or(NtpTime::ZERO);
    let received = ntp_at(data, 48).unwrap_or(sent);
    for (t1, t4) in [(sent, received), (sent, NtpTime::ZERO), (NtpTime::ZERO, sent)] {
        match sntp::parse_response(data, t1, t4) {
            Ok(s) => {
                assert!(s.server_time.1 < 1_000_000_000);
                assert!((1..=15).contains(&s.stratum));
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }

    if let Some(t) = ntp_at(data, 0) {
        let (secs, nanos) = t.to_unix();
        assert!(nanos < 1_000_000_000);
        // 1968-01-20T03:14:08Z to 2104-02-26T09:42:23Z: the two eras.
        assert!((-61_505_152..=4_233_462_143).contains(&secs));
        // Unix time in that range comes back exactly.
        let back = NtpTime::from_unix(secs, nanos).to_unix();
        assert_eq!(back, (secs, nanos));
    }
    let _ = sntp::request(sent);
});
