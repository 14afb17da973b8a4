//! Log lines carry whatever PID 1 met, host names come from DHCP: any text
//! and fields make a datagram within MAX_DATAGRAM whose header is printable
//! ASCII and whose message is a UTF-8 prefix of the text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::syslog::{self, Message, Severity, MAX_DATAGRAM};

const SEVERITIES: [Severity; 8] = [
    Severity::Emergency,
    Severity::Alert,
    Severity::Critical,
    Severity::Error,
    Severity::Warning,
    Severity::Notice,
    Severity::Informational,
    Severity::Debug,
];

fuzz_target!(|data: &[u8]| {
    // Facility, severity, flags, seconds (8), nanoseconds (4), process id
    // (4), then host name, app, msgid and text separated by NULs.
    let Some((head, rest)) = data.split_at_checked(19) else {
        return;
    };
    let flags = head[2];
    let secs = i64::from_be_bytes(head[3..11].try_into().unwrap());
    let nanos = u32::from_be_bytes(head[11..15].try_into().unwrap());
    let procid = u32::from_be_bytes(head[15..19].try_into().unwrap());
    let mut parts = rest.splitn(4, |&b| b == 0).map(String::from_utf8_lossy);
    let (host, app, msgid, text) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let m = Message {
        facility: head[0],
        severity: SEVERITIES[usize::from(head[1] % 8)],
        time: (flags & 1 != 0).then_some((secs, nanos)),
        hostname: (flags & 2 != 0).then_some(&*host),
        app: &app,
        procid: (flags & 4 != 0).then_some(procid),
        msgid: (flags & 8 != 0).then_some(&*msgid),
        text: &text,
    };
    let out = syslog::format(&m);
    assert!(out.len() <= MAX_DATAGRAM, "{}", out.len());
    // The header runs to the BOM, or to the end without a message.
    let bom = out.iter().position(|&b| b == 0xef).unwrap_or(out.len());
    let header = &out[..bom];
    assert!(header.iter().all(|&b| (b' '..=b'~').contains(&b)));
    assert_eq!(header.split(|&b| b == b' ').filter(|f| !f.is_empty()).count(), 7);
    if bom < out.len() {
        assert_eq!(&out[bom..bom + 3], b"\xEF\xBB\xBF");
        let msg = std::str::from_utf8(&out[bom + 3..]).expect("the text stays UTF-8");
        assert!(!msg.is_empty());
        assert!(text.starts_with(msg));
    }
    if let Ok(level) = std::str::from_utf8(&head[..2]) {
        let _ = Severity::from_level_str(level);
    }
});
