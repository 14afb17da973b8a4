//! `wyrcan inspect IMAGE`: what an operator checks before rebooting a
//! fleet into an image — the digest it resolves to, the platforms, the
//! layers, the kernel and cmdline Wyrcan would boot, the RAM that takes,
//! and (with `--policy`) whether the policy accepts it. The policy is
//! checked before any layer is requested; layers are only downloaded to
//! find the kernel (a manifest cannot say where it is), and not at all
//! with `--no-kernel` or for an image the policy rejects.

use std::fs::File;
use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use wyrcan_core::manifest::Platform;
use wyrcan_core::trust::Verdict;

use super::pull::{self, PullArgs};
use crate::convert::{self, OutputCompression};
use crate::progress::{human, Progress};
use crate::pull::{fetch_layers, resolve, trust};
use crate::registry::Client;

/// `wyrcan inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image reference.
    pub image: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Read only the manifests and signatures: no layer is downloaded, so
    /// the kernel, cmdline and unpacked size are not reported.
    #[arg(long)]
    pub no_kernel: bool,
    /// Registry options.
    #[command(flatten)]
    pub pull: PullArgs,
}

/// What `inspect` reports (`--json` prints it as is).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The reference as given.
    pub reference: String,
    /// Registry, resolved.
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// Digest of what the reference names (index or manifest).
    pub digest: String,
    /// Digest of the platform manifest Wyrcan would boot.
    pub manifest_digest: String,
    /// The platform chosen.
    pub platform: String,
    /// For an index: every platform it offers.
    pub platforms: Vec<String>,
    /// The layers.
    pub layers: Vec<Layer>,
    /// Sum of the layer sizes (what is downloaded).
    pub download: u64,
    /// The policy's verdict (`accepted` false: `reason` says why).
    pub policy: Option<PolicyReport>,
    /// The kernel, when layers were read.
    pub kernel: Option<Kernel>,
    /// The image's own kernel arguments (`/boot/wyrcan.cmdline` and init).
    pub cmdline: Option<String>,
    /// Bytes the image unpacks to (kernel file excluded).
    pub unpacked: Option<u64>,
    /// RAM the boot needs at least: the unpacked tree, the initrd while it
    /// unpacks (counted as the compressed layers' size) and 128 MiB for the
    /// kernel itself.
    pub ram_needed: Option<u64>,
    /// The same as a squashfs root (`wyrcan.root=squashfs`): twice the
    /// squashfs (counted as the compressed layers' size), 128 MiB for the
    /// kernel and 64 MiB of working set.
    pub ram_needed_squashfs: Option<u64>,
}

/// One layer.
#[derive(Debug, Serialize)]
pub struct Layer {
    /// Its digest.
    pub digest: String,
    /// Compressed size.
    pub size: u64,
    /// Media type.
    pub media_type: String,
}

/// The kernel Wyrcan would boot.
#[derive(Debug, Serialize)]
pub struct Kernel {
    /// Path in the image.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// How it was found.
    pub via: String,
}

/// The policy's answer.
#[derive(Debug, Serialize)]
pub struct PolicyReport {
    /// Whether the image would boot.
    pub accepted: bool,
    /// The verdict, when accepted.
    pub verdict: Option<Verdict>,
    /// Why not, when rejected.
    pub reason: Option<String>,
}

/// Run `wyrcan inspect`. An image the policy rejects is reported, then
/// the command fails.
pub fn run(a: InspectArgs, progress: &Progress) -> Result<()> {
    let reference = pull::reference(&a.image)?;
    let mut opts = a.pull.options()?;
    // Checked here rather than inside the pull, so a rejection is reported
    // with everything else instead of ending it.
    let policy = opts.policy.take();
    let platform = opts.platform.clone().unwrap_or_else(Platform::current);
    let client = Client::new(&reference, &opts)?;
    let resolved = resolve(&client, &reference, &platform)?;
    let policy = policy.map(|p| {
        match trust::verify(
            &client,
            &p,
            &reference,
            &resolved.top_digest,
            &resolved.manifest_digest,
        ) {
            Ok(v) => PolicyReport {
                accepted: true,
                verdict: Some(v),
                reason: None,
            },
            Err(e) => PolicyReport {
                accepted: false,
                verdict: None,
                reason: Some(format!("{e:#}")),
            },
        }
    });
    let rejected = policy.as_ref().is_some_and(|p| !p.accepted);
    let layers: Vec<Layer> = resolved
        .manifest
        .layers
        .iter()
        .map(|l| Layer {
            digest: l.digest.to_string(),
            size: l.size,
            media_type: l.media_type.clone(),
        })
        .collect();
    let download = layers.iter().map(|l| l.size).sum();
    let mut report = Report {
        reference: a.image.clone(),
        registry: reference.registry().to_string(),
        repository: reference.repository().to_string(),
        digest: resolved.top_digest.to_string(),
        manifest_digest: resolved.manifest_digest.to_string(),
        platform: platform.to_string(),
        platforms: resolved.platforms.clone(),
        layers,
        download,
        policy,
        kernel: None,
        cmdline: None,
        unpacked: None,
        ram_needed: None,
        ram_needed_squashfs: None,
    };
    if !a.no_kernel && !rejected {
        let scratch = match &opts.tmpdir {
            Some(d) => tempfile::Builder::new().prefix("wyrcan-").tempdir_in(d),
            None => tempfile::Builder::new().prefix("wyrcan-").tempdir(),
        }
        .context("creating a scratch directory for the layers (set --tmpdir or TMPDIR)")?;
        let mut local = fetch_layers(
            &client,
            &resolved,
            scratch.path(),
            None,
            opts.jobs,
            opts.max_entries,
            progress,
        )?;
        // The second pass runs to read the cmdline file; its output is
        // thrown away uncompressed.
        let mut kernel =
            tempfile::tempfile_in(scratch.path()).context("creating a scratch file")?;
        let sink = File::options()
            .write(true)
            .open("/dev/null")
            .context("opening /dev/null")?;
        let out = convert::convert(
            &mut local,
            &resolved.reference.to_string(),
            &mut kernel,
            sink,
            None,
            |_, _| Ok(OutputCompression::None.into()),
            &|_| {},
        )?;
        let unpacked = out.stats.bytes.saturating_sub(out.kernel.size);
        report.ram_needed = Some(crate::boot::cpio_ram(unpacked, download));
        report.ram_needed_squashfs = Some(crate::boot::squashfs_ram(download));
        report.unpacked = Some(unpacked);
        report.cmdline = Some(out.image_cmdline);
        report.kernel = Some(Kernel {
            path: out.kernel.path,
            size: out.kernel.size,
            via: out.kernel.via,
        });
    }
    let mut stdout = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write_text(&report, &mut stdout)?;
    }
    stdout.flush()?;
    if let Some(PolicyReport {
        accepted: false,
        reason: Some(reason),
        ..
    }) = &report.policy
    {
        anyhow::bail!("{reason}");
    }
    Ok(())
}

fn write_text(r: &Report, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "image:     {}", r.reference)?;
    writeln!(out, "digest:    {}", r.digest)?;
    if !r.platforms.is_empty() {
        writeln!(out, "index:     {}", r.platforms.join(", "))?;
    }
    writeln!(
        out,
        "platform:  {} (manifest {})",
        r.platform, r.manifest_digest
    )?;
    writeln!(
        out,
        "layers:    {} ({} to download)",
        r.layers.len(),
        human(r.download)
    )?;
    for l in &r.layers {
        writeln!(
            out,
            "  {} {:>10}  {}",
            l.digest,
            human(l.size),
            l.media_type
        )?;
    }
    match &r.kernel {
        Some(k) => writeln!(
            out,
            "kernel:    {} ({}, via {})",
            k.path,
            human(k.size),
            k.via
        )?,
        None => writeln!(out, "kernel:    (not looked for: no layer was read)")?,
    }
    if let Some(c) = &r.cmdline {
        writeln!(out, "cmdline:   {c}")?;
    }
    if let (Some(u), Some(ram)) = (r.unpacked, r.ram_needed) {
        writeln!(
            out,
            "memory:    unpacks to {}; the boot needs at least {} of RAM",
            human(u),
            human(ram)
        )?;
    }
    if let Some(ram) = r.ram_needed_squashfs {
        writeln!(
            out,
            "           as a squashfs root (wyrcan.root=squashfs) about {}",
            human(ram)
        )?;
    }
    match &r.policy {
        None => writeln!(out, "policy:    (none given: --policy FILE)")?,
        Some(PolicyReport {
            verdict: Some(v), ..
        }) => writeln!(out, "policy:    accepted: {}", trust::describe(v))?,
        Some(p) => writeln!(
            out,
            "policy:    REJECTED: {}",
            p.reason.as_deref().unwrap_or("")
        )?,
    }
    Ok(())
}
