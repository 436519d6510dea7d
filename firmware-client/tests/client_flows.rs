//! Drives the sans-I/O core against a scripted broker (packets built and
//! parsed with `mqttbytes`, not with the client's own codec). No transport,
//! no clock: time is a number passed in.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use bytes::BytesMut;
use edgemq_client::outbox::{EntryMeta, OutboxStorage};
use edgemq_client::{
    Client, ClientError, Config, Event, LinkError, OutboxPolicy, QoS, RamOutbox, SimFlashOutbox, State, Will,
};
use mqttbytes::v4 as mb;

fn buf(n: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; n].into_boxed_slice())
}

#[derive(Debug, PartialEq, Clone)]
enum Ev {
    Connected(bool),
    Delivered(u16),
    Message { topic: String, payload: Vec<u8>, qos: u8, dup: bool },
    Subscribed(u16, Vec<u8>),
    Unsubscribed(u16),
    Dropped(u16),
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Connected { session_present } => Ev::Connected(session_present),
        Event::Delivered { pid } => Ev::Delivered(pid),
        Event::Message(p) => {
            Ev::Message { topic: p.topic.as_str().into(), payload: p.payload.into(), qos: p.qos as u8, dup: p.dup }
        }
        Event::Subscribed { pid, codes } => Ev::Subscribed(pid, codes.into()),
        Event::Unsubscribed { pid, codes } => {
            assert!(codes.is_empty(), "MQTT 3.1.1 UNSUBACK has no reason codes");
            Ev::Unsubscribed(pid)
        }
        Event::Dropped { pid } => Ev::Dropped(pid),
        #[cfg(feature = "v5")]
        other => panic!("MQTT 5 event from a 3.1.1 client: {other:?}"),
    }
}

struct H<S: OutboxStorage> {
    c: Client<'static, S, 4>,
    now: u32,
}

impl<S: OutboxStorage> H<S> {
    fn new(cfg: Config<'static>, outbox: S) -> Self {
        Self::with_tx(cfg, outbox, 512)
    }

    fn with_tx(cfg: Config<'static>, outbox: S, tx: usize) -> Self {
        H { c: Client::new(cfg, buf(tx), buf(512), outbox), now: 1000 }
    }

    /// Polls until idle, collecting events.
    fn poll(&mut self) -> Result<Vec<Ev>, LinkError> {
        let mut out = vec![];
        while let Some(e) = self.c.poll(self.now)? {
            out.push(own(e));
        }
        Ok(out)
    }

    /// Everything the client wants to send, parsed by mqttbytes.
    fn sent(&mut self) -> Vec<mb::Packet> {
        self.poll().unwrap();
        let mut b = BytesMut::from(self.c.transmit_data());
        let n = b.len();
        self.c.commit_transmitted(n);
        let mut v = vec![];
        while !b.is_empty() {
            v.push(mb::read(&mut b, 1 << 16).unwrap());
        }
        v
    }

    fn deliver(&mut self, p: mb::Packet) -> Result<Vec<Ev>, LinkError> {
        let mut b = BytesMut::new();
        match p {
            mb::Packet::ConnAck(x) => x.write(&mut b),
            mb::Packet::Publish(x) => x.write(&mut b),
            mb::Packet::PubAck(x) => x.write(&mut b),
            mb::Packet::PubRec(x) => x.write(&mut b),
            mb::Packet::PubRel(x) => x.write(&mut b),
            mb::Packet::PubComp(x) => x.write(&mut b),
            mb::Packet::SubAck(x) => x.write(&mut b),
            mb::Packet::UnsubAck(x) => x.write(&mut b),
            mb::Packet::PingResp => mb::PingResp.write(&mut b),
            other => panic!("broker does not send {other:?}"),
        }
        .unwrap();
        self.feed_raw(&b)
    }

    fn feed_raw(&mut self, mut data: &[u8]) -> Result<Vec<Ev>, LinkError> {
        let mut evs = vec![];
        while !data.is_empty() {
            let n = self.c.feed(data);
            data = &data[n..];
            evs.extend(self.poll()?);
        }
        evs.extend(self.poll()?);
        Ok(evs)
    }

    fn connack(&mut self, session_present: bool) -> Vec<Ev> {
        self.deliver(mb::Packet::ConnAck(mb::ConnAck::new(mb::ConnectReturnCode::Success, session_present))).unwrap()
    }

    /// connect + CONNACK, asserting CONNECT went out.
    fn up(&mut self, session_present: bool) {
        self.c.connect(self.now).unwrap();
        let s = self.sent();
        assert!(matches!(s.as_slice(), [mb::Packet::Connect(_)]), "{s:?}");
        assert_eq!(self.connack(session_present), vec![Ev::Connected(session_present)]);
    }
}

fn pubs(s: &[mb::Packet]) -> Vec<(String, u16, bool, mqttbytes::QoS)> {
    s.iter()
        .filter_map(|p| match p {
            mb::Packet::Publish(p) => Some((String::from_utf8(p.payload.to_vec()).unwrap(), p.pkid, p.dup, p.qos)),
            _ => None,
        })
        .collect()
}

fn cfg() -> Config<'static> {
    let mut c = Config::new("dev-1");
    c.keep_alive_secs = 10;
    c.connect_timeout_ms = 3000;
    c.ping_timeout_ms = 2000;
    c
}

fn mbpub(topic: &str, qos: mqttbytes::QoS, pid: u16, payload: &str) -> mb::Packet {
    let mut p = mb::Publish::new(topic, qos, payload.as_bytes().to_vec());
    p.pkid = pid;
    mb::Packet::Publish(p)
}

#[test]
fn connect_carries_options() {
    let mut c = cfg();
    c.clean_session = true;
    c.username = Some("u");
    c.password = Some(b"p");
    c.will = Some(Will { topic: "dev/1/status", payload: b"gone", qos: QoS::AtLeastOnce, retain: true });
    let mut h = H::new(c, RamOutbox::<256>::new());
    h.c.connect(h.now).unwrap();
    assert_eq!(h.c.state(), State::Connecting);
    let s = h.sent();
    let mb::Packet::Connect(con) = &s[0] else { panic!("{s:?}") };
    assert_eq!(con.client_id, "dev-1");
    assert!(con.clean_session);
    assert_eq!(con.keep_alive, 10);
    assert_eq!(con.login, Some(mb::Login::new("u", "p")));
    let w = con.last_will.as_ref().unwrap();
    assert_eq!((w.topic.as_str(), &w.message[..], w.retain), ("dev/1/status", &b"gone"[..], true));
}

#[test]
fn publish_qos_0_1_2_complete_flows() {
    let mut h = H::new(cfg(), RamOutbox::<1024>::new());
    h.up(false);
    assert_eq!(h.c.publish("t/a", b"zero", QoS::AtMostOnce, false), Ok(None));
    let p1 = h.c.publish("t/a", b"one", QoS::AtLeastOnce, false).unwrap().unwrap();
    let p2 = h.c.publish("t/a", b"two", QoS::ExactlyOnce, true).unwrap().unwrap();
    let s = h.sent();
    assert_eq!(
        pubs(&s),
        vec![
            ("zero".into(), 0, false, mqttbytes::QoS::AtMostOnce),
            ("one".into(), p1, false, mqttbytes::QoS::AtLeastOnce),
            ("two".into(), p2, false, mqttbytes::QoS::ExactlyOnce),
        ]
    );
    assert_eq!(h.c.outbox().len(), 2, "QoS 0 left, QoS 1/2 wait for acks");
    assert_eq!(h.deliver(mb::Packet::PubAck(mb::PubAck::new(p1))).unwrap(), vec![Ev::Delivered(p1)]);
    assert_eq!(h.deliver(mb::Packet::PubRec(mb::PubRec::new(p2))).unwrap(), vec![]);
    assert_eq!(h.sent(), vec![mb::Packet::PubRel(mb::PubRel::new(p2))]);
    assert_eq!(h.c.outbox().len(), 1);
    assert_eq!(h.deliver(mb::Packet::PubComp(mb::PubComp::new(p2))).unwrap(), vec![Ev::Delivered(p2)]);
    assert!(h.c.outbox().is_empty());
    // Duplicate / unknown acks are ignored.
    assert_eq!(h.deliver(mb::Packet::PubAck(mb::PubAck::new(p1))).unwrap(), vec![]);
}

#[test]
fn offline_publishes_flush_in_order_with_inflight_window() {
    let mut c = cfg();
    c.max_inflight = 3;
    let mut h = H::new(c, RamOutbox::<2048>::new());
    let mut pids = vec![];
    for i in 0..8 {
        let q = if i == 4 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
        pids.push(h.c.publish("s/x", format!("m{i}").as_bytes(), q, false).unwrap());
    }
    assert_eq!(h.c.state(), State::Disconnected);
    assert!(h.sent().is_empty(), "nothing is sent while disconnected");
    h.up(true);
    let mut got = vec![];
    for _ in 0..10 {
        let s = pubs(&h.sent());
        assert!(s.iter().filter(|p| p.1 != 0).count() <= 3);
        for p in &s {
            if p.1 != 0 {
                h.deliver(mb::Packet::PubAck(mb::PubAck::new(p.1))).unwrap();
            }
        }
        got.extend(s);
    }
    let order: Vec<String> = got.iter().map(|p| p.0.clone()).collect();
    assert_eq!(order, (0..8).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(h.c.outbox().is_empty());
}

#[test]
fn reconnect_retransmits_unacked_with_dup() {
    let mut h = H::new(cfg(), RamOutbox::<1024>::new());
    h.up(false);
    let p1 = h.c.publish("t", b"a", QoS::AtLeastOnce, false).unwrap().unwrap();
    let p2 = h.c.publish("t", b"b", QoS::ExactlyOnce, false).unwrap().unwrap();
    let p3 = h.c.publish("t", b"c", QoS::ExactlyOnce, false).unwrap().unwrap();
    assert_eq!(pubs(&h.sent()).len(), 3);
    h.deliver(mb::Packet::PubRec(mb::PubRec::new(p3))).unwrap();
    assert_eq!(h.sent(), vec![mb::Packet::PubRel(mb::PubRel::new(p3))]);
    h.c.link_lost();
    assert_eq!(h.c.state(), State::Disconnected);
    h.now += 5000;
    h.up(true);
    let s = h.sent();
    assert_eq!(
        pubs(&s),
        vec![("a".into(), p1, true, mqttbytes::QoS::AtLeastOnce), ("b".into(), p2, true, mqttbytes::QoS::ExactlyOnce),]
    );
    assert!(s.contains(&mb::Packet::PubRel(mb::PubRel::new(p3))), "{s:?}");
    h.deliver(mb::Packet::PubComp(mb::PubComp::new(p3))).unwrap();
    h.deliver(mb::Packet::PubAck(mb::PubAck::new(p1))).unwrap();
    h.deliver(mb::Packet::PubRec(mb::PubRec::new(p2))).unwrap();
    h.sent();
    h.deliver(mb::Packet::PubComp(mb::PubComp::new(p2))).unwrap();
    assert!(h.c.outbox().is_empty());
}

#[test]
fn new_session_drops_released_qos2_and_resends_rest() {
    let mut h = H::new(cfg(), RamOutbox::<1024>::new());
    h.up(false);
    let p1 = h.c.publish("t", b"a", QoS::ExactlyOnce, false).unwrap().unwrap();
    let _p2 = h.c.publish("t", b"b", QoS::AtLeastOnce, false).unwrap().unwrap();
    h.sent();
    h.deliver(mb::Packet::PubRec(mb::PubRec::new(p1))).unwrap();
    h.c.link_lost();
    h.up(false);
    let s = h.sent();
    assert_eq!(pubs(&s).len(), 1);
    assert!(!s.iter().any(|p| matches!(p, mb::Packet::PubRel(_))));
    assert_eq!(h.c.outbox().len(), 1);
}

#[test]
fn inbound_qos1_acked_and_qos2_delivered_exactly_once() {
    let mut h = H::new(cfg(), RamOutbox::<256>::new());
    h.up(false);
    let ev = h.deliver(mbpub("cmd/a", mqttbytes::QoS::AtLeastOnce, 3, "hi")).unwrap();
    assert_eq!(ev, vec![Ev::Message { topic: "cmd/a".into(), payload: b"hi".to_vec(), qos: 1, dup: false }]);
    assert_eq!(h.sent(), vec![mb::Packet::PubAck(mb::PubAck::new(3))]);

    let ev = h.deliver(mbpub("cmd/b", mqttbytes::QoS::ExactlyOnce, 7, "once")).unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(h.sent(), vec![mb::Packet::PubRec(mb::PubRec::new(7))]);
    // Broker retransmits (e.g. PUBREC lost): acked again, not delivered again.
    let mut dup = mb::Publish::new("cmd/b", mqttbytes::QoS::ExactlyOnce, b"once".to_vec());
    dup.pkid = 7;
    dup.dup = true;
    assert_eq!(h.deliver(mb::Packet::Publish(dup.clone())).unwrap(), vec![]);
    assert_eq!(h.sent(), vec![mb::Packet::PubRec(mb::PubRec::new(7))]);
    // Survives a reconnect that resumes the session.
    h.c.link_lost();
    h.up(true);
    assert_eq!(h.deliver(mb::Packet::Publish(dup)).unwrap(), vec![]);
    h.sent();
    assert_eq!(h.deliver(mb::Packet::PubRel(mb::PubRel::new(7))).unwrap(), vec![]);
    assert_eq!(h.sent(), vec![mb::Packet::PubComp(mb::PubComp::new(7))]);
    // After release, the id may be reused for a new message.
    assert_eq!(h.deliver(mbpub("cmd/b", mqttbytes::QoS::ExactlyOnce, 7, "next")).unwrap().len(), 1);
}

#[test]
fn inbound_qos2_table_overflow_is_a_link_error() {
    let mut h = H::new(cfg(), RamOutbox::<256>::new());
    h.up(false);
    for pid in 1..=4 {
        h.deliver(mbpub("c", mqttbytes::QoS::ExactlyOnce, pid, "x")).unwrap();
        h.sent();
    }
    let r = h.deliver(mbpub("c", mqttbytes::QoS::ExactlyOnce, 5, "x"));
    assert_eq!(r, Err(LinkError::TooManyInboundQos2));
    assert_eq!(h.c.state(), State::Disconnected);
}

#[test]
fn keep_alive_ping_and_dead_link_detection() {
    let mut h = H::new(cfg(), RamOutbox::<256>::new());
    h.up(false);
    h.now += 9_999;
    assert!(h.sent().is_empty());
    h.now += 1;
    assert_eq!(h.sent(), vec![mb::Packet::PingReq]);
    h.now += 500;
    assert!(h.sent().is_empty(), "one ping outstanding at a time");
    h.deliver(mb::Packet::PingResp).unwrap();
    h.now += 10_000;
    assert_eq!(h.sent(), vec![mb::Packet::PingReq]);
    h.now += 1_999;
    assert_eq!(h.poll(), Ok(vec![]));
    h.now += 1;
    assert_eq!(h.poll(), Err(LinkError::PingTimeout));
    assert_eq!(h.c.state(), State::Disconnected);
    assert!(h.c.transmit_data().is_empty());
}

#[test]
fn silence_from_broker_triggers_ping_even_while_publishing() {
    let mut h = H::new(cfg(), RamOutbox::<4096>::new());
    h.up(false);
    for _ in 0..10 {
        h.now += 1_100;
        h.c.publish("t", b"x", QoS::AtMostOnce, false).unwrap();
        let s = h.sent();
        if s.contains(&mb::Packet::PingReq) {
            return;
        }
    }
    panic!("no ping although the broker was silent");
}

#[test]
fn connack_timeout_and_refusal() {
    let mut h = H::new(cfg(), RamOutbox::<256>::new());
    h.c.connect(h.now).unwrap();
    h.sent();
    h.now += 2_999;
    assert_eq!(h.poll(), Ok(vec![]));
    h.now += 1;
    assert_eq!(h.poll(), Err(LinkError::ConnectTimeout));
    h.c.connect(h.now).unwrap();
    h.sent();
    let r = h.deliver(mb::Packet::ConnAck(mb::ConnAck::new(mb::ConnectReturnCode::NotAuthorized, false)));
    assert_eq!(r, Err(LinkError::Refused(5)));
    assert_eq!(h.c.state(), State::Disconnected);
}

#[test]
fn malformed_input_is_an_error_then_reconnect_works() {
    let mut h = H::new(cfg(), RamOutbox::<256>::new());
    h.up(false);
    let r = h.feed_raw(&[0x30, 0x03, 0x00, 0x05, b'a']);
    assert!(matches!(r, Err(LinkError::Malformed(_))), "{r:?}");
    assert_eq!(h.c.state(), State::Disconnected);
    h.up(true);
    // Packets before CONNACK are a protocol violation.
    h.c.connect(h.now).unwrap();
    h.sent();
    assert_eq!(h.deliver(mb::Packet::PingResp), Err(LinkError::UnexpectedPacket));
    // Oversized inbound packet.
    h.up(false);
    let big = "x".repeat(600);
    assert_eq!(h.deliver(mbpub("t", mqttbytes::QoS::AtMostOnce, 0, &big)), Err(LinkError::PacketTooLarge));
}

#[test]
fn byte_by_byte_input() {
    let mut h = H::new(cfg(), RamOutbox::<256>::new());
    h.c.connect(h.now).unwrap();
    h.sent();
    let mut evs = vec![];
    for b in [0x20u8, 0x02, 0x01, 0x00, 0x30, 0x05, 0x00, 0x01, b'c', b'o', b'k'] {
        evs.extend(h.feed_raw(&[b]).unwrap());
    }
    assert_eq!(
        evs,
        vec![Ev::Connected(true), Ev::Message { topic: "c".into(), payload: b"ok".to_vec(), qos: 0, dup: false }]
    );
}

#[test]
fn outbox_full_reject_and_drop_oldest_qos0() {
    // Each entry: 8 header + 1 topic + 2 payload = 11 bytes; 4 fit in 44.
    let mut h = H::new(cfg(), RamOutbox::<44>::new());
    h.c.publish("t", b"q0", QoS::AtMostOnce, false).unwrap();
    h.c.publish("t", b"q1", QoS::AtLeastOnce, false).unwrap();
    h.c.publish("t", b"r0", QoS::AtMostOnce, false).unwrap();
    h.c.publish("t", b"s1", QoS::AtLeastOnce, false).unwrap();
    assert_eq!(h.c.publish("t", b"t1", QoS::AtLeastOnce, false), Err(ClientError::OutboxFull));
    let mut c = cfg();
    c.outbox_policy = OutboxPolicy::DropOldestQos0;
    let mut h2 = H::new(c, h.c.into_outbox());
    h2.c.publish("t", b"t1", QoS::AtLeastOnce, false).unwrap();
    h2.c.publish("t", b"u1", QoS::AtLeastOnce, false).unwrap();
    assert_eq!(
        h2.c.publish("t", b"v1", QoS::AtLeastOnce, false),
        Err(ClientError::OutboxFull),
        "QoS 1 is never dropped"
    );
    h2.up(true);
    let order: Vec<String> = pubs(&h2.sent()).into_iter().map(|p| p.0).collect();
    assert_eq!(order, ["q1", "s1", "t1", "u1"]);
    assert_eq!(h2.c.publish("t", &[0; 600], QoS::AtMostOnce, false), Err(ClientError::TooLarge));
    assert_eq!(h2.c.publish("t/#", b"", QoS::AtMostOnce, false), Err(ClientError::InvalidTopic));
}

#[test]
fn subscribe_and_unsubscribe() {
    let mut h = H::new(cfg(), RamOutbox::<256>::new());
    assert_eq!(h.c.subscribe(&[("cmd/#", QoS::AtLeastOnce)]), Err(ClientError::NotConnected));
    h.up(false);
    assert_eq!(h.c.subscribe(&[("a/#/b", QoS::AtMostOnce)]), Err(ClientError::InvalidTopic));
    let pid = h.c.subscribe(&[("cmd/#", QoS::AtLeastOnce), ("cfg/+", QoS::ExactlyOnce)]).unwrap();
    let s = h.sent();
    let mb::Packet::Subscribe(sub) = &s[0] else { panic!("{s:?}") };
    assert_eq!(sub.pkid, pid);
    assert_eq!(sub.filters.len(), 2);
    assert_eq!(sub.filters[1].path, "cfg/+");
    let ev = h
        .deliver(mb::Packet::SubAck(mb::SubAck::new(
            pid,
            vec![mb::SubscribeReasonCode::Success(mqttbytes::QoS::AtLeastOnce), mb::SubscribeReasonCode::Failure],
        )))
        .unwrap();
    assert_eq!(ev, vec![Ev::Subscribed(pid, vec![1, 0x80])]);
    let u = h.c.unsubscribe(&["cmd/#"]).unwrap();
    let s = h.sent();
    assert!(matches!(&s[0], mb::Packet::Unsubscribe(x) if x.pkid == u && x.topics == ["cmd/#"]));
    assert_eq!(h.deliver(mb::Packet::UnsubAck(mb::UnsubAck::new(u))).unwrap(), vec![Ev::Unsubscribed(u)]);
}

#[test]
fn busy_when_transmit_buffer_full() {
    let mut h = H::new(cfg(), RamOutbox::<256>::new());
    h.up(false);
    let long = "x".repeat(200);
    h.c.subscribe(&[(&long, QoS::AtMostOnce)]).unwrap();
    h.c.subscribe(&[(&long, QoS::AtMostOnce)]).unwrap();
    assert_eq!(h.c.subscribe(&[(&long, QoS::AtMostOnce)]), Err(ClientError::Busy));
    h.sent();
    assert!(h.c.subscribe(&[(&long, QoS::AtMostOnce)]).is_ok());
}

#[test]
fn outbox_survives_simulated_reboot() {
    let mut h = H::new(cfg(), SimFlashOutbox::<512>::new());
    h.up(false);
    let p1 = h.c.publish("s/1", b"a", QoS::AtLeastOnce, false).unwrap().unwrap();
    let p2 = h.c.publish("s/1", b"b", QoS::ExactlyOnce, false).unwrap().unwrap();
    h.sent();
    h.deliver(mb::Packet::PubRec(mb::PubRec::new(p2))).unwrap();
    h.c.publish("s/1", b"c", QoS::AtLeastOnce, false).unwrap();
    // Power cut: only the flash image survives.
    let image = *h.c.into_outbox().image();
    let mut h = H::new(cfg(), SimFlashOutbox::<512>::from_image(image));
    assert_eq!(h.c.outbox().len(), 3);
    // A new message after reboot must not reuse a stored packet id.
    let p4 = h.c.publish("s/1", b"d", QoS::AtLeastOnce, false).unwrap().unwrap();
    assert!(p4 != p1 && p4 != p2);
    h.up(true);
    let s = h.sent();
    let names: Vec<(String, bool)> = pubs(&s).into_iter().map(|p| (p.0, p.2)).collect();
    assert_eq!(names, [("a".into(), true), ("c".into(), false), ("d".into(), false)]);
    assert!(s.contains(&mb::Packet::PubRel(mb::PubRel::new(p2))));
}

#[test]
fn disconnect_sends_disconnect_and_keeps_outbox() {
    let mut h = H::new(cfg(), RamOutbox::<256>::new());
    h.up(false);
    h.c.publish("t", b"a", QoS::AtLeastOnce, false).unwrap();
    h.sent();
    h.c.disconnect();
    assert_eq!(h.c.state(), State::Disconnected);
    assert_eq!(h.sent(), vec![mb::Packet::Disconnect]);
    assert_eq!(h.c.outbox().len(), 1);
}

#[test]
fn stored_message_that_no_longer_fits_is_dropped() {
    // Written by a firmware with bigger buffers, recovered after an update.
    let mut flash = SimFlashOutbox::<512>::new();
    let meta = |pid| EntryMeta { qos: QoS::AtLeastOnce, retain: false, props: false, pid, flags: 0 };
    flash.push(meta(5), "t", &[0; 300]).unwrap();
    flash.push(meta(6), "t", b"ok").unwrap();
    let mut h = H::with_tx(cfg(), flash, 128);
    h.c.connect(h.now).unwrap();
    h.sent();
    let ev = h.connack(true);
    assert_eq!(ev, vec![Ev::Connected(true), Ev::Dropped(5)]);
    let s = pubs(&h.sent());
    assert_eq!(s, vec![("ok".into(), 6, false, mqttbytes::QoS::AtLeastOnce)]);
    // A CONNECT that cannot fit the transmit buffer is the caller's error.
    let mut c = cfg();
    c.client_id = "a-very-long-client-identifier-that-does-not-fit";
    let mut tiny = H::with_tx(c, RamOutbox::<64>::new(), 32);
    assert_eq!(tiny.c.connect(0), Err(ClientError::TooLarge));
    assert_eq!(tiny.c.state(), State::Disconnected);
}
