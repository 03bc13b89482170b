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

    /// Keeps a batch for later without trying the destination (its breaker is open, or the
    /// run is ending); true when the sink took it (a stream sink with a spool). Sinks that
    /// cannot keep anything return false and the caller counts the batch as dropped.
    fn park(&mut self, _batch: &[Record]) -> bool {
        false
    }

    /// Called when no batch came for a while: housekeeping such as noticing a closed
    /// connection or sending a spool. Returns whether a delivery it attempted succeeded
    /// (`None`: it attempted none), so that a breaker can probe without live traffic.
    fn idle(&mut self) -> Option<bool> {
        None
    }

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
    /// Records queued to be sent again because the peer's TCP never acknowledged them on a
    /// connection that was lost (also counted again in `records_sent` when they go out).
    pub resent: u64,
    /// Records put in the disk spool instead of being sent (collector down, breaker open,
    /// shutdown).
    pub spooled: u64,
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
