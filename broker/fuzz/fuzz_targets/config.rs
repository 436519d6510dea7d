//! cargo-fuzz target `config`: the configuration parser
//! (`edgemq::config::Config::from_args` with `-c FILE`: the TOML parse,
//! the error messages that name the file, line and key, listener tables,
//! addresses and the range checks) on arbitrary text.
//!
//! Input: `[flags, text...]`. `flags` bit 0 adds `-p 0`, bit 1 adds
//! `--bind 127.0.0.1` (the flags that change how the file's listeners
//! resolve). `text` (UTF-8; other inputs are skipped, as reading the file
//! would fail first) is the configuration file.
//!
//! Checked: a configuration or an error, never a panic; an error renders
//! as text; an accepted configuration has a listener and limits within
//! their documented ranges.
#![no_main]

use std::io::{Seek, Write};

use edgemq::config::{Args, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, text @ ..] = data else { return };
    if std::str::from_utf8(text).is_err() {
        return;
    }
    // One file for the whole run, rewritten per input.
    thread_local! {
        static FILE: std::cell::RefCell<Option<tempfile::NamedTempFile>> = const { std::cell::RefCell::new(None) };
    }
    FILE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let base = std::path::Path::new("/dev/shm");
            let f = if base.is_dir() { tempfile::NamedTempFile::new_in(base) } else { tempfile::NamedTempFile::new() };
            *slot = f.ok();
        }
        let Some(f) = slot.as_mut() else { return };
        let file = f.as_file_mut();
        if file.set_len(0).is_err() || file.rewind().is_err() || file.write_all(text).is_err() {
            return;
        }
        let args = Args {
            port: (flags & 1 != 0).then_some(0),
            bind: if flags & 2 != 0 { vec!["127.0.0.1".into()] } else { Vec::new() },
            config: Some(f.path().to_owned()),
            data_dir: None,
            verbose: false,
            command: None,
        };
        match Config::from_args(&args) {
            Ok(c) => {
                assert!(!c.listeners.is_empty(), "a configuration without listeners");
                assert!((16..=268_435_460).contains(&c.max_packet_size), "max_packet_size {}", c.max_packet_size);
                assert!(c.max_inflight_messages >= 1 && c.receive_maximum >= 1 && c.max_keepalive >= 1);
                // max_queued_messages 0 means no count limit (issue 13).
                assert!((1..=3600).contains(&c.connect_timeout_secs) && c.max_topic_levels >= 1);
                assert!(c.max_sessions >= 1 && c.max_subscriptions_per_client >= 1 && c.sys_interval <= 86_400);
                for l in &c.listeners {
                    let t = &l.tls;
                    assert_eq!(l.protocol.is_tls(), t.certfile.is_some() && t.keyfile.is_some(), "{l:?}");
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    });
});
