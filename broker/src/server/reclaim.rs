//! Giving memory freed after a burst back to the system, from the
//! runtime's park hook ([`on_park`], set by the binary).
//!
//! mimalloc returns a thread's free pages (and, after a 10-100 ms delay,
//! its empty segments) to the system only when that thread runs its
//! collection, which it does every 10,000 allocations of more than 1 KiB
//! (its generic path). A worker that goes idle right after a burst (a
//! subscriber's 64 KiB messages drained, its clients gone) would keep what
//! the burst freed for good: measured 30-57 MiB resident after 100 MiB
//! passed through a slow subscriber's queue, from 4.8 MiB at start. There
//! is no safe call for a collection, so a worker about to park that has
//! not collected for [`INTERVAL`] makes those allocations itself:
//! [`NUDGE`] allocations of 2 KiB, freed at once (under 1 ms), which runs
//! one collection of its heap and the purges that are due by then. An
//! idle worker may stay parked for good, so [`wake_workers`] wakes them
//! once a second (a few empty tasks: a spawn notifies a parked worker,
//! which parks again); so an idle broker spends about one collection per
//! worker per second.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// At most one collection per worker in this interval.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// Allocations past the 1 KiB fast path that make mimalloc collect.
pub const NUDGE: usize = 10_000;

thread_local! {
    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Whether a worker that collected last at `last` collects now.
pub fn due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= INTERVAL)
}

/// The park hook: collects if due (see the module's documentation).
pub fn on_park() {
    let now = Instant::now();
    if !due(LAST.get(), now) {
        return;
    }
    LAST.set(Some(now));
    for _ in 0..NUDGE {
        drop(std::hint::black_box(Vec::<u8>::with_capacity(2048)));
    }
}

/// Wakes the runtime's idle workers once a second, so each passes
/// through [`on_park`] (`workers` empty tasks: each spawn from a worker
/// wakes a parked one to take it).
pub async fn wake_workers(workers: usize) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for _ in 0..workers {
            tokio::spawn(async {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_collects_at_most_once_per_interval() {
        let t = Instant::now();
        assert!(due(None, t), "the first park collects");
        assert!(!due(Some(t), t + INTERVAL / 2));
        assert!(due(Some(t), t + INTERVAL));
        on_park();
        assert!(LAST.get().is_some());
    }
}
