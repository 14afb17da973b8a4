//! PAX extended header records (`LEN KEY=VALUE\n`) and the GNU sparse
//! maps that ride in them (formats 0.0, 0.1 and 1.0).

use super::{FormatError, Records, SparseMap};

/// Records of one `x` or `g` header, in order (a repeated key: the last wins).
pub fn parse_records(data: &[u8]) -> Result<Records, FormatError> {
    let mut out = Vec::new();
    let mut rest = data;
    // Bounded: every pass consumes at least one byte or returns.
    while !rest.is_empty() {
        // Writers pad the last block with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or(FormatError::BadPax("a record without a length"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(FormatError::BadPax("a record length that is not a number"))?;
        if len <= space + 1 || len > rest.len() {
            return Err(FormatError::BadPax("a record length beyond the header"));
        }
        let record = &rest[space + 1..len];
        let Some(record) = record.strip_suffix(b"\n") else {
            return Err(FormatError::BadPax("a record not ending in a newline"));
        };
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or(FormatError::BadPax("a record without '='"))?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

/// A decimal number of a record.
pub fn decimal(value: &[u8], key: &'static str) -> Result<u64, FormatError> {
    std::str::from_utf8(value)
        .ok()
        .map(str::trim)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(FormatError::BadPaxValue { key })
}

/// `mtime` records are seconds with an optional fraction, maybe negative.
pub fn seconds(value: &[u8]) -> Result<i64, FormatError> {
    let s = std::str::from_utf8(value)
        .map_err(|_| FormatError::BadPaxValue { key: "mtime" })?
        .trim();
    let whole = s.split('.').next().unwrap_or("");
    match whole {
        "" | "-" => Ok(0),
        w => w
            .parse::<i64>()
            .map_err(|_| FormatError::BadPaxValue { key: "mtime" }),
    }
}

/// A list of decimal numbers separated by commas (`GNU.sparse.map`, 0.1).
pub fn number_list(value: &[u8], key: &'static str) -> Result<Vec<u64>, FormatError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(|&b| b == b',')
        .map(|n| decimal(n, key))
        .collect()
}

/// Pairs from a flat list of numbers; an odd count is an error.
pub fn pairs(numbers: &[u64]) -> Result<SparseMap, FormatError> {
    if numbers.len() % 2 != 0 {
        return Err(FormatError::BadSparse("an odd number of map values"));
    }
    Ok(numbers.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// Where the sparse 1.0 map ends in its data: the number of pairs, then
/// each offset and length, one decimal per line, padded to a block.
/// Returns the map and how many bytes of data it took (a whole number of
/// blocks), or `None` if `data` does not hold all of it yet.
pub fn sparse_map_1_0(
    data: &[u8],
    max_pairs: usize,
) -> Result<Option<(SparseMap, usize)>, FormatError> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut wanted: Option<usize> = None;
    for (i, &b) in data.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let n = decimal(&data[start..i], "GNU.sparse map")?;
        start = i + 1;
        match wanted {
            None => {
                let count = usize::try_from(n).unwrap_or(usize::MAX);
                if count > max_pairs {
                    return Err(FormatError::BadSparse("more map entries than allowed"));
                }
                wanted = Some(count * 2);
            }
            Some(_) => lines.push(n),
        }
        if wanted == Some(lines.len()) {
            let used = start.div_ceil(super::header::BLOCK) * super::header::BLOCK;
            return Ok(Some((pairs(&lines)?, used)));
        }
    }
    Ok(None)
}
