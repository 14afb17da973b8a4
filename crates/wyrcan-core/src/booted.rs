//! `/etc/wyrcan/booted.json`: what the booted system was booted from,
//! written by Wyrcan into the initrd it builds (a last archive appended
//! after the image's own, so a chain-booted Wyrcan's record replaces the
//! first one). Never holds a credential.
//!
//! ```json
//! {
//!   "version": 1,
//!   "reference": "reg.lan/os:1",             // as given
//!   "registry": "reg.lan",                   // resolved
//!   "repository": "os",
//!   "manifest_digest": "sha256:…",           // the platform manifest booted
//!   "platform": "linux/amd64",
//!   "kernel": {"path": "/boot/vmlinuz-6.1.0", "sha256": "…"},
//!   "cmdline": "console=ttyS0 quiet",         // the next kernel's, as loaded
//!   "wyrcan_version": "0.1.0",
//!   "time": "2026-11-30T03:40:00Z",          // when the initrd was built (UTC)
//!   "policy": {"scope": "reg.lan/os", "requirement": "sigstoreSigned",
//!              "key": "sha256:…", "identity": "reg.lan/os:1", …},  // with a policy
//!   "tpm": {"pcr": 12, "initial": "00…00",   // with a TPM: the PCR before
//!           "events": [{"kind": "manifest", "data": "…", "digest": "sha256:…"}, …]}
//! }
//! ```
//!
//! `tpm.events` replay from `tpm.initial` (`pcr = sha256(pcr ‖ digest)`
//! for each) to the value the booted system reads from
//! `/sys/class/tpm/tpm0/pcr-sha256/<pcr>`; `data` is exactly the bytes
//! whose sha256 was extended.

use serde::Serialize;

use crate::trust::tpm::Event;
use crate::trust::Verdict;

/// Where it goes, as an initramfs path.
pub const PATH: &str = "etc/wyrcan/booted.json";

/// The record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Booted {
    /// Format version (1).
    pub version: u32,
    /// The reference as the user gave it.
    pub reference: String,
    /// The registry, resolved (`docker.io` for short names).
    pub registry: String,
    /// The repository path.
    pub repository: String,
    /// Digest of the platform manifest that was booted.
    pub manifest_digest: String,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The kernel.
    pub kernel: Kernel,
    /// The next kernel's cmdline (credentials never reach it).
    pub cmdline: String,
    /// Wyrcan's version.
    pub wyrcan_version: String,
    /// When the initrd was built, RFC 3339 in UTC.
    pub time: String,
    /// What the trust policy decided, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Verdict>,
    /// What was measured into the TPM, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<Measured>,
}

/// The measured boot record: enough for the booted system to replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measured {
    /// The PCR extended.
    pub pcr: u32,
    /// Its SHA-256 bank value before the first event, hex.
    pub initial: String,
    /// The events, in the order extended.
    pub events: Vec<Event>,
}

/// The kernel booted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kernel {
    /// Absolute path in the image.
    pub path: String,
    /// sha256 of its bytes, hex.
    pub sha256: String,
}

impl Booted {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// A UTC date and time, broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Second, 0–59.
    pub second: u32,
}

/// Seconds since the epoch as a UTC date and time (Howard Hinnant's
/// days-to-civil algorithm); the clock is the caller's.
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: if m <= 2 { y + 1 } else { y },
        month: m as u32,
        day: d as u32,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
    }
}

/// Seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`); the
/// clock is the caller's, this crate reads none.
pub fn rfc3339(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn json_shape() {
        let b = Booted {
            version: 1,
            reference: "os:1".into(),
            registry: "docker.io".into(),
            repository: "library/os".into(),
            manifest_digest: "sha256:00".into(),
            platform: "linux/amd64".into(),
            kernel: Kernel {
                path: "/boot/vmlinuz".into(),
                sha256: "ab".into(),
            },
            cmdline: "quiet".into(),
            wyrcan_version: "0.1.0".into(),
            time: rfc3339(0),
            policy: None,
            tpm: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&b.to_json()).unwrap();
        assert_eq!(v["kernel"]["sha256"], "ab");
        assert_eq!(v["manifest_digest"], "sha256:00");
        assert_eq!(v["version"], 1);
        // Without a policy or a TPM, no such keys (older readers see the same record).
        assert!(v.get("policy").is_none() && v.get("tpm").is_none());
        let b = Booted {
            tpm: Some(Measured {
                pcr: 12,
                initial: "00".repeat(32),
                events: vec![Event::new("cmdline", "quiet".into())],
            }),
            ..b
        };
        let v: serde_json::Value = serde_json::from_slice(&b.to_json()).unwrap();
        assert_eq!(v["tpm"]["pcr"], 12);
        assert_eq!(v["tpm"]["events"][0]["data"], "quiet");
        assert!(v["tpm"]["events"][0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"));
    }
}
