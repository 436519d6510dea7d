//! Blocking driver: moves bytes between a [`Client`] and a transport that
//! implements `embedded_io::{Read, Write, ReadReady}` (a UART, a modem, a
//! socket wrapper).
//!
//! The driver never blocks on reading: it reads only what
//! [`ReadReady`](embedded_io::ReadReady) says is available, so keep-alive and
//! timeouts keep running. Writes block until the transport takes the bytes.

use core::fmt;

use embedded_io::{Read, ReadReady, Write};

use crate::client::{Client, Event, State};
use crate::error::LinkError;
use crate::outbox::OutboxStorage;

/// Driver error: the MQTT link failed, or the transport reported an I/O
/// error. Either way the client is disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// Protocol-level failure (see [`LinkError`]).
    Link(LinkError),
    /// Transport failure.
    Io(E),
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Link(e) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "transport error: {e:?}"),
        }
    }
}

/// A [`Client`] bound to a transport, with optional automatic reconnection
/// over the same transport (right for serial links, where "reconnecting"
/// means sending CONNECT again).
pub struct BlockingClient<'b, T, S: OutboxStorage, const Q2: usize = 4> {
    /// The protocol core; use it to publish and subscribe.
    pub client: Client<'b, S, Q2>,
    /// The transport.
    pub transport: T,
    /// If set, after a failure wait this many ms and send CONNECT again.
    pub reconnect_delay_ms: Option<u32>,
    last_attempt: Option<u32>,
}

impl<'b, T, S, const Q2: usize> BlockingClient<'b, T, S, Q2>
where
    T: Read + Write + ReadReady,
    S: OutboxStorage,
{
    /// Binds `client` to `transport`. With `reconnect_delay_ms` set, the
    /// driver connects on the first poll and reconnects after failures
    /// (at most one attempt per delay).
    pub fn new(client: Client<'b, S, Q2>, transport: T, reconnect_delay_ms: Option<u32>) -> Self {
        BlockingClient { client, transport, reconnect_delay_ms, last_attempt: None }
    }

    /// Writes all pending transmit data.
    pub fn flush(&mut self) -> Result<(), T::Error> {
        while !self.client.transmit_data().is_empty() {
            let n = self.transport.write(self.client.transmit_data())?;
            self.client.commit_transmitted(n);
        }
        Ok(())
    }

    /// One round: reconnect if due, transmit, read what is available, and
    /// return the next event. Call repeatedly with the current time in ms.
    pub fn poll(&mut self, now: u32) -> Result<Option<Event<'_>>, Error<T::Error>> {
        if self.client.state() == State::Disconnected {
            if let Some(delay) = self.reconnect_delay_ms {
                // First attempt at once; after a failure, wait `delay`.
                let due = self.last_attempt.is_none_or(|t| now.wrapping_sub(t) >= delay);
                if due {
                    self.last_attempt = Some(now);
                    // Fails only if CONNECT cannot fit the transmit buffer,
                    // a configuration error: nothing is sent, retried later.
                    let _ = self.client.connect(now);
                }
            }
        }
        let r = self.io();
        if r.is_err() {
            self.client.link_lost();
            self.last_attempt = Some(now);
        }
        r?;
        match self.client.poll(now) {
            Ok(ev) => Ok(ev),
            Err(e) => {
                self.last_attempt = Some(now);
                Err(Error::Link(e))
            }
        }
    }

    fn io(&mut self) -> Result<(), Error<T::Error>> {
        // Let the core queue acks / pings / outbox entries before writing.
        if self.client.state() != State::Disconnected || !self.client.transmit_data().is_empty() {
            self.flush().map_err(Error::Io)?;
        }
        while self.transport.read_ready().map_err(Error::Io)? {
            let buf = self.client.receive_buffer();
            if buf.is_empty() {
                break;
            }
            let n = self.transport.read(buf).map_err(Error::Io)?;
            if n == 0 {
                // Ready but nothing to read: end of stream, the peer closed.
                self.client.link_lost();
                break;
            }
            self.client.commit_received(n);
        }
        Ok(())
    }
}
