//! The clients of the `soak` scenario (see [`crate::soak`]): persistent
//! subscribers with their exactly-once bookkeeping, publishers that send
//! their unacknowledged messages again after a reconnect, the retained
//! updater and the churners, and what they share.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Buf;
use tokio::sync::watch;

use crate::client::Conn;
use crate::soak::SoakOpts;
use crate::wire::{self, now_nanos, Stamp};
use crate::{Error, Target};

/// QoS 1/2 messages a publisher keeps in flight.
const WINDOW: usize = 20;
/// Session Expiry Interval of the MQTT 5 persistent clients (seconds).
const EXPIRY: u32 = 600;

/// A small deterministic generator (xorshift64*), one per task.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        Rng((seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(crate) fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    /// A duration between `lo` and `hi` milliseconds.
    pub(crate) fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi.saturating_sub(lo) + 1))
    }
}

/// What every task shares.
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    /// Connections of the load generator open now.
    pub(crate) online: AtomicI64,
    pub(crate) errors: AtomicU64,
    pub(crate) first_error: Mutex<Option<String>>,
    pub(crate) run: String,
}

impl Shared {
    pub(crate) fn new(run: String) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            online: AtomicI64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            run,
        }
    }

    pub(crate) fn error(&self, what: &str, e: &Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first_error.lock() {
            f.get_or_insert_with(|| format!("{what}: {e}"));
        }
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// A connection counted in [`Shared::online`] while it lives.
pub(crate) struct Online<'a>(&'a Shared);

impl<'a> Online<'a> {
    pub(crate) fn new(s: &'a Shared) -> Online<'a> {
        s.online.fetch_add(1, Ordering::Relaxed);
        Online(s)
    }
}

impl Drop for Online<'_> {
    fn drop(&mut self) {
        self.0.online.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sequence numbers seen, per publisher (bitmaps that grow).
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    pubs: Vec<(Vec<u64>, u64)>,
    pub(crate) dups: u64,
}

impl Seen {
    /// Records one; false if it was seen before.
    fn insert(&mut self, publisher: u32, seq: u64) -> bool {
        let p = publisher as usize;
        if self.pubs.len() <= p {
            self.pubs.resize(p + 1, (Vec::new(), 0));
        }
        let (bits, count) = &mut self.pubs[p];
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if bits.len() <= w {
            bits.resize(w + 1, 0);
        }
        if bits[w] & bit != 0 {
            self.dups += 1;
            return false;
        }
        bits[w] |= bit;
        *count += 1;
        true
    }

    /// Sequence numbers below `upto` of `publisher` not seen.
    pub(crate) fn missing(&self, publisher: usize, upto: u64) -> u64 {
        let Some((bits, _)) = self.pubs.get(publisher) else { return upto };
        let mut seen = 0u64;
        for (w, word) in bits.iter().enumerate() {
            let first = w as u64 * 64;
            if first >= upto {
                break;
            }
            let keep = (upto - first).min(64);
            let mask = if keep == 64 { u64::MAX } else { (1u64 << keep) - 1 };
            seen += u64::from((word & mask).count_ones());
        }
        upto - seen
    }

    pub(crate) fn count(&self, publisher: usize) -> u64 {
        self.pubs.get(publisher).map_or(0, |p| p.1)
    }
}

/// The bookkeeping of one persistent subscriber, kept across its connections.
#[derive(Debug, Default)]
pub(crate) struct SubState {
    pub(crate) q1: Seen,
    pub(crate) q2: Seen,
    pub(crate) q0: u64,
    /// QoS 2 packet ids received and acknowledged with PUBREC, awaiting PUBREL.
    pub(crate) awaiting_rel: HashSet<u16>,
    /// A QoS 2 PUBLISH again for a packet id awaiting PUBREL (the broker
    /// resending after a lost PUBREC: correct, not delivered twice).
    pub(crate) q2_resent: u64,
    /// A message at a QoS other than its publisher's.
    pub(crate) wrong_qos: u64,
    pub(crate) reconnects: u64,
    pub(crate) sessions_lost: u64,
}

/// The QoS of publisher `id` (publishers are numbered QoS 0, 1, 2, 0, ...).
pub(crate) fn qos_of(id: u32) -> u8 {
    (id % 3) as u8
}

impl SubState {
    /// Takes every whole frame of `c`'s read buffer, acknowledgements into its write buffer.
    fn take(&mut self, c: &mut Conn) -> Result<(), Error> {
        let mut off = 0;
        while let Some(f) = wire::next_frame(&c.rbuf[off..])? {
            let body = &c.rbuf[off + f.body..off + f.len];
            match f.header & 0xF0 {
                wire::PUBLISH => {
                    let r = wire::parse_publish_v(f.header, body, c.v5)?;
                    if r.qos != qos_of(r.publisher) {
                        self.wrong_qos += 1;
                    }
                    match r.qos {
                        2 => {
                            if self.awaiting_rel.insert(r.pkid) {
                                self.q2.insert(r.publisher, r.seq);
                            } else {
                                self.q2_resent += 1;
                            }
                            wire::ack(&mut c.wbuf, wire::PUBREC, r.pkid);
                        }
                        1 => {
                            self.q1.insert(r.publisher, r.seq);
                            wire::ack(&mut c.wbuf, wire::PUBACK, r.pkid);
                        }
                        _ => self.q0 += 1,
                    }
                }
                0x60 => {
                    let pkid = wire::ack_pkid(body)?;
                    self.awaiting_rel.remove(&pkid);
                    wire::ack(&mut c.wbuf, wire::PUBCOMP, pkid);
                }
                wire::SUBACK | wire::PINGRESP => {}
                t => return Err(unexpected(t, body)),
            }
            off += f.len;
        }
        c.rbuf.advance(off);
        Ok(())
    }

    /// Every QoS 1/2 message of `expected` (per publisher) has come.
    pub(crate) fn has_all(&self, expected: &[u64]) -> bool {
        expected.iter().enumerate().all(|(p, &n)| match qos_of(p as u32) {
            1 => self.q1.count(p) >= n,
            2 => self.q2.count(p) >= n,
            _ => true,
        })
    }
}

fn unexpected(kind: u8, body: &[u8]) -> Error {
    if kind == 0xE0 {
        let reason = body.first().copied().unwrap_or(0);
        return Error::Protocol(format!("broker sent DISCONNECT 0x{reason:02x}"));
    }
    Error::Protocol(format!("got packet type 0x{kind:02x}"))
}

/// Reads into `c` until `until` (or the stop flag), handing frames to `take`.
async fn read_until(
    c: &mut Conn,
    until: tokio::time::Instant,
    sh: &Shared,
    mut take: impl FnMut(&mut Conn) -> Result<(), Error>,
) -> Result<(), Error> {
    take(c)?;
    c.flush().await?;
    while !sh.stopped() {
        let now = tokio::time::Instant::now();
        if now >= until {
            break;
        }
        match tokio::time::timeout((until - now).min(Duration::from_millis(200)), c.read()).await {
            Ok(r) => {
                r?;
                take(c)?;
                c.flush().await?;
            }
            Err(_) => continue,
        }
    }
    Ok(())
}

/// Connects with a persistent session (MQTT 5: Session Expiry Interval
/// [`EXPIRY`]) or a clean one.
pub(crate) async fn connect(t: &Target, id: &str, v5: bool, persistent: bool) -> Result<Conn, Error> {
    if v5 {
        Conn::connect_v5(t.addr, id, !persistent, if persistent { EXPIRY } else { 0 }).await
    } else {
        Conn::connect_session(t.addr, id, !persistent).await
    }
}

/// Leaves: DISCONNECT after the pending acknowledgements, or (`abrupt`)
/// drops the socket without sending them.
async fn leave(mut c: Conn, abrupt: bool) {
    if abrupt {
        drop(c);
    } else {
        let _ = c.flush().await;
        c.close().await;
    }
}

/// Discards a persistent session: a clean connection with its id.
pub(crate) async fn discard(t: &Target, id: &str, v5: bool) {
    let c = if v5 { Conn::connect_v5(t.addr, id, true, 0).await } else { Conn::connect(t.addr, id).await };
    if let Ok(c) = c {
        c.close().await;
    }
}

/// One persistent subscriber, connected and subscribed: churns until the
/// stop flag, then drains until it has every message of `expected`.
pub(crate) async fn persistent_sub(
    t: Target,
    c: Conn,
    id: String,
    sh: Arc<Shared>,
    mut expected: watch::Receiver<Option<Arc<Vec<u64>>>>,
    mut rng: Rng,
    o: SoakOpts,
) -> SubState {
    let mut st = SubState::default();
    let v5 = c.v5;
    let mut conn = Some(c);
    while !sh.stopped() {
        if let Some(mut c) = conn.take() {
            let _on = Online::new(&sh);
            let until = tokio::time::Instant::now() + rng.ms(300, 3_000);
            let r = read_until(&mut c, until, &sh, |c| st.take(c)).await;
            if let Err(e) = r {
                sh.error("persistent subscriber", &e);
            }
            if sh.stopped() {
                conn = Some(c);
                break;
            }
            let abrupt = rng.chance(2);
            if abrupt {
                // Takes what one more read brings and leaves without
                // acknowledging it: the broker must send it again.
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(50), c.read()).await {
                    let _ = st.take(&mut c);
                }
            }
            leave(c, abrupt).await;
        }
        tokio::time::sleep(rng.ms(200, 2_500)).await;
        if sh.stopped() {
            break;
        }
        conn = resume(&t, &id, v5, &sh, &mut st).await;
    }
    // Wind-down: wait for the publishers' totals, then take the rest.
    let want = loop {
        if let Some(w) = expected.borrow().clone() {
            break w;
        }
        if expected.changed().await.is_err() {
            return st;
        }
    };
    let deadline = tokio::time::Instant::now() + o.wind_down;
    while !st.has_all(&want) && tokio::time::Instant::now() < deadline {
        let c = match conn.take() {
            Some(c) => Some(c),
            None => resume(&t, &id, v5, &sh, &mut st).await,
        };
        let Some(mut c) = c else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let _on = Online::new(&sh);
        let r = drain(&mut c, &mut st, &want, o.idle.min(deadline - tokio::time::Instant::now())).await;
        match r {
            Ok(()) => {
                c.close().await;
                break;
            }
            Err(e) => sh.error("persistent subscriber (drain)", &e),
        }
    }
    discard(&t, &id, v5).await;
    st
}

/// Reconnects a persistent subscriber (its session must be there).
async fn resume(t: &Target, id: &str, v5: bool, sh: &Shared, st: &mut SubState) -> Option<Conn> {
    match connect(t, id, v5, true).await {
        Ok(mut c) => {
            st.reconnects += 1;
            if !c.session_present {
                st.sessions_lost += 1;
                wire::subscribe_v(&mut c.wbuf, 1, "soak/data/#", 2, v5);
            }
            Some(c)
        }
        Err(e) => {
            sh.error("persistent subscriber (connect)", &e);
            None
        }
    }
}

/// Reads until every expected message came, or `idle` without one.
async fn drain(c: &mut Conn, st: &mut SubState, want: &[u64], idle: Duration) -> Result<(), Error> {
    st.take(c)?;
    c.flush().await?;
    while !st.has_all(want) {
        match tokio::time::timeout(idle, c.read()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => return Ok(()),
        }
        st.take(c)?;
        c.flush().await?;
    }
    Ok(())
}

/// A QoS 1/2 message sent and not yet completed.
#[derive(Debug, Clone, Copy)]
struct Pending {
    pkid: u16,
    seq: u64,
    /// QoS 2: PUBREC came, PUBREL sent.
    released: bool,
}

/// What a publisher did.
#[derive(Debug, Default)]
pub(crate) struct PubOutcome {
    /// Messages published (all acknowledged at QoS 1/2).
    pub(crate) sent: u64,
    pub(crate) reconnects: u64,
    /// QoS 1/2 messages sent again after a reconnect.
    pub(crate) resent: u64,
    pub(crate) sessions_lost: u64,
    /// MQTT 5 acknowledgements with a failure reason code.
    pub(crate) refused: u64,
    /// Of them apart: PUBCOMP 0x92 to a PUBREL resent after a reconnect.
    pub(crate) completed_unknown: u64,
}

pub(crate) struct Publisher {
    id: u32,
    qos: u8,
    v5: bool,
    client_id: String,
    pending: VecDeque<Pending>,
    next_pkid: u16,
    out: PubOutcome,
    size: usize,
}

impl Publisher {
    pub(crate) fn new(id: u32, v5: bool, client_id: String, size: usize) -> Publisher {
        let qos = qos_of(id);
        Publisher { id, qos, v5, client_id, pending: VecDeque::new(), next_pkid: 0, out: PubOutcome::default(), size }
    }

    fn topic(&self) -> String {
        format!("soak/data/{}", self.id)
    }

    fn publish(&mut self, c: &mut Conn, seq: u64, dup: bool, pkid: u16) {
        let flags = (self.qos << 1) | if dup { 0x08 } else { 0 };
        let stamp = Stamp { publisher: self.id, seq, ts: now_nanos() };
        wire::publish_flags(&mut c.wbuf, &self.topic(), flags, pkid, stamp, self.size, self.v5);
    }

    fn send_new(&mut self, c: &mut Conn) {
        let seq = self.out.sent;
        self.out.sent += 1;
        if self.qos == 0 {
            self.publish(c, seq, false, 0);
            return;
        }
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.pending.iter().any(|p| p.pkid == self.next_pkid) {
                break;
            }
        }
        let pkid = self.next_pkid;
        self.publish(c, seq, false, pkid);
        self.pending.push_back(Pending { pkid, seq, released: false });
    }

    /// After a reconnect: every pending message again (PUBLISH with DUP, or PUBREL).
    fn resend(&mut self, c: &mut Conn) {
        for p in self.pending.clone() {
            self.out.resent += 1;
            if p.released {
                wire::ack(&mut c.wbuf, wire::PUBREL, p.pkid);
            } else {
                self.publish(c, p.seq, true, p.pkid);
            }
        }
    }

    fn take(&mut self, c: &mut Conn) -> Result<(), Error> {
        let mut off = 0;
        while let Some(f) = wire::next_frame(&c.rbuf[off..])? {
            let body = &c.rbuf[off + f.body..off + f.len];
            let kind = f.header & 0xF0;
            if !matches!(kind, wire::PUBACK | wire::PUBREC | wire::PUBCOMP) {
                return Err(unexpected(kind, body));
            }
            let pkid = wire::ack_pkid(body)?;
            let at = self.pending.iter().position(|p| p.pkid == pkid);
            let rc = body.get(2).copied().unwrap_or(0);
            // PUBCOMP 0x92 (Packet Identifier not found) to a PUBREL sent
            // again after a reconnect: the broker had completed it and its
            // PUBCOMP was lost with the connection (MQTT 5.0 4.3.3).
            let completed =
                kind == wire::PUBCOMP && rc == 0x92 && at.and_then(|i| self.pending.get(i)).is_some_and(|p| p.released);
            if completed {
                self.out.completed_unknown += 1;
            } else if rc >= 0x80 {
                self.out.refused += 1;
            }
            match (kind, at) {
                (wire::PUBREC, Some(i)) => {
                    self.pending[i].released = true;
                    wire::ack(&mut c.wbuf, wire::PUBREL, pkid);
                }
                (wire::PUBREC, None) => wire::ack(&mut c.wbuf, wire::PUBREL, pkid),
                (_, Some(i)) => {
                    self.pending.remove(i);
                }
                (_, None) => {}
            }
            off += f.len;
        }
        c.rbuf.advance(off);
        Ok(())
    }
}

/// One publisher: paced at `rate`, reconnecting every 1-6 s; at the stop
/// flag it completes what is in flight.
pub(crate) async fn publisher(
    t: Target,
    mut p: Publisher,
    sh: Arc<Shared>,
    mut rng: Rng,
    o: SoakOpts,
) -> (u32, PubOutcome) {
    let period = Duration::from_secs_f64(1.0 / o.rate.max(0.01));
    let persistent = p.qos > 0;
    let mut first = true;
    let mut next_due = tokio::time::Instant::now();
    let wind_down = loop {
        let mut c = match connect(&t, &p.client_id, p.v5, persistent).await {
            Ok(c) => c,
            Err(e) => {
                sh.error("publisher (connect)", &e);
                tokio::time::sleep(Duration::from_millis(500)).await;
                if sh.stopped() && p.pending.is_empty() {
                    break None;
                }
                continue;
            }
        };
        let _on = Online::new(&sh);
        if !first {
            p.out.reconnects += 1;
            if persistent && !c.session_present {
                p.out.sessions_lost += 1;
            }
            p.resend(&mut c);
        }
        first = false;
        let phase_end = tokio::time::Instant::now() + rng.ms(1_000, 6_000);
        let r: Result<(), Error> = async {
            while !sh.stopped() && tokio::time::Instant::now() < phase_end {
                let now = tokio::time::Instant::now();
                while next_due <= now && (p.qos == 0 || p.pending.len() < WINDOW) {
                    p.send_new(&mut c);
                    next_due += period;
                }
                // Behind by more than a second (a full window): do not catch up in a burst.
                next_due = next_due.max(now - Duration::from_secs(1));
                c.flush().await?;
                let wake = next_due.max(now + Duration::from_millis(1)).min(phase_end);
                if let Ok(r) = tokio::time::timeout_at(wake, c.read()).await {
                    r?;
                    p.take(&mut c)?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            sh.error("publisher", &e);
            continue;
        }
        if sh.stopped() {
            break Some(c);
        }
        leave(c, rng.chance(2)).await;
        tokio::time::sleep(rng.ms(100, 1_000)).await;
    };
    // Wind-down: complete what is in flight, then leave for good.
    if let Some(mut c) = wind_down {
        let deadline = tokio::time::Instant::now() + o.wind_down;
        let r: Result<(), Error> = async {
            while !p.pending.is_empty() {
                c.flush().await?;
                tokio::time::timeout_at(deadline, c.read())
                    .await
                    .map_err(|_| Error::Timeout(format!("publisher {}: {} in flight", p.id, p.pending.len())))??;
                p.take(&mut c)?;
            }
            c.flush().await
        }
        .await;
        if let Err(e) = r {
            sh.error("publisher (wind-down)", &e);
        }
        c.close().await;
    }
    if persistent {
        discard(&t, &p.client_id, p.v5).await;
    }
    (p.id, p.out)
}

/// Retained updates on `soak/ret/K` (QoS 1, one in ten a deletion), 20 a
/// second, over connections of 2-8 s; returns the updates acknowledged.
pub(crate) async fn retainer(t: Target, sh: Arc<Shared>, mut rng: Rng, o: SoakOpts) -> u64 {
    let mut done = 0u64;
    while !sh.stopped() {
        let mut c = match Conn::connect(t.addr, &format!("soak-ret-{}", sh.run)).await {
            Ok(c) => c,
            Err(e) => {
                sh.error("retainer (connect)", &e);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let _on = Online::new(&sh);
        let end = tokio::time::Instant::now() + rng.ms(2_000, 8_000);
        let r: Result<(), Error> = async {
            while !sh.stopped() && tokio::time::Instant::now() < end {
                let topic = format!("soak/ret/{}", rng.below(o.retained.max(1) as u64));
                let pkid = (done % 65_535 + 1) as u16;
                if rng.chance(10) {
                    wire::delete_retained(&mut c.wbuf, &topic, pkid);
                } else {
                    let stamp = Stamp { publisher: u32::MAX, seq: done, ts: now_nanos() };
                    wire::publish_flags(&mut c.wbuf, &topic, 0x03, pkid, stamp, o.size, false);
                }
                c.flush().await?;
                let f = loop {
                    if let Some(f) = wire::next_frame(&c.rbuf)? {
                        break f;
                    }
                    tokio::time::timeout(Duration::from_secs(30), c.read())
                        .await
                        .map_err(|_| Error::Timeout("retained PUBACK".into()))??;
                };
                c.rbuf.advance(f.len);
                done += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            sh.error("retainer", &e);
        }
        c.close().await;
    }
    done
}

/// Acknowledges everything a churner receives (no bookkeeping).
fn ack_all(c: &mut Conn) -> Result<(), Error> {
    let mut off = 0;
    while let Some(f) = wire::next_frame(&c.rbuf[off..])? {
        let body = &c.rbuf[off + f.body..off + f.len];
        match f.header & 0xF0 {
            wire::PUBLISH => {
                let qos = (f.header >> 1) & 3;
                if qos > 0 {
                    let tlen = usize::from(wire::ack_pkid(body)?);
                    let pkid = wire::ack_pkid(body.get(2 + tlen..).unwrap_or_default())?;
                    wire::ack(&mut c.wbuf, if qos == 1 { wire::PUBACK } else { wire::PUBREC }, pkid);
                }
            }
            0x60 => wire::ack(&mut c.wbuf, wire::PUBCOMP, wire::ack_pkid(body)?),
            wire::SUBACK | wire::PINGRESP => {}
            t => return Err(unexpected(t, body)),
        }
        off += f.len;
    }
    c.rbuf.advance(off);
    Ok(())
}

const CHURN_FILTERS: [&str; 4] = ["soak/#", "soak/ret/#", "soak/data/+", "soak/ret/+"];

/// One churning client slot: connects, subscribes, reads 0.2-2 s, leaves,
/// again and again; returns its connections made. Its pool of persistent
/// session ids is discarded at the end.
pub(crate) async fn churner(t: Target, slot: usize, sh: Arc<Shared>, mut rng: Rng) -> u64 {
    let mut connects = 0u64;
    let pool: Vec<String> = (0..4).map(|k| format!("soak-pool-{}-{slot}-{k}", sh.run)).collect();
    while !sh.stopped() {
        let kind = rng.below(3);
        let (id, v5) = match kind {
            0 => (format!("soak-churn-{}-{slot}-{connects}", sh.run), false),
            1 => (format!("soak-exp-{}-{slot}-{connects}", sh.run), true),
            _ => (pool[rng.below(pool.len() as u64) as usize].clone(), false),
        };
        let c = match kind {
            1 => Conn::connect_v5(t.addr, &id, true, 1 + rng.below(3) as u32).await,
            2 => Conn::connect_session(t.addr, &id, false).await,
            _ => Conn::connect(t.addr, &id).await,
        };
        let mut c = match c {
            Ok(c) => c,
            Err(e) => {
                sh.error("churner (connect)", &e);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        connects += 1;
        let _on = Online::new(&sh);
        if !c.session_present {
            let filter = CHURN_FILTERS[rng.below(CHURN_FILTERS.len() as u64) as usize];
            wire::subscribe_v(&mut c.wbuf, 1, filter, rng.below(3) as u8, v5);
        }
        let until = tokio::time::Instant::now() + rng.ms(200, 2_000);
        if let Err(e) = read_until(&mut c, until, &sh, ack_all).await {
            sh.error("churner", &e);
            continue;
        }
        leave(c, rng.chance(2)).await;
        tokio::time::sleep(rng.ms(0, 300)).await;
    }
    for id in &pool {
        discard(&t, id, false).await;
    }
    connects
}
