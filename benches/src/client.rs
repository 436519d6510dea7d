//! Connections of the lean client: an async one (tokio) for throughput
//! scenarios and a blocking one for the paced latency and startup probes.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::{self, Frame};
use crate::Error;

/// How long a handshake step (CONNACK, SUBACK) may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn check_connack(body: &[u8]) -> Result<(), Error> {
    match body.get(1) {
        Some(0) => Ok(()),
        Some(code) => Err(Error::Refused(*code)),
        None => Err(Error::Protocol("short CONNACK".into())),
    }
}

/// The first return code of a SUBACK (after the MQTT 5 properties when `v5`).
fn check_suback(body: &[u8], v5: bool) -> Result<(), Error> {
    let at = if v5 { 3 + usize::from(body.get(2).copied().unwrap_or(0)) } else { 2 };
    match body.get(at) {
        Some(0x80) | None => Err(Error::Protocol("subscription refused".into())),
        Some(_) => Ok(()),
    }
}

/// An MQTT connection over tokio.
pub struct Conn {
    pub stream: TcpStream,
    pub rbuf: BytesMut,
    pub wbuf: BytesMut,
    /// The CONNACK's session-present flag.
    pub session_present: bool,
    /// MQTT 5 (PUBLISH and SUBACK carry properties).
    pub v5: bool,
}

impl Conn {
    /// Connects with a clean session and completes CONNECT/CONNACK.
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Result<Conn, Error> {
        Self::connect_session(addr, client_id, true).await
    }

    /// Connects (clean or persistent session) and completes CONNECT/CONNACK.
    pub async fn connect_session(addr: SocketAddr, client_id: &str, clean: bool) -> Result<Conn, Error> {
        Self::handshake(addr, |buf| wire::connect_session(buf, client_id, clean)).await
    }

    /// Connects with MQTT 5 (Clean Start or not, a Session Expiry Interval
    /// in seconds) and completes CONNECT/CONNACK.
    pub async fn connect_v5(addr: SocketAddr, client_id: &str, clean_start: bool, expiry: u32) -> Result<Conn, Error> {
        let mut c = Self::handshake(addr, |buf| wire::connect_v5(buf, client_id, clean_start, expiry)).await?;
        c.v5 = true;
        Ok(c)
    }

    /// Connects with a clean session, a user name and a password; a refusal
    /// is [`Error::Refused`] with the CONNACK's return code.
    pub async fn login(addr: SocketAddr, client_id: &str, user: &str, password: &[u8]) -> Result<Conn, Error> {
        Self::handshake(addr, |buf| wire::connect_login(buf, client_id, user, password)).await
    }

    /// Connects, writes the CONNECT `connect` encodes, waits for CONNACK.
    async fn handshake(addr: SocketAddr, connect: impl FnOnce(&mut BytesMut)) -> Result<Conn, Error> {
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout(format!("TCP connect to {addr}")))??;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            rbuf: BytesMut::with_capacity(256),
            wbuf: BytesMut::with_capacity(256),
            session_present: false,
            v5: false,
        };
        connect(&mut c.wbuf);
        c.flush().await?;
        let f = c.expect(wire::CONNACK, "CONNACK").await?;
        check_connack(&c.rbuf[f.body..f.len])?;
        c.session_present = c.rbuf.get(f.body).is_some_and(|flags| flags & 1 == 1);
        c.rbuf.advance(f.len);
        Ok(c)
    }

    /// One PINGREQ and its PINGRESP: the round trip.
    pub async fn ping(&mut self) -> Result<Duration, Error> {
        let start = std::time::Instant::now();
        wire::pingreq(&mut self.wbuf);
        self.flush().await?;
        let f = self.expect(wire::PINGRESP, "PINGRESP").await?;
        self.rbuf.advance(f.len);
        Ok(start.elapsed())
    }

    /// Subscribes to one filter and waits for SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: u8) -> Result<(), Error> {
        wire::subscribe_v(&mut self.wbuf, 1, filter, qos, self.v5);
        self.flush().await?;
        let f = self.expect(wire::SUBACK, "SUBACK").await?;
        check_suback(&self.rbuf[f.body..f.len], self.v5)?;
        self.rbuf.advance(f.len);
        Ok(())
    }

    /// Waits for a frame of type `kind` at the head of the read buffer.
    async fn expect(&mut self, kind: u8, what: &str) -> Result<Frame, Error> {
        let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            if let Some(f) = wire::next_frame(&self.rbuf)? {
                if f.header & 0xF0 == kind {
                    return Ok(f);
                }
                return Err(Error::Protocol(format!("expected {what}, got packet type 0x{:02x}", f.header)));
            }
            tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| Error::Timeout(format!("waiting for {what}")))??;
        }
    }

    /// Reads more bytes; the peer closing is an error.
    pub async fn read(&mut self) -> Result<usize, Error> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(64 * 1024);
        }
        match self.stream.read_buf(&mut self.rbuf).await? {
            0 => Err(Error::Closed),
            n => Ok(n),
        }
    }

    /// Writes the whole write buffer (one batched write) and clears it.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Sends DISCONNECT (best effort).
    pub async fn close(mut self) {
        wire::disconnect(&mut self.wbuf);
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// Sends DISCONNECT and waits (at most `timeout`) for the broker to
    /// close the connection, so that it has taken the client as gone;
    /// anything it sends meanwhile is discarded. Best effort.
    pub async fn close_and_wait(mut self, timeout: Duration) {
        wire::disconnect(&mut self.wbuf);
        if self.flush().await.is_err() {
            return;
        }
        let _ = self.stream.shutdown().await;
        let _ = tokio::time::timeout(timeout, async {
            while self.read().await.is_ok() {
                self.rbuf.clear();
            }
        })
        .await;
    }
}

/// A blocking MQTT connection.
pub struct SyncConn {
    pub stream: std::net::TcpStream,
    pub rbuf: BytesMut,
}

impl SyncConn {
    /// Connects and completes CONNECT/CONNACK, each step bounded by `timeout`.
    pub fn connect(addr: SocketAddr, client_id: &str, timeout: Duration) -> Result<SyncConn, Error> {
        let stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut c = SyncConn { stream, rbuf: BytesMut::with_capacity(4096) };
        let mut w = BytesMut::new();
        wire::connect(&mut w, client_id);
        c.stream.write_all(&w)?;
        let f = c.expect(wire::CONNACK, "CONNACK")?;
        check_connack(&c.rbuf[f.body..f.len])?;
        c.rbuf.advance(f.len);
        Ok(c)
    }

    pub fn subscribe(&mut self, filter: &str, qos: u8) -> Result<(), Error> {
        let mut w = BytesMut::new();
        wire::subscribe(&mut w, 1, filter, qos);
        self.stream.write_all(&w)?;
        let f = self.expect(wire::SUBACK, "SUBACK")?;
        check_suback(&self.rbuf[f.body..f.len], false)?;
        self.rbuf.advance(f.len);
        Ok(())
    }

    fn expect(&mut self, kind: u8, what: &str) -> Result<Frame, Error> {
        loop {
            if let Some(f) = wire::next_frame(&self.rbuf)? {
                if f.header & 0xF0 == kind {
                    return Ok(f);
                }
                return Err(Error::Protocol(format!("expected {what}, got packet type 0x{:02x}", f.header)));
            }
            self.read().map_err(|e| match e {
                Error::Io(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    Error::Timeout(format!("waiting for {what}"))
                }
                e => e,
            })?;
        }
    }

    /// Reads more bytes (blocking, bounded by the read timeout).
    pub fn read(&mut self) -> Result<usize, Error> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk)? {
            0 => Err(Error::Closed),
            n => {
                self.rbuf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
        }
    }
}
