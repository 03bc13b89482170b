//! Collector outages through `hepcap run` with a disk spool: steady, numbered HEP traffic in
//! over UDP, out over `--hep tcp://` to a collector written here.
//!
//! - The collector shuts down cleanly (half-closes, reads what is in flight, closes) and comes
//!   back 20 s later on the same port: every record arrives exactly once and in order, and
//!   `hepcap_spool_records` rose above zero during the outage and fell back to zero.
//! - The collector is killed (closes with unread data: a reset) and accepts again at once: the
//!   new connection starts exactly at the first record its TCP had not acknowledged, and
//!   `hepcap_sink_resent_records_total` counts what was sent again.
//! - hepcap stopped (SIGTERM) in the middle of an outage and started again on the same spool:
//!   every record arrives exactly once and in order.
//! - hepcap killed with SIGKILL while spooling, the newest segment then given a torn tail: the
//!   restarted hepcap delivers exactly the whole records an independent reader of the spool
//!   files finds, in order, and nothing of the torn frame.

mod relay_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use relay_support::{
    Hepcap, chunks_of, free_port, fresh_dir, sip_first_line_and_call_id, sip_hep3,
};

/// The sink's metric label: the first (only) sink, HEP over TCP.
const SPOOL_RECORDS: &str = "hepcap_spool_records{sink=\"hep_tcp_0\"}";
const RESENT: &str = "hepcap_sink_resent_records_total{sink=\"hep_tcp_0\"}";

/// The value of the series `series` (name and labels exactly as exported) on `/metrics`.
fn metric(port: u16, series: &str) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Call-ID of record `i`: the sequence number the collector checks.
fn call_id(i: usize) -> String {
    format!("outage-{i:06}")
}

/// Sends records `range` to `to` at `per_second`, on a fixed schedule (bounded by the count).
fn send_paced(to: SocketAddr, range: std::ops::Range<usize>, per_second: u32) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        let start = Instant::now();
        let gap = Duration::from_secs(1) / per_second;
        for (k, i) in range.enumerate() {
            let due = start + gap * k as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let packet = sip_hep3(&call_id(i), 1_700_000_000 + i as u32, 0, &[]);
            sock.send_to(&packet, to).expect("send hep");
        }
    })
}

/// Sequence numbers of the HEP3 packets of a TCP stream, in order. Every packet must be whole
/// and carry a SIP payload with one of our Call-IDs (parsed here, not by hepcap).
fn sequence(stream: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        assert!(
            rest.len() >= 6,
            "torn packet header at the end of the stream"
        );
        let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
        assert!(rest.len() >= len, "torn packet at the end of the stream");
        let payload = chunks_of(&rest[..len])
            .into_iter()
            .find(|(vendor, ty, _)| *vendor == 0 && *ty == 0x0f)
            .map(|(_, _, body)| body)
            .expect("a payload chunk");
        let (_, id) = sip_first_line_and_call_id(&payload);
        let id = id.expect("a Call-ID");
        let n = id
            .strip_prefix("outage-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("foreign Call-ID {id}"));
        out.push(n);
        rest = &rest[len..];
    }
    out
}

/// Accepts one connection within `within`, or fails the test.
fn accept(listener: &TcpListener, within: Duration, hepcap: &Hepcap) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + within;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).expect("blocking");
                return conn;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "hepcap did not connect within {within:?}:\n{}",
                    hepcap.stderr()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A collector connection: bytes read so far (shared), until end of stream, or until `stop`
/// asks for a clean shutdown: half-close, read what is still in flight, close.
struct Collector {
    got: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Collector {
    fn start(mut conn: TcpStream) -> Collector {
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (got, stop) = (Arc::clone(&got), Arc::clone(&stop));
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_millis(50)))
                    .expect("read timeout");
                let mut buf = vec![0; 64 << 10];
                let mut half_closed: Option<Instant> = None;
                loop {
                    if half_closed.is_none() && stop.load(Ordering::Acquire) {
                        conn.shutdown(Shutdown::Write).expect("half-close");
                        half_closed = Some(Instant::now());
                    }
                    if let Some(at) = half_closed {
                        assert!(
                            at.elapsed() < Duration::from_secs(15),
                            "hepcap kept the half-closed connection open"
                        );
                    }
                    match conn.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => got.lock().expect("buffer").extend_from_slice(&buf[..n]),
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(e) => panic!("collector read: {e}"),
                    }
                }
            })
        };
        Collector { got, stop, thread }
    }

    fn bytes(&self) -> Vec<u8> {
        self.got.lock().expect("buffer").clone()
    }

    /// Waits until `n` records arrived; fails after `within` with hepcap's log.
    fn wait_for(&self, n: usize, within: Duration, hepcap: &Hepcap) {
        let deadline = Instant::now() + within;
        while sequence(&self.bytes()).len() < n {
            assert!(Instant::now() < deadline, "{}", hepcap.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clean shutdown; returns everything read once hepcap closed its side.
    fn shut_down(self) -> Vec<u8> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("collector thread");
        let got = self.got.lock().expect("buffer");
        got.clone()
    }

    /// Waits for hepcap to close the connection; returns everything read.
    fn finish(self) -> Vec<u8> {
        self.thread.join().expect("collector thread");
        let got = self.got.lock().expect("buffer");
        got.clone()
    }
}

#[test]
fn a_collector_shut_down_cleanly_for_20_s_gets_every_record_once_and_in_order() {
    const RATE: u32 = 200;
    const N: usize = 6000; // 30 s at RATE: 5 s before the outage, 20 s of it, 5 s after
    let dir = fresh_dir("outage-clean");
    let collector_port = free_port();
    let metrics_port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", collector_port)).expect("bind collector");

    let hepcap = Hepcap::start(&[
        "--capture".to_string(),
        "none".into(),
        "--hep-listen".into(),
        "udp://127.0.0.1:0".into(),
        "--hep".into(),
        format!("tcp://127.0.0.1:{collector_port}"),
        "--spool-dir".into(),
        dir.join("spool").display().to_string(),
        "--metrics".into(),
        format!("127.0.0.1:{metrics_port}"),
    ]);
    let first = Collector::start(accept(&listener, Duration::from_secs(10), &hepcap));
    let sender = send_paced(hepcap.udp[0], 0..N, RATE);

    std::thread::sleep(Duration::from_secs(5));
    let down_at = Instant::now();
    let before = first.shut_down();
    drop(listener);

    // The outage: the port refuses connections; the spool must take what arrives.
    let mut spool_peak = 0.0f64;
    while down_at.elapsed() < Duration::from_secs(20) {
        if let Some(v) = metric(metrics_port, SPOOL_RECORDS) {
            spool_peak = spool_peak.max(v);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let listener = TcpListener::bind(("127.0.0.1", collector_port)).expect("rebind collector");
    let second = Collector::start(accept(&listener, Duration::from_secs(15), &hepcap));
    sender.join().expect("sender");

    // Everything sent arrives and the spool empties (bounded wait, not an assertion).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut spool_after = None;
    loop {
        let mut all = before.clone();
        all.extend_from_slice(&second.bytes());
        let arrived = sequence(&all).len();
        spool_after = metric(metrics_port, SPOOL_RECORDS).or(spool_after);
        if arrived >= N && spool_after == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{arrived} of {N} records arrived, spool {spool_after:?}:\n{}",
            hepcap.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let resent = metric(metrics_port, RESENT);
    let summary = hepcap.stop_ok();
    let after = second.finish();

    let first_seq = sequence(&before);
    let second_seq = sequence(&after);
    println!(
        "outage: {} records before the shutdown, {} after; spool peak {spool_peak} records; \
         re-sent {resent:?}",
        first_seq.len(),
        second_seq.len()
    );
    let mut all = first_seq;
    all.extend(second_seq);
    let want: Vec<usize> = (0..N).collect();
    if all != want {
        let first_bad = all.iter().zip(&want).position(|(a, b)| a != b);
        panic!(
            "records not exactly once in order: {} received, first difference at {first_bad:?}\n{summary}",
            all.len()
        );
    }
    // 20 s at 200 records/s went to the spool; a few may have been in flight at each end.
    assert!(
        spool_peak >= 3000.0,
        "spool peak {spool_peak} during a 20 s outage at {RATE}/s"
    );
    assert!(summary.contains("spooled: "), "{summary}");
}

/// `hepcap run` relaying UDP HEP to `tcp://127.0.0.1:collector_port` with a spool in `spool`.
fn start_spooling(collector_port: u16, spool: &Path, metrics_port: u16) -> Hepcap {
    Hepcap::start(&[
        "--capture".to_string(),
        "none".into(),
        "--hep-listen".into(),
        "udp://127.0.0.1:0".into(),
        "--hep".into(),
        format!("tcp://127.0.0.1:{collector_port}"),
        "--spool-dir".into(),
        spool.display().to_string(),
        "--metrics".into(),
        format!("127.0.0.1:{metrics_port}"),
    ])
}

/// Polls `/metrics` until `series` equals `want` (bounded); fails with hepcap's log.
fn wait_metric(hepcap: &Hepcap, port: u16, series: &str, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let v = metric(port, series);
        if v == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {v:?}, not {want}, after {within:?}:\n{}",
            hepcap.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CRC-32 (IEEE 802.3, reflected), written here to check spool frames independently.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The payloads of every whole, valid frame of the spool's segment files, oldest first
/// (frame: len u32 LE, crc32 u32 LE of ts and payload, ts u64 LE, payload). Reading stops
/// at the first frame of a segment that is torn or fails its checksum.
fn spooled_payloads(dir: &Path) -> Vec<Vec<u8>> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .expect("spool dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for seg in segments {
        let data = std::fs::read(&seg).expect("read segment");
        let mut at = 0;
        while let Some(h) = data.get(at..at + 16) {
            let len = u32::from_le_bytes(h[..4].try_into().expect("4")) as usize;
            let crc = u32::from_le_bytes(h[4..8].try_into().expect("4"));
            let Some(payload) = data.get(at + 16..at + 16 + len) else {
                break;
            };
            let mut checked = h[8..16].to_vec();
            checked.extend_from_slice(payload);
            if crc32(&checked) != crc {
                break;
            }
            out.push(payload.to_vec());
            at += 16 + len;
        }
    }
    out
}

#[test]
fn hepcap_restarted_mid_outage_delivers_every_record_once_in_order() {
    const RATE: u32 = 500;
    let dir = fresh_dir("outage-restart");
    let spool = dir.join("spool");
    let collector_port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", collector_port)).expect("bind collector");

    // 0..1000 while the collector is up.
    let metrics_port = free_port();
    let hepcap = start_spooling(collector_port, &spool, metrics_port);
    let first = Collector::start(accept(&listener, Duration::from_secs(10), &hepcap));
    send_paced(hepcap.udp[0], 0..1000, RATE)
        .join()
        .expect("sender");
    first.wait_for(1000, Duration::from_secs(30), &hepcap);
    // The collector goes away; 1000..2000 are spooled; hepcap stops in the middle of it.
    let before = first.shut_down();
    drop(listener);
    send_paced(hepcap.udp[0], 1000..2000, RATE)
        .join()
        .expect("sender");
    wait_metric(
        &hepcap,
        metrics_port,
        SPOOL_RECORDS,
        1000.0,
        Duration::from_secs(30),
    );
    let summary = hepcap.stop_ok();
    assert!(!summary.contains("dropped"), "{summary}");

    // A new hepcap on the same spool, still no collector: 2000..3000 join the spool.
    let metrics_port = free_port();
    let hepcap = start_spooling(collector_port, &spool, metrics_port);
    send_paced(hepcap.udp[0], 2000..3000, RATE)
        .join()
        .expect("sender");
    wait_metric(
        &hepcap,
        metrics_port,
        SPOOL_RECORDS,
        2000.0,
        Duration::from_secs(30),
    );
    // The collector is back: the spool goes first, then live records.
    let listener = TcpListener::bind(("127.0.0.1", collector_port)).expect("rebind collector");
    let second = Collector::start(accept(&listener, Duration::from_secs(15), &hepcap));
    send_paced(hepcap.udp[0], 3000..3500, RATE)
        .join()
        .expect("sender");
    second.wait_for(2500, Duration::from_secs(60), &hepcap);
    wait_metric(
        &hepcap,
        metrics_port,
        SPOOL_RECORDS,
        0.0,
        Duration::from_secs(30),
    );
    let summary = hepcap.stop_ok();
    let after = second.finish();

    let mut all = sequence(&before);
    all.extend(sequence(&after));
    let want: Vec<usize> = (0..3500).collect();
    assert!(
        all == want,
        "not every record exactly once in order: {} received, first difference at {:?}\n{summary}",
        all.len(),
        all.iter().zip(&want).position(|(a, b)| a != b)
    );
}

#[test]
fn after_kill_9_and_a_torn_tail_every_whole_spooled_record_is_delivered_and_nothing_torn() {
    const RATE: u32 = 500;
    let dir = fresh_dir("outage-kill9");
    let spool = dir.join("spool");
    // No collector at all while the first hepcap runs.
    let collector_port = free_port();
    let metrics_port = free_port();
    let hepcap = start_spooling(collector_port, &spool, metrics_port);
    send_paced(hepcap.udp[0], 0..1500, RATE)
        .join()
        .expect("sender");
    wait_metric(
        &hepcap,
        metrics_port,
        SPOOL_RECORDS,
        1500.0,
        Duration::from_secs(30),
    );
    // hepcap runs under `timeout`: SIGKILL goes to hepcap itself, the wrapper then exits.
    let children = std::fs::read_to_string(format!(
        "/proc/{pid}/task/{pid}/children",
        pid = hepcap.pid()
    ))
    .expect("children of the timeout wrapper");
    let pid: u32 = children.trim().parse().expect("one child: hepcap");
    relay_support::signal(pid, "KILL");
    let (status, _) = hepcap.stop();
    assert!(!status.success(), "hepcap survived SIGKILL");

    // What a reader of the format finds on disk, then a torn frame as a crash mid-write
    // leaves it: a header announcing 400 bytes, 100 of them written.
    let spool_files = destination_dir(&spool);
    let whole = spooled_payloads(&spool_files);
    assert_eq!(whole.len(), 1500, "every record was synced before the kill");
    let newest = std::fs::read_dir(&spool_files)
        .expect("spool dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .expect("a segment");
    let mut torn = Vec::new();
    torn.extend_from_slice(&400u32.to_le_bytes());
    torn.extend_from_slice(&0u32.to_le_bytes());
    torn.extend_from_slice(&0u64.to_le_bytes());
    torn.extend_from_slice(&sip_hep3(&call_id(999_999), 1, 0, &[])[..100]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .and_then(|mut f| f.write_all(&torn))
        .expect("tear the newest segment");

    let listener = TcpListener::bind(("127.0.0.1", collector_port)).expect("bind collector");
    let metrics_port = free_port();
    let hepcap = start_spooling(collector_port, &spool, metrics_port);
    let collector = Collector::start(accept(&listener, Duration::from_secs(15), &hepcap));
    send_paced(hepcap.udp[0], 1500..2000, RATE)
        .join()
        .expect("sender");
    collector.wait_for(2000, Duration::from_secs(60), &hepcap);
    let summary = hepcap.stop_ok();
    let got = sequence(&collector.finish());

    let mut want: Vec<usize> = sequence(&whole.concat());
    want.extend(1500..2000);
    assert!(
        got == want,
        "{} records delivered, first difference at {:?}\n{summary}",
        got.len(),
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
    // The torn frame: its 16-byte header and the 100 bytes written.
    assert!(
        summary
            .lines()
            .any(|l| l.contains("torn tail discarded") && l.contains("discarded_bytes=116")),
        "the cut tail was not reported:\n{summary}"
    );
}

/// The one destination directory hepcap made under `--spool-dir`.
fn destination_dir(spool: &Path) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(spool)
        .expect("spool dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "one destination spool under {}",
        spool.display()
    );
    dirs[0].clone()
}

/// Bytes waiting unread in a socket's receive queue (FIONREAD).
fn unread_bytes(s: &TcpStream) -> u64 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through a pointer to a live local; `s` owns the fd.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
    assert_eq!(rc, 0, "FIONREAD");
    u64::try_from(n).expect("non-negative")
}

#[test]
fn a_killed_collector_loses_only_what_its_kernel_acknowledged_and_the_rest_is_resent() {
    const RATE: u32 = 2000;
    const N: usize = 8000;
    let dir = fresh_dir("outage-killed");
    let collector_port = free_port();
    let metrics_port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", collector_port)).expect("bind collector");
    let hepcap = start_spooling(collector_port, &dir.join("spool"), metrics_port);
    let mut first = accept(&listener, Duration::from_secs(10), &hepcap);
    let sender = send_paced(hepcap.udp[0], 0..N, RATE);

    // Read a little, then hang for a second: the window closes and hepcap's kernel holds what
    // follows, unacknowledged. Past the delayed-ACK timer all that was received is ACKed.
    let mut read = vec![0u8; 20_000];
    first.read_exact(&mut read).expect("first bytes");
    std::thread::sleep(Duration::from_secs(1));
    // Killed: closing with unread data sends a reset. The unread bytes were acknowledged by
    // this kernel and are lost to any HEP sender.
    let acked = read.len() as u64 + unread_bytes(&first);
    drop(first);
    let second = Collector::start(accept(&listener, Duration::from_secs(15), &hepcap));
    sender.join().expect("sender");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seq = sequence(&second.bytes());
        if seq.last() == Some(&(N - 1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "last record {:?} after 60 s:\n{}",
            seq.last(),
            hepcap.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_metric(
        &hepcap,
        metrics_port,
        SPOOL_RECORDS,
        0.0,
        Duration::from_secs(30),
    );
    let resent = metric(metrics_port, RESENT).expect("resent metric");
    let summary = hepcap.stop_ok();
    let after = sequence(&second.finish());

    // hepcap relays HEP3 byte for byte: where each record ends in the stream follows from
    // the packets sent here.
    let mut end = 0u64;
    let first_unacked = (0..N)
        .position(|i| {
            end += sip_hep3(&call_id(i), 1_700_000_000 + i as u32, 0, &[]).len() as u64;
            end > acked
        })
        .expect("the first connection did not take everything");
    let want: Vec<usize> = (first_unacked..N).collect();
    assert!(
        after == want,
        "second connection: {} records from {:?}, want {} from {first_unacked}\n{summary}",
        after.len(),
        after.first(),
        want.len()
    );
    // Every record handed to the kernel counts in the summary, the re-sent ones twice.
    let handed = relay_support::sink_records(&summary, "hep tcp://");
    println!(
        "killed collector: {acked} bytes acknowledged by it, {first_unacked} records; \
         re-sent {resent}; {handed} records handed to the kernel"
    );
    assert!(resent > 0.0, "nothing re-sent:\n{summary}");
    assert_eq!(handed as f64 - resent, N as f64, "{summary}");
}
