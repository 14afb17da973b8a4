//! The clock, before the first TLS connection: certificate checks need
//! the right time, and bare-metal RTCs are often wrong. With NTP servers
//! (`wyrcan.ntp=`, the site's, DHCP option 42), one SNTP exchange sets the
//! system clock **and the RTC** (kexec carries no time over: the booted
//! system reads the RTC again). With none answering, a clock that says it
//! is before Wyrcan was built is reported with what to do. The SNTP codec
//! is `wyrcan_core::sntp`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::time::Duration;

use wyrcan_core::booted::rfc3339;
use wyrcan_core::sntp::{self, NtpTime};

use crate::sys::Sys;

/// How long one server gets to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// Tries per server (UDP may be lost).
const TRIES: u32 = 2;
/// Offsets below this are left alone: not worth a jump.
const IGNORE_BELOW_NS: i128 = 500_000_000;

/// When this binary was built (Unix seconds): a clock before it is wrong.
/// From `SOURCE_DATE_EPOCH` when the build sets it; else the time of
/// `build.rs`-less builds is unknown and the check uses the release's
/// year instead.
pub fn build_time() -> i64 {
    option_env!("SOURCE_DATE_EPOCH")
        .and_then(|s| s.parse().ok())
        // 2026-01-01T00:00:00Z: no Wyrcan of this version is older.
        .unwrap_or(1_767_225_600)
}

/// What happened to the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Set from this server, by this many nanoseconds.
    Set {
        /// The server that answered.
        server: SocketAddr,
        /// How far the clock was off.
        offset_ns: i128,
    },
    /// The server agreed with the clock.
    Right {
        /// The server that answered.
        server: SocketAddr,
    },
    /// No server given or none answered.
    Unsynced,
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT` or an address → socket addresses.
fn addresses(server: &str) -> Vec<SocketAddr> {
    if let Ok(ip) = server.parse::<IpAddr>() {
        return vec![SocketAddr::new(ip, sntp::PORT)];
    }
    if let Ok(sa) = server.parse::<SocketAddr>() {
        return vec![sa];
    }
    let with_port = if server
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        server.to_string()
    } else {
        format!("{server}:{}", sntp::PORT)
    };
    match with_port.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            tracing::warn!("ntp server {server}: {e}");
            Vec::new()
        }
    }
}

/// Ask `servers` in order; the first good answer sets the clocks.
pub fn sync(sys: &dyn Sys, servers: &[String]) -> Outcome {
    for server in servers {
        for to in addresses(server) {
            for _ in 0..TRIES {
                let (s, n) = sys.now();
                let sent = NtpTime::from_unix(s, n);
                let reply = match sys.udp_exchange(to, &sntp::request(sent), ANSWER_WAIT) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::debug!("ntp {to}: {e}");
                        break;
                    }
                };
                let (s, n) = sys.now();
                match sntp::parse_response(&reply, sent, NtpTime::from_unix(s, n)) {
                    Ok(sample) => return apply(sys, to, &sample),
                    Err(e) => {
                        tracing::warn!("ntp {to}: {e}");
                        break;
                    }
                }
            }
        }
    }
    Outcome::Unsynced
}

fn apply(sys: &dyn Sys, server: SocketAddr, sample: &sntp::Sample) -> Outcome {
    let (secs, nanos) = sample.server_time;
    if sample.offset_ns.abs() < IGNORE_BELOW_NS {
        tracing::info!("clock: {} (right, by ntp {server})", rfc3339(secs));
        return Outcome::Right { server };
    }
    let (was, _) = sys.now();
    match sys.set_clock(secs, nanos) {
        Ok(()) => tracing::info!(
            "clock: set to {} by ntp {server} (it said {}, off by {:.1} s)",
            rfc3339(secs),
            rfc3339(was),
            sample.offset_ns as f64 / 1e9
        ),
        Err(e) => {
            tracing::warn!("clock: ntp {server} says {}, but {e}", rfc3339(secs));
            return Outcome::Unsynced;
        }
    }
    if let Err(e) = sys.set_rtc(secs) {
        tracing::warn!("clock: the hardware clock (/dev/rtc0) was not set: {e}; the booted system will start with the old time");
    }
    Outcome::Set {
        server,
        offset_ns: sample.offset_ns,
    }
}

/// Say so when the clock cannot be right (before this Wyrcan was built)
/// and nothing set it: TLS would fail with a certificate "not yet valid".
pub fn check_plausible(sys: &dyn Sys, outcome: &Outcome, had_servers: bool) {
    if *outcome != Outcome::Unsynced {
        return;
    }
    let (now, _) = sys.now();
    let built = build_time();
    if now < built {
        let why = if had_servers {
            "no NTP server answered"
        } else {
            "no NTP server is known"
        };
        tracing::warn!(
            "clock: it says {}, before this Wyrcan was built ({}), and {why}: TLS certificates will look \
             not yet valid. Set the firmware clock, or give a reachable server with wyrcan.ntp=HOST \
             (or DHCP option 42)",
            rfc3339(now),
            rfc3339(built)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn a_wrong_clock_is_set_with_the_rtc() {
        let mut sys = FakeSys::default();
        *sys.clock.lock().unwrap() = (978_307_200, 0); // 2001
        sys.ntp_time = Some(1_795_000_000);
        let out = sync(&sys, &["10.0.2.3".into()]);
        assert!(matches!(out, Outcome::Set { .. }), "{out:?}");
        let calls = sys.calls();
        assert!(calls.iter().any(|c| c == "udp 10.0.2.3:123"), "{calls:?}");
        assert!(
            calls.iter().any(|c| c.starts_with("set_clock 1795000000")),
            "{calls:?}"
        );
        assert!(
            calls.iter().any(|c| c.starts_with("set_rtc 1795000000")),
            "{calls:?}"
        );
    }

    #[test]
    fn a_right_clock_is_left_alone_and_silence_is_reported() {
        let mut sys = FakeSys::default();
        *sys.clock.lock().unwrap() = (1_795_000_000, 0);
        sys.ntp_time = Some(1_795_000_000);
        assert!(matches!(
            sync(&sys, &["[fd00::1]:123".into()]),
            Outcome::Right { .. }
        ));
        assert!(!sys.calls().iter().any(|c| c.starts_with("set_clock")));
        let sys = FakeSys::default();
        assert_eq!(sync(&sys, &["10.0.2.3".into()]), Outcome::Unsynced);
        // Tried twice, then gave up.
        assert_eq!(
            sys.calls().iter().filter(|c| c.starts_with("udp")).count(),
            2
        );
        assert_eq!(sync(&sys, &[]), Outcome::Unsynced);
    }
}
