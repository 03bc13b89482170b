//! Kernel timestamps to wall-clock time.
//!
//! `bpf_ktime_get_ns()` reads CLOCK_MONOTONIC: nanoseconds since boot (without suspend), not
//! since the epoch. Sending it as a HEP timestamp would date every packet in 1970. The offset
//! between CLOCK_REALTIME and CLOCK_MONOTONIC is sampled at start and re-sampled every second,
//! so an NTP step or slew of the wall clock reaches the timestamps within a second.

use std::time::{Duration, Instant};

use crate::record::Timestamp;

/// How often the offset is sampled again.
const RESYNC: Duration = Duration::from_secs(1);

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds. The realtime read is bracketed by two
/// monotonic reads and the tightest of a few tries wins, so a preemption between the reads
/// does not skew the offset.
pub fn realtime_offset_ns() -> i128 {
    let mut best: Option<(i128, i128)> = None;
    for _ in 0..3 {
        let m0 = clock_ns(libc::CLOCK_MONOTONIC);
        let r = clock_ns(libc::CLOCK_REALTIME);
        let m1 = clock_ns(libc::CLOCK_MONOTONIC);
        let width = m1 - m0;
        let offset = r - (m0 + width / 2);
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, offset));
        }
    }
    best.map_or(0, |(_, o)| o)
}

/// Converts monotonic nanoseconds to epoch microseconds, re-syncing as time passes.
#[derive(Debug)]
pub struct MonotonicClock {
    offset_ns: i128,
    synced: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock {
            offset_ns: realtime_offset_ns(),
            synced: Instant::now(),
        }
    }
}

impl MonotonicClock {
    /// A clock with a fixed offset (tests).
    pub fn with_offset(offset_ns: i128) -> Self {
        MonotonicClock {
            offset_ns,
            synced: Instant::now() + Duration::from_secs(3600 * 24 * 365),
        }
    }

    /// Samples the offset again if the last sample is older than a second.
    pub fn maybe_resync(&mut self) {
        if self.synced.elapsed() >= RESYNC {
            self.offset_ns = realtime_offset_ns();
            self.synced = Instant::now();
        }
    }

    /// Wall-clock time of a `bpf_ktime_get_ns()` reading.
    pub fn to_wall(&self, monotonic_ns: u64) -> Timestamp {
        let ns = i128::from(monotonic_ns) + self.offset_ns;
        Timestamp(u64::try_from(ns.max(0) / 1_000).unwrap_or(u64::MAX))
    }
}

/// The current CLOCK_MONOTONIC reading in nanoseconds, as `bpf_ktime_get_ns()` would give it.
pub fn monotonic_now_ns() -> u64 {
    u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_with_the_offset_and_truncates_to_microseconds() {
        // 2026-12-04T00:00:00Z is 1_796_342_400 s after the epoch; boot 100 s before it.
        let boot_epoch_ns = (1_796_342_400i128 - 100) * 1_000_000_000;
        let clock = MonotonicClock::with_offset(boot_epoch_ns);
        let ts = clock.to_wall(100_000_001_999);
        assert_eq!(ts.secs(), 1_796_342_400);
        assert_eq!(ts.subsec_micros(), 1);
    }

    #[test]
    fn monotonic_now_lands_near_the_wall_clock() {
        let clock = MonotonicClock::default();
        let converted = clock.to_wall(monotonic_now_ns());
        let now = Timestamp::now();
        let diff = converted.0.abs_diff(now.0);
        // Both read within microseconds of each other; allow scheduling noise.
        assert!(diff < 50_000, "converted {converted:?} vs now {now:?}");
        // And it is epoch time, not time since boot.
        assert!(converted.secs() > 1_600_000_000);
    }
}
