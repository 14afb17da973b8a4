//! The boot environment's console: output goes to *every* `console=`
//! device (the kernel gives PID 1 only the last one as /dev/console), and
//! input — Enter, `yes`, a key to stop a countdown — is read from every one
//! of them too, first answer wins. The ISO boots with `console=tty0
//! console=ttyS0`, so /dev/console is the serial port; someone at the
//! machine's own keyboard (tty0) must still be able to answer a prompt.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::termios::{self, LocalModes, OptionalActions};

/// What PID 1 says and asks on its consoles; the real one is [`Console`],
/// tests script the answers.
pub trait Terminal: Sync {
    /// Write text to every console.
    fn say(&self, text: &str);
    /// Read one line (blocking).
    fn read_line(&self) -> String;
    /// Ask a question; true only for `yes`.
    fn confirm(&self, question: &str) -> bool {
        self.say(&format!(
            "{question} Type yes and press Enter to continue: "
        ));
        let answer = self.read_line();
        self.say("\n");
        answer.eq_ignore_ascii_case("yes")
    }
    /// Count down `secs` seconds; true if a key stopped it.
    fn countdown(&self, what: &str, secs: u64) -> bool;
}

/// All console devices, shared by the logger and the prompts.
#[derive(Clone)]
pub struct Console {
    outs: Arc<Mutex<Vec<File>>>,
    /// The same devices opened for reading (non-blocking: two `console=`
    /// names may be one tty, and only one read gets its line).
    ins: Arc<Vec<File>>,
}

/// `ttyS0,115200n8` → `/dev/ttyS0`; `tty0` → `/dev/tty0`. Not a tty
/// device name (e.g. `netcon0`, `hvc0` stays) → the path anyway: opening
/// fails harmlessly.
pub fn device_path(arg: &str) -> String {
    let name = arg.split(',').next().unwrap_or(arg);
    format!("/dev/{name}")
}

fn open_input(path: &str) -> io::Result<File> {
    // O_NOCTTY: opening a tty must not make it PID 1's controlling terminal.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
}

impl Console {
    /// Open each `console=` device; with none, /dev/console.
    pub fn open(console_args: &[String]) -> Self {
        let mut paths: Vec<String> = Vec::new();
        for p in console_args.iter().map(|a| device_path(a)) {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        if paths.is_empty() {
            paths.push("/dev/console".into());
        }
        let mut outs = Vec::new();
        let mut ins = Vec::new();
        for p in &paths {
            if let Ok(f) = OpenOptions::new().write(true).open(p) {
                outs.push(f);
                if let Ok(i) = open_input(p) {
                    ins.push(i);
                }
            }
        }
        if outs.is_empty() {
            if let Ok(f) = OpenOptions::new().write(true).open("/dev/console") {
                outs.push(f);
            }
        }
        if ins.is_empty() {
            if let Ok(i) = open_input("/dev/console") {
                ins.push(i);
            }
        }
        Console {
            outs: Arc::new(Mutex::new(outs)),
            ins: Arc::new(ins),
        }
    }
}

impl Terminal for Console {
    /// Write text to every console; serial lines want `\r\n`.
    fn say(&self, text: &str) {
        let text = text.replace('\n', "\r\n");
        let mut outs = self.outs.lock().unwrap_or_else(|e| e.into_inner());
        for o in outs.iter_mut() {
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        }
    }

    /// Read one line from whichever console completes one first (blocking).
    fn read_line(&self) -> String {
        read_line_from(&self.ins)
    }

    /// Count down `secs` seconds on the console; true if a key was pressed
    /// on any console.
    fn countdown(&self, what: &str, secs: u64) -> bool {
        // Non-canonical mode so a single key counts, not only Enter.
        let saved: Vec<_> = self
            .ins
            .iter()
            .map(|f| {
                let t = termios::tcgetattr(f).ok()?;
                let mut raw = t.clone();
                raw.local_modes -= LocalModes::ICANON | LocalModes::ECHO;
                let _ = termios::tcsetattr(f, OptionalActions::Now, &raw);
                Some(t)
            })
            .collect();
        let mut pressed = false;
        for left in (1..=secs).rev() {
            self.say(&format!("\r{what} in {left} s, press any key to stop... "));
            let until = Instant::now() + Duration::from_secs(1);
            if wait_input(&self.ins, until) {
                pressed = true;
                break;
            }
        }
        for (f, t) in self.ins.iter().zip(&saved) {
            if let Some(t) = t {
                let _ = termios::tcsetattr(f, OptionalActions::Now, t);
            }
        }
        self.say("\n");
        pressed
    }
}

/// Poll `fds` for input until `deadline`; on input, read (and drop) what
/// is there and return true. A console that hangs up is no input.
fn wait_input<F: AsFd>(fds: &[F], deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut polled: Vec<PollFd> = fds.iter().map(|f| PollFd::new(f, PollFlags::IN)).collect();
        let ts = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match poll(&mut polled, Some(&ts)) {
            Ok(0) => return false,
            Ok(_) => {
                let ready: Vec<bool> = polled
                    .iter()
                    .map(|p| p.revents().contains(PollFlags::IN))
                    .collect();
                drop(polled);
                let mut got = false;
                for (f, _) in fds.iter().zip(ready).filter(|(_, r)| *r) {
                    let mut b = [0u8; 64];
                    got |= matches!(rustix::io::read(f, &mut b), Ok(n) if n > 0);
                }
                if got {
                    return true;
                }
                // Only hang-ups or spurious wake-ups: wait out the second.
                std::thread::sleep(left.min(Duration::from_millis(100)));
            }
            Err(_) => std::thread::sleep(left.min(Duration::from_millis(100))),
        }
    }
}

/// One line from whichever of `fds` completes one first: each has its own
/// buffer, so keys typed on two consoles never mix. A console that hangs up
/// or fails is dropped; with none left, wait forever (PID 1 has nothing
/// better to do, and must not exit).
fn read_line_from<F: AsFd>(fds: &[F]) -> String {
    let mut lines: Vec<Vec<u8>> = vec![Vec::new(); fds.len()];
    let mut live: Vec<bool> = vec![true; fds.len()];
    loop {
        let fds_live: Vec<(usize, BorrowedFd)> = fds
            .iter()
            .enumerate()
            .filter(|(i, _)| live[*i])
            .map(|(i, f)| (i, f.as_fd()))
            .collect();
        if fds_live.is_empty() {
            std::thread::sleep(Duration::from_secs(3600));
            continue;
        }
        let mut polled: Vec<PollFd> = fds_live
            .iter()
            .map(|(_, f)| PollFd::from_borrowed_fd(*f, PollFlags::IN))
            .collect();
        if poll(&mut polled, None).is_err() {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let events: Vec<PollFlags> = polled.iter().map(|p| p.revents()).collect();
        drop(polled);
        for ((i, fd), ev) in fds_live.into_iter().zip(events) {
            if ev.is_empty() {
                continue;
            }
            let mut b = [0u8; 256];
            match rustix::io::read(fd, &mut b) {
                Ok(0) => live[i] = false,
                Ok(n) => {
                    let line = &mut lines[i];
                    for &c in &b[..n] {
                        if c == b'\n' || c == b'\r' {
                            return String::from_utf8_lossy(line).trim().to_string();
                        }
                        line.push(c);
                    }
                    // Bounded: a console that never sends a newline still
                    // returns after a page of input.
                    if line.len() >= 4096 {
                        return String::from_utf8_lossy(line).trim().to_string();
                    }
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(_) => live[i] = false,
            }
        }
    }
}

/// A `tracing` writer that goes to the console.
pub struct ConsoleWriter(Console);

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.say(&text);
        // One formatted event per write: also off the box, if asked.
        super::syslog::record(&text);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Console {
    type Writer = ConsoleWriter;
    fn make_writer(&'a self) -> Self::Writer {
        ConsoleWriter(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    // Sockets stand in for ttys: poll and read behave alike.
    fn pipe() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    #[test]
    fn a_line_from_whichever_console_answers() {
        let (r1, mut w1) = pipe();
        let (r2, mut w2) = pipe();
        let (r3, w3) = pipe();
        // A console that hung up is ignored, not spun on.
        drop(w3);
        // Half a line on one console does not mix with the other's line.
        w1.write_all(b"y").unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            w2.write_all(b"yes\r\n").unwrap();
            w2
        });
        assert_eq!(super::read_line_from(&[r1, r2, r3]), "yes");
        drop(t.join().unwrap());
    }

    #[test]
    fn input_ends_a_wait() {
        let (r, mut w) = pipe();
        let soon = std::time::Instant::now() + std::time::Duration::from_millis(50);
        assert!(!super::wait_input(std::slice::from_ref(&r), soon));
        w.write_all(b"x").unwrap();
        let later = std::time::Instant::now() + std::time::Duration::from_secs(5);
        assert!(super::wait_input(&[r], later));
    }

    #[test]
    fn console_device_names() {
        assert_eq!(super::device_path("ttyS0,115200n8"), "/dev/ttyS0");
        assert_eq!(super::device_path("tty0"), "/dev/tty0");
    }
}
