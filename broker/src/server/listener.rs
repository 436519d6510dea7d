//! Listeners: the accept loop of one listening socket, and its limit on
//! open connections (`max_connections` of a `[[listener]]` table).
//!
//! A connection beyond the limit is still served until its CONNECT, so the
//! client learns why it is refused (CONNACK 0x97 Quota exceeded; 3.1/3.1.1:
//! 0x03 Server unavailable) instead of seeing a bare close; it is bounded by
//! the connect timeout and does not count against the limit. At most
//! [`MAX_REFUSING`] such connections are served at once: beyond them a
//! connection is closed as soon as it is accepted, before any task or
//! buffer exists for it, so a flood costs no memory. Refusals and accept
//! errors are logged at most once per [`crate::ratelimit::LOG_EVERY`], with
//! a count.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use super::connection::{serve_holding, ConnCtx};
use super::ws::{self, WsStream};
use crate::ratelimit::RateLimited;

/// Connections over the limit served at once, only to refuse their CONNECT.
pub const MAX_REFUSING: usize = 64;
/// Backoff after an accept error (out of file descriptors and the like),
/// doubled per error in a row up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How many connections a listener has open, against its maximum.
pub(super) struct ConnLimit {
    open: Arc<AtomicUsize>,
    max: Option<usize>,
    /// Connections over the limit being refused (their CONNACK).
    refusing: Arc<AtomicUsize>,
}

/// A counted connection; dropping it frees its place.
pub(super) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnLimit {
    /// A limit of `max` connections, counted in `open` (the listener's gauge).
    pub(super) fn new(max: Option<usize>, open: Arc<AtomicUsize>) -> ConnLimit {
        ConnLimit { open, max, refusing: Arc::new(AtomicUsize::new(0)) }
    }

    /// A place among the connections served only to be refused.
    fn refuse(&self) -> Option<Slot> {
        self.refusing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_REFUSING).then_some(n + 1))
            .ok()?;
        Some(Slot(self.refusing.clone()))
    }

    /// A place for a new connection, or `None` if the listener is full.
    fn admit(&self) -> Option<Slot> {
        let max = self.max.unwrap_or(usize::MAX);
        self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Slot(self.open.clone()))
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<ConnCtx>,
    limit: ConnLimit,
    tracker: TaskTracker,
    ids: Arc<AtomicU64>,
) {
    let (mut refusals, mut errors) = (RateLimited::default(), RateLimited::default());
    let mut backoff = MIN_BACKOFF;
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = MIN_BACKOFF;
                ctx.listener.accepted.inc();
                let id = ids.fetch_add(1, Ordering::Relaxed);
                if let Some(slot) = limit.admit() {
                    spawn_conn(&tracker, stream, peer, id, ctx.clone(), false, slot);
                    continue;
                }
                ctx.listener.refused_full.inc();
                if let Some(n) = refusals.event(tokio::time::Instant::now().into_std()) {
                    tracing::info!(%peer, max_connections = limit.max, refused = n, "listener full: refusing connections");
                }
                match limit.refuse() {
                    // Served until its CONNECT, to be told why.
                    Some(place) => spawn_conn(&tracker, stream, peer, id, ctx.clone(), true, place),
                    // A flood: closed at once, nothing allocated for it.
                    None => drop(stream),
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                if let Some(n) = errors.event(tokio::time::Instant::now().into_std()) {
                    tracing::warn!(errors = n, "accept failed: {e}; backing off");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Spawns the task of an accepted connection: plain, or TLS and/or a
/// WebSocket upgrade first.
fn spawn_conn(
    tracker: &TaskTracker,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    ctx: Arc<ConnCtx>,
    full: bool,
    slot: Slot,
) {
    if ctx.tls.is_some() || ctx.ws {
        tracker.spawn(serve_upgraded(stream, peer, id, ctx, full, slot));
    } else {
        tracker.spawn(serve_tcp(stream, peer, id, ctx, full, slot));
    }
}

/// Serves one TLS or WebSocket connection: the TLS handshake and the
/// WebSocket upgrade, bounded together by the connect timeout (a client
/// that opens TCP and never speaks costs that long at most), then MQTT
/// over the result as [`serve_tcp`]. A failure is counted and logged
/// rate-limited, never per attempt.
///
/// The handshakes run in a boxed future of their own, dropped before the
/// connection is served: the task keeps only the served future, not the
/// handshake's buffers and state beside it for the connection's life
/// (measured: about 5 KiB per idle TLS or WebSocket connection, see
/// benches/README.md), nor the connect timeout's timer.
async fn serve_upgraded(stream: TcpStream, peer: SocketAddr, id: u64, ctx: Arc<ConnCtx>, full: bool, slot: Slot) {
    let _ = stream.set_nodelay(true);
    let run = Box::pin(handshakes(Accepted { stream, peer, id, full, slot }, &ctx)).await;
    if let Some(run) = run {
        run.await;
    }
}

/// The handshakes of [`serve_upgraded`] under the connect timeout and the
/// shutdown: the future that serves the connection, or `None` (a failure
/// is counted and logged).
async fn handshakes(a: Accepted, ctx: &Arc<ConnCtx>) -> Option<Serving> {
    let peer = a.peer;
    let (what, r) = tokio::select! {
        _ = ctx.shutdown.cancelled() => return None,
        r = tokio::time::timeout(ctx.machine.get().connect_timeout, upgrade(a, ctx)) => match r {
            Ok(Ok(run)) => return Some(run),
            Ok(Err((what, e))) => (what, e.to_string()),
            Err(_) => ("handshake", "not done within the connect timeout".to_owned()),
        },
    };
    ctx.listener.handshake_failures.inc();
    ctx.handshakes.failed(peer, what, &r);
    None
}

/// An accepted connection before its handshakes: its socket, peer, id,
/// and its place under the listener's limit (`full`: served only to be
/// refused).
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    full: bool,
    slot: Slot,
}

/// What a connection runs once its handshakes are done.
type Serving = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The TLS handshake and WebSocket upgrade of a connection; on success
/// the future that serves it. On failure, which step failed and why.
async fn upgrade(a: Accepted, ctx: &Arc<ConnCtx>) -> Result<Serving, (&'static str, std::io::Error)> {
    let Accepted { stream, peer, id, full, slot } = a;
    let max = ctx.machine.get().max_packet_size;
    let Some(tls) = ctx.tls.as_ref().map(|t| t.get()) else {
        let ws = ws_accept(stream, max).await.map_err(|e| ("WebSocket upgrade", e))?;
        return Ok(Box::pin(serve_holding(ws, peer, id, ctx.clone(), full, slot, None)));
    };
    let stream = tls.acceptor.accept(stream).await.map_err(|e| ("TLS handshake", e))?;
    let name = tls.cert_username(&stream);
    if !ctx.ws {
        return Ok(Box::pin(serve_holding(stream, peer, id, ctx.clone(), full, slot, name)));
    }
    let ws = ws_accept(stream, max).await.map_err(|e| ("WebSocket upgrade", e))?;
    Ok(Box::pin(serve_holding(ws, peer, id, ctx.clone(), full, slot, name)))
}

/// The WebSocket upgrade of `stream` (subprotocol `mqtt`, see `ws.rs`).
async fn ws_accept<S>(stream: S, max_packet_size: usize) -> std::io::Result<WsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let cfg = Some(ws::config(max_packet_size));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, ws::answer, cfg)
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(WsStream::new(ws))
}

/// Serves one TCP connection, holding `slot` until it closes: its place
/// under the listener's limit, or, if `full`, among the connections served
/// only to refuse their CONNECT.
///
/// Not an `async fn`: the connection's future is `serve`'s alone, without
/// a wrapper holding a second copy of the arguments.
fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    ctx: Arc<ConnCtx>,
    full: bool,
    slot: Slot,
) -> impl Future<Output = ()> {
    // Small MQTT packets must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    serve_holding(stream, peer, id, ctx, full, slot, None)
}
