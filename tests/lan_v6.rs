//! Boots over a real IPv6 LAN (`vmharness::netns`): router advertisements
//! and DHCPv6 from dnsmasq with no DHCPv4 at all, or a static address with
//! no DHCP and no router advertisements; the registry reached over IPv6
//! only, by name (dnsmasq answers AAAA for `registry.test`) and by
//! `[fd77::1]:5000`.
//!
//! `#[ignore]`d like tests/vm.rs: needs `out/` from scripts/build-bootenv.

mod common;
mod vmharness;

use std::time::Duration;

use vmharness::netns::{dnsmasq_args_dns_only, dnsmasq_args_v6_only, Lan, REGISTRY6};
use vmharness::{artifact, bootable, Vm, VmConfig, BOOT};

fn boot(lan: &Lan, name: &str, cmdline: &str) -> Vm {
    let cfg = VmConfig {
        kernel: Some(artifact("wyrcan.kernel")),
        initrd: Some(artifact("wyrcan.initrd")),
        append: Some(format!("console=ttyS0 panic=-1 {cmdline}")),
        mem_mb: 1024,
        ..lan.vm_config("virtio-net-pci")
    };
    Vm::start(name, &cfg)
}

/// IPv6 only: RA (M and O set by dnsmasq for a DHCPv6 range) + DHCPv6, no
/// DHCPv4. The default network set-up (no `ip=`) must not wait for
/// DHCPv4's minute, and resolv.conf gets dnsmasq's IPv6 DNS.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn ipv6_only_by_name_and_by_address() {
    let lan = Lan::start_with(dnsmasq_args_v6_only());
    lan.push(&bootable("v6"), "v6/os", "v1");

    let mut vm = boot(
        &lan,
        "lan-v6-name",
        "wyrcan.img=registry.test:5000/v6/os:v1 wyrcan.insecure=registry.test:5000",
    );
    let (at, line) = vm.wait_for("from DHCPv6 server", BOOT);
    eprintln!("lan_v6: DHCPv6 at {:.1} s: {line}", at.as_secs_f64());
    assert!(line.contains("eth0: fd77::"), "{line}");
    assert!(line.contains("/128"), "{line}");
    assert!(line.contains("DNS fd77::1"), "{line}");
    let (up, _) = vm.wait_for("registry.test:5000", BOOT);
    assert!(
        up < at + Duration::from_secs(20),
        "the pull began {:.1} s after the DHCPv6 lease: waited for DHCPv4?",
        (up - at).as_secs_f64()
    );
    vm.container_on_its_kernel("v6");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
    drop(vm);

    let mut vm = boot(
        &lan,
        "lan-v6-addr",
        &format!("wyrcan.img={REGISTRY6}/v6/os:v1 wyrcan.insecure={REGISTRY6}"),
    );
    vm.wait_for("from DHCPv6 server", BOOT);
    vm.container_on_its_kernel("v6");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

/// A static IPv6 address, gateway and nameserver; no DHCP, no RA.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn static_ipv6() {
    let lan = Lan::start_with(dnsmasq_args_dns_only());
    lan.push(&bootable("v6s"), "v6/os", "v1");
    let mut vm = boot(
        &lan,
        "lan-v6-static",
        &format!(
            "ip=[fd77::42]::[fd77::1]:64::eth0:none nameserver=[fd77::1] \
             wyrcan.img={REGISTRY6}/v6/os:v1 wyrcan.insecure={REGISTRY6}"
        ),
    );
    let (at, line) = vm.wait_for("eth0: fd77::42/64 (static)", BOOT);
    eprintln!("lan_v6: static at {:.1} s: {line}", at.as_secs_f64());
    assert!(line.contains("router fd77::1"), "{line}");
    vm.container_on_its_kernel("v6s");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

/// Dual stack, no `ip=`: DHCPv4 and DHCPv6 both complete (the second
/// within the grace period of the first) and the image boots by name.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn dual_stack_default() {
    let lan = Lan::start(&[]);
    lan.push(&bootable("v46"), "v6/os", "v1");
    let mut vm = boot(
        &lan,
        "lan-v46",
        "wyrcan.img=registry.test:5000/v6/os:v1 wyrcan.insecure=registry.test:5000",
    );
    let (at6, line6) = vm.wait_for("from DHCPv6 server", BOOT);
    let (at4, line4) = vm.wait_for("from DHCP server 10.77.0.1", BOOT);
    eprintln!(
        "lan_v6: DHCPv6 at {:.1} s, DHCPv4 at {:.1} s:\n{line6}\n{line4}",
        at6.as_secs_f64(),
        at4.as_secs_f64()
    );
    vm.container_on_its_kernel("v46");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

/// `ip=eth0:auto6` on a SLAAC network (dnsmasq `ra-stateless`: the A and
/// O flags, stateless DHCPv6 for DNS), booting by name.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn slaac_with_auto6() {
    let args: Vec<String> = dnsmasq_args_v6_only()
        .into_iter()
        .map(|a| {
            if a.starts_with("--dhcp-range=fd77::") {
                "--dhcp-range=fd77::,ra-stateless".to_string()
            } else {
                a
            }
        })
        .collect();
    let lan = Lan::start_with(args);
    lan.push(&bootable("v6a"), "v6/os", "v1");
    let mut vm = boot(
        &lan,
        "lan-v6-slaac",
        "ip=eth0:auto6 wyrcan.img=registry.test:5000/v6/os:v1 wyrcan.insecure=registry.test:5000",
    );
    let (at, line) = vm.wait_for("(SLAAC from router fe80::", BOOT);
    eprintln!("lan_v6: SLAAC at {:.1} s: {line}", at.as_secs_f64());
    assert!(line.contains("eth0: fd77::5054:ff:fe77:"), "{line}");
    assert!(line.contains("/64"), "{line}");
    assert!(line.contains("DNS fd77::1"), "{line}");
    vm.container_on_its_kernel("v6a");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

/// `ip=eth0:dhcp6`: DHCPv6 stateful by request, booting by address.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn explicit_dhcp6() {
    let lan = Lan::start_with(dnsmasq_args_v6_only());
    lan.push(&bootable("v6d"), "v6/os", "v1");
    let mut vm = boot(
        &lan,
        "lan-v6-dhcp6",
        &format!("ip=eth0:dhcp6 wyrcan.img={REGISTRY6}/v6/os:v1 wyrcan.insecure={REGISTRY6}"),
    );
    let (_, line) = vm.wait_for("from DHCPv6 server", BOOT);
    assert!(line.contains("eth0: fd77::"), "{line}");
    vm.container_on_its_kernel("v6d");
    vm.assert_exits(Duration::from_secs(60), "the container did not power off");
}

/// `ip=eth0:auto6` with no router: the error names the interface and
/// what to check, and the machine does not panic.
#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn no_router_advertisement_is_explained() {
    let lan = Lan::start_with(dnsmasq_args_dns_only());
    let mut vm = boot(
        &lan,
        "lan-v6-nora",
        &format!("ip=eth0:auto6 wyrcan.img={REGISTRY6}/v6/os:v1 wyrcan.insecure={REGISTRY6}"),
    );
    let line = vm.boot_failed();
    let log = vm.log();
    assert!(
        log.contains(
            "no IPv6 router advertisement on eth0 within 10 s: is RA enabled on this network?"
        ),
        "{line}\n{log}"
    );
    vm.assert_no_panic();
}
