//! MQTT 5 flows of the sans-I/O core (feature `v5`) against a scripted
//! broker whose packets are built and parsed with `mqttbytes` v5: CONNECT
//! properties, CONNACK limits, reason codes, topic aliases both ways, user
//! properties / content type, Message Expiry of queued messages.
#![cfg(feature = "v5")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use bytes::BytesMut;
use edgemq_client::v5::{Fault, PublishProperties, ReasonCode, V5Options};
use edgemq_client::{Client, ClientError, Config, Event, LinkError, OutboxStorage, QoS, RamOutbox};
use mqttbytes::v5 as mb;

fn buf(n: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; n].into_boxed_slice())
}

#[derive(Debug, PartialEq, Clone)]
enum Ev {
    Connected(bool),
    Delivered(u16),
    Message { topic: String, payload: Vec<u8> },
    Subscribed(u16, Vec<u8>),
    Unsubscribed(u16, Vec<u8>),
    Dropped(u16),
    Rejected(u16, ReasonCode),
    Expired(u16),
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Connected { session_present } => Ev::Connected(session_present),
        Event::Delivered { pid } => Ev::Delivered(pid),
        Event::Message(p) => Ev::Message { topic: p.topic.as_str().into(), payload: p.payload.into() },
        Event::Subscribed { pid, codes } => Ev::Subscribed(pid, codes.into()),
        Event::Unsubscribed { pid, codes } => Ev::Unsubscribed(pid, codes.into()),
        Event::Dropped { pid } => Ev::Dropped(pid),
        Event::Rejected { pid, reason } => Ev::Rejected(pid, reason),
        Event::Expired { pid } => Ev::Expired(pid),
    }
}

struct H {
    c: Client<'static, RamOutbox<4096>, 4>,
    now: u32,
}

fn cfg() -> Config<'static> {
    let mut c = Config::new("dev-5");
    c.keep_alive_secs = 30;
    c.v5 = Some(V5Options { session_expiry_secs: 3600, ..V5Options::new() });
    c
}

impl H {
    fn new(cfg: Config<'static>) -> H {
        H { c: Client::new(cfg, buf(512), buf(300), RamOutbox::new()), now: 1000 }
    }

    fn poll(&mut self) -> Result<Vec<Ev>, LinkError> {
        let mut out = vec![];
        while let Some(e) = self.c.poll(self.now)? {
            out.push(own(e));
        }
        Ok(out)
    }

    /// Raw bytes of every packet the client wants to send.
    fn sent_raw(&mut self) -> Vec<Vec<u8>> {
        self.poll().unwrap();
        let data = self.c.transmit_data().to_vec();
        self.c.commit_transmitted(data.len());
        let mut out = vec![];
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (_, h, l) = edgemq_client::codec::parse_header(rest).unwrap().unwrap();
            out.push(rest[..h + l].to_vec());
            rest = &rest[h + l..];
        }
        out
    }

    fn sent(&mut self) -> Vec<mb::Packet> {
        self.sent_raw().iter().map(|b| mb::read(&mut BytesMut::from(&b[..]), 1 << 16).unwrap()).collect()
    }

    fn deliver(&mut self, p: mb::Packet) -> Result<Vec<Ev>, LinkError> {
        let mut b = BytesMut::new();
        match p {
            mb::Packet::ConnAck(x) => x.write(&mut b),
            mb::Packet::Publish(x) => x.write(&mut b),
            mb::Packet::PubAck(x) => x.write(&mut b),
            mb::Packet::PubRec(x) => x.write(&mut b),
            mb::Packet::PubComp(x) => x.write(&mut b),
            mb::Packet::SubAck(x) => x.write(&mut b),
            mb::Packet::UnsubAck(x) => x.write(&mut b),
            mb::Packet::PingResp => mb::PingResp.write(&mut b),
            mb::Packet::Disconnect(x) => x.write(&mut b),
            other => panic!("broker does not send {other:?}"),
        }
        .unwrap();
        let mut data = &b[..];
        let mut evs = vec![];
        while !data.is_empty() {
            let n = self.c.feed(data);
            data = &data[n..];
            evs.extend(self.poll()?);
        }
        Ok(evs)
    }

    fn connect(&mut self) -> mb::Connect {
        self.c.connect(self.now).unwrap();
        match self.sent().as_slice() {
            [mb::Packet::Connect(c)] => c.clone(),
            s => panic!("{s:?}"),
        }
    }

    fn up_with(&mut self, props: Option<mb::ConnAckProperties>) -> mb::Connect {
        let c = self.connect();
        let mut a = mb::ConnAck::new(mb::ConnectReturnCode::Success, false);
        a.properties = props;
        assert_eq!(self.deliver(mb::Packet::ConnAck(a)).unwrap(), vec![Ev::Connected(false)]);
        c
    }
}

fn puback(pid: u16, reason: mb::PubAckReason) -> mb::Packet {
    mb::Packet::PubAck(mb::PubAck { pkid: pid, reason, properties: None })
}

fn publishes(s: &[mb::Packet]) -> Vec<mb::Publish> {
    s.iter()
        .filter_map(|p| match p {
            mb::Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn connect_carries_v5_properties() {
    let mut h = H::new(cfg());
    let c = h.connect();
    assert_eq!(c.protocol, mqttbytes::Protocol::V5);
    let p = c.properties.unwrap();
    assert_eq!(p.session_expiry_interval, Some(3600));
    // Receive Maximum defaults to the inbound QoS 2 table size (Q2 = 4), so
    // the broker cannot overflow it; Maximum Packet Size to the receive
    // buffer, so the broker never sends what cannot be received
    // [MQTT-3.1.2-24].
    assert_eq!(p.receive_maximum, Some(4));
    assert_eq!(p.max_packet_size, Some(300));
    // No inbound alias buffer: no Topic Alias Maximum.
    assert_eq!(p.topic_alias_max, None);

    let mut h = H::new(cfg());
    h.c.set_topic_alias_buffers(buf(64), buf(64));
    let p = h.connect().properties.unwrap();
    assert_eq!(p.topic_alias_max, Some(8));
}

#[test]
fn connack_limits_are_honoured() {
    let mut c = cfg();
    c.client_id = "";
    let mut h = H::new(c);
    for i in 0..5 {
        h.c.publish("s/t", format!("m{i}").as_bytes(), QoS::AtLeastOnce, false).unwrap();
    }
    h.c.publish("s/big", &[7u8; 80], QoS::AtLeastOnce, false).unwrap();
    let mut p = mb::ConnAckProperties::new();
    p.receive_max = Some(2);
    p.server_keep_alive = Some(3);
    p.max_packet_size = Some(64);
    p.assigned_client_identifier = Some("auto-7f3a".into());
    h.up_with(Some(p));
    assert_eq!(h.c.assigned_client_id(), Some("auto-7f3a"));
    let lim = h.c.server_limits();
    assert_eq!((lim.receive_maximum, lim.maximum_packet_size, lim.keep_alive_secs), (2, 64, 3));
    // [MQTT-3.3.4-7]: no more unacknowledged QoS 1/2 PUBLISH than the
    // broker's Receive Maximum.
    let s = publishes(&h.sent());
    assert_eq!(s.iter().map(|p| p.pkid).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(h.deliver(puback(1, mb::PubAckReason::Success)).unwrap(), vec![Ev::Delivered(1)]);
    assert_eq!(publishes(&h.sent()).iter().map(|p| p.pkid).collect::<Vec<_>>(), [3]);
    let mut evs = vec![];
    let mut s = vec![];
    for pid in 2..=5 {
        evs.extend(h.deliver(puback(pid, mb::PubAckReason::Success)).unwrap());
        s.extend(h.sent());
    }
    // [MQTT-3.2.2-15]: a PUBLISH above the broker's Maximum Packet Size is
    // never sent; it leaves the outbox as Dropped.
    assert!(evs.contains(&Ev::Dropped(6)), "{evs:?}");
    assert!(publishes(&s).iter().all(|p| p.pkid != 6), "{s:?}");
    assert!(h.c.outbox().is_empty());
    // [MQTT-3.2.2-21]: the Server Keep Alive (3 s) replaces ours (30 s).
    h.now += 3000;
    assert!(matches!(h.sent().as_slice(), [mb::Packet::PingReq]));
    h.deliver(mb::Packet::PingResp).unwrap();
    // Reconnecting with an empty id resumes with the assigned one.
    h.c.link_lost();
    assert_eq!(h.connect().client_id, "auto-7f3a");
}

#[test]
fn reason_codes_are_surfaced() {
    let mut h = H::new(cfg());
    h.up_with(None);
    let a = h.c.publish("s/t", b"1", QoS::AtLeastOnce, false).unwrap().unwrap();
    let b = h.c.publish("s/t", b"2", QoS::AtLeastOnce, false).unwrap().unwrap();
    let q2 = h.c.publish("s/t", b"3", QoS::ExactlyOnce, false).unwrap().unwrap();
    h.sent();
    // Success codes below 0x80 (here "no matching subscribers") deliver.
    assert_eq!(h.deliver(puback(a, mb::PubAckReason::NoMatchingSubscribers)).unwrap(), vec![Ev::Delivered(a)]);
    assert_eq!(
        h.deliver(puback(b, mb::PubAckReason::QuotaExceeded)).unwrap(),
        vec![Ev::Rejected(b, ReasonCode::QuotaExceeded)]
    );
    // A PUBREC with an error code ends the QoS 2 flow: no PUBREL.
    let rec = mb::PubRec { pkid: q2, reason: mb::PubRecReason::NotAuthorized, properties: None };
    assert_eq!(h.deliver(mb::Packet::PubRec(rec)).unwrap(), vec![Ev::Rejected(q2, ReasonCode::NotAuthorized)]);
    assert!(h.sent().is_empty());
    assert!(h.c.outbox().is_empty());
    // A PUBCOMP with an error code surfaces it too (after PUBREC, PUBREL).
    let q2 = h.c.publish("s/t", b"4", QoS::ExactlyOnce, false).unwrap().unwrap();
    h.sent();
    let rec = mb::PubRec { pkid: q2, reason: mb::PubRecReason::Success, properties: None };
    assert!(h.deliver(mb::Packet::PubRec(rec)).unwrap().is_empty());
    assert!(matches!(h.sent().as_slice(), [mb::Packet::PubRel(r)] if r.pkid == q2));
    let comp = mb::PubComp { pkid: q2, reason: mb::PubCompReason::PacketIdentifierNotFound, properties: None };
    assert_eq!(
        h.deliver(mb::Packet::PubComp(comp)).unwrap(),
        vec![Ev::Rejected(q2, ReasonCode::PacketIdentifierNotFound)]
    );
    assert!(h.c.outbox().is_empty());

    let s = h.c.subscribe(&[("a/#", QoS::AtLeastOnce), ("b", QoS::ExactlyOnce)]).unwrap();
    h.sent();
    let codes = vec![mb::SubscribeReasonCode::QoS1, mb::SubscribeReasonCode::NotAuthorized];
    assert_eq!(
        h.deliver(mb::Packet::SubAck(mb::SubAck::new(s, codes))).unwrap(),
        vec![Ev::Subscribed(s, vec![1, 0x87])]
    );
    let u = h.c.unsubscribe(&["a/#", "zz"]).unwrap();
    h.sent();
    let mut ua = mb::UnsubAck::new(u);
    ua.reasons = vec![mb::UnsubAckReason::Success, mb::UnsubAckReason::NoSubscriptionExisted];
    assert_eq!(h.deliver(mb::Packet::UnsubAck(ua)).unwrap(), vec![Ev::Unsubscribed(u, vec![0, 0x11])]);

    // DISCONNECT from the broker ends the link with its reason.
    let mut d = mb::Disconnect::new();
    d.reason_code = mb::DisconnectReasonCode::ServerShuttingDown;
    assert_eq!(h.deliver(mb::Packet::Disconnect(d)), Err(LinkError::ServerDisconnect(ReasonCode::ServerShuttingDown)));
    assert!(!h.c.is_connected());

    // A refusing CONNACK carries its reason.
    h.connect();
    let a = mb::ConnAck::new(mb::ConnectReturnCode::BadUserNamePassword, false);
    assert_eq!(h.deliver(mb::Packet::ConnAck(a)), Err(LinkError::Rejected(ReasonCode::BadUserNameOrPassword)));
}

/// The reason code says who is at fault: every failure code (0x80 and
/// above) blames the client or the broker, every other defined code none;
/// the byte survives the round trip through the enum.
#[test]
fn reason_codes_are_split_by_who_is_at_fault() {
    for b in 0..=255u8 {
        let r = ReasonCode::from(b);
        if r == ReasonCode::Unknown {
            assert_eq!(r.fault(), Fault::Server, "{b:#x}");
            continue;
        }
        assert_eq!(r as u8, b);
        assert_eq!(r.fault() == Fault::None, b < 0x80, "{r:?}");
        assert_eq!(r.is_error(), b >= 0x80, "{r:?}");
    }
    for r in [
        ReasonCode::BadUserNameOrPassword,
        ReasonCode::NotAuthorized,
        ReasonCode::TopicNameInvalid,
        ReasonCode::PacketTooLarge,
        ReasonCode::QuotaExceeded,
        ReasonCode::QoSNotSupported,
    ] {
        assert_eq!(r.fault(), Fault::Client, "{r:?}");
    }
    for r in [
        ReasonCode::ServerUnavailable,
        ReasonCode::ServerBusy,
        ReasonCode::ServerShuttingDown,
        ReasonCode::UseAnotherServer,
        ReasonCode::UnspecifiedError,
    ] {
        assert_eq!(r.fault(), Fault::Server, "{r:?}");
    }
    assert_eq!(std::mem::size_of::<ReasonCode>(), 1);
}

#[test]
fn outbound_topic_alias_shrinks_repeated_topic() {
    let topic = "building-7/floor-3/room-12/sensor-42/temperature";
    let mut h = H::new(cfg());
    h.c.set_topic_alias_buffers(buf(128), &mut []);
    let mut p = mb::ConnAckProperties::new();
    p.topic_alias_max = Some(4);
    h.up_with(Some(p.clone()));
    for i in 0..3 {
        h.c.publish(topic, format!("{i}").as_bytes(), QoS::AtMostOnce, false).unwrap();
    }
    let raw = h.sent_raw();
    let parsed: Vec<mb::Publish> = raw
        .iter()
        .map(|b| match mb::read(&mut BytesMut::from(&b[..]), 1024).unwrap() {
            mb::Packet::Publish(p) => p,
            other => panic!("{other:?}"),
        })
        .collect();
    // First: topic and alias 1. Then: empty topic and alias 1.
    assert_eq!(parsed[0].topic, topic);
    assert_eq!(parsed[0].properties.as_ref().unwrap().topic_alias, Some(1));
    for p in &parsed[1..] {
        assert_eq!(p.topic, "");
        assert_eq!(p.properties.as_ref().unwrap().topic_alias, Some(1));
    }
    // The topic costs its two length bytes afterwards: each repeat is the
    // topic's length shorter.
    assert_eq!(raw[0].len() - raw[1].len(), topic.len());
    assert_eq!(raw[1].len(), raw[2].len());
    // [MQTT-3.3.2-7]: aliases last one connection; after a reconnect the
    // topic is sent in full again.
    h.c.link_lost();
    h.up_with(Some(p));
    h.c.publish(topic, b"x", QoS::AtMostOnce, false).unwrap();
    let s = publishes(&h.sent());
    assert_eq!(s[0].topic, topic);
    // Without a broker Topic Alias Maximum no alias is used [MQTT-3.3.2-9].
    h.c.link_lost();
    h.up_with(None);
    h.c.publish(topic, b"y", QoS::AtMostOnce, false).unwrap();
    let s = publishes(&h.sent());
    assert_eq!((s[0].topic.as_str(), s[0].properties.as_ref().map(|p| p.topic_alias)), (topic, None));
}

#[test]
fn inbound_topic_alias_is_resolved() {
    let mut h = H::new(cfg());
    h.c.set_topic_alias_buffers(&mut [], buf(64));
    h.up_with(None);
    let props = |alias| mb::PublishProperties {
        payload_format_indicator: None,
        message_expiry_interval: None,
        topic_alias: Some(alias),
        response_topic: None,
        correlation_data: None,
        user_properties: vec![],
        subscription_identifiers: vec![],
        content_type: None,
    };
    let mut p = mb::Publish::new("devices/5/cmd", mqttbytes::QoS::AtMostOnce, b"on".to_vec());
    p.properties = Some(props(2));
    let msg = |t: &str, pl: &[u8]| Ev::Message { topic: t.into(), payload: pl.into() };
    assert_eq!(h.deliver(mb::Packet::Publish(p)).unwrap(), vec![msg("devices/5/cmd", b"on")]);
    let mut p = mb::Publish::new("", mqttbytes::QoS::AtLeastOnce, b"off".to_vec());
    p.pkid = 3;
    p.properties = Some(props(2));
    assert_eq!(h.deliver(mb::Packet::Publish(p)).unwrap(), vec![msg("devices/5/cmd", b"off")]);
    assert!(matches!(h.sent().as_slice(), [mb::Packet::PubAck(a)] if a.pkid == 3));
    // An alias never set is a protocol error.
    let mut p = mb::Publish::new("", mqttbytes::QoS::AtMostOnce, b"?".to_vec());
    p.properties = Some(props(5));
    assert_eq!(h.deliver(mb::Packet::Publish(p)), Err(LinkError::TopicAlias));
    // [MQTT-3.3.2-10]: an alias above our Topic Alias Maximum (8) too.
    h.up_with(None);
    let mut p = mb::Publish::new("x/y", mqttbytes::QoS::AtMostOnce, b"?".to_vec());
    p.properties = Some(props(9));
    assert_eq!(h.deliver(mb::Packet::Publish(p)), Err(LinkError::TopicAlias));
}

#[test]
fn publish_properties_from_caller_slices() {
    let mut h = H::new(cfg());
    let users = [("unit", "°C"), ("sensor", "bme280")];
    let props =
        PublishProperties { content_type: Some("text/plain"), user_properties: &users, message_expiry_secs: None };
    let pid = h.c.publish_with("s/t", b"21.5", QoS::AtLeastOnce, false, &props).unwrap();
    h.up_with(None);
    let s = publishes(&h.sent());
    let p = s[0].properties.clone().unwrap();
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.user_properties, vec![("unit".into(), "°C".into()), ("sensor".into(), "bme280".into())]);
    assert_eq!((&s[0].payload[..], Some(s[0].pkid)), (&b"21.5"[..], pid));
    // Too many user properties, or an expiry of 0, are the caller's error.
    let many = [("k", "v"); 9];
    let bad = PublishProperties { user_properties: &many, ..Default::default() };
    assert_eq!(h.c.publish_with("s/t", b"", QoS::AtMostOnce, false, &bad), Err(ClientError::InvalidArgument));
    let zero = PublishProperties { message_expiry_secs: Some(0), ..Default::default() };
    assert_eq!(h.c.publish_with("s/t", b"", QoS::AtMostOnce, false, &zero), Err(ClientError::InvalidArgument));
}

#[test]
fn message_expiry_counts_time_in_the_outbox() {
    let mut h = H::new(cfg());
    h.poll().unwrap(); // the client learns the time (1000)
    let exp = |s| PublishProperties { message_expiry_secs: Some(s), ..Default::default() };
    let long = h.c.publish_with("s/t", b"long", QoS::AtLeastOnce, false, &exp(10)).unwrap().unwrap();
    let short = h.c.publish_with("s/t", b"short", QoS::AtLeastOnce, false, &exp(2)).unwrap().unwrap();
    // Offline for 4 s: the 2 s message expires unsent, the 10 s one goes
    // out with what is left of its interval.
    h.now += 4000;
    h.c.connect(h.now).unwrap();
    h.sent();
    let a = mb::ConnAck::new(mb::ConnectReturnCode::Success, false);
    let evs = h.deliver(mb::Packet::ConnAck(a)).unwrap();
    assert_eq!(evs, vec![Ev::Connected(false), Ev::Expired(short)]);
    let s = publishes(&h.sent());
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].pkid, s[0].properties.as_ref().unwrap().message_expiry_interval), (long, Some(6)));
    assert_eq!(h.c.outbox().len(), 1);
    // A 3.1.1 client keeps the expiry rule but sends no properties.
    let mut c = cfg();
    c.v5 = None;
    let mut h3 = H::new(c);
    h3.poll().unwrap();
    h3.c.publish_with("s/t", b"m", QoS::AtMostOnce, false, &exp(1)).unwrap();
    h3.c.publish_with("s/t", b"n", QoS::AtMostOnce, false, &exp(100)).unwrap();
    h3.now += 1500;
    h3.c.connect(h3.now).unwrap();
    h3.sent_raw();
    h3.c.feed(&[0x20, 0x02, 0x00, 0x00]);
    assert_eq!(h3.poll().unwrap(), vec![Ev::Connected(false), Ev::Expired(0)]);
    let raw = h3.sent_raw();
    assert_eq!(raw, vec![vec![0x30, 6, 0, 3, b's', b'/', b't', b'n']]);
}
