//! Collector outages through `hepcap run` with a disk spool: steady, numbered HEP traffic in
//! over UDP, out over `--hep tcp://` to a collector written here.
//!
//! - The collector shuts down cleanly (half-closes, reads what is in flight, closes) and comes
//!   back 20 s later on the same port: every record arrives exactly once and in order, and
//!   `hepcap_spool_records` rose above zero during the outage and fell back to zero.

mod relay_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
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
