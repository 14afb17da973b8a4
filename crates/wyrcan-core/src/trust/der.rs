//! Just enough DER to take a SubjectPublicKeyInfo apart: SEQUENCE, OBJECT
//! IDENTIFIER, BIT STRING, NULL and INTEGER, definite lengths only.
//!
//! A key file is the first thing an operator hands Wyrcan, so the reader
//! checks every length against what is left and answers with an error,
//! never a panic. It is strict DER (minimal lengths, no indefinite form):
//! a key that only a lenient BER reader accepts is not one cosign wrote.

/// Universal tags this module reads.
pub(crate) mod tag {
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING.
    pub const BIT_STRING: u8 = 0x03;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
}

/// Why bytes are not the DER expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    /// Ran out of bytes.
    #[error("DER is truncated")]
    Truncated,
    /// A different element than expected.
    #[error("DER has tag 0x{found:02x} where 0x{expected:02x} was expected")]
    UnexpectedTag {
        /// The tag wanted.
        expected: u8,
        /// The tag found.
        found: u8,
    },
    /// Indefinite, non-minimal or absurdly long length.
    #[error("DER has an invalid length encoding")]
    BadLength,
    /// Bytes after the outermost element.
    #[error("DER has {0} bytes after its end")]
    Trailing(usize),
    /// A BIT STRING whose first byte says it does not end on a byte boundary.
    #[error("DER bit string has {0} unused bits")]
    UnusedBits(u8),
    /// A NULL with content.
    #[error("DER NULL has content")]
    NonEmptyNull,
}

/// A cursor over DER bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Read `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Fail unless everything was read.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(DerError::Trailing(self.data.len()))
        }
    }

    /// The next element, which must have tag `expected`; returns its content.
    pub fn read(&mut self, expected: u8) -> Result<&'a [u8], DerError> {
        let (&found, rest) = self.data.split_first().ok_or(DerError::Truncated)?;
        if found != expected {
            return Err(DerError::UnexpectedTag { expected, found });
        }
        let (&first, mut rest) = rest.split_first().ok_or(DerError::Truncated)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            // Long form: 0x80 | number of length bytes. 0x80 alone is the
            // indefinite form, which DER forbids; more than 3 length bytes
            // would be over 16 MiB, which no key is.
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 3 {
                return Err(DerError::BadLength);
            }
            if rest.len() < n {
                return Err(DerError::Truncated);
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            // DER: the shortest form, so no leading zero byte and no long
            // form for what fits the short one.
            if bytes[0] == 0 || len < 0x80 {
                return Err(DerError::BadLength);
            }
            len
        };
        if rest.len() < len {
            return Err(DerError::Truncated);
        }
        let (content, after) = rest.split_at(len);
        self.data = after;
        Ok(content)
    }

    /// A SEQUENCE, as a reader over its content.
    pub fn sequence(&mut self) -> Result<Reader<'a>, DerError> {
        self.read(tag::SEQUENCE).map(Reader::new)
    }

    /// An OBJECT IDENTIFIER's content bytes.
    pub fn oid(&mut self) -> Result<&'a [u8], DerError> {
        self.read(tag::OID)
    }

    /// A NULL.
    pub fn null(&mut self) -> Result<(), DerError> {
        match self.read(tag::NULL)? {
            [] => Ok(()),
            _ => Err(DerError::NonEmptyNull),
        }
    }

    /// A BIT STRING that holds whole bytes (as every key does); returns them.
    pub fn bit_string(&mut self) -> Result<&'a [u8], DerError> {
        let content = self.read(tag::BIT_STRING)?;
        match content.split_first() {
            Some((0, bytes)) => Ok(bytes),
            Some((&unused, _)) => Err(DerError::UnusedBits(unused)),
            None => Err(DerError::Truncated),
        }
    }

    /// An INTEGER's content bytes (two's complement, big-endian).
    pub fn integer(&mut self) -> Result<&'a [u8], DerError> {
        self.read(tag::INTEGER)
    }
}

/// Dotted form of an OID's content bytes, for messages: `1.2.840.10045.2.1`.
/// Malformed content is shown as hex rather than refused: this only names
/// what was found.
pub(crate) fn oid_to_string(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut pending = false;
    for &b in oid {
        if value > (u64::MAX >> 7) {
            return hex_oid(oid);
        }
        value = (value << 7) | u64::from(b & 0x7f);
        pending = true;
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
            pending = false;
        }
    }
    let Some(&first) = arcs.first() else {
        return hex_oid(oid);
    };
    if pending {
        return hex_oid(oid);
    }
    // The first subidentifier packs the first two arcs as 40 * a + b.
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in &arcs[1..] {
        out.push('.');
        out.push_str(&arc.to_string());
    }
    out
}

fn hex_oid(oid: &[u8]) -> String {
    let hex: String = oid.iter().map(|b| format!("{b:02x}")).collect();
    format!("(malformed OID {hex})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        let mut r = Reader::new(&[0x05, 0x00]);
        assert_eq!(r.null(), Ok(()));
        r.finish().unwrap();

        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(7u8, 0x80));
        let mut r = Reader::new(&long);
        assert_eq!(r.read(0x04).unwrap().len(), 0x80);
        assert!(r.is_empty());

        let mut two = vec![0x04, 0x82, 0x01, 0x00];
        two.extend(std::iter::repeat_n(0u8, 256));
        assert_eq!(Reader::new(&two).read(0x04).unwrap().len(), 256);
    }

    #[test]
    fn bad_lengths_are_errors_not_panics() {
        let cases: &[(&[u8], DerError)] = &[
            (&[], DerError::Truncated),
            (&[0x30], DerError::Truncated),
            (&[0x30, 0x05, 0x00], DerError::Truncated),
            (&[0x30, 0x80, 0x00, 0x00], DerError::BadLength),
            (&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0], DerError::BadLength),
            (&[0x30, 0x82, 0x00, 0x80], DerError::BadLength),
            (&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], DerError::BadLength),
            (&[0x30, 0x82, 0x01], DerError::Truncated),
            (&[0x30, 0x82, 0x01, 0x00, 0x00], DerError::Truncated),
            (
                &[0x31, 0x00],
                DerError::UnexpectedTag {
                    expected: 0x30,
                    found: 0x31,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                Reader::new(input).sequence().map(|_| ()),
                Err(want.clone()),
                "{input:02x?}"
            );
        }
        assert_eq!(
            Reader::new(&[0x03, 0x02, 0x01, 0xff]).bit_string(),
            Err(DerError::UnusedBits(1))
        );
        assert_eq!(
            Reader::new(&[0x03, 0x00]).bit_string(),
            Err(DerError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0x05, 0x01, 0x00]).null(),
            Err(DerError::NonEmptyNull)
        );
        let mut r = Reader::new(&[0x05, 0x00, 0x05]);
        r.null().unwrap();
        assert_eq!(r.finish(), Err(DerError::Trailing(1)));
    }

    #[test]
    fn oids_print_dotted() {
        let ec = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        assert_eq!(oid_to_string(&ec), "1.2.840.10045.2.1");
        assert_eq!(oid_to_string(&[0x2b, 0x65, 0x70]), "1.3.101.112");
        assert_eq!(
            oid_to_string(&[0x2b, 0x81, 0x04, 0x00, 0x22]),
            "1.3.132.0.34"
        );
        assert_eq!(oid_to_string(&[0x88, 0x37]), "2.999");
        assert!(oid_to_string(&[]).contains("malformed"));
        assert!(oid_to_string(&[0x2a, 0x86]).contains("malformed"));
        assert!(oid_to_string(&[0xff; 20]).contains("malformed"));
    }
}
