//! Listeners: the accept loop of one listening socket, and its limit on
//! open connections (`max_connections` of a `[[listener]]` table).
//!
//! A connection beyond the limit is still served until its CONNECT, so the
//! client learns why it is refused (CONNACK 0x97 Quota exceeded; 3.1/3.1.1:
//! 0x03 Server unavailable) instead of seeing a bare close; it is bounded by
//! the connect timeout and does not count against the limit.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use super::connection::{serve_holding, ConnCtx};

/// How many connections a listener has open, against its maximum.
pub(super) struct ConnLimit {
    open: Arc<AtomicUsize>,
    max: Option<usize>,
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
        ConnLimit { open: Arc::new(AtomicUsize::new(0)), max }
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
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let slot = limit.admit();
                if slot.is_none() {
                    tracing::info!(%peer, max_connections = limit.max, "listener full: refusing the connection");
                }
                tracker.spawn(serve_tcp(stream, peer, id, ctx.clone(), slot));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one TCP connection; `slot` is its place under the listener's
/// limit, `None` if over it (CONNECT is then refused).
///
/// Not an `async fn`: the connection's future is `serve`'s alone, without
/// a wrapper holding a second copy of the arguments.
fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    ctx: Arc<ConnCtx>,
    slot: Option<Slot>,
) -> impl Future<Output = ()> {
    // Small MQTT packets must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let full = slot.is_none();
    serve_holding(stream, peer, id, ctx, full, slot)
}
