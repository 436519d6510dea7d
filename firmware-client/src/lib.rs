//! `edgemq-client`: a `no_std`, allocation-free MQTT 3.1.1 client with a
//! device-side store-and-forward outbox.
//!
//! * [`codec`]: the MQTT 3.1.1 wire format (encode into caller buffers,
//!   zero-copy decode).
//! * [`Client`]: the sans-I/O protocol core. Feed it received bytes, take
//!   bytes to send, pass the time in, get [`Event`]s out.
//! * [`outbox`]: the [`OutboxStorage`] trait and its RAM and simulated-flash
//!   implementations.
//! * [`blocking`]: a thin driver over `embedded_io::{Read, Write, ReadReady}`.
//! * `asynch` (feature `async`): the same over `embedded-io-async`.
//! * `flash` (feature `flash`): [`flash::FlashOutbox`], the outbox and the
//!   inbound QoS 2 ids kept on NOR flash.
//! * `v5` (feature `v5`): MQTT 5 codec, reason codes and options; the same
//!   [`Client`] speaks MQTT 5 when [`Config`]'s `v5` field is set.
//!
//! All capacities are chosen by the caller: transmit and receive buffers are
//! `&mut [u8]`, the outbox size and the inbound QoS 2 table are const
//! generics. The crate contains no `unsafe` code.
//!
//! ```
//! use edgemq_client::{Client, Config, Event, QoS, RamOutbox};
//!
//! let (mut tx, mut rx) = ([0u8; 256], [0u8; 256]);
//! let mut cfg = Config::new("sensor-1");
//! cfg.keep_alive_secs = 30;
//! let mut client: Client<'_, RamOutbox<1024>> =
//!     Client::new(cfg, &mut tx, &mut rx, RamOutbox::new());
//!
//! // Offline: the reading waits in the outbox.
//! let pid = client.publish("sensors/1/t", b"21.5", QoS::AtLeastOnce, false).unwrap();
//!
//! // Transport is up: send CONNECT, feed the broker's CONNACK.
//! client.connect(0).unwrap();
//! let n = client.transmit_data().len(); // write these bytes to the transport
//! client.commit_transmitted(n);
//! client.feed(&[0x20, 0x02, 0x01, 0x00]);
//! assert_eq!(client.poll(1).unwrap(), Some(Event::Connected { session_present: true }));
//!
//! // The queued PUBLISH is now ready to send; its PUBACK completes it.
//! assert!(client.poll(2).unwrap().is_none());
//! assert_eq!(client.transmit_data()[0] >> 4, 3); // PUBLISH
//! let n = client.transmit_data().len();
//! client.commit_transmitted(n);
//! let [hi, lo] = pid.unwrap().to_be_bytes();
//! client.feed(&[0x40, 0x02, hi, lo]);
//! assert_eq!(client.poll(3).unwrap(), Some(Event::Delivered { pid: pid.unwrap() }));
//! assert!(client.outbox().is_empty());
//! # use edgemq_client::OutboxStorage;
//! ```
#![no_std]

#[cfg(feature = "async")]
pub mod asynch;
pub mod blocking;
mod client;
#[cfg(feature = "v5")]
mod client_v5;
pub mod codec;
mod error;
#[cfg(feature = "flash")]
pub mod flash;
pub mod outbox;
mod topic;
#[cfg(feature = "v5")]
pub mod v5;

pub use client::{Client, Config, Event, OutboxPolicy, State};
pub use codec::{Properties, Publish, QoS, Topic, Will};
pub use error::{ClientError, LinkError};
pub use outbox::{OutboxStorage, RamOutbox, SimFlashOutbox};
