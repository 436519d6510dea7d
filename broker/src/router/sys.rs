//! The `$SYS/broker/...` topics: the broker's own figures, published by
//! the router as retained messages every `sys_interval` seconds (0: off),
//! with Mosquitto's topic names and meanings so that `mosquitto_sub -t
//! '$SYS/#'` and dashboards written for Mosquitto read them. A topic is
//! published again only when its value changed (as Mosquitto does); its
//! messages are not recorded in the store and not counted as received.
//!
//! Load figures (`$SYS/broker/load/...`) are exponentially decaying
//! averages per minute over 1, 5 and 15 minutes, as Mosquitto's.
//!
//! Each bridge's figures are under `$SYS/broker/bridge/NAME/`
//! (`BridgeStatus::sys_values`: `connected`, `queue/messages`,
//! `queue/bytes`, `out/forwarded`, `out/dropped`, `out/rejected`,
//! `in/forwarded`, `in/dropped`, `reconnects`, `connect_failures`);
//! Mosquitto's `$SYS/broker/connection/NAME/state` is the bridge's own
//! notification (`bridge/link.rs`), published when it connects and
//! disconnects.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Router;
use crate::message::Message;
use crate::protocol::QoS;

/// What the router keeps for `$SYS`.
#[derive(Debug, Default)]
pub(super) struct Sys {
    interval: Option<Duration>,
    started: Option<Instant>,
    last: Option<Instant>,
    /// The last value published per topic.
    published: HashMap<Cow<'static, str>, String>,
    /// The bridges, whose figures are published too.
    bridges: Vec<Arc<crate::bridge::BridgeStatus>>,
    /// Counts at the last publication, for the load averages.
    counts: [u64; 3],
    /// Load averages (per minute) over 1, 5 and 15 minutes, per count.
    load: [[f64; 3]; 3],
    max_connected: usize,
}

const LOAD_TOPICS: [[&str; 3]; 3] = [
    [
        "$SYS/broker/load/messages/received/1min",
        "$SYS/broker/load/messages/received/5min",
        "$SYS/broker/load/messages/received/15min",
    ],
    [
        "$SYS/broker/load/messages/sent/1min",
        "$SYS/broker/load/messages/sent/5min",
        "$SYS/broker/load/messages/sent/15min",
    ],
    ["$SYS/broker/load/connections/1min", "$SYS/broker/load/connections/5min", "$SYS/broker/load/connections/15min"],
];

impl Router {
    /// Publishes `$SYS` every `interval` (`None`: never), from `now` on.
    pub fn set_sys_interval(&mut self, interval: Option<Duration>, now: Instant) {
        self.sys.interval = interval.filter(|i| !i.is_zero());
        self.sys.started = Some(now);
    }

    /// Publishes these bridges' figures with the rest.
    pub fn set_bridge_statuses(&mut self, bridges: Vec<Arc<crate::bridge::BridgeStatus>>) {
        self.sys.bridges = bridges;
    }

    /// Changes the interval of a running broker (uptime goes on counting);
    /// a shorter one takes effect from the next tick.
    pub(super) fn change_sys_interval(&mut self, interval: Option<Duration>, now: Instant) {
        self.sys.interval = interval.filter(|i| !i.is_zero());
        self.sys.started.get_or_insert(now);
    }

    /// On the router's tick: publishes the `$SYS` topics when due.
    pub(super) fn publish_sys(&mut self, now: Instant) {
        let Some(interval) = self.sys.interval else { return };
        if self.sys.last.is_some_and(|t| now.saturating_duration_since(t) < interval) {
            return;
        }
        // Sampled when due: `maximum` is the most seen at a publication.
        let connected = self.metrics.sessions_online.get() as usize;
        self.sys.max_connected = self.sys.max_connected.max(connected);
        let elapsed = self.sys.last.map_or(interval, |t| now.saturating_duration_since(t));
        self.sys.last = Some(now);
        let s = self.stats();
        let m = self.metrics.clone();
        let counts = [s.published, s.delivered, s.connects];
        let mut values: Vec<(Cow<'static, str>, String)> = Vec::with_capacity(32);
        for (i, count) in counts.into_iter().enumerate() {
            let per_min = (count - self.sys.counts[i]) as f64 * 60.0 / elapsed.as_secs_f64().max(0.001);
            for (j, minutes) in [1.0, 5.0, 15.0].into_iter().enumerate() {
                let keep = (-elapsed.as_secs_f64() / (60.0 * minutes)).exp();
                let l = &mut self.sys.load[i][j];
                *l = *l * keep + per_min * (1.0 - keep);
                values.push((LOAD_TOPICS[i][j].into(), format!("{:.2}", *l)));
            }
        }
        self.sys.counts = counts;
        let uptime = self.sys.started.map_or(0, |t| now.saturating_duration_since(t).as_secs());
        let total = self.sessions.len();
        let subscriptions: usize = self.subscription_count();
        let fixed = [
            ("$SYS/broker/version", format!("edgemq version {}", env!("CARGO_PKG_VERSION"))),
            ("$SYS/broker/uptime", format!("{uptime} seconds")),
            ("$SYS/broker/clients/total", total.to_string()),
            ("$SYS/broker/clients/connected", connected.to_string()),
            ("$SYS/broker/clients/disconnected", (total - connected).to_string()),
            ("$SYS/broker/clients/maximum", self.sys.max_connected.to_string()),
            ("$SYS/broker/clients/expired", s.sessions_expired.to_string()),
            ("$SYS/broker/messages/received", s.published.to_string()),
            ("$SYS/broker/messages/sent", s.delivered.to_string()),
            ("$SYS/broker/publish/messages/dropped", s.dropped_queue_full.to_string()),
            ("$SYS/broker/subscriptions/count", subscriptions.to_string()),
            ("$SYS/broker/retained messages/count", self.retained_count().to_string()),
            ("$SYS/broker/store/retained/bytes", self.retained.bytes().to_string()),
            ("$SYS/broker/store/sessions/refused", s.sessions_refused.to_string()),
            ("$SYS/broker/queues/dropped/disk_quota", s.dropped_disk_quota.to_string()),
            ("$SYS/broker/queues/messages", m.queued_messages.get().to_string()),
            ("$SYS/broker/queues/bytes", m.queued_bytes.get().to_string()),
            ("$SYS/broker/queues/inflight", m.inflight.get().to_string()),
            ("$SYS/broker/publish/messages/dropped/too_large", m.drops.too_large.get().to_string()),
            ("$SYS/broker/publish/messages/dropped/expired", m.drops.expired.get().to_string()),
        ];
        values.extend(fixed.map(|(t, v)| (Cow::Borrowed(t), v)));
        for b in &self.sys.bridges {
            values.extend(b.sys_values().into_iter().map(|(t, v)| (Cow::Owned(t), v)));
        }
        for (topic, value) in values {
            if self.sys.published.get(&topic) == Some(&value) {
                continue;
            }
            let msg = Message {
                topic: topic.to_string(),
                payload: Bytes::from(value.clone().into_bytes()),
                qos: QoS::AtMostOnce,
                retain: true,
                props: None,
                origin: 0,
                received: now,
            };
            self.sys.published.insert(topic, value);
            self.route(Arc::new(msg), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SubOptions;
    use crate::router::{ConnHandle, ConnectRequest, Sub, SubscribeEntry};
    use crate::session::state::QueueLimits;

    fn values(r: &Router, filter: &str) -> HashMap<String, String> {
        let mut out = HashMap::new();
        r.retained.matching(filter, |m| {
            out.insert(m.topic.clone(), String::from_utf8_lossy(&m.payload).into_owned());
        });
        out
    }

    #[test]
    fn sys_topics_follow_the_broker_and_change_only_when_due() {
        let t0 = Instant::now();
        let mut r = Router::new(QueueLimits::default());
        r.set_sys_interval(Some(Duration::from_secs(10)), t0);
        let req = |id: &str, n| ConnectRequest {
            user: None,
            check_owner: false,
            client_id: id.into(),
            clean_start: true,
            expiry: Some(Duration::ZERO),
            conn: ConnHandle::new(n),
        };
        let a = r.open(req("a", 1), t0).unwrap();
        r.open(req("b", 2), t0).unwrap();
        let options = SubOptions::default();
        a.session.lock().subscriptions.insert("x/#".into(), (options, None));
        r.subscribe(
            a.key,
            vec![SubscribeEntry { filter: "x/#".into(), sub: Sub { options, id: None }, existed: false }],
            t0,
        );
        r.expire(t0 + Duration::from_secs(1));
        let v = values(&r, "$SYS/#");
        assert_eq!(v["$SYS/broker/clients/connected"], "2");
        assert_eq!(v["$SYS/broker/clients/total"], "2");
        assert_eq!(v["$SYS/broker/subscriptions/count"], "1");
        assert_eq!(v["$SYS/broker/version"], format!("edgemq version {}", env!("CARGO_PKG_VERSION")));
        assert_eq!(v["$SYS/broker/messages/received"], "0", "$SYS messages are not counted as received");
        assert_eq!(v["$SYS/broker/queues/messages"], "0", "read from the registry");
        // The subscriber to x/# does not get $SYS ([MQTT-4.7.2-1]).
        assert!(a.session.lock().next_to_send(10, t0).is_none());
        r.publish(Message {
            topic: "x/y".into(),
            payload: Bytes::from_static(b"v"),
            qos: QoS::AtMostOnce,
            retain: false,
            props: None,
            origin: 0,
            received: t0,
        });
        r.expire(t0 + Duration::from_secs(5));
        assert_eq!(values(&r, "$SYS/#")["$SYS/broker/messages/received"], "0", "not due yet");
        r.expire(t0 + Duration::from_secs(11));
        let v = values(&r, "$SYS/#");
        assert_eq!(v["$SYS/broker/messages/received"], "1");
        assert_eq!(v["$SYS/broker/uptime"], "11 seconds");
        assert_ne!(v["$SYS/broker/load/messages/received/1min"], "0.00");
    }
}
