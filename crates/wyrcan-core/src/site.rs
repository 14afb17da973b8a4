//! Site configuration baked into the boot media by `wyrcan customize`: a
//! small newc archive of `/etc/wyrcan/` that Linux unpacks over the boot
//! environment's initramfs (archives concatenated to an initrd are applied
//! in order).
//!
//! ```text
//! /etc/wyrcan/            0700
//! ├── config.json         0600  defaults: image, args, insecure, ip, nameservers, proxy
//! ├── auth.json           0600  containers-auth.json(5) / docker config.json, as given
//! ├── ca/NAME.pem         0600  extra CA certificates, trusted beside the bundled roots
//! ├── policy.json         0600  containers-policy.json(5), key paths pointing into keys/
//! └── keys/N-NAME         0600  the public keys the policy names
//! ```
//!
//! Precedence at boot: the cmdline, then the EFI variable, then these
//! defaults; the secrets (auth, CAs, the proxy's userinfo) apply to every
//! image booted, whichever source named it.

use serde::{Deserialize, Serialize};

use crate::cpio::{self, Writer};
use crate::tree::{Meta, Sink};

/// The directory, as an initramfs path.
pub const DIR: &str = "etc/wyrcan";
/// Defaults.
pub const CONFIG: &str = "etc/wyrcan/config.json";
/// Registry credentials.
pub const AUTH: &str = "etc/wyrcan/auth.json";
/// Extra CA certificates, one PEM file each.
pub const CA_DIR: &str = "etc/wyrcan/ca";
/// The trust policy.
pub const POLICY: &str = "etc/wyrcan/policy.json";
/// The policy's public keys.
pub const KEYS_DIR: &str = "etc/wyrcan/keys";
/// The format written and read.
pub const VERSION: u32 = 1;

/// The defaults of `config.json`. Unknown fields are ignored, so newer
/// optional fields need no new version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteConfig {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Default image (`wyrcan.img`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Default `wyrcan.arg` values, with the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Registries allowed over plain HTTP or unverified TLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure: Vec<String>,
    /// `ip=` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip: Vec<String>,
    /// `nameserver=` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// HTTP proxy URL (may hold a password: this file is 0600 and never shown unmasked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Hosts reached without the proxy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_proxy: Vec<String>,
    /// Registry mirrors (`wyrcan.mirror` values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// NTP servers (`wyrcan.ntp` values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp: Vec<String>,
    /// The TPM PCR measured into (`wyrcan.pcr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcr: Option<u32>,
    /// How the next boot holds the tree (`wyrcan.root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<crate::cmdline::RootForm>,
}

/// Why a site configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    /// Not JSON of the expected shape.
    #[error("{CONFIG} is not valid: {0}")]
    Json(String),
    /// Written by a newer Wyrcan.
    #[error("{CONFIG} has format version {0}; this Wyrcan reads version {VERSION}: customize the boot media again with this version")]
    Version(u32),
}

impl SiteConfig {
    /// Compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = self.clone();
        v.version = VERSION;
        // Serializing plain strings and lists cannot fail.
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Parse `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<SiteConfig, SiteError> {
        let c: SiteConfig =
            serde_json::from_slice(bytes).map_err(|e| SiteError::Json(e.to_string()))?;
        if c.version != VERSION {
            return Err(SiteError::Version(c.version));
        }
        Ok(c)
    }
}

/// What goes into the archive.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    /// The defaults.
    pub config: SiteConfig,
    /// `auth.json` as given.
    pub auth: Option<Vec<u8>>,
    /// CA files: (file name without directory, PEM bytes).
    pub cas: Vec<(String, Vec<u8>)>,
    /// `policy.json`, its key paths already pointing into [`KEYS_DIR`].
    pub policy: Option<Vec<u8>>,
    /// Key files: (file name without directory, bytes).
    pub keys: Vec<(String, Vec<u8>)>,
}

const SECRET: Meta = Meta {
    mode: 0o600,
    uid: 0,
    gid: 0,
    mtime: 0,
};
const PRIVATE_DIR: Meta = Meta {
    mode: 0o700,
    uid: 0,
    gid: 0,
    mtime: 0,
};
/// `/etc` already exists in the boot environment; a later directory entry
/// sets its mode, so it keeps the usual one.
const ETC: Meta = Meta {
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtime: 0,
};

/// The uncompressed newc archive of `/etc/wyrcan/` (fixed times and owners:
/// the same inputs give the same bytes).
pub fn archive(c: &Contents) -> std::io::Result<Vec<u8>> {
    let mut w = Writer::new(Vec::new());
    w.dir(b"etc", &ETC)?;
    w.dir(DIR.as_bytes(), &PRIVATE_DIR)?;
    let config = c.config.to_json();
    w.file(
        &[CONFIG.as_bytes().to_vec()],
        &SECRET,
        config.len() as u64,
        &mut &config[..],
    )?;
    if let Some(auth) = &c.auth {
        w.file(
            &[AUTH.as_bytes().to_vec()],
            &SECRET,
            auth.len() as u64,
            &mut &auth[..],
        )?;
    }
    for (dir, files) in [(CA_DIR, &c.cas), (KEYS_DIR, &c.keys)] {
        if files.is_empty() {
            continue;
        }
        w.dir(dir.as_bytes(), &PRIVATE_DIR)?;
        for (name, data) in files {
            let path = format!("{dir}/{name}");
            w.file(
                &[path.into_bytes()],
                &SECRET,
                data.len() as u64,
                &mut &data[..],
            )?;
        }
    }
    if let Some(policy) = &c.policy {
        w.file(
            &[POLICY.as_bytes().to_vec()],
            &SECRET,
            policy.len() as u64,
            &mut &policy[..],
        )?;
    }
    w.finish()
}

/// Read an uncompressed archive written by [`archive`]; `None` if it holds
/// no `config.json`.
pub fn read_archive(data: &[u8]) -> Result<Option<Contents>, SiteError> {
    let entries = cpio::read(data).map_err(|e| SiteError::Json(e.to_string()))?;
    let mut out = Contents::default();
    let mut found = false;
    for e in entries {
        let name = String::from_utf8_lossy(&e.name).into_owned();
        if name == CONFIG {
            out.config = SiteConfig::from_json(&e.data)?;
            found = true;
        } else if name == AUTH {
            out.auth = Some(e.data);
        } else if name == POLICY {
            out.policy = Some(e.data);
        } else if let Some(ca) = name.strip_prefix(&format!("{CA_DIR}/")) {
            out.cas.push((ca.to_string(), e.data));
        } else if let Some(key) = name.strip_prefix(&format!("{KEYS_DIR}/")) {
            out.keys.push((key.to_string(), e.data));
        }
    }
    Ok(found.then_some(out))
}

/// A proxy URL with its password replaced by `***`, for display.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// What an auth file holds, secrets masked: one line per registry with its
/// user name (or "identity token").
pub fn describe_auth(json: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        auths: std::collections::BTreeMap<String, Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        identitytoken: Option<String>,
    }
    let Ok(f) = serde_json::from_slice::<File>(json) else {
        return vec!["(not a valid auth file)".to_string()];
    };
    f.auths
        .into_iter()
        .map(|(host, e)| {
            let user = e.username.or_else(|| {
                let raw = e.auth?;
                let decoded = base64_user(&raw)?;
                Some(decoded)
            });
            match (user, e.identitytoken) {
                (_, Some(_)) => format!("{host}: identity token ***"),
                (Some(u), None) => format!("{host}: user {u}, password ***"),
                (None, None) => format!("{host}: (no credentials)"),
            }
        })
        .collect()
}

/// The user part of a base64 `user:password` (standard alphabet), without
/// a base64 dependency in this crate.
fn base64_user(b64: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b64.trim().bytes().take_while(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    Some(text.split(':').next().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Contents {
        Contents {
            config: SiteConfig {
                version: VERSION,
                image: Some("reg.lan/os:1".into()),
                args: vec!["quiet".into()],
                insecure: vec![],
                ip: vec!["dhcp".into()],
                nameservers: vec!["10.0.0.53".into()],
                proxy: Some("http://u:s3cret@proxy.lan:3128".into()),
                no_proxy: vec![".lan".into()],
                mirrors: vec!["docker.io=http://cache.lan:5000".into()],
                ntp: vec!["time.lan".into()],
                pcr: Some(15),
                root: Some(crate::cmdline::RootForm::Squashfs),
            },
            auth: Some(br#"{"auths":{"reg.lan":{"auth":"dXNlcjpwYXNzd29yZA=="}}}"#.to_vec()),
            cas: vec![("site.pem".into(), b"-----BEGIN CERTIFICATE-----\n".to_vec())],
            policy: Some(br#"{"default":[{"type":"reject"}]}"#.to_vec()),
            keys: vec![(
                "0-cosign.pub".into(),
                b"-----BEGIN PUBLIC KEY-----\n".to_vec(),
            )],
        }
    }

    #[test]
    fn the_archive_round_trips_with_private_modes() {
        let c = sample();
        let bytes = archive(&c).unwrap();
        let entries = cpio::read(&bytes).unwrap();
        let modes: Vec<(String, u32)> = entries
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.name).into_owned(),
                    e.mode & 0o7777,
                )
            })
            .collect();
        assert_eq!(
            modes,
            [
                ("etc".to_string(), 0o755),
                ("etc/wyrcan".to_string(), 0o700),
                (CONFIG.to_string(), 0o600),
                (AUTH.to_string(), 0o600),
                (CA_DIR.to_string(), 0o700),
                ("etc/wyrcan/ca/site.pem".to_string(), 0o600),
                (KEYS_DIR.to_string(), 0o700),
                ("etc/wyrcan/keys/0-cosign.pub".to_string(), 0o600),
                (POLICY.to_string(), 0o600),
            ]
        );
        let back = read_archive(&bytes).unwrap().unwrap();
        assert_eq!(back.config, c.config);
        assert_eq!(back.auth, c.auth);
        assert_eq!(back.cas, c.cas);
        assert_eq!(back.policy, c.policy);
        assert_eq!(back.keys, c.keys);
        // Reproducible.
        assert_eq!(archive(&c).unwrap(), bytes);
    }

    #[test]
    fn versions_and_garbage() {
        let e = SiteConfig::from_json(br#"{"version":9}"#).unwrap_err();
        assert!(e.to_string().contains("format version 9"), "{e}");
        assert!(SiteConfig::from_json(b"nope").is_err());
        let c = SiteConfig::from_json(br#"{"version":1,"image":"x","future":true}"#).unwrap();
        assert_eq!(c.image.as_deref(), Some("x"));
    }

    #[test]
    fn secrets_are_masked_for_display() {
        assert_eq!(
            mask_url("http://u:s3cret@proxy.lan:3128/x"),
            "http://u:***@proxy.lan:3128/x"
        );
        assert_eq!(mask_url("http://proxy.lan:3128"), "http://proxy.lan:3128");
        let lines = describe_auth(sample().auth.as_deref().unwrap());
        assert_eq!(lines, ["reg.lan: user user, password ***"]);
        let lines = describe_auth(
            br#"{"auths":{"a":{"identitytoken":"t0k"},"b":{"username":"bob","password":"pw"}}}"#,
        );
        assert_eq!(
            lines,
            ["a: identity token ***", "b: user bob, password ***"]
        );
        assert!(lines
            .iter()
            .all(|l| !l.contains("t0k") && !l.contains("pw")));
    }
}
