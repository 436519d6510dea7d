//! `authburst` (issue 14): whether password hashing stalls other
//! connections. N authenticated clients each ping at a fixed interval
//! (their keep-alive traffic) while a burst of CONNECTs with a wrong
//! password arrives; the PINGRESP round trips during the burst are set
//! beside those of an idle period before it, and beside the cost of one
//! hash: as the broker pays it (a lone CONNECT with a wrong password less
//! a lone CONNECT refused without hashing) and, given the password file,
//! timed here (meaningful in a release build of the load generator only).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::client::Conn;
use crate::scenario::{percentile, raise_fd_limit, secs};
use crate::{Error, Report, Target};

/// Options of `authburst`.
#[derive(Debug, Clone)]
pub struct AuthburstOpts {
    /// Connected clients that ping.
    pub clients: usize,
    /// Time between one client's pings.
    pub interval: Duration,
    /// The idle period measured before the burst.
    pub idle: Duration,
    /// CONNECTs with a wrong password in the burst.
    pub burst: usize,
    /// Burst CONNECTs in progress at once.
    pub concurrency: usize,
    /// A user of the broker's password file and its password.
    pub user: String,
    pub password: String,
    /// The broker's password file, to time one verification here.
    pub passwd_file: Option<PathBuf>,
    pub timeout: Duration,
}

impl Default for AuthburstOpts {
    fn default() -> Self {
        AuthburstOpts {
            clients: 50,
            interval: Duration::from_millis(100),
            idle: Duration::from_secs(2),
            burst: 1_000,
            concurrency: 1_000,
            user: "bench".into(),
            password: "bench".into(),
            passwd_file: None,
            timeout: Duration::from_secs(120),
        }
    }
}

/// One ping: when it was sent (since the start) and its round trip, in ns.
type Sample = (Duration, u64);

/// Pings every `interval` until `stop`, recording each round trip.
async fn pinger(
    mut c: Conn,
    interval: Duration,
    start: Instant,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Sample>>>,
) -> Result<(), Error> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mine = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let sent = start.elapsed();
        let rtt = tokio::time::timeout(Duration::from_secs(30), c.ping())
            .await
            .map_err(|_| Error::Timeout("waiting for PINGRESP".into()))??;
        mine.push((sent, rtt.as_nanos() as u64));
    }
    out.lock().map_err(|_| Error::Other("a task panicked".into()))?.extend(mine);
    c.close().await;
    Ok(())
}

/// The median time of one verification of a wrong password for `user`.
fn hash_cost(file: &std::path::Path, user: &str) -> Result<Duration, Error> {
    let f = edgemq::auth::passwd::PasswordFile::load(file).map_err(|e| Error::Other(e.to_string()))?;
    let mut t: Vec<Duration> = (0..5)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(f.check(user, b"not the password"));
            s.elapsed()
        })
        .collect();
    t.sort();
    Ok(t[t.len() / 2])
}

/// The broker's own cost of one hash: the median time of a CONNECT with a
/// wrong password less that of one without a user name (refused without
/// hashing), each made alone, `n` times.
async fn broker_hash_cost(t: &Target, user: &str, n: usize) -> Result<f64, Error> {
    let mut medians = [0.0; 2];
    for (m, hashed) in medians.iter_mut().zip([true, false]) {
        let mut ns = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("authburst-cost-{i}");
            let s = Instant::now();
            let r = match hashed {
                true => Conn::login(t.addr, &id, user, b"wrong password").await,
                false => Conn::connect(t.addr, &id).await,
            };
            ns.push(s.elapsed().as_nanos() as u64);
            match r {
                Err(Error::Refused(_)) => {}
                Ok(_) => return Err(Error::Other("the broker admitted a client it should refuse".into())),
                Err(e) => return Err(e),
            }
        }
        ns.sort_unstable();
        *m = percentile(&ns, 0.5);
    }
    Ok(medians[0] - medians[1])
}

/// Adds `name_p50_us`, `_p99_us`, `_max_us` and the sample count.
fn add_latency(r: &mut Report, keys: [&'static str; 4], mut ns: Vec<u64>) {
    ns.sort_unstable();
    r.add(keys[0], ns.len());
    r.addf(keys[1], percentile(&ns, 0.5), 1).addf(keys[2], percentile(&ns, 0.99), 1);
    r.addf(keys[3], percentile(&ns, 1.0), 1);
}

/// Runs `authburst`.
pub async fn authburst(t: &Target, o: &AuthburstOpts) -> Result<Report, Error> {
    raise_fd_limit((o.clients + o.concurrency.min(o.burst)) as u64 + 256)?;
    let hash = o.passwd_file.as_deref().map(|f| hash_cost(f, &o.user)).transpose()?;
    let broker_hash = broker_hash_cost(t, &o.user, 20).await?;
    let mut pingers = JoinSet::new();
    let (stop, samples) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let start = Instant::now();
    for i in 0..o.clients {
        let c = Conn::login(t.addr, &format!("authburst-ping-{i}"), &o.user, o.password.as_bytes()).await?;
        pingers.spawn(pinger(c, o.interval, start, stop.clone(), samples.clone()));
    }
    tokio::time::sleep(o.idle).await;
    let burst_start = start.elapsed();
    let mut burst = JoinSet::new();
    let (mut refused, mut codes, mut errors, mut accepted) = (0usize, Vec::new(), 0usize, 0usize);
    let mut next = 0;
    let deadline = tokio::time::Instant::now() + o.timeout;
    loop {
        while burst.len() < o.concurrency.max(1) && next < o.burst {
            let (addr, id) = (t.addr, format!("authburst-wrong-{next}"));
            let user = o.user.clone();
            burst.spawn(async move { Conn::login(addr, &id, &user, b"wrong password").await.map(drop) });
            next += 1;
        }
        let Ok(joined) = tokio::time::timeout_at(deadline, burst.join_next()).await else {
            return Err(Error::Timeout("the burst".into()));
        };
        match joined {
            None => break,
            Some(Ok(Err(Error::Refused(code)))) => {
                refused += 1;
                if !codes.contains(&code) {
                    codes.push(code);
                }
            }
            Some(Ok(Ok(()))) => accepted += 1,
            Some(Ok(Err(_)) | Err(_)) => errors += 1,
        }
    }
    let burst_end = start.elapsed();
    // A further idle stretch: pings sent during the burst are answered.
    tokio::time::sleep(o.interval * 2).await;
    stop.store(true, Ordering::Relaxed);
    let mut disconnected = 0;
    while let Some(p) = pingers.join_next().await {
        if !matches!(p, Ok(Ok(()))) {
            disconnected += 1;
        }
    }
    let samples = std::mem::take(&mut *samples.lock().map_err(|_| Error::Other("a task panicked".into()))?);
    let idle: Vec<u64> = samples.iter().filter(|s| s.0 < burst_start).map(|s| s.1).collect();
    let during: Vec<u64> = samples.iter().filter(|s| s.0 >= burst_start && s.0 <= burst_end).map(|s| s.1).collect();
    let mut r = Report::new("authburst");
    r.add("clients", o.clients).add("burst", o.burst).add("refused", refused).add("accepted", accepted);
    let codes: Vec<String> = codes.iter().map(|c| format!("0x{c:02x}")).collect();
    r.add("codes", if codes.is_empty() { "-".to_owned() } else { codes.join(",") });
    r.add("errors", errors).add("pingers_lost", disconnected);
    r.addf("burst_s", secs(burst_end - burst_start), 3);
    r.addf("broker_hash_us", broker_hash, 1);
    if let Some(h) = hash {
        r.addf("local_hash_us", h.as_secs_f64() * 1e6, 1);
    }
    add_latency(&mut r, ["idle_pings", "idle_p50_us", "idle_p99_us", "idle_max_us"], idle);
    add_latency(&mut r, ["burst_pings", "burst_p50_us", "burst_p99_us", "burst_max_us"], during);
    Ok(r)
}
