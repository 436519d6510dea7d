//! cargo-fuzz target `machine`: the sans-I/O session machine
//! (`edgemq::session::Machine`, its packet handlers, enhanced
//! authentication and outbound flow) driven the way the connection driver
//! drives it, against the real router, with up to three connections at
//! once (so takeovers, routing between clients, shared subscriptions,
//! retained messages and persistent sessions are reached).
//!
//! The fuzzer picks the settings (machine and queue limits, anonymous
//! access, aliases, sharing strategy) and then a sequence of steps:
//! packets sent by a connection, built from fuzzer-chosen fields (CONNECT
//! with will, login and MQTT 5 properties, PUBLISH, the acknowledgements,
//! SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH) or raw fuzzer bytes,
//! always passed through `edgemq::protocol::decode` as on a real
//! connection; time moving forward by fuzzer-chosen steps (keep-alive and
//! connect timeouts, will delays, session expiry, message expiry);
//! deliveries; network failures; router closes; shutdown. Every packet
//! the machine sends is encoded. A quarter of the inputs run with
//! persistence on (a store in a fresh directory, as `server` sets it up):
//! sessions are then journaled and their queues spill to disk, and two
//! more steps exist: snapshot and log maintenance, and a restart (every
//! connection dropped, the store closed, recovered and given to a new
//! router). Checked: nothing panics.
//!
//! Topics and filters are kept to a few levels: a topic with tens of
//! thousands of levels overflows the stack in the router's trees, a known
//! bug fixed separately. Decoded packets with more than [`MAX_LEVELS`]
//! levels are dropped before the machine sees them.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use edgemq::auth::{AuthClient, AuthExchange, AuthStep, Authenticator};
use edgemq::config::{QueueFullPolicy, SharedStrategy};
use edgemq::protocol::{
    decode, encode, ConnectReason, Decoded, DisconnectReason, EncodeError, Packet, Reason, Version,
};
use edgemq::router::{ConnHandle, Router, RouterMsg};
use edgemq::session::state::QueueLimits;
use edgemq::session::{Action, Close, Machine, MachineConfig};
use edgemq::store::{Journal, StoreConfig, SyncMode};
use edgemq_fuzz::wire::{self, ConnectSpec, Prop, PublishSpec, Ver, WillSpec};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Topic levels allowed through to the machine (see the module docs).
const MAX_LEVELS: usize = 64;
const SLOTS: usize = 3;
const MAX_STEPS: usize = 400;

const CLIENT_IDS: [&str; 5] = ["", "c1", "c2", "c3", "c1"];
const TOPICS: [&str; 9] = ["a", "a/b", "a/b/c", "t", "$SYS/x", "/", "a//b", "", "dev/1/up"];
const FILTERS: [&str; 18] = [
    "#",
    "+",
    "a/#",
    "a/+",
    "a/b",
    "+/+",
    "t",
    "$share/g/a/#",
    "$share/g/#",
    "$share/h/t",
    "$share//t",
    "$share/g",
    "$SYS/#",
    "a/#/b",
    "a+",
    "",
    "/",
    "dev/+/up",
];

/// Enhanced authentication whose steps the client's data decides: method
/// "fuzz"; data starting with 0 succeeds, 1 continues, anything else fails
/// with the second byte as reason. Method "none" is refused.
#[derive(Debug)]
struct FuzzAuth;

struct FuzzExchange;

impl Authenticator for FuzzAuth {
    fn start(&self, method: &str, _client: AuthClient<'_>) -> Option<Box<dyn AuthExchange>> {
        (method == "fuzz").then(|| Box::new(FuzzExchange) as Box<dyn AuthExchange>)
    }
}

impl AuthExchange for FuzzExchange {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        match data.unwrap_or(&[]) {
            [0, rest @ ..] => AuthStep::Success((!rest.is_empty()).then(|| Bytes::copy_from_slice(rest))),
            [1, rest @ ..] => AuthStep::Continue(Some(Bytes::copy_from_slice(rest))),
            [_, code, ..] => AuthStep::Fail(ConnectReason::from_peer(*code)),
            _ => AuthStep::Fail(ConnectReason::NotAuthorized),
        }
    }
}

/// One network connection: the machine and the driver's read buffer.
struct Conn {
    m: Machine,
    handle: ConnHandle,
    rbuf: BytesMut,
    /// Set once the machine asked to close.
    closing: Option<Close>,
    /// The version packets are built for before CONNECT is decoded.
    ver: Ver,
    /// The Maximum Packet Size of the client's CONNECT (MQTT 5).
    max_out: Option<u32>,
}

/// Encodes a packet the machine sent, as the driver does. The machine must
/// not send what cannot be encoded (the driver would drop it: a lost
/// acknowledgement); with `EDGEMQ_FUZZ_STRICT` set (see [`strict_level`]),
/// nothing it sends to an MQTT 5 client may exceed the client's Maximum
/// Packet Size ([MQTT-3.1.2-24]).
fn encode_sent(p: Packet, v: Version, max_out: Option<u32>, wbuf: &mut BytesMut) {
    wbuf.clear();
    match encode(&p, v, wbuf) {
        Ok(()) => {
            if let (true, Some(max)) = (strict(), max_out.filter(|_| v.is_v5())) {
                assert!(wbuf.len() <= max as usize, "sent {} bytes to a client allowing {max}: {p:?}", wbuf.len());
            }
        }
        // Only what a client's own long strings or payloads can cause.
        Err(EncodeError::StringTooLong(_) | EncodeError::PacketTooLong) => {}
        Err(e) => panic!("the machine sent a packet it cannot encode ({e}, {v:?}): {p:?}"),
    }
}

fn strict() -> bool {
    strict_level() > 0
}

/// `EDGEMQ_FUZZ_STRICT`: unset or 0, off; else on for every packet
/// (CONNACK and DISCONNECT included since they fit: ROBUSTNESS.md).
fn strict_level() -> u8 {
    static STRICT: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| std::env::var("EDGEMQ_FUZZ_STRICT").ok().and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// The router's settings, to make it again after a restart.
#[derive(Clone)]
struct RouterSettings {
    limits: QueueLimits,
    strategy: SharedStrategy,
    quota_disconnect: bool,
}

impl RouterSettings {
    fn router(&self) -> Router {
        let mut r = Router::new(self.limits.clone());
        r.set_shared_strategy(self.strategy);
        r.set_disconnect_on_queue_full(self.quota_disconnect);
        r
    }
}

/// Persistence: the store's directory (removed when dropped) and its journal.
struct Store {
    _dir: tempfile::TempDir,
    cfg: StoreConfig,
    journal: Arc<Journal>,
}

impl Store {
    fn create(segment_bytes: u64, compact_bytes: u64) -> Option<Store> {
        let base = std::path::Path::new("/dev/shm");
        let dir = if base.is_dir() { tempfile::tempdir_in(base) } else { tempfile::tempdir() }.ok()?;
        let cfg = StoreConfig {
            dir: dir.path().join("data"),
            spill_dir: dir.path().join("spill"),
            sync: SyncMode::Never,
            segment_bytes,
            compact_bytes,
            fs: Arc::new(edgemq::store::fs::RealFs),
        };
        let (journal, _, _) = edgemq::store::open(&cfg).ok()?;
        Some(Store { _dir: dir, cfg, journal: Arc::new(journal) })
    }
}

struct World {
    cfg: Arc<MachineConfig>,
    settings: RouterSettings,
    router: Router,
    store: Option<Store>,
    conns: [Option<Conn>; SLOTS],
    now: Instant,
    /// The wall-clock time that goes with `start`.
    start: (Instant, SystemTime),
    next_id: u64,
    wbuf: BytesMut,
}

fn too_deep(s: &str) -> bool {
    s.bytes().filter(|b| *b == b'/').count() >= MAX_LEVELS
}

/// Whether a packet names a topic or filter deep enough to hit the known
/// router stack overflow.
fn deep(p: &Packet) -> bool {
    match p {
        Packet::Connect(c) => c.will.as_ref().is_some_and(|w| too_deep(&w.topic)),
        Packet::Publish(p) => too_deep(&p.topic),
        Packet::Subscribe(s) => s.filters.iter().any(|f| too_deep(&f.filter)),
        Packet::Unsubscribe(u) => u.filters.iter().any(|f| too_deep(f)),
        _ => false,
    }
}

impl World {
    /// Wall-clock time at `now`, moving with it.
    fn wall(&self) -> SystemTime {
        self.start.1 + self.now.saturating_duration_since(self.start.0)
    }

    /// A router on the store's recovered state (at start, and after a
    /// restart: the broker's start-up sequence).
    fn recover(&mut self) {
        let Some(store) = &mut self.store else { return };
        store.journal.close();
        let Ok((journal, model, _)) = edgemq::store::open(&store.cfg) else {
            self.store = None;
            self.router = self.settings.router();
            return;
        };
        store.journal = Arc::new(journal);
        let mut router = self.settings.router();
        router.enable_persistence(store.journal.clone(), model, (self.now, self.wall()));
        self.router = router;
    }

    /// Carries out the machine's actions, as the driver's `execute`, then
    /// closes the connection if it asked to.
    fn pump(&mut self, slot: usize) {
        let Some(c) = &mut self.conns[slot] else { return };
        loop {
            let actions = c.m.actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    Action::Send(p) => {
                        if let Some(v) = c.m.version() {
                            encode_sent(p, v, c.max_out, &mut self.wbuf);
                        }
                    }
                    Action::Connect(req) => {
                        let reply = self.router.open(req, self.now);
                        c.m.connected(reply, self.now);
                    }
                    Action::Route(m) => self.router.handle(RouterMsg::Publish(m), self.now),
                    Action::Subscribe(entries) => {
                        let key = c.m.session_key().unwrap_or(0);
                        self.router.handle(RouterMsg::Subscribe { key, entries }, self.now);
                    }
                    Action::Unsubscribe(filters) => {
                        let key = c.m.session_key().unwrap_or(0);
                        self.router.handle(RouterMsg::Unsubscribe { key, filters }, self.now);
                    }
                    Action::Close(why) => c.closing = Some(why),
                    // No password file is configured here.
                    Action::CheckPassword { .. } => c.m.password_checked(false),
                }
            }
        }
        self.wbuf.clear();
        if let Some(why) = c.closing {
            self.drop_conn(slot, why);
        }
    }

    /// The connection is gone: the router hears of it (will, expiry).
    fn drop_conn(&mut self, slot: usize, why: Close) {
        if let Some(mut c) = self.conns[slot].take() {
            if let Some(msg) = c.m.finish(why, self.now) {
                self.router.handle(msg, self.now);
            }
        }
    }

    /// What the driver does when the router closed a connection.
    fn router_closes(&mut self) {
        for slot in 0..SLOTS {
            let Some(c) = &mut self.conns[slot] else { continue };
            if let Some(code) = c.handle.close_reason() {
                if !c.m.is_closed() {
                    c.m.closed_by_router(code);
                    self.pump(slot);
                }
            }
        }
        self.router.take_touched();
    }

    /// Bytes arrived on `slot`: decode and handle what is whole, as the
    /// driver's `on_readable`.
    fn feed(&mut self, slot: usize, bytes: &[u8]) {
        let max = self.cfg.max_packet_size;
        if let Some(c) = &mut self.conns[slot] {
            c.rbuf.extend_from_slice(bytes);
        }
        loop {
            let Some(c) = &mut self.conns[slot] else { return };
            if c.closing.is_some() || c.m.is_closed() {
                return;
            }
            let failed = match decode(&mut c.rbuf, c.m.version(), max) {
                Ok(Decoded::Packet(p, _)) => {
                    if let Packet::Connect(connect) = &p {
                        c.max_out = connect.maximum_packet_size;
                    }
                    if !deep(&p) {
                        c.m.handle(p, self.now);
                    }
                    false
                }
                Ok(Decoded::Incomplete { .. }) => return,
                Err(e) => {
                    c.m.decode_error(e);
                    true
                }
            };
            self.pump(slot);
            self.router_closes();
            if failed {
                return;
            }
        }
    }

    fn open(&mut self, u: &mut Unstructured<'_>, slot: usize) -> Result<()> {
        if self.conns[slot].is_some() {
            self.drop_conn(slot, Close::Io);
        }
        self.next_id += 1;
        let handle = ConnHandle::new(self.next_id);
        let mut m = Machine::new(self.cfg.clone(), handle.clone(), self.now);
        if u.ratio(1, 16)? {
            m.refuse_connect(ConnectReason::QuotaExceeded);
        }
        let ver = *u.choose(&[Ver::V31, Ver::V311, Ver::V5, Ver::V5])?;
        self.conns[slot] = Some(Conn { m, handle, rbuf: BytesMut::new(), closing: None, ver, max_out: None });
        Ok(())
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let slot = usize::from(u.int_in_range(0..=(SLOTS as u8 - 1))?);
        match u.int_in_range(0..=17u8)? {
            0..=7 => {
                if self.conns[slot].is_none() {
                    return self.open(u, slot);
                }
                let ver = match &self.conns[slot] {
                    Some(c) => match c.m.version() {
                        Some(Version::V31) => Ver::V31,
                        Some(Version::V311) => Ver::V311,
                        Some(Version::V5) => Ver::V5,
                        None => c.ver,
                    },
                    None => return Ok(()),
                };
                let mut bytes = packet(u, ver)?;
                // Now and then a packet is cut short and runs into the next.
                if u.ratio(1, 32)? && !bytes.is_empty() {
                    let keep = u.choose_index(bytes.len())?;
                    bytes.truncate(keep);
                }
                self.feed(slot, &bytes);
            }
            8 => {
                let n = u.int_in_range(0..=64usize)?;
                let raw = u.bytes(n.min(u.len()))?.to_vec();
                self.feed(slot, &raw);
            }
            9 | 10 => {
                let step = match u.int_in_range(0..=3u8)? {
                    0 => Duration::from_millis(u64::from(u.int_in_range(0..=2000u16)?)),
                    1 => Duration::from_secs(u64::from(u.int_in_range(0..=120u8)?)),
                    2 => Duration::from_secs(u64::from(u.int_in_range(0..=7200u16)?)),
                    _ => Duration::from_secs(u64::from(u.arbitrary::<u32>()?)),
                };
                self.now += step;
                self.router.expire(self.now);
                for s in 0..SLOTS {
                    if let Some(c) = &mut self.conns[s] {
                        c.m.on_timer(self.now);
                        self.pump(s);
                    }
                }
                self.router_closes();
            }
            11 | 12 => {
                let budget = u.int_in_range(1..=64usize)?;
                if let Some(c) = &mut self.conns[slot] {
                    if let Some(v) = c.m.version() {
                        let (wbuf, max_out) = (&mut self.wbuf, c.max_out);
                        c.m.deliver(self.now, budget, |p| encode_sent(p, v, max_out, wbuf));
                        wbuf.clear();
                    }
                }
                self.pump(slot);
                self.router_closes();
            }
            13 => {
                // The network connection failed.
                self.drop_conn(slot, Close::Io);
                self.router_closes();
            }
            14 => {
                if let Some(c) = &mut self.conns[slot] {
                    let code = *u.choose(&[
                        DisconnectReason::SessionTakenOver,
                        DisconnectReason::QuotaExceeded,
                        DisconnectReason::UnspecifiedError,
                    ])?;
                    c.handle.close(code);
                }
                self.router_closes();
            }
            16 => {
                if u.arbitrary()? {
                    self.router.snapshot(self.now);
                }
                self.router.maintain_store(self.now);
            }
            17 if self.store.is_some() => {
                // The broker stops and starts again on its store.
                for s in 0..SLOTS {
                    self.drop_conn(s, Close::Shutdown);
                }
                self.recover();
            }
            _ => {
                if u.ratio(1, 4)? {
                    for s in 0..SLOTS {
                        if let Some(c) = &mut self.conns[s] {
                            c.m.shutdown();
                            self.pump(s);
                        }
                    }
                } else {
                    self.open(u, slot)?;
                }
            }
        }
        Ok(())
    }
}

fn short_string(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(0..=8usize)?;
    let b = u.bytes(n.min(u.len()))?;
    Ok(String::from_utf8_lossy(b).into_owned())
}

fn topic(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 8)? {
        return short_string(u);
    }
    Ok((*u.choose(&TOPICS)?).to_owned())
}

fn filter(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 8)? {
        return short_string(u);
    }
    Ok((*u.choose(&FILTERS)?).to_owned())
}

fn small_bytes(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=16usize)?;
    Ok(u.bytes(n.min(u.len()))?.to_vec())
}

fn pkid(u: &mut Unstructured<'_>) -> Result<u16> {
    Ok(if u.ratio(1, 16)? { u.arbitrary()? } else { u.int_in_range(0..=6)? })
}

/// Properties from the ids given, in fuzzer order, occasionally with an
/// id the packet does not allow.
fn props(u: &mut Unstructured<'_>, ids: &[u8]) -> Result<Vec<Prop>> {
    let mut out = Vec::new();
    let n = u.int_in_range(0..=3u8)?;
    for _ in 0..n {
        let id = if u.ratio(1, 16)? { u.arbitrary::<u8>()? % 43 } else { *u.choose(ids)? };
        out.push(match id {
            1 | 23 | 25 | 36 | 37 | 40 | 41 | 42 => Prop::Byte(id, u.int_in_range(0..=2)?),
            19 | 33 | 34 | 35 => Prop::U16(id, u.int_in_range(0..=4)?),
            2 | 17 | 24 | 39 => {
                let v = if u.ratio(1, 4)? { u.arbitrary()? } else { u.int_in_range(0..=120)? };
                Prop::U32(id, v)
            }
            11 => Prop::VarInt(id, u.int_in_range(0..=3)?),
            21 => Prop::Str(id, (*u.choose(&["fuzz", "none", ""])?).to_owned()),
            3 | 8 => Prop::Str(id, topic(u)?),
            18 | 26 | 28 | 31 => Prop::Str(id, short_string(u)?),
            9 | 22 => Prop::Bin(id, small_bytes(u)?),
            38 => Prop::Pair(short_string(u)?, short_string(u)?),
            _ => Prop::Byte(id, 0),
        });
    }
    Ok(out)
}

/// A packet a client might send at version `v`, as bytes.
fn packet(u: &mut Unstructured<'_>, v: Ver) -> Result<Vec<u8>> {
    let v5 = v.is_v5();
    Ok(match u.int_in_range(0..=11u8)? {
        0 | 1 => {
            let version = if u.ratio(1, 8)? { *u.choose(&[Ver::V31, Ver::V311, Ver::V5])? } else { v };
            let mut c = ConnectSpec::new(version, u.choose(&CLIENT_IDS)?);
            c.clean = u.arbitrary()?;
            c.keep_alive = *u.choose(&[0, 1, 5, 60, 65535])?;
            if u.ratio(1, 3)? {
                c.will = Some(WillSpec {
                    topic: topic(u)?,
                    payload: small_bytes(u)?,
                    qos: u.int_in_range(0..=2)?,
                    retain: u.arbitrary()?,
                    props: if version.is_v5() { props(u, &[1, 2, 3, 8, 9, 24, 38])? } else { Vec::new() },
                });
            }
            if u.ratio(1, 4)? {
                c.username = Some(short_string(u)?);
                if u.arbitrary()? {
                    c.password = Some(small_bytes(u)?);
                }
            }
            if version.is_v5() {
                c.props = props(u, &[17, 17, 21, 22, 23, 25, 33, 34, 38, 39])?;
            }
            wire::connect(&c)
        }
        2..=4 => {
            let qos = u.int_in_range(0..=2)?;
            let p = PublishSpec {
                dup: qos > 0 && u.ratio(1, 8)?,
                qos,
                retain: u.ratio(1, 4)?,
                topic: topic(u)?,
                pkid: pkid(u)?,
                props: if v5 { props(u, &[1, 2, 3, 8, 9, 35, 35, 38])? } else { Vec::new() },
                payload: if u.ratio(1, 8)? { Vec::new() } else { small_bytes(u)? },
            };
            wire::publish(v, &p)
        }
        5 => {
            let ptype = u.int_in_range(4..=7)?;
            let reason = if u.arbitrary()? { Some(*u.choose(&[0, 0x10, 0x80, 0x92])?) } else { None };
            let p = if v5 { props(u, &[31, 38])? } else { Vec::new() };
            wire::ack(v, ptype, pkid(u)?, reason, &p)
        }
        6 | 7 => {
            let n = u.int_in_range(1..=3)?;
            let mut fs = Vec::new();
            for _ in 0..n {
                let mut o = u.int_in_range(0..=2u8)?;
                if v5 {
                    o |= u.int_in_range(0..=2u8)? << 4 | u8::from(u.arbitrary::<bool>()?) << 2;
                    o |= u8::from(u.arbitrary::<bool>()?) << 3;
                }
                fs.push((filter(u)?, o));
            }
            let p = if v5 { props(u, &[11, 38])? } else { Vec::new() };
            wire::subscribe(v, pkid(u)?, &p, &fs)
        }
        8 => {
            let n = u.int_in_range(1..=3)?;
            let mut fs = Vec::new();
            for _ in 0..n {
                fs.push(filter(u)?);
            }
            let p = if v5 { props(u, &[38])? } else { Vec::new() };
            wire::unsubscribe(v, pkid(u)?, &p, &fs)
        }
        9 => wire::pingreq(),
        10 => {
            let reason = if u.arbitrary()? { Some(*u.choose(&[0, 4, 0x80])?) } else { None };
            let p = if v5 { props(u, &[17, 31, 38])? } else { Vec::new() };
            wire::disconnect(v, reason, &p)
        }
        _ => {
            let reason = *u.choose(&[0x00, 0x18, 0x19])?;
            wire::auth(reason, &props(u, &[21, 22, 22, 31])?)
        }
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let cfg = MachineConfig {
        max_packet_size: *u.choose(&[1 << 20, 64, 256])?,
        max_inflight: u.int_in_range(1..=4)?,
        connect_timeout: Duration::from_secs(u.int_in_range(1..=30)?),
        session_expiry: if u.arbitrary()? { None } else { Some(Duration::from_secs(u.int_in_range(0..=3600)?)) },
        allow_anonymous: u.ratio(3, 4)?,
        receive_maximum: u.int_in_range(1..=4)?,
        max_keepalive: *u.choose(&[1, 10, 100, 65535])?,
        topic_alias_maximum: u.int_in_range(0..=3)?,
        server_topic_aliases: u.arbitrary()?,
        response_information: if u.arbitrary()? { Some("resp/".into()) } else { None },
        authenticator: Arc::new(FuzzAuth),
        max_topic_levels: *u.choose(&[8, 128])?,
        max_subscriptions: *u.choose(&[2, 10_000])?,
        log: None,
        files: None,
        cert_username: edgemq::config::CertUsername::No,
        metrics: edgemq::metrics::Metrics::new(),
        use_username_as_clientid: u.ratio(1, 8)?,
        check_session_owner: u.arbitrary()?,
        auth_stats: Default::default(),
    };
    let limits = QueueLimits {
        max_messages: u.int_in_range(1..=8)?,
        max_bytes: *u.choose(&[16, 1 << 10, 1 << 20])?,
        policy: if u.arbitrary()? { QueueFullPolicy::DropNew } else { QueueFullPolicy::DropOldest },
        queue_qos0: u.arbitrary()?,
        ..QueueLimits::default()
    };
    let settings = RouterSettings {
        limits,
        strategy: if u.arbitrary()? { SharedStrategy::RoundRobin } else { SharedStrategy::Random },
        quota_disconnect: u.arbitrary()?,
    };
    let store =
        if u.ratio(1, 4)? { Store::create(*u.choose(&[4096, 1 << 20])?, *u.choose(&[2048, 1 << 30])?) } else { None };
    let now = Instant::now();
    let router = settings.router();
    let mut w = World {
        cfg: Arc::new(cfg),
        settings,
        router,
        store,
        conns: [None, None, None],
        now,
        start: (now, SystemTime::now()),
        next_id: 0,
        wbuf: BytesMut::new(),
    };
    w.recover();
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        w.step(u)?;
    }
    // Every connection ends; the router must take it.
    for slot in 0..SLOTS {
        w.drop_conn(slot, Close::Io);
    }
    w.now += Duration::from_secs(1 << 20);
    w.router.expire(w.now);
    if let Some(store) = &w.store {
        store.journal.close();
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
