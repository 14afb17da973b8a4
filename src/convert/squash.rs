//! The compressed root (`wyrcan.root=squashfs`): the flattened tree as one
//! squashfs inside the initrd, plus what a stage-2 `/init` needs to mount
//! it (see `crate::stage2`). The initrd is two archives:
//!
//! ```text
//! plain newc:  wyrcan/ · wyrcan/root.squashfs (built in place) · TRAILER
//! compressed:  dev/ dev/console proc/ sys/ run/ · init (Wyrcan, static) ·
//!              wyrcan/stage2.json · wyrcan/modules/*.ko · TRAILER
//! ```
//!
//! The squashfs is already compressed, so its archive is stored plain: the
//! kernel copies it into the initramfs once and the stage 2 loop-mounts
//! it. It is written straight into the initrd file after a cpio header
//! whose fixed-width size field is filled in at the end, so it never
//! exists twice (the initrd is a memfd in RAM in the boot environment).
//!
//! The modules come from the image's own `/lib/modules/<release>`: they
//! match the kexec'd kernel by construction. They are read back out of the
//! finished squashfs, because which ones are needed (and their
//! dependencies) is only known from `modules.dep`, itself in the image.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::cpio;
use wyrcan_core::kernel::InitArg;
use wyrcan_core::modules::ModuleIndex;
use wyrcan_core::squashfs::{self, Codec, Compress, Extent, FileData, Finished};
use wyrcan_core::stage2::{self, Stage2Config, CONFIG_PATH};
use wyrcan_core::tree::{Meta, NodeInfo, Plan, Sink, Special, Tree};

use super::emit::{emit, SideOutputs};
use super::{BootInfo, OutputCompression};
use crate::pull::LocalLayer;

/// What the stage 2 needs to mount the root, loaded in dependency order.
const NEEDED_MODULES: [&str; 3] = ["loop", "squashfs", "overlay"];
/// zstd level of the squashfs blocks: conversion runs at every boot, and
/// above 3 the time grows much faster than the image shrinks.
const ZSTD_LEVEL: i32 = 3;
/// Seconds the stage 2 shows an error before it reboots.
const COUNTDOWN_SECS: u32 = 30;

/// zstd blocks for the squashfs writer.
struct Zstd(zstd::bulk::Compressor<'static>);

impl Compress for Zstd {
    fn codec(&self) -> Codec {
        Codec::Zstd
    }

    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(input.len()));
        self.0.compress_to_buffer(input, out)?;
        Ok(())
    }
}

/// What the squashfs form produced.
pub struct SquashWritten {
    /// The captured `/boot/wyrcan.cmdline`, if planned.
    pub captured: Vec<u8>,
    /// Bytes of the squashfs.
    pub squashfs_len: u64,
    /// Modules put in the initrd for the stage 2.
    pub modules: Vec<String>,
}

/// Everything [`write`] needs besides the tree.
pub struct SquashOutputs<'a> {
    /// The initrd, empty.
    pub initrd: File,
    /// Compression of the small second archive.
    pub compression: OutputCompression,
    /// The kernel output.
    pub kernel: &'a mut File,
    /// A static Wyrcan binary: the stage 2's `/init`.
    pub stage2: &'a Path,
    /// Hears the initrd's size as it grows.
    pub written: &'a (dyn Fn(u64) + Sync),
}

/// Write the initrd of the squashfs form.
pub fn write(
    tree: &mut Tree,
    info: &BootInfo,
    plan: &Plan,
    layers: &mut [LocalLayer],
    out: SquashOutputs<'_>,
    image: &str,
) -> Result<SquashWritten> {
    let init = match info.init {
        InitArg::Init => "/init",
        InitArg::Rdinit(_) => "/sbin/init",
        InitArg::Missing => bail!(
            "{image} has neither /init nor /sbin/init: nothing to start after the squashfs root is mounted"
        ),
    };
    let stage2_bin = std::fs::read(out.stage2)
        .with_context(|| format!("reading the stage-2 binary {}", out.stage2.display()))?;
    check_static(&stage2_bin, out.stage2)?;
    let mut initrd = out.initrd;
    let head_at = initrd.stream_position()?;
    let mut head = cpio::Writer::new(Vec::new());
    head.dir(b"wyrcan", &root_owned(0o700))?;
    let size_field = head_at + head.written() + cpio::SIZE_FIELD_OFFSET;
    head.file(
        &[stage2::ROOT_PATH.as_bytes()[1..].to_vec()],
        &root_owned(0o400),
        0,
        &mut io::empty(),
    )?;
    let head = head.into_inner();
    initrd.write_all(&head).context("writing the initrd")?;
    let image_at = initrd.stream_position()?;

    let compress = zstd::bulk::Compressor::new(ZSTD_LEVEL).context("starting zstd")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs().min(u64::from(u32::MAX)) as u32);
    let mut writer = squashfs::Writer::new(
        Progressed {
            file: &initrd,
            pos: image_at,
            written: out.written,
        },
        Box::new(Zstd(compress)),
        squashfs::DEFAULT_BLOCK_SIZE,
        now,
    )
    .context("starting the squashfs")?;
    let side = SideOutputs::new(Some(out.kernel));
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if workers > 1 {
        std::thread::scope(|s| -> Result<()> {
            let mut pooled = Pooled::start(s, &mut writer, workers)?;
            emit(tree, plan, layers, &mut pooled, &side, image)
        })?;
    } else {
        emit(tree, plan, layers, &mut writer, &side, image)?;
    }
    let finished = writer
        .finish()
        .with_context(|| format!("finishing the squashfs of {image}"))?;
    let squashfs_len = finished.len;
    let size = u32::try_from(squashfs_len).map_err(|_| {
        anyhow!(
            "the squashfs of {image} is {squashfs_len} bytes, more than an initramfs file can hold (4 GiB): \
             use a smaller image"
        )
    })?;
    let trailer = cpio::Writer::new(Vec::new()).finish()?;
    let modules = modules(tree, info, &finished, &initrd, image_at, image)?;
    initrd
        .write_at(&cpio::size_field(size), size_field)
        .context("writing the initrd")?;
    initrd.seek(SeekFrom::Start(image_at + squashfs_len))?;
    initrd.write_all(&trailer).context("writing the initrd")?;

    let config = Stage2Config::new(
        image,
        modules.iter().map(|(p, _)| p.clone()).collect(),
        init,
        COUNTDOWN_SECS,
    );
    let mut w = cpio::Writer::new(Vec::new());
    for d in ["dev", "proc", "sys", "run", &stage2::MODULES_DIR[1..]] {
        w.dir(d.as_bytes(), &root_owned(0o755))?;
    }
    // The kernel opens /dev/console for init's stdio before devtmpfs is
    // mounted: without it the stage 2 would start without a console.
    w.special(
        b"dev/console",
        Special::Char { major: 5, minor: 1 },
        &root_owned(0o600),
    )?;
    let put = |w: &mut cpio::Writer<Vec<u8>>, path: &str, mode: u32, bytes: &[u8]| {
        w.file(
            &[path.trim_start_matches('/').as_bytes().to_vec()],
            &root_owned(mode),
            bytes.len() as u64,
            &mut &bytes[..],
        )
    };
    put(&mut w, "init", 0o755, &stage2_bin)?;
    put(&mut w, CONFIG_PATH, 0o644, &config.to_json())?;
    for (path, bytes) in &modules {
        put(&mut w, path, 0o644, bytes)?;
    }
    let cpio = w.finish()?;
    let packed = super::booted::compress_archive(cpio, out.compression)?;
    initrd.write_all(&packed).context("writing the initrd")?;
    (out.written)(initrd.stream_position()?);
    let captured = std::mem::take(&mut *side.captured.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(SquashWritten {
        captured,
        squashfs_len,
        modules: modules.into_iter().map(|(p, _)| p).collect(),
    })
}

/// A block for the pool: its number in the file, the raw bytes.
type Job = (usize, Vec<u8>);
/// Back from the pool: its number, the bytes to store, whether compressed,
/// the raw buffer to reuse.
type Done = (usize, io::Result<(Vec<u8>, bool)>, Vec<u8>);

/// The squashfs writer as a [`Sink`] whose full data blocks are compressed
/// by a pool of threads while this one reads on: a big file's blocks are
/// compressed on every core and appended in order (a file's blocks must
/// be contiguous). Tails go into fragments, which the writer compresses
/// itself. At most twice the pool's size of blocks are in flight.
struct Pooled<'w, W: Write + Seek> {
    writer: &'w mut squashfs::Writer<W>,
    jobs: std::sync::mpsc::SyncSender<Job>,
    done: std::sync::mpsc::Receiver<Done>,
    depth: usize,
    spare: Vec<Vec<u8>>,
}

impl<'w, W: Write + Seek> Pooled<'w, W> {
    fn start<'s>(
        scope: &'s std::thread::Scope<'s, '_>,
        writer: &'w mut squashfs::Writer<W>,
        workers: usize,
    ) -> Result<Self> {
        let depth = 2 * workers;
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(depth);
        let (results, done) = std::sync::mpsc::channel::<Done>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for _ in 0..workers {
            let mut zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL).context("starting zstd")?;
            let (queue, results) = (queue.clone(), results.clone());
            scope.spawn(move || loop {
                let job = queue.lock().map(|q| q.recv());
                let Ok(Ok((i, raw))) = job else { return };
                // A panic becomes an error for this block: the appender
                // waits for every block it sent and must not wait forever.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
                    zstd.compress_to_buffer(&raw[..], &mut out).map(|_| out)
                }))
                .unwrap_or_else(|_| Err(io::Error::other("the zstd compressor panicked")))
                // Not smaller: squashfs stores the block raw.
                .map(|c| {
                    if c.len() < raw.len() {
                        (c, true)
                    } else {
                        (raw.clone(), false)
                    }
                });
                if results.send((i, r, raw)).is_err() {
                    return;
                }
            });
        }
        Ok(Pooled {
            writer,
            jobs,
            done,
            depth,
            spare: Vec::new(),
        })
    }

    /// Append results in block order until at most `keep` are in flight.
    fn drain(
        &mut self,
        f: &mut FileData,
        next: &mut usize,
        sent: usize,
        keep: usize,
        early: &mut std::collections::BTreeMap<usize, (Vec<u8>, bool)>,
    ) -> io::Result<()> {
        let bs = self.writer.block_size();
        while sent - *next > keep {
            while let Some((stored, compressed)) = early.remove(next) {
                self.writer.add_block(f, &stored, compressed, bs)?;
                *next += 1;
            }
            if sent - *next <= keep {
                break;
            }
            let (i, r, raw) = self
                .done
                .recv()
                .map_err(|_| io::Error::other("a squashfs compression thread stopped"))?;
            self.spare.push(raw);
            early.insert(i, r?);
        }
        Ok(())
    }
}

impl<W: Write + Seek> Sink for Pooled<'_, W> {
    fn dir(&mut self, path: &[u8], meta: &Meta) -> io::Result<()> {
        Sink::dir(self.writer, path, meta)
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> io::Result<()> {
        Sink::symlink(self.writer, path, target, meta)
    }

    fn special(&mut self, path: &[u8], kind: Special, meta: &Meta) -> io::Result<()> {
        Sink::special(self.writer, path, kind, meta)
    }

    fn file(
        &mut self,
        paths: &[Vec<u8>],
        meta: &Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let bs = u64::from(self.writer.block_size());
        // Small files are all tail: nothing for the pool.
        if size < bs || paths.is_empty() {
            return Sink::file(self.writer, paths, meta, size, data);
        }
        let what = || String::from_utf8_lossy(&paths[0]).into_owned();
        let mut f = self.writer.begin_file();
        let (mut sent, mut next) = (0usize, 0usize);
        let mut early = std::collections::BTreeMap::new();
        let mut left = size;
        while left >= bs {
            let mut raw = self.spare.pop().unwrap_or_default();
            raw.resize(bs as usize, 0);
            data.read_exact(&mut raw)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", what())))?;
            left -= bs;
            if raw.iter().all(|&b| b == 0) {
                // Everything before it must be appended first.
                self.drain(&mut f, &mut next, sent, 0, &mut early)?;
                self.writer.add_sparse_block(&mut f, bs as u32);
                self.spare.push(raw);
                sent += 1;
                next += 1;
                continue;
            }
            self.jobs
                .send((sent, raw))
                .map_err(|_| io::Error::other("the squashfs compression threads stopped"))?;
            sent += 1;
            let depth = self.depth;
            self.drain(&mut f, &mut next, sent, depth, &mut early)?;
        }
        self.drain(&mut f, &mut next, sent, 0, &mut early)?;
        if left > 0 {
            let mut tail = vec![0u8; left as usize];
            data.read_exact(&mut tail)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", what())))?;
            self.writer.add_tail(&mut f, &tail)?;
        }
        self.writer
            .file(paths, meta, f)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}

/// Reports the initrd's size as the squashfs grows.
struct Progressed<'a> {
    file: &'a File,
    /// The file's position, kept here rather than asked of the kernel
    /// after every block.
    pos: u64,
    written: &'a (dyn Fn(u64) + Sync),
}

impl Write for Progressed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&mut self.file).write(buf)?;
        self.pos += n as u64;
        (self.written)(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&mut self.file).flush()
    }
}

impl Seek for Progressed<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = (&mut self.file).seek(pos)?;
        Ok(self.pos)
    }
}

/// Wyrcan's own entries: root's, mtime 0, with `mode`.
fn root_owned(mode: u32) -> Meta {
    Meta {
        mode,
        ..Meta::IMPLIED_DIR
    }
}

/// A dynamically linked Wyrcan would find no C library in the initramfs.
fn check_static(bin: &[u8], path: &Path) -> Result<()> {
    match wyrcan_core::elf::has_interpreter(bin) {
        Some(false) => Ok(()),
        Some(true) => bail!(
            "{} is dynamically linked and cannot run as the stage-2 /init of a squashfs root: \
             pass --stage2 with a static wyrcan (scripts/build-bootenv builds one; the release ships one)",
            path.display()
        ),
        None => bail!(
            "{} is not an x86-64/aarch64 ELF executable: pass --stage2 with a static wyrcan binary",
            path.display()
        ),
    }
}

/// The image's release (`uname -r` of its kernel): from the kernel's path,
/// else the only directory in `/lib/modules`.
fn kernel_release(tree: &mut Tree, kernel_path: &str) -> Result<Option<String>> {
    let name = kernel_path.rsplit('/').next().unwrap_or("");
    if let Some(v) = name.strip_prefix("vmlinuz-") {
        return Ok(Some(v.to_string()));
    }
    let parts: Vec<&str> = kernel_path.trim_start_matches('/').split('/').collect();
    if let ["usr", "lib", "modules", v, "vmlinuz"] | ["lib", "modules", v, "vmlinuz"] = parts[..] {
        return Ok(Some(v.to_string()));
    }
    let Some(dir) = tree.lookup(b"lib/modules", true)? else {
        return Ok(None);
    };
    let dirs: Vec<String> = tree
        .list(dir)
        .into_iter()
        .filter(|(_, id)| matches!(tree.info(*id), Some(NodeInfo::Dir)))
        .map(|(n, _)| String::from_utf8_lossy(&n).into_owned())
        .collect();
    Ok(match &dirs[..] {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// Read a file of the tree back out of the finished squashfs.
fn read_back(
    tree: &mut Tree,
    finished: &Finished<Progressed<'_>>,
    initrd: &File,
    image_at: u64,
    path: &str,
) -> Result<Option<Vec<u8>>> {
    let Some(id) = tree.lookup(path.trim_start_matches('/').as_bytes(), true)? else {
        return Ok(None);
    };
    let canonical = tree.path_of(id);
    let key = canonical.strip_prefix(b"/").unwrap_or(&canonical);
    let Some(extents) = finished.extents(key) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for e in extents {
        read_extent(initrd, image_at, &e, &mut out)
            .with_context(|| format!("reading {path} back from the squashfs"))?;
    }
    Ok(Some(out))
}

fn read_extent(initrd: &File, image_at: u64, e: &Extent, out: &mut Vec<u8>) -> Result<()> {
    if e.stored_len == 0 {
        out.resize(out.len() + e.raw_len as usize, 0);
        return Ok(());
    }
    let mut stored = vec![0u8; e.stored_len as usize];
    initrd.read_exact_at(&mut stored, image_at + e.offset)?;
    let raw = if e.compressed {
        zstd::bulk::decompress(&stored, e.raw_len as usize)?
    } else {
        stored
    };
    let (from, len) = e.cut.unwrap_or((0, raw.len() as u32));
    let piece = raw
        .get(from as usize..(from + len) as usize)
        .ok_or_else(|| anyhow!("an extent points outside its block"))?;
    out.extend_from_slice(piece);
    Ok(())
}

/// The modules the stage 2 loads, as (initramfs path, bytes), in order.
fn modules(
    tree: &mut Tree,
    info: &BootInfo,
    finished: &Finished<Progressed<'_>>,
    initrd: &File,
    image_at: u64,
    image: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let fix = "install the kernel's modules in the image (they come with the distribution's kernel package), \
               or boot it with wyrcan.root=cpio";
    let release = kernel_release(tree, &info.kernel.path)?.ok_or_else(|| {
        anyhow!(
            "wyrcan.root=squashfs: cannot tell the release of {}'s kernel {} (no vmlinuz-RELEASE name, \
             not one directory in /lib/modules): {fix}",
            image,
            info.kernel.path
        )
    })?;
    let base = format!("lib/modules/{release}");
    let mut read =
        |name: &str| read_back(tree, finished, initrd, image_at, &format!("{base}/{name}"));
    let dep = read("modules.dep")?.ok_or_else(|| {
        anyhow!("wyrcan.root=squashfs: {image} has no /{base}/modules.dep to find loop, squashfs and overlay: {fix}")
    })?;
    let builtin = read("modules.builtin")?.unwrap_or_default();
    let index = ModuleIndex::parse(
        "",
        &String::from_utf8_lossy(&dep),
        &String::from_utf8_lossy(&builtin),
    )
    .map_err(|e| anyhow!("/{base}/modules.dep of {image}: {e}"))?;
    let names: Vec<String> = NEEDED_MODULES.iter().map(|s| s.to_string()).collect();
    let order = index
        .load_order(&names)
        .map_err(|e| anyhow!("wyrcan.root=squashfs: {image}, kernel {release}: {e}: {fix}"))?;
    let mut out = Vec::new();
    for rel in order {
        let bytes = read(&rel)?.ok_or_else(|| {
            anyhow!("wyrcan.root=squashfs: /{base}/{rel} of {image} is listed in modules.dep but missing: {fix}")
        })?;
        let file = rel.rsplit('/').next().unwrap_or(&rel);
        out.push((format!("{}/{file}", stage2::MODULES_DIR), bytes));
    }
    Ok(out)
}
