//! The simulated network connections: a [`Conn`] per connection, the
//! client's actions that open, use, drop or close one, bytes crossing the
//! network either way, and the connection's turn, which does what the
//! driver's does (`server/connection.rs`: gate inputs fed, actions carried
//! out in order, a CONNECT's reply waited for, deliveries within the
//! window, a close told to the router, with the will the machine hands it
//! checked against what the client did).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use edgemq::protocol::{decode, encode, Decoded, DisconnectReason, Packet};
use edgemq::router::{ConnHandle, RouterMsg, Ticket};
use edgemq::session::state::SharedSession;
use edgemq::session::{Action, Close, Machine};
use tokio::sync::oneshot;

use crate::world::{Reply, World};

/// One network connection, the broker's side and the two pipes.
pub struct Conn {
    pub(crate) client: usize,
    /// The payload of the will its CONNECT set.
    pub(crate) will: Option<Bytes>,
    /// The client closed it after sending everything (a DISCONNECT
    /// last): the broker reads all of it before it sees the end.
    pub(crate) graceful: bool,
    /// The DISCONNECT the machine was handed, if any.
    pub(crate) disconnect_read: Option<DisconnectReason>,
    /// The client still holds it (else: it is gone, the broker has not
    /// noticed yet).
    pub(crate) client_alive: bool,
    pub(crate) m: Machine,
    pub(crate) handle: ConnHandle,
    pub(crate) ticket: Arc<Ticket>,
    /// Bytes sent by the client not yet read by the broker, and read but
    /// not yet decoded.
    pub(crate) to_broker: BytesMut,
    pub(crate) rbuf: BytesMut,
    /// Bytes written by the broker not yet read by the client.
    pub(crate) to_client: BytesMut,
    /// Actions not yet carried out (behind a CONNECT's round trip).
    pub(crate) actions: VecDeque<Action>,
    pub(crate) awaiting: Option<oneshot::Receiver<Reply>>,
    pub(crate) closing: Option<Close>,
    pub(crate) session: Option<Arc<SharedSession>>,
}

impl World {
    /// The index of client `c`'s current connection.
    pub(crate) fn current(&self, c: usize) -> Option<usize> {
        self.boot.as_ref()?.conns.iter().position(|k| k.client == c && k.client_alive)
    }

    pub(crate) fn client_publishes(&mut self, c: usize) {
        let Some(i) = self.current(c) else { return self.client_connects(c) };
        let mut out = BytesMut::new();
        if self.clients[c].connected {
            self.clients[c].publish(&mut self.rng, &mut self.oracle, &mut out);
        }
        self.boot().conns[i].to_broker.extend_from_slice(&out);
    }

    pub(crate) fn client_catches_up(&mut self, c: usize, all: bool) {
        let Some(i) = self.current(c) else { return self.client_connects(c) };
        let mut out = BytesMut::new();
        let quiet = all;
        let all = all || self.rng.chance(50);
        let resub = quiet || self.rng.chance(30);
        if !quiet && self.rng.chance(2) {
            self.clients[c].unsubscribe(&mut self.oracle, &mut out);
        }
        self.clients[c].catch_up(all, resub, &mut self.oracle, &mut out);
        self.boot().conns[i].to_broker.extend_from_slice(&out);
    }

    pub(crate) fn client_connects(&mut self, c: usize) {
        if self.current(c).is_some() {
            return;
        }
        self.next_conn += 1;
        let handle = ConnHandle::new(self.next_conn);
        let now = self.now();
        let mut out = BytesMut::new();
        let will = self.clients[c].connect(&mut out);
        let payload = will.as_ref().map(|w| w.0.clone());
        self.oracle.conn_opened(self.next_conn, c, self.clients[c].expiry, will);
        let b = self.boot();
        let m = Machine::new(b.cfg.clone(), handle.clone(), now);
        b.conns.push(Conn {
            client: c,
            will: payload,
            graceful: false,
            disconnect_read: None,
            client_alive: true,
            m,
            handle,
            ticket: Arc::new(Ticket::default()),
            to_broker: out,
            rbuf: BytesMut::new(),
            to_client: BytesMut::new(),
            actions: VecDeque::new(),
            awaiting: None,
            closing: None,
            session: None,
        });
    }

    /// The client's connection fails: it stops using it; the broker
    /// notices now or later (a half-open connection, taken over when the
    /// client comes back).
    pub(crate) fn client_drops(&mut self, c: usize) {
        let Some(i) = self.current(c) else { return };
        if self.clients[c].connected && self.rng.chance(40) {
            return self.client_disconnects(c, i);
        }
        trace!("client {c} drops its connection");
        self.clients[c].dropped();
        let notice = self.rng.chance(50);
        let b = self.boot();
        b.conns[i].client_alive = false;
        b.conns[i].to_broker.clear();
        if notice {
            self.close_conn(i, Close::Io);
        }
    }

    /// The client sends DISCONNECT (MQTT 5: now and then 0x04, with the
    /// will) and closes the connection; the broker reads up to it.
    pub(crate) fn client_disconnects(&mut self, c: usize, i: usize) {
        let with_will = self.clients[c].version.is_v5() && self.rng.chance(30);
        trace!("client {c} disconnects (with will: {with_will})");
        let mut out = BytesMut::new();
        self.clients[c].disconnect(with_will, &mut out);
        self.clients[c].dropped();
        let k = &mut self.boot().conns[i];
        k.to_broker.extend_from_slice(&out);
        k.client_alive = false;
        k.graceful = true;
    }

    /// Some bytes cross from a client to the broker, which reads them.
    pub(crate) fn net_to_broker(&mut self) {
        let Some(i) = self.pick(|k| !k.to_broker.is_empty()) else { return };
        let split = self.rng.chance(20);
        let cut = self.rng.next_u64();
        let k = &mut self.boot().conns[i];
        let n = if split { 1 + (cut as usize) % k.to_broker.len() } else { k.to_broker.len() };
        let bytes = k.to_broker.split_to(n);
        k.rbuf.extend_from_slice(&bytes);
        self.read(i);
    }

    /// Some bytes cross from the broker to a client.
    pub(crate) fn net_to_client(&mut self) {
        let Some(i) = self.pick(|k| !k.to_client.is_empty() && k.client_alive) else { return };
        let split = self.rng.chance(20);
        let cut = self.rng.next_u64();
        let b = self.boot.as_mut().unwrap_or_else(|| panic!("no broker"));
        let k = &mut b.conns[i];
        let n = if split { 1 + (cut as usize) % k.to_client.len() } else { k.to_client.len() };
        let bytes = k.to_client.split_to(n);
        let mut out = BytesMut::new();
        self.clients[k.client].receive(&bytes, &mut self.oracle, &mut out);
        k.to_broker.extend_from_slice(&out);
    }

    pub(crate) fn pick(&mut self, f: impl Fn(&Conn) -> bool) -> Option<usize> {
        let b = self.boot.as_ref()?;
        let ok: Vec<usize> = (0..b.conns.len()).filter(|&i| f(&b.conns[i])).collect();
        if ok.is_empty() {
            return None;
        }
        Some(ok[self.rng.below(ok.len() as u64) as usize])
    }

    /// The broker decodes and handles what it has read, as the driver's
    /// `on_readable`, stopping behind a CONNECT's round trip.
    pub(crate) fn read(&mut self, i: usize) {
        let now = self.now();
        loop {
            let k = &mut self.boot().conns[i];
            if k.closing.is_some() || k.m.is_closed() || k.awaiting.is_some() {
                break;
            }
            let max = k.m.config().max_packet_size;
            match decode(&mut k.rbuf, k.m.version(), max) {
                Ok(Decoded::Packet(p, _)) => {
                    if let Packet::Disconnect(d) = &p {
                        k.disconnect_read = Some(d.reason);
                    }
                    k.m.handle(p, now)
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(e) => k.m.decode_error(e),
            }
            self.execute(i);
        }
        self.finish_turn(i);
    }

    /// A connection's turn, as the driver's loop: the router's close, the
    /// CONNECT reply, the gate's inputs, actions, deliveries.
    pub(crate) fn conn_turn(&mut self) {
        let Some(i) = self.pick(|_| true) else { return };
        let now = self.now();
        let k = &mut self.boot().conns[i];
        if k.graceful && k.awaiting.is_none() && !k.to_broker.is_empty() {
            // All the client sent arrives before the end of the stream
            // (also when the router closes it: the driver reads first).
            let bytes = k.to_broker.split();
            k.rbuf.extend_from_slice(&bytes);
            return self.read(i);
        }
        if !k.client_alive && k.closing.is_none() && !(k.graceful && k.awaiting.is_some()) {
            // The broker notices the dead connection.
            k.closing = Some(Close::Io);
            return self.finish_turn(i);
        }
        if let Some(code) = k.handle.close_reason() {
            if !k.m.is_closed() {
                k.m.closed_by_router(code);
            }
        }
        if let Some(rx) = &mut k.awaiting {
            match rx.try_recv() {
                Ok(reply) => {
                    k.awaiting = None;
                    if let Ok(r) = &reply {
                        k.session = Some(r.session.clone());
                    }
                    k.m.connected(reply, now);
                }
                Err(oneshot::error::TryRecvError::Empty) => return,
                Err(oneshot::error::TryRecvError::Closed) => {
                    k.awaiting = None;
                    k.closing = Some(Close::Shutdown);
                    return self.finish_turn(i);
                }
            }
        }
        let durable = *self.boot().journal.durable().borrow();
        let k = &mut self.boot().conns[i];
        let processed = k.ticket.processed.load(std::sync::atomic::Ordering::Acquire);
        let lsn = k.ticket.lsn.load(std::sync::atomic::Ordering::Acquire);
        k.m.handle_processed(processed, lsn);
        k.m.handle_durable(durable);
        self.execute(i);
        let budget = 1 + self.rng.below(16) as usize;
        let k = &mut self.boot().conns[i];
        if k.awaiting.is_none() && !k.m.has_actions() {
            if let Some(v) = k.m.version() {
                let out = &mut k.to_client;
                k.m.deliver(now, budget, |p| encode_sent(&p, v, out));
            }
        }
        self.execute(i);
        // Bytes read while the CONNECT waited.
        if !self.boot().conns[i].rbuf.is_empty() {
            return self.read(i);
        }
        self.finish_turn(i);
    }

    /// Carries out the machine's actions in order, as the driver's
    /// `execute`; a CONNECT goes to the router and the rest waits for it.
    pub(crate) fn execute(&mut self, i: usize) {
        let b = self.boot();
        let k = &mut b.conns[i];
        loop {
            if k.awaiting.is_some() {
                return;
            }
            if k.actions.is_empty() {
                k.actions.extend(k.m.actions());
                if k.actions.is_empty() {
                    return;
                }
            }
            let Some(a) = k.actions.pop_front() else { return };
            let ticketed = |msg| RouterMsg::Ticketed(Box::new(msg), k.ticket.clone());
            match a {
                Action::Send(p) => {
                    if let Some(v) = k.m.version() {
                        encode_sent(&p, v, &mut k.to_client);
                    }
                }
                Action::Route(m) => b.inbox.push_back(ticketed(RouterMsg::Publish(m))),
                Action::Subscribe(entries) => {
                    let key = k.m.session_key().unwrap_or(0);
                    b.inbox.push_back(ticketed(RouterMsg::Subscribe { key, entries }));
                }
                Action::Unsubscribe(filters) => {
                    let key = k.m.session_key().unwrap_or(0);
                    b.inbox.push_back(ticketed(RouterMsg::Unsubscribe { key, filters }));
                }
                Action::Connect(req) => {
                    trace!("client {} CONNECT clean {}", k.client, req.clean_start);
                    let (tx, rx) = oneshot::channel();
                    b.inbox.push_back(RouterMsg::Connect(req, tx));
                    k.awaiting = Some(rx);
                }
                Action::Close(why) => k.closing = Some(why),
                Action::CheckPassword { .. } => k.m.password_checked(false),
            }
        }
    }

    /// Ends the connection if it asked to close.
    pub(crate) fn finish_turn(&mut self, i: usize) {
        if let Some(why) = self.boot().conns[i].closing {
            self.close_conn(i, why);
        }
    }

    /// The connection is gone: the client reads what was written before
    /// (if it still holds it), the router hears of it.
    pub(crate) fn close_conn(&mut self, i: usize, why: Close) {
        let now = self.now();
        let b = self.boot.as_mut().unwrap_or_else(|| panic!("no broker"));
        let mut k = b.conns.swap_remove(i);
        trace!("connection of client {} closed: {why:?}", k.client);
        if k.client_alive {
            let mut out = BytesMut::new();
            let bytes = std::mem::take(&mut k.to_client);
            self.clients[k.client].receive(&bytes, &mut self.oracle, &mut out);
            self.clients[k.client].dropped();
        }
        let msg = k.m.finish(why, now);
        let handed = match &msg {
            Some(RouterMsg::Disconnected { will, .. }) => will.as_ref().map(|m| m.payload.clone()),
            _ => None,
        };
        if let Some(payload) = &k.will {
            // Handed to the router unless the CONNECT never completed or a
            // DISCONNECT 0x00 discarded it ([MQTT-3.1.2-8], [MQTT-3.1.2-10],
            // 5.0 [MQTT-3.14.4-3]; 0x04 keeps it).
            let normal = k.disconnect_read == Some(DisconnectReason::NormalDisconnection);
            let expected = k.session.is_some() && !normal;
            assert!(
                handed.is_some() == expected && handed.as_ref().is_none_or(|h| h == payload),
                "client {}: the machine handed the router the will {handed:?} at the end of a connection that \
                 set {payload:?} (CONNECT completed: {}, DISCONNECT read: {:?})",
                k.client,
                k.session.is_some(),
                k.disconnect_read
            );
            if handed.is_none() {
                self.oracle.will_discarded(payload);
            }
        } else {
            assert!(handed.is_none(), "client {}: a will {handed:?} it never set", k.client);
        }
        if let Some(msg) = msg {
            b.inbox.push_back(msg);
        }
    }
}

/// Encodes what the machine sent, as the driver does; the machine must
/// not send what the encoder refuses (nothing here is too long).
fn encode_sent(p: &Packet, v: edgemq::protocol::Version, out: &mut BytesMut) {
    if let Err(e) = encode(p, v, out) {
        panic!("the machine sent a packet it cannot encode ({e}): {p:?}");
    }
}
