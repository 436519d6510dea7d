//! Cross-checks the client's codec against `mqttbytes` (v4) in both
//! directions over one shared table of test vectors: every vector is encoded
//! by the client and decoded by `mqttbytes`, and encoded by `mqttbytes` and
//! decoded by the client; both must yield the same packet, and both encoders
//! must produce identical bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use bytes::BytesMut;
use edgemq_client::codec::{self, Connect, Packet, Publish, QoS, Will};
use mqttbytes::v4 as mb;

fn mb_qos(q: QoS) -> mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => mqttbytes::QoS::ExactlyOnce,
    }
}

/// An owned test vector, convertible to both libraries' packet types.
#[derive(Clone, Debug)]
enum V {
    Connect {
        id: String,
        ka: u16,
        clean: bool,
        login: Option<(String, String)>,
        will: Option<(String, Vec<u8>, QoS, bool)>,
    },
    ConnAck(bool, u8),
    Publish {
        dup: bool,
        qos: QoS,
        retain: bool,
        topic: String,
        pid: u16,
        payload: Vec<u8>,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe(u16, Vec<(String, QoS)>),
    SubAck(u16, Vec<u8>),
    Unsubscribe(u16, Vec<String>),
    UnsubAck(u16),
    PingReq,
    PingResp,
    Disconnect,
}

fn vectors() -> Vec<V> {
    let mut v =
        vec![V::ConnAck(false, 0), V::ConnAck(true, 0), V::ConnAck(false, 5), V::PingReq, V::PingResp, V::Disconnect];
    for pid in [1u16, 2, 255, 256, 0x7fff, 65535] {
        v.push(V::PubAck(pid));
        v.push(V::PubRec(pid));
        v.push(V::PubRel(pid));
        v.push(V::PubComp(pid));
        v.push(V::UnsubAck(pid));
    }
    for clean in [false, true] {
        for login in [None, Some(("user".to_string(), "secret".to_string()))] {
            for will in [
                None,
                Some(("dev/1/status".to_string(), b"offline".to_vec(), QoS::AtMostOnce, false)),
                Some(("w".to_string(), vec![], QoS::AtLeastOnce, true)),
                Some(("w/x".to_string(), vec![0, 255], QoS::ExactlyOnce, false)),
            ] {
                v.push(V::Connect {
                    id: "sensor-42".into(),
                    ka: if clean { 0 } else { 60 },
                    clean,
                    login: login.clone(),
                    will,
                });
            }
        }
    }
    // Payload sizes straddle the remaining-length varint boundaries.
    for (i, len) in [0usize, 1, 100, 115, 116, 117, 16_370, 16_371, 16_372, 70_000].into_iter().enumerate() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            v.push(V::Publish {
                dup: qos != QoS::AtMostOnce && i % 2 == 0,
                qos,
                retain: i % 3 == 0,
                topic: format!("sensors/dev{i}/temp"),
                pid: if qos == QoS::AtMostOnce { 0 } else { 1 + i as u16 * 1000 },
                payload: (0..len).map(|b| (b * 7 + i) as u8).collect(),
            });
        }
    }
    v.push(V::Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "ünïcødé/τοπικ".into(),
        pid: 9,
        payload: b"x".to_vec(),
    });
    v.push(V::Subscribe(3, vec![("cmd/#".into(), QoS::AtLeastOnce)]));
    v.push(V::Subscribe(
        65535,
        vec![("a/+/c".into(), QoS::AtMostOnce), ("#".into(), QoS::ExactlyOnce), ("x".into(), QoS::AtLeastOnce)],
    ));
    v.push(V::SubAck(3, vec![1]));
    v.push(V::SubAck(4, vec![0, 1, 2, 0x80]));
    v.push(V::Unsubscribe(5, vec!["cmd/#".into()]));
    v.push(V::Unsubscribe(6, vec!["a".into(), "b/+".into()]));
    v
}

impl V {
    fn to_mb(&self) -> mb::Packet {
        match self.clone() {
            V::Connect { id, ka, clean, login, will } => {
                let mut c = mb::Connect::new(id);
                c.keep_alive = ka;
                c.clean_session = clean;
                if let Some((u, p)) = login {
                    c.set_login(u, p);
                }
                c.last_will = will.map(|(t, p, q, r)| mb::LastWill::new(t, p, mb_qos(q), r));
                mb::Packet::Connect(c)
            }
            V::ConnAck(sp, code) => {
                let code = match code {
                    0 => mb::ConnectReturnCode::Success,
                    _ => mb::ConnectReturnCode::NotAuthorized,
                };
                mb::Packet::ConnAck(mb::ConnAck::new(code, sp))
            }
            V::Publish { dup, qos, retain, topic, pid, payload } => {
                let mut p = mb::Publish::new(topic, mb_qos(qos), payload);
                p.dup = dup;
                p.retain = retain;
                p.pkid = pid;
                mb::Packet::Publish(p)
            }
            V::PubAck(p) => mb::Packet::PubAck(mb::PubAck::new(p)),
            V::PubRec(p) => mb::Packet::PubRec(mb::PubRec::new(p)),
            V::PubRel(p) => mb::Packet::PubRel(mb::PubRel::new(p)),
            V::PubComp(p) => mb::Packet::PubComp(mb::PubComp::new(p)),
            V::Subscribe(pid, f) => {
                let mut s = mb::Subscribe::empty_subscribe();
                s.pkid = pid;
                for (t, q) in f {
                    s.add(t, mb_qos(q));
                }
                mb::Packet::Subscribe(s)
            }
            V::SubAck(pid, codes) => {
                let codes = codes
                    .iter()
                    .map(|&c| match c {
                        0 => mb::SubscribeReasonCode::Success(mqttbytes::QoS::AtMostOnce),
                        1 => mb::SubscribeReasonCode::Success(mqttbytes::QoS::AtLeastOnce),
                        2 => mb::SubscribeReasonCode::Success(mqttbytes::QoS::ExactlyOnce),
                        _ => mb::SubscribeReasonCode::Failure,
                    })
                    .collect();
                mb::Packet::SubAck(mb::SubAck::new(pid, codes))
            }
            V::Unsubscribe(pid, topics) => mb::Packet::Unsubscribe(mb::Unsubscribe { pkid: pid, topics }),
            V::UnsubAck(p) => mb::Packet::UnsubAck(mb::UnsubAck::new(p)),
            V::PingReq => mb::Packet::PingReq,
            V::PingResp => mb::Packet::PingResp,
            V::Disconnect => mb::Packet::Disconnect,
        }
    }

    /// Encodes with the client's codec.
    fn encode_mine(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 80_000];
        let sub_raw: Vec<u8>;
        let n = match self {
            V::Connect { id, ka, clean, login, will } => {
                let c = Connect {
                    client_id: id,
                    keep_alive: *ka,
                    clean_session: *clean,
                    username: login.as_ref().map(|(u, _)| u.as_str()),
                    password: login.as_ref().map(|(_, p)| p.as_bytes()),
                    will: will.as_ref().map(|(t, p, q, r)| Will { topic: t, payload: p, qos: *q, retain: *r }),
                };
                codec::encode_connect(&c, &mut buf).unwrap()
            }
            V::Publish { dup, qos, retain, topic, pid, payload } => {
                let p = Publish {
                    dup: *dup,
                    qos: *qos,
                    retain: *retain,
                    topic: topic.as_str().into(),
                    pid: (*qos != QoS::AtMostOnce).then_some(*pid),
                    payload,
                    properties: Default::default(),
                };
                codec::encode_publish(&p, &mut buf).unwrap()
            }
            V::Subscribe(pid, f) => {
                let f: Vec<(&str, QoS)> = f.iter().map(|(t, q)| (t.as_str(), *q)).collect();
                codec::encode_subscribe(*pid, &f, &mut buf).unwrap()
            }
            V::Unsubscribe(pid, t) => {
                let t: Vec<&str> = t.iter().map(|s| s.as_str()).collect();
                codec::encode_unsubscribe(*pid, &t, &mut buf).unwrap()
            }
            V::ConnAck(sp, code) => {
                Packet::ConnAck { session_present: *sp, code: if *code == 0 { 0 } else { 5 } }.encode(&mut buf).unwrap()
            }
            V::SubAck(pid, codes) => {
                sub_raw = codes.clone();
                Packet::SubAck { pid: *pid, codes: &sub_raw }.encode(&mut buf).unwrap()
            }
            V::PubAck(p) => Packet::PubAck(*p).encode(&mut buf).unwrap(),
            V::PubRec(p) => Packet::PubRec(*p).encode(&mut buf).unwrap(),
            V::PubRel(p) => Packet::PubRel(*p).encode(&mut buf).unwrap(),
            V::PubComp(p) => Packet::PubComp(*p).encode(&mut buf).unwrap(),
            V::UnsubAck(p) => Packet::UnsubAck(*p).encode(&mut buf).unwrap(),
            V::PingReq => Packet::PingReq.encode(&mut buf).unwrap(),
            V::PingResp => Packet::PingResp.encode(&mut buf).unwrap(),
            V::Disconnect => Packet::Disconnect.encode(&mut buf).unwrap(),
        };
        buf.truncate(n);
        buf
    }
}

/// Canonical text of a client-decoded packet, compared with the vector.
fn canon_mine(p: &Packet<'_>) -> String {
    match p {
        Packet::Connect(c) => format!(
            "CONNECT {} ka={} clean={} login={:?} will={:?}",
            c.client_id,
            c.keep_alive,
            c.clean_session,
            c.username.map(|u| (u.to_string(), c.password.map(|p| p.to_vec()))),
            c.will.map(|w| (w.topic.to_string(), w.payload.to_vec(), w.qos as u8, w.retain))
        ),
        Packet::ConnAck { session_present, code } => format!("CONNACK {session_present} {}", *code != 0),
        Packet::Publish(p) => format!(
            "PUBLISH dup={} qos={} retain={} {} pid={} {:?}",
            p.dup,
            p.qos as u8,
            p.retain,
            p.topic,
            p.pid.unwrap_or(0),
            p.payload
        ),
        Packet::PubAck(x) => format!("PUBACK {x}"),
        Packet::PubRec(x) => format!("PUBREC {x}"),
        Packet::PubRel(x) => format!("PUBREL {x}"),
        Packet::PubComp(x) => format!("PUBCOMP {x}"),
        Packet::Subscribe { pid, topics } => {
            let t: Vec<(String, u8)> = topics.map(|(t, q)| (t.to_string(), q as u8)).collect();
            format!("SUBSCRIBE {pid} {t:?}")
        }
        Packet::SubAck { pid, codes } => format!("SUBACK {pid} {codes:?}"),
        Packet::Unsubscribe { pid, topics } => {
            let t: Vec<String> = topics.map(|(t, _)| t.to_string()).collect();
            format!("UNSUBSCRIBE {pid} {t:?}")
        }
        Packet::UnsubAck(x) => format!("UNSUBACK {x}"),
        Packet::PingReq => "PINGREQ".into(),
        Packet::PingResp => "PINGRESP".into(),
        Packet::Disconnect => "DISCONNECT".into(),
    }
}

fn canon_vec(v: &V) -> String {
    match v.clone() {
        V::Connect { id, ka, clean, login, will } => format!(
            "CONNECT {id} ka={ka} clean={clean} login={:?} will={:?}",
            login.map(|(u, p)| (u, Some(p.into_bytes()))),
            will.map(|(t, p, q, r)| (t, p, q as u8, r))
        ),
        V::ConnAck(sp, code) => format!("CONNACK {sp} {}", code != 0),
        V::Publish { dup, qos, retain, topic, pid, payload } => {
            format!("PUBLISH dup={dup} qos={} retain={retain} {topic} pid={pid} {payload:?}", qos as u8)
        }
        V::PubAck(x) => format!("PUBACK {x}"),
        V::PubRec(x) => format!("PUBREC {x}"),
        V::PubRel(x) => format!("PUBREL {x}"),
        V::PubComp(x) => format!("PUBCOMP {x}"),
        V::Subscribe(pid, t) => {
            let t: Vec<(String, u8)> = t.into_iter().map(|(t, q)| (t, q as u8)).collect();
            format!("SUBSCRIBE {pid} {t:?}")
        }
        V::SubAck(pid, codes) => format!("SUBACK {pid} {codes:?}"),
        V::Unsubscribe(pid, t) => format!("UNSUBSCRIBE {pid} {t:?}"),
        V::UnsubAck(x) => format!("UNSUBACK {x}"),
        V::PingReq => "PINGREQ".into(),
        V::PingResp => "PINGRESP".into(),
        V::Disconnect => "DISCONNECT".into(),
    }
}

fn mb_encode(p: &mb::Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    match p {
        mb::Packet::Connect(x) => x.write(&mut b),
        mb::Packet::ConnAck(x) => x.write(&mut b),
        mb::Packet::Publish(x) => x.write(&mut b),
        mb::Packet::PubAck(x) => x.write(&mut b),
        mb::Packet::PubRec(x) => x.write(&mut b),
        mb::Packet::PubRel(x) => x.write(&mut b),
        mb::Packet::PubComp(x) => x.write(&mut b),
        mb::Packet::Subscribe(x) => x.write(&mut b),
        mb::Packet::SubAck(x) => x.write(&mut b),
        mb::Packet::Unsubscribe(x) => x.write(&mut b),
        mb::Packet::UnsubAck(x) => x.write(&mut b),
        mb::Packet::PingReq => mb::PingReq.write(&mut b),
        mb::Packet::PingResp => mb::PingResp.write(&mut b),
        mb::Packet::Disconnect => mb::Disconnect.write(&mut b),
    }
    .unwrap();
    b.to_vec()
}

#[test]
fn client_encoding_decodes_with_mqttbytes() {
    for v in vectors() {
        let mine = v.encode_mine();
        let mut b = BytesMut::from(&mine[..]);
        let decoded = mb::read(&mut b, 1 << 20).unwrap_or_else(|e| panic!("{v:?}: {e:?}"));
        assert!(b.is_empty(), "{v:?}: trailing bytes");
        assert_eq!(decoded, v.to_mb(), "vector {v:?}");
    }
}

#[test]
fn mqttbytes_encoding_decodes_with_client() {
    for v in vectors() {
        let theirs = mb_encode(&v.to_mb());
        let (p, n) = codec::decode(&theirs)
            .unwrap_or_else(|e| panic!("{v:?}: {e:?}"))
            .unwrap_or_else(|| panic!("{v:?}: incomplete"));
        assert_eq!(n, theirs.len(), "{v:?}");
        assert_eq!(canon_mine(&p), canon_vec(&v));
        // Every proper prefix is reported as incomplete, never an error.
        for cut in [0, 1, n / 2, n - 1] {
            assert_eq!(codec::decode(&theirs[..cut]), Ok(None), "{v:?} cut {cut}");
        }
    }
}

#[test]
fn both_encoders_agree_byte_for_byte() {
    for v in vectors() {
        assert_eq!(v.encode_mine(), mb_encode(&v.to_mb()), "{v:?}");
    }
}

#[test]
fn inbound_decoder_rejects_client_only_packets() {
    for v in vectors() {
        let bytes = v.encode_mine();
        let client_only =
            matches!(v, V::Connect { .. } | V::Subscribe(..) | V::Unsubscribe(..) | V::PingReq | V::Disconnect);
        let r = codec::decode_inbound(&bytes);
        if client_only {
            assert_eq!(r, Err(codec::DecodeError::InvalidPacketType), "{v:?}");
        } else {
            assert!(matches!(r, Ok(Some(_))), "{v:?}");
        }
    }
}
