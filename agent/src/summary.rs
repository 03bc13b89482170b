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
        write_delivery_notes(&mut out, s);
    }
    if stats.sip_no_call_id > 0 {
        let _ = writeln!(out, "  counted sip_no_call_id: {}", stats.sip_no_call_id);
    }
    for (reason, n) in stats.skipped.iter() {
        let _ = writeln!(out, "  skipped {}: {n}", reason.as_str());
    }
    write_reassembly(&mut out, &stats.reassembly);
    write_correlation(&mut out, &stats.correlate, stats.duplicates);
    out
}

/// RTCP correlation and duplicate suppression, when they saw anything.
fn write_correlation(out: &mut String, c: &crate::correlate::CorrelatorStats, duplicates: u64) {
    let malformed: u64 = c.rtcp_malformed.iter().map(|(_, n)| n).sum();
    if c.rtcp > 0 || malformed > 0 {
        let _ = writeln!(
            out,
            "  rtcp: {} reports, {} correlated ({} after waiting for SDP), {} uncorrelated \
             ({} given up early, hold full)",
            c.rtcp,
            c.rtcp_correlated + c.rtcp_correlated_late,
            c.rtcp_correlated_late,
            c.rtcp_uncorrelated,
            c.rtcp_hold_overflow
        );
        for (reason, n) in &c.rtcp_malformed {
            let _ = writeln!(out, "    rtcp malformed {reason}: {n}");
        }
    }
    if c.sdp_messages > 0 {
        let t = &c.calls;
        let _ = writeln!(
            out,
            "  sdp: {} messages, {} media; rtcp addresses {} inserted, {} expired, {} evicted; \
             ssrcs {} learned, {} evicted",
            c.sdp_messages,
            c.sdp_media,
            t.address_inserts,
            t.address_expired,
            t.address_evictions,
            t.ssrc_learned,
            t.ssrc_evictions
        );
    }
    if duplicates > 0 {
        let _ = writeln!(out, "  dropped duplicate: {duplicates}");
    }
}

/// IP defragmentation and TCP reassembly counters, when either table was used.
fn write_reassembly(out: &mut String, r: &crate::decode::ReassemblyStats) {
    let d = &r.defrag;
    if d.fragments > 0 || d.malformed > 0 {
        let _ = writeln!(
            out,
            "  ip fragments: {} datagrams reassembled, {} expired, {} evicted, {} malformed; \
             peak {} datagrams, {} bytes",
            d.completed, d.expired, d.evicted, d.malformed, d.peak_entries, d.peak_bytes
        );
    }
    let sc = &r.sctp;
    if sc.completed + sc.broken + sc.evicted + sc.oversize > 0 {
        let _ = writeln!(
            out,
            "  sctp: {} split messages joined, {} broken, {} evicted, {} oversize",
            sc.completed, sc.broken, sc.evicted, sc.oversize
        );
    }
    let t = &r.tcp;
    if t.flows_opened > 0 {
        let _ = writeln!(
            out,
            "  tcp: {} flows ({} closed, {} expired, {} evicted), {} messages; peak {} flows, \
             {} bytes",
            t.flows_opened,
            t.flows_closed,
            t.flows_expired,
            t.flows_evicted,
            t.messages,
            t.peak_flows,
            t.peak_bytes
        );
        let _ = writeln!(
            out,
            "  tcp: {} retransmissions, {} out of order, {} gaps, {} resync bytes, {} without \
             Content-Length, {} oversize, {} bad WebSocket frames",
            t.retransmissions,
            t.out_of_order,
            t.gaps,
            t.resync_bytes,
            t.no_content_length,
            t.oversize,
            t.ws_malformed
        );
    }
}

/// Renders the `run` summary: per listener what was received, relayed and rejected, then the
/// pipeline.
pub fn run_summary(
    live: Option<&crate::capture::LiveSummary>,
    listeners: &[(String, ListenerTotals)],
    pipeline: &PipelineStats,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "hepcap run: capture {}, {} listener(s)",
        live.map_or("none", |l| l.mode),
        listeners.len()
    );
    if let Some(live) = live {
        write_live(&mut out, live);
    }
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

/// Live capture: what the kernel copied and lost, then what the decoder made of it.
fn write_live(out: &mut String, live: &crate::capture::LiveSummary) {
    let c = &live.capture;
    let p = &live.decode.process;
    let _ = writeln!(
        out,
        "  capture {}: {} packets copied to user space, {} SIP messages ({} without Call-ID)",
        live.mode, c.copied, p.sip_messages, p.sip_no_call_id
    );
    if live.mode != "pcap" {
        let k = &c.kernel;
        let names = hepcap_common::counter::NAMES;
        let line: Vec<String> = names
            .iter()
            .zip(k.iter())
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        let _ = writeln!(out, "    kernel: {}", line.join(", "));
    }
    for (reason, n) in [
        ("perf_ring_full", c.lost_perf),
        ("queue_full", c.queue_full),
        ("pcap_socket", c.pcap_dropped),
        ("pcap_interface", c.if_dropped),
        ("malformed_sample", c.malformed),
    ] {
        if n > 0 {
            let _ = writeln!(out, "    lost {reason}: {n}");
        }
    }
    for (reason, n) in p.skipped.iter() {
        let _ = writeln!(out, "    skipped {}: {n}", reason.as_str());
    }
    write_reassembly(out, &live.decode.reassembly);
    write_correlation(out, &live.decode.correlate, p.duplicates);
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
        write_delivery_notes(out, s);
    }
}

/// Records a stream sink spooled, and re-sent after a lost connection (they are counted again
/// in its records).
fn write_delivery_notes(out: &mut String, s: &crate::sink::SinkStats) {
    if s.spooled > 0 {
        let _ = writeln!(out, "    spooled: {}", s.spooled);
    }
    if s.resent > 0 {
        let _ = writeln!(out, "    re-sent unacknowledged: {}", s.resent);
    }
}
