//! Smoke test: every scenario once, at a tiny size, against edgemq started
//! in-process on 127.0.0.1:0. Asserts counts (nothing lost, duplicated or
//! reordered), never timings.

mod common;

use std::time::Duration;

use edgemq_benches::{
    authburst, backlog, conns, fanin, fanout, fleet, latency, stall, startup, storm, AuthburstOpts, BacklogOpts,
    ConnsOpts, FaninOpts, FanoutOpts, FleetOpts, LatencyOpts, Report, StallOpts, StartupOpts, StormOpts, Target,
};

fn assert_clean(r: &Report, expected: u64) {
    println!("{r}");
    assert_eq!(r.get_u64("unique"), Some(expected), "{r}");
    assert_eq!(r.get_u64("lost"), Some(0), "{r}");
    assert_eq!(r.get_u64("dup"), Some(0), "{r}");
    assert_eq!(r.get_u64("ooo"), Some(0), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_once() {
    let (broker, t, dir) = common::start_broker().await;
    let short = Duration::from_secs(30);

    for qos in 0..=2 {
        let o = FaninOpts { publishers: 3, qos, messages: 300, timeout: short, ..FaninOpts::default() };
        let r = fanin(&t, &o).await.unwrap();
        assert_clean(&r, 300);
        assert!(r.get_u64("peak_rss_kib").is_some(), "{r}");
    }
    // Durable delivery: a persistent subscriber at QoS 1 and 2.
    for qos in 1..=2 {
        let o =
            FaninOpts { publishers: 2, qos, messages: 200, timeout: short, persistent: true, ..FaninOpts::default() };
        let r = fanin(&t, &o).await.unwrap();
        assert_clean(&r, 200);
    }

    // Store-and-forward: queued for an offline persistent session, then drained.
    for qos in 1..=2 {
        let o = BacklogOpts {
            publishers: 2,
            qos,
            messages: 200,
            settle: Duration::from_millis(50),
            timeout: short,
            ..BacklogOpts::default()
        };
        let r = backlog(&t, &o).await.unwrap();
        assert_clean(&r, 200);
        assert_eq!(r.get_u64("session_present"), Some(1), "{r}");
        for key in ["pub_rate", "drain_rate", "rss_queued_kib", "rss_drain_peak_kib", "rss_per_msg_b"] {
            assert!(r.get_f64(key).is_some(), "{key}: {r}");
        }
    }

    let o = FanoutOpts { subscribers: 3, qos: 1, messages: 200, timeout: short, ..FanoutOpts::default() };
    let r = fanout(&t, &o).await.unwrap();
    assert_clean(&r, 600);

    let o = LatencyOpts { rate: 2_000, messages: 100, warmup: 10, qos: 1, size: 64, timeout: short };
    let r = tokio::task::spawn_blocking(move || latency(&t, &o)).await.unwrap().unwrap();
    assert_clean(&r, 110);
    assert_eq!(r.get_u64("measured"), Some(100), "{r}");

    let o = ConnsOpts { connections: 50, concurrency: 10, settle: Duration::from_millis(50) };
    let r = conns(&t, &o).await.unwrap();
    println!("{r}");
    assert_eq!(r.get_u64("connected"), Some(50), "{r}");
    assert!(r.get_f64("kib_per_conn").is_some(), "{r}");

    // The IoT shape: devices at a low rate, every message counted.
    for qos in 0..=2 {
        let o = FleetOpts {
            devices: 20,
            rate: 20.0,
            qos,
            duration: Duration::from_millis(200),
            warmup: Duration::from_millis(100),
            timeout: short,
            ..FleetOpts::default()
        };
        let r = fleet(&t, &o).await.unwrap();
        assert_clean(&r, 20 * 6);
        assert!(r.get_f64("cpu_us_per_msg").is_some() && r.get_f64("p99_us").is_some(), "{r}");
    }
    let o = StormOpts { clients: 30, queued: 3, timeout: short, ..StormOpts::default() };
    let r = storm(&t, &o).await.unwrap();
    assert_clean(&r, 90);
    assert_eq!(r.get_u64("served"), Some(30), "{r}");

    // A subscriber that reads nothing beside one that reads everything
    // (a tiny volume: counts only; the stalled one drains at the end).
    for (baseline, qos) in [(true, 1), (false, 0), (false, 1)] {
        let o = StallOpts {
            stalled_qos: qos,
            baseline,
            bytes: 2 << 20,
            size: 16 * 1024,
            idle: Duration::from_millis(500),
            timeout: short,
            ..StallOpts::default()
        };
        let r = stall(&t, &o).await.unwrap();
        assert_clean(&r, 128);
        assert_eq!(r.get_u64("pub_refused"), Some(0), "{r}");
        if !baseline {
            assert_eq!(r.get_u64("stalled_unique"), Some(128), "{r}");
        }
    }

    broker.shutdown().await;

    // `startup` needs a broker process: the load generator's hidden
    // `serve` command runs edgemq in it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = StartupOpts {
        command: vec![
            env!("CARGO_BIN_EXE_edgemq-loadgen").into(),
            "--port".into(),
            port.to_string(),
            "serve".into(),
            "--data-dir".into(),
            dir.path().display().to_string(),
        ],
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        timeout: short,
        settle: Duration::from_millis(50),
    };
    let r = tokio::task::spawn_blocking(move || startup(&o)).await.unwrap().unwrap();
    println!("{r}");
    assert!(r.get_f64("startup_ms").is_some(), "{r}");
    assert!(r.get_u64("idle_rss_kib").is_some(), "{r}");
}

/// `authburst` against a broker with a password file (Debian's
/// `mosquitto_passwd` wrote this line, user `bench`, password `bench`):
/// every wrong password refused, every pinging client kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authburst_once() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "bench:$7$101$cfM1XoaEBOwqcYog$tfYNj0aWZX8mYIAFilfsAFttEgPwM/oLDtxNY+k3ZtJVcRmRr3SjVdhQbe4DTsVV/oH/PG/91HjsQvgIzLbq2w==\n").unwrap();
    let cfg = edgemq::Config {
        listeners: vec![edgemq::config::ListenerConfig::tcp("127.0.0.1:0".parse().unwrap())],
        data_dir: dir.path().join("data"),
        allow_anonymous: false,
        password_file: Some(pw.clone()),
        ..edgemq::Config::default()
    };
    let broker = edgemq::Broker::start(cfg).await.unwrap();
    let t = Target { addr: broker.local_addrs()[0], pid: None };
    let o = AuthburstOpts {
        clients: 3,
        interval: Duration::from_millis(20),
        idle: Duration::from_millis(100),
        burst: 40,
        concurrency: 20,
        passwd_file: Some(pw),
        ..AuthburstOpts::default()
    };
    let r = authburst(&t, &o).await.unwrap();
    println!("{r}");
    assert_eq!(r.get_u64("refused"), Some(40), "{r}");
    assert_eq!(r.get("codes"), Some("0x04"), "{r}");
    assert_eq!(r.get_u64("pingers_lost"), Some(0), "{r}");
    assert!(r.get_u64("idle_pings").is_some_and(|n| n > 0), "{r}");
    broker.shutdown().await;
}
