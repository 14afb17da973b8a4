//! The site area of `wyrcan.iso`: room reserved by `scripts/build-iso` for
//! the site archive, so `wyrcan customize --iso` writes the settings into
//! a copy of the ISO in place, with no ISO or FAT tools and without
//! changing any other byte (the ISO stays reproducible and bootable).
//!
//! The area is the ESP file `/site.img`, a second `initrd` line of the
//! systemd-boot entry (systemd-boot concatenates the initrds). A file
//! copied into a fresh FAT image is contiguous, and the ESP is one
//! contiguous file of the ISO, so the area is one run of the ISO's bytes:
//!
//! ```text
//! [head: gzip member, stored deflate block]  newc: etc/ etc/wyrcan/
//!                                            etc/wyrcan/.site-area = "WYRCAN-SITE-AREA-v1 size=N\n"
//! [payload: zeros | site archive (gzip member) + zeros]   up to N bytes in all
//! ```
//!
//! The head never changes: it is how the area is found again (also in a
//! customized ISO, which is customized again by replacing the payload
//! whole). The kernel's initramfs unpacker skips zero bytes between
//! archives, so the uncustomized area is a valid initrd that adds nothing
//! but the marker file. `scripts/site-area` writes the same bytes (a test
//! compares them).

use std::ops::Range;

use crate::cpio::Writer;
use crate::tree::{Meta, Sink};

/// The size `scripts/build-iso` reserves (its `site_area_size`; keep the
/// two equal). A site archive is a few KiB, a big CA bundle a few hundred.
pub const AREA_SIZE: usize = 1 << 20;
/// Starts the marker file's data, followed by the area size in decimal
/// and a newline.
pub const MARKER: &[u8] = b"WYRCAN-SITE-AREA-v1 size=";
/// The marker file, as an initramfs path.
pub const MARKER_FILE: &str = "etc/wyrcan/.site-area";

/// Where an area is in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    /// Offset of the head (the area's first byte).
    pub offset: usize,
    /// The whole area, head included.
    pub size: usize,
    /// Length of the head.
    pub head_len: usize,
}

impl Area {
    /// The bytes after the head, which hold the site archive.
    pub fn payload(&self) -> Range<usize> {
        self.offset + self.head_len..self.offset + self.size
    }

    /// The whole area.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.size
    }
}

/// Why an area cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AreaError {
    /// No intact head.
    #[error("not a Wyrcan ISO with a site area: rebuild it with scripts/build-iso")]
    NotFound,
    /// More than one intact head.
    #[error("{} site areas (at offsets {}): which one boots is unclear; rebuild the ISO with scripts/build-iso", .0.len(), .0.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", "))]
    Several(Vec<usize>),
    /// The head says the area is longer than what follows it.
    #[error("the site area at offset {offset} should be {size} bytes but the file ends after {len}: the ISO is truncated")]
    Truncated {
        /// Offset of the head.
        offset: usize,
        /// Area size from the marker.
        size: usize,
        /// Length of the image.
        len: usize,
    },
    /// The archive does not fit.
    #[error("the site settings take {archive} bytes compressed, but the ISO's site area holds {room} (of {size}): fewer or smaller CA files")]
    TooLarge {
        /// Compressed archive size.
        archive: usize,
        /// Room after the head.
        room: usize,
        /// Area size.
        size: usize,
    },
}

/// The newc archive inside the head.
fn head_cpio(size: usize) -> Vec<u8> {
    let meta = |mode| Meta {
        mode,
        uid: 0,
        gid: 0,
        mtime: 0,
    };
    let data = [MARKER, format!("{size}\n").as_bytes()].concat();
    let mut w = Writer::new(Vec::new());
    // Writing to a Vec with owner 0 and short names cannot fail.
    let _ = w.dir(b"etc", &meta(0o755));
    let _ = w.dir(b"etc/wyrcan", &meta(0o700));
    let _ = w.file(
        &[MARKER_FILE.as_bytes().to_vec()],
        &meta(0o600),
        data.len() as u64,
        &mut &data[..],
    );
    w.finish().unwrap_or_default()
}

/// The head of an area of `size` bytes: a gzip member (no name, time 0,
/// OS "unknown") whose one final deflate block is stored, not compressed.
pub fn head(size: usize) -> Vec<u8> {
    let cpio = head_cpio(size);
    let len = cpio.len() as u16;
    let mut out = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
    out.push(0x01);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(&cpio);
    out.extend_from_slice(&crc32(&cpio).to_le_bytes());
    out.extend_from_slice(&(cpio.len() as u32).to_le_bytes());
    out
}

/// The uncustomized area: the head, then zeros up to `size` (at least the
/// head).
pub fn placeholder(size: usize) -> Vec<u8> {
    let mut out = head(size);
    let size = size.max(out.len());
    out.resize(size, 0);
    out
}

/// Finds the one area in `image` (an ISO): every occurrence of [`MARKER`]
/// whose surroundings are exactly the head for the size it names counts;
/// other occurrences (the string inside a program, say) do not.
pub fn find(image: &[u8]) -> Result<Area, AreaError> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = find_bytes(&image[from..], MARKER) {
        let at = from + i;
        from = at + 1;
        if let Some(area) = head_at(image, at) {
            found.push(area);
        }
    }
    match found.as_slice() {
        [] => Err(AreaError::NotFound),
        [area] if area.offset + area.size > image.len() => Err(AreaError::Truncated {
            offset: area.offset,
            size: area.size,
            len: image.len() - area.offset,
        }),
        [area] => Ok(*area),
        more => Err(AreaError::Several(more.iter().map(|a| a.offset).collect())),
    }
}

/// The area whose marker is at `at`, if the bytes around it are its head.
fn head_at(image: &[u8], at: usize) -> Option<Area> {
    let digits = &image[at + MARKER.len()..];
    let n = digits.iter().take(13).position(|&b| b == b'\n')?;
    let text = std::str::from_utf8(&digits[..n]).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let size: usize = text.parse().ok()?;
    let head = head(size);
    let offset = at.checked_sub(find_bytes(&head, MARKER)?)?;
    if size < head.len() || image.get(offset..offset + head.len())? != head.as_slice() {
        return None;
    }
    Some(Area {
        offset,
        size,
        head_len: head.len(),
    })
}

/// Writes `archive` and zeros over the payload of `area` in `image`.
pub fn write(image: &mut [u8], area: &Area, archive: &[u8]) -> Result<(), AreaError> {
    let payload = area.payload();
    let room = payload.len();
    if archive.len() > room {
        return Err(AreaError::TooLarge {
            archive: archive.len(),
            room,
            size: area.size,
        });
    }
    let out = &mut image[payload];
    out[..archive.len()].copy_from_slice(archive);
    out[archive.len()..].fill(0);
    Ok(())
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// CRC-32 (IEEE, reflected), as gzip's trailer carries it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio;

    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn the_head_is_a_stored_gzip_member_of_an_otherwise_empty_cpio() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let h = head(AREA_SIZE);
        assert_eq!(&h[..4], &[0x1f, 0x8b, 0x08, 0]);
        // Stored: the marker is in the bytes as is.
        let marker = format!("WYRCAN-SITE-AREA-v1 size={AREA_SIZE}\n");
        assert!(find_bytes(&h, marker.as_bytes()).is_some());
        let cpio = &h[15..h.len() - 8];
        let names: Vec<_> = cpio::read(cpio)
            .unwrap()
            .into_iter()
            .map(|e| (String::from_utf8(e.name).unwrap(), e.mode, e.data))
            .collect();
        assert_eq!(
            names,
            [
                ("etc".to_string(), 0o40755, vec![]),
                ("etc/wyrcan".to_string(), 0o40700, vec![]),
                (MARKER_FILE.to_string(), 0o100600, marker.into_bytes()),
            ]
        );
        let p = placeholder(AREA_SIZE);
        assert_eq!(p.len(), AREA_SIZE);
        assert!(p[h.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn the_area_is_found_among_other_bytes_and_stray_markers() {
        let mut iso = noise(100_000, 7);
        // The marker string alone (as in a program's data) does not count.
        iso.extend_from_slice(MARKER);
        iso.extend_from_slice(b"4096\n");
        iso.extend(noise(3, 1));
        let offset = iso.len();
        iso.extend(placeholder(4096));
        iso.extend(noise(50_000, 9));
        let area = find(&iso).unwrap();
        assert_eq!(
            area,
            Area {
                offset,
                size: 4096,
                head_len: head(4096).len()
            }
        );
        assert_eq!(area.payload().end, offset + 4096);

        // Written: the archive, zeros, nothing else changed; found again.
        let mut custom = iso.clone();
        let archive = b"\x1f\x8b\x08archive";
        write(&mut custom, &area, archive).unwrap();
        let p = area.payload();
        let end = p.start + archive.len();
        assert_eq!(&custom[p.start..end], archive);
        assert!(custom[end..p.end].iter().all(|&b| b == 0));
        assert_eq!(custom[..p.start], iso[..p.start]);
        assert_eq!(custom[p.end..], iso[p.end..]);
        assert_eq!(find(&custom).unwrap(), area);
        // A shorter archive replaces a longer one whole.
        write(&mut custom, &area, b"x").unwrap();
        assert!(custom[p.start + 1..p.end].iter().all(|&b| b == 0));

        let room = 4096 - head(4096).len();
        let e = write(&mut custom, &area, &vec![1; room + 1]).unwrap_err();
        assert_eq!(
            e,
            AreaError::TooLarge {
                archive: room + 1,
                room,
                size: 4096
            }
        );
        assert!(e.to_string().contains(&format!("{}", room + 1)), "{e}");
        write(&mut custom, &area, &vec![1; room]).unwrap();
    }

    #[test]
    fn none_several_truncated_and_damaged_heads() {
        assert_eq!(find(&noise(10_000, 3)), Err(AreaError::NotFound));
        assert!(AreaError::NotFound
            .to_string()
            .contains("rebuild it with scripts/build-iso"));

        let mut two = placeholder(2048);
        two.extend(noise(10, 5));
        two.extend(placeholder(2048));
        assert_eq!(find(&two), Err(AreaError::Several(vec![0, 2058])));

        let whole = placeholder(8192);
        let cut = &whole[..5000];
        assert_eq!(
            find(cut),
            Err(AreaError::Truncated {
                offset: 0,
                size: 8192,
                len: 5000
            })
        );

        // A head whose size disagrees with its own bytes, or any changed
        // byte of the head: not an area.
        let mut bad = placeholder(2048);
        let m = find_bytes(&bad, MARKER).unwrap() + MARKER.len();
        bad[m] = b'3';
        assert_eq!(find(&bad), Err(AreaError::NotFound));
        for i in [0, 5, 12, 200, head(2048).len() - 1] {
            let mut bad = placeholder(2048);
            bad[i] ^= 0x40;
            assert_eq!(find(&bad), Err(AreaError::NotFound), "byte {i}");
        }
        // A marker at the very end, or with no digits.
        let mut end = noise(100, 2);
        end.extend_from_slice(MARKER);
        assert_eq!(find(&end), Err(AreaError::NotFound));
        end.extend_from_slice(b"\n");
        assert_eq!(find(&end), Err(AreaError::NotFound));
    }
}
