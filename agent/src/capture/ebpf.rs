//! Live capture through the eBPF programs: load them, attach the socket filter to AF_PACKET
//! sockets (or XDP to interfaces), fill the SIP-port and config maps, and drain the per-CPU
//! perf buffers with tokio into the frame queue.
//!
//! The kernel decides what leaves it (SIP, learnt RTCP endpoints, UDP fragments); everything
//! else, RTP above all, is never copied. The socket filter returns 0 so its own socket queues
//! nothing, and XDP always passes: the host's traffic is untouched.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::Mutex;

use aya::maps::perf::PerfEventArrayBuffer;
use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerfEventArray};
use aya::programs::{SocketFilter, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use hepcap_common::{self as common, Config, EventHeader, RtcpKey};

use super::{CaptureError, CaptureStats, FrameQueue, Interface, LiveOptions, RawFrame};
use crate::capture::clock::MonotonicClock;
use crate::correlate::calls::AddressMirror;
use crate::decode::LinkType;
use crate::telemetry::LogLimit;
use crate::telemetry::metrics;

/// The compiled programs, embedded at build time (see agent/build.rs).
#[cfg(not(hepcap_no_ebpf))]
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hepcap-ebpf.o"));

/// The embedded object, or why this build has none.
pub fn object() -> Result<&'static [u8], CaptureError> {
    #[cfg(not(hepcap_no_ebpf))]
    {
        Ok(OBJECT)
    }
    #[cfg(hepcap_no_ebpf)]
    {
        Err(CaptureError::NotBuilt(env!("HEPCAP_EBPF_MISSING")))
    }
}

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpAttach {
    /// Native (driver) mode, else generic with a warning naming the interface.
    Auto,
    /// Driver mode only.
    Native,
    /// Generic (skb) mode: works on every interface, slower.
    Generic,
}

/// Loaded programs and the kernel objects that keep them attached. Dropping it detaches
/// everything.
pub struct EbpfCapture {
    mode: &'static str,
    _bpf: Ebpf,
    /// AF_PACKET sockets carrying the socket filter.
    _sockets: Vec<OwnedFd>,
    buffers: Vec<PerfEventArrayBuffer<MapData>>,
    counters: Arc<Mutex<PerCpuArray<MapData, u64>>>,
    rtcp: Option<HashMap<MapData, RtcpKey, u8>>,
    /// Per interface: how XDP was attached (`native`/`generic`), for the log and `check`.
    pub xdp_modes: Vec<(String, &'static str)>,
}

impl std::fmt::Debug for EbpfCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EbpfCapture")
            .field("mode", &self.mode)
            .field("buffers", &self.buffers.len())
            .field("xdp_modes", &self.xdp_modes)
            .finish_non_exhaustive()
    }
}

/// The verifier's verdict without its whole log: the last lines say why.
pub fn verifier_error(e: aya::programs::ProgramError) -> CaptureError {
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let tail = if lines.len() > 6 {
        format!(
            "{} [...] {}",
            lines[0],
            lines[lines.len() - 5..].join(" | ")
        )
    } else {
        lines.join(" | ")
    };
    CaptureError::Verifier(tail)
}

/// Loads the object and sets its maps; programs are not attached yet.
pub fn load(opts: &LiveOptions) -> Result<Ebpf, CaptureError> {
    let object = object()?;
    let mut bpf = EbpfLoader::new()
        .load(object)
        .map_err(|e| CaptureError::Load(e.to_string()))?;
    let lo_ifindex = super::ifindex("lo").unwrap_or(0);
    let mut config: Array<_, Config> = map_mut(&mut bpf, common::MAP_CONFIG)?;
    let flags = if opts.rtcp_heuristic {
        common::FLAG_RTCP_HEURISTIC
    } else {
        0
    };
    config
        .set(
            0,
            Config {
                snaplen: opts.snaplen,
                lo_ifindex,
                flags,
                rtcp_recent_ms: opts.rtcp_after_sip_ms,
            },
            0,
        )
        .map_err(|e| CaptureError::Map(common::MAP_CONFIG, e.to_string()))?;
    let mut ports: Array<_, u8> = map_mut(&mut bpf, common::MAP_SIP_PORTS)?;
    for &(a, b) in opts.sip_ports.ranges() {
        for port in a..=b {
            ports
                .set(u32::from(port), 1, 0)
                .map_err(|e| CaptureError::Map(common::MAP_SIP_PORTS, e.to_string()))?;
        }
    }
    Ok(bpf)
}

/// The map `name`, typed, still owned by `bpf`.
fn map_mut<'a, T>(bpf: &'a mut Ebpf, name: &'static str) -> Result<T, CaptureError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = bpf
        .map_mut(name)
        .ok_or(CaptureError::Map(name, "not in the object".into()))?;
    T::try_from(map).map_err(|e| CaptureError::Map(name, e.to_string()))
}

/// The map `name`, typed, taken out of `bpf` to live on its own.
fn take_map<T>(bpf: &mut Ebpf, name: &'static str) -> Result<T, CaptureError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = bpf
        .take_map(name)
        .ok_or(CaptureError::Map(name, "not in the object".into()))?;
    T::try_from(map).map_err(|e| CaptureError::Map(name, e.to_string()))
}

/// The program `name` of the object, typed and loaded into the kernel (the verifier runs).
pub fn load_program<'a, T>(bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, CaptureError>
where
    T: LoadProgram + 'a,
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog: &mut T = bpf
        .program_mut(name)
        .ok_or_else(|| CaptureError::Load(format!("no program {name}")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| CaptureError::Load(e.to_string()))?;
    prog.load_into_kernel().map_err(verifier_error)?;
    Ok(prog)
}

/// The programs' own `load`, which aya gives each program type as an inherent method.
pub trait LoadProgram {
    fn load_into_kernel(&mut self) -> Result<(), aya::programs::ProgramError>;
}

impl LoadProgram for SocketFilter {
    fn load_into_kernel(&mut self) -> Result<(), aya::programs::ProgramError> {
        self.load()
    }
}

impl LoadProgram for Xdp {
    fn load_into_kernel(&mut self) -> Result<(), aya::programs::ProgramError> {
        self.load()
    }
}

/// Loads the programs and attaches them: the socket filter to one AF_PACKET socket per
/// interface (one for all when none is named), or XDP to each named interface.
pub fn open(
    opts: &LiveOptions,
    interfaces: &[Interface],
    xdp: Option<XdpAttach>,
) -> Result<EbpfCapture, CaptureError> {
    let mut bpf = load(opts)?;
    let mut sockets = Vec::new();
    let mut xdp_modes = Vec::new();
    let mode = match xdp {
        None => {
            let prog: &mut SocketFilter = load_program(&mut bpf, common::PROG_SOCKET)?;
            let targets: Vec<u32> = if interfaces.is_empty() {
                vec![0]
            } else {
                interfaces.iter().map(|i| i.index).collect()
            };
            for index in targets {
                let socket = packet_socket().map_err(CaptureError::Socket)?;
                prog.attach(socket.as_fd())
                    .map_err(|e| CaptureError::Attach("socket filter".into(), e.to_string()))?;
                bind_all_protocols(&socket, index).map_err(CaptureError::Socket)?;
                sockets.push(socket);
            }
            "ebpf"
        }
        Some(attach) => {
            if interfaces.is_empty() {
                return Err(CaptureError::XdpNeedsInterface);
            }
            let prog: &mut Xdp = load_program(&mut bpf, common::PROG_XDP)?;
            for iface in interfaces {
                let how = attach_xdp(prog, iface, attach)?;
                xdp_modes.push((iface.name.clone(), how));
            }
            "xdp"
        }
    };

    let mut events: PerfEventArray<MapData> = take_map(&mut bpf, common::MAP_EVENTS)?;
    let cpus =
        aya::util::online_cpus().map_err(|(what, e)| CaptureError::Load(format!("{what}: {e}")))?;
    let mut buffers = Vec::new();
    for cpu in cpus {
        buffers.push(
            events
                .open(cpu, Some(opts.perf_pages))
                .map_err(|e| CaptureError::Perf(e.to_string()))?,
        );
    }
    let counters = take_map(&mut bpf, common::MAP_COUNTERS)?;
    let rtcp = take_map(&mut bpf, common::MAP_RTCP)?;
    Ok(EbpfCapture {
        mode,
        _bpf: bpf,
        _sockets: sockets,
        buffers,
        counters: Arc::new(Mutex::new(counters)),
        rtcp: Some(rtcp),
        xdp_modes,
    })
}

fn attach_xdp(
    prog: &mut Xdp,
    iface: &Interface,
    how: XdpAttach,
) -> Result<&'static str, CaptureError> {
    let fail = |e: aya::programs::ProgramError| {
        CaptureError::Attach(format!("xdp on {}", iface.name), e.to_string())
    };
    match how {
        XdpAttach::Generic => prog
            .attach_to_if_index(iface.index, XdpMode::Skb)
            .map(|_| "generic")
            .map_err(fail),
        XdpAttach::Native => prog
            .attach_to_if_index(iface.index, XdpMode::Driver)
            .map(|_| "native")
            .map_err(fail),
        XdpAttach::Auto => match prog.attach_to_if_index(iface.index, XdpMode::Driver) {
            Ok(_) => Ok("native"),
            Err(e) => {
                tracing::warn!(
                    interface = %iface.name,
                    error = %e,
                    "native XDP refused (the driver has no XDP support, or another program \
                     is attached); using generic XDP on this interface (slower)"
                );
                prog.attach_to_if_index(iface.index, XdpMode::Skb)
                    .map(|_| "generic")
                    .map_err(fail)
            }
        },
    }
}

/// An AF_PACKET socket that receives nothing yet: protocol 0 until the filter is attached,
/// so no packet queues on it unfiltered.
fn packet_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds the socket to every protocol on `ifindex` (0: every interface).
fn bind_all_protocols(socket: &OwnedFd, ifindex: u32) -> std::io::Result<()> {
    // SAFETY: zeroed sockaddr_ll is a valid value; the fields are set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl EbpfCapture {
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// The RTCP map, as a mirror of the correlator's address table.
    pub fn take_rtcp_mirror(&mut self) -> Option<Box<dyn AddressMirror>> {
        self.rtcp.take().map(|map| {
            Box::new(KernelRtcpMap {
                map,
                errors: LogLimit::new(std::time::Duration::from_secs(10)),
            }) as Box<dyn AddressMirror>
        })
    }

    /// The kernel's counters summed over CPUs, in `common::counter` order.
    pub fn counters(&self) -> Arc<Mutex<PerCpuArray<MapData, u64>>> {
        Arc::clone(&self.counters)
    }

    /// Takes the perf buffers for the reader tasks.
    pub fn take_buffers(&mut self) -> Vec<PerfEventArrayBuffer<MapData>> {
        std::mem::take(&mut self.buffers)
    }
}

/// Reads the per-CPU counters and sums them.
pub fn read_counters(
    counters: &Mutex<PerCpuArray<MapData, u64>>,
) -> [u64; common::counter::COUNT as usize] {
    let mut out = [0u64; common::counter::COUNT as usize];
    if let Ok(c) = counters.lock() {
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(values) = c.get(&(i as u32), 0) {
                *slot = values.iter().sum();
            }
        }
    }
    out
}

/// The kernel's RTCP map kept in step with the correlator's address table.
struct KernelRtcpMap {
    map: HashMap<MapData, RtcpKey, u8>,
    errors: LogLimit,
}

impl std::fmt::Debug for KernelRtcpMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KernelRtcpMap")
    }
}

/// The map key of an address: IPv4 as IPv4-mapped IPv6, the port in host order.
pub fn rtcp_key(addr: std::net::SocketAddr) -> RtcpKey {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        std::net::IpAddr::V6(v6) => v6,
    };
    RtcpKey {
        addr: ip.octets(),
        port: addr.port(),
        _pad: [0; 2],
    }
}

impl AddressMirror for KernelRtcpMap {
    fn inserted(&mut self, addr: std::net::SocketAddr) {
        if let Err(e) = self.map.insert(rtcp_key(addr), 1, 0) {
            metrics::capture_error("rtcp_map_insert");
            if let Some(suppressed) = self.errors.allow(std::time::Instant::now()) {
                tracing::warn!(error = %e, suppressed, "cannot add an RTCP endpoint to the kernel map");
            }
        }
    }

    fn removed(&mut self, addr: std::net::SocketAddr) {
        // The LRU map may have dropped it already: not an error.
        let _ = self.map.remove(&rtcp_key(addr));
    }
}

/// How often the perf buffers are drained. aya asks the kernel to signal every sample; waiting
/// on that readiness costs a wake-up (and a context switch) per packet, in this task, the
/// decode thread and the dispatcher. Polling instead bounds the wake-ups whatever the rate,
/// while the kernel's timestamps keep the packets' times exact: every `DRAIN_IDLE` while
/// little arrives, every `DRAIN_BUSY` once a drain finds a buffer an eighth full.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_millis(10);
const DRAIN_BUSY: std::time::Duration = std::time::Duration::from_millis(1);

/// Drains every CPU's perf buffer into the frame queue until `stop` fires, then once more.
pub async fn drain(
    mut buffers: Vec<PerfEventArrayBuffer<MapData>>,
    buffer_bytes: usize,
    queue: FrameQueue,
    stats: Arc<CaptureStats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut clock = MonotonicClock::default();
    let mut lost_log = LogLimit::new(std::time::Duration::from_secs(10));
    let mut wait = DRAIN_IDLE;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed(), if !stopping => stopping = true,
        }
        clock.maybe_resync();
        let mut batch = Vec::new();
        let mut lost = 0u64;
        let mut fullest = 0usize;
        for buffer in &mut buffers {
            if !buffer.readable() {
                continue;
            }
            let mut bytes = 0usize;
            buffer.for_each(|event| match event {
                aya::maps::perf::PerfEvent::Sample { head, tail } => {
                    bytes += head.len() + tail.len();
                    if let Some(frame) = sample(head, tail, &clock, &stats) {
                        batch.push(frame);
                    }
                }
                aya::maps::perf::PerfEvent::Lost { count } => lost += count,
            });
            fullest = fullest.max(bytes);
        }
        wait = if fullest > buffer_bytes / 8 || lost > 0 {
            DRAIN_BUSY
        } else {
            DRAIN_IDLE
        };
        queue.offer(batch, &stats);
        if lost > 0 {
            stats.add_lost_perf(lost);
            if let Some(suppressed) = lost_log.allow(std::time::Instant::now()) {
                tracing::warn!(
                    lost,
                    suppressed,
                    total = stats.lost_perf(),
                    "perf ring full: the kernel dropped captured packets (raise --perf-pages)"
                );
            }
        }
        // The drain after the stop request takes what the kernel wrote until then.
        if stopping {
            break;
        }
    }
    Ok(())
}

/// One perf sample: header, then the packet's first `cap_len` bytes (maybe split in two
/// slices where the ring wraps).
fn sample(
    head: &[u8],
    tail: &[u8],
    clock: &MonotonicClock,
    stats: &CaptureStats,
) -> Option<RawFrame> {
    const HDR: usize = std::mem::size_of::<EventHeader>();
    let total = head.len() + tail.len();
    if total < HDR {
        stats.malformed_sample();
        return None;
    }
    let mut hdr_bytes = [0u8; HDR];
    let from_head = head.len().min(HDR);
    hdr_bytes[..from_head].copy_from_slice(&head[..from_head]);
    hdr_bytes[from_head..].copy_from_slice(&tail[..HDR - from_head]);
    // SAFETY: EventHeader is plain old data of exactly HDR bytes (asserted in common).
    let header: EventHeader = unsafe { std::ptr::read_unaligned(hdr_bytes.as_ptr().cast()) };
    let cap = header.cap_len as usize;
    if HDR + cap > total {
        stats.malformed_sample();
        return None;
    }
    let mut data = Vec::with_capacity(cap);
    // The packet spans [HDR, HDR + cap) of head ++ tail.
    let head_part = head.get(HDR..).unwrap_or(&[]);
    let take_head = head_part.len().min(cap);
    data.extend_from_slice(&head_part[..take_head]);
    let tail_start = HDR.saturating_sub(head.len());
    data.extend_from_slice(&tail[tail_start..tail_start + (cap - take_head)]);
    Some(RawFrame {
        ts: clock.to_wall(header.ts_ns),
        link: LinkType::Ethernet,
        ifindex: header.ifindex,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(cap: &[u8], ts_ns: u64) -> Vec<u8> {
        let header = EventHeader {
            ts_ns,
            ifindex: 7,
            orig_len: cap.len() as u32,
            cap_len: cap.len() as u32,
            ..Default::default()
        };
        // SAFETY: reading the bytes of a plain #[repr(C)] value without padding.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                std::ptr::from_ref(&header).cast::<u8>(),
                std::mem::size_of::<EventHeader>(),
            )
        };
        let mut v = bytes.to_vec();
        v.extend_from_slice(cap);
        // Kernel alignment padding after the sample.
        v.extend_from_slice(&[0xee; 3]);
        v
    }

    #[test]
    fn sample_is_rebuilt_wherever_the_ring_wraps() {
        let packet: Vec<u8> = (0..100u8).collect();
        let raw = event(&packet, 5_000_000_123);
        let clock = MonotonicClock::with_offset(1_000_000_000_000);
        let stats = CaptureStats::default();
        for split in 0..=raw.len() {
            let (head, tail) = raw.split_at(split);
            let f = sample(head, tail, &clock, &stats).expect("whole sample");
            assert_eq!(f.data, packet, "split at {split}");
            assert_eq!(f.ifindex, 7);
            // (5.000000123 s + 1000 s) in µs, truncated.
            assert_eq!(f.ts.0, 1_005_000_000);
        }
        assert!(sample(&raw[..10], &[], &clock, &stats).is_none());
    }
}
