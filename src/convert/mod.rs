//! Turning pulled layers into outputs: the flattened tree (first pass,
//! from the layer indexes), then the second pass streaming each planned
//! file from its layer into a [`Sink`](wyrcan_core::tree::Sink): the
//! compressed frames of an initrd for `morph`/`kexec`/PID 1
//! ([`frames`]), a directory for `unpack` ([`emit`] + [`dirsink`]).
//!
//! Threads in the second pass: per layer, one inflates the verified blob
//! into a bounded pipe ([`pipe`]) and one parses the tar and compresses its
//! own frames; up to four layers run at once. Nothing here holds more than
//! a few MiB at once.

pub mod booted;
pub mod dirsink;
pub mod emit;
pub mod frames;
pub mod pipe;
pub mod squash;
pub mod staged;

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use wyrcan_core::kernel::{self, Found, InitArg};
use wyrcan_core::tree::{self, Tree};

pub use emit::{emit, SideOutputs};
pub use frames::write_initrd;
pub use staged::{check_empty_dir, Staged};

use crate::progress::human;
use crate::pull::LocalLayer;

/// Compression of the initrd and its level. Every one of these the Debian
/// kernel unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCompression {
    /// zstd at a level (1–19): small and quick to unpack.
    Zstd(i32),
    /// gzip at a level (1–9): for kernels built without zstd.
    Gzip(u32),
    /// Plain cpio.
    None,
}

/// The initrd's shape, chosen once the tree's totals are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Form {
    /// Compression of the cpio archive (for a squashfs root: of its small
    /// second archive; the squashfs compresses its own blocks).
    pub compression: OutputCompression,
    /// The tree as one squashfs mounted by a stage 2 ([`squash`]) rather
    /// than unpacked.
    pub squashfs: bool,
}

impl From<OutputCompression> for Form {
    fn from(compression: OutputCompression) -> Self {
        Form {
            compression,
            squashfs: false,
        }
    }
}

impl OutputCompression {
    /// zstd level 3: measured as fast as the floor's `zstd -3` with frames
    /// compressed on every core (bench/run).
    pub const ZSTD: Self = OutputCompression::Zstd(3);
    /// gzip level 1: level 6 took 2.6x the original Wyrcan's wall time for
    /// a few % smaller output (bench/run, issue 10).
    pub const GZIP: Self = OutputCompression::Gzip(1);
}

impl Default for OutputCompression {
    fn default() -> Self {
        Self::ZSTD
    }
}

/// The layers applied in order: the final tree, headers only. Each
/// layer's header list is freed once applied: the tree holds what is left.
pub fn flatten(layers: &mut [LocalLayer], image: &str) -> Result<Tree> {
    let mut tree = Tree::new();
    let n = layers.len();
    for (i, l) in layers.iter_mut().enumerate() {
        tree.apply_layer(i as u32, &l.entries).with_context(|| {
            format!(
                "applying layer {}/{} {} of {image}",
                i + 1,
                n,
                l.desc.digest
            )
        })?;
        l.entries = Vec::new();
    }
    Ok(tree)
}

/// What the tree says about booting it.
pub struct BootInfo {
    /// The kernel.
    pub kernel: Found,
    /// `/init`, `rdinit=/sbin/init`, or neither.
    pub init: InitArg,
    /// `/boot/wyrcan.cmdline` if it is a regular file.
    pub cmdline_node: Option<tree::NodeId>,
}

/// Find the kernel, init and cmdline file (DESIGN §1).
pub fn boot_info(tree: &mut Tree, image: &str) -> Result<BootInfo> {
    let kernel = kernel::find(tree).with_context(|| format!("finding the kernel of {image}"))?;
    let init = kernel::init_arg(tree)?;
    if init == InitArg::Missing {
        tracing::warn!(
            "{image} has neither /init nor /sbin/init: the kernel will find nothing to run"
        );
    }
    let cmdline_node = match tree.lookup(kernel::CMDLINE_PATH.as_bytes(), true)? {
        Some(id) if matches!(tree.info(id), Some(tree::NodeInfo::File { size }) if size <= 64 * 1024) => {
            Some(id)
        }
        Some(_) => {
            tracing::warn!(
                "{} in {image} is not a small regular file: ignored",
                kernel::CMDLINE_PATH
            );
            None
        }
        None => None,
    };
    Ok(BootInfo {
        kernel,
        init,
        cmdline_node,
    })
}

/// What [`convert`] produced besides the files.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The image's own kernel arguments (`/boot/wyrcan.cmdline` plus the
    /// init argument), not yet joined with the user's.
    pub image_cmdline: String,
    /// Where the kernel was found.
    pub kernel: Found,
    /// Totals of the flattened tree.
    pub stats: tree::Stats,
    /// Size of the uncompressed cpio.
    pub cpio_size: u64,
    /// What `/etc` of the initramfs is (for `/etc/wyrcan/booted.json`).
    pub etc: EtcState,
    /// The form written.
    pub form: Form,
    /// Bytes of the squashfs, for a squashfs root.
    pub squashfs_len: Option<u64>,
}

/// What the image's `/etc` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcState {
    /// A directory.
    Dir,
    /// Absent.
    Missing,
    /// Something else (a symlink, a file): nothing is written under it.
    Other,
}

/// Flatten pulled layers and write kernel and initrd. `choose` sees the
/// tree's totals and the kernel before anything is written, picks the
/// initrd's form, and may refuse (memory). `stage2` is the static Wyrcan
/// a squashfs root needs as its `/init`. `written` hears the initrd's
/// size as it grows.
pub fn convert(
    layers: &mut [LocalLayer],
    image: &str,
    kernel_out: &mut File,
    initrd_out: File,
    stage2: Option<&Path>,
    choose: impl FnOnce(&tree::Stats, &Found) -> Result<Form>,
    written: &(dyn Fn(u64) + Sync),
) -> Result<Converted> {
    let mut tree = flatten(layers, image)?;
    let info = boot_info(&mut tree, image)?;
    let stats = tree.stats();
    tracing::info!(
        "{image}: kernel {} ({}, via {}); {} files, {} dirs, {} unpacked",
        info.kernel.path,
        human(info.kernel.size),
        info.kernel.via,
        stats.files,
        stats.dirs,
        human(stats.bytes)
    );
    let etc = match tree.lookup(b"etc", false)?.and_then(|id| tree.info(id)) {
        Some(tree::NodeInfo::Dir) => EtcState::Dir,
        None => EtcState::Missing,
        Some(_) => EtcState::Other,
    };
    let form = choose(&stats, &info.kernel)?;
    let plan = tree.plan(Some(info.kernel.node), info.cmdline_node);
    let (captured, cpio_size, squashfs_len) = if form.squashfs {
        let stage2 = stage2.ok_or_else(|| {
            anyhow::anyhow!(
                "a squashfs root needs a static wyrcan binary as its stage 2 (--stage2)"
            )
        })?;
        let w = squash::write(
            &mut tree,
            &info,
            &plan,
            layers,
            squash::SquashOutputs {
                initrd: initrd_out,
                compression: form.compression,
                kernel: kernel_out,
                stage2,
                written,
            },
            image,
        )?;
        tracing::info!(
            "{image}: squashfs root {} for {} unpacked; stage 2 loads {}",
            human(w.squashfs_len),
            human(stats.bytes),
            if w.modules.is_empty() {
                "no module (all built in)".to_string()
            } else {
                w.modules.join(", ")
            }
        );
        (w.captured, stats.bytes, Some(w.squashfs_len))
    } else {
        let (c, n) = write_initrd(
            &tree,
            &plan,
            layers,
            frames::Outputs {
                initrd: initrd_out,
                compression: form.compression,
                kernel: kernel_out,
                written,
            },
            image,
        )?;
        (c, n, None)
    };
    kernel_out.flush()?;
    let kernel_len = kernel_out.metadata().map(|m| m.len()).unwrap_or(0);
    if kernel_len != info.kernel.size {
        bail!(
            "the kernel {} of {image} came out as {kernel_len} bytes instead of {}",
            info.kernel.path,
            info.kernel.size
        );
    }
    let file = info.cmdline_node.is_some().then_some(captured.as_slice());
    // A squashfs root's initramfs is the stage 2's, which has no /etc and
    // starts the image's init itself (no rdinit=).
    let (init, etc) = match (form.squashfs, etc) {
        (false, etc) => (info.init, etc),
        (true, EtcState::Other) => (InitArg::Init, EtcState::Other),
        (true, _) => (InitArg::Init, EtcState::Missing),
    };
    Ok(Converted {
        image_cmdline: kernel::image_cmdline(file, &init),
        kernel: info.kernel,
        stats,
        cpio_size,
        etc,
        form,
        squashfs_len,
    })
}
