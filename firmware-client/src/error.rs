//! Error types of the client core, split by who is at fault.
//!
//! * [`LinkError`]: the network or the broker misbehaved (malformed bytes,
//!   timeouts, refused connection). The connection is dead; the client is
//!   already in the disconnected state and the driver should reconnect.
//! * [`ClientError`]: the caller asked for something impossible right now or
//!   ever (bad topic, full outbox, not connected). Nothing on the link changed.

use core::fmt;

use crate::codec::DecodeError;

/// The connection failed; the peer or the network is at fault. Reconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The broker sent bytes that are not valid MQTT 3.1.1.
    Malformed(DecodeError),
    /// A valid packet that is not allowed at this point (e.g. PUBLISH before
    /// CONNACK, a second CONNACK).
    UnexpectedPacket,
    /// An inbound packet is larger than the receive buffer.
    PacketTooLarge,
    /// More unreleased inbound QoS 2 messages than the client can track.
    TooManyInboundQos2,
    /// No CONNACK within the connect timeout.
    ConnectTimeout,
    /// No PINGRESP within the ping timeout: the link is dead.
    PingTimeout,
    /// The broker refused the connection with this CONNACK return code.
    Refused(u8),
    /// MQTT 5: the broker refused the connection with this CONNACK reason.
    #[cfg(feature = "v5")]
    Rejected(crate::v5::ReasonCode),
    /// MQTT 5: the broker closed the connection with DISCONNECT and this
    /// reason.
    #[cfg(feature = "v5")]
    ServerDisconnect(crate::v5::ReasonCode),
    /// MQTT 5: the broker used a Topic Alias that is unknown or above the
    /// client's Topic Alias Maximum, or the inbound alias buffer is full.
    #[cfg(feature = "v5")]
    TopicAlias,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Malformed(e) => write!(f, "malformed packet from broker: {e}"),
            LinkError::UnexpectedPacket => f.write_str("unexpected packet from broker"),
            LinkError::PacketTooLarge => f.write_str("inbound packet larger than receive buffer"),
            LinkError::TooManyInboundQos2 => f.write_str("too many inbound QoS 2 messages"),
            LinkError::ConnectTimeout => f.write_str("no CONNACK within timeout"),
            LinkError::PingTimeout => f.write_str("no PINGRESP within timeout"),
            LinkError::Refused(c) => write!(f, "connection refused, return code {c}"),
            #[cfg(feature = "v5")]
            LinkError::Rejected(r) => write!(f, "connection refused: {r:?}"),
            #[cfg(feature = "v5")]
            LinkError::ServerDisconnect(r) => write!(f, "broker disconnected: {r:?}"),
            #[cfg(feature = "v5")]
            LinkError::TopicAlias => f.write_str("invalid or untracked topic alias from broker"),
        }
    }
}

/// The caller's request cannot be carried out; the caller is at fault or must
/// retry later. The connection is unaffected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// Operation needs an established session (CONNACK received).
    NotConnected,
    /// The transmit buffer has no room now; flush and retry.
    Busy,
    /// Topic name or filter is invalid.
    InvalidTopic,
    /// The packet can never fit the transmit buffer or the outbox.
    TooLarge,
    /// The outbox has no room (see [`OutboxPolicy`](crate::OutboxPolicy)).
    OutboxFull,
    /// Empty topic list, too many user properties, a zero message expiry,
    /// or similar invalid argument.
    InvalidArgument,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientError::NotConnected => "not connected",
            ClientError::Busy => "transmit buffer full, retry after flushing",
            ClientError::InvalidTopic => "invalid topic",
            ClientError::TooLarge => "message too large for buffers",
            ClientError::OutboxFull => "outbox full",
            ClientError::InvalidArgument => "invalid argument",
        })
    }
}

impl From<DecodeError> for LinkError {
    fn from(e: DecodeError) -> Self {
        LinkError::Malformed(e)
    }
}
