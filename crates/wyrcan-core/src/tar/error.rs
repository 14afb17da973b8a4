//! What can be wrong with a tar stream, and where.

use std::io;

/// What is wrong with a header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The header's checksum does not match its bytes.
    #[error("header checksum mismatch (not a tar stream, or a damaged one)")]
    Checksum,
    /// A numeric field holds something other than octal digits.
    #[error("header field {field} is not a number ({raw:?})")]
    BadNumber {
        /// Field name.
        field: &'static str,
        /// Its bytes.
        raw: String,
    },
    /// A numeric field too large for 64 bits.
    #[error("header field {field} is too large")]
    NumberTooBig {
        /// Field name.
        field: &'static str,
    },
    /// A negative value where only positive ones make sense.
    #[error("header field {field} is negative")]
    Negative {
        /// Field name.
        field: &'static str,
    },
    /// A PAX header that does not parse.
    #[error("PAX extended header has {0}")]
    BadPax(&'static str),
    /// A PAX record whose value does not parse.
    #[error("PAX record {key} has a value that is not a number")]
    BadPaxValue {
        /// The key.
        key: &'static str,
    },
    /// A sparse map that does not describe the file.
    #[error("sparse file map has {0}")]
    BadSparse(&'static str),
    /// An extension header above the limit.
    #[error("{what} of {size} bytes is larger than the {limit}-byte limit")]
    TooBig {
        /// What it is (`GNU long name`, `PAX header`, …).
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A name or link target above the limit.
    #[error("{what} is {len} bytes long, more than the {limit} a path may have")]
    PathTooLong {
        /// `name` or `link target`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A NUL byte inside a name.
    #[error("{what} holds a NUL byte")]
    Nul {
        /// `name` or `link target`.
        what: &'static str,
    },
    /// A global PAX header that would rename or resize every later member.
    #[error("a global PAX header sets {0:?} for every later member: tar readers disagree on that, so it is refused")]
    GlobalName(String),
    /// A type this reader cannot represent.
    #[error("tar type {0:?} is not supported (multi-volume archives are not)")]
    Unsupported(char),
    /// The stream ends inside a header or an entry's data.
    #[error("the stream ends inside {0}")]
    Truncated(&'static str),
}

/// A failure reading a tar stream, with where it happened.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// Reading the underlying stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A header is not acceptable.
    #[error("entry {entry} ({path:?}): {error}")]
    Format {
        /// Member number (0-based; extension headers do not count).
        entry: u32,
        /// The member's name as far as known.
        path: String,
        /// What is wrong.
        error: FormatError,
    },
}
