//! `edgemq-loadgen`: runs one benchmark scenario against an MQTT broker on
//! 127.0.0.1 and prints one `RESULT key=value ...` line (see README.md).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use edgemq_benches::{
    authburst, backlog, conns, fanin, fanout, fleet, latency, soak, stall, startup, storm, AuthburstOpts, BacklogOpts,
    ConnsOpts, Error, FaninOpts, FanoutOpts, FleetOpts, LatencyOpts, Report, SoakOpts, StallOpts, StartupOpts,
    StormOpts, Target,
};

#[derive(Parser, Debug)]
#[command(name = "edgemq-loadgen", version, about = "MQTT broker load generator (edgemq benchmarks)")]
struct Cli {
    /// Broker address.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Broker port.
    #[arg(short, long, global = true, default_value_t = 1883)]
    port: u16,
    /// Broker process id, for its memory figures (/proc/PID/status).
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// Worker threads of the load generator's runtime.
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// P publishers to one subscriber on `bench/#`: messages/s received.
    Fanin {
        #[arg(long, default_value_t = 8)]
        pubs: usize,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        /// Payload bytes (minimum 20).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Messages in total.
        #[arg(short = 'n', long, default_value_t = 200_000)]
        messages: u64,
        /// QoS 1/2 messages in flight per publisher.
        #[arg(long, default_value_t = 100)]
        window: usize,
        /// Seconds bounding the run.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Subscriber with a persistent session (durable delivery).
        #[arg(long)]
        persistent: bool,
    },
    /// Store-and-forward: N messages queued for an offline persistent
    /// subscriber, then drained: publish and drain msg/s, broker RSS.
    Backlog {
        #[arg(long, default_value_t = 8)]
        pubs: usize,
        /// 1 or 2.
        #[arg(long, default_value_t = 1)]
        qos: u8,
        /// Payload bytes (minimum 20).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Messages in total.
        #[arg(short = 'n', long, default_value_t = 1_000_000)]
        messages: u64,
        /// QoS 1/2 messages in flight per publisher.
        #[arg(long, default_value_t = 100)]
        window: usize,
        /// Seconds to wait after publishing before reading the queued RSS.
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
        /// Seconds bounding the run.
        #[arg(long, default_value_t = 240)]
        timeout: u64,
    },
    /// One publisher to K subscribers of one topic: deliveries/s.
    Fanout {
        #[arg(long, default_value_t = 8)]
        subs: usize,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Messages published.
        #[arg(short = 'n', long, default_value_t = 100_000)]
        messages: u64,
        #[arg(long, default_value_t = 100)]
        window: usize,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Fixed-rate publisher to one subscriber: latency percentiles in µs.
    Latency {
        /// Messages per second.
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        /// Seconds measured (after the warm-up).
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Seconds of warm-up, left out of the figures.
        #[arg(long, default_value_t = 0.5)]
        warmup: f64,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// C idle connections: broker memory per connection, connection rate.
    Conns {
        #[arg(short = 'c', long, default_value_t = 5_000)]
        conns: usize,
        /// Connection attempts in progress at once.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
    },
    /// N authenticated clients ping while a burst of CONNECTs with a wrong
    /// password arrives: PINGRESP latency idle vs during the burst.
    Authburst {
        /// Connected clients that ping.
        #[arg(short = 'c', long, default_value_t = 50)]
        clients: usize,
        /// Seconds between one client's pings.
        #[arg(long, default_value_t = 0.1)]
        interval: f64,
        /// Seconds measured idle before the burst.
        #[arg(long, default_value_t = 2.0)]
        idle: f64,
        /// CONNECTs with a wrong password.
        #[arg(short = 'n', long, default_value_t = 1_000)]
        burst: usize,
        /// Burst CONNECTs in progress at once.
        #[arg(long, default_value_t = 1_000)]
        concurrency: usize,
        /// A user of the broker's password file...
        #[arg(long, default_value = "bench")]
        user: String,
        /// ...and its password.
        #[arg(long, default_value = "bench")]
        password: String,
        /// The broker's password file, to time one verification here.
        #[arg(long)]
        passwd_file: Option<PathBuf>,
    },
    /// D devices at a low rate to one `fleet/#` subscriber: broker CPU per
    /// message, latency percentiles (the IoT shape).
    Fleet {
        #[arg(short = 'd', long, default_value_t = 5_000)]
        devices: usize,
        /// Messages per second of each device.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        #[arg(long, default_value_t = 1)]
        qos: u8,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Seconds measured (after the warm-up).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds of warm-up, left out of the figures.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
    },
    /// C persistent sessions with queued messages reconnect at once: time
    /// until all are served, broker RSS peak.
    Storm {
        #[arg(short = 'c', long, default_value_t = 10_000)]
        clients: usize,
        /// QoS 1 messages queued per client while it is away.
        #[arg(long, default_value_t = 3)]
        queued: u64,
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// A subscriber that reads nothing while a publisher sends `--mib` MiB
    /// at QoS 1 beside a normal subscriber: broker RSS, the normal one's
    /// rate, what became of the stalled one's queue.
    Stall {
        /// QoS of the stalled subscriber (0 or 1).
        #[arg(long, default_value_t = 1)]
        qos: u8,
        /// No stalled subscriber: the reference rate.
        #[arg(long)]
        baseline: bool,
        /// MiB published.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        /// Payload bytes of each message.
        #[arg(long, default_value_t = 65536)]
        size: usize,
        #[arg(long, default_value_t = 16)]
        window: usize,
        /// The broker's HTTP listener (IP:PORT), for its /metrics.
        #[arg(long)]
        metrics: Option<SocketAddr>,
        /// Leave the stalled subscriber's queue undrained at the end.
        #[arg(long)]
        no_drain: bool,
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Connect/disconnect churn for `--secs`, QoS 0/1/2, persistent and
    /// clean sessions, MQTT 5 session expiry, retained updates: QoS 2
    /// exactly once, QoS 1 not lost, broker RSS and file descriptors.
    Soak {
        #[arg(long, default_value_t = 1800)]
        secs: u64,
        /// Seconds after which the "first minute" figures are read.
        #[arg(long, default_value_t = 60)]
        checkpoint: u64,
        /// Persistent subscribers (QoS 2, tracked).
        #[arg(long, default_value_t = 6)]
        subs: usize,
        /// Publishers at each QoS.
        #[arg(long, default_value_t = 2)]
        pubs_per_qos: usize,
        /// Messages per second of each publisher.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Churning clients at once.
        #[arg(long, default_value_t = 16)]
        churners: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Starts the broker command given after `--`: time to first CONNACK, idle RSS.
    Startup {
        /// Seconds to wait for the first CONNACK.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// Seconds idle before reading the RSS.
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Runs edgemq in-process (used by the smoke test for `startup`).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Every fdatasync of the store takes this much longer (a slow SD
        /// card): the slow-disk scenario (benches/slow_disk.py).
        #[arg(long, default_value_t = 0)]
        sync_delay_ms: u64,
    },
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.max(1)).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgemq-loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&cli, &rt) {
        Ok(Some(report)) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgemq-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli, rt: &tokio::runtime::Runtime) -> Result<Option<Report>, Error> {
    let addr = SocketAddr::new(cli.host, cli.port);
    let t = Target { addr, pid: cli.pid };
    let report = match &cli.cmd {
        &Cmd::Fanin { pubs, qos, size, messages, window, timeout, persistent } => {
            let o = FaninOpts {
                publishers: pubs,
                qos,
                size,
                messages,
                window,
                timeout: Duration::from_secs(timeout),
                persistent,
                ..FaninOpts::default()
            };
            rt.block_on(fanin(&t, &o))?
        }
        &Cmd::Backlog { pubs, qos, size, messages, window, settle, timeout } => {
            let o = BacklogOpts {
                publishers: pubs,
                qos,
                size,
                messages,
                window,
                settle: secs(settle),
                timeout: Duration::from_secs(timeout),
                ..BacklogOpts::default()
            };
            rt.block_on(backlog(&t, &o))?
        }
        &Cmd::Fanout { subs, qos, size, messages, window, timeout } => {
            let o = FanoutOpts {
                subscribers: subs,
                qos,
                size,
                messages,
                window,
                timeout: Duration::from_secs(timeout),
                ..FanoutOpts::default()
            };
            rt.block_on(fanout(&t, &o))?
        }
        &Cmd::Latency { rate, duration, warmup, qos, size } => {
            let o = LatencyOpts {
                rate,
                messages: ((rate as f64 * duration) as u64).max(1),
                warmup: (rate as f64 * warmup) as u64,
                qos,
                size,
                timeout: secs(duration + warmup + 30.0),
            };
            latency(&t, &o)?
        }
        &Cmd::Conns { conns: c, concurrency } => {
            rt.block_on(conns(&t, &ConnsOpts { connections: c, concurrency, ..ConnsOpts::default() }))?
        }
        Cmd::Authburst { clients, interval, idle, burst, concurrency, user, password, passwd_file } => {
            let o = AuthburstOpts {
                clients: *clients,
                interval: secs(*interval),
                idle: secs(*idle),
                burst: *burst,
                concurrency: *concurrency,
                user: user.clone(),
                password: password.clone(),
                passwd_file: passwd_file.clone(),
                ..AuthburstOpts::default()
            };
            rt.block_on(authburst(&t, &o))?
        }
        &Cmd::Fleet { devices, rate, qos, size, duration, warmup } => {
            let o = FleetOpts {
                devices,
                rate,
                qos,
                size,
                duration: secs(duration),
                warmup: secs(warmup),
                ..FleetOpts::default()
            };
            rt.block_on(fleet(&t, &o))?
        }
        &Cmd::Storm { clients, queued, size } => {
            rt.block_on(storm(&t, &StormOpts { clients, queued, size, ..StormOpts::default() }))?
        }
        &Cmd::Stall { qos, baseline, mib, size, window, metrics, no_drain, timeout } => {
            let o = StallOpts {
                stalled_qos: qos,
                baseline,
                bytes: mib << 20,
                size,
                window,
                metrics,
                drain: !no_drain,
                timeout: Duration::from_secs(timeout),
                ..StallOpts::default()
            };
            rt.block_on(stall(&t, &o))?
        }
        &Cmd::Soak { secs: s, checkpoint, subs, pubs_per_qos, rate, churners, seed } => {
            let o = SoakOpts {
                duration: Duration::from_secs(s),
                checkpoint: Duration::from_secs(checkpoint),
                subs,
                pubs_per_qos,
                rate,
                churners,
                seed,
                ..SoakOpts::default()
            };
            rt.block_on(soak(&t, &o))?
        }
        Cmd::Startup { timeout, settle, command } => startup(&StartupOpts {
            command: command.clone(),
            addr,
            timeout: Duration::from_secs(*timeout),
            settle: secs(*settle),
        })?,
        Cmd::Serve { data_dir, sync_delay_ms } => {
            rt.block_on(serve(addr, data_dir.clone(), Duration::from_millis(*sync_delay_ms)))?;
            return Ok(None);
        }
    };
    Ok(Some(report))
}

async fn serve(addr: SocketAddr, data_dir: Option<PathBuf>, sync_delay: Duration) -> Result<(), Error> {
    let data_dir =
        data_dir.unwrap_or_else(|| std::env::temp_dir().join(format!("edgemq-loadgen-{}", std::process::id())));
    let listeners = vec![edgemq::config::ListenerConfig::tcp(addr)];
    let cfg = edgemq::Config { listeners, data_dir, ..edgemq::Config::default() };
    let seams = edgemq::server::Seams { fs: edgemq::store::fs::SlowSyncFs::new(sync_delay), ..Default::default() };
    let broker = edgemq::Broker::start_with_seams(cfg, seams).await.map_err(|e| Error::Other(e.to_string()))?;
    let bound: Vec<String> = broker.local_addrs().iter().map(|a| a.to_string()).collect();
    println!("edgemq (in edgemq-loadgen) listening on {}", bound.join(", "));
    let _ = tokio::signal::ctrl_c().await;
    broker.shutdown().await;
    Ok(())
}
