//! MQTT 5 (feature `v5`): the wire codec ([`codec`]), reason codes, the
//! connection options a client sends, the properties a caller attaches to a
//! PUBLISH, and the topic alias tables.
//!
//! The session core is the same as for MQTT 3.1.1 ([`Client`](crate::Client));
//! it speaks MQTT 5 when [`Config::v5`](crate::Config::v5) is `Some`. Nothing
//! here allocates: properties are written from caller slices and decoded
//! properties borrow the receive buffer.

mod alias;
pub mod codec;

pub(crate) use alias::AliasTable;
pub use codec::{Ack, Packet, Property, PropertyIter};

/// Options sent in an MQTT 5 CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V5Options {
    /// Session Expiry Interval in seconds. `u32::MAX` (the default) keeps
    /// the session forever, like `clean_session = false` in MQTT 3.1.1; 0
    /// ends it when the connection closes.
    pub session_expiry_secs: u32,
    /// Receive Maximum: inbound QoS 1/2 messages the broker may have
    /// unacknowledged at once. 0 (default) sends the inbound QoS 2 table's
    /// capacity `Q2`, so the table cannot overflow.
    pub receive_maximum: u16,
    /// Maximum Packet Size the client accepts. 0 (default) sends the
    /// receive buffer's length.
    pub maximum_packet_size: u32,
    /// Topic Alias Maximum: aliases the broker may use towards the client.
    /// Sent only if an inbound alias buffer was given
    /// ([`Client::set_topic_alias_buffers`](crate::Client::set_topic_alias_buffers));
    /// default 8.
    pub topic_alias_maximum: u16,
}

impl Default for V5Options {
    fn default() -> Self {
        V5Options::new()
    }
}

impl V5Options {
    /// The defaults described on each field.
    pub const fn new() -> Self {
        V5Options { session_expiry_secs: u32::MAX, receive_maximum: 0, maximum_packet_size: 0, topic_alias_maximum: 8 }
    }
}

/// Properties a caller attaches to one PUBLISH
/// ([`Client::publish_with`](crate::Client::publish_with)). They are copied
/// into the outbox with the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishProperties<'a> {
    /// Content Type (a MIME type, e.g. `application/json`).
    pub content_type: Option<&'a str>,
    /// User Properties, in order; at most [`MAX_USER_PROPERTIES`].
    pub user_properties: &'a [(&'a str, &'a str)],
    /// Message Expiry Interval in seconds (must not be 0). The time the
    /// message waits in the outbox is subtracted when it is sent; a message
    /// that expires while queued is dropped ([`Event::Expired`](crate::Event::Expired)).
    pub message_expiry_secs: Option<u32>,
}

/// Most user properties one PUBLISH can carry (bounds the stack used to
/// copy them into the outbox).
pub const MAX_USER_PROPERTIES: usize = 8;

/// Limits the broker announced in CONNACK (MQTT 5), in force for the
/// current connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Receive Maximum: QoS 1/2 messages the client may have in flight.
    pub receive_maximum: u16,
    /// Maximum Packet Size the broker accepts (`u32::MAX` if not given).
    pub maximum_packet_size: u32,
    /// Topic Alias Maximum: aliases the client may use (0: none).
    pub topic_alias_maximum: u16,
    /// Keep alive in force, in seconds (the Server Keep Alive if sent).
    pub keep_alive_secs: u16,
}

macro_rules! reason_codes {
    ($($(#[$m:meta])* $name:ident = $v:expr,)*) => {
        /// An MQTT 5 reason code (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP,
        /// SUBACK, UNSUBACK, DISCONNECT). Values below 0x80 are successes.
        /// `0x00` is `Success` (also "Normal disconnection" and "Granted QoS
        /// 0"). Codes the specification does not define map to `Unknown`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum ReasonCode {
            $($(#[$m])* $name = $v,)*
            /// Not a reason code MQTT 5 defines.
            Unknown = 0xff,
        }

        impl From<u8> for ReasonCode {
            fn from(v: u8) -> Self {
                match v {
                    $($v => ReasonCode::$name,)*
                    _ => ReasonCode::Unknown,
                }
            }
        }
    };
}

reason_codes! {
    /// Success, Normal disconnection, Granted QoS 0.
    Success = 0x00,
    /// Granted QoS 1.
    GrantedQoS1 = 0x01,
    /// Granted QoS 2.
    GrantedQoS2 = 0x02,
    /// Disconnect with Will Message.
    DisconnectWithWill = 0x04,
    /// No matching subscribers.
    NoMatchingSubscribers = 0x10,
    /// No subscription existed.
    NoSubscriptionExisted = 0x11,
    /// Continue authentication.
    ContinueAuthentication = 0x18,
    /// Re-authenticate.
    ReAuthenticate = 0x19,
    /// Unspecified error.
    UnspecifiedError = 0x80,
    /// Malformed Packet.
    MalformedPacket = 0x81,
    /// Protocol Error.
    ProtocolError = 0x82,
    /// Implementation specific error.
    ImplementationSpecificError = 0x83,
    /// Unsupported Protocol Version.
    UnsupportedProtocolVersion = 0x84,
    /// Client Identifier not valid.
    ClientIdentifierNotValid = 0x85,
    /// Bad User Name or Password.
    BadUserNameOrPassword = 0x86,
    /// Not authorized.
    NotAuthorized = 0x87,
    /// Server unavailable.
    ServerUnavailable = 0x88,
    /// Server busy.
    ServerBusy = 0x89,
    /// Banned.
    Banned = 0x8a,
    /// Server shutting down.
    ServerShuttingDown = 0x8b,
    /// Bad authentication method.
    BadAuthenticationMethod = 0x8c,
    /// Keep Alive timeout.
    KeepAliveTimeout = 0x8d,
    /// Session taken over.
    SessionTakenOver = 0x8e,
    /// Topic Filter invalid.
    TopicFilterInvalid = 0x8f,
    /// Topic Name invalid.
    TopicNameInvalid = 0x90,
    /// Packet Identifier in use.
    PacketIdentifierInUse = 0x91,
    /// Packet Identifier not found.
    PacketIdentifierNotFound = 0x92,
    /// Receive Maximum exceeded.
    ReceiveMaximumExceeded = 0x93,
    /// Topic Alias invalid.
    TopicAliasInvalid = 0x94,
    /// Packet too large.
    PacketTooLarge = 0x95,
    /// Message rate too high.
    MessageRateTooHigh = 0x96,
    /// Quota exceeded.
    QuotaExceeded = 0x97,
    /// Administrative action.
    AdministrativeAction = 0x98,
    /// Payload format invalid.
    PayloadFormatInvalid = 0x99,
    /// Retain not supported.
    RetainNotSupported = 0x9a,
    /// QoS not supported.
    QoSNotSupported = 0x9b,
    /// Use another server.
    UseAnotherServer = 0x9c,
    /// Server moved.
    ServerMoved = 0x9d,
    /// Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9e,
    /// Connection rate exceeded.
    ConnectionRateExceeded = 0x9f,
    /// Maximum connect time.
    MaximumConnectTime = 0xa0,
    /// Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xa1,
    /// Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xa2,
}

impl ReasonCode {
    /// True for failure codes (0x80 and above).
    pub fn is_error(self) -> bool {
        self as u8 >= 0x80
    }

    /// Who a failure blames, to decide what to do about it: fix the
    /// request or configuration ([`Fault::Client`]) or try again later or
    /// elsewhere ([`Fault::Server`]).
    pub fn fault(self) -> Fault {
        use ReasonCode as R;
        match self {
            R::Success
            | R::GrantedQoS1
            | R::GrantedQoS2
            | R::DisconnectWithWill
            | R::NoMatchingSubscribers
            | R::NoSubscriptionExisted
            | R::ContinueAuthentication
            | R::ReAuthenticate => Fault::None,
            R::MalformedPacket
            | R::ProtocolError
            | R::UnsupportedProtocolVersion
            | R::ClientIdentifierNotValid
            | R::BadUserNameOrPassword
            | R::NotAuthorized
            | R::Banned
            | R::BadAuthenticationMethod
            | R::KeepAliveTimeout
            | R::TopicFilterInvalid
            | R::TopicNameInvalid
            | R::PacketIdentifierInUse
            | R::PacketIdentifierNotFound
            | R::ReceiveMaximumExceeded
            | R::TopicAliasInvalid
            | R::PacketTooLarge
            | R::MessageRateTooHigh
            | R::QuotaExceeded
            | R::PayloadFormatInvalid
            | R::RetainNotSupported
            | R::QoSNotSupported
            | R::SharedSubscriptionsNotSupported
            | R::ConnectionRateExceeded
            | R::SubscriptionIdentifiersNotSupported
            | R::WildcardSubscriptionsNotSupported => Fault::Client,
            R::UnspecifiedError
            | R::ImplementationSpecificError
            | R::ServerUnavailable
            | R::ServerBusy
            | R::ServerShuttingDown
            | R::SessionTakenOver
            | R::AdministrativeAction
            | R::UseAnotherServer
            | R::ServerMoved
            | R::MaximumConnectTime
            | R::Unknown => Fault::Server,
        }
    }
}

/// Who a [`ReasonCode`] blames ([`ReasonCode::fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Not a failure (codes below 0x80).
    None,
    /// The client: what it sent, its configuration or its rate (malformed
    /// or invalid packets, credentials, client id, topics, sizes, quotas,
    /// features the broker does not support). The same request fails
    /// again.
    Client,
    /// The broker or its operator (unavailable, busy, shutting down, moved,
    /// administrative action, session taken over, unspecified or unknown
    /// errors). The same request may succeed later or elsewhere.
    Server,
}
