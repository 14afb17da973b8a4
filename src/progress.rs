//! Progress on a terminal (bytes, rate, ETA per layer), nothing otherwise:
//! when stderr is not a terminal the callers log one plain line per step.
//! Log lines written while bars are drawn go through [`LogWriter`], which
//! prints them above the bars instead of through them.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shared progress display; cheap to pass by reference across threads.
pub struct Progress {
    multi: Option<MultiProgress>,
    lines: bool,
}

/// One bar; a no-op when progress is off.
pub struct Bar(BarKind);

enum BarKind {
    Off,
    Drawn(ProgressBar),
    /// A plain line every few seconds: for serial consoles, where redrawn
    /// bars turn into noise.
    Lines {
        label: String,
        total: Option<u64>,
        start: Instant,
        last: Mutex<Instant>,
    },
}

const LINE_EVERY: Duration = Duration::from_secs(3);

impl Progress {
    /// Bars only when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool) -> Self {
        let on = enabled && std::io::stderr().is_terminal();
        Progress {
            multi: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            lines: false,
        }
    }

    /// Plain log lines with bytes, rate and ETA every few seconds.
    pub fn lines() -> Self {
        Progress {
            multi: None,
            lines: true,
        }
    }

    /// Bars drawn on `target` (tests draw into memory).
    pub fn with_target(target: ProgressDrawTarget) -> Self {
        Progress {
            multi: Some(MultiProgress::with_draw_target(target)),
            lines: false,
        }
    }

    /// Where log lines go: above the bars while they are drawn, else stderr.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter {
            multi: self.multi.clone(),
        }
    }

    /// A byte-count bar with rate and ETA.
    pub fn download(&self, label: &str, total: u64) -> Bar {
        self.bar(label, Some(total))
    }

    /// A byte counter without a known total (output being written).
    pub fn counter(&self, label: &str) -> Bar {
        self.bar(label, None)
    }

    fn bar(&self, label: &str, total: Option<u64>) -> Bar {
        let Some(multi) = &self.multi else {
            if self.lines {
                return Bar(BarKind::Lines {
                    label: label.to_string(),
                    total,
                    start: Instant::now(),
                    last: Mutex::new(Instant::now()),
                });
            }
            return Bar(BarKind::Off);
        };
        let (bar, template) = match total {
            Some(t) => (
                ProgressBar::new(t),
                "{prefix:28} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
            ),
            None => (
                ProgressBar::no_length(),
                "{prefix:28} {spinner} {bytes:>10} {bytes_per_sec:>12} {elapsed}",
            ),
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = multi.add(bar.with_style(style).with_prefix(label.to_string()));
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(BarKind::Drawn(bar))
    }
}

/// A `tracing` writer that keeps log lines and bars apart: with bars on
/// screen each line is printed above them (`MultiProgress::println`), so
/// neither tears the other.
#[derive(Clone)]
pub struct LogWriter {
    multi: Option<MultiProgress>,
}

/// One log event being written.
pub struct LogLine {
    multi: Option<MultiProgress>,
    buf: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.multi.is_none() {
            return io::stderr().write(data);
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if let Some(m) = &self.multi {
            let text = String::from_utf8_lossy(&self.buf);
            let text = text.trim_end_matches('\n');
            if !text.is_empty() && m.println(text).is_err() {
                eprintln!("{text}");
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            multi: self.multi.clone(),
            buf: Vec::new(),
        }
    }
}

impl Bar {
    /// Bytes done so far.
    pub fn set(&self, n: u64) {
        match &self.0 {
            BarKind::Off => {}
            BarKind::Drawn(b) => b.set_position(n),
            BarKind::Lines {
                label,
                total,
                start,
                last,
            } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() < LINE_EVERY {
                    return;
                }
                *last = Instant::now();
                tracing::info!("{}", line(label, n, *total, start.elapsed()));
            }
        }
    }

    /// Done; the bar stays on screen with its final numbers.
    pub fn finish(&self) {
        if let BarKind::Drawn(b) = &self.0 {
            b.finish();
        }
    }
}

/// `layer 1/3: 12.0 MiB of 40.0 MiB (30%), 5.0 MiB/s, 6 s left`.
fn line(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    match total {
        Some(t) if t > 0 => {
            let left = (t.saturating_sub(done)) as f64 / rate.max(1.0);
            format!(
                "{label}: {} of {} ({}%), {}/s, {:.0} s left",
                human(done),
                human(t),
                done * 100 / t,
                human(rate as u64),
                left
            )
        }
        _ => format!("{label}: {}, {}/s", human(done), human(rate as u64)),
    }
}

/// `12.3 MiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use indicatif::{InMemoryTerm, ProgressDrawTarget, TermLike};
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn log_lines_go_above_the_bars() {
        let term = InMemoryTerm::new(10, 100);
        let p = super::Progress::with_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let bar = p.download("layer 1/1", 1000);
        bar.set(500);
        let w = p.log_writer();
        std::io::Write::write_all(&mut w.make_writer(), b"layer 1/1: 10 entries\n").unwrap();
        bar.set(1000);
        bar.finish();
        let screen = term.contents();
        let lines: Vec<&str> = screen.lines().collect();
        let log = lines
            .iter()
            .position(|l| l.trim_end() == "layer 1/1: 10 entries")
            .unwrap_or_else(|| panic!("log line torn or missing:\n{screen}"));
        let bar_line = lines
            .iter()
            .position(|l| l.starts_with("layer 1/1 ") && l.contains("1000 B"))
            .unwrap_or_else(|| panic!("no bar:\n{screen}"));
        assert!(log < bar_line, "{screen}");
        assert_eq!(term.width(), 100);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(super::human(5), "5 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(super::human(3 << 30), "3.0 GiB");
    }

    #[test]
    fn progress_lines() {
        let l = super::line(
            "layer 1/2",
            5 << 20,
            Some(10 << 20),
            std::time::Duration::from_secs(1),
        );
        assert_eq!(
            l,
            "layer 1/2: 5.0 MiB of 10.0 MiB (50%), 5.0 MiB/s, 1 s left"
        );
    }
}
