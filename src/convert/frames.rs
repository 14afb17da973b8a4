//! The initrd as a series of independently compressed frames, written by
//! one thread per layer (plus its inflater) at once. Every frame holds
//! whole cpio entries, so frames from different layers can follow each
//! other in any order: the kernel reads concatenated compressed pieces as
//! one archive (Documentation/driver-api/early-userspace/buffer-format.rst),
//! and so do `zstd -d`/`gzip -d`. Each frame's encoder is single-threaded:
//! the parallelism is across layers.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Compressed frames of the initrd, appended by several threads. Every
/// frame holds whole cpio entries, so frames from different layers can
/// follow each other in any order: the kernel reads concatenated
/// compressed pieces as one archive (Documentation/driver-api/
/// early-userspace/buffer-format.rst), and so do `zstd -d`/`gzip -d`.
struct Frames<'p> {
    out: Mutex<Counted>,
    kind: OutputCompression,
    /// Hears the initrd's size after every frame.
    report: &'p (dyn Fn(u64) + Sync),
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

/// A frame being filled by one thread, cut between cpio entries: the
/// kernel restarts its offset bookkeeping at every compressed member, so a
/// member must never end inside an entry. Up to [`FRAME_BYTES`] of
/// compressed output is kept in memory; past that (a big file), the thread
/// takes the output for itself and streams the rest of the entry into it,
/// so memory stays bounded whatever the file sizes.
struct FrameWriter<'a> {
    frames: &'a Frames<'a>,
    enc: Option<FrameEncoder<'a>>,
}

/// Compressed bytes kept in memory per frame before a thread streams
/// directly into the output.
const FRAME_BYTES: usize = 1 << 20;

/// Where an encoder's output goes: memory, or straight into the output
/// while this thread holds it.
struct FrameSink<'a> {
    buf: Vec<u8>,
    direct: Option<MutexGuard<'a, Counted>>,
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
            let total = match sink.direct.as_mut() {
                Some(out) => {
                    out.write_all(&sink.buf)?;
                    out.written
                }
                None => {
                    let mut out = self.frames.out.lock().unwrap_or_else(|e| e.into_inner());
                    out.write_all(&sink.buf)?;
                    out.written
                }
            };
            drop(sink);
            (self.frames.report)(total);
        }
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
    let frames = Frames {
        out: Mutex::new(Counted {
            file: BufWriter::with_capacity(1 << 20, out),
            written: 0,
        }),
        kind: compression,
        report: written,
    };
    let side = SideOutputs::new(Some(kernel_out));
    let n = layers.len();
    // The pull refused this before any download; kept for callers that
    // build layers themselves.
    if n > MAX_LAYERS {
        bail!("{image} has {n} layers; at most {MAX_LAYERS} are supported: rebuild it with fewer layers");
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
                        // Disjoint inode numbers per layer (see cpio::Writer::with_first_ino);
                        // the assertion under the imports says the last range fits.
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
