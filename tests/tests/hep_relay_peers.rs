//! Other HEP implementations around `hepcap run`: sngrep and hep-js as senders, the Wireshark
//! project's HEP sample captures replayed at the listeners, and sngrep's listener and
//! Kamailio's sipcapture as receivers of what hepcap relays.
//!
//! Needs sngrep, node (hep-js in HEPJS_HOME), tshark, python3 and kamailio.

mod relay_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hepcap_e2e::{hepcap, require_tool};
use relay_support::*;
use serde_json::Value;

/// sngrep's own sample-size capture: 81 SIP messages over UDP (harness README §3).
const NDPI_SIP: &str = "ndpi__sip.pcap";

/// `hepcap replay FILE --jsonl OUT` and its records.
fn replay_jsonl(pcap: &Path, out: &Path) -> Vec<Value> {
    let status = hepcap()
        .args(["replay", "-q"])
        .arg(pcap)
        .arg("--jsonl")
        .arg(out)
        .status()
        .expect("run hepcap replay");
    assert!(status.success(), "hepcap replay");
    read_jsonl(out)
}

/// (Call-ID, method or status, src ip:port, dst ip:port, µs) of each record.
fn sip_view(records: &[Value]) -> Vec<(String, String, String, String, u64)> {
    records
        .iter()
        .map(|r| {
            (
                r["sip"]["call_id"].as_str().unwrap_or("").to_string(),
                record_method_or_status(r),
                format!("{}:{}", r["src_ip"].as_str().unwrap_or(""), r["src_port"]),
                format!("{}:{}", r["dst_ip"].as_str().unwrap_or(""), r["dst_port"]),
                record_micros(r),
            )
        })
        .collect()
}

#[test]
fn sngrep_sends_a_capture_as_hep() {
    require_tool("sngrep");
    let dir = fresh_dir("hep_relay_sngrep_tx");
    let pcap = shared_pcap(NDPI_SIP);
    let jsonl = dir.join("received.jsonl");
    let hepcap = Hepcap::start(&[
        "--hep-listen".to_string(),
        "udp://127.0.0.1:0".into(),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ]);
    let port = hepcap.udp[0].port();
    let out = Command::new("timeout")
        .args(["60", "sngrep", "-N", "-q", "-I"])
        .arg(&pcap)
        .args(["-H", &format!("udp:127.0.0.1:{port}")])
        .env("HOME", &dir)
        .stdin(Stdio::null())
        .output()
        .expect("run sngrep");
    assert!(
        out.status.success(),
        "sngrep: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let summary = hepcap.stop_ok();
    let l = listener_summary(&summary, "udp://");
    assert_eq!((l.received, l.relayed), (81, 81), "{summary}");

    let received = read_jsonl(&jsonl);
    // hepcap's replay also turns the capture's one RTCP packet into HEP; sngrep sends SIP only.
    let replayed: Vec<Value> = replay_jsonl(&pcap, &dir.join("replayed.jsonl"))
        .into_iter()
        .filter(|r| r["proto_type"] == 1)
        .collect();
    assert_eq!(replayed.len(), 81, "SIP in hepcap replay of {NDPI_SIP}");
    assert_eq!(received.len(), 81, "all of sngrep's messages");
    for r in &received {
        assert_eq!(r["source"], "hep-udp");
        assert_eq!(r["hep_version"], "v3");
        assert_eq!(r["proto_type"], 1);
        assert!(r["peer"].as_str().expect("peer").starts_with("127.0.0.1:"));
    }
    // sngrep sends in file order; Call-ID, method/status, addresses, ports and the capture's
    // timestamps are what hepcap's own pcap path decodes from the same file.
    assert_eq!(sip_view(&received), sip_view(&replayed));
    for (r, p) in received.iter().zip(&replayed) {
        assert_eq!(record_payload(r), record_payload(p));
    }
}

#[test]
fn hepjs_node_name_and_correlation_id() {
    require_tool("node");
    let dir = fresh_dir("hep_relay_hepjs");
    let jsonl = dir.join("received.jsonl");
    let hepcap = Hepcap::start(&[
        "--hep-listen".to_string(),
        "udp://127.0.0.1:0".into(),
        "--hep-listen-password".into(),
        "jsPass".into(),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ]);
    let rcinfo = dir.join("rcinfo.json");
    std::fs::write(
        &rcinfo,
        r#"{"protocolFamily": 2, "protocol": 17, "srcIp": "192.0.2.10", "dstIp": "192.0.2.20",
            "srcPort": 5061, "dstPort": 5062, "timeSeconds": 1700000123, "timeUseconds": 654321,
            "payloadType": 1, "captureId": 4242, "capturePass": "jsPass",
            "hepNodeName": "hepjs-node-7", "correlation_id": "hepjs-corr-42"}"#,
    )
    .expect("write rcinfo");
    let payload = dir.join("payload.txt");
    let sip = sip_request("OPTIONS", "hepjs-call@192.0.2.10", 11);
    std::fs::write(&payload, &sip).expect("write payload");
    let out = Command::new("timeout")
        .arg("30")
        .arg(harness().join("hepjs/run.sh"))
        .arg("encode")
        .arg(&rcinfo)
        .arg(&payload)
        .args(["--send", &hepcap.udp[0].to_string(), "--repeat", "3"])
        .stdin(Stdio::null())
        .output()
        .expect("run hepjs/run.sh");
    assert!(
        out.status.success(),
        "hep-js encode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let summary = hepcap.stop_ok();
    let l = listener_summary(&summary, "udp://");
    assert_eq!((l.received, l.relayed), (3, 3), "{summary}");

    let records = read_jsonl(&jsonl);
    assert_eq!(records.len(), 3);
    for r in &records {
        assert_eq!(r["hep_version"], "v3");
        assert_eq!(r["node_name"], "hepjs-node-7");
        assert_eq!(r["correlation_id"], "hepjs-corr-42");
        assert_eq!(r["node_id"], 4242);
        assert_eq!(r["src_ip"], "192.0.2.10");
        assert_eq!(r["dst_ip"], "192.0.2.20");
        assert_eq!(r["src_port"], 5061);
        assert_eq!(r["dst_port"], 5062);
        assert_eq!(r["transport"], "udp");
        assert_eq!(r["proto_type"], 1);
        assert_eq!(record_micros(r), 1_700_000_123_654_321);
        assert_eq!(r["sip"]["call_id"], "hepjs-call@192.0.2.10");
        assert_eq!(r["sip"]["method"], "OPTIONS");
        assert_eq!(record_payload(r), sip);
    }
}

/// The Wireshark project's HEP samples, datagram by datagram to the UDP listener and then
/// back to back on one TCP connection; every message as tshark + hep.lua decode it.
fn hepwireshark_capture(name: &str, capture: &str, count: usize) {
    for tool in ["tshark", "python3"] {
        require_tool(tool);
    }
    let pcap = shared_pcap(capture);
    let dir = fresh_dir(name);
    let datagrams = udp_payloads(&pcap);
    assert_eq!(datagrams.len(), count, "UDP datagrams in {capture}");
    let wire = wire_hep(&pcap, 9060);
    assert_eq!(
        wire.len(),
        count,
        "HEP messages tshark decodes in {capture}"
    );

    let jsonl = dir.join("received.jsonl");
    let hepcap = Hepcap::start(&[
        "--hep-listen".to_string(),
        "udp://127.0.0.1:0".into(),
        "--hep-listen".into(),
        "tcp://127.0.0.1:0".into(),
        // Both samples carry the key "myHep" in 0x000e.
        "--hep-listen-password".into(),
        "myHep".into(),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ]);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for d in &datagrams {
        sock.send_to(d, hepcap.udp[0]).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut tcp = TcpStream::connect(hepcap.stream[0]).expect("connect");
    let tcp_peer = tcp.local_addr().expect("local addr");
    tcp.write_all(&datagrams.concat()).expect("write");
    drop(tcp);
    std::thread::sleep(Duration::from_millis(500));
    let summary = hepcap.stop_ok();
    for prefix in ["udp://", "tcp://"] {
        let l = listener_summary(&summary, prefix);
        assert_eq!(l.received, count as u64, "{prefix} {summary}");
        assert_eq!(l.relayed, count as u64, "{prefix} {summary}");
    }

    let records = read_jsonl(&jsonl);
    for (source, peer) in [
        ("hep-udp", sock.local_addr().expect("addr")),
        ("hep-tcp", tcp_peer),
    ] {
        let mine: Vec<&Value> = records.iter().filter(|r| r["source"] == source).collect();
        assert_eq!(mine.len(), count, "{source}");
        for (i, (r, w)) in mine.iter().zip(&wire).enumerate() {
            let ctx = format!("{capture} {source} message {i}");
            assert_eq!(r["peer"], peer.to_string(), "{ctx}");
            let mut got = record_as_wire(r);
            got.peer = w.peer.clone();
            // hep.lua gives no SIP fields for SIP it cannot dissect; the rest must agree.
            if w.call_id.is_none() && w.proto_type != Some(1) {
                assert_eq!(r["sip"], Value::Null, "{ctx}: not SIP");
            }
            assert_eq!(got, *w, "{ctx}: left hepcap, right tshark + hep.lua");
        }
    }
}

#[test]
fn hepwireshark_sip_log_rtcp_json() {
    hepwireshark_capture("hep_relay_hepwireshark", "hepwireshark__hep.pcap", 8);
}

#[test]
fn hepwireshark_compressed_payloads() {
    hepwireshark_capture(
        "hep_relay_hepwireshark_zlib",
        "hepwireshark__hep3_compressed.pcap.pcapng",
        21,
    );
}

/// A HEPv2 datagram as Kamailio writes it (hep.md §1.2): little-endian time and capture id.
fn hepv2(call_id: &str, sport: u16, ts: (u32, u32), capture_id: u16) -> Vec<u8> {
    let mut p = vec![2, 16, 2, 17];
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&5060u16.to_be_bytes());
    p.extend_from_slice(&[192, 0, 2, 1]);
    p.extend_from_slice(&[192, 0, 2, 2]);
    p.extend_from_slice(&ts.0.to_le_bytes());
    p.extend_from_slice(&ts.1.to_le_bytes());
    p.extend_from_slice(&capture_id.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&sip_request("MESSAGE", call_id, 1));
    p
}

/// Kamailio's sipcapture receiver (harness `hep_receiver.cfg`) on `port`, UDP and TCP;
/// stopped when dropped.
struct HepReceiver {
    run_dir: PathBuf,
    _kamailio: Kamailio,
}

impl HepReceiver {
    fn start(run_dir: &Path, port: u16) -> HepReceiver {
        let kamailio = Kamailio::start(
            run_dir,
            Some("hep_receiver.cfg"),
            &[format!("HEP_PORT={port}")],
        );
        HepReceiver {
            run_dir: run_dir.to_path_buf(),
            _kamailio: kamailio,
        }
    }

    /// The HEPRX lines logged so far, as key=value maps plus `callid`.
    fn lines(&self) -> Vec<BTreeMap<String, String>> {
        let log = std::fs::read(self.run_dir.join("kamailio.log")).unwrap_or_default();
        String::from_utf8_lossy(&log)
            .lines()
            .filter_map(|l| l.split_once("HEPRX ").map(|(_, rest)| rest))
            .map(|rest| {
                let mut parts = rest.split(" | ");
                let mut m: BTreeMap<String, String> = parts
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let _first_line = parts.next();
                let call_id = parts
                    .next()
                    .and_then(|c| c.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_default();
                m.insert("callid".into(), call_id);
                m
            })
            .collect()
    }
}

#[test]
fn sngrep_and_kamailio_receive_what_hepcap_relays() {
    for tool in ["sngrep", "kamailio", "tshark"] {
        require_tool(tool);
    }
    let dir = fresh_dir("hep_relay_receivers");
    let (sngrep_port, kam_port) = (free_port(), free_port());
    let sngrep_pcap = dir.join("sngrep.pcap");
    let mut sngrep = Guard::spawn(
        "sngrep -L",
        bounded(300, "sngrep")
            .args([
                "-N",
                "-q",
                "-L",
                &format!("udp:127.0.0.1:{sngrep_port}"),
                "-O",
            ])
            .arg(&sngrep_pcap)
            .env("HOME", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let kamailio = HepReceiver::start(&dir.join("heprx"), kam_port);
    // sngrep binds without saying so; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while UdpSocket::bind(("127.0.0.1", sngrep_port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "sngrep did not bind {sngrep_port}"
        );
        assert!(
            sngrep.child.try_wait().expect("poll").is_none(),
            "sngrep exited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let jsonl = dir.join("relayed.jsonl");
    let hepcap = Hepcap::start(&[
        "--hep-listen".to_string(),
        "udp://127.0.0.1:0".into(),
        "--hep".into(),
        format!("udp://127.0.0.1:{sngrep_port}"),
        "--hep".into(),
        format!("udp://127.0.0.1:{kam_port}"),
        "--hep".into(),
        format!("tcp://127.0.0.1:{kam_port}"),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ]);
    // HEPv3 from hepcap's own replay (node id 555), and HEPv2 that hepcap turns into HEPv3.
    let listen = hepcap.udp[0];
    let status = hepcap_replay_to(&shared_pcap(NDPI_SIP), listen, 555);
    assert!(status, "hepcap replay into the listener");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..5u32 {
        let d = hepv2(
            &format!("v2-relay-{i}"),
            40_000 + i as u16,
            (1_700_000_200 + i, 1000 * i),
            77,
        );
        sock.send_to(&d, listen).expect("send");
    }
    std::thread::sleep(Duration::from_millis(700));
    let summary = hepcap.stop_ok();
    let records = read_jsonl(&jsonl);
    // The capture's 81 SIP messages and 1 RTCP report (JSON, type 5), and the 5 HEPv2.
    assert_eq!(records.len(), 87, "{summary}");
    for sink in [
        format!("hep udp://127.0.0.1:{sngrep_port}"),
        format!("hep udp://127.0.0.1:{kam_port}"),
        format!("hep tcp://127.0.0.1:{kam_port}"),
    ] {
        assert_eq!(sink_records(&summary, &sink), 87, "{sink}: {summary}");
    }

    // Kamailio: every relayed message once over UDP and once over TCP.
    let deadline = Instant::now() + Duration::from_secs(15);
    while kamailio.lines().len() < 2 * records.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let heprx = kamailio.lines();
    drop(kamailio);
    let mut want: Vec<String> = Vec::new();
    for r in &records {
        let micros = record_micros(r);
        let key = format!(
            "v=3 fam=2 src4={} sport={} dst4={} dport={} ts={}.{} type={} cid={} callid={}",
            r["src_ip"].as_str().expect("ip"),
            r["src_port"],
            r["dst_ip"].as_str().expect("ip"),
            r["dst_port"],
            micros / 1_000_000,
            micros % 1_000_000,
            r["proto_type"],
            r["node_id"],
            r["sip"]["call_id"].as_str().unwrap_or(""),
        );
        want.push(key.clone());
        want.push(key);
    }
    let mut got: Vec<String> = heprx
        .iter()
        .map(|m| {
            let g = |k: &str| m.get(k).cloned().unwrap_or_default();
            format!(
                "v={} fam={} src4={} sport={} dst4={} dport={} ts={} type={} cid={} callid={}",
                g("v"),
                g("fam"),
                g("src4"),
                g("sport"),
                g("dst4"),
                g("dport"),
                g("ts"),
                g("type"),
                g("cid"),
                g("callid")
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "Kamailio sipcapture's HEPRX lines (UDP + TCP)");

    // sngrep: writes what it received as SIP over UDP with the HEP addresses.
    std::thread::sleep(Duration::from_millis(500));
    signal(sngrep.pid(), "TERM");
    let _ = wait_timeout(&mut sngrep.child, Duration::from_secs(5));
    let rows = tshark_sip_rows(&sngrep_pcap);
    let mut want: Vec<String> = records
        .iter()
        .filter(|r| r["proto_type"] == 1)
        .map(|r| {
            format!(
                "{}|{}|{}|{}|{}",
                r["src_ip"].as_str().expect("ip"),
                r["src_port"],
                r["dst_ip"].as_str().expect("ip"),
                r["dst_port"],
                r["sip"]["call_id"].as_str().expect("call id"),
            )
        })
        .collect();
    want.sort();
    let mut rows = rows;
    rows.sort();
    assert_eq!(rows, want, "sngrep -L -O: the relayed SIP messages");
}

/// `hepcap replay` of `pcap` as HEP to `to`, with node id `id`.
fn hepcap_replay_to(pcap: &Path, to: SocketAddr, id: u32) -> bool {
    hepcap()
        .args(["replay", "-q"])
        .arg(pcap)
        .args([
            "--hep",
            &format!("udp://{to}"),
            "--node-id",
            &id.to_string(),
        ])
        .status()
        .expect("run hepcap replay")
        .success()
}

/// src ip|src port|dst ip|dst port|Call-ID of each SIP message in a capture.
fn tshark_sip_rows(pcap: &Path) -> Vec<String> {
    let out = Command::new("timeout")
        .args(["60", "tshark", "-r"])
        .arg(pcap)
        .args(["-Y", "sip", "-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "ip.src",
            "-e",
            "udp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
        ])
        .args(["-e", "sip.Call-ID"])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark on sngrep's capture");
    String::from_utf8(out.stdout)
        .expect("text")
        .lines()
        .map(str::to_string)
        .collect()
}
