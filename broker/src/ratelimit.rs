//! Rate-limited logging: a log line at most once per interval, saying how
//! many events it stands for, so that a flood of bad clients or refused
//! requests costs one line per interval, never one per event. The caller
//! passes the time (the router reads no clock of its own).

use std::time::{Duration, Instant};

/// How often a rate-limited line may be written.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts events; says when a line for them is due.
#[derive(Debug, Default)]
pub struct RateLimited {
    last: Option<Instant>,
    count: u64,
}

impl RateLimited {
    /// Counts an event at `now`; `Some(n)` when a line for the last `n`
    /// events (this one included) is due.
    pub fn event(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        if self.last.is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count() {
        let t0 = Instant::now();
        let mut r = RateLimited::default();
        assert_eq!(r.event(t0), Some(1));
        assert_eq!(r.event(t0 + Duration::from_secs(1)), None);
        assert_eq!(r.event(t0 + Duration::from_secs(9)), None);
        assert_eq!(r.event(t0 + LOG_EVERY), Some(3));
        assert_eq!(r.event(t0 + LOG_EVERY), None);
    }
}
