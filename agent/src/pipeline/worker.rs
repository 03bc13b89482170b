//! One thread per sink, fed by its own bounded queue of batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use metrics::Counter;

use crate::record::Record;
use crate::sink::{Sink, SinkStats};
use crate::telemetry::metrics::{SinkMetrics, sink_label};

type Batch = Arc<Vec<Record>>;

/// The dispatcher's handle on a sink thread.
#[derive(Debug)]
pub(super) struct SinkWorker {
    name: String,
    tx: Option<SyncSender<Batch>>,
    /// The sink thread; it hands back the sink and the records dropped at shutdown.
    thread: Option<JoinHandle<(Box<dyn Sink>, u64)>>,
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
    ) -> std::io::Result<Self> {
        let name = sink.name().to_string();
        let metrics = SinkMetrics::new(&sink_label(&name, index));
        let queue_full_metric = metrics.dropped("queue_full");
        let (tx, rx) = sync_channel::<Batch>(queue_batches.max(1));
        let thread = std::thread::Builder::new()
            .name(format!("hepcap-sink-{}", short(&name)))
            .spawn(move || run(sink, rx, &metrics, &abort))?;
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
            Some(Ok((sink, aborted))) => {
                let mut stats = sink.stats();
                if aborted > 0 {
                    *stats.dropped.entry("shutdown").or_default() += aborted;
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

fn run(
    mut sink: Box<dyn Sink>,
    rx: Receiver<Batch>,
    metrics: &SinkMetrics,
    abort: &AtomicBool,
) -> (Box<dyn Sink>, u64) {
    let mut last = sink.stats();
    let mut aborted = 0u64;
    while let Ok(batch) = rx.recv() {
        // Past the shutdown timeout what is queued is counted, not sent.
        if abort.load(Ordering::Acquire) {
            aborted += batch.len() as u64;
            continue;
        }
        let started = Instant::now();
        sink.send_batch(&batch);
        metrics.send_seconds.record(started.elapsed().as_secs_f64());
        publish(&mut last, sink.stats(), metrics);
    }
    sink.flush();
    publish(&mut last, sink.stats(), metrics);
    if aborted > 0 {
        metrics.dropped("shutdown").increment(aborted);
    }
    (sink, aborted)
}

/// Adds what the sink counted since `last` to its metrics.
fn publish(last: &mut SinkStats, now: SinkStats, metrics: &SinkMetrics) {
    metrics
        .records
        .increment(now.records_sent.saturating_sub(last.records_sent));
    metrics
        .bytes
        .increment(now.bytes_sent.saturating_sub(last.bytes_sent));
    for (reason, n) in &now.dropped {
        let before = last.dropped.get(reason).copied().unwrap_or(0);
        if *n > before {
            metrics.dropped(reason).increment(n - before);
        }
    }
    *last = now;
}

/// Thread names are limited to 15 bytes on Linux: keep the scheme and the start of the target.
fn short(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(4)
        .collect()
}
