//! Where records go: HEP collectors over UDP or TCP, and JSON lines.
//!
//! A sink takes batches and never returns per-record errors: what it could not deliver it
//! counts in its [`SinkStats`] with a reason, and logs at a bounded rate. This keeps sources
//! free of sink failure handling; the pipeline reads the stats.

mod conn;
mod failover;
mod jsonl;
mod target;
mod tcp;
mod udp;

use std::collections::BTreeMap;

pub use failover::{FAILOVER_COOL_DOWN, FailoverSink};
pub use jsonl::JsonlSink;
pub use target::{HepTarget, HepTransport, TargetError};
pub use tcp::TcpHepSink;
pub use udp::UdpHepSink;

use crate::record::Record;

/// Largest HEP packet a UDP datagram can carry (65535 − 8 UDP − 20 IPv4 header bytes).
pub const MAX_UDP_HEP: usize = 65_507;

/// A destination for records.
pub trait Sink: Send {
    /// Label for summaries and logs, such as `hep udp://127.0.0.1:9060` or `jsonl -`.
    fn name(&self) -> &str;

    /// Delivers a batch (blocking while the destination applies backpressure). Failures are
    /// counted in [`Sink::stats`], never returned.
    fn send_batch(&mut self, batch: &[Record]);

    /// Pushes out anything buffered; called at the end of a run.
    fn flush(&mut self);

    /// What this sink delivered and dropped so far.
    fn stats(&self) -> SinkStats;
}

/// Delivery counters of one sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records handed to the operating system (or written, for files).
    pub records_sent: u64,
    /// Bytes handed to the operating system.
    pub bytes_sent: u64,
    /// Records not delivered, by reason (`oversize`, `encode`, `send_error`, `sink_down`, …).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Failed connects and lost connections (stream sinks), failed sends (datagram sinks).
    pub errors: u64,
    /// Connect attempts after a failure or a lost connection.
    pub retries: u64,
    /// Records waiting in the sink's disk spool.
    pub spool_records: u64,
    /// Bytes of the sink's disk spool.
    pub spool_bytes: u64,
    /// Capture time of the oldest spooled record, microseconds since the epoch.
    pub spool_oldest_ts_us: Option<u64>,
}

impl SinkStats {
    pub fn drop_one(&mut self, reason: &'static str) {
        *self.dropped.entry(reason).or_default() += 1;
    }
}
