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
use super::tls::cert_username;
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
    pub(super) fn new(max: Option<usize>) -> ConnLimit {
        ConnLimit { open: Arc::new(AtomicUsize::new(0)), max, refusing: Arc::new(AtomicUsize::new(0)) }
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
                let id = ids.fetch_add(1, Ordering::Relaxed);
                if let Some(slot) = limit.admit() {
                    spawn_conn(&tracker, stream, peer, id, ctx.clone(), false, slot);
                    continue;
                }
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

/// Spawns the task of an accepted connection: plain, or TLS first.
fn spawn_conn(
    tracker: &TaskTracker,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    ctx: Arc<ConnCtx>,
    full: bool,
    slot: Slot,
) {
    if ctx.tls.is_some() {
        tracker.spawn(serve_tls(stream, peer, id, ctx, full, slot));
    } else {
        tracker.spawn(serve_tcp(stream, peer, id, ctx, full, slot));
    }
}

/// Serves one TLS connection: the handshake, bounded by the connect
/// timeout (a client that opens TCP and never speaks TLS costs that long
/// at most), then MQTT over it as [`serve_tcp`]. A failed handshake is
/// counted and logged rate-limited, never per attempt.
async fn serve_tls(stream: TcpStream, peer: SocketAddr, id: u64, ctx: Arc<ConnCtx>, full: bool, slot: Slot) {
    let Some(tls) = &ctx.tls else { return };
    let _ = stream.set_nodelay(true);
    let handshake = tls.acceptor.accept(stream);
    let stream = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        r = tokio::time::timeout(ctx.machine.connect_timeout, handshake) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return tls.failed(peer, &e),
            Err(_) => return tls.failed(peer, &"no handshake within the connect timeout"),
        },
    };
    let cert_username = match tls.cert_username {
        crate::config::CertUsername::No => None,
        how => stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| cert_username(c, how)),
    };
    serve_holding(stream, peer, id, ctx.clone(), full, slot, cert_username).await;
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
