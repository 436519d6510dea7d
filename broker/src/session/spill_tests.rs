use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::message::Message;
use crate::protocol::QoS;
use crate::session::state::QueueLimits;

/// A spill directory whose file operations run inline: each step of the
/// queue can be checked as it happens.
pub(super) fn dir() -> (tempfile::TempDir, Arc<SpillDir>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(SpillDir::create_inline(tmp.path().join("spill")).unwrap());
    (tmp, dir)
}

pub(super) fn delivery(n: u32) -> Delivery {
    let msg = Message {
        topic: format!("t/{n}"),
        payload: Bytes::from(n.to_le_bytes().to_vec()),
        qos: QoS::AtLeastOnce,
        retain: false,
        props: None,
        origin: 0,
        received: Instant::now() - Duration::from_secs(1),
    };
    Delivery {
        msg: Arc::new(msg),
        qos: QoS::AtLeastOnce,
        retain: false,
        sub_ids: vec![n],
        shared: None,
        mid: 0,
        seq: 0,
    }
}

pub(super) fn number(d: &Delivery) -> u32 {
    d.sub_ids[0]
}

pub(super) fn pool() -> Arc<QueuePool> {
    QueuePool::new(1 << 30)
}

pub(super) fn files(dir: &SpillDir) -> usize {
    std::fs::read_dir(&dir.path).unwrap().count()
}

#[test]
fn an_offline_queue_keeps_nothing_in_memory_and_drains_in_order() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    for n in 0..20_000 {
        q.push_back(delivery(n));
    }
    assert_eq!(q.len(), 20_000);
    assert!(q.head.is_empty());
    assert!(q.tail.len() < TAIL_CHUNK, "written out in chunks");
    assert_eq!(files(&dir), 1);
    q.set_online(true);
    for n in 0..20_000 {
        assert_eq!(q.front().map(number), Some(n));
        let d = q.pop_front().unwrap();
        assert_eq!(number(&d), n);
        assert_eq!(d.msg.topic, format!("t/{n}"));
        assert!(q.head.len() <= HEAD_ONLINE);
        // Pushes while draining go behind what is spilled.
        if n % 2 == 0 {
            q.push_back(delivery(100_000 + n));
        }
    }
    for n in (0..20_000).step_by(2) {
        assert_eq!(q.pop_front().map(|d| number(&d)), Some(100_000 + n));
    }
    assert!(q.pop_front().is_none());
    assert_eq!(files(&dir), 0, "a drained file is deleted");
    assert_eq!(dir.buffered.load(Ordering::Relaxed), 0);
}

#[test]
fn message_age_survives_the_file() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir, 1, &pool(), Weak::new());
    let d = delivery(7);
    let received = d.msg.received;
    q.push_back(d);
    q.set_online(true);
    let back = q.pop_front().unwrap();
    let skew = back.msg.received.max(received) - back.msg.received.min(received);
    assert!(skew <= Duration::from_millis(1), "{skew:?}");
}

#[test]
fn an_online_queue_that_keeps_up_stays_in_memory() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    q.set_online(true);
    for n in 0..1_000 {
        q.push_back(delivery(n));
        assert_eq!(q.pop_front().map(|d| number(&d)), Some(n));
    }
    assert_eq!(files(&dir), 0);
    assert_eq!(dir.bytes_written.load(Ordering::Relaxed), 0);
}

#[test]
fn going_offline_moves_the_head_out_of_memory() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir, 1, &pool(), Weak::new());
    q.set_online(true);
    for n in 0..10 {
        q.push_back(delivery(n));
    }
    assert_eq!(q.head.len(), 10);
    q.set_online(false);
    assert!(q.head.is_empty());
    assert_eq!(q.len(), 10);
    q.set_online(true);
    let order: Vec<u32> = std::iter::from_fn(|| q.pop_front()).map(|d| number(&d)).collect();
    assert_eq!(order, (0..10).collect::<Vec<_>>());
}

#[test]
fn a_walk_sees_everything_in_order_without_consuming() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir, 1, &pool(), Weak::new());
    q.set_online(true);
    for n in 0..5_000 {
        q.push_back(delivery(n));
    }
    let mut seen = Vec::new();
    assert!(q.walk_all(&mut |d| seen.push(number(d))));
    assert_eq!(seen, (0..5_000).collect::<Vec<_>>());
    assert_eq!(q.len(), 5_000);
    assert_eq!(q.pop_front().map(|d| number(&d)), Some(0));
}

#[test]
fn take_where_splits_and_keeps_both_orders() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir, 1, &pool(), Weak::new());
    for n in 0..3_000 {
        q.push_back(delivery(n));
    }
    let taken: Vec<u32> = q.take_where(&mut |d| number(d) % 3 == 0).iter().map(number).collect();
    assert_eq!(taken, (0..3_000).step_by(3).collect::<Vec<_>>());
    let kept: Vec<u32> = std::iter::from_fn(|| q.pop_front()).map(|d| number(&d)).collect();
    assert_eq!(kept, (0..3_000).filter(|n| n % 3 != 0).collect::<Vec<_>>());
}

#[test]
fn dropping_a_queue_deletes_its_file_and_budget() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    for n in 0..2_000 {
        q.push_back(delivery(n));
    }
    assert_eq!(files(&dir), 1);
    assert!(dir.buffered.load(Ordering::Relaxed) > 0);
    drop(q);
    assert_eq!(files(&dir), 0);
    assert_eq!(dir.buffered.load(Ordering::Relaxed), 0);
}

#[test]
fn many_queues_share_a_bounded_buffer() {
    let (_tmp, dir) = dir();
    let mut queues: Vec<SpillQueue> = (0..300).map(|k| SpillQueue::new(dir.clone(), k, &pool(), Weak::new())).collect();
    for round in 0..200 {
        for q in &mut queues {
            q.push_back(delivery(round));
        }
        assert!(dir.buffered.load(Ordering::Relaxed) <= SpillDir::BUFFER_BUDGET + 1024);
    }
    for q in &mut queues {
        q.set_online(true);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop_front()).map(|d| number(&d)).collect();
        assert_eq!(order, (0..200).collect::<Vec<_>>());
    }
}

#[test]
fn an_unwritable_directory_keeps_the_queue_in_memory() {
    let (_tmp, dir) = dir();
    std::fs::remove_dir(&dir.path).unwrap();
    let mut q = SpillQueue::new(dir, 1, &pool(), Weak::new());
    for n in 0..5_000 {
        q.push_back(delivery(n));
    }
    assert_eq!(q.len(), 5_000);
    q.set_online(true);
    let order: Vec<u32> = std::iter::from_fn(|| q.pop_front()).map(|d| number(&d)).collect();
    assert_eq!(order, (0..5_000).collect::<Vec<_>>());
}

/// A file lost under the queue is reported, not a panic: the queue is held
/// up by its first chunk (the log still has it; what was queued since
/// waits behind it), the next append does not make the file again (its
/// chunks would read back the new bytes at their offsets: other entries),
/// and a queue that goes (its session ended) takes its count out of
/// `SpillDir::unreadable`: nothing is left to bring back for it, and
/// compaction need not wait for a restart.
#[test]
fn a_file_lost_under_the_queue_is_reported_not_a_panic() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    for n in 0..2_000 {
        q.push_back(delivery(n));
    }
    let lost = q.path.clone();
    for entry in std::fs::read_dir(&dir.path).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for n in 2_000..4_000 {
        q.push_back(delivery(n));
    }
    assert!(!lost.exists(), "an append does not make the lost file again");
    q.set_online(true);
    assert!(q.pop_front().is_none());
    assert_eq!(q.len(), 4_000);
    assert!(dir.unreadable.load(Ordering::Relaxed) > 0);
    drop(q);
    assert_eq!(dir.unreadable.load(Ordering::Relaxed), 0);
}

/// With the spill thread, pushes and pops never do file I/O: while the
/// thread is held (a disk that does not answer), a connected queue hands
/// out what it has in memory and then nothing, without waiting, and the
/// session is woken once the chunk it waits for is read back.
#[test]
fn the_spill_thread_does_the_io_and_wakes_the_session() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(SpillDir::create(tmp.path().join("spill")).unwrap());
    let session = SharedSession::new(QueueLimits::default());
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Arc::downgrade(&session));
    for n in 0..20_000 {
        q.push_back(delivery(n));
    }
    let wait = |what: &str, done: &mut dyn FnMut() -> bool| {
        let until = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait("every chunk written", &mut || dir.in_flight.load(Ordering::Relaxed) == 0);
    assert!(dir.bytes_written.load(Ordering::Relaxed) > 0);
    q.set_online(true);
    let mut got = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    while got.len() < 20_000 {
        match q.pop_front() {
            Some(d) => got.push(number(&d)),
            None => {
                // Nothing in memory: the session is woken when the next
                // chunk is (a permit is stored if that already happened).
                assert!(q.len() > 0);
                rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(20), session.notify.notified()).await.expect("woken");
                });
            }
        }
    }
    assert_eq!(got, (0..20_000).collect::<Vec<_>>());
    assert_eq!(q.len(), 0);
    wait("the drained file removed", &mut || files(&dir) == 0);
    drop(q);
    assert_eq!(dir.buffered.load(Ordering::Relaxed), 0);
}

/// A chunk whose write failed stays in memory (and counts as held), the
/// queue begins a new file, and nothing is lost or reordered.
#[test]
fn a_failed_write_keeps_the_chunk_and_starts_a_new_file() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    std::fs::remove_dir(&dir.path).unwrap();
    for n in 0..2_000 {
        q.push_back(delivery(n));
    }
    let held = dir.held.load(Ordering::Relaxed);
    assert!(held > 0, "failed chunks are held in memory");
    let first = q.path.clone();
    std::fs::create_dir(&dir.path).unwrap();
    for n in 2_000..4_000 {
        q.push_back(delivery(n));
    }
    assert_ne!(q.path, first, "a new file after the failure");
    assert!(dir.bytes_written.load(Ordering::Relaxed) > 0, "the disk is used again");
    q.set_online(true);
    let order: Vec<u32> = std::iter::from_fn(|| q.pop_front()).map(|d| number(&d)).collect();
    assert_eq!(order, (0..4_000).collect::<Vec<_>>());
    assert_eq!(dir.held.load(Ordering::Relaxed), 0);
    assert_eq!(files(&dir), 0);
}

/// The backlog's age is known without reading a chunk back: the tail's
/// first entry, then the first entry of the oldest chunk (the head's own
/// once decoded).
#[test]
fn the_oldest_entry_is_known_to_the_chunk_without_io() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir, 1, &pool(), Weak::new());
    assert_eq!(q.oldest_received(), None);
    let aged = |n: u32, secs: u64| {
        let mut d = delivery(n);
        Arc::make_mut(&mut d.msg).received = Instant::now() - Duration::from_secs(secs);
        d
    };
    let first = aged(0, 3600);
    let oldest = first.msg.received;
    q.push_back(first);
    assert_eq!(q.oldest_received(), Some(oldest), "in the tail");
    for n in 1..5_000 {
        q.push_back(aged(n, 60));
    }
    assert!(!q.runs.is_empty(), "chunks written out");
    assert_eq!(q.oldest_received(), Some(oldest), "the first chunk's");
    q.set_online(true);
    q.pop_front();
    let next = q.oldest_received().unwrap();
    assert!(next > oldest && next.elapsed() >= Duration::from_secs(60), "the next entry's, decoded");
    while q.pop_front().is_some() {}
    assert_eq!(q.oldest_received(), None);
}

/// The spill thread dies in the middle of a write (a test hook panics it
/// after half the bytes): the write counts as failed (its chunk kept in
/// memory, its file given no more appends), what was queued behind it and
/// everything after runs inline, and the queue loses, duplicates and
/// reorders nothing.
#[test]
fn a_spill_thread_that_dies_mid_write_is_replaced_by_inline_io() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(SpillDir::create(tmp.path().join("spill")).unwrap());
    assert!(dir.io.threaded());
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    for n in 0..5_000 {
        q.push_back(delivery(n));
    }
    dir.io.panic_next_write();
    for n in 5_000..20_000 {
        q.push_back(delivery(n));
    }
    let until = Instant::now() + Duration::from_secs(20);
    while dir.io.threaded() || dir.in_flight.load(Ordering::Relaxed) > 0 {
        assert!(Instant::now() < until, "the thread died and its work was done");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(dir.held.load(Ordering::Relaxed) > 0, "the torn write's chunk is kept in memory");
    for n in 20_000..25_000 {
        q.push_back(delivery(n));
    }
    q.set_online(true);
    let got: Vec<u32> = std::iter::from_fn(|| q.pop_front()).map(|d| number(&d)).collect();
    assert_eq!(got, (0..25_000).collect::<Vec<_>>());
    assert_eq!(files(&dir), 0, "drained files removed inline");
    drop(q);
    assert_eq!(dir.buffered.load(Ordering::Relaxed), 0);
    assert_eq!(dir.held.load(Ordering::Relaxed), 0);
}

/// A chunk that cannot be read back holds the queue up: nothing behind it
/// is given out (the order the router queued them in is kept), its entries
/// keep counting in the queue's length (its limits hold) and in
/// `SpillDir::unreadable`; asked again at each attempt, once it reads back
/// the queue drains in order and the count is back to 0 (found by the
/// simulation, seed 10907: a later message delivered before the restart
/// that brought back the chunk's).
#[test]
fn an_unreadable_chunk_holds_the_queue_up_until_it_reads_back() {
    let (_tmp, dir) = dir();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = failing.clone();
    dir.io.inject_faults(Arc::new(move |op| {
        let fail = op == spill_io::SpillOp::Read && f.load(Ordering::Relaxed);
        fail.then(|| (0, std::io::Error::other("test: unreadable")))
    }));
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    for n in 0..3_000 {
        q.push_back(delivery(n));
    }
    q.set_online(true);
    assert!(q.pop_front().is_none() && q.front().is_none(), "nothing behind the unreadable chunk");
    let missing = dir.unreadable.load(Ordering::Relaxed);
    assert!(missing > 0 && missing < 3_000, "the chunk's entries counted, once: {missing}");
    for n in 3_000..3_010 {
        q.push_back(delivery(n));
    }
    assert!(q.pop_front().is_none(), "still unreadable");
    assert_eq!(q.len(), 3_010, "nothing dropped from the length");
    assert_eq!(dir.unreadable.load(Ordering::Relaxed), missing, "counted once");
    failing.store(false, Ordering::Relaxed);
    let got: Vec<u32> = std::iter::from_fn(|| q.pop_front()).map(|d| number(&d)).collect();
    assert_eq!(got, (0..3_010).collect::<Vec<_>>());
    assert_eq!(dir.unreadable.load(Ordering::Relaxed), 0, "read back: nothing missing");
    assert_eq!(files(&dir), 0);
}
