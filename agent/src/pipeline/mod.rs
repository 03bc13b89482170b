//! The pipeline every source feeds: a bounded ring, a dispatcher, and one worker per sink.
//!
//! ```text
//! sources ──push──▶ Ring (bounded, lock-free) ──▶ dispatcher ──▶ per-sink queue ──▶ sink thread
//! ```
//!
//! Memory is bounded at every hop: the ring holds at most `ring_capacity` records and each sink
//! queue at most `sink_queue_batches` batches. What happens at a bound is the [`WhenFull`]
//! policy, and every record dropped is counted with its reason and source. A slow sink fills
//! only its own queue: the others keep receiving.

mod delivery;
mod ring;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use delivery::{BreakerConfig, BreakerState, RateLimit, RatePolicy};
pub use ring::{DropCounts, Ring, WhenFull};
use worker::SinkWorker;

use crate::record::Record;
use crate::sink::{Sink, SinkStats};
use crate::telemetry::metrics::{self, SipMetrics};

/// Copies the ring's depth, capacity and drop counts into the registry before each scrape.
fn register_ring_probe(ring: &Arc<Ring>) {
    let weak = Arc::downgrade(ring);
    ::metrics::gauge!(metrics::RING_CAPACITY).set(ring.capacity() as f64);
    metrics::add_probe(Box::new(move || {
        let Some(ring) = weak.upgrade() else { return };
        ::metrics::gauge!(metrics::RING_DEPTH).set(ring.len() as f64);
        for ((source, reason), n) in ring.drops() {
            ::metrics::counter!(metrics::PIPELINE_DROPS, "source" => source, "reason" => reason)
                .absolute(n);
        }
    }));
}

/// Sizes and policies of a pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Records the ring holds.
    pub ring_capacity: usize,
    /// What a full ring (or a full sink queue) does to a new record.
    pub when_full: WhenFull,
    /// Records per batch handed to a sink.
    pub batch_size: usize,
    /// Batches waiting per sink before its queue counts as full.
    pub sink_queue_batches: usize,
    /// A batch that is not full leaves this long after its first record (zero: at once).
    pub batch_timeout: Duration,
    /// How long [`Pipeline::finish`] lets the sinks drain before what is left is dropped and
    /// counted as `shutdown`.
    pub shutdown_timeout: Duration,
    /// Rate limit of each HEP sink (sinks named `hep …`); `None`: unlimited.
    pub hep_rate_limit: Option<RateLimit>,
    /// Circuit breaker of every sink; `None`: no breaker.
    pub breaker: Option<BreakerConfig>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            ring_capacity: 65_536,
            when_full: WhenFull::DropNewest,
            batch_size: 64,
            sink_queue_batches: 1024,
            batch_timeout: Duration::from_millis(1),
            shutdown_timeout: Duration::from_secs(10),
            hep_rate_limit: None,
            breaker: Some(BreakerConfig::default()),
        }
    }
}

/// A running pipeline: push records, then [`Pipeline::finish`] to drain and collect stats.
#[derive(Debug)]
pub struct Pipeline {
    ring: Arc<Ring>,
    closed: Arc<AtomicBool>,
    /// Set when the shutdown timeout passed: the rest is counted, not delivered.
    abort: Arc<AtomicBool>,
    shutdown_timeout: Duration,
    dispatcher: Option<JoinHandle<Vec<SinkWorker>>>,
}

/// What a pipeline did, gathered when it finishes.
#[derive(Clone, Debug, Default)]
pub struct PipelineStats {
    /// Records dropped at the ring, by (source, reason).
    pub ring_drops: DropCounts,
    /// Per sink: name, delivery stats (including `queue_full` drops).
    pub sinks: Vec<(String, SinkStats)>,
}

impl Pipeline {
    /// Starts the dispatcher and one thread per sink.
    pub fn start(config: &PipelineConfig, sinks: Vec<Box<dyn Sink>>) -> std::io::Result<Self> {
        let ring = Arc::new(Ring::new(config.ring_capacity, config.when_full));
        let closed = Arc::new(AtomicBool::new(false));
        let abort = Arc::new(AtomicBool::new(false));
        register_ring_probe(&ring);
        let mut workers = Vec::with_capacity(sinks.len());
        for (index, sink) in sinks.into_iter().enumerate() {
            let policy = worker::Policy {
                rate: config
                    .hep_rate_limit
                    .filter(|_| sink.name().starts_with("hep ")),
                breaker: config.breaker,
            };
            workers.push(SinkWorker::spawn(
                sink,
                index,
                config.sink_queue_batches,
                Arc::clone(&abort),
                policy,
            )?);
        }
        let dispatcher = {
            let ring = Arc::clone(&ring);
            let flags = Flags {
                closed: Arc::clone(&closed),
                abort: Arc::clone(&abort),
            };
            let batching = Batching {
                size: config.batch_size.max(1),
                timeout: config.batch_timeout,
                block: config.when_full == WhenFull::Block,
            };
            std::thread::Builder::new()
                .name("hepcap-dispatch".into())
                .spawn(move || dispatch(&ring, &flags, workers, batching))?
        };
        ring.set_consumer(dispatcher.thread().clone());
        Ok(Pipeline {
            ring,
            closed,
            abort,
            shutdown_timeout: config.shutdown_timeout,
            dispatcher: Some(dispatcher),
        })
    }

    /// The ring, for sources running on other threads.
    pub fn ring(&self) -> Arc<Ring> {
        Arc::clone(&self.ring)
    }

    /// Offers one decoded record (see [`Ring::push`]), counted as decoder output.
    pub fn push(&self, record: Record) {
        metrics::decode_record(record.source.as_str());
        self.ring.push(record);
    }

    /// Stops accepting, delivers what is queued, flushes every sink and returns the stats.
    ///
    /// Draining gets the configured shutdown timeout; after it, records still in the ring or
    /// in a sink queue are dropped and counted as `shutdown`. A sink inside a send finishes
    /// that send first (a stream sink's own bound, `sink::SINK_DOWN_TIMEOUT`).
    pub fn finish(mut self) -> PipelineStats {
        let deadline = Instant::now() + self.shutdown_timeout;
        self.closed.store(true, Ordering::Release);
        let mut stats = PipelineStats::default();
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.thread().unpark();
            self.wait_until(deadline, || dispatcher.is_finished());
            match dispatcher.join() {
                Ok(mut workers) => {
                    for w in &mut workers {
                        w.close();
                    }
                    self.wait_until(deadline, || workers.iter().all(SinkWorker::is_finished));
                    stats.sinks = workers.into_iter().map(SinkWorker::finish).collect();
                }
                Err(_) => tracing::error!("pipeline dispatcher panicked; sink stats lost"),
            }
        }
        stats.ring_drops = self.ring.drops();
        metrics::run_probes();
        stats
    }

    /// Polls `done` until it holds or `deadline` passes; then sets the abort flag.
    fn wait_until(&self, deadline: Instant, mut done: impl FnMut() -> bool) {
        while !done() {
            if Instant::now() >= deadline {
                if !self.abort.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        timeout = ?self.shutdown_timeout,
                        "shutdown timeout: dropping what the sinks did not take"
                    );
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Flags the dispatcher watches.
struct Flags {
    closed: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
}

/// How the dispatcher cuts batches.
#[derive(Clone, Copy)]
struct Batching {
    size: usize,
    timeout: Duration,
    block: bool,
}

/// Moves records from the ring to every sink queue, in batches, until closed and empty.
///
/// A batch leaves when it holds `size` records, or `timeout` after its first record, or at
/// once when the pipeline is closing.
fn dispatch(
    ring: &Ring,
    flags: &Flags,
    mut workers: Vec<SinkWorker>,
    batching: Batching,
) -> Vec<SinkWorker> {
    let sip = SipMetrics::new();
    loop {
        let mut batch = Vec::with_capacity(batching.size);
        let mut due = None;
        loop {
            while batch.len() < batching.size {
                match ring.pop() {
                    Some(r) => batch.push(r),
                    None => break,
                }
            }
            let closed = flags.closed.load(Ordering::Acquire);
            if batch.len() >= batching.size || (closed && !batch.is_empty()) {
                break;
            }
            if batch.is_empty() {
                if closed && ring.is_empty() {
                    return workers;
                }
                // Producers unpark us after pushing; the timeout only bounds a missed wake-up.
                ring.consumer_wait(Duration::from_millis(1));
                continue;
            }
            let now = Instant::now();
            let due = *due.get_or_insert(now + batching.timeout);
            if now >= due {
                break;
            }
            ring.consumer_wait(due - now);
        }
        if flags.abort.load(Ordering::Acquire) {
            for r in &batch {
                ring.count_drop(r.source.as_str(), "shutdown");
            }
            continue;
        }
        sip.observe_batch(&batch);
        let batch = Arc::new(batch);
        for w in &mut workers {
            w.offer(Arc::clone(&batch), batching.block);
        }
    }
}

#[cfg(test)]
mod tests;
