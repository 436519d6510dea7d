use super::*;

fn entry(lsn: Lsn, qos: QoS) -> Entry {
    let msg = StoredMessage {
        topic: "t".into(),
        payload: bytes::Bytes::new(),
        qos,
        retain: false,
        props: None,
        origin: 0,
        received_ms: 0,
    };
    let pkid = if qos == QoS::AtMostOnce { 0 } else { pkid(lsn) };
    Entry { lsn, bytes: 0, msg, pkid, released: false, done: false, sent: true }
}

/// Every entry of a window is found by its packet id, across the wrap of
/// the ids, with gaps (records skipped) and QoS 0 entries between; ids not
/// in the window find nothing.
#[test]
fn an_acknowledgement_finds_its_entry_by_packet_id() {
    let lsns: Vec<Lsn> = vec![65_530, 65_531, 65_534, 65_535, 65_536, 65_540, 66_000, 70_000];
    let mut window: VecDeque<Entry> =
        lsns.iter().map(|l| entry(*l, if *l == 65_536 { QoS::AtMostOnce } else { QoS::AtLeastOnce })).collect();
    for l in &lsns {
        let id = pkid(*l);
        if *l == 65_536 {
            continue;
        }
        assert_eq!(at_pkid(&mut window, id).map(|e| e.lsn), Some(*l), "lsn {l} id {id}");
    }
    assert_eq!(pkid(65_535), 1, "the ids wrapped");
    for id in [0, 3, pkid(65_532), 65_535] {
        assert!(at_pkid(&mut window, id).is_none(), "id {id}");
    }
    assert!(at_pkid(&mut VecDeque::new(), 1).is_none());
}

/// A window wider than the packet ids (a first read across a gap of
/// reserved LSNs) is searched whole: an entry past the gap is found.
#[test]
fn an_acknowledgement_past_a_gap_wider_than_the_ids_finds_its_entry() {
    let mut window: VecDeque<Entry> =
        [10, 11, 70_000, 70_001].into_iter().map(|l| entry(l, QoS::AtLeastOnce)).collect();
    for l in [10, 11, 70_000, 70_001] {
        assert_eq!(at_pkid(&mut window, pkid(l)).map(|e| e.lsn), Some(l), "lsn {l}");
    }
}
