//! What the bridge tests (`bridge.rs`, `bridge_clouds.rs`) share: a
//! `[[bridge]]` table parsed from the file syntax, an edge broker with
//! bridges, numbered publishers and the in-order receiver, and the
//! skip-unless-required check for the brokers they start.

use std::net::SocketAddr;
use std::time::Duration;

use edgemq::bridge::BridgeConfig;
use rumqttc::QoS;

use super::*;

/// Whether an optional component is there (`ok`); without it a test is
/// skipped with `why` printed, unless `EDGEMQ_REQUIRE_<var>=1` (CI) makes
/// that a failure.
pub fn have(var: &str, ok: bool, why: &str) -> bool {
    if !ok {
        assert!(std::env::var(format!("EDGEMQ_REQUIRE_{var}")).as_deref() != Ok("1"), "{why}");
        eprintln!("SKIPPED: {why}");
    }
    ok
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A bridge from the config-file syntax, as a user writes it.
pub fn bridge(name: &str, addresses: &[String], topics: &[&str], extra: &str) -> BridgeConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgemq.toml");
    let addrs: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    let rules: Vec<String> = topics.iter().map(|t| format!("'{t}'")).collect();
    let text = format!(
        "[[bridge]]\nname = \"{name}\"\naddresses = [{}]\ntopics = [{}]\nreconnect_min_ms = 100\nreconnect_max_ms = 500\nconnect_timeout_secs = 2\n{extra}\n",
        addrs.join(", "),
        rules.join(", ")
    );
    std::fs::write(&path, text).unwrap();
    let args = edgemq::config::Args { config: Some(path), ..Default::default() };
    edgemq::Config::from_args(&args).unwrap().bridges.remove(0)
}

pub async fn edge_with(bridges: Vec<BridgeConfig>) -> TestBroker {
    TestBroker::start_with(|c| c.bridges = bridges).await
}

pub fn v4(addr: SocketAddr, id: &str, clean: bool) -> rumqttc::MqttOptions {
    let mut o = V4Client::options(addr, id);
    o.set_clean_session(clean);
    o.set_inflight(100);
    o
}

/// Publishes `n` numbered QoS 1 messages and waits for every PUBACK.
pub async fn publish_numbered(addr: SocketAddr, topic: &str, from: u32, n: u32) {
    publish_numbered_at(addr, topic, from, n, QoS::AtLeastOnce).await
}

/// Publishes `n` numbered messages at `qos` (1 or 2) and waits for every
/// PUBACK (PUBCOMP).
pub async fn publish_numbered_at(addr: SocketAddr, topic: &str, from: u32, n: u32, qos: QoS) {
    let (mut c, _) = V4Client::connect(v4(addr, "numbered-pub", true)).await;
    let done = |p: &rumqttc::Packet| matches!(p, rumqttc::Packet::PubAck(_) | rumqttc::Packet::PubComp(_));
    let mut acked = 0;
    for i in from..from + n {
        c.client.publish(topic, qos, false, i.to_string()).await.unwrap();
        // Keep the request channel from filling; count acks as they come.
        while let Ok(p) = c.rx.try_recv() {
            acked += u32::from(done(&p));
        }
    }
    within("every acknowledgement", async {
        while acked < n {
            match c.rx.recv().await {
                Some(p) => acked += u32::from(done(&p)),
                None => panic!("the publisher's connection ended"),
            }
        }
    })
    .await;
}

/// [`publish_numbered`] of `0..n` within `limit` instead of its 5 s
/// bound (a long stream).
pub async fn publish_numbered_long(addr: SocketAddr, topic: &str, n: u32, limit: Duration) {
    tokio::time::timeout(limit, async {
        let (mut c, _) = V4Client::connect(v4(addr, "long-pub", true)).await;
        let mut acked = 0;
        for i in 0..n {
            c.client.publish(topic, QoS::AtLeastOnce, false, i.to_string()).await.unwrap();
            while let Ok(p) = c.rx.try_recv() {
                acked += u32::from(matches!(p, rumqttc::Packet::PubAck(_)));
            }
        }
        while acked < n {
            match c.rx.recv().await {
                Some(p) => acked += u32::from(matches!(p, rumqttc::Packet::PubAck(_))),
                None => panic!("the publisher's connection ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} published within {limit:?}"));
}

/// Publishes QoS 0 probes (payload `probe`) on `topic` from `from` until
/// one reaches `to` (each waited for `wait_ms`; under whatever topic a
/// bridge's prefixes make of it): a bridge's subscription is in place.
pub async fn probe_until_carried(what: &str, from: &V4Client, topic: &str, to: &mut V4Client, wait_ms: u64) {
    within(what, async {
        loop {
            from.client.publish(topic, QoS::AtMostOnce, false, "probe").await.unwrap();
            if let Ok(p) = tokio::time::timeout(Duration::from_millis(wait_ms), to.next_publish()).await {
                if &p.payload[..] == b"probe" {
                    return;
                }
            }
        }
    })
    .await;
}

/// Reads what `c` is sent until it is quiet for `QUIET`.
pub async fn drain(c: &mut V4Client) {
    while tokio::time::timeout(QUIET, c.next_publish()).await.is_ok() {}
}

/// Tracks numbered messages as they arrive: every number in `0..n` must
/// be seen, the first sight of each in order; later sights are counted
/// as duplicates.
#[derive(Debug, Default)]
pub struct InOrder {
    pub next: u32,
    pub dups: u32,
}

impl InOrder {
    pub fn see(&mut self, i: u32) {
        if i < self.next {
            self.dups += 1;
        } else {
            assert_eq!(i, self.next, "out of order: {i} after {}", self.next.wrapping_sub(1));
            self.next += 1;
        }
    }
}

/// Receives until every number in `0..n` was seen: the first sight of
/// each comes in order; returns the count of duplicates.
pub async fn receive_numbered(c: &mut V4Client, n: u32, limit: Duration) -> u32 {
    let mut seen = InOrder::default();
    tokio::time::timeout(limit, async {
        while seen.next < n {
            let p = c.next_publish().await;
            seen.see(std::str::from_utf8(&p.payload).unwrap().parse().unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} arrived", seen.next));
    seen.dups
}
