//! The boot configuration: the cmdline's settings if they name an image,
//! else the ones stored in EFI NVRAM; validated as a whole (reference,
//! `ip=`, `nameserver=`, insecure hosts, proxy) right where they are read,
//! so a typo is reported before any module loads or the network comes up.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::cmdline::{EfiAction, WyrcanArgs};
use wyrcan_core::efivar::{self, StoredConfig};
use wyrcan_core::ipconfig::{self, IpConfig};
use wyrcan_core::proxy::{self, ProxyUrl};
use wyrcan_core::reference::Reference;

use crate::pull::{CredentialSource, PullOptions};
use crate::sys::{efivarfs, Sys};

/// Where the configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/proc/cmdline`.
    Cmdline,
    /// The EFI variable (DESIGN §2).
    Efi,
}

/// How to bring the network up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// Each `ip=`, parsed; empty means DHCPv4 on every link with carrier.
    pub ip: Vec<IpConfig>,
    /// `nameserver=` values.
    pub nameservers: Vec<IpAddr>,
}

/// A validated configuration that boots.
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// The image.
    pub image: Reference,
    /// `wyrcan.arg` values, in order.
    pub args: Vec<String>,
    /// Network settings.
    pub net: NetConfig,
    /// How to pull.
    pub pull: PullOptions,
    /// `wyrcan.efi=write` / `clear` (only ever from the cmdline).
    pub efi: Option<EfiAction>,
    /// Where it came from.
    pub source: Source,
    /// The settings as given, for storing in EFI NVRAM.
    pub raw: WyrcanArgs,
}

/// The pull options of the boot environment: no auth files, the bundled
/// and shipped CA roots, scratch space in `/tmp` (RAM), no proxy variables
/// (PID 1's environment is the kernel's; `wyrcan.proxy=` is the way).
pub fn pull_options(insecure: &[String]) -> PullOptions {
    PullOptions {
        insecure: insecure.to_vec(),
        credentials: CredentialSource::Anonymous,
        tmpdir: Some("/tmp".into()),
        proxy_env: false,
        ..PullOptions::default()
    }
}

/// Check every setting of `args` that names an image; `None` when it names
/// none. `pull` is the template for the pull options (retries, scratch).
pub fn validate(
    args: &WyrcanArgs,
    source: Source,
    pull: &PullOptions,
) -> Result<Option<BootConfig>> {
    let Some(img) = args.img.as_deref() else {
        return Ok(None);
    };
    let from = match source {
        Source::Cmdline => "",
        Source::Efi => " (stored in EFI NVRAM: fix it with wyrcan.efi=write, or remove it with wyrcan.efi=clear)",
    };
    let image: Reference = img
        .parse()
        .map_err(|e| anyhow!("wyrcan.img={img}: {e}{from}"))?;
    let ip = args
        .ip
        .iter()
        .map(|s| ipconfig::parse(s).map_err(|e| anyhow!("ip={s}: {e}{from}")))
        .collect::<Result<Vec<_>>>()?;
    let nameservers = args
        .nameservers
        .iter()
        .map(|s| ipconfig::parse_nameserver(s).map_err(|e| anyhow!("nameserver={s}: {e}{from}")))
        .collect::<Result<Vec<_>>>()?;
    for host in &args.insecure {
        if host.is_empty() || host.contains('/') || host.chars().any(char::is_whitespace) {
            bail!("wyrcan.insecure={host:?}: expected HOST[:PORT], e.g. 10.0.0.5:5000{from}");
        }
    }
    let proxy = match &args.proxy {
        Some(p) => Some(
            ProxyUrl::parse(p)
                .map_err(|e| anyhow!("wyrcan.proxy={}: {e}{from}", proxy::mask(p)))?,
        ),
        None => None,
    };
    Ok(Some(BootConfig {
        image,
        args: args.args.clone(),
        net: NetConfig { ip, nameservers },
        pull: PullOptions {
            insecure: args.insecure.clone(),
            proxy,
            ..pull.clone()
        },
        efi: args.efi,
        source,
        raw: args.clone(),
    }))
}

/// The stored configuration, if efivarfs is mounted at `dir` and holds one;
/// the boot at hand keeps its own `wyrcan.efi`, `debug`, consoles and
/// `wyrcan.proxy` (the proxy is not stored).
pub fn from_efi(
    sys: &dyn Sys,
    dir: &Path,
    cmdline: &WyrcanArgs,
    pull: &PullOptions,
) -> Result<Option<BootConfig>> {
    let bytes = match sys.read(&dir.join(efivar::file_name())) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading the stored configuration from EFI"),
    };
    let stored = StoredConfig::from_file(&bytes)
        .map_err(|e| anyhow!("{e}"))
        .context(
            "the configuration stored in EFI is unreadable: boot once with wyrcan.efi=clear",
        )?;
    tracing::info!(
        "using the configuration stored in EFI NVRAM: {}",
        stored.img
    );
    let mut merged = stored.into_args();
    merged.debug |= cmdline.debug;
    merged.console = cmdline.console.clone();
    merged.efi = cmdline.efi;
    merged.proxy = cmdline.proxy.clone();
    validate(&merged, Source::Efi, pull)
}

/// Where efivarfs is, for PID 1.
pub fn efivars() -> &'static Path {
    Path::new(efivarfs::MOUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmdline: &str) -> WyrcanArgs {
        WyrcanArgs::from_cmdline(cmdline).unwrap()
    }

    #[test]
    fn everything_is_checked_up_front() {
        let p = pull_options(&[]);
        assert!(validate(&args("console=ttyS0"), Source::Cmdline, &p)
            .unwrap()
            .is_none());
        let c = validate(
            &args("wyrcan.img=10.0.2.100:5000/os:1 wyrcan.insecure=10.0.2.100:5000 ip=dhcp nameserver=10.0.2.3 wyrcan.arg=\"quiet ro\""),
            Source::Cmdline,
            &p,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.image.to_string(), "10.0.2.100:5000/os:1");
        assert_eq!(c.pull.insecure, ["10.0.2.100:5000"]);
        assert_eq!(c.net.ip, [IpConfig::Dhcp { iface: None }]);
        assert_eq!(c.args, ["quiet ro"]);
        assert_eq!(c.pull.tmpdir.as_deref(), Some(Path::new("/tmp")));

        for (cmdline, want) in [
            ("wyrcan.img=Bad//Ref", "wyrcan.img=Bad//Ref: "),
            (
                "wyrcan.img=x ip=10.0.0.300::::::none",
                "ip=10.0.0.300::::::none: ",
            ),
            ("wyrcan.img=x nameserver=one", "nameserver=one: "),
            (
                "wyrcan.img=x wyrcan.insecure=http://h",
                "wyrcan.insecure=\"http://h\"",
            ),
            (
                "wyrcan.img=x wyrcan.proxy=https://me:hunter2@p.lan:3128",
                "wyrcan.proxy=https://me:***@p.lan:3128: only http:// proxies",
            ),
            (
                "wyrcan.img=x wyr.proxy=http://me:hunter2@p.lan:99999",
                "wyrcan.proxy=http://me:***@p.lan:99999: \"99999\" is not a port",
            ),
        ] {
            let e = validate(&args(cmdline), Source::Cmdline, &p).unwrap_err();
            assert!(e.to_string().starts_with(want), "{cmdline}: {e}");
        }
        let e = validate(&args("wyrcan.img=Bad//Ref"), Source::Efi, &p).unwrap_err();
        assert!(e.to_string().contains("wyrcan.efi=clear"), "{e}");
    }

    #[test]
    fn the_proxy_reaches_the_pull_options_masked() {
        let p = pull_options(&[]);
        assert!(!p.proxy_env, "PID 1 reads no proxy variables");
        let c = validate(
            &args("wyrcan.img=reg.lan/os:1 wyrcan.proxy=http://me:hunter2@p.lan:3128"),
            Source::Cmdline,
            &p,
        )
        .unwrap()
        .unwrap();
        let proxy = c.pull.proxy.as_ref().unwrap();
        assert_eq!((proxy.host(), proxy.port()), ("p.lan", 3128));
        assert_eq!(proxy.password(), Some("hunter2"));
        assert!(!c.pull.proxy_env);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("http://me:***@p.lan:3128"), "{shown}");
        // Without wyrcan.proxy: none.
        let c = validate(&args("wyrcan.img=reg.lan/os:1"), Source::Cmdline, &p)
            .unwrap()
            .unwrap();
        assert!(c.pull.proxy.is_none());
    }
}
