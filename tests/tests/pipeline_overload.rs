//! Overload: a replay far faster than a deliberately slow HEP-over-TCP collector, beside a
//! JSONL sink. The JSONL sink receives every record, the TCP sink's `queue_full` drops in the
//! exit summary equal the `hepcap_sink_dropped_records_total{reason="queue_full"}` counter, and
//! hepcap's resident memory stays under a stated bound for the whole run (printed).

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hepcap_e2e::{hepcap, hepcap_bin, pcaps_dir, scratch_dir};

/// hepcap's RSS must stay under this for the whole run.
const RSS_BOUND_KB: u64 = 128 * 1024;

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn metrics_line(port: u16, prefix: &str) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find(|l| l.starts_with(prefix))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_slow_tcp_sink_drops_only_its_own_records_and_counts_them() {
    hepcap_bin();
    let dir = scratch_dir("pipeline-overload");
    let jsonl = dir.join("all.jsonl");
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();

    // A collector that reads 1 KiB every 10 ms (about 800 records/s).
    let collector = TcpListener::bind("127.0.0.1:0").expect("bind collector");
    let hep_port = collector.local_addr().expect("addr").port();
    let slow = std::thread::spawn(move || {
        let Ok((mut conn, _)) = collector.accept() else {
            return 0usize;
        };
        let mut total = 0;
        let mut buf = [0u8; 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });

    let mut child = hepcap()
        .arg("replay")
        .arg(pcaps_dir().join("sipnab__udp_5060.pcap"))
        // 10 messages 9 s apart, sped up 9000 times: about 10 000 records/s, within what a
        // debug build's JSONL sink writes, far beyond the collector.
        .args(["--loop", "5000", "--pace", "--speed", "9000"])
        .args(["--when-full", "drop-newest"])
        .args(["--hep", &format!("tcp://127.0.0.1:{hep_port}")])
        .arg("--jsonl")
        .arg(&jsonl)
        .args(["--shutdown-timeout", "2", "--metrics-hold", "3"])
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hepcap replay");
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // Sample RSS until the summary's last sink line shows up.
    let start = Instant::now();
    let mut peak = 0;
    let mut summary = Vec::new();
    while !summary.iter().any(|l: &String| l.contains("sink jsonl")) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "replay hangs: {summary:?}"
        );
        if let Some(kb) = rss_kb(pid) {
            peak = peak.max(kb);
        }
        while let Ok(line) = rx.try_recv() {
            summary.push(line);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    while let Ok(line) = rx.try_recv() {
        summary.push(line);
    }
    let queue_full_metric = metrics_line(
        metrics_port,
        "hepcap_sink_dropped_records_total{sink=\"hep_tcp_0\",reason=\"queue_full\"}",
    );
    let status = child.wait().expect("wait hepcap");
    let _ = slow.join();
    let text = summary.join("\n");
    // Exit 3: records were dropped at a sink (the slow collector's queue_full).
    assert_eq!(status.code(), Some(3), "hepcap exit status:\n{text}");
    println!("hepcap peak RSS {peak} KiB (bound {RSS_BOUND_KB} KiB)");
    assert!(peak < RSS_BOUND_KB, "RSS {peak} KiB over the bound");

    let sip: u64 = summary_count(&text, "hepcap replay:", "SIP");
    let lines = std::fs::read_to_string(&jsonl)
        .expect("jsonl")
        .lines()
        .count() as u64;
    assert_eq!(lines, sip, "the JSONL sink got every record:\n{text}");

    // The TCP sink's section of the summary: its queue_full drops.
    let tcp_section: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("sink hep tcp://"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    let queue_full: u64 = tcp_section
        .iter()
        .find(|l| l.contains("dropped queue_full:"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the slow TCP sink dropped nothing:\n{text}"));
    assert!(queue_full > 0);
    assert_eq!(
        queue_full_metric,
        Some(queue_full as f64),
        "summary vs metric:\n{text}"
    );
}

fn summary_count(summary: &str, marker: &str, word: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{summary}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == word)
        .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
    words[i - 1].parse().expect("a count")
}
