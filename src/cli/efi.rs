//! `wyrcan efi show|write|clear` (DESIGN §3): the configuration stored in
//! EFI NVRAM, managed from a running host, so an operator can prepare a
//! machine from its installed OS instead of typing `wyrcan.efi=write` at
//! the boot menu. The variable and its format are the boot environment's
//! (`wyrcan_core::efivar`); reading and writing the efivarfs files,
//! immutable flag included, is `sys::efivarfs`.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use wyrcan_core::efivar::{self, StoredConfig, FIRMWARE_WARNING};
use wyrcan_core::ipconfig;
use wyrcan_core::reference::Reference;

use crate::pull::PullOptions;
use crate::sys::efivarfs;

/// What `efivarfs` reports as its filesystem type (`EFIVARFS_MAGIC`).
const EFIVARFS_MAGIC: u64 = 0xde5e_81e4;

/// `wyrcan efi`.
#[derive(Debug, Args)]
pub struct EfiArgs {
    /// What to do with the stored configuration.
    #[command(subcommand)]
    pub action: EfiCmd,
    /// Where efivarfs is mounted (for tests; the default is the kernel's).
    #[arg(long, value_name = "DIR", global = true, hide = true)]
    pub efivars: Option<PathBuf>,
}

/// `wyrcan efi` subcommands.
#[derive(Debug, Subcommand)]
pub enum EfiCmd {
    /// Print the configuration the boot environment uses when its cmdline
    /// has no wyrcan.img ("none" if there is none).
    Show {
        /// Print the stored JSON as is.
        #[arg(long)]
        json: bool,
    },
    /// Store IMAGE and its boot settings in EFI NVRAM.
    Write(WriteArgs),
    /// Remove the stored configuration.
    Clear {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `wyrcan efi write`: the same settings as the boot environment's cmdline.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Image reference to boot (wyrcan.img).
    pub image: String,
    /// Arguments for the image's kernel (wyrcan.arg; repeatable, in order).
    #[arg(long = "arg", value_name = "ARGS")]
    pub args: Vec<String>,
    /// Registry allowed over plain HTTP or unverified TLS (wyrcan.insecure; repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Network configuration (ip=, as on the kernel cmdline; repeatable).
    #[arg(long, value_name = "dhcp|ADDR::GW:MASK:HOST:IFACE:none[:DNS]")]
    pub ip: Vec<String>,
    /// DNS server (nameserver=; repeatable).
    #[arg(long, value_name = "ADDR")]
    pub nameserver: Vec<String>,
    /// Resolve IMAGE in its registry from this host first (proves the
    /// reference and registry access; the boot environment's own network
    /// may still differ).
    #[arg(long)]
    pub check: bool,
    /// With --check: the image must pass this containers-policy.json(5).
    #[arg(long, value_name = "FILE", requires = "check")]
    pub policy: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// Run `wyrcan efi …`.
pub fn run(a: EfiArgs) -> Result<()> {
    let dir = match &a.efivars {
        Some(d) => {
            if !d.is_dir() {
                bail!("--efivars {}: not a directory", d.display());
            }
            d.clone()
        }
        None => system_efivars()?,
    };
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut out = io::stdout().lock();
    match a.action {
        EfiCmd::Show { json } => show(&dir, json, &mut out),
        EfiCmd::Write(w) => write(&dir, &w, &mut input, &mut io::stderr()),
        EfiCmd::Clear { yes } => clear(&dir, yes, &mut input, &mut io::stderr()),
    }
}

/// The kernel's efivarfs mount, or an error that says why there is none
/// and what to do.
fn system_efivars() -> Result<PathBuf> {
    if !Path::new("/sys/firmware/efi").exists() {
        bail!(
            "this machine did not boot with EFI (BIOS/legacy boot, or a VM without OVMF), so it has \
             no EFI variables: boot it in EFI mode to store a Wyrcan configuration, or put \
             wyrcan.img=… on the kernel command line instead"
        );
    }
    let dir = PathBuf::from(efivarfs::MOUNT);
    let mounted = rustix::fs::statfs(&dir)
        .map(|s| s.f_type as u64 == EFIVARFS_MAGIC)
        .unwrap_or(false);
    if !mounted {
        bail!(
            "efivarfs is not mounted at {0}: mount it with `mount -t efivarfs efivarfs {0}` (as root)",
            dir.display()
        );
    }
    Ok(dir)
}

/// The stored configuration in `dir`, `None` if there is none.
pub fn read(dir: &Path) -> Result<Option<StoredConfig>> {
    let path = dir.join(efivar::file_name());
    let Some(bytes) =
        efivarfs::read(dir, &efivar::file_name()).map_err(|e| io_error(e, &path, "reading"))?
    else {
        return Ok(None);
    };
    StoredConfig::from_file(&bytes)
        .map(Some)
        .map_err(|e| anyhow!("{e} (or with `wyrcan efi clear`)"))
}

fn show(dir: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    let Some(cfg) = read(dir)? else {
        writeln!(out, "none")?;
        return Ok(());
    };
    if json {
        writeln!(out, "{}", cfg.to_json())?;
        return Ok(());
    }
    writeln!(out, "image: {}", cfg.img)?;
    let lists: [(&str, &[String]); 4] = [
        ("arg", &cfg.args),
        ("insecure", &cfg.insecure),
        ("ip", &cfg.ip),
        ("nameserver", &cfg.nameservers),
    ];
    for (label, values) in lists {
        for v in values {
            writeln!(out, "{label}: {v}")?;
        }
    }
    Ok(())
}

/// Everything that can be checked without the network: the reference,
/// `ip=`, `nameserver=`, `--insecure` values.
fn validate(w: &WriteArgs) -> Result<StoredConfig> {
    w.image
        .parse::<Reference>()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("{:?} is not a valid image reference", w.image))?;
    for ip in &w.ip {
        ipconfig::parse(ip).map_err(|e| anyhow!("--ip {ip}: {e}"))?;
    }
    for ns in &w.nameserver {
        ipconfig::parse_nameserver(ns).map_err(|e| anyhow!("--nameserver {ns}: {e}"))?;
    }
    for host in &w.insecure {
        if host.is_empty() || host.contains('/') || host.chars().any(char::is_whitespace) {
            bail!("--insecure {host:?}: expected HOST[:PORT], e.g. 10.0.0.5:5000");
        }
    }
    Ok(StoredConfig {
        img: w.image.clone(),
        args: w.args.clone(),
        insecure: w.insecure.clone(),
        ip: w.ip.clone(),
        nameservers: w.nameserver.clone(),
    })
}

fn write(dir: &Path, w: &WriteArgs, input: &mut dyn BufRead, msg: &mut dyn Write) -> Result<()> {
    let cfg = validate(w)?;
    if w.check {
        let opts = PullOptions {
            insecure: w.insecure.clone(),
            policy: match &w.policy {
                Some(p) => Some(super::policy::load(p)?),
                None => None,
            },
            ..PullOptions::default()
        };
        let reference = super::pull::reference(&w.image)?;
        let resolved = crate::pull::resolve_only(&reference, &opts)
            .with_context(|| format!("checking {} (drop --check to store it anyway)", w.image))?;
        writeln!(
            msg,
            "{}: found, manifest {}",
            resolved.reference,
            resolved.manifest_digest.short()
        )?;
    }
    writeln!(msg, "{FIRMWARE_WARNING}\n\nImage: {}", cfg.img)?;
    if !w.yes && !confirm(input, msg, "Save this configuration in EFI NVRAM?")? {
        bail!("not confirmed: nothing was written (type yes at the prompt, or pass --yes)");
    }
    let name = efivar::file_name();
    efivarfs::write(dir, &name, &cfg.to_file())
        .map_err(|e| io_error(e, &dir.join(&name), "writing"))?;
    writeln!(
        msg,
        "Saved. Boots of the Wyrcan ISO or kernel without wyrcan.img will boot {}.",
        cfg.img
    )?;
    Ok(())
}

fn clear(dir: &Path, yes: bool, input: &mut dyn BufRead, msg: &mut dyn Write) -> Result<()> {
    let name = efivar::file_name();
    let path = dir.join(&name);
    // A config this Wyrcan cannot read can still be removed.
    if efivarfs::read(dir, &name)
        .map_err(|e| io_error(e, &path, "reading"))?
        .is_none()
    {
        writeln!(msg, "No Wyrcan configuration is stored: nothing to clear.")?;
        return Ok(());
    }
    if !yes
        && !confirm(
            input,
            msg,
            "Remove the Wyrcan configuration stored in EFI NVRAM?",
        )?
    {
        bail!("not confirmed: nothing was removed (type yes at the prompt, or pass --yes)");
    }
    efivarfs::remove(dir, &name).map_err(|e| io_error(e, &path, "removing"))?;
    writeln!(msg, "The stored configuration was removed.")?;
    Ok(())
}

/// Ask on `msg`, read one line; true only for `yes`. End of input is a no.
fn confirm(input: &mut dyn BufRead, msg: &mut dyn Write, question: &str) -> Result<bool> {
    write!(msg, "{question} Type yes and press Enter to continue: ")?;
    msg.flush()?;
    let mut line = String::new();
    input.read_line(&mut line).context("reading the answer")?;
    if !line.ends_with('\n') {
        // End of input: finish the prompt's line before any error.
        writeln!(msg)?;
    }
    Ok(line.trim().eq_ignore_ascii_case("yes"))
}

/// An efivarfs error with what to do about it.
fn io_error(e: io::Error, path: &Path, doing: &str) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => ": run as root",
        Some(libc::EROFS) => {
            ": efivarfs is mounted read-only; `mount -o remount,rw /sys/firmware/efi/efivars` (as root)"
        }
        Some(libc::ENOSPC) => ": the firmware's variable store is full",
        Some(libc::EINVAL) | Some(libc::EIO) => ": the firmware refused the variable",
        _ => "",
    };
    anyhow!("{doing} {}: {e}{hint}", path.display())
}

#[cfg(test)]
mod tests {
    use super::super::{Cmd, Opt};
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> EfiArgs {
        let o = Opt::try_parse_from(std::iter::once("wyrcan").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match o.cmd {
            Cmd::Efi(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn write_args(args: &[&str]) -> WriteArgs {
        let mut all = vec!["efi", "write"];
        all.extend_from_slice(args);
        match parse(&all).action {
            EfiCmd::Write(w) => w,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_subcommands() {
        let a = parse(&["efi", "show"]);
        assert!(matches!(a.action, EfiCmd::Show { json: false }));
        assert_eq!(a.efivars, None);
        let a = parse(&["efi", "--efivars", "/tmp/x", "show", "--json"]);
        assert!(matches!(a.action, EfiCmd::Show { json: true }));
        assert_eq!(a.efivars.as_deref(), Some(Path::new("/tmp/x")));
        assert!(matches!(
            parse(&["efi", "clear", "--yes", "--efivars", "d"]).action,
            EfiCmd::Clear { yes: true }
        ));
        let w = write_args(&[
            "10.0.0.5:5000/os:1",
            "--arg",
            "quiet ro",
            "--arg=foo=\"x y\"",
            "--insecure",
            "10.0.0.5:5000",
            "--ip",
            "dhcp",
            "--nameserver",
            "1.1.1.1",
            "--check",
            "--yes",
        ]);
        assert_eq!(w.image, "10.0.0.5:5000/os:1");
        assert_eq!(w.args, ["quiet ro", "foo=\"x y\""]);
        assert_eq!(w.insecure, ["10.0.0.5:5000"]);
        assert_eq!(w.ip, ["dhcp"]);
        assert_eq!(w.nameserver, ["1.1.1.1"]);
        assert!(w.check && w.yes);
        let w = write_args(&["busybox"]);
        assert!(!w.check && !w.yes && w.args.is_empty());
        let w = write_args(&[
            "busybox",
            "--check",
            "--policy",
            "/etc/containers/policy.json",
        ]);
        assert_eq!(
            w.policy.as_deref(),
            Some(Path::new("/etc/containers/policy.json"))
        );
        for bad in [
            // The policy is checked against the registry: only with --check.
            &["efi", "write", "busybox", "--policy", "p.json"][..],
            &["efi"][..],
            &["efi", "write"],
            &["efi", "frobnicate"],
            &["efi", "show", "extra"],
        ] {
            assert!(
                Opt::try_parse_from(std::iter::once("wyrcan").chain(bad.iter().copied())).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn validation_names_the_bad_value() {
        let e = validate(&write_args(&["Not/Valid:"])).unwrap_err();
        assert!(
            format!("{e:#}").contains("not a valid image reference"),
            "{e:#}"
        );
        let e = validate(&write_args(&["busybox", "--ip", "bogus:x"])).unwrap_err();
        assert!(e.to_string().starts_with("--ip bogus:x"), "{e}");
        let e = validate(&write_args(&["busybox", "--nameserver", "one"])).unwrap_err();
        assert!(e.to_string().starts_with("--nameserver one"), "{e}");
        let e = validate(&write_args(&["busybox", "--insecure", "http://x"])).unwrap_err();
        assert!(e.to_string().contains("HOST[:PORT]"), "{e}");
    }

    /// The whole write → show → clear cycle against a plain directory.
    #[test]
    fn write_show_clear_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let name = efivar::file_name();
        let mut msg = Vec::new();

        // Not confirmed: nothing written.
        let w = write_args(&[
            "10.0.0.5:5000/os:1",
            "--arg",
            "quiet ro",
            "--insecure",
            "10.0.0.5:5000",
        ]);
        let e = write(dir.path(), &w, &mut &b"no\n"[..], &mut msg).unwrap_err();
        assert!(e.to_string().contains("not confirmed"), "{e}");
        assert!(!dir.path().join(&name).exists());
        let text = String::from_utf8_lossy(&msg).into_owned();
        assert!(
            text.contains("Some\nfirmware handles variable writes badly"),
            "{text}"
        );
        assert!(text.contains("Type yes"), "{text}");

        // End of input is a no too.
        let e = write(dir.path(), &w, &mut &b""[..], &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not confirmed"), "{e}");

        write(dir.path(), &w, &mut &b"yes\n"[..], &mut Vec::new()).unwrap();
        let bytes = std::fs::read(dir.path().join(&name)).unwrap();
        assert_eq!(&bytes[..4], &[7, 0, 0, 0], "non-volatile + boot + runtime");
        let stored = StoredConfig::from_file(&bytes).unwrap();
        assert_eq!(stored.img, "10.0.0.5:5000/os:1");
        assert_eq!(stored.args, ["quiet ro"]);
        assert_eq!(stored.insecure, ["10.0.0.5:5000"]);

        let mut out = Vec::new();
        show(dir.path(), false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "image: 10.0.0.5:5000/os:1\narg: quiet ro\ninsecure: 10.0.0.5:5000\n"
        );
        let mut out = Vec::new();
        show(dir.path(), true, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().trim(), stored.to_json());

        // Rewrite with --yes replaces it.
        let w2 = write_args(&["busybox", "--yes"]);
        write(dir.path(), &w2, &mut &b""[..], &mut Vec::new()).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().img, "busybox");

        let e = clear(dir.path(), false, &mut &b"\n"[..], &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("not confirmed"), "{e}");
        assert!(dir.path().join(&name).exists());
        clear(dir.path(), false, &mut &b"YES\n"[..], &mut Vec::new()).unwrap();
        assert!(!dir.path().join(&name).exists());

        let mut out = Vec::new();
        show(dir.path(), false, &mut out).unwrap();
        assert_eq!(out, b"none\n");
        let mut msg = Vec::new();
        clear(dir.path(), true, &mut &b""[..], &mut msg).unwrap();
        assert!(String::from_utf8_lossy(&msg).contains("nothing to clear"));
    }

    #[test]
    fn unreadable_config_is_explained_and_can_be_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(efivar::file_name());
        std::fs::write(&path, efivar::encode_file(br#"{"version":7,"img":"x"}"#)).unwrap();
        let e = show(dir.path(), false, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("version 7"), "{e}");
        assert!(e.to_string().contains("wyrcan efi clear"), "{e}");
        clear(dir.path(), true, &mut &b""[..], &mut Vec::new()).unwrap();
        assert!(!path.exists());
    }
}
