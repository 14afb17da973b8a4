//! IPv6 interface setup: an address through `SIOCSIFADDR` on an `AF_INET6`
//! socket (`struct in6_ifreq`), a route through `SIOCADDRT` (`struct
//! in6_rtmsg`), a raw ICMPv6 socket for router solicitations and
//! advertisements, and the DHCPv6 client's UDP socket on port 546 — each
//! socket bound to one interface. Router advertisements themselves are
//! acted on by the kernel (`accept_ra`, `autoconf`); these sockets only
//! read what the kernel does not apply (RDNSS, DNSSL, the M and O flags).
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use super::net::{self, bind_to_device};
use super::{Error, Result};

/// A socket bound to one interface for IPv6 link traffic (router
/// solicitations and advertisements, DHCPv6).
pub trait Datagram6: Send {
    /// Send one datagram to `to` (`port` is ignored by raw sockets); a
    /// link-local or multicast `to` is scoped to the socket's interface.
    fn send_to(&self, buf: &[u8], to: Ipv6Addr, port: u16) -> io::Result<usize>;
    /// Receive one datagram and its source address, waiting at most
    /// `timeout`; `Ok(None)` when nothing came.
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<(usize, Ipv6Addr)>>;
}

fn ctl_socket6() -> Result<OwnedFd> {
    rustix::net::socket_with(
        AddressFamily::INET6,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| {
        Error::io(
            "opening an IPv6 control socket (is IPv6 disabled?)",
            e.into(),
        )
    })
}

fn in6_addr(a: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: a.octets(),
    }
}

/// `if_nametoindex(3)` through `SIOCGIFINDEX`.
pub fn if_index(iface: &str) -> Result<i32> {
    let fd = ctl_socket6()?;
    let mut req = net::ifreq(iface)?;
    // SAFETY: `req` is a valid ifreq that lives across the call; SIOCGIFINDEX
    // writes only its ifindex member.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SIOCGIFINDEX as _,
            &mut req as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        return Err(Error::io(
            format!("finding the index of {iface}"),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_ifindex })
}

/// Assign `addr/prefix_len` (the kernel adds the prefix route unless it is
/// a /128). An address that exists already is fine.
pub fn set_ipv6(iface: &str, addr: Ipv6Addr, prefix_len: u8) -> Result<()> {
    let fd = ctl_socket6()?;
    let mut req = libc::in6_ifreq {
        ifr6_addr: in6_addr(addr),
        ifr6_prefixlen: u32::from(prefix_len.min(128)),
        ifr6_ifindex: if_index(iface)?,
    };
    net::ioctl_unless_exists(&fd, libc::SIOCSIFADDR as _, &mut req, || {
        format!("adding {addr}/{prefix_len} to {iface}")
    })
}

/// `struct in6_rtmsg` of `<linux/ipv6_route.h>` (libc's has private fields).
#[repr(C)]
struct In6Rtmsg {
    dst: libc::in6_addr,
    src: libc::in6_addr,
    gateway: libc::in6_addr,
    kind: u32,
    dst_len: u16,
    src_len: u16,
    metric: u32,
    info: libc::c_ulong,
    flags: u32,
    ifindex: libc::c_int,
}

/// Route `dest/prefix_len` on `iface`, via `gateway` or on-link. A route
/// that exists already is fine.
pub fn add_route6(
    iface: &str,
    dest: Ipv6Addr,
    prefix_len: u8,
    gateway: Option<Ipv6Addr>,
) -> Result<()> {
    let fd = ctl_socket6()?;
    let mut flags = u32::from(libc::RTF_UP);
    let gw = gateway.filter(|g| !g.is_unspecified());
    if gw.is_some() {
        flags |= u32::from(libc::RTF_GATEWAY);
    }
    if prefix_len == 128 {
        flags |= u32::from(libc::RTF_HOST);
    }
    let mut rt = In6Rtmsg {
        dst: in6_addr(dest),
        src: in6_addr(Ipv6Addr::UNSPECIFIED),
        gateway: in6_addr(gw.unwrap_or(Ipv6Addr::UNSPECIFIED)),
        kind: 0,
        dst_len: u16::from(prefix_len.min(128)),
        src_len: 0,
        metric: 1024,
        info: 0,
        flags,
        ifindex: if_index(iface)?,
    };
    net::ioctl_unless_exists(&fd, libc::SIOCADDRT as _, &mut rt, || {
        let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
        format!("adding a route to {dest}/{prefix_len}{via} on {iface}")
    })
}

fn set_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: `v` is a c_int that lives across the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A socket of one interface (ICMPv6 raw or UDP port 546).
pub struct Socket6 {
    fd: OwnedFd,
    scope: u32,
}

/// A raw `IPPROTO_ICMPV6` socket on `iface`, hop limit 255 (RFC 4861
/// requires it both ways: the kernel drops RAs with less).
pub fn icmp6_socket(iface: &str) -> Result<Socket6> {
    let fail = |what: &str, e: io::Error| Error::io(format!("{what} on {iface}"), e);
    let fd = rustix::net::socket_with(
        AddressFamily::INET6,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        Some(rustix::net::ipproto::ICMPV6),
    )
    .map_err(|e| fail("opening a raw ICMPv6 socket", e.into()))?;
    bind_to_device(&fd, iface).map_err(|e| fail("SO_BINDTODEVICE", e))?;
    set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)
        .map_err(|e| fail("IPV6_MULTICAST_HOPS", e))?;
    set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)
        .map_err(|e| fail("IPV6_UNICAST_HOPS", e))?;
    let scope = if_index(iface)? as u32;
    Ok(Socket6 { fd, scope })
}

/// A UDP socket on `[::]:546` of `iface`, for the DHCPv6 client.
pub fn dhcp6_socket(iface: &str) -> Result<Socket6> {
    let fail = |what: &str, e: io::Error| Error::io(format!("{what} on {iface}"), e);
    let fd = rustix::net::socket_with(
        AddressFamily::INET6,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| fail("opening a DHCPv6 socket", e.into()))?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)
        .map_err(|e| fail("SO_REUSEADDR", e.into()))?;
    rustix::net::sockopt::set_ipv6_v6only(&fd, true).map_err(|e| fail("IPV6_V6ONLY", e.into()))?;
    bind_to_device(&fd, iface).map_err(|e| fail("SO_BINDTODEVICE", e))?;
    rustix::net::bind(&fd, &SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 546, 0, 0))
        .map_err(|e| fail("binding UDP port 546", e.into()))?;
    let scope = if_index(iface)? as u32;
    Ok(Socket6 { fd, scope })
}

impl Datagram6 for Socket6 {
    fn send_to(&self, buf: &[u8], to: Ipv6Addr, port: u16) -> io::Result<usize> {
        let scope = if to.is_multicast() || (to.segments()[0] & 0xffc0) == 0xfe80 {
            self.scope
        } else {
            0
        };
        let addr = SocketAddrV6::new(to, port, 0, scope);
        Ok(rustix::net::sendto(
            &self.fd,
            buf,
            SendFlags::empty(),
            &addr,
        )?)
    }

    fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<(usize, Ipv6Addr)>> {
        rustix::net::sockopt::set_socket_timeout(
            &self.fd,
            rustix::net::sockopt::Timeout::Recv,
            Some(timeout.max(Duration::from_millis(1))),
        )?;
        match rustix::net::recvfrom(&self.fd, &mut *buf, RecvFlags::empty()) {
            Ok((n, _, from)) => {
                let src = from
                    .and_then(|a| SocketAddrV6::try_from(a).ok())
                    .map_or(Ipv6Addr::UNSPECIFIED, |a| *a.ip());
                Ok(Some((n.min(buf.len()), src)))
            }
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
