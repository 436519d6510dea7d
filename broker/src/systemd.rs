//! systemd service notifications (`Type=notify`, `WatchdogSec`), through
//! the `sd-notify` crate: READY=1 once the listeners are bound and the
//! store is recovered, STOPPING=1 at shutdown, RELOADING=1 around a
//! SIGHUP, and WATCHDOG=1 from a task that pings only after the router
//! answered a probe, so a wedged router gets the service restarted. All of
//! it does nothing when `NOTIFY_SOCKET` is unset (not run by systemd).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

use crate::ratelimit::RateLimited;
use crate::server::RouterProbe;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("systemd notification failed: {e}");
    }
}

/// The broker serves: READY=1 with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A SIGHUP reload begins (`ready` again when it is done).
pub fn reloading() {
    // MONOTONIC_USEC with RELOADING=1, as systemd 253's notify-reload asks.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown begins.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// With `WATCHDOG_USEC` set (systemd's `WatchdogSec`): a task that, every
/// half period, asks the router to answer and sends WATCHDOG=1 only if it
/// did within that half. `None` without a watchdog.
pub fn spawn_watchdog(probe: RouterProbe) -> Option<JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let half = (period / 2).max(Duration::from_millis(1));
    tracing::info!(?period, "systemd watchdog on");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(half);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut silent = RateLimited::default();
        loop {
            tick.tick().await;
            if probe.ping(half).await {
                send(&[NotifyState::Watchdog]);
            } else if let Some(n) = silent.event(std::time::Instant::now()) {
                tracing::error!(missed = n, "the router did not answer within {half:?}: no watchdog ping");
            }
        }
    }))
}
