//! `cargo xtask bench-relay`: how fast `hepcap run` relays HEPv3 over UDP on loopback,
//! against a plain batched UDP forwarder as this machine's ceiling.
//!
//! Each run has three parts on 127.0.0.1: a load generator (a thread here, `sendmmsg` batches
//! of 64 distinct HEP3 packets, as fast as it can, bounded by `--packets` and `--seconds`), the
//! relay under test listening on one port, and a counting receiver (a thread here,
//! `recvmmsg`) on another. The relay is either
//! `hepcap run --hep-listen udp://127.0.0.1:P1 --hep udp://127.0.0.1:P2` (release build, a
//! child process) or the forwarder below (a thread here: `recvmmsg` → `sendmmsg` of the same
//! buffers, nothing else). Runs alternate between the two; medians are reported.
//!
//! Reported per run: offered rate (what the generator pushed), delivered rate (datagrams at
//! the receiver over the time from the first send to the last arrival), losses split by where
//! they happened — the kernel in front of the relay (`/proc/net/udp` drops of its socket),
//! inside hepcap (received by its listener but not sent by its sink, from its exit summary:
//! ring drops, sink drops), the kernel in front of the receiver — and for hepcap its CPU
//! seconds (`/proc/PID/stat` utime+stime) and peak RSS (`VmHWM`). Sampled datagrams at the
//! receiver are checked to be byte-identical to one of the packets sent.
//!
//! Exits non-zero only when something could not run, or when a relayed packet was altered.
//! Missing the target (70% of the forwarder's delivered rate, no loss inside hepcap) is
//! printed, not failed: benchmarks on a shared machine are reported, never asserted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::measure::{
    build_hepcap, online_cpus, proc_stat_cpu as proc_cpu, proc_vm_hwm, thread_cpu,
};
use crate::workspace;

/// Datagrams per `sendmmsg`/`recvmmsg` call in the generator, forwarder and receiver.
const BATCH: usize = 64;
/// Receive buffer of every socket here, and of hepcap's listener (its default, 8 MiB).
const RCVBUF: usize = 8 << 20;
/// The receiver and forwarder check their stop flag at least this often.
const POLL: Duration = Duration::from_millis(100);
/// A run ends once nothing arrived at the receiver for this long after the last send.
const SETTLE: Duration = Duration::from_millis(700);
/// Every n-th received datagram is compared with the packets sent.
const SAMPLE_EVERY: u64 = 1009;
/// The target: hepcap's delivered rate against the forwarder's.
const TARGET_RATIO: f64 = 0.70;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Datagrams the generator sends per run (at most).
    #[arg(long, default_value_t = 2_000_000)]
    packets: u64,
    /// Longest a generator runs, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Size of each HEP3 packet, bytes (a SIP INVITE with SDP is 700-1000).
    #[arg(long, default_value_t = 800)]
    size: usize,
    /// Offered load, datagrams per second; 0 sends as fast as the generator can. A rate
    /// below saturation shows whether hepcap keeps up without loss.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Runs of each relay, alternating; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Use target/release/hepcap as it is instead of running `cargo build --release`.
    #[arg(long)]
    no_build: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        packets,
        seconds,
        size,
        rate,
        runs,
        no_build,
    } = args;
    anyhow::ensure!(runs > 0, "--runs must be at least 1");
    anyhow::ensure!((200..=60_000).contains(&size), "--size must be 200..=60000");
    let root = workspace::root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let hepcap = build_hepcap("bench-relay", &root, &target, no_build)?;
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let load = Load {
        packets: (0..BATCH).map(|i| hep3_packet(size, i)).collect(),
        count: packets,
        limit: Duration::from_secs(seconds),
        rate,
    };

    let mut forwarder_runs = Vec::new();
    let mut hepcap_runs = Vec::new();
    for i in 1..=runs {
        let r = measure(&load, Relay::forwarder)?;
        eprintln!("  run {i}/{runs} forwarder: {}", r.one_line());
        forwarder_runs.push(r);
        let stderr = dir.join(format!("bench-relay-hepcap-{i}.log"));
        let r = measure(&load, |p1, p2| Relay::hepcap(&hepcap, p1, p2, &stderr))?;
        eprintln!("  run {i}/{runs} hepcap:    {}", r.one_line());
        hepcap_runs.push(r);
    }

    report(&load, &hepcap, &forwarder_runs, &hepcap_runs);
    let altered: u64 = forwarder_runs
        .iter()
        .chain(&hepcap_runs)
        .map(|r| r.recv.altered)
        .sum();
    if altered > 0 {
        bail!("{altered} sampled datagram(s) differ from every packet sent");
    }
    Ok(())
}

/// What the generator sends.
struct Load {
    /// Sent in turn, one per slot of a batch; each has its own Call-ID.
    packets: Vec<Vec<u8>>,
    count: u64,
    limit: Duration,
    /// Datagrams per second, 0 for as fast as possible.
    rate: u64,
}

/// A relay under test.
enum Relay {
    Forwarder {
        stop: Arc<AtomicBool>,
        thread: thread::JoinHandle<anyhow::Result<Duration>>,
        port: u16,
    },
    Hepcap {
        child: Child,
        port: u16,
        stderr: PathBuf,
    },
}

impl Relay {
    /// The plain forwarder: `recvmmsg` on a socket bound to an ephemeral port, `sendmmsg` of
    /// the same buffers to `to`.
    fn forwarder(bind: u16, to: u16) -> anyhow::Result<Relay> {
        let rx = bound_socket(bind)?;
        let port = rx.local_addr()?.port();
        let tx = UdpSocket::bind("127.0.0.1:0").context("bind the forwarder's sender")?;
        tx.connect(("127.0.0.1", to))
            .context("connect the forwarder")?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("bench-forwarder".into())
                .spawn(move || forward(&rx, &tx, &stop))
                .context("spawn the forwarder")?
        };
        Ok(Relay::Forwarder { stop, thread, port })
    }

    /// `hepcap run` relaying from an ephemeral port to `to`; its listener's port is read
    /// from its log.
    fn hepcap(bin: &Path, bind: u16, to: u16, stderr: &Path) -> anyhow::Result<Relay> {
        let log = File::create(stderr).with_context(|| format!("create {}", stderr.display()))?;
        let mut child = Command::new(bin)
            .args([
                "run",
                "--capture",
                "none",
                "--hep-listen",
                &format!("udp://127.0.0.1:{bind}"),
            ])
            .args(["--hep", &format!("udp://127.0.0.1:{to}")])
            .args(["--hep-listen-rcvbuf", &RCVBUF.to_string()])
            .env("RUST_LOG", "warn,hepcap=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let text = std::fs::read_to_string(stderr).unwrap_or_default();
            let bound = text
                .lines()
                .filter(|l| l.contains("hep udp listener bound"))
                .find_map(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix("address="))
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                });
            if let Some(addr) = bound {
                break addr.port();
            }
            if let Some(status) = child.try_wait()? {
                bail!("hepcap run exited early ({status}):\n{text}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("hepcap run did not bind its listener:\n{text}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        Ok(Relay::Hepcap {
            child,
            port,
            stderr: stderr.to_path_buf(),
        })
    }

    fn port(&self) -> u16 {
        match self {
            Relay::Forwarder { port, .. } | Relay::Hepcap { port, .. } => *port,
        }
    }

    /// Stops the relay; what it reports about itself.
    fn finish(self) -> anyhow::Result<RelayReport> {
        match self {
            Relay::Forwarder { stop, thread, port } => {
                let kernel_drops = proc_net_udp_drops(port);
                stop.store(true, Ordering::Relaxed);
                let cpu = match thread.join() {
                    Ok(r) => r?,
                    Err(_) => bail!("the forwarder panicked"),
                };
                Ok(RelayReport {
                    kernel_drops,
                    cpu,
                    ..RelayReport::default()
                })
            }
            Relay::Hepcap {
                mut child,
                port,
                stderr,
            } => {
                let kernel_drops = proc_net_udp_drops(port);
                let pid = child.id();
                let cpu = proc_cpu(pid).unwrap_or_default();
                let peak_rss_kib = proc_vm_hwm(pid).unwrap_or(0);
                // SAFETY: kill(2) on the pid of a child not yet waited for.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                let deadline = Instant::now() + Duration::from_secs(30);
                let status = loop {
                    if let Some(s) = child.try_wait()? {
                        break s;
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        bail!("hepcap did not exit within 30 s of SIGTERM");
                    }
                    thread::sleep(Duration::from_millis(20));
                };
                let text = std::fs::read_to_string(&stderr).unwrap_or_default();
                if !status.success() {
                    bail!("hepcap run exited with {status}:\n{text}");
                }
                let mut report = HepcapSummary::parse(&text)
                    .with_context(|| format!("no exit summary in {}", stderr.display()))?
                    .into_report();
                report.kernel_drops = kernel_drops;
                report.cpu = cpu;
                report.peak_rss_kib = peak_rss_kib;
                Ok(report)
            }
        }
    }
}

/// What a relay says about itself after a run.
#[derive(Debug, Clone, Default)]
struct RelayReport {
    /// `/proc/net/udp` drops of the relay's listening socket, read before it closed.
    kernel_drops: u64,
    cpu: Duration,
    /// hepcap only.
    peak_rss_kib: u64,
    /// hepcap only: what its summary says.
    hepcap: Option<HepcapSummary>,
}

/// The figures of hepcap's exit summary that matter here.
#[derive(Debug, Clone, Default)]
struct HepcapSummary {
    received: u64,
    relayed: u64,
    rejected: u64,
    /// SO_RXQ_OVFL as hepcap saw it.
    kernel_drops: u64,
    /// `dropped REASON (SOURCE): N` of the ring.
    ring_drops: BTreeMap<String, u64>,
    sink_records: u64,
    /// `dropped REASON: N` of the sink.
    sink_drops: BTreeMap<String, u64>,
}

impl HepcapSummary {
    fn parse(text: &str) -> Option<HepcapSummary> {
        let start = text.find("hepcap run: ")?;
        let mut s = HepcapSummary::default();
        let mut in_sink = false;
        for line in text[start..].lines().skip(1) {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("listener ") {
                let (_, counts) = rest.rsplit_once(": ")?;
                for part in counts.split(", ") {
                    let (n, what) = part.split_once(' ')?;
                    let n: u64 = n.parse().ok()?;
                    if what.starts_with("received") {
                        s.received = n;
                    } else if what.starts_with("relayed") {
                        s.relayed = n;
                    }
                }
                in_sink = false;
            } else if let Some(rest) = t.strip_prefix("sink ") {
                let (_, counts) = rest.rsplit_once(": ")?;
                s.sink_records = counts.split(' ').next()?.parse().ok()?;
                in_sink = true;
            } else if let Some(n) = t.strip_prefix("kernel socket drops: ") {
                s.kernel_drops = n.parse().ok()?;
            } else if let Some(rest) = t.strip_prefix("rejected ") {
                s.rejected += rest.rsplit_once(": ")?.1.parse::<u64>().ok()?;
            } else if let Some(rest) = t.strip_prefix("dropped ") {
                let (reason, n) = rest.rsplit_once(": ")?;
                let map = if in_sink {
                    &mut s.sink_drops
                } else {
                    &mut s.ring_drops
                };
                *map.entry(reason.to_string()).or_default() += n.parse::<u64>().ok()?;
            } else if !line.starts_with(' ') {
                break;
            }
        }
        Some(s)
    }

    fn into_report(self) -> RelayReport {
        RelayReport {
            hepcap: Some(self),
            ..RelayReport::default()
        }
    }

    /// Messages hepcap accepted from its listener but did not hand to the kernel: the ring
    /// and sink drops are part of this difference, not in addition to it.
    fn lost_inside(&self) -> u64 {
        self.relayed.saturating_sub(self.sink_records)
    }
}

/// One run of one relay.
#[derive(Debug, Clone)]
struct RunResult {
    sent: u64,
    send_time: Duration,
    /// From the first send to the last arrival at the receiver.
    window: Duration,
    recv: RecvCounts,
    /// `/proc/net/udp` drops of the receiver's socket.
    receiver_drops: u64,
    relay: RelayReport,
}

impl RunResult {
    fn offered_pps(&self) -> f64 {
        self.sent as f64 / self.send_time.as_secs_f64().max(1e-9)
    }

    fn delivered_pps(&self) -> f64 {
        self.recv.datagrams as f64 / self.window.as_secs_f64().max(1e-9)
    }

    fn one_line(&self) -> String {
        format!(
            "sent {} ({}/s), delivered {} ({}/s), drops before relay {}",
            thousands(self.sent),
            thousands(self.offered_pps() as u64),
            thousands(self.recv.datagrams),
            thousands(self.delivered_pps() as u64),
            thousands(self.relay.kernel_drops),
        )
    }
}

/// Starts a receiver and the relay, runs the generator, waits for the traffic to settle,
/// stops everything.
fn measure(
    load: &Load,
    start_relay: impl FnOnce(u16, u16) -> anyhow::Result<Relay>,
) -> anyhow::Result<RunResult> {
    let rx = bound_socket(0)?;
    let rx_port = rx.local_addr()?.port();
    let stop = Arc::new(AtomicBool::new(false));
    let last_arrival = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let expected = load.packets.clone();
    let receiver = {
        let stop = Arc::clone(&stop);
        let last = Arc::clone(&last_arrival);
        thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || receive(&rx, &stop, &last, epoch, &expected))
            .context("spawn the receiver")?
    };
    let relay = match start_relay(0, rx_port) {
        Ok(r) => r,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            let _ = receiver.join();
            return Err(e);
        }
    };
    // Let the relay settle into its receive loop.
    thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let sent = generate(relay.port(), load);
    let send_time = started.elapsed();
    // Wait until nothing has arrived for SETTLE (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        thread::sleep(Duration::from_millis(50));
        let last = Duration::from_nanos(last_arrival.load(Ordering::Relaxed));
        let quiet = epoch
            .elapsed()
            .saturating_sub(last.max(send_time + (started - epoch)));
        if quiet >= SETTLE || Instant::now() > deadline {
            break;
        }
    }
    let receiver_drops = proc_net_udp_drops(rx_port);
    let relay = relay.finish();
    stop.store(true, Ordering::Relaxed);
    let recv = match receiver.join() {
        Ok(r) => r?,
        Err(_) => bail!("the receiver panicked"),
    };
    let relay = relay?;
    let sent = sent?;
    let last = Duration::from_nanos(last_arrival.load(Ordering::Relaxed));
    Ok(RunResult {
        sent,
        send_time,
        window: last.saturating_sub(started - epoch),
        recv,
        receiver_drops,
        relay,
    })
}

/// A UDP socket on 127.0.0.1:`port` with an 8 MiB receive buffer and a receive timeout.
fn bound_socket(port: u16) -> anyhow::Result<UdpSocket> {
    let s = UdpSocket::bind(("127.0.0.1", port)).context("bind a UDP socket")?;
    set_rcvbuf(&s, RCVBUF);
    s.set_read_timeout(Some(POLL))?;
    Ok(s)
}

/// Asks for `bytes` of receive buffer, past net.core.rmem_max when allowed (root).
fn set_rcvbuf(s: &UdpSocket, bytes: usize) {
    let v = i32::try_from(bytes).unwrap_or(i32::MAX);
    for opt in [libc::SO_RCVBUF, libc::SO_RCVBUFFORCE] {
        // SAFETY: the pointer and length describe a live i32 for the duration of the call.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&raw const v).cast(),
                size_of::<i32>() as libc::socklen_t,
            );
        }
    }
}

/// Buffers and headers for batched receive into `BATCH` buffers of 64 KiB.
struct RecvBatch {
    buffers: Vec<Vec<u8>>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    fn new() -> RecvBatch {
        let mut buffers = vec![vec![0u8; 65_536]; BATCH];
        let iovecs: Vec<libc::iovec> = buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain old data; all-zero is valid, the iovecs are set in recv.
        let headers = vec![unsafe { zeroed::<libc::mmsghdr>() }; BATCH];
        RecvBatch {
            buffers,
            iovecs,
            headers,
        }
    }

    /// One `recvmmsg`: the number of datagrams, 0 on timeout.
    fn recv(&mut self, s: &UdpSocket) -> io::Result<usize> {
        for (h, iov) in self.headers.iter_mut().zip(self.iovecs.iter_mut()) {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_len = 0;
        }
        // SAFETY: every header points at one iovec, which points at a live buffer of its
        // length; none of them moves during the call.
        let n = unsafe {
            libc::recvmmsg(
                s.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }

    fn datagram(&self, i: usize) -> &[u8] {
        &self.buffers[i][..self.headers[i].msg_len as usize]
    }
}

/// Sends `packets` round-robin, `BATCH` per `sendmmsg`, until `count` or `limit`.
fn generate(port: u16, load: &Load) -> anyhow::Result<u64> {
    let s = UdpSocket::bind("127.0.0.1:0").context("bind the generator")?;
    s.connect(("127.0.0.1", port))
        .context("connect the generator")?;
    let mut iovecs: Vec<libc::iovec> = load
        .packets
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr().cast_mut().cast(),
            iov_len: p.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain old data; all-zero is valid and the iovecs are set below.
    let mut headers = vec![unsafe { zeroed::<libc::mmsghdr>() }; BATCH];
    for (h, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    let started = Instant::now();
    let mut sent = 0u64;
    let mut calls = 0u64;
    while sent < load.count {
        calls += 1;
        if calls.is_multiple_of(256) && started.elapsed() > load.limit {
            break;
        }
        if load.rate > 0 {
            // Pace per batch: wait until this batch is due.
            let due = Duration::from_secs_f64(sent as f64 / load.rate as f64);
            let now = started.elapsed();
            if due > now {
                thread::sleep(due - now);
            }
        }
        let n = (load.count - sent).min(BATCH as u64) as usize;
        // SAFETY: the first n headers each point at an iovec of a packet in `load`; all outlive
        // the call and the kernel only reads them.
        let r = unsafe { libc::sendmmsg(s.as_raw_fd(), headers.as_mut_ptr(), n as _, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR | libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED) => continue,
                _ => return Err(e).context("sendmmsg"),
            }
        }
        sent += r as u64;
    }
    Ok(sent)
}

/// The forwarder's loop; returns its thread's CPU time.
fn forward(rx: &UdpSocket, tx: &UdpSocket, stop: &AtomicBool) -> anyhow::Result<Duration> {
    let mut batch = RecvBatch::new();
    // SAFETY: mmsghdr is plain old data; all-zero is valid and set per batch below.
    let mut out = vec![unsafe { zeroed::<libc::mmsghdr>() }; BATCH];
    let mut out_iov: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let cpu_before = thread_cpu();
    while !stop.load(Ordering::Relaxed) {
        let n = batch.recv(rx).context("forwarder recvmmsg")?;
        if n == 0 {
            continue;
        }
        out_iov.clear();
        for i in 0..n {
            out_iov.push(libc::iovec {
                iov_base: batch.buffers[i].as_mut_ptr().cast(),
                iov_len: batch.headers[i].msg_len as usize,
            });
        }
        for (h, iov) in out.iter_mut().zip(out_iov.iter_mut()) {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        let mut done = 0;
        while done < n {
            // SAFETY: headers done..n point at iovecs of buffers filled above; all outlive
            // the call and the kernel only reads them.
            let r = unsafe {
                libc::sendmmsg(tx.as_raw_fd(), out[done..].as_mut_ptr(), (n - done) as _, 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR | libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED) => {
                        continue;
                    }
                    _ => return Err(e).context("forwarder sendmmsg"),
                }
            }
            done += r as usize;
        }
    }
    Ok(thread_cpu().saturating_sub(cpu_before))
}

/// What the receiver counted.
#[derive(Debug, Clone, Default)]
struct RecvCounts {
    datagrams: u64,
    bytes: u64,
    sampled: u64,
    /// Sampled datagrams equal to none of the packets sent.
    altered: u64,
}

fn receive(
    s: &UdpSocket,
    stop: &AtomicBool,
    last: &AtomicU64,
    epoch: Instant,
    expected: &[Vec<u8>],
) -> anyhow::Result<RecvCounts> {
    let mut batch = RecvBatch::new();
    let mut c = RecvCounts::default();
    while !stop.load(Ordering::Relaxed) {
        let n = batch.recv(s).context("receiver recvmmsg")?;
        if n == 0 {
            continue;
        }
        last.store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        for i in 0..n {
            let d = batch.datagram(i);
            if c.datagrams % SAMPLE_EVERY == 0 {
                c.sampled += 1;
                if !expected.iter().any(|p| p.as_slice() == d) {
                    c.altered += 1;
                }
            }
            c.datagrams += 1;
            c.bytes += d.len() as u64;
        }
    }
    Ok(c)
}

/// The `drops` column of /proc/net/udp for the socket bound to 127.0.0.1:`port`.
fn proc_net_udp_drops(port: u16) -> u64 {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// A valid HEP3 SIP packet of exactly `size` bytes whose Call-ID carries `n`.
fn hep3_packet(size: usize, n: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, chunk_type: u16, body: &[u8]) {
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&chunk_type.to_be_bytes());
        out.extend_from_slice(&((6 + body.len()) as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    let mut p = b"HEP3\0\0".to_vec();
    chunk(&mut p, 0x0001, &[2]);
    chunk(&mut p, 0x0002, &[17]);
    chunk(&mut p, 0x0003, &[10, 0, 0, 1]);
    chunk(&mut p, 0x0004, &[10, 0, 0, 2]);
    chunk(&mut p, 0x0007, &5060u16.to_be_bytes());
    chunk(&mut p, 0x0008, &5060u16.to_be_bytes());
    chunk(&mut p, 0x0009, &1_700_000_000u32.to_be_bytes());
    chunk(&mut p, 0x000a, &(n as u32).to_be_bytes());
    chunk(&mut p, 0x000b, &[1]);
    chunk(&mut p, 0x000c, &2001u32.to_be_bytes());
    let head = format!(
        "INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{n}\r\n\
         Call-ID: bench-relay-{n}@10.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\nX-Pad: "
    );
    let room = size.saturating_sub(p.len() + 6 + head.len() + 4);
    let mut sip = head.into_bytes();
    sip.resize(sip.len() + room, b'x');
    sip.extend_from_slice(b"\r\n\r\n");
    chunk(&mut p, 0x000f, &sip);
    let len = p.len() as u16;
    p[4..6].copy_from_slice(&len.to_be_bytes());
    p
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(load: &Load, hepcap: &Path, forwarder: &[RunResult], hepcap_runs: &[RunResult]) {
    let runs = forwarder.len();
    println!();
    println!("== hepcap relay benchmark (HEPv3 over UDP, 127.0.0.1) ==");
    println!(
        "load:      {} x {}-byte HEP3 SIP packets per run at most, {} s at most, offered {}; \
         generator: one thread, sendmmsg x{BATCH}",
        thousands(load.count),
        load.packets[0].len(),
        load.limit.as_secs(),
        if load.rate > 0 {
            format!("{}/s", thousands(load.rate))
        } else {
            "as fast as it can".into()
        }
    );
    println!(
        "hepcap:    {} run --hep-listen udp://127.0.0.1:P1 --hep udp://127.0.0.1:P2",
        hepcap.display()
    );
    println!("forwarder: one thread, recvmmsg x{BATCH} -> sendmmsg of the same buffers");
    println!(
        "receiver:  one thread, recvmmsg x{BATCH}; every socket asks for an 8 MiB receive buffer"
    );
    println!(
        "cores:     {} online; nothing pinned; {runs} runs each, alternating",
        online_cpus()
    );
    println!();
    println!(
        "{:<10} {:>4} {:>11} {:>11} {:>11} {:>11} {:>12} {:>11} {:>9} {:>9}",
        "relay",
        "run",
        "sent",
        "offered/s",
        "delivered",
        "deliv/s",
        "drops>relay",
        "drops>recv",
        "cpu s",
        "rss MiB"
    );
    for (name, rs) in [("forwarder", forwarder), ("hepcap", hepcap_runs)] {
        for (i, r) in rs.iter().enumerate() {
            println!(
                "{:<10} {:>4} {:>11} {:>11} {:>11} {:>11} {:>12} {:>11} {:>9.2} {:>9}",
                name,
                i + 1,
                thousands(r.sent),
                thousands(r.offered_pps() as u64),
                thousands(r.recv.datagrams),
                thousands(r.delivered_pps() as u64),
                thousands(r.relay.kernel_drops),
                thousands(r.receiver_drops),
                r.relay.cpu.as_secs_f64(),
                if r.relay.peak_rss_kib > 0 {
                    format!("{:.1}", r.relay.peak_rss_kib as f64 / 1024.0)
                } else {
                    "-".into()
                },
            );
        }
    }
    println!();
    println!("hepcap's own counters (exit summary):");
    for (i, r) in hepcap_runs.iter().enumerate() {
        if let Some(s) = &r.relay.hepcap {
            println!(
                "  run {}: listener received {}, relayed {}, rejected {}, kernel socket drops \
                 (SO_RXQ_OVFL) {}; ring drops {:?}; sink sent {} records, sink drops {:?} \
                 -> lost inside hepcap: {}",
                i + 1,
                thousands(s.received),
                thousands(s.relayed),
                s.rejected,
                thousands(s.kernel_drops),
                s.ring_drops,
                thousands(s.sink_records),
                s.sink_drops,
                s.lost_inside()
            );
        }
    }

    let fwd = median(forwarder.iter().map(RunResult::delivered_pps).collect());
    let hep = median(hepcap_runs.iter().map(RunResult::delivered_pps).collect());
    let ratio = hep / fwd.max(1.0);
    let lost_inside: u64 = hepcap_runs
        .iter()
        .filter_map(|r| r.relay.hepcap.as_ref())
        .map(HepcapSummary::lost_inside)
        .sum();
    let cpu = median(
        hepcap_runs
            .iter()
            .map(|r| r.relay.cpu.as_secs_f64())
            .collect(),
    );
    let delivered = median(
        hepcap_runs
            .iter()
            .map(|r| r.recv.datagrams as f64)
            .collect(),
    );
    let rss = hepcap_runs
        .iter()
        .map(|r| r.relay.peak_rss_kib)
        .max()
        .unwrap_or(0);
    println!();
    println!(
        "median delivered rate: forwarder {}/s, hepcap {}/s",
        thousands(fwd as u64),
        thousands(hep as u64)
    );
    println!(
        "hepcap / forwarder = {:.1}%; hepcap CPU {:.2} s median ({:.2} us per delivered \
         datagram); peak RSS {:.1} MiB",
        100.0 * ratio,
        cpu,
        cpu * 1e6 / delivered.max(1.0),
        rss as f64 / 1024.0
    );
    let met = ratio >= TARGET_RATIO && lost_inside == 0;
    println!(
        "target (issue): >= {:.0}% of the forwarder with no loss inside hepcap: {:.1}%, {} \
         lost inside -> {}",
        100.0 * TARGET_RATIO,
        100.0 * ratio,
        lost_inside,
        if met { "MET" } else { "MISSED" }
    );
}
