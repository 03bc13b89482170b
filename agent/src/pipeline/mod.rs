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

mod ring;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use ring::{DropCounts, Ring, WhenFull};
use worker::SinkWorker;

use crate::record::Record;
use crate::sink::{Sink, SinkStats};

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
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            ring_capacity: 65_536,
            when_full: WhenFull::DropNewest,
            batch_size: 64,
            sink_queue_batches: 1024,
        }
    }
}

/// A running pipeline: push records, then [`Pipeline::finish`] to drain and collect stats.
#[derive(Debug)]
pub struct Pipeline {
    ring: Arc<Ring>,
    closed: Arc<AtomicBool>,
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
        let mut workers = Vec::with_capacity(sinks.len());
        for sink in sinks {
            workers.push(SinkWorker::spawn(sink, config.sink_queue_batches)?);
        }
        let dispatcher = {
            let ring = Arc::clone(&ring);
            let closed = Arc::clone(&closed);
            let batch_size = config.batch_size.max(1);
            let block = config.when_full == WhenFull::Block;
            std::thread::Builder::new()
                .name("hepcap-dispatch".into())
                .spawn(move || dispatch(&ring, &closed, workers, batch_size, block))?
        };
        ring.set_consumer(dispatcher.thread().clone());
        Ok(Pipeline {
            ring,
            closed,
            dispatcher: Some(dispatcher),
        })
    }

    /// The ring, for sources running on other threads.
    pub fn ring(&self) -> Arc<Ring> {
        Arc::clone(&self.ring)
    }

    /// Offers one record (see [`Ring::push`]).
    pub fn push(&self, record: Record) {
        self.ring.push(record);
    }

    /// Stops accepting, delivers what is queued, flushes every sink and returns the stats.
    pub fn finish(mut self) -> PipelineStats {
        self.closed.store(true, Ordering::Release);
        let mut stats = PipelineStats::default();
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.thread().unpark();
            match dispatcher.join() {
                Ok(workers) => {
                    stats.sinks = workers.into_iter().map(SinkWorker::finish).collect();
                }
                Err(_) => tracing::error!("pipeline dispatcher panicked; sink stats lost"),
            }
        }
        stats.ring_drops = self.ring.drops();
        stats
    }
}

/// Moves records from the ring to every sink queue, in batches, until closed and empty.
fn dispatch(
    ring: &Ring,
    closed: &AtomicBool,
    mut workers: Vec<SinkWorker>,
    batch_size: usize,
    block: bool,
) -> Vec<SinkWorker> {
    loop {
        let mut batch = Vec::with_capacity(batch_size);
        while batch.len() < batch_size {
            match ring.pop() {
                Some(r) => batch.push(r),
                None => break,
            }
        }
        if batch.is_empty() {
            if closed.load(Ordering::Acquire) && ring.is_empty() {
                return workers;
            }
            // Producers unpark us after pushing; the timeout only bounds a missed wake-up.
            std::thread::park_timeout(Duration::from_millis(1));
            continue;
        }
        let batch = Arc::new(batch);
        for w in &mut workers {
            w.offer(Arc::clone(&batch), block);
        }
    }
}

#[cfg(test)]
mod tests;
