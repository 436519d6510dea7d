use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::message::Message;
use crate::protocol::PublishProps;

fn limits(max_messages: usize, policy: QueueFullPolicy) -> QueueLimits {
    QueueLimits { max_messages, max_bytes: 1 << 20, policy, queue_qos0: false, ..QueueLimits::default() }
}

fn delivery(n: u8, qos: QoS) -> Delivery {
    let msg = Message {
        topic: "t".into(),
        payload: Bytes::from(vec![n]),
        qos,
        retain: false,
        props: None,
        origin: 0,
        received: Instant::now(),
    };
    Delivery { msg: Arc::new(msg), qos, retain: false, sub_ids: Vec::new(), shared: None, mid: 0, seq: 0 }
}

fn online(limits: QueueLimits) -> SessionState {
    let mut s = SessionState::new(limits);
    s.online = true;
    s
}

#[test]
fn window_bounds_inflight_and_keeps_order() {
    let mut s = online(limits(100, QueueFullPolicy::DropNew));
    for n in 0..5 {
        s.enqueue(delivery(n, QoS::AtLeastOnce));
    }
    let now = Instant::now();
    let (a, p1) = s.next_to_send(2, now).unwrap();
    let (b, p2) = s.next_to_send(2, now).unwrap();
    assert_eq!((a.msg.payload[0], b.msg.payload[0], p1, p2), (0, 1, 1, 2));
    assert!(s.next_to_send(2, now).is_none(), "window of 2 is full");
    assert!(s.puback(p1));
    assert!(!s.puback(p1), "a second PUBACK is not known");
    let (c, p3) = s.next_to_send(2, now).unwrap();
    assert_eq!((c.msg.payload[0], p3), (2, 3));
}

#[test]
fn qos2_outbound_flow() {
    let mut s = online(limits(10, QueueFullPolicy::DropNew));
    s.enqueue(delivery(1, QoS::ExactlyOnce));
    let (_, pkid) = s.next_to_send(10, Instant::now()).unwrap();
    assert!(!s.puback(pkid), "PUBACK does not end a QoS 2 flow");
    assert!(s.pubrec(pkid));
    assert_eq!(s.inflight().next().unwrap().stage, Stage::Released);
    assert!(s.complete(pkid));
    assert_eq!(s.inflight_len(), 0);
}

#[test]
fn queue_limit_drop_new_counts_and_reports_first_drop_once() {
    let mut s = SessionState::new(limits(2, QueueFullPolicy::DropNew));
    assert_eq!(s.enqueue(delivery(0, QoS::AtLeastOnce)), Enqueued::Queued);
    assert_eq!(s.enqueue(delivery(1, QoS::AtLeastOnce)), Enqueued::Queued);
    assert_eq!(s.enqueue(delivery(2, QoS::AtLeastOnce)), Enqueued::DroppedFull { first: true });
    assert_eq!(s.enqueue(delivery(3, QoS::AtLeastOnce)), Enqueued::DroppedFull { first: false });
    assert_eq!((s.queued(), s.dropped), (2, 2));
}

#[test]
fn a_drop_episode_ends_only_when_the_queue_has_drained_to_half() {
    let mut s = online(limits(4, QueueFullPolicy::DropNew));
    for n in 0..4 {
        s.enqueue(delivery(n, QoS::AtMostOnce));
    }
    assert_eq!(s.enqueue(delivery(4, QoS::AtMostOnce)), Enqueued::DroppedFull { first: true });
    // Room for one more is not the end of the episode: no new log line.
    s.next_to_send(10, Instant::now());
    assert_eq!(s.enqueue(delivery(5, QoS::AtMostOnce)), Enqueued::Queued);
    assert_eq!(s.enqueue(delivery(6, QoS::AtMostOnce)), Enqueued::DroppedFull { first: false });
    // Drained to half the limit: the next drop starts a new episode.
    s.next_to_send(10, Instant::now());
    s.next_to_send(10, Instant::now());
    s.enqueue(delivery(7, QoS::AtMostOnce));
    s.enqueue(delivery(8, QoS::AtMostOnce));
    assert_eq!(s.enqueue(delivery(9, QoS::AtMostOnce)), Enqueued::DroppedFull { first: true });
}

#[test]
fn queue_limit_drop_oldest_keeps_newest() {
    let mut s = SessionState::new(limits(2, QueueFullPolicy::DropOldest));
    for n in 0..4 {
        assert_eq!(s.enqueue(delivery(n, QoS::AtLeastOnce)), Enqueued::Queued);
    }
    s.online = true;
    let (d, _) = s.next_to_send(10, Instant::now()).unwrap();
    assert_eq!((d.msg.payload[0], s.dropped), (2, 2));
}

#[test]
fn byte_limit_applies() {
    // `max_queued_bytes` counts payload bytes: two 1-byte payloads fit in 2.
    let mut s = SessionState::new(QueueLimits { max_bytes: 2, ..limits(100, QueueFullPolicy::DropNew) });
    assert_eq!(s.enqueue(delivery(0, QoS::AtLeastOnce)), Enqueued::Queued);
    assert_eq!(s.enqueue(delivery(1, QoS::AtLeastOnce)), Enqueued::Queued);
    assert!(matches!(s.enqueue(delivery(2, QoS::AtLeastOnce)), Enqueued::DroppedFull { .. }));
}

#[test]
fn offline_qos0_is_not_queued_by_default() {
    let mut s = SessionState::new(limits(10, QueueFullPolicy::DropNew));
    assert_eq!(s.enqueue(delivery(0, QoS::AtMostOnce)), Enqueued::DroppedOffline);
    let mut s = SessionState::new(QueueLimits { queue_qos0: true, ..limits(10, QueueFullPolicy::DropNew) });
    assert_eq!(s.enqueue(delivery(0, QoS::AtMostOnce)), Enqueued::Queued);
}

#[test]
fn expired_messages_are_skipped() {
    let mut s = online(limits(10, QueueFullPolicy::DropNew));
    let mut d = delivery(0, QoS::AtLeastOnce);
    let mut m = (*d.msg).clone();
    m.props = Some(Box::new(PublishProps { message_expiry_interval: Some(1), ..PublishProps::default() }));
    d.msg = Arc::new(m);
    s.enqueue(d);
    s.enqueue(delivery(1, QoS::AtLeastOnce));
    let later = Instant::now() + std::time::Duration::from_secs(2);
    let (d, _) = s.next_to_send(10, later).unwrap();
    assert_eq!(d.msg.payload[0], 1);
}

#[test]
fn inbound_qos2_is_recorded_until_pubrel() {
    let mut s = SessionState::new(limits(10, QueueFullPolicy::DropNew));
    assert!(s.inbound_qos2_received(7));
    assert!(!s.inbound_qos2_received(7), "a resent PUBLISH is not routed twice");
    assert!(s.inbound_qos2_released(7));
    assert!(!s.inbound_qos2_released(7));
    assert!(s.inbound_qos2_received(7), "the identifier can be reused after PUBREL");
}

#[test]
fn pkids_skip_identifiers_in_use() {
    let mut s = online(limits(100_000, QueueFullPolicy::DropNew));
    s.enqueue(delivery(0, QoS::AtLeastOnce));
    let (_, first) = s.next_to_send(10, Instant::now()).unwrap();
    assert_eq!(first, 1);
    // Cycle through every other identifier; 1 stays in flight.
    for n in 0..u16::MAX as usize {
        s.enqueue(delivery(n as u8, QoS::AtLeastOnce));
        let (_, id) = s.next_to_send(10, Instant::now()).unwrap();
        assert_ne!(id, 0);
        if id != 1 {
            assert!(s.puback(id));
        }
        assert!(s.inflight().filter(|f| f.pkid == 1).count() == 1);
    }
}

#[test]
fn the_pkid_set_holds_every_identifier_and_spreads_neighbours() {
    use std::hash::BuildHasher;
    let mut set = PkidSet::default();
    for id in 1..=u16::MAX {
        assert!(set.insert(id));
    }
    assert_eq!(set.len(), 65_535);
    assert!((1..=u16::MAX).step_by(7).all(|id| set.contains(&id)));
    // hashbrown takes its control byte from the top 7 bits: neighbours
    // must not share them all.
    let build = std::hash::BuildHasherDefault::<PkidHasher>::default();
    let tops: HashSet<u64> = (1..=128u16).map(|id| build.hash_one(id) >> 57).collect();
    assert!(tops.len() > 64, "{} distinct top bits", tops.len());
}
#[test]
fn a_memory_queue_and_an_idle_session_stay_in_their_size_classes() {
    // One per connection: 5,000 idle clients pay for every byte here.
    assert!(std::mem::size_of::<MemQueue>() <= 48);
    // Packet identifiers boxed until the first QoS 1/2 message, the queue
    // limits shared, subscriptions in a `BTreeMap` (was 304 + 16, in the
    // 320-byte class).
    assert!(std::mem::size_of::<SharedSession>() + 16 <= 224, "the Arc's allocation stays in the 224-byte class");
}
