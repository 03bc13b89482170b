//! `--hep-mode failover`: several HEP destinations, one active at a time.
//!
//! Batches go to the first destination, in the order given, that is healthy. A destination
//! whose batch lost records to a delivery failure (`sink_down`, `send_error`) is marked failed
//! and the same batch is offered to the next healthy one; a failed destination is tried again
//! after [`FAILOVER_COOL_DOWN`]. The failed member's counters keep the loss it saw; the backup's
//! count what it delivered, so a record rescued by a backup appears in both.

use std::time::{Duration, Instant};

use super::{Sink, SinkStats};
use crate::record::Record;

/// How long a failed destination is skipped before it is tried again.
pub const FAILOVER_COOL_DOWN: Duration = Duration::from_secs(10);

/// Destinations in priority order.
pub struct FailoverSink {
    name: String,
    members: Vec<Box<dyn Sink>>,
    failed_at: Vec<Option<Instant>>,
    active: Option<usize>,
    cool_down: Duration,
}

impl std::fmt::Debug for FailoverSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverSink")
            .field("name", &self.name)
            .field("active", &self.active)
            .finish()
    }
}

impl FailoverSink {
    pub fn new(members: Vec<Box<dyn Sink>>) -> Self {
        Self::with_cool_down(members, FAILOVER_COOL_DOWN)
    }

    pub fn with_cool_down(members: Vec<Box<dyn Sink>>, cool_down: Duration) -> Self {
        let names: Vec<&str> = members
            .iter()
            .map(|m| m.name().trim_start_matches("hep "))
            .collect();
        FailoverSink {
            name: format!("hep failover {}", names.join(" ")),
            failed_at: vec![None; members.len()],
            members,
            active: None,
            cool_down,
        }
    }

    fn healthy(&self, i: usize, now: Instant) -> bool {
        self.failed_at[i].is_none_or(|at| now.saturating_duration_since(at) >= self.cool_down)
    }
}

fn delivery_losses(stats: &SinkStats) -> u64 {
    ["sink_down", "send_error"]
        .iter()
        .filter_map(|r| stats.dropped.get(r))
        .sum()
}

impl Sink for FailoverSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send_batch(&mut self, batch: &[Record]) {
        let now = Instant::now();
        for i in 0..self.members.len() {
            if !self.healthy(i, now) {
                continue;
            }
            let before = delivery_losses(&self.members[i].stats());
            self.members[i].send_batch(batch);
            let lost = delivery_losses(&self.members[i].stats()) > before;
            if !lost {
                self.failed_at[i] = None;
                if self.active != Some(i) {
                    tracing::info!(
                        sink = %self.name,
                        destination = self.members[i].name(),
                        "failover: sending to this destination"
                    );
                    self.active = Some(i);
                }
                return;
            }
            self.failed_at[i] = Some(Instant::now());
            tracing::warn!(
                sink = %self.name,
                destination = self.members[i].name(),
                "failover: destination failed, trying the next"
            );
        }
    }

    fn idle(&mut self) -> Option<bool> {
        // Members keep their own housekeeping; the group's health is judged by batches.
        for m in &mut self.members {
            m.idle();
        }
        None
    }

    fn flush(&mut self) {
        for m in &mut self.members {
            m.flush();
        }
    }

    fn stats(&self) -> SinkStats {
        let mut total = SinkStats::default();
        for m in &self.members {
            let s = m.stats();
            total.records_sent += s.records_sent;
            total.bytes_sent += s.bytes_sent;
            total.errors += s.errors;
            total.retries += s.retries;
            total.resent += s.resent;
            total.spooled += s.spooled;
            for (reason, n) in s.dropped {
                *total.dropped.entry(reason).or_default() += n;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails (counts `sink_down`) while `down`, records what it took otherwise.
    struct Fake {
        name: String,
        down: bool,
        stats: SinkStats,
    }

    impl Sink for Fake {
        fn name(&self) -> &str {
            &self.name
        }
        fn send_batch(&mut self, batch: &[Record]) {
            if self.down {
                *self.stats.dropped.entry("sink_down").or_default() += 1;
            } else {
                self.stats.records_sent += batch.len() as u64;
            }
        }
        fn flush(&mut self) {}
        fn stats(&self) -> SinkStats {
            self.stats.clone()
        }
    }

    fn fake(name: &str, down: bool) -> Box<dyn Sink> {
        Box::new(Fake {
            name: name.into(),
            down,
            stats: SinkStats::default(),
        })
    }

    #[test]
    fn the_first_healthy_destination_gets_the_batch() {
        let mut f = FailoverSink::with_cool_down(
            vec![fake("hep a", true), fake("hep b", false)],
            Duration::from_secs(60),
        );
        f.send_batch(&[]);
        assert_eq!(f.active, Some(1));
        assert!(f.failed_at[0].is_some());
        // The failed primary is skipped during its cool-down.
        f.send_batch(&[]);
        assert_eq!(f.active, Some(1));
    }
}
