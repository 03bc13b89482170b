//! `cargo xtask bench-replay`: `hepcap replay` end to end on a million realistic SIP messages.
//!
//! Generates (once) a deterministic capture into `target/bench/` ([`crate::siptraffic`]),
//! builds hepcap in release, then times `hepcap replay -q FILE --hep udp://127.0.0.1:PORT`
//! against a counting UDP receiver in this process, and `hepcap replay -q FILE --jsonl
//! /dev/null`, each `--runs` times, interleaved. Reported per run and as medians: wall time,
//! packets read per second, datagrams delivered at the receiver (benchmarks count at the
//! receiver, not at the sender), CPU time of the child (user + sys, from `wait4`) and its peak
//! RSS. Nothing is pinned. A sample of the received datagrams is checked to be well-formed
//! HEP3 carrying SIP.
//!
//! Exits non-zero only when something could not run (or sent malformed HEP); missing a target
//! is reported, not failed.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::measure::build_hepcap;
use crate::siptraffic::{self, TrafficSpec, TrafficSummary};
use crate::workspace;

/// The issue's end-to-end target, packets per second into HEP/UDP on one core.
const TARGET_HEP_PPS: f64 = 500_000.0;

/// heplify v1.67.1 on this machine kind (`../shared/docs/performance.md`), best of its range.
const HEPLIFY_PPS: (f64, f64) = (181_000.0, 198_000.0);

/// Datagrams per `recvmmsg` call and the room for each (a HEP packet of a UDP datagram).
const RECV_BATCH: usize = 64;
const RECV_BUF: usize = 65_536;

/// Datagrams per `sendmmsg` call of the ceiling sender, as in performance.md.
const SEND_BATCH: usize = 64;

/// Size of the ceiling's datagrams when hepcap delivered none to measure (performance.md's).
const CEILING_DEFAULT_SIZE: usize = 800;

/// Every n-th received datagram is checked to be HEP3 (the first one always is).
const SAMPLE_EVERY: u64 = 997;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// SIP messages in the generated capture (at least; dialogs in progress are completed).
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// Seed of the traffic generator.
    #[arg(long, default_value_t = 0x4845_5033)]
    seed: u64,
    /// Runs per mode; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Receive buffer asked for the counting receiver, bytes.
    #[arg(long, default_value_t = 64 << 20)]
    rcvbuf: usize,
    /// Use target/release/hepcap as it is instead of running `cargo build --release`.
    #[arg(long)]
    no_build: bool,
    /// Benchmark this hepcap binary instead (nothing is built), e.g. one built from another
    /// checkout to compare.
    #[arg(long, value_name = "PATH", conflicts_with = "no_build")]
    hepcap: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        packets,
        seed,
        runs,
        rcvbuf,
        no_build,
        hepcap,
    } = args;
    anyhow::ensure!(runs > 0, "--runs must be at least 1");
    let root = workspace::root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));

    let spec = TrafficSpec {
        min_packets: packets,
        seed,
    };
    let (capture, traffic) = ensure_capture(&target.join("bench"), spec)?;
    let hepcap = match hepcap {
        Some(path) if path.is_file() => path,
        Some(path) => bail!("{} not found", path.display()),
        None => build_hepcap("bench-replay", &root, &target, no_build)?,
    };
    warm_page_cache(&capture)?;

    let mut hep_runs: Vec<RunResult> = Vec::with_capacity(runs);
    let mut jsonl_runs = Vec::with_capacity(runs);
    let mut ceiling_runs = Vec::with_capacity(runs);
    let mut rcvbuf_note = String::new();
    for i in 1..=runs {
        let (r, note) = with_receiver(rcvbuf, |port| {
            let hep = format!("udp://127.0.0.1:{port}");
            run_child(&hepcap, &capture, &["--hep", &hep], traffic.packets)
        })?;
        eprintln!("  run {i}/{runs} hep:     {:.3} s", r.wall.as_secs_f64());
        rcvbuf_note = note;
        hep_runs.push(r);

        let r = run_child(
            &hepcap,
            &capture,
            &["--jsonl", "/dev/null"],
            traffic.packets,
        )?;
        eprintln!("  run {i}/{runs} jsonl:   {:.3} s", r.wall.as_secs_f64());
        jsonl_runs.push(r);

        // The same number of datagrams of the size hepcap sent, by the plainest sender.
        let size = hep_runs
            .first()
            .and_then(|r| r.recv.bytes.checked_div(r.recv.datagrams))
            .map_or(CEILING_DEFAULT_SIZE, |n| n as usize);
        let (r, _) = with_receiver(rcvbuf, |port| send_ceiling(port, traffic.packets, size))?;
        eprintln!("  run {i}/{runs} ceiling: {:.3} s", r.wall.as_secs_f64());
        ceiling_runs.push(r);
    }

    println!();
    println!("== hepcap replay benchmark ==");
    println!(
        "capture:  {} ({} packets, {} Call-IDs: {} calls, {} OPTIONS, {} registrations; \
         payloads {}-{} B, mean {} B; {:.0} MiB)",
        capture.display(),
        thousands(traffic.packets),
        thousands(traffic.call_ids),
        thousands(traffic.calls),
        thousands(traffic.options),
        thousands(traffic.registrations),
        traffic.min_payload,
        traffic.max_payload,
        traffic.payload_bytes / traffic.packets.max(1),
        traffic.file_bytes as f64 / f64::from(1 << 20),
    );
    println!("binary:   {}", hepcap.display());
    println!("receiver: 127.0.0.1, recvmmsg x{RECV_BATCH}; {rcvbuf_note}");
    println!("cores:    {} online; nothing pinned", online_cpus());
    println!();
    println!("-- HEP/UDP: hepcap replay -q FILE --hep udp://127.0.0.1:PORT ({runs} runs) --");
    print_table(&hep_runs, true);
    println!();
    println!("-- JSON lines: hepcap replay -q FILE --jsonl /dev/null ({runs} runs) --");
    print_table(&jsonl_runs, false);
    println!();
    let ceiling_size = ceiling_runs
        .first()
        .and_then(|r| r.recv.bytes.checked_div(r.recv.datagrams))
        .unwrap_or(0);
    println!(
        "-- UDP send ceiling of this machine, now: one thread, sendmmsg x{SEND_BATCH}, \
         {ceiling_size}-byte HEP3 datagrams, same receiver ({runs} runs; CPU = sender thread) --"
    );
    print_table(&ceiling_runs, true);

    let hep_pps = median(hep_runs.iter().map(|r| r.pps()));
    let delivered = median(hep_runs.iter().map(|r| r.delivered_pct()));
    let hep_cores = median(hep_runs.iter().map(|r| r.cores()));
    println!();
    println!(
        "target (issue): HEP/UDP end to end >= {} packets/s: median {} packets/s, {:.2}% \
         delivered, {:.2} cores busy -> {}",
        thousands(TARGET_HEP_PPS as u64),
        thousands(hep_pps as u64),
        delivered,
        hep_cores,
        if hep_pps >= TARGET_HEP_PPS {
            "MET"
        } else {
            "MISSED"
        }
    );
    println!(
        "reference (performance.md, same machine kind, not measured here): heplify v1.67.1 \
         {}-{} msg/s, 81-99.99% delivered, 8-9 us CPU/msg (~1.6 cores), 1,132 MiB peak RSS; \
         hepcap median / heplify = {:.1}x-{:.1}x",
        thousands(HEPLIFY_PPS.0 as u64),
        thousands(HEPLIFY_PPS.1 as u64),
        hep_pps / HEPLIFY_PPS.1,
        hep_pps / HEPLIFY_PPS.0,
    );
    let ceiling_pps = median(ceiling_runs.iter().map(RunResult::pps));
    println!(
        "send ceiling measured above: median {} datagrams/s; hepcap HEP/UDP = {:.0}% of it",
        thousands(ceiling_pps as u64),
        100.0 * hep_pps / ceiling_pps.max(1.0)
    );
    println!(
        "ceilings (performance.md): UDP send with sendmmsg, one core: 515,000/s; libpcap read \
         and write back: 2.57 M packets/s"
    );

    // TCP-heavy and fragment-heavy variants of the same traffic (bench_reassembly.rs).
    crate::bench_reassembly::run(&hepcap, &capture, runs)?;

    let invalid: u64 = hep_runs.iter().map(|r| r.recv.invalid).sum();
    if invalid > 0 {
        let why = hep_runs
            .iter()
            .chain(&ceiling_runs)
            .find_map(|r| r.recv.first_invalid.clone())
            .unwrap_or_default();
        bail!("{invalid} sampled datagram(s) were not valid HEP3 with SIP: {why}");
    }
    Ok(())
}

/// The capture for `spec` in `dir`, generated unless a complete one is already there.
fn ensure_capture(dir: &Path, spec: TrafficSpec) -> anyhow::Result<(PathBuf, TrafficSummary)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join(spec.file_name());
    let summary_path = path.with_extension("summary");

    // Reuse only a file whose summary was written after it was complete and whose size agrees.
    let existing = std::fs::read_to_string(&summary_path)
        .ok()
        .and_then(|t| TrafficSummary::from_text(&t));
    if let Some(summary) = existing {
        let size = std::fs::metadata(&path).map(|m| m.len()).ok();
        if size == Some(summary.file_bytes) {
            eprintln!("bench-replay: reusing {}", path.display());
            return Ok((path, summary));
        }
    }

    eprintln!("bench-replay: generating {} ...", path.display());
    let started = Instant::now();
    let summary = siptraffic::write_capture(spec, &path)?;
    std::fs::write(&summary_path, summary.to_text())
        .with_context(|| format!("write {}", summary_path.display()))?;
    eprintln!(
        "bench-replay: {} packets in {:.1} s",
        thousands(summary.packets),
        started.elapsed().as_secs_f64()
    );
    Ok((path, summary))
}

/// Reads the capture once so that every run starts from the page cache.
fn warm_page_cache(path: &Path) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    io::copy(&mut file, &mut io::sink()).with_context(|| format!("read {}", path.display()))?;
    Ok(())
}

/// What one run of the child measured.
#[derive(Debug, Clone, Default)]
struct RunResult {
    packets: u64,
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
    recv: RecvCounts,
}

impl RunResult {
    fn pps(&self) -> f64 {
        self.packets as f64 / self.wall.as_secs_f64()
    }

    fn delivered_pct(&self) -> f64 {
        100.0 * self.recv.datagrams as f64 / self.packets.max(1) as f64
    }

    fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }

    fn cpu_us_per_packet(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.packets.max(1) as f64
    }
}

/// Runs `sender` (given the port) against a fresh counting receiver; returns its result with
/// the receiver's counts, and how the receive buffer was obtained.
fn with_receiver(
    rcvbuf: usize,
    sender: impl FnOnce(u16) -> anyhow::Result<RunResult>,
) -> anyhow::Result<(RunResult, String)> {
    let (socket, note) = open_receiver(rcvbuf)?;
    let port = socket.local_addr()?.port();
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = Arc::clone(&done);
        thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || receive(&socket, &done))
            .context("spawn the receiver thread")?
    };

    let sent = sender(port);
    // Stop the receiver whatever happened to the sender.
    done.store(true, Ordering::Relaxed);
    let recv = match receiver.join() {
        Ok(r) => r?,
        Err(_) => bail!("the receiver thread panicked"),
    };
    let mut result = sent?;
    result.recv = recv;
    Ok((result, note))
}

/// Sends `count` copies of a `size`-byte HEP3 packet to 127.0.0.1:`port`, `SEND_BATCH` per
/// `sendmmsg`, from this thread: what the machine's UDP send path allows right now.
fn send_ceiling(port: u16, count: u64, size: usize) -> anyhow::Result<RunResult> {
    let socket = UdpSocket::bind("127.0.0.1:0").context("bind the ceiling sender")?;
    socket
        .connect(("127.0.0.1", port))
        .context("connect the ceiling sender")?;
    let fd = socket.as_raw_fd();
    let mut packet = hep3_packet(size);
    // SAFETY: iovec and mmsghdr are plain old data; all-zero is valid and filled in below.
    let mut iov: libc::iovec = unsafe { std::mem::zeroed() };
    iov.iov_base = packet.as_mut_ptr().cast();
    iov.iov_len = packet.len();
    // SAFETY: as above.
    let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; SEND_BATCH];
    for hdr in &mut headers {
        hdr.msg_hdr.msg_iov = &raw mut iov;
        hdr.msg_hdr.msg_iovlen = 1;
    }

    let cpu_before = thread_cpu()?;
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        let n = (count - sent).min(SEND_BATCH as u64) as usize;
        // SAFETY: the first n headers each point at `iov`, which points at `packet`; both
        // outlive the call and the kernel only reads them.
        let r = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), n as libc::c_uint, 0) };
        if r < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR | libc::ENOBUFS | libc::EAGAIN) => continue,
                _ => return Err(err).context("sendmmsg"),
            }
        }
        sent += u64::try_from(r).unwrap_or(0);
    }
    let wall = started.elapsed();
    let cpu = thread_cpu()?.saturating_sub(cpu_before);
    Ok(RunResult {
        packets: count,
        wall,
        cpu,
        max_rss_kib: 0,
        recv: RecvCounts::default(),
    })
}

/// A valid HEP3 packet of exactly `size` bytes (at least 160): IPv4 addresses, ports, time,
/// correlation id and a SIP OPTIONS padded with a header to the size.
fn hep3_packet(size: usize) -> Vec<u8> {
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
    chunk(&mut p, 0x0011, b"ceiling@bench");
    let sip_head = b"OPTIONS sip:bench SIP/2.0\r\nCall-ID: ceiling@bench\r\nX-Pad: ";
    let room = size
        .max(80)
        .saturating_sub(p.len() + 6 + sip_head.len() + 4);
    let mut sip = sip_head.to_vec();
    sip.resize(sip_head.len() + room, b'x');
    sip.extend_from_slice(b"\r\n\r\n");
    chunk(&mut p, 0x000f, &sip);
    let len = p.len() as u16;
    p[4..6].copy_from_slice(&len.to_be_bytes());
    p
}

/// CPU time (user + sys) of the calling thread.
fn thread_cpu() -> io::Result<Duration> {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: usage is a live local of the type getrusage expects.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(timeval(usage.ru_utime) + timeval(usage.ru_stime))
}

/// Runs `hepcap replay -q FILE SINK...` and collects its wall time and resource usage.
fn run_child(
    hepcap: &Path,
    capture: &Path,
    sink_args: &[&str],
    packets: u64,
) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    let child = Command::new(hepcap)
        .arg("replay")
        .arg("-q")
        .arg(capture)
        .args(sink_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", hepcap.display()))?;
    let pid = libc::pid_t::try_from(child.id()).context("child pid")?;

    let (status, usage) = wait4(pid).context("wait for hepcap")?;
    let wall = started.elapsed();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!(
            "hepcap replay {} failed (wait status {status:#x})",
            sink_args.join(" ")
        );
    }
    Ok(RunResult {
        packets,
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        recv: RecvCounts::default(),
    })
}

/// Reaps `pid` and returns its wait status and resource usage (its own, not its children's).
fn wait4(pid: libc::pid_t) -> io::Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the types wait4 expects.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

/// A UDP socket on 127.0.0.1 with the biggest receive buffer it can get, and how it got it.
fn open_receiver(requested: usize) -> anyhow::Result<(UdpSocket, String)> {
    let socket = UdpSocket::bind("127.0.0.1:0").context("bind the receiver")?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .context("SO_RCVTIMEO")?;
    let fd = socket.as_raw_fd();
    let want = libc::c_int::try_from(requested).context("--rcvbuf too large")?;

    // The kernel doubles what it is asked for (bookkeeping) and caps the request at
    // net.core.rmem_max; as root SO_RCVBUFFORCE ignores the cap without changing the sysctl.
    setsockopt_int(fd, libc::SO_RCVBUF, want).context("setsockopt SO_RCVBUF")?;
    let mut granted = getsockopt_int(fd, libc::SO_RCVBUF).context("getsockopt SO_RCVBUF")?;
    let mut how = "SO_RCVBUF";
    if granted < want && setsockopt_int(fd, libc::SO_RCVBUFFORCE, want).is_ok() {
        granted = getsockopt_int(fd, libc::SO_RCVBUF).context("getsockopt SO_RCVBUF")?;
        how = "SO_RCVBUFFORCE (root; net.core.rmem_max left as it is)";
    }
    if granted < want {
        how = "SO_RCVBUF, capped by net.core.rmem_max (not root: run as root or raise it)";
    }
    let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap_or_default();
    let note = format!(
        "SO_RCVBUF asked {} MiB, kernel reports {} MiB via {how}; net.core.rmem_max = {} bytes",
        requested >> 20,
        granted >> 20,
        rmem_max.trim()
    );
    Ok((socket, note))
}

fn setsockopt_int(fd: libc::c_int, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is an open socket owned by the caller; the option value is a live c_int
    // and the length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt_int(fd: libc::c_int, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: fd is an open socket; value and len are live locals sized for a c_int.
    let r =
        unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut value).cast(), &mut len) };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What the receiver counted.
#[derive(Debug, Clone, Default)]
struct RecvCounts {
    datagrams: u64,
    bytes: u64,
    sampled: u64,
    invalid: u64,
    first_invalid: Option<String>,
}

/// Counts datagrams until `done` is set and the socket has stayed empty for a timeout.
fn receive(socket: &UdpSocket, done: &AtomicBool) -> anyhow::Result<RecvCounts> {
    let fd = socket.as_raw_fd();
    let mut counts = RecvCounts::default();
    let mut buffers = vec![0u8; RECV_BATCH * RECV_BUF];
    // SAFETY: iovec and mmsghdr are plain old data; all-zero is valid and filled in below.
    let mut iovecs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; RECV_BATCH];
    // SAFETY: as above.
    let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; RECV_BATCH];
    for ((iov, hdr), buf) in iovecs
        .iter_mut()
        .zip(headers.iter_mut())
        .zip(buffers.chunks_exact_mut(RECV_BUF))
    {
        iov.iov_base = buf.as_mut_ptr().cast();
        iov.iov_len = RECV_BUF;
        hdr.msg_hdr.msg_iov = iov;
        hdr.msg_hdr.msg_iovlen = 1;
    }

    loop {
        // SAFETY: every header points at one live iovec, each at its own RECV_BUF bytes of
        // `buffers`; none of them moves or is touched elsewhere while recvmmsg runs.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                // Timed out: the child has exited and everything it sent is already queued,
                // so an empty socket after `done` means the end.
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    if done.load(Ordering::Relaxed) {
                        return Ok(counts);
                    }
                }
                io::ErrorKind::Interrupted => {}
                _ => return Err(err).context("recvmmsg"),
            }
            continue;
        }
        let n = usize::try_from(n).unwrap_or(0);
        for (i, hdr) in headers.iter().take(n).enumerate() {
            let len = (hdr.msg_len as usize).min(RECV_BUF);
            if counts.datagrams % SAMPLE_EVERY == 0 {
                counts.sampled += 1;
                let data = &buffers[i * RECV_BUF..i * RECV_BUF + len];
                if let Err(why) = check_hep3(data) {
                    counts.invalid += 1;
                    counts.first_invalid.get_or_insert(why);
                }
            }
            counts.datagrams += 1;
            counts.bytes += u64::from(hdr.msg_len);
        }
    }
}

/// A HEP3 packet whose length fields add up, with a correlation id and a SIP payload.
fn check_hep3(d: &[u8]) -> Result<(), String> {
    if d.len() < 6 || &d[..4] != b"HEP3" {
        return Err(format!("{}-byte datagram without the HEP3 id", d.len()));
    }
    let total = usize::from(u16::from_be_bytes([d[4], d[5]]));
    if total != d.len() {
        return Err(format!("length field {total}, datagram {} bytes", d.len()));
    }
    let (mut off, mut payload, mut correlation) = (6, None, false);
    while off < d.len() {
        let Some(h) = d.get(off..off + 6) else {
            return Err(format!("chunk header cut at offset {off}"));
        };
        let chunk_type = u16::from_be_bytes([h[2], h[3]]);
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        if len < 6 || off + len > d.len() {
            return Err(format!(
                "chunk 0x{chunk_type:04x} of length {len} at offset {off}"
            ));
        }
        match chunk_type {
            0x000f => payload = Some(&d[off + 6..off + len]),
            0x0011 => correlation = true,
            _ => {}
        }
        off += len;
    }
    let payload = payload.ok_or("no payload chunk (0x000f)")?;
    let first_line = payload.split(|&b| b == b'\n').next().unwrap_or_default();
    if !(first_line.starts_with(b"SIP/2.0 ") || first_line.ends_with(b" SIP/2.0\r")) {
        return Err("payload does not start with a SIP start line".to_string());
    }
    if !correlation {
        return Err("no correlation id chunk (0x0011)".to_string());
    }
    Ok(())
}

/// A table row's figures, in column order: wall s, packets/s, delivered, delivered %,
/// MB received, CPU s, cores, CPU us per packet, peak RSS MiB.
type Columns = [f64; 9];

fn columns(r: &RunResult) -> Columns {
    [
        r.wall.as_secs_f64(),
        r.pps(),
        r.recv.datagrams as f64,
        r.delivered_pct(),
        r.recv.bytes as f64 / 1e6,
        r.cpu.as_secs_f64(),
        r.cores(),
        r.cpu_us_per_packet(),
        r.max_rss_kib as f64 / 1024.0,
    ]
}

fn print_table(runs: &[RunResult], hep: bool) {
    let delivered_head = if hep {
        format!(" {:>10} {:>11} {:>9}", "delivered", "deliv/sent", "MB recv")
    } else {
        String::new()
    };
    println!(
        "{:>6} {:>8} {:>10}{delivered_head} {:>7} {:>6} {:>10} {:>8}",
        "run", "wall s", "packets/s", "CPU s", "cores", "CPU us/pkt", "RSS MiB"
    );
    let rows: Vec<Columns> = runs.iter().map(columns).collect();
    for (i, c) in rows.iter().enumerate() {
        print_row(&(i + 1).to_string(), c, hep);
    }
    let mut medians = Columns::default();
    for (k, m) in medians.iter_mut().enumerate() {
        *m = median(rows.iter().map(|c| c[k]));
    }
    print_row("median", &medians, hep);
    if hep {
        let sampled: u64 = runs.iter().map(|r| r.recv.sampled).sum();
        let invalid: u64 = runs.iter().map(|r| r.recv.invalid).sum();
        println!(
            "HEP3 check: {sampled} sampled datagrams (1 in {SAMPLE_EVERY}), {invalid} invalid"
        );
    }
}

fn print_row(label: &str, c: &Columns, hep: bool) {
    let [wall, pps, delivered, pct, mb, cpu, cores, per, rss] = *c;
    let delivered = if hep {
        format!(
            " {:>10} {:>10.2}% {:>9.1}",
            thousands(delivered as u64),
            pct,
            mb
        )
    } else {
        String::new()
    };
    println!(
        "{label:>6} {wall:>8.3} {:>10}{delivered} {cpu:>7.3} {cores:>6.2} {per:>10.3} {rss:>8.1}",
        thousands(pps as u64),
    );
}

/// Median of each column on its own (the middle value; the mean of the two for even counts).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn online_cpus() -> usize {
    thread::available_parallelism().map_or(0, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn median_odd_even() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
    }

    #[test]
    fn hep3_check() {
        let sip = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n";
        let mut p = b"HEP3\0\0".to_vec();
        for (ty, body) in [(0x0011u16, &b"x"[..]), (0x000f, &sip[..])] {
            p.extend_from_slice(&0u16.to_be_bytes());
            p.extend_from_slice(&ty.to_be_bytes());
            p.extend_from_slice(&(6 + body.len() as u16).to_be_bytes());
            p.extend_from_slice(body);
        }
        let len = p.len() as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        assert_eq!(check_hep3(&p), Ok(()));
        assert!(check_hep3(&p[..p.len() - 1]).is_err());
        assert!(check_hep3(b"HEP2\0\x06").is_err());
    }

    #[test]
    fn ceiling_packet_is_hep3_of_the_size() {
        for size in [160, 797, 1400] {
            let p = hep3_packet(size);
            assert_eq!(p.len(), size);
            assert_eq!(check_hep3(&p), Ok(()));
        }
    }
}
