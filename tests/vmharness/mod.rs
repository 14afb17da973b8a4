//! Drives QEMU (TCG) for the boot tests: reads the serial console line by
//! line with timestamps, waits for markers, types into prompts, and always
//! stops the VM (timeout or drop). Network is QEMU user networking with
//! `restrict=on`: the guest reaches only the test registry through a
//! guestfwd rule to 127.0.0.1.
#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::image::{Entry, Image, Layer};
use crate::common::registry::Registry;

pub mod media;
pub mod netns;
pub mod tpm;
pub mod vlan;

/// Address of the registry as the guest sees it.
pub const GUEST_REGISTRY: &str = "10.0.2.100:5000";

/// The repository root (where `out/` is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A built artifact under `out/`, or a panic that says how to build it.
pub fn artifact(rel: &str) -> PathBuf {
    let p = repo().join("out").join(rel);
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-bootenv (scripts/test does) before the VM tests",
        p.display()
    );
    p
}

/// The test images' kernel (Debian's cloud kernel, another `uname -r`
/// than Wyrcan's own) and its release string.
pub fn test_kernel() -> (PathBuf, String) {
    let boot = artifact("build/testkernel/boot");
    let entry = std::fs::read_dir(&boot)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        .expect("no vmlinuz-* in the test kernel package");
    let name = entry.file_name().to_string_lossy().into_owned();
    (
        entry.path(),
        name.trim_start_matches("vmlinuz-").to_string(),
    )
}

/// How the guest is networked.
#[derive(Clone, Debug)]
pub enum Net {
    /// No NIC at all.
    None,
    /// virtio-net (or e1000) on restricted user networking; `registry` is
    /// the host port forwarded to [`GUEST_REGISTRY`].
    User {
        /// Host port of the registry.
        registry: Option<u16>,
        /// NIC model.
        model: &'static str,
        /// TFTP root and boot file, for PXE.
        tftp: Option<(PathBuf, String)>,
    },
    /// A NIC on a tap device (see [`netns::Lan::tap`]); run the VM in the
    /// tap's namespace ([`VmConfig::netns`]).
    Tap {
        /// The tap's name.
        ifname: String,
        /// NIC model.
        model: &'static str,
        /// The NIC's MAC address.
        mac: String,
    },
}

/// What to boot.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// Direct kernel boot.
    pub kernel: Option<PathBuf>,
    /// Its initrd.
    pub initrd: Option<PathBuf>,
    /// Its cmdline.
    pub append: Option<String>,
    /// Memory in MiB.
    pub mem_mb: u32,
    /// Network.
    pub net: Net,
    /// EFI firmware variables file (a per-test copy of OVMF_VARS): boots
    /// with OVMF when set.
    pub efi_vars: Option<PathBuf>,
    /// ISO as a CD.
    pub cdrom: Option<PathBuf>,
    /// Raw disk image (read-only virtio).
    pub disk: Option<PathBuf>,
    /// Boot from the network (PXE).
    pub netboot: bool,
    /// A TPM 2.0 (TIS) backed by this swtpm socket ([`Swtpm`]).
    pub tpm: Option<PathBuf>,
    /// Run QEMU inside this network namespace (`ip netns exec NS …`).
    pub netns: Option<String>,
    /// More QEMU arguments (`-rtc base=…`, a second NIC, a monitor socket).
    pub extra_args: Vec<String>,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            kernel: None,
            initrd: None,
            append: None,
            mem_mb: 1024,
            net: Net::None,
            efi_vars: None,
            cdrom: None,
            disk: None,
            netboot: false,
            tpm: None,
            netns: None,
            extra_args: Vec::new(),
        }
    }
}

impl Net {
    /// virtio-net on restricted user networking: the guest reaches
    /// `registry` at [`GUEST_REGISTRY`], and nothing else.
    pub fn to_registry(registry: &Registry) -> Net {
        Net::User {
            registry: Some(registry.port()),
            model: "virtio-net-pci",
            tftp: None,
        }
    }

    /// [`Net::to_registry`] plus slirp's TFTP server, serving `dir` with
    /// `bootfile` as the PXE boot file.
    pub fn pxe(registry: &Registry, dir: &Path, bootfile: &str) -> Net {
        Net::User {
            registry: Some(registry.port()),
            model: "virtio-net-pci",
            tftp: Some((dir.to_path_buf(), bootfile.to_string())),
        }
    }
}

/// How an EFI VM gets the ISO.
#[derive(Clone, Copy, Debug)]
pub enum Media {
    /// As a CD (`-cdrom`-like drive).
    Cd,
    /// As a raw read-only virtio disk (a USB stick, say).
    Disk,
}

impl VmConfig {
    /// Wyrcan's own kernel + initrd booted directly, networked to
    /// `registry`, with the cmdline `console=ttyS0 panic=-1
    /// wyrcan.insecure=GUEST_REGISTRY` then `cmdline`.
    pub fn wyrcan(registry: &Registry, cmdline: &str) -> VmConfig {
        VmConfig {
            kernel: Some(artifact("wyrcan.kernel")),
            initrd: Some(artifact("wyrcan.initrd")),
            append: Some(format!(
                "console=ttyS0 panic=-1 wyrcan.insecure={GUEST_REGISTRY} {cmdline}"
            )),
            net: Net::to_registry(registry),
            ..VmConfig::default()
        }
    }

    /// A kernel and initrd booted directly with this cmdline, no network.
    pub fn direct(kernel: &Path, initrd: &Path, append: &str) -> VmConfig {
        VmConfig {
            kernel: Some(kernel.to_path_buf()),
            initrd: Some(initrd.to_path_buf()),
            append: Some(append.to_string()),
            ..VmConfig::default()
        }
    }

    /// `iso` under OVMF with the variable store `vars`, networked to `registry`.
    pub fn efi_iso(registry: &Registry, vars: &Path, iso: &Path, media: Media) -> VmConfig {
        let (cdrom, disk) = match media {
            Media::Cd => (Some(iso.to_path_buf()), None),
            Media::Disk => (None, Some(iso.to_path_buf())),
        };
        VmConfig {
            efi_vars: Some(vars.to_path_buf()),
            cdrom,
            disk,
            net: Net::to_registry(registry),
            ..VmConfig::default()
        }
    }

    /// A network boot (SeaBIOS runs the NIC's iPXE ROM) of `bootfile` from
    /// the TFTP root `tftp`, networked to `registry`.
    pub fn pxe(registry: &Registry, tftp: &Path, bootfile: &str) -> VmConfig {
        VmConfig {
            net: Net::pxe(registry, tftp, bootfile),
            netboot: true,
            ..VmConfig::default()
        }
    }
}

/// A running VM.
pub struct Vm {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<(Duration, String)>,
    log: Arc<Mutex<String>>,
    start: Instant,
    name: String,
}

impl Vm {
    /// Start QEMU.
    pub fn start(name: &str, cfg: &VmConfig) -> Vm {
        let mut cmd = match &cfg.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "qemu-system-x86_64"]);
                c
            }
            None => Command::new("qemu-system-x86_64"),
        };
        cmd.args([
            "-accel", "tcg", "-machine", "q35", "-cpu", "max", "-smp", "1",
        ]);
        cmd.args(["-m", &cfg.mem_mb.to_string()]);
        cmd.args([
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ]);
        if let Some(vars) = &cfg.efi_vars {
            cmd.arg("-drive")
                .arg("if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd");
            cmd.arg("-drive")
                .arg(format!("if=pflash,format=raw,file={}", vars.display()));
        }
        if let Some(k) = &cfg.kernel {
            cmd.arg("-kernel").arg(k);
        }
        if let Some(i) = &cfg.initrd {
            cmd.arg("-initrd").arg(i);
        }
        if let Some(a) = &cfg.append {
            cmd.arg("-append").arg(a);
        }
        if let Some(c) = &cfg.cdrom {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,media=cdrom,readonly=on",
                c.display()
            ));
        }
        if let Some(d) = &cfg.disk {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=virtio,readonly=on",
                d.display()
            ));
        }
        match &cfg.net {
            Net::None => {}
            Net::User {
                registry,
                model,
                tftp,
            } => {
                let mut netdev = String::from("user,id=n,restrict=on");
                if let Some((dir, boot)) = tftp {
                    netdev.push_str(&format!(",tftp={},bootfile={boot}", dir.display()));
                }
                if let Some(port) = registry {
                    netdev.push_str(&format!(
                        ",guestfwd=tcp:{GUEST_REGISTRY}-cmd:busybox nc 127.0.0.1 {port}"
                    ));
                }
                cmd.arg("-netdev").arg(netdev);
                cmd.arg("-device").arg(format!("{model},netdev=n"));
            }
            Net::Tap { ifname, model, mac } => {
                cmd.arg("-netdev")
                    .arg(format!("tap,id=n,ifname={ifname},script=no,downscript=no"));
                cmd.arg("-device")
                    .arg(format!("{model},netdev=n,mac={mac}"));
            }
        }
        if cfg.netboot {
            cmd.args(["-boot", "n"]);
        }
        if let Some(sock) = &cfg.tpm {
            cmd.arg("-chardev")
                .arg(format!("socket,id=chrtpm,path={}", sock.display()));
            cmd.args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm"]);
            cmd.args(["-device", "tpm-tis,tpmdev=tpm0"]);
        }
        cmd.args(&cfg.extra_args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("starting qemu-system-x86_64 (package qemu-system-x86)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        let log = Arc::new(Mutex::new(String::new()));
        let start = Instant::now();
        let log2 = log.clone();
        // Raw bytes go through a channel to a line assembler, so a partial
        // line can be told apart from a prompt: a prompt (no newline) is
        // handed over once nothing more arrived for a moment.
        let (raw_tx, raw_rx) = channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut chunk = [0u8; 4096];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 || raw_tx.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            let mut buf: Vec<u8> = Vec::new();
            let emit = |bytes: &[u8]| {
                let line = String::from_utf8_lossy(bytes).into_owned();
                let t = start.elapsed();
                log2.lock()
                    .unwrap()
                    .push_str(&format!("[{:7.2}] {line}\n", t.as_secs_f64()));
                let _ = tx.send((t, line));
            };
            loop {
                match raw_rx.recv_timeout(Duration::from_millis(300)) {
                    // Lines end in \n or \r (firmware and menus redraw with \r).
                    Ok(data) => {
                        for b in data {
                            if b == b'\n' || b == b'\r' {
                                if !buf.is_empty() {
                                    emit(&buf);
                                    buf.clear();
                                }
                            } else {
                                buf.push(b);
                            }
                        }
                        if buf.len() > 4000 {
                            emit(&buf);
                            buf.clear();
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if !buf.is_empty() {
                            emit(&buf);
                            buf.clear();
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        if !buf.is_empty() {
                            emit(&buf);
                        }
                        break;
                    }
                }
            }
        });
        let log3 = log.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            if !s.is_empty() {
                log3.lock()
                    .unwrap()
                    .push_str(&format!("[qemu stderr] {s}\n"));
            }
        });
        Vm {
            child,
            stdin,
            lines: rx,
            log,
            start,
            name: name.to_string(),
        }
    }

    /// Everything the console printed so far, timestamped.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// What follows `name` (e.g. `BOOTED=`) on the first console line that
    /// has it, trimmed; fails the test when no line has it.
    pub fn printed(&self, name: &str) -> String {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{}: no {name} on the console:\n{log}", self.name));
        line.split_once(name).map_or("", |x| x.1).trim().to_string()
    }

    /// Wait for a line containing `needle`; returns (time since start, line).
    /// Panics with the console log on timeout or VM exit.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> (Duration, String) {
        match self.try_wait_for(needle, timeout) {
            Ok(v) => v,
            Err(why) => panic!(
                "{}: {why} while waiting for {needle:?}\n--- console ---\n{}",
                self.name,
                self.log()
            ),
        }
    }

    /// Like [`wait_for`](Self::wait_for), returning the reason instead of panicking.
    pub fn try_wait_for(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> Result<(Duration, String), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, line)) if line.contains(needle) => return Ok((t, line)),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return Err(format!("timeout after {timeout:?}")),
                Err(RecvTimeoutError::Disconnected) => return Err("the VM stopped".into()),
            }
        }
    }

    /// Type into the serial console.
    pub fn send(&mut self, text: &str) {
        self.stdin.write_all(text.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Wait for QEMU to exit (the guest powered off or rebooted with
    /// -no-reboot); kill it after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        false
    }

    /// Time since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Fails (with the console log) unless QEMU exits — the guest powered
    /// off, or rebooted under `-no-reboot` — within `timeout`.
    pub fn assert_exits(&mut self, timeout: Duration, what: &str) {
        if !self.wait_exit(timeout) {
            panic!(
                "{}: {what} (QEMU still running after {timeout:?})\n--- console ---\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// Fails if the console shows a kernel panic.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("Kernel panic"), "{}: {log}", self.name);
    }

    /// The lines the test container of [`bootable`]`(mark)` prints: its
    /// marker (within [`BOOT`]), then `CMDLINE=`, `UNAME=` and
    /// `CONTAINER-DONE` (30 s each).
    pub fn container(&mut self, mark: &str) -> Container {
        let (at, _) = self.wait_for(&format!("CONTAINER-MARKER {mark}"), BOOT);
        let (_, cmdline) = self.wait_for("CMDLINE=", Duration::from_secs(30));
        let (_, uname) = self.wait_for("UNAME=", Duration::from_secs(30));
        self.wait_for("CONTAINER-DONE", Duration::from_secs(30));
        eprintln!(
            "{mark}: container reached {:.1} s after QEMU start",
            at.as_secs_f64()
        );
        Container { at, cmdline, uname }
    }

    /// [`Vm::container`], and fails unless the container runs on the
    /// image's own kernel (the test kernel), not Wyrcan's.
    pub fn container_on_its_kernel(&mut self, mark: &str) -> Container {
        let container = self.container(mark);
        container.assert_image_kernel();
        container
    }

    /// Wyrcan's `boot failed` line (within [`BOOT`]).
    pub fn boot_failed(&mut self) -> String {
        self.wait_for("boot failed", BOOT).1
    }

    /// A prompt of the boot environment: waits for it (within [`BOOT`]),
    /// checks that it asks `question`, and types `answer`.
    pub fn answer(&mut self, question: &str, answer: &str) {
        let (_, line) = self.wait_for("Type yes and press Enter", BOOT);
        assert!(line.contains(question), "unexpected prompt: {line}");
        self.send(answer);
    }

    /// The boot environment with no image to boot: its help (within
    /// [`BOOT`]), the example line and the Enter prompt (`step` each);
    /// presses Enter and fails unless the machine reboots within `exit`.
    pub fn help_then_reboot(&mut self, step: Duration, exit: Duration) {
        self.wait_for("No image to boot", BOOT);
        self.wait_for("wyrcan.img=quay.io/example/os:latest", step);
        self.wait_for("Press Enter to reboot", step);
        self.send("\r");
        self.assert_exits(exit, "no reboot after Enter");
    }

    /// The console timestamp (`[  12.34]`) of the first line holding
    /// `needle`, or an empty string.
    pub fn time_of(&self, needle: &str) -> String {
        self.log()
            .lines()
            .find(|l| l.contains(needle))
            .map(|l| l[..l.find(']').unwrap_or(0) + 1].to_string())
            .unwrap_or_default()
    }
}

/// What the test container of [`bootable`] printed.
#[derive(Clone, Debug)]
pub struct Container {
    /// When its marker appeared, after QEMU started.
    pub at: Duration,
    /// Its `CMDLINE=` line: the cmdline its kernel got.
    pub cmdline: String,
    /// Its `UNAME=` line: the running kernel's release.
    pub uname: String,
}

impl Container {
    /// Fails unless the running kernel is the image's (the test kernel),
    /// not Wyrcan's own.
    pub fn assert_image_kernel(&self) {
        let (_, release) = test_kernel();
        assert!(
            self.uname.ends_with(&release),
            "running kernel is not the image's: {}",
            self.uname
        );
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("WYRCAN_VM_LOG").is_some() {
            eprintln!("--- {} console ---\n{}", self.name, self.log());
        }
    }
}

/// How long a boot through Wyrcan may take under TCG.
pub const BOOT: Duration = Duration::from_secs(240);

/// A tiny bootable image: static busybox, the cloud kernel, and an /init
/// that prints what the test checks, then powers off.
pub fn bootable(mark: &str) -> Image {
    let (kernel, release) = test_kernel();
    let init = format!(
        "#!/bin/sh\n\
         export PATH=/bin\n\
         busybox mkdir -p /proc /sys /dev\n\
         busybox mount -t proc proc /proc\n\
         echo \"CONTAINER-MARKER {mark}\"\n\
         echo \"CMDLINE=$(busybox cat /proc/cmdline)\"\n\
         echo \"UNAME=$(busybox uname -r)\"\n\
         [ -e /data/last ] && echo \"LAST=$(busybox cat /data/last) SIZE=$(busybox stat -c %s /data/noise)\"\n\
         echo \"CONTAINER-DONE\"\n\
         busybox poweroff -f\n"
    );
    Image::oci(vec![
        Layer::new(vec![
            Entry::dir("bin"),
            Entry::file(
                "bin/busybox",
                std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)"),
            )
            .mode(0o755),
            Entry::symlink("bin/sh", "busybox"),
        ]),
        Layer::new(vec![
            Entry::dir("boot"),
            Entry::file(
                &format!("boot/vmlinuz-{release}"),
                std::fs::read(kernel).unwrap(),
            )
            .mode(0o644),
            Entry::symlink("boot/wyrcan.kernel", &format!("vmlinuz-{release}")),
            Entry::file("boot/wyrcan.cmdline", "console=ttyS0 panic=-1\n"),
            Entry::file("init", init).mode(0o755),
        ]),
    ])
}

/// [`bootable`] whose `/init` also prints `/etc/wyrcan/booted.json` on one
/// line (`BOOTED=`) and what else is in `/etc/wyrcan` (`SITE=`): read
/// them with [`Vm::printed`].
pub fn bootable_showing_booted(mark: &str) -> Image {
    let mut image = bootable(mark);
    let init = format!(
        "#!/bin/sh\n\
         export PATH=/bin\n\
         busybox mkdir -p /proc\n\
         busybox mount -t proc proc /proc\n\
         echo \"CONTAINER-MARKER {mark}\"\n\
         echo \"CMDLINE=$(busybox cat /proc/cmdline)\"\n\
         echo \"UNAME=$(busybox uname -r)\"\n\
         echo \"BOOTED=$(busybox tr -d '\\n' < /etc/wyrcan/booted.json)\"\n\
         echo \"SITE=$(busybox ls /etc/wyrcan)\"\n\
         echo \"DATE=$(busybox date -u +%Y-%m-%d)\"\n\
         busybox mkdir -p /sys\n\
         busybox mount -t sysfs sys /sys\n\
         for p in /sys/class/tpm/tpm0/pcr-sha256/*; do [ -e \"$p\" ] && echo \"PCR${{p##*/}}=$(busybox cat $p)\"; done\n\
         echo \"CONTAINER-DONE\"\n\
         busybox poweroff -f\n"
    );
    image
        .layers
        .push(Layer::new(vec![Entry::file("init", init).mode(0o755)]));
    image
}

/// Boots Wyrcan's kernel + initrd directly, networked to `registry` (see
/// [`VmConfig::wyrcan`]).
pub fn wyrcan_vm(name: &str, registry: &Registry, cmdline: &str) -> Vm {
    Vm::start(name, &VmConfig::wyrcan(registry, cmdline))
}

/// Boots `iso` under OVMF (see [`VmConfig::efi_iso`]).
pub fn iso_vm(name: &str, registry: &Registry, vars: &Path, iso: &Path, media: Media) -> Vm {
    Vm::start(name, &VmConfig::efi_iso(registry, vars, iso, media))
}

/// Through Wyrcan (its first line within [`BOOT`]) to the test container:
/// what [`Vm::container`] returns.
pub fn boot_container(vm: &mut Vm, mark: &str) -> Container {
    vm.wait_for("Wyrcan", BOOT);
    vm.container(mark)
}

/// The release of Wyrcan's own kernel (`out/wyrcan.kernel.release`).
pub fn wyrcan_release() -> String {
    std::fs::read_to_string(artifact("wyrcan.kernel.release"))
        .expect("reading out/wyrcan.kernel.release")
        .trim()
        .to_string()
}

/// `wyrcan morph REGISTRY/REPO` on the host into `dir` (files `k`, `i`,
/// `c`) with `extra` flags: the kernel, the initrd and the image's
/// cmdline, for a direct boot ([`VmConfig::direct`]).
pub fn host_morph(
    registry: &Registry,
    repo: &str,
    dir: &Path,
    extra: &[&str],
) -> (PathBuf, PathBuf, String) {
    let (k, i, c) = (dir.join("k"), dir.join("i"), dir.join("c"));
    let image = format!("{}/{repo}", registry.addr());
    let mut args = vec![
        "morph",
        &image,
        "--kernel",
        k.to_str().unwrap(),
        "--initrd",
        i.to_str().unwrap(),
        "--cmdline",
        c.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let insecure = registry.addr();
    args.extend(["--insecure", &insecure]);
    let out = crate::common::wyrcan(&args);
    crate::common::assert_success(&out, &format!("morph {}", extra.join(" ")));
    let cmdline = std::fs::read_to_string(&c).unwrap().trim().to_string();
    (k, i, cmdline)
}
