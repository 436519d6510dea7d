//! The logical records of the store and their binary encoding.
//!
//! Records are idempotent where they can race with a snapshot (queue and
//! in-flight changes name the entry or packet identifier they apply to),
//! so replay may see a change both inside a snapshot and after it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::message::{Delivery, Message, SessionKey};
use crate::protocol::{PublishProps, QoS, RetainHandling, SubOptions};

/// One change of durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A persistent session exists (or changed its expiry or went offline).
    Session {
        key: SessionKey,
        client_id: String,
        expiry_secs: Option<u64>,
        offline_since_ms: u64,
        /// The user whose CONNECT created the session. Written after the
        /// other fields only when set, so a session without one is
        /// encoded as before owners existed, and such records (every
        /// store of earlier releases) read as `None`.
        user: Option<String>,
    },
    SessionEnd {
        key: SessionKey,
    },
    Sub {
        key: SessionKey,
        filter: String,
        options: SubOptions,
        id: Option<u32>,
    },
    Unsub {
        key: SessionKey,
        filter: String,
    },
    /// A retained message (an empty payload deletes the topic's).
    Retain(StoredMessage),
    /// A message body, referenced by `Enq` records.
    Msg {
        mid: u64,
        msg: StoredMessage,
    },
    /// Entry `seq` of a session's queue.
    Enq {
        key: SessionKey,
        seq: u64,
        mid: u64,
        qos: QoS,
        retain: bool,
        sub_ids: Vec<u32>,
        shared: Option<String>,
    },
    /// Entry `seq` left the queue: discarded (`pkid` 0) or in flight.
    Pop {
        key: SessionKey,
        seq: u64,
        pkid: u16,
    },
    /// The in-flight message `pkid` is complete (PUBACK, PUBCOMP).
    Ack {
        key: SessionKey,
        pkid: u16,
    },
    /// The in-flight QoS 2 message `pkid` got PUBREC: PUBREL is owed.
    Rel {
        key: SessionKey,
        pkid: u16,
    },
    /// An inbound QoS 2 packet identifier awaiting PUBREL, and its release.
    In2 {
        key: SessionKey,
        pkid: u16,
    },
    In2Done {
        key: SessionKey,
        pkid: u16,
    },
    /// A QoS 2 message of a persistent publisher (session `key`, its
    /// packet identifier `pkid`) is being routed: written after its body
    /// `mid` and before its queue entries; its publisher's `In2` record
    /// ends the routing. A cut in between leaves some subscribers with the
    /// message and the publisher without its `In2`: replay keeps the
    /// routing as interrupted (`store::recover::Interrupted`), so the
    /// publisher's retransmission reaches only the others. `crc` covers
    /// topic and payload (a retransmission carries the same message); `got`
    /// names the sessions and shared groups that already have it (empty
    /// when written live; a snapshot writes an interrupted routing with
    /// what replay had found). Format 2.
    Routing {
        key: SessionKey,
        pkid: u16,
        mid: u64,
        crc: u32,
        got: Vec<(SessionKey, Option<String>)>,
    },
    SnapshotBegin {
        id: u64,
    },
    /// A record written by a snapshot (only applied if the snapshot completes).
    Snap(Box<Record>),
    SnapshotEnd {
        id: u64,
    },
}

/// The checksum [`Record::Routing`] keeps of a message: its topic (with
/// its length, so topic and payload cannot trade bytes) and payload.
pub fn message_crc(topic: &str, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(topic.len() as u32).to_le_bytes());
    h.update(topic.as_bytes());
    h.update(payload);
    h.finalize()
}

/// A message as stored: wall-clock time instead of `Instant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub props: Option<Box<PublishProps>>,
    pub origin: SessionKey,
    pub received_ms: u64,
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl StoredMessage {
    /// Appends the body's encoding (as inside a `Msg` record).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = W(out);
        w.msg(self);
    }

    /// Decodes what [`StoredMessage::encode_into`] wrote.
    pub fn decode(b: &[u8]) -> Result<StoredMessage, RecordError> {
        let mut r = R(b);
        let m = r.msg()?;
        if !r.0.is_empty() {
            return Err(RecordError);
        }
        Ok(m)
    }

    pub fn from_message(m: &Message, now: Instant, wall: SystemTime) -> StoredMessage {
        let age = now.saturating_duration_since(m.received);
        StoredMessage {
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            qos: m.qos,
            retain: m.retain,
            props: m.props.clone(),
            origin: m.origin,
            received_ms: unix_ms(wall).saturating_sub(age.as_millis() as u64),
        }
    }

    pub fn into_message(self, now: Instant, wall: SystemTime) -> Message {
        let age = Duration::from_millis(unix_ms(wall).saturating_sub(self.received_ms));
        Message {
            topic: self.topic,
            payload: self.payload,
            qos: self.qos,
            retain: self.retain,
            props: self.props,
            origin: self.origin,
            received: now.checked_sub(age).unwrap_or(now),
        }
    }
}

/// Why a record could not be decoded (a bug or a foreign file: the CRC
/// already vouched for the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("undecodable store record")]
pub struct RecordError;

/// A message body to encode, borrowed (from a [`StoredMessage`] or a live
/// message).
struct MsgView<'a> {
    topic: &'a str,
    payload: &'a [u8],
    qos: QoS,
    retain: bool,
    origin: SessionKey,
    received_ms: u64,
    props: Option<&'a PublishProps>,
}

/// Appends encodings to a buffer it borrows (never takes: a caller may be
/// encoding into a buffer shared with other records).
struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        self.u8(u8::from(v.is_some()));
        self.u64(v.unwrap_or(0));
    }
    fn opt_bytes(&mut self, v: Option<&[u8]>) {
        self.u8(u8::from(v.is_some()));
        if let Some(b) = v {
            self.bytes(b);
        }
    }
    /// How a queue entry is delivered: QoS, RETAIN, Subscription
    /// Identifiers, shared subscription.
    fn entry(&mut self, qos: QoS, retain: bool, sub_ids: &[u32], shared: Option<&str>) {
        self.u8(qos as u8 | u8::from(retain) << 2);
        self.u32(sub_ids.len() as u32);
        for id in sub_ids {
            self.u32(*id);
        }
        self.opt_bytes(shared.map(str::as_bytes));
    }

    fn msg(&mut self, m: &StoredMessage) {
        let view = MsgView {
            topic: &m.topic,
            payload: &m.payload,
            qos: m.qos,
            retain: m.retain,
            origin: m.origin,
            received_ms: m.received_ms,
            props: m.props.as_deref(),
        };
        self.msg_view(&view);
    }

    fn msg_view(&mut self, m: &MsgView<'_>) {
        self.bytes(m.topic.as_bytes());
        self.bytes(m.payload);
        self.u8(m.qos as u8 | (u8::from(m.retain) << 2));
        self.u64(m.origin);
        self.u64(m.received_ms);
        match m.props {
            None => self.u8(0),
            Some(p) => {
                self.u8(1);
                self.opt_u64(p.payload_format_indicator.map(u64::from));
                self.opt_u64(p.message_expiry_interval.map(u64::from));
                self.opt_bytes(p.response_topic.as_deref().map(str::as_bytes));
                self.opt_bytes(p.correlation_data.as_deref());
                self.opt_bytes(p.content_type.as_deref().map(str::as_bytes));
                self.u32(p.user_properties.len() as u32);
                for (k, v) in &p.user_properties {
                    self.bytes(k.as_bytes());
                    self.bytes(v.as_bytes());
                }
            }
        }
    }
}

struct R<'a>(&'a [u8]);

impl R<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, RecordError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&[u8], RecordError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, RecordError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| RecordError)
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, RecordError> {
        let some = self.u8()? != 0;
        let v = self.u64()?;
        Ok(some.then_some(v))
    }
    fn opt_string(&mut self) -> Result<Option<String>, RecordError> {
        if self.u8()? == 0 {
            return Ok(None);
        }
        self.string().map(Some)
    }
    fn qos(v: u8) -> Result<QoS, RecordError> {
        QoS::from_u8(v & 3).ok_or(RecordError)
    }
    /// What [`W::entry`] wrote.
    #[allow(clippy::type_complexity)]
    fn entry(&mut self) -> Result<(QoS, bool, Vec<u32>, Option<String>), RecordError> {
        let flags = self.u8()?;
        let n = self.u32()?;
        let mut sub_ids = Vec::with_capacity(n.min(16) as usize);
        for _ in 0..n {
            sub_ids.push(self.u32()?);
        }
        let shared = self.opt_string()?;
        Ok((Self::qos(flags)?, flags & 4 != 0, sub_ids, shared))
    }

    fn msg(&mut self) -> Result<StoredMessage, RecordError> {
        let topic = self.string()?;
        let payload = Bytes::copy_from_slice(self.bytes()?);
        let flags = self.u8()?;
        let origin = self.u64()?;
        let received_ms = self.u64()?;
        let props = if self.u8()? == 1 {
            let payload_format_indicator = self.opt_u64()?.map(|v| v as u8);
            let message_expiry_interval = self.opt_u64()?.map(|v| v as u32);
            let response_topic = self.opt_string()?;
            let correlation_data = if self.u8()? == 1 { Some(Bytes::copy_from_slice(self.bytes()?)) } else { None };
            let content_type = self.opt_string()?;
            let n = self.u32()?;
            let mut user_properties = Vec::new();
            for _ in 0..n {
                user_properties.push((self.string()?, self.string()?));
            }
            Some(Box::new(PublishProps {
                payload_format_indicator,
                message_expiry_interval,
                topic_alias: None,
                response_topic,
                correlation_data,
                user_properties,
                subscription_identifiers: Vec::new(),
                content_type,
            }))
        } else {
            None
        };
        Ok(StoredMessage { topic, payload, qos: Self::qos(flags)?, retain: flags & 4 != 0, props, origin, received_ms })
    }
}

fn options_byte(o: &SubOptions) -> u8 {
    o.qos as u8 | u8::from(o.no_local) << 2 | u8::from(o.retain_as_published) << 3 | (o.retain_handling as u8) << 4
}

fn options_from(b: u8) -> Result<SubOptions, RecordError> {
    Ok(SubOptions {
        qos: R::qos(b)?,
        no_local: b & 4 != 0,
        retain_as_published: b & 8 != 0,
        retain_handling: match (b >> 4) & 3 {
            0 => RetainHandling::OnSubscribe,
            1 => RetainHandling::OnNewSubscribe,
            _ => RetainHandling::Never,
        },
    })
}

/// Session keys and message ids beyond this are never written (both count
/// from 1): a record with one is damage, so the counters that continue
/// from the recovered maximum cannot overflow.
pub const MAX_ID: u64 = 1 << 62;

impl Record {
    /// Whether its session key and message id are ones the broker writes.
    pub fn ids_plausible(&self) -> bool {
        let (key, mid) = match self {
            Record::Session { key, .. }
            | Record::SessionEnd { key }
            | Record::Sub { key, .. }
            | Record::Unsub { key, .. }
            | Record::Pop { key, .. }
            | Record::Ack { key, .. }
            | Record::Rel { key, .. }
            | Record::In2 { key, .. }
            | Record::In2Done { key, .. } => (*key, 0),
            Record::Enq { key, mid, .. } => (*key, *mid),
            Record::Routing { key, mid, got, .. } => {
                if got.iter().any(|g| g.0 > MAX_ID) {
                    return false;
                }
                (*key, *mid)
            }
            Record::Msg { mid, msg } => (msg.origin, *mid),
            Record::Retain(m) => (m.origin, 0),
            Record::Snap(inner) => return inner.ids_plausible(),
            Record::SnapshotBegin { .. } | Record::SnapshotEnd { .. } => (0, 0),
        };
        key <= MAX_ID && mid <= MAX_ID
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends the record's encoding to `out` (the log frames it in place).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = W(out);
        match self {
            Record::Session { key, client_id, expiry_secs, offline_since_ms, user } => {
                w.u8(1);
                w.u64(*key);
                w.bytes(client_id.as_bytes());
                w.opt_u64(*expiry_secs);
                w.u64(*offline_since_ms);
                if let Some(u) = user {
                    w.bytes(u.as_bytes());
                }
            }
            Record::SessionEnd { key } => {
                w.u8(2);
                w.u64(*key);
            }
            Record::Sub { key, filter, options, id } => {
                w.u8(3);
                w.u64(*key);
                w.bytes(filter.as_bytes());
                w.u8(options_byte(options));
                w.opt_u64(id.map(u64::from));
            }
            Record::Unsub { key, filter } => {
                w.u8(4);
                w.u64(*key);
                w.bytes(filter.as_bytes());
            }
            Record::Retain(m) => {
                w.u8(5);
                w.msg(m);
            }
            Record::Msg { mid, msg } => {
                w.u8(6);
                w.u64(*mid);
                w.msg(msg);
            }
            Record::Enq { key, seq, mid, qos, retain, sub_ids, shared } => {
                w.u8(7);
                w.u64(*key);
                w.u64(*seq);
                w.u64(*mid);
                w.entry(*qos, *retain, sub_ids, shared.as_deref());
            }
            Record::Pop { key, seq, pkid } => {
                w.u8(8);
                w.u64(*key);
                w.u64(*seq);
                w.u16(*pkid);
            }
            Record::Ack { key, pkid }
            | Record::Rel { key, pkid }
            | Record::In2 { key, pkid }
            | Record::In2Done { key, pkid } => {
                w.u8(match self {
                    Record::Ack { .. } => 9,
                    Record::Rel { .. } => 10,
                    Record::In2 { .. } => 11,
                    _ => 12,
                });
                w.u64(*key);
                w.u16(*pkid);
            }
            Record::SnapshotBegin { id } => {
                w.u8(13);
                w.u64(*id);
            }
            Record::SnapshotEnd { id } => {
                w.u8(14);
                w.u64(*id);
            }
            Record::Snap(inner) => {
                w.u8(15);
                inner.encode_into(w.0);
            }
            Record::Routing { key, pkid, mid, crc, got } => {
                w.u8(16);
                w.u64(*key);
                w.u16(*pkid);
                w.u64(*mid);
                w.u32(*crc);
                w.u32(got.len() as u32);
                for (k, shared) in got {
                    w.u64(*k);
                    w.opt_bytes(shared.as_deref().map(str::as_bytes));
                }
            }
        }
    }

    pub fn decode(b: &[u8]) -> Result<Record, RecordError> {
        let mut r = R(b);
        let rec = match r.u8()? {
            1 => Record::Session {
                key: r.u64()?,
                client_id: r.string()?,
                expiry_secs: r.opt_u64()?,
                offline_since_ms: r.u64()?,
                user: if r.0.is_empty() { None } else { Some(r.string()?) },
            },
            2 => Record::SessionEnd { key: r.u64()? },
            3 => Record::Sub {
                key: r.u64()?,
                filter: r.string()?,
                options: options_from(r.u8()?)?,
                id: r.opt_u64()?.map(|v| v as u32),
            },
            4 => Record::Unsub { key: r.u64()?, filter: r.string()? },
            5 => Record::Retain(r.msg()?),
            6 => Record::Msg { mid: r.u64()?, msg: r.msg()? },
            7 => {
                let (key, seq, mid) = (r.u64()?, r.u64()?, r.u64()?);
                let (qos, retain, sub_ids, shared) = r.entry()?;
                Record::Enq { key, seq, mid, qos, retain, sub_ids, shared }
            }
            8 => Record::Pop { key: r.u64()?, seq: r.u64()?, pkid: r.u16()? },
            9 => Record::Ack { key: r.u64()?, pkid: r.u16()? },
            10 => Record::Rel { key: r.u64()?, pkid: r.u16()? },
            11 => Record::In2 { key: r.u64()?, pkid: r.u16()? },
            12 => Record::In2Done { key: r.u64()?, pkid: r.u16()? },
            13 => Record::SnapshotBegin { id: r.u64()? },
            14 => Record::SnapshotEnd { id: r.u64()? },
            15 => {
                // Checked before decoding: nesting would recurse without bound.
                if r.0.first() == Some(&15) {
                    return Err(RecordError);
                }
                return Ok(Record::Snap(Box::new(Record::decode(r.0)?)));
            }
            16 => {
                let (key, pkid, mid, crc) = (r.u64()?, r.u16()?, r.u64()?, r.u32()?);
                let n = r.u32()? as usize;
                // Each entry takes at least 9 bytes: a count beyond what is
                // left is damage, not an allocation to make.
                if n > r.0.len() / 9 {
                    return Err(RecordError);
                }
                let mut got = Vec::with_capacity(n);
                for _ in 0..n {
                    got.push((r.u64()?, r.opt_string()?));
                }
                Record::Routing { key, pkid, mid, crc, got }
            }
            _ => return Err(RecordError),
        };
        if !r.0.is_empty() {
            return Err(RecordError);
        }
        Ok(rec)
    }
}

/// A queue entry with its message body, as a spilled queue keeps it in its
/// scratch file (not the log: `received` is kept relative to `epoch`, an
/// `Instant` of this process, so the encoding means nothing after a restart).
pub fn encode_spilled(d: &Delivery, epoch: Instant, out: &mut Vec<u8>) {
    let offset_ms = match d.msg.received.checked_duration_since(epoch) {
        Some(after) => after.as_millis() as i64,
        None => -(epoch.duration_since(d.msg.received).as_millis() as i64),
    };
    let m = &d.msg;
    let view = MsgView {
        topic: &m.topic,
        payload: &m.payload,
        qos: m.qos,
        retain: m.retain,
        origin: m.origin,
        received_ms: offset_ms as u64,
        props: m.props.as_deref(),
    };
    let mut w = W(out);
    w.u64(d.mid);
    w.u64(d.seq);
    w.entry(d.qos, d.retain, &d.sub_ids, d.shared.as_deref());
    w.msg_view(&view);
}

/// Decodes what [`encode_spilled`] wrote (with the same `epoch`).
pub fn decode_spilled(b: &[u8], epoch: Instant) -> Result<Delivery, RecordError> {
    let mut r = R(b);
    let (mid, seq) = (r.u64()?, r.u64()?);
    let (qos, retain, sub_ids, shared) = r.entry()?;
    let m = r.msg()?;
    if !r.0.is_empty() {
        return Err(RecordError);
    }
    let offset_ms = m.received_ms as i64;
    let received = if offset_ms >= 0 {
        epoch + Duration::from_millis(offset_ms as u64)
    } else {
        epoch.checked_sub(Duration::from_millis(offset_ms.unsigned_abs())).unwrap_or(epoch)
    };
    let msg = Message {
        topic: m.topic,
        payload: m.payload,
        qos: m.qos,
        retain: m.retain,
        props: m.props,
        origin: m.origin,
        received,
    };
    Ok(Delivery { msg: Arc::new(msg), qos, retain, sub_ids, shared: shared.map(Arc::from), mid, seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> StoredMessage {
        StoredMessage {
            topic: "a/b".into(),
            payload: Bytes::from_static(b"hello"),
            qos: QoS::ExactlyOnce,
            retain: true,
            props: Some(Box::new(PublishProps {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(30),
                response_topic: Some("r".into()),
                correlation_data: Some(Bytes::from_static(b"c")),
                user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
                content_type: Some("text/plain".into()),
                ..PublishProps::default()
            })),
            origin: 7,
            received_ms: 123_456,
        }
    }

    #[test]
    fn every_record_round_trips() {
        let options = SubOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::Never,
        };
        let records = vec![
            Record::Session { key: 1, client_id: "dev1".into(), expiry_secs: None, offline_since_ms: 5, user: None },
            Record::Session {
                key: 1,
                client_id: "dev1".into(),
                expiry_secs: Some(60),
                offline_since_ms: 0,
                user: None,
            },
            Record::Session {
                key: 1,
                client_id: "dev1".into(),
                expiry_secs: Some(60),
                offline_since_ms: 0,
                user: Some("alice".into()),
            },
            Record::SessionEnd { key: 1 },
            Record::Sub { key: 1, filter: "a/#".into(), options, id: Some(9) },
            Record::Unsub { key: 1, filter: "a/#".into() },
            Record::Retain(msg()),
            Record::Msg { mid: 42, msg: StoredMessage { props: None, ..msg() } },
            Record::Enq {
                key: 1,
                seq: 3,
                mid: 42,
                qos: QoS::AtLeastOnce,
                retain: false,
                sub_ids: vec![1, 2],
                shared: Some("$share/g/a".into()),
            },
            Record::Pop { key: 1, seq: 3, pkid: 17 },
            Record::Ack { key: 1, pkid: 17 },
            Record::Rel { key: 1, pkid: 17 },
            Record::In2 { key: 1, pkid: 2 },
            Record::In2Done { key: 1, pkid: 2 },
            Record::Routing { key: 1, pkid: 2, mid: 42, crc: 7, got: vec![] },
            Record::Routing { key: 1, pkid: 2, mid: 42, crc: 7, got: vec![(3, None), (4, Some("$share/g/a".into()))] },
            Record::SnapshotBegin { id: 4 },
            Record::Snap(Box::new(Record::Ack { key: 3, pkid: 4 })),
            Record::SnapshotEnd { id: 4 },
        ];
        for r in records {
            assert_eq!(Record::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Record::decode(&[]).is_err());
        assert!(Record::decode(&[99]).is_err());
        assert!(Record::decode(&[6, 1, 2]).is_err());
        assert!(Record::decode(&[15; 100_000]).is_err(), "nested snapshot records");
        let mut ok = Record::Ack { key: 1, pkid: 2 }.encode();
        ok.push(0);
        assert!(Record::decode(&ok).is_err(), "trailing bytes");
    }

    #[test]
    fn spilled_entries_round_trip_with_their_age() {
        let epoch = Instant::now();
        for received in [epoch - Duration::from_secs(7), epoch + Duration::from_secs(3)] {
            let stored = msg();
            let m = Message {
                topic: stored.topic,
                payload: stored.payload,
                qos: stored.qos,
                retain: stored.retain,
                props: stored.props,
                origin: stored.origin,
                received,
            };
            let d = Delivery {
                msg: Arc::new(m),
                qos: QoS::AtLeastOnce,
                retain: true,
                sub_ids: vec![4, 5],
                shared: Some(Arc::from("$share/g/a/#")),
                mid: 9,
                seq: 11,
            };
            let mut buf = vec![];
            encode_spilled(&d, epoch, &mut buf);
            let back = decode_spilled(&buf, epoch).unwrap();
            let skew = back.msg.received.max(received) - back.msg.received.min(received);
            assert!(skew < Duration::from_millis(2), "{skew:?}");
            assert_eq!(Delivery { msg: Arc::new(Message { received, ..(*back.msg).clone() }), ..back }, d);
            assert!(decode_spilled(&buf[..buf.len() - 1], epoch).is_err());
        }
    }

    #[test]
    fn message_time_survives_as_wall_clock() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let m = Message {
            topic: "t".into(),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            props: None,
            origin: 0,
            received: now - Duration::from_secs(5),
        };
        let back = StoredMessage::from_message(&m, now, wall).into_message(now, wall);
        let age = now.duration_since(back.received);
        assert!(age >= Duration::from_millis(4_990) && age <= Duration::from_millis(5_010));
    }
}
