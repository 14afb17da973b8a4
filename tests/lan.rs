//! Boots over a real LAN: a network namespace of the test's own with a
//! bridge, dnsmasq as the DHCP (and TFTP) server and a `docker-registry`
//! on 10.77.0.1:5000 (`vmharness::netns`); QEMU's NIC is a tap on the
//! bridge. Nothing is bound or reachable outside that namespace.
//!
//! `#[ignore]`d like tests/vm.rs: needs `out/` from scripts/build-bootenv.

mod common;
mod vmharness;

use std::path::Path;
use std::time::Duration;

use vmharness::netns::{mac_of, Lan, HOST4, REGISTRY};
use vmharness::{artifact, bootable, repo, Vm, VmConfig, BOOT};

/// The lease line Wyrcan's PID 1 prints, e.g.
/// `eth0: 10.77.0.58/24 from DHCP server 10.77.0.1, router 10.77.0.1`.
fn lease_address(line: &str) -> String {
    let before = line.split(" from DHCP server").next().unwrap_or_default();
    let addr = before.rsplit(' ').next().unwrap_or_default();
    addr.split('/').next().unwrap_or_default().to_string()
}

fn assert_in_range(addr: &str) {
    let last: u8 = addr
        .strip_prefix("10.77.0.")
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("lease {addr:?} is not in 10.77.0.0/24"));
    assert!(
        (50..=99).contains(&last),
        "lease {addr} is outside dnsmasq's range"
    );
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn dhcpv4_from_a_real_server() {
    let lan = Lan::start(&[]);
    lan.push(&bootable("lan"), "lan/os", "v1");

    let cfg = VmConfig {
        kernel: Some(artifact("wyrcan.kernel")),
        initrd: Some(artifact("wyrcan.initrd")),
        append: Some(format!(
            "console=ttyS0 panic=-1 wyrcan.img={REGISTRY}/lan/os:v1 wyrcan.insecure={REGISTRY} wyrcan.arg=quiet"
        )),
        mem_mb: 1024,
        ..lan.vm_config("virtio-net-pci")
    };
    let mac = mac_of(&cfg).to_string();
    let mut vm = Vm::start("lan-dhcp", &cfg);

    let (at, lease) = vm.wait_for(&format!("from DHCP server {HOST4}"), BOOT);
    let addr = lease_address(&lease);
    assert_in_range(&addr);
    assert!(
        lease.contains(&format!("router {HOST4}")),
        "dnsmasq names itself as the router: {lease}"
    );
    let ack = lan.wait_dnsmasq(&["DHCPACK(br0)", &mac], Duration::from_secs(10));
    assert!(
        ack.contains(&format!(" {addr} ")),
        "dnsmasq acked another address than the guest took ({lease}): {ack}"
    );
    eprintln!("lan: lease at {:.1} s: {lease}", at.as_secs_f64());

    let container = vm.container_on_its_kernel("lan");
    assert!(
        container.cmdline.contains("quiet"),
        "wyrcan.arg did not reach the image's kernel: {}",
        container.cmdline
    );
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

/// The PXE part of docs/netboot.md's dnsmasq configuration, as command
/// line options: every line of the documented `wyrcan.conf` but the
/// site-specific ones (interface, range, router, DNS server), with
/// `tftp-root` pointed at `tftp`.
fn documented_pxe_options(tftp: &Path) -> Vec<String> {
    let doc = std::fs::read_to_string(repo().join("docs/netboot.md")).unwrap();
    let start = doc
        .find("/etc/dnsmasq.d/wyrcan.conf")
        .expect("docs/netboot.md documents /etc/dnsmasq.d/wyrcan.conf");
    let block = doc[start..]
        .split("```")
        .nth(1)
        .expect("a ``` block after /etc/dnsmasq.d/wyrcan.conf");
    let mut options = Vec::new();
    for line in block.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split('=').next().unwrap();
        match key {
            "interface" | "dhcp-range" => continue,
            "dhcp-option" if line.contains("option:router") || line.contains("dns-server") => {
                continue
            }
            "tftp-root" => options.push(format!("--tftp-root={}", tftp.display())),
            _ => options.push(format!("--{line}")),
        }
    }
    for want in [
        "--enable-tftp",
        "--dhcp-match=set:ipxe,175",
        "--dhcp-boot=tag:ipxe,wyrcan.ipxe",
    ] {
        assert!(
            options.iter().any(|o| o == want),
            "docs/netboot.md's dnsmasq set-up lost {want}: {options:?}"
        );
    }
    options
}

/// A `--log-dhcp` line saying the boot file sent is `name`: as option 67
/// (`sent size: 12 option: 67 bootfile-name  NAME`, when the client asked
/// for it) or in the BOOTP header (`bootfile name: NAME`).
fn is_bootfile(line: &str, name: &str) -> bool {
    let line = line.trim_end();
    (line.contains("option: 67 bootfile-name") || line.contains("bootfile name:"))
        && line.ends_with(&format!(" {name}"))
}

/// The shipped `wyrcan.ipxe` (scripts/build-release copies it from the
/// repository root) with its one `set cmdline` line replaced, as
/// docs/netboot.md tells an operator to.
fn boot_script(cmdline: &str) -> String {
    let template =
        std::fs::read_to_string(repo().join("wyrcan.ipxe")).expect("reading wyrcan.ipxe");
    let mut edited = 0;
    let mut out = String::new();
    for line in template.lines() {
        if line.starts_with("set cmdline ") {
            edited += 1;
            out.push_str(&format!("set cmdline {cmdline}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_eq!(edited, 1, "wyrcan.ipxe must have one `set cmdline` line");
    out
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn pxe_for_real() {
    // The TFTP root must exist before dnsmasq starts; the Lan's scratch
    // directory does not yet, so it has its own.
    let tftp = tempfile::Builder::new()
        .prefix("wyrcan-lan-tftp-")
        .tempdir()
        .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tftp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for name in ["wyrcan.kernel", "wyrcan.initrd"] {
        std::fs::copy(artifact(name), tftp.path().join(name)).unwrap();
    }
    let cmdline = format!(
        "panic=-1 wyrcan.img={REGISTRY}/lan/pxe:v1 wyrcan.insecure={REGISTRY} wyrcan.arg=quiet"
    );
    std::fs::write(tftp.path().join("wyrcan.ipxe"), boot_script(&cmdline)).unwrap();

    let lan = Lan::start(&documented_pxe_options(tftp.path()));
    lan.push(&bootable("pxe-lan"), "lan/pxe", "v1");

    // QEMU's NIC ROMs are iPXE (package ipxe-qemu): SeaBIOS runs it for
    // `-boot n`, and its DHCP request carries option 175.
    let cfg = VmConfig {
        netboot: true,
        mem_mb: 1024,
        ..lan.vm_config("virtio-net-pci")
    };
    let mac = mac_of(&cfg).to_string();
    let mut vm = Vm::start("lan-pxe", &cfg);

    // iPXE's output goes to the (absent) screen, not the serial port:
    // what it did shows in dnsmasq's log. By the time Wyrcan's kernel
    // runs, iPXE got the script and both files over TFTP.
    let (at, kernel_cmdline) = vm.wait_for("Command line:", BOOT);
    assert!(
        kernel_cmdline.contains(&format!("console=tty0 console=ttyS0 {cmdline}")),
        "Wyrcan's kernel did not get the script's cmdline: {kernel_cmdline}"
    );
    eprintln!(
        "pxe-lan: Wyrcan's kernel started at {:.1} s",
        at.as_secs_f64()
    );
    let step = Duration::from_secs(5);
    for file in ["wyrcan.ipxe", "wyrcan.kernel", "wyrcan.initrd"] {
        lan.wait_dnsmasq(
            &["dnsmasq-tftp", "sent", &format!("{file} to 10.77.0.")],
            step,
        );
    }
    // The request that got the script was iPXE's, tagged by option 175.
    let log = lan.dnsmasq_log();
    // `MON DD HH:MM:SS dnsmasq-dhcp[PID]: XID …`
    let xid = |l: &str| {
        let rest = l.split_once("]: ").map_or("", |x| x.1);
        rest.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let ipxe: Vec<String> = log
        .lines()
        .filter(|l| {
            l.contains(" tags: ")
                && l.split(" tags: ")
                    .nth(1)
                    .unwrap()
                    .split(", ")
                    .any(|t| t == "ipxe")
        })
        .map(xid)
        .collect();
    assert!(
        log.lines()
            .any(|l| ipxe.contains(&xid(l)) && l.contains("DHCPACK(br0)") && l.contains(&mac))
            && log
                .lines()
                .any(|l| ipxe.contains(&xid(l)) && is_bootfile(l, "wyrcan.ipxe")),
        "no DHCPACK with bootfile wyrcan.ipxe to iPXE (tag ipxe) at {mac}:\n{log}"
    );

    let (_, lease) = vm.wait_for(&format!("from DHCP server {HOST4}"), BOOT);
    assert_in_range(&lease_address(&lease));
    let container = vm.container_on_its_kernel("pxe-lan");
    assert!(
        container.cmdline.contains("quiet"),
        "wyrcan.arg did not reach the image's kernel: {}",
        container.cmdline
    );
    // Two leases to the same NIC: iPXE's, then Wyrcan's own DHCP.
    let acks = lan
        .dnsmasq_log()
        .lines()
        .filter(|l| l.contains("DHCPACK(br0)") && l.contains(&mac))
        .count();
    assert!(acks >= 2, "expected iPXE's and Wyrcan's DHCPACK to {mac}");
    eprintln!(
        "pxe-lan: Wyrcan started {}, container marker {}",
        vm.time_of("(the container bootloader) starting"),
        vm.time_of("CONTAINER-MARKER")
    );
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}
