//! Reloading on SIGHUP (`Broker::reload`): each listener's password file,
//! ACL file and TLS certificate, key, CA and CRL files are read again;
//! new handshakes and CONNECTs use the new material, connections already
//! open keep what they were admitted with and are not dropped. A file that
//! does not load keeps the old material and is named (file and line) in
//! the log and in the returned errors; at start the same file stops the
//! broker (`StartError`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::connection::ConnCtx;
use super::tls::TlsLayer;
use crate::auth::files::FileAuth;
use crate::config::ListenerConfig;
use crate::session::MachineConfig;

/// A value replaced as a whole on reload: readers take the current `Arc`
/// once (per connection, not per packet), under a lock held only to clone it.
#[derive(Debug)]
pub struct Current<T>(Mutex<Arc<T>>);

impl<T> Current<T> {
    pub fn new(v: Arc<T>) -> Current<T> {
        Current(Mutex::new(v))
    }

    pub fn get(&self) -> Arc<T> {
        match self.0.lock() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(super) fn set(&self, v: Arc<T>) {
        match self.0.lock() {
            Ok(mut cur) => *cur = v,
            Err(poisoned) => *poisoned.into_inner() = v,
        }
    }
}

/// What a reload needs of one listener.
pub(super) struct Reloadable {
    pub ctx: Arc<ConnCtx>,
    pub listener: ListenerConfig,
}

/// The global password and ACL files (a listener's own take precedence).
#[derive(Debug, Clone, Default)]
pub(super) struct GlobalFiles {
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
}

/// Reloads every listener's files; returns what did not load (the old
/// material is kept for those).
pub(super) fn reload(listeners: &[Reloadable], global: &GlobalFiles) -> Vec<String> {
    let mut errors = Vec::new();
    for r in listeners {
        let l = &r.listener;
        let old = r.ctx.machine.get();
        let (files, failed) = FileAuth::reload(
            old.files.as_deref(),
            l.password_file.as_deref().or(global.password_file.as_deref()),
            l.acl_file.as_deref().or(global.acl_file.as_deref()),
        );
        errors.extend(failed.iter().map(|e| e.to_string()));
        let cfg = MachineConfig { files: files.map(Arc::new), ..(*old).clone() };
        r.ctx.machine.set(Arc::new(cfg));
        if let Some(tls) = &r.ctx.tls {
            match TlsLayer::new(&l.tls) {
                Ok(new) => tls.set(Arc::new(new)),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    for e in &errors {
        tracing::error!("reload: {e}; keeping what was loaded before");
    }
    tracing::info!(listeners = listeners.len(), failed = errors.len(), "reloaded password, ACL and TLS files");
    errors
}
