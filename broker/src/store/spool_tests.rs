use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::protocol::QoS;

fn entry(mid: u64) -> Entry {
    Entry::new(mid, QoS::AtLeastOnce, false, Vec::new(), None)
}

/// A reference model: what `Entries` must behave like.
fn check(e: &Entries, model: &BTreeMap<u64, Entry>) {
    assert_eq!(e.len(), model.len());
    let got: Vec<(u64, Entry)> = e.iter().collect();
    let want: Vec<(u64, Entry)> = model.iter().map(|(s, x)| (*s, x.clone())).collect();
    assert_eq!(got, want);
    assert_eq!(e.last_seq(), model.keys().next_back().copied());
}

#[test]
fn a_large_queue_is_spooled_to_disk_not_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Entries::on_disk(Arc::from(dir.path()));
    let mut model = BTreeMap::new();
    for seq in 0..100_000u64 {
        e.insert(seq, entry(seq + 7));
        model.insert(seq, entry(seq + 7));
    }
    // Delivered from the front, some in flight, some discarded.
    for seq in 0..30_000u64 {
        if seq % 3 == 0 {
            e.discard(seq);
        } else {
            assert_eq!(e.remove(seq), Some(entry(seq + 7)));
        }
        model.remove(&seq);
    }
    assert!(e.spooled_to_file(), "the entries went to a scratch file");
    assert_eq!(e.in_memory(), 0, "no entry is held decoded");
    assert!(e.spool.buf.len() < CHUNK && e.samples.len() < 100 && e.present.0.len() == 1);
    // The file is unlinked: nothing is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    check(&e, &model);
}

#[test]
fn out_of_order_and_repeated_entries_behave_like_a_sorted_map() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Entries::on_disk(Arc::from(dir.path()));
    let mut model = BTreeMap::new();
    let mut x = 12345u64;
    for i in 0..20_000u64 {
        // A small pseudo-random walk: mostly appends, some inserts behind,
        // repeats, removals in the middle and at the front.
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let seq = match x >> 61 {
            0 => i.saturating_sub((x >> 20) % 50),
            1 => (x >> 20) % (i + 1),
            _ => i,
        };
        match (x >> 40) % 5 {
            0 => assert_eq!(e.remove(seq), model.remove(&seq)),
            1 => {
                e.discard(seq);
                model.remove(&seq);
            }
            _ => {
                e.insert(seq, entry(i));
                model.insert(seq, entry(i));
            }
        }
    }
    check(&e, &model);
    let copy = e.clone();
    assert_eq!(copy, e);
    check(&copy, &model);
}

#[test]
fn in_memory_without_a_directory() {
    let mut e = Entries::default();
    for seq in [5u64, 3, 9, 3, u64::MAX, 0] {
        e.insert(seq, entry(seq));
    }
    assert_eq!(e.keys().collect::<Vec<_>>(), vec![0, 3, 5, 9, u64::MAX]);
    assert_eq!(e.remove(u64::MAX), Some(entry(u64::MAX)));
    assert_eq!(e.remove(4), None);
    assert_eq!(e.keys().collect::<Vec<_>>(), vec![0, 3, 5, 9]);
    assert!(!e.spooled_to_file());
}

#[test]
fn two_interleaved_ascending_sequences_stay_on_disk() {
    // A snapshot writes a spilled queue's entries in pieces (ascending)
    // while newer entries are queued (ascending, higher).
    let dir = tempfile::tempdir().unwrap();
    let mut e = Entries::on_disk(Arc::from(dir.path()));
    let mut model = BTreeMap::new();
    let mut put = |e: &mut Entries, seq: u64| {
        e.insert(seq, entry(seq));
        model.insert(seq, entry(seq));
    };
    for seq in 0..100 {
        put(&mut e, seq);
    }
    for i in 0..50_000u64 {
        put(&mut e, 100 + i);
        if i % 10 == 0 {
            put(&mut e, 1_000_000 + i);
        }
    }
    assert_eq!(e.in_memory(), 0, "no entry is held decoded");
    // Removals and repeats in both.
    for seq in [0, 150, 1_000_010, 120] {
        assert_eq!(e.remove(seq), model.remove(&seq));
    }
    e.discard(1_000_020);
    model.remove(&1_000_020);
    e.insert(130, entry(7));
    model.insert(130, entry(7));
    check(&e, &model);
    assert_eq!(e.clone(), e);
}
