//! Async driver (feature `async`): moves bytes between a [`Client`] and a
//! transport implementing `embedded_io_async::{Read, Write}`.
//!
//! The core has no clock; this driver has none either. Run
//! [`AsyncClient::read`] under your executor's timeout (e.g. embassy's
//! `with_timeout`) so keep-alive and timeouts get their [`AsyncClient::poll`]
//! calls even when the broker is silent.

use embedded_io_async::{Read, Write};

use crate::blocking::Error;
use crate::client::{Client, Event};
use crate::outbox::OutboxStorage;

/// A [`Client`] bound to an async transport.
pub struct AsyncClient<'b, T, S: OutboxStorage, const Q2: usize = 4> {
    /// The protocol core; use it to connect, publish and subscribe.
    pub client: Client<'b, S, Q2>,
    /// The transport.
    pub transport: T,
}

impl<'b, T, S, const Q2: usize> AsyncClient<'b, T, S, Q2>
where
    T: Read + Write,
    S: OutboxStorage,
{
    /// Binds `client` to `transport`.
    pub fn new(client: Client<'b, S, Q2>, transport: T) -> Self {
        AsyncClient { client, transport }
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
        if let Err(e) = self.flush().await {
            self.client.link_lost();
            return Err(Error::Io(e));
        }
        self.client.poll(now).map_err(Error::Link)
    }
}
