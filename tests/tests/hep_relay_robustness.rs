//! What `hepcap run` rejects and survives, read from its exit summary, its JSON lines and what
//! a downstream collector (`hep_sink.py`) receives: passwords, keep-alives, a TCP stream with
//! garbage between messages, truncated datagrams, a compression bomb, the connection limit, a
//! TLS listener fed by hepcap's own TLS sink, and SIGTERM with everything delivered.
//!
//! Needs python3 (hep_sink.py and zlib) and openssl (test certificates).

mod relay_support;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hepcap_e2e::require_tool;
use relay_support::*;

/// A SIP packet like [`sip_hep3`] with its payload in 0x0010 as `compressed`.
fn compressed_hep3(call_id: &str, compressed: &[u8]) -> Vec<u8> {
    let mut chunks = chunks_of(&sip_hep3(call_id, 1_700_000_100, 0, &[]));
    let payload = chunks.pop().expect("payload chunk");
    assert_eq!(payload.1, 0x0f);
    chunks.push(bytesc(0x10, compressed));
    hep3(b"HEP3", &chunks)
}

/// hep_sink.py on a UDP port, for the tests that want a HEP sink behind hepcap.
fn start_sink(port: u16, out: &Path, tcp: bool) -> Guard {
    let mut cmd = Command::new("python3");
    cmd.arg(harness().join("hep_sink.py"))
        .args(["--udp", &format!("127.0.0.1:{port}")])
        .args(["--timeout", "600", "--count", "10000000", "--out"])
        .arg(out)
        .stderr(Stdio::null());
    if tcp {
        cmd.args(["--tcp", &format!("127.0.0.1:{port}")]);
    }
    let mut guard = Guard::spawn("hep_sink.py", &mut cmd);
    // Ready once it has created its output file (it opens it after binding).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out.exists() || (tcp && TcpStream::connect(("127.0.0.1", port)).is_err()) {
        assert!(
            guard.child.try_wait().expect("poll").is_none(),
            "hep_sink.py exited early"
        );
        assert!(Instant::now() < deadline, "hep_sink.py did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    guard
}

fn wait_lines(path: &Path, want: usize, timeout: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = read_jsonl_lossy(path);
        if got.len() >= want || Instant::now() > deadline {
            std::thread::sleep(Duration::from_millis(300));
            return read_jsonl_lossy(path);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rejections_keepalives_and_resync_are_counted() {
    require_tool("python3");
    let dir = fresh_dir("hep_relay_rejections");
    let port = free_port();
    let sink_out = dir.join("sink.jsonl");
    let mut sink = start_sink(port, &sink_out, false);
    let jsonl = dir.join("records.jsonl");
    let hepcap = Hepcap::start(&[
        "--hep-listen".to_string(),
        "udp://127.0.0.1:0".into(),
        "--hep-listen".into(),
        "tcp://127.0.0.1:0".into(),
        "--hep-listen-password".into(),
        "pw".into(),
        "--hep".into(),
        format!("udp://127.0.0.1:{port}"),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ]);
    let pw = bytesc(0x0e, b"pw");
    let good = |id: &str| sip_hep3(id, 1_700_000_000, 42, std::slice::from_ref(&pw));

    // UDP: two good, a wrong and a missing password, a keep-alive, a truncated datagram, a
    // compressed payload that is fine and a compression bomb.
    let sip = sip_request("MESSAGE", "rob-compressed", 3);
    let mut compressed = chunks_of(&compressed_hep3("rob-compressed", &zlib_compress(&sip)));
    compressed.insert(10, pw.clone());
    let compressed = hep3(b"HEP3", &compressed);
    // 16 MiB of zeros deflate to about 16 KiB; the default limit is 64 KiB.
    let bomb_body = zlib_compress(&vec![0u8; 16 << 20]);
    assert!(bomb_body.len() < 60_000, "bomb fits one datagram");
    let mut bomb = chunks_of(&compressed_hep3("rob-bomb", &bomb_body));
    bomb.insert(10, pw.clone());
    let bomb = hep3(b"HEP3", &bomb);
    let keepalive = hep3(
        b"HEP3",
        &[
            u8c(0x01, 2),
            u8c(0x02, 17),
            u32c(0x09, 1_700_000_000),
            u32c(0x0a, 0),
            u8c(0x0b, 0),
            u32c(0x0c, 2001),
            pw.clone(),
        ],
    );
    let full = good("rob-truncated");
    let truncated = full[..full.len() - 10].to_vec();
    let udp_datagrams: Vec<(&str, Vec<u8>)> = vec![
        ("good", good("rob-udp-1")),
        (
            "wrong password",
            sip_hep3("rob-wrong", 1, 0, &[bytesc(0x0e, b"PW")]),
        ),
        ("missing password", sip_hep3("rob-missing", 1, 0, &[])),
        ("keep-alive", keepalive),
        ("truncated", truncated),
        ("compressed", compressed),
        ("bomb", bomb),
        // Not HEP at all: neither a magic nor the start of a protobuf HEP message.
        ("garbage", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        // Starts like heplify's protobuf (field 1, varint) and breaks off.
        ("broken protobuf", b"\x08\xff".to_vec()),
        ("good", good("rob-udp-2")),
    ];
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for (_, d) in &udp_datagrams {
        sock.send_to(d, hepcap.udp[0]).expect("send");
        std::thread::sleep(Duration::from_millis(5));
    }

    // TCP: good messages with garbage between them, in one write and then byte by byte.
    let garbage1 = b"\x00\x01garbage that is not HEP at all\r\n".to_vec();
    let garbage2 = vec![0xffu8; 300];
    // A fake header whose length points past a valid chunk chain.
    let garbage3 = b"HEP3\x00\x05HE".to_vec();
    let garbage_len = garbage1.len() + garbage2.len() + garbage3.len();
    let mut stream_bytes = Vec::new();
    stream_bytes.extend(good("rob-tcp-1"));
    stream_bytes.extend(&garbage1);
    stream_bytes.extend(good("rob-tcp-2"));
    stream_bytes.extend(&garbage2);
    stream_bytes.extend(good("rob-tcp-3"));
    stream_bytes.extend(&garbage3);
    stream_bytes.extend(good("rob-tcp-4"));
    let mut tcp = TcpStream::connect(hepcap.stream[0]).expect("connect");
    tcp.write_all(&stream_bytes).expect("write");
    let split = good("rob-tcp-5");
    for b in &split {
        tcp.write_all(std::slice::from_ref(b))
            .expect("write one byte");
    }
    drop(tcp);
    std::thread::sleep(Duration::from_millis(500));

    let summary = hepcap.stop_ok();
    let udp = listener_summary(&summary, "udp://");
    // Every datagram counts as received; the rejected ones are a part of it.
    assert_eq!(udp.received, 10, "{summary}");
    assert_eq!(udp.relayed, 3, "two good and the compressed one\n{summary}");
    assert_eq!(udp.keepalives, 1, "{summary}");
    assert_eq!(udp.rejected("password"), 2, "{summary}");
    assert_eq!(udp.rejected("length"), 1, "{summary}");
    assert_eq!(udp.rejected("decompress"), 1, "{summary}");
    assert_eq!(udp.rejected("bad_magic"), 1, "{summary}");
    assert_eq!(udp.rejected("protobuf"), 1, "{summary}");
    assert_eq!(udp.rejected.len(), 5, "no other reason: {summary}");
    let rejected: u64 = udp.rejected.iter().map(|(_, n)| n).sum();
    assert_eq!(
        udp.relayed + udp.keepalives + rejected,
        udp.received,
        "{summary}"
    );

    let tcp = listener_summary(&summary, "tcp://");
    assert_eq!(tcp.received, 5, "{summary}");
    assert_eq!(tcp.relayed, 5, "{summary}");
    assert!(tcp.rejected("resync") >= 1, "{summary}");
    assert!(
        tcp.notes
            .contains(&format!("skipped bytes (stream resync): {garbage_len}")),
        "every garbage byte skipped, no good byte: {summary}"
    );

    let records = read_jsonl(&jsonl);
    let ids: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["source"].as_str().expect("source"),
                r["sip"]["call_id"].as_str().expect("call id"),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("hep-udp", "rob-udp-1"),
            ("hep-udp", "rob-compressed"),
            ("hep-udp", "rob-udp-2"),
            ("hep-tcp", "rob-tcp-1"),
            ("hep-tcp", "rob-tcp-2"),
            ("hep-tcp", "rob-tcp-3"),
            ("hep-tcp", "rob-tcp-4"),
            ("hep-tcp", "rob-tcp-5"),
        ]
    );
    assert_eq!(record_payload(&records[1]), sip, "inflated payload");
    assert_eq!(sink_records(&summary, "jsonl"), 8);
    assert_eq!(sink_records(&summary, "hep udp://"), 8);

    // The keep-alive and the rejected ones never reach the HEP sink.
    let relayed = wait_lines(&sink_out, 8, Duration::from_secs(10));
    sink.terminate(Duration::from_secs(2));
    assert_eq!(relayed.len(), 8, "hep_sink.py");
    assert!(relayed.iter().all(|r| r["proto_type"] == 1));
    assert_eq!(relayed[1]["payload_compressed"], hex(&zlib_compress(&sip)));
}

#[test]
fn connection_limit_refuses_and_counts() {
    let dir = fresh_dir("hep_relay_connlimit");
    let jsonl = dir.join("records.jsonl");
    let hepcap = Hepcap::start(&[
        "--hep-listen".to_string(),
        "tcp://127.0.0.1:0".into(),
        "--hep-listen-max-connections".into(),
        "1".into(),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ]);
    let addr = hepcap.stream[0];
    let mut first = TcpStream::connect(addr).expect("connect first");
    first
        .write_all(&sip_hep3("conn-1a", 1, 0, &[]))
        .expect("write");
    std::thread::sleep(Duration::from_millis(300));

    // The kernel completes the handshake; hepcap closes the second connection at once.
    let mut second = TcpStream::connect(addr).expect("connect second");
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    let closed = matches!(second.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the second connection is closed by hepcap");
    let _ = second.write_all(&sip_hep3("conn-2", 1, 0, &[]));
    drop(second);

    first
        .write_all(&sip_hep3("conn-1b", 1, 0, &[]))
        .expect("write");
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    // Once the first is gone, a new one is served again.
    let mut third = TcpStream::connect(addr).expect("connect third");
    third
        .write_all(&sip_hep3("conn-3", 1, 0, &[]))
        .expect("write");
    drop(third);
    std::thread::sleep(Duration::from_millis(300));

    let summary = hepcap.stop_ok();
    let l = listener_summary(&summary, "tcp://");
    assert!(
        l.notes
            .contains(&"connections: 2 accepted, 1 refused at the limit".to_string()),
        "{summary}"
    );
    assert_eq!((l.received, l.relayed), (3, 3), "{summary}");
    let ids: Vec<String> = read_jsonl(&jsonl)
        .iter()
        .map(|r| r["sip"]["call_id"].as_str().expect("call id").to_string())
        .collect();
    assert_eq!(ids, ["conn-1a", "conn-1b", "conn-3"]);
}

/// A CA and a leaf certificate for 127.0.0.1 and localhost signed by it (rustls refuses a
/// self-signed CA certificate used directly as the server's).
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=hepcap test CA",
    ];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&ca);
    let mut csr = vec!["req", "-new", "-nodes", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "leaf.key", "-out", "leaf.csr"]);
    run(&csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
}

#[test]
fn tls_sink_to_tls_listener_round_trip() {
    require_tool("openssl");
    require_tool("python3");
    let dir = fresh_dir("hep_relay_tls");
    make_certs(&dir);
    let port = free_port();
    let sink_out = dir.join("sink.jsonl");
    let mut sink = start_sink(port, &sink_out, false);

    // Receiver: TLS listener → JSON lines and a plain UDP HEP sink.
    let rx_jsonl = dir.join("rx.jsonl");
    let rx = Hepcap::start(&[
        "--hep-listen".to_string(),
        "tls://127.0.0.1:0".into(),
        "--tls-cert".into(),
        dir.join("leaf.pem").display().to_string(),
        "--tls-key".into(),
        dir.join("leaf.key").display().to_string(),
        "--hep".into(),
        format!("udp://127.0.0.1:{port}"),
        "--jsonl".into(),
        rx_jsonl.display().to_string(),
    ]);
    // Sender: UDP listener → TLS sink that trusts only the test CA.
    let tx = Hepcap::start(&[
        "--hep-listen".to_string(),
        "udp://127.0.0.1:0".into(),
        "--hep".into(),
        format!("tls://127.0.0.1:{}", rx.stream[0].port()),
        "--tls-ca".into(),
        dir.join("ca.pem").display().to_string(),
        "--jsonl".into(),
        dir.join("tx.jsonl").display().to_string(),
    ]);

    let packets: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            sip_hep3(
                &format!("tls-{i}"),
                1_700_000_000 + i,
                i * 1000,
                &[(0x0002, 0x0001, format!("vendor-{i}").into_bytes())],
            )
        })
        .collect();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for p in &packets {
        sock.send_to(p, tx.udp[0]).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(500));
    let tx_summary = tx.stop_ok();
    assert_eq!(sink_records(&tx_summary, "hep tls://"), 50, "{tx_summary}");
    std::thread::sleep(Duration::from_millis(300));
    let rx_summary = rx.stop_ok();
    let l = listener_summary(&rx_summary, "tls://");
    assert_eq!((l.received, l.relayed), (50, 50), "{rx_summary}");
    assert!(l.rejected.is_empty(), "{rx_summary}");

    let records = read_jsonl(&rx_jsonl);
    assert_eq!(records.len(), 50);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["source"], "hep-tls");
        assert_eq!(r["hep_version"], "v3");
        assert_eq!(r["sip"]["call_id"], format!("tls-{i}"));
        assert!(r["peer"].as_str().expect("peer").starts_with("127.0.0.1:"));
        assert_eq!(
            record_micros(r),
            (1_700_000_000 + i as u64) * 1_000_000 + i as u64 * 1000
        );
    }
    // Through two hepcaps and a TLS hop the packets are still the ones sent.
    let relayed = wait_lines(&sink_out, 50, Duration::from_secs(10));
    sink.terminate(Duration::from_secs(2));
    assert_eq!(relayed.len(), 50);
    for (i, r) in relayed.iter().enumerate() {
        assert_eq!(r["length"], packets[i].len());
        assert_eq!(
            r["other"]["0x0002:0x0001"],
            hex(format!("vendor-{i}").as_bytes())
        );
    }
}

#[test]
fn sigterm_exits_0_and_delivers_everything_received() {
    require_tool("python3");
    let dir = fresh_dir("hep_relay_sigterm");
    let port = free_port();
    let sink_out = dir.join("sink.jsonl");
    let mut sink = start_sink(port, &sink_out, true);
    let jsonl = dir.join("records.jsonl");
    let hepcap = Hepcap::start(&[
        "--hep-listen".to_string(),
        "tcp://127.0.0.1:0".into(),
        "--hep".into(),
        format!("tcp://127.0.0.1:{port}"),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ]);
    // Python reads far slower than hepcap sends: the TCP sink is still draining when the
    // signal arrives.
    const N: usize = 20_000;
    let mut tcp = TcpStream::connect(hepcap.stream[0]).expect("connect");
    let all: Vec<u8> = (0..N)
        .flat_map(|i| sip_hep3(&format!("term-{i}"), 1_700_000_000, 0, &[]))
        .collect();
    tcp.write_all(&all).expect("write");
    drop(tcp);
    std::thread::sleep(Duration::from_millis(1000));
    let (status, summary) = hepcap.stop();
    assert!(status.success(), "exit 0 on SIGTERM: {status}\n{summary}");

    // The listener stops reading at the signal (a message cut there is counted `truncated`);
    // everything it had read by then reaches both sinks.
    let l = listener_summary(&summary, "tcp://");
    let n = l.received;
    assert!(
        n >= 1000,
        "most of the stream was read before the signal: {summary}"
    );
    assert_eq!(l.relayed, n, "{summary}");
    assert_eq!(sink_records(&summary, "jsonl"), n, "{summary}");
    assert_eq!(sink_records(&summary, "hep tcp://"), n, "{summary}");
    assert!(!summary.contains("dropped"), "{summary}");
    let records = read_jsonl(&jsonl);
    assert_eq!(records.len() as u64, n);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r["sip"]["call_id"],
            format!("term-{i}"),
            "in order, none lost"
        );
    }
    let n = n as usize;
    let relayed = wait_lines(&sink_out, n, Duration::from_secs(60));
    sink.terminate(Duration::from_secs(2));
    assert_eq!(relayed.len(), n, "hep_sink.py got every message");
}
