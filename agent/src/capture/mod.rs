//! Live capture for `hepcap run`: eBPF socket filter, XDP, or libpcap, into the decode path
//! replay uses.
//!
//! Start-up happens in two steps so that privileges can go before any thread exists
//! (capabilities are per thread on Linux): [`open`] loads and attaches programs or opens
//! capture handles on the calling thread; after the caller has dropped its capabilities,
//! [`Opened::start`] starts the readers and the decode thread.
//!
//! Readers (one tokio task draining every CPU's perf buffer every 1 to 10 ms, or one thread per
//! pcap handle) hand batches of frames to a [`FrameQueue`], bounded in frames and bytes; a full
//! queue drops the newest frames and counts them (`queue_full`): readers never wait, so the
//! kernel ring keeps draining. One decode
//! thread owns the [`Processor`] (reassembly, dedup, correlation) and pushes records into the
//! pipeline's ring.

pub mod check;
pub mod clock;
pub mod ebpf;
pub mod filter;
pub mod pcap_live;
pub mod privilege;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::correlate::CorrelatorConfig;
use crate::correlate::dedup::DedupConfig;
use crate::decode::{DecoderConfig, LinkType, PortSet};
use crate::pipeline::Ring;
use crate::process::{ProcessStats, Processor};
use crate::record::{Source, Timestamp};
use crate::telemetry::metrics;

pub use ebpf::XdpAttach;

/// Bytes of frames waiting for the decoder, at most, whatever `--capture-queue` says.
pub const QUEUE_MAX_BYTES: usize = 256 << 20;

/// What `--capture` resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Ebpf,
    Xdp,
    Pcap,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Ebpf => "ebpf",
            Mode::Xdp => "xdp",
            Mode::Pcap => "pcap",
        }
    }
}

/// Everything live capture is configured with.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub mode: Mode,
    /// Interface names; empty: all.
    pub interfaces: Vec<String>,
    pub snaplen: u32,
    pub rtcp_heuristic: bool,
    /// See `hepcap_common::Config::rtcp_recent_ms`.
    pub rtcp_after_sip_ms: u32,
    /// Replaces the generated libpcap filter.
    pub bpf: Option<String>,
    pub perf_pages: usize,
    pub queue_frames: usize,
    pub xdp_attach: XdpAttach,
    pub sip_ports: PortSet,
    pub decoder: DecoderConfig,
    pub correlate: CorrelatorConfig,
    pub dedup: Option<DedupConfig>,
}

/// Why live capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("this hepcap was built without its eBPF programs: {0}")]
    NotBuilt(&'static str),
    #[error("{0}")]
    Privilege(String),
    #[error("no interface named {0:?}")]
    NoInterface(String),
    #[error("--capture xdp needs at least one --interface")]
    XdpNeedsInterface,
    #[error("--bpf is a libpcap filter: it works with --capture pcap (or auto), not ebpf or xdp")]
    BpfNeedsPcap,
    #[error("load eBPF object: {0}")]
    Load(String),
    #[error("the kernel's verifier refused the program: {0}")]
    Verifier(String),
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, String),
    #[error("attach {0}: {1}")]
    Attach(String, String),
    #[error("open perf buffer: {0}")]
    Perf(String),
    #[error("AF_PACKET socket: {0}")]
    Socket(std::io::Error),
    #[error("libpcap on {0}: {1}")]
    Pcap(String, String),
    #[error("filter {0:?} does not compile: {1}")]
    Filter(String, String),
}

/// A named interface and its index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
}

/// The index of the interface called `name`.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The name of interface `index`, for metric labels and logs.
pub fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has room for IF_NAMESIZE bytes, as the call requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// One captured frame on its way to the decoder.
#[derive(Debug)]
pub struct RawFrame {
    pub ts: Timestamp,
    pub link: LinkType,
    /// 0 when unknown (pcap's `any`).
    pub ifindex: u32,
    pub data: Vec<u8>,
}

/// Frames one reader drained in one go: handed over together so the decode thread wakes once
/// per batch, not once per packet.
pub type Batch = Vec<RawFrame>;

/// What is waiting in a [`FrameQueue`].
#[derive(Debug, Default)]
pub struct Backlog {
    frames: AtomicUsize,
    bytes: AtomicUsize,
}

impl Backlog {
    /// The decode thread took `batch` off the queue.
    fn taken(&self, batch: &Batch) {
        let bytes: usize = batch.iter().map(|f| f.data.len()).sum();
        self.frames.fetch_sub(batch.len(), Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The bounded hand-off from readers to the decode thread: at most `max_frames` frames and
/// `max_bytes` bytes wait; beyond that the newest frames are dropped and counted.
#[derive(Clone, Debug)]
pub struct FrameQueue {
    tx: SyncSender<Batch>,
    backlog: Arc<Backlog>,
    max_frames: usize,
    max_bytes: usize,
}

impl FrameQueue {
    pub fn new(max_frames: usize, max_bytes: usize) -> (Self, Receiver<Batch>, Arc<Backlog>) {
        // The frame and byte bounds are what limit memory; the channel only needs room for
        // as many batches as there could be frames.
        let (tx, rx) = std::sync::mpsc::sync_channel(max_frames.clamp(1, 4096));
        let backlog = Arc::new(Backlog::default());
        (
            FrameQueue {
                tx,
                backlog: Arc::clone(&backlog),
                max_frames: max_frames.max(1),
                max_bytes,
            },
            rx,
            backlog,
        )
    }

    /// Queues a batch, dropping (and counting) the frames that do not fit. Never waits.
    pub fn offer(&self, mut batch: Batch, stats: &CaptureStats) {
        if batch.is_empty() {
            return;
        }
        stats
            .copied
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.count_interfaces(&batch);
        let frames = self.backlog.frames.load(Ordering::Relaxed);
        let room = self.max_frames.saturating_sub(frames);
        let byte_room = self
            .max_bytes
            .saturating_sub(self.backlog.bytes.load(Ordering::Relaxed));
        let (mut keep, mut size) = (0, 0);
        for f in batch.iter().take(room) {
            if size + f.data.len() > byte_room {
                break;
            }
            size += f.data.len();
            keep += 1;
        }
        let dropped = batch.len() - keep;
        batch.truncate(keep);
        if dropped > 0 {
            stats
                .queue_full
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        if batch.is_empty() {
            return;
        }
        let len = batch.len();
        self.backlog.frames.fetch_add(len, Ordering::Relaxed);
        self.backlog.bytes.fetch_add(size, Ordering::Relaxed);
        if let Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) = self.tx.try_send(batch)
        {
            self.backlog.taken(&b);
            stats.queue_full.fetch_add(len as u64, Ordering::Relaxed);
        }
    }
}

/// What the capture readers counted; copied into the metrics before each scrape.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Frames handed to user space (before the queue).
    pub copied: AtomicU64,
    /// Samples the kernel could not put in a full perf ring.
    lost_perf: AtomicU64,
    /// Frames dropped because the decode queue was full.
    pub queue_full: AtomicU64,
    /// Perf samples too short for their header.
    malformed: AtomicU64,
    /// Frames per interface index.
    per_interface: Mutex<BTreeMap<u32, u64>>,
    /// libpcap's drop counters per handle: (socket queue, interface).
    pcap_drops: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl CaptureStats {
    pub fn add_lost_perf(&self, n: u64) {
        self.lost_perf.fetch_add(n, Ordering::Relaxed);
    }

    pub fn lost_perf(&self) -> u64 {
        self.lost_perf.load(Ordering::Relaxed)
    }

    pub fn malformed_sample(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    fn count_interfaces(&self, batch: &Batch) {
        if let Ok(mut m) = self.per_interface.lock() {
            for f in batch {
                *m.entry(f.ifindex).or_default() += 1;
            }
        }
    }

    pub fn set_pcap_drops(&self, name: &str, dropped: u64, if_dropped: u64) {
        if let Ok(mut m) = self.pcap_drops.lock() {
            m.insert(name.to_string(), (dropped, if_dropped));
        }
    }

    /// Totals for the exit summary.
    pub fn totals(&self) -> CaptureTotals {
        let (pcap_dropped, if_dropped) = self
            .pcap_drops
            .lock()
            .map(|m| m.values().fold((0, 0), |(a, b), (x, y)| (a + x, b + y)))
            .unwrap_or_default();
        CaptureTotals {
            copied: self.copied.load(Ordering::Relaxed),
            lost_perf: self.lost_perf(),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            pcap_dropped,
            if_dropped,
            kernel: [0; hepcap_common::counter::COUNT as usize],
        }
    }
}

/// A live capture's counts at exit.
#[derive(Clone, Debug, Default)]
pub struct CaptureTotals {
    pub copied: u64,
    pub lost_perf: u64,
    pub queue_full: u64,
    pub malformed: u64,
    pub pcap_dropped: u64,
    pub if_dropped: u64,
    /// The eBPF program's counters (see `hepcap_common::counter`), zero in pcap mode.
    pub kernel: [u64; hepcap_common::counter::COUNT as usize],
}

/// Capture handles opened and attached, not yet read.
pub struct Opened {
    mode: &'static str,
    opts: LiveOptions,
    kind: OpenedKind,
}

enum OpenedKind {
    Ebpf(Box<ebpf::EbpfCapture>),
    Pcap(Vec<pcap_live::PcapSource>),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Opened {
    /// The mode in use: `ebpf`, `xdp` or `pcap`.
    pub fn mode(&self) -> &'static str {
        self.mode
    }
}

fn resolve_interfaces(names: &[String]) -> Result<Vec<Interface>, CaptureError> {
    names
        .iter()
        .map(|n| {
            ifindex(n)
                .map(|index| Interface {
                    name: n.clone(),
                    index,
                })
                .ok_or_else(|| CaptureError::NoInterface(n.clone()))
        })
        .collect()
}

/// Opens the capture (privileged part). `auto` tries eBPF and falls back to libpcap, logging
/// once why.
pub fn open(opts: &LiveOptions) -> Result<Opened, CaptureError> {
    let interfaces = resolve_interfaces(&opts.interfaces)?;
    let mode = match (opts.mode, &opts.bpf) {
        (Mode::Ebpf | Mode::Xdp, Some(_)) => return Err(CaptureError::BpfNeedsPcap),
        // A classic filter given by hand says which capture the operator wants.
        (Mode::Auto, Some(_)) => {
            tracing::info!("--bpf given: using libpcap with that filter");
            Mode::Pcap
        }
        (m, _) => m,
    };
    let kind = match mode {
        Mode::Ebpf => open_ebpf(opts, &interfaces, None)?,
        Mode::Xdp => open_ebpf(opts, &interfaces, Some(opts.xdp_attach))?,
        Mode::Pcap => open_pcap(opts, &interfaces)?,
        Mode::Auto => match open_ebpf(opts, &interfaces, None) {
            Ok(k) => k,
            Err(why) => {
                tracing::warn!(reason = %why, "eBPF capture unavailable; using libpcap");
                open_pcap(opts, &interfaces)?
            }
        },
    };
    let mode = match &kind {
        OpenedKind::Ebpf(e) => e.mode(),
        OpenedKind::Pcap(_) => "pcap",
    };
    Ok(Opened {
        mode,
        opts: opts.clone(),
        kind,
    })
}

fn open_ebpf(
    opts: &LiveOptions,
    interfaces: &[Interface],
    xdp: Option<XdpAttach>,
) -> Result<OpenedKind, CaptureError> {
    ebpf::object()?;
    let mode = if xdp.is_some() { "xdp" } else { "ebpf" };
    if let Some(why) = privilege::missing(mode) {
        return Err(CaptureError::Privilege(why));
    }
    Ok(OpenedKind::Ebpf(Box::new(ebpf::open(
        opts, interfaces, xdp,
    )?)))
}

fn open_pcap(opts: &LiveOptions, interfaces: &[Interface]) -> Result<OpenedKind, CaptureError> {
    if let Some(why) = privilege::missing("pcap") {
        return Err(CaptureError::Privilege(why));
    }
    Ok(OpenedKind::Pcap(pcap_live::open(opts, interfaces)?))
}

/// A running live capture.
pub struct LiveCapture {
    mode: &'static str,
    stop: Arc<AtomicBool>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    readers: Vec<JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    decoder: Option<JoinHandle<DecodeResult>>,
    stats: Arc<CaptureStats>,
    kernel: Option<Arc<Mutex<aya::maps::PerCpuArray<aya::maps::MapData, u64>>>>,
    /// Keeps programs attached until the capture stops.
    _ebpf: Option<Box<ebpf::EbpfCapture>>,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// What the decode thread did.
#[derive(Clone, Debug, Default)]
pub struct DecodeResult {
    pub process: ProcessStats,
    pub reassembly: crate::decode::ReassemblyStats,
    pub correlate: crate::correlate::CorrelatorStats,
}

/// Everything a live capture counted, for the exit summary.
#[derive(Clone, Debug, Default)]
pub struct LiveSummary {
    pub mode: &'static str,
    pub capture: CaptureTotals,
    pub decode: DecodeResult,
}

impl Opened {
    /// Starts the readers (tokio tasks on `runtime` for perf buffers, threads for libpcap) and
    /// the decode thread feeding `ring`.
    pub fn start(
        self,
        runtime: &tokio::runtime::Handle,
        ring: Arc<Ring>,
    ) -> std::io::Result<LiveCapture> {
        let Opened { mode, opts, kind } = self;
        let stats = Arc::new(CaptureStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (queue, rx, backlog) = FrameQueue::new(opts.queue_frames, QUEUE_MAX_BYTES);
        let mut processor = Processor::new(
            Source::Capture(mode),
            opts.decoder.clone(),
            opts.correlate.clone(),
            opts.dedup,
        );
        let mut readers = Vec::new();
        let mut tasks = Vec::new();
        let mut kernel = None;
        let mut keep = None;
        match kind {
            OpenedKind::Ebpf(mut e) => {
                if let Some(mirror) = e.take_rtcp_mirror() {
                    processor.correlator_mut().calls_mut().set_mirror(mirror);
                }
                kernel = Some(e.counters());
                tasks.push(runtime.spawn(ebpf::drain(
                    e.take_buffers(),
                    opts.perf_pages * 4096,
                    queue.clone(),
                    Arc::clone(&stats),
                    stop_rx,
                )));
                keep = Some(e);
            }
            OpenedKind::Pcap(sources) => {
                readers = pcap_live::spawn(sources, &queue, &stats, &stop)?;
            }
        }
        drop(queue);
        register_probe(mode, Arc::clone(&stats), kernel.clone());
        let decoder = std::thread::Builder::new()
            .name("hepcap-decode".into())
            .spawn(move || decode_loop(processor, &rx, &backlog, &ring))?;
        tracing::info!(
            mode,
            interfaces = %if opts.interfaces.is_empty() {
                "all".to_string()
            } else {
                opts.interfaces.join(",")
            },
            "live capture started"
        );
        Ok(LiveCapture {
            mode,
            stop,
            stop_tx,
            readers,
            tasks,
            decoder: Some(decoder),
            stats,
            kernel,
            _ebpf: keep,
        })
    }
}

impl LiveCapture {
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// Stops the readers, lets the decoder finish what is queued, and returns the counts.
    pub async fn stop(mut self) -> LiveSummary {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stop_tx.send(true);
        for t in self.tasks.drain(..) {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "perf reader failed"),
                Err(e) => tracing::error!(error = %e, "perf reader panicked"),
            }
        }
        let readers = std::mem::take(&mut self.readers);
        let decoder = self.decoder.take();
        let joined = tokio::task::spawn_blocking(move || {
            for r in readers {
                let _ = r.join();
            }
            decoder.map(|d| d.join().unwrap_or_default())
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
        let mut capture = self.stats.totals();
        if let Some(k) = &self.kernel {
            capture.kernel = ebpf::read_counters(k);
        }
        metrics::run_probes();
        LiveSummary {
            mode: self.mode,
            capture,
            decode: joined,
        }
    }
}

/// The decode thread: frames in, records out, one second ticks for the correlator's held
/// RTCP and the metrics.
fn decode_loop(
    mut processor: Processor,
    rx: &Receiver<Batch>,
    backlog: &Backlog,
    ring: &Ring,
) -> DecodeResult {
    let mut last_tick = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(batch) => {
                backlog.taken(&batch);
                for frame in &batch {
                    processor.frame(frame.link, frame.ts, &frame.data, ring);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            // Every reader stopped and the queue is empty.
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            processor.tick(Timestamp::now(), ring);
            processor.publish_metrics();
        }
    }
    processor.finish(ring);
    DecodeResult {
        process: processor.stats(),
        reassembly: processor.reassembly(),
        correlate: processor.correlate_stats(),
    }
}

/// Copies capture counters into the metrics registry before each scrape.
fn register_probe(
    mode: &'static str,
    stats: Arc<CaptureStats>,
    kernel: Option<Arc<Mutex<aya::maps::PerCpuArray<aya::maps::MapData, u64>>>>,
) {
    metrics::add_probe(Box::new(move || {
        let totals = stats.totals();
        let per_interface: Vec<(String, u64)> = stats
            .per_interface
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(&i, &n)| (ifname(i).unwrap_or_else(|| "any".into()), n))
                    .collect()
            })
            .unwrap_or_default();
        let kernel = kernel.as_ref().map(|k| ebpf::read_counters(k));
        metrics::capture_probe(mode, &totals, &per_interface, kernel.as_ref());
    }));
}
