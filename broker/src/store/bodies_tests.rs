use super::*;
use crate::protocol::QoS;

fn body(mid: u64) -> StoredMessage {
    StoredMessage {
        topic: format!("t/{mid}"),
        payload: vec![b'x'; (mid % 300) as usize].into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        props: None,
        origin: 0,
        received_ms: mid,
    }
}

#[test]
fn a_run_of_bodies_is_indexed_in_blocks_and_read_back_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Bodies::on_disk(dir.path(), 1);
    for mid in 1..=100_000u64 {
        b.insert(mid, &body(mid));
    }
    assert!(b.single.is_empty() && b.blocks.len() <= 100_000 / 64 + 1, "one block per 64 bodies");
    assert_eq!(b.len(), 100_000);
    for mid in (1..=100_000u64).step_by(997).chain((1..=100_000).rev().step_by(1013)) {
        assert_eq!(b.get(mid), Some(body(mid)), "{mid}");
    }
    for mid in 1..=100_000u64 {
        assert_eq!(b.get(mid).map(|m| m.received_ms), Some(mid));
    }
    assert_eq!(b.get(0), None);
    assert_eq!(b.get(100_001), None);
}

#[test]
fn bodies_out_of_order_written_again_and_pruned() {
    let mut b = Bodies::default();
    for mid in [10u64, 11, 13, 200, 5, 12, 11, 201] {
        b.insert(mid, &body(mid * 1000));
    }
    for mid in [10u64, 11, 13, 200, 5, 12, 201] {
        assert_eq!(b.get(mid), Some(body(mid * 1000)), "{mid}");
    }
    assert_eq!(b.get(14), None);
    let mut keys: Vec<u64> = b.keys().collect();
    keys.sort_unstable();
    assert_eq!(keys, [5, 10, 11, 12, 13, 200, 201]);
    for mid in [11u64, 5, 201] {
        b.mark(mid);
    }
    b.sweep();
    let mut keys: Vec<u64> = b.keys().collect();
    keys.sort_unstable();
    assert_eq!(keys, [5, 11, 201]);
    assert!(b.contains(11) && !b.contains(10) && b.get(10).is_none());
    assert_eq!(b.get(201), Some(body(201_000)));
}
