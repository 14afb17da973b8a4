//! The pull flags every pulling command shares, and how they become the
//! library's one [`PullOptions`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use wyrcan_core::manifest::Platform;
use wyrcan_core::mirror::{self, Mirror};
use wyrcan_core::proxy::{self, NoProxy, ProxyUrl};
use wyrcan_core::reference::Reference;

use crate::pull::{CredentialSource, PullOptions};
use crate::registry::Credentials;

/// Where containers tools keep registry mirrors on a host.
const REGISTRIES_CONF: &str = "/etc/containers/registries.conf";

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
    /// Registry credentials (visible to other users in `ps`: prefer
    /// --creds-file); otherwise the docker/podman auth files and the
    /// credential helpers they name.
    #[arg(long, value_name = "USER:PASS", conflicts_with = "creds_file")]
    pub creds: Option<Secret>,
    /// Registry credentials from a file: one line USER:PASS, or a
    /// docker/podman JSON auth file (`auth`, `username`/`password`,
    /// `identitytoken` entries; credential helpers are not run).
    #[arg(long, value_name = "FILE")]
    pub creds_file: Option<PathBuf>,
    /// Send requests through this HTTP proxy, http://[USER:PASS@]HOST:PORT
    /// (HTTPS tunnelled with CONNECT) [default: $HTTPS_PROXY / $HTTP_PROXY /
    /// $ALL_PROXY]. Loopback hosts always go direct.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Hosts that go direct, comma-separated, like NO_PROXY (merged with
    /// it): HOST, .DOMAIN, IP, CIDR (10.0.0.0/8), * ; each optionally :PORT.
    #[arg(long, value_name = "LIST")]
    pub no_proxy: Vec<String>,
    /// Try this mirror before the registry, REGISTRY=URL[,URL…] (repeatable;
    /// REGISTRY is host[:port] or *; URL http(s)://host[:port][/prefix],
    /// resolve+URL may also answer tag lookups). Mirrors serve content by
    /// digest, verified. Added to those of /etc/containers/registries.conf.
    #[arg(long, value_name = "REGISTRY=URL")]
    pub mirror: Vec<String>,
    /// Accept only images this containers-policy.json(5) accepts (cosign
    /// signatures checked before any layer is downloaded).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
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
        let credentials = match (&self.creds, &self.creds_file) {
            (Some(c), _) => {
                let (u, p) =
                    c.0.split_once(':')
                        .ok_or_else(|| anyhow!("--creds takes USER:PASS, got no ':'"))?;
                CredentialSource::Given(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                })
            }
            (None, Some(path)) => creds_file(path)?,
            (None, None) => CredentialSource::AuthFiles,
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
            policy: match &self.policy {
                Some(p) => Some(super::policy::load(p)?),
                None => None,
            },
            mirrors: self.mirrors()?,
            ..PullOptions::default()
        })
    }

    /// `--mirror`s first, then the host's registries.conf mirrors (a file
    /// that does not parse is a warning: it is the host's, not ours).
    fn mirrors(&self) -> Result<Vec<Mirror>> {
        let mut out = self
            .mirror
            .iter()
            .map(|m| mirror::parse(m).map_err(|e| anyhow!("--mirror {m}: {e}")))
            .collect::<Result<Vec<_>>>()?;
        let conf = std::env::var_os("CONTAINERS_REGISTRIES_CONF")
            .map_or_else(|| PathBuf::from(REGISTRIES_CONF), PathBuf::from);
        match std::fs::read_to_string(&conf) {
            Ok(text) => match mirror::from_registries_conf(&text) {
                Ok(found) => {
                    if !found.is_empty() {
                        tracing::debug!(
                            "mirrors from {}: {} registries",
                            conf.display(),
                            found.len()
                        );
                    }
                    out.extend(found);
                }
                Err(e) => tracing::warn!("{}: {e}; its mirrors are not used", conf.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("reading {}: {e}; its mirrors are not used", conf.display()),
        }
        Ok(out)
    }
}

/// A flag's value that is a secret: shown as `<redacted>` by `Debug`.
#[derive(Clone)]
pub struct Secret(pub String);

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `--creds-file FILE`: a JSON auth file (its first non-blank character is
/// `{`) → [`CredentialSource::AuthFile`], else one line `USER:PASS` (a
/// trailing newline is ignored). Errors never quote the file.
fn creds_file(path: &Path) -> Result<CredentialSource> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading --creds-file {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("--creds-file {}: not UTF-8 text", path.display()))?;
    if text.trim_start().starts_with('{') {
        return Ok(CredentialSource::AuthFile(path.to_path_buf()));
    }
    let line = text
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&text);
    let bad = |what: &str| {
        anyhow!(
            "--creds-file {}: {what}: expected one line USER:PASS, or a docker/podman JSON auth file",
            path.display()
        )
    };
    if line.contains(['\n', '\r']) {
        bail!(bad("more than one line"));
    }
    match line.split_once(':') {
        Some((user, pass)) if !user.is_empty() => Ok(CredentialSource::Given(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        })),
        Some(_) => Err(bad("the user name is empty")),
        None => Err(bad("no ':'")),
    }
}

/// An image reference from the command line.
pub fn reference(image: &str) -> Result<Reference> {
    image
        .parse()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("{image:?} is not a valid image reference"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        pull: PullArgs,
    }

    fn parse(args: &[&str]) -> Result<PullOptions> {
        let cli = Cli::try_parse_from(std::iter::once("wyrcan").chain(args.iter().copied()))?;
        cli.pull.options()
    }

    #[test]
    fn creds_file_forms() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, content: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            p.display().to_string()
        };
        let given = |args: &[&str]| match parse(args).unwrap().credentials {
            CredentialSource::Given(c) => (c.username, c.password),
            other => panic!("{other:?}"),
        };
        for content in ["bob:pa:ss\n", "bob:pa:ss", "bob:pa:ss\r\n"] {
            let f = file("line", content);
            assert_eq!(given(&["--creds-file", &f]), ("bob".into(), "pa:ss".into()));
        }
        let json = file("auth.json", "\n  {\"auths\":{}}");
        assert!(matches!(
            parse(&["--creds-file", &json]).unwrap().credentials,
            CredentialSource::AuthFile(p) if p.display().to_string() == json
        ));
        for (content, why) in [
            ("bob:secret-1\nmore\n", "more than one line"),
            ("secret-2\n", "no ':'"),
            (":secret-3", "the user name is empty"),
        ] {
            let f = file("bad", content);
            let err = format!("{:#}", parse(&["--creds-file", &f]).unwrap_err());
            assert!(err.contains(why) && err.contains(&f), "{err}");
            assert!(!err.contains("secret"), "the error quotes the file: {err}");
        }
        let missing = dir.path().join("missing").display().to_string();
        let err = format!("{:#}", parse(&["--creds-file", &missing]).unwrap_err());
        assert!(
            err.contains(&format!("reading --creds-file {missing}")),
            "{err}"
        );

        assert_eq!(given(&["--creds", "u:p"]), ("u".into(), "p".into()));
        assert!(matches!(
            parse(&[]).unwrap().credentials,
            CredentialSource::AuthFiles
        ));
        let f = file("line", "u:p");
        let err = parse(&["--creds", "u:p", "--creds-file", &f]).unwrap_err();
        assert!(err.to_string().contains("cannot be used with"), "{err}");
    }

    #[test]
    fn args_debug_shows_no_secret() {
        let cli = Cli::try_parse_from(["wyrcan", "--creds", "u:hunter2"]).unwrap();
        let shown = format!("{cli:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
        let shown = format!("{:?}", cli.pull.options().unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
