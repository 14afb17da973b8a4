//! Interface configuration through the classic `SIOCSIF*` ioctls and a UDP
//! socket bound to one device for DHCP. Why ioctls and not rtnetlink: the
//! boot environment needs exactly "link up, one IPv4 address, one default
//! route", which these do in a few calls with nothing to parse back.
//! rustix has no wrappers for these ioctls nor for `SO_BINDTODEVICE`: those
//! stay raw `libc` calls; everything else is rustix.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::{Datagram, Error, Result};

fn ctl_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

pub(super) fn ifreq(iface: &str) -> Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() {
        return Err(Error::io(
            format!("bad interface name {iface:?}"),
            io::ErrorKind::InvalidInput.into(),
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
) -> Result<()> {
    // SAFETY: `req` is a valid, initialized ifreq that lives across the call;
    // these SIOC* requests read or write only within it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), op as _, req as *mut libc::ifreq) };
    if rc < 0 {
        return Err(Error::io(
            format!("{what} on {iface}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// An ioctl on `fd` whose argument is `arg`, for which `EEXIST` (the
/// address or route is there already) is success; other errors say `what`.
/// Shared by the IPv4 routes here and the IPv6 address and routes of
/// `net6`, whose argument structs differ.
pub(super) fn ioctl_unless_exists<T>(
    fd: &OwnedFd,
    op: libc::c_ulong,
    arg: &mut T,
    what: impl FnOnce() -> String,
) -> Result<()> {
    // SAFETY: every caller passes the argument struct its `op` reads
    // (rtentry, in6_rtmsg, in6_ifreq), valid and alive across the call;
    // these requests only read it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), op as _, arg as *mut T) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(Error::io(what(), e));
    }
    Ok(())
}

/// `SO_BINDTODEVICE`: the socket sends and receives on `iface` only.
pub(super) fn bind_to_device(fd: &OwnedFd, iface: &str) -> io::Result<()> {
    // SAFETY: `iface` points to `iface.len()` readable bytes for the
    // call's duration; the kernel copies them.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            iface.as_ptr() as *const libc::c_void,
            iface.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
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
pub fn link_up(iface: &str) -> Result<()> {
    let fd = ctl_socket().map_err(|e| Error::io("opening a control socket", e))?;
    let mut req = ifreq(iface)?;
    ioctl(&fd, libc::SIOCGIFFLAGS, &mut req, "reading flags", iface)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(&fd, libc::SIOCSIFFLAGS, &mut req, "bringing up", iface)
}

/// Assign `addr/prefix_len`.
pub fn set_ipv4(iface: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
    let fd = ctl_socket().map_err(|e| Error::io("opening a control socket", e))?;
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
pub fn default_route(iface: &str, gateway: Ipv4Addr) -> Result<()> {
    add_route(iface, Ipv4Addr::UNSPECIFIED, 0, Some(gateway))
}

/// Route `dest/prefix_len` on `iface`, via `gateway` or on-link. A route
/// that exists already is fine.
pub fn add_route(
    iface: &str,
    dest: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<()> {
    let fd = ctl_socket().map_err(|e| Error::io("opening a control socket", e))?;
    let dev = std::ffi::CString::new(iface).map_err(|_| {
        Error::io(
            format!("bad interface name {iface:?}"),
            io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len.min(32)))
    };
    // SAFETY: rtentry is plain old data; all-zero is valid.
    let mut rt: libc::rtentry = unsafe { mem::zeroed() };
    rt.rt_dst = sockaddr_in(dest);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::from(mask));
    let mut flags = libc::RTF_UP;
    if let Some(gw) = gateway.filter(|g| !g.is_unspecified()) {
        rt.rt_gateway = sockaddr_in(gw);
        flags |= libc::RTF_GATEWAY;
    }
    if prefix_len == 32 {
        flags |= libc::RTF_HOST;
    }
    rt.rt_flags = flags as libc::c_ushort;
    // `dev`, which rt points to, lives until the end of this function.
    rt.rt_dev = dev.as_ptr() as *mut libc::c_char;
    ioctl_unless_exists(&fd, libc::SIOCADDRT as _, &mut rt, || {
        let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        format!("adding a route to {dest}/{prefix_len}{via} on {iface}")
    })
}

/// Set the MTU.
pub fn set_mtu(iface: &str, mtu: u16) -> Result<()> {
    let fd = ctl_socket().map_err(|e| Error::io("opening a control socket", e))?;
    let mut req = ifreq(iface)?;
    req.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
    ioctl(&fd, libc::SIOCSIFMTU, &mut req, "setting the MTU", iface)
}

/// A UDP socket on port 68 of one interface, allowed to broadcast: what a
/// DHCP client needs before the interface has an address.
pub fn dhcp_socket(iface: &str) -> Result<UdpSocket> {
    let fail = |what: &str, e: io::Error| Error::io(format!("{what} on {iface}"), e);
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| fail("opening a DHCP socket", e.into()))?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)
        .map_err(|e| fail("SO_REUSEADDR", e.into()))?;
    rustix::net::sockopt::set_socket_broadcast(&fd, true)
        .map_err(|e| fail("SO_BROADCAST", e.into()))?;
    bind_to_device(&fd, iface).map_err(|e| fail("SO_BINDTODEVICE", e))?;
    rustix::net::bind(&fd, &SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68))
        .map_err(|e| fail("binding UDP port 68", e.into()))?;
    Ok(UdpSocket::from(fd))
}

impl Datagram for UdpSocket {
    fn send_to(&self, buf: &[u8], to: SocketAddrV4) -> io::Result<usize> {
        UdpSocket::send_to(self, buf, to)
    }

    fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        self.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.recv_from(buf) {
            Ok((n, _)) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

// Links built or changed before any address: renames (`ifname=`), VLANs
// (`vlan=`), MAC addresses (`ip=…:<mac>`). Bonds are sysfs writes, done by
// the caller through `Sys::write`.

/// Clear IFF_UP (a rename, a MAC change or enslaving needs the link down).
pub fn link_down(iface: &str) -> Result<()> {
    let fd = ctl_socket().map_err(|e| Error::io("opening a control socket", e))?;
    let mut req = ifreq(iface)?;
    ioctl(&fd, libc::SIOCGIFFLAGS, &mut req, "reading flags", iface)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short) };
    ioctl(&fd, libc::SIOCSIFFLAGS, &mut req, "taking down", iface)
}

/// Rename a link (it must be down).
pub fn rename_link(from: &str, to: &str) -> Result<()> {
    let fd = ctl_socket().map_err(|e| Error::io("opening a control socket", e))?;
    let mut req = ifreq(from)?;
    let new = ifreq(to)?;
    req.ifr_ifru.ifru_newname = new.ifr_name;
    ioctl(
        &fd,
        libc::SIOCSIFNAME,
        &mut req,
        &format!("renaming to {to}"),
        from,
    )
}

/// Set the hardware address (the link must be down for most drivers).
pub fn set_mac(iface: &str, mac: [u8; 6]) -> Result<()> {
    let fd = ctl_socket().map_err(|e| Error::io("opening a control socket", e))?;
    let mut req = ifreq(iface)?;
    // SAFETY: sockaddr is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr = unsafe { mem::zeroed() };
    sa.sa_family = libc::ARPHRD_ETHER;
    for (d, s) in sa.sa_data.iter_mut().zip(mac) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_hwaddr = sa;
    ioctl(
        &fd,
        libc::SIOCSIFHWADDR,
        &mut req,
        "setting the MAC address",
        iface,
    )
}

/// `struct vlan_ioctl_args` of `<linux/if_vlan.h>`; the union is 24 bytes.
#[repr(C)]
struct VlanIoctlArgs {
    cmd: libc::c_int,
    device1: [libc::c_char; 24],
    u: [u8; 24],
    vlan_qos: libc::c_short,
}

const SIOCSIFVLAN: libc::c_ulong = 0x8983;
const ADD_VLAN_CMD: libc::c_int = 0;
const SET_VLAN_NAME_TYPE_CMD: libc::c_int = 6;
/// `eth0.10`: the parent's name, a dot, the id without padding.
const VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD: u32 = 3;

fn vlan_ioctl(fd: &OwnedFd, args: &mut VlanIoctlArgs) -> io::Result<()> {
    // SAFETY: `args` is a valid vlan_ioctl_args that lives across the call;
    // SIOCSIFVLAN reads (and for some commands writes) only within it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCSIFVLAN as _, args as *mut VlanIoctlArgs) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The name the kernel gives a new VLAN under the `RAW_PLUS_VID_NO_PAD`
/// name type: `snprintf(name, IFNAMSIZ, "%s.%i", parent, id)`.
pub fn kernel_vlan_name(parent: &str, id: u16) -> String {
    let mut n = format!("{parent}.{id}");
    n.truncate(libc::IFNAMSIZ - 1);
    n
}

/// Create VLAN `id` on `parent` (the 8021q module must be loaded) and give
/// it the name `name`: the kernel names it `<parent>.<id>`, then it is
/// renamed if the user wrote another name.
pub fn add_vlan(parent: &str, id: u16, name: &str) -> Result<()> {
    let fd = ctl_socket().map_err(|e| Error::io("opening a control socket", e))?;
    // SAFETY: plain old data; all-zero is valid.
    let mut args: VlanIoctlArgs = unsafe { mem::zeroed() };
    args.cmd = SET_VLAN_NAME_TYPE_CMD;
    args.u[..4].copy_from_slice(&VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD.to_ne_bytes());
    vlan_ioctl(&fd, &mut args)
        .map_err(|e| Error::io("setting the VLAN name type (is 8021q loaded?)", e))?;
    let dev = ifreq(parent)?;
    // SAFETY: plain old data; all-zero is valid.
    let mut args: VlanIoctlArgs = unsafe { mem::zeroed() };
    args.cmd = ADD_VLAN_CMD;
    args.device1[..dev.ifr_name.len()].copy_from_slice(&dev.ifr_name);
    args.u[..4].copy_from_slice(&libc::c_int::from(id).to_ne_bytes());
    vlan_ioctl(&fd, &mut args)
        .map_err(|e| Error::io(format!("adding VLAN {id} on {parent}"), e))?;
    let made = kernel_vlan_name(parent, id);
    if made != name {
        rename_link(&made, name)?;
    }
    Ok(())
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn vlan_args_have_the_kernel_layout() {
        assert_eq!(mem::size_of::<VlanIoctlArgs>(), 56);
    }

    #[test]
    fn kernel_vlan_names() {
        assert_eq!(kernel_vlan_name("eth0", 10), "eth0.10");
        assert_eq!(kernel_vlan_name("enp0s31f6abcde", 4094), "enp0s31f6abcde.");
    }
}
