//! efivarfs files: the kernel marks variable files immutable, so writing or
//! deleting one needs the flag cleared first (`FS_IOC_SETFLAGS`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use rustix::fs::IFlags;

/// Where efivarfs is mounted.
pub const MOUNT: &str = "/sys/firmware/efi/efivars";

fn clear_immutable(path: &Path) -> io::Result<()> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let flags = match rustix::fs::ioctl_getflags(&f) {
        Ok(flags) => flags,
        // A filesystem without inode flags (tmpfs before Linux 6.0, a test
        // directory) cannot have the immutable flag either.
        Err(e) if e == rustix::io::Errno::NOTTY || e == rustix::io::Errno::OPNOTSUPP => {
            return Ok(())
        }
        Err(e) => return Err(e.into()),
    };
    if flags.contains(IFlags::IMMUTABLE) {
        rustix::fs::ioctl_setflags(&f, flags - IFlags::IMMUTABLE)?;
    }
    Ok(())
}

/// Read a variable file (attributes + payload), None if absent.
pub fn read(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(dir.join(name)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Create or replace a variable with `bytes` (attributes + payload), in a
/// single write as efivarfs requires.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let path = dir.join(name);
    clear_immutable(&path)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    f.write_all(bytes)
}

/// Delete a variable; absent is fine.
pub fn remove(dir: &Path, name: &str) -> io::Result<()> {
    let path = dir.join(name);
    clear_immutable(&path)?;
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
