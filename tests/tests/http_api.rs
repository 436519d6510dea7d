//! The HTTP listener end to end: `GET /metrics` scraped and parsed with a
//! real parser of the Prometheus exposition format (`prometheus-parse`),
//! the admin API with a real HTTP client (`ureq`): authentication, paged
//! lists over thousands of sessions, and the actions (an MQTT 5 client
//! disconnected by the API gets DISCONNECT 0x98 Administrative action).

mod common;

use std::net::SocketAddr;

use common::*;
use edgemq::http::HttpConfig;
use serde_json::Value;

const TOKEN: &str = "s3cret-token";

async fn broker() -> (TestBroker, SocketAddr) {
    let b = TestBroker::start_with(|c| {
        c.http = Some(HttpConfig { token: Some(TOKEN.into()), ..HttpConfig::local("127.0.0.1:0".parse().unwrap()) });
    })
    .await;
    let http = b.broker.http_addr().expect("the HTTP listener is on");
    (b, http)
}

fn bearer() -> Option<String> {
    Some(format!("Bearer {TOKEN}"))
}

async fn get_json(http: SocketAddr, path: &str) -> Value {
    common::get_json(http, path, TOKEN).await
}

fn sample(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: unexpected {other:?}"),
    }
}

#[tokio::test]
async fn requests_without_the_token_are_refused() {
    let (b, http) = broker().await;
    for path in ["/metrics", "/api/clients", "/api/store"] {
        assert_eq!(request(http, "GET", path, None).await.0, 401, "{path}");
        assert_eq!(request(http, "GET", path, Some("Bearer wrong".into())).await.0, 401, "{path}");
    }
    assert_eq!(request(http, "DELETE", "/api/sessions/x", None).await.0, 401);
    assert_eq!(request(http, "GET", "/api/nothing", bearer()).await.0, 404);
    b.shutdown().await;
}

#[tokio::test]
async fn basic_authentication_is_checked() {
    let b = TestBroker::start_with(|c| {
        let basic = Some(("admin".into(), "pw".into()));
        c.http = Some(HttpConfig { basic, ..HttpConfig::local("127.0.0.1:0".parse().unwrap()) });
    })
    .await;
    let http = b.broker.http_addr().unwrap();
    // base64("admin:pw"), base64("admin:px")
    assert_eq!(request(http, "GET", "/api/store", Some("Basic YWRtaW46cHc=".into())).await.0, 200);
    assert_eq!(request(http, "GET", "/api/store", Some("Basic YWRtaW46cHg=".into())).await.0, 401);
    assert_eq!(request(http, "GET", "/api/store", None).await.0, 401);
    b.shutdown().await;
}

#[tokio::test]
async fn metrics_are_scraped_in_the_prometheus_format() {
    let (b, http) = broker().await;
    let mut sub = Raw::v5(b.addr, "sub").await;
    sub.subscribe(1, &[("t/#", 1)]).await;
    let mut publisher = Raw::v311(b.addr, "pub").await;
    for i in 0..3u16 {
        publisher.publish("t/a", 1, false, i + 1, b"12345").await;
    }
    publisher.publish("t/r", 0, true, 0, b"xy").await;
    for _ in 0..4 {
        sub.receive_acked().await;
    }
    // Refused: a 3.1.1 client with a wrong protocol level.
    let mut bad = Raw::open(b.addr).await;
    let mut connect = connect_packet(&ConnectOpts::new(Proto::V311, "bad"));
    connect[8] = 9; // the protocol level, after the fixed header and "MQTT"
    bad.send(&connect).await;
    let _ = bad.expect_closed("refused CONNECT").await;

    let (status, text) = request(http, "GET", "/metrics", bearer()).await;
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("exposition format");
    assert_eq!(sample(&scrape, "edgemq_messages_received_total", Some(("qos", "1"))), 3.0);
    assert_eq!(sample(&scrape, "edgemq_messages_received_total", Some(("qos", "0"))), 1.0);
    assert_eq!(sample(&scrape, "edgemq_bytes_received_total", Some(("qos", "1"))), 15.0);
    assert_eq!(sample(&scrape, "edgemq_messages_sent_total", Some(("qos", "1"))), 3.0);
    assert_eq!(sample(&scrape, "edgemq_messages_sent_total", Some(("qos", "0"))), 1.0);
    assert_eq!(sample(&scrape, "edgemq_bytes_sent_total", Some(("qos", "1"))), 15.0);
    assert_eq!(sample(&scrape, "edgemq_deliveries_total", None), 4.0);
    assert_eq!(sample(&scrape, "edgemq_sessions_online", None), 2.0);
    assert_eq!(sample(&scrape, "edgemq_retained_messages", None), 1.0);
    assert_eq!(sample(&scrape, "edgemq_subscriptions", None), 1.0);
    assert_eq!(sample(&scrape, "edgemq_connects_refused_total", Some(("reason", "protocol_version"))), 1.0);
    let url = format!("mqtt://{}", b.addr);
    assert_eq!(sample(&scrape, "edgemq_listener_connections_accepted_total", Some(("listener", &url))), 3.0);
    // The refused one may still be lingering (closing).
    assert!(sample(&scrape, "edgemq_listener_connections_open", Some(("listener", &url))) >= 2.0);
    assert!(sample(&scrape, "edgemq_store_appends_total", None) > 0.0);
    let hist = scrape.samples.iter().find(|s| s.metric == "edgemq_store_sync_seconds").expect("sync histogram");
    assert!(matches!(hist.value, prometheus_parse::Value::Histogram(_)), "{hist:?}");
    b.shutdown().await;
}

#[tokio::test]
async fn clients_are_listed_and_disconnected_with_0x98() {
    let (b, http) = broker().await;
    let mut c5 = Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, "dev/5").keep_alive(30)).await.0;
    c5.subscribe(1, &[("a", 1)]).await;
    let mut publisher = Raw::v311(b.addr, "pub").await;
    publisher.publish("keep/me", 0, true, 0, b"r").await;
    publisher.publish("drop/me", 0, true, 0, b"r").await;

    let v = get_json(http, "/api/clients").await;
    let c = v["items"].as_array().unwrap().iter().find(|c| c["client_id"] == "dev/5").expect("listed").clone();
    assert_eq!(c["protocol"], "5.0");
    assert_eq!(c["keep_alive"], 30);
    assert_eq!(c["listener"], format!("mqtt://{}", b.addr));
    assert!(c["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(v["next"], Value::Null);
    let subs = get_json(http, "/api/subscriptions").await;
    let s = subs["items"].as_array().unwrap().iter().find(|s| s["client_id"] == "dev/5").unwrap().clone();
    assert_eq!(s["subscriptions"][0]["filter"], "a");
    let retained = get_json(http, "/api/retained?limit=1").await;
    assert_eq!((retained["items"][0]["topic"].as_str(), retained["next"].as_str()), (Some("drop/me"), Some("drop/me")));
    assert_eq!(get_json(http, "/api/listeners").await["items"][0]["open"], 2);
    assert_eq!(get_json(http, "/api/store").await["healthy"], true);

    // [MQTT-3.14.2-1]-style server DISCONNECT with reason 0x98.
    assert_eq!(request(http, "DELETE", "/api/clients/dev%2F5", bearer()).await.0, 200);
    let seen = c5.expect_closed("disconnect by the admin API").await;
    assert_v5_disconnect(&seen, 0x98, "admin disconnect");
    assert_eq!(request(http, "DELETE", "/api/clients/nobody", bearer()).await.0, 404);
    assert_eq!(request(http, "DELETE", "/api/retained/drop/me", bearer()).await.0, 200);
    let retained = get_json(http, "/api/retained").await;
    let topics: Vec<&str> =
        retained["items"].as_array().unwrap().iter().map(|m| m["topic"].as_str().unwrap()).collect();
    assert_eq!(topics, ["keep/me"]);
    b.shutdown().await;
}

#[tokio::test]
async fn thousands_of_sessions_are_paged_and_deleted() {
    const N: usize = 2_500;
    let (b, http) = broker().await;
    let addr = b.addr;
    // Persistent 3.1.1 sessions left offline, 25 connecting at a time.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..25 {
        tasks.spawn(async move {
            for i in (w..N).step_by(25) {
                let o = ConnectOpts::new(Proto::V311, &format!("s{i:05}")).clean(false);
                Raw::connect(addr, &o).await.0.disconnect().await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("session task");
    }
    let mut seen = Vec::new();
    let mut path = "/api/sessions?limit=100".to_owned();
    loop {
        let v = get_json(http, &path).await;
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 100);
        seen.extend(items.iter().map(|s| s["client_id"].as_str().unwrap().to_owned()));
        match v["next"].as_str() {
            Some(next) => path = format!("/api/sessions?limit=100&after={next}"),
            None => break,
        }
    }
    let want: Vec<String> = (0..N).map(|i| format!("s{i:05}")).collect();
    assert_eq!(seen, want, "every session once, in order");
    let one = get_json(http, "/api/sessions?limit=1").await;
    assert_eq!(one["items"][0]["online"], false);
    assert_eq!(one["items"][0]["queued_messages"], 0);
    assert_eq!(request(http, "DELETE", "/api/sessions/s00000", bearer()).await.0, 200);
    assert_eq!(get_json(http, "/api/sessions?limit=1").await["items"][0]["client_id"], "s00001");
    b.shutdown().await;
}

/// The sample of `name` with every label of `labels`.
fn sample_with(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match s.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
        ref other => panic!("{name}: unexpected {other:?}"),
    }
}

/// A bridge's figures in `/metrics` (labelled with its name) and in
/// `GET /api/bridges`: connected, messages each way, connection failures
/// (its first address is dead, tried first), queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_figures_are_in_the_metrics_and_the_api() {
    use common::bridge::*;
    let cloud = TestBroker::start().await;
    let dead = format!("127.0.0.1:{}", free_port());
    let b = bridge("up", &[dead, cloud.addr.to_string()], &["s/# out 1", "c/# in 1 edge/ site1/"], "");
    let edge = TestBroker::start_with(|c| {
        c.bridges = vec![b];
        c.http = Some(HttpConfig { token: Some(TOKEN.into()), ..HttpConfig::local("127.0.0.1:0".parse().unwrap()) });
    })
    .await;
    let http = edge.broker.http_addr().unwrap();
    let mut cloud_sub = V4Client::simple(cloud.addr, "cloud-sub").await;
    cloud_sub.subscribe("s/#", rumqttc::QoS::AtLeastOnce).await;
    publish_numbered(edge.addr, "s/1", 0, 20).await;
    receive_numbered(&mut cloud_sub, 20, std::time::Duration::from_secs(20)).await;
    let mut edge_sub = V4Client::simple(edge.addr, "edge-sub").await;
    edge_sub.subscribe("edge/c/#", rumqttc::QoS::AtLeastOnce).await;
    let cloud_pub = V4Client::simple(cloud.addr, "cloud-pub").await;
    probe_until_carried("the in rule", &cloud_pub, "site1/c/x", &mut edge_sub, 200).await;
    // The cloud's PUBACKs may trail the subscriber's copies a moment.
    let scrape = within("20 forwarded in /metrics", async {
        loop {
            let (status, text) = request(http, "GET", "/metrics", bearer()).await;
            assert_eq!(status, 200);
            let scrape =
                prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("exposition format");
            let out = [("bridge", "up"), ("direction", "out"), ("outcome", "forwarded")];
            if sample_with(&scrape, "edgemq_bridge_messages_total", &out) == 20.0 {
                return scrape;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let up = [("bridge", "up")];
    let m = |name: &str, labels: &[(&str, &str)]| sample_with(&scrape, name, labels);
    assert_eq!(m("edgemq_bridge_connected", &up), 1.0);
    assert_eq!(m("edgemq_bridge_queued_messages", &up), 0.0);
    assert_eq!(m("edgemq_bridge_reconnects_total", &up), 0.0, "connected once");
    assert!(m("edgemq_bridge_connect_failures_total", &up) >= 1.0, "the dead address");
    let series = |d, o| [("bridge", "up"), ("direction", d), ("outcome", o)];
    assert!(m("edgemq_bridge_messages_total", &series("in", "forwarded")) >= 1.0, "the probes came home");
    for (d, o) in [("out", "dropped"), ("out", "rejected"), ("in", "dropped")] {
        assert_eq!(m("edgemq_bridge_messages_total", &series(d, o)), 0.0, "{d} {o}");
    }
    let v = get_json(http, "/api/bridges").await;
    let b = &v[0];
    assert_eq!(
        (b["forwarded"].as_u64(), b["reconnects"].as_u64(), b["in_dropped"].as_u64()),
        (Some(20), Some(0), Some(0)),
        "{v}"
    );
    assert!(b["in_forwarded"].as_u64() >= Some(1) && b["connect_failures"].as_u64() >= Some(1), "{v}");
    edge.shutdown().await;
    cloud.shutdown().await;
}
