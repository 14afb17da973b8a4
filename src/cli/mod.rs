//! The `wyrcan` command line (DESIGN §3): clap definitions and the thin
//! glue from each subcommand to the library. The only module that knows
//! clap: it turns flags into the library's types ([`pull::PullArgs`] →
//! [`PullOptions`](crate::pull::PullOptions)) and calls down.

pub mod customize;
pub mod efi;
pub mod inspect;
pub mod policy;
pub mod pull;

use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use wyrcan_core::cmdline::RootForm;

use crate::convert::{self, OutputCompression, Staged};
use crate::progress::{human, Progress};
use crate::sys::{LinuxSys, Power, Sys};
use pull::PullArgs;

/// Wyrcan, the container bootloader: boot a container image's own kernel.
#[derive(Debug, Parser)]
#[command(name = "wyrcan", version, about, long_about = None)]
pub struct Opt {
    /// Only errors; no progress bars, no log lines.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Pull IMAGE and convert it into a kernel, an initrd and a cmdline.
    ///
    /// The outputs are created 0600: the initrd holds the image's private
    /// files (/etc/shadow, keys).
    Morph(MorphArgs),
    /// Pull IMAGE and write its flattened filesystem into DIR.
    ///
    /// DIR itself is created 0700 for the caller; the image's root
    /// directory metadata is not applied to it, so other local users cannot
    /// reach devices or setuid files inside. Everything inside DIR gets the
    /// image's owners (when run as root) and modes.
    Unpack(UnpackArgs),
    /// On a running Linux host: pull IMAGE, convert it in memory and load
    /// it with kexec_file_load; --exec switches to it at once.
    Kexec(KexecArgs),
    /// The boot environment's PID 1 flow: runs only as PID 1 (the kernel
    /// starts it as /init), never on a host.
    #[command(hide = true)]
    Boot,
    /// Show, write or clear the configuration stored in EFI NVRAM, which
    /// the boot environment uses when its cmdline names no image.
    Efi(efi::EfiArgs),
    /// Bake site settings (default image, registry credentials, CAs, proxy,
    /// network) into the boot media: an initrd, or an archive to load after it.
    Customize(customize::CustomizeArgs),
    /// Show what IMAGE would boot, before a fleet reboots into it: digest,
    /// platforms, layers, kernel, cmdline, RAM, and the policy's verdict.
    Inspect(inspect::InspectArgs),
}

/// `wyrcan kexec`.
#[derive(Debug, Args)]
pub struct KexecArgs {
    /// Image reference.
    pub image: String,
    /// Extra kernel arguments, after the image's /boot/wyrcan.cmdline (repeatable).
    #[arg(long, value_name = "ARGS")]
    pub append: Vec<String>,
    /// Switch to the loaded kernel right away, like `kexec -e` (no clean
    /// shutdown; without it, run `systemctl kexec` for one).
    #[arg(long)]
    pub exec: bool,
    /// How the next boot holds the image: unpacked (cpio), as a compressed
    /// squashfs under a RAM overlay (about a third of the RAM), or auto
    /// (squashfs when the unpacked form does not fit this machine's RAM).
    #[arg(long, value_enum, default_value_t = Root::Cpio)]
    pub root: Root,
    /// The static wyrcan that mounts a squashfs root (default: this one, if static).
    #[arg(long, value_name = "FILE")]
    pub stage2: Option<PathBuf>,
    /// Registry options.
    #[command(flatten)]
    pub pull: PullArgs,
}

/// `wyrcan morph`.
#[derive(Debug, Args)]
pub struct MorphArgs {
    /// Image reference, e.g. `quay.io/org/os:1.2` or `host:5000/os@sha256:…`.
    pub image: String,
    /// Where to write the kernel.
    #[arg(long, value_name = "FILE")]
    pub kernel: PathBuf,
    /// Where to write the initrd.
    #[arg(long, value_name = "FILE")]
    pub initrd: PathBuf,
    /// Where to write the image's kernel arguments.
    #[arg(long, value_name = "FILE")]
    pub cmdline: Option<PathBuf>,
    /// Compression of the initrd.
    #[arg(long, value_enum, default_value_t = Compression::Zstd)]
    pub compression: Compression,
    /// How the booted system holds the image: unpacked (cpio) or as a
    /// compressed squashfs under a RAM overlay (about a third of the RAM;
    /// needs the image's loop, squashfs and overlay modules).
    #[arg(long, value_enum, default_value_t = Root::Cpio)]
    pub root: Root,
    /// The static wyrcan that mounts a squashfs root (default: this one, if static).
    #[arg(long, value_name = "FILE")]
    pub stage2: Option<PathBuf>,
    /// Compression level [default: 3 for zstd (1–19), 1 for gzip (1–9)].
    #[arg(long, value_name = "N")]
    pub level: Option<u32>,
    /// Registry options.
    #[command(flatten)]
    pub pull: PullArgs,
}

/// `--root`: how the next boot holds the image's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Root {
    /// Unpacked into the initramfs: every byte in RAM.
    Cpio,
    /// One compressed squashfs, loop-mounted under a tmpfs overlay.
    Squashfs,
    /// cpio when it fits in RAM, else squashfs (kexec, customize).
    Auto,
}

impl From<Root> for RootForm {
    fn from(r: Root) -> Self {
        match r {
            Root::Cpio => RootForm::Cpio,
            Root::Squashfs => RootForm::Squashfs,
            Root::Auto => RootForm::Auto,
        }
    }
}

/// The stage-2 binary: the one given, or this program.
fn stage2_binary(given: Option<&PathBuf>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe()
            .context("finding this program for the squashfs stage 2 (pass --stage2)"),
    }
}

/// `--compression`: every one of these the Debian kernel unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    /// zstd (level 3 unless `--level`): small and quick to unpack.
    Zstd,
    /// gzip (level 1 unless `--level`): for kernels built without zstd.
    Gzip,
    /// Plain cpio.
    None,
}

/// `--compression` with `--level`, checked against the codec's range.
fn output_compression(c: Compression, level: Option<u32>) -> Result<OutputCompression> {
    let check = |lo: u32, hi: u32, name: &str| -> Result<()> {
        match level {
            Some(l) if !(lo..=hi).contains(&l) => {
                bail!("--level {l} is out of range for {name}: give {lo} to {hi}")
            }
            _ => Ok(()),
        }
    };
    Ok(match c {
        Compression::Zstd => {
            check(1, 19, "zstd")?;
            level.map_or(OutputCompression::ZSTD, |l| {
                OutputCompression::Zstd(l as i32)
            })
        }
        Compression::Gzip => {
            check(1, 9, "gzip")?;
            level.map_or(OutputCompression::GZIP, OutputCompression::Gzip)
        }
        Compression::None => {
            if let Some(l) = level {
                bail!("--level {l} needs --compression zstd or gzip");
            }
            OutputCompression::None
        }
    })
}

/// `wyrcan unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// Image reference.
    pub image: String,
    /// Empty or missing directory to write the filesystem into.
    pub dir: PathBuf,
    /// Registry options.
    #[command(flatten)]
    pub pull: PullArgs,
}

/// Run a parsed command line.
pub fn run(opt: Opt, progress: &Progress) -> Result<()> {
    match opt.cmd {
        Cmd::Morph(a) => morph_cmd(a, progress),
        Cmd::Unpack(a) => unpack_cmd(a, progress),
        Cmd::Kexec(a) => kexec_cmd(a, progress),
        Cmd::Boot => boot_cmd(),
        Cmd::Efi(a) => efi::run(a),
        Cmd::Customize(a) => customize::run(a),
        Cmd::Inspect(a) => inspect::run(a, progress),
    }
}

/// `wyrcan boot` outside of a boot environment would mount filesystems
/// over the host's and reboot it: refuse, touching nothing.
fn boot_cmd() -> Result<()> {
    if std::process::id() != 1 {
        bail!(
            "wyrcan boot is the boot environment's PID 1 and runs only as PID 1 \
             (it mounts filesystems and reboots the machine): boot wyrcan.kernel + wyrcan.initrd, \
             or use `wyrcan kexec IMAGE` on a running host"
        );
    }
    crate::pid1::main()
}

fn morph_cmd(a: MorphArgs, progress: &Progress) -> Result<()> {
    let started = Instant::now();
    let reference = pull::reference(&a.image)?;
    let stage2 = match a.root {
        Root::Cpio => None,
        Root::Squashfs => Some(stage2_binary(a.stage2.as_ref())?),
        Root::Auto => bail!(
            "--root auto decides from the RAM of the machine that boots: use it with kexec or customize; \
             morph writes --root cpio or --root squashfs"
        ),
    };
    let opts = a.pull.options()?;
    let compression = output_compression(a.compression, a.level)?;
    // Stage the outputs first: a bad output directory fails before a pull.
    let mut staged = Staged::new();
    let k = staged.add(&a.kernel)?;
    let i = staged.add(&a.initrd)?;
    let c = a.cmdline.as_ref().map(|p| staged.add(p)).transpose()?;
    let mut pulled = crate::pull::pull(&reference, &opts, progress)?;
    let image = pulled.resolved.reference.to_string();
    let initrd_file = staged
        .file(i)
        .try_clone()
        .context("opening the initrd output")?;
    let mut kernel_file = staged
        .file(k)
        .try_clone()
        .context("opening the kernel output")?;
    let bar = progress.counter("writing the initrd");
    let out = convert::convert(
        &mut pulled.layers,
        &image,
        &mut kernel_file,
        initrd_file,
        stage2.as_deref(),
        |_, _| {
            Ok(convert::Form {
                compression,
                squashfs: a.root == Root::Squashfs,
            })
        },
        &|n| bar.set(n),
    )?;
    bar.finish();
    let platform = opts
        .platform
        .clone()
        .unwrap_or_else(wyrcan_core::manifest::Platform::current);
    let facts = convert::booted::Facts {
        given: &a.image,
        platform: &platform,
        kernel_path: &out.kernel.path,
        cmdline: &out.image_cmdline,
    };
    let record = convert::booted::record(&pulled.resolved, &facts, staged.file(k))?;
    convert::booted::append(staged.file(i), compression, out.etc, &record)?;
    let kernel_len = out.kernel.size;
    let cpio_size = out.cpio_size;
    if let Some(c) = c {
        writeln!(staged.file(c), "{}", out.image_cmdline).context("writing the cmdline output")?;
    }
    let initrd_len = staged.file(i).metadata().map(|m| m.len()).unwrap_or(0);
    staged.commit()?;
    let shape = match out.squashfs_len {
        Some(n) => format!("a {} squashfs root", human(n)),
        None => format!("{} as cpio", human(cpio_size)),
    };
    tracing::info!(
        "{image}: wrote {} (kernel, {}) and {} (initrd, {}, {shape}) in {:.1?}",
        a.kernel.display(),
        human(kernel_len),
        a.initrd.display(),
        human(initrd_len),
        started.elapsed()
    );
    Ok(())
}

fn kexec_cmd(a: KexecArgs, progress: &Progress) -> Result<()> {
    let reference = pull::reference(&a.image)?;
    let opts = a.pull.options()?;
    let stage2 = match a.root {
        Root::Cpio => None,
        _ => Some(stage2_binary(a.stage2.as_ref())?),
    };
    let next = crate::boot::Next {
        extra: &a.append,
        tpm: None,
        root: a.root.into(),
        stage2: stage2.as_deref(),
    };
    let prepared = crate::boot::prepare(&LinuxSys, &a.image, &reference, &opts, &next, progress)?;
    crate::boot::load(&LinuxSys, &prepared)?;
    drop(prepared);
    if a.exec {
        tracing::info!("switching to the new kernel now");
        return Err(LinuxSys.power(Power::Kexec)).context("executing the loaded kernel");
    }
    tracing::info!(
        "{} is loaded: `systemctl kexec` boots it after a clean shutdown, `wyrcan kexec --exec` or `kexec -e` at once",
        a.image
    );
    Ok(())
}

fn unpack_cmd(a: UnpackArgs, progress: &Progress) -> Result<()> {
    let started = Instant::now();
    let reference = pull::reference(&a.image)?;
    let opts = a.pull.options()?;
    let existed = convert::check_empty_dir(&a.dir)?;
    let parent = match a.dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut pulled = crate::pull::pull(&reference, &opts, progress)?;
    let image = pulled.resolved.reference.to_string();
    let tree = convert::flatten(&mut pulled.layers, &image)?;
    let plan = tree.plan(None, None);
    // Unpack beside the target and rename at the end, so a failure leaves
    // no half-written tree behind.
    // Created 0700 for the caller, and it stays so as DIR: the image's
    // root metadata is not applied to it (see dirsink).
    let staging = tempfile::Builder::new()
        .prefix(".wyrcan-unpack-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    let mut sink = convert::dirsink::DirSink::new(staging.path());
    let side = convert::SideOutputs::new(None);
    convert::emit(&tree, &plan, &mut pulled.layers, &mut sink, &side, &image)?;
    sink.finish()
        .with_context(|| format!("setting directory metadata in {}", staging.path().display()))?;
    if existed {
        std::fs::remove_dir(&a.dir).with_context(|| format!("replacing {}", a.dir.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &a.dir)
        .with_context(|| format!("moving the tree into {}", a.dir.display()))?;
    let stats = tree.stats();
    tracing::info!(
        "{image}: unpacked {} files, {} into {} in {:.1?}",
        stats.files,
        human(stats.bytes),
        a.dir.display(),
        started.elapsed()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_morph() {
        let o = Opt::try_parse_from([
            "wyrcan",
            "morph",
            "127.0.0.1:5000/a:b",
            "--kernel",
            "k",
            "--initrd",
            "i",
            "--compression",
            "gzip",
            "--insecure",
            "127.0.0.1:5000",
            "-q",
        ])
        .unwrap();
        assert!(o.quiet);
        let Cmd::Morph(m) = o.cmd else { panic!() };
        assert_eq!(m.compression, Compression::Gzip);
        assert_eq!(m.pull.insecure, ["127.0.0.1:5000"]);
    }

    #[test]
    fn level_maps_onto_the_codec_and_is_range_checked() {
        let oc = output_compression;
        assert_eq!(
            oc(Compression::Zstd, None).unwrap(),
            OutputCompression::Zstd(3)
        );
        assert_eq!(
            oc(Compression::Gzip, None).unwrap(),
            OutputCompression::Gzip(1)
        );
        assert_eq!(
            oc(Compression::Zstd, Some(19)).unwrap(),
            OutputCompression::Zstd(19)
        );
        assert_eq!(
            oc(Compression::Gzip, Some(6)).unwrap(),
            OutputCompression::Gzip(6)
        );
        assert_eq!(
            oc(Compression::None, None).unwrap(),
            OutputCompression::None
        );
        let e = oc(Compression::Gzip, Some(12)).unwrap_err().to_string();
        assert!(e.contains("give 1 to 9"), "{e}");
        assert!(oc(Compression::Zstd, Some(0)).is_err());
        assert!(oc(Compression::None, Some(1)).is_err());
    }

    #[test]
    fn morph_needs_outputs() {
        let e = Opt::try_parse_from(["wyrcan", "morph", "x"]).unwrap_err();
        assert!(e.to_string().contains("--kernel <FILE>"), "{e}");
    }

    #[test]
    fn unpack_and_morph_help_say_what_the_outputs_modes_are() {
        use clap::CommandFactory;
        let mut cmd = Opt::command();
        let unpack = cmd
            .find_subcommand_mut("unpack")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(
            unpack.contains("DIR itself is created 0700 for the caller"),
            "{unpack}"
        );
        let morph = cmd
            .find_subcommand_mut("morph")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(morph.contains("created 0600"), "{morph}");
    }

    #[test]
    fn boot_is_hidden_and_refuses_outside_pid_1() {
        use clap::CommandFactory;
        let help = Opt::command().render_long_help().to_string();
        assert!(help.contains("  morph "), "{help}");
        assert!(!help.contains("  boot "), "{help}");
        // The subcommand still parses (the kernel may pass it), but does nothing here.
        let o = Opt::try_parse_from(["wyrcan", "boot"]).unwrap();
        let e = run(o, &Progress::new(false)).unwrap_err();
        assert!(e.to_string().contains("runs only as PID 1"), "{e}");
    }
}
