//! Metadata blocks: up to 8 KiB of table bytes, each compressed on its own
//! behind a 2-byte length header whose bit 15 says "stored raw".

use std::io;

use super::Compress;

/// Uncompressed bytes per metadata block.
pub(super) const METADATA_SIZE: usize = 8192;
const STORED_RAW: u16 = 1 << 15;

/// Frames one metadata block into `out`: compressed when that is smaller,
/// raw otherwise (the kernel refuses a "compressed" block over 8 KiB).
pub(super) fn frame(
    data: &[u8],
    c: &mut dyn Compress,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    debug_assert!(!data.is_empty() && data.len() <= METADATA_SIZE);
    scratch.clear();
    c.compress(data, scratch)?;
    if !scratch.is_empty() && scratch.len() < data.len() {
        out.extend_from_slice(&(scratch.len() as u16).to_le_bytes());
        out.extend_from_slice(scratch);
    } else {
        out.extend_from_slice(&(data.len() as u16 | STORED_RAW).to_le_bytes());
        out.extend_from_slice(data);
    }
    Ok(())
}

/// A table made of metadata blocks (inodes, directories) that is written
/// while its entries are produced; entries may straddle blocks.
#[derive(Default)]
pub(super) struct MetaWriter {
    /// Bytes of the block being filled (< 8 KiB).
    pending: Vec<u8>,
    /// Framed blocks not yet taken by [`MetaWriter::take`].
    done: Vec<u8>,
    /// Framed bytes already taken.
    taken: u64,
}

impl MetaWriter {
    /// Where the next byte goes: the start of its block relative to the
    /// table start, and the offset inside that block once uncompressed.
    pub(super) fn pos(&self) -> (u64, u16) {
        (
            self.taken + self.done.len() as u64,
            self.pending.len() as u16,
        )
    }

    pub(super) fn push(
        &mut self,
        mut data: &[u8],
        c: &mut dyn Compress,
        scratch: &mut Vec<u8>,
    ) -> io::Result<()> {
        while !data.is_empty() {
            let n = (METADATA_SIZE - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.pending.len() == METADATA_SIZE {
                frame(&self.pending, c, scratch, &mut self.done)?;
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// Frames the last, partial block.
    pub(super) fn flush(&mut self, c: &mut dyn Compress, scratch: &mut Vec<u8>) -> io::Result<()> {
        if !self.pending.is_empty() {
            frame(&self.pending, c, scratch, &mut self.done)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Framed bytes so far, to be written out in order.
    pub(super) fn take(&mut self) -> Vec<u8> {
        let v = std::mem::take(&mut self.done);
        self.taken += v.len() as u64;
        v
    }

    /// Framed bytes waiting to be taken.
    pub(super) fn ready(&self) -> usize {
        self.done.len()
    }
}

/// A lookup table (fragments, ids): `bytes` in metadata blocks starting at
/// image offset `at`, then the index of those blocks' offsets. Returns the
/// framed blocks followed by the index, and the index's offset.
pub(super) fn table(
    bytes: &[u8],
    at: u64,
    c: &mut dyn Compress,
    scratch: &mut Vec<u8>,
) -> io::Result<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut index = Vec::new();
    for chunk in bytes.chunks(METADATA_SIZE) {
        index.push(at + out.len() as u64);
        frame(chunk, c, scratch, &mut out)?;
    }
    let index_at = at + out.len() as u64;
    for i in index {
        out.extend_from_slice(&i.to_le_bytes());
    }
    Ok((out, index_at))
}
