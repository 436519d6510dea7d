use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::QoS;
use crate::session::state::{QueueLimits, SessionState};
use crate::store::record::{Record, StoredMessage};
use crate::store::segment::{FRAME, HEADER_LEN};
use crate::store::{Model, Recovery, StoreConfig, SyncMode};

fn cfg(root: &Path) -> StoreConfig {
    StoreConfig {
        dir: root.join("store"),
        spill_dir: root.join("spill"),
        sync: SyncMode::Always,
        segment_bytes: 1 << 20,
        compact_bytes: 1 << 30,
        fs: Arc::new(crate::store::fs::RealFs),
    }
}

fn session(key: u64) -> Record {
    Record::Session { key, client_id: format!("c{key}"), expiry_secs: None, offline_since_ms: 0, user: None }
}

fn msg(mid: u64) -> Record {
    let m = StoredMessage {
        topic: "t".into(),
        payload: Bytes::from(vec![mid as u8; 50]),
        qos: QoS::ExactlyOnce,
        retain: false,
        props: None,
        origin: 0,
        received_ms: 1,
    };
    Record::Msg { mid, msg: m }
}

fn enq(key: u64, seq: u64, mid: u64) -> Record {
    Record::Enq { key, seq, mid, qos: QoS::ExactlyOnce, retain: false, sub_ids: vec![], shared: None }
}

/// Writes `records` (LSNs 1, 2, ...) into a store, flips a byte in the
/// payload of each record whose LSN is in `damaged`, and recovers.
fn recover_damaged(records: &[Record], damaged: &[u64]) -> (Model, Recovery) {
    let tmp = tempfile::tempdir().unwrap();
    let (journal, _, _) = crate::store::open(&cfg(tmp.path())).unwrap();
    for r in records {
        journal.append(r);
    }
    journal.close();
    let seg = tmp.path().join("store/00000000000000000001.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut at = HEADER_LEN;
    for lsn in 1..=records.len() as u64 {
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if damaged.contains(&lsn) {
            bytes[at + FRAME] ^= 0xFF;
        }
        at += FRAME + n;
    }
    std::fs::write(&seg, bytes).unwrap();
    let (journal, model, rec) = crate::store::open(&cfg(tmp.path())).unwrap();
    journal.close();
    (model, rec)
}

fn limits() -> QueueLimits {
    QueueLimits { max_messages: 100, max_bytes: 1 << 20, ..QueueLimits::default() }
}

/// The session as the broker restores it.
fn restored(model: &mut Model, key: u64) -> SessionState {
    let mut st = SessionState::new(limits());
    st.restore(model.sessions.remove(&key).unwrap(), &mut |_| None);
    st
}

#[test]
fn queued_messages_and_sessions_touched_by_a_loss_are_counted() {
    let mut records = vec![session(1), session(2)];
    for i in 0..6 {
        records.push(msg(i + 1));
        records.push(enq(1, i, i + 1));
    }
    records.push(session(3));
    records.push(Record::Sub { key: 3, filter: "a".into(), options: Default::default(), id: None });
    // LSNs: 1, 2 sessions; 3 + 2i Msg i+1, 4 + 2i its Enq; 15 session 3, 16 its Sub.
    let (model, rec) = recover_damaged(&records, &[6, 7, 15]);
    assert_eq!(rec.losses.iter().map(|l| (l.from, l.to)).collect::<Vec<_>>(), [(6, 7), (15, 15)]);
    let q: Vec<u64> = model.sessions[&1].queue.keys().collect();
    // Entry 1's Enq (LSN 6) and entry 2's body (LSN 7) are lost.
    assert_eq!(q, [0, 2, 3, 4, 5]);
    assert!(!model.sessions.contains_key(&3), "its Session record was lost");
    // Counted again from the records, as `open` does.
    let mut t = super::Tracker::default();
    let mut replay = crate::store::recover::Replay::default();
    for (i, r) in records.into_iter().enumerate() {
        let lsn = i as u64 + 1;
        if [6, 7, 15].contains(&lsn) {
            continue;
        }
        t.before(lsn, replay.target(&r));
        replay.apply(r);
    }
    let first = t.of(6).unwrap();
    assert_eq!((first.queued_lost, first.sessions.iter().copied().collect::<Vec<_>>()), (2, vec![1]));
    let second = t.of(15).unwrap();
    assert_eq!((second.queued_lost, second.sessions.iter().copied().collect::<Vec<_>>()), (0, vec![3]));
}

/// A lost PUBREC record (`In2`: the inbound QoS 2 packet identifier
/// awaiting PUBREL): the broker no longer knows the identifier, so a
/// retransmitted PUBLISH with it is routed again (a duplicate for the
/// subscribers), and its PUBREL is answered with PUBCOMP as for any
/// unknown identifier ([MQTT-4.3.3-11]).
#[test]
fn a_lost_pubrec_record_makes_a_retransmission_a_duplicate() {
    let (mut model, rec) = recover_damaged(&[session(1), Record::In2 { key: 1, pkid: 5 }, msg(1)], &[2]);
    assert_eq!((rec.losses[0].from, rec.losses[0].to), (2, 2));
    let mut st = restored(&mut model, 1);
    assert!(st.inbound_qos2_received(5), "the retransmitted PUBLISH is routed again");
}

/// A lost release (`In2Done`) would leave the identifier recorded, and the
/// client's next QoS 2 message with it would be dropped as a redelivery:
/// identifiers recorded before lost records are forgotten instead (a
/// possible duplicate, never a loss); those recorded after are kept.
#[test]
fn identifiers_whose_release_may_be_lost_are_forgotten_not_kept() {
    let records = [
        session(1),
        Record::In2 { key: 1, pkid: 6 },
        Record::In2Done { key: 1, pkid: 6 },
        msg(1),
        Record::In2 { key: 1, pkid: 7 },
    ];
    let (mut model, _) = recover_damaged(&records, &[3]);
    let mut st = restored(&mut model, 1);
    assert!(st.inbound_qos2_received(6), "a new PUBLISH with packet id 6 is routed, not dropped");
    assert!(!st.inbound_qos2_received(7), "7 was recorded after the loss: still awaiting PUBREL");
}

/// A record with a valid checksum that names an id the broker never
/// writes is damage, like one that does not decode: the router's counters
/// continue from the recovered maximum and must not overflow.
#[test]
fn a_record_with_an_impossible_id_is_damage() {
    let impossible = match msg(1) {
        Record::Msg { msg, .. } => Record::Msg { mid: u64::MAX, msg },
        _ => unreachable!(),
    };
    let (model, rec) = recover_damaged(&[session(1), impossible, msg(2)], &[]);
    assert_eq!((rec.losses[0].from, rec.losses[0].to), (2, 2));
    assert_eq!(model.max_mid, 2);
    assert_eq!(rec.moved_aside.len(), 1, "kept aside for inspection");
}

/// Writes `records` into a fresh store and closes it; the directory.
fn written(records: &[Record]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let (journal, _, _) = crate::store::open(&cfg(tmp.path())).unwrap();
    for r in records {
        journal.append(r);
    }
    journal.close();
    tmp
}

/// A power cut while the writer began a new segment leaves the start of
/// its header: a torn write like an unfinished last frame, not damage, so
/// the inbound QoS 2 packet identifiers recorded before it are kept (they
/// were forgotten, and a retransmitted PUBLISH was delivered twice).
/// Found by the power-loss test (`store/powerloss_tests.rs`, seed 23).
#[test]
fn a_torn_header_of_a_new_segment_is_a_torn_write() {
    let tmp = written(&[session(1), Record::In2 { key: 1, pkid: 5 }]);
    let seg = tmp.path().join("store").join(crate::store::log::segment_name(3));
    std::fs::write(&seg, &crate::store::segment::header(3)[..21]).unwrap();
    let (journal, model, rec) = crate::store::open(&cfg(tmp.path())).unwrap();
    assert!(rec.losses.iter().all(|l| l.torn) && rec.moved_aside.is_empty(), "{:?}", rec.losses);
    assert_eq!(rec.lost_up_to, 0);
    assert!(model.sessions[&1].in2.contains(&5), "the PUBREC'd identifier is kept");
    assert_eq!(journal.append(&msg(1)), 3, "the segment is written again and used");
    journal.close();
    let (journal, model, rec) = crate::store::open(&cfg(tmp.path())).unwrap();
    journal.close();
    assert_eq!((rec.records, rec.truncated_bytes, rec.losses.len()), (3, 0, 0));
    assert!(model.sessions[&1].in2.contains(&5));
}

/// A power cut can also lose unsynced pages while the file's size grew:
/// damage (zeros) after the last record, at the end of the log. Its bytes
/// are kept aside and its LSNs reserved as for any damage, but the records
/// there were never durable, so never acknowledged: the inbound QoS 2
/// identifiers recorded before them are kept, now and at every later open
/// (they were forgotten: a retransmitted PUBLISH was delivered twice).
/// Found by the power-loss test (`store/powerloss_tests.rs`, seed 10).
/// Damage followed by intact records still makes them forgotten
/// (`identifiers_whose_release_may_be_lost_are_forgotten_not_kept`).
#[test]
fn lost_pages_at_the_end_of_the_log_keep_inbound_qos2_identifiers() {
    let tmp = written(&[session(1), Record::In2 { key: 1, pkid: 5 }, msg(1)]);
    let seg = tmp.path().join("store/00000000000000000001.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0; 100]);
    std::fs::write(&seg, bytes).unwrap();
    let (journal, model, rec) = crate::store::open(&cfg(tmp.path())).unwrap();
    assert_eq!(rec.losses.len(), 1);
    let loss = &rec.losses[0];
    assert!(!loss.torn && loss.from == 4 && loss.to > 4 && loss.kept.len() == 1, "kept aside, LSNs reserved: {loss:?}");
    assert_eq!(rec.lost_up_to, 0);
    assert!(model.sessions[&1].in2.contains(&5), "the PUBREC'd identifier is kept");
    assert!(journal.append(&msg(2)) > loss.to, "new records after the reserved LSNs");
    journal.close();
    let (journal, model, rec) = crate::store::open(&cfg(tmp.path())).unwrap();
    journal.close();
    assert!(rec.losses.iter().all(|l| l.known && l.bytes == 0), "only the known gap: {:?}", rec.losses);
    assert_eq!(rec.lost_up_to, 0, "a later open agrees");
    assert!(model.sessions[&1].in2.contains(&5));
}
