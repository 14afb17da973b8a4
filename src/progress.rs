//! Progress on a terminal (bytes, rate, ETA per layer), nothing otherwise:
//! when stderr is not a terminal the callers log one plain line per step.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shared progress display; cheap to pass by reference across threads.
pub struct Progress {
    multi: Option<MultiProgress>,
}

/// One bar; a no-op when progress is off.
pub struct Bar(Option<ProgressBar>);

impl Progress {
    /// Bars only when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool) -> Self {
        let on = enabled && std::io::stderr().is_terminal();
        Progress {
            multi: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
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
            return Bar(None);
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
        Bar(Some(bar))
    }
}

impl Bar {
    /// Bytes done so far.
    pub fn set(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.set_position(n);
        }
    }

    /// Done; the bar stays on screen with its final numbers.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish();
        }
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
}
