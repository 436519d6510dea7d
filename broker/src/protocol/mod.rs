//! The MQTT wire protocol: the only module that knows about `mqttbytes`.
//!
//! It owns framing (fixed header, remaining length, the packet size limit),
//! decoding of every packet a server can receive and encoding of every packet
//! it sends, for protocol levels 3 (MQTT 3.1), 4 (3.1.1) and 5 (5.0).
//! The rest of the broker sees only the types defined here, reason codes
//! included: one enum per MQTT 5.0 table (`reason.rs`), never a bare byte.
//!
//! `mqttbytes` 0.6 does the bulk of the work, behind guards for its known
//! defects (see `decode.rs` and `encode.rs` for each guard):
//! - framing, the size limit (applied to the whole packet) and the fixed-header
//!   flags are checked here before `mqttbytes` sees a byte;
//! - CONNECT's variable header is parsed here (it rejects MQTT 3.1's `MQIsdp`);
//! - MQTT 5 properties are validated here (bounds, duplicates, zero values)
//!   before `mqttbytes` reads them;
//! - MQTT 5 DISCONNECT, AUTH and UNSUBSCRIBE are decoded and encoded here
//!   (it rejects or desyncs on the first, lacks the second, and prints
//!   `dbg!` output on the third);
//! - string lengths are checked before encoding (it truncates silently).

pub mod client;
mod decode;
mod encode;
mod props;
pub mod reason;
pub mod topic;

pub use decode::{decode, Decoded};
pub use encode::{encode, encode_owned, publish_size_bound};
pub use reason::{
    AuthReason, ConnectReason, DisconnectReason, PubAckReason, PubCompReason, PubRecReason, PubRelReason, Reason,
    SubAckReason, UnknownReason, UnsubAckReason,
};

use bytes::Bytes;

/// Protocol level negotiated by CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V31,
    /// MQTT 3.1.1, level 4.
    V311,
    /// MQTT 5.0, level 5.
    V5,
}

impl Version {
    pub fn is_v5(self) -> bool {
        self == Version::V5
    }
}

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// A user property (MQTT 5): a name/value pair whose order is significant.
pub type UserProperty = (String, String);

/// MQTT 5 properties a PUBLISH (or a will) carries from publisher to subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProps {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<u16>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
    pub subscription_identifiers: Vec<u32>,
    pub content_type: Option<String>,
}

/// The will message of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will Delay Interval in seconds (MQTT 5).
    pub delay_interval: u32,
    pub props: Option<Box<PublishProps>>,
}

/// CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: Version,
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    /// Session Expiry Interval in seconds (MQTT 5; `None` when absent).
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum the client accepts (MQTT 5).
    pub receive_maximum: Option<u16>,
    /// Maximum Packet Size the client accepts (MQTT 5).
    pub maximum_packet_size: Option<u32>,
    /// Topic Alias Maximum the client accepts (MQTT 5).
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: bool,
    pub request_problem_information: bool,
    /// Enhanced authentication (MQTT 5): the method and its first data.
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
    /// The protocol level had bit 0x80 set (3.1 or 3.1.1 only): a bridge
    /// (Mosquitto's `try_private`), which is never sent its own messages
    /// back and gets retained flags as published.
    pub bridge: bool,
}

/// CONNACK. `code` is the MQTT 5 reason code; the encoder maps it to the
/// 3.1/3.1.1 return code for older clients ([`ConnectReason::v311_code`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: ConnectReason,
    pub props: ConnAckProps,
}

/// CONNACK properties (MQTT 5 only; ignored for older clients).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProps {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub maximum_packet_size: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub topic_alias_maximum: Option<u16>,
    pub reason_string: Option<String>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub response_information: Option<String>,
    /// Enhanced authentication: the client's method, and the last data.
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: String,
    /// Packet identifier; 0 at QoS 0.
    pub pkid: u16,
    pub payload: Bytes,
    pub props: Option<Box<PublishProps>>,
}

/// A PUBLISH forwarded to a 3.1/3.1.1 client, encoded straight from the
/// shared message: no copy of its topic and no packet built per delivery
/// (the fan-out hot path). MQTT 5 clients get a [`Publish`] (properties,
/// aliases, size limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub msg: std::sync::Arc<crate::message::Message>,
    pub qos: QoS,
    pub retain: bool,
    pub dup: bool,
    pub pkid: u16,
}

impl Forward {
    /// The same PUBLISH as a [`Publish`].
    pub fn to_publish(&self) -> Publish {
        Publish {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            topic: self.msg.topic.clone(),
            pkid: self.pkid,
            payload: self.msg.payload.clone(),
            props: None,
        }
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share this shape; `R` is the
/// packet's reason code table ([`PubAckReason`] for PUBACK and PUBREC,
/// [`PubRelReason`] for PUBREL and PUBCOMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<R> {
    pub pkid: u16,
    /// MQTT 5 reason code; not sent to older clients.
    pub reason: R,
    /// MQTT 5 Reason String (sent only; see [`Packet::explain`]).
    pub reason_string: Option<&'static str>,
}

impl<R: Reason> Ack<R> {
    pub fn ok(pkid: u16) -> Ack<R> {
        Ack::new(pkid, R::SUCCESS)
    }

    pub fn new(pkid: u16, reason: R) -> Ack<R> {
        Ack { pkid, reason, reason_string: None }
    }
}

/// Retain Handling subscription option (MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    OnSubscribe = 0,
    /// Send them only if the subscription did not already exist.
    OnNewSubscribe = 1,
    /// Do not send retained messages.
    Never = 2,
}

/// Options of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

/// One topic filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    pub filter: String,
    pub options: SubOptions,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub pkid: u16,
    pub filters: Vec<SubscribeFilter>,
    /// Subscription Identifier (MQTT 5).
    pub subscription_identifier: Option<u32>,
    pub user_properties: Vec<UserProperty>,
}

/// SUBACK: one return/reason code per filter, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub pkid: u16,
    pub codes: Vec<SubAckReason>,
    /// MQTT 5 Reason String (sent only; see [`Packet::explain`]).
    pub reason_string: Option<&'static str>,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub pkid: u16,
    pub filters: Vec<String>,
    pub user_properties: Vec<UserProperty>,
}

/// UNSUBACK: reason codes per filter (MQTT 5 only; empty for older clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub pkid: u16,
    pub codes: Vec<UnsubAckReason>,
    /// MQTT 5 Reason String (sent only; see [`Packet::explain`]).
    pub reason_string: Option<&'static str>,
}

/// DISCONNECT (reason and properties are MQTT 5 only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect {
    pub reason: DisconnectReason,
    pub session_expiry_interval: Option<u32>,
    pub reason_string: Option<String>,
}

/// AUTH (MQTT 5 only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    pub reason: AuthReason,
    pub method: Option<String>,
    pub data: Option<Bytes>,
}

/// Every packet the broker receives or sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    /// Boxed: 176 bytes of MQTT 5 properties, sent once per connection,
    /// would make every packet (and every action) that large.
    ConnAck(Box<ConnAck>),
    Publish(Publish),
    /// Sent only: see [`Forward`].
    Forward(Forward),
    PubAck(Ack<PubAckReason>),
    PubRec(Ack<PubRecReason>),
    PubRel(Ack<PubRelReason>),
    PubComp(Ack<PubCompReason>),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// The QoS of an outgoing PUBLISH ([`Packet::Publish`] or
    /// [`Packet::Forward`]).
    pub fn publish_qos(&self) -> Option<QoS> {
        match self {
            Packet::Publish(p) => Some(p.qos),
            Packet::Forward(f) => Some(f.qos),
            _ => None,
        }
    }

    /// Adds a Reason String to an acknowledgement that reports an error or
    /// a notable outcome (PUBACK/PUBREC/PUBREL/PUBCOMP with a non-zero
    /// code, SUBACK with a refused filter, UNSUBACK with a non-zero code),
    /// for an MQTT 5 client that did not turn problem information off
    /// ([MQTT-3.1.2-29]). The text is the first such code's.
    /// Returns whether it added one.
    pub fn explain(&mut self) -> bool {
        fn set<R: Reason>(slot: &mut Option<&'static str>, code: Option<R>) -> bool {
            code.map(|c| *slot = Some(c.text())).is_some()
        }
        match self {
            Packet::PubAck(a) | Packet::PubRec(a) => {
                set(&mut a.reason_string, Some(a.reason).filter(|r| !r.is_success()))
            }
            Packet::PubRel(a) | Packet::PubComp(a) => {
                set(&mut a.reason_string, Some(a.reason).filter(|r| !r.is_success()))
            }
            Packet::SubAck(s) => set(&mut s.reason_string, s.codes.iter().copied().find(|c| c.is_error())),
            Packet::UnsubAck(u) => set(&mut u.reason_string, u.codes.iter().copied().find(|c| !c.is_success())),
            _ => false,
        }
    }

    /// Removes a Reason String again (it must not make a packet exceed the
    /// client's Maximum Packet Size: [MQTT-3.4.2-2] and the like).
    pub fn unexplain(&mut self) {
        match self {
            Packet::PubAck(a) | Packet::PubRec(a) => a.reason_string = None,
            Packet::PubRel(a) | Packet::PubComp(a) => a.reason_string = None,
            Packet::SubAck(s) => s.reason_string = None,
            Packet::UnsubAck(u) => u.reason_string = None,
            _ => {}
        }
    }
}

/// Why a byte stream could not be decoded. Each variant maps to the MQTT 5
/// reason code the server sends (if it may) before closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("packet of {size} bytes exceeds the maximum packet size of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("unsupported protocol level {0}")]
    UnsupportedVersion(u8),
    #[error("invalid topic name")]
    TopicName,
    #[error("topic alias 0")]
    TopicAliasZero,
}

impl DecodeError {
    /// The MQTT 5 reason of the DISCONNECT about this error. An
    /// unsupported protocol level is answered with CONNACK 0x84 before
    /// CONNECT; after it (no DISCONNECT reason names it) it is a protocol
    /// error.
    pub fn disconnect_reason(self) -> DisconnectReason {
        match self {
            DecodeError::Malformed(_) => DisconnectReason::MalformedPacket,
            DecodeError::Protocol(_) | DecodeError::UnsupportedVersion(_) => DisconnectReason::ProtocolError,
            DecodeError::TooLarge { .. } => DisconnectReason::PacketTooLarge,
            DecodeError::TopicName => DisconnectReason::TopicNameInvalid,
            DecodeError::TopicAliasZero => DisconnectReason::TopicAliasInvalid,
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("a string of {0} bytes exceeds the MQTT limit of 65535")]
    StringTooLong(usize),
    #[error("packet exceeds the MQTT limit of 268435455 bytes")]
    PacketTooLong,
    #[error("packet type cannot be sent by a server")]
    NotServerPacket,
    #[error("mqttbytes refused the packet: {0:?}")]
    Codec(mqttbytes::Error),
}
