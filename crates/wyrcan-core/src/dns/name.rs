//! Domain names on the wire (RFC 1035 §3.1, §4.1.4): checking a name we are
//! about to send, writing it as labels, and reading one back through
//! compression pointers.
//!
//! Reading is shared with DHCP option 119 (RFC 3397), whose names are
//! compressed the same way with pointers relative to the option data: one
//! bounded decoder, two callers. The bytes come from the network, so the
//! decoder refuses anything that could make it loop or grow: every pointer
//! must point before everything read so far for this name (a strictly
//! falling position cannot cycle), at most [`MAX_POINTERS`] are followed,
//! and the name may not exceed [`MAX_WIRE_LEN`] bytes as the RFC requires.

use std::fmt::Write as _;

/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest name in text form, without the trailing dot: 255 wire bytes less
/// the first length byte and the root label.
pub const MAX_TEXT_LEN: usize = 253;
/// Longest name on the wire, length bytes and root label included (RFC 1035 §2.3.4).
pub const MAX_WIRE_LEN: usize = 255;
/// Compression pointers followed in one name before giving up. Real
/// messages need one or two; the falling-position rule already stops
/// cycles, this stops a long staircase of pointers.
pub const MAX_POINTERS: usize = 128;

/// Why a name on the wire could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A label or pointer runs past the end of the data.
    #[error("dns name at byte {0} runs past the end of the data")]
    Truncated(usize),
    /// A pointer to itself, to later data or into a part already read: the
    /// shape of a compression loop.
    #[error("dns name pointer at byte {at} points to byte {to}: pointers must point before the name they continue")]
    ForwardPointer {
        /// Where the pointer is.
        at: usize,
        /// Where it points.
        to: usize,
    },
    /// More than [`MAX_POINTERS`] pointers.
    #[error("dns name follows more than {MAX_POINTERS} compression pointers")]
    TooManyPointers,
    /// Longer than [`MAX_WIRE_LEN`] bytes once decompressed.
    #[error("dns name is longer than {MAX_WIRE_LEN} bytes")]
    TooLong,
    /// Label types 0b01 and 0b10 (RFC 6891 extended, RFC 2673 bit labels) are obsolete.
    #[error(
        "dns label type {kind:#04x} at byte {at} is not supported: expected a label or a pointer"
    )]
    LabelType {
        /// The length byte.
        kind: u8,
        /// Where it is.
        at: usize,
    },
}

/// Reads the name starting at `start` in `data` (a whole DNS message, or
/// the data of DHCP option 119). Returns the name in text form without the
/// trailing dot (the root is `""`) and the offset just past the name where
/// it was written, i.e. after its first pointer.
///
/// Label bytes other than letters, digits, `-` and `_` come back escaped as
/// `\DDD` (decimal, as `dig` prints them), so a label holding a dot, a
/// space or a newline can neither fake a name boundary nor reach a config
/// file as itself.
pub fn read(data: &[u8], start: usize) -> Result<(String, usize), NameError> {
    let mut name = String::new();
    let mut pos = start;
    // Set at the first pointer: the caller's next field follows it.
    let mut end = None;
    // Every pointer must point below this, which falls with each jump.
    let mut floor = start;
    let mut pointers = 0;
    // The root label's byte.
    let mut wire_len = 1;
    loop {
        let &len = data.get(pos).ok_or(NameError::Truncated(pos))?;
        match len >> 6 {
            0 if len == 0 => return Ok((name, end.unwrap_or(pos + 1))),
            0 => {
                let label = data
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(NameError::Truncated(pos))?;
                wire_len += 1 + label.len();
                if wire_len > MAX_WIRE_LEN {
                    return Err(NameError::TooLong);
                }
                if !name.is_empty() {
                    name.push('.');
                }
                push_label(&mut name, label);
                pos += 1 + label.len();
            }
            0b11 => {
                let &low = data.get(pos + 1).ok_or(NameError::Truncated(pos))?;
                let to = usize::from(len & 0x3f) << 8 | usize::from(low);
                if to >= floor {
                    return Err(NameError::ForwardPointer { at: pos, to });
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(NameError::TooManyPointers);
                }
                end.get_or_insert(pos + 2);
                floor = to;
                pos = to;
            }
            _ => return Err(NameError::LabelType { kind: len, at: pos }),
        }
    }
}

fn push_label(name: &mut String, label: &[u8]) {
    for &b in label {
        if is_name_byte(b) {
            name.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(name, "\\{b:03}");
        }
    }
}

/// Letters, digits, hyphen (RFC 1123 host names) and underscore (service
/// labels such as `_ldap._tcp`, and names real networks do use).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Checks a name in text form: labels of 1 to 63 letters, digits, `-` or
/// `_`, at most 253 characters, one optional trailing dot. Returns the name
/// without that dot, or why it is refused.
pub fn validate(name: &str) -> Result<&str, &'static str> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("the name is empty");
    }
    if bare.len() > MAX_TEXT_LEN {
        return Err("the name is longer than 253 characters");
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err("a label is empty (two dots in a row, or a leading dot)");
        }
        if label.len() > MAX_LABEL_LEN {
            return Err("a label is longer than 63 characters");
        }
        if !label.bytes().all(is_name_byte) {
            return Err("only letters, digits, '-' and '_' may appear in a label");
        }
    }
    Ok(bare)
}

/// Appends `name`, already [`validate`]d, as uncompressed labels and the root label.
pub fn write(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        // validate() kept every label to 63 bytes; saturate rather than wrap
        // should a caller skip it.
        let len = u8::try_from(label.len()).unwrap_or(u8::MAX).min(63);
        out.push(len);
        out.extend(label.bytes().take(usize::from(len)));
    }
    out.push(0);
}

/// Whether two names in text form are the same name: DNS compares ASCII
/// letters case-insensitively (RFC 4343); a trailing dot changes nothing.
pub fn same(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_compressed_names() {
        // "example.com" at 0, "www" + pointer to 0 at 13.
        let mut d = b"\x07example\x03com\x00".to_vec();
        d.extend_from_slice(b"\x03www\xc0\x00");
        assert_eq!(read(&d, 0), Ok(("example.com".into(), 13)));
        assert_eq!(read(&d, 13), Ok(("www.example.com".into(), 19)));
        // A bare pointer, then the root.
        d.extend_from_slice(b"\xc0\x0d\x00");
        assert_eq!(read(&d, 19), Ok(("www.example.com".into(), 21)));
        assert_eq!(read(&d, 21), Ok(("".into(), 22)));
    }

    #[test]
    fn escapes_odd_bytes() {
        let d = b"\x05a.b\nc\x03com\x00";
        assert_eq!(read(d, 0).unwrap().0, "a\\046b\\010c.com");
    }

    #[test]
    fn refuses_loops_and_forward_pointers() {
        // A pointer to itself.
        assert_eq!(
            read(b"\xc0\x00", 0),
            Err(NameError::ForwardPointer { at: 0, to: 0 })
        );
        // Forward.
        assert_eq!(
            read(b"\xc0\x02\x00", 0),
            Err(NameError::ForwardPointer { at: 0, to: 2 })
        );
        // Backwards, but into the label just read: 2 → "a" → pointer at 4 → 2.
        let d = b"\x00\x00\x01a\xc0\x02";
        assert_eq!(read(d, 2), Err(NameError::ForwardPointer { at: 4, to: 2 }));
        // Two names pointing at each other.
        let d = b"\x01a\xc0\x04\x01b\xc0\x00";
        assert_eq!(read(d, 4), Err(NameError::ForwardPointer { at: 2, to: 4 }));
    }

    #[test]
    fn bounds_pointers_and_length() {
        // A staircase: each pointer points 2 bytes back, to the next.
        let mut d = vec![0u8];
        for i in 0..200u16 {
            let to = if i == 0 { 0 } else { 1 + 2 * (i - 1) };
            d.extend_from_slice(&(0xc000 | to).to_be_bytes());
        }
        assert_eq!(read(&d, 1 + 2 * 127), Ok(("".into(), 1 + 2 * 128)));
        assert_eq!(read(&d, 1 + 2 * 128), Err(NameError::TooManyPointers));
        // 4 labels of 63: 4 × 64 + 1 = 257 bytes.
        let mut long = Vec::new();
        for _ in 0..4 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert_eq!(read(&long, 0), Err(NameError::TooLong));
        // 3 × 64 + 62 + 1 = 255: the longest name.
        let at = 64 * 3;
        long[at] = 61;
        long.truncate(at + 62);
        long.push(0);
        let (n, end) = read(&long, 0).unwrap();
        assert_eq!((n.len(), end), (253, 255));
        assert_eq!(validate(&n), Ok(n.as_str()));
    }

    #[test]
    fn truncated_and_obsolete_labels() {
        assert_eq!(read(b"", 0), Err(NameError::Truncated(0)));
        assert_eq!(read(b"\x03ab", 0), Err(NameError::Truncated(0)));
        assert_eq!(read(b"\x01a", 0), Err(NameError::Truncated(2)));
        assert_eq!(read(b"\x00\xc0", 1), Err(NameError::Truncated(1)));
        assert_eq!(
            read(b"\x41", 0),
            Err(NameError::LabelType { kind: 0x41, at: 0 })
        );
        assert_eq!(read(b"x", 5), Err(NameError::Truncated(5)));
    }

    #[test]
    fn validates_and_writes() {
        assert_eq!(validate("Example.COM."), Ok("Example.COM"));
        assert_eq!(validate("_ldap._tcp.dc.lan"), Ok("_ldap._tcp.dc.lan"));
        for bad in ["", ".", "a..b", ".a", "a b", "ä.de", "a\n", "a..", "x.-\\"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(validate(&"a".repeat(63)).is_ok());
        assert!(validate(&"a".repeat(64)).is_err());
        let long = ["a".repeat(63).as_str(); 4].join(".");
        assert!(validate(&long[..253]).is_ok());
        assert!(validate(&long[..254]).is_err());
        let mut out = Vec::new();
        write(&mut out, "www.example.com");
        assert_eq!(out, b"\x03www\x07example\x03com\x00");
        assert!(same("WWW.example.com.", "www.EXAMPLE.com"));
        assert!(!same("www.example.com", "ww.example.com"));
    }
}
