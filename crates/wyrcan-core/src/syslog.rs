//! Syslog messages (RFC 5424) as sent in one UDP datagram each (RFC 5426),
//! without I/O: the caller owns the socket and the clock.
//!
//! Why: a machine that fails to boot in a data centre has no one at its
//! console; its log lines have to reach the site's collector. RFC 5424 is
//! the format every collector (rsyslog, syslog-ng, journald's remote,
//! vector, Loki's receiver) parses without configuration.
//!
//! Every header field is made valid rather than refused: a log line is
//! never worth an error path, and a host name taken from DHCP may hold
//! anything. Characters outside printable ASCII become `_`, fields are cut
//! to their maximum length, an empty field becomes the NILVALUE `-`. The
//! message text goes as UTF-8 after a BOM (RFC 5424 §6.4), cut at a
//! character boundary so that the datagram fits [`MAX_DATAGRAM`].

use crate::booted::rfc3339;

/// The port syslog collectors listen on (RFC 5426 §3.3).
pub const PORT: u16 = 514;
/// The largest datagram sent: RFC 5426 §3.2 says receivers should take
/// 2048 bytes (and must take 480); more would be cut by some.
pub const MAX_DATAGRAM: usize = 2048;
/// Facility 1, user-level messages: the default of syslog(3).
pub const FACILITY_USER: u8 = 1;
/// Facility 3, system daemons.
pub const FACILITY_DAEMON: u8 = 3;
/// APP-NAME for Wyrcan's own messages.
pub const APP_NAME: &str = "wyrcan";

/// Header field limits (RFC 5424 §6).
const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_MSGID: usize = 32;
/// The facility code is five bits (RFC 5424 §6.2.1).
const MAX_FACILITY: u8 = 23;
/// The BOM that marks the message as UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: TIMESTAMP has four year digits.
const MIN_TIME: i64 = -62_167_219_200;
const MAX_TIME: i64 = 253_402_300_799;

/// How bad it is (RFC 5424 §6.2.1): lower is more severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// 0: the system is unusable.
    Emergency = 0,
    /// 1: action must be taken immediately.
    Alert = 1,
    /// 2: critical conditions.
    Critical = 2,
    /// 3: error conditions.
    Error = 3,
    /// 4: warning conditions.
    Warning = 4,
    /// 5: normal but significant.
    Notice = 5,
    /// 6: informational.
    Informational = 6,
    /// 7: debug-level.
    Debug = 7,
}

impl Severity {
    /// From a `tracing` level as it prints (`ERROR`, `WARN`, `INFO`,
    /// `DEBUG`, `TRACE`; any case). Syslog has nothing below debug, so
    /// TRACE is Debug.
    pub fn from_level_str(level: &str) -> Option<Severity> {
        const LEVELS: [(&str, Severity); 5] = [
            ("ERROR", Severity::Error),
            ("WARN", Severity::Warning),
            ("INFO", Severity::Informational),
            ("DEBUG", Severity::Debug),
            ("TRACE", Severity::Debug),
        ];
        LEVELS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(level))
            .map(|&(_, s)| s)
    }
}

/// One log message; `None` fields are sent as NILVALUE (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// 0 to 23; others are sent as [`FACILITY_USER`].
    pub facility: u8,
    /// How bad it is.
    pub severity: Severity,
    /// When it happened, as Unix `(seconds, nanoseconds)`; `None` when the
    /// clock is not known to be right (before NTP, with no RTC): a
    /// collector then stamps it on arrival, which beats a 1970 date.
    pub time: Option<(i64, u32)>,
    /// Our host name, if we have one.
    pub hostname: Option<&'a str>,
    /// The program: [`APP_NAME`].
    pub app: &'a str,
    /// The process id.
    pub procid: Option<u32>,
    /// The kind of message, for filtering (e.g. the module).
    pub msgid: Option<&'a str>,
    /// The text, any UTF-8.
    pub text: &'a str,
}

impl<'a> Message<'a> {
    /// A user-facility message from [`APP_NAME`] with no time, host, process or id.
    pub fn new(severity: Severity, text: &'a str) -> Message<'a> {
        Message {
            facility: FACILITY_USER,
            severity,
            time: None,
            hostname: None,
            app: APP_NAME,
            procid: None,
            msgid: None,
            text,
        }
    }
}

/// The datagram: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM MSG`,
/// never longer than [`MAX_DATAGRAM`].
pub fn format(m: &Message) -> Vec<u8> {
    let facility = if m.facility > MAX_FACILITY {
        FACILITY_USER
    } else {
        m.facility
    };
    let pri = u16::from(facility) * 8 + m.severity as u16;
    let mut out = format!("<{pri}>1 ").into_bytes();
    match m.time.and_then(timestamp) {
        Some(t) => out.extend_from_slice(t.as_bytes()),
        None => out.push(b'-'),
    }
    out.push(b' ');
    field(&mut out, m.hostname, MAX_HOSTNAME);
    out.push(b' ');
    field(&mut out, Some(m.app), MAX_APP_NAME);
    out.push(b' ');
    match m.procid {
        Some(p) => out.extend_from_slice(p.to_string().as_bytes()),
        None => out.push(b'-'),
    }
    out.push(b' ');
    field(&mut out, m.msgid, MAX_MSGID);
    // No STRUCTURED-DATA.
    out.extend_from_slice(b" -");

    // The datagram frames the message: a trailing newline would show as an
    // empty line in collectors that print what they get.
    let text = m.text.trim_end_matches(['\n', '\r']);
    if !text.is_empty() {
        // The header is at most ~400 bytes, so room is always left.
        let room = MAX_DATAGRAM.saturating_sub(out.len() + 1 + BOM.len());
        out.push(b' ');
        out.extend_from_slice(BOM);
        out.extend_from_slice(prefix(text, room).as_bytes());
    }
    out
}

/// `(secs, nanos)` as RFC 3339 UTC with microseconds, if the year has four digits.
fn timestamp((secs, nanos): (i64, u32)) -> Option<String> {
    if !(MIN_TIME..=MAX_TIME).contains(&secs) {
        return None;
    }
    let date = rfc3339(secs);
    let date = date.strip_suffix('Z')?;
    // Nanoseconds over a second (an invalid time) stay in this second.
    let micros = (nanos / 1000).min(999_999);
    Some(format!("{date}.{micros:06}Z"))
}

/// Appends a header field as PRINTUSASCII (33 to 126) of at most `max`
/// characters, or `-` when there is none.
fn field(out: &mut Vec<u8>, value: Option<&str>, max: usize) {
    let value = value.unwrap_or_default();
    if value.is_empty() {
        out.push(b'-');
        return;
    }
    out.extend(value.chars().take(max).map(|c| {
        u8::try_from(c)
            .ok()
            .filter(u8::is_ascii_graphic)
            .unwrap_or(b'_')
    }));
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bytes() {
        let m = Message {
            facility: FACILITY_USER,
            severity: Severity::Error,
            time: Some((1_795_000_000, 123_456_789)),
            hostname: Some("node-7.dc1"),
            app: APP_NAME,
            procid: Some(1),
            msgid: Some("pull"),
            text: "pulling reg.lan/os:1 failed: connection refused\n",
        };
        assert_eq!(
            format(&m),
            b"<11>1 2026-11-18T11:06:40.123456Z node-7.dc1 wyrcan 1 pull - \
              \xEF\xBB\xBFpulling reg.lan/os:1 failed: connection refused"
        );
        // Everything unknown: NILVALUEs, and no MSG at all without text.
        assert_eq!(
            format(&Message::new(Severity::Debug, "")),
            b"<15>1 - - wyrcan - - -"
        );
        let m = Message {
            facility: FACILITY_DAEMON,
            time: Some((0, 0)),
            ..Message::new(Severity::Emergency, "é")
        };
        assert_eq!(
            format(&m),
            "<24>1 1970-01-01T00:00:00.000000Z - wyrcan - - - \u{feff}é".as_bytes()
        );
    }

    #[test]
    fn fields_are_sanitized() {
        let long_host = "h".repeat(300);
        let long_id = "m".repeat(40);
        let m = Message {
            facility: 200,
            hostname: Some("bad host\n"),
            app: "wyrcän",
            msgid: Some(""),
            ..Message::new(Severity::Warning, "x")
        };
        assert_eq!(format(&m), b"<12>1 - bad_host_ wyrc_n - - - \xEF\xBB\xBFx");
        let m = Message {
            hostname: Some(&long_host),
            app: "",
            msgid: Some(&long_id),
            time: Some((MAX_TIME + 1, 0)),
            ..Message::new(Severity::Notice, "x")
        };
        let text = String::from_utf8(format(&m)).unwrap();
        let fields: Vec<&str> = text.split(' ').collect();
        assert_eq!(fields[1], "-", "year 10000 has five digits");
        assert_eq!(fields[2].len(), 255);
        assert_eq!(fields[3], "-");
        assert_eq!(fields[5], "m".repeat(32));
        // The last second with four year digits, and nanoseconds out of range.
        let m = Message {
            time: Some((MAX_TIME, 2_000_000_000)),
            ..Message::new(Severity::Notice, "")
        };
        assert_eq!(
            format(&m),
            b"<13>1 9999-12-31T23:59:59.999999Z - wyrcan - - -"
        );
        let m = Message {
            time: Some((MIN_TIME, 1_000)),
            ..Message::new(Severity::Notice, "")
        };
        assert_eq!(
            format(&m),
            b"<13>1 0000-01-01T00:00:00.000001Z - wyrcan - - -"
        );
        let m = Message {
            time: Some((i64::MIN, 0)),
            ..Message::new(Severity::Notice, "")
        };
        assert_eq!(format(&m), b"<13>1 - - wyrcan - - -");
    }

    #[test]
    fn truncated_at_a_character_boundary() {
        let host = "h".repeat(255);
        let app = "a".repeat(48);
        let id = "i".repeat(32);
        for c in ["x", "é", "€", "🦀"] {
            let text = c.repeat(3000);
            let m = Message {
                time: Some((1_795_000_000, 0)),
                hostname: Some(&host),
                app: &app,
                procid: Some(u32::MAX),
                msgid: Some(&id),
                ..Message::new(Severity::Informational, &text)
            };
            let out = format(&m);
            assert!(out.len() <= MAX_DATAGRAM, "{c}: {}", out.len());
            assert!(out.len() > MAX_DATAGRAM - c.len(), "{c}: {}", out.len());
            let bom = out.windows(3).position(|w| w == BOM).unwrap();
            let msg = std::str::from_utf8(&out[bom + 3..]).unwrap();
            assert!(msg.chars().all(|x| x.to_string() == c));
        }
        assert_eq!(prefix("aé", 2), "a");
        assert_eq!(prefix("aé", 3), "aé");
        assert_eq!(prefix("aé", 0), "");
        assert_eq!(prefix("", 10), "");
    }

    #[test]
    fn levels() {
        assert_eq!(Severity::from_level_str("ERROR"), Some(Severity::Error));
        assert_eq!(Severity::from_level_str("WARN"), Some(Severity::Warning));
        assert_eq!(
            Severity::from_level_str("info"),
            Some(Severity::Informational)
        );
        assert_eq!(Severity::from_level_str("DEBUG"), Some(Severity::Debug));
        assert_eq!(Severity::from_level_str("TRACE"), Some(Severity::Debug));
        assert_eq!(Severity::from_level_str("WARNING"), None);
        assert_eq!(Severity::from_level_str(""), None);
        assert!(Severity::Emergency < Severity::Debug);
    }
}
