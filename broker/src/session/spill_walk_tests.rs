use std::sync::{Arc, Weak};

use super::super::tests::{delivery, dir, files, number, pool};
use super::*;
use crate::session::state::MessageQueue;

fn noop() -> Box<dyn FnOnce() + Send> {
    Box::new(|| {})
}

/// A walk in steps writes exactly what was queued when it began, in order;
/// meanwhile the queue gives out only what the walk has written, and
/// pushes go behind it.
#[test]
fn a_walk_in_steps_holds_what_it_has_not_written() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    for n in 0..10_000 {
        q.push_back(delivery(n));
    }
    q.set_online(true);
    let mut walked = Vec::new();
    assert!(q.walk_begin(&mut |d| walked.push(number(d))), "chunks on disk are left for later");
    let mut popped = Vec::new();
    let mut pushed = 100_000;
    loop {
        // Between steps: the queue drains as far as the walk allows, and
        // more is queued.
        while let Some(d) = q.pop_front() {
            assert!(walked.contains(&number(&d)), "{} given out before the walk wrote it", number(&d));
            popped.push(number(&d));
        }
        q.push_back(delivery(pushed));
        pushed += 1;
        match q.walk_next(&mut |d| walked.push(number(d)), WalkRead::Ask(&noop)) {
            WalkStep::Done => break,
            WalkStep::More => {}
            other => panic!("inline I/O: {other:?}"),
        }
    }
    assert_eq!(walked, (0..10_000).collect::<Vec<_>>(), "what was queued at the start, once, in order");
    while let Some(d) = q.pop_front() {
        popped.push(number(&d));
    }
    let want: Vec<u32> = (0..10_000).chain(100_000..pushed).collect();
    assert_eq!(popped, want, "nothing lost, duplicated or reordered");
    assert!(q.is_empty() && files(&dir) == 0, "drained: the files are removed");
}

/// A chunk that cannot be read back fails the walk (the snapshot is
/// retried, the log keeps everything) and is counted once the queue is
/// held up by it.
#[test]
fn an_unreadable_chunk_fails_the_walk_and_is_counted() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    for n in 0..3_000 {
        q.push_back(delivery(n));
    }
    for f in std::fs::read_dir(&dir.path).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let mut walked = 0;
    assert!(q.walk_begin(&mut |_| walked += 1));
    let step = q.walk_next(&mut |_| walked += 1, WalkRead::Ask(&noop));
    assert!(matches!(step, WalkStep::Failed { lost } if lost > 0), "{step:?}");
    q.walk_abort();
    assert_eq!(q.unreadable(), 0, "nothing held up yet");
    q.set_online(true);
    assert!(q.pop_front().is_none(), "nothing behind the unreadable chunk");
    assert_eq!(q.len(), 3_000, "nothing dropped");
    assert!(q.unreadable() > 0 && q.unreadable() < 3_000, "the chunk's entries: {}", q.unreadable());
}

/// `take_where` consumes the whole queue: a walk in progress fails rather
/// than miss what moved.
#[test]
fn take_where_during_a_walk_fails_it() {
    let (_tmp, dir) = dir();
    let mut q = SpillQueue::new(dir, 1, &pool(), Weak::new());
    for n in 0..3_000 {
        q.push_back(delivery(n));
    }
    assert!(q.walk_begin(&mut |_| {}));
    let taken = q.take_where(&mut |d| number(d) % 2 == 0);
    assert_eq!(taken.len(), 1_500, "nothing held back from take_where");
    assert!(matches!(q.walk_next(&mut |_| {}, WalkRead::Ask(&noop)), WalkStep::Failed { .. }));
    assert_eq!(q.walk_next(&mut |_| {}, WalkRead::Ask(&noop)), WalkStep::Done);
    assert_eq!(q.len(), 1_500);
}

/// With the real spill thread: the walk waits for chunks to be read back,
/// is woken for each, and gives their memory back.
#[test]
fn a_walk_with_the_spill_thread_is_woken_and_evicts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(crate::store::SpillDir::create(tmp.path().join("spill")).unwrap());
    let mut q = SpillQueue::new(dir.clone(), 1, &pool(), Weak::new());
    for n in 0..20_000 {
        q.push_back(delivery(n));
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while dir.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        assert!(std::time::Instant::now() < until, "written");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx = std::sync::Mutex::new(tx);
    let wake = move || -> Box<dyn FnOnce() + Send> {
        let tx = tx.lock().unwrap().clone();
        Box::new(move || {
            let _ = tx.send(());
        })
    };
    let mut walked = Vec::new();
    assert!(q.walk_begin(&mut |d| walked.push(number(d))));
    loop {
        match q.walk_next(&mut |d| walked.push(number(d)), WalkRead::Ask(&wake)) {
            WalkStep::Done => break,
            WalkStep::More => {}
            WalkStep::Waiting => {
                // (How often depends on the thread's speed.)
                rx.recv_timeout(std::time::Duration::from_secs(20)).expect("woken");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(walked, (0..20_000).collect::<Vec<_>>());
    assert!(q.runs.iter().all(|r| r.chunk.get().0.is_none()), "walked chunks are not kept in memory");
    let mut all = Vec::new();
    q.set_online(true);
    while all.len() < 20_000 {
        match q.pop_front() {
            Some(d) => all.push(number(&d)),
            None => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
    assert_eq!(all, (0..20_000).collect::<Vec<_>>());
}
