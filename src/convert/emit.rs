//! The second pass for `unpack` and the routing shared with the initrd
//! writer: each planned file goes to the sink, the kernel's bytes also to
//! the kernel output, the image's cmdline file also into memory. One layer
//! is streamed by two threads: one inflates the verified blob into a
//! bounded pipe, the caller's thread parses the tar.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::sync::Mutex;
use std::thread;

use anyhow::{anyhow, Context, Result};
use wyrcan_core::tree::{self, FileJob, Plan, Role, Sink, Tree};

use super::pipe::pipe;
use crate::pull::{decoder, LocalLayer};

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
pub(super) fn deliver(
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
pub(super) fn stream_layer(
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

pub(super) fn layer_name(i: usize, n: usize, layer: &LocalLayer, image: &str) -> String {
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
