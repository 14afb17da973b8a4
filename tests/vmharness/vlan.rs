//! The switch side of a VLAN trunk, in user space (the host kernel has no
//! 8021q and no bridge VLAN filtering, see TESTING.md): the guest's NIC is
//! on a tap in a namespace of its own with no addresses (bridge `brt`),
//! and a relay moves frames between a tap on that bridge and a tap on the
//! LAN's `br0`, tagging them for one VLAN on the way to the guest and
//! untagging them on the way back. Untagged or other-VLAN frames from the
//! guest are dropped, like an access port on another VLAN would.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::netns::{delete_namespace, ip_or_fail, Lan};
use super::{Net, VmConfig};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TPID: [u8; 2] = [0x81, 0x00];

/// The trunk namespace and the relay's counters; the namespace (and so
/// the relay's taps and threads) goes when this is dropped.
pub struct Trunk {
    ns: String,
    /// Frames relayed towards the LAN (tagged with the VLAN, untagged).
    pub up: Arc<AtomicU64>,
    /// Frames from the guest dropped (untagged or another VLAN).
    pub dropped: Arc<AtomicU64>,
    /// Frames relayed towards the guest (tagged).
    pub down: Arc<AtomicU64>,
}

/// Opens (creating it if needed) tap `name` in network namespace `ns`,
/// from a thread that enters the namespace first (setns moves only the
/// calling thread; the tap stays in the namespace it was made in).
fn open_tap_in(ns: &str, name: &str) -> File {
    let ns = ns.to_string();
    let name = name.to_string();
    std::thread::spawn(move || {
        let nsf = File::open(format!("/run/netns/{ns}"))
            .unwrap_or_else(|e| panic!("opening namespace {ns}: {e}"));
        // SAFETY: a valid namespace fd; setns changes only this thread's
        // network namespace, and this thread ends right after.
        let rc = unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
        let tun = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("/dev/net/tun");
        // SAFETY: ifreq is plain old data; all-zero is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *d = *s as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI;
        // SAFETY: req is a valid ifreq that lives across the call;
        // TUNSETIFF reads and writes only within it.
        let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut req) };
        assert_eq!(
            rc,
            0,
            "TUNSETIFF {name} in {ns}: {}",
            std::io::Error::last_os_error()
        );
        tun
    })
    .join()
    .expect("opening a tap")
}

/// One direction of the relay; `f` turns a frame into what to send on,
/// or `None` to drop it. Ends when either side fails (namespace gone).
fn pump(
    mut from: File,
    mut to: File,
    count: Arc<AtomicU64>,
    dropped: Option<Arc<AtomicU64>>,
    f: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok(n) = from.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            match f(&buf[..n]) {
                Some(out) => {
                    count.fetch_add(1, Ordering::Relaxed);
                    if to.write(&out).is_err() {
                        return;
                    }
                }
                None => {
                    if let Some(d) = &dropped {
                        d.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    });
}

/// `frame` with an 802.1Q tag for `vid` after the MAC addresses.
pub fn tag(frame: &[u8], vid: u16) -> Option<Vec<u8>> {
    if frame.len() < 14 {
        return None;
    }
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&TPID);
    out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    Some(out)
}

/// `frame` without its 802.1Q tag if it is tagged for `vid`; `None` for
/// untagged frames and other VLANs.
pub fn untag(frame: &[u8], vid: u16) -> Option<Vec<u8>> {
    if frame.len() < 18 || frame[12..14] != TPID {
        return None;
    }
    if u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff != vid {
        return None;
    }
    let mut out = Vec::with_capacity(frame.len() - 4);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&frame[16..]);
    Some(out)
}

impl Trunk {
    /// A trunk carrying VLAN `vid` to `lan`'s bridge.
    pub fn start(lan: &Lan, vid: u16) -> Trunk {
        let ns = format!("{}-trunk", lan.name());
        ip_or_fail(&["netns", "add", &ns]);
        let trunk = Trunk {
            ns: ns.clone(),
            up: Arc::default(),
            dropped: Arc::default(),
            down: Arc::default(),
        };
        ip_or_fail(&[
            "-n",
            &ns,
            "link",
            "add",
            "brt",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip_or_fail(&["-n", &ns, "tuntap", "add", "trunk0", "mode", "tap"]);
        let guest_side = open_tap_in(&ns, "relay0");
        let lan_side = open_tap_in(lan.name(), "vlan10r");
        for dev in ["trunk0", "relay0"] {
            ip_or_fail(&[
                "-n", &ns, "link", "set", dev, "mtu", "1600", "master", "brt", "up",
            ]);
        }
        ip_or_fail(&["-n", &ns, "link", "set", "brt", "mtu", "1600", "up"]);
        ip_or_fail(&[
            "-n",
            lan.name(),
            "link",
            "set",
            "vlan10r",
            "master",
            "br0",
            "up",
        ]);
        pump(
            guest_side.try_clone().unwrap(),
            lan_side.try_clone().unwrap(),
            trunk.up.clone(),
            Some(trunk.dropped.clone()),
            move |f| untag(f, vid),
        );
        pump(lan_side, guest_side, trunk.down.clone(), None, move |f| {
            tag(f, vid)
        });
        trunk
    }

    /// A VM configuration with one `model` NIC (MAC `mac`) on the trunk,
    /// QEMU run in the trunk's namespace.
    pub fn vm_config(&self, model: &'static str, mac: &str) -> VmConfig {
        VmConfig {
            net: Net::Tap {
                ifname: "trunk0".into(),
                model,
                mac: mac.into(),
            },
            netns: Some(self.ns.clone()),
            ..VmConfig::default()
        }
    }
}

impl Drop for Trunk {
    fn drop(&mut self) {
        delete_namespace(&self.ns);
    }
}

#[test]
fn tags_and_untags() {
    let frame: Vec<u8> = (0u8..60).collect();
    let t = tag(&frame, 10).unwrap();
    assert_eq!(&t[12..16], &[0x81, 0, 0, 10]);
    assert_eq!(untag(&t, 10).unwrap(), frame);
    assert_eq!(untag(&t, 11), None);
    assert_eq!(untag(&frame, 10), None);
}
