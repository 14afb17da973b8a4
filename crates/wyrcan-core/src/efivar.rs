//! The config Wyrcan stores in EFI NVRAM (DESIGN §2) and the efivarfs file
//! format around it, plus the UTF-16 strings systemd-boot keeps in its own
//! variables.
//!
//! An efivarfs file is the variable's 4-byte little-endian attributes
//! followed by its value. Wyrcan's value is versioned JSON, so a config
//! written by one Wyrcan is either read correctly by another or refused
//! with a clear message, never half-understood. Reading and writing the
//! files (and clearing their immutable flag) is the caller's business.

use serde::{Deserialize, Serialize};

use crate::cmdline::WyrcanArgs;

/// The variable's name.
pub const VAR_NAME: &str = "Wyrcan";
/// The variable's vendor GUID (Wyrcan's own).
pub const VAR_GUID: &str = "6987e713-a5ff-4ec2-ad55-c1fca471ed2d";
/// `EFI_VARIABLE_NON_VOLATILE`: survives a power cycle.
pub const NON_VOLATILE: u32 = 0x1;
/// `EFI_VARIABLE_BOOTSERVICE_ACCESS`: visible before `ExitBootServices`.
pub const BOOTSERVICE_ACCESS: u32 = 0x2;
/// `EFI_VARIABLE_RUNTIME_ACCESS`: visible to the OS (needed for efivarfs to see it at all).
pub const RUNTIME_ACCESS: u32 = 0x4;
/// The attributes Wyrcan writes its variable with: non-volatile + boot-service + runtime.
pub const ATTRIBUTES: u32 = NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS;
/// The config format this code writes and reads.
pub const VERSION: u32 = 1;

/// Said before every write: the same warning the boot environment shows.
pub const FIRMWARE_WARNING: &str = "\
Wyrcan is about to write a variable into this machine's EFI NVRAM. Some
firmware handles variable writes badly (rarely, it stops booting until a
reset of the NVRAM/CMOS). Every later boot without wyrcan.img will use it.";

/// The efivarfs file name of Wyrcan's variable: `Wyrcan-6987e713-a5ff-4ec2-ad55-c1fca471ed2d`.
pub fn file_name() -> String {
    format!("{VAR_NAME}-{VAR_GUID}")
}

/// Why a stored variable cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EfiError {
    /// Fewer bytes than the attributes field.
    #[error(
        "efivarfs file is {len} bytes: expected at least 4 (the attributes) followed by the value"
    )]
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// The value is not JSON of the expected shape.
    #[error("EFI variable {} does not hold a wyrcan config ({reason}): clear it with wyrcan.efi=clear and write it again", file_name())]
    Json {
        /// What the JSON parser said.
        reason: String,
    },
    /// A config format this Wyrcan does not know.
    #[error("EFI variable {} holds a version {found} config and this wyrcan reads version 1: boot a newer wyrcan, or clear it with wyrcan.efi=clear", file_name())]
    Version {
        /// The version found.
        found: u64,
    },
    /// A config without an image to boot.
    #[error("EFI variable {} holds a config with an empty image: write it again with wyrcan.img=<image> wyrcan.efi=write", file_name())]
    NoImage,
}

/// An efivarfs file's bytes for a value: [`ATTRIBUTES`] (little-endian), then the value.
pub fn encode_file(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&ATTRIBUTES.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits an efivarfs file into its attributes and its value.
pub fn decode_file(bytes: &[u8]) -> Result<(u32, &[u8]), EfiError> {
    match bytes {
        [a, b, c, d, payload @ ..] => Ok((u32::from_le_bytes([*a, *b, *c, *d]), payload)),
        _ => Err(EfiError::TooShort { len: bytes.len() }),
    }
}

/// Everything needed to boot without a cmdline: every `wyrcan.*` setting
/// but `wyrcan.efi` itself, and the network settings (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConfig {
    /// `wyrcan.img`: the image to boot (never empty).
    pub img: String,
    /// `wyrcan.arg` values, in order.
    pub args: Vec<String>,
    /// `wyrcan.insecure` registries.
    pub insecure: Vec<String>,
    /// `ip=` values, as written on the cmdline.
    pub ip: Vec<String>,
    /// `nameserver=` values, as written on the cmdline.
    pub nameservers: Vec<String>,
}

/// The JSON shape of version 1. Lists may be missing (empty); unknown
/// fields are ignored, so adding an optional field needs no new version.
#[derive(Serialize, Deserialize)]
struct V1 {
    version: u32,
    img: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    insecure: Vec<String>,
    #[serde(default)]
    ip: Vec<String>,
    #[serde(default)]
    nameservers: Vec<String>,
}

/// Just the version, read first so a newer format is refused by its number
/// rather than by whatever field happens to differ.
#[derive(Deserialize)]
struct Versioned {
    version: u64,
}

impl StoredConfig {
    /// The config to store for a cmdline's settings; `None` if it names no image.
    pub fn from_args(args: &WyrcanArgs) -> Option<StoredConfig> {
        let img = args.img.as_ref().filter(|i| !i.is_empty())?;
        Some(StoredConfig {
            img: img.clone(),
            args: args.args.clone(),
            insecure: args.insecure.clone(),
            ip: args.ip.clone(),
            nameservers: args.nameservers.clone(),
        })
    }

    /// The settings as if they had been on the cmdline (no `wyrcan.efi`, no
    /// debug, no console: those belong to the boot at hand, not the stored config).
    pub fn into_args(self) -> WyrcanArgs {
        WyrcanArgs {
            img: Some(self.img),
            args: self.args,
            insecure: self.insecure,
            ip: self.ip,
            nameservers: self.nameservers,
            ..WyrcanArgs::default()
        }
    }

    /// The JSON value: `{"version":1,"img":…,"args":[…],"insecure":[…],"ip":[…],"nameservers":[…]}`,
    /// compact because NVRAM is small.
    pub fn to_json(&self) -> String {
        let v1 = V1 {
            version: VERSION,
            img: self.img.clone(),
            args: self.args.clone(),
            insecure: self.insecure.clone(),
            ip: self.ip.clone(),
            nameservers: self.nameservers.clone(),
        };
        // Strings and lists of strings always serialize.
        serde_json::to_string(&v1).unwrap_or_default()
    }

    /// Reads the JSON value, refusing other versions and an empty image.
    pub fn from_json(json: &[u8]) -> Result<StoredConfig, EfiError> {
        let bad = |e: serde_json::Error| EfiError::Json {
            reason: e.to_string(),
        };
        let Versioned { version } = serde_json::from_slice(json).map_err(bad)?;
        if version != u64::from(VERSION) {
            return Err(EfiError::Version { found: version });
        }
        let v1: V1 = serde_json::from_slice(json).map_err(bad)?;
        if v1.img.is_empty() {
            return Err(EfiError::NoImage);
        }
        Ok(StoredConfig {
            img: v1.img,
            args: v1.args,
            insecure: v1.insecure,
            ip: v1.ip,
            nameservers: v1.nameservers,
        })
    }

    /// The whole efivarfs file to write: attributes, then the JSON.
    pub fn to_file(&self) -> Vec<u8> {
        encode_file(self.to_json().as_bytes())
    }

    /// Reads an efivarfs file written by [`to_file`](StoredConfig::to_file)
    /// (the attributes are not checked: the firmware enforces them).
    pub fn from_file(bytes: &[u8]) -> Result<StoredConfig, EfiError> {
        StoredConfig::from_json(decode_file(bytes)?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn sample() -> StoredConfig {
        StoredConfig {
            img: "10.0.2.100:5000/os:1".into(),
            args: strings(&["quiet log_buf_len=1M", "foo=\"x y\""]),
            insecure: strings(&["10.0.2.100:5000"]),
            ip: strings(&["10.0.0.2::10.0.0.1:255.255.255.0:box:eth1:none"]),
            nameservers: strings(&["1.1.1.1"]),
        }
    }

    #[test]
    fn names_and_attributes() {
        assert_eq!(file_name(), "Wyrcan-6987e713-a5ff-4ec2-ad55-c1fca471ed2d");
        assert_eq!(ATTRIBUTES, 7);
    }

    #[test]
    fn file_codec() {
        let f = encode_file(b"{}");
        assert_eq!(f, [7, 0, 0, 0, b'{', b'}']);
        assert_eq!(decode_file(&f), Ok((7, &b"{}"[..])));
        assert_eq!(decode_file(&[7, 0, 0, 0]), Ok((7, &b""[..])));
        assert_eq!(
            decode_file(&[6, 0, 0, 0x80, 1]),
            Ok((0x8000_0006, &[1u8][..]))
        );
        for short in [&[][..], &[7], &[7, 0, 0]] {
            assert_eq!(
                decode_file(short),
                Err(EfiError::TooShort { len: short.len() })
            );
        }
    }

    #[test]
    fn json_is_versioned_and_round_trips() {
        let c = sample();
        let json = c.to_json();
        assert!(
            json.starts_with("{\"version\":1,\"img\":\"10.0.2.100:5000/os:1\""),
            "{json}"
        );
        assert_eq!(StoredConfig::from_json(json.as_bytes()), Ok(c.clone()));
        assert_eq!(StoredConfig::from_file(&c.to_file()), Ok(c.clone()));
        assert_eq!(&c.to_file()[..4], &[7, 0, 0, 0]);
    }

    #[test]
    fn json_table() {
        let minimal = StoredConfig {
            img: "busybox".into(),
            args: vec![],
            insecure: vec![],
            ip: vec![],
            nameservers: vec![],
        };
        let ok: &[(&str, &StoredConfig)] = &[
            (r#"{"version":1,"img":"busybox"}"#, &minimal),
            // Fields a later version 1 writer may add are ignored.
            (
                r#"{"img":"busybox","future":{"x":1},"version":1}"#,
                &minimal,
            ),
        ];
        for (json, want) in ok {
            assert_eq!(
                StoredConfig::from_json(json.as_bytes()).as_ref(),
                Ok(*want),
                "{json}"
            );
        }
        assert_eq!(
            StoredConfig::from_json(br#"{"version":2,"img":"busybox"}"#),
            Err(EfiError::Version { found: 2 })
        );
        assert_eq!(
            StoredConfig::from_json(br#"{"version":1,"img":""}"#),
            Err(EfiError::NoImage)
        );
        for bad in [
            &b""[..],
            b"\x00\x01",
            b"null",
            br#"{"img":"busybox"}"#,
            br#"{"version":"1","img":"busybox"}"#,
            br#"{"version":-1,"img":"busybox"}"#,
            br#"{"version":1}"#,
            br#"{"version":1,"img":"x","args":"not a list"}"#,
            br#"{"version":1,"img":"x""#,
        ] {
            assert!(
                matches!(StoredConfig::from_json(bad), Err(EfiError::Json { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn error_messages_name_the_variable_and_the_fix() {
        let e = StoredConfig::from_json(br#"{"version":9,"img":"x"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "EFI variable Wyrcan-6987e713-a5ff-4ec2-ad55-c1fca471ed2d holds a version 9 config and this wyrcan reads version 1: boot a newer wyrcan, or clear it with wyrcan.efi=clear"
        );
        let e = StoredConfig::from_json(b"garbage").unwrap_err().to_string();
        assert!(
            e.contains("Wyrcan-6987e713") && e.contains("wyrcan.efi=clear"),
            "{e}"
        );
    }

    #[test]
    fn args_round_trip() {
        let cmdline = WyrcanArgs::from_cmdline(
            "console=ttyS0 wyrcan.img=10.0.2.100:5000/os:1 wyrcan.efi=write wyrcan.debug \
             wyrcan.arg=\"quiet log_buf_len=1M\" wyr.arg=foo=\"x y\" wyrcan.insecure=10.0.2.100:5000 \
             ip=10.0.0.2::10.0.0.1:255.255.255.0:box:eth1:none nameserver=1.1.1.1",
        )
        .unwrap();
        let stored = StoredConfig::from_args(&cmdline).unwrap();
        assert_eq!(stored, sample());
        let back = StoredConfig::from_json(stored.to_json().as_bytes())
            .unwrap()
            .into_args();
        assert_eq!(
            back,
            WyrcanArgs {
                efi: None,
                debug: false,
                console: vec![],
                ..cmdline
            }
        );
        assert_eq!(StoredConfig::from_args(&WyrcanArgs::default()), None);
        let empty = WyrcanArgs {
            img: Some(String::new()),
            ..WyrcanArgs::default()
        };
        assert_eq!(StoredConfig::from_args(&empty), None);
    }
}
