//! A shared subscriber's spilled backlog when it leaves: at a disconnect
//! only what its queue holds in memory goes to the other members (the
//! router reads no file; MQTT 5.0 section 4.8.2: the Server MAY wait for
//! the Client to reconnect), the entries on disk wait with the session;
//! when the session ends they go to the group too, none lost or doubled,
//! read back by the spill thread while the router goes on (`ending.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::*;
use super::spill_tests::written;
use super::tests::{compact, disconnect, live, open, persistent, publish, recovered, stored, subscribe};

/// Messages published to the group of `a` and `b`, both persistent and
/// connected.
const N: usize = 20_000;

/// A recorded router where `a` and `b` share `$share/g/t` and were given
/// [`N`] messages, their queues spilled and written to disk.
fn group_with_backlog(dir: &std::path::Path) -> (Router, Arc<crate::store::Journal>, ConnectReply, ConnectReply) {
    let (mut r, j) = stored(dir);
    let a = persistent(&mut r, "a", 1);
    let b = persistent(&mut r, "b", 2);
    subscribe(&mut r, a.key, "$share/g/t");
    subscribe(&mut r, b.key, "$share/g/t");
    for n in 0..N as u32 {
        publish(&mut r, "t", n);
    }
    written(&j.spill);
    (r, j, a, b)
}

#[test]
fn spilled_shared_entries_wait_at_a_disconnect_and_go_to_the_group_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, _j, a, b) = group_with_backlog(dir.path());
    let held = a.session.lock().queued();
    assert!(held > N / 4, "a holds its share of the group's messages: {held}");
    disconnect(&mut r, a.key, 1);
    let (kept, given) = (a.session.lock().queued(), b.session.lock().queued());
    assert!(kept > 0 && kept < held, "a keeps what is on disk, gives what was in memory: {kept} of {held}");
    assert_eq!(kept + given, N, "nothing lost or doubled at the disconnect");
    // A Clean Start ends a's session: what it kept on disk goes to b.
    // (Directly: the end's reads are done here, as tests may.)
    let fresh = r.connect(ConnectRequest { expiry: Some(Duration::ZERO), ..clean_start("a", 3) }, Instant::now());
    assert!(!fresh.session_present);
    assert_eq!(b.session.lock().queued(), N, "every message with the group's other member, once");
    assert_eq!(fresh.session.lock().queued(), 0);
}

fn clean_start(client_id: &str, id: u64) -> ConnectRequest {
    ConnectRequest {
        user: None,
        check_owner: false,
        client_id: client_id.into(),
        clean_start: true,
        expiry: None,
        conn: ConnHandle::new(id),
    }
}

/// The router's own path: a Clean Start CONNECT ends a shared subscriber's
/// session whose entries on disk the spill thread reads back in steps. The
/// CONNECT waits for the end to be recorded (its CONNACK says the session
/// is gone, gate rule 4); a compaction's snapshot running meanwhile is not
/// finished before it; the other member gets every entry, and so does the
/// state recovered from the compacted log.
#[test]
fn a_session_end_reads_its_shared_entries_back_in_steps_and_holds_the_connect() {
    let dir = tempfile::tempdir().unwrap();
    let expected;
    {
        let (mut r, j, a, b) = group_with_backlog(dir.path());
        disconnect(&mut r, a.key, 1);
        let kept = a.session.lock().queued();
        assert!(kept > 2 * 4096, "more on disk than two steps take: {kept}");
        // A snapshot walking a's queue when its end begins.
        r.start_snapshot();
        assert!(!r.snapshot_step(Instant::now(), super::Pace::Room, 1));
        let (tx, mut reply) = tokio::sync::oneshot::channel();
        r.handle(RouterMsg::Connect(clean_start("a", 3), tx), Instant::now());
        assert_eq!(r.endings_in_progress(), 1, "the end goes on in steps");
        assert!(reply.try_recv().is_err(), "the CONNECT waits for the end");
        assert!(a.session.lock().next_to_send(10, Instant::now()).is_none(), "an old connection takes nothing");
        // A second CONNECT for "a" waits too; once the first is answered it
        // takes that one's session over as any takeover does: after the
        // first connection reports.
        let (tx, mut second) = tokio::sync::oneshot::channel();
        r.handle(RouterMsg::Connect(ConnectRequest { clean_start: false, ..clean_start("a", 4) }, tx), Instant::now());
        let until = Instant::now() + Duration::from_secs(20);
        let mut steps = 0;
        while r.endings_in_progress() > 0 {
            assert!(Instant::now() < until, "the ending never finished");
            assert!(!r.snapshot_step(Instant::now(), super::Pace::Room, 64), "no snapshot end before the session's");
            assert!(reply.try_recv().is_err(), "the CONNECT waits for the end");
            std::thread::sleep(Duration::from_millis(1));
            r.step_endings(Instant::now());
            steps += 1;
        }
        assert!(steps >= 2, "in steps: {steps}");
        let fresh = reply.try_recv().expect("answered at the end").expect("not refused");
        assert!(!fresh.session_present, "the Clean Start ended the session");
        assert_ne!(fresh.key, a.key);
        assert!(fresh.durable_before == 0 || fresh.durable_before <= j.appended(), "after the end's record");
        assert!(second.try_recv().is_err(), "the second CONNECT waits for the first connection");
        disconnect(&mut r, fresh.key, 3);
        let resumed = second.try_recv().expect("answered once it reported").expect("not refused");
        assert!(resumed.session_present && resumed.key == fresh.key, "[MQTT-3.1.4-2] it takes the session over");
        assert_eq!(b.session.lock().queued(), N, "every message with the group's other member, once");
        while !r.snapshot_step(Instant::now(), super::Pace::Room, 64) {
            std::thread::sleep(Duration::from_millis(1));
        }
        compact(&mut r, &j);
        expected = live(&r);
        assert_eq!(expected["b"].1, N);
        j.close();
    }
    let (_j, m) = open(dir.path());
    assert_eq!(recovered(&m), expected, "the compacted log holds every entry, at b");
}

/// A session ending while its spill file cannot be read back is not held
/// up by it (a queue that goes on waits for such a chunk, this one ends):
/// the chunks are given up (logged), the end is recorded and the waiting
/// CONNECT answered; what was in memory still went to the group.
#[test]
fn a_session_end_gives_up_chunks_that_cannot_be_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, j, a, b) = group_with_backlog(dir.path());
    disconnect(&mut r, a.key, 1);
    let (kept, given) = (a.session.lock().queued(), b.session.lock().queued());
    assert!(kept > 0);
    j.spill.io.inject_faults(Arc::new(|op| {
        (op == crate::store::spill_io::SpillOp::Read).then(|| (0, std::io::Error::other("test: unreadable")))
    }));
    let (tx, mut reply) = tokio::sync::oneshot::channel();
    r.handle(RouterMsg::Connect(clean_start("a", 3), tx), Instant::now());
    let until = Instant::now() + Duration::from_secs(20);
    while r.endings_in_progress() > 0 {
        assert!(Instant::now() < until, "the ending waits for chunks that never read back");
        std::thread::sleep(Duration::from_millis(1));
        r.step_endings(Instant::now());
    }
    let fresh = reply.try_recv().expect("answered at the end").expect("not refused");
    assert!(!fresh.session_present);
    let now_b = b.session.lock().queued();
    assert!(now_b >= given && now_b < N, "b has what could be read, no more: {given} -> {now_b} of {N}");
    assert_eq!(j.spill.unreadable.load(std::sync::atomic::Ordering::Relaxed), 0, "nothing left for a restart");
}

/// Each entry an ending hands over is recorded as gone from the ending
/// session after the other member's record of it: what that member has
/// delivered and had acknowledged meanwhile does not come back with the
/// ending session if the power goes before its end is recorded.
#[test]
fn what_another_member_delivered_during_an_ending_does_not_come_back_after_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let acked;
    {
        let (mut r, j, a, b) = group_with_backlog(dir.path());
        disconnect(&mut r, a.key, 1);
        let before = b.session.lock().queued();
        let (tx, _reply) = tokio::sync::oneshot::channel();
        r.handle(RouterMsg::Connect(clean_start("a", 3), tx), Instant::now());
        let until = Instant::now() + Duration::from_secs(20);
        while b.session.lock().queued() == before {
            assert!(Instant::now() < until, "nothing handed over");
            std::thread::sleep(Duration::from_millis(1));
            r.step_endings(Instant::now());
        }
        assert_eq!(r.endings_in_progress(), 1, "cut in the middle of the ending");
        // b delivers and has acknowledged all it holds, handed-over ones too.
        let mut n = 0;
        while b.session.lock().queued() > 0 {
            assert!(Instant::now() < until, "b's chunks never read back");
            let mut st = b.session.lock();
            while let Some((_, pkid)) = st.next_to_send(10, Instant::now()) {
                assert!(st.puback(pkid));
                n += 1;
            }
            drop(st);
            std::thread::sleep(Duration::from_millis(1));
        }
        acked = n;
        assert!(acked > before);
        // The power goes (what was appended is written, no end for a).
        j.close();
    }
    let (_j, m) = open(dir.path());
    let queued = |c: &str| m.sessions.values().find(|s| s.client_id == c).map_or(0, |s| s.queue.len());
    assert_eq!(queued("a") + queued("b") + acked, N, "each message once: queued at a, at b, or delivered");
}
