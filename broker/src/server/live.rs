//! The running broker seen from outside its data path: a probe that
//! proves the router answers (for the systemd watchdog), and the
//! settings the router takes live.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::router::{Control, LiveSettings, RetainedLimits, RouterCaps, RouterMsg};

/// Asks the router to answer; holds no strong sender, so it does not keep
/// a shutting-down router alive.
#[derive(Debug, Clone)]
pub struct RouterProbe(pub(super) mpsc::WeakSender<RouterMsg>);

impl RouterProbe {
    /// Whether the router answered a ping within `timeout` (queued behind
    /// whatever it has to do first).
    pub async fn ping(&self, timeout: Duration) -> bool {
        let Some(tx) = self.0.upgrade() else { return false };
        let (reply, answered) = oneshot::channel();
        let asked =
            async move { tx.send(RouterMsg::Control(Control::Ping(reply))).await.is_ok() && answered.await.is_ok() };
        tokio::time::timeout(timeout, asked).await.unwrap_or(false)
    }
}

/// The router's live settings in `cfg`.
pub(super) fn live_settings(cfg: &Config) -> LiveSettings {
    LiveSettings {
        caps: RouterCaps {
            max_sessions: cfg.max_sessions,
            retained: RetainedLimits { max_messages: cfg.max_retained_messages, max_bytes: cfg.max_retained_bytes },
        },
        sys_interval: (cfg.sys_interval > 0).then(|| Duration::from_secs(cfg.sys_interval)),
        disconnect_on_queue_full: cfg.disconnect_on_queue_full,
        shared_strategy: cfg.shared_subscription_strategy,
    }
}
