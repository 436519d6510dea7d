//! The `soak` scenario for about 20 s against an in-process edgemq (a
//! debug build in CI): correctness only, never a timing. Every QoS 2
//! message reaches every persistent subscriber exactly once across its
//! reconnects [MQTT-4.3.3-2] [MQTT-4.4.0-1], no QoS 1 message is lost
//! [MQTT-4.3.2-1], no session is lost on resume [MQTT-3.1.2-4], and the broker holds no
//! more file descriptors once everything has left than at the start.

mod common;

use std::time::Duration;

use edgemq_benches::{soak, SoakOpts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_keeps_qos2_exactly_once_and_leaks_no_descriptor() {
    // The broker runs in this process: its descriptors are this process's.
    let (broker, t, _dir) = common::start_broker().await;
    let o = SoakOpts {
        duration: Duration::from_secs(20),
        checkpoint: Duration::from_secs(5),
        subs: 4,
        pubs_per_qos: 2,
        rate: 20.0,
        churners: 6,
        retained: 20,
        wind_down: Duration::from_secs(15),
        ..SoakOpts::default()
    };
    let r = soak(&t, &o).await.unwrap();
    println!("{r}");
    for key in ["q2_lost", "q2_dup", "q1_lost", "wrong_qos", "sessions_lost", "pub_refused", "errors"] {
        assert_eq!(r.get_u64(key), Some(0), "{key}: {r}");
    }
    for key in ["q1_sent", "q2_sent", "sub_reconnects", "pub_reconnects", "churn_connects", "retained_updates"] {
        assert!(r.get_u64(key).unwrap() > 0, "{key}: {r}");
    }
    // A few descriptors of the store may differ (a new log segment, a
    // spill file); a leak per connection would be hundreds.
    let (start, end) = (r.get_u64("fd_start").unwrap(), r.get_u64("fd_end").unwrap());
    assert!(end <= start + 8, "descriptors {start} -> {end}: {r}");
    broker.shutdown().await;
}
