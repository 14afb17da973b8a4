//! The `wyrcan` command line (DESIGN §3): clap definitions and the thin
//! glue from each subcommand to the library.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Parser, Subcommand};
use wyrcan_core::manifest::Platform;
use wyrcan_core::reference::Reference;

use crate::auth::Credentials;
use crate::image::{self, LocalLayer, PullOptions, Resolved};
use crate::morph::{self, OutputCompression, Staged};
use crate::progress::{human, Progress};
use crate::registry::{Client, ClientOptions};

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
    Morph(MorphArgs),
    /// Pull IMAGE and write its flattened filesystem into DIR.
    Unpack(UnpackArgs),
    /// On a running Linux host: pull IMAGE, convert it in memory and load
    /// it with kexec_file_load; --exec switches to it at once.
    Kexec(KexecArgs),
    /// Run the boot environment's PID 1 flow (automatic when run as /init).
    Boot,
    /// Show, write or clear the configuration stored in EFI NVRAM, which
    /// the boot environment uses when its cmdline names no image.
    Efi(crate::efi::EfiArgs),
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
    /// Registry options.
    #[command(flatten)]
    pub pull: PullArgs,
}

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
    /// Layers to download at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Where compressed layers wait between the two passes [default: $TMPDIR].
    #[arg(long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
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
    #[arg(long, value_enum, default_value_t = OutputCompression::Zstd)]
    pub compression: OutputCompression,
    /// Registry options.
    #[command(flatten)]
    pub pull: PullArgs,
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

impl PullArgs {
    fn options(&self) -> Result<PullOptions> {
        let credentials = match &self.creds {
            Some(c) => {
                let (u, p) = c
                    .split_once(':')
                    .ok_or_else(|| anyhow!("--creds takes USER:PASS, got no ':'"))?;
                Some(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                })
            }
            None => None,
        };
        let platform = match &self.platform {
            Some(p) => Some(p.parse::<Platform>().map_err(|e| {
                anyhow!("--platform {p}: {e} (expected os/arch[/variant], e.g. linux/arm64)")
            })?),
            None => None,
        };
        Ok(PullOptions {
            client: ClientOptions {
                insecure: self.insecure.clone(),
                ca_files: self.ca.clone(),
                credentials,
                ..ClientOptions::default()
            },
            platform,
            jobs: self.jobs,
        })
    }
}

/// Run a parsed command line.
pub fn run(opt: Opt) -> Result<()> {
    let progress = Progress::new(!opt.quiet);
    match opt.cmd {
        Cmd::Morph(a) => morph_cmd(a, &progress),
        Cmd::Unpack(a) => unpack_cmd(a, &progress),
        Cmd::Kexec(a) => kexec_cmd(a, &progress),
        Cmd::Boot => crate::init::main(),
        Cmd::Efi(a) => crate::efi::run(a),
    }
}

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
pub fn pull(image: &str, args: &PullArgs, progress: &Progress) -> Result<Pulled> {
    pull_checked(image, args, progress, |_| Ok(()))
}

/// [`pull`], with `check` run on the resolved manifest before any layer
/// is downloaded (the boot environment compares sizes with its RAM there).
pub fn pull_checked(
    image: &str,
    args: &PullArgs,
    progress: &Progress,
    check: impl FnOnce(&Resolved) -> Result<()>,
) -> Result<Pulled> {
    let Connected {
        reference,
        opts,
        platform,
        client,
        resolved,
    } = connect(image, args)?;
    image::check_config(&client, &resolved, &platform)?;
    check(&resolved)?;
    let total: u64 = resolved.manifest.layers.iter().map(|l| l.size).sum();
    tracing::info!(
        "{reference}: manifest {}, {} layer{}, {} to download",
        resolved.manifest_digest.short(),
        resolved.manifest.layers.len(),
        if resolved.manifest.layers.len() == 1 {
            ""
        } else {
            "s"
        },
        human(total)
    );
    let scratch = match &args.tmpdir {
        Some(d) => tempfile::Builder::new().prefix("wyrcan-").tempdir_in(d),
        None => tempfile::Builder::new().prefix("wyrcan-").tempdir(),
    }
    .context("creating a scratch directory for the layers (set --tmpdir or TMPDIR)")?;
    let layers = image::fetch_layers(&client, &resolved, scratch.path(), opts.jobs, progress)?;
    Ok(Pulled {
        resolved,
        layers,
        scratch,
    })
}

/// Resolve an image to its manifest without downloading layers: proves
/// the reference, the registry access and the platform are right.
pub fn resolve_only(image: &str, args: &PullArgs) -> Result<Resolved> {
    Ok(connect(image, args)?.resolved)
}

/// A registry client for an image, and the image resolved to a manifest.
struct Connected {
    reference: Reference,
    opts: PullOptions,
    platform: Platform,
    client: Client,
    resolved: Resolved,
}

fn connect(image: &str, args: &PullArgs) -> Result<Connected> {
    let reference: Reference = image
        .parse()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("{image:?} is not a valid image reference"))?;
    let opts = args.options()?;
    let platform = opts.platform.clone().unwrap_or_else(Platform::current);
    let client = Client::new(&reference, &opts.client)?;
    let resolved = image::resolve(&client, &reference, &platform)?;
    Ok(Connected {
        reference,
        opts,
        platform,
        client,
        resolved,
    })
}

fn morph_cmd(a: MorphArgs, progress: &Progress) -> Result<()> {
    let started = Instant::now();
    // Stage the outputs first: a bad output directory fails before a pull.
    let mut staged = Staged::new();
    let k = staged.add(&a.kernel)?;
    let i = staged.add(&a.initrd)?;
    let c = a.cmdline.as_ref().map(|p| staged.add(p)).transpose()?;
    let mut pulled = pull(&a.image, &a.pull, progress)?;
    let image = pulled.resolved.reference.to_string();
    let initrd_file = staged
        .file(i)
        .try_clone()
        .context("opening the initrd output")?;
    let mut kernel_file = staged
        .file(k)
        .try_clone()
        .context("opening the kernel output")?;
    let bar = progress.counter("writing initrd");
    let out = morph::convert(
        &mut pulled.layers,
        &image,
        &mut kernel_file,
        initrd_file,
        |_, _| Ok(a.compression),
    )?;
    bar.finish();
    let kernel_len = out.kernel.size;
    let cpio_size = out.cpio_size;
    if let Some(c) = c {
        writeln!(staged.file(c), "{}", out.image_cmdline).context("writing the cmdline output")?;
    }
    let initrd_len = staged.file(i).metadata().map(|m| m.len()).unwrap_or(0);
    staged.commit()?;
    tracing::info!(
        "{image}: wrote {} (kernel, {}) and {} (initrd, {}, {} as cpio) in {:.1?}",
        a.kernel.display(),
        human(kernel_len),
        a.initrd.display(),
        human(initrd_len),
        human(cpio_size),
        started.elapsed()
    );
    Ok(())
}

fn kexec_cmd(a: KexecArgs, progress: &Progress) -> Result<()> {
    use crate::sys::{LinuxSys, Power, Sys};
    let prepared = crate::boot::prepare(&a.image, &a.pull, &a.append, progress)?;
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
    let existed = morph::check_empty_dir(&a.dir)?;
    let parent = match a.dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut pulled = pull(&a.image, &a.pull, progress)?;
    let image = pulled.resolved.reference.to_string();
    let tree = morph::flatten(&mut pulled.layers, &image)?;
    let plan = tree.plan(None, None);
    // Unpack beside the target and rename at the end, so a failure leaves
    // no half-written tree behind.
    let staging = tempfile::Builder::new()
        .prefix(".wyrcan-unpack-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    let mut sink = crate::dirsink::DirSink::new(staging.path());
    let side = morph::SideOutputs::new(None);
    morph::emit(&tree, &plan, &mut pulled.layers, &mut sink, &side, &image)?;
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
        assert_eq!(m.compression, OutputCompression::Gzip);
        assert_eq!(m.pull.insecure, ["127.0.0.1:5000"]);
    }

    #[test]
    fn morph_needs_outputs() {
        assert!(Opt::try_parse_from(["wyrcan", "morph", "x"]).is_err());
    }
}
