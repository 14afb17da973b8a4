//! Progress on a terminal (bytes, rate, ETA per layer), nothing otherwise:
//! when stderr is not a terminal the callers log one plain line per step.

use std::io::IsTerminal;
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

    /// Whether bars are drawn (so callers can skip duplicate log lines).
    pub fn is_drawing(&self) -> bool {
        self.multi.is_some()
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
