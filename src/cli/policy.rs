//! `--policy FILE` on the host, and what `customize --policy` embeds: a
//! containers-policy.json(5) read whole, its key files loaded (a bad key is
//! reported now, not when an image is checked).

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use wyrcan_core::site;
use wyrcan_core::trust::Policy;
use wyrcan_core::trust::PublicKey;

/// Largest policy file read (a real one is a few KiB).
const MAX_POLICY: u64 = 1 << 20;
/// Largest key file read.
const MAX_KEY: u64 = 64 << 10;

fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {what} {}", path.display()))?
        .len();
    if len > max {
        anyhow::bail!(
            "{what} {} is {len} bytes, more than {max}: is it the right file?",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// Parse `path` and load every key it names.
pub fn load(path: &Path) -> Result<Arc<Policy>> {
    let bytes = read_bounded(path, MAX_POLICY, "--policy")?;
    let mut policy =
        Policy::parse(&bytes).map_err(|e| anyhow!("--policy {}: {e}", path.display()))?;
    policy
        .load_keys(|p| read_bounded(Path::new(p), MAX_KEY, "key").map_err(|e| format!("{e:#}")))
        .map_err(|e| anyhow!("--policy {}: {e}", path.display()))?;
    Ok(Arc::new(policy))
}

/// Files to embed: (name, bytes).
pub type Files = Vec<(String, Vec<u8>)>;

/// The policy as the boot environment gets it: key paths rewritten into
/// `/etc/wyrcan/keys/`, with the key files to put there (each checked to
/// be a public key Wyrcan can use).
pub fn embed(path: &Path) -> Result<(Vec<u8>, Files)> {
    let bytes = read_bounded(path, MAX_POLICY, "--policy")?;
    let policy = Policy::parse(&bytes).map_err(|e| anyhow!("--policy {}: {e}", path.display()))?;
    let mut keys: Vec<(String, String, Vec<u8>)> = Vec::new();
    for p in policy.key_paths() {
        if keys.iter().any(|(orig, _, _)| *orig == p) {
            continue;
        }
        let data = read_bounded(Path::new(&p), MAX_KEY, "key")
            .with_context(|| format!("--policy {}", path.display()))?;
        PublicKey::from_pem(&data)
            .map_err(|e| anyhow!("--policy {}: key {p}: {e}", path.display()))?;
        let base = Path::new(&p)
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .replace(|c: char| !c.is_ascii_graphic() || c == '/', "_")
            })
            .unwrap_or_else(|| "key".into());
        let name = format!("{}-{base}", keys.len());
        keys.push((p, name, data));
    }
    let json = policy.to_json_with_paths(|p| {
        let name = keys
            .iter()
            .find(|(orig, _, _)| orig == p)
            .map(|(_, n, _)| n.clone())
            .unwrap_or_default();
        format!("/{}/{name}", site::KEYS_DIR)
    });
    Ok((json, keys.into_iter().map(|(_, n, d)| (n, d)).collect()))
}

/// What an embedded policy says, one line per rule, keys by fingerprint.
pub fn describe(policy: &[u8], keys: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut policy = match Policy::parse(policy) {
        Ok(p) => p,
        Err(e) => return vec![format!("(unreadable: {e})")],
    };
    let loaded = policy.load_keys(|p| {
        let name = p.rsplit('/').next().unwrap_or(p);
        keys.iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| format!("{p} is not in the archive"))
    });
    let mut out = wyrcan_core::trust::describe(&policy);
    if let Err(e) = loaded {
        out.push(format!("(keys: {e})"));
    }
    out
}
