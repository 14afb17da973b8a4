//! A [`Sys`] for tests: a scripted machine (files of `/proc`, `/sys`,
//! efivarfs; errors to return; a DHCP server behind every interface) that
//! records every call as a line of text instead of making it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::io::Errno;
use wyrcan_core::dhcp::{self, Message, MessageType};

use super::{Datagram, Error, LoopDevice, Power, Result, Sys};

/// Datagrams sent, with where to.
pub type Sent = Arc<Mutex<Vec<(std::net::SocketAddr, Vec<u8>)>>>;

/// The scripted machine; every field can be set before a test runs.
#[derive(Debug, Default)]
pub struct FakeSys {
    calls: Arc<Mutex<Vec<String>>>,
    files: Mutex<BTreeMap<PathBuf, Vec<u8>>>,
    /// Mount targets that fail, with their errno.
    pub mount_errors: BTreeMap<String, Errno>,
    /// The errno `kexec_load` fails with, if any.
    pub kexec_error: Option<Errno>,
    /// Whether interfaces answer DHCP (with 10.0.2.15/24).
    pub dhcp_server: bool,
    /// A TPM at `/dev/tpmrm0` (add the file too): its SHA-256 PCR bank.
    pub tpm: Mutex<BTreeMap<u32, [u8; 32]>>,
    /// The realtime clock (seconds, nanoseconds); `set_clock` changes it.
    pub clock: Mutex<(i64, u32)>,
    /// An SNTP server behind every address: its time in Unix seconds.
    pub ntp_time: Option<i64>,
    /// Datagrams sent through `udp_sender`s.
    pub udp_sent: Sent,
    /// Files whose writes fail, with their errno (sysfs refusing a value).
    pub write_errors: BTreeMap<PathBuf, Errno>,
    /// The IPv6 router and DHCPv6 server behind every interface.
    pub net6: super::fake6::Net6,
    /// Module files whose load fails, with their errno.
    pub module_errors: BTreeMap<PathBuf, Errno>,
    /// The errno `loop_attach` fails with, if any.
    pub loop_error: Option<Errno>,
    /// Symlinks: path → target.
    pub symlinks: BTreeMap<PathBuf, PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeSys {
    /// A machine with `/proc/cmdline` = `cmdline` and plenty of memory.
    pub fn with_cmdline(cmdline: &[u8]) -> Self {
        let sys = FakeSys::default();
        sys.put("/proc/cmdline", cmdline);
        sys.put(
            "/proc/meminfo",
            b"MemTotal: 4194304 kB\nMemAvailable: 4000000 kB\n",
        );
        sys
    }

    /// What the kernel does on a write to `/sys/class/net`: a bond appears
    /// on `bonding_masters` `+NAME`; each write is also recorded with its
    /// value as `sysfs PATH VALUE`.
    fn sysfs_net_write(&self, path: &Path, data: &[u8]) {
        let net = Path::new("/sys/class/net");
        let Ok(rel) = path.strip_prefix(net) else {
            return;
        };
        let value = String::from_utf8_lossy(data).trim().to_string();
        self.rec(format!("sysfs {} {value}", rel.display()));
        if rel == Path::new("bonding_masters") {
            if let Some(name) = value.strip_prefix('+') {
                self.add_link(name, "00:00:00:00:00:00");
            }
        }
    }

    /// Move a link's sysfs files to a new name.
    fn move_link(&self, from: &str, to: &str) {
        let net = Path::new("/sys/class/net");
        let mut files = lock(&self.files);
        let moved: Vec<PathBuf> = files
            .keys()
            .filter(|k| k.starts_with(net.join(from)))
            .cloned()
            .collect();
        for k in moved {
            let v = files.remove(&k).unwrap_or_default();
            let rest = k.strip_prefix(net.join(from)).unwrap_or(&k).to_path_buf();
            files.insert(net.join(to).join(rest), v);
        }
    }

    /// Add (or replace) a file.
    pub fn put(&self, path: impl AsRef<Path>, data: &[u8]) {
        lock(&self.files).insert(path.as_ref().to_path_buf(), data.to_vec());
    }

    /// A file's bytes, if it exists.
    pub fn get(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        lock(&self.files).get(path.as_ref()).cloned()
    }

    /// An Ethernet link in `/sys/class/net`, with carrier.
    pub fn add_link(&self, name: &str, mac: &str) {
        let dir = Path::new("/sys/class/net").join(name);
        self.put(dir.join("type"), b"1\n");
        self.put(dir.join("address"), format!("{mac}\n").as_bytes());
        self.put(dir.join("carrier"), b"1\n");
    }

    fn rec(&self, s: String) {
        lock(&self.calls).push(s);
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
}

impl Sys for FakeSys {
    fn mount(&self, source: &str, target: &str, fstype: &str, data: Option<&str>) -> Result<()> {
        self.rec(format!(
            "mount {source} {target} {fstype} {}",
            data.unwrap_or("-")
        ));
        match self.mount_errors.get(target) {
            Some(e) => Err(Error::errno(format!("mounting {fstype} on {target}"), *e)),
            None => Ok(()),
        }
    }

    fn load_module(&self, path: &Path) -> Result<()> {
        self.rec(format!("load_module {}", path.display()));
        match self.module_errors.get(path) {
            Some(e) => Err(Error::errno(
                format!("loading module {}", path.display()),
                *e,
            )),
            None => Ok(()),
        }
    }

    fn kexec_load(&self, kernel: &File, initrd: &File, cmdline: &str) -> Result<()> {
        let len = |f: &File| f.metadata().map_or(0, |m| m.len());
        self.rec(format!(
            "kexec_load kernel={} initrd={} cmdline={cmdline}",
            len(kernel),
            len(initrd)
        ));
        match self.kexec_error {
            Some(e) => Err(Error::errno("kexec_file_load", e)),
            None => Ok(()),
        }
    }

    fn power(&self, how: Power) -> Error {
        self.rec(format!("power {how:?}"));
        Error::io("fake reboot", io::Error::other("not in a test"))
    }

    fn memfd(&self, name: &str) -> Result<File> {
        self.rec(format!("memfd {name}"));
        tempfile::tempfile().map_err(|e| Error::io("memfd", e))
    }

    fn kernel_release(&self) -> String {
        "6.1.0-test".into()
    }

    fn random_u32(&self) -> u32 {
        0x1234_5678
    }

    fn link_up(&self, iface: &str) -> Result<()> {
        self.rec(format!("link_up {iface}"));
        Ok(())
    }

    fn set_ipv4(&self, iface: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
        self.rec(format!("set_ipv4 {iface} {addr}/{prefix_len}"));
        Ok(())
    }

    fn default_route(&self, iface: &str, gateway: Ipv4Addr) -> Result<()> {
        self.rec(format!("default_route {iface} {gateway}"));
        Ok(())
    }

    fn dhcp_socket(&self, iface: &str) -> Result<Box<dyn Datagram>> {
        self.rec(format!("dhcp_socket {iface}"));
        Ok(Box::new(FakeDhcp {
            answers: self.dhcp_server,
            pending: Mutex::new(VecDeque::new()),
            calls: self.calls.clone(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.get(path).ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let files = lock(&self.files);
        let names: BTreeSet<String> = files
            .keys()
            .filter_map(|k| k.strip_prefix(path).ok())
            .filter_map(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(names.into_iter().collect())
    }

    fn exists(&self, path: &Path) -> bool {
        lock(&self.files).keys().any(|k| k.starts_with(path))
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.rec(format!("write {}", path.display()));
        if let Some(e) = self.write_errors.get(path) {
            return Err(io::Error::from_raw_os_error(e.raw_os_error()));
        }
        self.put(path, data);
        self.sysfs_net_write(path, data);
        Ok(())
    }

    fn efivar_write(&self, dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
        self.rec(format!("efivar_write {name}"));
        self.put(dir.join(name), data);
        Ok(())
    }

    fn add_route(
        &self,
        iface: &str,
        dest: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        self.rec(format!("add_route {iface} {dest}/{prefix_len}{via}"));
        Ok(())
    }

    fn set_mtu(&self, iface: &str, mtu: u16) -> Result<()> {
        self.rec(format!("set_mtu {iface} {mtu}"));
        Ok(())
    }

    fn now(&self) -> (i64, u32) {
        *lock(&self.clock)
    }

    fn set_clock(&self, secs: i64, nanos: u32) -> Result<()> {
        self.rec(format!("set_clock {secs}"));
        *lock(&self.clock) = (secs, nanos);
        Ok(())
    }

    fn set_rtc(&self, secs: i64) -> io::Result<()> {
        self.rec(format!("set_rtc {secs}"));
        Ok(())
    }

    fn udp_exchange(
        &self,
        to: std::net::SocketAddr,
        data: &[u8],
        _timeout: Duration,
    ) -> io::Result<Option<Vec<u8>>> {
        self.rec(format!("udp {to}"));
        let Some(server) = self
            .ntp_time
            .filter(|_| to.port() == 123 && data.len() == 48)
        else {
            return Ok(None);
        };
        // A stratum-2 server answering at once: mode 4, the request's
        // transmit timestamp as originate, its own time as receive/transmit.
        let mut r = vec![0u8; 48];
        r[0] = (4 << 3) | 4;
        r[1] = 2;
        r[24..32].copy_from_slice(&data[40..48]);
        let ntp = ((server + 2_208_988_800) as u64) << 32;
        r[32..40].copy_from_slice(&ntp.to_be_bytes());
        r[40..48].copy_from_slice(&ntp.to_be_bytes());
        Ok(Some(r))
    }

    fn udp_sender(&self, to: std::net::SocketAddr) -> io::Result<Box<dyn super::UdpOut>> {
        self.rec(format!("udp_sender {to}"));
        Ok(Box::new(FakeUdp {
            to,
            sent: self.udp_sent.clone(),
        }))
    }

    fn tpm_transact(&self, dev: &Path, command: &[u8]) -> io::Result<Vec<u8>> {
        self.rec(format!("tpm {} {}", dev.display(), command.len()));
        fake_tpm(&mut lock(&self.tpm), command)
    }

    fn link_down(&self, iface: &str) -> Result<()> {
        self.rec(format!("link_down {iface}"));
        Ok(())
    }

    fn rename_link(&self, from: &str, to: &str) -> Result<()> {
        self.rec(format!("rename_link {from} {to}"));
        self.move_link(from, to);
        Ok(())
    }

    fn set_mac(&self, iface: &str, mac: [u8; 6]) -> Result<()> {
        let m: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
        self.rec(format!("set_mac {iface} {}", m.join(":")));
        Ok(())
    }

    fn add_vlan(&self, parent: &str, id: u16, name: &str) -> Result<()> {
        self.rec(format!("add_vlan {parent} {id} {name}"));
        let mac = self
            .get(Path::new("/sys/class/net").join(parent).join("address"))
            .unwrap_or_default();
        self.add_link(name, String::from_utf8_lossy(&mac).trim());
        Ok(())
    }

    fn load_module_params(&self, path: &Path, params: &str) -> Result<()> {
        self.rec(format!("load_module {} {params}", path.display()));
        Ok(())
    }

    fn efivar_remove(&self, dir: &Path, name: &str) -> io::Result<()> {
        self.rec(format!("efivar_remove {name}"));
        lock(&self.files).remove(&dir.join(name));
        Ok(())
    }

    fn set_ipv6(&self, iface: &str, addr: std::net::Ipv6Addr, prefix_len: u8) -> Result<()> {
        self.rec(format!("set_ipv6 {iface} {addr}/{prefix_len}"));
        Ok(())
    }

    fn add_route6(
        &self,
        iface: &str,
        dest: std::net::Ipv6Addr,
        prefix_len: u8,
        gateway: Option<std::net::Ipv6Addr>,
    ) -> Result<()> {
        let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        self.rec(format!("add_route6 {iface} {dest}/{prefix_len}{via}"));
        Ok(())
    }

    fn icmp6_socket(&self, iface: &str) -> Result<Box<dyn super::Datagram6>> {
        self.rec(format!("icmp6_socket {iface}"));
        let s = super::fake6::Socket::new("icmp6", &self.net6, self.calls.clone());
        Ok(Box::new(s))
    }

    fn dhcp6_socket(&self, iface: &str) -> Result<Box<dyn super::Datagram6>> {
        self.rec(format!("dhcp6_socket {iface}"));
        let s = super::fake6::Socket::new("dhcp6", &self.net6, self.calls.clone());
        Ok(Box::new(s))
    }

    fn mount_readonly(
        &self,
        source: &str,
        target: &str,
        fstype: &str,
        data: Option<&str>,
    ) -> Result<()> {
        self.rec(format!(
            "mount_ro {source} {target} {fstype} {}",
            data.unwrap_or("-")
        ));
        match self.mount_errors.get(target) {
            Some(e) => Err(Error::errno(format!("mounting {fstype} on {target}"), *e)),
            None => Ok(()),
        }
    }

    fn mkdir(&self, path: &Path) -> Result<()> {
        self.rec(format!("mkdir {}", path.display()));
        Ok(())
    }

    fn loop_attach(&self, file: &Path) -> Result<LoopDevice> {
        self.rec(format!("loop_attach {}", file.display()));
        match self.loop_error {
            Some(e) => Err(Error::errno(
                format!("attaching {} to a loop device", file.display()),
                e,
            )),
            None => Ok(LoopDevice::new("/dev/loop0".into(), None)),
        }
    }

    fn move_mount(&self, from: &Path, to: &Path) -> Result<()> {
        self.rec(format!("move_mount {} {}", from.display(), to.display()));
        Ok(())
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.symlinks
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    fn remove_tree_same_dev(&self, path: &Path) -> Result<()> {
        self.rec(format!("remove {}", path.display()));
        lock(&self.files).retain(|k, _| !k.starts_with(path));
        Ok(())
    }

    fn stdio_to_console(&self) -> Result<()> {
        self.rec("stdio_to_console".into());
        Ok(())
    }

    fn switch_root(&self, new_root: &Path, init: &Path, args: &[OsString]) -> Error {
        let mut line = format!("switch_root {} {}", new_root.display(), init.display());
        for a in args {
            line.push(' ');
            line.push_str(&a.to_string_lossy());
        }
        self.rec(line);
        Error::io("fake switch_root", io::Error::other("not in a test"))
    }
}

/// A socket with a DHCP server on the other side: DISCOVER → OFFER,
/// REQUEST → ACK of 10.0.2.15/24 from 10.0.2.2 (no router, no DNS, as QEMU's
/// `restrict=on` network answers).
struct FakeDhcp {
    answers: bool,
    pending: Mutex<VecDeque<Vec<u8>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Datagram for FakeDhcp {
    fn send_to(&self, buf: &[u8], to: SocketAddrV4) -> io::Result<usize> {
        let msg = Message::decode(buf).map_err(io::Error::other)?;
        lock(&self.calls).push(format!(
            "dhcp {:?} xid={:#x} to {to}",
            msg.options.message_type, msg.xid
        ));
        let reply = match msg.options.message_type {
            Some(MessageType::Discover) => MessageType::Offer,
            Some(MessageType::Request) => MessageType::Ack,
            _ => return Ok(buf.len()),
        };
        if self.answers {
            let mut m = Message {
                op: dhcp::BOOTREPLY,
                xid: msg.xid,
                chaddr: msg.chaddr,
                yiaddr: Ipv4Addr::new(10, 0, 2, 15),
                ..Message::default()
            };
            m.options.message_type = Some(reply);
            m.options.server_id = Some(Ipv4Addr::new(10, 0, 2, 2));
            m.options.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
            m.options.lease_time = Some(86400);
            lock(&self.pending).push_back(m.encode());
        }
        Ok(buf.len())
    }

    fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        match lock(&self.pending).pop_front() {
            Some(p) => {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                Ok(Some(n))
            }
            None => {
                std::thread::sleep(timeout.min(Duration::from_millis(20)));
                Ok(None)
            }
        }
    }
}

/// Just enough of a TPM 2.0 for PCR_Read and PCR_Extend of one SHA-256 PCR,
/// decoded by offsets (TCG TPM 2.0 Part 3) independently of the encoder.
fn fake_tpm(bank: &mut BTreeMap<u32, [u8; 32]>, c: &[u8]) -> io::Result<Vec<u8>> {
    use sha2::{Digest as _, Sha256};
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let bad = || io::Error::from(io::ErrorKind::InvalidInput);
    if c.len() < 10 || be32(&c[2..]) as usize != c.len() {
        return Err(bad());
    }
    match be32(&c[6..]) {
        // PCR_Read: one selection of SHA-256, 3 bitmap bytes.
        0x17E if c.len() == 20 => {
            let bitmap = &c[17..20];
            let pcr = (0..24u32)
                .find(|i| bitmap[*i as usize / 8] & (1 << (i % 8)) != 0)
                .ok_or_else(bad)?;
            let value = bank.get(&pcr).copied().unwrap_or([0; 32]);
            let mut r = vec![0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
            r.extend_from_slice(&1u32.to_be_bytes()); // update counter
            r.extend_from_slice(&c[10..20]); // the selection, echoed
            r.extend_from_slice(&1u32.to_be_bytes());
            r.extend_from_slice(&32u16.to_be_bytes());
            r.extend_from_slice(&value);
            let n = r.len() as u32;
            r[2..6].copy_from_slice(&n.to_be_bytes());
            Ok(r)
        }
        // PCR_Extend with a 9-byte password session and one SHA-256 digest.
        0x182 if c.len() == 65 => {
            let pcr = be32(&c[10..]);
            let prev = bank.get(&pcr).copied().unwrap_or([0; 32]);
            let mut h = Sha256::new();
            h.update(prev);
            h.update(&c[33..65]);
            bank.insert(pcr, h.finalize().into());
            // Success with a session: parameterSize, then the session's 5 bytes.
            let mut r = vec![0x80, 0x02, 0, 0, 0, 19, 0, 0, 0, 0];
            r.extend_from_slice(&0u32.to_be_bytes());
            r.extend_from_slice(&[0, 0, 1, 0, 0]);
            Ok(r)
        }
        _ => Err(bad()),
    }
}

/// A recorded UDP sender.
struct FakeUdp {
    to: std::net::SocketAddr,
    sent: Sent,
}

impl super::UdpOut for FakeUdp {
    fn send(&self, data: &[u8]) -> io::Result<()> {
        lock(&self.sent).push((self.to, data.to_vec()));
        Ok(())
    }
}
