//! The connection driver: owns one network stream, its read and write
//! buffers, and the session [`Machine`]; carries out the machine's actions.
//!
//! Generic over a [`Transport`] (`AsyncRead + AsyncWrite`, plus read
//! readiness where the stream has it), so TLS and WebSocket listeners reuse
//! it. Reads are decoded as they come; everything the machine sends in one
//! turn is encoded into one buffer and written with a single write (batched
//! writes).
//!
//! An idle connection is kept small, since a gateway may hold thousands:
//! it waits for readiness without a read buffer, keeps no write buffer
//! after a small write, and its task's future holds only what every turn
//! needs. What is rare (waiting for a full router channel, CONNECT's round
//! trip, held acknowledgements) is boxed on first use rather than stored
//! inline in every connection's future; the keep-alive deadline is an
//! entry in one wheel for all connections (`deadlines.rs`), and shutdown
//! one flag and one list of handles for all of them (`stopping.rs`). The
//! driver waits for everything in one `poll_fn` over itself
//! ([`Driver::poll_event`]), not a `select!` of futures each borrowing a
//! part of it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::gate_watch::GateWatch;
use crate::protocol::DisconnectReason;
use crate::protocol::{decode, encode_owned, Decoded, Packet, Version};
use crate::router::{ConnHandle, RouterMsg};
use crate::session::state::SharedSession;
use crate::session::{Action, Close, Machine, MachineConfig};
use crate::store::Journal;

/// Deliveries encoded per turn before the driver looks at its socket again.
const DELIVERY_BUDGET: usize = 128;
/// Read buffer reserved while idle; grows with traffic.
const IDLE_READ: usize = 256;
/// The largest read a busy stream is given room for at once.
const MAX_READ: usize = 64 * 1024;
/// How long a closing connection waits for the client to close its side.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// Buffers above this are released once empty.
const KEEP_BUFFER: usize = 16 * 1024;
/// A write buffer that held at most this much is released after the write
/// (an idle connection's PINGRESP or PUBACK); busier ones keep theirs.
const SMALL_WRITE: usize = 256;

/// A byte stream the driver can serve.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Whether [`Transport::poll_read_ready`] really waits for data. If it
    /// does, an idle connection holds no read buffer.
    const READINESS: bool = false;

    /// `Ready` once a read may make progress (data, end of stream or an
    /// error). The default cannot tell and is always ready: the driver
    /// then keeps its small read buffer while it waits.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Transport for TcpStream {
    const READINESS: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

/// What every connection shares.
pub struct ConnCtx {
    pub router: mpsc::Sender<RouterMsg>,
    /// The router itself, for a PUBLISH routed inline when the router is
    /// free and has nothing of this connection left (`router/shared.rs`).
    pub inline: Arc<crate::router::SharedRouter>,
    /// The listener's connection settings; replaced on reload (a
    /// connection takes them once, when it starts).
    pub machine: super::reload::Current<MachineConfig>,
    /// Cancelled once, at shutdown: the listeners and the handshakes in
    /// progress wait on it.
    pub shutdown: CancellationToken,
    /// Shutdown as the connections see it: a flag, and the broker's list
    /// of them to wake (no future per connection).
    pub stopping: Arc<super::stopping::Stopping>,
    /// The deadlines (CONNECT timeout, keep-alive) of the broker's
    /// connections: one wheel for all listeners.
    pub deadlines: Arc<super::deadlines::Deadlines>,
    /// `verbose`: log connections and subscriptions; changed on reload.
    pub verbose: std::sync::atomic::AtomicBool,
    /// The store, when acknowledgements must wait for durability.
    pub journal: Option<Arc<Journal>>,
    /// Password hashes verified at once, over all listeners (one per core).
    pub hashing: Arc<tokio::sync::Semaphore>,
    /// The listener's TLS, if it is a TLS listener (`mqtts`, `wss`);
    /// replaced on reload.
    pub tls: Option<super::reload::Current<super::tls::TlsLayer>>,
    /// Whether its connections are WebSockets (`ws`, `wss`).
    pub ws: bool,
    /// Its failed TLS handshakes and WebSocket upgrades.
    pub handshakes: super::tls::Handshakes,
    /// Its refused CONNECTs and malformed packets, logged rate-limited.
    pub logs: super::connlog::ConnLogs,
    /// The broker's registry, and this listener's part of it.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub listener: Arc<crate::metrics::ListenerMetrics>,
    /// The listener's URL, shared by its connections' [`crate::router::ConnInfo`].
    pub url: Arc<str>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The router went away: the broker is stopping.
struct RouterGone;

/// Work that must wait: rare, so it is done in a boxed future instead of
/// enlarging every connection's.
enum Wait {
    /// The router's channel is full.
    Router(RouterMsg),
    /// CONNECT's round trip to the router.
    Connect(crate::router::ConnectRequest),
    /// A user name and password to verify (CPU work, off the workers).
    Password { username: String, password: bytes::Bytes },
    /// The log has no room for what this QoS 1/2 message will record:
    /// wait for it (only this connection waits), then hand it over.
    Room(RouterMsg),
}

struct Driver<S> {
    stream: S,
    peer: SocketAddr,
    machine: Machine,
    rbuf: BytesMut,
    wbuf: BytesMut,
    session: Option<Arc<SharedSession>>,
    ctx: Arc<ConnCtx>,
    /// Set once the machine asked to close.
    closing: Option<Close>,
    /// What the machine's durability gate waits for; made on first use
    /// when the broker has a store.
    gate: Option<Box<GateWatch>>,
    /// Where the machine's deadline (CONNECT timeout, keep-alive) is in
    /// the shared wheel.
    timer: super::deadlines::Entry,
    /// This connection's place in the list shutdown wakes (in what was the
    /// struct's padding).
    listed: super::stopping::Slot,
}

impl<S> Drop for Driver<S> {
    fn drop(&mut self) {
        self.ctx.stopping.leave(self.listed);
    }
}

/// What woke the driver ([`Driver::poll_event`]), in the order it looks.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// The router closed the connection (`None`: without an error reason).
    Closed(Option<DisconnectReason>),
    Shutdown,
    /// The client sent bytes.
    Readable,
    /// The stream ended or failed.
    ReadEnd,
    /// The session queued deliveries.
    Notified,
    /// What the durability gate waits for may have moved.
    Gate,
    /// Deliveries are left over from the last turn's budget.
    More,
    /// The machine's deadline passed.
    Timer,
}

/// PUBLISH packets encoded in one turn, by QoS (count, payload bytes),
/// added to the shared registry once per turn: one atomic add per packet
/// on counters every connection shares cost fan-out 15% (cache lines
/// passed between the cores at every delivery).
#[derive(Default)]
struct Sent([(u64, u64); 3]);

impl Sent {
    fn flush(&self, metrics: &crate::metrics::Metrics) {
        for (q, (n, bytes)) in self.0.iter().enumerate() {
            if *n > 0 {
                metrics.sent.0[q].add(*n);
                metrics.sent_bytes.0[q].add(*bytes);
            }
        }
    }
}

/// Encodes `p` into the write buffer; a packet that cannot be encoded is
/// logged and skipped. Counts what is sent: PUBLISH by QoS and bytes (in
/// `sent`), refused CONNECTs by reason.
fn write(
    wbuf: &mut BytesMut,
    version: Version,
    peer: &SocketAddr,
    p: Packet,
    metrics: &crate::metrics::Metrics,
    sent: &mut Sent,
) {
    let counted = match &p {
        Packet::Publish(p) => Some((p.qos, p.payload.len())),
        Packet::Forward(f) => Some((f.qos, f.msg.payload.len())),
        Packet::ConnAck(c) if c.code.is_error() => {
            metrics.refused(c.code);
            None
        }
        _ => None,
    };
    if let Err(e) = encode_owned(p, version, wbuf) {
        tracing::warn!(%peer, "packet not sent: {e}");
    } else if let Some((qos, len)) = counted {
        let c = &mut sent.0[qos as usize];
        c.0 += 1;
        c.1 += len as u64;
    }
}

/// bytes of whole packets and left `buffered` bytes of a packet whose whole
/// size is `frame_len` (if its header is known).
fn read_room(frame_len: Option<usize>, buffered: usize, consumed: usize) -> usize {
    let rest = frame_len.map_or(0, |n| n.saturating_sub(buffered));
    rest.max((2 * consumed).clamp(IDLE_READ, MAX_READ))
}

/// Serves one client connection until it closes. `listener_full`: the
/// listener is at its `max_connections`, so CONNECT is refused.
///
/// A plain function returning the future, so the future holds the driver
/// once (an `async fn`'s arguments would be stored beside it).
pub fn serve<S: Transport>(
    stream: S,
    peer: SocketAddr,
    conn_id: u64,
    ctx: Arc<ConnCtx>,
    listener_full: bool,
) -> impl Future<Output = ()> {
    serve_holding(stream, peer, conn_id, ctx, listener_full, (), None)
}

/// [`serve`], holding `guard` until the connection is closed (a
/// listener's place for it). Held in `serve`'s own future, not by a
/// wrapping one, which would store `serve`'s future twice (1,040 bytes
/// instead of 504, `-Zprint-type-sizes`).
pub(super) fn serve_holding<S: Transport, G: Send + 'static>(
    stream: S,
    peer: SocketAddr,
    conn_id: u64,
    ctx: Arc<ConnCtx>,
    listener_full: bool,
    guard: G,
    cert_username: Option<String>,
) -> impl Future<Output = ()> {
    // Closed by the router (session takeover, queue overflow), and woken
    // by shutdown through the broker's list of connections (`stopping.rs`).
    let handle = ConnHandle::new(conn_id);
    let listed = ctx.stopping.enter(&handle);
    let mut machine = Machine::new(ctx.machine.get(), handle, now());
    if listener_full {
        machine.refuse_connect(crate::protocol::ConnectReason::QuotaExceeded);
    }
    if cert_username.is_some() {
        machine.set_cert_username(cert_username);
    }
    let mut d = Driver {
        stream,
        peer,
        machine,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        session: None,
        ctx,
        closing: None,
        gate: None,
        timer: super::deadlines::Entry::default(),
        listed,
    };
    // The body is here rather than in an `async fn` taking `&mut self`, whose
    // future would hold that reference twice. `close()` is boxed: it runs
    // once, and inline it would be the largest part of every connection's
    // future.
    async move {
        let why = d.run().await;
        Box::pin(d.close(why)).await;
        drop(guard);
    }
}

/// Reads what the stream has into `buf`. While nothing is there, an empty
/// buffer is released: a stream with readiness waits without one.
fn poll_read_some<S: Transport>(stream: &mut S, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    let ready = stream.poll_read_ready(cx);
    if ready.is_pending() && S::READINESS && buf.is_empty() && buf.capacity() > 0 {
        // A short read cleared the readiness: wait without the buffer.
        *buf = BytesMut::new();
    }
    std::task::ready!(ready)?;
    if buf.capacity() == buf.len() {
        buf.reserve(IDLE_READ);
    }
    let r = std::pin::pin!(stream.read_buf(buf)).poll(cx);
    if r.is_pending() && S::READINESS && buf.is_empty() {
        *buf = BytesMut::new();
    }
    r
}

impl<S: Transport> Driver<S> {
    /// After the session loop: tells the router, then closes the stream.
    async fn close(&mut self, why: Close) {
        if self.ctx.verbose.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(client_id) = self.machine.client_id() {
                tracing::info!(peer = %self.peer, client_id, reason = %why, "client disconnected");
            }
        }
        if let Some(msg) = self.tell_router_gone(why) {
            // If the router is gone the broker is stopping; nothing is lost
            // that a running router would have kept.
            let _ = Box::pin(self.ctx.router.send(msg)).await;
        }
        let _ = self.stream.shutdown().await;
        if why != Close::Io {
            // A lingering close: the client may still be sending; closing with
            // unread data would reset the connection and could destroy the
            // DISCONNECT (with its reason code) before the client reads it.
            let (stream, rbuf) = (&mut self.stream, &mut self.rbuf);
            let drain = async move {
                for _ in 0..64 {
                    rbuf.clear();
                    rbuf.reserve(IDLE_READ);
                    if matches!(stream.read_buf(rbuf).await, Ok(0) | Err(_)) {
                        break;
                    }
                }
            };
            let _ = Box::pin(tokio::time::timeout(LINGER, drain)).await;
        }
    }

    /// Tells the router the connection is gone (will, expiry); returns the
    /// message if the router's channel is full.
    fn tell_router_gone(&mut self, why: Close) -> Option<RouterMsg> {
        match self.ctx.router.try_send(self.machine.finish(why, now())?) {
            Err(mpsc::error::TrySendError::Full(msg)) => Some(msg),
            _ => None,
        }
    }

    async fn run(&mut self) -> Close {
        let mut more = false;
        loop {
            if self.execute().await.is_err() {
                return Close::Shutdown;
            }
            // Deliveries may have been held back behind a SUBACK released since.
            more |= self.deliver();
            let write_failed = self.flush().await.is_err();
            if let Some(why) = self.closing {
                return why;
            }
            if write_failed {
                return Close::Io;
            }
            let gate_waiting = self.machine.gate_waiting();
            let deadline = self.machine.deadline();
            if gate_waiting && self.gate.is_none() {
                if let Some(journal) = &self.ctx.journal {
                    // Held before this connection sent the router anything
                    // (a resumed session's QoS 2 resend): start watching,
                    // with what is known now.
                    let mut gate = Box::new(GateWatch::new(journal));
                    gate.feed(&mut self.machine);
                    self.gate = Some(gate);
                    continue;
                }
            }
            let event = std::future::poll_fn(|cx| self.poll_event(more, gate_waiting, deadline, cx)).await;
            match event {
                Event::Closed(Some(code)) => {
                    if code == DisconnectReason::SessionTakenOver && Box::pin(self.finish_input()).await.is_err() {
                        return Close::Shutdown;
                    }
                    // A no-op if what was read closed the connection.
                    self.machine.closed_by_router(code)
                }
                Event::Closed(None) | Event::Shutdown => self.machine.shutdown(),
                Event::ReadEnd => return Close::Io,
                Event::Readable => {
                    if let Err(RouterGone) = self.on_readable().await {
                        return Close::Shutdown;
                    }
                    more = self.deliver();
                }
                Event::Gate => {
                    if let Some(g) = &mut self.gate {
                        g.feed(&mut self.machine);
                    }
                    more = self.deliver();
                }
                Event::Notified | Event::More => more = self.deliver(),
                Event::Timer => self.machine.on_timer(now()),
            }
        }
    }

    /// What the driver waits for between turns, looked at in this order
    /// (the first ready wins): the router closing the connection,
    /// shutdown, the client's bytes, the session's deliveries, the
    /// durability gate (`gate_waiting`), deliveries left over (`more`),
    /// the deadline. One future over the whole driver, holding only its
    /// arguments: a `select!` stored a future per branch in every idle
    /// connection's task (160 bytes).
    fn poll_event(
        &mut self,
        more: bool,
        gate_waiting: bool,
        deadline: Option<Instant>,
        cx: &mut Context<'_>,
    ) -> Poll<Event> {
        // The handle's waker is registered before the flag is read, so a
        // shutdown after this look wakes the driver (`stopping.rs`).
        if let Poll::Ready(reason) = self.machine.conn().poll_closed(cx) {
            return Poll::Ready(Event::Closed(reason));
        }
        if self.ctx.stopping.is_stopped() {
            return Poll::Ready(Event::Shutdown);
        }
        match poll_read_some(&mut self.stream, &mut self.rbuf, cx) {
            Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Event::ReadEnd),
            Poll::Ready(Ok(_)) => return Poll::Ready(Event::Readable),
            Poll::Pending => {}
        }
        // Before CONNECT there is no session: never ready.
        if self.session.as_ref().is_some_and(|s| s.notify.poll_notified(cx).is_ready()) {
            return Poll::Ready(Event::Notified);
        }
        if gate_waiting && self.gate.as_mut().is_some_and(|g| g.poll_wake(cx).is_ready()) {
            return Poll::Ready(Event::Gate);
        }
        if more {
            return Poll::Ready(Event::More);
        }
        let Driver { ctx, timer, machine, .. } = self;
        if ctx.deadlines.poll(timer, deadline, machine.conn(), cx).is_ready() {
            return Poll::Ready(Event::Timer);
        }
        Poll::Pending
    }

    /// Decodes and handles every whole packet in the read buffer.
    async fn on_readable(&mut self) -> Result<(), RouterGone> {
        // Bytes of whole packets decoded in this call: how busy the stream is.
        let mut consumed = 0;
        loop {
            if self.closing.is_some() || self.machine.is_closed() {
                return Ok(());
            }
            match decode(&mut self.rbuf, self.machine.version(), self.machine.config().max_packet_size) {
                Ok(Decoded::Packet(p, len)) => {
                    consumed += len;
                    self.machine.handle(p, now());
                }
                Ok(Decoded::Incomplete { frame_len }) => {
                    self.make_read_room(frame_len, consumed);
                    return Ok(());
                }
                Err(e) => {
                    self.ctx.logs.malformed(&self.peer, self.machine.client_id().unwrap_or("-"), &e);
                    self.machine.decode_error(e);
                    return Ok(());
                }
            }
            // Run CONNECT's router round trip before the next packet.
            self.execute().await?;
        }
    }

    /// Taken over: handles the packets the client sent before, what is
    /// buffered and what has arrived, without waiting for more. A
    /// DISCONNECT among them decides the will and the session
    /// [MQTT-3.1.2-10], as if it had been read before the new CONNECT.
    async fn finish_input(&mut self) -> Result<(), RouterGone> {
        // Bounded: a client that keeps sending cannot hold the takeover.
        for _ in 0..16 {
            self.on_readable().await?;
            if self.closing.is_some() || self.machine.is_closed() {
                break;
            }
            let arrived = std::future::poll_fn(|cx| {
                Poll::Ready(matches!(poll_read_some(&mut self.stream, &mut self.rbuf, cx), Poll::Ready(Ok(n)) if n > 0))
            })
            .await;
            if !arrived {
                break;
            }
        }
        Ok(())
    }

    /// Leaves room in the read buffer for the rest of a partial packet and,
    /// on a busy stream, for twice what the last read brought (at most
    /// `MAX_READ`): a stream of small packets is then read in large chunks,
    /// not a few packets per system call. An empty buffer much larger than
    /// that is released.
    fn make_read_room(&mut self, frame_len: Option<usize>, consumed: usize) {
        let want = read_room(frame_len, self.rbuf.len(), consumed);
        if self.rbuf.is_empty() && self.rbuf.capacity() > KEEP_BUFFER.max(2 * want) {
            self.rbuf = BytesMut::new();
        } else if self.rbuf.capacity() - self.rbuf.len() < want {
            self.rbuf.reserve(want);
        }
    }

    /// Carries out the machine's actions, including those the actions
    /// themselves cause (CONNECT's reply). Only what must wait is awaited,
    /// in a boxed future: the common turn (every packet read) awaits
    /// nothing, and this future holds nothing but the box's pointer.
    async fn execute(&mut self) -> Result<(), RouterGone> {
        // Bound here, not matched on: a match's scrutinee would be held
        // across the await (392 bytes in the future, `-Zprint-type-sizes`).
        let Some(waiting) = self.act_all()? else { return Ok(()) };
        let waiting = Box::pin(self.execute_waiting(waiting));
        waiting.await
    }

    /// Carries out the machine's actions until one must wait: that one and
    /// the actions after it.
    fn act_all(&mut self) -> Result<Option<(Wait, std::vec::IntoIter<Action>)>, RouterGone> {
        loop {
            let mut actions = self.machine.actions().into_iter();
            if actions.len() == 0 {
                return Ok(None);
            }
            if let Some(wait) = self.act_until_wait(&mut actions)? {
                return Ok(Some((wait, actions)));
            }
        }
    }

    /// [`Driver::execute`] from an action that must wait.
    async fn execute_waiting(&mut self, waiting: (Wait, std::vec::IntoIter<Action>)) -> Result<(), RouterGone> {
        let (mut wait, mut actions) = waiting;
        loop {
            self.wait(wait).await?;
            (wait, actions) = match self.act_until_wait(&mut actions)? {
                Some(w) => (w, actions),
                None => match self.act_all()? {
                    Some(next) => next,
                    None => return Ok(()),
                },
            };
        }
    }

    /// Carries out actions until one must wait.
    fn act_until_wait(&mut self, actions: &mut std::vec::IntoIter<Action>) -> Result<Option<Wait>, RouterGone> {
        for action in actions {
            if let Some(wait) = self.act(action)? {
                return Ok(Some(wait));
            }
        }
        Ok(None)
    }

    async fn wait(&mut self, wait: Wait) -> Result<(), RouterGone> {
        match wait {
            Wait::Router(msg) => self.ctx.router.send(msg).await.map_err(|_| RouterGone),
            Wait::Connect(req) => self.connect(req).await,
            Wait::Password { username, password } => {
                let ok = match self.machine.config().files.clone() {
                    Some(files) => {
                        // At most cores - 1 hashes at a time: a flood of
                        // wrong passwords queues here, it does not take
                        // every worker (or 46 MiB per argon2id hash each).
                        // A CONNECT waits its connect timeout at most, so
                        // a queue of clients long gone is not hashed.
                        let limit = self.machine.config().connect_timeout;
                        let Ok(_permit) = tokio::time::timeout(limit, self.ctx.hashing.acquire()).await else {
                            self.machine.password_unchecked();
                            return Ok(());
                        };
                        tokio::task::spawn_blocking(move || files.check_password(&username, &password))
                            .await
                            .unwrap_or(false)
                    }
                    None => false,
                };
                self.machine.password_checked(ok);
                Ok(())
            }
            Wait::Room(msg) => {
                if let Some(journal) = self.ctx.journal.clone() {
                    journal.room().await;
                }
                self.ctx.router.send(msg).await.map_err(|_| RouterGone)
            }
        }
    }

    /// Sends to the router; with a store, with this connection's ticket
    /// (the gate counts the messages the machine emitted). A full channel
    /// is waited for by the caller.
    fn send_router(&mut self, msg: RouterMsg) -> Result<Option<Wait>, RouterGone> {
        let msg = self.ticketed(msg);
        self.try_send(msg)
    }

    /// Puts `msg` on the router's channel; a full channel is waited for by
    /// the caller.
    fn try_send(&self, msg: RouterMsg) -> Result<Option<Wait>, RouterGone> {
        match self.ctx.router.try_send(msg) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(msg)) => Ok(Some(Wait::Router(msg))),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(RouterGone),
        }
    }

    /// `msg` with this connection's ticket, if the broker has a store.
    fn ticketed(&mut self, msg: RouterMsg) -> RouterMsg {
        match &self.ctx.journal {
            Some(journal) => {
                let gate = self.gate.get_or_insert_with(|| Box::new(GateWatch::new(journal)));
                gate.sent += 1;
                RouterMsg::Ticketed(Box::new(msg), gate.ticket.clone())
            }
            None => msg,
        }
    }

    /// Routes a PUBLISH here, in this turn, when the router is free and has
    /// processed everything this connection sent before
    /// (`router/shared.rs`); its acknowledgement, released by the gate,
    /// goes out in the same write. Otherwise, through the channel.
    fn route(&mut self, m: crate::message::Message) -> Result<Option<Wait>, RouterGone> {
        let Some(journal) = &self.ctx.journal else {
            return self.send_router(RouterMsg::Publish(m));
        };
        let gate = self.gate.get_or_insert_with(|| Box::new(GateWatch::new(journal)));
        gate.sent += 1;
        match self.ctx.inline.try_route(RouterMsg::Publish(m), &gate.ticket, gate.sent, now()) {
            None => {
                gate.feed(&mut self.machine);
                Ok(None)
            }
            Some(msg) => {
                let msg = RouterMsg::Ticketed(Box::new(msg), gate.ticket.clone());
                self.try_send(msg)
            }
        }
    }

    fn act(&mut self, action: Action) -> Result<Option<Wait>, RouterGone> {
        match action {
            // The machine's gate already held what must wait.
            Action::Send(p) => self.write(p),
            Action::Route(m) => {
                // A QoS 1/2 message is recorded if it reaches a persistent
                // session: with the log behind (a slow disk) its publisher
                // waits here, asynchronously; QoS 0 traffic never does.
                let full = m.qos != crate::protocol::QoS::AtMostOnce
                    && self.ctx.journal.as_ref().is_some_and(|j| !j.has_room());
                if full {
                    let msg = self.ticketed(RouterMsg::Publish(m));
                    return Ok(Some(Wait::Room(msg)));
                }
                return self.route(m);
            }
            Action::Subscribe(entries) => {
                if self.ctx.verbose.load(std::sync::atomic::Ordering::Relaxed) {
                    let client_id = self.machine.client_id().unwrap_or("-");
                    for e in &entries {
                        tracing::info!(client_id, filter = %e.filter, qos = e.sub.options.qos as u8, "subscribe");
                    }
                }
                let key = self.machine.session_key().unwrap_or(0);
                return self.send_router(RouterMsg::Subscribe { key, entries });
            }
            Action::Unsubscribe(filters) => {
                let key = self.machine.session_key().unwrap_or(0);
                return self.send_router(RouterMsg::Unsubscribe { key, filters });
            }
            Action::Connect(req) => return Ok(Some(Wait::Connect(req))),
            Action::CheckPassword { username, password } => return Ok(Some(Wait::Password { username, password })),
            Action::Close(why) => self.closing = Some(why),
        }
        Ok(None)
    }

    /// Asks the router for the session, then feeds the reply to the machine.
    async fn connect(&mut self, req: crate::router::ConnectRequest) -> Result<(), RouterGone> {
        let (tx, rx) = oneshot::channel();
        let client_id = req.client_id.clone();
        self.ctx.router.send(RouterMsg::Connect(req, tx)).await.map_err(|_| RouterGone)?;
        let reply = rx.await.map_err(|_| RouterGone)?;
        if let Ok(r) = &reply {
            if self.ctx.verbose.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::info!(peer = %self.peer, client_id, session_present = r.session_present, "client connected");
            }
            self.session = Some(r.session.clone());
        }
        // CONNACK and resent in-flight messages now; queued ones follow
        // once those are written (deliver defers while actions wait).
        self.machine.connected(reply, now());
        if let Some((version, keep_alive, user)) = self.machine.client_info() {
            let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            self.machine.conn().set_info(crate::router::ConnInfo {
                user: user.map(Box::from),
                address: self.peer,
                listener: self.ctx.url.clone(),
                connected_since: since.map_or(0, |d| d.as_secs()),
                keep_alive,
                version,
            });
        }
        Ok(())
    }

    /// Turns queued deliveries into packets (the machine's gate holds
    /// what must wait).
    fn deliver(&mut self) -> bool {
        if self.machine.has_actions() {
            // Deliveries are written straight into the write buffer: what
            // the machine emitted before them (CONNACK, resent PUBLISH)
            // goes first, at the top of the driver's loop.
            return true;
        }
        let Some(version) = self.machine.version() else { return false };
        let Driver { machine, wbuf, peer, ctx, .. } = self;
        let mut sent = Sent::default();
        let more = machine.deliver(now(), DELIVERY_BUDGET, |p| write(wbuf, version, peer, p, &ctx.metrics, &mut sent));
        sent.flush(&ctx.metrics);
        more
    }

    fn write(&mut self, p: Packet) {
        let Some(version) = self.machine.version() else { return };
        if let Packet::ConnAck(c) = &p {
            if c.code.is_error() {
                self.ctx.logs.refused(&self.peer, c.code);
            }
        }
        let mut sent = Sent::default();
        write(&mut self.wbuf, version, &self.peer, p, &self.ctx.metrics, &mut sent);
        sent.flush(&self.ctx.metrics);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let r = self.stream.write_all(&self.wbuf).await;
        // A small write (an idle connection's PINGRESP) keeps no buffer; a
        // busy connection keeps its own up to a limit.
        if self.wbuf.len() <= SMALL_WRITE || self.wbuf.capacity() > KEEP_BUFFER {
            self.wbuf = BytesMut::new();
        } else {
            self.wbuf.clear();
        }
        r?;
        self.stream.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_room_follows_the_traffic() {
        // Idle or a lone small packet: the smallest read.
        assert_eq!(read_room(None, 0, 0), IDLE_READ);
        assert_eq!(read_room(Some(40), 10, 2), IDLE_READ);
        // A busy stream of small packets: room for twice the last turn, so
        // thousands of packets are not read a few at a time.
        assert_eq!(read_room(Some(80), 30, 8_000), 16_000);
        assert_eq!(read_room(None, 0, 1 << 20), MAX_READ);
        // A large packet gets room for all of its rest at once.
        assert_eq!(read_room(Some(1_000_000), 1_000, 100), 999_000);
    }
}
