//! Placeholder until the JSONL sink lands.

use super::{Sink, SinkStats};
use crate::hep::NodeIdentity;
use crate::record::Record;

/// One JSON object per record, to a file or standard output.
#[derive(Debug)]
pub struct JsonlSink {
    name: String,
    stats: SinkStats,
    _identity: NodeIdentity,
}

impl JsonlSink {
    /// `path` is a file path, or `-` for standard output.
    pub fn new(path: &str, identity: NodeIdentity) -> std::io::Result<Self> {
        Ok(JsonlSink {
            name: format!("jsonl {path}"),
            stats: SinkStats::default(),
            _identity: identity,
        })
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send_batch(&mut self, _batch: &[Record]) {}

    fn flush(&mut self) {}

    fn stats(&self) -> SinkStats {
        self.stats.clone()
    }
}
