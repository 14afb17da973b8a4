//! Logs off the box: with `wyrcan.syslog=HOST[:PORT]`, every message PID 1
//! logs also goes out as RFC 5424 syslog over UDP (RFC 5426), once the
//! network is up — with what was logged before (kept, bounded, until
//! then). The console stays the primary log; a lost datagram is lost. The
//! message format is `wyrcan_core::syslog`.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Mutex;

use wyrcan_core::syslog::{self, Message, Severity};

use crate::sys::{Sys, UdpOut};

/// Messages kept until the network is up: a boot logs a few dozen.
const MAX_EARLY: usize = 512;

struct State {
    early: VecDeque<Vec<u8>>,
    out: Option<Box<dyn UdpOut>>,
    hostname: Option<String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    early: VecDeque::new(),
    out: None,
    hostname: None,
});

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// One formatted log line (as the console gets it: `  INFO text`, or a
/// plain message): kept or sent.
pub fn record(line: &str) {
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    let trimmed = line.trim_start();
    let (severity, text) = match trimmed.split_once(' ') {
        Some((level, rest)) => match Severity::from_level_str(level) {
            Some(s) => (s, rest.trim_start()),
            None => (Severity::Notice, trimmed),
        },
        None => (Severity::Notice, trimmed),
    };
    send(severity, text);
}

/// Send (or keep) one message of `severity`.
pub fn send(severity: Severity, text: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| (d.as_secs() as i64, d.subsec_nanos()));
    let mut st = lock();
    let mut m = Message::new(severity, text);
    m.time = now;
    m.hostname = st.hostname.as_deref();
    m.procid = Some(std::process::id());
    let bytes = syslog::format(&m);
    match &st.out {
        Some(out) => {
            let _ = out.send(&bytes);
        }
        None => {
            if st.early.len() == MAX_EARLY {
                st.early.pop_front();
            }
            st.early.push_back(bytes);
        }
    }
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT`, an address → where to send.
fn target(spec: &str) -> Option<SocketAddr> {
    if let Ok(ip) = spec.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, syslog::PORT));
    }
    if let Ok(sa) = spec.parse::<SocketAddr>() {
        return Some(sa);
    }
    let with_port = match spec.rsplit_once(':') {
        Some((_, p)) if p.parse::<u16>().is_ok() => spec.to_string(),
        _ => format!("{spec}:{}", syslog::PORT),
    };
    with_port.to_socket_addrs().ok()?.next()
}

/// Start sending to `spec`: what was kept goes first.
pub fn start(sys: &dyn Sys, spec: &str) {
    let Some(to) = target(spec) else {
        tracing::warn!(
            "wyrcan.syslog={spec}: the name does not resolve; logging to the console only"
        );
        return;
    };
    let out = match sys.udp_sender(to) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("wyrcan.syslog={spec}: {e}; logging to the console only");
            return;
        }
    };
    {
        let mut st = lock();
        for m in st.early.drain(..) {
            let _ = out.send(&m);
        }
        st.out = Some(out);
    }
    tracing::info!("logging to syslog at {to} too");
}

#[cfg(test)]
pub(crate) fn reset() {
    let mut st = lock();
    st.early.clear();
    st.out = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn early_lines_are_kept_then_sent_in_order_with_their_severity() {
        reset();
        record("  INFO kernel 6.1.0\n");
        record(" WARN attempt 1 failed\n");
        record("wyrcan: boot failed: nope\n");
        let sys = FakeSys::default();
        start(&sys, "10.0.2.2:5514");
        send(Severity::Error, "after");
        let sent = sys.udp_sent.lock().unwrap().clone();
        // Other tests' boots may log through the same global forwarder at
        // the same time: look for ours, in order.
        let text: Vec<String> = sent
            .iter()
            .map(|(to, d)| {
                assert_eq!(to.to_string(), "10.0.2.2:5514");
                String::from_utf8_lossy(d).into_owned()
            })
            .filter(|t| {
                ["kernel 6.1.0", "attempt 1", "nope", "after"]
                    .iter()
                    .any(|w| t.contains(w))
            })
            .collect();
        assert_eq!(text.len(), 4, "{text:?}");
        // PRI = facility 1 (user) * 8 + severity.
        assert!(
            text[0].starts_with("<14>1 ") && text[0].ends_with("kernel 6.1.0"),
            "{text:?}"
        );
        assert!(text[1].starts_with("<12>1 "), "{text:?}");
        assert!(
            text[2].starts_with("<13>1 ") && text[2].contains("boot failed"),
            "{text:?}"
        );
        assert!(
            text[3].starts_with("<11>1 ") && text[3].ends_with("after"),
            "{text:?}"
        );
        assert_eq!(target("[fd00::1]:514").unwrap().port(), 514);
        assert_eq!(target("10.0.0.5").unwrap().port(), 514);
        reset();
    }
}
