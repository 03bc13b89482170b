//! Relay fidelity: HEPv3 that hepcap receives leaves its HEP sinks byte for byte — vendor
//! chunks, generic types hepcap does not know, the `EEP3` id, chunks in unusual order — and
//! with `--relay-node-id`/`--relay-password` only those two chunks change.
//!
//! The packets are built here by hand; the downstream collector is the harness's
//! `hep_sink.py --raw-dir`, which stores each packet it receives (UDP datagram, or TCP frame cut
//! by the HEP3 length) as a file. Needs python3.

mod relay_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hepcap_e2e::require_tool;
use relay_support::*;

/// Packets that a relay must not touch, each with a unique Call-ID.
fn fixture_packets() -> Vec<Vec<u8>> {
    let payload = |id: &str| bytesc(0x0f, &sip_request("INVITE", id, 7));
    vec![
        // Vendor chunks, one of them with the type number of the generic capture id: a
        // receiver that ignores the vendor would misread it (hep.md §1.3.3).
        sip_hep3(
            "fid-vendor",
            1_700_000_000,
            1,
            &[
                (0x0002, 0x000c, b"kamailio-vendor".to_vec()),
                (0x0003, 0x0020, vec![0xde, 0xad]),
                (0x0008, 0x1234, Vec::new()),
            ],
        ),
        // Generic types hepcap does not know, and some it knows but does not decode.
        sip_hep3(
            "fid-unknown",
            1_700_000_001,
            999_999,
            &[
                (0, 0x0030, b"future chunk".to_vec()),
                (0, 0x0029, b"group-7".to_vec()),
                (0, 0x0026, b"tag=a;tag=b".to_vec()),
                (0, 0xfffe, vec![0; 3]),
                u16c(0x0020, 421),
            ],
        ),
        // The id the spec also allows.
        hep3(
            b"EEP3",
            &[
                u8c(0x01, 2),
                u8c(0x02, 17),
                bytesc(0x03, &[10, 0, 0, 1]),
                bytesc(0x04, &[10, 0, 0, 2]),
                u16c(0x07, 5060),
                u16c(0x08, 5060),
                u32c(0x09, 1_700_000_002),
                u32c(0x0a, 5),
                u8c(0x0b, 1),
                u32c(0x0c, 9),
                payload("fid-eep3"),
            ],
        ),
        // Unusual order: payload first, time before addresses, identity in the middle, a
        // vendor chunk last, an IPv6 pair and a pseudo IP protocol (22 = TLS, Kamailio).
        hep3(
            b"HEP3",
            &[
                payload("fid-order"),
                u32c(0x0a, 123_456),
                u32c(0x09, 1_700_000_003),
                bytesc(0x0e, b"sender-pw"),
                bytesc(0x13, b"edge-9"),
                u32c(0x0c, 31),
                bytesc(
                    0x06,
                    &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                ),
                bytesc(
                    0x05,
                    &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ),
                u16c(0x08, 5061),
                u16c(0x07, 40_000),
                u8c(0x0b, 1),
                u8c(0x02, 22),
                u8c(0x01, 10),
                bytesc(0x11, b"corr-order"),
                u16c(0x12, 100),
                (0x0001, 0x0001, b"freeswitch".to_vec()),
            ],
        ),
        // A log (type 100) with a correlation id, and no SIP at all.
        hep3(
            b"HEP3",
            &[
                u8c(0x01, 2),
                u8c(0x02, 17),
                bytesc(0x03, &[127, 0, 0, 1]),
                bytesc(0x04, &[127, 0, 0, 1]),
                u16c(0x07, 0),
                u16c(0x08, 0),
                u32c(0x09, 1_700_000_004),
                u32c(0x0a, 0),
                u8c(0x0b, 100),
                u32c(0x0c, 2001),
                bytesc(0x11, b"fid-log"),
                bytesc(0x0f, br#"{"level":"info","msg":"fid-log \u00e9"}"#),
            ],
        ),
        // A big one (8 KiB of SIP body) and a non-UTF-8 payload.
        sip_hep3(
            "fid-big",
            1_700_000_005,
            0,
            &[(0, 0x0031, vec![0xa5; 8000])],
        ),
        hep3(
            b"HEP3",
            &[
                u8c(0x01, 2),
                u8c(0x02, 17),
                u32c(0x09, 1_700_000_006),
                u32c(0x0a, 6),
                u8c(0x0b, 4),
                bytesc(0x11, b"fid-rtp"),
                bytesc(0x0f, &[0x80, 0x00, 0x12, 0x34, 0xff, 0xfe, 0x00]),
            ],
        ),
    ]
}

/// Starts hep_sink.py on UDP and TCP `port`, keeping raw packets in `raw`.
fn start_sink(port: u16, raw: &Path, out: &Path) -> Guard {
    let mut guard = Guard::spawn(
        "hep_sink.py",
        Command::new("python3")
            .arg(harness().join("hep_sink.py"))
            .args(["--udp", &format!("127.0.0.1:{port}")])
            .args(["--tcp", &format!("127.0.0.1:{port}")])
            .args(["--timeout", "600", "--count", "1000000", "--raw-dir"])
            .arg(raw)
            .arg("--out")
            .arg(out)
            .stderr(Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            guard.child.try_wait().expect("poll").is_none(),
            "hep_sink.py exited early"
        );
        assert!(
            Instant::now() < deadline,
            "hep_sink.py did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    guard
}

/// The raw packets hep_sink.py stored, once `want` of them are there (or the deadline passed).
fn raw_packets(raw: &Path, want: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut names: Vec<_> = std::fs::read_dir(raw)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if names.len() >= want || Instant::now() > deadline {
            // Let a file being written finish, and catch any extra packet.
            std::thread::sleep(Duration::from_millis(500));
            names = std::fs::read_dir(raw)
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            names.sort();
            return names
                .iter()
                .map(|p| std::fs::read(p).expect("read raw packet"))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends every packet as one datagram to `udp`, then all of them back to back on one TCP
/// connection to `tcp`.
fn send_both(packets: &[Vec<u8>], udp: SocketAddr, tcp: SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for p in packets {
        sock.send_to(p, udp).expect("send datagram");
        // Well below any receive buffer; keeps the order on the wire obvious.
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut stream = TcpStream::connect(tcp).expect("connect");
    let all: Vec<u8> = packets.concat();
    stream.write_all(&all).expect("write stream");
    stream.flush().expect("flush");
    drop(stream);
}

fn counts(packets: &[Vec<u8>]) -> BTreeMap<Vec<u8>, usize> {
    let mut m = BTreeMap::new();
    for p in packets {
        *m.entry(p.clone()).or_default() += 1;
    }
    m
}

#[test]
fn relay_is_byte_for_byte_over_udp_and_tcp() {
    require_tool("python3");
    let dir = fresh_dir("hep_relay_fidelity");
    let port = free_port();
    let raw = dir.join("raw");
    let mut sink = start_sink(port, &raw, &dir.join("sink.jsonl"));
    let jsonl = dir.join("records.jsonl");
    let hepcap = Hepcap::start(&[
        "--hep-listen".to_string(),
        "udp://127.0.0.1:0".into(),
        "--hep-listen".into(),
        "tcp://127.0.0.1:0".into(),
        "--hep".into(),
        format!("udp://127.0.0.1:{port}"),
        "--hep".into(),
        format!("tcp://127.0.0.1:{port}"),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ]);

    let packets = fixture_packets();
    send_both(&packets, hepcap.udp[0], hepcap.stream[0]);
    // Both listeners report every message before the signal.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        if raw.read_dir().map(|d| d.count()).unwrap_or(0) >= 4 * packets.len() {
            break;
        }
    }
    let summary = hepcap.stop_ok();
    let got = raw_packets(&raw, 4 * packets.len());
    sink.terminate(Duration::from_secs(2));

    // Each packet came in twice (UDP, TCP) and left twice (UDP sink, TCP sink).
    let want: BTreeMap<Vec<u8>, usize> = packets.iter().map(|p| (p.clone(), 4)).collect();
    let got_counts = counts(&got);
    for (p, n) in &want {
        let (_, call_id) = sip_first_line_and_call_id(&chunks_of(p).last().expect("chunk").2);
        assert_eq!(
            got_counts.get(p).copied().unwrap_or(0),
            *n,
            "packet {} ({} bytes, Call-ID {call_id:?}) relayed byte for byte",
            hex(&p[..16]),
            p.len()
        );
    }
    assert_eq!(got.len(), 4 * packets.len(), "no other packet arrived");

    for prefix in ["udp://", "tcp://"] {
        let l = listener_summary(&summary, prefix);
        assert_eq!(l.received, packets.len() as u64, "{prefix}\n{summary}");
        assert_eq!(l.relayed, packets.len() as u64, "{prefix}\n{summary}");
        assert!(l.rejected.is_empty(), "{prefix}\n{summary}");
    }
    let records = read_jsonl(&jsonl);
    assert_eq!(records.len(), 2 * packets.len());
    for source in ["hep-udp", "hep-tcp"] {
        let mine: Vec<_> = records.iter().filter(|r| r["source"] == source).collect();
        assert_eq!(mine.len(), packets.len(), "{source}");
        for (r, p) in mine.iter().zip(&packets) {
            assert_eq!(r["hep_version"], "v3");
            let payload = chunks_of(p)
                .into_iter()
                .find(|c| c.0 == 0 && c.1 == 0x0f)
                .expect("payload chunk")
                .2;
            assert_eq!(record_payload(r), payload, "{source} record {r}");
        }
    }
    let order = records
        .iter()
        .find(|r| r["correlation_id"] == "corr-order")
        .expect("the reordered packet");
    assert_eq!(order["src_ip"], "2001:db8::1");
    assert_eq!(order["dst_ip"], "2001:db8::2");
    assert_eq!(order["src_port"], 40_000);
    assert_eq!(order["node_id"], 31);
    assert_eq!(order["node_name"], "edge-9");
    assert_eq!(order["vlan"], 100);
    assert_eq!(order["transport"], "tls");
    assert_eq!(order["sip"]["call_id"], "fid-order");
}

/// Expected rewrite of `sent`: vendor-0 chunks 0x000c and 0x000e replaced in place, or, when
/// missing, inserted before the first payload chunk in the order id, password.
fn rewritten(sent: &[Chunk], id: u32, password: &[u8]) -> Vec<Chunk> {
    let has = |t: u16| sent.iter().any(|c| c.0 == 0 && c.1 == t);
    let mut missing = Vec::new();
    if !has(0x0c) {
        missing.push(u32c(0x0c, id));
    }
    if !has(0x0e) {
        missing.push(bytesc(0x0e, password));
    }
    let mut out = Vec::new();
    let mut inserted = false;
    for c in sent {
        if !inserted && c.0 == 0 && (c.1 == 0x0f || c.1 == 0x10) {
            out.append(&mut missing);
            inserted = true;
        }
        out.push(match (c.0, c.1) {
            (0, 0x0c) => u32c(0x0c, id),
            (0, 0x0e) => bytesc(0x0e, password),
            _ => c.clone(),
        });
    }
    out.append(&mut missing);
    out
}

#[test]
fn relay_rewrite_changes_only_the_identity_chunks() {
    require_tool("python3");
    let dir = fresh_dir("hep_relay_rewrite");
    let port = free_port();
    let raw = dir.join("raw");
    let mut sink = start_sink(port, &raw, &dir.join("sink.jsonl"));
    let hepcap = Hepcap::start(&[
        "--hep-listen".to_string(),
        "udp://127.0.0.1:0".into(),
        "--hep-listen".into(),
        "tcp://127.0.0.1:0".into(),
        "--hep".into(),
        format!("udp://127.0.0.1:{port}"),
        "--relay-node-id".into(),
        "77".into(),
        "--relay-password".into(),
        "pw".into(),
    ]);
    let packets = fixture_packets();
    send_both(&packets, hepcap.udp[0], hepcap.stream[0]);
    std::thread::sleep(Duration::from_millis(500));
    hepcap.stop_ok();
    let got = raw_packets(&raw, 2 * packets.len());
    sink.terminate(Duration::from_secs(2));
    assert_eq!(
        got.len(),
        2 * packets.len(),
        "one copy per packet and input"
    );

    // Match each received packet to the sent one with the same payload chunk.
    let payload_of = |chunks: &[Chunk]| {
        chunks
            .iter()
            .find(|c| c.0 == 0 && c.1 == 0x0f)
            .expect("payload")
            .2
            .clone()
    };
    let mut seen = BTreeMap::<Vec<u8>, usize>::new();
    for g in &got {
        let got_chunks = chunks_of(g);
        let sent = packets
            .iter()
            .find(|p| payload_of(&chunks_of(p)) == payload_of(&got_chunks))
            .expect("a sent packet with this payload");
        assert_eq!(&g[..4], &sent[..4], "the HEP id (HEP3/EEP3) is kept");
        let want = rewritten(&chunks_of(sent), 77, b"pw");
        assert_eq!(
            got_chunks, want,
            "rewritten packet: every chunk but 0x000c/0x000e byte-equal and in order"
        );
        // The vendor chunk of type 0x000c is not the capture id.
        if let Some(v) = chunks_of(sent).iter().find(|c| c.0 == 0x0002) {
            assert!(got_chunks.contains(v), "vendor chunk untouched");
        }
        *seen.entry(sent.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), packets.len());
    assert!(seen.values().all(|&n| n == 2), "{seen:?}");
}
