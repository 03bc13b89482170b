//! The exit summary printed on standard error: what was read, sent and skipped, and why.

use std::fmt::Write as _;

use crate::pipeline::PipelineStats;
use crate::replay::ReplayStats;
use crate::source::hep_listen::ListenerTotals;

/// Renders the replay summary as lines of text.
pub fn replay_summary(stats: &ReplayStats, pipeline: &PipelineStats) -> String {
    let mut out = String::new();
    let failed = stats.file_errors.len();
    let _ = writeln!(
        out,
        "hepcap replay: {} file(s) read, {} failed; {} packets; {} SIP messages ({} without Call-ID)",
        stats.files_read, failed, stats.packets, stats.sip_messages, stats.sip_no_call_id
    );
    for err in &stats.file_errors {
        let _ = writeln!(out, "  error: {err}");
    }
    for ((source, reason), n) in &pipeline.ring_drops {
        let _ = writeln!(out, "  dropped {reason} ({source}): {n}");
    }
    for (name, s) in &pipeline.sinks {
        let _ = writeln!(
            out,
            "  sink {name}: {} records, {} bytes",
            s.records_sent, s.bytes_sent
        );
        for (reason, n) in &s.dropped {
            let _ = writeln!(out, "    dropped {reason}: {n}");
        }
    }
    if stats.sip_no_call_id > 0 {
        let _ = writeln!(out, "  counted sip_no_call_id: {}", stats.sip_no_call_id);
    }
    for (reason, n) in stats.skipped.iter() {
        let _ = writeln!(out, "  skipped {}: {n}", reason.as_str());
    }
    out
}

/// Renders the `run` summary: per listener what was received, relayed and rejected, then the
/// pipeline.
pub fn run_summary(listeners: &[(String, ListenerTotals)], pipeline: &PipelineStats) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "hepcap run: {} listener(s)", listeners.len());
    for (name, t) in listeners {
        let _ = writeln!(
            out,
            "  listener {name}: {} received ({} bytes), {} relayed, {} keep-alives",
            t.received, t.bytes, t.relayed, t.keepalives
        );
        for (reason, n) in &t.rejected {
            let _ = writeln!(out, "    rejected {reason}: {n}");
        }
        if t.skipped_bytes > 0 {
            let _ = writeln!(
                out,
                "    skipped bytes (stream resync): {}",
                t.skipped_bytes
            );
        }
        if t.kernel_drops > 0 {
            let _ = writeln!(out, "    kernel socket drops: {}", t.kernel_drops);
        }
        if t.connections > 0 || t.refused_connections > 0 {
            let _ = writeln!(
                out,
                "    connections: {} accepted, {} refused at the limit",
                t.connections, t.refused_connections
            );
        }
    }
    write_pipeline(&mut out, pipeline);
    out
}

fn write_pipeline(out: &mut String, pipeline: &PipelineStats) {
    for ((source, reason), n) in &pipeline.ring_drops {
        let _ = writeln!(out, "  dropped {reason} ({source}): {n}");
    }
    for (name, s) in &pipeline.sinks {
        let _ = writeln!(
            out,
            "  sink {name}: {} records, {} bytes",
            s.records_sent, s.bytes_sent
        );
        for (reason, n) in &s.dropped {
            let _ = writeln!(out, "    dropped {reason}: {n}");
        }
    }
}
