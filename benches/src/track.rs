//! Bookkeeping of what a subscriber received: per publisher, which
//! sequence numbers were seen (duplicates) and whether they came in order.

/// Per-publisher record of received sequence numbers.
#[derive(Debug, Default, Clone)]
struct PerPublisher {
    seen: Vec<u64>,
    max: Option<u64>,
    duplicates: u64,
    out_of_order: u64,
}

/// Counts of one subscriber.
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    pubs: Vec<PerPublisher>,
    per_publisher: u64,
    /// Distinct (publisher, seq) pairs received.
    pub unique: u64,
    /// Every PUBLISH received, duplicates included.
    pub received: u64,
    /// A (publisher, seq) pair received again.
    pub duplicates: u64,
    /// A message with a lower sequence number than one already received
    /// from the same publisher.
    pub out_of_order: u64,
    /// Payloads naming an unknown publisher or a sequence number out of range.
    pub foreign: u64,
}

impl Tracker {
    /// A tracker for `publishers` publishers sending `per_publisher` each.
    pub fn new(publishers: usize, per_publisher: u64) -> Tracker {
        let words = per_publisher.div_ceil(64) as usize;
        Tracker {
            pubs: vec![PerPublisher { seen: vec![0; words], max: None, duplicates: 0, out_of_order: 0 }; publishers],
            per_publisher,
            ..Tracker::default()
        }
    }

    pub fn record(&mut self, publisher: u32, seq: u64) {
        self.received += 1;
        let Some(p) = self.pubs.get_mut(publisher as usize).filter(|_| seq < self.per_publisher) else {
            self.foreign += 1;
            return;
        };
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        let Some(word) = p.seen.get_mut(w) else {
            self.foreign += 1;
            return;
        };
        if *word & bit != 0 {
            self.duplicates += 1;
            p.duplicates += 1;
            return;
        }
        *word |= bit;
        self.unique += 1;
        match p.max {
            Some(m) if seq < m => {
                self.out_of_order += 1;
                p.out_of_order += 1;
            }
            _ => p.max = Some(seq),
        }
    }

    /// Publishers that had at least one duplicate.
    pub fn publishers_with_duplicates(&self) -> usize {
        self.pubs.iter().filter(|p| p.duplicates > 0).count()
    }

    /// Publishers that had at least one message out of order.
    pub fn publishers_out_of_order(&self) -> usize {
        self.pubs.iter().filter(|p| p.out_of_order > 0).count()
    }

    /// Per publisher: (distinct messages received, duplicates, out of order).
    pub fn per_publisher(&self) -> Vec<(u64, u64, u64)> {
        self.pubs
            .iter()
            .map(|p| (p.seen.iter().map(|w| u64::from(w.count_ones())).sum(), p.duplicates, p.out_of_order))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let mut t = Tracker::new(2, 100);
        for s in [0, 1, 3, 2, 3, 99] {
            t.record(0, s);
        }
        t.record(1, 0);
        t.record(2, 0);
        t.record(1, 100);
        assert_eq!((t.received, t.unique, t.duplicates, t.out_of_order, t.foreign), (9, 6, 1, 1, 2));
        assert_eq!(t.per_publisher(), vec![(5, 1, 1), (1, 0, 0)]);
        assert_eq!((t.publishers_with_duplicates(), t.publishers_out_of_order()), (1, 1));
    }
}
