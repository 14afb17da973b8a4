//! The initrd as a series of independently compressed frames. Every
//! frame holds whole cpio entries, so frames can follow each other in any
//! order once the skeleton (every directory) is out: the kernel reads
//! concatenated compressed pieces as one archive
//! (Documentation/driver-api/early-userspace/buffer-format.rst), and so do
//! `zstd -d`/`gzip -d`. Layer threads parse and cut frames; a pool of
//! compressor threads (one per core) compresses them, so even one big
//! layer keeps every core busy.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, MutexGuard};
use std::thread;

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::cpio;
use wyrcan_core::tree::{Plan, Tree};

use super::emit::{deliver, layer_name, stream_layer, SideOutputs};
use super::OutputCompression;
use crate::pull::{LocalLayer, MAX_LAYERS};

// Layer `i` numbers its inodes from `(i + 1) << 22`: the last layer's
// range must fit the cpio header's 32-bit field.
const _: () = assert!(((MAX_LAYERS as u64) + 1) << 22 < u32::MAX as u64);

/// Uncompressed cpio bytes a frame collects before it is cut, at the next
/// entry boundary, and handed to a compressor.
const FRAME_RAW: usize = 2 << 20;
/// A frame's buffer, allocated once and never grown: a frame that would
/// outgrow it inside one entry (a big file) is not buffered further, its
/// thread takes the output and streams the rest of the entry through an
/// encoder into it (zstd's on every core), so memory stays a few buffers
/// per core whatever the file sizes.
const STREAM_RAW: usize = 4 << 20;
/// zstd's job size when a big entry is compressed by several threads:
/// small enough that a 10 MiB file is split among them.
const ZSTD_JOB: u32 = 2 << 20;

/// The initrd being written by several threads, and what they share.
struct Frames<'p> {
    out: Mutex<Counted>,
    kind: OutputCompression,
    /// Hears the initrd's size after every frame.
    report: &'p (dyn Fn(u64) + Sync),
    /// Emptied frame buffers, reused: musl's allocator gives big blocks
    /// back to the kernel on every free.
    spare: Mutex<Vec<Vec<u8>>>,
    /// Threads of a big entry's zstd stream.
    threads: u32,
    /// Set by the first thread that fails: the others stop.
    failed: AtomicBool,
    /// What that thread failed with.
    first_error: Mutex<Option<anyhow::Error>>,
}

impl Frames<'_> {
    /// Record the first failure and stop the other threads.
    fn fail(&self, e: anyhow::Error) {
        if !self.failed.swap(true, Ordering::SeqCst) {
            *self.first_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
    }

    fn stopped(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn output(&self) -> MutexGuard<'_, Counted> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append one compressed frame.
    fn append(&self, frame: &[u8]) -> io::Result<()> {
        let mut out = self.output();
        out.write_all(frame)?;
        let total = out.written;
        drop(out);
        (self.report)(total);
        Ok(())
    }

    fn buffer(&self) -> Vec<u8> {
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        spare.unwrap_or_else(|| Vec::with_capacity(STREAM_RAW))
    }

    fn recycle(&self, mut raw: Vec<u8>) {
        if raw.capacity() == STREAM_RAW {
            raw.clear();
            self.spare
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(raw);
        }
    }

    /// A compressor thread: frames from `queue` until every sender is
    /// gone, each compressed and appended. After a failure it keeps
    /// draining, so no sender blocks forever.
    fn compress_frames(&self, queue: &Mutex<std::sync::mpsc::Receiver<Vec<u8>>>) {
        let mut codec = match Codec::new(self.kind) {
            Ok(c) => Some(c),
            Err(e) => {
                self.fail(anyhow::Error::new(e).context("creating a compressor for the initrd"));
                None
            }
        };
        let mut out = Vec::new();
        loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
            let Ok(raw) = next else { break };
            if let Some(c) = codec.as_mut().filter(|_| !self.stopped()) {
                let res = c.compress(&raw, &mut out).and_then(|()| self.append(&out));
                if let Err(e) = res {
                    self.fail(anyhow::Error::new(e).context("compressing the initrd"));
                }
            }
            self.recycle(raw);
        }
    }
}

/// The initrd file and how many bytes it holds.
struct Counted {
    file: BufWriter<File>,
    written: u64,
}

impl Write for Counted {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.file.write(data)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// One frame's encoder, reused frame after frame by a compressor thread.
enum Codec {
    Zstd(zstd::bulk::Compressor<'static>),
    Gzip(flate2::Compression),
    None,
}

impl Codec {
    fn new(kind: OutputCompression) -> io::Result<Self> {
        Ok(match kind {
            OutputCompression::Zstd(level) => Codec::Zstd(zstd::bulk::Compressor::new(level)?),
            OutputCompression::Gzip(level) => Codec::Gzip(flate2::Compression::new(level)),
            OutputCompression::None => Codec::None,
        })
    }

    /// `raw` as one complete frame (zstd frame, gzip member) in `out`.
    fn compress(&mut self, raw: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        match self {
            Codec::Zstd(c) => {
                out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
                c.compress_to_buffer(raw, out)?;
            }
            Codec::Gzip(level) => {
                let mut e = flate2::write::GzEncoder::new(std::mem::take(out), *level);
                e.write_all(raw)?;
                *out = e.finish()?;
            }
            Codec::None => out.extend_from_slice(raw),
        }
        Ok(())
    }
}

/// The output, held by one thread while it streams a big entry into it.
struct Held<'a>(MutexGuard<'a, Counted>);

impl Write for Held<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A frame streaming straight into the held output.
enum Stream<'a> {
    Zstd(zstd::stream::write::Encoder<'static, Held<'a>>),
    Gzip(flate2::write::GzEncoder<Held<'a>>),
    None(Held<'a>),
}

impl<'a> Stream<'a> {
    fn new(kind: OutputCompression, out: Held<'a>, threads: u32) -> io::Result<Self> {
        Ok(match kind {
            OutputCompression::Zstd(level) => {
                let mut e = zstd::stream::write::Encoder::new(out, level)?;
                if threads > 1 {
                    e.multithread(threads)?;
                    e.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB))?;
                }
                Stream::Zstd(e)
            }
            // One thread: a gzip member cannot be split inside an entry.
            OutputCompression::Gzip(level) => Stream::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(level),
            )),
            OutputCompression::None => Stream::None(out),
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Stream::Zstd(e) => e,
            Stream::Gzip(e) => e,
            Stream::None(h) => h,
        }
    }

    fn finish(self) -> io::Result<Held<'a>> {
        match self {
            Stream::Zstd(e) => e.finish(),
            Stream::Gzip(e) => e.finish(),
            Stream::None(h) => Ok(h),
        }
    }
}

/// A frame being filled by one thread, cut between cpio entries: the
/// kernel restarts its offset bookkeeping at every compressed member, so a
/// member must never end inside an entry (a hardlink group is one
/// [`FileJob`](wyrcan_core::tree::FileJob), hence in one frame). Full
/// frames go to the compressor pool (`queue`) or, without one (the
/// skeleton, the trailer), are compressed on this thread.
struct FrameWriter<'a> {
    frames: &'a Frames<'a>,
    raw: Vec<u8>,
    queue: Option<SyncSender<Vec<u8>>>,
    stream: Option<Stream<'a>>,
}

impl<'a> FrameWriter<'a> {
    fn new(frames: &'a Frames<'a>, queue: Option<SyncSender<Vec<u8>>>) -> Self {
        FrameWriter {
            frames,
            raw: Vec::new(),
            queue,
            stream: None,
        }
    }

    /// Between two cpio entries: end the frame if it is big enough, is
    /// streaming into the output, or `force` says so.
    fn boundary(&mut self, force: bool) -> io::Result<()> {
        if let Some(stream) = self.stream.take() {
            let held = stream.finish()?;
            let total = held.0.written;
            drop(held);
            (self.frames.report)(total);
            return Ok(());
        }
        if self.raw.is_empty() || !force && self.raw.len() < FRAME_RAW {
            return Ok(());
        }
        let raw = std::mem::take(&mut self.raw);
        match &self.queue {
            Some(q) => q
                .send(raw)
                .map_err(|_| io::Error::other("the initrd's compressors stopped")),
            None => {
                let mut out = Vec::new();
                Codec::new(self.frames.kind)?.compress(&raw, &mut out)?;
                self.frames.recycle(raw);
                self.frames.append(&out)
            }
        }
    }

    /// Take the output and stream the frame so far, and the rest of the
    /// entry, into it.
    fn start_stream(&mut self) -> io::Result<()> {
        let held = Held(self.frames.output());
        let mut stream = Stream::new(self.frames.kind, held, self.frames.threads)?;
        stream.writer().write_all(&self.raw)?;
        self.frames.recycle(std::mem::take(&mut self.raw));
        self.stream = Some(stream);
        Ok(())
    }
}

impl Write for FrameWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(s) = self.stream.as_mut() {
            return s.writer().write(data);
        }
        if self.raw.capacity() == 0 {
            self.raw = self.frames.buffer();
        }
        if self.raw.len() + data.len() > STREAM_RAW {
            self.start_stream()?;
            return self.write(data);
        }
        self.raw.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where [`write_initrd`] writes.
pub struct Outputs<'a> {
    /// The initrd.
    pub initrd: File,
    /// Its compression.
    pub compression: OutputCompression,
    /// The kernel's bytes.
    pub kernel: &'a mut File,
    /// Hears the initrd's size as it grows.
    pub written: &'a (dyn Fn(u64) + Sync),
}

/// Write the initrd: the skeleton, then the layers' files with several
/// layers streamed at once (each by one thread, plus its inflater), then
/// the trailer. Returns the image's own cmdline bytes if it has one and
/// the uncompressed cpio size.
pub fn write_initrd(
    tree: &Tree,
    plan: &Plan,
    layers: &mut [LocalLayer],
    outputs: Outputs<'_>,
    image: &str,
) -> Result<(Vec<u8>, u64)> {
    let Outputs {
        initrd: out,
        compression,
        kernel: kernel_out,
        written,
    } = outputs;
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let frames = Frames {
        out: Mutex::new(Counted {
            file: BufWriter::with_capacity(1 << 20, out),
            written: 0,
        }),
        kind: compression,
        report: written,
        spare: Mutex::new(Vec::new()),
        threads: cores.min(8) as u32,
        failed: AtomicBool::new(false),
        first_error: Mutex::new(None),
    };
    let side = SideOutputs::new(Some(kernel_out));
    let n = layers.len();
    // The pull refused this before any download; kept for callers that
    // build layers themselves.
    if n > MAX_LAYERS {
        bail!("{image} has {n} layers; at most {MAX_LAYERS} are supported: rebuild it with fewer layers");
    }
    // The skeleton is compressed on this thread: it must be out before
    // any file frame.
    let mut w = cpio::Writer::with_first_ino(FrameWriter::new(&frames, None), 1);
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
    let layer_threads = cores.clamp(1, 4);
    let frames = &frames;
    // At most one frame waiting per compressor: with the frames being
    // filled and compressed, memory stays a few frames per core.
    let (tx, rx) = sync_channel::<Vec<u8>>(cores);
    let rx = &Mutex::new(rx);
    let results: Vec<Result<u64>> = thread::scope(|s| {
        let compressors: Vec<_> = (0..cores)
            .map(|_| s.spawn(|| frames.compress_frames(rx)))
            .collect();
        let handles: Vec<_> = (0..layer_threads)
            .map(|_| {
                let tx = tx.clone();
                let queue = &queue;
                let side = &side;
                s.spawn(move || -> Result<u64> {
                    let mut written = 0;
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                        let Some((i, layer)) = next else { break };
                        if frames.stopped() {
                            break;
                        }
                        let what = layer_name(i, n, layer, image);
                        // Disjoint inode numbers per layer (see cpio::Writer::with_first_ino);
                        // the assertion under the imports says the last range fits.
                        let first_ino = ((i as u32) + 1) << 22;
                        let mut w = cpio::Writer::with_first_ino(
                            FrameWriter::new(frames, Some(tx.clone())),
                            first_ino,
                        );
                        let res = stream_layer(layer, plan.layer(i as u32), &what, |job, data| {
                            if frames.stopped() {
                                return Err(io::Error::other("stopped: another thread failed"));
                            }
                            deliver(job, data, &mut w, side)?;
                            w.get_mut().boundary(false)
                        });
                        written += w.written();
                        let mut fw = w.into_inner();
                        let res = res.and_then(|()| {
                            fw.boundary(true).with_context(|| format!("writing {what}"))
                        });
                        if let Err(e) = res {
                            frames.fail(e);
                            return Err(anyhow!("stopped"));
                        }
                    }
                    Ok(written)
                })
            })
            .collect();
        // The compressors end once every layer thread dropped its sender.
        drop(tx);
        let results = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a layer thread panicked")))
            })
            .collect();
        for c in compressors {
            if c.join().is_err() {
                frames.fail(anyhow!("a compressor thread of the initrd panicked"));
            }
        }
        results
    });
    if let Some(e) = frames
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(e);
    }
    for r in results {
        total += r?;
    }
    let trailer = cpio::Writer::new(FrameWriter::new(frames, None));
    let mut fw = trailer.finish().context("finishing the cpio archive")?;
    fw.boundary(true).context("finishing the cpio archive")?;
    total += cpio::TRAILER_LEN;
    drop(fw);
    let mut out = frames.output();
    out.flush().context("writing the initrd")?;
    let captured = side
        .captured
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok((captured, total))
}
