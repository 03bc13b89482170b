//! Per-sink delivery policy: a token-bucket rate limit and a circuit breaker.
//!
//! Both are plain state machines fed an explicit `now`; the sink worker owns them and does the
//! sleeping and counting. The breaker judges a batch by what the sink counted while sending
//! it: records dropped as `sink_down` or `send_error` make a failure, anything else a success.

use std::time::{Duration, Instant};

/// What to do with records over the rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RatePolicy {
    /// Wait for tokens: the sink's queue absorbs the excess, then `queue_full` drops.
    Delay,
    /// Drop the excess at once, counted `rate_limited`.
    Drop,
}

/// Rate limit of one sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Records per second.
    pub per_second: u64,
    pub policy: RatePolicy,
}

/// Token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket holding a tenth of a second of tokens (at least one), full at `now`.
    pub fn new(per_second: f64, now: Instant) -> Self {
        let burst = (per_second / 10.0).max(1.0);
        TokenBucket {
            rate: per_second.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes up to `n` tokens; returns how many were granted.
    pub fn take(&mut self, n: usize, now: Instant) -> usize {
        self.refill(now);
        let granted = (self.tokens.floor() as usize).min(n);
        self.tokens -= granted as f64;
        granted
    }

    /// How long until `n` tokens (at most a burst) are available.
    pub fn wait_for(&mut self, n: usize, now: Instant) -> Duration {
        self.refill(now);
        let want = (n as f64).min(self.burst);
        if self.tokens >= want {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((want - self.tokens) / self.rate)
        }
    }
}

/// Breaker settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed batches that open the breaker.
    pub failures: u32,
    /// Time open before one probe batch is let through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// Breaker state; the metric value is the discriminant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// Circuit breaker of one sink.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            state: BreakerState::Closed,
            failures: 0,
            opened_at: None,
        }
    }

    /// True while open (a probe has not been let through yet).
    pub fn is_open(&self) -> bool {
        self.state == BreakerState::Open
    }

    /// May a batch go to the sink now? An open breaker past its cool-down turns half-open and
    /// lets one probe through. Returns the new state when it changed.
    pub fn admit(&mut self, now: Instant) -> (bool, Option<BreakerState>) {
        match self.state {
            BreakerState::Closed | BreakerState::HalfOpen => (true, None),
            BreakerState::Open => {
                let due = self
                    .opened_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= self.config.cool_down);
                if due {
                    self.state = BreakerState::HalfOpen;
                    (true, Some(BreakerState::HalfOpen))
                } else {
                    (false, None)
                }
            }
        }
    }

    /// Records a batch's outcome; returns the new state when it changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<BreakerState> {
        let before = self.state;
        if ok {
            self.failures = 0;
            self.state = BreakerState::Closed;
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.state == BreakerState::HalfOpen || self.failures >= self.config.failures {
                self.state = BreakerState::Open;
                self.opened_at = Some(now);
            }
        }
        (self.state != before).then_some(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_grants_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, t0);
        assert_eq!(b.take(500, t0), 100, "a tenth of a second of burst");
        assert_eq!(b.take(10, t0), 0);
        let mut granted = 0;
        for ms in 1..=1000 {
            granted += b.take(5, t0 + Duration::from_millis(ms));
        }
        assert!((995..=1001).contains(&granted), "{granted}");
        assert!(b.wait_for(50, t0 + Duration::from_millis(1000)) > Duration::ZERO);
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let t0 = Instant::now();
        let cfg = BreakerConfig {
            failures: 3,
            cool_down: Duration::from_secs(1),
        };
        let mut b = Breaker::new(cfg);
        assert_eq!(b.record(false, t0), None);
        assert_eq!(b.record(false, t0), None);
        assert_eq!(b.record(false, t0), Some(BreakerState::Open));
        assert_eq!(b.admit(t0 + Duration::from_millis(500)), (false, None));
        assert_eq!(
            b.admit(t0 + Duration::from_secs(1)),
            (true, Some(BreakerState::HalfOpen))
        );
        // A failed probe opens it again at once.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.record(false, t1), Some(BreakerState::Open));
        assert_eq!(b.admit(t1 + Duration::from_millis(10)), (false, None));
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(b.admit(t2), (true, Some(BreakerState::HalfOpen)));
        assert_eq!(b.record(true, t2), Some(BreakerState::Closed));
        assert_eq!(b.record(true, t2), None);
    }
}
