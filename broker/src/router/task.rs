//! The router task: the loop that owns the [`Router`], taking batches of
//! messages from its channel, running its once-a-second tick (expiry,
//! store maintenance, the spill directory's free-space check off the task),
//! a compaction's snapshot and sessions that end in steps (`ending.rs`)
//! between batches, and waking the
//! sessions a batch touched, each under the router's mutex (`shared.rs`).

use std::time::Duration;

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{durable, Router, RouterMsg, SharedRouter};

/// Sessions a snapshot step writes at most before the router takes the
/// next batch of messages.
const SNAPSHOT_SESSIONS_PER_STEP: usize = 64;

/// The router task: batches of messages from `rx` until every sender is
/// gone; delayed wills and session expiry once a second; a compaction's
/// snapshot in steps between them. Each holds the router's mutex
/// (`shared.rs`); connections route their own messages inline between
/// them. Returns the router when the channel is closed.
pub async fn run(shared: Arc<SharedRouter>, mut rx: mpsc::Receiver<RouterMsg>) -> Option<Router> {
    let mut batch = Vec::with_capacity(256);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A compaction's snapshot is written between batches, a few
        // sessions at a time, when the log has room and, for a spilled
        // queue's chunks on disk, as the spill thread reads them back
        // (never waiting for either here).
        // Sessions ending in steps (`ending.rs`) too: their next step when
        // the spill thread has read a chunk back (it wakes the session).
        let (snapshot, endings) = {
            let guard = shared.lock();
            let router = guard.as_ref()?;
            let waiting = router.snapshot_waiting();
            let d = router.durable.as_ref().filter(|_| router.snapshot_running());
            (d.map(|d| (d.journal.clone(), waiting.then(|| d.walk_ready.clone()))), router.endings_to_watch())
        };
        tokio::select! {
            _ = async {
                match &snapshot {
                    Some((_, Some(ready))) => ready.notified().await,
                    Some((j, None)) => j.room().await,
                    None => {}
                }
            }, if snapshot.is_some() => {
                let now = tokio::time::Instant::now().into_std();
                if let Some(router) = shared.lock().as_mut() {
                    router.snapshot_step(now, durable::Pace::Room, SNAPSHOT_SESSIONS_PER_STEP);
                    // A chunk an ending waits for may have been read for the
                    // snapshot's walk it left (that read wakes the walk).
                    router.step_endings(now);
                }
            }
            _ = async {
                match &endings {
                    Some((_, true)) | None => {}
                    Some((sessions, false)) => {
                        std::future::poll_fn(|cx| {
                            if sessions.iter().any(|s| s.notify.poll_notified(cx).is_ready()) {
                                std::task::Poll::Ready(())
                            } else {
                                std::task::Poll::Pending
                            }
                        })
                        .await
                    }
                }
            }, if endings.is_some() => {
                let now = tokio::time::Instant::now().into_std();
                if let Some(router) = shared.lock().as_mut() {
                    router.step_endings(now);
                }
            }
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    return shared.take();
                }
                let now = tokio::time::Instant::now().into_std();
                if let Some(router) = shared.lock().as_mut() {
                    for msg in batch.drain(..) {
                        router.handle(msg, now);
                    }
                }
            }
            _ = tick.tick() => {
                let now = tokio::time::Instant::now().into_std();
                if let Some(router) = shared.lock().as_mut() {
                    tick_once(router, now);
                }
            }
        }
        if let Some(router) = shared.lock().as_mut() {
            router.update_gauges();
            router.wake_touched();
        }
    }
}

/// The once-a-second work: expiry, store maintenance, the free-space check.
fn tick_once(router: &mut Router, now: std::time::Instant) {
    router.expire(now);
    let (began, before) = (std::time::Instant::now(), router.snapshot_count());
    router.maintain_store(now);
    if router.snapshot_count() != before {
        router.metrics.snapshot_micros.set(began.elapsed().as_micros() as i64);
        router.metrics.snapshots.inc();
    }
    check_space(router);
}

/// Re-checks the free space of the spill directory's file system, off
/// the router (a stalled disk must not stall routing), at most one check at
/// a time.
fn check_space(router: &Router) {
    if let Some(dir) = router.limits.pool.spill() {
        if dir.start_space_check() {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || dir.check_space());
        }
    }
}
