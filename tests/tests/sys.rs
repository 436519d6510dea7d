//! `$SYS/broker/...`: the broker's own figures under Mosquitto's topic
//! names, retained, every `sys_interval`; not matched by `#`
//! [MQTT-4.7.2-1]; not publishable by clients (nor as a will); not held
//! against the retained-message caps.

mod common;

use std::collections::HashMap;

use common::*;

/// Reads `$SYS/broker/...` messages until `want` has the value `value`.
async fn until(c: &mut Raw, seen: &mut HashMap<String, String>, want: &str, value: &str) {
    within(&format!("{want} = {value}"), async {
        while seen.get(want).map(String::as_str) != Some(value) {
            let p = c.expect_publish().await;
            seen.insert(p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned());
        }
    })
    .await;
}

#[tokio::test]
async fn sys_topics_with_mosquittos_names() {
    let b = TestBroker::start_with(|c| {
        c.sys_interval = 1;
        c.max_retained_messages = 1;
    })
    .await;
    let mut all = Raw::v311(b.addr, "sys-all").await;
    all.subscribe(1, &[("#", 0)]).await;
    let mut sys = Raw::v311(b.addr, "sys-watch").await;
    sys.subscribe(1, &[("$SYS/broker/#", 0)]).await;
    let mut seen = HashMap::new();
    until(&mut sys, &mut seen, "$SYS/broker/clients/connected", "2").await;
    assert_eq!(seen["$SYS/broker/version"], format!("edgemq version {}", env!("CARGO_PKG_VERSION")));
    assert!(seen["$SYS/broker/uptime"].ends_with(" seconds"));
    for t in ["load/messages/received/1min", "messages/sent", "subscriptions/count", "retained messages/count"] {
        assert!(seen.contains_key(&format!("$SYS/broker/{t}")), "{t}: {seen:?}");
    }
    // A retained message of a client fits the cap of 1 beside the $SYS ones.
    let mut p = Raw::v5(b.addr, "sys-pub").await;
    p.publish("app/state", 1, true, 1, b"on").await;
    let mut late = Raw::v311(b.addr, "sys-late").await;
    late.subscribe(1, &[("app/#", 0)]).await;
    assert_eq!(late.expect_publish().await.payload, b"on", "retained despite the $SYS messages");
    // Clients cannot publish the broker's own topics (MQTT 5: 0x87).
    p.send(&publish_packet(true, "$SYS/broker/clients/connected", 1, true, false, 2, b"999")).await;
    let ack = p.expect_kind(PUBACK, "PUBACK").await;
    assert_eq!((ack.pid(), ack.body[2]), (2, 0x87), "Not authorized");
    until(&mut sys, &mut seen, "$SYS/broker/clients/connected", "4").await;
    assert_eq!(all.expect_publish().await.topic, "app/state");
    all.expect_silence("`#` does not match $SYS topics [MQTT-4.7.2-1]").await;
    // A new subscriber gets them at once, retained.
    let mut fresh = Raw::v311(b.addr, "sys-fresh").await;
    fresh.subscribe(1, &[("$SYS/broker/version", 0)]).await;
    let v = fresh.expect_publish().await;
    assert!(v.retain);
    b.shutdown().await;
}

/// A bridge's figures under `$SYS/broker/bridge/NAME/...` and Mosquitto's
/// `$SYS/broker/connection/NAME/state` (1 connected, 0 not), as the
/// bridge connects, forwards, and loses its remote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_figures_under_sys() {
    let cloud = TestBroker::start().await;
    let b = common::bridge::bridge("up", &[cloud.addr.to_string()], &["s/# out 1"], "");
    let edge = TestBroker::start_with(|c| {
        c.sys_interval = 1;
        c.bridges = vec![b];
    })
    .await;
    let mut sys = Raw::v311(edge.addr, "sys-watch").await;
    sys.subscribe(1, &[("$SYS/broker/bridge/up/#", 0), ("$SYS/broker/connection/up/state", 0)]).await;
    let mut seen = HashMap::new();
    until(&mut sys, &mut seen, "$SYS/broker/connection/up/state", "1").await;
    until(&mut sys, &mut seen, "$SYS/broker/bridge/up/connected", "1").await;
    common::bridge::publish_numbered(edge.addr, "s/x", 0, 5).await;
    until(&mut sys, &mut seen, "$SYS/broker/bridge/up/out/forwarded", "5").await;
    for (t, v) in [("queue/messages", "0"), ("out/dropped", "0"), ("out/rejected", "0"), ("reconnects", "0")] {
        assert_eq!(seen[&format!("$SYS/broker/bridge/up/{t}")], v, "{t}: {seen:?}");
    }
    for t in ["queue/bytes", "in/forwarded", "in/dropped", "connect_failures"] {
        assert!(seen.contains_key(&format!("$SYS/broker/bridge/up/{t}")), "{t}: {seen:?}");
    }
    cloud.shutdown().await;
    until(&mut sys, &mut seen, "$SYS/broker/connection/up/state", "0").await;
    until(&mut sys, &mut seen, "$SYS/broker/bridge/up/connected", "0").await;
    edge.shutdown().await;
}
