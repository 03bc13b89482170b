//! RTCP call-quality histograms on `/metrics` after a replay of `synth__rtcp-correlation.pcap`.
//!
//! The expected values come from tshark's decode of the capture (`-d udp.port==1-65535,rtcp`,
//! fields `rtcp.ssrc.fraction`, `rtcp.ssrc.jitter`, `rtcp.xr.voipmetrics.moscq`), worked out
//! by hand. Five reports; `xtask/src/gen_pcaps/rtcp.rs` says which belong to a call: all but
//! frame 9 (198.51.100.50:6001 → .51:6003, RTCP of no call). Frame 7 (the early one, before
//! its INVITE) is an SR without report blocks. The report blocks of the calls' reports:
//!
//! | frame | fraction lost | jitter (RTP units) | ms at 8 kHz |
//! | --- | --- | --- | --- |
//! | 3 | 5/256 | 12 | 1.5 |
//! | 4 | 0/256 | 3 | 0.375 |
//! | 6 | 26/256 | 40 | 5 |
//!
//! Frame 4 also has an XR VoIP metrics block with MOS-CQ 4.2 (MOS-LQ 4.3; CQ is preferred, as
//! for HEP chunk 0x0020). Frame 9's block (0/256, jitter 0) must not be counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hepcap_e2e::{hepcap, hepcap_bin, pcaps_dir};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metrics(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect /metrics");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    body
}

fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn rtcp_jitter_fraction_lost_and_mos_of_correlated_reports_reach_the_histograms() {
    hepcap_bin();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = hepcap()
        .arg("replay")
        .arg(pcaps_dir().join("synth__rtcp-correlation.pcap"))
        .args(["--jsonl", "/dev/null"])
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .args(["--metrics-hold", "30"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hepcap replay");
    let stderr = child.stderr.take().expect("stderr");
    let child = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The summary is printed when the replay is done, before the hold.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("rtcp: ")) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no summary:\n{}", log.join("\n"));
        if let Ok(line) = rx.recv_timeout(left) {
            log.push(line);
        }
    }
    let summary = log.join("\n");
    assert!(
        summary.contains("5 reports, 4 correlated"),
        "the capture's reports:\n{summary}"
    );
    let body = metrics(port);
    drop(child);

    let get = |series: &str| {
        sample(&body, series).unwrap_or_else(|| panic!("no {series} in /metrics:\n{body}"))
    };
    assert_eq!(get("hepcap_rtcp_jitter_milliseconds_count"), 3.0);
    assert_eq!(get("hepcap_rtcp_jitter_milliseconds_sum"), 6.875);
    assert_eq!(get("hepcap_rtcp_jitter_milliseconds_bucket{le=\"1\"}"), 1.0);
    assert_eq!(get("hepcap_rtcp_jitter_milliseconds_bucket{le=\"2\"}"), 2.0);
    assert_eq!(get("hepcap_rtcp_jitter_milliseconds_bucket{le=\"5\"}"), 3.0);
    assert_eq!(get("hepcap_rtcp_fraction_lost_ratio_count"), 3.0);
    assert_eq!(get("hepcap_rtcp_fraction_lost_ratio_sum"), 31.0 / 256.0);
    // 0, 5/256 (0.0195) and 26/256 (0.1016).
    assert_eq!(get("hepcap_rtcp_fraction_lost_ratio_bucket{le=\"0\"}"), 1.0);
    assert_eq!(
        get("hepcap_rtcp_fraction_lost_ratio_bucket{le=\"0.02\"}"),
        2.0
    );
    assert_eq!(
        get("hepcap_rtcp_fraction_lost_ratio_bucket{le=\"0.1\"}"),
        2.0
    );
    assert_eq!(
        get("hepcap_rtcp_fraction_lost_ratio_bucket{le=\"0.2\"}"),
        3.0
    );
    assert_eq!(get("hepcap_rtcp_mos_count"), 1.0);
    assert_eq!(get("hepcap_rtcp_mos_sum"), 4.2);
    assert_eq!(get("hepcap_rtcp_mos_bucket{le=\"4\"}"), 0.0);
    assert_eq!(get("hepcap_rtcp_mos_bucket{le=\"4.2\"}"), 1.0);
}
