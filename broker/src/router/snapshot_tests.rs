//! A compaction's snapshot written in steps, with the router changing
//! sessions between them: what is recovered from the snapshot alone (the
//! segments before it deleted) is the live state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::super::*;
use crate::protocol::QoS;

pub(super) fn open(dir: &std::path::Path) -> (Arc<crate::store::Journal>, crate::store::Model) {
    open_compacting_at(dir, 1 << 30)
}

/// [`open`] with the log compacted once larger than `compact_bytes`.
fn open_compacting_at(dir: &std::path::Path, compact_bytes: u64) -> (Arc<crate::store::Journal>, crate::store::Model) {
    let cfg = crate::store::StoreConfig {
        dir: dir.to_owned(),
        spill_dir: dir.join("spill"),
        sync: crate::store::SyncMode::Batch,
        // Small segments: the snapshot makes the old ones obsolete.
        segment_bytes: 4096,
        compact_bytes,
        fs: Arc::new(crate::store::fs::RealFs),
    };
    let (j, m, _) = crate::store::open(&cfg).unwrap();
    (Arc::new(j), m)
}

/// A router recording to a store in `dir` (default queue limits), and its
/// journal.
pub(super) fn stored(dir: &std::path::Path) -> (Router, Arc<crate::store::Journal>) {
    let (j, m) = open(dir);
    let mut r = Router::new(crate::session::state::QueueLimits::default());
    r.enable_persistence(j.clone(), m, (Instant::now(), SystemTime::now()));
    (r, j)
}

pub(super) fn persistent(r: &mut Router, client: &str, id: u64) -> ConnectReply {
    let req = ConnectRequest {
        client_id: client.into(),
        clean_start: false,
        expiry: None,
        conn: ConnHandle::new(id),
        user: None,
        check_owner: false,
    };
    r.connect(req, Instant::now())
}

pub(super) fn subscribe(r: &mut Router, key: SessionKey, filter: &str) {
    let options = SubOptions { qos: QoS::AtLeastOnce, ..SubOptions::default() };
    r.sessions[&key].shared.lock().subscriptions.insert(filter.into(), (options, None));
    let entry = SubscribeEntry { filter: filter.into(), sub: Sub { options, id: None }, existed: false };
    r.subscribe(key, vec![entry], Instant::now());
}

pub(super) fn publish(r: &mut Router, topic: &str, n: u32) {
    r.publish(Message {
        topic: topic.into(),
        payload: Bytes::from(n.to_be_bytes().to_vec()),
        qos: QoS::AtLeastOnce,
        retain: n % 7 == 0,
        props: None,
        origin: 0,
        received: Instant::now(),
    });
}

pub(super) fn disconnect(r: &mut Router, key: SessionKey, conn_id: u64) {
    let msg = RouterMsg::Disconnected { key, conn_id, will: None, will_delay: Duration::ZERO, expiry: None };
    r.handle(msg, Instant::now());
}

/// Waits for everything appended to be durable, then has the segments
/// before the last snapshot deleted and waits for that.
pub(super) fn compact(r: &mut Router, j: &crate::store::Journal) {
    settle(r, j);
    assert!(j.stats().segments_deleted.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

/// Waits for everything appended to be durable, then for the deletions
/// that makes due, as the router's ticks would.
fn settle(r: &mut Router, j: &crate::store::Journal) {
    let mut durable = j.durable();
    let until = Instant::now() + Duration::from_secs(20);
    while *durable.borrow_and_update() < j.appended() {
        assert!(Instant::now() < until, "never durable");
        std::thread::sleep(Duration::from_millis(1));
    }
    r.maintain_store(Instant::now());
    while r.durable.as_ref().is_some_and(|d| d.deleting.is_some()) {
        assert!(Instant::now() < until, "never deleted");
        std::thread::sleep(Duration::from_millis(1));
        r.maintain_store(Instant::now());
    }
}

/// Per client: subscriptions, queued and in-flight counts.
pub(super) type View = BTreeMap<String, (Vec<String>, usize, usize)>;

pub(super) fn live(r: &Router) -> View {
    let mut v = View::new();
    for e in r.sessions.values() {
        let st = e.shared.lock();
        if st.is_journaled() {
            let mut subs: Vec<String> = st.subscriptions.keys().cloned().collect();
            subs.sort();
            v.insert(e.client_id.to_string(), (subs, st.queued(), st.inflight_len()));
        }
    }
    v
}

pub(super) fn recovered(m: &crate::store::Model) -> View {
    m.sessions
        .values()
        .map(|s| (s.client_id.clone(), (s.subs.keys().cloned().collect(), s.queue.len(), s.inflight.len())))
        .collect()
}

#[test]
fn a_snapshot_in_steps_with_changes_between_them_recovers_the_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let expected;
    {
        let (mut r, j) = stored(dir.path());
        let mut clients = Vec::new();
        for i in 0..200u64 {
            let c = persistent(&mut r, &format!("c{i}"), i + 1);
            subscribe(&mut r, c.key, &format!("t/{}", i % 10));
            clients.push(c);
        }
        for n in 0..500 {
            publish(&mut r, &format!("t/{}", n % 10), n);
        }
        for (i, c) in clients.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            disconnect(&mut r, c.key, i as u64 + 1);
        }
        r.start_snapshot();
        let mut steps = 0u32;
        let mut n = 500;
        while !r.snapshot_step(Instant::now(), super::Pace::Room, 7) {
            steps += 1;
            // Between steps: new messages, deliveries and acknowledgements,
            // a new persistent session, one ended, a new subscription.
            for _ in 0..5 {
                publish(&mut r, &format!("t/{}", n % 10), n);
                n += 1;
            }
            let c = &clients[steps as usize % clients.len()];
            let mut st = c.session.lock();
            if let Some((_, pkid)) = st.next_to_send(10, Instant::now()) {
                if steps % 2 == 0 {
                    st.puback(pkid);
                }
            }
            drop(st);
            let fresh = persistent(&mut r, &format!("new{steps}"), 10_000 + u64::from(steps));
            subscribe(&mut r, fresh.key, "t/3");
            if steps % 4 == 0 {
                let gone = &clients[(steps as usize * 13) % clients.len()];
                r.connect(
                    ConnectRequest {
                        client_id: gone.client_id.to_string(),
                        clean_start: true,
                        expiry: Some(Duration::ZERO),
                        conn: ConnHandle::new(20_000 + u64::from(steps)),
                        user: None,
                        check_owner: false,
                    },
                    Instant::now(),
                );
            }
            // (Unless ended above: how many steps there are depends on how
            // fast the log writer is.)
            let more = clients[(steps as usize * 7) % clients.len()].key;
            if r.sessions.contains_key(&more) {
                subscribe(&mut r, more, "extra/#");
            }
            // A session the snapshot may not have written yet reconnects
            // (its session record is appended): it is written first.
            let back = &clients[(steps as usize * 11 + 5) % clients.len()];
            persistent(&mut r, &back.client_id, 30_000 + u64::from(steps));
        }
        assert!(steps > 10, "written in steps ({steps})");
        expected = live(&r);
        compact(&mut r, &j);
        j.close();
    }
    let (_j, m) = open(dir.path());
    assert_eq!(recovered(&m), expected);
}

/// A retained message's body named before a snapshot is not reused by a
/// delivery after it: once the old segments are gone, the body of what a
/// late subscriber was queued is still in the log.
#[test]
fn a_retained_body_named_before_a_snapshot_is_written_again_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut r, j) = stored(dir.path());
        let a = persistent(&mut r, "a", 1);
        subscribe(&mut r, a.key, "t");
        publish(&mut r, "t", 7); // retained (7 % 7 == 0)
        {
            let mut st = a.session.lock();
            let (_, pkid) = st.next_to_send(10, Instant::now()).unwrap();
            assert!(st.puback(pkid));
        }
        // Enough records that the snapshot's segment is not the first.
        for n in 1..200 {
            publish(&mut r, &format!("other/{n}"), n * 7); // retained: recorded
        }
        r.snapshot(Instant::now());
        let b = persistent(&mut r, "b", 2);
        subscribe(&mut r, b.key, "t");
        assert_eq!(b.session.lock().queued(), 1, "the retained message is queued for b");
        compact(&mut r, &j);
        j.close();
    }
    let (_j, m) = open(dir.path());
    let b = m.sessions.values().find(|s| s.client_id == "b").unwrap();
    let (_, e) = b.queue.iter().next().expect("b's queued entry");
    assert!(m.msgs.get(e.mid).is_some(), "the body of b's queued message (mid {}) is in the log", e.mid);
}

/// A session offline for long with one queued message does not pin the
/// log segments written after it (issue 13): with a stream of delivered
/// and acknowledged messages through another session, twenty times the
/// compaction threshold written, the log stays within a few thresholds,
/// as the tick's compactions rewrite what is live, and the old message is
/// still there after a restart.
#[test]
fn a_long_offline_session_does_not_pin_the_log() {
    const COMPACT: u64 = 128 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut largest = 0;
    {
        let (j, m) = open_compacting_at(dir.path(), COMPACT);
        let mut r = Router::new(crate::session::state::QueueLimits::default());
        r.enable_persistence(j.clone(), m, (Instant::now(), SystemTime::now()));
        let old = persistent(&mut r, "old", 1);
        subscribe(&mut r, old.key, "kept");
        publish(&mut r, "kept", 1);
        disconnect(&mut r, old.key, 1);
        let live = persistent(&mut r, "live", 2);
        subscribe(&mut r, live.key, "t");
        let mut n = 2;
        while j.stats().bytes_written.load(std::sync::atomic::Ordering::Relaxed) < 20 * COMPACT {
            for _ in 0..200 {
                publish(&mut r, "t", n);
                n += 1;
            }
            {
                let mut st = live.session.lock();
                while let Some((_, pkid)) = st.next_to_send(10, Instant::now()) {
                    assert!(st.puback(pkid));
                }
            }
            // The router's tick: a compaction when the log has grown, its
            // snapshot, the old segments deleted once it is durable.
            r.maintain_store(Instant::now());
            while r.snapshot_running() {
                r.snapshot_step(Instant::now(), super::Pace::Never, usize::MAX);
            }
            settle(&mut r, &j);
            largest = largest.max(j.disk_bytes());
        }
        assert!(j.stats().segments_deleted.load(std::sync::atomic::Ordering::Relaxed) > 0);
        j.close();
    }
    assert!(largest < 4 * COMPACT, "the log follows what is live: at most {largest} bytes");
    let (_j, m) = open(dir.path());
    let old = m.sessions.values().find(|s| s.client_id == "old").expect("the offline session");
    let (_, e) = old.queue.iter().next().expect("its queued message");
    assert!(m.msgs.get(e.mid).is_some(), "with its body");
    let live = m.sessions.values().find(|s| s.client_id == "live").expect("the live session");
    assert!(live.queue.is_empty() && live.inflight.is_empty());
}
