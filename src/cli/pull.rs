//! The pull flags every pulling command shares, and how they become the
//! library's one [`PullOptions`].

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use wyrcan_core::manifest::Platform;
use wyrcan_core::proxy::{self, NoProxy, ProxyUrl};
use wyrcan_core::reference::Reference;

use crate::pull::{CredentialSource, PullOptions};
use crate::registry::Credentials;

/// How to reach the registry; shared by every pulling command.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Allow plain HTTP or unverified TLS to this registry (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Trust this PEM CA bundle in addition to the system roots (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Pick this platform from a multi-arch image [default: this machine's].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Registry credentials; otherwise docker/podman auth files are read.
    #[arg(long, value_name = "USER:PASS")]
    pub creds: Option<String>,
    /// Send requests through this HTTP proxy, http://[USER:PASS@]HOST:PORT
    /// (HTTPS tunnelled with CONNECT) [default: $HTTPS_PROXY / $HTTP_PROXY /
    /// $ALL_PROXY]. Loopback hosts always go direct.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Hosts that go direct, comma-separated, like NO_PROXY (merged with
    /// it): HOST, .DOMAIN, IP, CIDR (10.0.0.0/8), * ; each optionally :PORT.
    #[arg(long, value_name = "LIST")]
    pub no_proxy: Vec<String>,
    /// Layers to download at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Where compressed layers wait between the two passes [default: $TMPDIR].
    #[arg(long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
    /// Most tar entries all layers may hold together (their headers wait in
    /// memory between the two passes, about 1 KiB each at worst).
    #[arg(long, value_name = "N", default_value_t = crate::registry::DEFAULT_MAX_ENTRIES)]
    pub max_entries: u64,
}

impl PullArgs {
    /// The options these flags say.
    pub fn options(&self) -> Result<PullOptions> {
        let credentials = match &self.creds {
            Some(c) => {
                let (u, p) = c
                    .split_once(':')
                    .ok_or_else(|| anyhow!("--creds takes USER:PASS, got no ':'"))?;
                CredentialSource::Given(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                })
            }
            None => CredentialSource::AuthFiles,
        };
        let platform = match &self.platform {
            Some(p) => Some(p.parse::<Platform>().map_err(|e| {
                anyhow!("--platform {p}: {e} (expected os/arch[/variant], e.g. linux/arm64)")
            })?),
            None => None,
        };
        // Checked here to name the flag; the password never shows.
        let proxy = match &self.proxy {
            Some(p) => {
                Some(ProxyUrl::parse(p).map_err(|e| anyhow!("--proxy {}: {e}", proxy::mask(p)))?)
            }
            None => None,
        };
        let no_proxy: Vec<String> = self
            .no_proxy
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        NoProxy::parse(no_proxy.iter().map(String::as_str))
            .map_err(|e| anyhow!("--no-proxy: {e}"))?;
        Ok(PullOptions {
            insecure: self.insecure.clone(),
            ca_files: self.ca.clone(),
            credentials,
            proxy,
            no_proxy,
            platform,
            jobs: self.jobs,
            tmpdir: self.tmpdir.clone(),
            max_entries: self.max_entries,
            ..PullOptions::default()
        })
    }
}

/// An image reference from the command line.
pub fn reference(image: &str) -> Result<Reference> {
    image
        .parse()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("{image:?} is not a valid image reference"))
}
