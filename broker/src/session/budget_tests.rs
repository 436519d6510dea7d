use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::config::QueueFullPolicy;
use crate::message::{Delivery, Message};
use crate::protocol::QoS;
use crate::session::state::{Enqueued, QueueLimits, SessionState};
use crate::store::{DiskLimit, SpillDir};

fn delivery(n: u32, size: usize) -> Delivery {
    let mut payload = vec![0; size.max(4)];
    payload[..4].copy_from_slice(&n.to_le_bytes());
    let msg = Message {
        topic: "t".into(),
        payload: Bytes::from(payload),
        qos: QoS::AtLeastOnce,
        retain: false,
        props: None,
        origin: 0,
        received: Instant::now(),
    };
    Delivery {
        msg: Arc::new(msg),
        qos: QoS::AtLeastOnce,
        retain: false,
        sub_ids: Vec::new(),
        shared: None,
        mid: 0,
        seq: 0,
    }
}

fn number(d: &Delivery) -> u32 {
    u32::from_le_bytes([d.msg.payload[0], d.msg.payload[1], d.msg.payload[2], d.msg.payload[3]])
}

fn session(pool: &Arc<QueuePool>, policy: QueueFullPolicy) -> SessionState {
    let mut s = SessionState::new(QueueLimits { policy, pool: pool.clone(), ..QueueLimits::default() });
    s.set_online(true);
    s
}

fn drain(s: &mut SessionState) -> Vec<u32> {
    std::iter::from_fn(|| {
        let (d, pkid) = s.next_to_send(1, Instant::now())?;
        assert!(s.puback(pkid));
        Some(number(&d))
    })
    .collect()
}

/// Whether the pool holds `exact` bytes, as `queues` queues count them
/// (each rounds up to chunks and keeps up to two more).
fn holds(pool: &QueuePool, exact: usize, queues: usize) -> bool {
    (exact..=exact + queues * 3 * CHUNK).contains(&pool.used())
}

#[test]
fn a_charge_holds_a_share_of_the_budget_and_gives_it_back() {
    let pool = QueuePool::new(64 * CHUNK);
    let share = pool.share();
    assert_eq!(share, 16 * CHUNK, "one queue: a quarter");
    let mut a = Charge::new(&pool);
    let mut b = Charge::new(&pool);
    assert!(a.has_room(share) && !a.has_room(share + 1));
    a.add(share);
    b.add(share);
    let mut c = Charge::new(&pool);
    c.add(share);
    let d = Charge::new(&pool);
    assert!(d.has_room(share));
    assert!(!d.has_room(share + 1), "the budget: what the others left");
    a.sub(share - 100);
    assert_eq!((a.bytes(), pool.used()), (100, 2 * share + 2 * CHUNK), "the surplus goes back, two chunks stay");
    drop(b);
    drop(c);
    assert_eq!(pool.used(), 2 * CHUNK, "a dropped queue releases its charge");
    a.sub(10_000);
    assert_eq!(a.bytes(), 0, "never below zero");
    a.add(100);
    a.sub(100);
    assert_eq!(pool.used(), 2 * CHUNK, "a queue that keeps up does not touch the pool");
    drop(a);
    assert_eq!(pool.used(), 0);
}

#[test]
fn without_a_spill_directory_the_memory_share_drops_under_the_policy() {
    let pool = QueuePool::new(4 << 20);
    let mut s = session(&pool, QueueFullPolicy::DropNew);
    let mut queued = 0usize;
    for n in 0..100 {
        if s.enqueue(delivery(n, 64 << 10)) == Enqueued::Queued {
            queued += 1;
        }
    }
    let each = memory_cost(&delivery(0, 64 << 10));
    assert!(each > 64 << 10, "the records count too: {each}");
    let fit = (1 << 20) / each;
    assert_eq!(queued, fit, "1 MiB share of 64 KiB messages");
    assert_eq!((s.dropped, s.last_full), (100 - fit as u64, Some(Full::Memory)));
    assert!(holds(&pool, fit * each, 1), "{}", pool.used());
    assert_eq!(drain(&mut s), (0..fit as u32).collect::<Vec<_>>());
    assert!(holds(&pool, 0, 1));
}

#[test]
fn past_its_share_a_memory_queue_spills_and_comes_back_when_drained() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(SpillDir::create_inline(tmp.path().join("spill")).unwrap());
    let pool = QueuePool::new(4 << 20);
    pool.set_spill(dir.clone());
    let mut s = session(&pool, QueueFullPolicy::DropNew);
    for n in 0..200 {
        assert_eq!(s.enqueue(delivery(n, 64 << 10)), Enqueued::Queued, "message {n}");
    }
    assert_eq!(s.dropped, 0);
    assert!(pool.used() <= pool.share() + 3 * CHUNK, "memory held to the share: {}", pool.used());
    let spilled = dir.disk_used.load(std::sync::atomic::Ordering::Relaxed);
    assert!(spilled >= 184 * (64 << 10), "the rest on disk: {spilled}");
    assert_eq!(drain(&mut s), (0..200).collect::<Vec<_>>(), "every message, in order");
    assert!(holds(&pool, 0, 1));
    assert_eq!(dir.disk_used.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 0, "the scratch file is deleted");
    // Drained: a memory queue again, which keeps what fits in memory.
    let small = delivery(7, 10);
    s.enqueue(small.clone());
    assert!(holds(&pool, memory_cost(&small), 1));
    assert_eq!(dir.disk_used.load(std::sync::atomic::Ordering::Relaxed), 0);
    drop(s);
    assert_eq!(pool.used(), 0, "a dropped session releases its memory");
}

#[test]
fn disk_quotas_of_one_queue_and_of_all_apply_the_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(SpillDir::create_inline(tmp.path().join("spill")).unwrap());
    let pool = QueuePool::new(4 << 20);
    pool.set_spill(dir.clone());
    // One queue may spill 1 MiB, all together 1.5 MiB.
    dir.set_quotas(3 << 19, 1 << 20);
    let mut a = session(&pool, QueueFullPolicy::DropNew);
    let mut b = session(&pool, QueueFullPolicy::DropOldest);
    let (mut queued_a, mut queued_b) = (0, 0);
    for n in 0..100 {
        queued_a += u32::from(a.enqueue(delivery(n, 64 << 10)) == Enqueued::Queued);
    }
    assert_eq!(a.last_full, Some(Full::Disk(DiskLimit::Session)));
    for n in 0..100 {
        queued_b += u32::from(b.enqueue(delivery(n, 64 << 10)) == Enqueued::Queued);
    }
    assert_eq!(b.last_full, Some(Full::Disk(DiskLimit::Total)), "the total is reached first");
    let used = dir.disk_used.load(std::sync::atomic::Ordering::Relaxed);
    assert!(used <= 3 << 19, "{used}");
    assert_eq!(u64::from(queued_a) + a.dropped, 100);
    // drop_oldest cannot make room against the total quota: it drops the
    // new message and keeps its backlog.
    assert_eq!(u64::from(queued_b) + b.dropped, 100);
    let got_a = drain(&mut a);
    assert_eq!(got_a, (0..queued_a).collect::<Vec<_>>(), "drop_new keeps the oldest");
    assert_eq!(drain(&mut b), (0..queued_b).collect::<Vec<_>>());
    assert!(holds(&pool, 0, 2));
    assert_eq!(dir.disk_used.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn drop_oldest_makes_room_under_its_own_disk_quota() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(SpillDir::create_inline(tmp.path().join("spill")).unwrap());
    let pool = QueuePool::new(4 << 20);
    pool.set_spill(dir.clone());
    dir.set_quotas(u64::MAX, 1 << 20);
    let mut s = session(&pool, QueueFullPolicy::DropOldest);
    for n in 0..100 {
        assert_eq!(s.enqueue(delivery(n, 64 << 10)), Enqueued::Queued);
    }
    assert!(s.dropped > 0);
    let got = drain(&mut s);
    assert_eq!(got.len() as u64 + s.dropped, 100);
    assert_eq!(got.last(), Some(&99), "the newest are kept");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
}

#[test]
fn memory_cost_counts_the_records_of_a_message() {
    let d = delivery(1, 64);
    let records = memory_cost(&d) - 64 - d.msg.topic.len();
    assert!((100..=250).contains(&records), "{records}");
}

#[test]
fn below_the_free_space_reserve_nothing_spills_and_the_new_message_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(SpillDir::create_inline(tmp.path().join("spill")).unwrap());
    let pool = QueuePool::new(4 << 20);
    pool.set_spill(dir.clone());
    let mut s = session(&pool, QueueFullPolicy::DropOldest);
    for n in 0..20 {
        assert_eq!(s.enqueue(delivery(n, 64 << 10)), Enqueued::Queued);
    }
    dir.set_low_space(true);
    assert_eq!(s.enqueue(delivery(20, 64 << 10)), Enqueued::DroppedFull { first: true });
    assert_eq!(s.last_full, Some(Full::Disk(DiskLimit::FreeSpace)));
    assert_eq!(s.queued(), 20, "drop_oldest does not give up its backlog for a full disk");
    dir.set_low_space(false);
    assert_eq!(s.enqueue(delivery(21, 64 << 10)), Enqueued::Queued, "room again: spilling resumes");
    let mut want: Vec<u32> = (0..20).collect();
    want.push(21);
    assert_eq!(drain(&mut s), want);
}

#[test]
fn the_reserve_is_five_percent_at_most_one_gib() {
    assert_eq!(crate::store::reserve(8 << 30), (8 << 30) / 20);
    assert_eq!(crate::store::reserve(100 << 30), 1 << 30);
}

/// A connected session whose queue spilled past its memory share, made
/// persistent (recorded) while chunks are on disk: every queued message
/// moves with it. Popping only what is in memory would stop at the first
/// chunk on disk and drop the rest with the old queue.
#[test]
fn a_spilled_over_queue_made_persistent_keeps_what_is_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = crate::store::StoreConfig {
        dir: tmp.path().join("store"),
        spill_dir: tmp.path().join("spill"),
        sync: crate::store::SyncMode::Batch,
        segment_bytes: 1 << 20,
        compact_bytes: 1 << 30,
        fs: Arc::new(crate::store::fs::RealFs),
    };
    let (journal, _, _) = crate::store::open(&cfg).unwrap();
    let journal = Arc::new(journal);
    let pool = QueuePool::new(4 << 20);
    pool.set_spill(journal.spill.clone());
    let mut s = session(&pool, QueueFullPolicy::DropNew);
    for n in 0..200 {
        assert_eq!(s.enqueue(delivery(n, 64 << 10)), Enqueued::Queued, "message {n}");
    }
    let until = Instant::now() + std::time::Duration::from_secs(20);
    while journal.spill.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        assert!(Instant::now() < until, "the spill thread never wrote its chunks");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(journal.spill.disk_used.load(std::sync::atomic::Ordering::Relaxed) > 0, "chunks on disk");
    s.set_journal(9, journal.clone());
    assert_eq!(s.queued(), 200, "every message kept");
}
