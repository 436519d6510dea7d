use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::config::QueueFullPolicy;
use crate::protocol::QoS;

fn limits() -> QueueLimits {
    QueueLimits {
        max_messages: 100,
        max_bytes: 1 << 20,
        policy: QueueFullPolicy::DropNew,
        queue_qos0: false,
        ..QueueLimits::default()
    }
}

fn conn(id: u64) -> ConnHandle {
    ConnHandle::new(id)
}

/// A CONNECT of `client` that does not check the session's owner.
fn req(client: &str, clean_start: bool, expiry: Option<Duration>, conn: ConnHandle) -> ConnectRequest {
    ConnectRequest { user: None, check_owner: false, client_id: client.into(), clean_start, expiry, conn }
}

fn connect(r: &mut Router, client: &str, clean: bool, id: u64) -> ConnectReply {
    // As the session machine does for 3.1.1: a clean session ends with its connection.
    let expiry = clean.then_some(Duration::ZERO);
    r.connect(req(client, clean, expiry, conn(id)), Instant::now())
}

pub(super) fn msg(topic: &str, qos: QoS, retain: bool, payload: &'static [u8]) -> Message {
    Message {
        topic: topic.into(),
        payload: Bytes::from_static(payload),
        qos,
        retain,
        props: None,
        origin: 0,
        received: Instant::now(),
    }
}

pub(super) fn sub(r: &mut Router, key: SessionKey, filter: &str, qos: QoS) {
    let options = SubOptions { qos, ..SubOptions::default() };
    let sub = Sub { options, id: None };
    // The session machine records the subscription in the session state first.
    r.sessions[&key].shared.lock().subscriptions.insert(filter.into(), (options, None));
    r.subscribe(key, vec![SubscribeEntry { filter: filter.into(), sub, existed: false }], Instant::now());
}

pub(super) fn drain(s: &SharedSession) -> Vec<(String, QoS, bool)> {
    let mut st = s.lock();
    let mut out = Vec::new();
    while let Some((d, pkid)) = st.next_to_send(1000, Instant::now()) {
        if pkid != 0 {
            st.complete(pkid);
        }
        out.push((String::from_utf8_lossy(&d.msg.payload).into_owned(), d.qos, d.retain));
    }
    out
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_max_qos() {
    // [MQTT-3.3.5-1]
    let mut r = Router::new(limits());
    let c = connect(&mut r, "c", true, 1);
    sub(&mut r, c.key, "a/#", QoS::AtMostOnce);
    sub(&mut r, c.key, "a/+", QoS::ExactlyOnce);
    sub(&mut r, c.key, "a/b", QoS::AtLeastOnce);
    r.publish(msg("a/b", QoS::ExactlyOnce, false, b"x"));
    assert_eq!(drain(&c.session), vec![("x".into(), QoS::ExactlyOnce, false)]);
}

#[test]
fn delivery_qos_is_the_lower_of_publish_and_subscription() {
    let mut r = Router::new(limits());
    let c = connect(&mut r, "c", true, 1);
    sub(&mut r, c.key, "t", QoS::AtLeastOnce);
    r.publish(msg("t", QoS::ExactlyOnce, false, b"2"));
    r.publish(msg("t", QoS::AtMostOnce, false, b"0"));
    assert_eq!(drain(&c.session), vec![("2".into(), QoS::AtLeastOnce, false), ("0".into(), QoS::AtMostOnce, false)]);
}

#[test]
fn retained_set_on_subscribe_with_flag_and_cleared_on_forward() {
    let mut r = Router::new(limits());
    r.publish(msg("r/1", QoS::AtLeastOnce, true, b"old"));
    r.publish(msg("r/1", QoS::AtLeastOnce, true, b"new"));
    r.publish(msg("r/2", QoS::AtLeastOnce, true, b"gone"));
    r.publish(msg("r/2", QoS::AtLeastOnce, true, b""));
    let c = connect(&mut r, "c", true, 1);
    sub(&mut r, c.key, "r/#", QoS::AtLeastOnce);
    // [MQTT-3.3.1-8] retained delivery on subscribe has RETAIN set.
    assert_eq!(drain(&c.session), vec![("new".into(), QoS::AtLeastOnce, true)]);
    // [MQTT-3.3.1-9] a live forward of a retained publish has RETAIN cleared.
    r.publish(msg("r/1", QoS::AtLeastOnce, true, b"live"));
    assert_eq!(drain(&c.session), vec![("live".into(), QoS::AtLeastOnce, false)]);
    assert_eq!(r.retained_count(), 1);
}

#[test]
fn persistent_session_queues_while_offline_and_resumes() {
    let mut r = Router::new(limits());
    let c = connect(&mut r, "dev1", false, 1);
    sub(&mut r, c.key, "site/#", QoS::AtLeastOnce);
    r.handle(
        RouterMsg::Disconnected { key: c.key, conn_id: 1, will: None, will_delay: Duration::ZERO, expiry: None },
        Instant::now(),
    );
    for p in [&b"1"[..], b"2", b"3"] {
        r.publish(Message { payload: Bytes::from_static(p), ..msg("site/a", QoS::AtLeastOnce, false, b"") });
    }
    r.publish(msg("site/a", QoS::AtMostOnce, false, b"q0"));
    let again = connect(&mut r, "dev1", false, 2);
    assert!(again.session_present);
    assert_eq!(again.key, c.key);
    let got: Vec<String> = drain(&again.session).into_iter().map(|x| x.0).collect();
    assert_eq!(got, vec!["1", "2", "3"], "QoS 0 is not queued offline by default");
}

#[test]
fn clean_start_discards_the_old_session() {
    let mut r = Router::new(limits());
    let first = conn(1);
    let c = r.connect(req("dev1", false, None, first.clone()), Instant::now());
    sub(&mut r, c.key, "t", QoS::AtLeastOnce);
    let again = connect(&mut r, "dev1", true, 2);
    assert!(!again.session_present);
    assert_eq!(first.close_reason(), Some(DisconnectReason::SessionTakenOver));
    r.publish(msg("t", QoS::AtLeastOnce, false, b"x"));
    assert!(drain(&again.session).is_empty());
    assert_eq!(r.subscription_count(), 0);
}

#[test]
fn takeover_keeps_session_for_the_new_connection() {
    let mut r = Router::new(limits());
    let first = conn(1);
    let c = r.connect(req("x", false, None, first.clone()), Instant::now());
    let again = connect(&mut r, "x", false, 2);
    assert_eq!(
        first.close_reason(),
        Some(DisconnectReason::SessionTakenOver),
        "[MQTT-3.1.4-2] the existing connection is closed"
    );
    // The old connection's disconnect arrives late and must not take the session offline.
    r.handle(
        RouterMsg::Disconnected { key: c.key, conn_id: 1, will: None, will_delay: Duration::ZERO, expiry: None },
        Instant::now(),
    );
    assert!(again.session.lock().online());
}

#[test]
fn will_is_published_on_disconnect_message() {
    let mut r = Router::new(limits());
    let w = connect(&mut r, "watcher", true, 1);
    sub(&mut r, w.key, "wills/#", QoS::AtLeastOnce);
    let d = connect(&mut r, "dev", true, 2);
    let will = msg("wills/dev", QoS::AtLeastOnce, false, b"gone");
    r.handle(
        RouterMsg::Disconnected { key: d.key, conn_id: 2, will: Some(will), will_delay: Duration::ZERO, expiry: None },
        Instant::now(),
    );
    assert_eq!(drain(&w.session), vec![("gone".into(), QoS::AtLeastOnce, false)]);
    assert_eq!(r.session_count(), 1, "the clean session of `dev` ended with its connection");
}

#[test]
fn sessions_expire() {
    let mut r = Router::new(limits());
    let c = r.connect(req("e", false, Some(Duration::from_secs(10)), conn(1)), Instant::now());
    let t0 = Instant::now();
    r.handle(
        RouterMsg::Disconnected { key: c.key, conn_id: 1, will: None, will_delay: Duration::ZERO, expiry: None },
        t0,
    );
    r.expire(t0 + Duration::from_secs(5));
    assert_eq!(r.session_count(), 1);
    r.expire(t0 + Duration::from_secs(11));
    assert_eq!(r.session_count(), 0);
}

pub(super) fn sub_shared(r: &mut Router, key: SessionKey, filter: &str) {
    let options = SubOptions { qos: QoS::AtLeastOnce, ..SubOptions::default() };
    r.sessions[&key].shared.lock().subscriptions.insert(filter.into(), (options, None));
    r.subscribe(
        key,
        vec![SubscribeEntry { filter: filter.into(), sub: Sub { options, id: None }, existed: false }],
        Instant::now(),
    );
}

#[test]
fn shared_subscription_gives_each_message_to_one_member_round_robin() {
    let mut r = Router::new(limits());
    let a = connect(&mut r, "a", true, 1);
    let b = connect(&mut r, "b", true, 2);
    sub_shared(&mut r, a.key, "$share/g/jobs/+");
    sub_shared(&mut r, b.key, "$share/g/jobs/+");
    for p in [&b"1"[..], b"2", b"3", b"4"] {
        r.publish(Message { payload: Bytes::from_static(p), ..msg("jobs/x", QoS::AtLeastOnce, false, b"") });
    }
    let got_a: Vec<String> = drain(&a.session).into_iter().map(|x| x.0).collect();
    let got_b: Vec<String> = drain(&b.session).into_iter().map(|x| x.0).collect();
    assert_eq!(got_a.len() + got_b.len(), 4, "each message exactly once across the group");
    assert_eq!((got_a.len(), got_b.len()), (2, 2), "round robin");
}

#[test]
fn shared_subscription_gets_no_retained_messages() {
    let mut r = Router::new(limits());
    r.publish(msg("jobs/x", QoS::AtLeastOnce, true, b"kept"));
    let a = connect(&mut r, "a", true, 1);
    sub_shared(&mut r, a.key, "$share/g/jobs/#");
    assert!(drain(&a.session).is_empty());
}

#[test]
fn shared_inflight_goes_to_another_member_when_one_disconnects() {
    let mut r = Router::new(limits());
    let a = connect(&mut r, "a", true, 1);
    let b = connect(&mut r, "b", true, 2);
    sub_shared(&mut r, a.key, "$share/g/t");
    sub_shared(&mut r, b.key, "$share/g/t");
    r.publish(msg("t", QoS::AtLeastOnce, false, b"m1"));
    // One member got it and has it in flight, unacknowledged.
    let (holder, holder_id, other) = if a.session.lock().queued() == 1 { (&a, 1, &b) } else { (&b, 2, &a) };
    let (_, pkid) = holder.session.lock().next_to_send(10, Instant::now()).unwrap();
    assert_ne!(pkid, 0);
    r.handle(
        RouterMsg::Disconnected {
            key: holder.key,
            conn_id: holder_id,
            will: None,
            will_delay: Duration::ZERO,
            expiry: None,
        },
        Instant::now(),
    );
    assert_eq!(drain(&other.session), vec![("m1".into(), QoS::AtLeastOnce, false)]);
}

#[test]
fn will_delay_waits_and_is_cancelled_by_resume() {
    let mut r = Router::new(limits());
    let w = connect(&mut r, "watcher", true, 1);
    sub(&mut r, w.key, "wills/#", QoS::AtLeastOnce);
    let t0 = Instant::now();
    let d = r.connect(req("dev", false, None, conn(2)), t0);
    let will = msg("wills/dev", QoS::AtLeastOnce, false, b"gone");
    let delay = Duration::from_secs(5);
    r.handle(
        RouterMsg::Disconnected { key: d.key, conn_id: 2, will: Some(will.clone()), will_delay: delay, expiry: None },
        t0,
    );
    r.expire(t0 + Duration::from_secs(4));
    assert!(drain(&w.session).is_empty(), "not before the delay");
    r.expire(t0 + Duration::from_secs(5));
    assert_eq!(drain(&w.session).len(), 1, "sent when the delay has passed");
    // [MQTT-3.1.3-9] reconnecting within the delay cancels it.
    r.handle(
        RouterMsg::Disconnected { key: d.key, conn_id: 2, will: None, will_delay: Duration::ZERO, expiry: None },
        t0,
    );
    let d2 = r.connect(req("dev", false, None, conn(3)), t0);
    r.handle(
        RouterMsg::Disconnected { key: d2.key, conn_id: 3, will: Some(will), will_delay: delay, expiry: None },
        t0,
    );
    r.connect(req("dev", false, None, conn(4)), t0);
    r.expire(t0 + Duration::from_secs(10));
    assert!(drain(&w.session).is_empty());
}

#[test]
fn will_goes_when_the_session_expires_before_the_delay() {
    let mut r = Router::new(limits());
    let w = connect(&mut r, "watcher", true, 1);
    sub(&mut r, w.key, "wills/#", QoS::AtLeastOnce);
    let t0 = Instant::now();
    let expiry = Some(Duration::from_secs(2));
    let d = r.connect(req("dev", false, expiry, conn(2)), t0);
    let will = msg("wills/dev", QoS::AtLeastOnce, false, b"gone");
    let delay = Duration::from_secs(60);
    r.handle(RouterMsg::Disconnected { key: d.key, conn_id: 2, will: Some(will), will_delay: delay, expiry: None }, t0);
    r.expire(t0 + Duration::from_secs(2));
    assert_eq!(drain(&w.session).len(), 1);
    assert_eq!(r.session_count(), 1, "only the watcher's session is left");
}

#[test]
fn retained_message_expiry_applies_on_subscribe() {
    let mut r = Router::new(limits());
    let mut m = msg("r", QoS::AtLeastOnce, true, b"short-lived");
    m.props = Some(Box::new(crate::protocol::PublishProps { message_expiry_interval: Some(1), ..Default::default() }));
    m.received = Instant::now() - Duration::from_secs(2);
    r.publish(m);
    let c = connect(&mut r, "c", true, 1);
    sub(&mut r, c.key, "r", QoS::AtLeastOnce);
    assert!(drain(&c.session).is_empty());
}

// ---- persistence: found by review ----
/// A router recording to a store in `dir`, and its journal.
pub(super) fn stored_router(dir: &std::path::Path) -> (Router, Arc<crate::store::Journal>) {
    let (j, m) = open_store(dir);
    let mut r = Router::new(limits());
    r.enable_persistence(j.clone(), m, (Instant::now(), std::time::SystemTime::now()));
    (r, j)
}

pub(super) fn open_store(dir: &std::path::Path) -> (Arc<crate::store::Journal>, crate::store::Model) {
    let cfg = crate::store::StoreConfig {
        dir: dir.to_owned(),
        spill_dir: dir.join("spill"),
        sync: crate::store::SyncMode::Batch,
        segment_bytes: 1 << 20,
        compact_bytes: 1 << 30,
        fs: Arc::new(crate::store::fs::RealFs),
    };
    let (j, m, _) = crate::store::open(&cfg).unwrap();
    (Arc::new(j), m)
}

pub(super) fn persistent(r: &mut Router, client: &str, id: u64) -> ConnectReply {
    r.connect(req(client, false, None, conn(id)), Instant::now())
}

#[test]
fn stored_body_is_not_confused_with_a_freed_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut r, j) = stored_router(dir.path());
        let s = persistent(&mut r, "s", 1);
        sub(&mut r, s.key, "t", QoS::AtLeastOnce);
        let payloads: Vec<&'static [u8]> = vec![b"A", b"B", b"C", b"D", b"E", b"F", b"G", b"H"];
        for (i, p) in payloads.iter().enumerate() {
            r.publish(msg("t", QoS::AtLeastOnce, false, p));
            if i + 1 < payloads.len() {
                let mut st = s.session.lock();
                let (d, pkid) = st.next_to_send(10, Instant::now()).unwrap();
                drop(d);
                assert!(st.puback(pkid));
            }
        }
        // A message's address is reused once it is freed; its stored body must not be.
        j.close();
    }
    let (_j, m) = open_store(dir.path());
    let sess = m.sessions.values().next().unwrap();
    assert_eq!(sess.queue.len(), 1);
    let (_, e) = sess.queue.iter().next().unwrap();
    let body = m.msgs.get(e.mid).unwrap();
    assert_eq!(&body.payload[..], b"H", "queued entry restored with the wrong message body (mid {})", e.mid);
}

#[test]
fn shared_qos2_already_sent_stays_in_flight_with_its_packet_id() {
    let mut r = Router::new(limits());
    let a = persistent(&mut r, "a", 1);
    let options = SubOptions { qos: QoS::ExactlyOnce, ..SubOptions::default() };
    r.subscribe(
        a.key,
        vec![SubscribeEntry { filter: "$share/g/t".into(), sub: Sub { options, id: None }, existed: false }],
        Instant::now(),
    );
    r.publish(msg("t", QoS::ExactlyOnce, false, b"m1"));
    let (_, pkid) = a.session.lock().next_to_send(10, Instant::now()).unwrap();
    assert_ne!(pkid, 0);
    r.handle(
        RouterMsg::Disconnected { key: a.key, conn_id: 1, will: None, will_delay: Duration::ZERO, expiry: None },
        Instant::now(),
    );
    let st = a.session.lock();
    let inflight: Vec<u16> = st.inflight().map(|f| f.pkid).collect();
    assert_eq!(
        inflight,
        vec![pkid],
        "QoS 2 PUBLISH already sent must stay in flight with its packet id (queued again: {})",
        st.queued()
    );
}

/// Found by the deterministic simulation (seed 3, ROBUSTNESS.md): the
/// publisher's `In2` record (inbound QoS 2 packet id) was appended when
/// the machine read the PUBLISH, before the router had routed it; a power
/// cut after the `In2` was durable and before the routed records were
/// kept the id and lost the message, and the client's retransmission was
/// then dropped as a duplicate and acknowledged: an acknowledged QoS 2
/// message lost. The `In2` now follows the routed records (and a snapshot
/// taken in between does not write it) [MQTT-4.3.3-2].
#[test]
fn inbound_qos2_id_is_recorded_only_after_its_message_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let p_key = {
        let (mut r, j) = stored_router(dir.path());
        let p = persistent(&mut r, "p", 1);
        let s = persistent(&mut r, "s", 2);
        sub(&mut r, s.key, "t", QoS::ExactlyOnce);
        let before = j.appended();
        assert!(p.session.lock().inbound_qos2_received(7));
        assert_eq!(j.appended(), before, "no In2 before the message is routed");
        // A snapshot while the PUBLISH waits for the router.
        r.snapshot(Instant::now());
        j.close();
        p.key
    };
    let (_j, m) = open_store(dir.path());
    assert!(m.sessions[&p_key].in2.is_empty(), "the id must not outlive a cut before the routing");
    let dir = tempfile::tempdir().unwrap();
    let (p_key, s_key) = {
        let (mut r, j) = stored_router(dir.path());
        let p = persistent(&mut r, "p", 1);
        let s = persistent(&mut r, "s", 2);
        sub(&mut r, s.key, "t", QoS::ExactlyOnce);
        assert!(p.session.lock().inbound_qos2_received(7));
        let before = j.appended();
        r.handle(
            RouterMsg::Publish(Message { origin: p.key, ..msg("t", QoS::ExactlyOnce, false, b"m") }),
            Instant::now(),
        );
        // Msg, Routing (`resume.rs`), Enq, then In2.
        assert_eq!(j.appended(), before + 4);
        j.close();
        (p.key, s.key)
    };
    let (_j, m) = open_store(dir.path());
    assert!(m.sessions[&p_key].in2.contains(&7));
    assert_eq!(m.sessions[&s_key].queue.len(), 1);
}

// ---- queue full: DISCONNECT 0x97 for MQTT 5 ----

/// A router whose sessions hold 2 messages, and an online persistent
/// session `c` subscribed to `t` at QoS 1 whose connection is `handle`.
fn full_queue_setup(policy: QueueFullPolicy, v5: bool, disconnect: bool) -> (Router, ConnectReply, ConnHandle) {
    let mut r = Router::new(QueueLimits { max_messages: 2, policy, ..limits() });
    r.set_disconnect_on_queue_full(disconnect);
    let handle = conn(1);
    handle.set_v5(v5);
    let c = r.connect(req("c", false, None, handle.clone()), Instant::now());
    sub(&mut r, c.key, "t", QoS::AtLeastOnce);
    for p in [&b"1"[..], b"2"] {
        r.publish(Message { payload: Bytes::from_static(p), ..msg("t", QoS::AtLeastOnce, false, b"") });
    }
    assert_eq!(handle.close_reason(), None, "a queue at its limit is not over it");
    (r, c, handle)
}

/// The connection's end takes the session offline; it keeps its queue.
fn resume_after_disconnect(r: &mut Router, c: &ConnectReply) -> ConnectReply {
    r.handle(
        RouterMsg::Disconnected { key: c.key, conn_id: 1, will: None, will_delay: Duration::ZERO, expiry: None },
        Instant::now(),
    );
    let again = connect(r, "c", false, 2);
    assert!(again.session_present);
    again
}

#[test]
fn overflowing_queue_disconnects_an_mqtt5_client_with_0x97_and_keeps_the_session() {
    let (mut r, c, handle) = full_queue_setup(QueueFullPolicy::DropNew, true, true);
    r.publish(msg("t", QoS::AtLeastOnce, false, b"3"));
    assert_eq!(handle.close_reason(), Some(DisconnectReason::QuotaExceeded));
    assert_eq!(r.stats().dropped_queue_full, 1);
    // Resumed while the episode lasts: the client may drain its queue.
    let again = resume_after_disconnect(&mut r, &c);
    r.publish(msg("t", QoS::AtLeastOnce, false, b"4"));
    assert_eq!(r.sessions[&c.key].conn.as_ref().and_then(ConnHandle::close_reason), None);
    let got: Vec<String> = drain(&again.session).into_iter().map(|x| x.0).collect();
    assert_eq!(got, vec!["1", "2"]);
    assert_eq!(r.stats().dropped_queue_full, 2);
}

#[test]
fn overflowing_queue_keeps_mqtt311_drop_oldest_and_opted_out_clients() {
    use QueueFullPolicy::{DropNew, DropOldest};
    for (policy, v5, disconnect) in [(DropNew, false, true), (DropNew, true, false), (DropOldest, true, true)] {
        let (mut r, c, handle) = full_queue_setup(policy, v5, disconnect);
        r.publish(msg("t", QoS::AtLeastOnce, false, b"3"));
        assert_eq!(handle.close_reason(), None, "{policy:?}, v5 {v5}, disconnect_on_queue_full {disconnect}");
        assert_eq!(r.stats().dropped_queue_full, 1, "drop_oldest drops are counted too");
        let want: Vec<&str> = if policy == QueueFullPolicy::DropNew { vec!["1", "2"] } else { vec!["2", "3"] };
        let got: Vec<String> = drain(&c.session).into_iter().map(|x| x.0).collect();
        assert_eq!(got, want);
    }
}

/// A clean session (3.1.1 Clean Session 1, or Session Expiry 0) lasts only
/// as long as its connection [MQTT-3.1.2-6]: a persistent CONNECT that
/// takes it over (without waiting for the old connection, as a takeover
/// past its grace does) gets a new session, and what the old one held is
/// not recorded for it.
#[test]
fn a_clean_session_taken_over_by_a_persistent_connect_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut r, j) = stored_router(dir.path());
        let first = conn(1);
        let c = r.connect(req("late", true, Some(Duration::ZERO), first.clone()), Instant::now());
        sub(&mut r, c.key, "t", QoS::AtLeastOnce);
        for p in [b"1", b"2", b"3"] {
            r.publish(msg("t", QoS::AtLeastOnce, false, p));
        }
        c.session.lock().next_to_send(10, Instant::now()).unwrap();
        let again = persistent(&mut r, "late", 2);
        assert!(!again.session_present, "[MQTT-3.1.2-6]");
        assert_ne!(again.key, c.key);
        assert_eq!(first.close_reason(), Some(DisconnectReason::SessionTakenOver), "[MQTT-3.1.4-2]");
        assert!(again.session.lock().subscriptions.is_empty());
        assert_eq!(again.session.lock().queued(), 0);
        j.close();
    }
    let (_j, m) = open_store(dir.path());
    let sess = m.sessions.values().next().expect("the new session was stored");
    assert_eq!(sess.client_id, "late");
    assert!(sess.queue.is_empty() && sess.inflight.is_empty(), "nothing of the clean session");
}

#[test]
fn a_batch_wakes_each_connected_session_once() {
    let mut r = Router::new(limits());
    let a = connect(&mut r, "a", true, 1);
    let b = connect(&mut r, "b", true, 2);
    sub(&mut r, a.key, "t/#", QoS::AtMostOnce);
    sub(&mut r, b.key, "t/#", QoS::AtLeastOnce);
    let _ = r.take_touched();
    for _ in 0..10 {
        r.publish(msg("t/x", QoS::AtLeastOnce, false, b"m"));
    }
    let mut woken: Vec<*const SharedSession> = r.take_touched().iter().map(Arc::as_ptr).collect();
    woken.sort();
    let mut expected = vec![Arc::as_ptr(&a.session), Arc::as_ptr(&b.session)];
    expected.sort();
    assert_eq!(woken, expected, "each session listed once");
    // The next batch lists them again.
    r.publish(msg("t/y", QoS::AtMostOnce, false, b"n"));
    assert_eq!(r.take_touched().len(), 2);
    assert!(r.take_touched().is_empty());
    assert_eq!(drain(&a.session).len(), 11);
    assert_eq!(drain(&b.session).len(), 11);
}

/// Sends `RouterMsg::Connect` as a connection does; the reply, if any yet.
fn connect_msg(
    r: &mut Router,
    client: &str,
    expiry: Option<Duration>,
    id: u64,
) -> oneshot::Receiver<Result<ConnectReply, SessionRefused>> {
    let (tx, rx) = oneshot::channel();
    let req = req(client, false, expiry, conn(id));
    r.handle(RouterMsg::Connect(req, tx), Instant::now());
    rx
}

pub(super) fn gone(r: &mut Router, key: SessionKey, conn_id: u64, will: Option<Message>) {
    r.handle(RouterMsg::Disconnected { key, conn_id, will, will_delay: Duration::ZERO, expiry: None }, Instant::now());
}

/// A takeover waits for the old connection to report: a DISCONNECT it had
/// read first discards its will [MQTT-3.1.2-10], and a session that ended
/// with it is not resumed [MQTT-3.1.2-6] (session present 0).
#[test]
fn takeover_waits_for_the_old_connection() {
    let mut r = Router::new(limits());
    let watch = connect(&mut r, "watch", true, 1);
    sub(&mut r, watch.key, "will/#", QoS::AtLeastOnce);
    // A clean session (expiry 0) taken over by a persistent CONNECT.
    let first = connect_msg(&mut r, "dev", Some(Duration::ZERO), 2)
        .try_recv()
        .expect("no old connection: at once")
        .expect("not refused");
    sub(&mut r, first.key, "dev/cmd", QoS::AtLeastOnce);
    let mut second = connect_msg(&mut r, "dev", None, 3);
    assert!(second.try_recv().is_err(), "waits for the old connection");
    assert_eq!(first.session.lock().subscriptions.len(), 1);
    assert_eq!(r.takeovers_waiting(), 1);
    // The old connection had read DISCONNECT: no will.
    gone(&mut r, first.key, 2, None);
    let second = second.try_recv().expect("resumed once the old connection reported").expect("not refused");
    assert!(!second.session_present, "the clean session ended with its connection [MQTT-3.1.2-6]");
    assert_ne!(second.key, first.key);
    assert!(second.session.lock().subscriptions.is_empty());
    assert!(drain(&watch.session).is_empty(), "no will after a DISCONNECT [MQTT-3.1.2-10]");
    // A persistent session taken over without DISCONNECT: the will is
    // published, the session resumed.
    let mut third = connect_msg(&mut r, "dev", None, 4);
    assert!(third.try_recv().is_err());
    gone(&mut r, second.key, 3, Some(msg("will/dev", QoS::AtLeastOnce, false, b"gone")));
    let third = third.try_recv().expect("resumed").expect("not refused");
    assert!(third.session_present);
    assert_eq!(third.key, second.key);
    assert_eq!(drain(&watch.session), vec![("gone".into(), QoS::AtLeastOnce, false)]);
}

/// An old connection that never reports is taken over after the grace;
/// a newer CONNECT lets a waiting one go ahead (it gets its CONNACK).
#[test]
fn takeover_goes_ahead_after_the_grace_or_a_newer_connect() {
    let mut r = Router::new(limits());
    let first = connect_msg(&mut r, "dev", None, 1).try_recv().expect("at once").expect("not refused");
    let mut second = connect_msg(&mut r, "dev", None, 2);
    let mut third = connect_msg(&mut r, "dev", None, 3);
    let second = second.try_recv().expect("answered when the third arrived").expect("not refused");
    assert!(second.session_present && second.key == first.key);
    assert!(third.try_recv().is_err(), "the third waits for the second");
    r.expire(Instant::now() + TAKEOVER_GRACE);
    let third = third.try_recv().expect("taken over after the grace").expect("not refused");
    assert!(third.session_present);
    assert_eq!(r.takeovers_waiting(), 0);
    // The late reports of replaced connections change nothing.
    gone(&mut r, first.key, 1, None);
    gone(&mut r, first.key, 2, None);
    assert_eq!(r.session_count(), 1);
}

#[test]
fn the_registry_follows_messages_queues_and_sessions() {
    let mut r = Router::new(limits());
    let m = r.metrics().clone();
    let a = connect(&mut r, "a", false, 1);
    sub(&mut r, a.key, "t/#", QoS::AtLeastOnce);
    r.publish(msg("t/1", QoS::AtLeastOnce, true, b"12345"));
    r.publish(msg("t/2", QoS::AtMostOnce, false, b"x"));
    r.update_gauges();
    assert_eq!((m.received.0[1].get(), m.received.0[0].get()), (1, 1));
    assert_eq!(m.received_bytes.total(), 6);
    assert_eq!(m.delivered.get(), 2);
    assert_eq!((m.sessions.get(), m.sessions_online.get(), m.subscriptions.get()), (1, 1, 1));
    assert_eq!((m.retained_messages.get(), m.retained_bytes.get()), (1, 8));
    assert_eq!(m.queued_messages.get(), 2);
    assert!(m.queued_bytes.get() >= 6);
    let mut st = a.session.lock();
    let (_, pkid) = st.next_to_send(10, Instant::now()).unwrap();
    assert_eq!((m.queued_messages.get(), m.inflight.get()), (1, 1));
    st.puback(pkid);
    assert_eq!(m.inflight.get(), 0);
    drop(st);
    r.handle(
        RouterMsg::Disconnected { key: a.key, conn_id: 1, will: None, will_delay: Duration::ZERO, expiry: None },
        Instant::now(),
    );
    assert_eq!(m.sessions_online.get(), 0);
    // Offline, a QoS 0 message is not queued (counted as such).
    r.publish(msg("t/3", QoS::AtMostOnce, false, b"y"));
    assert_eq!(m.drops.offline_qos0.get(), 1);
    // A session that ends takes what it held out of the gauges.
    let _ = connect(&mut r, "a", true, 2);
    drop((a, r.take_touched()));
    r.update_gauges();
    assert_eq!((m.queued_messages.get(), m.queued_bytes.get(), m.inflight.get()), (0, 0, 0));
    assert_eq!((m.sessions.get(), m.sessions_online.get()), (1, 1));
    assert_eq!(r.stats().connects, 2);
}

/// A connection's PUBLISH is routed inline only when the router is free
/// and has processed everything the connection sent before it; otherwise
/// it is handed back for the channel, so a publisher's order holds
/// [MQTT-4.6.0-6].
#[test]
fn inline_route_only_when_free_and_nothing_of_the_connection_is_queued() {
    let mut r = Router::new(limits());
    let key = connect(&mut r, "s", true, 1).key;
    sub(&mut r, key, "t/#", QoS::AtLeastOnce);
    let shared = SharedRouter::new(r);
    let ticket = Arc::new(Ticket::default());
    let now = Instant::now();
    let publish = |p: &'static [u8]| RouterMsg::Publish(msg("t/a", QoS::AtLeastOnce, false, p));
    // First message: nothing before it, the router free.
    assert!(shared.try_route(publish(b"1"), &ticket, 1, now).is_none());
    assert_eq!(ticket.processed.load(Ordering::Acquire), 1);
    // Message 3 while message 2 is still in the channel: handed back.
    assert!(shared.try_route(publish(b"3"), &ticket, 3, now).is_some());
    assert_eq!(ticket.processed.load(Ordering::Acquire), 1);
    // The router busy (its task holds it): handed back.
    {
        let _busy = shared.lock();
        assert!(shared.try_route(publish(b"2"), &ticket, 2, now).is_some());
    }
    assert!(shared.try_route(publish(b"2"), &ticket, 2, now).is_none());
    let r = shared.take().unwrap();
    let s = r.sessions.get(&key).unwrap().shared.clone();
    let got: Vec<_> = drain(&s).into_iter().map(|d| d.0).collect();
    assert_eq!(got, ["1", "2"]);
    // Once its task has ended, nothing is routed.
    assert!(shared.try_route(publish(b"4"), &ticket, 3, now).is_some());
}

/// Waits (bounded) until `j` is durable past `lsn`.
fn until_durable(j: &crate::store::Journal, lsn: crate::store::Lsn) {
    let rx = j.durable();
    for _ in 0..5_000 {
        if *rx.borrow() >= lsn {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the log never became durable past {lsn}");
}

/// A CONNACK saying a recorded session is gone must not come before its
/// end is durable (gate rule 4): a Clean Start over a recorded session, and
/// an MQTT 5 resume with Session Expiry 0, name the position after the
/// `SessionEnd`; a client identifier without such an end names none
/// [MQTT-3.2.2-2].
#[test]
fn a_connect_that_ends_a_recorded_session_waits_for_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, j) = stored_router(dir.path());
    let first = persistent(&mut r, "a", 1);
    assert_eq!(first.durable_before, 0, "a new client identifier has no end to wait for");
    let clean = r.connect(req("a", true, None, conn(2)), Instant::now());
    assert!(!clean.session_present);
    assert!(clean.durable_before > 0 && clean.durable_before <= j.appended(), "waits for the SessionEnd");
    until_durable(&j, clean.durable_before);
    let other = r.connect(req("b", true, None, conn(3)), Instant::now());
    assert_eq!(other.durable_before, 0);
    let again = r.connect(req("a", false, None, conn(4)), Instant::now());
    assert!(again.session_present);
    assert_eq!(again.durable_before, 0, "the end is durable: nothing to wait for");
    // A resume with expiry 0: the session lives on in memory only, its
    // recorded copy ends.
    let zero = r.connect(req("a", false, Some(Duration::ZERO), conn(5)), Instant::now());
    assert!(zero.session_present);
    assert!(zero.durable_before > again.durable_before, "waits for the SessionEnd of the recorded copy");
    until_durable(&j, zero.durable_before);
    r.maintain_store(Instant::now());
    assert_eq!(r.end_pending("a"), 0, "forgotten once durable");
}
