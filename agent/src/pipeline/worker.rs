//! One thread per sink, fed by its own bounded queue of batches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics::Counter;

use super::delivery::{Breaker, BreakerConfig, BreakerState, RateLimit, RatePolicy, TokenBucket};
use crate::record::Record;
use crate::sink::{Sink, SinkStats};
use crate::telemetry::LogLimit;
use crate::telemetry::metrics::{SinkMetrics, sink_label};

type Batch = Arc<Vec<Record>>;

/// How long a sink thread waits for a batch before it gives the sink an idle call.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// The dispatcher's handle on a sink thread.
#[derive(Debug)]
pub(super) struct SinkWorker {
    name: String,
    tx: Option<SyncSender<Batch>>,
    /// The sink thread; it hands back the sink and the records dropped at shutdown.
    thread: Option<JoinHandle<(Box<dyn Sink>, WorkerDrops)>>,
    /// Records dropped because this sink's queue was full.
    queue_full: u64,
    queue_full_metric: Counter,
}

impl std::fmt::Debug for dyn Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl SinkWorker {
    pub(super) fn spawn(
        sink: Box<dyn Sink>,
        index: usize,
        queue_batches: usize,
        abort: Arc<AtomicBool>,
        policy: Policy,
    ) -> std::io::Result<Self> {
        let name = sink.name().to_string();
        let metrics = SinkMetrics::new(&sink_label(&name, index));
        let queue_full_metric = metrics.dropped("queue_full");
        let (tx, rx) = sync_channel::<Batch>(queue_batches.max(1));
        let thread = std::thread::Builder::new()
            .name(format!("hepcap-sink-{}", short(&name)))
            .spawn(move || run(sink, rx, &metrics, &abort, policy))?;
        Ok(SinkWorker {
            name,
            tx: Some(tx),
            thread: Some(thread),
            queue_full: 0,
            queue_full_metric,
        })
    }

    /// Queues a batch; when the queue is full, waits (`block`) or drops the batch and counts it.
    pub(super) fn offer(&mut self, batch: Batch, block: bool) {
        let Some(tx) = &self.tx else { return };
        let result = if block {
            tx.send(batch).map_err(|e| TrySendError::Disconnected(e.0))
        } else {
            tx.try_send(batch)
        };
        match result {
            Ok(()) => {}
            Err(TrySendError::Full(b)) => {
                self.queue_full += b.len() as u64;
                self.queue_full_metric.increment(b.len() as u64);
                tracing::debug!(sink = %self.name, records = b.len(), "sink queue full");
            }
            Err(TrySendError::Disconnected(b)) => {
                self.queue_full += b.len() as u64;
                self.queue_full_metric.increment(b.len() as u64);
                tracing::error!(sink = %self.name, "sink thread ended early");
                self.tx = None;
            }
        }
    }

    /// Closes the queue: the sink thread ends once it has taken what is queued.
    pub(super) fn close(&mut self) {
        self.tx = None;
    }

    /// True once the sink thread has ended.
    pub(super) fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Closes the queue, waits for the sink to drain and flush, and returns its stats.
    pub(super) fn finish(mut self) -> (String, SinkStats) {
        self.tx = None;
        let mut stats = match self.thread.take().map(JoinHandle::join) {
            Some(Ok((sink, drops))) => {
                let mut stats = sink.stats();
                for (reason, n) in drops {
                    *stats.dropped.entry(reason).or_default() += n;
                }
                stats
            }
            _ => {
                tracing::error!(sink = %self.name, "sink thread panicked");
                SinkStats::default()
            }
        };
        if self.queue_full > 0 {
            *stats.dropped.entry("queue_full").or_default() += self.queue_full;
        }
        (self.name.clone(), stats)
    }
}

/// Delivery policy of one sink worker.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Policy {
    pub rate: Option<RateLimit>,
    pub breaker: Option<BreakerConfig>,
}

/// Records the worker itself dropped, by reason, handed back with the sink.
type WorkerDrops = BTreeMap<&'static str, u64>;

fn run(
    mut sink: Box<dyn Sink>,
    rx: Receiver<Batch>,
    metrics: &SinkMetrics,
    abort: &AtomicBool,
    policy: Policy,
) -> (Box<dyn Sink>, WorkerDrops) {
    let mut last = sink.stats();
    let mut drops = WorkerDrops::new();
    let mut bucket = policy.rate.map(|r| {
        (
            TokenBucket::new(r.per_second as f64, Instant::now()),
            r.policy,
        )
    });
    let mut breaker = policy.breaker.map(Breaker::new);
    if breaker.is_some() {
        metrics.breaker_state.set(BreakerState::Closed as u8 as f64);
    }
    let rate_limited = metrics.dropped("rate_limited");
    let breaker_open = metrics.dropped("breaker_open");
    let mut drop_log = LogLimit::default();

    loop {
        let batch = match rx.recv_timeout(IDLE_TICK) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                // Quiet input must not leave a spool waiting or a closed connection unnoticed.
                // An open breaker means hands off until its cool-down ends; then this idle
                // call is its probe, so a collector that is back is found without traffic.
                if let Some(b) = breaker.as_mut()
                    && b.is_open()
                {
                    let (admitted, change) = b.admit(Instant::now());
                    if let Some(state) = change {
                        breaker_changed(sink.as_ref(), metrics, state);
                    }
                    if !admitted {
                        continue;
                    }
                }
                let outcome = sink.idle();
                publish(&mut last, sink.stats(), metrics);
                if let (Some(b), Some(ok)) = (breaker.as_mut(), outcome)
                    && let Some(state) = b.record(ok, Instant::now())
                {
                    breaker_changed(sink.as_ref(), metrics, state);
                }
                continue;
            }
        };
        // Past the shutdown timeout what is queued is spooled where the sink can, else
        // counted, not sent.
        if abort.load(Ordering::Acquire) {
            if !sink.park(&batch) {
                *drops.entry("shutdown").or_default() += batch.len() as u64;
                metrics.dropped("shutdown").increment(batch.len() as u64);
            }
            publish(&mut last, sink.stats(), metrics);
            continue;
        }
        if let Some(b) = breaker.as_mut() {
            let (admitted, change) = b.admit(Instant::now());
            if let Some(state) = change {
                breaker_changed(sink.as_ref(), metrics, state);
            }
            if !admitted {
                // A stream sink with a spool keeps the batch on disk; others lose it.
                if !sink.park(&batch) {
                    *drops.entry("breaker_open").or_default() += batch.len() as u64;
                    breaker_open.increment(batch.len() as u64);
                }
                publish(&mut last, sink.stats(), metrics);
                continue;
            }
        }

        let mut failed = false;
        let mut rest: &[Record] = &batch;
        while !rest.is_empty() {
            let chunk = match bucket.as_mut() {
                None => rest.len(),
                Some((bucket, RatePolicy::Drop)) => {
                    let granted = bucket.take(rest.len(), Instant::now());
                    let excess = (rest.len() - granted) as u64;
                    if excess > 0 {
                        *drops.entry("rate_limited").or_default() += excess;
                        rate_limited.increment(excess);
                        if let Some(suppressed) = drop_log.allow(Instant::now()) {
                            tracing::warn!(
                                sink = %sink.name(),
                                records = excess,
                                suppressed,
                                "over the rate limit, dropped"
                            );
                        }
                    }
                    rest = &rest[..granted];
                    granted
                }
                Some((bucket, RatePolicy::Delay)) => loop {
                    let granted = bucket.take(rest.len(), Instant::now());
                    if granted > 0 {
                        break granted;
                    }
                    std::thread::sleep(bucket.wait_for(rest.len(), Instant::now()));
                },
            };
            if chunk == 0 {
                break;
            }
            let (now_send, later) = rest.split_at(chunk);
            let started = Instant::now();
            sink.send_batch(now_send);
            metrics.send_seconds.record(started.elapsed().as_secs_f64());
            failed |= publish(&mut last, sink.stats(), metrics);
            rest = later;
        }

        if let Some(b) = breaker.as_mut()
            && let Some(state) = b.record(!failed, Instant::now())
        {
            breaker_changed(sink.as_ref(), metrics, state);
        }
    }
    sink.flush();
    publish(&mut last, sink.stats(), metrics);
    (sink, drops)
}

/// One log line and the state metric per breaker transition.
fn breaker_changed(sink: &dyn Sink, metrics: &SinkMetrics, state: BreakerState) {
    metrics.breaker_state.set(state as u8 as f64);
    ::metrics::counter!(
        crate::telemetry::metrics::SINK_BREAKER_TRANSITIONS,
        "sink" => metrics.label,
        "reason" => state.as_str()
    )
    .increment(1);
    match state {
        BreakerState::Open => {
            tracing::warn!(sink = %sink.name(), state = state.as_str(), "circuit breaker opened")
        }
        _ => tracing::info!(sink = %sink.name(), state = state.as_str(), "circuit breaker"),
    }
}

/// Adds what the sink counted since `last` to its metrics. True when records could not be
/// delivered meanwhile: lost (`sink_down`, `send_error`) or spooled instead.
fn publish(last: &mut SinkStats, now: SinkStats, metrics: &SinkMetrics) -> bool {
    metrics
        .records
        .increment(now.records_sent.saturating_sub(last.records_sent));
    metrics
        .bytes
        .increment(now.bytes_sent.saturating_sub(last.bytes_sent));
    metrics
        .errors
        .increment(now.errors.saturating_sub(last.errors));
    metrics
        .retries
        .increment(now.retries.saturating_sub(last.retries));
    metrics
        .resent
        .increment(now.resent.saturating_sub(last.resent));
    metrics.spool_records.set(now.spool_records as f64);
    metrics.spool_bytes.set(now.spool_bytes as f64);
    let age = now.spool_oldest_ts_us.map_or(0.0, |ts| {
        (crate::record::Timestamp::now().0.saturating_sub(ts)) as f64 / 1e6
    });
    metrics.spool_oldest_age.set(age);
    let mut failed = now.spooled > last.spooled;
    for (reason, n) in &now.dropped {
        let before = last.dropped.get(reason).copied().unwrap_or(0);
        if *n > before {
            metrics.dropped(reason).increment(n - before);
            failed |= matches!(*reason, "sink_down" | "send_error");
        }
    }
    *last = now;
    failed
}

/// Thread names are limited to 15 bytes on Linux: keep the scheme and the start of the target.
fn short(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(4)
        .collect()
}
