//! QoS 0/1/2 round trips through the broker with an independent client
//! library (rumqttc), MQTT 3.1.1 and 5.0: topic and payload intact, and
//! per-publisher order preserved at each QoS.

mod common;

use common::*;
use rumqttc::QoS;

const N: usize = 500;

fn qos_v4(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn qos_v5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS as Q;
    match q {
        0 => Q::AtMostOnce,
        1 => Q::AtLeastOnce,
        _ => Q::ExactlyOnce,
    }
}

/// Publishes `N` numbered messages at `q` from one 3.1.1 client to another
/// and checks they all arrive, in order, at that QoS.
async fn ordered_v4(q: u8) {
    let b = TestBroker::start().await;
    let topic = format!("rt/v4/qos{q}");
    let mut sub = V4Client::simple(b.addr, &format!("sub-v4-{q}")).await;
    assert_eq!(sub.subscribe(&topic, qos_v4(q)).await, vec![rumqttc::SubscribeReasonCode::Success(qos_v4(q))]);
    let publisher = V4Client::simple(b.addr, &format!("pub-v4-{q}")).await;
    let client = publisher.client.clone();
    let t = topic.clone();
    let send = tokio::spawn(async move {
        for i in 0..N {
            client.publish(t.as_str(), qos_v4(q), false, format!("msg {i}")).await.expect("publish request");
        }
    });
    // [MQTT-4.6.0-5]/[MQTT-4.6.0-6]: messages from one publisher on one
    // topic are delivered in the order they were published.
    for i in 0..N {
        let p = sub.next_publish().await;
        assert_eq!(p.topic, topic);
        assert_eq!(p.qos, qos_v4(q), "message {i}");
        assert_eq!(String::from_utf8_lossy(&p.payload), format!("msg {i}"), "order at QoS {q}");
        assert!(!p.retain, "live message must not carry RETAIN [MQTT-3.3.1-9]");
    }
    within("publisher task", send).await.expect("publisher task");
    drop(publisher);
    drop(sub);
    b.shutdown().await;
}

#[tokio::test]
async fn v311_qos0_order() {
    ordered_v4(0).await;
}

#[tokio::test]
async fn v311_qos1_order() {
    ordered_v4(1).await;
}

#[tokio::test]
async fn v311_qos2_order() {
    ordered_v4(2).await;
}

async fn ordered_v5(q: u8) {
    let b = TestBroker::start().await;
    let topic = format!("rt/v5/qos{q}");
    let mut sub = V5Client::simple(b.addr, &format!("sub-v5-{q}")).await;
    assert_eq!(sub.subscribe(&topic, qos_v5(q)).await, vec![q]);
    let publisher = V5Client::simple(b.addr, &format!("pub-v5-{q}")).await;
    let client = publisher.client.clone();
    let t = topic.clone();
    let send = tokio::spawn(async move {
        for i in 0..N {
            client.publish(t.as_str(), qos_v5(q), false, format!("msg {i}")).await.expect("publish request");
        }
    });
    // [MQTT-4.6.0-5]/[MQTT-4.6.0-6] (same rules in 5.0, section 4.6).
    for i in 0..N {
        let p = sub.next_publish().await;
        assert_eq!(&p.topic[..], topic.as_bytes());
        assert_eq!(p.qos, qos_v5(q), "message {i}");
        assert_eq!(String::from_utf8_lossy(&p.payload), format!("msg {i}"), "order at QoS {q}");
    }
    within("publisher task", send).await.expect("publisher task");
    drop(publisher);
    drop(sub);
    b.shutdown().await;
}

#[tokio::test]
async fn v5_qos0_order() {
    ordered_v5(0).await;
}

#[tokio::test]
async fn v5_qos1_order() {
    ordered_v5(1).await;
}

#[tokio::test]
async fn v5_qos2_order() {
    ordered_v5(2).await;
}

/// Binary payloads (every byte value, an empty payload, 200 KiB) and a
/// UTF-8 topic arrive unchanged at each QoS.
#[tokio::test]
async fn payload_and_topic_intact() {
    let b = TestBroker::start().await;
    let mut sub = V4Client::simple(b.addr, "intact-sub").await;
    sub.subscribe("intact/#", QoS::ExactlyOnce).await;
    let publisher = V4Client::simple(b.addr, "intact-pub").await;
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..200 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let topic = "intact/température/日本/ü";
    for q in 0..3u8 {
        for payload in [&all_bytes, &big, &Vec::new()] {
            publisher.client.publish(topic, qos_v4(q), false, payload.clone()).await.expect("publish");
            let p = sub.next_publish().await;
            assert_eq!(p.topic, topic);
            assert_eq!(p.qos, qos_v4(q));
            assert_eq!(p.payload.len(), payload.len());
            assert!(p.payload[..] == payload[..], "payload changed at QoS {q}");
        }
    }
    drop(publisher);
    drop(sub);
    b.shutdown().await;
}

/// The QoS of a delivered message is the minimum of the published QoS and
/// the granted QoS. [MQTT-3.8.4-6] (downgrade), raw client so the flags are
/// seen exactly.
#[tokio::test]
async fn delivered_qos_is_min_of_publish_and_subscription() {
    let b = TestBroker::start().await;
    let mut p = Raw::v311(b.addr, "qos-min-pub").await;
    for sq in 0..3u8 {
        let mut s = Raw::v311(b.addr, &format!("qos-min-sub-{sq}")).await;
        let filter = format!("qmin/{sq}");
        assert_eq!(s.subscribe(1, &[(&filter, sq)]).await, vec![sq], "granted QoS [MQTT-3.9.3-2]");
        for pq in 0..3u8 {
            p.publish(&filter, pq, false, 10 + pq as u16, format!("{sq}{pq}").as_bytes()).await;
            let m = s.receive_acked().await;
            assert_eq!(m.qos, sq.min(pq), "subscription QoS {sq}, publish QoS {pq}");
            assert_eq!(m.payload, format!("{sq}{pq}").as_bytes());
            assert!(!m.dup, "first delivery has DUP=0 [MQTT-3.3.1-2]");
        }
        s.disconnect().await;
    }
    p.disconnect().await;
    b.shutdown().await;
}

/// Several publishers at once: each publisher's messages arrive in its
/// publish order [MQTT-4.6.0-5], none lost or duplicated (QoS 1 and 2).
#[tokio::test]
async fn concurrent_publishers_keep_per_publisher_order() {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 200;
    let b = TestBroker::start().await;
    let mut s = Raw::v311(b.addr, "conc-sub").await;
    s.subscribe(1, &[("conc/t", 2)]).await;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let addr = b.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Raw::v311(addr, &format!("conc-pub-{p}")).await;
            for i in 0..EACH {
                let qos = 1 + (i % 2) as u8;
                c.publish("conc/t", qos, false, i as u16 + 1, format!("{p}:{i}").as_bytes()).await;
            }
        }));
    }
    let mut next = [0usize; PUBLISHERS];
    for _ in 0..PUBLISHERS * EACH {
        let m = s.receive_acked().await;
        let text = String::from_utf8(m.payload).expect("utf-8");
        let (p, i) = text.split_once(':').expect("p:i");
        let (p, i): (usize, usize) = (p.parse().expect("p"), i.parse().expect("i"));
        assert_eq!(i, next[p], "publisher {p}: out of order or duplicated [MQTT-4.6.0-5]");
        next[p] += 1;
    }
    for t in tasks {
        within("publisher", t).await.expect("publisher task");
    }
    s.expect_silence("no extra copies").await;
    b.shutdown().await;
}

/// A subscriber that stops reading its socket must not stall delivery to
/// other subscribers or acknowledgements to the publisher.
#[tokio::test]
async fn stalled_subscriber_does_not_block_others() {
    const N: usize = 600;
    let b = TestBroker::start().await;
    let mut stalled = Raw::v311(b.addr, "stalled").await;
    stalled.subscribe(1, &[("stall/t", 0)]).await;
    // From here on `stalled` never reads.
    let mut fast = Raw::v311(b.addr, "fast").await;
    fast.subscribe(1, &[("stall/t", 0)]).await;
    let payload = vec![b'z'; 16 * 1024];
    let addr = b.addr;
    let publisher = tokio::spawn(async move {
        let mut p = Raw::v311(addr, "stall-pub").await;
        for i in 0..N {
            p.publish("stall/t", 1, false, (i % 60000) as u16 + 1, &payload).await;
        }
    });
    for i in 0..N {
        let m = fast.expect_publish().await;
        assert_eq!(m.payload.len(), 16 * 1024, "message {i}");
    }
    within("publisher with a stalled subscriber", publisher).await.expect("publisher task");
    drop(stalled);
    b.shutdown().await;
}
