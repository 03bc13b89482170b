//! Delivery policy seen through `/metrics` of `hepcap run`:
//!
//! - the circuit breaker of a HEP-over-TCP sink opens when its collector disappears, lets one
//!   probe through per cool-down (half-open) and closes when the collector is back; each
//!   transition is counted and the state gauge follows;
//! - `--hep-rate-limit` holds the sink within 5% of the limit over 10 s of twice as much input.

mod relay_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use relay_support::{Hepcap, free_port, fresh_dir, sip_hep3};

/// Every sample of `/metrics` as (series, value).
fn scrape(port: u16) -> Vec<(String, f64)> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return Vec::new();
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("hepcap_"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
}

const STATE: &str = "hepcap_sink_breaker_state{sink=\"hep_tcp_0\"}";

fn transitions(samples: &[(String, f64)], state: &str) -> f64 {
    value(
        samples,
        &format!("hepcap_sink_breaker_transitions_total{{sink=\"hep_tcp_0\",reason=\"{state}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Sends `n` numbered SIP-in-HEP datagrams to `to` at `per_second`.
fn send_paced(to: SocketAddr, n: usize, per_second: u32) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        let start = Instant::now();
        let gap = Duration::from_secs(1) / per_second;
        for i in 0..n {
            if let Some(wait) = (start + gap * i as u32).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let packet = sip_hep3(&format!("policy-{i}"), 1_700_000_000, 0, &[]);
            sock.send_to(&packet, to).expect("send hep");
        }
    })
}

/// Accepts one connection within 15 s and reads it on a thread until its end or until `stop`
/// asks for a clean shutdown (half-close, read what is in flight, close); returns the bytes.
fn collect(listener: &TcpListener, hepcap: &Hepcap, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "hepcap did not connect:\n{}",
                    hepcap.stderr()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).expect("blocking");
    std::thread::spawn(move || {
        conn.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut total = 0;
        let mut buf = vec![0; 64 << 10];
        let mut half_closed = None;
        loop {
            if half_closed.is_none() && stop.load(Ordering::Acquire) {
                conn.shutdown(Shutdown::Write).expect("half-close");
                half_closed = Some(Instant::now());
            }
            if half_closed.is_some_and(|at: Instant| at.elapsed() > Duration::from_secs(15)) {
                panic!("hepcap kept the half-closed connection open");
            }
            match conn.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("collector read: {e}"),
            }
        }
    })
}

/// Polls `/metrics` until `done` holds (bounded); returns the last scrape.
fn scrape_until(
    port: u16,
    hepcap: &Hepcap,
    within: Duration,
    what: &str,
    mut done: impl FnMut(&[(String, f64)]) -> bool,
) -> Vec<(String, f64)> {
    let deadline = Instant::now() + within;
    loop {
        let s = scrape(port);
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen within {within:?}:\n{}",
            hepcap.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(args: &[String]) -> Hepcap {
    let mut all: Vec<String> = ["--capture", "none", "--hep-listen", "udp://127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    all.extend_from_slice(args);
    Hepcap::start(&all)
}

#[test]
fn the_breaker_opens_probes_half_open_and_closes_as_the_collector_goes_and_returns() {
    let dir = fresh_dir("breaker-transitions");
    let collector_port = free_port();
    let metrics_port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", collector_port)).expect("bind collector");
    let hepcap = start(&[
        "--hep".into(),
        format!("tcp://127.0.0.1:{collector_port}"),
        "--spool-dir".into(),
        dir.join("spool").display().to_string(),
        "--breaker-failures".into(),
        "3".into(),
        "--breaker-cool-down-ms".into(),
        "1000".into(),
        "--metrics".into(),
        format!("127.0.0.1:{metrics_port}"),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = collect(&listener, &hepcap, Arc::clone(&stop));
    // 200 records/s for 15 s: traffic all through the outage and after it.
    let sender = send_paced(hepcap.udp[0], 3000, 200);

    let up = scrape_until(
        metrics_port,
        &hepcap,
        Duration::from_secs(10),
        "records sent",
        |s| value(s, "hepcap_sink_records_sent_total{sink=\"hep_tcp_0\"}").unwrap_or(0.0) > 0.0,
    );
    assert_eq!(
        value(&up, STATE),
        Some(0.0),
        "closed while the collector is up"
    );
    assert_eq!(transitions(&up, "open"), 0.0);

    // The collector goes away: the breaker opens, and with a 1 s cool-down probes fail.
    stop.store(true, Ordering::Release);
    reader.join().expect("collector");
    drop(listener);
    let down = scrape_until(
        metrics_port,
        &hepcap,
        Duration::from_secs(10),
        "two failed probes",
        // One scrape reads the gauge and the counters one after the other: a probe falling
        // between them shows a torn picture for a moment, so wait for a consistent one.
        |s| {
            transitions(s, "half_open") >= 2.0
                && value(s, STATE) == Some(2.0)
                && transitions(s, "open") == transitions(s, "half_open") + 1.0
        },
    );
    // Every probe of a collector still down opened the breaker again.
    assert_eq!(
        transitions(&down, "open"),
        transitions(&down, "half_open") + 1.0
    );
    assert_eq!(transitions(&down, "closed"), 0.0);

    // The collector is back: the next probe succeeds and closes the breaker.
    let listener = TcpListener::bind(("127.0.0.1", collector_port)).expect("rebind collector");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = collect(&listener, &hepcap, Arc::clone(&stop));
    let back = scrape_until(
        metrics_port,
        &hepcap,
        Duration::from_secs(10),
        "closed again",
        |s| value(s, STATE) == Some(0.0) && transitions(s, "closed") >= 1.0,
    );
    assert_eq!(transitions(&back, "closed"), 1.0);
    assert_eq!(transitions(&back, "open"), transitions(&back, "half_open"));
    sender.join().expect("sender");
    let summary = hepcap.stop_ok();
    assert!(reader.join().expect("collector") > 0);
    // With a spool nothing is dropped while the breaker is open: it is spooled.
    assert!(!summary.contains("breaker_open"), "{summary}");
    println!(
        "breaker: {} opens, {} probes, closed {}",
        transitions(&back, "open"),
        transitions(&back, "half_open"),
        transitions(&back, "closed")
    );
}

#[test]
fn the_rate_limit_holds_within_5_percent_over_10_s() {
    const LIMIT: f64 = 1000.0;
    // Bound on port 0: a port picked first and bound later can be taken in between by a
    // connection of the test running beside this one.
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind collector");
    let collector_port = listener.local_addr().expect("collector address").port();
    let metrics_port = free_port();
    let hepcap = start(&[
        "--hep".into(),
        format!("tcp://127.0.0.1:{collector_port}"),
        "--hep-rate-limit".into(),
        "1000".into(),
        "--hep-rate-policy".into(),
        "drop".into(),
        "--metrics".into(),
        format!("127.0.0.1:{metrics_port}"),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = collect(&listener, &hepcap, Arc::clone(&stop));
    // Twice the limit for 13 s; the measurement window is 10 s of it, after a 1 s start.
    let sender = send_paced(hepcap.udp[0], 26_000, 2000);
    const SENT: &str = "hepcap_sink_records_sent_total{sink=\"hep_tcp_0\"}";
    std::thread::sleep(Duration::from_secs(1));
    let (t0, s0) = (
        Instant::now(),
        value(&scrape(metrics_port), SENT).unwrap_or(0.0),
    );
    std::thread::sleep(Duration::from_secs(10));
    let (t1, s1) = (
        Instant::now(),
        value(&scrape(metrics_port), SENT).unwrap_or(0.0),
    );
    let rate = (s1 - s0) / (t1 - t0).as_secs_f64();
    println!(
        "rate limit {LIMIT}/s: {rate:.1} records/s measured over {:?}",
        t1 - t0
    );
    assert!(
        (rate - LIMIT).abs() <= LIMIT * 0.05,
        "{rate:.1} records/s against a limit of {LIMIT}"
    );
    sender.join().expect("sender");
    let end = scrape(metrics_port);
    let summary = hepcap.stop_ok();
    stop.store(true, Ordering::Release);
    let _ = reader.join();
    // What the limit refused is counted, and received = sent + rate_limited. All three come
    // from the exit summary: records still queued when the last scrape ran were limited
    // after it.
    let scraped_limited = value(
        &end,
        "hepcap_sink_dropped_records_total{sink=\"hep_tcp_0\",reason=\"rate_limited\"}",
    )
    .expect("rate_limited counter");
    let limited = summary
        .lines()
        .skip_while(|l| !l.contains("sink hep tcp://"))
        .find_map(|l| l.trim().strip_prefix("dropped rate_limited: "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no rate_limited drops in the summary:\n{summary}"));
    assert!(
        scraped_limited <= limited,
        "scraped {scraped_limited} > final {limited}"
    );
    let received = relay_support::listener_summary(&summary, "udp://").relayed;
    let sent = relay_support::sink_records(&summary, "hep tcp://");
    assert!(limited > 0.0);
    assert_eq!(sent as f64 + limited, received as f64, "{summary}");
}
