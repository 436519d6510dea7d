//! The connection driver: owns one network stream, its read and write
//! buffers, and the session [`Machine`]; carries out the machine's actions.
//!
//! Generic over `AsyncRead + AsyncWrite`, so TLS and WebSocket listeners
//! reuse it unchanged. Reads are decoded as they come; everything the
//! machine sends in one turn is encoded into one buffer and written with a
//! single write (batched writes). Buffers start small and shrink back after
//! bursts, so an idle connection costs little memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::protocol::{decode, encode_owned, Decoded, Packet};
use crate::router::{ConnHandle, RouterMsg, Ticket};
use crate::session::state::SharedSession;
use crate::session::{Action, Close, Machine, MachineConfig};
use crate::store::{Journal, Lsn};

/// Deliveries encoded per turn before the driver looks at its socket again.
const DELIVERY_BUDGET: usize = 128;
/// Read buffer reserved while idle; grows with traffic.
const IDLE_READ: usize = 256;
/// How long a closing connection waits for the client to close its side.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// Buffers above this are released once empty.
const KEEP_BUFFER: usize = 16 * 1024;

/// What every connection shares.
pub struct ConnCtx {
    pub router: mpsc::Sender<RouterMsg>,
    pub machine: MachineConfig,
    pub shutdown: CancellationToken,
    pub verbose: bool,
    /// The store, when acknowledgements must wait for durability.
    pub journal: Option<Arc<Journal>>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The router went away: the broker is stopping.
struct RouterGone;

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
    /// Acknowledgements held until what they acknowledge is durable.
    acks: Option<HeldAcks>,
}

/// PUBACK, PUBREC, SUBACK and UNSUBACK wait (in order) until the router
/// has processed the message they answer and the log is durable that far.
struct HeldAcks {
    ticket: Arc<Ticket>,
    journal: Arc<Journal>,
    durable: tokio::sync::watch::Receiver<Lsn>,
    /// Messages sent to the router with the ticket.
    sent: u64,
    /// (router messages that must be processed first, log position that
    /// must be durable, the acknowledgement).
    held: std::collections::VecDeque<(u64, Lsn, Packet)>,
    /// Outgoing PUBLISH packets waiting for the log to reach an LSN: a
    /// QoS 2 PUBLISH goes out only once its packet identifier is on disk
    /// (so a resend after a crash reuses it), and later ones keep order.
    publishes: std::collections::VecDeque<(Lsn, Packet)>,
}

impl HeldAcks {
    /// Takes the acknowledgements that may go now.
    fn ready(&mut self, out: &mut Vec<Packet>) {
        use std::sync::atomic::Ordering;
        let processed = self.ticket.processed.load(Ordering::Acquire);
        let lsn = self.ticket.lsn.load(Ordering::Acquire);
        let durable = *self.durable.borrow_and_update();
        while self.held.front().is_some_and(|(op, need, _)| *op <= processed && durable >= lsn.max(*need)) {
            if let Some((_, _, p)) = self.held.pop_front() {
                out.push(p);
            }
        }
        while self.publishes.front().is_some_and(|(need, _)| durable >= *need) {
            if let Some((_, p)) = self.publishes.pop_front() {
                out.push(p);
            }
        }
    }

    fn waiting(&self) -> bool {
        !self.held.is_empty() || !self.publishes.is_empty()
    }
}

/// Serves one client connection until it closes. `listener_full`: the
/// listener is at its `max_connections`, so CONNECT is refused.
pub async fn serve<S>(stream: S, peer: SocketAddr, conn_id: u64, ctx: Arc<ConnCtx>, listener_full: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handle = ConnHandle::new(conn_id);
    let mut machine = Machine::new(ctx.machine.clone(), handle.clone(), now());
    if listener_full {
        machine.refuse_connect(crate::protocol::reason::QUOTA_EXCEEDED);
    }
    let mut d = Driver {
        stream,
        peer,
        machine,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        session: None,
        // Held in every sync mode: with "never" the log is at least written
        // (to the page cache) before an acknowledgement, so a crash of the
        // broker alone loses nothing acknowledged.
        acks: ctx.journal.as_ref().map(|j| HeldAcks {
            ticket: Arc::new(Ticket::default()),
            journal: j.clone(),
            durable: j.durable(),
            publishes: std::collections::VecDeque::new(),
            sent: 0,
            held: std::collections::VecDeque::new(),
        }),
        ctx,
        closing: None,
    };
    let why = d.run(&handle).await;
    if d.ctx.verbose {
        if let Some(client_id) = d.machine.client_id() {
            tracing::info!(peer = %d.peer, client_id, reason = ?why, "client disconnected");
        }
    }
    if let Some(msg) = d.machine.finish(why, now()) {
        // If the router is gone the broker is stopping; nothing is lost
        // that a running router would have kept.
        let _ = d.ctx.router.send(msg).await;
    }
    let _ = d.stream.shutdown().await;
    if why != Close::Io {
        // A lingering close: the client may still be sending; closing with
        // unread data would reset the connection and could destroy the
        // DISCONNECT (with its reason code) before the client reads it.
        let drain = async {
            for _ in 0..64 {
                d.rbuf.clear();
                d.rbuf.reserve(IDLE_READ);
                if matches!(d.stream.read_buf(&mut d.rbuf).await, Ok(0) | Err(_)) {
                    break;
                }
            }
        };
        let _ = Box::pin(tokio::time::timeout(LINGER, drain)).await;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    async fn run(&mut self, handle: &ConnHandle) -> Close {
        let mut more = false;
        loop {
            if self.execute().await.is_err() {
                return Close::Shutdown;
            }
            // Deliveries may have been held back behind a SUBACK released since.
            more |= self.deliver();
            let flushed = self.flush().await;
            if let Some(why) = self.closing {
                return why;
            }
            if flushed.is_err() {
                return Close::Io;
            }
            let deadline = self.machine.deadline().map(tokio::time::Instant::from_std);
            let session = self.session.clone();
            let waiting = self.acks.as_ref().filter(|a| a.waiting()).map(|a| (a.ticket.clone(), a.durable.clone()));
            if self.rbuf.capacity() == self.rbuf.len() {
                self.rbuf.reserve(IDLE_READ);
            }
            tokio::select! {
                biased;
                code = handle.closed() => self.machine.closed_by_router(code),
                _ = self.ctx.shutdown.cancelled() => self.machine.shutdown(),
                r = self.stream.read_buf(&mut self.rbuf) => match r {
                    Ok(0) | Err(_) => return Close::Io,
                    Ok(_) => {
                        if let Err(RouterGone) = self.on_readable().await {
                            return Close::Shutdown;
                        }
                        more = self.deliver();
                    }
                },
                _ = async { match &session { Some(s) => s.notify.notified().await, None => std::future::pending().await } } => {
                    more = self.deliver();
                }
                _ = async {
                    match waiting {
                        Some((ticket, mut durable)) => tokio::select! {
                            _ = ticket.notify.notified() => {}
                            _ = durable.changed() => {}
                        },
                        None => std::future::pending().await,
                    }
                } => {
                    self.release_acks();
                    more = self.deliver();
                }
                _ = std::future::ready(()), if more => {
                    more = self.deliver();
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    self.machine.on_timer(now());
                }
            }
        }
    }

    /// Decodes and handles every whole packet in the read buffer.
    async fn on_readable(&mut self) -> Result<(), RouterGone> {
        loop {
            if self.closing.is_some() || self.machine.is_closed() {
                return Ok(());
            }
            match decode(&mut self.rbuf, self.machine.version(), self.ctx.machine.max_packet_size) {
                Ok(Decoded::Packet(p, _)) => {
                    self.machine.handle(p, now());
                    // Run CONNECT's router round trip before the next packet.
                    self.execute().await?;
                }
                Ok(Decoded::Incomplete { frame_len }) => {
                    if self.rbuf.is_empty() && self.rbuf.capacity() > KEEP_BUFFER {
                        self.rbuf = BytesMut::new();
                    } else if let Some(n) = frame_len {
                        self.rbuf.reserve(n.saturating_sub(self.rbuf.len()));
                    } else if self.rbuf.capacity() - self.rbuf.len() < IDLE_READ {
                        self.rbuf.reserve(self.rbuf.capacity().clamp(IDLE_READ, 64 * 1024));
                    }
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(peer = %self.peer, client_id = self.machine.client_id().unwrap_or("-"), "closing connection: {e}");
                    self.machine.decode_error(e);
                    return Ok(());
                }
            }
        }
    }

    /// Carries out the machine's actions, including those the actions
    /// themselves cause (CONNECT's reply).
    async fn execute(&mut self) -> Result<(), RouterGone> {
        loop {
            let actions: Vec<Action> = self.machine.take_actions().collect();
            if actions.is_empty() {
                return Ok(());
            }
            for action in actions {
                self.act(action).await?;
            }
        }
    }

    /// Sends to the router; with held acknowledgements, with the ticket.
    async fn send_router(&mut self, msg: RouterMsg) -> Result<(), RouterGone> {
        let msg = match &mut self.acks {
            Some(a) => {
                a.sent += 1;
                RouterMsg::Ticketed(Box::new(msg), a.ticket.clone())
            }
            None => msg,
        };
        // Usually there is room; waiting for it is boxed so the message does
        // not sit inline in every connection's future.
        match self.ctx.router.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(msg)) => {
                Box::pin(self.ctx.router.send(msg)).await.map_err(|_| RouterGone)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(RouterGone),
        }
    }

    async fn act(&mut self, action: Action) -> Result<(), RouterGone> {
        match action {
            // Acknowledgements wait for the router to have processed what
            // they answer and for every record made so far (this
            // connection's, e.g. inbound QoS 2 state) to be durable.
            Action::Send(
                p @ (Packet::PubAck(_)
                | Packet::PubRec(_)
                | Packet::PubComp(_)
                | Packet::SubAck(_)
                | Packet::UnsubAck(_)),
            ) if self.acks.is_some() => {
                if let Some(a) = &mut self.acks {
                    a.held.push_back((a.sent, a.journal.appended(), p));
                }
                self.release_acks();
            }
            // A QoS 2 PUBLISH (its packet identifier) and a PUBREL (the
            // PUBREC it answers) go out only once recorded durably; later
            // PUBLISH packets keep their order behind them.
            Action::Send(p @ (Packet::Publish(_) | Packet::PubRel(_))) if self.acks.is_some() => {
                if let Some(a) = &mut self.acks {
                    let qos2 = matches!(&p, Packet::PubRel(_))
                        || matches!(&p, Packet::Publish(x) if x.qos == crate::protocol::QoS::ExactlyOnce);
                    let need = if qos2 { a.journal.appended() } else { 0 };
                    if !a.publishes.is_empty() || *a.durable.borrow() < need {
                        a.publishes.push_back((need, p));
                        return Ok(());
                    }
                }
                self.write(p);
            }
            Action::Send(p) => self.write(p),
            Action::Route(m) => self.send_router(RouterMsg::Publish(m)).await?,
            Action::Subscribe(entries) => {
                if self.ctx.verbose {
                    let client_id = self.machine.client_id().unwrap_or("-");
                    for e in &entries {
                        tracing::info!(client_id, filter = %e.filter, qos = e.sub.options.qos as u8, "subscribe");
                    }
                }
                let key = self.machine.session_key().unwrap_or(0);
                self.send_router(RouterMsg::Subscribe { key, entries }).await?;
            }
            Action::Unsubscribe(filters) => {
                let key = self.machine.session_key().unwrap_or(0);
                self.send_router(RouterMsg::Unsubscribe { key, filters }).await?;
            }
            // Boxed: a connection connects once, and this future is large.
            Action::Connect(req) => Box::pin(self.connect(req)).await?,
            Action::Close(why) => self.closing = Some(why),
        }
        Ok(())
    }

    /// Asks the router for the session, then feeds the reply to the machine.
    async fn connect(&mut self, req: crate::router::ConnectRequest) -> Result<(), RouterGone> {
        let (tx, rx) = oneshot::channel();
        let client_id = req.client_id.clone();
        self.ctx.router.send(RouterMsg::Connect(req, tx)).await.map_err(|_| RouterGone)?;
        let reply = rx.await.map_err(|_| RouterGone)?;
        if self.ctx.verbose {
            tracing::info!(peer = %self.peer, client_id, session_present = reply.session_present, "client connected");
        }
        self.session = Some(reply.session.clone());
        // CONNACK, resent in-flight messages, then queued ones.
        self.machine.connected(reply, now());
        self.deliver();
        Ok(())
    }

    /// Turns queued deliveries into packets, unless a SUBACK is still held:
    /// retained messages for a subscription follow its SUBACK.
    fn deliver(&mut self) -> bool {
        let suback_held =
            self.acks.as_ref().is_some_and(|a| a.held.iter().any(|(_, _, p)| matches!(p, Packet::SubAck(_))));
        !suback_held && self.machine.deliver(now(), DELIVERY_BUDGET)
    }

    /// Writes the held acknowledgements that may go now.
    fn release_acks(&mut self) {
        let mut ready = Vec::new();
        if let Some(a) = &mut self.acks {
            a.ready(&mut ready);
        }
        for p in ready {
            self.write(p);
        }
    }

    fn write(&mut self, p: Packet) {
        let Some(version) = self.machine.version() else { return };
        if let Err(e) = encode_owned(p, version, &mut self.wbuf) {
            tracing::warn!(client_id = self.machine.client_id().unwrap_or("-"), "packet not sent: {e}");
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let r = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        if self.wbuf.capacity() > KEEP_BUFFER {
            self.wbuf = BytesMut::new();
        }
        r?;
        self.stream.flush().await
    }
}
