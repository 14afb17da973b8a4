//! One 512-byte tar header block: the checksum, the numeric fields (octal
//! padded with spaces or NULs, or base-256), the strings, and which of the
//! v7 / ustar / GNU / star layouts it uses.

use super::{FormatError, SparseMap};

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Where the header says its variant-specific fields are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// No magic: name, link name and the numbers only.
    V7,
    /// `ustar\0` `00`: a 155-byte name prefix at 345.
    Ustar,
    /// `ustar  \0`: no prefix; old sparse maps and the real size live there.
    Gnu,
    /// ustar magic with `tar\0` at 508: a 131-byte prefix.
    Star,
}

/// A parsed header block, before extension headers are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name field (with the ustar/star prefix joined in front).
    pub name: Vec<u8>,
    /// Permission bits and more (`0o7777` of it is used).
    pub mode: u64,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// The size field: bytes of data that follow in the archive.
    pub size: u64,
    /// Modification time (may be negative).
    pub mtime: i64,
    /// The type flag byte.
    pub typeflag: u8,
    /// The link name field.
    pub linkname: Vec<u8>,
    /// Device numbers (ustar, GNU, star).
    pub devmajor: u32,
    /// Device numbers (ustar, GNU, star).
    pub devminor: u32,
    /// Which layout the block uses.
    pub layout: Layout,
}

/// A C string field: everything up to the first NUL.
pub fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// An octal field as Go, GNU tar and Python read it: spaces and NULs around
/// the digits are ignored, and an empty field is 0.
pub fn octal(field: &[u8], what: &'static str) -> Result<u64, FormatError> {
    let trimmed = trim(field);
    let mut v: u64 = 0;
    for &b in trimmed {
        if !(b'0'..=b'7').contains(&b) {
            return Err(FormatError::BadNumber {
                field: what,
                raw: String::from_utf8_lossy(field).into_owned(),
            });
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(FormatError::NumberTooBig { field: what })?;
    }
    Ok(v)
}

fn trim(field: &[u8]) -> &[u8] {
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !pad(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !pad(b)).map_or(start, |e| e + 1);
    &field[start..end]
}

/// A numeric field: base-256 (GNU/star, first byte `0x80` or `0xff`) or
/// octal.
pub fn numeric(field: &[u8], what: &'static str) -> Result<i64, FormatError> {
    let Some(&first) = field.first() else {
        return Ok(0);
    };
    if first & 0x80 == 0 {
        let v = octal(field, what)?;
        return i64::try_from(v).map_err(|_| FormatError::NumberTooBig { field: what });
    }
    // Two's complement, big-endian, the marker bit cleared from the first
    // byte; 0xff-led fields are negative.
    let negative = first & 0x40 != 0;
    let flip = if negative { 0xff } else { 0 };
    let mut v: u64 = 0;
    for (i, &b) in field.iter().enumerate() {
        let mut b = b ^ flip;
        if i == 0 {
            b &= 0x7f;
        }
        if v >> 56 != 0 {
            return Err(FormatError::NumberTooBig { field: what });
        }
        v = (v << 8) | u64::from(b);
    }
    if v >> 63 != 0 {
        return Err(FormatError::NumberTooBig { field: what });
    }
    Ok(if negative { !(v as i64) } else { v as i64 })
}

/// A non-negative numeric field.
pub fn unsigned(field: &[u8], what: &'static str) -> Result<u64, FormatError> {
    let v = numeric(field, what)?;
    u64::try_from(v).map_err(|_| FormatError::Negative { field: what })
}

/// Whether the block is all zeros (the end-of-archive marker).
pub fn is_zero(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Check the checksum: the sum of the block's bytes with the checksum
/// field counted as spaces, unsigned or (as old Sun tars wrote) signed.
fn checksum_ok(block: &[u8; BLOCK]) -> Result<bool, FormatError> {
    let stored = octal(&block[148..156], "chksum")?;
    let mut unsigned_sum: u64 = 0;
    let mut signed_sum: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned_sum += u64::from(b);
        signed_sum += i64::from(b as i8);
    }
    Ok(stored == unsigned_sum || stored as i64 == signed_sum)
}

impl Header {
    /// Parse one non-zero block.
    pub fn parse(block: &[u8; BLOCK]) -> Result<Header, FormatError> {
        if !checksum_ok(block)? {
            return Err(FormatError::Checksum);
        }
        let magic = &block[257..263];
        let version = &block[263..265];
        let layout = if magic == b"ustar\0" {
            if &block[508..512] == b"tar\0" {
                Layout::Star
            } else {
                Layout::Ustar
            }
        } else if magic == b"ustar " && version == b" \0" {
            Layout::Gnu
        } else {
            Layout::V7
        };
        let mut name = cstr(&block[0..100]).to_vec();
        let prefix = match layout {
            Layout::Ustar => cstr(&block[345..500]),
            Layout::Star => cstr(&block[345..476]),
            Layout::Gnu | Layout::V7 => &[][..],
        };
        if !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
        let devs = layout != Layout::V7;
        Ok(Header {
            name,
            mode: unsigned(&block[100..108], "mode")?,
            uid: unsigned(&block[108..116], "uid")?,
            gid: unsigned(&block[116..124], "gid")?,
            size: unsigned(&block[124..136], "size")?,
            mtime: numeric(&block[136..148], "mtime")?,
            typeflag: block[156],
            linkname: cstr(&block[157..257]).to_vec(),
            devmajor: if devs {
                device(&block[329..337], "devmajor")?
            } else {
                0
            },
            devminor: if devs {
                device(&block[337..345], "devminor")?
            } else {
                0
            },
            layout,
        })
    }
}

fn device(field: &[u8], what: &'static str) -> Result<u32, FormatError> {
    let v = unsigned(field, what)?;
    u32::try_from(v).map_err(|_| FormatError::NumberTooBig { field: what })
}

/// The old GNU sparse map in a header block (`S`): four (offset, length)
/// pairs at 386, the "more follows" flag at 482, the real size at 483.
pub fn gnu_sparse_header(block: &[u8; BLOCK]) -> Result<(SparseMap, bool, u64), FormatError> {
    let map = sparse_pairs(&block[386..482])?;
    let extended = block[482] != 0;
    let real = unsigned(&block[483..495], "realsize")?;
    Ok((map, extended, real))
}

/// One GNU sparse extension block: 21 pairs and the "more follows" flag.
pub fn gnu_sparse_extension(block: &[u8; BLOCK]) -> Result<(SparseMap, bool), FormatError> {
    Ok((sparse_pairs(&block[..504])?, block[504] != 0))
}

fn sparse_pairs(area: &[u8]) -> Result<SparseMap, FormatError> {
    let mut out = Vec::new();
    for pair in area.chunks_exact(24) {
        // An empty offset field ends the list.
        if trim(&pair[..12]).is_empty() {
            break;
        }
        out.push((
            unsigned(&pair[..12], "sparse offset")?,
            unsigned(&pair[12..], "sparse length")?,
        ));
    }
    Ok(out)
}
