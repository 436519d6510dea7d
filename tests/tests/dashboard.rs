//! The dashboard (`GET /` on the HTTP listener) end to end: its assets are
//! served without credentials and hold no data, the live figures need the
//! token (`/api/overview`, and `/api/events`, a `text/event-stream` read
//! here over a plain socket), and in headless Debian chromium (through
//! puppeteer-core, `tests/npm`) the page, given the token in the URL's
//! fragment or typed into its form, shows the numbers the JSON API gives:
//! traffic, connections, an offline backlog per session and its drops,
//! and its search. Screenshots are saved as `target/dashboard.png` (the
//! page compared) and `target/dashboard-live.png` (with messages flowing).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use edgemq::http::HttpConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "dash-t0ken";

async fn broker() -> (TestBroker, SocketAddr) {
    let b = TestBroker::start_with(|c| {
        c.http = Some(HttpConfig { token: Some(TOKEN.into()), ..HttpConfig::local("127.0.0.1:0".parse().unwrap()) });
        c.max_queued_messages = 5;
    })
    .await;
    let http = b.broker.http_addr().expect("the HTTP listener is on");
    (b, http)
}

/// Two offline persistent sessions with a backlog (`gw-a` past its
/// `max_queued_messages`: 3 dropped), an online subscriber that received
/// everything, a client without subscriptions, and the publisher. Returns
/// the clients that stay connected.
async fn traffic(addr: SocketAddr) -> Vec<Raw> {
    for (id, filter) in [("gw-a", "plant/#"), ("gw-b", "plant/line2/#")] {
        let mut c = Raw::connect(addr, &ConnectOpts::new(Proto::V311, id).clean(false)).await.0;
        c.subscribe(1, &[(filter, 1)]).await;
        c.disconnect().await;
    }
    let mut online = Raw::v5(addr, "gw-online").await;
    online.subscribe(1, &[("plant/#", 1)]).await;
    let sensor = Raw::v311(addr, "sensor-9").await;
    let mut publisher = Raw::v311(addr, "pub").await;
    for i in 0..8u16 {
        let line = if i % 2 == 0 { "line1" } else { "line2" };
        publisher.publish(&format!("plant/{line}/t"), 1, false, i + 1, b"21.5").await;
    }
    // Not queued for the offline sessions (queue_qos0_messages is off).
    publisher.publish("plant/line1/t", 0, false, 0, b"q0").await;
    publisher.publish("status/pub", 1, true, 9, b"up").await;
    for _ in 0..9 {
        online.receive_acked().await;
    }
    vec![online, sensor, publisher]
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// The overview once the drivers have counted what they sent (they add
/// their counts once per turn, after the write).
async fn settled_overview(http: SocketAddr) -> Value {
    within("the sent counters", async {
        loop {
            let o = get_json(http, "/api/overview", TOKEN).await;
            if o["messages"]["sent"] == 9 {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The figures the scenario makes, as the API gives them.
fn assert_scenario(o: &Value) {
    let want = [
        ("messages.received", 10),
        ("messages.sent", 9),
        ("connections.open", 3),
        ("sessions.total", 5),
        ("sessions.online", 3),
        ("sessions.offline", 2),
        ("queues.messages", 9),
        ("queues.inflight", 0),
        ("drops.queue_full", 3),
        ("drops.offline_qos0", 1),
        ("drops.too_large", 0),
        ("retained.messages", 1),
    ];
    for (k, v) in want {
        assert_eq!(at(o, k), v, "{k} in {o}");
    }
    assert_eq!(o["store"]["healthy"], true);
    assert!(at(o, "store.log_bytes").as_u64().unwrap() > 0);
}

#[tokio::test]
async fn the_page_is_served_and_the_figures_need_the_token() {
    let (b, http) = broker().await;
    for path in ["/", "/dashboard", "/dashboard.js", "/dashboard.css"] {
        let (status, body) = request(http, "GET", path, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains("http://") && !body.contains("https://"), "{path}: nothing from elsewhere");
    }
    assert!(request(http, "GET", "/", None).await.1.contains("/dashboard.js"));
    for path in ["/api/overview", "/api/events"] {
        assert_eq!(request(http, "GET", path, None).await.0, 401, "{path}");
    }
    let _clients = traffic(b.addr).await;
    assert_scenario(&settled_overview(http).await);

    // The event stream, read as any SSE client would.
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    let req = format!("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let text = within("two events", async {
        loop {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream stays open");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if text.matches("event: overview\n").count() >= 2 {
                return text;
            }
        }
    })
    .await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
    let data: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("an event's data is JSON"))
        .collect();
    assert!(data.len() >= 2);
    assert!(body.contains("retry: 1000\n"));
    assert_scenario(&data[1]);
    b.shutdown().await;
}

/// Where the screenshot goes: the workspace's target directory.
fn screenshot_path() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&target).unwrap();
    target.join("dashboard.png")
}

/// What both drivers start with: their arguments, `open(url)` (chromium,
/// headless, a page on `url`) and `run` (exit code 2 on any error).
const PRELUDE: &str = r##"
const puppeteer = require("puppeteer-core");
const [chromium, base, token, shot] = process.argv.slice(1);
async function open(url) {
  const browser = await puppeteer.launch({ executablePath: chromium, headless: true,
    args: ["--no-sandbox", "--disable-gpu"] });
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1000 });
  await page.goto(url);
  return [browser, page];
}
function run(f) { f().catch((e) => { console.error(e); process.exit(2); }); }
"##;

/// Opens the page with the token in its fragment, waits for its live
/// figures and tables, searches for `gw-`, reads what it shows and saves
/// a screenshot; then opens it in a new tab without the token, where the
/// form asks for it.
const DRIVER: &str = r##"
run(async () => {
  const [browser, page] = await open(base + "/#token=" + token);
  const body = (k) => `Number(document.body.dataset.${k})`;
  await page.waitForFunction(`${body("events")} >= 3 && ${body("tables")} >= 1`, { timeout: 20000 });
  await page.type("#search", "gw-");
  await page.waitForFunction(`document.body.dataset.search === "gw-"`, { timeout: 20000 });
  const shown = await page.evaluate(() => {
    const values = {};
    for (const el of document.querySelectorAll("[data-k]")) values[el.dataset.k] = { text: el.textContent, raw: el.dataset.v };
    const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) => [...tr.cells].map((c) => c.textContent));
    return { values, sessions: rows("sessions"), clients: rows("clients"), status: document.querySelector("#status").textContent,
      health: document.querySelector("#store-health").textContent, rateIn: document.querySelector("#rate-in").textContent,
      hash: location.hash };
  });
  await page.screenshot({ path: shot, fullPage: true });
  const second = await browser.newPage();
  await second.goto(base + "/");
  await second.waitForFunction(`!document.querySelector("#login").hidden`, { timeout: 20000 });
  await second.type("#token", token);
  await second.click("#login button");
  await second.waitForFunction(`${body("events")} >= 1`, { timeout: 20000 });
  shown.afterLogin = await second.$eval("[data-k='queues.messages']", (e) => e.textContent);
  console.log(JSON.stringify(shown));
  await browser.close();
});
"##;

/// The page under a stream of messages: waits for a few events, saves
/// a screenshot with its rates drawn and prints the rate in.
const LIVE_DRIVER: &str = r##"
run(async () => {
  const [browser, page] = await open(base + "/#token=" + token);
  await page.waitForFunction(`Number(document.body.dataset.events) >= 5`, { timeout: 20000 });
  await page.screenshot({ path: shot, fullPage: true });
  console.log(await page.$eval("#rate-in", (e) => e.textContent));
  await browser.close();
});
"##;

#[tokio::test]
async fn chromium_shows_the_numbers_of_the_api() {
    let Some(browser) = Browser::find(&[]) else { return };
    let (b, http) = broker().await;
    let _clients = traffic(b.addr).await;
    let before = settled_overview(http).await;
    assert_scenario(&before);
    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    let base = format!("http://{http}");
    let out = browser
        .drive(&format!("{PRELUDE}{DRIVER}"), &[&base, TOKEN, shot.to_str().unwrap()], Duration::from_secs(90))
        .await;
    let shown: Value = serde_json::from_str(out.trim()).expect("the driver's JSON");
    let o = get_json(http, "/api/overview", TOKEN).await;

    assert_eq!(shown["status"], "live");
    assert_eq!(shown["hash"], "", "the token is taken out of the address bar");
    assert_eq!(shown["health"], "healthy");
    // Nothing moved since the traffic: the page's rate is 0.
    assert_eq!(shown["rateIn"], "0.0");
    // Every count shown is the API's (integers shown with separators);
    // byte and second figures carry the exact value beside the text.
    let values = shown["values"].as_object().unwrap();
    assert!(values.len() >= 20, "{values:?}");
    for (k, v) in values {
        let api = at(&o, k);
        if api.is_number() {
            assert_eq!(v["raw"].as_str().unwrap(), api.to_string(), "{k}");
        }
        if api.is_u64() && !k.ends_with("bytes") {
            assert_eq!(v["text"].as_str().unwrap().replace(',', ""), api.to_string(), "{k} as shown");
        }
    }
    assert_eq!(values["version"]["text"], env!("CARGO_PKG_VERSION"));
    assert_eq!(values["queues.messages"]["text"], "9");
    assert_eq!(values["drops.queue_full"]["text"], "3");
    assert_eq!(values["sessions.offline"]["text"], "2");

    // The tables, searched for "gw-", are the API's pages with that prefix.
    let api_sessions = get_json(http, "/api/sessions?prefix=gw-", TOKEN).await;
    let sessions = shown["sessions"].as_array().unwrap();
    let api_items = api_sessions["items"].as_array().unwrap();
    assert_eq!(sessions.len(), api_items.len());
    for (row, s) in sessions.iter().zip(api_items) {
        assert_eq!(row[0], s["client_id"]);
        assert_eq!(row[1], if s["online"] == true { "online" } else { "offline" });
        assert_eq!(row[2].as_str().unwrap(), s["queued_messages"].to_string());
        // The backlog's age is shown where there is one.
        assert_eq!(row[4] == "-", s["oldest_queued_age_secs"].is_null(), "{row}");
    }
    let ids_queued: Vec<(&str, &str)> =
        sessions.iter().map(|r| (r[0].as_str().unwrap(), r[2].as_str().unwrap())).collect();
    assert_eq!(ids_queued, [("gw-a", "5"), ("gw-b", "4"), ("gw-online", "0")]);
    assert!(!api_items[0]["oldest_queued_age_secs"].is_null(), "an offline backlog has an age");
    let clients = shown["clients"].as_array().unwrap();
    let api_clients = get_json(http, "/api/clients?prefix=gw-", TOKEN).await;
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0][0], "gw-online");
    assert_eq!(clients[0][2], api_clients["items"][0]["address"]);
    assert_eq!(clients[0][4], "5.0");

    assert_eq!(shown["afterLogin"], "9", "the token typed into the form");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert_eq!(&png[..4], b"\x89PNG");
    println!("screenshot: {}", shot.display());

    // With messages flowing, a second screenshot shows the rates.
    let addr = b.addr;
    let flow = tokio::spawn(async move {
        let mut p = Raw::v311(addr, "flow").await;
        loop {
            p.publish("plant/line1/t", 0, false, 0, b"live").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let live = shot.with_file_name("dashboard-live.png");
    let rate = browser
        .drive(&format!("{PRELUDE}{LIVE_DRIVER}"), &[&base, TOKEN, live.to_str().unwrap()], Duration::from_secs(60))
        .await;
    flow.abort();
    assert!(rate.trim().replace(',', "").parse::<f64>().is_ok(), "a rate is shown: {rate}");
    println!("screenshot with traffic: {}", live.display());
    b.shutdown().await;
}
