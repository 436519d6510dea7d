//! Topic alias tables (MQTT 5) in a caller-provided byte buffer: records of
//! `[alias u16][len u16][topic bytes]`, looked up by alias or by topic.
//! Aliases live for one network connection, so the client clears both
//! tables on every connect.

use crate::codec::shift_left;

/// A table of topic aliases stored in `buf`.
pub(crate) struct AliasTable<'b> {
    buf: &'b mut [u8],
    used: usize,
}

impl<'b> AliasTable<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        AliasTable { buf, used: 0 }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn clear(&mut self) {
        self.used = 0;
    }

    /// Iterates `(offset, alias, topic range)` over the records.
    fn records(&self) -> impl Iterator<Item = (usize, u16, core::ops::Range<usize>)> + '_ {
        let mut off = 0;
        core::iter::from_fn(move || {
            let h = self.buf.get(off..off + 4).filter(|_| off + 4 <= self.used)?;
            let alias = u16::from_le_bytes([h[0], h[1]]);
            let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
            let rec = (off, alias, off + 4..off + 4 + len);
            off += 4 + len;
            Some(rec)
        })
    }

    /// The topic mapped to `alias`.
    pub(crate) fn topic(&self, alias: u16) -> Option<&[u8]> {
        let (_, _, r) = self.records().find(|(_, a, _)| *a == alias)?;
        self.buf.get(r)
    }

    /// The alias of `topic`.
    pub(crate) fn alias_of(&self, topic: &[u8]) -> Option<u16> {
        self.records().find(|(_, _, r)| self.buf.get(r.clone()) == Some(topic)).map(|(_, a, _)| a)
    }

    /// Number of aliases in use.
    pub(crate) fn len(&self) -> usize {
        self.records().count()
    }

    /// Maps `alias` to `topic`, replacing an older mapping of `alias`.
    /// False if it does not fit (the old mapping is then gone too).
    pub(crate) fn insert(&mut self, alias: u16, topic: &[u8]) -> bool {
        let old = self.records().find(|(_, a, _)| *a == alias).map(|(off, _, r)| (off, r.end - off));
        if let Some((off, len)) = old {
            shift_left(&mut self.buf[off..self.used], len, self.used - off);
            self.used -= len;
        }
        let Ok(n) = u16::try_from(topic.len()) else { return false };
        let end = self.used + 4 + topic.len();
        let Some(dst) = self.buf.get_mut(self.used..end) else { return false };
        let (h, t) = dst.split_at_mut(4);
        let (a, n) = (alias.to_le_bytes(), n.to_le_bytes());
        h.copy_from_slice(&[a[0], a[1], n[0], n[1]]);
        t.copy_from_slice(topic);
        self.used = end;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_lookup_replace() {
        let mut buf = [0u8; 24];
        let mut t = AliasTable::new(&mut buf);
        assert!(t.insert(1, b"a/b/c"));
        assert!(t.insert(2, b"x"));
        assert_eq!(t.topic(1), Some(&b"a/b/c"[..]));
        assert_eq!(t.alias_of(b"x"), Some(2));
        assert!(t.insert(1, b"longer/topic"));
        assert_eq!(t.topic(1), Some(&b"longer/topic"[..]));
        assert_eq!(t.topic(2), Some(&b"x"[..]));
        assert_eq!(t.len(), 2);
        assert!(!t.insert(3, b"does-not-fit"));
        t.clear();
        assert_eq!(t.topic(1), None);
    }
}
