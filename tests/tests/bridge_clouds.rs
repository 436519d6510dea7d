//! The bridge into brokers users already run, started here from Debian's
//! packages on 127.0.0.1, each in a temporary directory of its own (no
//! system service, no fixed port):
//! - RabbitMQ (`rabbitmq-server` 3.10 with its MQTT plugin: MQTT 3.1.1,
//!   QoS 2 taken as 1) as a two-node cluster on this machine; the
//!   readings reach an AMQP 0-9-1 consumer (`tests/amqp_consumer.py`,
//!   Debian's `python3-pika`) bound to `amq.topic`, and one node is
//!   killed mid-run: the bridge fails over to the other, nothing lost;
//! - ActiveMQ (`activemq` 5.17, its MQTT transport connector): a round
//!   trip both ways, an `out` and an `in` rule;
//! - the whole chain: the demo firmware in QEMU (`qemu-system-arm`,
//!   `lm3s6965evb`) → edgemq → bridge → RabbitMQ → AMQP consumer, with
//!   the uplink cut and the edge restarted mid-run.
//!
//! Skipped with the reason printed unless `EDGEMQ_REQUIRE_RABBITMQ=1` /
//! `EDGEMQ_REQUIRE_ACTIVEMQ=1` / `EDGEMQ_REQUIRE_QEMU=1` (`.ci/clouds`, a step of `.ci/run`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::bridge::*;
use common::*;
use rumqttc::QoS;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const ACTIVEMQ_JAR: &str = "/usr/share/activemq/bin/activemq.jar";
/// The MQTT codec ActiveMQ's connector needs; Debian's `activemq` does
/// not depend on its package (`libmqtt-client-java`).
const MQTT_CLIENT_JARS: [&str; 2] = ["/usr/share/java/mqtt-client.jar", "/usr/share/java/hawtdispatch.jar"];
/// A broker's boot on two busy cores (RabbitMQ takes 10-20 s).
const BOOT: Duration = Duration::from_secs(120);

/// Waits until `log` (a broker's output, appended as it runs) contains
/// `line`; fails with its tail if `child` exits first or `BOOT` passes.
async fn wait_for_line(child: &mut Child, log: &Path, line: &str, what: &str) {
    let deadline = Instant::now() + BOOT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(line) {
            return;
        }
        let tail: String = text.lines().rev().take(20).collect::<Vec<_>>().join("\n");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited ({status}) before `{line}`; last lines, newest first:\n{tail}");
        }
        assert!(Instant::now() < deadline, "{what}: no `{line}` within {BOOT:?}; last lines, newest first:\n{tail}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Spawns a broker with stdin closed and its output appended to `log`,
/// killed when dropped.
trait LoggingTo {
    fn logging_to(&mut self, log: &Path) -> Child;
}

impl LoggingTo for Command {
    fn logging_to(&mut self, log: &Path) -> Child {
        self.stdin(Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::from(std::fs::File::options().append(true).open(log).unwrap()))
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }
}

fn kill(pid: &str, signal: &str) {
    let _ = std::process::Command::new("kill").args([signal, pid]).stderr(Stdio::null()).status();
}

/// One RabbitMQ node of [`Rabbit`].
struct RabbitNode {
    amqp: u16,
    mqtt: u16,
    /// The Erlang VM's pid (the server script waits on it).
    pid_file: PathBuf,
    child: Child,
}

/// A RabbitMQ cluster on this machine: nodes `n0@localhost`, ... with
/// their own ports (AMQP, distribution, MQTT), database and log
/// directories, one Erlang cookie (in `HOME`, the temporary directory)
/// and an `epmd` on a port of their own.
struct Rabbit {
    dir: tempfile::TempDir,
    epmd: u16,
    nodes: Vec<RabbitNode>,
}

impl Rabbit {
    /// Starts `n` nodes, one after the other; each after the first joins
    /// the first (peer discovery `classic_config`: the join at boot,
    /// without `rabbitmqctl` calls that each start an Erlang VM).
    async fn cluster(n: usize) -> Rabbit {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cookie = dir.path().join(".erlang.cookie");
        std::fs::write(&cookie, "edgemq-bridge-test").unwrap();
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).unwrap();
        let mut r = Rabbit { epmd: free_port(), nodes: Vec::new(), dir };
        for i in 0..n {
            let started = Instant::now();
            r.start_node(i).await;
            eprintln!("rabbitmq node n{i} up in {:.1?}", started.elapsed());
        }
        r
    }

    async fn start_node(&mut self, i: usize) {
        let base = self.dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&base).unwrap();
        let (amqp, mqtt) = (free_port(), free_port());
        let mut conf = format!(
            "listeners.tcp.default = 127.0.0.1:{amqp}\nmqtt.listeners.tcp.default = 127.0.0.1:{mqtt}\nmqtt.allow_anonymous = true\n"
        );
        if i > 0 {
            conf += "cluster_formation.peer_discovery_backend = classic_config\ncluster_formation.classic_config.nodes.1 = n0@localhost\n";
        }
        std::fs::write(base.join("rabbitmq.conf"), conf).unwrap();
        // What `rabbitmq-plugins enable --offline rabbitmq_mqtt` writes.
        std::fs::write(base.join("enabled_plugins"), "[rabbitmq_mqtt].\n").unwrap();
        let log = base.join("out.log");
        let pid_file = base.join("pid");
        let mut child = Command::new(RABBITMQ_SERVER)
            .env("HOME", self.dir.path())
            .env("RABBITMQ_NODENAME", format!("n{i}@localhost"))
            .env("RABBITMQ_NODE_PORT", amqp.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("ERL_EPMD_PORT", self.epmd.to_string())
            .env("RABBITMQ_CONFIG_FILE", base.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", base.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", base.join("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", base.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", base.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", base.join("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_PID_FILE", &pid_file)
            .logging_to(&log);
        wait_for_line(&mut child, &log, "Server startup complete", &format!("rabbitmq node n{i}")).await;
        if i > 0 {
            let text = std::fs::read_to_string(&log).unwrap();
            assert!(text.contains("selected for auto-clustering"), "n{i} did not join n0");
        }
        self.nodes.push(RabbitNode { amqp, mqtt, pid_file, child });
    }

    fn mqtt_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].mqtt)
    }

    /// Node `i` dies (SIGKILL to its VM), as in a crash.
    async fn kill_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let pid = std::fs::read_to_string(&node.pid_file).unwrap();
        kill(pid.trim(), "-KILL");
        within("the server script to end", node.child.wait()).await.unwrap();
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        for n in &self.nodes {
            if let Ok(pid) = std::fs::read_to_string(&n.pid_file) {
                kill(pid.trim(), "-KILL");
            }
        }
        // epmd refuses to stop while it has not seen the nodes go.
        for _ in 0..50 {
            let out = std::process::Command::new("epmd").args(["-port", &self.epmd.to_string(), "-kill"]).output();
            match out {
                Ok(o) if !String::from_utf8_lossy(&o.stdout).contains("Killed") => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => return,
            }
        }
    }
}

/// A Python with pika, if there is one (pyenv's `python3` may lack what
/// Debian's `/usr/bin/python3` has).
fn python_with_pika() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import pika"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `tests/amqp_consumer.py` on the node at `port`, its output lines, once
/// it says it is bound.
async fn amqp_consumer(python: &str, port: u16, key: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("amqp_consumer.py");
    let mut child = Command::new(python)
        .arg(script)
        .args([&port.to_string(), key, "60"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    assert_eq!(first.expect("the AMQP consumer to bind").unwrap().as_deref(), Some("ready"));
    (child, lines)
}

/// The readings of a gateway reach an AMQP consumer through a two-node
/// RabbitMQ cluster; the node the bridge is connected to is killed when
/// a third have arrived: the bridge fails over to the other node, every
/// reading arrives, the first copy of each in order (what was in flight
/// to the dead node is sent again, DUP set). Then QoS 2 readings, which
/// RabbitMQ takes at QoS 1, go through too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_cluster_node_lost_mid_run_the_bridge_fails_over_and_nothing_is_lost() {
    const N: u32 = 3000;
    let python = python_with_pika();
    if !have("RABBITMQ", Path::new(RABBITMQ_SERVER).exists(), "rabbitmq-server is not installed")
        || !have("RABBITMQ", python.is_some(), "no python3 with pika (python3-pika)")
    {
        return;
    }
    let started = Instant::now();
    let mut rabbit = Rabbit::cluster(2).await;
    // The queue lives on n0, the node that stays; MQTT topic levels are
    // words of the routing key (`/` becomes `.`).
    let (_consumer, mut lines) = amqp_consumer(python.unwrap(), rabbit.nodes[0].amqp, "site1.sensors.#").await;
    // n1 first: the bridge connects there, and must go to n0 when n1 dies.
    // The rule takes QoS 2: RabbitMQ answers it with PUBACK (QoS 1).
    let up = bridge(
        "cloud",
        &[rabbit.mqtt_addr(1), rabbit.mqtt_addr(0)],
        &["sensors/# out 2 \"\" site1/"],
        "try_private = false",
    );
    let edge = edge_with(vec![up]).await;
    let addr = edge.addr;
    let publisher = tokio::spawn(publish_numbered_long(addr, "sensors/t", N, Duration::from_secs(120)));
    let mut seen = InOrder::default();
    let mut killed = false;
    tokio::time::timeout(Duration::from_secs(150), async {
        while seen.next < N {
            let line = lines.next_line().await.unwrap().expect("the AMQP consumer ended");
            seen.see(line.parse().unwrap());
            if !killed && seen.next >= N / 3 {
                killed = true;
                rabbit.kill_node(1).await;
                eprintln!("killed rabbitmq node n1 with {} readings delivered", seen.next);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {N} readings reached the AMQP consumer", seen.next));
    assert!(killed);
    publisher.await.unwrap();
    // QoS 2 readings: taken at QoS 1 by RabbitMQ, acknowledged with PUBACK.
    publish_numbered_at(addr, "sensors/q2", N, 50, QoS::ExactlyOnce).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while seen.next < N + 50 {
            let line = lines.next_line().await.unwrap().expect("the AMQP consumer ended");
            seen.see(line.parse().unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of the 50 QoS 2 readings arrived", seen.next - N));
    eprintln!("all {N} readings (and 50 at QoS 2) arrived, {} duplicates; {:.1?} in all", seen.dups, started.elapsed());
    edge.shutdown().await;
}

/// ActiveMQ started from a configuration of its own: the MQTT transport
/// connector on `port`, KahaDB under `dir`.
struct ActiveMq {
    child: Child,
    port: u16,
}

impl ActiveMq {
    async fn start(dir: &Path) -> ActiveMq {
        let port = free_port();
        let conf = dir.join("conf");
        let lib = dir.join("lib");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        for jar in MQTT_CLIENT_JARS {
            std::os::unix::fs::symlink(jar, lib.join(Path::new(jar).file_name().unwrap())).unwrap();
        }
        let data = dir.join("data");
        std::fs::write(
            conf.join("activemq.xml"),
            format!(
                r#"<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="cloud" dataDirectory="{data}">
    <persistenceAdapter><kahaDB directory="{data}/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="mqtt" uri="mqtt://127.0.0.1:{port}"/>
    </transportConnectors>
  </broker>
</beans>
"#,
                data = data.display()
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("log4j.properties"),
            "log4j.rootLogger=INFO, out\nlog4j.appender.out=org.apache.log4j.ConsoleAppender\n\
             log4j.appender.out.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.out.layout.ConversionPattern=%d %p %c - %m%n\n",
        )
        .unwrap();
        let log = dir.join("out.log");
        let d = |k: &str, v: &Path| format!("-D{k}={}", v.display());
        let mut child = Command::new("java")
            .args(["-Xms32m", "-Xmx256m"])
            .arg(format!("-Dlog4j.configuration=file:{}", conf.join("log4j.properties").display()))
            .arg(d("activemq.base", dir))
            .arg(d("activemq.home", Path::new("/usr/share/activemq")))
            .arg(d("activemq.conf", &conf))
            .arg(d("activemq.data", &data))
            .args(["-jar", ACTIVEMQ_JAR, "start"])
            .arg(format!("xbean:file:{}", conf.join("activemq.xml").display()))
            .logging_to(&log);
        wait_for_line(&mut child, &log, "Connector mqtt started", "activemq").await;
        ActiveMq { child, port }
    }

    fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// An `out` rule carries the edge's messages to ActiveMQ's subscriber and
/// an `in` rule brings ActiveMQ's home, prefixes mapped, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activemq_round_trip_both_ways() {
    let installed = Path::new(ACTIVEMQ_JAR).exists()
        && std::process::Command::new("java").arg("-version").stderr(Stdio::null()).status().is_ok();
    if !have("ACTIVEMQ", installed, "activemq (and java) are not installed")
        || !have(
            "ACTIVEMQ",
            MQTT_CLIENT_JARS.iter().all(|j| Path::new(j).exists()),
            "libmqtt-client-java (the MQTT connector's codec) is not installed",
        )
    {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut amq = ActiveMq::start(dir.path()).await;
    eprintln!("activemq up in {:.1?}", started.elapsed());
    let (mut cloud_sub, _) = V4Client::connect(v4(amq.addr(), "cloud-sub", true)).await;
    cloud_sub.subscribe("site1/up/#", QoS::AtLeastOnce).await;
    let up = bridge(
        "amq",
        &[amq.addr().to_string()],
        &["up/# out 1 \"\" site1/", "down/# in 1 \"\" site1/"],
        "try_private = false",
    );
    let edge = edge_with(vec![up]).await;
    let mut local = V4Client::simple(edge.addr, "actuator").await;
    local.subscribe("down/#", QoS::AtLeastOnce).await;
    let cloud_pub = V4Client::simple(amq.addr(), "cloud-pub").await;
    probe_until_carried("the bridge to subscribe on activemq", &cloud_pub, "site1/down/probe", &mut local, 300).await;
    drain(&mut local).await;

    publish_numbered(edge.addr, "up/t", 0, 200).await;
    let dups = receive_numbered(&mut cloud_sub, 200, Duration::from_secs(30)).await;
    assert_eq!(dups, 0, "out: no reconnect, no duplicates");

    publish_numbered(amq.addr(), "site1/down/valve", 0, 200).await;
    let dups = receive_numbered(&mut local, 200, Duration::from_secs(30)).await;
    assert_eq!(dups, 0, "in: no reconnect, no duplicates");
    let p = {
        cloud_pub.client.publish("site1/down/valve", QoS::AtLeastOnce, false, "last").await.unwrap();
        local.next_publish().await
    };
    assert_eq!((p.topic.as_str(), p.qos), ("down/valve", QoS::AtLeastOnce), "the local prefix, QoS kept");
    edge.shutdown().await;
    amq.child.kill().await.unwrap();
    eprintln!("activemq round trip in {:.1?}", started.elapsed());
}

/// The demo firmware as `firmware-client/tests/qemu_e2e.rs` builds it (the
/// same target directory and parameters, so CI builds it once): 40 QoS 1
/// readings on `sensors/lm3s6965-e2e/reading`, one each 200 ms.
fn demo_firmware() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-e2e");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--bin", "demo", "--target", "thumbv7m-none-eabi"])
        .current_dir(root.join("firmware-client/demo-lm3s6965"))
        .env("CARGO_TARGET_DIR", &target)
        .env("EDGEMQ_DEMO_N", "40")
        .env("EDGEMQ_DEMO_INTERVAL_MS", "200")
        .env("EDGEMQ_DEMO_CLIENT_ID", "lm3s6965-e2e")
        .env_remove("RUSTFLAGS")
        .stdout(Stdio::null())
        .status()
        .expect("cargo");
    assert!(status.success(), "the demo firmware does not build (rustup target add thumbv7m-none-eabi?)");
    target.join("thumbv7m-none-eabi/release/demo")
}

/// A TCP relay standing for the gateway's uplink: [`Uplink::cut`] closes
/// every relayed connection and refuses new ones (accepted and closed at
/// once) until [`Uplink::restore`].
struct Uplink {
    port: u16,
    up: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Uplink {
    async fn to(remote: String) -> Uplink {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let up = std::sync::Arc::new(tokio::sync::watch::channel(true).0);
        let watch = up.clone();
        tokio::spawn(async move {
            while let Ok((mut down, _)) = l.accept().await {
                let mut state = watch.subscribe();
                if !*state.borrow_and_update() {
                    continue;
                }
                let remote = remote.clone();
                tokio::spawn(async move {
                    let Ok(mut far) = tokio::net::TcpStream::connect(&remote).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut far) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Uplink { port, up }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// A child process killed when dropped (a failed test leaves no QEMU
/// running beside the next CI steps).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo firmware in QEMU (`lm3s6965evb`), its UART a TCP client of
/// 127.0.0.1:`port` that reconnects; its console lines on a channel.
fn qemu_firmware(elf: &Path, port: u16) -> (KillOnDrop, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new("qemu-system-arm")
        .args(["-cpu", "cortex-m3", "-machine", "lm3s6965evb", "-nographic"])
        .args(["-monitor", "none", "-semihosting-config", "enable=on,target=native"])
        .arg("-chardev")
        .arg(format!("socket,id=mqtt,host=127.0.0.1,port={port},reconnect=1"))
        .args(["-serial", "chardev:mqtt", "-kernel"])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-arm");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (KillOnDrop(child), rx)
}

/// The whole promise, end to end: the demo firmware in QEMU publishes
/// readings to the edge (its outbox holding them while the edge is
/// away), the edge bridges them to RabbitMQ, an AMQP consumer receives
/// them. Mid-run the uplink is cut, the edge restarted while it holds
/// readings for the cloud, then the uplink restored: every reading the
/// firmware's outbox accepted arrives, the first copy of each in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_firmware_in_qemu_through_uplink_loss_and_an_edge_restart() {
    let python = python_with_pika();
    let qemu = std::process::Command::new("qemu-system-arm").arg("--version").stdout(Stdio::null()).status();
    if !have("RABBITMQ", Path::new(RABBITMQ_SERVER).exists(), "rabbitmq-server is not installed")
        || !have("RABBITMQ", python.is_some(), "no python3 with pika (python3-pika)")
        || !have("QEMU", qemu.is_ok_and(|s| s.success()), "qemu-system-arm is not installed")
    {
        return;
    }
    let started = Instant::now();
    let elf = tokio::task::spawn_blocking(demo_firmware).await.unwrap();
    let rabbit = Rabbit::cluster(1).await;
    let (_consumer, mut lines) = amqp_consumer(python.unwrap(), rabbit.nodes[0].amqp, "sensors.#").await;
    let uplink = Uplink::to(rabbit.mqtt_addr(0)).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let edge = || {
        let (dir, up) =
            (dir.path().to_owned(), bridge("cloud", &[uplink.addr()], &["sensors/# out 1"], "try_private = false"));
        TestBroker::start_with(move |c| {
            c.listeners = vec![edgemq::config::ListenerConfig::tcp(([127, 0, 0, 1], port).into())];
            c.data_dir = dir;
            c.bridges = vec![up];
        })
    };
    let mut broker = Some(edge().await);
    let (mut fw, mut console) = qemu_firmware(&elf, port);
    let mut queued = 0;
    let mut acked = false;
    let mut events = Vec::new();
    let run = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = console.recv().await {
            if let Some(n) = line.strip_prefix("queued seq=") {
                queued = n.parse::<u32>().unwrap() + 1;
                match queued {
                    10 => uplink.cut(),
                    20 => broker.take().unwrap().shutdown().await,
                    24 => broker = Some(edge().await),
                    30 => uplink.restore(),
                    _ => continue,
                }
                events.push(format!(
                    "{line}: {}",
                    ["uplink cut", "edge stopped", "edge started", "uplink restored"][events.len()]
                ));
            }
            acked |= line.contains("total=40");
        }
    });
    run.await.unwrap_or_else(|_| panic!("the firmware did not finish in 120 s: {queued} queued"));
    let status = fw.0.wait().unwrap();
    assert!(status.success() && acked && queued == 40, "the firmware did not finish: {status:?}, {queued} queued");
    eprintln!("firmware done; {events:?}");
    let mut seen = InOrder::default();
    tokio::time::timeout(Duration::from_secs(60), async {
        while seen.next < 40 {
            let line = lines.next_line().await.unwrap().expect("the AMQP consumer ended");
            let seq = line.strip_prefix("seq=").and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("{line:?}"));
            seen.see(seq.parse().unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of 40 readings reached the AMQP consumer", seen.next));
    eprintln!("all 40 readings arrived through RabbitMQ, {} duplicates; {:.1?} in all", seen.dups, started.elapsed());
    if let Some(b) = broker {
        b.shutdown().await;
    }
}
