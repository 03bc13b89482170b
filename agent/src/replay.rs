//! `hepcap replay`: capture files through the live decode path into the sinks.
//!
//! The loop reads frames in file order, decodes them, and pushes records into the pipeline.
//! Replay is the one source allowed to wait for its sinks (the pipeline's `block` policy): a
//! slow sink slows the replay, nothing is dropped for lack of room. Timing is a choice: as fast as possible with the
//! capture's timestamps (default), the capture's gaps (`--pace`, scaled by `--speed`), and/or
//! the current time instead of the capture's (`--restamp`).
//!
//! Between the decoder and the pipeline sit duplicate suppression (`--dedup`, off by default
//! here: a capture file holds what was captured once) and the correlation stage, which learns
//! media addresses from SIP and turns RTCP into HEP type 5 records with the call's Call-ID.
//! Both see packets in file order and use the capture time as their clock, also with
//! `--restamp`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::correlate::dedup::{Dedup, DedupConfig};
use crate::correlate::{Correlator, CorrelatorConfig, CorrelatorStats, SipMessageView};
use crate::decode::{Decoder, DecoderConfig, ReassemblyStats, SkipCounts, SkipReason};
use crate::pipeline::Pipeline;
use crate::record::{Record, Source, Timestamp};
use crate::source::CaptureFile;

/// How to replay.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayOptions {
    pub files: Vec<PathBuf>,
    /// Keep the capture's inter-packet gaps, divided by `speed`.
    pub pace: bool,
    /// Gap divisor with `pace`: 2.0 replays twice as fast.
    pub speed: f64,
    /// Stamp records with the current time instead of the capture time.
    pub restamp: bool,
    /// Passes over the files; 0 repeats until stopped.
    pub loops: u64,
    /// SIP ports, tunnels and reassembly limits: the same decoder live capture uses.
    pub decoder: DecoderConfig,
    /// RTCP correlation: tables, hold window, what to do with unmatched RTCP.
    pub correlate: CorrelatorConfig,
    /// Duplicate suppression, when on.
    pub dedup: Option<DedupConfig>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            files: Vec::new(),
            pace: false,
            speed: 1.0,
            restamp: false,
            loops: 1,
            decoder: DecoderConfig::default(),
            correlate: CorrelatorConfig::default(),
            dedup: None,
        }
    }
}

/// What a replay did.
#[derive(Clone, Debug, Default)]
pub struct ReplayStats {
    /// Files opened successfully (counted once per pass).
    pub files_read: u64,
    /// Errors that made a file unreadable or cut it short, one message each.
    pub file_errors: Vec<String>,
    pub packets: u64,
    pub sip_messages: u64,
    /// SIP messages forwarded without a Call-ID.
    pub sip_no_call_id: u64,
    pub skipped: SkipCounts,
    /// Fragment and TCP flow tables: completed, expired, evicted, malformed, peaks.
    pub reassembly: ReassemblyStats,
    /// RTCP decoded, correlated, held, uncorrelated; call table counters.
    pub correlate: CorrelatorStats,
    /// Datagrams dropped as copies of one seen within the dedup window.
    pub duplicates: u64,
}

/// Replays `opts.files` into `pipeline` until the files end or `stop` is set.
pub fn run(opts: &ReplayOptions, pipeline: &Pipeline, stop: &AtomicBool) -> ReplayStats {
    let mut stats = ReplayStats::default();
    let mut pass = 0u64;
    let mut decoder = Decoder::new(opts.decoder.clone());
    decoder.rtcp_tap().enable(true);
    let mut post = PostDecode {
        correlator: Correlator::new(opts.correlate.clone(), Source::Replay.as_str()),
        dedup: opts.dedup.map(Dedup::new),
        out: Vec::new(),
        published: [0; 5],
    };

    while opts.loops == 0 || pass < opts.loops {
        pass += 1;
        let mut clock = PaceClock::new(opts);
        for path in &opts.files {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let mut file = match CaptureFile::open(path) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "skipping file");
                    // One message per file, not per pass.
                    if pass == 1 {
                        stats.file_errors.push(e.to_string());
                    }
                    continue;
                }
            };
            stats.files_read += 1;
            tracing::debug!(file = %path.display(), link = ?file.link_type(), "replaying");
            let mut ctx = FileReplay {
                clock: &mut clock,
                decoder: &mut decoder,
                post: &mut post,
                pipeline,
                stop,
                stats: &mut stats,
                pass,
            };
            ctx.replay(&mut file);
            // Fragments and flows do not continue from one file into the next.
            decoder.flush();
            post.publish_metrics();
        }
        if stop.load(Ordering::Relaxed) || stats.files_read == 0 {
            break;
        }
    }
    stats.reassembly = decoder.stats();
    // RTCP still waiting for its SDP will not get it now.
    post.correlator.finish(&mut post.out);
    post.flush(pipeline, opts.restamp);
    post.publish_metrics();
    stats.correlate = post.correlator.stats();
    stats.duplicates = post.dedup.as_ref().map_or(0, Dedup::duplicates);
    stats
}

/// What happens to decoded packets before the pipeline.
#[derive(Debug)]
struct PostDecode {
    correlator: Correlator,
    dedup: Option<Dedup>,
    /// Records the correlator made, pushed after each frame.
    out: Vec<Record>,
    /// Counts already added to the metrics: correlated, late, uncorrelated, malformed,
    /// duplicates.
    published: [u64; 5],
}

impl PostDecode {
    /// Adds what was counted since the last call to the metrics (per file, not per packet).
    fn publish_metrics(&mut self) {
        use crate::telemetry::metrics;

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
        let source = Source::Replay.as_str();
        metrics::rtcp_reports(source, "correlated", d[0]);
        metrics::rtcp_reports(source, "correlated_late", d[1]);
        metrics::rtcp_reports(source, "uncorrelated", d[2]);
        metrics::rtcp_reports(source, "malformed", d[3]);
        metrics::duplicates(source, d[4]);
        self.published = now;
    }

    /// True when the datagram is a copy of one seen within the window.
    fn duplicate(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        transport: u8,
        payload: &[u8],
        ts: Timestamp,
    ) -> bool {
        self.dedup
            .as_mut()
            .is_some_and(|d| d.is_duplicate(src, dst, transport, payload, ts))
    }

    fn flush(&mut self, pipeline: &Pipeline, restamp: bool) {
        for mut record in self.out.drain(..) {
            if restamp {
                record.ts = Timestamp::now();
            }
            pipeline.push(record);
        }
    }
}

/// One file's replay: where frames go and what is counted.
struct FileReplay<'a> {
    clock: &'a mut PaceClock,
    decoder: &'a mut Decoder,
    post: &'a mut PostDecode,
    pipeline: &'a Pipeline,
    stop: &'a AtomicBool,
    stats: &'a mut ReplayStats,
    pass: u64,
}

impl FileReplay<'_> {
    fn replay(&mut self, file: &mut CaptureFile) {
        let link = file.link_type();
        while let Some(frame) = file.next_frame() {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "capture file ends early");
                    if self.pass == 1 {
                        self.stats.file_errors.push(e.to_string());
                    }
                    return;
                }
            };
            self.stats.packets += 1;
            if self.clock.wait(frame.ts, self.stop) {
                return;
            }
            let restamp = self.clock.restamp;
            let stats = &mut *self.stats;
            let pipeline = self.pipeline;
            let post = &mut *self.post;
            let decoded = self
                .decoder
                .decode(link, frame.ts, frame.data, &mut |sip, ts| {
                    let (src, dst) = (
                        SocketAddr::new(sip.src, sip.src_port),
                        SocketAddr::new(sip.dst, sip.dst_port),
                    );
                    if post.duplicate(src, dst, sip.transport.0, sip.payload, ts) {
                        return;
                    }
                    stats.sip_messages += 1;
                    if sip.sip.call_id.is_none() {
                        stats.sip_no_call_id += 1;
                    }
                    let record = sip.to_record(ts, Source::Replay);
                    if let Some(view) = SipMessageView::of_record(&record) {
                        post.correlator.on_sip(&view, ts, &mut post.out);
                    }
                    let mut record = record;
                    if restamp {
                        record.ts = Timestamp::now();
                    }
                    pipeline.push(record);
                });
            self.decoder.rtcp_tap().drain(|d| {
                if !post.duplicate(d.src, d.dst, 17, d.payload, d.ts) {
                    post.correlator.on_udp(d, &mut post.out);
                }
            });
            post.flush(pipeline, restamp);
            match decoded {
                // Handed to the correlator, which counts what becomes of it.
                Err(SkipReason::Rtcp) => {}
                Err(reason) => {
                    self.stats.skipped.add(reason);
                    crate::telemetry::metrics::decode_skip("replay", reason);
                }
                Ok(_) => {}
            }
        }
    }
}

/// Keeps the capture's gaps when pacing.
struct PaceClock {
    pace: bool,
    speed: f64,
    restamp: bool,
    /// Capture time and wall time of the first packet of the pass.
    origin: Option<(Timestamp, Instant)>,
}

impl PaceClock {
    fn new(opts: &ReplayOptions) -> Self {
        PaceClock {
            pace: opts.pace,
            speed: opts.speed,
            restamp: opts.restamp,
            origin: None,
        }
    }

    /// Sleeps until `ts` is due. True when stopped.
    fn wait(&mut self, ts: Timestamp, stop: &AtomicBool) -> bool {
        if !self.pace {
            return stop.load(Ordering::Relaxed);
        }
        let (t0, w0) = *self.origin.get_or_insert((ts, Instant::now()));
        // Packets stamped before the first one (out of order captures) go out at once.
        let gap_us = ts.0.saturating_sub(t0.0) as f64 / self.speed;
        let due = w0 + Duration::from_micros(gap_us as u64);
        let mut now = Instant::now();
        while due > now {
            if stop.load(Ordering::Relaxed) {
                return true;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(100)));
            now = Instant::now();
        }
        false
    }
}
