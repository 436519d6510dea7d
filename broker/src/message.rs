//! Application messages as the router and the session queues hold them.
//!
//! A [`Message`] is immutable once accepted and shared by every subscriber
//! it goes to (`Arc`, with the payload in `Bytes`): fan-out copies pointers,
//! never payloads. A [`Delivery`] is one message on its way to one session,
//! with the QoS and flags of that subscription.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::protocol::{PublishProps, QoS};

/// Identifies a session inside the router (0 is the broker itself).
pub type SessionKey = u64;

/// An accepted application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 properties to forward (Topic Alias and Subscription
    /// Identifiers are per hop and never stored here).
    pub props: Option<Box<PublishProps>>,
    /// The publishing session, for the No Local option.
    pub origin: SessionKey,
    /// When the broker accepted it, for Message Expiry.
    pub received: Instant,
}

impl Message {
    /// The bytes this message accounts for in a queue (`max_queued_bytes`
    /// counts payload bytes, as Mosquitto's setting of that name does).
    pub fn cost(&self) -> usize {
        self.payload.len()
    }

    /// Whether its Message Expiry Interval has passed at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.expiry_left(now) == Some(0)
    }

    /// Seconds of the Message Expiry Interval left at `now`, if it has one.
    pub fn expiry_left(&self, now: Instant) -> Option<u32> {
        let interval = self.props.as_ref()?.message_expiry_interval?;
        let waited = now.saturating_duration_since(self.received);
        Some(Duration::from_secs(u64::from(interval)).saturating_sub(waited).as_secs() as u32)
    }
}

/// One message on its way to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub msg: Arc<Message>,
    /// QoS of this delivery: the lower of the message's and the subscription's.
    pub qos: QoS,
    /// The RETAIN flag to send.
    pub retain: bool,
    /// Subscription Identifiers of the matching subscriptions (MQTT 5).
    pub sub_ids: Vec<u32>,
    /// The `$share/...` filter this came through, if a shared subscription:
    /// such a delivery goes to another member if this one disconnects.
    pub shared: Option<Arc<str>>,
    /// The stored message body it refers to (0: not stored).
    pub mid: u64,
    /// Its position in the session's queue (set by the queue).
    pub seq: u64,
}
