//! The hardware clock: `RTC_SET_TIME` on `/dev/rtc0`, in UTC (what the
//! Linux kernel's `rtc-cmos` expects unless told otherwise, and what the
//! next kernel reads at boot).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use wyrcan_core::booted::civil;

/// `struct rtc_time` of `<linux/rtc.h>`: nine `int`s, like `struct tm`.
#[repr(C)]
#[derive(Default)]
struct RtcTime {
    tm_sec: libc::c_int,
    tm_min: libc::c_int,
    tm_hour: libc::c_int,
    tm_mday: libc::c_int,
    tm_mon: libc::c_int,
    tm_year: libc::c_int,
    tm_wday: libc::c_int,
    tm_yday: libc::c_int,
    tm_isdst: libc::c_int,
}

/// `_IOW('p', 0x0a, struct rtc_time)`.
const RTC_SET_TIME: libc::c_ulong = 0x4024_700a;

/// Set the RTC behind `dev` to `secs` (UTC).
pub fn set(dev: &Path, secs: i64) -> io::Result<()> {
    let c = civil(secs);
    let year =
        i32::try_from(c.year - 1900).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let t = RtcTime {
        tm_sec: c.second as libc::c_int,
        tm_min: c.minute as libc::c_int,
        tm_hour: c.hour as libc::c_int,
        tm_mday: c.day as libc::c_int,
        tm_mon: c.month as libc::c_int - 1,
        tm_year: year,
        ..RtcTime::default()
    };
    let f = std::fs::OpenOptions::new().read(true).open(dev)?;
    // SAFETY: RTC_SET_TIME reads one `struct rtc_time` from the pointer,
    // which points at a live, properly laid out `RtcTime` for the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), RTC_SET_TIME as _, &t as *const RtcTime) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_request_number_encodes_the_struct_size() {
        // _IOW: dir 1 (write) << 30 | size << 16 | 'p' << 8 | 0x0a.
        let size = std::mem::size_of::<super::RtcTime>() as libc::c_ulong;
        assert_eq!(
            super::RTC_SET_TIME,
            (1 << 30) | (size << 16) | ((b'p' as libc::c_ulong) << 8) | 0x0a
        );
    }
}
