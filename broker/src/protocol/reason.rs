//! MQTT reason codes as types: one `#[repr(u8)]` enum per table of the
//! MQTT 5.0 specification (section 2.4 and each packet's Reason Code
//! table), so that a code a packet may not carry (a DISCONNECT reason in a
//! SUBACK, 0x86 in a DISCONNECT) cannot be built.
//!
//! | enum                 | packets          | 5.0 section |
//! |----------------------|------------------|-------------|
//! | [`ConnectReason`]    | CONNACK          | 3.2.2.2     |
//! | [`PubAckReason`]     | PUBACK, PUBREC   | 3.4.2.1, 3.5.2.1 |
//! | [`PubRelReason`]     | PUBREL, PUBCOMP  | 3.6.2.1, 3.7.2.1 |
//! | [`SubAckReason`]     | SUBACK           | 3.9.3       |
//! | [`UnsubAckReason`]   | UNSUBACK         | 3.11.3      |
//! | [`DisconnectReason`] | DISCONNECT       | 3.14.2.1    |
//! | [`AuthReason`]       | AUTH             | 3.15.2.1    |
//!
//! Each has `code()` (the byte), `TryFrom<u8>` (an unknown byte is an
//! [`UnknownReason`]), `is_error()` (0x80 and above), `text()` (the Reason
//! String the broker sends) and `Display` ("not authorized (0x87)", for log
//! lines). The 3.1/3.1.1 numbering is mapped here too: CONNACK's return
//! codes 0x00..0x05 ([`ConnectReason::v311_code`]) and SUBACK's single
//! failure code 0x80 ([`SubAckReason::v311_code`]).

use std::fmt;

/// A byte that is not a reason code of the packet's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("0x{code:02x} is not a {packet} reason code")]
pub struct UnknownReason {
    pub packet: &'static str,
    pub code: u8,
}

/// What every reason code table offers; lets the acknowledgement shape
/// ([`super::Ack`]) and its encoder and decoder be shared by PUBACK/PUBREC
/// and PUBREL/PUBCOMP.
pub trait Reason: Copy + Eq + fmt::Debug + fmt::Display + TryFrom<u8, Error = UnknownReason> {
    /// 0x00 (Success, Normal disconnection, Granted QoS 0).
    const SUCCESS: Self;
    fn code(self) -> u8;
    /// A byte a peer sent, taken leniently when it is not in the table (as
    /// the broker always has): a success-class one (below 0x80) as the
    /// table's success, an error-class one as its catch-all error, so that
    /// `is_error()` is the byte's. CONNACK takes any unknown byte as an
    /// error: only 0x00 accepts a connection.
    fn from_peer(code: u8) -> Self;
    fn text(self) -> &'static str;
    fn is_error(self) -> bool {
        self.code() >= 0x80
    }
}

macro_rules! reason_table {
    (
        $(#[$meta:meta])*
        $name:ident, $packet:literal, peer: ($ok:ident, $err:ident) {
            $($(#[$vmeta:meta])* $variant:ident = $code:literal, $text:literal;)+
        }
    ) => {
        reason_table! { $(#[$meta])* $name, $packet { $($(#[$vmeta])* $variant = $code, $text;)+ } }

        impl Reason for $name {
            const SUCCESS: $name = $name::ALL[0];

            fn code(self) -> u8 {
                self as u8
            }

            fn text(self) -> &'static str {
                $name::text(self)
            }

            fn from_peer(code: u8) -> $name {
                $name::try_from(code).unwrap_or(if code >= 0x80 { $name::$err } else { $name::$ok })
            }
        }
    };
    (
        $(#[$meta:meta])*
        $name:ident, $packet:literal {
            $($(#[$vmeta:meta])* $variant:ident = $code:literal, $text:literal;)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $code,)+
        }

        impl $name {
            /// Every code of the table, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub const fn code(self) -> u8 {
                self as u8
            }

            pub const fn is_error(self) -> bool {
                self.code() >= 0x80
            }

            /// 0x00: success, normal disconnection, granted QoS 0.
            pub const fn is_success(self) -> bool {
                self.code() == 0
            }

            /// A short human-readable text (sent as the MQTT 5 Reason String).
            pub const fn text(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl Default for $name {
            fn default() -> $name {
                $name::ALL[0]
            }
        }

        impl TryFrom<u8> for $name {
            type Error = UnknownReason;

            fn try_from(code: u8) -> Result<$name, UnknownReason> {
                match code {
                    $($code => Ok($name::$variant),)+
                    _ => Err(UnknownReason { packet: $packet, code }),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(r: $name) -> u8 {
                r.code()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} (0x{:02x})", self.text(), self.code())
            }
        }
    };
}

reason_table! {
    /// CONNACK (5.0 section 3.2.2.2). Only 0x00 accepts the connection.
    ConnectReason, "CONNACK", peer: (UnspecifiedError, UnspecifiedError) {
        Success = 0x00, "success";
        UnspecifiedError = 0x80, "unspecified error";
        MalformedPacket = 0x81, "malformed packet";
        ProtocolError = 0x82, "protocol error";
        ImplementationSpecificError = 0x83, "implementation specific error";
        UnsupportedProtocolVersion = 0x84, "unsupported protocol version";
        ClientIdentifierNotValid = 0x85, "client identifier not valid";
        BadUserNameOrPassword = 0x86, "bad user name or password";
        NotAuthorized = 0x87, "not authorized";
        ServerUnavailable = 0x88, "server unavailable";
        ServerBusy = 0x89, "server busy";
        Banned = 0x8A, "banned";
        BadAuthenticationMethod = 0x8C, "authentication method not supported";
        TopicNameInvalid = 0x90, "topic name invalid";
        PacketTooLarge = 0x95, "packet too large";
        QuotaExceeded = 0x97, "quota exceeded";
        PayloadFormatInvalid = 0x99, "payload format invalid";
        RetainNotSupported = 0x9A, "retain not supported";
        QosNotSupported = 0x9B, "QoS not supported";
        UseAnotherServer = 0x9C, "use another server";
        ServerMoved = 0x9D, "server moved";
        ConnectionRateExceeded = 0x9F, "connection rate exceeded";
    }
}

impl ConnectReason {
    /// The MQTT 3.1/3.1.1 CONNACK return code (3.1.1 section 3.2.2.3):
    /// the five refusals 3.1.1 has, and 0x03 Server unavailable for every
    /// other refusal.
    pub const fn v311_code(self) -> u8 {
        match self {
            ConnectReason::Success => 0x00,
            ConnectReason::UnsupportedProtocolVersion => 0x01,
            ConnectReason::ClientIdentifierNotValid => 0x02,
            ConnectReason::BadUserNameOrPassword => 0x04,
            ConnectReason::NotAuthorized => 0x05,
            _ => 0x03,
        }
    }

    /// A 3.1/3.1.1 return code read from a server, in MQTT 5 terms
    /// (0x03 is Server unavailable; above 0x05: unspecified error).
    pub const fn from_v311(code: u8) -> ConnectReason {
        match code {
            0x00 => ConnectReason::Success,
            0x01 => ConnectReason::UnsupportedProtocolVersion,
            0x02 => ConnectReason::ClientIdentifierNotValid,
            0x03 => ConnectReason::ServerUnavailable,
            0x04 => ConnectReason::BadUserNameOrPassword,
            0x05 => ConnectReason::NotAuthorized,
            _ => ConnectReason::UnspecifiedError,
        }
    }
}

reason_table! {
    /// PUBACK and PUBREC (5.0 sections 3.4.2.1 and 3.5.2.1).
    PubAckReason, "PUBACK", peer: (Success, UnspecifiedError) {
        Success = 0x00, "success";
        NoMatchingSubscribers = 0x10, "no matching subscribers";
        UnspecifiedError = 0x80, "unspecified error";
        ImplementationSpecificError = 0x83, "implementation specific error";
        NotAuthorized = 0x87, "not authorized";
        TopicNameInvalid = 0x90, "topic name invalid";
        PacketIdentifierInUse = 0x91, "packet identifier in use";
        QuotaExceeded = 0x97, "quota exceeded";
        PayloadFormatInvalid = 0x99, "payload format invalid";
    }
}

/// PUBREC's table is PUBACK's.
pub type PubRecReason = PubAckReason;

reason_table! {
    /// PUBREL and PUBCOMP (5.0 sections 3.6.2.1 and 3.7.2.1). The table has
    /// no unspecified error: an unknown error-class byte from a peer is
    /// taken as 0x92.
    PubRelReason, "PUBREL", peer: (Success, PacketIdentifierNotFound) {
        Success = 0x00, "success";
        PacketIdentifierNotFound = 0x92, "packet identifier not found";
    }
}

/// PUBCOMP's table is PUBREL's.
pub type PubCompReason = PubRelReason;

reason_table! {
    /// SUBACK, one per filter (5.0 section 3.9.3): the granted QoS, or why
    /// the filter was refused.
    SubAckReason, "SUBACK", peer: (GrantedQos0, UnspecifiedError) {
        GrantedQos0 = 0x00, "granted QoS 0";
        GrantedQos1 = 0x01, "granted QoS 1";
        GrantedQos2 = 0x02, "granted QoS 2";
        UnspecifiedError = 0x80, "unspecified error";
        ImplementationSpecificError = 0x83, "implementation specific error";
        NotAuthorized = 0x87, "not authorized";
        TopicFilterInvalid = 0x8F, "topic filter invalid";
        PacketIdentifierInUse = 0x91, "packet identifier in use";
        QuotaExceeded = 0x97, "quota exceeded";
        SharedSubscriptionsNotSupported = 0x9E, "shared subscriptions not supported";
        SubscriptionIdentifiersNotSupported = 0xA1, "subscription identifiers not supported";
        WildcardSubscriptionsNotSupported = 0xA2, "wildcard subscriptions not supported";
    }
}

impl SubAckReason {
    /// The granted QoS.
    pub const fn granted(qos: super::QoS) -> SubAckReason {
        match qos {
            super::QoS::AtMostOnce => SubAckReason::GrantedQos0,
            super::QoS::AtLeastOnce => SubAckReason::GrantedQos1,
            super::QoS::ExactlyOnce => SubAckReason::GrantedQos2,
        }
    }

    /// The MQTT 3.1.1 return code (3.1.1 section 3.9.3): the granted QoS,
    /// or 0x80 Failure for every refusal.
    pub const fn v311_code(self) -> u8 {
        if self.is_error() {
            0x80
        } else {
            self.code()
        }
    }
}

reason_table! {
    /// UNSUBACK, one per filter (5.0 section 3.11.3; MQTT 5 only).
    UnsubAckReason, "UNSUBACK", peer: (Success, UnspecifiedError) {
        Success = 0x00, "success";
        NoSubscriptionExisted = 0x11, "no subscription existed";
        UnspecifiedError = 0x80, "unspecified error";
        ImplementationSpecificError = 0x83, "implementation specific error";
        NotAuthorized = 0x87, "not authorized";
        TopicFilterInvalid = 0x8F, "topic filter invalid";
        PacketIdentifierInUse = 0x91, "packet identifier in use";
    }
}

reason_table! {
    /// DISCONNECT (5.0 section 3.14.2.1; MQTT 5 only).
    DisconnectReason, "DISCONNECT", peer: (NormalDisconnection, UnspecifiedError) {
        NormalDisconnection = 0x00, "normal disconnection";
        DisconnectWithWill = 0x04, "disconnect with will message";
        UnspecifiedError = 0x80, "unspecified error";
        MalformedPacket = 0x81, "malformed packet";
        ProtocolError = 0x82, "protocol error";
        ImplementationSpecificError = 0x83, "implementation specific error";
        NotAuthorized = 0x87, "not authorized";
        ServerBusy = 0x89, "server busy";
        ServerShuttingDown = 0x8B, "server shutting down";
        KeepAliveTimeout = 0x8D, "keep alive timeout";
        SessionTakenOver = 0x8E, "session taken over by another connection";
        TopicFilterInvalid = 0x8F, "topic filter invalid";
        TopicNameInvalid = 0x90, "topic name invalid";
        ReceiveMaximumExceeded = 0x93, "receive maximum exceeded";
        TopicAliasInvalid = 0x94, "topic alias invalid";
        PacketTooLarge = 0x95, "packet too large";
        MessageRateTooHigh = 0x96, "message rate too high";
        QuotaExceeded = 0x97, "quota exceeded";
        AdministrativeAction = 0x98, "administrative action";
        PayloadFormatInvalid = 0x99, "payload format invalid";
        RetainNotSupported = 0x9A, "retain not supported";
        QosNotSupported = 0x9B, "QoS not supported";
        UseAnotherServer = 0x9C, "use another server";
        ServerMoved = 0x9D, "server moved";
        SharedSubscriptionsNotSupported = 0x9E, "shared subscriptions not supported";
        ConnectionRateExceeded = 0x9F, "connection rate exceeded";
        MaximumConnectTime = 0xA0, "maximum connect time";
        SubscriptionIdentifiersNotSupported = 0xA1, "subscription identifiers not supported";
        WildcardSubscriptionsNotSupported = 0xA2, "wildcard subscriptions not supported";
    }
}

reason_table! {
    /// AUTH (5.0 section 3.15.2.1; MQTT 5 only). An unknown byte from a
    /// client is a malformed packet: the decoder refuses it.
    AuthReason, "AUTH" {
        Success = 0x00, "success";
        ContinueAuthentication = 0x18, "continue authentication";
        ReAuthenticate = 0x19, "re-authenticate";
    }
}

#[cfg(test)]
#[path = "reason_tests.rs"]
mod tests;
