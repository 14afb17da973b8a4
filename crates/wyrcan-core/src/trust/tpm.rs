//! TPM 2.0 PCR commands as bytes (TCG TPM 2.0 Library, Part 3 §22.2
//! PCR_Extend and §22.4 PCR_Read; structures from Part 2), and the event
//! log that lets a verifier recompute a PCR.
//!
//! Wyrcan measures what it boots (the image reference, its manifest
//! digest, the kernel, the cmdline) into a PCR before kexec, so that a
//! remote attestation of the booted system covers the choice Wyrcan made.
//! The caller writes these commands to /dev/tpmrm0 and hands the answer
//! back; only SHA-256 is used, the bank every TPM 2.0 has allocated.
//!
//! Responses come from hardware or firmware that may be buggy, so parsing
//! checks every length and never panics.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// TPM_ALG_SHA256.
pub const SHA256_ALG: u16 = 0x000B;
/// Highest PCR index of a PC-client TPM (24 PCRs).
pub const PCR_MAX: u32 = 23;

/// TPM_ST_NO_SESSIONS.
const ST_NO_SESSIONS: u16 = 0x8001;
/// TPM_ST_SESSIONS.
const ST_SESSIONS: u16 = 0x8002;
/// TPM_CC_PCR_Extend.
const CC_PCR_EXTEND: u32 = 0x0000_0182;
/// TPM_CC_PCR_Read.
const CC_PCR_READ: u32 = 0x0000_017E;
/// TPM_RS_PW: the password session, here with the empty password that
/// PCRs have unless a platform set one.
const RS_PW: u32 = 0x4000_0009;
/// tag, size, code/rc.
const HEADER_LEN: usize = 10;
/// Bytes in a PC-client PCR selection bitmap (24 PCRs).
const SIZEOF_SELECT: u8 = 3;

/// Why a TPM response is not the success expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TpmError {
    /// Shorter than its structures.
    #[error("the TPM response is truncated ({0} bytes)")]
    Truncated(usize),
    /// Neither TPM_ST_NO_SESSIONS nor TPM_ST_SESSIONS.
    #[error("the TPM response has tag 0x{0:04x}, not a TPM 2.0 response tag")]
    BadTag(u16),
    /// The header's size is not the response's.
    #[error("the TPM response says it is {header} bytes but is {actual}")]
    SizeMismatch {
        /// The size field.
        header: u32,
        /// The bytes received.
        actual: usize,
    },
    /// The TPM refused the command.
    #[error("the TPM answered {}", describe_rc(*.0))]
    Code(u32),
    /// A PCR index above [`PCR_MAX`].
    #[error("PCR {0} does not exist (a TPM has PCRs 0 to 23)")]
    NoSuchPcr(u32),
    /// The TPM returned no SHA-256 value for the PCR.
    #[error("the TPM returned no SHA-256 value for PCR {0} (is the SHA-256 PCR bank allocated?)")]
    NotSelected(u32),
    /// A response that does not have the structure of its command's.
    #[error("the TPM response is malformed: {0}")]
    Malformed(String),
}

/// TPM2_PCR_Extend of `pcr` with one SHA-256 `digest`, authorized by the
/// empty password (65 bytes). `pcr` should be at most [`PCR_MAX`]; a
/// larger one is encoded as given, and the TPM refuses it.
pub fn pcr_extend_command(pcr: u32, digest: &[u8; 32]) -> Vec<u8> {
    let mut c = Vec::with_capacity(65);
    c.extend_from_slice(&ST_SESSIONS.to_be_bytes());
    c.extend_from_slice(&65u32.to_be_bytes());
    c.extend_from_slice(&CC_PCR_EXTEND.to_be_bytes());
    // pcrHandle: PCR handles are the PCR index (TPM_HT_PCR is 0x00).
    c.extend_from_slice(&pcr.to_be_bytes());
    // Authorization area: its size, then TPMS_AUTH_COMMAND.
    c.extend_from_slice(&9u32.to_be_bytes());
    c.extend_from_slice(&RS_PW.to_be_bytes());
    c.extend_from_slice(&0u16.to_be_bytes()); // nonce: empty
    c.push(0); // sessionAttributes
    c.extend_from_slice(&0u16.to_be_bytes()); // hmac (the password): empty
                                              // TPML_DIGEST_VALUES with one TPMT_HA.
    c.extend_from_slice(&1u32.to_be_bytes());
    c.extend_from_slice(&SHA256_ALG.to_be_bytes());
    c.extend_from_slice(digest);
    c
}

/// TPM2_PCR_Read of `pcr` in the SHA-256 bank (20 bytes). A `pcr` above
/// [`PCR_MAX`] selects nothing, and [`parse_pcr_read_response`] says so.
pub fn pcr_read_command(pcr: u32) -> Vec<u8> {
    let mut c = Vec::with_capacity(20);
    c.extend_from_slice(&ST_NO_SESSIONS.to_be_bytes());
    c.extend_from_slice(&20u32.to_be_bytes());
    c.extend_from_slice(&CC_PCR_READ.to_be_bytes());
    // TPML_PCR_SELECTION with one TPMS_PCR_SELECTION.
    c.extend_from_slice(&1u32.to_be_bytes());
    c.extend_from_slice(&SHA256_ALG.to_be_bytes());
    c.push(SIZEOF_SELECT);
    c.extend_from_slice(&select(pcr));
    c
}

/// The selection bitmap with only `pcr` set: bit `pcr % 8` of byte `pcr / 8`.
fn select(pcr: u32) -> [u8; SIZEOF_SELECT as usize] {
    let mut bitmap = [0u8; SIZEOF_SELECT as usize];
    if pcr <= PCR_MAX {
        bitmap[(pcr / 8) as usize] = 1 << (pcr % 8);
    }
    bitmap
}

/// Check a response header: a TPM 2.0 tag, a size that is the response's
/// length, and a success code.
pub fn check_response(resp: &[u8]) -> Result<(), TpmError> {
    let mut r = Cursor(resp);
    let (Some(tag), Some(size), Some(rc)) = (r.u16(), r.u32(), r.u32()) else {
        return Err(TpmError::Truncated(resp.len()));
    };
    if tag != ST_NO_SESSIONS && tag != ST_SESSIONS {
        return Err(TpmError::BadTag(tag));
    }
    if usize::try_from(size).ok() != Some(resp.len()) {
        return Err(TpmError::SizeMismatch {
            header: size,
            actual: resp.len(),
        });
    }
    if rc != 0 {
        return Err(TpmError::Code(rc));
    }
    Ok(())
}

/// The SHA-256 value of `pcr` from a TPM2_PCR_Read response to
/// [`pcr_read_command`]`(pcr)`: the selection returned must be exactly
/// that PCR in the SHA-256 bank, with one 32-byte digest.
pub fn parse_pcr_read_response(resp: &[u8], pcr: u32) -> Result<[u8; 32], TpmError> {
    if pcr > PCR_MAX {
        return Err(TpmError::NoSuchPcr(pcr));
    }
    check_response(resp)?;
    let mut r = Cursor(&resp[HEADER_LEN..]);
    let truncated = || TpmError::Truncated(resp.len());
    let _update_counter = r.u32().ok_or_else(truncated)?;
    let selections = r.u32().ok_or_else(truncated)?;
    if selections == 0 {
        return Err(TpmError::NotSelected(pcr));
    }
    if selections != 1 {
        return Err(TpmError::Malformed(format!(
            "{selections} PCR selections returned for a read of one"
        )));
    }
    let hash = r.u16().ok_or_else(truncated)?;
    if hash != SHA256_ALG {
        return Err(TpmError::Malformed(format!(
            "the selection returned is for hash algorithm 0x{hash:04x}, not SHA-256"
        )));
    }
    let size = r.u8().ok_or_else(truncated)?;
    let bitmap = r.bytes(usize::from(size)).ok_or_else(truncated)?;
    let want = select(pcr);
    // The TPM may answer with a longer bitmap; bits past ours must be clear.
    let got_ours = bitmap.get((pcr / 8) as usize).copied().unwrap_or(0) & want[(pcr / 8) as usize];
    let others = bitmap
        .iter()
        .enumerate()
        .any(|(i, &b)| b & !want.get(i).copied().unwrap_or(0) != 0);
    if others {
        return Err(TpmError::Malformed(format!(
            "the selection returned ({bitmap:02x?}) is not PCR {pcr} alone"
        )));
    }
    if got_ours == 0 {
        return Err(TpmError::NotSelected(pcr));
    }
    let digests = r.u32().ok_or_else(truncated)?;
    if digests != 1 {
        return Err(TpmError::Malformed(format!(
            "{digests} digests returned for one PCR"
        )));
    }
    let len = r.u16().ok_or_else(truncated)?;
    if len != 32 {
        return Err(TpmError::Malformed(format!(
            "a {len}-byte digest returned for SHA-256"
        )));
    }
    let value = r.bytes(32).ok_or_else(truncated)?;
    if !r.0.is_empty() {
        return Err(TpmError::Malformed(format!(
            "{} bytes after the digest",
            r.0.len()
        )));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(value);
    Ok(out)
}

/// Big-endian reads that return `None` past the end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// What a PCR becomes when `digest` is extended into `prev`:
/// SHA-256(prev ‖ digest).
pub fn extend(prev: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(digest);
    h.finalize().into()
}

/// One measurement, as logged beside booted.json: a verifier recomputes
/// the PCR from `data` with [`replay`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What was measured, e.g. `image`, `manifest`, `kernel`, `cmdline`.
    pub kind: String,
    /// The exact bytes measured.
    pub data: String,
    /// `sha256:<hex>` of `data`: what was extended into the PCR.
    pub digest: String,
}

impl Event {
    /// The event measuring `data`.
    pub fn new(kind: &str, data: String) -> Event {
        let digest = Digest::of(data.as_bytes()).to_string();
        Event {
            kind: kind.to_string(),
            data,
            digest,
        }
    }

    /// The 32 bytes to extend: SHA-256 of `data` (recomputed, not read
    /// from `digest`, so a log whose digests were edited replays wrong).
    pub fn measurement(&self) -> [u8; 32] {
        Sha256::digest(self.data.as_bytes()).into()
    }
}

/// The PCR value after extending each event's measurement into `initial`,
/// in order.
pub fn replay(initial: &[u8; 32], events: &[Event]) -> [u8; 32] {
    events
        .iter()
        .fold(*initial, |pcr, e| extend(&pcr, &e.measurement()))
}

/// A response code as `TPM_RC_NAME (0x…)` with what it usually means here.
fn describe_rc(rc: u32) -> String {
    let hex = format!("0x{rc:08x}");
    let layer = rc >> 16;
    let code = rc & 0xffff;
    if layer != 0 {
        // The upper bits name a software layer (e.g. a resource manager).
        return format!("{hex} (from software layer {layer}, code 0x{code:04x})");
    }
    let (base, detail) = if code & 0x080 != 0 {
        // Format one: the low 6 bits are the error, bits 8-11 say which
        // parameter, session or handle it is about.
        let n = (code >> 8) & 0xf;
        let detail = if code & 0x040 != 0 {
            format!(", parameter {n}")
        } else if code & 0x800 != 0 {
            format!(", session {}", n & 0x7)
        } else if n != 0 {
            format!(", handle {}", n & 0x7)
        } else {
            String::new()
        };
        (0x080 | (code & 0x3f), detail)
    } else {
        (code, String::new())
    };
    match rc_name(base) {
        Some((name, hint)) => {
            let hint = if hint.is_empty() {
                String::new()
            } else {
                format!(": {hint}")
            };
            format!("{name} ({hex}{detail}){hint}")
        }
        None => format!("response code {hex}{detail}"),
    }
}

/// Names of the codes a PCR command can meet, with a hint where one helps.
fn rc_name(code: u32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        0x01E => ("TPM_RC_BAD_TAG", ""),
        0x100 => ("TPM_RC_INITIALIZE", "the TPM was not started by the firmware"),
        0x101 => ("TPM_RC_FAILURE", "the TPM is in failure mode"),
        0x103 => ("TPM_RC_SEQUENCE", ""),
        0x120 => ("TPM_RC_DISABLED", "the TPM is disabled in the firmware setup"),
        0x124 => ("TPM_RC_AUTH_TYPE", ""),
        0x125 => ("TPM_RC_AUTH_MISSING", ""),
        0x126 => ("TPM_RC_POLICY", ""),
        0x127 => ("TPM_RC_PCR", ""),
        0x128 => ("TPM_RC_PCR_CHANGED", ""),
        0x142 => ("TPM_RC_COMMAND_SIZE", ""),
        0x143 => ("TPM_RC_COMMAND_CODE", "the TPM does not implement this command"),
        0x144 => ("TPM_RC_AUTHSIZE", ""),
        0x084 => ("TPM_RC_VALUE", "is the PCR index valid?"),
        0x083 => ("TPM_RC_HASH", "the SHA-256 PCR bank is not allocated"),
        0x08B => ("TPM_RC_HANDLE", "is the PCR index valid?"),
        0x08E => ("TPM_RC_AUTH_FAIL", "the PCR has an authorization value; Wyrcan extends with the empty one"),
        0x095 => ("TPM_RC_SIZE", ""),
        0x097 => ("TPM_RC_TAG", ""),
        0x098 => ("TPM_RC_SELECTOR", ""),
        0x0A2 => ("TPM_RC_BAD_AUTH", "the PCR has an authorization value; Wyrcan extends with the empty one"),
        0x907 => ("TPM_RC_LOCALITY", "this PCR cannot be extended from the OS's locality (PCRs 17 to 22 belong to the dynamic root of trust; use 0 to 16 or 23)"),
        0x908 => ("TPM_RC_YIELDED", "the TPM is busy; try again"),
        0x909 => ("TPM_RC_CANCELED", ""),
        0x90A => ("TPM_RC_TESTING", "the TPM is self-testing; try again"),
        0x920 => ("TPM_RC_NV_RATE", ""),
        0x921 => ("TPM_RC_LOCKOUT", "the TPM is in dictionary-attack lockout"),
        0x922 => ("TPM_RC_RETRY", "the TPM is busy; try again"),
        0x923 => ("TPM_RC_NV_UNAVAILABLE", ""),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest whose bytes are 0xa0, 0xa1, …, 0xbf.
    fn digest() -> [u8; 32] {
        std::array::from_fn(|i| 0xa0 + i as u8)
    }

    #[test]
    fn extend_command_bytes() {
        #[rustfmt::skip]
        let mut want = vec![
            0x80, 0x02,             // TPM_ST_SESSIONS
            0x00, 0x00, 0x00, 0x41, // commandSize 65
            0x00, 0x00, 0x01, 0x82, // TPM_CC_PCR_Extend
            0x00, 0x00, 0x00, 0x0c, // pcrHandle: PCR 12
            0x00, 0x00, 0x00, 0x09, // authorizationSize
            0x40, 0x00, 0x00, 0x09, // TPM_RS_PW
            0x00, 0x00,             // nonce size
            0x00,                   // sessionAttributes
            0x00, 0x00,             // hmac size
            0x00, 0x00, 0x00, 0x01, // TPML_DIGEST_VALUES count
            0x00, 0x0b,             // TPM_ALG_SHA256
        ];
        want.extend(digest());
        let got = pcr_extend_command(12, &digest());
        assert_eq!(got.len(), 65);
        assert_eq!(got, want);
        // The size field matches the length for every PCR.
        assert_eq!(&pcr_extend_command(23, &[0; 32])[2..6], &[0, 0, 0, 65]);
        assert_eq!(&pcr_extend_command(23, &[0; 32])[10..14], &[0, 0, 0, 23]);
    }

    #[test]
    fn read_command_bytes() {
        #[rustfmt::skip]
        let head = [
            0x80, 0x01,             // TPM_ST_NO_SESSIONS
            0x00, 0x00, 0x00, 0x14, // commandSize 20
            0x00, 0x00, 0x01, 0x7e, // TPM_CC_PCR_Read
            0x00, 0x00, 0x00, 0x01, // one selection
            0x00, 0x0b,             // SHA-256
            0x03,                   // sizeofSelect
        ];
        for (pcr, bitmap) in [
            (0, [0x01, 0x00, 0x00]),
            (7, [0x80, 0x00, 0x00]),
            (12, [0x00, 0x10, 0x00]),
            (23, [0x00, 0x00, 0x80]),
            (24, [0x00, 0x00, 0x00]),
        ] {
            let c = pcr_read_command(pcr);
            assert_eq!(c.len(), 20);
            assert_eq!(c[..17], head);
            assert_eq!(c[17..], bitmap, "PCR {pcr}");
        }
    }

    /// A PCR_Read response as a TPM sends it.
    fn read_response(bitmap: &[u8], digests: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![0x00, 0x00, 0x00, 0x2a]; // pcrUpdateCounter
        body.extend(1u32.to_be_bytes());
        body.extend(SHA256_ALG.to_be_bytes());
        body.push(bitmap.len() as u8);
        body.extend(bitmap);
        body.extend((digests.len() as u32).to_be_bytes());
        for d in digests {
            body.extend((d.len() as u16).to_be_bytes());
            body.extend(*d);
        }
        let mut r = ST_NO_SESSIONS.to_be_bytes().to_vec();
        r.extend(((HEADER_LEN + body.len()) as u32).to_be_bytes());
        r.extend(0u32.to_be_bytes());
        r.extend(body);
        r
    }

    #[test]
    fn read_response_parses() {
        let d = digest();
        let ok = read_response(&[0x00, 0x10, 0x00], &[&d]);
        assert_eq!(ok.len(), 10 + 4 + 4 + 2 + 1 + 3 + 4 + 2 + 32);
        assert_eq!(parse_pcr_read_response(&ok, 12), Ok(d));
        // A longer bitmap with only our bit set is fine.
        let long = read_response(&[0x00, 0x10, 0x00, 0x00], &[&d]);
        assert_eq!(parse_pcr_read_response(&long, 12), Ok(d));
    }

    #[test]
    fn read_response_errors() {
        let d = digest();
        let ok = read_response(&[0x00, 0x10, 0x00], &[&d]);
        // Wrong PCR selected, extra PCRs, none.
        assert!(matches!(
            parse_pcr_read_response(&ok, 13),
            Err(TpmError::Malformed(m)) if m.contains("not PCR 13 alone")
        ));
        let two = read_response(&[0x00, 0x30, 0x00], &[&d]);
        assert!(matches!(
            parse_pcr_read_response(&two, 12),
            Err(TpmError::Malformed(_))
        ));
        let none = read_response(&[0x00, 0x00, 0x00], &[]);
        assert_eq!(
            parse_pcr_read_response(&none, 12),
            Err(TpmError::NotSelected(12))
        );
        let short_map = read_response(&[0x00], &[&d]);
        assert_eq!(
            parse_pcr_read_response(&short_map, 12),
            Err(TpmError::NotSelected(12))
        );
        let mut no_sel = ok.clone();
        no_sel[14..18].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            parse_pcr_read_response(&no_sel, 12),
            Err(TpmError::NotSelected(12))
        );
        let mut sha1 = ok.clone();
        sha1[18..20].copy_from_slice(&0x0004u16.to_be_bytes());
        assert!(matches!(
            parse_pcr_read_response(&sha1, 12),
            Err(TpmError::Malformed(m)) if m.contains("0x0004")
        ));
        // Digest count and size.
        let zero = read_response(&[0x00, 0x10, 0x00], &[]);
        assert!(matches!(
            parse_pcr_read_response(&zero, 12),
            Err(TpmError::Malformed(_))
        ));
        let short_digest = read_response(&[0x00, 0x10, 0x00], &[&d[..20]]);
        assert!(matches!(
            parse_pcr_read_response(&short_digest, 12),
            Err(TpmError::Malformed(m)) if m.contains("20-byte")
        ));
        // Trailing bytes, with a consistent header.
        let mut trailing = ok.clone();
        trailing.push(0);
        trailing[2..6].copy_from_slice(&(ok.len() as u32 + 1).to_be_bytes());
        assert!(matches!(
            parse_pcr_read_response(&trailing, 12),
            Err(TpmError::Malformed(_))
        ));
        // Every truncation, with the header size adjusted or not, is an
        // error and no panic.
        for end in 0..ok.len() {
            let mut cut = ok[..end].to_vec();
            assert!(parse_pcr_read_response(&cut, 12).is_err());
            if cut.len() >= 6 {
                cut[2..6].copy_from_slice(&(end as u32).to_be_bytes());
                assert!(parse_pcr_read_response(&cut, 12).is_err(), "{end}");
            }
        }
        assert_eq!(
            parse_pcr_read_response(&ok, 24),
            Err(TpmError::NoSuchPcr(24))
        );
    }

    #[test]
    fn response_headers() {
        assert_eq!(
            check_response(&[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]),
            Ok(())
        );
        assert_eq!(
            check_response(&[0x80, 0x02, 0, 0, 0, 10, 0, 0, 0, 0]),
            Ok(())
        );
        assert_eq!(
            check_response(&[0x80, 0x01, 0, 0, 0]),
            Err(TpmError::Truncated(5))
        );
        assert_eq!(
            check_response(&[0x00, 0xc4, 0, 0, 0, 10, 0, 0, 0, 0]),
            Err(TpmError::BadTag(0x00c4))
        );
        assert_eq!(
            check_response(&[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0]),
            Err(TpmError::SizeMismatch {
                header: 12,
                actual: 10
            })
        );
        let locality = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x07];
        let e = check_response(&locality).unwrap_err();
        assert_eq!(e, TpmError::Code(0x907));
        let msg = e.to_string();
        assert!(msg.contains("TPM_RC_LOCALITY (0x00000907)"), "{msg}");
        // An error response to a PCR_Read is an error, not a parse failure.
        assert_eq!(
            parse_pcr_read_response(&locality, 12),
            Err(TpmError::Code(0x907))
        );
    }

    #[test]
    fn response_codes_are_named() {
        let cases = [
            (0x0000_01c4, "TPM_RC_VALUE (0x000001c4, parameter 1)"),
            (0x0000_098e, "TPM_RC_AUTH_FAIL (0x0000098e, session 1)"),
            (0x0000_018b, "TPM_RC_HANDLE (0x0000018b, handle 1)"),
            (0x0000_0084, "TPM_RC_VALUE (0x00000084)"),
            (0x0000_0922, "TPM_RC_RETRY (0x00000922): the TPM is busy"),
            (0x0000_0101, "TPM_RC_FAILURE (0x00000101)"),
            (0x0000_0999, "response code 0x00000999"),
            (
                0x000b_0101,
                "0x000b0101 (from software layer 11, code 0x0101)",
            ),
        ];
        for (rc, want) in cases {
            let got = TpmError::Code(rc).to_string();
            assert!(got.contains(want), "{rc:#x}: {got}");
        }
    }

    #[test]
    fn extend_and_replay() {
        // SHA-256 of 64 zero bytes: extending zeros into a fresh PCR.
        let zeros = extend(&[0; 32], &[0; 32]);
        assert_eq!(
            Digest::of(&[0u8; 64]).hex(),
            zeros.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let events = [
            Event::new("image", "reg.lan/os:1".to_string()),
            Event::new("manifest", "sha256:00".to_string()),
        ];
        assert_eq!(events[0].digest, Digest::of(b"reg.lan/os:1").to_string());
        let by_hand = extend(
            &extend(&[0; 32], &events[0].measurement()),
            &events[1].measurement(),
        );
        assert_eq!(replay(&[0; 32], &events), by_hand);
        assert_eq!(replay(&[7; 32], &[]), [7; 32]);
        // Order matters.
        let swapped = [events[1].clone(), events[0].clone()];
        assert_ne!(replay(&[0; 32], &swapped), by_hand);
        // The log is JSON.
        let json = serde_json::to_string(&events[0]).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), events[0]);
    }
}
