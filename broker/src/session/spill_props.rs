//! Property test of the spill queue (`spill.rs`) against a `VecDeque`:
//! random pushes (payloads from empty to a few KiB, so chunks are written
//! and read back in pieces), pops, peeks, `take_where`, connects and
//! disconnects, under memory budgets from a few entries to plenty; after
//! every step the queue holds what the model holds, in order, and every
//! delivery comes back whole (topic, payload, QoS, Subscription
//! Identifiers).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::budget::QueuePool;
use super::spill::SpillQueue;
use super::state::MessageQueue;
use crate::message::{Delivery, Message};
use crate::protocol::QoS;
use crate::store::SpillDir;

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop,
    Front,
    Online(bool),
    /// Takes the entries whose number is divisible by this.
    TakeWhere(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop_oneof![4 => 0..200usize, 1 => 200..4000usize].prop_map(Op::Push),
        4 => Just(Op::Pop),
        1 => Just(Op::Front),
        1 => any::<bool>().prop_map(Op::Online),
        1 => (2..5u32).prop_map(Op::TakeWhere),
    ]
}

/// Delivery `n` with a payload of `len` bytes.
fn delivery(n: u32, len: usize) -> Delivery {
    let msg = Message {
        topic: format!("t/{n}"),
        payload: Bytes::from(vec![n as u8; len]),
        qos: if n % 2 == 0 { QoS::AtLeastOnce } else { QoS::ExactlyOnce },
        retain: false,
        props: None,
        origin: 0,
        received: Instant::now() - Duration::from_secs(1),
    };
    let qos = msg.qos;
    Delivery { msg: Arc::new(msg), qos, retain: n % 3 == 0, sub_ids: vec![n], shared: None, mid: 0, seq: 0 }
}

/// Checks `d` is delivery `want` (number and payload length) whole.
fn same(d: &Delivery, want: (u32, usize)) -> Result<(), TestCaseError> {
    let (n, len) = want;
    prop_assert_eq!(&d.sub_ids, &vec![n]);
    let w = delivery(n, len);
    prop_assert_eq!(&d.msg.topic, &w.msg.topic);
    prop_assert_eq!(&d.msg.payload, &w.msg.payload);
    prop_assert_eq!((d.qos, d.retain, d.msg.qos), (w.qos, w.retain, w.msg.qos));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_spill_queue_behaves_as_a_deque(
        ops in prop::collection::vec(op(), 0..150),
        memory in prop::sample::select(vec![2_000usize, 40_000, 1 << 30]),
        online in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Arc::new(SpillDir::create_inline(tmp.path().join("spill")).unwrap());
        let mut q = SpillQueue::new(dir.clone(), 1, &QueuePool::new(memory), std::sync::Weak::new());
        q.set_online(online);
        let mut model: VecDeque<(u32, usize)> = VecDeque::new();
        let mut next = 0u32;
        for op in &ops {
            match op {
                Op::Push(len) => {
                    q.push_back(delivery(next, *len));
                    model.push_back((next, *len));
                    next += 1;
                }
                Op::Pop => match (q.pop_front(), model.pop_front()) {
                    (Some(d), Some(w)) => same(&d, w)?,
                    (None, None) => {}
                    (got, want) => prop_assert!(false, "pop: {:?} against {:?}", got.map(|d| d.sub_ids), want),
                },
                Op::Front => match (q.front(), model.front()) {
                    (Some(d), Some(w)) => same(d, *w)?,
                    (None, None) => {}
                    (got, want) => prop_assert!(false, "front: {:?} against {:?}", got.map(|d| d.sub_ids.clone()), want),
                },
                Op::Online(on) => q.set_online(*on),
                Op::TakeWhere(m) => {
                    let taken = q.take_where(&mut |d| d.sub_ids[0] % m == 0);
                    let (want, kept): (VecDeque<_>, VecDeque<_>) = model.iter().partition(|(n, _)| n % m == 0);
                    prop_assert_eq!(taken.len(), want.len());
                    for (d, w) in taken.iter().zip(&want) {
                        same(d, *w)?;
                    }
                    model = kept;
                }
            }
            prop_assert_eq!(q.len(), model.len());
            let mut seen = Vec::new();
            prop_assert!(q.walk_all(&mut |d| seen.push((d.sub_ids[0], d.msg.payload.len()))));
            prop_assert_eq!(&seen, &model.iter().copied().collect::<Vec<_>>());
        }
        // Drained, the queue holds no file and nothing spilled.
        while let Some(d) = q.pop_front() {
            let w = model.pop_front();
            prop_assert!(w.is_some());
            same(&d, w.unwrap_or_default())?;
        }
        prop_assert!(model.is_empty() && q.is_empty() && q.disk_bytes() == 0);
        drop(q);
        prop_assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 0, "the scratch file is deleted");
    }
}
