//! A disk that fills up (every write, sync and new segment fails with "no
//! space left on device") and frees again: acknowledgements of durable
//! messages wait, nothing is acknowledged that is not on disk, the broker
//! keeps serving what needs no disk (QoS 0, keep-alive), and once the
//! disk takes writes again everything held is written and acknowledged;
//! after a restart nothing acknowledged is missing.

mod common;

use std::time::Duration;

use common::*;
use edgemq::store::fs::FailingFs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_acknowledgements_and_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let fs = FailingFs::new();
    let seams = edgemq::server::Seams { fs: fs.clone(), ..Default::default() };
    let dir = data.path().to_owned();
    let b = TestBroker::start_with_seams(seams, |c| c.data_dir = dir.clone()).await;
    let sub_opts = ConnectOpts::new(Proto::V311, "df-sub").clean(false);
    let (mut sub, _) = Raw::connect(b.addr, &sub_opts).await;
    assert_eq!(sub.subscribe(1, &[("df/#", 1)]).await, vec![1]);
    sub.disconnect().await;
    let mut publisher = Raw::v311(b.addr, "df-pub").await;
    publisher.publish("df/t", 1, false, 1, b"before").await;
    let (mut q0_sub, mut q0_pub) = (Raw::v311(b.addr, "df-q0-sub").await, Raw::v311(b.addr, "df-q0-pub").await);
    assert_eq!(q0_sub.subscribe(1, &[("fast/t", 0)]).await, vec![0]);
    let (mut keepalive, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, "df-keepalive").keep_alive(1)).await;

    fs.set_failing(true);
    publisher.send(&publish_packet(false, "df/t", 1, false, false, 2, b"during")).await;
    for round in 0..4 {
        keepalive.send(&pingreq_packet()).await;
        match keepalive.recv_within(Duration::from_millis(1000)).await {
            Recv::Packet(p) if p.kind == PINGRESP => {}
            other => panic!("round {round}: keep-alive client not served while the disk is full: {other:?}"),
        }
        q0_pub.publish("fast/t", 0, false, 0, b"q0").await;
        assert_eq!(q0_sub.expect_publish().await.payload, b"q0", "QoS 0 flows while the disk is full");
    }
    match publisher.recv_within(Duration::from_millis(200)).await {
        Recv::TimedOut => {}
        other => panic!("a PUBACK for a message that is not on disk: {other:?}"),
    }
    assert!(fs.failures() > 0, "the writer did try the disk");

    fs.set_failing(false);
    let ack = publisher.expect_kind(PUBACK, "the PUBACK once the disk takes writes").await;
    assert_eq!(ack.pid(), 2);
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert_eq!(stats.dropped_queue_full, 0);

    // Restart on the same directory: both acknowledged messages are there,
    // in order [MQTT-4.6.0-6].
    let b = TestBroker::start_with(|c| c.data_dir = dir.clone()).await;
    let (mut sub, present) = Raw::connect(b.addr, &sub_opts).await;
    assert!(present, "session present");
    assert_eq!(sub.receive_acked().await.payload, b"before");
    assert_eq!(sub.receive_acked().await.payload, b"during");
    sub.expect_silence("nothing else").await;
    b.shutdown().await;
}
