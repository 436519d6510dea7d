//! A subscriber that falls behind loses no acknowledged message: past its
//! share of the memory budget its queue spills to the data directory, and
//! only a disk quota (or, without persistence, the memory budget) makes
//! the drop policy apply, counted and, for MQTT 5, told with DISCONNECT
//! 0x97. The default limits keep a backlog of far more than the old
//! default of 100,000 messages for an offline persistent session.

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A payload of `size` bytes that starts with its number.
fn payload(n: u32, size: usize) -> Vec<u8> {
    let mut p = vec![0x5A; size.max(4)];
    p[..4].copy_from_slice(&n.to_be_bytes());
    p
}

/// The bound of one step of a 100 MiB stream: it fsyncs that much, which
/// a disk shared with other work can take well beyond `TIMEOUT` to do (a
/// bound that says the broker is stuck, not a timing).
const BULK: std::time::Duration = std::time::Duration::from_secs(60);

async fn within_bulk<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BULK, fut).await.unwrap_or_else(|_| panic!("timed out after {BULK:?} waiting for {what}"))
}

fn number(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[0], p[1], p[2], p[3]])
}

/// Publishes `n` QoS 1 messages of `size` bytes to `topic` from a 3.1.1
/// client, pipelined (written 1,000 at a time), and waits for every
/// PUBACK: when it returns, the broker has acknowledged all `n`.
async fn publish_acked(addr: SocketAddr, topic: &str, n: u32, size: usize) {
    const WINDOW: u32 = 1_000;
    let (mut rd, mut wr) = tokio::io::split(Raw::v311(addr, &format!("pub-{topic}")).await.into_stream());
    let reader = tokio::spawn(async move {
        // The publisher gets nothing but PUBACKs: 4 bytes each (0x40 0x02 id id).
        let mut acked = 0u32;
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending = 0usize;
        while acked < n {
            let got = within_bulk("PUBACKs", rd.read(&mut buf[pending..])).await.expect("read PUBACKs");
            assert!(got > 0, "publisher closed after {acked} PUBACKs");
            pending += got;
            let whole = pending / 4 * 4;
            for ack in buf[..whole].chunks(4) {
                assert_eq!(ack[..2], [0x40, 0x02], "only PUBACKs come to the publisher");
            }
            acked += (whole / 4) as u32;
            buf.copy_within(whole..pending, 0);
            pending -= whole;
        }
        acked
    });
    let mut sent = 0u32;
    while sent < n {
        let batch = WINDOW.min(n - sent);
        let mut bytes = Vec::new();
        for i in sent..sent + batch {
            let pid = (i % 65_535 + 1) as u16;
            bytes.extend(publish_packet(false, topic, 1, false, false, pid, &payload(i, size)));
        }
        within_bulk("publish", wr.write_all(&bytes)).await.expect("write");
        sent += batch;
    }
    let acked = within_bulk("all PUBACKs", reader).await.expect("reader");
    assert_eq!(acked, n);
}

/// Reads `n` QoS 1 PUBLISHes, acknowledging each; returns their numbers.
async fn read_acked(s: &mut Raw, n: usize) -> Vec<u32> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(number(&s.receive_acked().await.payload));
    }
    got
}

/// The case: connected 3.1.1 subscribers stop reading (one with a
/// clean session, one with a persistent one) while a publisher sends 64
/// KiB QoS 1 messages at full speed, 25 times their memory share; then
/// they read. Every message the publisher got PUBACK for arrives, in
/// order, once, at both: their queues spilled to disk instead of dropping.
#[tokio::test]
async fn stalled_311_subscribers_get_every_acknowledged_message_in_order() {
    // 100 MiB: more than the old per-session limit of 64 MiB, 25 times the
    // memory share (4 MiB) here.
    const N: u32 = 1_600;
    let b = TestBroker::start_with(|c| c.queue_memory_bytes = 16 << 20).await;
    let mut stalled = Raw::v311(b.addr, "stalled").await;
    stalled.subscribe(1, &[("behind/t", 1)]).await;
    let (mut stalled_persistent, _) =
        Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "stalled-persistent").clean(false)).await;
    stalled_persistent.subscribe(1, &[("behind/t", 1)]).await;
    // A subscriber beside them that keeps up is not held back.
    let mut keeping_up = Raw::v311(b.addr, "keeping-up").await;
    keeping_up.subscribe(1, &[("behind/t", 1)]).await;
    let reader = tokio::spawn(async move { read_acked(&mut keeping_up, N as usize).await });
    publish_acked(b.addr, "behind/t", N, 64 << 10).await;
    assert_eq!(within_bulk("the reader", reader).await.expect("reader"), (0..N).collect::<Vec<_>>());
    assert_eq!(read_acked(&mut stalled, N as usize).await, (0..N).collect::<Vec<_>>(), "nothing lost, in order");
    assert_eq!(read_acked(&mut stalled_persistent, N as usize).await, (0..N).collect::<Vec<_>>(), "persistent too");
    stalled.expect_silence("each message once").await;
    stalled_persistent.expect_silence("each message once").await;
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert_eq!(stats.dropped_queue_full, 0);
}

/// Without persistence there is nowhere to spill: past its memory share
/// the queue applies `drop_new`, counted; what arrives is in order.
#[tokio::test]
async fn without_persistence_the_memory_share_applies_the_drop_policy() {
    const N: u32 = 400; // 25 MiB; memory share 1 MiB
    let b = TestBroker::start_with(|c| {
        c.persistence = false;
        c.queue_memory_bytes = 4 << 20;
    })
    .await;
    let mut stalled = Raw::v311(b.addr, "stalled-mem").await;
    stalled.subscribe(1, &[("mem/t", 1)]).await;
    publish_acked(b.addr, "mem/t", N, 64 << 10).await;
    let mut got = Vec::new();
    while let Recv::Packet(p) = stalled.recv_within(if got.is_empty() { TIMEOUT } else { QUIET * 3 }).await {
        let m = p.publish(false);
        stalled.send(&ack_packet(PUBACK, m.pid)).await;
        got.push(number(&m.payload));
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
    assert_eq!(got[0], 0, "drop_new keeps the oldest");
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert!(stats.dropped_queue_full > 0, "the share was exceeded");
    assert_eq!(stats.dropped_disk_quota, 0, "memory, not disk");
    assert_eq!(got.len() as u64 + stats.dropped_queue_full, u64::from(N), "every message delivered or counted");
}

/// With the default configuration an offline persistent session keeps a
/// backlog beyond the old `max_queued_messages` default of 100,000, and
/// gets all of it, in order, on reconnect ([MQTT-3.1.2-5], 3.1.1: QoS 1
/// and 2 messages for a disconnected CleanSession 0 session are stored).
#[tokio::test]
async fn an_offline_persistent_session_keeps_more_than_100000_messages_by_default() {
    const N: u32 = 120_000;
    let b = TestBroker::start().await;
    let opts = ConnectOpts::new(Proto::V311, "offline").clean(false);
    let (mut s, _) = Raw::connect(b.addr, &opts).await;
    s.subscribe(1, &[("backlog/t", 1)]).await;
    s.disconnect().await;
    publish_acked(b.addr, "backlog/t", N, 8).await;
    let (mut s, present) = Raw::connect(b.addr, &opts).await;
    assert!(present);
    assert_eq!(read_acked(&mut s, N as usize).await, (0..N).collect::<Vec<_>>());
    s.expect_silence("each message once").await;
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert_eq!(stats.dropped_queue_full, 0);
}

/// A connected MQTT 5 subscriber whose spilled queue reaches its disk
/// quota (`max_queued_disk_bytes`): the broker drops under `drop_new`,
/// counts it, and closes the connection with DISCONNECT 0x97 Quota
/// exceeded [MQTT-3.14.2-1]; what it delivered before is in order.
#[tokio::test]
async fn a_disk_quota_reached_drops_counted_and_disconnects_v5_with_0x97() {
    const N: u32 = 200; // 12.5 MiB; memory share 256 KiB, disk quota 1 MiB
    let b = TestBroker::start_with(|c| {
        c.queue_memory_bytes = 1 << 20;
        c.max_queued_disk_bytes = 1 << 20;
    })
    .await;
    let mut s = Raw::v5(b.addr, "quota5").await;
    s.subscribe(1, &[("quota/t", 1)]).await;
    publish_acked(b.addr, "quota/t", N, 64 << 10).await;
    let seen = s.expect_closed("disk quota reached").await;
    let (publishes, rest): (Vec<_>, Vec<_>) = seen.into_iter().partition(|p| p.kind == PUBLISH);
    assert_v5_disconnect(&rest, 0x97, "disk quota reached: Quota exceeded");
    let got: Vec<u32> = publishes.iter().map(|p| number(&p.publish(true).payload)).collect();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert!(stats.dropped_queue_full > 0);
    assert_eq!(stats.dropped_disk_quota, stats.dropped_queue_full, "counted as dropped at a disk quota");
    assert!(stats.dropped_queue_full < u64::from(N), "the quota held some: {}", stats.dropped_queue_full);
}
