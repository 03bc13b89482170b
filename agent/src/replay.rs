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

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::correlate::dedup::DedupConfig;
use crate::correlate::{CorrelatorConfig, CorrelatorStats};
use crate::decode::{DecoderConfig, ReassemblyStats, SkipCounts};
use crate::pipeline::Pipeline;
use crate::process::Processor;
use crate::record::{Source, Timestamp};
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
    let mut processor = Processor::new(
        Source::Replay,
        opts.decoder.clone(),
        opts.correlate.clone(),
        opts.dedup,
    );
    processor.set_restamp(opts.restamp);
    let ring = pipeline.ring();

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
            let link = file.link_type();
            while let Some(frame) = file.next_frame() {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!(error = %e, "capture file ends early");
                        if pass == 1 {
                            stats.file_errors.push(e.to_string());
                        }
                        break;
                    }
                };
                if clock.wait(frame.ts, stop) {
                    break;
                }
                processor.frame(link, frame.ts, frame.data, &ring);
            }
            // Fragments and flows do not continue from one file into the next.
            processor.flush_reassembly();
            processor.publish_metrics();
        }
        if stop.load(Ordering::Relaxed) || stats.files_read == 0 {
            break;
        }
    }
    processor.finish(&ring);
    let p = processor.stats();
    stats.packets = p.packets;
    stats.sip_messages = p.sip_messages;
    stats.sip_no_call_id = p.sip_no_call_id;
    stats.skipped = p.skipped;
    stats.duplicates = p.duplicates;
    stats.reassembly = processor.reassembly();
    stats.correlate = processor.correlate_stats();
    stats
}

/// Keeps the capture's gaps when pacing.
struct PaceClock {
    pace: bool,
    speed: f64,
    /// Capture time and wall time of the first packet of the pass.
    origin: Option<(Timestamp, Instant)>,
}

impl PaceClock {
    fn new(opts: &ReplayOptions) -> Self {
        PaceClock {
            pace: opts.pace,
            speed: opts.speed,
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
