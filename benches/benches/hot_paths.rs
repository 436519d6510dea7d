//! Criterion micro-benchmarks of edgemq's hot paths: topic matching with
//! 100,000 subscriptions, retained lookup for a wildcard subscribe over
//! 100,000 retained topics, packet decode/encode, and routing one message
//! to 1,000 subscribers. Run: `cargo bench -p edgemq-benches`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use edgemq::config::QueueFullPolicy;
use edgemq::message::Message;
use edgemq::protocol::{decode, encode, Decoded, Packet, Publish, QoS, SubOptions, Version};
use edgemq::router::{
    ConnHandle, ConnectRequest, RetainedStore, Router, RouterMsg, Sub, SubscribeEntry, SubscriptionTree,
};
use edgemq::session::state::{QueueLimits, SharedSession};

const N: u64 = 100_000;

fn sub(qos: QoS) -> Sub {
    Sub { options: SubOptions { qos, ..SubOptions::default() }, id: None }
}

/// `site/{i / 1000}/dev/{i % 1000}/temp`: 100 sites of 1,000 devices.
fn topic(i: u64) -> String {
    format!("site/{}/dev/{}/temp", i / 1000, i % 1000)
}

fn message(topic: &str, payload: Bytes, qos: QoS, retain: bool) -> Message {
    Message { topic: topic.into(), payload, qos, retain, props: None, origin: 0, received: Instant::now() }
}

fn topic_matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("topic_match_100k");
    g.throughput(Throughput::Elements(1));
    // Every subscription an exact topic; a publish matches one.
    let mut exact = SubscriptionTree::default();
    for i in 0..N {
        exact.insert(&topic(i), i, sub(QoS::AtMostOnce));
    }
    let probes: Vec<String> = (0..1024).map(|i| topic((i * 7919) % N)).collect();
    let mut k = 0;
    g.bench_function("exact", |b| {
        b.iter(|| {
            k = (k + 1) % probes.len();
            let mut n = 0;
            exact.matches(black_box(&probes[k]), |_| n += 1);
            assert_eq!(n, 1);
        })
    });
    // Every subscription has a wildcard (`+` or `#` at the first, third,
    // fifth or sixth level, one device each), so a publish walks `+` and `#`
    // branches at several levels and matches the one filter of its device.
    let mut wild = SubscriptionTree::default();
    for i in 0..N {
        let (s, d) = (i / 1000, i % 1000);
        let f = match i % 4 {
            0 => format!("site/{s}/+/{d}/temp"),
            1 => format!("site/{s}/dev/{d}/+"),
            2 => format!("+/{s}/dev/{d}/#"),
            _ => format!("site/{s}/dev/{d}/temp/#"),
        };
        wild.insert(&f, i, sub(QoS::AtMostOnce));
    }
    g.bench_function("wildcard", |b| {
        b.iter(|| {
            k = (k + 1) % probes.len();
            let mut n = 0;
            wild.matches(black_box(&probes[k]), |_| n += 1);
            assert_eq!(n, 1);
        })
    });
    g.finish();
}

fn retained_lookup(c: &mut Criterion) {
    let mut store = RetainedStore::default();
    let payload = Bytes::from_static(&[7u8; 64]);
    for i in 0..N {
        let _ = store.set(Arc::new(message(&topic(i), payload.clone(), QoS::AtMostOnce, true)));
    }
    let mut g = c.benchmark_group("retained_100k");
    for (name, filter, expect) in [
        ("one_site_plus", "site/42/dev/+/temp", 1000),
        ("all_sites_plus", "site/+/dev/17/temp", 100),
        ("one_site_hash", "site/42/#", 1000),
        ("exact", "site/42/dev/17/temp", 1),
    ] {
        g.throughput(Throughput::Elements(expect));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0u64;
                store.matching(black_box(filter), |m| {
                    black_box(m);
                    n += 1
                });
                assert_eq!(n, expect);
            })
        });
    }
    g.finish();
}

fn codec(c: &mut Criterion) {
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "site/42/dev/17/temp".into(),
        pkid: 17,
        payload: Bytes::from_static(&[7u8; 64]),
        props: None,
    });
    const PACKETS: usize = 1000;
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(PACKETS as u64));
    for (name, version) in [("v311", Version::V311), ("v5", Version::V5)] {
        let mut wire = BytesMut::new();
        for _ in 0..PACKETS {
            let _ = encode(&publish, version, &mut wire);
        }
        g.bench_function(format!("decode_publish64_{name}"), |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| {
                    let mut n = 0;
                    while let Ok(Decoded::Packet(p, _)) = decode(buf, Some(version), 1 << 20) {
                        black_box(p);
                        n += 1;
                    }
                    assert_eq!(n, PACKETS);
                },
                BatchSize::SmallInput,
            )
        });
        let mut out = BytesMut::with_capacity(wire.len());
        g.bench_function(format!("encode_publish64_{name}"), |b| {
            b.iter(|| {
                out.clear();
                for _ in 0..PACKETS {
                    let _ = encode(black_box(&publish), version, &mut out);
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

/// Routes one message to 1,000 sessions subscribed to its topic (the
/// router's work: match, one `Delivery` per session, queue, wake list).
/// Draining the queues is done between timed chunks and not measured.
fn fanout(c: &mut Criterion) {
    const SUBS: u64 = 1000;
    const CHUNK: u64 = 32;
    let mut g = c.benchmark_group("fanout_1000");
    g.throughput(Throughput::Elements(SUBS));
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let limits = QueueLimits {
            max_messages: 1 << 20,
            max_bytes: 1 << 30,
            policy: QueueFullPolicy::DropNew,
            queue_qos0: true,
            ..QueueLimits::default()
        };
        let mut router = Router::new(limits);
        let now = Instant::now();
        let mut sessions: Vec<Arc<SharedSession>> = Vec::new();
        for i in 0..SUBS {
            let req = ConnectRequest {
                user: None,
                check_owner: false,
                client_id: format!("sub-{i}"),
                clean_start: true,
                expiry: Some(Duration::ZERO),
                conn: ConnHandle::new(i + 1),
            };
            let reply = router.connect(req, now);
            let entries = vec![SubscribeEntry { filter: "bench/fanout".into(), sub: sub(qos), existed: false }];
            router.handle(RouterMsg::Subscribe { key: reply.key, entries }, now);
            sessions.push(reply.session);
        }
        let _ = router.take_touched();
        let msg = message("bench/fanout", Bytes::from_static(&[7u8; 64]), qos, false);
        g.bench_function(format!("publish_qos{}", qos as u8), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK);
                    let t = Instant::now();
                    for _ in 0..n {
                        router.publish(black_box(msg.clone()));
                    }
                    black_box(router.take_touched());
                    total += t.elapsed();
                    left -= n;
                    for s in &sessions {
                        let mut st = s.lock();
                        while let Some((_, pkid)) = st.next_to_send(usize::MAX, now) {
                            if pkid != 0 {
                                st.complete(pkid);
                            }
                        }
                    }
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = topic_matching, retained_lookup, codec, fanout
}
criterion_main!(benches);
