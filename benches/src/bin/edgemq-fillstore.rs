//! `edgemq-fillstore DIR N`: writes a store in `DIR` (the broker's
//! `data_dir`) holding one offline persistent session (client id
//! `backlog-sub`, subscribed to `bench/#` at QoS 1) with `N` queued QoS 1
//! messages of 64-byte payloads (each its number, zero-padded), through the broker's own store API: the
//! log a broker leaves after queueing `N` messages for an absent
//! subscriber, written in seconds. `benches/restart.sh` then measures the
//! broker restarting on it.

use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use edgemq::protocol::{QoS, RetainHandling, SubOptions};
use edgemq::store::{self, Record, StoreConfig, StoredMessage, SyncMode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(Ok(n))) = (args.get(1), args.get(2).map(|s| s.parse::<u64>())) else {
        eprintln!("usage: edgemq-fillstore DATA_DIR MESSAGES");
        return ExitCode::from(2);
    };
    let dir = std::path::PathBuf::from(dir);
    let cfg = StoreConfig {
        dir: dir.join("store"),
        spill_dir: dir.join("spill"),
        sync: SyncMode::Never,
        segment_bytes: 16 * 1024 * 1024,
        compact_bytes: u64::MAX,
        fs: Arc::new(store::fs::RealFs),
    };
    let (journal, model, _) = match store::open(&cfg) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("edgemq-fillstore: {e}");
            return ExitCode::FAILURE;
        }
    };
    let key = model.max_key + 1;
    let first_mid = model.max_mid + 1;
    drop(model);
    let now_ms = store::record::unix_ms(std::time::SystemTime::now());
    journal.append(&Record::Session {
        key,
        client_id: "backlog-sub".into(),
        expiry_secs: None,
        offline_since_ms: now_ms,
        user: None,
    });
    let options = SubOptions {
        qos: QoS::AtLeastOnce,
        no_local: false,
        retain_as_published: false,
        retain_handling: RetainHandling::OnSubscribe,
    };
    journal.append(&Record::Sub { key, filter: "bench/#".into(), options, id: None });
    for i in 0..n {
        let mid = first_mid + i;
        let msg = StoredMessage {
            topic: format!("bench/{}", i % 8),
            // 64 bytes: the message's number, for checking the order.
            payload: Bytes::from(format!("{i:064}")),
            qos: QoS::AtLeastOnce,
            retain: false,
            props: None,
            origin: 0,
            received_ms: now_ms,
        };
        journal.append(&Record::Msg { mid, msg });
        journal.append(&Record::Enq {
            key,
            seq: i,
            mid,
            qos: QoS::AtLeastOnce,
            retain: false,
            sub_ids: vec![],
            shared: None,
        });
        if i % 65_536 == 0 {
            // The writer's buffer is bounded: wait for it like a router does.
            while !journal.has_room() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
    journal.close();
    println!("{}: {n} messages queued for backlog-sub", dir.display());
    ExitCode::SUCCESS
}
