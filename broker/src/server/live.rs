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

/// What a reloaded configuration changed: the keys applied to the running
/// broker, the keys that need a restart, and the files that did not load.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub applied: Vec<&'static str>,
    pub restart: Vec<&'static str>,
    pub errors: Vec<String>,
}

/// Keys applied live: the router's settings, the connection settings
/// (new connections get them; open ones keep theirs), the level of the log.
const LIVE: &[&str] = &[
    "allow_anonymous",
    "password_file",
    "acl_file",
    "max_packet_size",
    "max_inflight_messages",
    "disconnect_on_queue_full",
    "session_expiry_secs",
    "connect_timeout_secs",
    "max_topic_levels",
    "max_sessions",
    "max_retained_messages",
    "max_retained_bytes",
    "max_subscriptions_per_client",
    "sys_interval",
    "verbose",
    "log_level",
    "max_keepalive",
    "receive_maximum",
    "topic_alias_maximum",
    "server_topic_aliases",
    "shared_subscription_strategy",
    "response_information",
];

/// What changed between two configurations.
#[derive(Debug)]
pub(super) struct Changed {
    pub live: Vec<&'static str>,
    pub restart: Vec<&'static str>,
    /// `new` with the running (old) values of the keys that need a restart.
    pub running: Config,
}

/// The keys that differ between `old` and `new`, live ones and the rest.
/// A key this list does not know (added to `Config` later) is reported as
/// `other keys`, needing a restart: nothing changes silently.
pub(super) fn changed_keys(old: &Config, new: &Config) -> Changed {
    let (mut live, mut restart) = (Vec::new(), Vec::new());
    let mut rest = new.clone();
    let mut running = old.clone();
    macro_rules! compare {
        ($($key:literal => $($field:ident).+),* $(,)?) => { $(
            let is_live = LIVE.contains(&$key);
            if old.$($field).+ != new.$($field).+ {
                if is_live { live.push($key) } else { restart.push($key) }
            }
            if is_live {
                running.$($field).+ = new.$($field).+.clone();
            }
            rest.$($field).+ = old.$($field).+.clone();
        )* };
    }
    compare!(
        "listener" => listeners, "data_dir" => data_dir, "allow_anonymous" => allow_anonymous,
        "password_file" => password_file, "acl_file" => acl_file, "max_packet_size" => max_packet_size,
        "max_inflight_messages" => max_inflight_messages, "max_queued_messages" => max_queued_messages,
        "max_queued_bytes" => max_queued_bytes, "queue_memory_bytes" => queue_memory_bytes,
        "max_queued_disk_bytes" => max_queued_disk_bytes, "queue_disk_quota" => queue_disk_quota,
        "queue_full_policy" => queue_full_policy, "disconnect_on_queue_full" => disconnect_on_queue_full,
        "queue_qos0_messages" => queue_qos0_messages, "session_expiry_secs" => session_expiry_secs,
        "connect_timeout_secs" => connect_timeout_secs, "max_topic_levels" => max_topic_levels,
        "max_sessions" => max_sessions, "max_retained_messages" => max_retained_messages,
        "max_retained_bytes" => max_retained_bytes, "max_subscriptions_per_client" => max_subscriptions_per_client,
        "sys_interval" => sys_interval, "verbose" => verbose, "log_dest" => log.dest, "log_file" => log.file,
        "log_format" => log.format, "log_level" => log.level, "max_keepalive" => max_keepalive,
        "receive_maximum" => receive_maximum, "topic_alias_maximum" => topic_alias_maximum,
        "server_topic_aliases" => server_topic_aliases, "shared_subscription_strategy" => shared_subscription_strategy,
        "response_information" => response_information, "persistence" => persistence, "sync" => sync,
        "compact_bytes" => compact_bytes,
    );
    // The file's path is the same file read again.
    rest.config_file.clone_from(&old.config_file);
    if rest != *old {
        restart.push("other keys");
    }
    Changed { live, restart, running }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_restart_keys_are_told_apart() {
        let old = Config::default();
        let same = changed_keys(&old, &old);
        assert!(same.live.is_empty() && same.restart.is_empty() && same.running == old);
        let mut new = old.clone();
        new.max_sessions = 5;
        new.log.level = Some("info".into());
        new.data_dir = "/elsewhere".into();
        new.log.format = crate::logging::LogFormat::Json;
        new.config_file = Some("/etc/edgemq/edgemq.toml".into());
        let c = changed_keys(&old, &new);
        assert_eq!((c.live, c.restart), (vec!["max_sessions", "log_level"], vec!["data_dir", "log_format"]));
        let running = c.running;
        assert_eq!((running.max_sessions, running.data_dir), (5, old.data_dir.clone()));
        assert_eq!(running.log.format, crate::logging::LogFormat::Text);
    }
}
