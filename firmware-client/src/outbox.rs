//! The outbox: device-side store-and-forward of outbound PUBLISH messages.
//!
//! This module owns the [`OutboxStorage`] trait (how messages are kept) and
//! two implementations: [`RamOutbox`], a compacting byte array in RAM, and
//! [`SimFlashOutbox`], an append-only, flash-like log that survives a
//! simulated reboot and serves as a model for real flash-backed storage.
//!
//! The client core owns the *policy*: which entry to send next, when an entry
//! is acknowledged and removed. Storage only keeps records in FIFO order.

use crate::codec::{QoS, Topic};

/// Entry flag: transmitted at least once (retransmit with DUP).
pub const FLAG_SENT: u8 = 0x01;
/// Entry flag: QoS 2 PUBREC received (send PUBREL, await PUBCOMP).
pub const FLAG_PUBREC: u8 = 0x02;

/// Metadata stored with each outbox message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Delivery QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Packet identifier (0 for QoS 0).
    pub pid: u16,
    /// The stored payload starts with the client's MQTT 5 extras block
    /// (queue time, message expiry, properties); set by `publish_with`.
    pub props: bool,
    /// Delivery progress, a combination of [`FLAG_SENT`] and [`FLAG_PUBREC`].
    /// Flags are only ever added, never cleared, so flash implementations can
    /// update them in place by clearing bits.
    pub flags: u8,
}

/// A stored message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Metadata.
    pub meta: EntryMeta,
    /// Topic name.
    pub topic: Topic<'a>,
    /// Payload.
    pub payload: &'a [u8],
}

/// The storage has no room for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageFull;

/// FIFO storage of outbound messages. Implement it over flash to keep the
/// outbox across reboots.
///
/// Indices are positions in FIFO order (0 = oldest) and shift down on
/// [`remove`](OutboxStorage::remove). Implementations must keep every
/// accepted message until it is removed, and must persist `push`, `add_flags`
/// and `remove` before returning if they promise durability.
pub trait OutboxStorage {
    /// Number of stored messages.
    fn len(&self) -> usize;
    /// True if no message is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends a message at the end.
    fn push(&mut self, meta: EntryMeta, topic: &str, payload: &[u8]) -> Result<(), StorageFull> {
        self.push_parts(meta, topic, &[payload])
    }
    /// Appends a message whose stored payload is the concatenation of
    /// `parts`.
    fn push_parts(&mut self, meta: EntryMeta, topic: &str, parts: &[&[u8]]) -> Result<(), StorageFull>;
    /// The message at `index`, if any.
    fn get(&self, index: usize) -> Option<Entry<'_>>;
    /// ORs `flags` into the message's flags.
    fn add_flags(&mut self, index: usize, flags: u8);
    /// Removes the message at `index`, keeping the order of the others.
    fn remove(&mut self, index: usize);
    /// Largest message (topic + payload bytes) this storage could ever hold
    /// when empty.
    fn max_message_len(&self) -> usize;
    /// Persists the packet ids of inbound QoS 2 messages received and not
    /// yet released (called whenever the set changes, before the message is
    /// reported). Default: not persisted.
    fn save_inbound_qos2(&mut self, _pids: &[u16]) {}
    /// The ids saved by [`save_inbound_qos2`](Self::save_inbound_qos2)
    /// before a reboot, copied into `out`; returns how many. Default: none.
    fn load_inbound_qos2(&self, _out: &mut [u16]) -> usize {
        0
    }
}

/// A borrowed outbox works too, so the storage can live in a `static`.
impl<S: OutboxStorage + ?Sized> OutboxStorage for &mut S {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn push_parts(&mut self, meta: EntryMeta, topic: &str, parts: &[&[u8]]) -> Result<(), StorageFull> {
        (**self).push_parts(meta, topic, parts)
    }
    fn get(&self, index: usize) -> Option<Entry<'_>> {
        (**self).get(index)
    }
    fn add_flags(&mut self, index: usize, flags: u8) {
        (**self).add_flags(index, flags)
    }
    fn remove(&mut self, index: usize) {
        (**self).remove(index)
    }
    fn max_message_len(&self) -> usize {
        (**self).max_message_len()
    }
    fn save_inbound_qos2(&mut self, pids: &[u16]) {
        (**self).save_inbound_qos2(pids)
    }
    fn load_inbound_qos2(&self, out: &mut [u16]) -> usize {
        (**self).load_inbound_qos2(out)
    }
}

const HDR: usize = 8;

fn encode_hdr(meta: &EntryMeta, topic_len: usize, payload_len: usize) -> Option<[u8; HDR]> {
    let t = u16::try_from(topic_len).ok()?.to_le_bytes();
    let p = u16::try_from(payload_len).ok()?.to_le_bytes();
    let pid = meta.pid.to_le_bytes();
    let q = meta.qos as u8 | if meta.retain { 4 } else { 0 } | if meta.props { 8 } else { 0 };
    Some([q, meta.flags, pid[0], pid[1], t[0], t[1], p[0], p[1]])
}

fn parts_len(parts: &[&[u8]]) -> usize {
    parts.iter().map(|p| p.len()).sum()
}

/// Copies `parts` one after another into `dst` (exactly their total length).
fn copy_parts(parts: &[&[u8]], dst: &mut [u8]) {
    let mut off = 0;
    for p in parts {
        if let Some(d) = dst.get_mut(off..off + p.len()) {
            d.copy_from_slice(p);
        }
        off += p.len();
    }
}

/// Length of the record starting at `buf[0]`, if it is complete (cheap: no
/// topic validation, for walking the log).
fn record_len(buf: &[u8]) -> Option<usize> {
    let h = buf.get(..HDR)?;
    let len = HDR + u16::from_le_bytes([h[4], h[5]]) as usize + u16::from_le_bytes([h[6], h[7]]) as usize;
    (len <= buf.len()).then_some(len)
}

/// Parses the record starting at `buf[0]`; returns the entry and its length.
pub(crate) fn parse_record(buf: &[u8]) -> Option<(Entry<'_>, usize)> {
    let h = buf.get(..HDR)?;
    let tl = u16::from_le_bytes([h[4], h[5]]) as usize;
    let pl = u16::from_le_bytes([h[6], h[7]]) as usize;
    let topic = Topic::new(buf.get(HDR..HDR + tl)?)?;
    let payload = buf.get(HDR + tl..HDR + tl + pl)?;
    let meta = EntryMeta {
        qos: QoS::from_u8(h[0] & 3)?,
        retain: h[0] & 4 != 0,
        props: h[0] & 8 != 0,
        pid: u16::from_le_bytes([h[2], h[3]]),
        flags: h[1],
    };
    Some((Entry { meta, topic, payload }, HDR + tl + pl))
}

/// Outbox in a fixed `N`-byte RAM array. Each message costs 8 bytes of
/// header plus topic and payload; removal compacts the array.
pub struct RamOutbox<const N: usize> {
    buf: [u8; N],
    used: usize,
    count: usize,
}

impl<const N: usize> Default for RamOutbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RamOutbox<N> {
    /// An empty outbox.
    pub const fn new() -> Self {
        RamOutbox { buf: [0; N], used: 0, count: 0 }
    }

    /// Bytes in use (headers included).
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// The stored record (header, topic, payload) at `index`.
    #[cfg(feature = "flash")]
    pub(crate) fn raw(&self, index: usize) -> Option<&[u8]> {
        let (off, len) = self.locate(index)?;
        self.buf.get(off..off + len)
    }

    /// Byte offset and length of the record at `index`.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        let mut off = 0;
        for i in 0..self.count {
            let len = record_len(self.buf.get(off..self.used)?)?;
            if i == index {
                return Some((off, len));
            }
            off += len;
        }
        None
    }
}

impl<const N: usize> OutboxStorage for RamOutbox<N> {
    fn len(&self) -> usize {
        self.count
    }

    fn push_parts(&mut self, meta: EntryMeta, topic: &str, parts: &[&[u8]]) -> Result<(), StorageFull> {
        let len = parts_len(parts);
        let hdr = encode_hdr(&meta, topic.len(), len).ok_or(StorageFull)?;
        let end = self.used + HDR + topic.len() + len;
        let dst = self.buf.get_mut(self.used..end).ok_or(StorageFull)?;
        let (h, rest) = dst.split_at_mut(HDR);
        let (t, p) = rest.split_at_mut(topic.len());
        h.copy_from_slice(&hdr);
        t.copy_from_slice(topic.as_bytes());
        copy_parts(parts, p);
        self.used = end;
        self.count += 1;
        Ok(())
    }

    fn get(&self, index: usize) -> Option<Entry<'_>> {
        let (off, _) = self.locate(index)?;
        parse_record(self.buf.get(off..self.used)?).map(|(e, _)| e)
    }

    fn add_flags(&mut self, index: usize, flags: u8) {
        if let Some((off, _)) = self.locate(index) {
            if let Some(f) = self.buf.get_mut(off + 1) {
                *f |= flags;
            }
        }
    }

    fn remove(&mut self, index: usize) {
        if let Some((off, len)) = self.locate(index) {
            crate::codec::shift_left(&mut self.buf[off..], len, self.used - off);
            self.used -= len;
            self.count -= 1;
        }
    }

    fn max_message_len(&self) -> usize {
        N.saturating_sub(HDR)
    }
}

// Record states in the simulated flash log. Erased flash reads 0xFF; every
// transition only clears bits, as NOR flash allows without an erase.
const SLOT_ERASED: u8 = 0xff;
const SLOT_VALID: u8 = 0x7f;
const SLOT_DELETED: u8 = 0x3f;

/// A flash-like outbox for tests and as a template for real flash storage.
///
/// Records are appended to an `N`-byte image that starts erased (0xFF);
/// deleting a record and adding flags only clear bits in place. When the
/// image is full, live records are compacted (an "erase" cycle, counted in
/// [`erase_count`](SimFlashOutbox::erase_count)). [`image`](Self::image) and
/// [`from_image`](Self::from_image) simulate a power cycle: everything not in
/// the image is lost, and the outbox is rebuilt by scanning the log.
pub struct SimFlashOutbox<const N: usize> {
    image: [u8; N],
    /// End of the written part of the log.
    head: usize,
    live: usize,
    erases: u32,
}

impl<const N: usize> Default for SimFlashOutbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SimFlashOutbox<N> {
    /// A freshly erased flash region.
    pub const fn new() -> Self {
        SimFlashOutbox { image: [SLOT_ERASED; N], head: 0, live: 0, erases: 0 }
    }

    /// The raw flash contents: what survives a reboot.
    pub fn image(&self) -> &[u8; N] {
        &self.image
    }

    /// Rebuilds the outbox from flash contents after a (simulated) reboot.
    /// A torn record at the end of the log is ignored.
    pub fn from_image(image: [u8; N]) -> Self {
        let mut s = SimFlashOutbox { image, head: 0, live: 0, erases: 0 };
        while let Some((state, len)) = s.slot(s.head) {
            if state == SLOT_VALID {
                s.live += 1;
            }
            s.head += len;
        }
        s
    }

    /// Number of compaction ("erase") cycles so far.
    pub fn erase_count(&self) -> u32 {
        self.erases
    }

    /// State byte and total length of the slot at `off`, if a complete
    /// written slot is there.
    fn slot(&self, off: usize) -> Option<(u8, usize)> {
        let state = *self.image.get(off)?;
        if state != SLOT_VALID && state != SLOT_DELETED {
            return None;
        }
        let len = record_len(self.image.get(off + 1..)?)?;
        Some((state, 1 + len))
    }

    /// Offset of the `index`th live slot.
    fn locate(&self, index: usize) -> Option<usize> {
        let mut off = 0;
        let mut i = 0;
        while off < self.head {
            let (state, len) = self.slot(off)?;
            if state == SLOT_VALID {
                if i == index {
                    return Some(off);
                }
                i += 1;
            }
            off += len;
        }
        None
    }

    fn compact(&mut self) {
        let mut read = 0;
        let mut write = 0;
        while read < self.head {
            let Some((state, len)) = self.slot(read) else {
                break;
            };
            if state == SLOT_VALID {
                self.image.copy_within(read..read + len, write);
                write += len;
            }
            read += len;
        }
        for b in &mut self.image[write..] {
            *b = SLOT_ERASED;
        }
        self.head = write;
        self.erases += 1;
    }
}

impl<const N: usize> OutboxStorage for SimFlashOutbox<N> {
    fn len(&self) -> usize {
        self.live
    }

    fn push_parts(&mut self, meta: EntryMeta, topic: &str, parts: &[&[u8]]) -> Result<(), StorageFull> {
        let len = parts_len(parts);
        let hdr = encode_hdr(&meta, topic.len(), len).ok_or(StorageFull)?;
        let need = 1 + HDR + topic.len() + len;
        if self.head + need > N {
            self.compact();
        }
        if self.head + need > N {
            return Err(StorageFull);
        }
        let off = self.head;
        // Write the body first and the state byte last, as real flash code
        // must, so a torn write is never taken for a valid record.
        self.image[off + 1..off + 1 + HDR].copy_from_slice(&hdr);
        let t = off + 1 + HDR;
        self.image[t..t + topic.len()].copy_from_slice(topic.as_bytes());
        let p = t + topic.len();
        copy_parts(parts, &mut self.image[p..p + len]);
        self.image[off] = SLOT_VALID;
        self.head += need;
        self.live += 1;
        Ok(())
    }

    fn get(&self, index: usize) -> Option<Entry<'_>> {
        let off = self.locate(index)?;
        parse_record(self.image.get(off + 1..)?).map(|(e, _)| e)
    }

    fn add_flags(&mut self, index: usize, flags: u8) {
        if let Some(off) = self.locate(index) {
            // Stored flags are kept as-is; adding bits is the in-RAM model of
            // "clear bits of an inverted flag byte" on real flash.
            self.image[off + 2] |= flags;
        }
    }

    fn remove(&mut self, index: usize) {
        if let Some(off) = self.locate(index) {
            self.image[off] = SLOT_DELETED;
            self.live -= 1;
        }
    }

    fn max_message_len(&self) -> usize {
        N.saturating_sub(1 + HDR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pid: u16) -> EntryMeta {
        EntryMeta { qos: QoS::AtLeastOnce, retain: false, props: false, pid, flags: 0 }
    }

    fn exercise<S: OutboxStorage>(s: &mut S) {
        for i in 1..=5u16 {
            s.push(meta(i), "t/x", &[i as u8; 10]).unwrap();
        }
        assert_eq!(s.len(), 5);
        s.remove(1);
        s.add_flags(1, FLAG_SENT);
        let pids: Vec<u16> = (0..s.len()).map(|i| s.get(i).unwrap().meta.pid).collect();
        assert_eq!(pids, [1, 3, 4, 5]);
        assert_eq!(s.get(1).unwrap().meta.flags, FLAG_SENT);
        assert_eq!(s.get(3).unwrap().payload, &[5u8; 10]);
        assert!(s.get(4).is_none());
    }

    extern crate std;
    use std::vec::Vec;

    #[test]
    fn ram_outbox() {
        let mut s = RamOutbox::<110>::new();
        exercise(&mut s);
        // 4 * 21 bytes used; another 21 fits, then full.
        s.push(meta(9), "t/x", &[0; 10]).unwrap();
        assert_eq!(s.push(meta(10), "t/x", &[0; 10]), Err(StorageFull));
    }

    #[test]
    fn sim_flash_reboot() {
        let mut s = SimFlashOutbox::<160>::new();
        exercise(&mut s);
        let img = *s.image();
        let r = SimFlashOutbox::from_image(img);
        assert_eq!(r.len(), 4);
        assert_eq!(r.get(0).unwrap().meta.pid, 1);
        assert_eq!(r.get(1).unwrap().meta.flags, FLAG_SENT);
        // Fill to force compaction.
        let mut r = r;
        for i in 0..3u16 {
            r.push(meta(20 + i), "t/x", &[0; 10]).unwrap();
        }
        assert!(r.erase_count() >= 1);
        // A write torn before its state byte was programmed is not a record.
        let mut torn = SimFlashOutbox::<160>::new();
        torn.push(meta(1), "t/x", &[1; 10]).unwrap();
        torn.push(meta(2), "t/x", &[2; 10]).unwrap();
        let mut img = *torn.image();
        img[22] = SLOT_ERASED;
        let after = SimFlashOutbox::from_image(img);
        assert_eq!(after.len(), 1);
        assert_eq!(after.get(0).unwrap().meta.pid, 1);
        assert_eq!(r.len(), 7);
        assert_eq!(r.get(6).unwrap().meta.pid, 22);
    }
}
