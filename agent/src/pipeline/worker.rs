//! One thread per sink, fed by its own bounded queue of batches.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use crate::record::Record;
use crate::sink::{Sink, SinkStats};

type Batch = Arc<Vec<Record>>;

/// The dispatcher's handle on a sink thread.
#[derive(Debug)]
pub(super) struct SinkWorker {
    name: String,
    tx: Option<SyncSender<Batch>>,
    thread: Option<JoinHandle<Box<dyn Sink>>>,
    /// Records dropped because this sink's queue was full.
    queue_full: u64,
}

impl std::fmt::Debug for dyn Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl SinkWorker {
    pub(super) fn spawn(sink: Box<dyn Sink>, queue_batches: usize) -> std::io::Result<Self> {
        let name = sink.name().to_string();
        let (tx, rx) = sync_channel::<Batch>(queue_batches.max(1));
        let thread = std::thread::Builder::new()
            .name(format!("hepcap-sink-{}", short(&name)))
            .spawn(move || run(sink, rx))?;
        Ok(SinkWorker {
            name,
            tx: Some(tx),
            thread: Some(thread),
            queue_full: 0,
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
                tracing::debug!(sink = %self.name, records = b.len(), "sink queue full");
            }
            Err(TrySendError::Disconnected(b)) => {
                self.queue_full += b.len() as u64;
                tracing::error!(sink = %self.name, "sink thread ended early");
                self.tx = None;
            }
        }
    }

    /// Closes the queue, waits for the sink to drain and flush, and returns its stats.
    pub(super) fn finish(mut self) -> (String, SinkStats) {
        self.tx = None;
        let mut stats = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(sink)) => sink.stats(),
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

fn run(mut sink: Box<dyn Sink>, rx: Receiver<Batch>) -> Box<dyn Sink> {
    while let Ok(batch) = rx.recv() {
        sink.send_batch(&batch);
    }
    sink.flush();
    sink
}

/// Thread names are limited to 15 bytes on Linux: keep the scheme and the start of the target.
fn short(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(4)
        .collect()
}
