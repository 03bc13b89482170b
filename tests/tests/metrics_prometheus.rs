//! A real Prometheus server scrapes `hepcap replay --metrics`; the test asks Prometheus's HTTP
//! API for hepcap's series and checks they agree with hepcap's exit summary. Also checks
//! `/healthz`, `/readyz` and the rate limit seen through `/metrics`.
//!
//! Prerequisite: the `prometheus` binary (installed by the machine setup). Every wait is
//! bounded; a missing prerequisite fails the test by name.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hepcap_e2e::{hepcap, pcaps_dir, require_tool, scratch_dir};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// GET `path` from 127.0.0.1:`port`; (status line, body).
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_string();
    // Prometheus answers chunked; the JSON sits between the chunk sizes.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of `query` in Prometheus (instant vector, summed by the query itself).
fn prom_value(port: u16, query: &str) -> Option<f64> {
    let path = format!(
        "/api/v1/query?query={}",
        query
            .replace('+', "%2B")
            .replace(' ', "%20")
            .replace('[', "%5B")
            .replace(']', "%5D")
    );
    let (_, body) = http_get(port, &path)?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    let first = result.first()?;
    first["value"][1].as_str()?.parse().ok()
}

/// A number from the summary line that contains `marker`, the word before `word`.
fn summary_number(summary: &str, marker: &str, word: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no summary line with {marker:?} in:\n{summary}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.trim_end_matches([',', ';']) == word)
        .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
    words[i - 1].parse().expect("a count")
}

#[test]
fn prometheus_scrapes_a_replay_and_agrees_with_the_summary() {
    require_tool("prometheus");
    let dir = scratch_dir("metrics-prometheus");
    let _ = std::fs::remove_dir_all(dir.join("tsdb"));
    let metrics_port = free_port();
    let prom_port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hepcap\n    \
             static_configs:\n      - targets: [\"127.0.0.1:{metrics_port}\"]\n"
        ),
    )
    .expect("write prometheus.yml");
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prom = Killed(prom);
    wait_for("prometheus ready", Duration::from_secs(30), || {
        http_get(prom_port, "/-/ready").is_some_and(|(s, _)| s.contains("200"))
    });

    // A short replay (paced so that it spans scrapes), then the final values held for scrapes.
    let jsonl = dir.join("out.jsonl");
    let mut child = hepcap()
        .arg("replay")
        .arg(pcaps_dir().join("sipnab__udp_5060.pcap"))
        .args(["--loop", "20", "--pace", "--speed", "20"])
        .arg("--jsonl")
        .arg(&jsonl)
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .args(["--metrics-hold", "5"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hepcap replay");
    let start = Instant::now();
    while !http_get(metrics_port, "/healthz").is_some_and(|(s, _)| s.contains("200")) {
        if start.elapsed() > Duration::from_secs(20) || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("hepcap /healthz never answered; hepcap said:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ready, _) = http_get(metrics_port, "/readyz").expect("/readyz answers");
    assert!(ready.contains("200"), "readyz: {ready}");

    let mut stderr = String::new();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait hepcap") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "hepcap replay hangs"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "hepcap replay failed:\n{stderr}");

    let sip = summary_number(&stderr, "hepcap replay:", "SIP");
    let sent = summary_number(&stderr, "sink jsonl", "records");
    assert!(sip > 0 && sent == sip, "summary:\n{stderr}");

    // Prometheus saw the final values during the hold. hepcap has exited by now: the first
    // failed scrape marks its series stale and a plain instant query would then find nothing,
    // so every query reads the last sample of the past minute.
    let decoded = prom_value(
        prom_port,
        "sum(last_over_time(hepcap_decode_records_total[1m]))",
    );
    let delivered = prom_value(
        prom_port,
        "sum(last_over_time(hepcap_sink_records_sent_total[1m]))",
    );
    assert_eq!(decoded, Some(sip as f64), "decode records vs summary");
    assert_eq!(delivered, Some(sent as f64), "sink records vs summary");
    for series in [
        "hepcap_ring_capacity_records",
        "hepcap_ring_depth_records",
        "hepcap_pipeline_batch_size_records_count",
        "hepcap_sink_send_duration_seconds_count",
        "hepcap_sip_responses_total",
        "hepcap_sip_requests_total",
        "hepcap_sink_breaker_state",
    ] {
        assert!(
            prom_value(prom_port, &format!("count(last_over_time({series}[1m]))"))
                .is_some_and(|n| n > 0.0),
            "series {series} missing in Prometheus"
        );
    }
    let messages = prom_value(
        prom_port,
        "sum(last_over_time(hepcap_sip_requests_total[1m])) + \
         sum(last_over_time(hepcap_sip_responses_total[1m]))",
    );
    assert_eq!(
        messages,
        Some(sip as f64),
        "SIP method/status counters vs summary"
    );
}

#[test]
fn rate_limit_holds_within_five_percent_over_ten_seconds() {
    let metrics_port = free_port();
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind udp receiver");
    let hep_port = receiver.local_addr().expect("addr").port();
    receiver
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(25) {
            let _ = receiver.recv(&mut buf);
        }
    });
    let child = hepcap()
        .arg("replay")
        .arg(pcaps_dir().join("sipnab__udp_5060.pcap"))
        .args(["--loop", "0", "-q"])
        .args(["--hep", &format!("udp://127.0.0.1:{hep_port}")])
        .args(["--hep-rate-limit", "2000"])
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .spawn()
        .expect("start hepcap replay");
    let child = Killed(child);
    let sent = || -> Option<f64> {
        let (_, body) = http_get(metrics_port, "/metrics")?;
        body.lines()
            .find(|l| l.starts_with("hepcap_sink_records_sent_total{sink=\"hep_udp_0\"}"))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    };
    wait_for("hepcap /metrics", Duration::from_secs(20), || {
        sent().is_some()
    });
    std::thread::sleep(Duration::from_secs(1));
    let (t0, a) = (Instant::now(), sent().expect("first reading"));
    std::thread::sleep(Duration::from_secs(10));
    let (t1, b) = (Instant::now(), sent().expect("second reading"));
    drop(child);
    let _ = drain.join();
    let rate = (b - a) / (t1 - t0).as_secs_f64();
    assert!(
        (rate - 2000.0).abs() <= 100.0,
        "rate {rate:.0} records/s, limit 2000"
    );
}
