//! The only place that talks to the kernel directly. Every syscall the
//! boot code makes goes through the [`Sys`] trait — mounts, modules,
//! kexec, reboot, memfds, interface setup, the DHCP socket, randomness,
//! and the files of `/proc`, `/sys` and efivarfs — so the PID 1 steps are
//! tested with `fake::FakeSys` (test builds only), which records calls and
//! serves a scripted machine instead of making them.

pub mod efivarfs;
pub mod kexec;
pub mod net;
pub mod net6;
pub mod root;
pub mod rtc;

#[cfg(test)]
pub mod fake;
#[cfg(test)]
pub mod fake6;

pub use net6::Datagram6;
pub use root::LoopDevice;

use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::MemfdFlags;
use rustix::io::Errno;
use rustix::mount::MountFlags;
use rustix::system::RebootCommand;

/// A failed syscall: what was being done, and the error with its errno
/// intact (so callers can still tell `EBUSY` from `ENOENT`).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Error {
    /// What was being done (`mounting proc on /proc`).
    pub what: String,
    /// The error; `raw_os_error()` is the errno when there is one.
    #[source]
    pub source: io::Error,
}

impl Error {
    /// An error from an errno.
    pub fn errno(what: impl Into<String>, errno: Errno) -> Self {
        Error {
            what: what.into(),
            source: io::Error::from_raw_os_error(errno.raw_os_error()),
        }
    }

    /// An error from an `io::Error`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error {
            what: what.into(),
            source,
        }
    }

    /// The errno, if the kernel gave one.
    pub fn raw_errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// Shorthand for results of [`Sys`] calls.
pub type Result<T> = std::result::Result<T, Error>;

/// What the kernel is asked to do at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// Boot the kernel loaded by `kexec_file_load`.
    Kexec,
    /// Restart the machine.
    Restart,
}

/// A UDP socket bound to one interface (DHCP before the link has an
/// address).
pub trait Datagram: Send {
    /// Send one datagram.
    fn send_to(&self, buf: &[u8], to: SocketAddrV4) -> io::Result<usize>;
    /// Receive one datagram, waiting at most `timeout`; `Ok(None)` when
    /// nothing came.
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>>;
}

/// Datagrams to one address (see [`Sys::udp_sender`]).
pub trait UdpOut: Send {
    /// Send one datagram; a lost one is not an error (it is UDP).
    fn send(&self, data: &[u8]) -> io::Result<()>;
}

impl UdpOut for std::net::UdpSocket {
    fn send(&self, data: &[u8]) -> io::Result<()> {
        std::net::UdpSocket::send(self, data).map(drop)
    }
}

/// The kernel interface used by the boot environment and by `wyrcan kexec`.
pub trait Sys: Sync {
    /// `mount(2)`.
    fn mount(&self, source: &str, target: &str, fstype: &str, data: Option<&str>) -> Result<()>;
    /// `finit_module(2)` of the module file at `path`; already loaded is Ok.
    fn load_module(&self, path: &Path) -> Result<()>;
    /// `kexec_file_load(2)`.
    fn kexec_load(&self, kernel: &File, initrd: &File, cmdline: &str) -> Result<()>;
    /// `reboot(2)` after `sync(2)`; returns only on failure.
    fn power(&self, how: Power) -> Error;
    /// An anonymous in-memory file (`memfd_create(2)`).
    fn memfd(&self, name: &str) -> Result<File>;
    /// The running kernel's release (`uname -r`).
    fn kernel_release(&self) -> String;
    /// Four random bytes from the kernel (`getrandom(2)`).
    fn random_u32(&self) -> u32;
    /// Bring a link up.
    fn link_up(&self, iface: &str) -> Result<()>;
    /// Give a link an IPv4 address.
    fn set_ipv4(&self, iface: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()>;
    /// Add a default route through `gateway`.
    fn default_route(&self, iface: &str, gateway: Ipv4Addr) -> Result<()>;
    /// A broadcast-capable UDP socket on port 68 of `iface`.
    fn dhcp_socket(&self, iface: &str) -> Result<Box<dyn Datagram>>;
    /// Route `dest/prefix_len` on `iface`, via `gateway` or on-link.
    fn add_route(
        &self,
        iface: &str,
        dest: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()>;
    /// Set an interface's MTU.
    fn set_mtu(&self, iface: &str, mtu: u16) -> Result<()>;
    /// A whole file of `/proc`, `/sys`, efivarfs or the initramfs.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The names in a directory (unsorted).
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Create or replace a file in one write (`/etc/resolv.conf`).
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Create or replace an EFI variable file: clears the immutable flag
    /// first, then writes attributes + payload in one write.
    fn efivar_write(&self, dir: &Path, name: &str, data: &[u8]) -> io::Result<()>;
    /// Delete an EFI variable file (immutable flag cleared first); absent is fine.
    fn efivar_remove(&self, dir: &Path, name: &str) -> io::Result<()>;
    /// The realtime clock: seconds and nanoseconds since the epoch.
    fn now(&self) -> (i64, u32);
    /// Set the realtime clock.
    fn set_clock(&self, secs: i64, nanos: u32) -> Result<()>;
    /// Set the hardware clock (`/dev/rtc0`, kept in UTC): kexec carries no
    /// time over, the next kernel reads the RTC again.
    fn set_rtc(&self, secs: i64) -> io::Result<()>;
    /// Send `data` to `to` over UDP and return the first answer from that
    /// address within `timeout` (`None`: no answer).
    fn udp_exchange(
        &self,
        to: std::net::SocketAddr,
        data: &[u8],
        timeout: Duration,
    ) -> io::Result<Option<Vec<u8>>>;
    /// A UDP sender to `to` that outlives the call (the syslog forwarder
    /// keeps it for every later message).
    fn udp_sender(&self, to: std::net::SocketAddr) -> io::Result<Box<dyn UdpOut>>;
    /// Send one command to a TPM character device and read its response
    /// (the kernel's TPM devices take one whole command per write and
    /// answer one whole response per read).
    fn tpm_transact(&self, dev: &Path, command: &[u8]) -> io::Result<Vec<u8>>;
    /// Clear IFF_UP.
    fn link_down(&self, iface: &str) -> Result<()>;
    /// Rename a link that is down.
    fn rename_link(&self, from: &str, to: &str) -> Result<()>;
    /// Set the hardware address of a link that is down.
    fn set_mac(&self, iface: &str, mac: [u8; 6]) -> Result<()>;
    /// Create VLAN `id` on `parent`, named `name` (8021q loaded).
    fn add_vlan(&self, parent: &str, id: u16, name: &str) -> Result<()>;
    /// `finit_module` with module parameters (`netconsole=…`).
    fn load_module_params(&self, path: &Path, params: &str) -> Result<()>;
    /// Give a link an IPv6 address (`SIOCSIFADDR`, `struct in6_ifreq`).
    fn set_ipv6(&self, iface: &str, addr: std::net::Ipv6Addr, prefix_len: u8) -> Result<()>;
    /// Route `dest/prefix_len` (IPv6) on `iface`, via `gateway` or on-link.
    fn add_route6(
        &self,
        iface: &str,
        dest: std::net::Ipv6Addr,
        prefix_len: u8,
        gateway: Option<std::net::Ipv6Addr>,
    ) -> Result<()>;
    /// A raw ICMPv6 socket on `iface`, hop limit 255 (router solicitations
    /// and advertisements).
    fn icmp6_socket(&self, iface: &str) -> Result<Box<dyn Datagram6>>;
    /// A UDP socket on `[::]:546` of `iface` (the DHCPv6 client's).
    fn dhcp6_socket(&self, iface: &str) -> Result<Box<dyn Datagram6>>;
    /// `mount(2)` with `MS_RDONLY`.
    fn mount_readonly(
        &self,
        source: &str,
        target: &str,
        fstype: &str,
        data: Option<&str>,
    ) -> Result<()>;
    /// Create a directory and its parents (mode 0755); existing is fine.
    fn mkdir(&self, path: &Path) -> Result<()>;
    /// Attach `file` read-only to a free loop device that detaches itself
    /// once unused (keep the handle until the device is mounted).
    fn loop_attach(&self, file: &Path) -> Result<LoopDevice>;
    /// `mount --move from to`.
    fn move_mount(&self, from: &Path, to: &Path) -> Result<()>;
    /// A symlink's target (`readlink(2)`); an error when `path` is not one.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// Remove `path` and everything under it on its parent's filesystem,
    /// never crossing into a mount below; absent is fine.
    fn remove_tree_same_dev(&self, path: &Path) -> Result<()>;
    /// Give fds 0–2 `/dev/console` when they are not open.
    fn stdio_to_console(&self) -> Result<()>;
    /// Make the mount at `new_root` the root and exec `init` (argv[0])
    /// with `args` and this process's environment; returns only on failure.
    fn switch_root(&self, new_root: &Path, init: &Path, args: &[OsString]) -> Error;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSys;

/// A UDP socket on an ephemeral port of `to`'s family, connected to `to`.
fn udp_connected(to: std::net::SocketAddr) -> io::Result<std::net::UdpSocket> {
    let bind: std::net::SocketAddr = match to {
        std::net::SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        std::net::SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = std::net::UdpSocket::bind(bind)?;
    sock.connect(to)?;
    Ok(sock)
}

impl Sys for LinuxSys {
    fn mount(&self, source: &str, target: &str, fstype: &str, data: Option<&str>) -> Result<()> {
        mount(source, target, fstype, MountFlags::empty(), data)
    }

    fn load_module(&self, path: &Path) -> Result<()> {
        finit_module(path, c"", format!("loading module {}", path.display()))
    }

    fn kexec_load(&self, kernel: &File, initrd: &File, cmdline: &str) -> Result<()> {
        kexec::file_load(kernel, initrd, cmdline)
    }

    fn power(&self, how: Power) -> Error {
        rustix::fs::sync();
        let cmd = match how {
            Power::Kexec => RebootCommand::Kexec,
            Power::Restart => RebootCommand::Restart,
        };
        let what = format!("reboot(2) {how:?}");
        match rustix::system::reboot(cmd) {
            Ok(()) => Error::io(what, io::Error::other("returned")),
            Err(e) => Error::errno(what, e),
        }
    }

    fn memfd(&self, name: &str) -> Result<File> {
        rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC)
            .map(File::from)
            .map_err(|e| Error::errno(format!("creating an in-memory file for the {name}"), e))
    }

    fn kernel_release(&self) -> String {
        rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned()
    }

    fn random_u32(&self) -> u32 {
        let mut b = [0u8; 4];
        // GRND_INSECURE: never blocks on an entropy pool that is still
        // filling at boot; a DHCP transaction id needs no more.
        match rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::INSECURE) {
            Ok(4) => u32::from_ne_bytes(b),
            // Kernels before 5.6 lack GRND_INSECURE: the time will do.
            _ => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32)),
        }
    }

    fn link_up(&self, iface: &str) -> Result<()> {
        net::link_up(iface)
    }

    fn set_ipv4(&self, iface: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
        net::set_ipv4(iface, addr, prefix_len)
    }

    fn default_route(&self, iface: &str, gateway: Ipv4Addr) -> Result<()> {
        net::default_route(iface, gateway)
    }

    fn dhcp_socket(&self, iface: &str) -> Result<Box<dyn Datagram>> {
        Ok(Box::new(net::dhcp_socket(iface)?))
    }

    fn add_route(
        &self,
        iface: &str,
        dest: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        net::add_route(iface, dest, prefix_len, gateway)
    }

    fn set_mtu(&self, iface: &str, mtu: u16) -> Result<()> {
        net::set_mtu(iface, mtu)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, data)
    }

    fn efivar_write(&self, dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
        efivarfs::write(dir, name, data)
    }

    fn efivar_remove(&self, dir: &Path, name: &str) -> io::Result<()> {
        efivarfs::remove(dir, name)
    }

    fn now(&self) -> (i64, u32) {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                // Before 1970: whole seconds, rounded down.
                (-(d.as_secs() as i64) - 1, 0)
            }
        }
    }

    fn set_clock(&self, secs: i64, nanos: u32) -> Result<()> {
        let ts = rustix::time::Timespec {
            tv_sec: secs,
            tv_nsec: nanos.into(),
        };
        rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts)
            .map_err(|e| Error::errno("setting the system clock", e))
    }

    fn set_rtc(&self, secs: i64) -> io::Result<()> {
        rtc::set(Path::new("/dev/rtc0"), secs)
    }

    fn udp_exchange(
        &self,
        to: std::net::SocketAddr,
        data: &[u8],
        timeout: Duration,
    ) -> io::Result<Option<Vec<u8>>> {
        let sock = udp_connected(to)?;
        sock.send(data)?;
        sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buf = vec![0u8; 2048];
        match sock.recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            // An ICMP "port unreachable" arrives as a refused receive.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn udp_sender(&self, to: std::net::SocketAddr) -> io::Result<Box<dyn UdpOut>> {
        Ok(Box::new(udp_connected(to)?))
    }

    fn tpm_transact(&self, dev: &Path, command: &[u8]) -> io::Result<Vec<u8>> {
        use std::io::{Read as _, Write as _};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev)?;
        f.write_all(command)?;
        // TPM 2.0 responses are at most 4 KiB (TPM_PT_MAX_RESPONSE_SIZE).
        let mut buf = vec![0u8; 4096];
        let n = f.read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn link_down(&self, iface: &str) -> Result<()> {
        net::link_down(iface)
    }

    fn rename_link(&self, from: &str, to: &str) -> Result<()> {
        net::rename_link(from, to)
    }

    fn set_mac(&self, iface: &str, mac: [u8; 6]) -> Result<()> {
        net::set_mac(iface, mac)
    }

    fn add_vlan(&self, parent: &str, id: u16, name: &str) -> Result<()> {
        net::add_vlan(parent, id, name)
    }

    fn load_module_params(&self, path: &Path, params: &str) -> Result<()> {
        let what = format!("loading module {} {params}", path.display());
        let params = CString::new(params)
            .map_err(|e| Error::io(&what, io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        finit_module(path, &params, what)
    }

    fn set_ipv6(&self, iface: &str, addr: std::net::Ipv6Addr, prefix_len: u8) -> Result<()> {
        net6::set_ipv6(iface, addr, prefix_len)
    }

    fn add_route6(
        &self,
        iface: &str,
        dest: std::net::Ipv6Addr,
        prefix_len: u8,
        gateway: Option<std::net::Ipv6Addr>,
    ) -> Result<()> {
        net6::add_route6(iface, dest, prefix_len, gateway)
    }

    fn icmp6_socket(&self, iface: &str) -> Result<Box<dyn Datagram6>> {
        Ok(Box::new(net6::icmp6_socket(iface)?))
    }

    fn dhcp6_socket(&self, iface: &str) -> Result<Box<dyn Datagram6>> {
        Ok(Box::new(net6::dhcp6_socket(iface)?))
    }

    fn mount_readonly(
        &self,
        source: &str,
        target: &str,
        fstype: &str,
        data: Option<&str>,
    ) -> Result<()> {
        mount(source, target, fstype, MountFlags::RDONLY, data)
    }

    fn mkdir(&self, path: &Path) -> Result<()> {
        root::mkdir(path)
    }

    fn loop_attach(&self, file: &Path) -> Result<LoopDevice> {
        root::loop_attach(file)
    }

    fn move_mount(&self, from: &Path, to: &Path) -> Result<()> {
        root::move_mount(from, to)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }

    fn remove_tree_same_dev(&self, path: &Path) -> Result<()> {
        root::remove_tree_same_dev(path)
    }

    fn stdio_to_console(&self) -> Result<()> {
        root::stdio_to_console()
    }

    fn switch_root(&self, new_root: &Path, init: &Path, args: &[OsString]) -> Error {
        root::switch_root(new_root, init, args)
    }
}

/// `finit_module(2)`; a compressed file (`.ko.xz`, `.ko.zst`, `.ko.gz`) is
/// handed over as it is, for the kernel to decompress
/// (`MODULE_INIT_COMPRESSED_FILE`, Linux 5.17+ with
/// `CONFIG_MODULE_DECOMPRESS`). Already loaded is Ok.
fn finit_module(path: &Path, params: &CStr, what: String) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io(&what, e))?;
    let flags = module_flags(path);
    match rustix::system::finit_module(&f, params, flags) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        // Kernels without in-kernel decompression refuse the flag.
        Err(e @ (Errno::INVAL | Errno::OPNOTSUPP)) if flags != 0 => Err(Error::errno(
            format!(
                "{what} (the kernel cannot decompress modules itself: CONFIG_MODULE_DECOMPRESS)"
            ),
            e,
        )),
        Err(e) => Err(Error::errno(what, e)),
    }
}

/// `MODULE_INIT_COMPRESSED_FILE` from <linux/module.h>.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

fn module_flags(path: &Path) -> i32 {
    match path.extension().and_then(|e| e.to_str()) {
        Some("xz" | "zst" | "gz") => MODULE_INIT_COMPRESSED_FILE,
        _ => 0,
    }
}

fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MountFlags,
    data: Option<&str>,
) -> Result<()> {
    let what = || format!("mounting {fstype} {source} on {target}");
    // The initramfs may lack the mount point; a failure shows in mount.
    let _ = std::fs::create_dir_all(target);
    let data = data
        .map(CString::new)
        .transpose()
        .map_err(|e| Error::io(what(), io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    rustix::mount::mount(source, target, fstype, flags, data.as_deref())
        .map_err(|e| Error::errno(what(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_errors_keep_their_errno() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().to_str().unwrap();
        let e = LinuxSys
            .mount("none", target, "wyrcan-no-such-fs", None)
            .unwrap_err();
        // ENODEV as root, EPERM without privileges: an errno either way.
        assert!(
            matches!(e.raw_errno(), Some(libc::ENODEV) | Some(libc::EPERM)),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("mounting wyrcan-no-such-fs none on "),
            "{e}"
        );
    }

    #[test]
    fn compressed_modules_are_flagged() {
        for (p, f) in [
            ("/m/loop.ko", 0),
            ("/m/loop.ko.xz", 4),
            ("/m/squashfs.ko.zst", 4),
            ("/m/overlay.ko.gz", 4),
            ("/m/xz", 0),
        ] {
            assert_eq!(module_flags(Path::new(p)), f, "{p}");
        }
    }

    #[test]
    fn random_numbers_differ() {
        let a: Vec<u32> = (0..4).map(|_| LinuxSys.random_u32()).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]), "{a:?}");
    }

    #[test]
    fn memfds_are_files() {
        use std::io::{Seek, Write};
        let mut f = LinuxSys.memfd("test").unwrap();
        f.write_all(b"abc").unwrap();
        assert_eq!(f.stream_position().unwrap(), 3);
        assert_eq!(f.metadata().unwrap().len(), 3);
    }
}
