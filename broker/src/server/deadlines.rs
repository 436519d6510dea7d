//! The connections' deadlines (CONNECT timeout, keep-alive): one shared
//! wheel of coarse ticks and one sweeping task, instead of a tokio timer
//! per connection (112 bytes each, plus its box).
//!
//! A connection's entry is a [`WeakConn`] in the list of its deadline's
//! tick (8 bytes); the sweeper wakes the connections of every tick that has
//! passed, and the driver, woken, compares its machine's deadline with the
//! clock: the machine decides, so the wheel only has to wake it at or after
//! the deadline, never before. A deadline moved later (every packet moves
//! the keep-alive's) costs nothing until the entry's tick: the woken
//! driver then enters its new deadline. One moved earlier adds an entry
//! (the old one wakes the driver for nothing later). A closed connection's
//! entry stays until its tick, holding only the freed signal's memory
//! (`Weak`).
//!
//! The sweeper runs only while the wheel holds entries, and sleeps until
//! the earliest tick (one tokio timer for all connections).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::router::{ConnHandle, WeakConn};

/// The wheel's resolution: a connection is woken at most this long after
/// its deadline (MQTT's keep-alive grace is half the keep-alive, at least
/// 500 ms).
pub const TICK: Duration = Duration::from_millis(100);

/// The deadlines of all connections of a broker.
pub struct Deadlines {
    /// Tick 0.
    base: Instant,
    wheel: Mutex<Wheel>,
    /// Wakes the sweeper for an entry earlier than the one it sleeps for.
    earlier: tokio::sync::Notify,
}

#[derive(Default)]
struct Wheel {
    /// Tick -> the connections to wake once it has passed.
    ticks: BTreeMap<u64, Vec<WeakConn>>,
    /// The tick the sweeper sleeps until, if it runs.
    sweeping: Option<u64>,
}

/// Where a connection's entry is: its tick (0: none). Kept by the driver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Entry(u64);

fn lock(m: &Mutex<Wheel>) -> std::sync::MutexGuard<'_, Wheel> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Deadlines {
    pub fn new() -> Arc<Deadlines> {
        Arc::new(Deadlines { base: now(), wheel: Mutex::default(), earlier: tokio::sync::Notify::new() })
    }

    /// The first tick at or after `t` (ticks start at 1: 0 is "none").
    fn tick_of(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.base);
        let tick = TICK.as_nanos();
        (d.as_nanos().div_ceil(tick) as u64).saturating_add(1)
    }

    fn time_of(&self, tick: u64) -> Instant {
        let ticks = u32::try_from(tick.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.checked_add(TICK * ticks).unwrap_or(self.base + Duration::from_secs(86_400 * 365))
    }

    /// Ready once `deadline` has passed; else makes sure `conn` is woken
    /// at its tick (`entry` says where it already is). `None`: no
    /// deadline.
    pub fn poll(
        self: &Arc<Self>,
        entry: &mut Entry,
        deadline: Option<Instant>,
        conn: &ConnHandle,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let Some(deadline) = deadline else { return Poll::Pending };
        // The waker the entry wakes is the connection's (`ConnHandle`).
        let _ = conn.poll_closed(cx);
        let now = now();
        if now >= deadline {
            return Poll::Ready(());
        }
        let tick = self.tick_of(deadline);
        // An entry at or before the deadline's tick that has not passed
        // wakes the driver in time; one that passed was (or is being) swept.
        if entry.0 == 0 || entry.0 > tick || now >= self.time_of(entry.0) {
            self.enter(tick, conn.downgrade());
            *entry = Entry(tick);
        }
        Poll::Pending
    }

    fn enter(self: &Arc<Self>, tick: u64, conn: WeakConn) {
        let mut w = lock(&self.wheel);
        w.ticks.entry(tick).or_default().push(conn);
        match w.sweeping {
            None => {
                w.sweeping = Some(tick);
                drop(w);
                tokio::spawn(sweep(self.clone()));
            }
            Some(t) if tick < t => {
                w.sweeping = Some(tick);
                drop(w);
                self.earlier.notify_one();
            }
            Some(_) => {}
        }
    }

    /// Takes the lists of the ticks passed by `now`; the next tick to
    /// sleep for, `None` (the sweeper stops) once the wheel is empty.
    fn take_due(&self, now: Instant, due: &mut Vec<Vec<WeakConn>>) -> Option<u64> {
        let mut w = lock(&self.wheel);
        while let Some(entry) = w.ticks.first_entry() {
            if self.time_of(*entry.key()) > now {
                break;
            }
            due.push(entry.remove());
        }
        w.sweeping = w.ticks.first_key_value().map(|(t, _)| *t);
        w.sweeping
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wakes the connections of each tick once it has passed, while any are
/// entered.
async fn sweep(d: Arc<Deadlines>) {
    let mut due = Vec::new();
    loop {
        let next = d.take_due(now(), &mut due);
        for conn in due.drain(..).flatten() {
            conn.wake();
        }
        let Some(next) = next else { return };
        let at = tokio::time::Instant::from_std(d.time_of(next));
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = d.earlier.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up_and_never_wake_early() {
        let d = Deadlines::new();
        let base = d.base;
        assert_eq!(d.tick_of(base), 1);
        assert_eq!(d.time_of(1), base);
        // A deadline just past a tick's time belongs to the next tick, whose
        // time is not before it.
        for ms in [1, 99, 100, 101, 1_500, 90_000] {
            let t = base + Duration::from_millis(ms);
            let tick = d.tick_of(t);
            assert!(d.time_of(tick) >= t, "{ms} ms: tick {tick}");
            assert!(d.time_of(tick) < t + TICK, "{ms} ms: tick {tick}");
        }
        // Before the base (a deadline computed from an older clock reading).
        assert_eq!(d.tick_of(base.checked_sub(Duration::from_millis(5)).unwrap_or(base)), 1);
    }

    async fn wait(d: &Arc<Deadlines>, entry: &mut Entry, deadline: Instant, conn: &ConnHandle) {
        std::future::poll_fn(|cx| d.poll(entry, Some(deadline), conn, cx)).await;
    }

    fn is_idle(d: &Deadlines) -> bool {
        let w = lock(&d.wheel);
        w.ticks.is_empty() && w.sweeping.is_none()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_woken_once_its_deadline_passed_and_the_sweeper_stops() {
        let d = Deadlines::new();
        let conn = ConnHandle::new(1);
        let mut entry = Entry::default();
        let deadline = now() + Duration::from_millis(1_500);
        wait(&d, &mut entry, deadline, &conn).await;
        assert!(now() >= deadline);
        // Its tick was swept: nothing is left, the sweeper has stopped.
        tokio::task::yield_now().await;
        assert!(is_idle(&d));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_later_is_waited_for_and_one_moved_earlier_is_not_missed() {
        let d = Deadlines::new();
        let conn = ConnHandle::new(1);
        let mut entry = Entry::default();
        let first = now() + Duration::from_secs(3);
        // Entered at the first deadline's tick, then moved later (a packet
        // arrived): woken at the first, it waits on for the second.
        assert!(std::future::poll_fn(|cx| Poll::Ready(d.poll(&mut entry, Some(first), &conn, cx).is_pending())).await);
        let later = first + Duration::from_secs(2);
        wait(&d, &mut entry, later, &conn).await;
        assert!(now() >= later);
        // Moved earlier than the entry (another connection's far deadline
        // keeps the sweeper asleep meanwhile): a new entry wakes it in time.
        let other = ConnHandle::new(2);
        let mut far = Entry::default();
        let far_deadline = now() + Duration::from_secs(60);
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(d.poll(&mut far, Some(far_deadline), &other, cx).is_pending())).await
        );
        let soon = now() + Duration::from_millis(200);
        wait(&d, &mut entry, soon, &conn).await;
        assert!(now() >= soon && now() < far_deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_connections_entry_does_not_keep_it() {
        let d = Deadlines::new();
        let conn = ConnHandle::new(1);
        let weak = conn.downgrade();
        let mut entry = Entry::default();
        let deadline = now() + Duration::from_secs(1);
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(d.poll(&mut entry, Some(deadline), &conn, cx).is_pending())).await
        );
        drop(conn);
        // Its tick passes without anyone to wake.
        weak.wake();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(is_idle(&d));
    }
}
