//! At most one log line per interval for events a packet can trigger.
//!
//! A sink that fails per datagram or per record would otherwise log at line rate. The caller
//! asks [`LogLimit::allow`] before logging; a `Some(suppressed)` answer carries how many
//! events were swallowed since the last line, so the line can report them.

use std::time::{Duration, Instant};

/// Interval used by the sinks for their rate-limited logs.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Rate limiter for one kind of log line.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub fn new(interval: Duration) -> Self {
        LogLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed)` when a line may be logged now, `None` (and one more suppressed
    /// event) otherwise.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(LOG_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_suppressed_count() {
        let mut limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.allow(t0), Some(0));
        assert_eq!(limit.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(limit.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(limit.allow(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(limit.allow(t0 + Duration::from_secs(11)), None);
        assert_eq!(limit.allow(t0 + Duration::from_secs(25)), Some(1));
    }
}
