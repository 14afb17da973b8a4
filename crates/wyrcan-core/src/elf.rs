//! Just enough ELF to tell whether an executable needs a dynamic loader:
//! the stage-2 `/init` of a squashfs root runs before any C library is
//! reachable, so it must be static.

const PT_INTERP: u32 = 3;

/// `Some(true)` when the 64-bit little-endian ELF executable `head` (its
/// first bytes, program headers included) names an interpreter,
/// `Some(false)` when it is static, `None` when it is not such an ELF or
/// the program headers lie outside `head`.
pub fn has_interpreter(head: &[u8]) -> Option<bool> {
    if head.get(..4)? != b"\x7fELF" || *head.get(4)? != 2 || *head.get(5)? != 1 {
        return None;
    }
    let bytes = |o: usize, n: usize| head.get(o..o.checked_add(n)?);
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes(o, 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes(o, 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes(o, 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    if phentsize < 4 {
        return None;
    }
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(at)? == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(types: &[u32]) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..6].copy_from_slice(b"\x7fELF\x02\x01");
        h[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        h[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        h[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            h.extend(ph);
        }
        h
    }

    #[test]
    fn static_and_dynamic() {
        assert_eq!(has_interpreter(&elf(&[6, 1, 1])), Some(false));
        assert_eq!(has_interpreter(&elf(&[6, PT_INTERP, 1])), Some(true));
        assert_eq!(has_interpreter(b"#!/bin/sh\n"), None);
        let mut cut = elf(&[1, PT_INTERP]);
        cut.truncate(100);
        assert_eq!(has_interpreter(&cut), None);
    }

    #[test]
    fn headers_outside_the_bytes() {
        // A program header table far outside the bytes given is no answer.
        let mut h = elf(&[]);
        h[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        h[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        assert_eq!(has_interpreter(&h), None);
    }
}
