//! Turning pulled layers into outputs: the flattened tree (first pass,
//! from the layer indexes), then the second pass streaming each planned
//! file from its layer into a [`Sink`]: a compressed cpio for `morph`, a
//! directory for `unpack`.
//!
//! Threads per layer in the second pass: one inflates the blob into a
//! bounded pipe, the caller's thread parses tar and writes the cpio into a
//! second pipe, and one more compresses (zstd also spreads its own work over
//! the cores). Nothing here holds more than a few MiB at once.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::cpio;
use wyrcan_core::kernel::{self, Found, InitArg};
use wyrcan_core::tree::{self, Plan, Role, Sink, Tree};

use crate::image::{decoder, LocalLayer};
use crate::pipe::{pipe, PipeWriter};

/// Compression of the initrd. Every one of these the Debian kernel unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputCompression {
    /// zstd, level 3, multi-threaded: small and quick to unpack.
    #[default]
    Zstd,
    /// gzip level 6: for kernels built without zstd.
    Gzip,
    /// Plain cpio.
    None,
}

/// The layers applied in order: the final tree, headers only.
pub fn flatten(layers: &[LocalLayer], image: &str) -> Result<Tree> {
    let mut tree = Tree::new();
    for (i, l) in layers.iter().enumerate() {
        tree.apply_layer(i as u32, &l.entries).with_context(|| {
            format!(
                "applying layer {}/{} {} of {image}",
                i + 1,
                layers.len(),
                l.desc.digest
            )
        })?;
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

/// Copies what it reads into `copy` too.
struct Tee<'a, R: ?Sized, W: ?Sized> {
    inner: &'a mut R,
    copy: &'a mut W,
}

impl<R: Read + ?Sized, W: Write + ?Sized> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Where the second pass sends the files that are not plain.
pub struct SideOutputs<'a> {
    /// The kernel's bytes.
    pub kernel: Option<&'a mut dyn Write>,
    /// The captured small file (the image's cmdline).
    pub captured: Vec<u8>,
}

/// Emit the tree into `sink`: skeleton first, then each layer's files.
pub fn emit(
    tree: &Tree,
    plan: &Plan,
    layers: &mut [LocalLayer],
    sink: &mut dyn Sink,
    side: &mut SideOutputs<'_>,
    image: &str,
) -> Result<()> {
    tree.emit_skeleton(sink)
        .with_context(|| format!("writing the directories of {image}"))?;
    let n = layers.len();
    for (i, layer) in layers.iter_mut().enumerate() {
        let jobs = plan.layer(i as u32);
        if jobs.is_empty() {
            continue;
        }
        let what = format!("layer {}/{n} {} of {image}", i + 1, layer.desc.digest);
        layer.file.rewind()?;
        let compression = layer.compression;
        let file = &mut layer.file;
        thread::scope(|s| -> Result<()> {
            let (mut pw, pr) = pipe();
            let inflater = s.spawn(move || -> io::Result<()> {
                let mut dec = decoder(compression, file)?;
                match io::copy(&mut dec, &mut pw) {
                    Ok(_) => Ok(()),
                    // The reader stops early once the layer's last planned
                    // file is done: not an error.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    Err(e) => {
                        pw.fail(format!("decompressing: {e}"));
                        Err(e)
                    }
                }
            });
            let res = tree::for_each_file(pr, jobs, |job, data| match job.role {
                Role::Normal => sink.file(&job.paths, &job.meta, job.size, data),
                Role::Kernel => match side.kernel.as_deref_mut() {
                    Some(k) if job.paths.is_empty() => {
                        io::copy(&mut data.take(job.size), k).map(|_| ())
                    }
                    Some(k) => sink.file(
                        &job.paths,
                        &job.meta,
                        job.size,
                        &mut Tee {
                            inner: data,
                            copy: k,
                        },
                    ),
                    None => sink.file(&job.paths, &job.meta, job.size, data),
                },
                Role::Capture => {
                    let mut buf = Vec::new();
                    sink.file(
                        &job.paths,
                        &job.meta,
                        job.size,
                        &mut Tee {
                            inner: data,
                            copy: &mut buf,
                        },
                    )?;
                    side.captured = buf;
                    Ok(())
                }
            });
            let inflated = inflater
                .join()
                .map_err(|_| anyhow!("the decompression thread of {what} panicked"))?;
            res.with_context(|| format!("unpacking {what}"))?;
            inflated.with_context(|| format!("decompressing {what}"))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// Files written next to their final names and renamed into place only
/// when everything succeeded; dropped unfinished, they vanish.
pub struct Staged {
    items: Vec<(tempfile::NamedTempFile, PathBuf)>,
}

impl Staged {
    /// Nothing staged yet.
    pub fn new() -> Self {
        Staged { items: Vec::new() }
    }

    /// A scratch file beside `target`; returns its index.
    pub fn add(&mut self, target: &Path) -> Result<usize> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| anyhow!("{} is not a file name", target.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".wyrcan-partial")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(dir)
            .with_context(|| {
                format!(
                    "creating a file in {} for {}",
                    dir.display(),
                    target.display()
                )
            })?;
        self.items.push((tmp, target.to_path_buf()));
        Ok(self.items.len() - 1)
    }

    /// The open scratch file.
    pub fn file(&mut self, i: usize) -> &mut File {
        self.items[i].0.as_file_mut()
    }

    /// Sync and rename everything into place.
    pub fn commit(self) -> Result<()> {
        for (tmp, _) in &self.items {
            tmp.as_file().sync_all().context("syncing an output file")?;
        }
        for (tmp, target) in self.items {
            tmp.persist(&target)
                .with_context(|| format!("moving the output into place at {}", target.display()))?;
        }
        Ok(())
    }
}

impl Default for Staged {
    fn default() -> Self {
        Self::new()
    }
}

enum Encoder {
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    None(BufWriter<File>),
}

impl Encoder {
    fn new(kind: OutputCompression, out: File) -> io::Result<Self> {
        let out = BufWriter::with_capacity(1 << 20, out);
        Ok(match kind {
            OutputCompression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, 3)?;
                let cores = thread::available_parallelism().map_or(1, |n| n.get()) as u32;
                e.multithread(cores)?;
                Encoder::Zstd(e)
            }
            OutputCompression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(6),
            )),
            OutputCompression::None => Encoder::None(out),
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Encoder::Zstd(e) => e,
            Encoder::Gzip(e) => e,
            Encoder::None(e) => e,
        }
    }

    fn finish(self) -> io::Result<()> {
        let mut out = match self {
            Encoder::Zstd(e) => e.finish()?,
            Encoder::Gzip(e) => e.finish()?,
            Encoder::None(e) => e,
        };
        out.flush()
    }
}

/// Write a compressed cpio of the tree into `out`, the kernel into
/// `kernel_out`; returns the image's own cmdline bytes if it has one and
/// the uncompressed cpio size.
pub fn write_initrd(
    tree: &Tree,
    plan: &Plan,
    layers: &mut [LocalLayer],
    out: File,
    compression: OutputCompression,
    kernel_out: &mut dyn Write,
    image: &str,
) -> Result<(Vec<u8>, u64)> {
    let (pw, mut pr) = pipe();
    let compressor = thread::spawn(move || -> io::Result<()> {
        let mut enc = Encoder::new(compression, out)?;
        io::copy(&mut pr, enc.writer())?;
        enc.finish()
    });
    let mut side = SideOutputs {
        kernel: Some(kernel_out),
        captured: Vec::new(),
    };
    let mut w = cpio::Writer::new(pw);
    let emitted = emit(tree, plan, layers, &mut w, &mut side, image);
    let finished: Result<(PipeWriter, u64)> = emitted.and_then(|()| {
        let size = w.written();
        Ok((w.finish().context("finishing the cpio archive")?, size))
    });
    let compressed = |c: thread::JoinHandle<io::Result<()>>| -> Result<()> {
        c.join()
            .map_err(|_| anyhow!("the compression thread panicked"))?
            .context("compressing the initrd")
    };
    match finished {
        Ok((pw, size)) => {
            drop(pw);
            compressed(compressor)?;
            Ok((side.captured, size))
        }
        Err(e) => {
            // A failed compressor shows up here as a closed pipe; its own
            // error says more (disk full, ...).
            if let Err(ce) = compressed(compressor) {
                return Err(ce.context(format!("{e:#}")));
            }
            Err(e)
        }
    }
}

/// Reject an unpack target that has anything in it.
pub fn check_empty_dir(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => {
            if it.next().is_some() {
                bail!(
                    "{} is not empty: unpack needs an empty or missing directory (remove it or pick another)",
                    dir.display()
                );
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
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
}

/// Flatten pulled layers and write kernel and initrd. `check` sees the
/// tree's totals before anything is written and may refuse (memory).
pub fn convert(
    layers: &mut [LocalLayer],
    image: &str,
    kernel_out: &mut File,
    initrd_out: File,
    compression: OutputCompression,
    check: impl FnOnce(&tree::Stats) -> Result<()>,
) -> Result<Converted> {
    let mut tree = flatten(layers, image)?;
    let info = boot_info(&mut tree, image)?;
    let stats = tree.stats();
    tracing::info!(
        "{image}: kernel {} ({}, via {}); {} files, {} dirs, {} unpacked",
        info.kernel.path,
        crate::progress::human(info.kernel.size),
        info.kernel.via,
        stats.files,
        stats.dirs,
        crate::progress::human(stats.bytes)
    );
    check(&stats)?;
    let plan = tree.plan(Some(info.kernel.node), info.cmdline_node);
    let (captured, cpio_size) = write_initrd(
        &tree,
        &plan,
        layers,
        initrd_out,
        compression,
        kernel_out,
        image,
    )?;
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
    Ok(Converted {
        image_cmdline: kernel::image_cmdline(file, &info.init),
        kernel: info.kernel,
        stats,
        cpio_size,
    })
}
