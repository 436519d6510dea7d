//! Session takeover races a device really produces: DISCONNECT and an
//! immediate reconnect with the same client identifier (short sessions),
//! and a clean session taken over by a persistent CONNECT. The old
//! connection finishes what it had sent before the new one is answered.

mod common;

use common::*;

/// DISCONNECT, then at once a new connection with the same client id,
/// many times: the will is never published [MQTT-3.1.2-10] (once it was,
/// in about 1 of 6 tries: the old connection was taken over before its
/// DISCONNECT was read), for 3.1.1 and 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_then_immediate_reconnect_never_publishes_the_will() {
    let b = TestBroker::start().await;
    let mut w = Raw::v311(b.addr, "short-watch").await;
    assert_eq!(w.subscribe(1, &[("will/short/#", 1)]).await, vec![1]);
    for proto in [Proto::V311, Proto::V5] {
        let id = format!("short-{proto:?}");
        let mut opts = ConnectOpts::new(proto, &id).clean(false).will("will/short/x", b"offline", 1, false);
        if proto == Proto::V5 {
            opts = opts.props(session_expiry(300));
        }
        let (mut c, _) = Raw::connect(b.addr, &opts).await;
        for round in 0..100 {
            c.send(&disconnect_packet()).await;
            let (next, present) = Raw::connect(b.addr, &opts).await;
            assert!(present, "{proto:?} round {round}: the persistent session is resumed");
            c = next;
        }
        c.disconnect().await;
    }
    if let Recv::Packet(p) = w.recv_within(QUIET).await {
        panic!("a will was published after a normal DISCONNECT [MQTT-3.1.2-10]: {:?}", p.publish(false));
    }
    b.shutdown().await;
}

/// MQTT 5: DISCONNECT of a session with Session Expiry 0 and an immediate
/// reconnect with Clean Start 0: the session ended with the connection
/// [MQTT-3.1.2-6 area, 5.0 3.1.2.11.2], so session present is 0 and its
/// subscriptions are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_expiry_zero_ends_before_an_immediate_reconnect() {
    let b = TestBroker::start().await;
    for round in 0..50 {
        let id = format!("exp0-{round}");
        let (mut c, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, &id)).await;
        assert_eq!(c.subscribe(1, &[("exp0/t", 1)]).await, vec![1]);
        c.send(&disconnect_packet()).await;
        let (mut again, present) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, &id).clean(false)).await;
        assert!(!present, "round {round}: a Session Expiry 0 session survived its DISCONNECT");
        let mut p = Raw::v311(b.addr, &format!("exp0-pub-{round}")).await;
        p.publish("exp0/t", 0, false, 0, b"x").await;
        assert!(
            matches!(again.recv_within(QUIET / 3).await, Recv::TimedOut),
            "round {round}: the ended session's subscription still routes"
        );
        again.disconnect().await;
        p.disconnect().await;
    }
    b.shutdown().await;
}

/// A 3.1.1 Clean Session 1 connection taken over (no DISCONNECT) by a
/// Clean Session 0 CONNECT: the old session lasted as long as its
/// connection [MQTT-3.1.2-6], so CONNACK says session present 0
/// [MQTT-3.2.2-2] and its subscriptions are gone. The same for MQTT 5
/// with Session Expiry 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_session_taken_over_by_a_persistent_connect_is_not_resumed() {
    let b = TestBroker::start().await;
    for proto in [Proto::V311, Proto::V5] {
        let id = format!("clean-then-persistent-{proto:?}");
        let (mut old, _) = Raw::connect(b.addr, &ConnectOpts::new(proto, &id)).await;
        assert_eq!(old.subscribe(1, &[("ctp/t", 1)]).await, vec![1]);
        let (mut new, present) = Raw::connect(b.addr, &ConnectOpts::new(proto, &id).clean(false)).await;
        assert!(!present, "{proto:?}: session present after taking over a clean session [MQTT-3.1.2-6]");
        old.expect_closed("taken over").await;
        let mut p = Raw::v311(b.addr, &format!("ctp-pub-{proto:?}")).await;
        p.publish("ctp/t", 1, false, 1, b"x").await;
        assert!(matches!(new.recv_within(QUIET).await, Recv::TimedOut), "{proto:?}: the old subscription was resumed");
        new.disconnect().await;
    }
    b.shutdown().await;
}
