//! [`FlashOutbox`] (feature `flash`): the outbox on NOR flash, through
//! `sequential-storage`'s power-fail-safe key-value map over
//! `embedded-storage-async`.
//!
//! Every record is a map item keyed by a sequence number that grows with
//! every accepted message. `push` stores the item before it returns (what
//! `publish` accepted is on flash), `add_flags` stores the record again with
//! its new flags (the map keeps the newest value of a key), `remove` removes
//! the item once the message is acknowledged. The inbound QoS 2 packet ids
//! are one more item. [`FlashOutbox::open`] rebuilds the outbox after a
//! reboot in sequence order, so messages are sent in the order they were
//! accepted. Reads are served from a RAM copy ([`RamOutbox`]), so the
//! outbox costs `N` bytes of RAM twice (copy and flash scratch buffer).
//!
//! The flash is driven to completion by polling each operation in place:
//! use a `NorFlash` whose futures complete without an executor (a blocking
//! driver behind the async trait, as the on-chip flash of most MCUs).
//! Removing items needs `MultiwriteNorFlash` (a word written twice).

use core::future::Future;
use core::ops::Range;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};

use crate::outbox::{parse_record, Entry, EntryMeta, OutboxStorage, RamOutbox, StorageFull};

/// No RAM cache: every lookup scans the flash range.
type NoCache = Cache<Uncached, Uncached, Uncached, u32>;

/// Map key of the inbound QoS 2 ids.
const INBOUND_KEY: u32 = u32::MAX;
/// Most inbound QoS 2 ids kept.
const MAX_INBOUND: usize = 16;

/// Runs a flash operation to completion.
fn run<T>(f: impl Future<Output = T>) -> T {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Why [`FlashOutbox::open`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The flash range is not a valid map (page alignment, fewer than two
    /// pages); a configuration error.
    BadRange,
    /// The flash reported an error, or its contents are not a map
    /// `sequential-storage` can read or repair.
    Flash,
    /// More messages, or a larger one, than this `FlashOutbox` type holds
    /// (opened with smaller `N` or `M` than it was written with).
    TooSmall,
}

/// The outbox kept in a NOR flash range: at most `M` messages and `N` bytes
/// (8 bytes of header per message, as [`RamOutbox`]).
pub struct FlashOutbox<F: MultiwriteNorFlash, const N: usize, const M: usize> {
    map: MapStorage<u32, F, NoCache>,
    ram: RamOutbox<N>,
    keys: heapless::Vec<u32, M>,
    next_key: u32,
    buf: [u8; N],
    inbound: heapless::Vec<u16, MAX_INBOUND>,
    flash_errors: u32,
}

impl<F: MultiwriteNorFlash, const N: usize, const M: usize> FlashOutbox<F, N, M> {
    /// Opens the outbox in `range` of `flash` (erased flash is an empty
    /// outbox) and rebuilds it from what is stored there.
    pub fn open(flash: F, range: Range<u32>) -> Result<Self, OpenError> {
        let cfg = MapConfig::try_new(range).map_err(|_| OpenError::BadRange)?;
        let mut s = FlashOutbox {
            map: MapStorage::new(flash, cfg, Cache::new_uncached()),
            ram: RamOutbox::new(),
            keys: heapless::Vec::new(),
            next_key: 0,
            buf: [0; N],
            inbound: heapless::Vec::new(),
            flash_errors: 0,
        };
        // Pass 1: the keys, in sequence order (an item is listed once per
        // stored version; the flash order is not the sequence order after
        // the map has moved items).
        let mut keys: heapless::Vec<u32, M> = heapless::Vec::new();
        {
            let mut scratch = [0u8; N];
            let mut it = run(s.map.fetch_all_items(&mut s.buf)).map_err(|_| OpenError::Flash)?;
            while let Some((key, _)) = run(it.next::<&[u8]>(&mut scratch)).map_err(|_| OpenError::Flash)? {
                if key == INBOUND_KEY || keys.contains(&key) {
                    continue;
                }
                let at = keys.iter().position(|&k| k > key).unwrap_or(keys.len());
                keys.insert(at, key).map_err(|_| OpenError::TooSmall)?;
            }
        }
        // Pass 2: the newest version of each record.
        for &key in &keys {
            let rec: Option<&[u8]> = run(s.map.fetch_item(&mut s.buf, &key)).map_err(|_| OpenError::Flash)?;
            let Some((e, _)) = rec.and_then(parse_record) else {
                continue;
            };
            s.ram.push(e.meta, topic_str(&e), e.payload).map_err(|_| OpenError::TooSmall)?;
            s.keys.push(key).map_err(|_| OpenError::TooSmall)?;
            s.next_key = key.wrapping_add(1);
        }
        let ids: Option<&[u8]> = run(s.map.fetch_item(&mut s.buf, &INBOUND_KEY)).map_err(|_| OpenError::Flash)?;
        for c in ids.unwrap_or(&[]).chunks_exact(2) {
            let _ = s.inbound.push(u16::from_le_bytes([c[0], c[1]]));
        }
        Ok(s)
    }

    /// Flash operations that failed after `publish` had been answered
    /// (flag updates and removals); such a message may be sent again (with
    /// DUP) after a reboot.
    pub fn flash_errors(&self) -> u32 {
        self.flash_errors
    }

    /// Stores the record at `index` of the RAM copy under its key.
    fn store(&mut self, index: usize) -> bool {
        let (Some(raw), Some(&key)) = (self.ram.raw(index), self.keys.get(index)) else {
            return false;
        };
        run(self.map.store_item(&mut self.buf, &key, &raw)).is_ok()
    }
}

/// The topic of a parsed record as `&str` (records hold checked UTF-8).
fn topic_str<'a>(e: &Entry<'a>) -> &'a str {
    e.topic.as_str()
}

impl<F: MultiwriteNorFlash, const N: usize, const M: usize> OutboxStorage for FlashOutbox<F, N, M> {
    fn len(&self) -> usize {
        self.ram.len()
    }

    fn push_parts(&mut self, meta: EntryMeta, topic: &str, parts: &[&[u8]]) -> Result<(), StorageFull> {
        if self.keys.is_full() || self.next_key == INBOUND_KEY {
            return Err(StorageFull);
        }
        self.ram.push_parts(meta, topic, parts)?;
        let index = self.ram.len() - 1;
        // Cannot fail: not full (checked above).
        let _ = self.keys.push(self.next_key);
        if !self.store(index) {
            // Not on flash, so not accepted.
            self.ram.remove(index);
            self.keys.pop();
            return Err(StorageFull);
        }
        self.next_key += 1;
        Ok(())
    }

    fn get(&self, index: usize) -> Option<Entry<'_>> {
        self.ram.get(index)
    }

    fn add_flags(&mut self, index: usize, flags: u8) {
        self.ram.add_flags(index, flags);
        if !self.store(index) {
            self.flash_errors += 1;
        }
    }

    fn remove(&mut self, index: usize) {
        let Some(&key) = self.keys.get(index) else { return };
        if run(self.map.remove_item(&mut self.buf, &key)).is_err() {
            self.flash_errors += 1;
        }
        self.ram.remove(index);
        self.keys.remove(index);
    }

    fn max_message_len(&self) -> usize {
        // A map item (4-byte key, 8-byte record header, topic, payload) must
        // fit one flash page besides the page states and the item header;
        // 96 bytes covers those for word sizes up to 16 bytes.
        let page = <F as embedded_storage_async::nor_flash::NorFlash>::ERASE_SIZE;
        self.ram.max_message_len().saturating_sub(64).min(page.saturating_sub(96))
    }

    fn save_inbound_qos2(&mut self, pids: &[u16]) {
        self.inbound.clear();
        let mut bytes = [0u8; 2 * MAX_INBOUND];
        for (i, &p) in pids.iter().take(MAX_INBOUND).enumerate() {
            let _ = self.inbound.push(p);
            bytes[2 * i..2 * i + 2].copy_from_slice(&p.to_le_bytes());
        }
        let v: &[u8] = &bytes[..2 * self.inbound.len()];
        let r = if v.is_empty() {
            run(self.map.remove_item(&mut self.buf, &INBOUND_KEY))
        } else {
            run(self.map.store_item(&mut self.buf, &INBOUND_KEY, &v))
        };
        if r.is_err() {
            self.flash_errors += 1;
        }
    }

    fn load_inbound_qos2(&self, out: &mut [u16]) -> usize {
        let n = self.inbound.len().min(out.len());
        out[..n].copy_from_slice(&self.inbound[..n]);
        n
    }
}
