//! HEP that hepcap sends, read back by decoders that share no code with hepcap: the harness's
//! `hep_sink.py` (a Python collector) and tshark with the harness's `hep.lua` dissector, fed by
//! a live tcpdump capture of the loopback traffic.
//!
//! Needs root (tcpdump on `lo`), python3, tcpdump and tshark; a missing one fails the test.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hepcap_e2e::{hepcap, pcaps_dir, require_tool, scratch_dir, shared_dir};
use serde_json::Value;

/// A real capture with SIP over UDP in both directions and several Call-IDs (MIT/Apache).
const CAPTURE: &str = "sipnab__Asterisk_ZFONE_XLITE.pcap";

fn free_port() -> u16 {
    // The port must be free for both protocols.
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn wait_tcp(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            child.try_wait().expect("poll").is_none(),
            "hep_sink.py exited early"
        );
        assert!(
            Instant::now() < deadline,
            "hep_sink.py did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts tcpdump on `lo` and waits until it says it is listening.
fn start_tcpdump(out: &Path, ports: &[u16]) -> Child {
    let filter = ports
        .iter()
        .map(|p| format!("port {p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut child = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-s", "0", "-w"])
        .arg(out)
        .arg(&filter)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpdump");
    let stderr = child.stderr.take().expect("tcpdump stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .expect("tcpdump exited before listening (root needed)")
            .expect("read tcpdump stderr");
        if line.contains("listening on") {
            break;
        }
    }
    // Keep draining stderr so tcpdump never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Frames in a classic little-endian pcap file written so far.
fn pcap_frames(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= bytes.len() {
        let caplen =
            u32::from_le_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        at += 16 + caplen as usize;
        if at <= bytes.len() {
            n += 1;
        }
    }
    n
}

fn wait_capture_settles(path: &Path, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = (0, Instant::now());
    while Instant::now() < deadline {
        let n = pcap_frames(path);
        if n != last.0 {
            last = (n, Instant::now());
        } else if n >= at_least && last.1.elapsed() > Duration::from_millis(700) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// hep_sink.py may be killed mid-line; a torn last line is ignored.
fn read_jsonl_lossy(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Microseconds since the epoch of an RFC 3339 `YYYY-MM-DDTHH:MM:SS.ffffffZ`, worked out by hand.
fn rfc3339_micros(s: &str) -> u64 {
    let (date, time) = s.split_once('T').expect("T");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().expect("date")).collect();
    let time = time.strip_suffix('Z').expect("Z");
    let (hms, frac) = time.split_once('.').expect("fraction");
    assert_eq!(frac.len(), 6, "six fractional digits in {s}");
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().expect("time")).collect();
    // Days from the civil date (the usual era-based formula).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    secs as u64 * 1_000_000 + frac.parse::<u64>().expect("micros")
}

#[test]
fn rfc3339_by_hand() {
    assert_eq!(
        rfc3339_micros("2011-08-15T20:34:19.120000Z"),
        1_313_440_459_120_000
    );
    assert_eq!(rfc3339_micros("1970-01-01T00:00:00.000001Z"), 1);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn replayed_hep_reads_back_in_independent_decoders() {
    for tool in ["python3", "tcpdump", "tshark"] {
        require_tool(tool);
    }
    let harness = shared_dir().join("harness");
    assert!(
        harness.join("hep_sink.py").exists(),
        "prerequisite missing: ../shared/harness"
    );
    let capture = pcaps_dir().join(CAPTURE);
    assert!(capture.exists(), "missing {}", capture.display());

    let dir = scratch_dir("hep_out");
    let (udp_port, tcp_port) = (free_port(), free_port());
    let sink_out = dir.join("hep_sink.jsonl");
    let pcap_out = dir.join("hep.pcap");
    let jsonl = dir.join("records.jsonl");

    let mut tcpdump = start_tcpdump(&pcap_out, &[udp_port, tcp_port]);
    let mut sink = Command::new("python3")
        .arg(harness.join("hep_sink.py"))
        .args(["--udp", &format!("127.0.0.1:{udp_port}")])
        .args(["--tcp", &format!("127.0.0.1:{tcp_port}")])
        .args(["--timeout", "30", "--count", "100000", "--out"])
        .arg(&sink_out)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hep_sink.py");
    wait_tcp(tcp_port, &mut sink);

    let status = hepcap()
        .args(["replay", "-q"])
        .arg(&capture)
        .args(["--hep", &format!("udp://127.0.0.1:{udp_port}")])
        .args(["--hep", &format!("tcp://127.0.0.1:{tcp_port}")])
        .arg("--jsonl")
        .arg(&jsonl)
        .args([
            "--node-id",
            "4242",
            "--node-name",
            "edge-7",
            "--node-password",
            "s3cret",
        ])
        .status()
        .expect("run hepcap");
    assert!(status.success());

    let records = read_jsonl(&jsonl);
    assert!(
        records.len() >= 20,
        "expected the capture's SIP messages, got {}",
        records.len()
    );

    // Let the collector read everything, then stop both helpers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_jsonl_lossy(&sink_out).len() < 2 * records.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = sink.kill();
    let _ = sink.wait();
    // tcpdump writes each packet as it sees it (-U); stop it once the file holds at least one
    // frame per UDP message and has stopped growing.
    wait_capture_settles(&pcap_out, records.len());
    let _ = Command::new("kill")
        .args(["-INT", &tcpdump.id().to_string()])
        .status();
    let _ = tcpdump.wait();

    check_hep_sink(&records, &read_jsonl_lossy(&sink_out));
    check_tshark(&records, &pcap_out, &harness, udp_port);
}

fn check_hep_sink(records: &[Value], received: &[Value]) {
    for transport in ["udp", "tcp"] {
        let got: Vec<&Value> = received
            .iter()
            .filter(|r| r["transport"] == transport)
            .collect();
        assert_eq!(
            got.len(),
            records.len(),
            "hep_sink.py received over {transport}"
        );
        for (i, (want, got)) in records.iter().zip(&got).enumerate() {
            let ctx = format!("{transport} message {i}");
            assert!(got.get("error").is_none(), "{ctx}: {got}");
            assert_eq!(got["version"], 3, "{ctx}");
            assert_eq!(got["src_ip"], want["src_ip"], "{ctx}");
            assert_eq!(got["dst_ip"], want["dst_ip"], "{ctx}");
            assert_eq!(got["src_port"], want["src_port"], "{ctx}");
            assert_eq!(got["dst_port"], want["dst_port"], "{ctx}");
            assert_eq!(got["ip_proto"], 17, "{ctx}");
            assert_eq!(got["proto_type"], 1, "{ctx}");
            assert_eq!(got["capture_id"], 4242, "{ctx}");
            assert_eq!(got["node_name"], "edge-7", "{ctx}");
            assert_eq!(got["auth_key"], "s3cret", "{ctx}");
            assert_eq!(got["correlation_id"], want["sip"]["call_id"], "{ctx}");
            let micros = got["ts_sec"].as_u64().expect("ts_sec") * 1_000_000
                + got["ts_usec"].as_u64().expect("ts_usec");
            assert_eq!(
                micros,
                rfc3339_micros(want["timestamp"].as_str().expect("ts")),
                "{ctx}"
            );
            assert_eq!(got["payload"], want["payload"], "{ctx}");
        }
    }
}

fn check_tshark(records: &[Value], pcap: &Path, harness: &Path, udp_port: u16) {
    let out = Command::new("tshark")
        .arg("-X")
        .arg(format!(
            "lua_script:{}",
            harness.join("wireshark/hep.lua").display()
        ))
        .arg("-r")
        .arg(pcap)
        .args(["-o", "tcp.desegment_tcp_streams:TRUE"])
        .args([
            "-Y",
            "hep",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=a",
        ])
        .args(["-E", "aggregator=;"])
        .args([
            "-e",
            "udp.dstport",
            "-e",
            "hep.src_ip",
            "-e",
            "hep.dst_ip",
            "-e",
            "hep.src_port",
        ])
        .args([
            "-e",
            "hep.dst_port",
            "-e",
            "hep.ts_sec",
            "-e",
            "hep.ts_usec",
        ])
        .args([
            "-e",
            "hep.capture_id",
            "-e",
            "hep.node_name",
            "-e",
            "hep.correlation_id",
        ])
        .args(["-e", "hep.payload"])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("tshark output is text");

    // One line per frame; a TCP segment can carry several HEP messages (';'-aggregated).
    let mut udp_msgs = Vec::new();
    let mut tcp_msgs = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        let cols: Vec<Vec<&str>> = f[1..].iter().map(|c| c.split(';').collect()).collect();
        for k in 0..cols[0].len() {
            let msg: Vec<String> = cols
                .iter()
                .map(|c| c.get(k).copied().unwrap_or("").to_string())
                .collect();
            if f[0] == udp_port.to_string() {
                udp_msgs.push(msg);
            } else {
                tcp_msgs.push(msg);
            }
        }
    }
    for (transport, msgs) in [("udp", &udp_msgs), ("tcp", &tcp_msgs)] {
        assert_eq!(
            msgs.len(),
            records.len(),
            "tshark+hep.lua messages over {transport}"
        );
        for (i, (want, m)) in records.iter().zip(msgs.iter()).enumerate() {
            let ctx = format!("tshark {transport} message {i}");
            assert_eq!(m[0], want["src_ip"].as_str().expect("ip"), "{ctx}");
            assert_eq!(m[1], want["dst_ip"].as_str().expect("ip"), "{ctx}");
            assert_eq!(m[2], want["src_port"].to_string(), "{ctx}");
            assert_eq!(m[3], want["dst_port"].to_string(), "{ctx}");
            let micros =
                m[4].parse::<u64>().expect("sec") * 1_000_000 + m[5].parse::<u64>().expect("usec");
            assert_eq!(
                micros,
                rfc3339_micros(want["timestamp"].as_str().expect("ts")),
                "{ctx}"
            );
            assert_eq!(m[6], "4242", "{ctx}");
            assert_eq!(m[7], "edge-7", "{ctx}");
            assert_eq!(
                m[8],
                want["sip"]["call_id"].as_str().expect("call id"),
                "{ctx}"
            );
            let payload = want["payload"]
                .as_str()
                .expect("utf-8 payload in this capture");
            assert_eq!(m[9], hex(payload.as_bytes()), "{ctx}: payload bytes");
        }
    }
}
