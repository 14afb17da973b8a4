//! The only place that talks to the kernel directly. Every syscall that
//! boot code needs goes through the [`Sys`] trait, so the PID 1 steps are
//! tested with [`fake::FakeSys`], which records calls instead of making
//! them. Each submodule wraps one kind of syscall.

pub mod efivarfs;
pub mod kexec;
pub mod net;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use rustix::mount::MountFlags;
use rustix::system::RebootCommand;

/// What the kernel is asked to do at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// Boot the kernel loaded by `kexec_file_load`.
    Kexec,
    /// Restart the machine.
    Restart,
    /// Power off.
    PowerOff,
}

/// The kernel interface used by the boot environment.
pub trait Sys {
    /// `mount(2)`; the error names source, target and type.
    fn mount(&self, source: &str, target: &str, fstype: &str, data: Option<&str>)
        -> io::Result<()>;
    /// `finit_module(2)` of the module file at `path`; already loaded is Ok.
    fn load_module(&self, path: &Path) -> io::Result<()>;
    /// `kexec_file_load(2)`.
    fn kexec_load(&self, kernel: &File, initrd: &File, cmdline: &str) -> io::Result<()>;
    /// `reboot(2)` after `sync(2)`; returns only on failure.
    fn power(&self, how: Power) -> io::Error;
    /// Bring a link up.
    fn link_up(&self, iface: &str) -> io::Result<()>;
    /// Give a link an IPv4 address.
    fn set_ipv4(&self, iface: &str, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()>;
    /// Add a default route through `gateway`.
    fn default_route(&self, iface: &str, gateway: Ipv4Addr) -> io::Result<()>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSys;

impl Sys for LinuxSys {
    fn mount(
        &self,
        source: &str,
        target: &str,
        fstype: &str,
        data: Option<&str>,
    ) -> io::Result<()> {
        let data = data.map(CString::new).transpose()?;
        rustix::mount::mount(source, target, fstype, MountFlags::empty(), data.as_deref()).map_err(
            |e| {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!("mounting {fstype} {source} on {target}: {e}"),
                )
            },
        )
    }

    fn load_module(&self, path: &Path) -> io::Result<()> {
        let f = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
        match rustix::system::finit_module(&f, c"", 0) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(io::Error::new(
                io::Error::from(e).kind(),
                format!("loading module {}: {e}", path.display()),
            )),
        }
    }

    fn kexec_load(&self, kernel: &File, initrd: &File, cmdline: &str) -> io::Result<()> {
        kexec::file_load(kernel, initrd, cmdline)
    }

    fn power(&self, how: Power) -> io::Error {
        rustix::fs::sync();
        let cmd = match how {
            Power::Kexec => RebootCommand::Kexec,
            Power::Restart => RebootCommand::Restart,
            Power::PowerOff => RebootCommand::PowerOff,
        };
        match rustix::system::reboot(cmd) {
            Ok(()) => io::Error::other("reboot(2) returned"),
            Err(e) => io::Error::new(io::Error::from(e).kind(), format!("reboot(2) {how:?}: {e}")),
        }
    }

    fn link_up(&self, iface: &str) -> io::Result<()> {
        net::link_up(iface)
    }

    fn set_ipv4(&self, iface: &str, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        net::set_ipv4(iface, addr, prefix_len)
    }

    fn default_route(&self, iface: &str, gateway: Ipv4Addr) -> io::Result<()> {
        net::default_route(iface, gateway)
    }
}

/// A [`Sys`] that records calls, for tests.
pub mod fake {
    use super::*;
    use std::sync::Mutex;

    /// Records every call as a line of text.
    #[derive(Debug, Default)]
    pub struct FakeSys {
        /// Calls made, in order.
        pub calls: Mutex<Vec<String>>,
    }

    impl FakeSys {
        fn rec(&self, s: String) {
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }

        /// The calls so far.
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    impl Sys for FakeSys {
        fn mount(
            &self,
            source: &str,
            target: &str,
            fstype: &str,
            data: Option<&str>,
        ) -> io::Result<()> {
            self.rec(format!(
                "mount {source} {target} {fstype} {}",
                data.unwrap_or("-")
            ));
            Ok(())
        }
        fn load_module(&self, path: &Path) -> io::Result<()> {
            self.rec(format!("load_module {}", path.display()));
            Ok(())
        }
        fn kexec_load(&self, kernel: &File, initrd: &File, cmdline: &str) -> io::Result<()> {
            let (k, i) = (kernel.metadata()?.len(), initrd.metadata()?.len());
            self.rec(format!(
                "kexec_load kernel={k} initrd={i} cmdline={cmdline}"
            ));
            Ok(())
        }
        fn power(&self, how: Power) -> io::Error {
            self.rec(format!("power {how:?}"));
            io::Error::other("fake power")
        }
        fn link_up(&self, iface: &str) -> io::Result<()> {
            self.rec(format!("link_up {iface}"));
            Ok(())
        }
        fn set_ipv4(&self, iface: &str, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
            self.rec(format!("set_ipv4 {iface} {addr}/{prefix_len}"));
            Ok(())
        }
        fn default_route(&self, iface: &str, gateway: Ipv4Addr) -> io::Result<()> {
            self.rec(format!("default_route {iface} {gateway}"));
            Ok(())
        }
    }
}
