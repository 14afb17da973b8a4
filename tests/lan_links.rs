//! Data-centre links over a real LAN (`vmharness::netns`): a bond whose
//! active NIC loses its link during the pull, and a VLAN-only provisioning
//! network.
//!
//! `#[ignore]`d like tests/vm.rs: needs `out/` from scripts/build-bootenv.

mod common;
mod vmharness;

use std::time::{Duration, Instant};

use common::image::{noise, Entry, Layer};
use vmharness::netns::{
    extra_nic, mac_of, monitor, monitor_args, udp_socket_in, Lan, HOST4, REGISTRY,
};
use vmharness::vlan::Trunk;
use vmharness::{artifact, bootable, Net, Vm, VmConfig, BOOT};

const MAC0: &str = "52:54:00:77:01:01";
const MAC1: &str = "52:54:00:77:01:02";

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn bond_active_backup_survives_losing_the_active_nic_during_the_pull() {
    let lan = Lan::start(&[]);
    let mut image = bootable("bond");
    // Incompressible, so the pull lasts long enough to cut a link in it.
    image.layers.push(Layer::new(vec![
        Entry::dir("data"),
        Entry::file("data/noise", noise(40 << 20, 11)),
        Entry::file("data/last", "written last\n"),
    ]));
    lan.push(&image, "lan/bond", "v1");

    let mon = lan.dir().join("monitor.sock");
    let mut extra = extra_nic(&lan, "n1", "virtio-net-pci", MAC1);
    extra.extend(monitor_args(&mon));
    let cfg = VmConfig {
        kernel: Some(artifact("wyrcan.kernel")),
        initrd: Some(artifact("wyrcan.initrd")),
        append: Some(format!(
            "console=ttyS0 panic=-1 ifname=lan0:{MAC0} ifname=lan1:{MAC1} \
             bond=bond0:lan0,lan1:mode=active-backup,miimon=100 ip=bond0:dhcp \
             wyrcan.img={REGISTRY}/lan/bond:v1 wyrcan.insecure={REGISTRY}"
        )),
        mem_mb: 1536,
        net: Net::Tap {
            ifname: lan.tap(),
            model: "virtio-net-pci",
            mac: MAC0.into(),
        },
        netns: Some(lan.name().to_string()),
        extra_args: extra,
        ..VmConfig::default()
    };
    let mut vm = Vm::start("lan-bond", &cfg);

    let (at, lease) = vm.wait_for(&format!("from DHCP server {HOST4}"), BOOT);
    assert!(lease.contains("bond0: 10.77.0."), "{lease}");
    eprintln!("bond: lease at {:.1} s: {lease}", at.as_secs_f64());
    // The pull has begun once the registry served the guest a blob (the
    // log already holds the push's requests).
    let seen = lan.registry_log().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    let served = || {
        lan.registry_log()[seen..]
            .lines()
            .any(|l| l.contains("GET") && l.contains("/blobs/sha256:"))
    };
    while !served() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        served(),
        "the guest fetched no blob within 60 s of its lease"
    );
    let answer = monitor(&mon, "set_link n off");
    assert!(answer.ends_with("(qemu) "), "the monitor said {answer:?}");
    eprintln!(
        "bond: lan0's link cut at {:.1} s",
        vm.elapsed().as_secs_f64()
    );
    assert!(
        !vm.log()
            .contains(&format!("booting {REGISTRY}/lan/bond:v1")),
        "the pull was over before the link was cut: make the layer bigger"
    );
    let (at, down) = vm.wait_for("(slave lan0): link status definitely down", BOOT);
    eprintln!("bond: at {:.1} s: {down}", at.as_secs_f64());
    let (at, active) = vm.wait_for("(slave lan1): making interface the new active one", BOOT);
    eprintln!("bond: at {:.1} s: {active}", at.as_secs_f64());
    let container = vm.container_on_its_kernel("bond");
    assert!(
        container.cmdline.contains("console=ttyS0"),
        "{}",
        container.cmdline
    );
    assert!(
        vm.log().contains("LAST=written last"),
        "the big layer did not arrive whole"
    );
    eprintln!("bond: container at {:.1} s", vm.elapsed().as_secs_f64());
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn dhcp_and_pull_over_a_vlan_only_provisioning_network() {
    let lan = Lan::start(&[]);
    lan.push(&bootable("vlan"), "lan/vlan", "v1");
    // The guest's port is a trunk carrying only VLAN 10 to the LAN:
    // untagged frames (plain DHCP on eth0) get no answer.
    let trunk = Trunk::start(&lan, 10);
    let cfg = VmConfig {
        kernel: Some(artifact("wyrcan.kernel")),
        initrd: Some(artifact("wyrcan.initrd")),
        append: Some(format!(
            "console=ttyS0 panic=-1 vlan=eth0.10:eth0 ip=eth0.10:dhcp \
             wyrcan.img={REGISTRY}/lan/vlan:v1 wyrcan.insecure={REGISTRY}"
        )),
        mem_mb: 1024,
        ..trunk.vm_config("virtio-net-pci", MAC0)
    };
    let mut vm = Vm::start("lan-vlan", &cfg);
    let (at, lease) = vm.wait_for(&format!("from DHCP server {HOST4}"), BOOT);
    assert!(lease.contains("eth0.10: 10.77.0."), "{lease}");
    eprintln!("vlan: lease at {:.1} s: {lease}", at.as_secs_f64());
    let container = vm.container_on_its_kernel("vlan");
    eprintln!(
        "vlan: container at {:.1} s; relay: {} frames up, {} down, {} untagged/other dropped",
        container.at.as_secs_f64(),
        trunk.up.load(std::sync::atomic::Ordering::Relaxed),
        trunk.down.load(std::sync::atomic::Ordering::Relaxed),
        trunk.dropped.load(std::sync::atomic::Ordering::Relaxed),
    );
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn netconsole_sends_the_kernel_log_once_the_network_is_up() {
    let lan = Lan::start(&[]);
    lan.push(&bootable("netcon"), "lan/netcon", "v1");
    let sock = udp_socket_in(lan.name(), &format!("{HOST4}:6666"));
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let cfg = VmConfig {
        kernel: Some(artifact("wyrcan.kernel")),
        initrd: Some(artifact("wyrcan.initrd")),
        append: Some(format!(
            "console=ttyS0 panic=-1 netconsole=@/eth0,6666@{HOST4}/ \
             wyrcan.img={REGISTRY}/lan/netcon:v1 wyrcan.insecure={REGISTRY}"
        )),
        mem_mb: 1024,
        ..lan.vm_config("virtio-net-pci")
    };
    let _ = mac_of(&cfg);
    let mut vm = Vm::start("lan-netcon", &cfg);
    let (at, _) = vm.wait_for("netconsole: network logging started", BOOT);
    eprintln!("netconsole: started at {:.1} s", at.as_secs_f64());
    // netconsole replays the kernel log in a burst (some datagrams may
    // not fit the socket's buffer): the early lines prove it works.
    let want = "Kernel command line: console=ttyS0 panic=-1 netconsole=";
    let mut got = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 2048];
    while !got.contains(want) && Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(
        got.contains(want),
        "no kernel log from netconsole on {HOST4}:6666 within 60 s; got {got:?}"
    );
    eprintln!("netconsole: {} bytes of kernel log received", got.len());
    vm.container_on_its_kernel("netcon");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}
