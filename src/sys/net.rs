//! Interface configuration through the classic `SIOCSIF*` ioctls and a UDP
//! socket bound to one device for DHCP. Why ioctls and not rtnetlink: the
//! boot environment needs exactly "link up, one IPv4 address, one default
//! route", which these do in a few calls with nothing to parse back.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned immediately.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(iface: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {iface:?}"),
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

fn ioctl(
    fd: &OwnedFd,
    op: libc::c_ulong,
    req: &mut libc::ifreq,
    what: &str,
    iface: &str,
) -> io::Result<()> {
    // SAFETY: `req` is a valid, initialized ifreq that lives across the call;
    // these SIOC* requests read or write only within it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), op as _, req as *mut libc::ifreq) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what} on {iface}: {e}")));
    }
    Ok(())
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux and the
    // kernel reinterprets it by sa_family, exactly as C code does.
    unsafe { mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Set IFF_UP.
pub fn link_up(iface: &str) -> io::Result<()> {
    let fd = ctl_socket()?;
    let mut req = ifreq(iface)?;
    ioctl(&fd, libc::SIOCGIFFLAGS, &mut req, "reading flags", iface)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(&fd, libc::SIOCSIFFLAGS, &mut req, "bringing up", iface)
}

/// Assign `addr/prefix_len`.
pub fn set_ipv4(iface: &str, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
    let fd = ctl_socket()?;
    let mut req = ifreq(iface)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    ioctl(
        &fd,
        libc::SIOCSIFADDR,
        &mut req,
        "setting the address",
        iface,
    )?;
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len.min(32)))
    };
    let mut req = ifreq(iface)?;
    req.ifr_ifru.ifru_netmask = sockaddr_in(Ipv4Addr::from(mask));
    ioctl(
        &fd,
        libc::SIOCSIFNETMASK,
        &mut req,
        "setting the netmask",
        iface,
    )
}

/// Route 0.0.0.0/0 via `gateway` on `iface`.
pub fn default_route(iface: &str, gateway: Ipv4Addr) -> io::Result<()> {
    let fd = ctl_socket()?;
    let dev =
        std::ffi::CString::new(iface).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: rtentry is plain old data; all-zero is valid.
    let mut rt: libc::rtentry = unsafe { mem::zeroed() };
    rt.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(gateway);
    rt.rt_flags = (libc::RTF_UP | libc::RTF_GATEWAY) as libc::c_ushort;
    rt.rt_dev = dev.as_ptr() as *mut libc::c_char;
    // SAFETY: rt and the device name it points to live across the call;
    // SIOCADDRT only reads them.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SIOCADDRT as _,
            &mut rt as *mut libc::rtentry,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(io::Error::new(
            e.kind(),
            format!("adding a default route via {gateway} on {iface}: {e}"),
        ));
    }
    Ok(())
}

/// A UDP socket on port 68 of one interface, allowed to broadcast: what a
/// DHCP client needs before the interface has an address.
pub fn dhcp_socket(iface: &str) -> io::Result<UdpSocket> {
    // SAFETY: plain socket(2); owned immediately below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor, nobody else owns it.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let set = |level, opt, val: *const libc::c_void, len: usize, what: &str| -> io::Result<()> {
        // SAFETY: `val` points to `len` readable bytes for the call's duration.
        let rc =
            unsafe { libc::setsockopt(sock.as_raw_fd(), level, opt, val, len as libc::socklen_t) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("{what} on {iface}: {e}")));
        }
        Ok(())
    };
    let p = &one as *const libc::c_int as *const libc::c_void;
    let n = mem::size_of::<libc::c_int>();
    set(libc::SOL_SOCKET, libc::SO_REUSEADDR, p, n, "SO_REUSEADDR")?;
    set(libc::SOL_SOCKET, libc::SO_BROADCAST, p, n, "SO_BROADCAST")?;
    set(
        libc::SOL_SOCKET,
        libc::SO_BINDTODEVICE,
        iface.as_ptr() as *const libc::c_void,
        iface.len(),
        "SO_BINDTODEVICE",
    )?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 68u16.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: addr is a valid sockaddr_in of the size passed.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("binding UDP port 68 on {iface}: {e}"),
        ));
    }
    Ok(sock)
}
