//! How long a request may take. Two bounds, both cutting the attempt like
//! any transient fault (so it is retried, and a blob resumes with `Range`):
//!
//! - a rate floor: fewer than `min_rate` bytes per second averaged over
//!   `rate_window` (and no response headers, or no byte at all, within one
//!   window: ureq's `timeout_recv_response` and `timeout_per_read`). A
//!   per-read idle limit alone never trips on a server that drips a byte
//!   every few seconds; the average does;
//! - a deadline per attempt, from the size when it is known:
//!   `blob_deadline + remaining / deadline_rate` for blobs,
//!   `request_deadline` for manifests and tokens (ureq's `timeout_global`,
//!   which also covers the headers and every read).
//!
//! A cut is a [`RegistryError::Stalled`]: it counts against `retries` even
//! when bytes arrived, so a registry that keeps dripping ends in an error
//! after `retries + 1` windows or deadlines, not after endless resumes.

use std::io;
use std::time::{Duration, Instant};

use super::transport::Failure;
use super::{PullOptions, RegistryError};
use crate::progress::human;

/// The time limits of every request of one client (from [`PullOptions`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Bytes per second, averaged over `window`.
    pub(super) min_rate: u64,
    pub(super) window: Duration,
    /// The deadline of a request whose size is unknown.
    pub(super) fixed: Duration,
    /// A blob attempt's deadline: `blob_base + remaining / blob_rate`.
    pub(super) blob_base: Duration,
    pub(super) blob_rate: u64,
    /// Longest wait for a TCP connection (and for a name to resolve): a
    /// mirror gets a short one, so a dead mirror costs seconds, not the
    /// upstream's patience.
    pub(super) connect: Duration,
}

impl Limits {
    pub(super) fn new(o: &PullOptions) -> Limits {
        Limits {
            min_rate: o.min_rate,
            // A zero window would cut every read; a zero rate never cuts.
            window: o.rate_window.max(Duration::from_millis(1)),
            fixed: o.request_deadline,
            blob_base: o.blob_deadline,
            blob_rate: o.deadline_rate.max(1),
            connect: Duration::from_secs(10),
        }
    }

    /// The deadline of a manifest, token or probe, starting now.
    pub(super) fn fixed(&self) -> Deadline {
        Deadline::new(self.fixed, None)
    }

    /// The deadline of an attempt with `remaining` bytes of a blob to go,
    /// starting now.
    pub(super) fn for_size(&self, remaining: u64) -> Deadline {
        let transfer = Duration::try_from_secs_f64(remaining as f64 / self.blob_rate as f64)
            .unwrap_or(Duration::MAX);
        Deadline::new(self.blob_base.saturating_add(transfer), Some(remaining))
    }
}

/// When one attempt must be over.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    limit: Duration,
    /// The bytes it was derived from (`None`: a fixed deadline).
    size: Option<u64>,
}

impl Deadline {
    fn new(limit: Duration, size: Option<u64>) -> Deadline {
        // Decades are as good as forever, and keep clock arithmetic (ours
        // and ureq's) far from overflowing.
        let limit = limit.min(Duration::from_secs(1 << 31));
        Deadline {
            at: Instant::now() + limit,
            limit,
            size,
        }
    }

    /// The time left, for ureq's `timeout_global`.
    pub(super) fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    fn describe(&self, limits: &Limits) -> String {
        match self.size {
            None => format!("the {} deadline of a request", secs(self.limit)),
            Some(size) => format!(
                "the {} deadline for {} ({} + 1 s per {})",
                secs(self.limit),
                human(size),
                secs(limits.blob_base),
                human(limits.blob_rate)
            ),
        }
    }
}

/// `30 s`, `1.5 s`.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// The rate of one response body, measured as it is read.
pub(super) struct Pace {
    limits: Limits,
    deadline: Deadline,
    window_start: Instant,
    window_bytes: u64,
    received: u64,
}

impl Pace {
    /// Start measuring a body (its headers just arrived).
    pub(super) fn start(limits: Limits, deadline: Deadline) -> Pace {
        Pace::start_at(limits, deadline, Instant::now())
    }

    fn start_at(limits: Limits, deadline: Deadline, now: Instant) -> Pace {
        Pace {
            limits,
            deadline,
            window_start: now,
            window_bytes: 0,
            received: 0,
        }
    }

    /// Count `n` bytes just read; a cut when the window that just ended was
    /// below the floor or the deadline has passed.
    pub(super) fn add(&mut self, n: usize, url: &str) -> Result<(), Failure> {
        match self.add_at(n as u64, Instant::now()) {
            Ok(()) => Ok(()),
            Err(detail) => Err(stalled(url, detail)),
        }
    }

    fn add_at(&mut self, n: u64, now: Instant) -> Result<(), String> {
        self.received += n;
        self.window_bytes += n;
        if now >= self.deadline.at {
            return Err(self.past_deadline());
        }
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < self.limits.window {
            return Ok(());
        }
        let wanted = u128::from(self.limits.min_rate) * elapsed.as_millis();
        if u128::from(self.window_bytes) * 1000 < wanted {
            return Err(format!(
                "sent {} in {}, slower than the {}/s floor",
                human(self.window_bytes),
                secs(elapsed),
                human(self.limits.min_rate)
            ));
        }
        self.window_start = now;
        self.window_bytes = 0;
        Ok(())
    }

    fn past_deadline(&self) -> String {
        format!(
            "not complete within {}, {} received",
            self.deadline.describe(&self.limits),
            human(self.received)
        )
    }

    /// What a failed read of the body means: a cut when ureq's timers
    /// fired, the transport's failure otherwise.
    pub(super) fn read_failure(&self, url: &str, e: io::Error) -> Failure {
        match timeout_kind(&e) {
            Some(kind) => self.timeout(url, kind),
            None => Failure::transport(url, ureq::Error::from(e)),
        }
    }

    /// A failure for one of ureq's timeouts: a cut for those that measure
    /// the rate or the deadline, the transport's failure otherwise.
    pub(super) fn timeout(&self, url: &str, kind: ureq::Timeout) -> Failure {
        let window = secs(self.limits.window);
        let floor = human(self.limits.min_rate);
        let detail = match kind {
            ureq::Timeout::Global => self.past_deadline(),
            ureq::Timeout::RecvResponse => {
                format!("sent no complete response headers in {window}, slower than the {floor}/s floor")
            }
            ureq::Timeout::PerRead | ureq::Timeout::RecvBody => format!(
                "sent nothing for {window}, slower than the {floor}/s floor ({} received)",
                human(self.received)
            ),
            other => return Failure::transport(url, ureq::Error::Timeout(other)),
        };
        stalled(url, detail)
    }
}

/// The failure of a request (connect, headers) before any body byte.
pub(super) fn call_failure(
    limits: Limits,
    deadline: Deadline,
    url: &str,
    e: ureq::Error,
) -> Failure {
    match e {
        ureq::Error::Timeout(kind) => Pace::start(limits, deadline).timeout(url, kind),
        e => Failure::transport(url, e),
    }
}

/// Whether one of ureq's timers ended a read.
pub(super) fn is_timeout(e: &io::Error) -> bool {
    timeout_kind(e).is_some()
}

/// Which of ureq's timers ended a read, if one did.
fn timeout_kind(e: &io::Error) -> Option<ureq::Timeout> {
    match e.get_ref().and_then(|x| x.downcast_ref::<ureq::Error>()) {
        Some(ureq::Error::Timeout(kind)) => Some(*kind),
        _ if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) =>
        {
            Some(ureq::Timeout::PerRead)
        }
        _ => None,
    }
}

fn stalled(url: &str, detail: String) -> Failure {
    Failure::transient(RegistryError::Stalled {
        url: url.to_string(),
        detail,
    })
}

/// Whether a failure is a cut for slowness: those count against the
/// retries even when bytes arrived.
pub(super) fn is_stall(err: &anyhow::Error) -> bool {
    matches!(
        RegistryError::find(err),
        Some(RegistryError::Stalled { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            min_rate: 1024,
            window: Duration::from_secs(30),
            fixed: Duration::from_secs(60),
            blob_base: Duration::from_secs(60),
            blob_rate: 16 << 10,
            connect: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_floor_is_an_average_over_the_window() {
        let l = limits();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut p = Pace::start_at(l, l.for_size(1 << 30), t0);
        // A burst, then silence inside the window: fine.
        p.add_at(40 << 10, at(1)).unwrap();
        p.add_at(1, at(29)).unwrap();
        // The window ends above 1 KiB/s × 30 s: a new one starts.
        p.add_at(1, at(31)).unwrap();
        // A byte every 5 s for the next window: cut once it is over.
        for s in (36..61).step_by(5) {
            p.add_at(1, at(s)).unwrap();
        }
        let e = p.add_at(1, at(62)).unwrap_err();
        assert_eq!(e, "sent 6 B in 31 s, slower than the 1.0 KiB/s floor");
    }

    #[test]
    fn deadlines_follow_the_size() {
        let l = limits();
        assert_eq!(l.fixed().limit, Duration::from_secs(60));
        assert_eq!(l.for_size(0).limit, Duration::from_secs(60));
        assert_eq!(l.for_size(16 << 20).limit, Duration::from_secs(60 + 1024));
        // Absurd sizes saturate instead of overflowing.
        let huge = l.for_size(u64::MAX);
        assert!(huge.left() > Duration::from_secs(1 << 30));
        assert!(huge.left() <= Duration::from_secs(1 << 31));
        let t0 = Instant::now();
        let d = l.for_size(16 << 10);
        let mut p = Pace::start_at(l, d, t0);
        // Above the floor all along, but past the deadline.
        let e = p
            .add_at(8 << 10, d.at + Duration::from_millis(1))
            .unwrap_err();
        assert_eq!(
            e,
            "not complete within the 61 s deadline for 16.0 KiB (60 s + 1 s per 16.0 KiB), 8.0 KiB received"
        );
    }

    #[test]
    fn ureq_timeouts_read_as_cuts() {
        let l = limits();
        let p = Pace::start(l, l.fixed());
        let io = ureq::Error::Timeout(ureq::Timeout::PerRead).into_io();
        let f = p.read_failure("http://r/v2/x", io);
        assert!(f.transient && is_stall(&f.err));
        assert_eq!(
            f.err.to_string(),
            "http://r/v2/x: sent nothing for 30 s, slower than the 1.0 KiB/s floor (0 B received): \
             check the network or the registry"
        );
        let f = call_failure(
            l,
            l.fixed(),
            "http://r/v2/",
            ureq::Error::Timeout(ureq::Timeout::Global),
        );
        assert!(
            f.err.to_string().contains("60 s deadline of a request"),
            "{}",
            f.err
        );
        let f = call_failure(
            l,
            l.fixed(),
            "http://r/v2/",
            ureq::Error::Timeout(ureq::Timeout::Connect),
        );
        assert!(!is_stall(&f.err));
        let f = p.read_failure(
            "http://r/v2/x",
            io::Error::from(io::ErrorKind::ConnectionReset),
        );
        assert!(f.transient && !is_stall(&f.err));
    }
}
