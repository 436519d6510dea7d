//! The clock seam: where the broker reads the time outside the paths that
//! are given `now` (the session machine, the router's handlers and the
//! store's conversions all take it as an argument). [`SystemClock`] is the
//! broker's (tokio's clock, so a paused runtime pauses it too, and the wall
//! clock); [`SimClock`] is moved by hand, by the deterministic simulation.
//! Read once where a component starts (the store's spill epoch, the
//! router's wall-clock base), never per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A source of the monotonic and the wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Instant;
    fn wall(&self) -> SystemTime;
}

/// The real clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told ([`SimClock::advance`]), from a
/// fixed base; both clocks move together.
#[derive(Debug)]
pub struct SimClock {
    base: (Instant, SystemTime),
    /// Nanoseconds since `base`.
    elapsed: AtomicU64,
}

impl SimClock {
    /// A clock at `base` (a monotonic instant and the wall-clock time that
    /// goes with it).
    pub fn new(base: (Instant, SystemTime)) -> SimClock {
        SimClock { base, elapsed: AtomicU64::new(0) }
    }

    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self.elapsed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| Some(e.saturating_add(ns)));
    }

    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed.load(Ordering::Relaxed))
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.base.0 + self.elapsed()
    }

    fn wall(&self) -> SystemTime {
        self.base.1 + self.elapsed()
    }
}
