//! What a seed draws (the broker's settings, the size of the run) and the
//! session machine's configuration built from it.

use std::sync::Arc;
use std::time::Duration;

use edgemq::auth::acl::AclFile;
use edgemq::auth::files::FileAuth;
use edgemq::config::QueueFullPolicy;
use edgemq::session::MachineConfig;
use edgemq::store::powerloss::{Loss, Rng};
use edgemq::store::{Journal, SyncMode};

use crate::acl::Acl;

/// The settings a seed draws.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sync: SyncMode,
    pub segment_bytes: u64,
    pub compact_bytes: u64,
    pub loss: Loss,
    pub clients: usize,
    /// Queue limit (0: none, and every acknowledged message must arrive).
    pub max_messages: usize,
    pub policy: QueueFullPolicy,
    /// Memory all queues share before they spill to disk.
    pub queue_memory: usize,
    pub max_inflight: u16,
    pub boots: usize,
    pub steps: usize,
    /// The broker's expiry of 3.1.1 persistent sessions
    /// (`session_expiry_secs`; `None`: never, the default).
    pub expiry_311: Option<Duration>,
    /// The disk fails now and then (writes or fdatasyncs return ENOSPC or
    /// EIO for a while, `disk.rs`).
    pub disk_faults: bool,
    /// The spill queues' scratch files fail now and then (writes ENOSPC,
    /// reads EIO, `disk.rs`; `SIM_NO_SPILL` set: never).
    pub spill_faults: bool,
    /// The broker's ACL (one seed in three, `acl.rs`; `SIM_NO_ACL` set: never).
    pub acl: Option<Acl>,
}

impl Settings {
    pub fn draw(rng: &mut Rng) -> Settings {
        let mut s = Settings {
            sync: if rng.chance(50) { SyncMode::Always } else { SyncMode::Batch },
            segment_bytes: [1_000, 4_000, 64 * 1024][rng.below(3) as usize],
            compact_bytes: [2_000, 20_000, 1 << 30][rng.below(3) as usize],
            // A disk that writes in order; `SIM_LOSS=pages`: unsynced pages
            // kept or lost one by one (see ROBUSTNESS.md for what that breaks).
            loss: if std::env::var("SIM_LOSS").is_ok_and(|v| v == "pages") { Loss::Pages } else { Loss::Torn },
            // Now and then a crowd: takeovers, fan-out and queues at scale.
            clients: if rng.chance(10) { 10 + rng.below(31) as usize } else { 2 + rng.below(6) as usize },
            max_messages: if rng.chance(25) { 2 + rng.below(6) as usize } else { 0 },
            policy: if rng.chance(50) { QueueFullPolicy::DropNew } else { QueueFullPolicy::DropOldest },
            queue_memory: [2_000, 64 * 1024, 64 << 20][rng.below(3) as usize],
            max_inflight: 1 + rng.below(4) as u16,
            boots: 1 + rng.below(4) as usize,
            steps: 200 + rng.below(800) as usize,
            expiry_311: rng.chance(25).then(|| Duration::from_secs(2 + rng.below(14))),
            disk_faults: rng.chance(35),
            spill_faults: rng.chance(35) && std::env::var("SIM_NO_SPILL").is_err(),
            acl: None,
        };
        if rng.chance(33) && std::env::var("SIM_NO_ACL").is_err() {
            s.acl = Some(Acl::draw(rng, s.clients));
        }
        s
    }
}

pub fn tmp() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    dir.unwrap_or_else(|e| panic!("no temporary directory: {e}"))
}

pub fn machine_config(journal: &Arc<Journal>, s: &Settings) -> MachineConfig {
    MachineConfig {
        max_packet_size: 1 << 20,
        max_inflight: s.max_inflight,
        connect_timeout: Duration::from_secs(10),
        session_expiry: s.expiry_311,
        allow_anonymous: true,
        receive_maximum: 10,
        max_keepalive: 65535,
        topic_alias_maximum: 0,
        server_topic_aliases: false,
        response_information: None,
        authenticator: Arc::new(edgemq::auth::NoEnhancedAuth),
        max_topic_levels: 128,
        max_subscriptions: 10_000,
        log: Some(journal.clone() as Arc<dyn edgemq::store::LogPosition>),
        files: s.acl.as_ref().map(|a| {
            let acl = AclFile::parse(&a.text(), "sim acl")
                .unwrap_or_else(|e| panic!("the drawn ACL does not parse: {e}\n{}", a.text()));
            Arc::new(FileAuth { passwords: None, acl: Some(acl) })
        }),
        cert_username: edgemq::config::CertUsername::No,
        metrics: edgemq::metrics::Metrics::new(),
        use_username_as_clientid: false,
        check_session_owner: false,
        auth_stats: Default::default(),
    }
}
