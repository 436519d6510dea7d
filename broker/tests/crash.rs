//! Durability across crashes and power cuts, with the real binary:
//! `kill -9` at random moments while a publisher records what the broker
//! acknowledged; then every acknowledged message must reach the persistent
//! subscriber after a restart (QoS 1 at least once, QoS 2 exactly once, in
//! order). Also damaged log files, and state that must survive restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod mini;
use mini::*;

/// Publishes numbered messages (pipelined) until the connection breaks;
/// returns the numbers the broker acknowledged (PUBACK, or PUBREC at QoS 2).
fn publish_until_killed(addr: String, qos: u8) -> BTreeSet<u32> {
    let (mut c, _) = Client::connect(&addr, "crash-pub", true);
    let mut acked = BTreeSet::new();
    let mut n: u32 = 0;
    let window = 32u32;
    loop {
        while n < acked.len() as u32 + window && n < 60_000 {
            n += 1;
            if !c.try_send(&numbered(qos, n)) {
                return acked;
            }
        }
        match c.read() {
            Some((0x40, b)) | Some((0x50, b)) => {
                let pkid = u16::from_be_bytes([b[0], b[1]]);
                acked.insert(u32::from(pkid - 1));
                if qos == 2 {
                    // Complete the flow; the message is already the broker's.
                    if !c.try_send(&packet(0x62, &b[..2])) {
                        return acked;
                    }
                }
            }
            Some(_) => {}
            None => return acked,
        }
    }
}

/// Reconnects the persistent subscriber and reads until it has every
/// number in `want` (or times out); returns all numbers in arrival order.
fn drain(addr: &str, id: &str, qos: u8, want: &BTreeSet<u32>) -> Vec<u32> {
    let (mut c, present) = Client::connect(addr, id, false);
    assert!(present, "the persistent session survived the crash");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    c.s.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut missing = want.clone();
    while Instant::now() < deadline {
        if missing.is_empty() {
            // Give stragglers (duplicates) a moment to show up, then stop.
            c.s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        }
        let Some((byte1, body)) = c.read() else { break };
        match byte1 >> 4 {
            3 => {
                let (q, pkid, n) = parse_publish(byte1, &body);
                assert!(q <= qos.max(1));
                missing.remove(&n);
                got.push(n);
                match q {
                    1 => c.send(&packet(0x40, &pkid.to_be_bytes())),
                    2 => c.send(&packet(0x50, &pkid.to_be_bytes())),
                    _ => {}
                }
            }
            6 => c.send(&packet(0x70, &body[..2])),
            _ => {}
        }
    }
    got
}

fn check(qos: u8, acked: &BTreeSet<u32>, got: &[u32]) {
    let received: BTreeSet<u32> = got.iter().copied().collect();
    let missing: Vec<u32> = acked.difference(&received).copied().take(10).collect();
    assert!(
        missing.is_empty(),
        "QoS {qos}: acknowledged but lost: {missing:?} (acked {}, got {})",
        acked.len(),
        got.len()
    );
    // In order: the first arrivals of each number increase.
    let mut seen = BTreeSet::new();
    let firsts: Vec<u32> = got.iter().copied().filter(|n| seen.insert(*n)).collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "QoS {qos}: out of order: {firsts:?}");
    if qos == 2 {
        assert_eq!(firsts.len(), got.len(), "QoS 2: a message was delivered twice");
    }
}

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

/// Rounds of: persistent subscriber offline, a publisher recording what
/// was acknowledged, `kill -9` at a random moment, restart, check.
/// `config` is the broker's config file text (empty for the defaults).
fn kill_rounds(qos_rounds: &[u8], config: &str, mut seed: u64) {
    for (round, &qos) in qos_rounds.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("edgemq.toml");
        std::fs::write(&conf, config).unwrap();
        let data = dir.path().join("data");
        let args = ["-c", conf.to_str().unwrap()];
        let b = Broker::start(&data, &args);
        let (mut sub, _) = Client::connect(&b.addr, "crash-sub", false);
        sub.subscribe("crash/#", 2);
        drop(sub);
        let addr = b.addr.clone();
        let publisher = std::thread::spawn(move || publish_until_killed(addr, qos));
        let delay = 50 + lcg(&mut seed) % 400;
        std::thread::sleep(Duration::from_millis(delay));
        b.kill9();
        let acked = publisher.join().unwrap();
        eprintln!("round {round}: QoS {qos}, killed after {delay} ms with {} acknowledged", acked.len());
        let b = Broker::start(&data, &args);
        let got = drain(&b.addr, "crash-sub", qos, &acked);
        check(qos, &acked, &got);
    }
}

#[test]
fn acknowledged_messages_survive_kill_9() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    kill_rounds(&[1, 2, 1, 2], "", seed);
}

#[test]
fn damaged_log_keeps_every_intact_record() {
    let mut seed = 0x5EED_u64;
    for _ in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let b = Broker::start(dir.path(), &[]);
        let (mut sub, _) = Client::connect(&b.addr, "crash-sub", false);
        sub.subscribe("crash/#", 1);
        drop(sub);
        let (mut p, _) = Client::connect(&b.addr, "p", true);
        for n in 1..=200u32 {
            p.send(&numbered(1, n));
            assert_eq!(p.read().unwrap().0, 0x40);
        }
        drop(p);
        b.kill9();
        // A power cut: the tail of the log is cut at a random offset, or a byte flips.
        let seg = segments(&dir.path().join("store")).pop().unwrap();
        let len = std::fs::metadata(&seg).unwrap().len();
        let at = len / 2 + lcg(&mut seed) % (len / 2);
        let cut = lcg(&mut seed) % 2 == 0;
        if cut {
            std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(at).unwrap();
        } else {
            let mut bytes = std::fs::read(&seg).unwrap();
            bytes[at as usize] ^= 0x5A;
            std::fs::write(&seg, bytes).unwrap();
        }
        let b = Broker::start(dir.path(), &[]);
        let (c, present) = Client::connect(&b.addr, "crash-sub", false);
        drop(c);
        // The session was recorded first, so it survives; what arrives is
        // what was queued but for the damaged record (a cut loses the
        // rest), intact and in order.
        assert!(present);
        let got = drain(&b.addr, "crash-sub", 1, &BTreeSet::new());
        assert_all_but_one_range(&got, 200);
        if cut {
            assert!(got.iter().enumerate().all(|(i, n)| *n == i as u32 + 1), "a prefix in order: {got:?}");
        } else {
            assert!(got.len() >= 198, "a flipped byte costs one message: {} of 200", got.len());
        }
    }
}

/// The log's segment files in `store`, in order.
fn segments(store: &Path) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segs.sort();
    segs
}

/// `got` is `1..=total` in order but for one range of missing numbers.
fn assert_all_but_one_range(got: &[u32], total: u32) {
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, no duplicates");
    assert!(got.iter().all(|n| (1..=total).contains(n)));
    let gaps = got.windows(2).filter(|w| w[1] != w[0] + 1).count()
        + usize::from(got.first().is_some_and(|f| *f != 1))
        + usize::from(got.last().is_some_and(|l| *l != total));
    assert!(gaps <= 1, "the lost messages are one range: {} gaps", gaps);
}

/// `text` without ANSI colour sequences.
fn strip_colours(text: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in text.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// The measurement: 4,000 queued 10 KiB messages for an offline
/// session span three segments; random bytes over the middle of one
/// segment lose only the messages whose records they hit, and the broker
/// delivers every other one, in order, and says what was lost.
fn damage_in_segment(which: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]);
    let (mut sub, _) = Client::connect(&b.addr, "crash-sub", false);
    sub.subscribe("crash/#", 1);
    drop(sub);
    let (mut p, _) = Client::connect(&b.addr, "p", true);
    let total = 4_000u32;
    for chunk in (1..=total).collect::<Vec<_>>().chunks(100) {
        for &n in chunk {
            let mut body = Vec::new();
            string(&mut body, "crash/t");
            body.extend_from_slice(&((n % 65_000) as u16 + 1).to_be_bytes());
            body.extend_from_slice(&n.to_be_bytes());
            body.resize(body.len() + 10 * 1024 - 4, n as u8);
            p.send(&packet(0x32, &body));
        }
        for _ in chunk {
            assert_eq!(p.read().unwrap().0, 0x40);
        }
    }
    drop(p);
    b.kill9();
    let store = dir.path().join("store");
    let segs = segments(&store);
    assert!(segs.len() >= 3, "three segments: {segs:?}");
    let len = std::fs::metadata(&segs[which]).unwrap().len();
    let mut bytes = std::fs::read(&segs[which]).unwrap();
    let mut seed = 0xDA4A_u64 + which as u64;
    let mid = (len / 2) as usize;
    for b in &mut bytes[mid..mid + 4096] {
        *b = lcg(&mut seed) as u8;
    }
    std::fs::write(&segs[which], bytes).unwrap();
    let log_path = dir.path().join("broker.log");
    let b = Broker::start_logging(dir.path(), &[], std::fs::File::create(&log_path).unwrap());
    let got = drain(&b.addr, "crash-sub", 1, &(1..=total).collect());
    drop(b);
    assert_all_but_one_range(&got, total);
    let lost = total as usize - got.len();
    eprintln!("damage in segment {}: {} of {total} delivered", which + 1, got.len());
    assert!((1..=3).contains(&lost), "only the messages in the damaged 4 KiB: {lost} lost");
    let log = strip_colours(&std::fs::read_to_string(&log_path).unwrap());
    let line = log.lines().find(|l| l.contains("damaged records lost")).expect("one warning of the loss");
    assert!(line.contains("lost_lsns=") && line.contains(&format!("queued_lost={lost}")), "{line}");
    assert!(line.contains("sessions=1") && line.contains("bytes="), "{line}");
    let kept = std::fs::read_dir(store.join("damaged")).unwrap().count();
    assert_eq!(kept, 1, "the damaged bytes are kept aside");
    got.len()
}

#[test]
fn damage_in_the_first_of_three_segments_costs_only_the_damaged_messages() {
    damage_in_segment(0);
}

#[test]
fn damage_in_the_second_of_three_segments_costs_only_the_damaged_messages() {
    damage_in_segment(1);
}

/// A store written by a newer release: the broker refuses to start (exit
/// code 2, the directory named) and changes nothing.
#[test]
fn a_store_of_a_newer_format_is_refused_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]);
    let (mut sub, _) = Client::connect(&b.addr, "crash-sub", false);
    sub.subscribe("crash/#", 1);
    drop(sub);
    drop(b);
    let store = dir.path().join("store");
    let seg = segments(&store).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    assert_eq!(&bytes[..8], b"EDGEMQ\x1aL", "segments start with the magic");
    bytes[8..10].copy_from_slice(&99u16.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let files = |d: &Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = files(&store);
    let out = Command::new(BIN)
        .args(["-p", "0", "--bind", "127.0.0.1", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&store.display().to_string()) && err.contains("format 99") && err.contains("newer"), "{err}");
    assert_eq!(files(&store), before, "nothing changed");
}

#[test]
fn retained_and_subscriptions_survive_restart_and_expired_sessions_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edgemq.toml");
    std::fs::write(&cfg, "session_expiry_secs = 3\n").unwrap();
    let args = ["-c", cfg.to_str().unwrap()];
    let b = Broker::start(dir.path(), &args);
    let (mut sub, _) = Client::connect(&b.addr, "keeps", false);
    sub.subscribe("r/#", 1);
    drop(sub);
    let (mut p, _) = Client::connect(&b.addr, "p", true);
    let mut body = Vec::new();
    string(&mut body, "r/status");
    body.extend_from_slice(&[0, 1]);
    body.extend_from_slice(&7u32.to_be_bytes());
    p.send(&packet(0x33, &body));
    assert_eq!(p.read().unwrap().0, 0x40);
    drop(p);
    b.kill9();
    let b = Broker::start(dir.path(), &args);
    // The retained message is there for a new subscriber.
    let (mut fresh, _) = Client::connect(&b.addr, "fresh", true);
    fresh.subscribe("r/#", 1);
    let (byte1, body) = fresh.read().unwrap();
    assert_eq!((byte1 >> 4, byte1 & 1, parse_publish(byte1, &body).2), (3, 1, 7), "retained message after restart");
    drop(fresh);
    // The subscription survived: the queued copy arrives.
    assert_eq!(drain(&b.addr, "keeps", 1, &[7].into_iter().collect()), vec![7]);
    // Offline for longer than session_expiry_secs across a restart: gone.
    // (The disconnect is recorded first; a session that was connected at
    // the crash counts its expiry from the restart.)
    std::thread::sleep(Duration::from_millis(300));
    b.kill9();
    std::thread::sleep(Duration::from_millis(3_100));
    let b = Broker::start(dir.path(), &args);
    std::thread::sleep(Duration::from_millis(1_500));
    let (_c, present) = Client::connect(&b.addr, "keeps", false);
    assert!(!present, "the expired session is gone after restart");
}

#[test]
fn unacknowledged_message_keeps_its_body_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]);
    let (mut sub, _) = Client::connect(&b.addr, "rv-sub", false);
    sub.subscribe("rv/t", 1);
    let (mut publ, _) = Client::connect(&b.addr, "rv-pub", true);
    for n in 1..=20u32 {
        let mut body = Vec::new();
        string(&mut body, "rv/t");
        body.extend_from_slice(&(n as u16).to_be_bytes());
        body.extend_from_slice(&n.to_be_bytes());
        publ.send(&packet(0x32, &body));
        assert_eq!(publ.read().unwrap().0, 0x40);
        let (byte1, body) = sub.read().unwrap();
        let (_, pkid, got) = parse_publish(byte1, &body);
        assert_eq!(got, n);
        if n < 20 {
            sub.send(&packet(0x40, &pkid.to_be_bytes()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    b.kill9();
    let b = Broker::start(dir.path(), &[]);
    let (mut sub, present) = Client::connect(&b.addr, "rv-sub", false);
    assert!(present);
    let (byte1, body) = sub.read().unwrap();
    let (_, _, got) = parse_publish(byte1, &body);
    assert_eq!(got, 20, "the unacknowledged message 20 came back with the body of message {got}");
}

#[test]
fn sync_never_survives_kill_9() {
    // "never" skips fdatasync but still writes before acknowledging: a
    // crash of the broker alone (not of the machine) loses nothing.
    kill_rounds(&[1, 2], "sync = \"never\"\n", 12345);
}

/// A backlog larger than what a session keeps in memory goes to the spill
/// directory; across `kill -9` (twice, once in the middle of draining) it
/// comes back whole and in order.
#[test]
fn a_backlog_spilled_to_disk_survives_kill_9_mid_drain() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]);
    let (mut sub, _) = Client::connect(&b.addr, "backlog-sub", false);
    sub.subscribe("crash/#", 1);
    drop(sub);
    let total = 20_000u32;
    let (mut p, _) = Client::connect(&b.addr, "p", true);
    for chunk in (1..=total).collect::<Vec<_>>().chunks(500) {
        for &n in chunk {
            p.send(&numbered(1, n));
        }
        for _ in chunk {
            assert_eq!(p.read().unwrap().0, 0x40);
        }
    }
    drop(p);
    let spilled: u64 =
        std::fs::read_dir(dir.path().join("spill")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(spilled > 0, "the offline queue is on disk, not in memory");
    b.kill9();

    // Restart, take part of the backlog (acknowledging it), crash again.
    let b = Broker::start(dir.path(), &[]);
    let (mut c, present) = Client::connect(&b.addr, "backlog-sub", false);
    assert!(present);
    let mut firsts = Vec::new();
    while firsts.len() < 7_000 {
        let (byte1, body) = c.read().expect("backlog delivered after restart");
        let (_, pkid, n) = parse_publish(byte1, &body);
        c.send(&packet(0x40, &pkid.to_be_bytes()));
        firsts.push(n);
    }
    // Acknowledgements are recorded once read; give the broker a moment.
    std::thread::sleep(Duration::from_millis(300));
    drop(c);
    b.kill9();

    let b = Broker::start(dir.path(), &[]);
    let rest = drain(&b.addr, "backlog-sub", 1, &(firsts.len() as u32 + 1..=total).collect());
    // QoS 1: at least once; first arrivals in order, nothing missing.
    let mut seen = BTreeSet::new();
    let order: Vec<u32> = firsts.iter().chain(&rest).copied().filter(|n| seen.insert(*n)).collect();
    assert_eq!(order, (1..=total).collect::<Vec<_>>(), "[MQTT-4.6.0-6] every message, in order");
}
