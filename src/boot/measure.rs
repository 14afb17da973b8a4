//! Measured boot: before kexec, extend one TPM PCR with what is about to
//! run — the manifest digest, the kernel's sha256, the final cmdline and
//! the policy's verdict — and keep the log for `booted.json`, so the
//! booted system can replay it against the PCR it reads. No TPM library:
//! two commands, encoded in `wyrcan_core::trust::tpm`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use wyrcan_core::booted::{Booted, Measured};
use wyrcan_core::trust::tpm::{self, Event};

use crate::sys::Sys;

/// Where the kernel puts TPM 2.0 devices: the resource-managed one first
/// (it shares the TPM with anything else, e.g. a chain-booted Wyrcan).
const DEVICES: [&str; 2] = ["/dev/tpmrm0", "/dev/tpm0"];

/// The PCR extended unless told otherwise. See the trust page: on every
/// path Wyrcan is started by (firmware → GRUB or iPXE, or a direct kernel)
/// nothing before it extends PCR 12, which the UAPI PCR registry gives to
/// systemd-stub's cmdline/credentials measurements — the same kind of
/// thing this is — and a kexec'd kernel runs no stub. So after boot the
/// value depends on Wyrcan's events (and, with a UKI-booted Wyrcan, on the
/// stub's), which is what a disk key sealed to it should depend on.
pub const DEFAULT_PCR: u32 = 12;

/// Measure or not, and how strictly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TpmPlan {
    /// The PCR to extend.
    pub pcr: u32,
    /// Refuse to boot without a TPM (`wyrcan.tpm=required`).
    pub required: bool,
}

impl Default for TpmPlan {
    fn default() -> Self {
        TpmPlan {
            pcr: DEFAULT_PCR,
            required: false,
        }
    }
}

/// The TPM device, if the machine has one.
pub fn find(sys: &dyn Sys) -> Option<PathBuf> {
    DEVICES.iter().map(PathBuf::from).find(|p| sys.exists(p))
}

/// Fail early, before any download, when a TPM is required and absent.
pub fn check_present(sys: &dyn Sys, plan: &TpmPlan) -> Result<()> {
    if plan.required && find(sys).is_none() {
        bail!(
            "wyrcan.tpm=required, but this machine has no TPM 2.0 ({} and {} are missing): \
             enable the TPM in the firmware setup, or boot without wyrcan.tpm=required",
            DEVICES[0],
            DEVICES[1]
        );
    }
    Ok(())
}

/// The events of this boot, in order. `data` is exactly what is hashed.
pub fn events(record: &Booted) -> Vec<Event> {
    let verdict = match &record.policy {
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
        None => "none".to_string(),
    };
    vec![
        Event::new("manifest", record.manifest_digest.clone()),
        Event::new("kernel", format!("sha256:{}", record.kernel.sha256)),
        Event::new("cmdline", record.cmdline.clone()),
        Event::new("verdict", verdict),
    ]
}

/// Read the PCR, extend it with [`events`], and return the log. Without
/// a TPM: an info line and `None` (unless required: an error).
pub fn measure(sys: &dyn Sys, plan: &TpmPlan, record: &Booted) -> Result<Option<Measured>> {
    let Some(dev) = find(sys) else {
        check_present(sys, plan)?;
        tracing::info!("no TPM found: this boot is not measured");
        return Ok(None);
    };
    let pcr = plan.pcr;
    let initial = read_pcr(sys, &dev, pcr)?;
    let events = events(record);
    for e in &events {
        let digest = e.measurement();
        let resp = sys
            .tpm_transact(&dev, &tpm::pcr_extend_command(pcr, &digest))
            .with_context(|| format!("extending PCR {pcr} through {}", dev.display()))?;
        tpm::check_response(&resp).with_context(|| {
            format!("extending PCR {pcr} through {} ({})", dev.display(), e.kind)
        })?;
    }
    let expected = tpm::replay(&initial, &events);
    let now = read_pcr(sys, &dev, pcr)?;
    if now != expected {
        // Something else extended it meanwhile: the log would not replay.
        tracing::warn!(
            "PCR {pcr} reads {} after measuring, the log replays to {}: something else extended it",
            hex(&now),
            hex(&expected)
        );
    }
    tracing::info!(
        "measured {} events into PCR {pcr} of {}: {}",
        events.len(),
        dev.display(),
        hex(&now)
    );
    Ok(Some(Measured {
        pcr,
        initial: hex(&initial),
        events,
    }))
}

fn read_pcr(sys: &dyn Sys, dev: &Path, pcr: u32) -> Result<[u8; 32]> {
    let resp = sys
        .tpm_transact(dev, &tpm::pcr_read_command(pcr))
        .with_context(|| format!("reading PCR {pcr} through {}", dev.display()))?;
    tpm::parse_pcr_read_response(&resp, pcr)
        .with_context(|| format!("reading PCR {pcr} through {}", dev.display()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;
    use wyrcan_core::booted::Kernel;

    fn record() -> Booted {
        Booted {
            version: 1,
            reference: "reg.lan/os:1".into(),
            registry: "reg.lan".into(),
            repository: "os".into(),
            manifest_digest: format!("sha256:{}", "ab".repeat(32)),
            platform: "linux/amd64".into(),
            kernel: Kernel {
                path: "/boot/vmlinuz".into(),
                sha256: "cd".repeat(32),
            },
            cmdline: "console=ttyS0 quiet".into(),
            wyrcan_version: "0".into(),
            time: "1970-01-01T00:00:00Z".into(),
            policy: None,
            tpm: None,
        }
    }

    #[test]
    fn the_log_replays_to_what_the_tpm_holds() {
        let sys = FakeSys::with_cmdline(b"");
        sys.put("/dev/tpmrm0", b"");
        // A PCR that firmware already extended: the log starts from it.
        sys.tpm.lock().unwrap().insert(12, [7; 32]);
        let m = measure(&sys, &TpmPlan::default(), &record())
            .unwrap()
            .unwrap();
        assert_eq!(m.pcr, 12);
        assert_eq!(m.initial, "07".repeat(32));
        let kinds: Vec<&str> = m.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["manifest", "kernel", "cmdline", "verdict"]);
        assert_eq!(m.events[2].data, "console=ttyS0 quiet");
        assert_eq!(m.events[3].data, "none");
        let now = sys.tpm.lock().unwrap()[&12];
        assert_eq!(tpm::replay(&[7; 32], &m.events), now);
        let calls = sys.calls();
        // One read before, four extends, one read after.
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.starts_with("tpm /dev/tpmrm0"))
                .count(),
            6
        );
    }

    #[test]
    fn another_pcr_and_the_older_device() {
        let sys = FakeSys::with_cmdline(b"");
        sys.put("/dev/tpm0", b"");
        let plan = TpmPlan {
            pcr: 23,
            required: true,
        };
        let m = measure(&sys, &plan, &record()).unwrap().unwrap();
        assert_eq!(m.pcr, 23);
        assert!(sys.tpm.lock().unwrap().contains_key(&23));
        assert!(sys.calls().iter().all(|c| !c.contains("tpmrm0")));
    }

    #[test]
    fn a_tpm_that_errors_is_an_error_for_the_caller_to_weigh() {
        let sys = FakeSys::with_cmdline(b"");
        sys.put("/dev/tpmrm0", b"");
        // The fake answers only PCR_Read and PCR_Extend of PCR 0..=23.
        let plan = TpmPlan {
            pcr: 24,
            required: false,
        };
        assert!(measure(&sys, &plan, &record()).is_err());
    }

    #[test]
    fn without_a_tpm_it_goes_on_unless_required() {
        let sys = FakeSys::with_cmdline(b"");
        assert!(measure(&sys, &TpmPlan::default(), &record())
            .unwrap()
            .is_none());
        let plan = TpmPlan {
            pcr: 12,
            required: true,
        };
        let e = check_present(&sys, &plan).unwrap_err().to_string();
        assert!(e.contains("wyrcan.tpm=required"), "{e}");
        assert!(measure(&sys, &plan, &record()).is_err());
    }
}
