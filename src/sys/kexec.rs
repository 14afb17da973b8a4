//! `kexec_file_load(2)`: the kernel verifies and places the new kernel and
//! initrd itself, so no purgatory or segment math lives here.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Load `kernel` + `initrd` with `cmdline` for a later `reboot(KEXEC)`.
/// The errno is reported as it is: kexec-tools turns several of them into
/// a misleading "not available".
pub fn file_load(kernel: &File, initrd: &File, cmdline: &str) -> io::Result<()> {
    let c = CString::new(cmdline)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cmdline holds a NUL byte"))?;
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
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) => "not allowed: run as root; with Secure Boot on, lockdown refuses unsigned kernels",
        Some(libc::ENOEXEC) => "the kernel file is not a bzImage this kernel can load (or it is for another architecture)",
        Some(libc::EINVAL) | Some(libc::ENOMEM) => {
            "no room for the new kernel: it needs a contiguous free region; give the machine more memory"
        }
        Some(libc::ENOSYS) => "this kernel was built without CONFIG_KEXEC_FILE",
        Some(libc::EKEYREJECTED) | Some(libc::EBADMSG) => "the kernel's signature was rejected (Secure Boot / lockdown)",
        _ => "",
    };
    Err(io::Error::new(
        e.kind(),
        if hint.is_empty() {
            format!("kexec_file_load: {e}")
        } else {
            format!("kexec_file_load: {e}: {hint}")
        },
    ))
}

/// Whether a kernel is loaded and waiting (`/sys/kernel/kexec_loaded`).
pub fn loaded() -> bool {
    std::fs::read_to_string("/sys/kernel/kexec_loaded").is_ok_and(|s| s.trim() == "1")
}
