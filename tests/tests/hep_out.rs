//! HEP that hepcap sends, read back by decoders that share no code with hepcap: the harness's
//! `hep_sink.py` (a Python collector) and tshark with the harness's `hep.lua` dissector, fed by
//! a live tcpdump capture of the loopback traffic.
//!
//! Needs root (tcpdump on `lo`), python3, tcpdump and tshark; a missing one fails the test.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hepcap_e2e::{hepcap, pcaps_dir, require_tool, scratch_dir, shared_dir};
use relay_support::{Tcpdump, free_port, hex, read_jsonl, read_jsonl_lossy, rfc3339_micros};
use serde_json::Value;

mod relay_support;

/// A real capture with SIP over UDP in both directions and several Call-IDs (MIT/Apache).
const CAPTURE: &str = "sipnab__Asterisk_ZFONE_XLITE.pcap";

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

#[test]
fn rfc3339_by_hand() {
    assert_eq!(
        rfc3339_micros("2011-08-15T20:34:19.120000Z"),
        1_313_440_459_120_000
    );
    assert_eq!(rfc3339_micros("1970-01-01T00:00:00.000001Z"), 1);
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

    let tcpdump = Tcpdump::start(&pcap_out, &format!("port {udp_port} or port {tcp_port}"));
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
    tcpdump.finish(records.len());

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
            // SIP (1), and the RTCP reports hepcap correlated to the capture's calls (5).
            assert_eq!(got["proto_type"], want["proto_type"], "{ctx}");
            assert_eq!(got["capture_id"], 4242, "{ctx}");
            assert_eq!(got["node_name"], "edge-7", "{ctx}");
            assert_eq!(got["auth_key"], "s3cret", "{ctx}");
            assert_eq!(got["correlation_id"], want["correlation_id"], "{ctx}");
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
                want["correlation_id"].as_str().expect("call id"),
                "{ctx}"
            );
            let payload = want["payload"]
                .as_str()
                .expect("utf-8 payload in this capture");
            assert_eq!(m[9], hex(payload.as_bytes()), "{ctx}: payload bytes");
        }
    }
}
