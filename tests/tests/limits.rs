//! Limits and what the broker says when one is reached: a session queue
//! that overflows while its MQTT 5 client is connected (DISCONNECT 0x97),
//! per-listener limits from `[[listener]]` tables (connections, packet
//! size, keep-alive, anonymous clients) and the broker's caps (sessions,
//! retained messages, subscriptions per client). Normative references use the
//! MQTT 5.0 numbering unless they say 3.1.1.

mod common;

use std::net::SocketAddr;

use common::*;
use edgemq::config::ListenerConfig;

// ---------------------------------------------------------------------------
// Queue full
// ---------------------------------------------------------------------------

/// A broker whose sessions queue 3 messages behind a window of 1.
async fn small_queues(disconnect_on_queue_full: bool) -> TestBroker {
    TestBroker::start_with(|c| {
        c.max_queued_messages = 3;
        c.max_inflight_messages = 1;
        c.disconnect_on_queue_full = disconnect_on_queue_full;
    })
    .await
}

/// Connects a persistent subscriber to `qf/t` (QoS 1), publishes "0" and
/// waits until it is in flight (not acknowledged), then publishes "1".."3"
/// (the queue is then full) and "4" (one too many). Returns the
/// subscriber, its CONNECT options and the in-flight packet id.
async fn overflow(b: &TestBroker, proto: Proto, id: &str) -> (Raw, ConnectOpts, u16) {
    let mut opts = ConnectOpts::new(proto, id).clean(false);
    if proto == Proto::V5 {
        opts = opts.props(session_expiry(300));
    }
    let (mut sub, _) = Raw::connect(b.addr, &opts).await;
    sub.subscribe(1, &[("qf/t", 1)]).await;
    let mut publisher = Raw::v311(b.addr, &format!("{id}-pub")).await;
    publisher.publish("qf/t", 1, false, 1, b"0").await;
    let first = sub.expect_publish().await;
    assert_eq!(first.payload, b"0");
    for i in 1..=4u16 {
        publisher.publish("qf/t", 1, false, i + 1, format!("{i}").as_bytes()).await;
    }
    (sub, opts, first.pid)
}

/// Acknowledges the in-flight "0", reads the three queued messages "1",
/// "2", "3" (the fourth was dropped), then stops the broker and checks
/// that the one drop was counted.
async fn expect_queued_three(b: TestBroker, mut sub: Raw, pid: u16) {
    sub.send(&ack_packet(PUBACK, pid)).await;
    for want in ["1", "2", "3"] {
        assert_eq!(sub.receive_acked().await.payload, want.as_bytes());
    }
    sub.expect_silence("the message that overflowed the queue was dropped").await;
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert_eq!(stats.dropped_queue_full, 1);
}

/// A message that overflows the queue of a connected MQTT 5 client: the
/// broker sends DISCONNECT with reason 0x97 Quota exceeded, one of the
/// DISCONNECT reason codes [MQTT-3.14.2-1], with a reason string, and closes
/// the connection ([MQTT-4.13.2-1]: a reason of 0x80 or more closes it).
/// The session state is kept, its Session Expiry Interval being above 0
/// [MQTT-3.1.2-23]: on reconnect the unacknowledged PUBLISH is resent with
/// DUP [MQTT-4.4.0-1] and the queued messages follow in order.
#[tokio::test]
async fn v5_queue_overflow_disconnects_with_0x97_and_keeps_the_session() {
    let b = small_queues(true).await;
    let (mut sub, opts, pid) = overflow(&b, Proto::V5, "qf5").await;
    let seen = sub.expect_closed("queue overflow").await;
    assert_v5_disconnect(&seen, 0x97, "queue overflow: Quota exceeded");
    assert!(
        props_list(&seen[0].reason_props()).iter().any(|(id, _)| *id == 0x1F),
        "DISCONNECT carries a Reason String: {seen:?}"
    );
    let (mut sub, present) = Raw::connect(b.addr, &opts).await;
    assert!(present, "session present after the 0x97 disconnect [MQTT-3.1.2-23]");
    let again = sub.expect_publish().await;
    assert_eq!((&again.payload[..], again.pid, again.dup), (&b"0"[..], pid, true), "[MQTT-4.4.0-1]");
    expect_queued_three(b, sub, pid).await;
}

/// Without the disconnect (3.1.1 has no DISCONNECT from the server, and
/// `disconnect_on_queue_full = false` treats MQTT 5 clients alike), a
/// client whose queue overflows keeps its connection; the message is
/// dropped and counted.
#[tokio::test]
async fn queue_overflow_without_disconnect_drops_and_counts() {
    for (proto, disconnect_on_queue_full, id) in [(Proto::V311, true, "qf311"), (Proto::V5, false, "qf5-off")] {
        let b = small_queues(disconnect_on_queue_full).await;
        let (mut sub, _, pid) = overflow(&b, proto, id).await;
        sub.expect_silence(&format!("{id}: the connection stays open")).await;
        expect_queued_three(b, sub, pid).await;
    }
}

/// The broker's Receive Maximum (`receive_maximum`, advertised in CONNACK
/// as 0x21): a client that sends more QoS 2 PUBLISHes than that without
/// completing them exceeds it, which it must not [MQTT-3.3.4-7], and is
/// disconnected with 0x93 Receive Maximum exceeded (5.0 3.3.4).
#[tokio::test]
async fn v5_receive_maximum_exceeded_disconnects_with_0x93() {
    let b = TestBroker::start_with(|c| c.receive_maximum = 2).await;
    let (mut c, ack) = try_connect(b.addr, &ConnectOpts::new(Proto::V5, "rm-over")).await.expect("connect");
    assert_eq!(int_prop(&ack.connack_props(), 0x21), Some(2), "Receive Maximum in CONNACK");
    for pid in 1..=2u16 {
        c.send(&publish_packet(true, "rm/t", 2, false, false, pid, b"x")).await;
        assert_eq!(c.expect_kind(PUBREC, "PUBREC").await.pid(), pid);
    }
    c.send(&publish_packet(true, "rm/t", 2, false, false, 3, b"x")).await;
    let seen = c.expect_closed("a third QoS 2 PUBLISH awaiting PUBREL").await;
    assert_v5_disconnect(&seen, 0x93, "Receive Maximum exceeded");
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// Per-listener limits
// ---------------------------------------------------------------------------

/// A broker with two listeners on 127.0.0.1: `limited` (the first) with
/// the limits of `tweak`, and `open` with the global ones.
async fn two_listeners(tweak: impl FnOnce(&mut ListenerConfig)) -> (TestBroker, SocketAddr, SocketAddr) {
    let mut limited = ListenerConfig::tcp("127.0.0.1:0".parse().expect("addr"));
    tweak(&mut limited);
    let open = ListenerConfig::tcp("127.0.0.1:0".parse().expect("addr"));
    let b = TestBroker::start_with(|c| c.listeners = vec![limited, open]).await;
    let addrs = b.broker.local_addrs().to_vec();
    (b, addrs[0], addrs[1])
}

/// Opens a connection and sends CONNECT with `opts`. Accepted: the client
/// and its CONNACK. Refused: the CONNACK code, once the broker has closed
/// the connection ([MQTT-3.2.2-7]; 3.1.1: [MQTT-3.2.2-5]).
async fn try_connect(addr: SocketAddr, opts: &ConnectOpts) -> Result<(Raw, Pkt), u8> {
    let mut c = Raw::open(addr).await;
    c.v5 = opts.proto == Proto::V5;
    c.send(&connect_packet(opts)).await;
    let ack = c.expect("CONNACK").await;
    match ack.connack().1 {
        0 => Ok((c, ack)),
        code => {
            let rest = c.expect_closed("a refused CONNECT").await;
            assert!(rest.is_empty(), "nothing may follow a refusing CONNACK: {rest:?}");
            Err(code)
        }
    }
}

/// A listener's `max_connections`: a connection beyond it is refused with
/// CONNACK 0x97 Quota exceeded (MQTT 5; one of the Connect Reason Codes
/// [MQTT-3.2.2-8]) or 0x03 Server unavailable (3.1.1), then closed. The
/// other listener is not affected, and a place freed by a disconnect is
/// taken again.
#[tokio::test]
async fn listener_max_connections() {
    let (b, limited, open) = two_listeners(|l| l.max_connections = Some(2)).await;
    let v5 = |id: &str| ConnectOpts::new(Proto::V5, id);
    let (first, _) = try_connect(limited, &v5("mc-1")).await.expect("first place");
    let _second = try_connect(limited, &ConnectOpts::new(Proto::V311, "mc-2")).await.expect("second place");
    assert_eq!(try_connect(limited, &v5("mc-3")).await.err(), Some(0x97), "MQTT 5: Quota exceeded");
    let v311 = ConnectOpts::new(Proto::V311, "mc-4");
    assert_eq!(try_connect(limited, &v311).await.err(), Some(0x03), "3.1.1: Server unavailable");
    let _other = try_connect(open, &v5("mc-5")).await.expect("the other listener has no limit");
    first.disconnect().await;
    // The place is free once the first connection's task has ended.
    let _again = within("a freed place", async {
        loop {
            match try_connect(limited, &v5("mc-6")).await {
                Ok(c) => return c,
                Err(0x97) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                Err(code) => panic!("unexpected CONNACK {code:#04x}"),
            }
        }
    })
    .await;
    b.shutdown().await;
}

/// A flood of connections over `max_connections`: at most
/// `MAX_REFUSING` of them are served (to tell them CONNACK 0x97); the rest
/// are closed as soon as they are accepted, before any task or buffer is
/// made for them. Connected clients are not disturbed.
#[tokio::test]
async fn a_flood_over_max_connections_costs_no_tasks() {
    use edgemq::server::MAX_REFUSING;
    let (b, limited, open) = two_listeners(|l| l.max_connections = Some(1)).await;
    let mut by = Bystander::new(open, "flood-bystander").await;
    let _inside = try_connect(limited, &ConnectOpts::new(Proto::V311, "flood-in")).await.expect("the one place");
    // Silent connections over the limit: the first MAX_REFUSING wait for
    // their CONNECT, the others are closed at once.
    let mut silent = Vec::new();
    for _ in 0..MAX_REFUSING + 50 {
        silent.push(Raw::open(limited).await);
    }
    let mut closed = 0;
    for c in silent.iter_mut() {
        if matches!(c.recv_within(std::time::Duration::from_millis(20)).await, Recv::Closed) {
            closed += 1;
        }
    }
    assert!(closed >= 50, "only {closed} of the {} over the refusal places were closed at once", MAX_REFUSING + 50);
    assert!(closed <= 50 + 2, "{closed} closed: the refusal places were not used");
    by.check("a flood over max_connections").await;
    // Once the flood is gone a refused client is told why again.
    drop(silent);
    let refused = within("a refusal place", async {
        loop {
            let mut c = Raw::open(limited).await;
            c.send(&connect_packet(&ConnectOpts::new(Proto::V5, "flood-late"))).await;
            match c.recv_within(TIMEOUT).await {
                Recv::Packet(p) => return p.connack().1,
                // The flood's places are still being given back.
                _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    assert_eq!(refused, 0x97);
    b.shutdown().await;
}

/// A listener's `max_packet_size`, `max_keepalive` and `allow_anonymous`
/// replace the global keys for its clients: an anonymous client is refused
/// with 0x87 Not authorized; CONNACK gives the listener's Maximum Packet
/// Size (0x27) and, for a keep-alive of 0, its Server Keep Alive (0x13),
/// which the client must use [MQTT-3.2.2-21]; a larger packet, which the
/// client must not send [MQTT-3.2.2-15], gets DISCONNECT 0x95. The other
/// listener applies the global values to the same client and packet.
#[tokio::test]
async fn listener_limits_replace_the_global_ones() {
    // The user name is verified by the listener's password file (without
    // one, `allow_anonymous = false` admits no one).
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = dir.path().join("passwd");
    let hash = edgemq::auth::passwd::hash_password_7(b"p", 101).expect("hash");
    std::fs::write(&passwd, format!("u:{hash}\n")).expect("write passwd");
    let (b, limited, open) = two_listeners(|l| {
        l.max_packet_size = Some(256);
        l.max_keepalive = Some(30);
        l.allow_anonymous = Some(false);
        l.password_file = Some(passwd);
    })
    .await;
    let anonymous = ConnectOpts::new(Proto::V5, "anon").keep_alive(0);
    assert_eq!(try_connect(limited, &anonymous).await.err(), Some(0x87), "allow_anonymous = false");
    assert!(try_connect(open, &anonymous).await.is_ok(), "anonymous clients are allowed by default");
    let big = publish_packet(true, "lim/t", 0, false, false, 0, &[7u8; 512]);
    for (addr, max_packet, keep_alive, fits) in [(limited, 256, 30, false), (open, 2 << 20, 65535, true)] {
        let (mut c, ack) =
            try_connect(addr, &ConnectOpts::new(Proto::V5, "named").keep_alive(0).username("u").password(b"p"))
                .await
                .expect("a named client is accepted");
        let props = ack.connack_props();
        assert_eq!((int_prop(&props, 0x27), int_prop(&props, 0x13)), (Some(max_packet), Some(keep_alive)));
        c.subscribe(1, &[("lim/t", 0)]).await;
        c.send(&big).await;
        if fits {
            assert_eq!(c.expect_publish().await.payload.len(), 512);
        } else {
            let seen = c.expect_closed("packet above the listener's max_packet_size").await;
            assert_v5_disconnect(&seen, 0x95, "packet above the listener's max_packet_size");
        }
    }
    b.shutdown().await;
}

/// With the defaults, a payload of exactly 1 MiB (a firmware image chunk,
/// a camera frame) with a long topic and MQTT 5 properties is accepted and
/// delivered, for 3.1.1 and 5: the packet limit counts the whole packet.
#[tokio::test]
async fn default_limit_takes_a_one_mib_payload_with_a_long_topic() {
    let b = TestBroker::start().await;
    let topic = format!("fw/{}", "t".repeat(60_000));
    let payload = vec![0xA5u8; 1 << 20];
    for v5 in [false, true] {
        let proto = if v5 { Proto::V5 } else { Proto::V311 };
        let (mut sub, _) = Raw::connect(b.addr, &ConnectOpts::new(proto, &format!("mib-sub-{v5}"))).await;
        assert_eq!(sub.subscribe(1, &[(&topic, 1)]).await, vec![1]);
        let (mut publ, _) = Raw::connect(b.addr, &ConnectOpts::new(proto, &format!("mib-pub-{v5}"))).await;
        let props = [user_prop("k", &"v".repeat(1000)), vec![0x03], mqtt_str("application/octet-stream")].concat();
        let packet = if v5 {
            publish_packet_props(true, &topic, 1, false, false, 1, &props, &payload)
        } else {
            publish_packet(false, &topic, 1, false, false, 1, &payload)
        };
        assert!(packet.len() > (1 << 20) + 60_000);
        publ.send(&packet).await;
        let ack = publ.expect_kind(PUBACK, "PUBACK of a 1 MiB payload").await;
        assert_eq!(ack.pid(), 1);
        let m = sub.receive_acked().await;
        assert_eq!((m.topic.len(), m.payload.len()), (topic.len(), 1 << 20), "v5 = {v5}");
    }
    b.shutdown().await;
}

/// `persistence = false` writes nothing, so it needs no writable data
/// directory (`/proc` cannot be written, even by root).
#[tokio::test]
async fn persistence_off_needs_no_data_directory() {
    let b = TestBroker::start_with(|c| {
        c.persistence = false;
        c.data_dir = "/proc/edgemq-nowhere".into();
    })
    .await;
    let mut c = Raw::v311(b.addr, "no-data-dir").await;
    assert_eq!(c.subscribe(1, &[("nd/t", 1)]).await, vec![1]);
    c.publish("nd/t", 1, false, 2, b"in memory").await;
    assert_eq!(c.receive_acked().await.payload, b"in memory");
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// Caps: sessions, retained messages, subscriptions per client
// ---------------------------------------------------------------------------

/// `max_sessions`: a CONNECT that would open a session beyond it is
/// refused (CONNACK 0x97 Quota exceeded [MQTT-3.2.2-8]; 3.1.1 0x03 Server
/// unavailable), then closed; a client whose session is kept (offline)
/// still resumes it, and a session that ends makes room.
#[tokio::test]
async fn max_sessions_refuses_new_sessions_only() {
    let b = TestBroker::start_with(|c| c.max_sessions = 2).await;
    let persistent = |proto, id: &str| ConnectOpts::new(proto, id).clean(false);
    let (kept, _) = try_connect(b.addr, &persistent(Proto::V311, "ms-kept")).await.expect("first session");
    kept.disconnect().await;
    let (clean, _) = try_connect(b.addr, &ConnectOpts::new(Proto::V311, "ms-clean")).await.expect("second");
    assert_eq!(try_connect(b.addr, &persistent(Proto::V5, "ms-3")).await.err(), Some(0x97), "MQTT 5: Quota exceeded");
    let v311 = persistent(Proto::V311, "ms-4");
    assert_eq!(try_connect(b.addr, &v311).await.err(), Some(0x03), "3.1.1: Server unavailable");
    let (_resumed, ack) = try_connect(b.addr, &persistent(Proto::V311, "ms-kept")).await.expect("resumes at the cap");
    assert!(ack.connack().0, "session present");
    // The clean session ends with its connection: room for one more.
    clean.disconnect().await;
    within("a freed session", async {
        while try_connect(b.addr, &v311).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert!(stats.sessions_refused >= 2, "refusals counted: {stats:?}");
}

/// `max_retained_messages`: a retained PUBLISH to a new topic beyond it is
/// delivered to the subscribers but not retained; the retained messages
/// kept can still be replaced and deleted [MQTT-3.3.1-5], [MQTT-3.3.1-10].
#[tokio::test]
async fn retained_beyond_the_cap_is_delivered_not_kept() {
    let b = TestBroker::start_with(|c| c.max_retained_messages = 2).await;
    let mut watcher = Raw::v311(b.addr, "rc-watch").await;
    watcher.subscribe(1, &[("rc/#", 0)]).await;
    let mut publisher = Raw::v311(b.addr, "rc-pub").await;
    for (i, t) in ["rc/a", "rc/b", "rc/c"].into_iter().enumerate() {
        publisher.publish(t, 1, true, i as u16 + 1, b"v").await;
        assert_eq!(watcher.expect_publish().await.topic, t, "delivered live");
    }
    let mut late = Raw::v311(b.addr, "rc-late").await;
    late.subscribe(1, &[("rc/#", 0)]).await;
    let mut kept = vec![late.expect_publish().await.topic, late.expect_publish().await.topic];
    kept.sort();
    assert_eq!(kept, ["rc/a", "rc/b"]);
    late.expect_silence("rc/c was not retained").await;
    publisher.publish("rc/a", 1, true, 4, b"").await;
    publisher.publish("rc/c", 1, true, 5, b"w").await;
    let mut later = Raw::v311(b.addr, "rc-later").await;
    later.subscribe(1, &[("rc/#", 0)]).await;
    let mut kept = vec![later.expect_publish().await.topic, later.expect_publish().await.topic];
    kept.sort();
    assert_eq!(kept, ["rc/b", "rc/c"], "a deletion made room");
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert_eq!(stats.retained_refused, 1);
}

/// `max_subscriptions_per_client`: a new filter beyond it gets the SUBACK
/// failure code (MQTT 5 0x97 Quota exceeded [MQTT-3.9.3-1]; 3.1.1 0x80
/// [MQTT-3.9.3-2]); the others of the same SUBSCRIBE are granted.
#[tokio::test]
async fn subscriptions_beyond_the_cap_get_a_failure_code() {
    let b = TestBroker::start_with(|c| c.max_subscriptions_per_client = 2).await;
    let mut v5 = Raw::v5(b.addr, "sc-5").await;
    assert_eq!(v5.subscribe(1, &[("a", 1), ("b", 0), ("c", 1), ("a", 0)]).await, vec![1, 0, 0x97, 0]);
    let mut v311 = Raw::v311(b.addr, "sc-3").await;
    assert_eq!(v311.subscribe(1, &[("a", 1), ("b", 0), ("c", 1)]).await, vec![1, 0, 0x80]);
    b.shutdown().await;
}
