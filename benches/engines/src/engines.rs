//! The three candidates behind one small trait.
use std::path::Path;

pub type Enq = (u64, u64, Vec<u8>);

pub trait Engine {
    /// Atomically applies enqueues then deletes; durable on return if `sync`.
    fn commit(&mut self, enq: &[Enq], del: &[(u64, u64)], sync: bool);
    /// Makes everything written so far durable.
    fn sync(&mut self);
    /// Up to `limit` queued messages of `session` with seq > `after`, in order.
    fn scan(&mut self, session: u64, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)>;
    fn stats(&self) -> String {
        String::new()
    }
}

pub fn open(name: &str, dir: &Path) -> Box<dyn Engine> {
    match name {
        "seglog" => Box::new(Log(crate::seglog::SegLog::open(dir, 64 << 20).expect("open seglog"))),
        #[cfg(feature = "redb")]
        "redb" => Box::new(Redb::open(dir, None)),
        #[cfg(feature = "redb")]
        "redb-16m" => Box::new(Redb::open(dir, Some(16 << 20))),
        #[cfg(feature = "fjall")]
        "fjall" => Box::new(Fjall::open(dir, false)),
        #[cfg(feature = "fjall")]
        "fjall-small" => Box::new(Fjall::open(dir, true)),
        _ => panic!("unknown engine {name}"),
    }
}

pub struct Log(pub crate::seglog::SegLog);

impl Engine for Log {
    fn commit(&mut self, enq: &[Enq], del: &[(u64, u64)], sync: bool) {
        self.0.commit(enq, del, sync).expect("seglog commit");
    }
    fn sync(&mut self) {
        self.0.sync().expect("seglog sync");
    }
    fn scan(&mut self, session: u64, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        self.0.scan(session, after, limit).expect("seglog scan")
    }
    fn stats(&self) -> String {
        format!(
            "segments_deleted={} segments_now={} recovered_records={} truncated_bytes={}",
            self.0.segments_deleted,
            self.0.segment_count(),
            self.0.recovered_records,
            self.0.truncated_bytes
        )
    }
}

#[cfg(feature = "redb")]
mod redb_impl {
    use super::*;
    use redb::{Database, Durability, ReadableDatabase, TableDefinition};
    const Q: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("queue");

    pub struct Redb(Database);
    impl Redb {
        /// `cache`: None = redb default (1 GiB page cache).
        pub fn open(dir: &Path, cache: Option<usize>) -> Self {
            std::fs::create_dir_all(dir).expect("mkdir");
            let mut b = Database::builder();
            if let Some(c) = cache {
                b.set_cache_size(c);
            }
            let db = b.create(dir.join("store.redb")).expect("redb open");
            let tx = db.begin_write().expect("tx");
            tx.open_table(Q).expect("table");
            tx.commit().expect("commit");
            Redb(db)
        }
    }
    impl Engine for Redb {
        fn commit(&mut self, enq: &[Enq], del: &[(u64, u64)], sync: bool) {
            let mut tx = self.0.begin_write().expect("tx");
            tx.set_durability(if sync { Durability::Immediate } else { Durability::None })
                .expect("durability");
            {
                let mut t = tx.open_table(Q).expect("table");
                for (s, q, m) in enq {
                    t.insert((*s, *q), m.as_slice()).expect("insert");
                }
                for k in del {
                    t.remove(*k).expect("remove");
                }
            }
            tx.commit().expect("commit");
        }
        fn sync(&mut self) {
            self.commit(&[], &[], true);
        }
        fn scan(&mut self, session: u64, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
            let rt = self.0.begin_read().expect("read tx");
            let t = rt.open_table(Q).expect("table");
            let mut out = Vec::new();
            for r in t.range((session, after + 1)..=(session, u64::MAX)).expect("range").take(limit) {
                let (k, v) = r.expect("row");
                out.push((k.value().1, v.value().to_vec()));
            }
            out
        }
    }
}
#[cfg(feature = "redb")]
pub use redb_impl::Redb;

#[cfg(feature = "fjall")]
mod fjall_impl {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    fn key(s: u64, q: u64) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&s.to_be_bytes());
        k[8..].copy_from_slice(&q.to_be_bytes());
        k
    }

    pub struct Fjall {
        db: Database,
        ks: Keyspace,
    }
    impl Fjall {
        /// `small`: 16 MiB block cache, 8 MiB memtable, 16 MiB write buffer (defaults otherwise).
        #[allow(deprecated)] // max_write_buffer_size is marked deprecated ("todo") in fjall 3.1
        pub fn open(dir: &Path, small: bool) -> Self {
            let mut b = Database::builder(dir);
            if small {
                b = b.cache_size(16 << 20).max_write_buffer_size(Some(16 << 20));
            }
            let db = b.open().expect("fjall open");
            let ks = db
                .keyspace("queue", || {
                    let o = KeyspaceCreateOptions::default();
                    if small {
                        o.max_memtable_size(8 << 20)
                    } else {
                        o
                    }
                })
                .expect("keyspace");
            Fjall { db, ks }
        }
    }
    impl Engine for Fjall {
        fn commit(&mut self, enq: &[Enq], del: &[(u64, u64)], sync: bool) {
            let mut b = self.db.batch();
            if sync {
                b = b.durability(Some(PersistMode::SyncData));
            }
            for (s, q, m) in enq {
                b.insert(&self.ks, &key(*s, *q)[..], m.as_slice());
            }
            for (s, q) in del {
                b.remove(&self.ks, &key(*s, *q)[..]);
            }
            if b.is_empty() {
                if sync {
                    self.sync();
                }
                return;
            }
            b.commit().expect("batch commit");
        }
        fn sync(&mut self) {
            self.db.persist(PersistMode::SyncData).expect("persist");
        }
        fn scan(&mut self, session: u64, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
            let mut out = Vec::new();
            for g in self.ks.range(key(session, after + 1)..=key(session, u64::MAX)).take(limit) {
                let (k, v) = g.into_inner().expect("row");
                let seq = u64::from_be_bytes(k[8..16].try_into().expect("key"));
                out.push((seq, v.to_vec()));
            }
            out
        }
        fn stats(&self) -> String {
            format!(
                "tables={} journals={} disk_space={}",
                self.ks.table_count(),
                self.db.journal_count(),
                self.db.disk_space().unwrap_or(0)
            )
        }
    }
}
#[cfg(feature = "fjall")]
pub use fjall_impl::Fjall;
