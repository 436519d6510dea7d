//! Snapshots of spilled queues: their chunks on disk are written as the
//! spill thread reads them back (the router never reads a file), the
//! queue gives out nothing the snapshot has not written, and a chunk that
//! cannot be read back abandons the snapshot rather than lose what it
//! holds. What a restart brings back to a queue: in order, and within its
//! limit or taking nothing new until it is.

use std::time::{Duration, Instant, SystemTime};

use crate::config::QueueFullPolicy;
use crate::session::state::QueueLimits;

use super::super::*;
use super::tests::{compact, disconnect, live, open, persistent, publish, recovered, stored, subscribe};

/// Runs `snapshot_step` to the end, waiting for the spill thread when the
/// snapshot says so, calling `between` between steps; the steps taken.
fn run_snapshot(r: &mut Router, between: &mut dyn FnMut(&mut Router, u32)) -> (u32, u32) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let (mut steps, mut waits) = (0, 0);
    while !r.snapshot_step(Instant::now(), super::Pace::Room, 3) {
        steps += 1;
        if r.snapshot_waiting() {
            waits += 1;
            let ready = r.durable.as_ref().unwrap().walk_ready.clone();
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(20), ready.notified()).await.expect("woken")
            });
        } else {
            // As the router's loop: the log's room is awaited, not polled.
            let j = r.durable.as_ref().unwrap().journal.clone();
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), j.room()).await.expect("room") });
        }
        between(r, steps);
    }
    (steps, waits)
}

/// Waits until the spill thread has written every chunk handed to it.
pub(super) fn written(spill: &crate::store::SpillDir) {
    let until = Instant::now() + Duration::from_secs(20);
    while spill.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        assert!(Instant::now() < until, "spilled");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_snapshot_of_spilled_backlogs_in_steps_recovers_the_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let expected;
    {
        let (mut r, j) = stored(dir.path());
        let clients: Vec<_> = (0..4u64).map(|i| persistent(&mut r, &format!("c{i}"), i + 1)).collect();
        for c in &clients {
            subscribe(&mut r, c.key, "t/#");
        }
        // Three offline backlogs, one connected client draining.
        for (i, c) in clients.iter().enumerate().skip(1) {
            disconnect(&mut r, c.key, i as u64 + 1);
        }
        for n in 0..15_000 {
            publish(&mut r, &format!("t/{}", n % 10), n);
        }
        let spill = j.spill.clone();
        written(&spill);
        r.start_snapshot();
        let online = clients[0].session.clone();
        let mut n = 15_000;
        let (steps, waits) = run_snapshot(&mut r, &mut |r, step| {
            for _ in 0..20 {
                publish(r, "t/x", n);
                n += 1;
            }
            let mut st = online.lock();
            for _ in 0..50 {
                let Some((_, pkid)) = st.next_to_send(100, Instant::now()) else { break };
                if step % 3 != 0 {
                    st.puback(pkid);
                }
            }
        });
        // Whether a step found a chunk not yet read back depends on how fast
        // the spill thread is (0 waits seen once in a CI run): the walk's
        // waiting is what `spill_walk_tests.rs` checks; here the steps.
        assert!(steps > 10, "in steps ({steps}; {waits} waited for the spill thread)");
        expected = live(&r);
        compact(&mut r, &j);
        j.close();
    }
    let (_j, m) = open(dir.path());
    assert_eq!(recovered(&m), expected);
    for s in m.sessions.values() {
        assert_eq!(s.queue.in_memory(), 0, "{}: replay keeps the queue on disk", s.client_id);
    }
}

/// A persistent session on `t/#`, offline, with 5,000 messages queued.
fn offline_backlog(r: &mut Router) -> crate::router::ConnectReply {
    let c = persistent(r, "c", 1);
    subscribe(r, c.key, "t/#");
    disconnect(r, c.key, 1);
    for n in 0..5_000 {
        publish(r, "t/a", n);
    }
    c
}

/// The spill files written, then deleted: no chunk on disk reads back.
fn spill_files_gone(spill: &crate::store::SpillDir) {
    written(spill);
    for f in std::fs::read_dir(&spill.path).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
}

/// The session online, taking and acknowledging what it can until its
/// queue is empty or a while has passed (a queue held up by chunks that do
/// not read back); the numbers of the messages taken, in order.
fn drain_acking(shared: &std::sync::Arc<crate::session::state::SharedSession>) -> Vec<u32> {
    shared.lock().set_online(true);
    let mut got = Vec::new();
    for _ in 0..100 {
        let mut st = shared.lock();
        while let Some((d, pkid)) = st.next_to_send(100, Instant::now()) {
            got.push(u32::from_be_bytes(d.msg.payload[..].try_into().unwrap()));
            st.puback(pkid);
        }
        if st.queued() == 0 {
            break;
        }
        drop(st);
        std::thread::sleep(Duration::from_millis(5));
    }
    got
}

#[test]
fn an_unreadable_spill_chunk_abandons_the_snapshot_and_the_log_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let queued;
    {
        let (mut r, j) = stored(dir.path());
        let c = offline_backlog(&mut r);
        queued = c.session.lock().queued();
        let spill = j.spill.clone();
        spill_files_gone(&spill);
        let before = r.snapshot_count();
        let gc = r.durable.as_ref().unwrap().pending_gc;
        r.start_snapshot();
        run_snapshot(&mut r, &mut |_, _| {});
        let d = r.durable.as_ref().unwrap();
        assert!(d.pending_gc == gc && d.running.is_none(), "abandoned: nothing new to compact");
        r.maintain_store(Instant::now());
        assert_eq!(r.snapshot_count(), before + 1, "not retried at once");
        // The connection drains what it can: the queue is held up by the
        // unreadable chunks, counted, and the log is not compacted for them.
        drain_acking(&c.session);
        assert!(spill.unreadable.load(std::sync::atomic::Ordering::Relaxed) > 0);
        j.close();
    }
    let (_j, m) = open(dir.path());
    let s = m.sessions.values().find(|s| s.client_id == "c").unwrap();
    assert!(!s.queue.is_empty(), "what could not be read back is still in the log");
    assert!(s.queue.len() <= queued);
}

/// A queue that gives up chunks it cannot read back while a snapshot runs,
/// before the walk reaches it, is snapshot without them: the snapshot is
/// abandoned, so the log keeps them (found by the simulation, seed 10215
/// with spill-file faults: an acknowledged message lost after a restart).
#[test]
fn chunks_given_up_during_a_snapshot_abandon_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut r, j) = stored(dir.path());
        let c = offline_backlog(&mut r);
        let spill = j.spill.clone();
        spill_files_gone(&spill);
        let gc = r.durable.as_ref().unwrap().pending_gc;
        r.start_snapshot();
        // The session drains before the snapshot walks it: it is held up
        // by its chunks on disk.
        drain_acking(&c.session);
        assert!(spill.unreadable.load(std::sync::atomic::Ordering::Relaxed) > 0);
        run_snapshot(&mut r, &mut |_, _| {});
        let d = r.durable.as_ref().unwrap();
        assert!(d.pending_gc == gc && d.running.is_none(), "abandoned: no end record, nothing to delete");
        j.close();
    }
    let (_j, m) = open(dir.path());
    let s = m.sessions.values().find(|s| s.client_id == "c").unwrap();
    assert!(!s.queue.is_empty(), "what could not be read back is still in the log");
}

/// A router over the store in `dir` with `limits`: a start, or a restart.
fn limited(dir: &std::path::Path, limits: QueueLimits) -> (Router, std::sync::Arc<crate::store::Journal>) {
    let (j, m) = open(dir);
    let mut r = Router::new(limits);
    r.enable_persistence(j.clone(), m, (Instant::now(), SystemTime::now()));
    (r, j)
}

/// A queue held up by chunks it cannot read back gives nothing behind
/// them and takes nothing beyond its limit meanwhile; the restart brings
/// them back from the log ahead of what came after them: the subscriber
/// gets every message once, in the order the router queued them
/// [MQTT-4.6.0-5] (found by the simulation with spill-file faults: seed
/// 10907, later messages delivered before the restart that brought back
/// earlier ones; seed 10170, a queue holding 7 with a limit of 5 after it).
#[test]
fn a_queue_held_up_by_unreadable_chunks_keeps_its_order_and_limit_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let limits = || QueueLimits { max_messages: 5_010, policy: QueueFullPolicy::DropOldest, ..QueueLimits::default() };
    let mut got;
    {
        let (mut r, j) = limited(dir.path(), limits());
        let c = offline_backlog(&mut r);
        written(&j.spill);
        j.spill.io.inject_faults(std::sync::Arc::new(|op| {
            (op == crate::store::spill_io::SpillOp::Read).then(|| (0, std::io::Error::other("test: unreadable")))
        }));
        // Queued behind the unreadable chunks, still in memory.
        for n in 5_000..5_010 {
            publish(&mut r, "t/a", n);
        }
        got = drain_acking(&c.session);
        assert_eq!(got, Vec::<u32>::new(), "nothing given behind the unreadable chunks");
        publish(&mut r, "t/a", 5_010);
        assert_eq!(c.session.lock().queued(), 5_010, "at its limit: the new message dropped, no old one");
        j.close();
    }
    let (mut r, _j) = limited(dir.path(), limits());
    let c = persistent(&mut r, "c", 2);
    assert_eq!(c.session.lock().queued(), 5_010, "everything back, within the limit");
    got.extend(drain_acking(&c.session));
    assert_eq!(got, (0..5_010).collect::<Vec<_>>());
}

/// A restart with a lower `max_queued_messages` drops nothing recorded
/// (an acknowledged message is not lost to a restart): the queue holds
/// more than its limit until drained below it, and takes nothing new
/// meanwhile beyond what its policy makes room for (drop_new refuses the
/// new message; drop_oldest drops the oldest down to the limit).
#[test]
fn a_queue_restored_beyond_a_lowered_limit_keeps_its_messages_and_takes_nothing_beyond_it() {
    for (policy, after) in [(QueueFullPolicy::DropNew, 7), (QueueFullPolicy::DropOldest, 5)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut r, j) = limited(dir.path(), QueueLimits::default());
            let c = persistent(&mut r, "c", 1);
            subscribe(&mut r, c.key, "t/#");
            disconnect(&mut r, c.key, 1);
            for n in 1..=7 {
                publish(&mut r, "t/a", n);
            }
            j.close();
        }
        let (mut r, _j) = limited(dir.path(), QueueLimits { max_messages: 5, policy, ..QueueLimits::default() });
        let key = r.by_client["c"];
        let session = r.sessions[&key].shared.clone();
        assert_eq!(session.lock().queued(), 7, "{policy:?}: nothing recorded dropped by the restart");
        publish(&mut r, "t/a", 8);
        assert_eq!(session.lock().queued(), after, "{policy:?}: nothing queued beyond the limit");
        let c = persistent(&mut r, "c", 2);
        let got = drain_acking(&c.session);
        let want: Vec<u32> = if after == 7 { (1..=7).collect() } else { (4..=8).collect() };
        assert_eq!(got, want, "{policy:?}");
    }
}

fn retain(r: &mut Router, topic: &str, payload: &[u8]) {
    r.publish(Message {
        topic: topic.into(),
        payload: bytes::Bytes::copy_from_slice(payload),
        qos: crate::protocol::QoS::AtMostOnce,
        retain: true,
        props: None,
        origin: 0,
        received: Instant::now(),
    });
}

/// Retained messages are written in steps too; one replaced, cleared or
/// added between steps is recovered as it is live.
#[test]
fn retained_messages_are_written_in_steps_as_they_are_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = std::collections::BTreeMap::new();
    {
        let (mut r, j) = stored(dir.path());
        for n in 0..3_000u32 {
            retain(&mut r, &format!("r/{n}"), &n.to_le_bytes());
        }
        r.start_snapshot();
        let mut step = 0u32;
        while !r.snapshot_step(Instant::now(), super::Pace::Room, 1) {
            step += 1;
            // Replaced, cleared, added; from both ends of the order.
            retain(&mut r, &format!("r/{}", step * 7 % 3_000), b"new");
            retain(&mut r, &format!("r/{}", 2_999 - step * 5 % 3_000), b"");
            retain(&mut r, &format!("added/{step}"), b"added");
        }
        assert!(step >= 10, "in steps ({step})");
        r.retained.for_each(|m| {
            expected.insert(m.topic.clone(), m.payload.to_vec());
        });
        compact(&mut r, &j);
        j.close();
    }
    let (_j, m) = open(dir.path());
    let got: std::collections::BTreeMap<String, Vec<u8>> =
        m.retained.values().map(|s| (s.topic.clone(), s.payload.to_vec())).collect();
    assert_eq!(got, expected);
}
