//! MQTT over WebSocket (`ws` and `wss` listeners, MQTT 5.0 section 6 and
//! 3.1.1 section 6): the HTTP upgrade, the `mqtt` subprotocol, and
//! [`WsStream`], which turns a WebSocket into the byte stream the
//! connection driver reads and writes. MQTT bytes travel in binary
//! frames, a packet may span frames and a frame may hold several packets
//! [MQTT-6.0.0-2], [MQTT-6.0.0-3]; a text frame closes the connection
//! [MQTT-6.0.0-1].
//!
//! The upgrade runs in the connection's task under the connect timeout,
//! like a TLS handshake; one message (and one frame) is bounded by the
//! listener's maximum packet size, so a client cannot make the broker
//! buffer more for it than a packet.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// The subprotocols the broker speaks, in its order of preference:
/// `mqtt` [MQTT-6.0.0-3], and `mqttv3.1` of older MQTT 3.1 clients.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// A WebSocket as a byte stream: binary frames in, binary frames out.
pub struct WsStream<S> {
    ws: WebSocketStream<S>,
    /// What is left of the last binary frame read.
    pending: Bytes,
}

impl<S> WsStream<S> {
    pub fn new(ws: WebSocketStream<S>) -> WsStream<S> {
        WsStream { ws, pending: Bytes::new() }
    }
}

fn ws_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "WebSocket closed")
        }
        e => io::Error::new(io::ErrorKind::InvalidData, e),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                if self.pending.is_empty() {
                    // An empty view still holds tungstenite's read buffer
                    // it was split from, which would then make a second.
                    self.pending = Bytes::new();
                }
                return Poll::Ready(Ok(()));
            }
            // Pings are answered by tungstenite as it reads.
            match std::task::ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => self.pending = b,
                Some(Ok(Message::Text(_))) => {
                    // [MQTT-6.0.0-1] MQTT is sent in binary frames only.
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "text frame on MQTT")));
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    /// One binary frame per write: the driver writes each turn's packets
    /// with one write.
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_error)?;
        Pin::new(&mut self.ws).start_send(Message::Binary(Bytes::copy_from_slice(buf))).map_err(ws_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match std::task::ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(ws_error(e))),
        }
    }
}

/// A WebSocket connection keeps its small read buffer while idle (its
/// readiness cannot be told apart from tungstenite's own buffering).
impl<S: AsyncRead + AsyncWrite + Unpin> super::Transport for WsStream<S> {}

/// Limits of one WebSocket connection: a message and a frame are at most
/// a packet of `max_packet_size` (and its WebSocket header). Buffers start
/// small (tungstenite's defaults reserve 128 KiB for reading and as much
/// for writing: 127 KiB per idle connection, measured) and grow with the
/// traffic; a frame is written as soon as it is made (the driver writes
/// once per turn already).
pub fn config(max_packet_size: usize) -> WebSocketConfig {
    let max = max_packet_size.saturating_add(16);
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(max.saturating_mul(2))
}

/// The read buffer a WebSocket connection reserves (and the most one read
/// asks the socket for beyond a partial frame): 512 B, what an idle
/// connection keeps (4 KiB cost 3.5 KiB more per idle connection,
/// measured; a large message now takes more reads).
const READ_BUFFER: usize = 512;

/// Answers the HTTP upgrade: any path; the first subprotocol of
/// [`SUBPROTOCOLS`] the client offers is chosen. A client that offers
/// subprotocols but none of them is refused (400); one that offers none
/// is served (some clients send no header).
#[allow(clippy::result_large_err)] // the signature tungstenite asks for
pub fn answer(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered: Vec<&str> = req
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if offered.is_empty() {
        return Ok(resp);
    }
    match SUBPROTOCOLS.iter().find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p))) {
        Some(p) => {
            resp.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(p));
            Ok(resp)
        }
        None => {
            let mut e = ErrorResponse::new(Some("MQTT over WebSocket needs the subprotocol \"mqtt\"".into()));
            *e.status_mut() = StatusCode::BAD_REQUEST;
            Err(e)
        }
    }
}
