//! The boot configuration: the cmdline's settings if they name an image,
//! else the ones stored in EFI NVRAM; validated as a whole (reference,
//! `ip=`, `nameserver=`, insecure hosts, proxy) right where they are read,
//! so a typo is reported before any module loads or the network comes up.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::cmdline::{EfiAction, RootForm, WyrcanArgs};
use wyrcan_core::efivar::{self, StoredConfig};
use wyrcan_core::ipconfig::{self, IpConfig};
use wyrcan_core::mirror;
use wyrcan_core::proxy::{self, ProxyUrl};
use wyrcan_core::reference::Reference;
use wyrcan_core::site::SiteConfig;
use wyrcan_core::trust::Policy;

use crate::boot::measure::{self, TpmPlan};
use crate::pull::{CredentialSource, PullOptions};
use crate::registry::DnsMode;
use crate::sys::{efivarfs, Sys};

/// Where the configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/proc/cmdline`.
    Cmdline,
    /// The EFI variable (DESIGN §2).
    Efi,
    /// The defaults baked in by `wyrcan customize` (`/etc/wyrcan/`).
    Site,
}

/// Where `wyrcan customize` puts the site settings in the boot environment.
pub const SITE_DIR: &str = "/etc/wyrcan";

/// How to bring the network up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// Each `ip=`, parsed; empty means DHCPv4 on every link with carrier.
    pub ip: Vec<IpConfig>,
    /// `nameserver=` values.
    pub nameservers: Vec<IpAddr>,
    /// `ifname=`, `bond=`, `vlan=`: links built before `ip=` applies.
    pub links: super::links::Links,
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
    /// Measured boot: which PCR, and whether a TPM is required.
    pub tpm: TpmPlan,
    /// NTP servers (`wyrcan.ntp=`, then the site's); DHCP's come later.
    pub ntp: Vec<String>,
    /// Where to send the log too (`wyrcan.syslog=`).
    pub syslog: Option<String>,
    /// How the next boot holds the tree (`wyrcan.root=`, then the site's; default cpio).
    pub root: RootForm,
}

/// The pull options of the boot environment: no auth files, the bundled
/// and shipped CA roots, scratch space in `/tmp` (RAM), no proxy variables
/// (PID 1's environment is the kernel's; `wyrcan.proxy=` is the way).
pub fn pull_options(insecure: &[String]) -> PullOptions {
    PullOptions {
        insecure: insecure.to_vec(),
        credentials: CredentialSource::Anonymous,
        tmpdir: Some("/tmp".into()),
        // A pull cut mid-layer is retried whole; this lets it resume.
        keep_partial: Some("/tmp/wyrcan-layers".into()),
        // musl's resolver fails a lookup whole when one address family is
        // refused: PID 1 asks A and AAAA itself.
        dns: DnsMode::Own,
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
        Source::Site => " (from the site settings baked in by wyrcan customize: customize the media again)",
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
    let links = super::links::Links::parse(args, from)?;
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
    let mirrors = args
        .mirrors
        .iter()
        .map(|m| mirror::parse(m).map_err(|e| anyhow!("wyrcan.mirror={m}: {e}{from}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(BootConfig {
        image,
        args: args.args.clone(),
        net: NetConfig {
            ip,
            nameservers,
            links,
        },
        pull: PullOptions {
            insecure: args.insecure.clone(),
            proxy,
            mirrors,
            ..pull.clone()
        },
        efi: args.efi,
        source,
        raw: args.clone(),
        tpm: TpmPlan {
            pcr: args.pcr.unwrap_or(measure::DEFAULT_PCR),
            required: args.tpm_required,
        },
        ntp: args.ntp.clone(),
        syslog: args.syslog.clone(),
        root: args.root.unwrap_or_default(),
    }))
}

/// The stored configuration, if efivarfs is mounted at `dir` and holds one;
/// the boot at hand keeps its own `wyrcan.efi`, `debug`, consoles and
/// `wyrcan.proxy` (the proxy is not stored).
pub fn from_efi(
    sys: &dyn Sys,
    dir: &Path,
    cmdline: &WyrcanArgs,
    site: Option<&WyrcanArgs>,
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
    merged.pcr = cmdline.pcr;
    merged.root = cmdline.root;
    merged.mirrors = cmdline.mirrors.clone();
    merged.ntp = cmdline.ntp.clone();
    merged.syslog = cmdline.syslog.clone();
    merged.tpm_required = cmdline.tpm_required;
    // Link names describe this machine's NICs: the cmdline's.
    merged.ifname.clone_from(&cmdline.ifname);
    merged.vlan.clone_from(&cmdline.vlan);
    merged.bond.clone_from(&cmdline.bond);
    validate(&with_defaults(&merged, site), Source::Efi, pull)
}

/// The site settings, if the boot media carry them: the defaults as
/// cmdline-like settings, and `pull` completed with the secrets (the auth
/// file and CA files apply to whichever image boots).
pub fn site(sys: &dyn Sys, pull: &mut PullOptions) -> Result<Option<WyrcanArgs>> {
    let dir = Path::new(SITE_DIR);
    let bytes = match sys.read(&dir.join("config.json")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading the site settings /etc/wyrcan/config.json"),
    };
    let site = SiteConfig::from_json(&bytes).map_err(|e| anyhow!("{e}"))?;
    if sys.exists(&dir.join("auth.json")) {
        pull.credentials = CredentialSource::AuthFile(dir.join("auth.json"));
    }
    if let Ok(mut names) = sys.read_dir(&dir.join("ca")) {
        names.sort();
        pull.ca_files = names.iter().map(|n| dir.join("ca").join(n)).collect();
    }
    tracing::info!(
        "site settings: default image {}, {} CA file{}, {}",
        site.image.as_deref().unwrap_or("(none)"),
        pull.ca_files.len(),
        if pull.ca_files.len() == 1 { "" } else { "s" },
        if matches!(pull.credentials, CredentialSource::AuthFile(_)) {
            "registry credentials"
        } else {
            "no registry credentials"
        }
    );
    if !site.no_proxy.is_empty() {
        pull.no_proxy.clone_from(&site.no_proxy);
    }
    pull.policy = site_policy(sys, dir)?;
    Ok(Some(WyrcanArgs {
        img: site.image,
        args: site.args,
        insecure: site.insecure,
        ip: site.ip,
        nameservers: site.nameservers,
        proxy: site.proxy,
        mirrors: site.mirrors,
        ntp: site.ntp,
        pcr: site.pcr,
        root: site.root,
        ..WyrcanArgs::default()
    }))
}

/// The site's trust policy, its keys loaded from the archive: from here on
/// an image it rejects is not booted, whichever source named it.
fn site_policy(sys: &dyn Sys, dir: &Path) -> Result<Option<Arc<Policy>>> {
    let path = dir.join("policy.json");
    let bytes = match sys.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading the site policy /etc/wyrcan/policy.json"),
    };
    let again = "customize the boot media again with a working --policy";
    let mut policy = Policy::parse(&bytes)
        .map_err(|e| anyhow!("the site policy /etc/wyrcan/policy.json: {e}: {again}"))?;
    policy
        .load_keys(|p| sys.read(Path::new(p)).map_err(|e| format!("{p}: {e}")))
        .map_err(|e| anyhow!("the site policy /etc/wyrcan/policy.json: {e}: {again}"))?;
    tracing::info!(
        "trust policy: {}",
        wyrcan_core::trust::describe(&policy).join("; ")
    );
    Ok(Some(Arc::new(policy)))
}

/// `args` with what it leaves unset taken from the site defaults: the
/// image goes with its arguments (the site's `--arg`s are for the site's
/// image), the network settings one by one, insecure registries added.
pub fn with_defaults(args: &WyrcanArgs, site: Option<&WyrcanArgs>) -> WyrcanArgs {
    let mut out = args.clone();
    let Some(site) = site else { return out };
    if out.img.is_none() {
        out.img.clone_from(&site.img);
        out.args.clone_from(&site.args);
    }
    if out.ip.is_empty() {
        out.ip.clone_from(&site.ip);
    }
    if out.nameservers.is_empty() {
        out.nameservers.clone_from(&site.nameservers);
    }
    if out.proxy.is_none() {
        out.proxy.clone_from(&site.proxy);
    }
    if out.pcr.is_none() {
        out.pcr = site.pcr;
    }
    if out.root.is_none() {
        out.root = site.root;
    }
    // The cmdline's mirrors and NTP servers are tried first, then the site's.
    for m in &site.mirrors {
        if !out.mirrors.contains(m) {
            out.mirrors.push(m.clone());
        }
    }
    for n in &site.ntp {
        if !out.ntp.contains(n) {
            out.ntp.push(n.clone());
        }
    }
    for i in &site.insecure {
        if !out.insecure.contains(i) {
            out.insecure.push(i.clone());
        }
    }
    out
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
        assert_eq!(c.net.ip, [IpConfig::default()]);
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
                "wyrcan.img=x wyrcan.mirror=docker.io=ftp://m",
                "wyrcan.mirror=docker.io=ftp://m: ",
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
    fn mirrors_from_the_cmdline_come_before_the_site_ones() {
        let p = pull_options(&[]);
        let site = WyrcanArgs {
            mirrors: vec!["*=http://site.lan".into()],
            ..WyrcanArgs::default()
        };
        let c = validate(
            &with_defaults(
                &args("wyrcan.img=reg.lan/os:1 wyrcan.mirror=reg.lan=resolve+http://rack.lan:5000"),
                Some(&site),
            ),
            Source::Cmdline,
            &p,
        )
        .unwrap()
        .unwrap();
        let shown: Vec<String> = c.pull.mirrors.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            shown,
            ["reg.lan=resolve+http://rack.lan:5000", "*=http://site.lan"]
        );
        assert_eq!(
            c.pull.keep_partial.as_deref(),
            Some(Path::new("/tmp/wyrcan-layers"))
        );
    }

    #[test]
    fn the_root_form_comes_from_the_cmdline_then_the_site() {
        let p = pull_options(&[]);
        let site = WyrcanArgs {
            root: Some(RootForm::Auto),
            ..WyrcanArgs::default()
        };
        let form = |cmdline: &str, site: Option<&WyrcanArgs>| {
            validate(&with_defaults(&args(cmdline), site), Source::Cmdline, &p)
                .unwrap()
                .unwrap()
                .root
        };
        assert_eq!(form("wyrcan.img=r/os:1", None), RootForm::Cpio);
        assert_eq!(form("wyrcan.img=r/os:1", Some(&site)), RootForm::Auto);
        assert_eq!(
            form("wyrcan.img=r/os:1 wyrcan.root=squashfs", Some(&site)),
            RootForm::Squashfs
        );
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
