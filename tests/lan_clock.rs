//! The clock and the log, over a real LAN (`vmharness::netns`): the guest's
//! RTC starts in 2001; dnsmasq hands out an NTP server (DHCP option 42)
//! that a small SNTP server in the namespace answers with the real time;
//! Wyrcan sets the system clock and the RTC before pulling, so the booted
//! system — which reads the RTC again after kexec — has the right date.
//! Every Wyrcan message also goes to a syslog listener in the namespace
//! (`wyrcan.syslog=`), the ones logged before the network was up too.
//! And a TLS registry (a test CA baked in with `customize --ca`) is refused
//! while the clock says 2001 — with the clock error — and accepted once
//! DHCP's NTP server set it.

mod common;
mod vmharness;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmharness::netns::{Lan, HOST4, REGISTRY};
use vmharness::{artifact, bootable_showing_booted, Vm, VmConfig, BOOT};

/// A process run inside the namespace, killed when dropped.
struct InNs(Child);

impl Drop for InNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python_in(lan: &Lan, script: &str, args: &[&str]) -> InNs {
    InNs(
        Command::new("ip")
            .args(["netns", "exec", lan.name(), "python3", "-c", script])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 in the namespace"),
    )
}

/// An SNTP server: answers every request with the host's time (stratum 2),
/// echoing the client's transmit timestamp as originate (RFC 4330).
const SNTP: &str = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 123))
s.settimeout(1.0)
end = time.time() + 600
while time.time() < end:
    try:
        data, addr = s.recvfrom(512)
    except socket.timeout:
        continue
    if len(data) < 48:
        continue
    now = time.time() + 2208988800
    ts = struct.pack('!II', int(now), int((now % 1) * 2**32))
    reply = bytes([0x24, 2, 6, 0xec]) + bytes(8) + b'LOCL' + ts + data[40:48] + ts + ts
    s.sendto(reply, addr)
"#;

/// A syslog listener: every datagram as one line of the file.
const SYSLOG: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(1.0)
end = time.time() + 600
with open(sys.argv[3], 'ab', buffering=0) as f:
    while time.time() < end:
        try:
            data, _ = s.recvfrom(4096)
        except socket.timeout:
            continue
        f.write(data.replace(b'\n', b' ') + b'\n')
"#;

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn the_clock_from_dhcp_ntp_and_the_log_to_syslog() {
    let lan = Lan::start(&[format!("--dhcp-option=option:ntp-server,{HOST4}")]);
    lan.push(&bootable_showing_booted("clock"), "clock/os", "v1");
    let _sntp = python_in(&lan, SNTP, &[HOST4]);
    let received = lan.dir().join("syslog.txt");
    let _syslog = python_in(&lan, SYSLOG, &[HOST4, "5514", received.to_str().unwrap()]);

    let cfg = VmConfig {
        kernel: Some(artifact("wyrcan.kernel")),
        initrd: Some(artifact("wyrcan.initrd")),
        append: Some(format!(
            "console=ttyS0 panic=-1 wyrcan.img={REGISTRY}/clock/os:v1 wyrcan.insecure={REGISTRY} \
             wyrcan.syslog={HOST4}:5514 wyrcan.arg=quiet"
        )),
        // A machine whose battery-backed clock is 25 years behind.
        extra_args: vec!["-rtc".into(), "base=2001-01-01T00:00:00".into()],
        ..lan.vm_config("virtio-net-pci")
    };
    let mut vm = Vm::start("lan-clock", &cfg);
    let (_, set) = vm.wait_for("clock: set to", BOOT);
    assert!(set.contains(&format!("by ntp {HOST4}:123")), "{set}");
    assert!(set.contains("it said 2001-"), "{set}");
    vm.container("clock");
    // The booted system read the RTC Wyrcan set: this year, not 2001.
    let date = vm.printed("DATE=");
    let year = date.get(..4).unwrap_or_default().to_string();
    let this_year = wyrcan_core::booted::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    )[..4]
        .to_string();
    assert_eq!(year, this_year, "the booted system's date is {date}");

    // Syslog got the early lines (before the network) and the late ones.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&received).unwrap_or_default();
        if text.contains("loading the kernel for kexec") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(text.contains("<14>1 "), "RFC 5424 INFO lines: {text}");
    assert!(text.contains(" wyrcan "), "APP-NAME: {text}");
    assert!(
        text.contains("kernel 6."),
        "an early line, from before the network: {text}"
    );
    assert!(text.contains("clock: set to"), "{text}");
    assert!(
        text.contains("booting"),
        "the last line before kexec: {text}"
    );
}

/// A TLS `docker-registry` inside the namespace on 10.77.0.1:5443 whose
/// certificate (from a fresh test CA) is valid from yesterday for a month:
/// a machine whose clock says 2001 refuses it until the clock is set.
struct TlsRegistry {
    _child: InNs,
    ca: std::path::PathBuf,
}

const TLS_REGISTRY: &str = "10.77.0.1:5443";

fn tls_registry(lan: &Lan) -> TlsRegistry {
    use rcgen::{
        date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
        KeyPair, KeyUsagePurpose,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day = |secs: i64| {
        let c = wyrcan_core::booted::civil(secs);
        date_time_ymd(c.year as i32, c.month as u8, c.day as u8)
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Wyrcan LAN test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = day(now - 86_400);
    ca.not_after = day(now + 30 * 86_400);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![HOST4.to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, HOST4);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = day(now - 86_400);
    leaf.not_after = day(now + 30 * 86_400);
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let dir = lan.dir().join("tls-registry");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {0}/data\n\
             http:\n  addr: {TLS_REGISTRY}\n  tls:\n    certificate: {0}/cert.pem\n    key: {0}/key.pem\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = InNs(
        Command::new("ip")
            .args(["netns", "exec", lan.name(), "docker-registry", "serve"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry in the namespace"),
    );
    TlsRegistry {
        _child: child,
        ca: ca_path,
    }
}

/// Copy `repo:tag` from the LAN's plain registry into the TLS one (inside
/// the namespace; retried while the TLS registry starts, at most 60 s).
fn copy_to_tls(lan: &Lan, repo: &str, tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", lan.name(), "skopeo", "copy", "--quiet"])
            .args([
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--dest-no-creds",
                "--src-no-creds",
            ])
            .arg(format!("docker://{REGISTRY}/{repo}:{tag}"))
            .arg(format!("docker://{TLS_REGISTRY}/{repo}:{tag}"))
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "skopeo copy to the TLS registry: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Boot the TLS registry's image with the CA baked in, the RTC in 2001.
fn tls_boot(lan: &Lan, tls: &TlsRegistry, name: &str) -> Vm {
    let custom = lan.dir().join(format!("{name}.initrd"));
    let base = artifact("wyrcan.initrd");
    let out = common::wyrcan(&[
        "customize",
        "--initrd",
        base.to_str().unwrap(),
        "-o",
        custom.to_str().unwrap(),
        "--image",
        &format!("{TLS_REGISTRY}/clock/os:v1"),
        "--ca",
        tls.ca.to_str().unwrap(),
        "--arg",
        "quiet",
    ]);
    common::assert_success(&out, "wyrcan customize --ca");
    let cfg = VmConfig {
        kernel: Some(artifact("wyrcan.kernel")),
        initrd: Some(custom),
        append: Some("console=ttyS0 panic=-1".into()),
        extra_args: vec!["-rtc".into(), "base=2001-01-01T00:00:00".into()],
        ..lan.vm_config("virtio-net-pci")
    };
    Vm::start(name, &cfg)
}

#[test]
#[ignore = "VM test: needs out/ from scripts/build-bootenv; run by scripts/test"]
fn a_tls_registry_needs_the_clock_and_ntp_fixes_it() {
    // Without an NTP server: the certificate is "not valid yet" in 2001,
    // and the console says what to do.
    let lan = Lan::start(&[]);
    lan.push(&bootable_showing_booted("tls-clock"), "clock/os", "v1");
    let tls = tls_registry(&lan);
    copy_to_tls(&lan, "clock/os", "v1");
    let mut vm = tls_boot(&lan, &tls, "lan-tls-noclock");
    let line = vm.boot_failed();
    assert!(line.contains("not valid until"), "{line}");
    assert!(line.contains("set the clock"), "{line}");
    assert!(
        vm.log().contains("before this Wyrcan was built"),
        "the clock warning: {}",
        vm.log()
    );
    drop(vm);
    drop(tls);
    drop(lan);

    // With DHCP's NTP server answering: the same boot works.
    let lan = Lan::start(&[format!("--dhcp-option=option:ntp-server,{HOST4}")]);
    lan.push(&bootable_showing_booted("tls-clock"), "clock/os", "v1");
    let _sntp = python_in(&lan, SNTP, &[HOST4]);
    let tls = tls_registry(&lan);
    copy_to_tls(&lan, "clock/os", "v1");
    let mut vm = tls_boot(&lan, &tls, "lan-tls-clock");
    vm.wait_for("clock: set to", BOOT);
    vm.container("tls-clock");
}
