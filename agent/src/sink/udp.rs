//! Placeholder until the udp sink lands.

use super::{HepTarget, Sink, SinkStats};
use crate::hep::HepEncoder;
use crate::record::Record;

/// HEP over UDP.
#[derive(Debug)]
pub struct UdpHepSink {
    name: String,
    stats: SinkStats,
    _encoder: HepEncoder,
}

impl UdpHepSink {
    pub fn new(target: &HepTarget, encoder: HepEncoder) -> std::io::Result<Self> {
        Ok(UdpHepSink {
            name: format!("hep {target}"),
            stats: SinkStats::default(),
            _encoder: encoder,
        })
    }
}

impl Sink for UdpHepSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send_batch(&mut self, _batch: &[Record]) {}

    fn flush(&mut self) {}

    fn stats(&self) -> SinkStats {
        self.stats.clone()
    }
}
