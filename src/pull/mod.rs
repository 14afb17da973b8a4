//! Pulling an image: reference → manifest (through an index if needed) →
//! config → layers downloaded in parallel into a scratch directory, each
//! verified against its digest and then indexed (first flattening pass).
//! Shared by every host command and by PID 1; the options are the one
//! [`PullOptions`] type.

mod layers;
pub mod limits;
mod resolve;
pub mod trust;

use anyhow::{Context, Result};
use wyrcan_core::manifest::Platform;
use wyrcan_core::reference::Reference;

pub use layers::{decoder, fetch_layers, LocalLayer};
pub use limits::{MAX_LAYERS, MAX_LAYER_SIZE};
pub use resolve::{check_config, resolve, Resolved};

use crate::progress::{human, Progress};
use crate::registry::Client;
pub use crate::registry::{CredentialSource, PullOptions};

/// Everything a pull leaves for the flattening: resolved manifest, local
/// verified layers, and the scratch directory that holds them.
pub struct Pulled {
    /// The resolved image.
    pub resolved: Resolved,
    /// Verified, indexed layers.
    pub layers: Vec<LocalLayer>,
    /// Deleted on drop.
    pub scratch: tempfile::TempDir,
}

/// Resolve, download, verify and index.
pub fn pull(reference: &Reference, opts: &PullOptions, progress: &Progress) -> Result<Pulled> {
    pull_checked(reference, opts, progress, |_| Ok(()))
}

/// [`pull`], with `check` run on the resolved manifest before any layer
/// is downloaded (the boot environment compares sizes with its RAM there).
/// Before either, [`resolve`] has refused a manifest over the layer limits
/// ([`limits::check_manifest`]), so no blob of such an image is requested.
pub fn pull_checked(
    reference: &Reference,
    opts: &PullOptions,
    progress: &Progress,
    check: impl FnOnce(&Resolved) -> Result<()>,
) -> Result<Pulled> {
    let platform = opts.platform.clone().unwrap_or_else(Platform::current);
    let client = Client::new(reference, opts)?;
    let resolved = resolve_trusted(&client, reference, &platform, opts)?;
    check_config(&client, &resolved, &platform)?;
    check(&resolved)?;
    let total: u64 = resolved.manifest.layers.iter().map(|l| l.size).sum();
    let n = resolved.manifest.layers.len();
    tracing::info!(
        "{reference}: manifest {}, {n} layer{}, {} to download",
        resolved.manifest_digest.short(),
        if n == 1 { "" } else { "s" },
        human(total)
    );
    let scratch = match &opts.tmpdir {
        Some(d) => tempfile::Builder::new().prefix("wyrcan-").tempdir_in(d),
        None => tempfile::Builder::new().prefix("wyrcan-").tempdir(),
    }
    .context("creating a scratch directory for the layers (set --tmpdir or TMPDIR)")?;
    let layers = fetch_layers(
        &client,
        &resolved,
        scratch.path(),
        opts.keep_partial.as_deref(),
        opts.jobs,
        opts.max_entries,
        progress,
    )?;
    Ok(Pulled {
        resolved,
        layers,
        scratch,
    })
}

/// Resolve an image to its manifest without downloading layers: proves
/// the reference, the registry access, the platform and (with a policy)
/// the signatures are right.
pub fn resolve_only(reference: &Reference, opts: &PullOptions) -> Result<Resolved> {
    let platform = opts.platform.clone().unwrap_or_else(Platform::current);
    let client = Client::new(reference, opts)?;
    resolve_trusted(&client, reference, &platform, opts)
}

/// [`resolve`], then the policy (if any) on what it resolved to: an image
/// the policy refuses fails here, before any blob is requested.
fn resolve_trusted(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    opts: &PullOptions,
) -> Result<Resolved> {
    let mut resolved = resolve(client, reference, platform)?;
    if let Some(policy) = &opts.policy {
        resolved.verdict = Some(trust::verify(
            client,
            policy,
            reference,
            &resolved.top_digest,
            &resolved.manifest_digest,
        )?);
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port on loopback that nothing listens on (bound, then closed).
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn a_refused_connection_says_what_to_check_and_names_the_image_once() {
        let port = closed_port();
        let image = format!("127.0.0.1:{port}/os:1");
        let reference: Reference = image.parse().unwrap();
        let opts = PullOptions {
            insecure: vec![format!("127.0.0.1:{port}")],
            system_roots: false,
            credentials: CredentialSource::Anonymous,
            proxy_env: false,
            retries: 1,
            backoff: std::time::Duration::from_millis(1),
            ..PullOptions::default()
        };
        let e = format!("{:#}", resolve_only(&reference, &opts).unwrap_err());
        assert!(
            e.contains(&format!("cannot connect to 127.0.0.1:{port}")),
            "{e}"
        );
        assert!(e.contains("check that a registry runs there"), "{e}");
        assert_eq!(e.matches(&image).count(), 1, "the image is named once: {e}");
        assert_eq!(e.matches("giving up after 2 attempts").count(), 1, "{e}");
    }
}
