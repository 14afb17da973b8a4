//! `kexec_file_load(2)`: the kernel verifies and places the new kernel and
//! initrd itself, so no purgatory or segment math lives here.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use super::{Error, Result};

/// Load `kernel` + `initrd` with `cmdline` for a later `reboot(KEXEC)`.
/// The errno is reported as it is, with what it usually means: kexec-tools
/// turns several of them into a misleading "not available".
pub fn file_load(kernel: &File, initrd: &File, cmdline: &str) -> Result<()> {
    let c = CString::new(cmdline).map_err(|_| {
        Error::io(
            "kexec_file_load",
            io::Error::new(io::ErrorKind::InvalidInput, "the cmdline holds a NUL byte"),
        )
    })?;
    let len = c.as_bytes_with_nul().len();
    // SAFETY: both fds are open for the duration of the call, `c` is a
    // NUL-terminated buffer of exactly `len` bytes that outlives the call,
    // and the kernel only reads from it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel.as_raw_fd(),
            initrd.as_raw_fd(),
            len as libc::c_ulong,
            c.as_ptr(),
            0 as libc::c_ulong,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    let what = match e.raw_os_error().and_then(hint) {
        Some(h) => format!("kexec_file_load ({h})"),
        None => "kexec_file_load".to_string(),
    };
    Err(Error::io(what, e))
}

/// What an errno of `kexec_file_load` usually means.
pub fn hint(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "not allowed: run as root; with Secure Boot on, lockdown refuses unsigned kernels",
        libc::ENOEXEC => "the kernel file is not a bzImage this kernel can load (or it is for another architecture)",
        // EINVAL is also the answer to a cmdline longer than the new
        // kernel accepts; boot checks that before calling, so what is left
        // is mostly the placement.
        libc::EINVAL => "the kernel refused the image or its cmdline, or found no contiguous free region for it",
        libc::ENOMEM => "no room for the new kernel: it needs a contiguous free region; give the machine more memory",
        libc::ENOSYS => "this kernel was built without CONFIG_KEXEC_FILE",
        libc::EKEYREJECTED | libc::EBADMSG => "the kernel's signature was rejected (Secure Boot / lockdown)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn einval_is_not_only_memory() {
        let h = super::hint(libc::EINVAL).unwrap();
        assert!(h.contains("cmdline"), "{h}");
        assert!(!h.contains("more memory"), "{h}");
        assert!(super::hint(libc::ENOMEM).unwrap().contains("more memory"));
    }
}
