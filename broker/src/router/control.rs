//! Requests the broker itself makes of the router, not its clients: a
//! liveness probe (the systemd watchdog pings only when the router
//! answers one) and the settings a SIGHUP changes live (caps, `$SYS`
//! interval, queue-full disconnects, shared subscription strategy).

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Router, RouterCaps};
use crate::config::SharedStrategy;

/// A request of the broker to its router (`RouterMsg::Control`).
#[derive(Debug)]
pub enum Control {
    /// Answered as soon as the router reaches it in its queue.
    Ping(oneshot::Sender<()>),
    /// New live settings, from a reloaded configuration.
    Settings(LiveSettings),
}

/// The router's settings that may change while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSettings {
    pub caps: RouterCaps,
    /// `None`: `$SYS` off.
    pub sys_interval: Option<Duration>,
    pub disconnect_on_queue_full: bool,
    pub shared_strategy: SharedStrategy,
}

impl Router {
    pub(super) fn control(&mut self, c: Control, now: Instant) {
        match c {
            Control::Ping(reply) => {
                let _ = reply.send(());
            }
            Control::Settings(s) => self.apply_live(s, now),
        }
    }

    /// Applies `s`: from the next CONNECT, retained message and `$SYS`
    /// tick on (uptime keeps counting from the start).
    pub fn apply_live(&mut self, s: LiveSettings, now: Instant) {
        self.set_caps(s.caps);
        self.change_sys_interval(s.sys_interval, now);
        self.set_disconnect_on_queue_full(s.disconnect_on_queue_full);
        self.set_shared_strategy(s.shared_strategy);
    }
}
