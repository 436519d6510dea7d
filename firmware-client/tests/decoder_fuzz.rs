//! Deterministic fuzzing over a seeded random corpus: valid packets are
//! mutated (bit flips, byte changes, truncation, insertion, length-field
//! corruption, splicing) with a xorshift PRNG and fed to the decoder and to
//! the client core. Nothing may panic; whatever decodes must re-encode to a
//! packet that decodes identically; the core must turn garbage into a
//! `LinkError` and still reconnect cleanly.
//!
//! `FUZZ_ITERS` overrides the iteration count (default 200 000) and
//! `FUZZ_SEED` the seed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use edgemq_client::codec::{self, Connect, Packet, Publish, QoS, Will};
use edgemq_client::{Client, Config, RamOutbox, State};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut push = |p: Packet<'_>| {
        let mut b = vec![0u8; 512];
        let n = p.encode(&mut b).unwrap();
        b.truncate(n);
        out.push(b);
    };
    push(Packet::ConnAck { session_present: true, code: 0 });
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        push(Packet::Publish(Publish {
            dup: qos != QoS::AtMostOnce,
            qos,
            retain: true,
            topic: "sensors/dev1/t".into(),
            pid: Some(0x1234),
            payload: b"{\"t\":21.5}",
            properties: Default::default(),
        }));
    }
    push(Packet::PubAck(1));
    push(Packet::PubRec(2));
    push(Packet::PubRel(3));
    push(Packet::PubComp(4));
    push(Packet::SubAck { pid: 5, codes: &[0, 1, 2, 0x80] });
    push(Packet::UnsubAck(6));
    push(Packet::PingReq);
    push(Packet::PingResp);
    push(Packet::Disconnect);
    push(Packet::Connect(Connect {
        client_id: "c",
        keep_alive: 30,
        clean_session: false,
        username: Some("u"),
        password: Some(b"p"),
        will: Some(Will { topic: "w", payload: b"bye", qos: QoS::AtLeastOnce, retain: false }),
    }));
    let mut b = vec![0u8; 128];
    let n = codec::encode_subscribe(7, &[("a/#", QoS::AtLeastOnce), ("+/b", QoS::AtMostOnce)], &mut b).unwrap();
    out.push(b[..n].to_vec());
    let n = codec::encode_unsubscribe(8, &["a/#", "c"], &mut b).unwrap();
    out.push(b[..n].to_vec());
    out
}

fn mutate(rng: &mut XorShift, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            2 => d.truncate(rng.below(d.len() + 1)),
            3 => {
                let i = rng.below(d.len() + 1);
                d.insert(i, rng.next() as u8);
            }
            4 if d.len() > 1 => d[1] = rng.next() as u8,
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                d.extend_from_slice(&other[..rng.below(other.len() + 1)]);
            }
            6 => d = (0..rng.below(16)).map(|_| rng.next() as u8).collect(),
            _ if d.len() > 2 => d[0] = (d[0] & 0xf0) | rng.below(16) as u8,
            _ => {}
        }
    }
    d
}

#[test]
fn decoder_never_panics_and_roundtrips() {
    let iters = env_or("FUZZ_ITERS", 200_000);
    let mut rng = XorShift(env_or("FUZZ_SEED", 0x9e37_79b9_7f4a_7c15));
    let seeds = seeds();
    let mut decoded = 0u64;
    let mut out = vec![0u8; 1024];
    for _ in 0..iters {
        let d = mutate(&mut rng, &seeds);
        let full = codec::decode(&d);
        let inbound = codec::decode_inbound(&d);
        if let Ok(Some((p, n))) = full {
            decoded += 1;
            assert!(n <= d.len());
            let m = p.encode(&mut out).unwrap();
            let (p2, n2) = codec::decode(&out[..m]).unwrap().unwrap();
            assert_eq!(p2, p, "input {d:02x?}");
            assert_eq!(n2, m);
            if let Ok(Some((pi, ni))) = inbound {
                assert_eq!((pi, ni), (p, n));
            }
        } else {
            assert!(!matches!(inbound, Ok(Some(_))), "input {d:02x?}");
        }
    }
    // The mutations must keep a useful share of inputs valid.
    assert!(decoded > iters / 20, "only {decoded} of {iters} decoded");
}

#[test]
fn utf8_checker_agrees_with_core() {
    let mut rng = XorShift(env_or("FUZZ_SEED", 0x1234_5678_9abc_def1));
    let samples = ["a", "ü", "€", "𝄞", "\u{10ffff}", "\u{d7ff}", "\u{e000}"];
    for _ in 0..env_or("FUZZ_ITERS", 200_000) {
        let mut b: Vec<u8> = Vec::new();
        for _ in 0..rng.below(6) {
            if rng.below(2) == 0 {
                b.extend_from_slice(samples[rng.below(samples.len())].as_bytes());
            } else {
                b.push(rng.next() as u8);
            }
        }
        assert_eq!(codec::is_utf8(&b), std::str::from_utf8(&b).is_ok(), "{b:02x?}");
    }
}

#[test]
fn core_survives_garbage_and_reconnects() {
    let iters = env_or("FUZZ_ITERS", 200_000) / 10;
    let mut rng = XorShift(env_or("FUZZ_SEED", 0x2545_f491_4f6c_dd1d));
    let seeds = seeds();
    let mut tx = [0u8; 256];
    let mut rx = [0u8; 128];
    let mut c: Client<'_, RamOutbox<1024>, 2> = Client::new(Config::new("fuzz"), &mut tx, &mut rx, RamOutbox::new());
    let connack = [0x20u8, 0x02, 0x00, 0x00];
    let mut now = 0u32;
    let mut errors = 0u32;
    for i in 0..iters {
        now = now.wrapping_add(rng.below(3000) as u32);
        if c.state() == State::Disconnected {
            c.connect(now).unwrap();
            c.feed(&connack);
        }
        if i % 7 == 0 {
            let q = QoS::from_u8(rng.below(3) as u8).unwrap();
            let _ = c.publish("s/x", b"v", q, false);
        }
        let d = mutate(&mut rng, &seeds);
        let mut rest = &d[..];
        loop {
            let n = c.feed(rest);
            rest = &rest[n..];
            let mut progressed = n > 0;
            loop {
                match c.poll(now) {
                    Ok(Some(_)) => progressed = true,
                    Ok(None) => break,
                    Err(_) => {
                        errors += 1;
                        assert_eq!(c.state(), State::Disconnected);
                        break;
                    }
                }
            }
            let t = c.transmit_data().len();
            c.commit_transmitted(t);
            if rest.is_empty() || !progressed || c.state() == State::Disconnected {
                break;
            }
        }
    }
    assert!(errors > 0);
}
