//! Async driver (feature `async`): moves bytes between a [`Client`] and a
//! transport implementing `embedded_io_async::{Read, Write}`.
//!
//! The core has no clock; this driver has none either. Run
//! [`AsyncClient::read`] under your executor's timeout (e.g. embassy's
//! `with_timeout`) so keep-alive and timeouts get their [`AsyncClient::poll`]
//! calls even when the broker is silent. Like the blocking driver it can
//! reconnect by itself over the same transport
//! ([`reconnect_delay_ms`](AsyncClient::reconnect_delay_ms)).

use embedded_io_async::{Read, Write};

use crate::blocking::Error;
use crate::client::{Client, Event, State};
use crate::outbox::OutboxStorage;

/// A [`Client`] bound to an async transport.
pub struct AsyncClient<'b, T, S: OutboxStorage, const Q2: usize = 4> {
    /// The protocol core; use it to connect, publish and subscribe.
    pub client: Client<'b, S, Q2>,
    /// The transport.
    pub transport: T,
    /// If set, after a failure wait this many ms and send CONNECT again
    /// (the first attempt at the first poll). `None` (default): call
    /// `client.connect` yourself.
    pub reconnect_delay_ms: Option<u32>,
    last_attempt: Option<u32>,
}

impl<'b, T, S, const Q2: usize> AsyncClient<'b, T, S, Q2>
where
    T: Read + Write,
    S: OutboxStorage,
{
    /// Binds `client` to `transport`.
    pub fn new(client: Client<'b, S, Q2>, transport: T) -> Self {
        AsyncClient { client, transport, reconnect_delay_ms: None, last_attempt: None }
    }

    /// Writes all pending transmit data.
    pub async fn flush(&mut self) -> Result<(), T::Error> {
        while !self.client.transmit_data().is_empty() {
            let n = self.transport.write(self.client.transmit_data()).await?;
            self.client.commit_transmitted(n);
        }
        self.transport.flush().await
    }

    /// Waits for bytes from the transport and hands them to the core.
    /// A transport error or end of stream marks the link as lost.
    pub async fn read(&mut self) -> Result<usize, Error<T::Error>> {
        let r = self.transport.read(self.client.receive_buffer()).await;
        match r {
            Ok(n) if n > 0 => {
                self.client.commit_received(n);
                Ok(n)
            }
            Ok(_) => {
                self.client.link_lost();
                Ok(0)
            }
            Err(e) => {
                self.client.link_lost();
                Err(Error::Io(e))
            }
        }
    }

    /// Flushes, then returns the next event from the core (timers run with
    /// `now` in ms). Call until it returns `Ok(None)`, then [`read`](Self::read).
    pub async fn poll(&mut self, now: u32) -> Result<Option<Event<'_>>, Error<T::Error>> {
        if self.client.state() == State::Disconnected {
            if let Some(delay) = self.reconnect_delay_ms {
                if self.last_attempt.is_none_or(|t| now.wrapping_sub(t) >= delay) {
                    self.last_attempt = Some(now);
                    // Fails only if CONNECT cannot fit the transmit buffer.
                    let _ = self.client.connect(now);
                }
            }
        }
        if let Err(e) = self.flush().await {
            self.client.link_lost();
            self.last_attempt = Some(now);
            return Err(Error::Io(e));
        }
        match self.client.poll(now) {
            Ok(ev) => Ok(ev),
            Err(e) => {
                self.last_attempt = Some(now);
                Err(Error::Link(e))
            }
        }
    }
}
