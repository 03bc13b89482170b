//! `--capture pcap`: libpcap live capture, the fallback where eBPF is not available.
//!
//! One capture handle per interface (or libpcap's `any` pseudo-device when none is named),
//! each read on its own thread with a short timeout so a stop request is seen promptly. The
//! classic BPF filter is generated from the SIP ports (see [`super::filter`]) unless `--bpf`
//! replaces it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::{CaptureError, CaptureStats, FrameQueue, Interface, LiveOptions, RawFrame};
use crate::decode::LinkType;
use crate::record::Timestamp;

/// An opened, filtered capture handle not yet being read.
pub struct PcapSource {
    name: String,
    ifindex: u32,
    link: LinkType,
    cap: pcap::Capture<pcap::Active>,
}

impl std::fmt::Debug for PcapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapSource")
            .field("name", &self.name)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// Opens every handle and sets its filter (this is where privileges are needed).
pub fn open(opts: &LiveOptions, interfaces: &[Interface]) -> Result<Vec<PcapSource>, CaptureError> {
    let targets: Vec<(String, u32)> = if interfaces.is_empty() {
        vec![("any".to_string(), 0)]
    } else {
        interfaces
            .iter()
            .map(|i| (i.name.clone(), i.index))
            .collect()
    };
    let mut out = Vec::new();
    for (name, ifindex) in targets {
        let fail = |e: pcap::Error| CaptureError::Pcap(name.clone(), e.to_string());
        let mut cap = pcap::Capture::from_device(name.as_str())
            .map_err(fail)?
            .snaplen(opts.snaplen as i32)
            // Not immediate mode: libpcap then uses the kernel's block ring (TPACKET_V3), one
            // wake-up per block instead of one per packet; a block is handed over at the latest
            // after this many milliseconds. Packets keep their kernel timestamps either way.
            .timeout(10)
            .buffer_size(8 << 20)
            .open()
            .map_err(fail)?
            // Non-blocking, polled with a timeout of our own, so a stop request is seen even
            // while no packet arrives.
            .setnonblock()
            .map_err(fail)?;
        // `any` gives Linux cooked headers; v2 also names the interface.
        if name == "any" {
            let _ = cap.set_datalink(pcap::Linktype::LINUX_SLL2);
        }
        let ethernet = cap.get_datalink() == pcap::Linktype::ETHERNET;
        let filter = opts
            .bpf
            .clone()
            .unwrap_or_else(|| super::filter::generate(&opts.sip_ports, ethernet));
        cap.filter(&filter, true)
            .map_err(|e| CaptureError::Filter(filter.clone(), e.to_string()))?;
        let link = LinkType::from_linktype(cap.get_datalink().0)
            .map_err(|e| CaptureError::Pcap(name.clone(), format!("link type: {e}")))?;
        tracing::debug!(interface = %name, ?link, %filter, "pcap capture open");
        out.push(PcapSource {
            name,
            ifindex,
            link,
            cap,
        });
    }
    Ok(out)
}

/// Reads each handle on a thread of its own until `stop` is set.
pub fn spawn(
    sources: Vec<PcapSource>,
    queue: &FrameQueue,
    stats: &Arc<CaptureStats>,
    stop: &Arc<AtomicBool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    for source in sources {
        let queue = queue.clone();
        let stats = Arc::clone(stats);
        let stop = Arc::clone(stop);
        threads.push(
            std::thread::Builder::new()
                .name(format!("hepcap-pcap-{}", source.name))
                .spawn(move || read(source, &queue, &stats, &stop))?,
        );
    }
    Ok(threads)
}

/// Frames handed to the queue at most per batch.
const BATCH: usize = 256;

fn read(mut source: PcapSource, queue: &FrameQueue, stats: &CaptureStats, stop: &AtomicBool) {
    use std::os::fd::AsRawFd;
    let fd = source.cap.as_raw_fd();
    let mut last_stats = std::time::Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        match source.cap.next_packet() {
            Ok(packet) => {
                batch.push(frame(source.link, source.ifindex, &packet));
                if batch.len() >= BATCH {
                    queue.offer(std::mem::take(&mut batch), stats);
                }
            }
            Err(pcap::Error::TimeoutExpired) => {
                queue.offer(std::mem::take(&mut batch), stats);
                wait_readable(fd);
            }
            Err(e) => {
                tracing::error!(interface = %source.name, error = %e, "pcap capture stopped");
                break;
            }
        }
        if last_stats.elapsed() >= std::time::Duration::from_secs(1) {
            last_stats = std::time::Instant::now();
            publish(&mut source, stats);
        }
    }
    // What the kernel already holds at the stop request is still taken.
    while batch.len() < BATCH * 64 {
        let Ok(packet) = source.cap.next_packet() else {
            break;
        };
        batch.push(frame(source.link, source.ifindex, &packet));
    }
    queue.offer(batch, stats);
    publish(&mut source, stats);
}

fn frame(link: LinkType, ifindex: u32, packet: &pcap::Packet<'_>) -> RawFrame {
    RawFrame {
        ts: Timestamp::from_parts(
            packet.header.ts.tv_sec.max(0) as u64,
            packet.header.ts.tv_usec.max(0) as u32,
        ),
        link,
        ifindex,
        data: packet.data.to_vec(),
    }
}

/// Waits up to 100 ms for the capture descriptor to become readable.
fn wait_readable(fd: std::os::fd::RawFd) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    unsafe { libc::poll(&mut pfd, 1, 100) };
}

/// libpcap's own drop counters: the socket's queue (`ps_drop`) and the interface's.
fn publish(source: &mut PcapSource, stats: &CaptureStats) {
    if let Ok(s) = source.cap.stats() {
        stats.set_pcap_drops(&source.name, u64::from(s.dropped), u64::from(s.if_dropped));
    }
}
