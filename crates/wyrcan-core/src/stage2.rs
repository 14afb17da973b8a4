//! `/wyrcan/stage2.json`: what the stage-2 `/init` of a squashfs-root
//! initrd (`wyrcan.root=squashfs`) needs to know, written by the generator
//! beside the squashfs and read by the same wyrcan binary running as the
//! image kernel's PID 1.
//!
//! ```json
//! {
//!   "version": 1,
//!   "image": "reg.lan/os:1@sha256:…",        // for messages only
//!   "root": "/wyrcan/root.squashfs",
//!   "modules": ["/wyrcan/modules/loop.ko.xz", …],   // load order
//!   "init": "/sbin/init",                    // inside the image's tree
//!   "countdown_secs": 30,                    // before a reboot on failure
//!   "overlay_size": "50%"                    // optional: tmpfs size= of the writable layer
//! }
//! ```
//!
//! Unknown fields and other versions are refused: the file and the binary
//! reading it come out of one `wyrcan` run, so a mismatch means a damaged
//! or foreign initrd, never an older writer to be lenient with.

use serde::{Deserialize, Serialize};

/// Where the generator puts the file and stage 2 reads it.
pub const CONFIG_PATH: &str = "/wyrcan/stage2.json";
/// Where the generator puts the image's tree.
pub const ROOT_PATH: &str = "/wyrcan/root.squashfs";
/// Where the generator puts the modules to load first.
pub const MODULES_DIR: &str = "/wyrcan/modules";
/// The format version this wyrcan writes and reads.
pub const VERSION: u32 = 1;

/// The stage-2 configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage2Config {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The image, `reference@digest`, for messages.
    pub image: String,
    /// The squashfs inside the initrd (absolute).
    pub root: String,
    /// Modules to load before the loop attach, absolute paths in order.
    pub modules: Vec<String>,
    /// The image's init, absolute inside the image's tree.
    pub init: String,
    /// Seconds of countdown before a reboot after a failure.
    pub countdown_secs: u32,
    /// The writable layer's tmpfs `size=` (`512m`, `50%`); none: the
    /// kernel's default (half of RAM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_size: Option<String>,
}

/// Why a stage-2 config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stage2Error {
    /// Not JSON of the expected shape.
    #[error("{CONFIG_PATH} is not a stage-2 config ({reason})")]
    Json {
        /// What the JSON parser said (field names, line and column).
        reason: String,
    },
    /// A version this wyrcan does not read.
    #[error("{CONFIG_PATH} is version {found}, this wyrcan reads version {VERSION}")]
    Version {
        /// The version found.
        found: u64,
    },
    /// A field with a value stage 2 cannot use.
    #[error("{CONFIG_PATH}: {field} {value:?} {reason}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[derive(Deserialize)]
struct Versioned {
    version: u64,
}

impl Stage2Config {
    /// The config for `image` with the generator's fixed paths.
    pub fn new(image: &str, modules: Vec<String>, init: &str, countdown_secs: u32) -> Self {
        Stage2Config {
            version: VERSION,
            image: image.to_string(),
            root: ROOT_PATH.to_string(),
            modules,
            init: init.to_string(),
            countdown_secs,
            overlay_size: None,
        }
    }

    /// Read and check the file's bytes.
    pub fn parse(json: &[u8]) -> Result<Self, Stage2Error> {
        let bad = |e: serde_json::Error| Stage2Error::Json {
            reason: e.to_string(),
        };
        // The version first: a newer format's other fields would only
        // confuse the message.
        let Versioned { version } = serde_json::from_slice(json).map_err(bad)?;
        if version != u64::from(VERSION) {
            return Err(Stage2Error::Version { found: version });
        }
        let c: Stage2Config = serde_json::from_slice(json).map_err(bad)?;
        c.check()?;
        Ok(c)
    }

    /// The file's bytes (pretty, with a final newline).
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and lists of strings always serialize.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    fn check(&self) -> Result<(), Stage2Error> {
        let field = |field, value: &str, reason| Stage2Error::Field {
            field,
            value: value.to_string(),
            reason,
        };
        check_path("root", &self.root)?;
        check_path("init", &self.init)?;
        if self.init == "/" {
            return Err(field("init", &self.init, "names no file"));
        }
        for m in &self.modules {
            check_path("modules", m)?;
        }
        if let Some(size) = &self.overlay_size {
            // It goes into a mount option string: a comma would add options.
            let digits = size.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', 't', 'T', '%']);
            if digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || size.len() - digits.len() > 1
            {
                return Err(field(
                    "overlay_size",
                    size,
                    "is not a tmpfs size (a number, optionally followed by k, m, g, t or %)",
                ));
            }
        }
        Ok(())
    }
}

/// Absolute, without `..`, NUL or empty components: paths stage 2 hands to
/// the kernel or resolves inside the new root must mean one file only.
fn check_path(field: &'static str, p: &str) -> Result<(), Stage2Error> {
    let reason = if !p.starts_with('/') {
        Some("is not an absolute path")
    } else if p.contains('\0') {
        Some("holds a NUL byte")
    } else if p.split('/').any(|c| c == "..") {
        Some("holds a .. component")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Stage2Error::Field {
            field,
            value: p.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stage2Config {
        Stage2Config {
            overlay_size: Some("50%".into()),
            ..Stage2Config::new(
                "reg.lan/os:1@sha256:ab",
                vec!["/wyrcan/modules/loop.ko.xz".into()],
                "/sbin/init",
                30,
            )
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(Stage2Config::parse(&c.to_json()).unwrap(), c);
        let plain = Stage2Config::new("x@sha256:ab", vec![], "/init", 5);
        let json = String::from_utf8(plain.to_json()).unwrap();
        assert!(!json.contains("overlay_size"), "{json}");
        assert_eq!(Stage2Config::parse(json.as_bytes()).unwrap(), plain);
    }

    #[test]
    fn the_documented_shape() {
        let json = br#"{"version": 1, "image": "reg.lan/os:1@sha256:ab",
            "root": "/wyrcan/root.squashfs", "modules": ["/wyrcan/modules/squashfs.ko"],
            "init": "/sbin/init", "countdown_secs": 30}"#;
        let c = Stage2Config::parse(json).unwrap();
        assert_eq!(c.root, ROOT_PATH);
        assert_eq!(c.modules, ["/wyrcan/modules/squashfs.ko"]);
        assert_eq!(c.overlay_size, None);
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["colour"] = "blue".into();
        let e = Stage2Config::parse(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        assert!(e.to_string().starts_with(CONFIG_PATH), "{e}");

        let e = Stage2Config::parse(br#"{"version": 2, "whatever": true}"#).unwrap_err();
        assert_eq!(e, Stage2Error::Version { found: 2 });
        assert_eq!(
            e.to_string(),
            "/wyrcan/stage2.json is version 2, this wyrcan reads version 1"
        );

        let e = Stage2Config::parse(br#"{"version": 1, "image": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
        for bad in [&b""[..], b"[]", b"{\"version\": \"1\"}", b"\xff"] {
            assert!(matches!(
                Stage2Config::parse(bad),
                Err(Stage2Error::Json { .. })
            ));
        }
    }

    #[test]
    fn paths_must_be_absolute_and_plain() {
        type Set = fn(&mut Stage2Config, String);
        let cases: &[(&str, Set)] = &[
            ("root", |c, p| c.root = p),
            ("init", |c, p| c.init = p),
            ("modules", |c, p| c.modules.push(p)),
        ];
        for (field, set) in cases {
            for p in ["sbin/init", "/../etc/x", "/a/../../b", "/a\0b", ""] {
                let mut c = sample();
                set(&mut c, p.to_string());
                match Stage2Config::parse(&c.to_json()) {
                    Err(Stage2Error::Field { field: f, .. }) => assert_eq!(f, *field, "{p:?}"),
                    other => panic!("{field} {p:?}: {other:?}"),
                }
            }
        }
        let mut c = sample();
        c.init = "/".into();
        assert!(Stage2Config::parse(&c.to_json()).is_err());
    }

    #[test]
    fn overlay_sizes() {
        for ok in ["512m", "2G", "50%", "1048576", "10k", "1t"] {
            let mut c = sample();
            c.overlay_size = Some(ok.into());
            assert_eq!(Stage2Config::parse(&c.to_json()).unwrap(), c, "{ok}");
        }
        for bad in ["", "m", "1,mode=0777", "1mm", "-1", "1 g", "1x"] {
            let mut c = sample();
            c.overlay_size = Some(bad.into());
            let e = Stage2Config::parse(&c.to_json()).unwrap_err();
            assert!(e.to_string().contains("overlay_size"), "{bad}: {e}");
        }
    }
}
