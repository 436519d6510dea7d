use super::*;
use crate::protocol::QoS;
use crate::store::fs::RealFs;

fn msg(i: u32) -> StoredMessage {
    StoredMessage {
        topic: format!("s/{i}"),
        payload: bytes::Bytes::from(vec![b'x'; 100]),
        qos: QoS::AtLeastOnce,
        retain: false,
        props: None,
        origin: 0,
        received_ms: 1,
    }
}

fn open(dir: &Path) -> Fifo {
    Fifo::open(dir, SyncMode::Batch, Arc::new(RealFs)).unwrap()
}

fn wait_durable(f: &Fifo, lsn: Lsn) {
    let mut d = f.durable();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), d.wait_for(|v| *v >= lsn)).await.unwrap().unwrap();
    });
}

fn topics(recs: &[(Lsn, Vec<u8>)]) -> Vec<String> {
    recs.iter().map(|(_, b)| StoredMessage::decode(b).unwrap().topic).collect()
}

#[test]
fn records_come_back_in_order_and_the_cursor_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let f = open(dir.path());
    let last = (0..1000).map(|i| f.append(&msg(i))).last().unwrap();
    assert_eq!(f.depth(), 1000);
    wait_durable(&f, last);
    let mut r = f.reader();
    let first = r.read(last, 400, usize::MAX).unwrap();
    assert_eq!(topics(&first)[..3], ["s/0", "s/1", "s/2"]);
    let rest = r.read(last, usize::MAX, usize::MAX).unwrap();
    assert_eq!(first.len() + rest.len(), 1000);
    assert_eq!(r.read(last, 10, usize::MAX).unwrap(), vec![], "nothing past the durable end");
    f.set_acked(first[399].0, 0);
    assert_eq!(f.depth(), 600);
    f.persist().unwrap();
    drop(f);
    let f = open(dir.path());
    assert_eq!(f.depth(), 600);
    assert_eq!(f.opened_last, last);
    let again = f.reader().read(f.last(), usize::MAX, usize::MAX).unwrap();
    assert_eq!(topics(&again)[0], "s/400", "read again from after the cursor");
    assert_eq!(again.len(), 600);
    // What is appended after the reopen follows.
    let n = f.append(&msg(1000));
    wait_durable(&f, n);
    let mut r = f.reader();
    let all = r.read(n, usize::MAX, usize::MAX).unwrap();
    assert_eq!(topics(&all).last().map(String::as_str), Some("s/1000"));
}

#[test]
fn acknowledged_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let f = open(dir.path());
    // About 140 bytes a record: 8 MiB segments hold some 60,000.
    let mut last = 0;
    for i in 0..150_000 {
        last = f.append(&msg(i));
    }
    wait_durable(&f, last);
    let before = segments(&dir.path().join("queue")).unwrap().len();
    assert!(before >= 3, "{before} segments");
    let mut r = f.reader();
    let mut n = 0;
    loop {
        let got = r.read(last, 10_000, usize::MAX).unwrap();
        if got.is_empty() {
            break;
        }
        n += got.len();
        assert_eq!(got[0].0, n as u64 - got.len() as u64 + 1, "in order across segments");
    }
    assert_eq!(n, 150_000);
    f.set_acked(last, 0);
    f.persist().unwrap();
    // The queue's log writer deletes them, soon after.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while segments(&dir.path().join("queue")).unwrap().len() > 1 {
        assert!(std::time::Instant::now() < until, "only the segment being written stays");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(f.depth(), 0);
}

#[test]
fn drop_oldest_moves_the_reader_past_the_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let f = open(dir.path());
    let last = (0..10).map(|i| f.append(&msg(i))).last().unwrap();
    f.drop_oldest();
    f.drop_oldest();
    assert_eq!((f.depth(), f.stats.dropped.load(Ordering::Relaxed)), (8, 2));
    wait_durable(&f, last);
    let got = f.reader().read(last, usize::MAX, usize::MAX).unwrap();
    assert_eq!(topics(&got)[0], "s/2");
}

#[test]
fn a_damaged_cursor_sends_everything_again() {
    let dir = tempfile::tempdir().unwrap();
    let f = open(dir.path());
    let last = (0..5).map(|i| f.append(&msg(i))).last().unwrap();
    wait_durable(&f, last);
    f.set_acked(3, 0);
    f.persist().unwrap();
    drop(f);
    std::fs::write(dir.path().join("cursor"), b"garbage").unwrap();
    let f = open(dir.path());
    assert_eq!(f.depth(), 5);
}

#[test]
fn the_pubrec_record_survives_a_reopen_after_the_cursor_only() {
    let dir = tempfile::tempdir().unwrap();
    let f = open(dir.path());
    let last = (0..10).map(|i| f.append(&msg(i))).last().unwrap();
    wait_durable(&f, last);
    f.persist_released(&[3, 4, 7]).unwrap();
    f.set_acked(4, 0);
    f.persist().unwrap();
    drop(f);
    let f = open(dir.path());
    let mut got: Vec<Lsn> = f.opened_released.iter().copied().collect();
    got.sort_unstable();
    assert_eq!(got, [7], "what the cursor covers is done");
    drop(f);
    std::fs::write(dir.path().join("released"), b"garbage!garbage").unwrap();
    assert!(open(dir.path()).opened_released.is_empty(), "damaged: PUBLISH again");
}

/// One reader follows a queue being appended to: what it read ahead of
/// the durable end (a block holds the segment's end as it was) is read
/// again, so every record comes back once, in order, across segments.
#[test]
fn a_reader_keeps_up_with_appends_across_its_read_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let f = open(dir.path());
    let mut r = f.reader();
    let (mut got, mut n) = (Vec::new(), 0u32);
    for round in 0..60u32 {
        // Rounds of 1 to about 4,000 records of 100 bytes (segments of
        // 8 MiB, so the queue spans several; blocks of 64 KiB).
        let k = 1 + (round * 7919) % 4000;
        let mut last = 0;
        for _ in 0..k {
            last = f.append(&msg(n));
            n += 1;
        }
        wait_durable(&f, last);
        let upto = if round % 3 == 0 { last - u64::from(k / 2) } else { last };
        got.extend(topics(&r.read(upto, usize::MAX, usize::MAX).unwrap()));
    }
    got.extend(topics(&r.read(f.last(), usize::MAX, usize::MAX).unwrap()));
    assert_eq!(got.len(), n as usize);
    assert!(got.iter().enumerate().all(|(i, t)| *t == format!("s/{i}")), "in order, once each");
    assert!(crate::store::log::segments(&dir.path().join("queue")).unwrap().len() > 1, "several segments");
}

/// The reader's block grows for a record longer than a block and gives
/// that memory back at the next ordinary read.
#[test]
fn the_read_block_shrinks_back_after_a_long_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    std::fs::write(&path, vec![7u8; 3 * BLOCK]).unwrap();
    let file = File::open(&path).unwrap();
    let mut b = Block::default();
    assert_eq!(b.get(&file, 0, 2 * BLOCK).unwrap().map(<[u8]>::len), Some(2 * BLOCK));
    assert!(b.bytes.capacity() >= 2 * BLOCK);
    // Past what it holds: read again, a block's worth.
    assert_eq!(b.get(&file, 2 * BLOCK as u64 + 10, 100).unwrap(), Some(&[7u8; 100][..]));
    assert!(b.bytes.capacity() <= BLOCK, "{} bytes kept", b.bytes.capacity());
}
