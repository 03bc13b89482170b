//! Placeholder until the tcp sink lands.

use super::{HepTarget, Sink, SinkStats};
use crate::hep::HepEncoder;
use crate::record::Record;

/// HEP over TCP.
#[derive(Debug)]
pub struct TcpHepSink {
    name: String,
    stats: SinkStats,
    _encoder: HepEncoder,
}

impl TcpHepSink {
    pub fn new(target: &HepTarget, encoder: HepEncoder) -> std::io::Result<Self> {
        Ok(TcpHepSink {
            name: format!("hep {target}"),
            stats: SinkStats::default(),
            _encoder: encoder,
        })
    }
}

impl Sink for TcpHepSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send_batch(&mut self, _batch: &[Record]) {}

    fn flush(&mut self) {}

    fn stats(&self) -> SinkStats {
        self.stats.clone()
    }
}
