//! The PID 1 flow driven with a fake machine, a scripted console and a
//! fake loader: which steps run, in which order, and how each failure ends.

use std::collections::VecDeque;
use std::sync::Mutex;

use rustix::io::Errno;

use super::*;
use crate::registry::RegistryError;
use crate::sys::fake::FakeSys;

/// A console whose answers are scripted and whose output is kept.
#[derive(Default)]
struct FakeTerm {
    out: Mutex<String>,
    answers: Mutex<VecDeque<String>>,
    /// Whether a key stops the countdown.
    stop_countdown: bool,
}

impl FakeTerm {
    fn answering(answers: &[&str]) -> Self {
        FakeTerm {
            answers: Mutex::new(answers.iter().map(|s| s.to_string()).collect()),
            ..FakeTerm::default()
        }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

impl Terminal for FakeTerm {
    fn say(&self, text: &str) {
        self.out.lock().unwrap().push_str(text);
    }

    fn read_line(&self) -> String {
        self.say("<read_line>");
        self.answers.lock().unwrap().pop_front().unwrap_or_default()
    }

    fn countdown(&self, what: &str, secs: u64) -> bool {
        self.say(&format!("<countdown {what} {secs}>"));
        self.stop_countdown
    }
}

/// A loader that fails `failures` times with a connection error, then
/// hands back a tiny kernel and initrd.
#[derive(Default)]
struct FakeLoader {
    failures: Mutex<u32>,
    /// Fail for good instead (not worth retrying).
    fatal: bool,
    seen: Mutex<Vec<String>>,
}

impl Loader for FakeLoader {
    fn check(&self, cfg: &BootConfig) -> Result<()> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("check {}", cfg.image));
        Ok(())
    }

    fn prepare(&self, sys: &dyn Sys, cfg: &BootConfig, _: &Progress) -> Result<Prepared> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("prepare {} args={:?}", cfg.image, cfg.args));
        if self.fatal {
            return Err(anyhow::Error::new(RegistryError::ManifestNotFound {
                image: cfg.image.to_string(),
                registry: cfg.image.registry().to_string(),
            }));
        }
        let mut left = self.failures.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return Err(anyhow::Error::new(RegistryError::Connect {
                url: "http://10.0.2.100:5000/v2/".into(),
                host: "10.0.2.100:5000".into(),
                detail: "connection refused".into(),
            }));
        }
        prepared(sys, cfg)
    }
}

/// A tiny kernel and initrd, the next cmdline being the image's args.
fn prepared(sys: &dyn Sys, cfg: &BootConfig) -> Result<Prepared> {
    Ok(Prepared {
        kernel: sys.memfd("kernel")?,
        initrd: sys.memfd("initrd")?,
        cmdline: cfg.args.join(" "),
        unpacked: 0,
    })
}

/// `img` (with `args` and `insecure`) stored in the machine's EFI variable.
fn store_in_efi(sys: &FakeSys, img: &str, args: &[&str], insecure: &[&str]) {
    let stored = StoredConfig {
        img: img.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        insecure: insecure.iter().map(|s| s.to_string()).collect(),
        ip: vec![],
        nameservers: vec![],
    };
    sys.put(
        config::efivars().join(efivar::file_name()),
        &stored.to_file(),
    );
}

fn settings() -> Settings {
    Settings {
        attempts: 3,
        first_delay: Duration::from_millis(1),
        countdown: 30,
        pull: config::pull_options(&[]),
    }
}

/// A machine with one NIC behind a DHCP server, `/proc/cmdline` as given.
fn machine(cmdline: &[u8]) -> FakeSys {
    let mut sys = FakeSys::with_cmdline(cmdline);
    sys.dhcp_server = true;
    sys.add_link("eth0", "52:54:00:12:34:56");
    sys
}

fn with_efi(sys: &FakeSys) {
    sys.put("/sys/firmware/efi/systab", b"");
    sys.put(
        "/sys/firmware/efi/efivars/Boot0000-8be4df61-93ca-11d2-aa0d-00e098032b8c",
        b"\x07\0\0\0",
    );
}

fn flow(sys: &FakeSys, term: &FakeTerm, loader: &FakeLoader) -> String {
    let (parsed, warnings) = early(sys);
    assert_eq!(warnings, Vec::<String>::new());
    run(sys, term, loader, parsed, &settings()).to_string()
}

/// Index of the first call starting with `prefix`.
fn at(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {calls:#?}"))
}

#[test]
fn boots_in_order_mounts_network_pull_kexec() {
    let sys = machine(b"console=ttyS0 wyrcan.img=10.0.2.100:5000/os:1 wyrcan.insecure=10.0.2.100:5000 wyrcan.arg=\"quiet x=1\"");
    let term = FakeTerm::default();
    let loader = FakeLoader::default();
    flow(&sys, &term, &loader);
    let calls = sys.calls();
    assert_eq!(at(&calls, "mount proc /proc proc"), 0);
    assert!(at(&calls, "mount tmpfs /tmp tmpfs mode=1777") < at(&calls, "link_up eth0"));
    assert!(at(&calls, "set_ipv4 eth0 10.0.2.15/24") < at(&calls, "memfd kernel"));
    assert!(at(&calls, "kexec_load") < at(&calls, "power Kexec"));
    assert_eq!(
        calls[at(&calls, "kexec_load")],
        "kexec_load kernel=0 initrd=0 cmdline=quiet x=1"
    );
    assert_eq!(calls.last().unwrap(), "power Kexec");
    assert_eq!(
        *loader.seen.lock().unwrap(),
        ["prepare 10.0.2.100:5000/os:1 args=[\"quiet x=1\"]"]
    );
    assert!(!term.text().contains("boot failed"), "{}", term.text());
}

#[test]
fn already_mounted_filesystems_are_not_errors() {
    let mut sys = machine(b"wyrcan.img=x");
    sys.mount_errors.insert("/dev".into(), Errno::BUSY);
    sys.mount_errors.insert("/run".into(), Errno::NODEV);
    let (_, warnings) = early(&sys);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("/run"), "{warnings:?}");
}

#[test]
fn a_cmdline_that_is_not_utf8_still_boots_the_typed_image() {
    let sys = machine(b"console=ttyS0 caf\xe9=1 wyrcan.img=busybox");
    with_efi(&sys);
    store_in_efi(&sys, "from-efi", &[], &[]);
    let loader = FakeLoader::default();
    flow(&sys, &FakeTerm::default(), &loader);
    assert_eq!(
        *loader.seen.lock().unwrap(),
        ["prepare docker.io/library/busybox:latest args=[]"]
    );
}

#[test]
fn no_image_shows_the_help_and_reboots_after_enter() {
    let sys = machine(b"console=ttyS0");
    let term = FakeTerm::answering(&[""]);
    flow(&sys, &term, &FakeLoader::default());
    let text = term.text();
    assert!(text.contains("No image to boot."), "{text}");
    assert!(
        text.contains("wyrcan.img=quay.io/example/os:latest"),
        "{text}"
    );
    assert!(
        text.ends_with("Press Enter to reboot.\n<read_line>"),
        "{text}"
    );
    let calls = sys.calls();
    assert!(!calls.iter().any(|c| c.starts_with("link_up")), "{calls:?}");
    assert_eq!(calls.last().unwrap(), "power Restart");
}

#[test]
fn the_stored_image_boots_when_the_cmdline_names_none() {
    let sys = machine(b"console=ttyS0");
    with_efi(&sys);
    store_in_efi(
        &sys,
        "10.0.2.100:5000/os:2",
        &["quiet"],
        &["10.0.2.100:5000"],
    );
    let loader = FakeLoader::default();
    flow(&sys, &FakeTerm::default(), &loader);
    assert_eq!(
        *loader.seen.lock().unwrap(),
        ["prepare 10.0.2.100:5000/os:2 args=[\"quiet\"]"]
    );
    assert_eq!(sys.calls().last().unwrap(), "power Kexec");
}

#[test]
fn a_bad_image_or_ip_is_reported_before_the_network() {
    for cmdline in [
        &b"wyrcan.img=Bad//Ref"[..],
        b"wyrcan.img=x ip=10.0.0.300::::::none",
        b"wyrcan.img=x wyrcan.proxy=https://me:hunter2@proxy.lan:3128",
    ] {
        let sys = machine(cmdline);
        let term = FakeTerm::default();
        flow(&sys, &term, &FakeLoader::default());
        let calls = sys.calls();
        assert!(
            !calls
                .iter()
                .any(|c| c.starts_with("link_up") || c.starts_with("load_module")),
            "{calls:?}"
        );
        assert!(term.text().contains("boot failed: "), "{}", term.text());
        assert!(!term.text().contains("hunter2"), "{}", term.text());
        assert_eq!(calls.last().unwrap(), "power Restart");
    }
}

#[test]
fn a_pull_failure_is_retried_then_counted_down_then_rebooted() {
    let sys = machine(b"wyrcan.img=10.0.2.100:5000/os:1");
    let term = FakeTerm::default();
    let loader = FakeLoader {
        failures: Mutex::new(10),
        ..FakeLoader::default()
    };
    flow(&sys, &term, &loader);
    assert_eq!(loader.seen.lock().unwrap().len(), 3, "every attempt");
    let text = term.text();
    assert!(
        text.contains("boot failed: cannot connect to 10.0.2.100:5000"),
        "{text}"
    );
    assert!(text.ends_with("<countdown Rebooting 30>"), "{text}");
    let calls = sys.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("kexec_load")),
        "{calls:?}"
    );
    assert_eq!(calls.last().unwrap(), "power Restart");
}

#[test]
fn a_transient_failure_then_success_boots() {
    let sys = machine(b"wyrcan.img=x");
    let loader = FakeLoader {
        failures: Mutex::new(2),
        ..FakeLoader::default()
    };
    flow(&sys, &FakeTerm::default(), &loader);
    assert_eq!(loader.seen.lock().unwrap().len(), 3);
    assert_eq!(sys.calls().last().unwrap(), "power Kexec");
}

#[test]
fn a_missing_image_is_not_retried_and_the_countdown_can_be_stopped() {
    let sys = machine(b"wyrcan.img=x");
    let term = FakeTerm {
        stop_countdown: true,
        ..FakeTerm::answering(&[""])
    };
    let loader = FakeLoader {
        fatal: true,
        ..FakeLoader::default()
    };
    flow(&sys, &term, &loader);
    assert_eq!(loader.seen.lock().unwrap().len(), 1);
    let text = term.text();
    assert!(text.contains("not found"), "{text}");
    assert!(
        text.ends_with("Stopped. Press Enter to reboot.\n<read_line>"),
        "{text}"
    );
    assert_eq!(sys.calls().last().unwrap(), "power Restart");
}

#[test]
fn efi_clear_asks_removes_and_reboots() {
    let sys = machine(b"wyrcan.efi=clear");
    with_efi(&sys);
    let path = config::efivars().join(efivar::file_name());
    sys.put(&path, b"\x07\0\0\0{}");
    let term = FakeTerm::answering(&["yes"]);
    flow(&sys, &term, &FakeLoader::default());
    assert!(sys.get(&path).is_none());
    let calls = sys.calls();
    assert!(at(&calls, "efivar_remove") < at(&calls, "power Restart"));
    assert!(!calls.iter().any(|c| c.starts_with("link_up")), "{calls:?}");
    assert!(term
        .text()
        .contains("The stored configuration was removed."));

    // Answered no: nothing removed.
    let sys = machine(b"wyrcan.efi=clear");
    with_efi(&sys);
    sys.put(&path, b"\x07\0\0\0{}");
    let term = FakeTerm::answering(&["no"]);
    flow(&sys, &term, &FakeLoader::default());
    assert!(sys.get(&path).is_some());
    assert!(term.text().contains("Nothing was changed."));
}

#[test]
fn efi_write_checks_warns_asks_stores_then_boots() {
    let sys = machine(b"wyrcan.img=10.0.2.100:5000/os:1 wyrcan.insecure=10.0.2.100:5000 wyrcan.efi=write wyrcan.arg=quiet");
    with_efi(&sys);
    let term = FakeTerm::answering(&["yes"]);
    let loader = FakeLoader::default();
    flow(&sys, &term, &loader);
    assert_eq!(loader.seen.lock().unwrap()[0], "check 10.0.2.100:5000/os:1");
    let text = term.text();
    assert!(
        text.contains("Some\nfirmware handles variable writes badly"),
        "{text}"
    );
    let stored = StoredConfig::from_file(
        &sys.get(config::efivars().join(efivar::file_name()))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored.img, "10.0.2.100:5000/os:1");
    assert_eq!(stored.args, ["quiet"]);
    assert_eq!(stored.insecure, ["10.0.2.100:5000"]);
    let calls = sys.calls();
    assert!(at(&calls, "efivar_write") < at(&calls, "kexec_load"));
    assert_eq!(calls.last().unwrap(), "power Kexec");
}

#[test]
fn efi_write_without_efi_says_why() {
    let sys = machine(b"wyrcan.img=x wyrcan.efi=write");
    let term = FakeTerm::default();
    flow(&sys, &term, &FakeLoader::default());
    assert!(
        term.text().contains("this machine has no EFI variables"),
        "{}",
        term.text()
    );
    assert!(!sys.calls().iter().any(|c| c.starts_with("efivar_write")));
}

#[test]
fn an_unknown_key_shows_the_help() {
    let sys = machine(b"wyrcan.imgg=x");
    let term = FakeTerm::default();
    flow(&sys, &term, &FakeLoader::default());
    let text = term.text();
    assert!(
        text.contains("unknown kernel argument \"wyrcan.imgg\""),
        "{text}"
    );
    assert!(
        text.contains("wyrcan.img=quay.io/example/os:latest"),
        "{text}"
    );
}

/// A machine whose boot media were customized: default image, args, an
/// auth file and a CA.
fn customized(cmdline: &[u8]) -> FakeSys {
    let sys = machine(cmdline);
    let site = wyrcan_core::site::SiteConfig {
        version: wyrcan_core::site::VERSION,
        image: Some("reg.lan:5000/site/os:1".into()),
        args: vec!["site=1".into()],
        ip: vec!["dhcp".into()],
        ..Default::default()
    };
    sys.put("/etc/wyrcan/config.json", &site.to_json());
    sys.put("/etc/wyrcan/auth.json", br#"{"auths":{}}"#);
    sys.put("/etc/wyrcan/ca/00.pem", b"pem");
    sys
}

/// What the loader was given besides the image: where credentials come
/// from and the CA files.
#[derive(Default)]
struct PullSpy(Mutex<Vec<String>>);

impl Loader for PullSpy {
    fn check(&self, _: &BootConfig) -> Result<()> {
        Ok(())
    }
    fn prepare(&self, sys: &dyn Sys, cfg: &BootConfig, _: &Progress) -> Result<Prepared> {
        self.0.lock().unwrap().push(format!(
            "{} args={:?} creds={:?} cas={:?}",
            cfg.image, cfg.args, cfg.pull.credentials, cfg.pull.ca_files
        ));
        prepared(sys, cfg)
    }
}

fn spy_flow(sys: &FakeSys) -> Vec<String> {
    let spy = PullSpy::default();
    let (parsed, _) = early(sys);
    run(sys, &FakeTerm::default(), &spy, parsed, &settings());
    spy.0.into_inner().unwrap()
}

#[test]
fn the_site_image_boots_with_the_site_secrets() {
    let sys = customized(b"console=ttyS0");
    assert_eq!(
        spy_flow(&sys),
        ["reg.lan:5000/site/os:1 args=[\"site=1\"] creds=AuthFile(\"/etc/wyrcan/auth.json\") cas=[\"/etc/wyrcan/ca/00.pem\"]"]
    );
    assert_eq!(sys.calls().last().unwrap(), "power Kexec");
}

#[test]
fn the_cmdline_image_wins_and_keeps_the_site_secrets() {
    let sys = customized(b"console=ttyS0 wyrcan.img=other:2 wyrcan.arg=mine");
    assert_eq!(
        spy_flow(&sys),
        ["docker.io/library/other:2 args=[\"mine\"] creds=AuthFile(\"/etc/wyrcan/auth.json\") cas=[\"/etc/wyrcan/ca/00.pem\"]"]
    );
}

#[test]
fn the_efi_image_wins_over_the_site_image() {
    let sys = customized(b"console=ttyS0");
    with_efi(&sys);
    store_in_efi(&sys, "stored:3", &[], &[]);
    let seen = spy_flow(&sys);
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with("docker.io/library/stored:3 args=[]"),
        "{seen:?}"
    );
}

#[test]
fn a_broken_site_config_is_reported_before_the_network() {
    let sys = machine(b"console=ttyS0");
    sys.put(
        "/etc/wyrcan/config.json",
        br#"{"version":1,"image":"Bad//Ref"}"#,
    );
    let term = FakeTerm::default();
    flow(&sys, &term, &FakeLoader::default());
    let text = term.text();
    assert!(
        text.contains("wyrcan.img=Bad//Ref") && text.contains("wyrcan customize"),
        "{text}"
    );
    assert!(!sys.calls().iter().any(|c| c.starts_with("link_up")));
}

/// What the loader was given for trust: the policy (its rules) and the TPM plan.
#[derive(Default)]
struct TrustSpy(Mutex<Vec<String>>);

impl Loader for TrustSpy {
    fn check(&self, _: &BootConfig) -> Result<()> {
        Ok(())
    }
    fn prepare(&self, sys: &dyn Sys, cfg: &BootConfig, _: &Progress) -> Result<Prepared> {
        let policy = cfg
            .pull
            .policy
            .as_ref()
            .map(|p| wyrcan_core::trust::describe(p).join("; "));
        self.0
            .lock()
            .unwrap()
            .push(format!("policy={policy:?} tpm={:?}", cfg.tpm));
        prepared(sys, cfg)
    }
}

const KEY: &[u8] = include_bytes!("../../crates/wyrcan-core/src/trust/testdata/p256.pub.pem");

#[test]
fn the_site_policy_and_pcr_reach_every_pull_and_the_cmdline_wins() {
    let sys = customized(b"console=ttyS0 wyrcan.tpm=required");
    let mut site: wyrcan_core::site::SiteConfig =
        serde_json::from_slice(&sys.get("/etc/wyrcan/config.json").unwrap()).unwrap();
    site.pcr = Some(15);
    sys.put("/etc/wyrcan/config.json", &site.to_json());
    sys.put(
        "/etc/wyrcan/policy.json",
        br#"{"default":[{"type":"reject"}],"transports":{"docker":{"reg.lan:5000/site":[{"type":"sigstoreSigned","keyPath":"/etc/wyrcan/keys/0-k.pub"}]}}}"#,
    );
    sys.put("/etc/wyrcan/keys/0-k.pub", KEY);
    let spy = TrustSpy::default();
    let (parsed, _) = early(&sys);
    run(&sys, &FakeTerm::default(), &spy, parsed, &settings());
    let seen = spy.0.into_inner().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("reg.lan:5000/site"), "{seen:?}");
    assert!(seen[0].contains("pcr: 15, required: true"), "{seen:?}");

    // wyrcan.pcr on the cmdline wins over the site's.
    let sys2 = customized(b"console=ttyS0 wyrcan.pcr=9");
    sys2.put("/etc/wyrcan/config.json", &site.to_json());
    let spy = TrustSpy::default();
    let (parsed, _) = early(&sys2);
    run(&sys2, &FakeTerm::default(), &spy, parsed, &settings());
    let seen = spy.0.into_inner().unwrap();
    assert!(
        seen[0].contains("policy=None") && seen[0].contains("pcr: 9, required: false"),
        "{seen:?}"
    );
}

#[test]
fn a_broken_site_policy_stops_before_the_network() {
    for (policy, key, want) in [
        (
            &br#"{"default":[{"type":"sigstoreSignd"}]}"#[..],
            None,
            "sigstoreSignd",
        ),
        (
            br#"{"default":[{"type":"sigstoreSigned","keyPath":"/etc/wyrcan/keys/0-k.pub"}]}"#,
            None,
            "/etc/wyrcan/keys/0-k.pub",
        ),
        (
            br#"{"default":[{"type":"sigstoreSigned","keyPath":"/etc/wyrcan/keys/0-k.pub"}]}"#,
            Some(&b"not a key"[..]),
            "/etc/wyrcan/keys/0-k.pub",
        ),
    ] {
        let sys = customized(b"console=ttyS0");
        sys.put("/etc/wyrcan/policy.json", policy);
        if let Some(k) = key {
            sys.put("/etc/wyrcan/keys/0-k.pub", k);
        }
        let term = FakeTerm::default();
        let loader = FakeLoader::default();
        flow(&sys, &term, &loader);
        let text = term.text();
        assert!(
            text.contains("site policy") && text.contains(want),
            "{text}"
        );
        assert!(text.contains("customize the boot media again"), "{text}");
        assert!(!sys.calls().iter().any(|c| c.starts_with("link_up")));
        assert!(loader.seen.lock().unwrap().is_empty());
    }
}

#[test]
fn the_clock_is_set_after_the_network_and_before_the_pull() {
    let mut sys = machine(b"console=ttyS0 wyrcan.img=10.0.2.100:5000/os:1 wyrcan.ntp=10.0.2.3");
    *sys.clock.lock().unwrap() = (978_307_200, 0); // 2001: the RTC is wrong
    sys.ntp_time = Some(1_795_000_000);
    let loader = FakeLoader::default();
    flow(&sys, &FakeTerm::default(), &loader);
    let calls = sys.calls();
    assert!(at(&calls, "set_ipv4") < at(&calls, "udp 10.0.2.3:123"));
    assert!(at(&calls, "set_clock 1795000000") < at(&calls, "set_rtc 1795000000"));
    assert!(at(&calls, "set_rtc") < at(&calls, "power Kexec"));
    assert_eq!(loader.seen.lock().unwrap().len(), 1);
}
