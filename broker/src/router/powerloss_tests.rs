//! Power-loss test of the router's persistence: the real `Router` and
//! `SessionState` write the records (through `enable_persistence`, which
//! restores and snapshots at every boot, `publish`, deliveries and
//! acknowledgements of persistent sessions, `snapshot` and
//! `maintain_store`, which compacts), through [`PowerLossFs`]; the power
//! goes at a random operation; the next boot recovers with the real
//! `store::open`. Checked at the MQTT level, per (session, message):
//! queued for a session when the power went (its records durable) and not
//! completed durably: still there (queued, in flight, or released:
//! PUBREL owed, never a PUBLISH again); completed durably: gone; never
//! there: not invented.
//!
//! `POWERLOSS_ROUTER_RUNS` (default 60) seeds from `POWERLOSS_SEED`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::{ConnHandle, ConnectRequest, Router, Sub, SubscribeEntry};
use crate::message::Message;
use crate::protocol::{QoS, SubOptions};
use crate::session::state::QueueLimits;
use crate::store::powerloss::{Loss, PowerLossFs, Rng};
use crate::store::recover::{Flight, Model};
use crate::store::{Lsn, StoreConfig, SyncMode};

/// Where a message stands for one session, and the LSN that put it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Queued,
    /// Sent with this packet id (Pop recorded).
    Sent(u16),
    /// PUBREC received (Rel recorded): PUBREL owed.
    Released(u16),
    Done,
}

/// Per (client, payload): the stages, each with the LSN after it was recorded.
type Track = BTreeMap<(usize, String), Vec<(Stage, Lsn)>>;

/// What a recovered model holds for `client`: payload -> stage (released
/// ones by packet id, as they have no body).
fn recovered(model: &Model, client: &str) -> (BTreeMap<String, Stage>, Vec<u16>) {
    let mut out = BTreeMap::new();
    let mut released = Vec::new();
    let Some(s) = model.sessions.values().find(|s| s.client_id == client) else { return (out, released) };
    let body = |mid| model.msgs.get(mid).map(|m| String::from_utf8_lossy(&m.payload).into_owned());
    for (_, e) in s.queue.iter() {
        out.insert(body(e.mid).unwrap_or_default(), Stage::Queued);
    }
    for (pkid, f) in &s.inflight {
        match f {
            Flight::Published { entry, .. } => {
                out.insert(body(entry.mid).unwrap_or_default(), Stage::Sent(*pkid));
            }
            Flight::Released => released.push(*pkid),
        }
    }
    (out, released)
}

const CLIENTS: [&str; 3] = ["c0", "c1", "c2"];

/// Runs one seed; returns (pairs checked, of them durably queued, sent or
/// released and not completed).
fn run(seed: u64) -> (u64, u64) {
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let sync = if rng.chance(50) { SyncMode::Always } else { SyncMode::Batch };
    let segment_bytes = 500 + rng.below(3000);
    let loss = if rng.chance(70) { Loss::Torn } else { Loss::Pages };
    let mut track: Track = BTreeMap::new();
    let mut durable_at_cut: Lsn = 0;
    let mut n = 0u64;
    let (mut checked, mut live) = (0u64, 0u64);
    for boot in 0..=3 {
        let fs = PowerLossFs::new(if boot == 3 { u64::MAX } else { 1 + rng.below(400) });
        let cfg = StoreConfig {
            dir: tmp.path().join("store"),
            spill_dir: tmp.path().join("spill"),
            sync,
            segment_bytes,
            compact_bytes: 1 << 30,
            fs: Arc::new(fs.clone()),
        };
        let ctx = format!("seed {seed}, boot {boot} ({sync:?}, {loss:?})");
        let (journal, model, _) = crate::store::open(&cfg).unwrap_or_else(|e| panic!("{ctx}: store refuses: {e}"));
        // What the last boot left, against what it made durable.
        for (c, client) in CLIENTS.iter().enumerate() {
            let (have, released) = recovered(&model, client);
            for ((tc, payload), stages) in track.iter_mut().filter(|((tc, _), _)| *tc == c) {
                let _ = tc;
                // The stage made durable last, or any later one (records
                // after it may have reached the disk too); none durable:
                // absent, or any.
                let from = stages.iter().rposition(|(_, lsn)| *lsn <= durable_at_cut);
                let rel = stages.iter().rev().find_map(|(s, _)| match s {
                    Stage::Released(p) | Stage::Sent(p) => Some(*p),
                    _ => None,
                });
                let now = have.get(payload).copied();
                let now = now.or_else(|| rel.filter(|p| released.contains(p)).map(Stage::Released));
                let allowed: Vec<Stage> = stages[from.unwrap_or(0)..].iter().map(|s| s.0).collect();
                checked += 1;
                live += u64::from(from.is_some_and(|i| stages[i].0 != Stage::Done));
                let is = now.unwrap_or(Stage::Done);
                if !(allowed.contains(&is) || (from.is_none() && is == Stage::Done)) {
                    let durable = from.map(|i| stages[i].0);
                    panic!(
                        "{ctx}: {client} {payload}: recovered as {now:?} (absent: completed or lost), but durable up to \
                         LSN {durable_at_cut} was {durable:?} (later: {allowed:?})"
                    );
                }
                // From now on, what was recovered is where it stands.
                stages.clear();
                stages.push((now.unwrap_or(Stage::Done), 0));
            }
            for payload in have.keys() {
                assert!(track.contains_key(&(c, payload.clone())), "{ctx}: {client} has {payload:?}, never published");
            }
        }
        let journal = Arc::new(journal);
        let limits = QueueLimits { max_messages: 10_000, max_bytes: 1 << 30, ..QueueLimits::default() };
        let mut r = Router::new(limits);
        let t0 = Instant::now();
        r.enable_persistence(journal.clone(), model, (t0, SystemTime::now()));
        let rx = journal.durable();
        fs.set_probe(Box::new(move || *rx.borrow()));
        if boot == 3 {
            journal.close();
            return (checked, live);
        }
        let mut sessions = Vec::new();
        for (i, client) in CLIENTS.iter().enumerate() {
            let conn = ConnHandle::new(i as u64 + 1);
            let req = ConnectRequest {
                client_id: (*client).into(),
                clean_start: false,
                expiry: None,
                conn,
                user: None,
                check_owner: false,
            };
            let reply = r.connect(req, t0);
            let options = SubOptions { qos: QoS::ExactlyOnce, ..SubOptions::default() };
            reply.session.lock().subscriptions.insert("t/#".into(), (options, None));
            let entry = SubscribeEntry { filter: "t/#".into(), sub: Sub { options, id: None }, existed: false };
            r.subscribe(reply.key, vec![entry], t0);
            sessions.push(reply);
        }
        for _ in 0..20 + rng.below(100) {
            let now = t0 + Duration::from_millis(n);
            match rng.below(10) {
                0..=3 => {
                    n += 1;
                    let payload = format!("m{n}");
                    let qos = if rng.chance(50) { QoS::AtLeastOnce } else { QoS::ExactlyOnce };
                    let topic = format!("t/{}", rng.below(3));
                    let m = Message {
                        topic,
                        payload: Bytes::from(payload.clone()),
                        qos,
                        retain: false,
                        props: None,
                        origin: 0,
                        received: now,
                    };
                    r.publish(m);
                    let lsn = journal.appended();
                    for c in 0..CLIENTS.len() {
                        track.entry((c, payload.clone())).or_default().push((Stage::Queued, lsn));
                    }
                }
                4..=5 => {
                    let c = rng.below(3) as usize;
                    let sent = sessions[c].session.lock().next_to_send(10, now);
                    if let Some((d, pkid)) = sent {
                        let payload = String::from_utf8_lossy(&d.msg.payload).into_owned();
                        track.entry((c, payload)).or_default().push((Stage::Sent(pkid), journal.appended()));
                    }
                }
                6..=7 => {
                    let c = rng.below(3) as usize;
                    let mut st = sessions[c].session.lock();
                    let f = st.inflight().next().map(|f| (f.pkid, f.stage.clone()));
                    let Some((pkid, stage)) = f else { continue };
                    let (payload, done) = match &stage {
                        crate::session::state::Stage::Published(d) => {
                            let p = String::from_utf8_lossy(&d.msg.payload).into_owned();
                            if d.qos == QoS::AtLeastOnce {
                                assert!(st.puback(pkid));
                                (p, Stage::Done)
                            } else {
                                assert!(st.pubrec(pkid));
                                (p, Stage::Released(pkid))
                            }
                        }
                        crate::session::state::Stage::Released => {
                            assert!(st.complete(pkid));
                            let p = track
                                .iter()
                                .find(|((tc, _), s)| *tc == c && s.last().is_some_and(|s| s.0 == Stage::Released(pkid)))
                                .map(|((_, p), _)| p.clone())
                                .unwrap_or_default();
                            (p, Stage::Done)
                        }
                    };
                    drop(st);
                    track.entry((c, payload)).or_default().push((done, journal.appended()));
                }
                8 => r.snapshot(now),
                _ => {
                    // A compaction begins here and is written a step at a
                    // time, between the other operations, as the router does.
                    r.maintain_store(now);
                    r.snapshot_step(now, super::durable::Pace::Room, 16);
                }
            }
        }
        fs.crash();
        durable_at_cut = fs.probed_at_crash().unwrap_or(0);
        drop(sessions);
        drop(r);
        journal.close();
        drop(journal);
        fs.apply_crash(&mut rng, loss).unwrap();
    }
    (checked, live)
}

#[test]
fn router_persistence_survives_power_loss() {
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let first = env("POWERLOSS_SEED", 1);
    let runs = env("POWERLOSS_ROUTER_RUNS", 60);
    let (mut checked, mut live) = (0, 0);
    for seed in first..first + runs {
        match std::panic::catch_unwind(|| run(seed)) {
            Ok((c, l)) => (checked, live) = (checked + c, live + l),
            Err(e) => {
                eprintln!(
                    "router power-loss test failed with seed {seed}: POWERLOSS_SEED={seed} POWERLOSS_ROUTER_RUNS=1"
                );
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!(
        "router power loss: {runs} seeds, {checked} (session, message) pairs checked, {live} durably not completed"
    );
}
