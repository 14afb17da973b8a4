//! A bounded in-memory pipe between threads, so decompression, flattening
//! and compression each run on their own core while memory stays fixed
//! (`DEPTH` chunks of `CHUNK` bytes in flight per pipe).

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes per message.
pub const CHUNK: usize = 256 * 1024;
/// Messages in flight.
const DEPTH: usize = 8;

/// A message: data, or the writer's failure passed on to the reader.
type Msg = Result<Vec<u8>, String>;

/// The writing end; dropping it ends the stream.
pub struct PipeWriter {
    tx: SyncSender<Msg>,
    buf: Vec<u8>,
}

/// The reading end.
pub struct PipeReader {
    rx: Receiver<Msg>,
    cur: Vec<u8>,
    pos: usize,
}

/// A connected pair.
pub fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = sync_channel(DEPTH);
    (
        PipeWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        PipeReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        },
    )
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the other end of the pipe stopped",
    )
}

impl PipeWriter {
    /// Tell the reader the producer failed, so it stops with this message
    /// instead of seeing a clean (truncated) end of stream.
    pub fn fail(self, msg: String) {
        let _ = self.tx.send(Err(msg));
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.send(Ok(full)).map_err(|_| closed())
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(msg)) => return Err(io::Error::other(msg)),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_bytes_across_threads_in_order() {
        let (mut w, mut r) = pipe();
        let t = std::thread::spawn(move || {
            for i in 0..3000u32 {
                w.write_all(&i.to_le_bytes()).unwrap();
            }
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        t.join().unwrap();
        assert_eq!(got.len(), 12000);
        assert_eq!(&got[4..8], &1u32.to_le_bytes());
    }

    #[test]
    fn failure_reaches_the_reader() {
        let (mut w, mut r) = pipe();
        w.write_all(b"abc").unwrap();
        w.flush().unwrap();
        w.fail("boom".into());
        let mut got = Vec::new();
        let err = r.read_to_end(&mut got).unwrap_err();
        assert!(err.to_string().contains("boom"));
    }

    #[test]
    fn writer_sees_a_gone_reader() {
        let (mut w, r) = pipe();
        drop(r);
        let e = w.write_all(&vec![0u8; CHUNK * 2]).unwrap_err().to_string();
        assert!(e.contains("the other end of the pipe stopped"), "{e}");
    }
}
