//! From an image reference to a kernel loaded for kexec: pull, convert
//! into memory (memfds, no second copy), decide whether the next boot fits
//! in RAM, compose the next cmdline, `kexec_file_load`. Shared by
//! `wyrcan kexec` on a host and by PID 1 in the boot environment. Executing
//! the loaded kernel is a separate step, so tests can stop before it.

use std::fs::File;

use anyhow::{bail, Context, Result};
use rustix::fs::MemfdFlags;

use crate::cli::{pull_checked, PullArgs};
use crate::morph::{self, OutputCompression};
use crate::progress::{human, Progress};
use crate::sys::Sys;

const MIB: u64 = 1024 * 1024;
/// What the next kernel itself takes before it unpacks the initrd: a
/// conservative figure for a distribution kernel.
const KERNEL_OVERHEAD: u64 = 128 * MIB;

/// A kernel and initrd ready for `kexec_file_load`.
#[derive(Debug)]
pub struct Prepared {
    /// The kernel, in a memfd.
    pub kernel: File,
    /// The initrd, in a memfd.
    pub initrd: File,
    /// The complete next cmdline.
    pub cmdline: String,
    /// Unpacked size of the image.
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
    let need = unpacked + initrd + KERNEL_OVERHEAD;
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
pub fn meminfo() -> Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    Ok(parse_meminfo(&text))
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

fn memfd(name: &str) -> Result<File> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC)
        .with_context(|| format!("creating an in-memory file for the {name}"))?;
    Ok(File::from(fd))
}

/// Pull `image`, convert it into memfds and compose the next cmdline:
/// the image's `/boot/wyrcan.cmdline`, then `extra` in order (DESIGN §2).
pub fn prepare(
    image: &str,
    args: &PullArgs,
    extra: &[String],
    progress: &Progress,
) -> Result<Prepared> {
    let (total, available) = meminfo()?;
    // The compressed layers sit in scratch space (RAM in the boot
    // environment) while the initrd, about as large, is written: refuse
    // before downloading rather than run out of memory halfway.
    let mut pulled = pull_checked(image, args, progress, |r| {
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
    let mut kernel = memfd("kernel")?;
    let initrd = memfd("initrd")?;
    let initrd_out = initrd.try_clone()?;
    let mut unpacked = 0;
    let converted = morph::convert(
        &mut pulled.layers,
        &reference,
        &mut kernel,
        initrd_out,
        |stats, k| {
            // The kernel file is booted, not unpacked.
            unpacked = stats.bytes.saturating_sub(k.size);
            choose_compression(total, unpacked, compressed).map_err(anyhow::Error::msg)
        },
    )?;
    drop(pulled);
    let initrd_len = initrd.metadata().context("reading the initrd size")?.len();
    let kernel_len = kernel.metadata().context("reading the kernel size")?.len();
    let now = meminfo().map(|(_, a)| a).unwrap_or(0);
    if now > 0 {
        load_fits(now, kernel_len, initrd_len).map_err(anyhow::Error::msg)?;
    }
    let rootfs = memory_plan(total, unpacked, initrd_len).map_err(anyhow::Error::msg)?;
    let mut cmdline = wyrcan_core::cmdline::next_cmdline(&converted.image_cmdline, extra);
    if rootfs == RootFs::Ramfs {
        tracing::warn!(
            "{reference} unpacks to {}, more than half of the {} of RAM: booting it with rootfstype=ramfs (no size cap, no swap)",
            human(unpacked),
            human(total)
        );
        cmdline = wyrcan_core::cmdline::next_cmdline(&cmdline, &["rootfstype=ramfs".to_string()]);
    }
    Ok(Prepared {
        kernel,
        initrd,
        cmdline,
        unpacked,
    })
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
    Ok(OutputCompression::Zstd)
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
    fn the_initrd_counts_against_the_tmpfs_cap() {
        let g = 1024 * MIB;
        // 400 MiB fits in half of 1 GiB, not in half of (1 GiB - 200 MiB).
        assert_eq!(memory_plan(g, 400 * MIB, 200 * MIB), Ok(RootFs::Ramfs));
        assert_eq!(memory_plan(g, 400 * MIB, 50 * MIB), Ok(RootFs::Tmpfs));
        assert_eq!(
            choose_compression(4 * g, 500 * MIB, 200 * MIB),
            Ok(OutputCompression::Zstd)
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
    fn load_passes_the_cmdline() {
        let sys = crate::sys::fake::FakeSys::default();
        let p = Prepared {
            kernel: memfd("k").unwrap(),
            initrd: memfd("i").unwrap(),
            cmdline: "quiet x=\"a b\"".into(),
            unpacked: 0,
        };
        load(&sys, &p).unwrap();
        assert_eq!(
            sys.calls(),
            ["kexec_load kernel=0 initrd=0 cmdline=quiet x=\"a b\""]
        );
    }
}
