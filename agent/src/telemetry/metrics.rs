//! Every Prometheus metric hepcap exports: names, descriptions, label values, and the helpers
//! that count them.
//!
//! Names follow `hepcap_<what>_<unit>_total` for counters; gauges and histograms name their
//! base unit (`_bytes`, `_seconds`, `_records`). Labels are bounded: `source`, `sink`,
//! `reason`, `mode`, `interface`, `method`, `status_class` — never a Call-ID or an address.
//! A sink's label is its kind and position (`hep_tcp_0`, `jsonl_1`), not its destination.
//!
//! Without `--metrics` no recorder is installed and every call here is a no-op of the
//! `metrics` facade. Hot paths hold [`metrics::Counter`] handles registered before their loop
//! (see [`SinkMetrics`]); values already kept elsewhere as atomics (ring drops, listener
//! counters) are copied into the registry by [`Probe`]s just before each scrape.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::decode::SkipReason;
use crate::record::Record;

// Decode (replay and, later, live capture).
/// Records the decoder produced, by `source`.
pub const DECODE_RECORDS: &str = "hepcap_decode_records_total";
/// Frames that produced no record, by `source` and `reason` (see `decode::SkipReason`).
pub const DECODE_SKIPS: &str = "hepcap_decode_skips_total";
/// RTCP reports by `source` and `result`: `correlated`, `correlated_late` (after waiting for
/// their SDP), `uncorrelated` (no call; sent only with `--rtcp-uncorrelated send`),
/// `malformed`.
pub const RTCP_REPORTS: &str = "hepcap_rtcp_reports_total";
/// Datagrams dropped by `--dedup` as copies seen within the window, by `source`.
pub const DUPLICATES: &str = "hepcap_duplicates_dropped_total";

// Live capture.
/// Packets the eBPF program ran on (kernel counter), by `mode`.
pub const CAPTURE_SEEN: &str = "hepcap_capture_seen_packets_total";
/// Packets the eBPF program copied to user space, by `mode` and `reason` (`sip`, `rtcp`,
/// `fragment`).
pub const CAPTURE_MATCHED: &str = "hepcap_capture_matched_packets_total";
/// Packets the eBPF program passed over on purpose, by `mode` and `reason` (`lo_outgoing`:
/// the outgoing sighting on `lo`, whose incoming twin is copied; `unparsed`: headers it could
/// not read; `hep`: HEPv3 on a SIP port, a SIP server's own mirror).
pub const CAPTURE_SKIPPED: &str = "hepcap_capture_skipped_packets_total";
/// Frames that reached user space, by `mode` and `interface`.
pub const CAPTURE_COPIED: &str = "hepcap_capture_copied_packets_total";
/// Captured packets lost, by `mode` and `reason`: `perf_ring_full` (the kernel's count of
/// samples that found the perf ring full), `output_failed` (the program's failed outputs),
/// `queue_full` (the decode queue), `pcap_socket` / `pcap_interface` (libpcap's counters),
/// `malformed_sample`.
pub const CAPTURE_LOST: &str = "hepcap_capture_lost_packets_total";
/// Errors of the capture machinery, by `reason` (`rtcp_map_insert`, …).
pub const CAPTURE_ERRORS: &str = "hepcap_capture_errors_total";

// HEP listeners.
/// HEP messages received, by `source` (`hep-udp`, `hep-tcp`, `hep-tls`): every datagram, or
/// every frame of a stream, accepted or not. Relayed, keep-alives and message rejections add
/// up to it; the connection-level rejections of streams (`tls_handshake`, `resync`,
/// `truncated` at close) are not messages and are not in it.
pub const LISTENER_RECEIVED: &str = "hepcap_listener_messages_received_total";
/// Bytes received by HEP listeners, by `source`.
pub const LISTENER_RECEIVED_BYTES: &str = "hepcap_listener_received_bytes_total";
/// HEP messages relayed into the pipeline, by `source`.
pub const LISTENER_RELAYED: &str = "hepcap_listener_messages_relayed_total";
/// HEP messages rejected, by `source` and `reason`.
pub const LISTENER_REJECTED: &str = "hepcap_listener_messages_rejected_total";
/// Datagrams the kernel dropped on a listening socket (SO_RXQ_OVFL), by `source`.
pub const SOCKET_KERNEL_DROPS: &str = "hepcap_socket_kernel_drops_total";

// Ring and queues.
/// Records waiting in the ring.
pub const RING_DEPTH: &str = "hepcap_ring_depth_records";
/// Records the ring can hold.
pub const RING_CAPACITY: &str = "hepcap_ring_capacity_records";
/// Records dropped by the pipeline, by `source` and `reason` (`ring_full`, …).
pub const PIPELINE_DROPS: &str = "hepcap_pipeline_dropped_records_total";
/// Records per batch handed from the dispatcher to the sinks.
pub const BATCH_SIZE: &str = "hepcap_pipeline_batch_size_records";

// Sinks.
/// Records a sink handed to the OS (or wrote), by `sink`.
pub const SINK_RECORDS: &str = "hepcap_sink_records_sent_total";
/// Bytes a sink handed to the OS, by `sink`.
pub const SINK_BYTES: &str = "hepcap_sink_sent_bytes_total";
/// Records a sink did not deliver, by `sink` and `reason` (`queue_full`, `sink_down`, …).
pub const SINK_DROPS: &str = "hepcap_sink_dropped_records_total";
/// Send or connect errors, by `sink`.
pub const SINK_ERRORS: &str = "hepcap_sink_errors_total";
/// Retries (reconnects, resends), by `sink`.
pub const SINK_RETRIES: &str = "hepcap_sink_retries_total";
/// Records sent again because a lost connection's peer never acknowledged them (TCP), by
/// `sink`; they count again in `hepcap_sink_records_sent_total`.
pub const SINK_RESENT: &str = "hepcap_sink_resent_records_total";
/// Time one batch took to send, by `sink`.
pub const SINK_SEND_SECONDS: &str = "hepcap_sink_send_duration_seconds";
/// Circuit breaker state by `sink`: 0 closed, 1 half-open, 2 open.
pub const SINK_BREAKER_STATE: &str = "hepcap_sink_breaker_state";
/// Breaker transitions, by `sink` and `reason` (the state entered).
pub const SINK_BREAKER_TRANSITIONS: &str = "hepcap_sink_breaker_transitions_total";
/// Records over the rate limit, by `sink` and `reason` (`dropped` or `delayed`).
pub const SINK_RATE_LIMITED: &str = "hepcap_sink_rate_limited_records_total";

// Spool.
/// Records in a sink's spool, by `sink`.
pub const SPOOL_RECORDS: &str = "hepcap_spool_records";
/// Bytes in a sink's spool, by `sink`.
pub const SPOOL_BYTES: &str = "hepcap_spool_bytes";
/// Age of the oldest spooled record, by `sink`.
pub const SPOOL_OLDEST_AGE: &str = "hepcap_spool_oldest_age_seconds";
/// Records discarded by the spool, by `sink` and `reason` (`full`, `torn_tail`, `checksum`).
pub const SPOOL_DROPS: &str = "hepcap_spool_dropped_records_total";

// VoIP.
/// SIP requests through the pipeline, by `method` (known methods, else `other`).
pub const SIP_REQUESTS: &str = "hepcap_sip_requests_total";
/// SIP responses through the pipeline, by `status_class` (`1xx` … `6xx`, `other`).
pub const SIP_RESPONSES: &str = "hepcap_sip_responses_total";
/// RTCP interarrival jitter of reports tied to a call, milliseconds (8 kHz RTP clock assumed).
pub const RTCP_JITTER_MS: &str = "hepcap_rtcp_jitter_milliseconds";
/// RTCP fraction lost of reports tied to a call, 0..1.
pub const RTCP_FRACTION_LOST: &str = "hepcap_rtcp_fraction_lost_ratio";
/// MOS of RTCP XR VoIP metrics of reports tied to a call (MOS-CQ, else MOS-LQ), 1..5.
pub const RTCP_MOS: &str = "hepcap_rtcp_mos";

/// Histogram buckets by metric name (Prometheus needs them fixed up front).
pub(super) fn buckets() -> Vec<(&'static str, Vec<f64>)> {
    vec![
        (
            BATCH_SIZE,
            vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ],
        ),
        (
            SINK_SEND_SECONDS,
            vec![
                1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
            ],
        ),
        (
            RTCP_JITTER_MS,
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0],
        ),
        (
            RTCP_FRACTION_LOST,
            vec![0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
        ),
        (
            RTCP_MOS,
            vec![1.0, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 5.0],
        ),
    ]
}

/// Registers a description for every metric (they appear as `# HELP` lines).
pub(super) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(DECODE_RECORDS, Unit::Count, "records the decoder produced");
    describe_counter!(CAPTURE_SEEN, Unit::Count, "packets the eBPF program ran on");
    describe_counter!(
        CAPTURE_MATCHED,
        Unit::Count,
        "packets the eBPF program copied to user space, by reason"
    );
    describe_counter!(
        CAPTURE_SKIPPED,
        Unit::Count,
        "packets the eBPF program passed over on purpose, by reason"
    );
    describe_counter!(
        CAPTURE_COPIED,
        Unit::Count,
        "frames that reached user space, by interface"
    );
    describe_counter!(
        CAPTURE_LOST,
        Unit::Count,
        "captured packets lost, by reason"
    );
    describe_counter!(CAPTURE_ERRORS, Unit::Count, "capture errors, by reason");
    describe_counter!(
        RTCP_REPORTS,
        Unit::Count,
        "RTCP reports by correlation result (correlated, correlated_late, uncorrelated, malformed)"
    );
    describe_counter!(
        DUPLICATES,
        Unit::Count,
        "datagrams dropped as duplicates within the dedup window"
    );
    describe_counter!(
        DECODE_SKIPS,
        Unit::Count,
        "frames that produced no record, by reason"
    );
    describe_counter!(
        LISTENER_RECEIVED,
        Unit::Count,
        "HEP messages received, rejected ones included"
    );
    describe_counter!(
        LISTENER_RECEIVED_BYTES,
        Unit::Bytes,
        "bytes received by HEP listeners"
    );
    describe_counter!(LISTENER_RELAYED, Unit::Count, "HEP messages relayed");
    describe_counter!(
        LISTENER_REJECTED,
        Unit::Count,
        "HEP messages rejected, by reason"
    );
    describe_counter!(
        SOCKET_KERNEL_DROPS,
        Unit::Count,
        "datagrams dropped by the kernel"
    );
    describe_gauge!(RING_DEPTH, Unit::Count, "records waiting in the ring");
    describe_gauge!(RING_CAPACITY, Unit::Count, "records the ring holds");
    describe_counter!(
        PIPELINE_DROPS,
        Unit::Count,
        "records dropped by the pipeline"
    );
    describe_histogram!(BATCH_SIZE, Unit::Count, "records per dispatched batch");
    describe_counter!(SINK_RECORDS, Unit::Count, "records sent by a sink");
    describe_counter!(SINK_BYTES, Unit::Bytes, "bytes sent by a sink");
    describe_counter!(
        SINK_DROPS,
        Unit::Count,
        "records a sink did not deliver, by reason"
    );
    describe_counter!(SINK_ERRORS, Unit::Count, "send or connect errors");
    describe_counter!(SINK_RETRIES, Unit::Count, "reconnects and resends");
    describe_counter!(
        SINK_RESENT,
        Unit::Count,
        "records re-sent after a lost connection"
    );
    describe_histogram!(SINK_SEND_SECONDS, Unit::Seconds, "time to send one batch");
    describe_gauge!(
        SINK_BREAKER_STATE,
        "breaker state: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!(SINK_BREAKER_TRANSITIONS, Unit::Count, "breaker transitions");
    describe_counter!(
        SINK_RATE_LIMITED,
        Unit::Count,
        "records over the rate limit"
    );
    describe_gauge!(SPOOL_RECORDS, Unit::Count, "records in the spool");
    describe_gauge!(SPOOL_BYTES, Unit::Bytes, "bytes in the spool");
    describe_gauge!(
        SPOOL_OLDEST_AGE,
        Unit::Seconds,
        "age of the oldest spooled record"
    );
    describe_counter!(
        SPOOL_DROPS,
        Unit::Count,
        "records the spool discarded, by reason"
    );
    describe_counter!(SIP_REQUESTS, Unit::Count, "SIP requests, by method");
    describe_counter!(SIP_RESPONSES, Unit::Count, "SIP responses, by status class");
    describe_histogram!(RTCP_JITTER_MS, "RTCP interarrival jitter, milliseconds");
    describe_histogram!(RTCP_FRACTION_LOST, "RTCP fraction lost");
    describe_histogram!(RTCP_MOS, "MOS estimated from RTCP reports");
}

/// Set once sources and sinks are started; `/readyz` answers 200 from then on.
static READY: AtomicBool = AtomicBool::new(false);

/// Marks the agent ready (sources and sinks started).
pub fn set_ready(ready: bool) {
    READY.store(ready, Ordering::Release);
}

pub(super) fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Something that copies counters kept elsewhere into the registry before a scrape.
pub type Probe = Box<dyn Fn() + Send + Sync>;

static PROBES: Mutex<Vec<Probe>> = Mutex::new(Vec::new());

/// Registers a probe run before every scrape (and at exit).
pub fn add_probe(probe: Probe) {
    if let Ok(mut p) = PROBES.lock() {
        p.push(probe);
    }
}

/// Runs every probe.
pub fn run_probes() {
    if let Ok(p) = PROBES.lock() {
        for probe in p.iter() {
            probe();
        }
    }
}

/// Counts one decoded record from `source`.
pub fn decode_record(source: &'static str) {
    metrics::counter!(DECODE_RECORDS, "source" => source).increment(1);
}

/// The decode counters of one source, with handles registered once (on first use, so that a
/// series appears only when something happened) instead of a registry lookup per packet.
#[derive(Debug)]
pub struct DecodeCounters {
    source: &'static str,
    records: std::cell::OnceCell<Counter>,
    skips: std::cell::OnceCell<Vec<Counter>>,
}

impl DecodeCounters {
    pub fn new(source: &'static str) -> Self {
        DecodeCounters {
            source,
            records: std::cell::OnceCell::new(),
            skips: std::cell::OnceCell::new(),
        }
    }

    /// One record out of the decoder.
    pub fn record(&self) {
        self.records
            .get_or_init(|| metrics::counter!(DECODE_RECORDS, "source" => self.source))
            .increment(1);
    }

    /// One frame that produced no record.
    pub fn skip(&self, reason: SkipReason) {
        let counters = self.skips.get_or_init(|| {
            SkipReason::ALL
                .iter()
                .map(|r| {
                    metrics::counter!(DECODE_SKIPS, "source" => self.source, "reason" => r.as_str())
                })
                .collect()
        });
        if let Some(c) = counters.get(reason.index()) {
            c.increment(1);
        }
    }
}

/// Counts one error of the capture machinery.
pub fn capture_error(reason: &'static str) {
    metrics::counter!(CAPTURE_ERRORS, "reason" => reason).increment(1);
}

/// Copies a live capture's counters into the registry (a probe, before each scrape).
pub fn capture_probe(
    mode: &'static str,
    totals: &crate::capture::CaptureTotals,
    per_interface: &[(String, u64)],
    kernel: Option<&[u64; hepcap_common::counter::COUNT as usize]>,
) {
    use hepcap_common::counter;
    for (interface, n) in per_interface {
        metrics::counter!(CAPTURE_COPIED, "mode" => mode, "interface" => interface.clone())
            .absolute(*n);
    }
    let mut lost = vec![
        ("queue_full", totals.queue_full),
        ("pcap_socket", totals.pcap_dropped),
        ("pcap_interface", totals.if_dropped),
        ("malformed_sample", totals.malformed),
    ];
    if let Some(k) = kernel {
        lost.push(("perf_ring_full", totals.lost_perf));
        lost.push(("output_failed", k[counter::OUTPUT_FAILED as usize]));
        metrics::counter!(CAPTURE_SEEN, "mode" => mode).absolute(k[counter::SEEN as usize]);
        for (reason, i) in [
            ("sip", counter::SIP),
            ("rtcp", counter::RTCP),
            ("fragment", counter::FRAGMENTS),
        ] {
            metrics::counter!(CAPTURE_MATCHED, "mode" => mode, "reason" => reason)
                .absolute(k[i as usize]);
        }
        for (reason, i) in [
            ("lo_outgoing", counter::LO_OUTGOING),
            ("unparsed", counter::UNPARSED),
            ("hep", counter::HEP),
        ] {
            metrics::counter!(CAPTURE_SKIPPED, "mode" => mode, "reason" => reason)
                .absolute(k[i as usize]);
        }
    }
    for (reason, n) in lost {
        metrics::counter!(CAPTURE_LOST, "mode" => mode, "reason" => reason).absolute(n);
    }
}

/// Adds `n` RTCP reports with a correlation `result` (see [`RTCP_REPORTS`]).
pub fn rtcp_reports(source: &'static str, result: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(RTCP_REPORTS, "source" => source, "result" => result).increment(n);
    }
}

/// Adds `n` duplicates dropped by `--dedup`.
pub fn duplicates(source: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(DUPLICATES, "source" => source).increment(n);
    }
}

/// RTP clock rate assumed to turn RTCP interarrival jitter (RTP timestamp units) into
/// milliseconds: 8 kHz, the clock of G.711, G.729 and most narrowband voice. The SDP's
/// `a=rtpmap` clock is not tracked per stream yet, so wideband streams read too high.
pub const RTCP_ASSUMED_CLOCK_HZ: f64 = 8000.0;

/// Observes one RTCP report tied to a call: each reception report block's jitter (RTP
/// timestamp units, see [`RTCP_ASSUMED_CLOCK_HZ`]) and fraction lost (of 256), and the
/// report's MOS×100 (from an XR VoIP metrics block) when it has one.
pub fn observe_rtcp(blocks: &[(u32, u8)], mos_x100: Option<u16>) {
    for &(jitter, fraction) in blocks {
        metrics::histogram!(RTCP_JITTER_MS)
            .record(f64::from(jitter) * 1000.0 / RTCP_ASSUMED_CLOCK_HZ);
        metrics::histogram!(RTCP_FRACTION_LOST).record(f64::from(fraction) / 256.0);
    }
    if let Some(mos) = mos_x100 {
        metrics::histogram!(RTCP_MOS).record(f64::from(mos) / 100.0);
    }
}

/// SIP methods with their own label value; anything else is `other`.
const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];

const STATUS_CLASSES: [&str; 7] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "other"];

/// Bounded label for a request method.
pub fn method_label(method: &[u8]) -> &'static str {
    METHODS
        .iter()
        .find(|m| m.as_bytes().eq_ignore_ascii_case(method))
        .copied()
        .unwrap_or("other")
}

/// Bounded label for a response status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=699 => STATUS_CLASSES[usize::from(status / 100 - 1)],
        _ => "other",
    }
}

/// SIP request and response counters, registered once and bumped per batch.
#[derive(Debug)]
pub struct SipMetrics {
    requests: Vec<Counter>,
    other_request: Counter,
    responses: Vec<Counter>,
    batch_size: Histogram,
}

impl Default for SipMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SipMetrics {
    pub fn new() -> Self {
        SipMetrics {
            requests: METHODS
                .iter()
                .map(|m| metrics::counter!(SIP_REQUESTS, "method" => *m))
                .collect(),
            other_request: metrics::counter!(SIP_REQUESTS, "method" => "other"),
            responses: STATUS_CLASSES
                .iter()
                .map(|c| metrics::counter!(SIP_RESPONSES, "status_class" => *c))
                .collect(),
            batch_size: metrics::histogram!(BATCH_SIZE),
        }
    }

    /// Counts the SIP messages of one dispatched batch and its size.
    pub fn observe_batch(&self, batch: &[Record]) {
        self.batch_size.record(batch.len() as f64);
        let mut requests = [0u64; METHODS.len()];
        let mut other = 0u64;
        let mut responses = [0u64; STATUS_CLASSES.len()];
        for record in batch {
            if let Some(method) = record.method() {
                match METHODS
                    .iter()
                    .position(|m| m.as_bytes().eq_ignore_ascii_case(method))
                {
                    Some(i) => requests[i] += 1,
                    None => other += 1,
                }
            } else if let Some(status) = record.status() {
                let i = match status {
                    100..=699 => usize::from(status / 100 - 1),
                    _ => STATUS_CLASSES.len() - 1,
                };
                responses[i] += 1;
            }
        }
        for (c, n) in self.requests.iter().zip(requests) {
            if n > 0 {
                c.increment(n);
            }
        }
        if other > 0 {
            self.other_request.increment(other);
        }
        for (c, n) in self.responses.iter().zip(responses) {
            if n > 0 {
                c.increment(n);
            }
        }
    }
}

/// Handles of one sink's metrics, registered when its worker starts.
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    pub label: &'static str,
    pub records: Counter,
    pub bytes: Counter,
    pub errors: Counter,
    pub retries: Counter,
    pub resent: Counter,
    pub send_seconds: Histogram,
    pub breaker_state: Gauge,
    pub spool_records: Gauge,
    pub spool_bytes: Gauge,
    pub spool_oldest_age: Gauge,
}

impl SinkMetrics {
    /// Registers the handles of sink `label` (leaked once per sink at start-up).
    pub fn new(label: &str) -> Self {
        let label: &'static str = Box::leak(label.to_string().into_boxed_str());
        SinkMetrics {
            label,
            records: metrics::counter!(SINK_RECORDS, "sink" => label),
            bytes: metrics::counter!(SINK_BYTES, "sink" => label),
            errors: metrics::counter!(SINK_ERRORS, "sink" => label),
            retries: metrics::counter!(SINK_RETRIES, "sink" => label),
            resent: metrics::counter!(SINK_RESENT, "sink" => label),
            send_seconds: metrics::histogram!(SINK_SEND_SECONDS, "sink" => label),
            breaker_state: metrics::gauge!(SINK_BREAKER_STATE, "sink" => label),
            spool_records: metrics::gauge!(SPOOL_RECORDS, "sink" => label),
            spool_bytes: metrics::gauge!(SPOOL_BYTES, "sink" => label),
            spool_oldest_age: metrics::gauge!(SPOOL_OLDEST_AGE, "sink" => label),
        }
    }

    /// Counter of records dropped for `reason`.
    pub fn dropped(&self, reason: &'static str) -> Counter {
        metrics::counter!(SINK_DROPS, "sink" => self.label, "reason" => reason)
    }
}

/// Bounded label of the `index`th sink named `name` (`hep tcp://…` → `hep_tcp_0`).
pub fn sink_label(name: &str, index: usize) -> String {
    let kind = if let Some(rest) = name.strip_prefix("hep ") {
        let scheme = rest.split("://").next().unwrap_or("other");
        match scheme {
            "udp" | "tcp" | "tls" => format!("hep_{scheme}"),
            _ => "hep".to_string(),
        }
    } else if name.starts_with("jsonl") {
        "jsonl".to_string()
    } else {
        "sink".to_string()
    };
    format!("{kind}_{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(sink_label("hep tcp://10.0.0.1:9060", 0), "hep_tcp_0");
        assert_eq!(sink_label("hep udp://[::1]:9060", 3), "hep_udp_3");
        assert_eq!(sink_label("jsonl /tmp/x", 1), "jsonl_1");
        assert_eq!(method_label(b"invite"), "INVITE");
        assert_eq!(method_label(b"FOO"), "other");
        assert_eq!(status_class(183), "1xx");
        assert_eq!(status_class(603), "6xx");
        assert_eq!(status_class(99), "other");
        assert_eq!(status_class(700), "other");
    }

    #[test]
    fn counter_names_follow_the_convention() {
        for name in [
            DECODE_RECORDS,
            DECODE_SKIPS,
            LISTENER_RECEIVED,
            LISTENER_REJECTED,
            SOCKET_KERNEL_DROPS,
            PIPELINE_DROPS,
            SINK_RECORDS,
            SINK_BYTES,
            SINK_DROPS,
            SPOOL_DROPS,
            SIP_REQUESTS,
            SIP_RESPONSES,
        ] {
            assert!(
                name.starts_with("hepcap_") && name.ends_with("_total"),
                "{name}"
            );
        }
    }
}
