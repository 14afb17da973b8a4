//! From an image reference to a kernel loaded for kexec: pull, convert
//! into memory (memfds, no second copy), decide whether the next boot fits
//! in RAM, compose the next cmdline, `kexec_file_load`. Shared by
//! `wyrcan kexec` on a host and by PID 1 in the boot environment. Executing
//! the loaded kernel is a separate step, so tests can stop before it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use wyrcan_core::cmdline::RootForm;
use wyrcan_core::kernel;
use wyrcan_core::manifest::Platform;
use wyrcan_core::reference::Reference;

pub mod measure;

pub use measure::TpmPlan;

use crate::convert::{self, booted, Form, OutputCompression};
use crate::progress::{human, Progress};
use crate::pull::{pull_checked, PullOptions};
use crate::sys::Sys;

const MIB: u64 = 1024 * 1024;
/// What the next kernel itself takes before it unpacks the initrd: a
/// conservative figure for a distribution kernel.
const KERNEL_OVERHEAD: u64 = 128 * MIB;
/// Memory one tar entry may cost between the passes (header, name, node),
/// counted high.
const ENTRY_COST: u64 = 1024;

/// A kernel and initrd ready for `kexec_file_load`.
#[derive(Debug)]
pub struct Prepared {
    /// The kernel, in a memfd.
    pub kernel: File,
    /// The initrd, in a memfd.
    pub initrd: File,
    /// The complete next cmdline.
    pub cmdline: String,
    /// What the next boot keeps in its initramfs: the unpacked image, or
    /// its squashfs.
    pub unpacked: u64,
}

/// How the next boot will hold the unpacked image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootFs {
    /// The default initramfs tmpfs: capped at half of RAM, can swap.
    Tmpfs,
    /// `rootfstype=ramfs`: no cap, no swap-out.
    Ramfs,
}

/// Decide, from the machine's RAM, whether the next boot can unpack
/// `unpacked` bytes from an initrd of about `initrd` bytes. A half-unpacked
/// image is the one outcome that must never happen: the kernel would run
/// `/init` anyway with files missing.
pub fn memory_plan(ram_total: u64, unpacked: u64, initrd: u64) -> Result<RootFs, String> {
    let need = cpio_ram(unpacked, initrd);
    if need > ram_total {
        return Err(format!(
            "the image unpacks to {} and its initrd is about {}: the next boot needs at least {} of RAM, this machine has {}. \
             Give the machine more memory or use a smaller image",
            human(unpacked),
            human(initrd),
            human(need),
            human(ram_total)
        ));
    }
    // tmpfs stops at 50% of the RAM the kernel sees when it mounts the
    // root, and the initrd still occupies its part then; keep a margin.
    if unpacked + 16 * MIB > ram_total.saturating_sub(initrd) / 2 {
        Ok(RootFs::Ramfs)
    } else {
        Ok(RootFs::Tmpfs)
    }
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn meminfo(sys: &dyn Sys) -> Result<(u64, u64)> {
    let bytes = sys
        .read(Path::new("/proc/meminfo"))
        .context("reading /proc/meminfo")?;
    Ok(parse_meminfo(&String::from_utf8_lossy(&bytes)))
}

fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// What the next boot is asked for besides the image.
#[derive(Debug, Clone, Copy, Default)]
pub struct Next<'a> {
    /// Arguments after the image's own (DESIGN §2), in order.
    pub extra: &'a [String],
    /// Measure the boot into the TPM.
    pub tpm: Option<&'a TpmPlan>,
    /// How the next boot holds the tree.
    pub root: RootForm,
    /// A static Wyrcan for a squashfs root's stage 2 (PID 1: itself).
    pub stage2: Option<&'a Path>,
}

/// Pull `image`, convert it into memfds and compose the next cmdline:
/// the image's `/boot/wyrcan.cmdline`, then `next.extra` in order (DESIGN §2).
/// With `next.tpm`, the boot is measured (see [`measure`]) once everything
/// that is measured is final, and the log goes into `booted.json`.
pub fn prepare(
    sys: &dyn Sys,
    given: &str,
    reference: &Reference,
    opts: &PullOptions,
    next: &Next<'_>,
    progress: &Progress,
) -> Result<Prepared> {
    let (extra, tpm) = (next.extra, next.tpm);
    if let Some(plan) = tpm {
        measure::check_present(sys, plan)?;
    }
    let (total, available) = meminfo(sys)?;
    // The headers wait in memory between the passes: never more of them
    // than a quarter of the free RAM holds.
    let mut opts = opts.clone();
    if available > 0 {
        opts.max_entries = opts.max_entries.min(available / 4 / ENTRY_COST);
    }
    let opts = &opts;
    // The compressed layers sit in scratch space (RAM in the boot
    // environment) while the initrd, about as large, is written: refuse
    // before downloading rather than run out of memory halfway.
    let mut pulled = pull_checked(reference, opts, progress, |r| {
        let compressed: u64 = r.manifest.layers.iter().map(|l| l.size).sum();
        let need = 2 * compressed + 32 * MIB;
        if available > 0 && need > available {
            bail!(
                "{} needs about {} of free memory to be converted, {} is available: give the machine more memory",
                r.reference,
                human(need),
                human(available)
            );
        }
        Ok(())
    })?;
    let compressed: u64 = pulled.resolved.manifest.layers.iter().map(|l| l.size).sum();
    let reference = pulled.resolved.reference.to_string();
    let mut kernel = sys.memfd("kernel")?;
    let initrd = sys.memfd("initrd")?;
    let initrd_out = initrd.try_clone()?;
    let mut unpacked = 0;
    let bar = progress.counter("writing the initrd");
    let mut chosen = OutputCompression::ZSTD;
    let converted = convert::convert(
        &mut pulled.layers,
        &reference,
        &mut kernel,
        initrd_out,
        next.stage2,
        |stats, k| {
            // The kernel file is booted, not unpacked.
            unpacked = stats.bytes.saturating_sub(k.size);
            let (form, note) =
                choose_form(total, unpacked, compressed, next.root).map_err(anyhow::Error::msg)?;
            if let Some(note) = note {
                tracing::info!("{reference}: {note}");
            }
            chosen = form.compression;
            Ok(form)
        },
        &|n| bar.set(n),
    )?;
    // What the next boot keeps in its initramfs: the tree, or the squashfs.
    let resident = converted.squashfs_len.unwrap_or(unpacked);
    bar.finish();
    let resolved = pulled.resolved;
    drop(pulled.layers);
    drop(pulled.scratch);
    let initrd_len = initrd.metadata().context("reading the initrd size")?.len();
    let kernel_len = kernel.metadata().context("reading the kernel size")?.len();
    let now = meminfo(sys).map(|(_, a)| a).unwrap_or(0);
    if now > 0 {
        load_fits(now, kernel_len, initrd_len).map_err(anyhow::Error::msg)?;
    }
    let rootfs = memory_plan(total, resident, initrd_len).map_err(anyhow::Error::msg)?;
    let mut cmdline = wyrcan_core::cmdline::next_cmdline(&converted.image_cmdline, extra);
    if rootfs == RootFs::Ramfs {
        tracing::warn!(
            "{reference} takes {} in the initramfs, more than half of the {} of RAM: booting it with rootfstype=ramfs (no size cap, no swap)",
            human(resident),
            human(total)
        );
        cmdline = wyrcan_core::cmdline::next_cmdline(&cmdline, &["rootfstype=ramfs".to_string()]);
    }
    let mut header = vec![0u8; kernel::SETUP_HEADER_LEN];
    let got = kernel
        .read_at(&mut header, 0)
        .context("reading the kernel's header")?;
    header.truncate(got);
    check_cmdline(&header, &cmdline).map_err(anyhow::Error::msg)?;
    let platform = opts.platform.clone().unwrap_or_else(Platform::current);
    let facts = booted::Facts {
        given,
        platform: &platform,
        kernel_path: &converted.kernel.path,
        cmdline: &cmdline,
    };
    let mut record = booted::record(&resolved, &facts, &kernel)?;
    if let Some(plan) = tpm {
        record.tpm = match measure::measure(sys, plan, &record) {
            Ok(m) => m,
            // A TPM that errors is not a reason to leave a machine down,
            // unless the operator said it is.
            Err(e) if !plan.required => {
                tracing::warn!("{e:#}: this boot is not measured");
                None
            }
            Err(e) => return Err(e.context("wyrcan.tpm=required")),
        };
    }
    let mut initrd = initrd;
    booted::append(&mut initrd, chosen, converted.etc, &record)?;
    Ok(Prepared {
        kernel,
        initrd,
        cmdline,
        unpacked: resident,
    })
}

/// Refuse a cmdline longer than the kernel accepts, before
/// `kexec_file_load` answers with a bare `EINVAL`.
pub fn check_cmdline(kernel_header: &[u8], cmdline: &str) -> Result<(), String> {
    match kernel::cmdline_limit(kernel_header) {
        Some(limit) if cmdline.len() > limit => Err(format!(
            "the next kernel's cmdline is {} bytes, and this kernel accepts at most {limit}: \
             shorten wyrcan.arg or the image's /boot/wyrcan.cmdline",
            cmdline.len()
        )),
        _ => Ok(()),
    }
}

/// The initrd's compression for the next boot, or a refusal when even a
/// compressed one cannot fit (`compressed`, the layers' size, stands in for
/// the initrd's). Always zstd: a plain initrd was measured slower end to
/// end (bench/boot, Debian image under TCG: writing it saved 13 s, but
/// `kexec_file_load` copies it twice and took 25 s instead of 3 s, and the
/// next kernel unpacks more bytes), and it needs more RAM in both boots.
pub fn choose_compression(
    ram_total: u64,
    unpacked: u64,
    compressed: u64,
) -> Result<OutputCompression, String> {
    memory_plan(ram_total, unpacked, compressed)?;
    Ok(OutputCompression::ZSTD)
}

/// RAM a squashfs root of about `squashfs` bytes needs: the initrd and
/// the file the kernel unpacks from it exist together for a moment, and
/// the booted system needs room for the page cache of what it reads.
pub fn squashfs_plan(ram_total: u64, squashfs: u64) -> Result<(), String> {
    let need = squashfs_ram(squashfs);
    if need > ram_total {
        return Err(format!(
            "as a squashfs root (about {}) the next boot needs at least {} of RAM, this machine has {}. \
             Give the machine more memory or use a smaller image",
            human(squashfs),
            human(need),
            human(ram_total)
        ));
    }
    Ok(())
}

/// RAM a squashfs root of `squashfs` bytes needs at least (see [`squashfs_plan`]).
pub fn squashfs_ram(squashfs: u64) -> u64 {
    2 * squashfs + KERNEL_OVERHEAD + SQUASHFS_WORKING_SET
}

/// RAM the unpacked (cpio) form needs at least (see [`memory_plan`]).
pub fn cpio_ram(unpacked: u64, initrd: u64) -> u64 {
    unpacked + initrd + KERNEL_OVERHEAD
}

/// What the booted system of a squashfs root needs beyond the squashfs:
/// the page cache of the files it reads and the overlay's writes.
const SQUASHFS_WORKING_SET: u64 = 64 * MIB;

/// The form of the next boot for `wyrcan.root=`: `auto` takes the
/// unpacked form when it fits and says why when it does not. `compressed`
/// (the layers' size) stands in for both the initrd and the squashfs.
pub fn choose_form(
    ram_total: u64,
    unpacked: u64,
    compressed: u64,
    root: RootForm,
) -> Result<(Form, Option<String>), String> {
    // zstd for both forms, for the reasons of `choose_compression`.
    let compression = OutputCompression::ZSTD;
    let squashfs = |note| {
        squashfs_plan(ram_total, compressed).map(|()| {
            (
                Form {
                    compression,
                    squashfs: true,
                },
                note,
            )
        })
    };
    match root {
        RootForm::Cpio => choose_compression(ram_total, unpacked, compressed).map(|c| (c.into(), None)),
        RootForm::Squashfs => squashfs(None),
        RootForm::Auto => match memory_plan(ram_total, unpacked, compressed) {
            Ok(_) => Ok((compression.into(), None)),
            Err(unpacked_err) => squashfs(Some(format!(
                "unpacked it does not fit ({unpacked_err}): booting it as a squashfs root instead (wyrcan.root=auto)"
            )))
            .map_err(|e| format!("{unpacked_err}; {e}")),
        },
    }
}

/// `kexec_file_load` reads the initrd into a kernel buffer and then copies
/// it into its destination pages: besides the memfds, about twice their
/// size must be free, or the kernel's OOM killer ends PID 1.
pub fn load_fits(available: u64, kernel: u64, initrd: u64) -> Result<(), String> {
    let need = 2 * (kernel + initrd) + 32 * MIB;
    if need > available {
        return Err(format!(
            "loading the new kernel needs about {} of free memory, {} is available: give the machine more memory",
            human(need),
            human(available)
        ));
    }
    Ok(())
}

/// Hand the prepared kernel to the running kernel. The memfds can be
/// dropped afterwards: the kernel keeps its own copy of the segments.
pub fn load(sys: &dyn Sys, p: &Prepared) -> Result<()> {
    tracing::info!("loading the kernel for kexec, cmdline: {}", p.cmdline);
    sys.kexec_load(&p.kernel, &p.initrd, &p.cmdline)
        .context("loading the new kernel with kexec_file_load")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_decisions() {
        let g = 1024 * MIB;
        assert_eq!(memory_plan(4 * g, 300 * MIB, 100 * MIB), Ok(RootFs::Tmpfs));
        assert_eq!(memory_plan(g, 600 * MIB, 100 * MIB), Ok(RootFs::Ramfs));
        let e = memory_plan(g, 900 * MIB, 200 * MIB).unwrap_err();
        assert!(e.contains("more memory"), "{e}");
    }

    #[test]
    fn root_forms_and_auto() {
        let g = 1024 * MIB;
        // 600 MiB unpacked from 100 MiB of layers on 1 GiB: the unpacked
        // form fits (ramfs), the squashfs too.
        let (f, note) = choose_form(g, 600 * MIB, 100 * MIB, RootForm::Cpio).unwrap();
        assert!(!f.squashfs && note.is_none());
        let (f, _) = choose_form(g, 600 * MIB, 100 * MIB, RootForm::Squashfs).unwrap();
        assert!(f.squashfs);
        let (f, note) = choose_form(g, 600 * MIB, 100 * MIB, RootForm::Auto).unwrap();
        assert!(!f.squashfs && note.is_none());
        // 900 MiB unpacked does not fit; as a squashfs of ~100 MiB it does.
        assert!(choose_form(g, 900 * MIB, 100 * MIB, RootForm::Cpio).is_err());
        let (f, note) = choose_form(g, 900 * MIB, 100 * MIB, RootForm::Auto).unwrap();
        assert!(f.squashfs);
        let note = note.unwrap();
        assert!(
            note.contains("does not fit") && note.contains("wyrcan.root=auto"),
            "{note}"
        );
        // Neither fits: both reasons are given.
        let e = choose_form(g, 2 * g, 500 * MIB, RootForm::Auto).unwrap_err();
        assert!(
            e.contains("as a squashfs root") && e.contains("unpacks to"),
            "{e}"
        );
        assert_eq!(squashfs_ram(100 * MIB), 392 * MIB);
    }

    #[test]
    fn the_initrd_counts_against_the_tmpfs_cap() {
        let g = 1024 * MIB;
        // 400 MiB fits in half of 1 GiB, not in half of (1 GiB - 200 MiB).
        assert_eq!(memory_plan(g, 400 * MIB, 200 * MIB), Ok(RootFs::Ramfs));
        assert_eq!(memory_plan(g, 400 * MIB, 50 * MIB), Ok(RootFs::Tmpfs));
        assert_eq!(
            choose_compression(4 * g, 500 * MIB, 200 * MIB),
            Ok(OutputCompression::ZSTD)
        );
        assert!(choose_compression(g, 900 * MIB, 300 * MIB).is_err());
    }

    #[test]
    fn kexec_load_needs_twice_the_segments() {
        assert!(load_fits(1024 * MIB, 14 * MIB, 100 * MIB).is_ok());
        let e = load_fits(200 * MIB, 14 * MIB, 100 * MIB).unwrap_err();
        assert!(e.contains("more memory"), "{e}");
    }

    #[test]
    fn meminfo_parsing() {
        let t =
            "MemTotal:        1004392 kB\nMemFree:          12 kB\nMemAvailable:     900000 kB\n";
        assert_eq!(parse_meminfo(t), (1004392 * 1024, 900000 * 1024));
        assert_eq!(parse_meminfo(""), (0, 0));
    }

    #[test]
    fn a_cmdline_too_long_is_named_not_blamed_on_memory() {
        let mut h = vec![0u8; kernel::SETUP_HEADER_LEN];
        h[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        h[0x202..0x206].copy_from_slice(b"HdrS");
        h[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        h[0x238..0x23c].copy_from_slice(&2048u32.to_le_bytes());
        assert!(check_cmdline(&h, &"x".repeat(2047)).is_ok());
        let e = check_cmdline(&h, &"x".repeat(2048)).unwrap_err();
        assert!(
            e.contains("2048 bytes") && e.contains("at most 2047"),
            "{e}"
        );
        assert!(!e.contains("memory"), "{e}");
        // Not a bzImage: nothing to check against.
        assert!(check_cmdline(&[0; 16], &"x".repeat(9000)).is_ok());
    }

    #[test]
    fn load_passes_the_cmdline() {
        let sys = crate::sys::fake::FakeSys::default();
        let p = Prepared {
            kernel: sys.memfd("k").unwrap(),
            initrd: sys.memfd("i").unwrap(),
            cmdline: "quiet x=\"a b\"".into(),
            unpacked: 0,
        };
        load(&sys, &p).unwrap();
        assert_eq!(
            sys.calls().last().unwrap(),
            "kexec_load kernel=0 initrd=0 cmdline=quiet x=\"a b\""
        );
    }
}
