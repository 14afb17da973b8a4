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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::cpio;
use wyrcan_core::kernel::{self, Found, InitArg};
use wyrcan_core::tree::{self, FileJob, Plan, Role, Sink, Tree};

use crate::image::{decoder, LocalLayer};
use crate::pipe::pipe;

/// Compression of the initrd. Every one of these the Debian kernel unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputCompression {
    /// zstd level 3: small and quick to unpack; frames written by one
    /// thread per layer.
    #[default]
    Zstd,
    /// gzip level 6: for kernels built without zstd.
    Gzip,
    /// Plain cpio.
    None,
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

/// Where the second pass sends the files that are not plain; shared by
/// the threads that stream layers in parallel.
pub struct SideOutputs<'a> {
    /// The kernel's bytes.
    pub kernel: Option<Mutex<&'a mut File>>,
    /// The captured small file (the image's cmdline).
    pub captured: Mutex<Vec<u8>>,
}

impl<'a> SideOutputs<'a> {
    /// Kernel bytes go to `kernel`, if given.
    pub fn new(kernel: Option<&'a mut File>) -> Self {
        SideOutputs {
            kernel: kernel.map(Mutex::new),
            captured: Mutex::new(Vec::new()),
        }
    }
}

/// Send one planned file where its role says.
fn deliver(
    job: &FileJob,
    data: &mut dyn Read,
    sink: &mut dyn Sink,
    side: &SideOutputs<'_>,
) -> io::Result<()> {
    match job.role {
        Role::Normal => sink.file(&job.paths, &job.meta, job.size, data),
        Role::Kernel => match &side.kernel {
            Some(k) => {
                let mut k = k.lock().unwrap_or_else(|e| e.into_inner());
                if job.paths.is_empty() {
                    io::copy(&mut data.take(job.size), &mut **k).map(|_| ())
                } else {
                    let mut tee = Tee {
                        inner: data,
                        copy: &mut **k,
                    };
                    sink.file(&job.paths, &job.meta, job.size, &mut tee)
                }
            }
            None => sink.file(&job.paths, &job.meta, job.size, data),
        },
        Role::Capture => {
            let mut buf = Vec::new();
            let mut tee = Tee {
                inner: data,
                copy: &mut buf,
            };
            sink.file(&job.paths, &job.meta, job.size, &mut tee)?;
            *side.captured.lock().unwrap_or_else(|e| e.into_inner()) = buf;
            Ok(())
        }
    }
}

/// Stream one layer's planned files to `f`: a helper thread inflates the
/// verified blob into a bounded pipe, this thread parses the tar.
fn stream_layer(
    layer: &mut LocalLayer,
    jobs: &[FileJob],
    what: &str,
    f: impl FnMut(&FileJob, &mut dyn Read) -> io::Result<()>,
) -> Result<()> {
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
        let res = tree::for_each_file(pr, jobs, f);
        let inflated = inflater
            .join()
            .map_err(|_| anyhow!("the decompression thread of {what} panicked"))?;
        res.with_context(|| format!("unpacking {what}"))?;
        inflated.with_context(|| format!("decompressing {what}"))?;
        Ok(())
    })
}

fn layer_name(i: usize, n: usize, layer: &LocalLayer, image: &str) -> String {
    format!("layer {}/{n} {} of {image}", i + 1, layer.desc.digest)
}

/// Emit the tree into `sink` in order: skeleton first, then each layer's
/// files (used by `unpack`; the initrd goes through [`write_initrd`]).
pub fn emit(
    tree: &Tree,
    plan: &Plan,
    layers: &mut [LocalLayer],
    sink: &mut dyn Sink,
    side: &SideOutputs<'_>,
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
        let what = layer_name(i, n, layer, image);
        stream_layer(layer, jobs, &what, |job, data| {
            deliver(job, data, sink, side)
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

/// Compressed frames of the initrd, appended by several threads. Every
/// frame holds whole cpio entries, so frames from different layers can
/// follow each other in any order: the kernel reads concatenated
/// compressed pieces as one archive (Documentation/driver-api/
/// early-userspace/buffer-format.rst), and so do `zstd -d`/`gzip -d`.
struct Frames {
    out: Mutex<BufWriter<File>>,
    kind: OutputCompression,
}

/// A frame being filled by one thread, cut between cpio entries: the
/// kernel restarts its offset bookkeeping at every compressed member, so a
/// member must never end inside an entry. Up to [`FRAME_BYTES`] of
/// compressed output is kept in memory; past that (a big file), the thread
/// takes the output for itself and streams the rest of the entry into it,
/// so memory stays bounded whatever the file sizes.
struct FrameWriter<'a> {
    frames: &'a Frames,
    enc: Option<FrameEncoder<'a>>,
}

/// Compressed bytes kept in memory per frame before a thread streams
/// directly into the output.
const FRAME_BYTES: usize = 1 << 20;

/// Where an encoder's output goes: memory, or straight into the output
/// while this thread holds it.
struct FrameSink<'a> {
    buf: Vec<u8>,
    direct: Option<MutexGuard<'a, BufWriter<File>>>,
}

impl Write for FrameSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.direct {
            Some(out) => out.write(data),
            None => {
                self.buf.extend_from_slice(data);
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum FrameEncoder<'a> {
    Zstd(zstd::stream::write::Encoder<'static, FrameSink<'a>>),
    Gzip(flate2::write::GzEncoder<FrameSink<'a>>),
    None(FrameSink<'a>),
}

impl<'a> FrameEncoder<'a> {
    fn new(kind: OutputCompression) -> io::Result<Self> {
        let sink = FrameSink {
            buf: Vec::new(),
            direct: None,
        };
        Ok(match kind {
            OutputCompression::Zstd => {
                FrameEncoder::Zstd(zstd::stream::write::Encoder::new(sink, 3)?)
            }
            OutputCompression::Gzip => FrameEncoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(6),
            )),
            OutputCompression::None => FrameEncoder::None(sink),
        })
    }

    fn sink(&mut self) -> &mut FrameSink<'a> {
        match self {
            FrameEncoder::Zstd(e) => e.get_mut(),
            FrameEncoder::Gzip(e) => e.get_mut(),
            FrameEncoder::None(s) => s,
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            FrameEncoder::Zstd(e) => e,
            FrameEncoder::Gzip(e) => e,
            FrameEncoder::None(s) => s,
        }
    }

    fn finish(self) -> io::Result<FrameSink<'a>> {
        match self {
            FrameEncoder::Zstd(e) => e.finish(),
            FrameEncoder::Gzip(e) => e.finish(),
            FrameEncoder::None(s) => Ok(s),
        }
    }
}

impl Write for FrameWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.enc.is_none() {
            self.enc = Some(FrameEncoder::new(self.frames.kind)?);
        }
        let Some(enc) = self.enc.as_mut() else {
            return Ok(0);
        };
        let n = enc.writer().write(data)?;
        let sink = enc.sink();
        if sink.direct.is_none() && sink.buf.len() >= FRAME_BYTES {
            let mut out = self.frames.out.lock().unwrap_or_else(|e| e.into_inner());
            out.write_all(&sink.buf)?;
            sink.buf = Vec::new();
            sink.direct = Some(out);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FrameWriter<'_> {
    /// Between two cpio entries: end the frame if it is big enough, is
    /// streaming into the output, or `force` says so.
    fn boundary(&mut self, force: bool) -> io::Result<()> {
        let end = self.enc.as_mut().is_some_and(|e| {
            let sink = e.sink();
            force || sink.direct.is_some() || sink.buf.len() >= FRAME_BYTES
        });
        if !end {
            return Ok(());
        }
        if let Some(enc) = self.enc.take() {
            let mut sink = enc.finish()?;
            match sink.direct.as_mut() {
                Some(out) => out.write_all(&sink.buf)?,
                None => self
                    .frames
                    .out
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write_all(&sink.buf)?,
            }
        }
        Ok(())
    }
}

/// Write the initrd: the skeleton, then the layers' files with several
/// layers streamed at once (each by one thread, plus its inflater), then
/// the trailer. Returns the image's own cmdline bytes if it has one and
/// the uncompressed cpio size.
pub fn write_initrd(
    tree: &Tree,
    plan: &Plan,
    layers: &mut [LocalLayer],
    out: File,
    compression: OutputCompression,
    kernel_out: &mut File,
    image: &str,
) -> Result<(Vec<u8>, u64)> {
    let frames = Frames {
        out: Mutex::new(BufWriter::with_capacity(1 << 20, out)),
        kind: compression,
    };
    let side = SideOutputs::new(Some(kernel_out));
    let n = layers.len();
    if n >= 1000 {
        bail!("{image} has {n} layers; at most 999 are supported");
    }
    let mut w = cpio::Writer::with_first_ino(
        FrameWriter {
            frames: &frames,
            enc: None,
        },
        1,
    );
    tree.emit_skeleton(&mut w)
        .with_context(|| format!("writing the directories of {image}"))?;
    let mut total = w.written();
    w.get_mut().boundary(true)?;
    drop(w);

    // Biggest layers first, so the last one to finish is a small one.
    let mut work: Vec<(usize, &mut LocalLayer)> = layers
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| !plan.layer(*i as u32).is_empty())
        .collect();
    work.sort_by_key(|(_, l)| std::cmp::Reverse(l.desc.size));
    let queue = Mutex::new(work);
    let failed = AtomicBool::new(false);
    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let results: Vec<Result<u64>> = thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<u64> {
                    let mut written = 0;
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                        let Some((i, layer)) = next else { break };
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let what = layer_name(i, n, layer, image);
                        // Disjoint inode numbers per layer (see cpio::Writer::with_first_ino).
                        let first_ino = ((i as u32) + 1) << 22;
                        let mut w = cpio::Writer::with_first_ino(
                            FrameWriter {
                                frames: &frames,
                                enc: None,
                            },
                            first_ino,
                        );
                        let res = stream_layer(layer, plan.layer(i as u32), &what, |job, data| {
                            if failed.load(Ordering::Relaxed) {
                                return Err(io::Error::other("stopped: another layer failed"));
                            }
                            deliver(job, data, &mut w, &side)?;
                            w.get_mut().boundary(false)
                        });
                        written += w.written();
                        let mut fw = w.into_inner();
                        let res = res.and_then(|()| {
                            fw.boundary(true).with_context(|| format!("writing {what}"))
                        });
                        if let Err(e) = res {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                    Ok(written)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a layer thread panicked")))
            })
            .collect()
    });
    for r in results {
        total += r?;
    }
    let trailer = cpio::Writer::new(FrameWriter {
        frames: &frames,
        enc: None,
    });
    let mut fw = trailer.finish().context("finishing the cpio archive")?;
    fw.boundary(true).context("finishing the cpio archive")?;
    total += cpio::TRAILER_LEN;
    drop(fw);
    let mut out = frames.out.into_inner().unwrap_or_else(|e| e.into_inner());
    out.flush().context("writing the initrd")?;
    let captured = side
        .captured
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok((captured, total))
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

/// Flatten pulled layers and write kernel and initrd. `choose` sees the
/// tree's totals and the kernel before anything is written, picks the
/// initrd's compression, and may refuse (memory).
pub fn convert(
    layers: &mut [LocalLayer],
    image: &str,
    kernel_out: &mut File,
    initrd_out: File,
    choose: impl FnOnce(&tree::Stats, &Found) -> Result<OutputCompression>,
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
    let compression = choose(&stats, &info.kernel)?;
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
