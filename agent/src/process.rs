//! From a captured frame to records in the pipeline: the one path replay and every live
//! capture mode share, so a capture replayed gives what the live agent would have sent.
//!
//! Per frame: the decoder (links, tunnels, defragmentation, TCP reassembly) finds SIP messages
//! and RTCP candidates; duplicate suppression drops a second sighting of the same datagram; the
//! correlator learns media addresses from SIP and turns RTCP into HEP type 5 records with the
//! call's Call-ID. Everything uses the frame's capture time as its clock.

use std::net::SocketAddr;

use crate::correlate::dedup::{Dedup, DedupConfig};
use crate::correlate::{Correlator, CorrelatorConfig, CorrelatorStats, SipMessageView};
use crate::decode::{Decoder, DecoderConfig, LinkType, ReassemblyStats, SkipCounts, SkipReason};
use crate::pipeline::Ring;
use crate::record::{Record, Source, Timestamp};
use crate::telemetry::metrics;

/// What the processor counted.
#[derive(Clone, Debug, Default)]
pub struct ProcessStats {
    pub packets: u64,
    pub sip_messages: u64,
    /// SIP messages forwarded without a Call-ID.
    pub sip_no_call_id: u64,
    pub skipped: SkipCounts,
    /// Datagrams dropped as copies of one seen within the dedup window.
    pub duplicates: u64,
}

/// Decoder, dedup and correlator for one stream of frames.
#[derive(Debug)]
pub struct Processor {
    source: Source,
    decoder: Decoder,
    correlator: Correlator,
    dedup: Option<Dedup>,
    /// Records the correlator made, pushed after each frame.
    out: Vec<Record>,
    /// Stamp records with the current time instead of the capture time.
    restamp: bool,
    stats: ProcessStats,
    /// Records out and frames skipped, in the metrics (correlated RTCP carries the same
    /// source label as the SIP it came from).
    counters: metrics::DecodeCounters,
    /// Counts already added to the metrics: correlated, late, uncorrelated, malformed,
    /// duplicates.
    published: [u64; 5],
}

impl Processor {
    /// `source` labels the records and metrics (`Source::Replay` or `Source::Capture(mode)`).
    pub fn new(
        source: Source,
        decoder: DecoderConfig,
        correlate: CorrelatorConfig,
        dedup: Option<DedupConfig>,
    ) -> Self {
        let label = source.as_str();
        let mut decoder = Decoder::new(decoder);
        decoder.rtcp_tap().enable(true);
        Processor {
            correlator: Correlator::new(correlate, label),
            source,
            decoder,
            dedup: dedup.map(Dedup::new),
            out: Vec::new(),
            restamp: false,
            stats: ProcessStats::default(),
            counters: metrics::DecodeCounters::new(label),
            published: [0; 5],
        }
    }

    pub fn set_restamp(&mut self, on: bool) {
        self.restamp = on;
    }

    /// The correlator, to mirror its address table into a kernel map.
    pub fn correlator_mut(&mut self) -> &mut Correlator {
        &mut self.correlator
    }

    /// Decodes one frame and pushes what it yields.
    pub fn frame(&mut self, link: LinkType, ts: Timestamp, data: &[u8], ring: &Ring) {
        self.stats.packets += 1;
        let Processor {
            source,
            decoder,
            correlator,
            dedup,
            out,
            restamp,
            stats,
            counters,
            ..
        } = self;
        let restamp = *restamp;
        let decoded = decoder.decode(link, ts, data, &mut |sip, ts| {
            let (src, dst) = (
                SocketAddr::new(sip.src, sip.src_port),
                SocketAddr::new(sip.dst, sip.dst_port),
            );
            if duplicate(dedup, src, dst, sip.transport.0, sip.payload, ts) {
                return;
            }
            stats.sip_messages += 1;
            if sip.sip.call_id.is_none() {
                stats.sip_no_call_id += 1;
            }
            let mut record = sip.to_record(ts, source.clone());
            if let Some(view) = SipMessageView::of_record(&record) {
                correlator.on_sip(&view, ts, out);
            }
            if restamp {
                record.ts = Timestamp::now();
            }
            counters.record();
            ring.push(record);
        });
        decoder.rtcp_tap().drain(|d| {
            if !duplicate(dedup, d.src, d.dst, 17, d.payload, d.ts) {
                correlator.on_udp(d, out);
            }
        });
        self.flush(ring);
        match decoded {
            // Handed to the correlator, which counts what becomes of it.
            Err(SkipReason::Rtcp) | Ok(_) => {}
            Err(reason) => {
                self.stats.skipped.add(reason);
                self.counters.skip(reason);
            }
        }
    }

    /// Advances time without input: held RTCP past its window is given up.
    pub fn tick(&mut self, now: Timestamp, ring: &Ring) {
        self.correlator.tick(now, &mut self.out);
        self.flush(ring);
    }

    /// Fragments and flows end here (end of a file).
    pub fn flush_reassembly(&mut self) {
        self.decoder.flush();
    }

    /// End of input: RTCP still waiting for its SDP will not get it now.
    pub fn finish(&mut self, ring: &Ring) {
        self.correlator.finish(&mut self.out);
        self.flush(ring);
        self.publish_metrics();
    }

    pub fn stats(&self) -> ProcessStats {
        let mut s = self.stats.clone();
        s.duplicates = self.dedup.as_ref().map_or(0, Dedup::duplicates);
        s
    }

    pub fn reassembly(&self) -> ReassemblyStats {
        self.decoder.stats()
    }

    pub fn correlate_stats(&self) -> CorrelatorStats {
        self.correlator.stats()
    }

    /// Adds what was counted since the last call to the metrics (per file or per second, not
    /// per packet).
    pub fn publish_metrics(&mut self) {
        let s = self.correlator.stats();
        let now = [
            s.rtcp_correlated,
            s.rtcp_correlated_late,
            s.rtcp_uncorrelated,
            s.rtcp_malformed.iter().map(|(_, n)| n).sum(),
            self.dedup.as_ref().map_or(0, Dedup::duplicates),
        ];
        let d: Vec<u64> = now
            .iter()
            .zip(self.published)
            .map(|(n, p)| n.saturating_sub(p))
            .collect();
        let source = self.source.as_str();
        metrics::rtcp_reports(source, "correlated", d[0]);
        metrics::rtcp_reports(source, "correlated_late", d[1]);
        metrics::rtcp_reports(source, "uncorrelated", d[2]);
        metrics::rtcp_reports(source, "malformed", d[3]);
        metrics::duplicates(source, d[4]);
        self.published = now;
    }

    fn flush(&mut self, ring: &Ring) {
        for mut record in self.out.drain(..) {
            if self.restamp {
                record.ts = Timestamp::now();
            }
            self.counters.record();
            ring.push(record);
        }
    }
}

/// True when the datagram is a copy of one seen within the window.
fn duplicate(
    dedup: &mut Option<Dedup>,
    src: SocketAddr,
    dst: SocketAddr,
    transport: u8,
    payload: &[u8],
    ts: Timestamp,
) -> bool {
    dedup
        .as_mut()
        .is_some_and(|d| d.is_duplicate(src, dst, transport, payload, ts))
}
