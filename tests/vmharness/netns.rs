//! A real LAN for VM tests, inside a network namespace the test creates
//! (`wyt-<test pid>-<n>`): a bridge `br0` with 10.77.0.1/24 and fd77::1/64,
//! taps on it for the VMs, `dnsmasq` as the DHCP (v4, v6, RA), DNS and
//! optionally TFTP server on `br0`, and a `docker-registry` on
//! 10.77.0.1:5000. Nothing binds or sends outside the namespace: the
//! namespace has no link to the host but its own `lo`. The test process
//! never enters it: every command runs through `ip -n NS …` or
//! `ip netns exec NS …`.
//!
//! Dropping the [`Lan`] stops dnsmasq and the registry (by PID, their
//! process groups), kills whatever else still runs in the namespace (a VM)
//! and deletes the namespace. A janitor shell outside the namespace does
//! the same if the test process dies without dropping it, and every
//! [`Lan::start`] first removes namespaces `wyt-<pid>-*` whose test
//! process is gone.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Net, VmConfig};
use crate::common::image::{write_oci_layout, Image};

/// The host's address on the bridge (DHCP, DNS, TFTP server and router).
pub const HOST4: &str = "10.77.0.1";
/// The host's IPv6 address on the bridge.
pub const HOST6: &str = "fd77::1";
/// The registry on the bridge.
pub const REGISTRY: &str = "10.77.0.1:5000";
/// The name dnsmasq resolves to the host's addresses.
pub const REGISTRY_NAME: &str = "registry.test";

const PREFIX: &str = "wyt-";

/// Proxy variables never passed to the helpers (skopeo, wget): all
/// traffic stays on the bridge.
const SCRUBBED_ENV: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REGISTRY_AUTH_FILE",
    "DOCKER_CONFIG",
];

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// dnsmasq's command line (after `dnsmasq`) for the LAN, before the
/// test's own options: DHCPv4 and DHCPv6 ranges, router advertisements,
/// DNS for `registry.test` only (no upstream servers, no `/etc/hosts`).
pub fn dnsmasq_args() -> Vec<String> {
    [
        "--no-daemon",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--interface=br0",
        "--bind-interfaces",
        "--dhcp-range=10.77.0.50,10.77.0.99,1h",
        "--dhcp-range=fd77::50,fd77::99,64,1h",
        "--enable-ra",
        "--local=/test/",
        "--address=/registry.test/10.77.0.1",
        "--address=/registry.test/fd77::1",
        "--log-dhcp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A network namespace with a bridge, dnsmasq and a registry.
pub struct Lan {
    ns: String,
    dir: TempDir,
    janitor: Option<Child>,
    dnsmasq: Option<Child>,
    registry: Option<Child>,
    taps: AtomicUsize,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running ip (package iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The PIDs of the processes in namespace `ns`.
fn pids_in(ns: &str) -> Vec<String> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn kill(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", target])
        .stderr(Stdio::null())
        .status();
}

/// Kills (by PID) every process in `ns`, waits for them to go (at most
/// 10 s), then deletes the namespace.
fn remove_namespace(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids_in(ns);
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in &pids {
            kill("-KILL", pid);
        }
        sleep(Duration::from_millis(50));
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Deletes the namespaces `wyt-<pid>-*` of test processes that are gone
/// (killed before their `Lan` was dropped and before their janitor ran).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("lan: removing stale namespace {name}");
            remove_namespace(name);
        }
    }
}

/// Stops a child started in its own process group: TERM to the group,
/// then KILL after `grace`.
fn stop_group(child: &mut Child, grace: Duration) {
    kill("-TERM", &format!("-{}", child.id()));
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        sleep(Duration::from_millis(20));
    }
    kill("-KILL", &format!("-{}", child.id()));
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` to completion within `timeout` (killed after it); returns
/// whether it succeeded, with its stdout+stderr.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> (bool, String) {
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let out = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let ok = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    use std::io::{Read, Seek};
    let mut out = out;
    let _ = out.rewind();
    let _ = out.read_to_string(&mut text);
    (ok, text)
}

impl Lan {
    /// Creates the namespace, the bridge, dnsmasq ([`dnsmasq_args`] then
    /// `extra`, e.g. TFTP and boot options) and the registry on [`REGISTRY`].
    pub fn start(extra: &[String]) -> Lan {
        let mut args = dnsmasq_args();
        args.extend(extra.iter().cloned());
        Lan::create(args, REGISTRY)
    }

    /// Like [`Lan::start`], but dnsmasq runs with exactly `dnsmasq` (e.g.
    /// [`dnsmasq_args_v6_only`]) and the registry listens on port 5000 of
    /// every address in the namespace: 10.77.0.1 (for [`Lan::push`]) and
    /// fd77::1 ([`REGISTRY6`]). A guest without IPv4 reaches it over IPv6 only.
    pub fn start_with(dnsmasq: Vec<String>) -> Lan {
        Lan::create(dnsmasq, ":5000")
    }

    /// The namespace, the bridge, dnsmasq with `dnsmasq` and the registry
    /// listening on `registry_addr` (which must cover [`REGISTRY`]).
    fn create(dnsmasq: Vec<String>, registry_addr: &str) -> Lan {
        remove_stale();
        let ns = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::Builder::new()
            .prefix("wyrcan-lan-")
            .tempdir()
            .unwrap();
        ip(&["netns", "add", &ns]);
        let mut lan = Lan {
            ns,
            dir,
            janitor: None,
            dnsmasq: None,
            registry: None,
            taps: AtomicUsize::new(0),
        };
        lan.janitor = Some(lan.start_janitor());
        let ns = lan.ns.clone();
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip(&["-n", &ns, "addr", "add", "10.77.0.1/24", "dev", "br0"]);
        // nodad: dnsmasq binds fd77::1 at once, before DAD would finish.
        ip(&[
            "-n",
            &ns,
            "-6",
            "addr",
            "add",
            "fd77::1/64",
            "dev",
            "br0",
            "nodad",
        ]);
        ip(&["-n", &ns, "link", "set", "br0", "up"]);
        lan.dnsmasq = Some(lan.start_dnsmasq(dnsmasq));
        lan.registry = Some(lan.start_registry(registry_addr));
        lan
    }

    /// Outside the namespace: waits for the test process to end (at most
    /// 2 hours), then removes everything in the namespace and the
    /// namespace itself, and the scratch directory.
    fn start_janitor(&self) -> Child {
        use std::os::unix::process::CommandExt as _;
        let script = r#"
            i=0
            while [ $i -lt 14400 ] && kill -0 "$1" 2>/dev/null; do
                sleep 0.5; i=$((i+1))
            done
            for p in $(ip netns pids "$2" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
            sleep 1
            ip netns del "$2" 2>/dev/null
            rm -rf "$3"
        "#;
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(&self.ns)
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting the janitor shell")
    }

    /// `ip netns exec NS PROGRAM` in its own process group, output to
    /// `log` in the scratch directory.
    fn spawn_in(&self, program: &str, args: &[String], log: &str) -> Child {
        use std::os::unix::process::CommandExt as _;
        let log = fs::File::create(self.dir.path().join(log)).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env_remove("REGISTRY_HTTP_ADDR")
            .process_group(0);
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("starting {program} in {}: {e}", self.ns))
    }

    fn start_dnsmasq(&self, dnsmasq: Vec<String>) -> Child {
        let mut args = dnsmasq;
        args.push(format!(
            "--dhcp-leasefile={}",
            self.dir.path().join("dnsmasq.leases").display()
        ));
        // Log to stderr (the log file) only, not to the host's syslog.
        args.push("--log-facility=-".into());
        eprintln!("lan {}: dnsmasq {}", self.ns, args.join(" "));
        // With DHCP, its sockets are bound when it says so; a DNS-only
        // dnsmasq says only that it started (its sockets follow at once).
        let dhcp = args.iter().any(|a| a.starts_with("--dhcp-range="));
        let mut child = self.spawn_in("dnsmasq", &args, "dnsmasq.log");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("dnsmasq exited ({status}):\n{}", self.dnsmasq_log());
            }
            let log = self.dnsmasq_log();
            if log.contains("DHCP, sockets bound exclusively") {
                break;
            }
            if !dhcp && log.contains("started, version") {
                sleep(Duration::from_millis(300));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not start within 20 s:\n{}",
                self.dnsmasq_log()
            );
            sleep(Duration::from_millis(50));
        }
        child
    }

    fn start_registry(&self, addr: &str) -> Child {
        let data = self.dir.path().join("registry");
        fs::create_dir(&data).unwrap();
        let config = self.dir.path().join("registry.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  formatter: text\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: false\n  \
                 cache:\n    blobdescriptor: inmemory\n\
                 http:\n  addr: \"{addr}\"\n  secret: wyrcan-test-secret\n",
                data.display()
            ),
        )
        .unwrap();
        let mut child = self.spawn_in(
            "docker-registry",
            &["serve".into(), config.display().to_string()],
            "registry.log",
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "docker-registry exited ({status}):\n{}",
                    self.registry_log()
                );
            }
            // No `-T`: Debian bookworm's static busybox wget segfaults
            // with it; run_bounded is the timeout.
            let (ok, _) = run_bounded(
                Command::new("ip").args([
                    "netns",
                    "exec",
                    &self.ns,
                    "busybox",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    &format!("http://{REGISTRY}/v2/"),
                ]),
                Duration::from_secs(5),
            );
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry gave no answer on {REGISTRY} within 30 s:\n{}",
                self.registry_log()
            );
            sleep(Duration::from_millis(100));
        }
        child
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.ns
    }

    /// A new tap on the bridge, up; QEMU opens it from inside the
    /// namespace ([`VmConfig::netns`]).
    pub fn tap(&self) -> String {
        let name = format!("tap{}", self.taps.fetch_add(1, Ordering::SeqCst));
        ip(&["-n", &self.ns, "tuntap", "add", &name, "mode", "tap"]);
        ip(&["-n", &self.ns, "link", "set", &name, "master", "br0"]);
        ip(&["-n", &self.ns, "link", "set", &name, "up"]);
        name
    }

    /// A VM configuration with one `model` NIC on a new tap, run inside
    /// the namespace; its MAC is `52:54:00:77:00:NN` ([`mac_of`]).
    pub fn vm_config(&self, model: &'static str) -> VmConfig {
        let ifname = self.tap();
        let n: u32 = ifname.trim_start_matches("tap").parse().unwrap();
        VmConfig {
            net: Net::Tap {
                ifname,
                model,
                mac: format!("52:54:00:77:00:{:02x}", 0x10 + n),
            },
            netns: Some(self.ns.clone()),
            ..VmConfig::default()
        }
    }

    /// Pushes `image` as `REGISTRY/repo:tag`: an OCI layout written here,
    /// copied by `skopeo` run inside the namespace (at most 2 minutes).
    pub fn push(&self, image: &Image, repo: &str, tag: &str) {
        let layout = self
            .dir
            .path()
            .join(format!("oci-{}-{tag}", repo.replace('/', "_")));
        write_oci_layout(&layout, tag, image);
        let (ok, out) = run_bounded(
            Command::new("ip")
                .args(["netns", "exec", &self.ns, "skopeo", "copy", "--quiet"])
                .args(["--dest-tls-verify=false", "--dest-no-creds"])
                .arg(format!("oci:{}:{tag}", layout.display()))
                .arg(format!("docker://{REGISTRY}/{repo}:{tag}")),
            Duration::from_secs(120),
        );
        assert!(
            ok,
            "skopeo copy to {REGISTRY}/{repo}:{tag} failed:\n{out}\n--- registry log ---\n{}",
            self.registry_log()
        );
    }

    /// The scratch directory (removed with the `Lan`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// dnsmasq's log so far.
    pub fn dnsmasq_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }

    /// The registry's log so far.
    pub fn registry_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Waits for a line of dnsmasq's log holding every one of `needles`;
    /// returns it, or fails with the log after `timeout`.
    pub fn wait_dnsmasq(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.dnsmasq_log();
            if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no dnsmasq line with {needles:?} within {timeout:?}:\n{log}",
                self.ns
            );
            sleep(Duration::from_millis(100));
        }
    }
}

/// The MAC of a [`Net::Tap`] NIC.
pub fn mac_of(cfg: &VmConfig) -> &str {
    match &cfg.net {
        Net::Tap { mac, .. } => mac,
        other => panic!("not a tap NIC: {other:?}"),
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if std::env::var_os("WYRCAN_VM_LOG").is_some() {
            eprintln!("--- {} dnsmasq ---\n{}", self.ns, self.dnsmasq_log());
        }
        for child in [self.dnsmasq.as_mut(), self.registry.as_mut()]
            .into_iter()
            .flatten()
        {
            stop_group(child, Duration::from_secs(5));
        }
        remove_namespace(&self.ns);
        if let Some(janitor) = self.janitor.as_mut() {
            stop_group(janitor, Duration::from_secs(2));
        }
    }
}

/// QEMU arguments for one more NIC on a new tap on the bridge of `lan`:
/// netdev `id`, MAC `mac`.
pub fn extra_nic(lan: &Lan, id: &str, model: &str, mac: &str) -> Vec<String> {
    let tap = lan.tap();
    vec![
        "-netdev".into(),
        format!("tap,id={id},ifname={tap},script=no,downscript=no"),
        "-device".into(),
        format!("{model},netdev={id},mac={mac}"),
    ]
}

/// QEMU arguments for a human monitor on the Unix socket `path`.
pub fn monitor_args(path: &Path) -> Vec<String> {
    vec![
        "-monitor".into(),
        format!("unix:{},server,nowait", path.display()),
    ]
}

/// Sends one command to the QEMU monitor at `path` and returns what it
/// answered (read until the next prompt, at most 10 s).
pub fn monitor(path: &Path, command: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .unwrap_or_else(|e| panic!("connecting to the QEMU monitor {}: {e}", path.display()));
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut read_to_prompt = |s: &mut std::os::unix::net::UnixStream, got: &mut Vec<u8>| {
        let start = got.len();
        while Instant::now() < deadline {
            if let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&got[start..]).contains("(qemu)") {
                    break;
                }
            }
        }
    };
    read_to_prompt(&mut s, &mut got);
    s.write_all(format!("{command}\n").as_bytes()).unwrap();
    let at = got.len();
    read_to_prompt(&mut s, &mut got);
    String::from_utf8_lossy(&got[at..]).into_owned()
}

/// `ip ARGS`, failing the test on an error (for helpers in other files).
pub fn ip_or_fail(args: &[&str]) {
    ip(args);
}

/// Kills every process in `ns` by PID, then deletes it (for helpers in
/// other files that make namespaces of their own).
pub fn delete_namespace(ns: &str) {
    remove_namespace(ns);
}

/// A UDP socket bound to `addr` inside namespace `ns` (made from a thread
/// that enters the namespace; the socket stays in it), e.g. to receive
/// what a guest sends by netconsole or syslog.
#[allow(unsafe_code)]
pub fn udp_socket_in(ns: &str, addr: &str) -> std::net::UdpSocket {
    use std::os::fd::AsRawFd as _;
    let ns = ns.to_string();
    let addr = addr.to_string();
    std::thread::spawn(move || {
        let nsf = fs::File::open(format!("/run/netns/{ns}"))
            .unwrap_or_else(|e| panic!("opening namespace {ns}: {e}"));
        // SAFETY: a valid namespace fd; setns changes only this thread's
        // network namespace, and this thread ends right after.
        let rc = unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
        std::net::UdpSocket::bind(&addr).unwrap_or_else(|e| panic!("binding {addr} in {ns}: {e}"))
    })
    .join()
    .expect("binding a UDP socket in the namespace")
}

/// dnsmasq for an IPv6-only LAN: router advertisements, DHCPv6 and DNS,
/// no DHCPv4 range.
pub fn dnsmasq_args_v6_only() -> Vec<String> {
    dnsmasq_args()
        .into_iter()
        .filter(|a| a != "--dhcp-range=10.77.0.50,10.77.0.99,1h")
        .collect()
}

/// dnsmasq answering DNS only: no DHCP of either family, no router
/// advertisements (for static addresses).
pub fn dnsmasq_args_dns_only() -> Vec<String> {
    dnsmasq_args()
        .into_iter()
        .filter(|a| !a.starts_with("--dhcp-range=") && a != "--enable-ra")
        .collect()
}

/// The registry as seen over IPv6.
pub const REGISTRY6: &str = "[fd77::1]:5000";
