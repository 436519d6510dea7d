//! WebSocket listeners (`protocol = "ws"` and `"wss"`, MQTT 5.0 and
//! 3.1.1 section 6): the `mqtt` subprotocol, packets split over frames and
//! several in one frame, text frames refused, WebSocket over TLS, and
//! MQTT.js (the browser and Node.js client) where Node.js and its `mqtt`
//! package are installed.

mod certs;
mod common;

use std::process::Stdio;

use certs::*;
use common::*;
use edgemq::config::{ListenerConfig, ListenerProtocol};
use edgemq::server::ws::WsStream;
use futures_util::{SinkExt, StreamExt};
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

fn ws_listener() -> ListenerConfig {
    ListenerConfig { protocol: ListenerProtocol::Ws, ..ListenerConfig::tcp("127.0.0.1:0".parse().unwrap()) }
}

/// A WebSocket client over `stream` asking for `subprotocol`; the
/// WebSocket and the subprotocol the broker chose.
async fn ws_client<S>(
    stream: S,
    url: &str,
    subprotocol: Option<&str>,
) -> Result<(WebSocketStream<S>, Option<String>), tokio_tungstenite::tungstenite::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = subprotocol {
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    let (ws, resp) = within("WebSocket upgrade", tokio_tungstenite::client_async(req, stream)).await?;
    let chosen = resp.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok((ws, chosen))
}

async fn ws_open(
    b: &TestBroker,
    subprotocol: Option<&str>,
) -> (WebSocketStream<tokio::net::TcpStream>, Option<String>) {
    let tcp = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    ws_client(tcp, &format!("ws://{}/mqtt", b.addr), subprotocol).await.expect("upgrade")
}

/// MQTT 3.1.1 and 5 over `ws`: the broker answers with the `mqtt`
/// subprotocol [MQTT-6.0.0-4] and serves MQTT as over TCP.
#[tokio::test]
async fn mqtt_over_websocket() {
    let b = TestBroker::start_with(|c| c.listeners = vec![ws_listener()]).await;
    assert_eq!(b.broker.urls()[0], format!("ws://{}", b.addr));
    for (proto, offered) in [(Proto::V311, "mqtt"), (Proto::V5, "mqttv3.1, mqtt")] {
        let (ws, chosen) = ws_open(&b, Some(offered)).await;
        assert_eq!(chosen.as_deref(), Some("mqtt"), "offered {offered}");
        let mut c = Raw::over(WsStream::new(ws));
        c.v5 = proto == Proto::V5;
        c.send(&connect_packet(&ConnectOpts::new(proto, "ws-client"))).await;
        assert_eq!(c.expect("CONNACK").await.connack().1, 0);
        assert_eq!(c.subscribe(1, &[("ws/t", 2)]).await, vec![2]);
        c.publish("ws/t", 2, false, 2, b"over ws").await;
        assert_eq!(c.receive_acked().await.payload, b"over ws");
        c.disconnect().await;
    }
    b.shutdown().await;
}

/// A packet may span WebSocket frames and one frame may hold several
/// packets [MQTT-6.0.0-2]; a text frame closes the connection
/// [MQTT-6.0.0-1]; a client offering only other subprotocols is refused at
/// the upgrade.
#[tokio::test]
async fn frames_carry_a_byte_stream_and_text_is_refused() {
    let b = TestBroker::start_with(|c| c.listeners = vec![ws_listener()]).await;
    let (mut ws, _) = ws_open(&b, Some("mqtt")).await;
    let connect = connect_packet(&ConnectOpts::new(Proto::V311, "ws-frames"));
    let (a, rest) = connect.split_at(5);
    ws.send(Message::Binary(a.to_vec().into())).await.unwrap();
    ws.send(Message::Binary(rest.to_vec().into())).await.unwrap();
    let mut two = subscribe_packet(false, 1, &[("f/t", 0)]);
    two.extend(publish_packet(false, "f/t", 0, false, false, 0, b"one frame"));
    ws.send(Message::Binary(two.into())).await.unwrap();
    let mut c = Raw::over(WsStream::new(ws));
    assert_eq!(c.expect("CONNACK").await.connack().1, 0);
    c.expect_kind(SUBACK, "SUBACK").await;
    // The PUBLISH in the same frame as the SUBSCRIBE reached it.
    assert_eq!(c.expect_publish().await.payload, b"one frame");

    let (mut ws, _) = ws_open(&b, None).await;
    ws.send(Message::Binary(connect_packet(&ConnectOpts::new(Proto::V311, "ws-text")).into())).await.unwrap();
    ws.send(Message::Text("SUBSCRIBE".into())).await.unwrap();
    let closed = within("close after a text frame", async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    });
    closed.await;

    let tcp = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let refused = ws_client(tcp, &format!("ws://{}/mqtt", b.addr), Some("chat")).await;
    assert!(refused.is_err(), "a client without the mqtt subprotocol is refused");
    b.shutdown().await;
}

/// `wss`: WebSocket over TLS, served on the same certificate settings as
/// `mqtts`.
#[tokio::test]
async fn websocket_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let l = ListenerConfig { protocol: ListenerProtocol::Wss, ..tls_listener(&f, |_| {}) };
    let b = TestBroker::start_with(|c| c.listeners = vec![l]).await;
    assert_eq!(b.broker.urls()[0], format!("wss://{}", b.addr));
    let tcp = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&f.ca, None, &[&rustls::version::TLS13]));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS");
    let (ws, chosen) = ws_client(tls, &format!("wss://{}/mqtt", b.addr), Some("mqtt")).await.expect("upgrade");
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    let mut c = Raw::over(WsStream::new(ws));
    c.v5 = true;
    c.send(&connect_packet(&ConnectOpts::new(Proto::V5, "wss-client"))).await;
    assert_eq!(c.expect("CONNACK").await.connack().1, 0);
    assert_eq!(c.subscribe(1, &[("wss/t", 1)]).await, vec![1]);
    c.publish("wss/t", 1, true, 2, b"secure").await;
    assert_eq!(c.receive_acked().await.payload, b"secure");
    b.shutdown().await;
}

/// MQTT.js, the client of browser dashboards, over `ws` from Node.js:
/// connects, subscribes, publishes and receives its own message. Skipped
/// (with a line saying so) where `node` or the `mqtt` package is missing
/// (`.ci/run` installs it: `npm ci --prefix tests/npm`), unless
/// `EDGEMQ_REQUIRE_INTEROP=1`.
#[tokio::test]
async fn mqtt_js_over_websocket() {
    let modules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("npm/node_modules");
    let present = modules.join("mqtt").is_dir()
        && std::process::Command::new("node").arg("--version").stdout(Stdio::null()).status().is_ok();
    if !present {
        assert!(std::env::var("EDGEMQ_REQUIRE_INTEROP").as_deref() != Ok("1"), "node or MQTT.js missing");
        println!("SKIPPED: node or the mqtt npm package (tests/npm) not found");
        return;
    }
    let b = TestBroker::start_with(|c| c.listeners = vec![ws_listener()]).await;
    let script = r#"
        const mqtt = require("mqtt");
        const c = mqtt.connect(process.argv[1], { protocolVersion: Number(process.argv[2]), clientId: "mqttjs" });
        c.on("connect", () => c.subscribe("js/t", { qos: 1 }, (e) => e ? process.exit(3) : c.publish("js/t", "from mqtt.js", { qos: 1 })));
        c.on("message", (t, m) => { console.log(t + "|" + m); c.end(); });
        c.on("error", (e) => { console.error(e); process.exit(2); });
        setTimeout(() => process.exit(4), 4000).unref();
    "#;
    for version in ["4", "5"] {
        let out = tokio::process::Command::new("node")
            .args(["-e", script, &format!("ws://{}/mqtt", b.addr), version])
            .env("NODE_PATH", &modules)
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output();
        let out = within("MQTT.js", out).await.expect("node runs");
        assert!(out.status.success(), "MQTT.js (protocol {version}): {:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "js/t|from mqtt.js");
    }
    b.shutdown().await;
}

/// MQTT.js in headless Debian Chromium (the browser dashboard's case): a
/// page loads the MQTT.js browser bundle, connects over `ws` with MQTT 5,
/// subscribes, publishes and shows its own message, read back by
/// puppeteer-core driving the system's chromium. Skipped (with a line saying so) where `chromium` or the
/// `mqtt` package is missing, unless `EDGEMQ_REQUIRE_INTEROP=1`.
#[tokio::test]
async fn mqtt_js_in_chromium() {
    let Some(browser) = Browser::find(&["mqtt/dist/mqtt.min.js"]) else { return };
    let bundle = browser.modules.join("mqtt/dist/mqtt.min.js");
    let b = TestBroker::start_with(|c| c.listeners = vec![ws_listener()]).await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    let html = format!(
        r#"<!doctype html><html><body><div id="out">waiting</div>
<script src="file://{bundle}"></script>
<script>
const out = document.getElementById("out");
const c = mqtt.connect("ws://{addr}/mqtt", {{ clientId: "chromium", protocolVersion: 5 }});
c.on("connect", () => c.subscribe("web/t", {{ qos: 1 }}, () => c.publish("web/t", "from chromium", {{ qos: 1 }})));
c.on("message", (t, m) => {{ out.textContent = "got " + t + "|" + m; c.end(); }});
c.on("error", (e) => {{ out.textContent = "error " + e; }});
</script></body></html>"#,
        bundle = bundle.display(),
        addr = b.addr
    );
    std::fs::write(&page, html).unwrap();
    // Driven by puppeteer-core (tests/npm) on Debian's chromium: it waits
    // for the page's result, where --dump-dom would read it too early.
    let driver = r##"
        const puppeteer = require("puppeteer-core");
        (async () => {
            const browser = await puppeteer.launch({ executablePath: process.argv[1], headless: true,
                args: ["--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"] });
            const page = await browser.newPage();
            await page.goto("file://" + process.argv[2]);
            await page.waitForFunction(() => document.getElementById("out").textContent !== "waiting", { timeout: 20000 });
            console.log(await page.$eval("#out", (e) => e.textContent));
            await browser.close();
        })().catch((e) => { console.error(e); process.exit(2); });
    "##;
    let out = browser.drive(driver, &[page.to_str().unwrap()], std::time::Duration::from_secs(60)).await;
    assert_eq!(out.trim(), "got web/t|from chromium");
    b.shutdown().await;
}
