//! A slow disk (every `fdatasync` takes 2 s, an SD card under load) must
//! slow only what waits for it: acknowledgements of durable messages and
//! the publishers of QoS 1/2 messages once the log is 1 MiB behind. The
//! router and every connection task keep running: a keep-alive 1 s client
//! is answered, a QoS 0 stream between two other clients keeps flowing.
//! On a 2-worker runtime, as the daemon runs: an append that blocked a
//! worker would stall them all.

mod common;

/// QoS 1 messages of 1 KiB in the flood.
const N: u16 = 8000;

use std::time::Duration;

use common::*;
use edgemq::store::fs::SlowSyncFs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_stalls_only_what_waits_for_it() {
    let fs = SlowSyncFs::new(Duration::from_millis(10));
    let seams = edgemq::server::Seams { fs: fs.clone(), ..Default::default() };
    let b = TestBroker::start_with_seams(seams, |_| {}).await;
    // A persistent subscriber whose queue is recorded, subscribed while the disk is fast.
    let (mut durable_sub, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "slow-durable").clean(false)).await;
    assert_eq!(durable_sub.subscribe(1, &[("dur/#", 1)]).await, vec![1]);
    let (mut qos0_sub, mut qos0_pub) = (Raw::v311(b.addr, "slow-q0-sub").await, Raw::v311(b.addr, "slow-q0-pub").await);
    assert_eq!(qos0_sub.subscribe(1, &[("fast/t", 0)]).await, vec![0]);
    let opts = ConnectOpts::new(Proto::V5, "slow-keepalive").keep_alive(1);
    let (mut keepalive, _) = Raw::connect(b.addr, &opts).await;

    fs.set_delay(Duration::from_secs(2));
    // 8,000 QoS 1 messages of 1 KiB for the persistent subscriber: the
    // writer writes up to 4 MiB before it syncs, and 1 MiB more may wait
    // for it; beyond that the publisher must wait for the log.
    let (publisher, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "slow-q1-pub")).await;
    let (mut rd, mut wr) = tokio::io::split(publisher.stream);
    let flood = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut batch = Vec::new();
        for i in 0..N {
            batch.extend(publish_packet(false, "dur/t", 1, false, false, i + 1, &[b'x'; 1024]));
        }
        wr.write_all(&batch).await.expect("write the flood");
        wr
    });
    // While syncs take 2 s: 4 s of keep-alive pings and a QoS 0 stream.
    let mut streamed = 0;
    for round in 0..8u32 {
        keepalive.send(&pingreq_packet()).await;
        match keepalive.recv_within(Duration::from_millis(1000)).await {
            Recv::Packet(p) if p.kind == PINGRESP => {}
            other => panic!("round {round}: keep-alive client not answered while the disk is slow: {other:?}"),
        }
        for _ in 0..5 {
            qos0_pub.publish("fast/t", 0, false, 0, round.to_string().as_bytes()).await;
        }
        while let Recv::Packet(p) = qos0_sub.recv_within(Duration::from_millis(50)).await {
            assert_eq!(p.kind, PUBLISH);
            streamed += 1;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(streamed >= 35, "the QoS 0 stream stalled behind the disk: {streamed} of 40 arrived in time");
    // Durable acknowledgements simply wait: every PUBACK arrives, in order,
    // once the disk is fast again.
    fs.set_delay(Duration::ZERO);
    let _wr = within("the flood written", flood).await.expect("flood task");
    let mut acked = 0u16;
    within("8,000 PUBACKs after the slow syncs", async {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while acked < N {
            let n = rd.read(&mut chunk).await.expect("read PUBACKs");
            assert!(n > 0, "publisher closed");
            buf.extend_from_slice(&chunk[..n]);
            while buf.len() >= 4 {
                assert_eq!(&buf[..2], &[0x40, 2], "a PUBACK");
                let pid = u16::from_be_bytes([buf[2], buf[3]]);
                acked += 1;
                assert_eq!(pid, acked, "PUBACKs in order");
                buf.drain(..4);
            }
        }
    })
    .await;
    // And the persistent subscriber gets them all.
    for i in 0..N {
        let m = durable_sub.receive_acked().await;
        assert_eq!(m.payload.len(), 1024, "message {i}");
    }
    assert!(fs.syncs() >= 2);
    b.shutdown().await;
}
