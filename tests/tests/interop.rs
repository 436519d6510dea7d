//! Interoperability with the Mosquitto command-line clients
//! (`mosquitto_pub`, `mosquitto_sub`, Debian package mosquitto-clients).
//!
//! If they are not installed the tests print `SKIPPED: ...` and pass,
//! unless `EDGEMQ_REQUIRE_INTEROP=1` is set, in which case they fail.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Whether the Mosquitto tools can be run here.
fn tools_present() -> bool {
    for tool in ["mosquitto_pub", "mosquitto_sub"] {
        let found =
            std::process::Command::new(tool).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !found {
            if std::env::var("EDGEMQ_REQUIRE_INTEROP").as_deref() == Ok("1") {
                panic!("{tool} not found and EDGEMQ_REQUIRE_INTEROP=1");
            }
            println!("SKIPPED: {tool} not found");
            return false;
        }
    }
    true
}

/// A running mosquitto_sub whose stdout is read line by line.
struct Sub {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Sub {
    /// Starts `mosquitto_sub` against the broker with `args` (a `-W`
    /// safety timeout is added).
    fn spawn(b: &TestBroker, args: &[&str]) -> Sub {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &b.port().to_string(), "-W", "15"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mosquitto_sub");
        let stdout = child.stdout.take().expect("stdout");
        Sub { child, lines: BufReader::new(stdout).lines() }
    }

    async fn line(&mut self) -> Option<String> {
        within("a line from mosquitto_sub", self.lines.next_line()).await.expect("read mosquitto_sub output")
    }

    /// Publishes QoS 0 probes to `topic` until mosquitto_sub prints
    /// `probe_line` (its subscription is then active), so the test does not
    /// depend on timing.
    async fn wait_subscribed(&mut self, b: &TestBroker, topic: &str, probe_line: &str) {
        let mut p = Raw::v311(b.addr, "interop-prober").await;
        within("mosquitto_sub to subscribe", async {
            loop {
                p.publish(topic, 0, false, 0, b"probe").await;
                match tokio::time::timeout(Duration::from_millis(200), self.lines.next_line()).await {
                    Ok(Ok(Some(l))) if l == probe_line => return,
                    Ok(Ok(Some(l))) => panic!("unexpected mosquitto_sub output before subscribing: {l:?}"),
                    Ok(Ok(None)) | Ok(Err(_)) => panic!("mosquitto_sub exited before subscribing"),
                    Err(_) => {}
                }
            }
        })
        .await;
        p.disconnect().await;
    }

    /// Reads lines until `n` non-probe lines have been collected.
    async fn collect(&mut self, n: usize, is_probe: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.line().await {
                Some(l) if is_probe(&l) => {}
                Some(l) => out.push(l),
                None => panic!("mosquitto_sub exited after {} of {n} lines: {out:?}", out.len()),
            }
        }
        out
    }

    async fn finish(mut self) -> std::process::ExitStatus {
        within("mosquitto_sub to exit", self.child.wait()).await.expect("wait mosquitto_sub")
    }
}

/// Runs mosquitto_pub to completion and asserts it succeeded.
async fn mosquitto_pub(b: &TestBroker, args: &[&str], stdin: Option<String>) {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &b.port().to_string()])
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mosquitto_pub");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(input.as_bytes()).await.expect("write mosquitto_pub stdin");
        drop(w);
    }
    let out = within("mosquitto_pub", child.wait_with_output()).await.expect("mosquitto_pub runs");
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

const FMT: &str = "%t|%q|%r|%p";

#[tokio::test]
async fn mosquitto_qos_levels() {
    if !tools_present() {
        return;
    }
    let b = TestBroker::start().await;
    let mut sub = Sub::spawn(&b, &["-q", "2", "-t", "it/#", "-F", FMT]);
    sub.wait_subscribed(&b, "it/probe", "it/probe|0|0|probe").await;
    for q in ["0", "1", "2"] {
        mosquitto_pub(&b, &["-q", q, "-t", &format!("it/q{q}"), "-m", &format!("hello q{q}")], None).await;
    }
    let got = sub.collect(3, |l| l.starts_with("it/probe|")).await;
    assert_eq!(got, vec!["it/q0|0|0|hello q0", "it/q1|1|0|hello q1", "it/q2|2|0|hello q2"]);
    drop(sub);
    // Messages from Mosquitto reach a raw client too, at each QoS.
    let mut raw = Raw::v311(b.addr, "it-raw").await;
    raw.subscribe(1, &[("it/raw", 2)]).await;
    for q in 0..3u8 {
        mosquitto_pub(&b, &["-q", &q.to_string(), "-t", "it/raw", "-m", "x"], None).await;
        let m = raw.receive_acked().await;
        assert_eq!((m.qos, &m.payload[..]), (q, &b"x"[..]));
    }
    b.shutdown().await;
}

#[tokio::test]
async fn mosquitto_retained() {
    if !tools_present() {
        return;
    }
    let b = TestBroker::start().await;
    mosquitto_pub(&b, &["-r", "-q", "1", "-t", "it/ret", "-m", "kept"], None).await;
    let mut sub = Sub::spawn(&b, &["-t", "it/ret", "-C", "1", "-F", FMT]);
    assert_eq!(sub.line().await.as_deref(), Some("it/ret|0|1|kept"), "retained on subscribe [MQTT-3.3.1-8]");
    assert!(sub.finish().await.success());
    // `-r -n`: an empty retained message deletes it [MQTT-3.3.1-10].
    mosquitto_pub(&b, &["-r", "-q", "1", "-t", "it/ret", "-n"], None).await;
    let mut raw = Raw::v311(b.addr, "it-ret-raw").await;
    raw.subscribe(1, &[("it/ret", 1)]).await;
    raw.expect_silence("retained message deleted by mosquitto_pub -r -n").await;
    b.shutdown().await;
}

/// `mosquitto_sub -c -i dev1 -q 1`: messages published while it is stopped
/// are delivered, all and in order, when it restarts.
#[tokio::test]
async fn mosquitto_persistent_offline_queue() {
    if !tools_present() {
        return;
    }
    const N: usize = 100;
    let b = TestBroker::start().await;
    let args = ["-c", "-i", "dev1", "-q", "1", "-t", "it/queue", "-F", "%p"];
    let mut sub = Sub::spawn(&b, &[&args[..], &["-C", "1"]].concat());
    // Its first message ends it (-C 1): a clean DISCONNECT, session kept.
    sub.wait_subscribed(&b, "it/queue", "probe").await;
    assert!(sub.finish().await.success());

    let input: String = (0..N).map(|i| format!("msg {i:03}\n")).collect();
    mosquitto_pub(&b, &["-q", "1", "-t", "it/queue", "-l"], Some(input)).await;

    let mut sub = Sub::spawn(&b, &[&args[..], &["-C", &N.to_string()]].concat());
    let got = sub.collect(N, |l| l == "probe").await;
    let want: Vec<String> = (0..N).map(|i| format!("msg {i:03}")).collect();
    assert_eq!(got, want, "offline QoS 1 messages for a persistent mosquitto_sub, in order");
    assert!(sub.finish().await.success());
    b.shutdown().await;
}

#[tokio::test]
async fn mosquitto_protocol_versions() {
    if !tools_present() {
        return;
    }
    let b = TestBroker::start().await;
    for v in ["mqttv31", "mqttv311", "mqttv5"] {
        let topic = format!("it/ver/{v}");
        let mut sub = Sub::spawn(&b, &["-V", v, "-q", "1", "-t", &topic, "-F", FMT]);
        sub.wait_subscribed(&b, &topic, &format!("{topic}|0|0|probe")).await;
        mosquitto_pub(&b, &["-V", v, "-q", "1", "-t", &topic, "-m", v], None).await;
        let got = sub.collect(1, |l| l.ends_with("|probe")).await;
        assert_eq!(got, vec![format!("{topic}|1|0|{v}")], "protocol {v}");
    }
    // Across versions: a 3.1 publisher to a v5 subscriber and back.
    let mut sub = Sub::spawn(&b, &["-V", "mqttv5", "-q", "2", "-t", "it/x/#", "-F", FMT]);
    sub.wait_subscribed(&b, "it/x/probe", "it/x/probe|0|0|probe").await;
    // One at a time: libmosquitto hands a QoS 2 message to the application
    // only when its PUBREL arrives, so a QoS 1 message sent to the client
    // before that PUBREL is printed first (ARCHITECTURE.md, "QoS and
    // ordering"); the order on the wire is tested elsewhere.
    mosquitto_pub(&b, &["-V", "mqttv31", "-q", "2", "-t", "it/x/a", "-m", "from31"], None).await;
    assert_eq!(sub.collect(1, |l| l.ends_with("|probe")).await, vec!["it/x/a|2|0|from31"]);
    mosquitto_pub(&b, &["-V", "mqttv311", "-q", "1", "-t", "it/x/b", "-m", "from311"], None).await;
    assert_eq!(sub.collect(1, |l| l.ends_with("|probe")).await, vec!["it/x/b|1|0|from311"]);
    b.shutdown().await;
}

/// MQTT 5 user properties from `mosquitto_pub -D publish user-property`
/// reach `mosquitto_sub -F %P` and a raw client, in order
/// [MQTT-3.3.2-18]: forwarded unaltered, order maintained.
#[tokio::test]
async fn mosquitto_v5_user_properties() {
    if !tools_present() {
        return;
    }
    let b = TestBroker::start().await;
    let mut raw = Raw::v5(b.addr, "it-up-raw").await;
    raw.subscribe(1, &[("it/up", 1)]).await;
    let mut sub = Sub::spawn(&b, &["-V", "mqttv5", "-t", "it/up", "-F", "%P|%p"]);
    sub.wait_subscribed(&b, "it/up", "|probe").await;
    mosquitto_pub(
        &b,
        &[
            "-V",
            "mqttv5",
            "-t",
            "it/up",
            "-m",
            "props",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-D",
            "publish",
            "user-property",
            "second",
            "2",
        ],
        None,
    )
    .await;
    let line = sub.collect(1, |l| l == "|probe").await.remove(0);
    let first = line.find("k:v").unwrap_or_else(|| panic!("user property k:v missing in {line:?}"));
    let second = line.find("second:2").unwrap_or_else(|| panic!("user property second:2 missing in {line:?}"));
    assert!(first < second, "user property order not kept: {line:?}");
    assert!(line.ends_with("|props"), "{line:?}");

    // The probe from the raw prober arrives first at the raw client.
    loop {
        let m = raw.receive_acked().await;
        if m.payload == b"props" {
            assert_eq!(
                user_props(&m.props),
                vec![("k".to_string(), "v".to_string()), ("second".to_string(), "2".to_string())],
                "[MQTT-3.3.2-18]"
            );
            break;
        }
        assert_eq!(m.payload, b"probe");
    }
    b.shutdown().await;
}
