//! The boot environment's console: output goes to *every* `console=`
//! device (the kernel gives PID 1 only the last one as /dev/console), and
//! input — Enter, `yes`, a key to stop a countdown — comes from
//! /dev/console, PID 1's stdin.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::termios::{self, LocalModes, OptionalActions};

/// All console devices, shared by the logger and the prompts.
#[derive(Clone)]
pub struct Console {
    outs: Arc<Mutex<Vec<File>>>,
}

/// `ttyS0,115200n8` → `/dev/ttyS0`; `tty0` → `/dev/tty0`. Not a tty
/// device name (e.g. `netcon0`, `hvc0` stays) → the path anyway: opening
/// fails harmlessly.
pub fn device_path(arg: &str) -> String {
    let name = arg.split(',').next().unwrap_or(arg);
    format!("/dev/{name}")
}

impl Console {
    /// Open each `console=` device; with none, /dev/console.
    pub fn open(console_args: &[String]) -> Self {
        let mut paths: Vec<String> = console_args.iter().map(|a| device_path(a)).collect();
        paths.dedup();
        if paths.is_empty() {
            paths.push("/dev/console".into());
        }
        let mut outs = Vec::new();
        for p in &paths {
            if let Ok(f) = OpenOptions::new().write(true).open(p) {
                outs.push(f);
            }
        }
        if outs.is_empty() {
            if let Ok(f) = OpenOptions::new().write(true).open("/dev/console") {
                outs.push(f);
            }
        }
        Console {
            outs: Arc::new(Mutex::new(outs)),
        }
    }

    /// Write text to every console; serial lines want `\r\n`.
    pub fn say(&self, text: &str) {
        let text = text.replace('\n', "\r\n");
        let mut outs = self.outs.lock().unwrap_or_else(|e| e.into_inner());
        for o in outs.iter_mut() {
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        }
    }

    /// Read one line from /dev/console (blocking).
    pub fn read_line(&self) -> String {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        let mut stdin = io::stdin().lock();
        // Bounded: a console that never sends a newline still returns
        // after a page of input.
        while line.len() < 4096 {
            match stdin.read(&mut b) {
                Ok(1) if b[0] == b'\n' || b[0] == b'\r' => break,
                Ok(1) => line.push(b[0]),
                Ok(_) => std::thread::sleep(Duration::from_millis(200)),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        String::from_utf8_lossy(&line).trim().to_string()
    }

    /// Ask a question; true only for `yes`.
    pub fn confirm(&self, question: &str) -> bool {
        self.say(&format!(
            "{question} Type yes and press Enter to continue: "
        ));
        let answer = self.read_line();
        self.say("\n");
        answer.eq_ignore_ascii_case("yes")
    }

    /// Count down `secs` seconds on the console; true if a key was pressed.
    pub fn countdown(&self, what: &str, secs: u64) -> bool {
        let stdin = io::stdin();
        let fd = stdin.as_fd();
        // Non-canonical mode so a single key counts, not only Enter.
        let saved = termios::tcgetattr(fd).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            raw.local_modes -= LocalModes::ICANON | LocalModes::ECHO;
            let _ = termios::tcsetattr(fd, OptionalActions::Now, &raw);
        }
        let mut pressed = false;
        for left in (1..=secs).rev() {
            self.say(&format!("\r{what} in {left} s, press any key to stop... "));
            let until = Instant::now() + Duration::from_secs(1);
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let remaining = until.saturating_duration_since(Instant::now());
            let ts = rustix::time::Timespec {
                tv_sec: remaining.as_secs() as i64,
                tv_nsec: i64::from(remaining.subsec_nanos()),
            };
            if matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0) {
                let mut b = [0u8; 16];
                let _ = io::stdin().lock().read(&mut b);
                pressed = true;
                break;
            }
        }
        if let Some(t) = &saved {
            let _ = termios::tcsetattr(fd, OptionalActions::Now, t);
        }
        self.say("\n");
        pressed
    }
}

/// A `tracing` writer that goes to the console.
pub struct ConsoleWriter(Console);

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.say(&String::from_utf8_lossy(buf));
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
    #[test]
    fn console_device_names() {
        assert_eq!(super::device_path("ttyS0,115200n8"), "/dev/ttyS0");
        assert_eq!(super::device_path("tty0"), "/dev/tty0");
    }
}
