//! Helpers shared by the `hep_relay_*` and `live_*` tests: a `hepcap run` under a guard, daemons
//! killed by PID when the guard drops, hand-built HEP packets, a live tcpdump, tshark with the
//! harness's `hep.lua`, JSON lines, the exit summary, and the harness's Kamailio and SIPp on
//! their fixed ports (under one lock).
//!
//! Every process started here is bounded: a guard kills it by PID on drop (also when the test
//! panics), and every wait has a deadline.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hepcap_e2e::{hepcap_bin, scratch_dir, shared_dir};
use serde_json::Value;

/// `../shared/harness`.
pub fn harness() -> PathBuf {
    let dir = shared_dir().join("harness");
    assert!(
        dir.join("hep_sink.py").exists(),
        "prerequisite missing: ../shared/harness (hep_sink.py)"
    );
    dir
}

/// `../shared/pcaps/NAME`, which must exist.
pub fn shared_pcap(name: &str) -> PathBuf {
    let p = shared_dir().join("pcaps").join(name);
    assert!(p.exists(), "prerequisite missing: {}", p.display());
    p
}

/// A fresh, empty scratch directory for one test. Builds the hepcap binary first, so that no
/// helper a test starts afterwards (with its own time bound) waits on cargo's build lock.
pub fn fresh_dir(name: &str) -> PathBuf {
    hepcap_bin();
    let dir = scratch_dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A port free for both UDP and TCP on 127.0.0.1 (for peers that cannot bind port 0).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// Sends SIGTERM (or another signal) to `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` until `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("poll child") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Any child process, killed by PID when dropped.
#[derive(Debug)]
pub struct Guard {
    pub name: String,
    pub child: Child,
}

impl Guard {
    pub fn spawn(name: &str, cmd: &mut Command) -> Guard {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Guard {
            name: name.to_string(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(s)) = self.child.try_wait() {
            return Some(s);
        }
        signal(self.child.id(), "TERM");
        let status = wait_timeout(&mut self.child, grace);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        status
    }

    /// Waits for a natural exit until `timeout`, then kills it and fails.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match wait_timeout(&mut self.child, timeout) {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {timeout:?}", self.name);
            }
        }
    }
}

impl Drop for Guard {
    /// SIGTERM first, so that a `timeout` wrapper passes it on to its command; SIGKILL after
    /// 3 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(Duration::from_secs(3));
        }
    }
}

/// `timeout SECS PROGRAM`: a daemon that outlives a killed test still ends. `timeout`
/// forwards SIGTERM and SIGINT to the program and exits with its status.
pub fn bounded(secs: u32, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg(secs.to_string()).arg(program);
    cmd
}

/// `hepcap run` with its listeners bound, stopped by SIGTERM or killed on drop.
#[derive(Debug)]
pub struct Hepcap {
    guard: Guard,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    /// Bound addresses of the UDP listeners, in the order given.
    pub udp: Vec<SocketAddr>,
    /// Bound addresses of the TCP and TLS listeners, in the order given.
    pub stream: Vec<SocketAddr>,
}

impl Hepcap {
    /// Starts `hepcap run ARGS` and waits until every `--hep-listen` is bound. Give port 0 to
    /// the listeners: the bound ports are read from the log.
    pub fn start<S: AsRef<str>>(args: &[S]) -> Hepcap {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let listeners = args.iter().filter(|a| **a == "--hep-listen").count();
        // With live capture, also wait until it is attached: what is sent before is not seen.
        let live = args
            .windows(2)
            .any(|w| w[0] == "--capture" && w[1] != "none");
        let guard = Guard::spawn(
            "hepcap run",
            bounded(900, hepcap_bin())
                .arg("run")
                // Relay tests measure HEP in, HEP out: no live capture beside it.
                .args(if args.contains(&"--capture") {
                    &[][..]
                } else {
                    &["--capture", "none"][..]
                })
                .args(&args)
                .env("RUST_LOG", "warn,hepcap=info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let mut hepcap = Hepcap {
            stderr: Arc::new(Mutex::new(String::new())),
            reader: None,
            udp: Vec::new(),
            stream: Vec::new(),
            guard,
        };
        let stderr = hepcap.guard.child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&hepcap.stderr);
        hepcap.reader = Some(std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().expect("stderr buffer");
                s.push_str(&line);
                s.push('\n');
            }
        }));

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = hepcap.stderr();
            let (udp, stream) = bound_addresses(&text);
            if udp.len() + stream.len() >= listeners
                && (!live || text.contains("live capture started"))
            {
                hepcap.udp = udp;
                hepcap.stream = stream;
                return hepcap;
            }
            if let Ok(Some(status)) = hepcap.guard.child.try_wait() {
                panic!("hepcap run exited early ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "hepcap run did not bind its listeners or start its capture:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Everything hepcap wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// SIGTERM; waits for the exit (30 s at most) and returns the status and all of stderr.
    pub fn stop(mut self) -> (ExitStatus, String) {
        signal(self.guard.pid(), "TERM");
        let status = self.guard.wait_exit(Duration::from_secs(30));
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status, self.stderr())
    }

    /// [`Hepcap::stop`] that also requires exit status 0; returns the summary (stderr).
    pub fn stop_ok(self) -> String {
        let (status, text) = self.stop();
        assert!(status.success(), "hepcap run exited with {status}:\n{text}");
        text
    }
}

/// The `address=` of every "listener bound" log line: (UDP, TCP/TLS).
fn bound_addresses(text: &str) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let mut udp = Vec::new();
    let mut stream = Vec::new();
    for line in text.lines() {
        let Some(addr) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .and_then(|a| a.parse().ok())
        else {
            continue;
        };
        if line.contains("hep udp listener bound") {
            udp.push(addr);
        } else if line.contains("hep stream listener bound") {
            stream.push(addr);
        }
    }
    (udp, stream)
}

/// Counters of one listener in hepcap's exit summary.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListenerSummary {
    pub received: u64,
    pub relayed: u64,
    pub keepalives: u64,
    /// `rejected REASON: N` lines.
    pub rejected: Vec<(String, u64)>,
    /// The other indented lines (skipped bytes, kernel drops, connections), verbatim.
    pub notes: Vec<String>,
}

impl ListenerSummary {
    pub fn rejected(&self, reason: &str) -> u64 {
        self.rejected
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

/// The summary block of the listener whose label starts with `prefix` (e.g. `tcp://`).
pub fn listener_summary(summary: &str, prefix: &str) -> ListenerSummary {
    let mut lines = summary
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&format!("listener {prefix}")));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no `listener {prefix}` line in the summary:\n{summary}"));
    let (_, counts) = head.rsplit_once(": ").expect("listener line");
    let num = |word: &str| -> u64 {
        counts
            .split(", ")
            .find_map(|part| {
                let (n, rest) = part.split_once(' ')?;
                rest.starts_with(word).then(|| n.parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no `{word}` count in `{head}`"))
    };
    let mut s = ListenerSummary {
        received: num("received"),
        relayed: num("relayed"),
        keepalives: num("keep-alives"),
        ..ListenerSummary::default()
    };
    for line in lines.take_while(|l| l.starts_with("    ")) {
        let line = line.trim();
        match line
            .strip_prefix("rejected ")
            .and_then(|r| r.rsplit_once(": "))
        {
            Some((reason, n)) => s
                .rejected
                .push((reason.to_string(), n.parse().expect("count"))),
            None => s.notes.push(line.to_string()),
        }
    }
    s
}

/// `sink NAME: N records` of the sink whose name starts with `prefix` (`jsonl`, `udp://`).
pub fn sink_records(summary: &str, prefix: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix("sink ")?;
            if !rest.starts_with(prefix) {
                return None;
            }
            let (_, counts) = rest.rsplit_once(": ")?;
            counts.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no `sink {prefix}` line in the summary:\n{summary}"))
}

/// The live capture block of `hepcap run`'s exit summary.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// `ebpf`, `xdp` or `pcap`.
    pub mode: String,
    /// Packets copied to user space.
    pub copied: u64,
    pub sip_messages: u64,
    pub without_call_id: u64,
    /// The eBPF program's counters (`kernel:` line; empty in pcap mode).
    pub kernel: std::collections::BTreeMap<String, u64>,
    /// `lost REASON: N` lines.
    pub lost: std::collections::BTreeMap<String, u64>,
    /// `skipped REASON: N` lines.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// `dropped duplicate: N` (0 when the line is absent).
    pub duplicates: u64,
}

/// Parses the `capture MODE: ...` block of a `hepcap run` summary.
pub fn capture_summary(summary: &str) -> CaptureSummary {
    let mut lines = summary.lines().skip_while(|l| !l.starts_with("  capture "));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no `capture` line in the summary:\n{summary}"));
    // "  capture ebpf: 280 packets copied to user space, 140 SIP messages (0 without Call-ID)"
    let (mode, rest) = head
        .trim()
        .strip_prefix("capture ")
        .and_then(|r| r.split_once(": "))
        .unwrap_or_else(|| panic!("capture line `{head}`"));
    let words: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| -> u64 {
        words
            .get(i)
            .map(|w| w.trim_start_matches('('))
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("number {i} of `{head}`"))
    };
    let mut s = CaptureSummary {
        mode: mode.to_string(),
        copied: num(0),
        sip_messages: num(6),
        without_call_id: num(9),
        ..CaptureSummary::default()
    };
    let pair = |text: &str| -> (String, u64) {
        let (name, n) = text
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("counter `{text}`"));
        (
            name.trim_end_matches(':').to_string(),
            n.parse()
                .unwrap_or_else(|_| panic!("count in `{text}` of the summary")),
        )
    };
    for line in lines.take_while(|l| l.starts_with("    ")) {
        let line = line.trim();
        if let Some(k) = line.strip_prefix("kernel: ") {
            s.kernel = k.split(", ").map(pair).collect();
        } else if let Some(l) = line.strip_prefix("lost ") {
            let (k, v) = pair(l);
            s.lost.insert(k, v);
        } else if let Some(l) = line.strip_prefix("skipped ") {
            let (k, v) = pair(l);
            s.skipped.insert(k, v);
        }
    }
    s.duplicates = summary
        .lines()
        .find_map(|l| l.strip_prefix("  dropped duplicate: "))
        .map_or(0, |n| n.trim().parse().expect("duplicate count"));
    s
}

/// JSON lines of a file (every line must parse).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("json line {l}: {e}")))
        .collect()
}

/// JSON lines of a file that a killed writer may have left with a torn last line.
pub fn read_jsonl_lossy(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Microseconds since the epoch of an RFC 3339 `YYYY-MM-DDTHH:MM:SS.ffffffZ`, worked out by
/// hand (no date library shared with hepcap).
pub fn rfc3339_micros(s: &str) -> u64 {
    let (date, time) = s.split_once('T').expect("T");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().expect("date")).collect();
    let time = time.strip_suffix('Z').expect("Z");
    let (hms, frac) = time.split_once('.').expect("fraction");
    assert_eq!(frac.len(), 6, "six fractional digits in {s}");
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().expect("time")).collect();
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

/// A JSONL record's time in microseconds.
pub fn record_micros(r: &Value) -> u64 {
    rfc3339_micros(r["timestamp"].as_str().expect("timestamp"))
}

/// A record's payload bytes (`payload` text or `payload_base64`).
pub fn record_payload(r: &Value) -> Vec<u8> {
    if let Some(p) = r["payload"].as_str() {
        return p.as_bytes().to_vec();
    }
    let b64 = r["payload_base64"]
        .as_str()
        .expect("payload or payload_base64");
    base64_decode(b64)
}

/// Standard base64 with padding, by hand.
pub fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let mut out = Vec::new();
    for quad in s.as_bytes().chunks(4) {
        let pad = quad.iter().filter(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in quad {
            n = (n << 6) | if c == b'=' { 0 } else { val(c) };
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HEP3 by hand (hep.md §1.3): the tests build and take apart packets without hepcap's code.

/// One HEP3 chunk: vendor, type, body.
pub type Chunk = (u16, u16, Vec<u8>);

/// A HEP3 packet of `chunks` in the order given, with the id `magic` (`HEP3` or `EEP3`).
pub fn hep3(magic: &[u8; 4], chunks: &[Chunk]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&[0, 0]);
    for (vendor, ty, body) in chunks {
        out.extend_from_slice(&vendor.to_be_bytes());
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&u16::try_from(body.len() + 6).expect("chunk").to_be_bytes());
        out.extend_from_slice(body);
    }
    let len = u16::try_from(out.len()).expect("packet fits 64 KiB");
    out[4..6].copy_from_slice(&len.to_be_bytes());
    out
}

/// The chunks of a HEP3 packet, in order; panics on anything malformed.
pub fn chunks_of(packet: &[u8]) -> Vec<Chunk> {
    assert!(
        packet.len() >= 6 && (&packet[..4] == b"HEP3" || &packet[..4] == b"EEP3"),
        "not HEP3: {}",
        hex(&packet[..packet.len().min(16)])
    );
    let total = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    assert_eq!(total, packet.len(), "HEP3 length field");
    let mut at = 6;
    let mut out = Vec::new();
    while at < total {
        let vendor = u16::from_be_bytes([packet[at], packet[at + 1]]);
        let ty = u16::from_be_bytes([packet[at + 2], packet[at + 3]]);
        let len = usize::from(u16::from_be_bytes([packet[at + 4], packet[at + 5]]));
        assert!(len >= 6 && at + len <= total, "chunk at {at}");
        out.push((vendor, ty, packet[at + 6..at + len].to_vec()));
        at += len;
    }
    out
}

pub fn u8c(ty: u16, v: u8) -> Chunk {
    (0, ty, vec![v])
}
pub fn u16c(ty: u16, v: u16) -> Chunk {
    (0, ty, v.to_be_bytes().to_vec())
}
pub fn u32c(ty: u16, v: u32) -> Chunk {
    (0, ty, v.to_be_bytes().to_vec())
}
pub fn bytesc(ty: u16, v: &[u8]) -> Chunk {
    (0, ty, v.to_vec())
}

/// A SIP request with the given Call-ID, as senders put it in chunk 0x000f.
pub fn sip_request(method: &str, call_id: &str, cseq: u32) -> Vec<u8> {
    format!(
        "{method} sip:bob@127.0.0.2:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{call_id}-{cseq}\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.2>\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A plain HEP3 SIP packet: IPv4 127.0.0.1:5062 → 127.0.0.2:5060, UDP, the usual chunk order.
pub fn sip_hep3(call_id: &str, ts_sec: u32, ts_usec: u32, extra: &[Chunk]) -> Vec<u8> {
    let mut chunks = vec![
        u8c(0x01, 2),
        u8c(0x02, 17),
        bytesc(0x03, &[127, 0, 0, 1]),
        bytesc(0x04, &[127, 0, 0, 2]),
        u16c(0x07, 5062),
        u16c(0x08, 5060),
        u32c(0x09, ts_sec),
        u32c(0x0a, ts_usec),
        u8c(0x0b, 1),
        u32c(0x0c, 2001),
    ];
    chunks.extend_from_slice(extra);
    chunks.push(bytesc(0x0f, &sip_request("OPTIONS", call_id, 1)));
    hep3(b"HEP3", &chunks)
}

// ---------------------------------------------------------------------------------------------
// Live capture with tcpdump and decoding with tshark + hep.lua.

/// tcpdump on `lo` into a pcap file.
#[derive(Debug)]
pub struct Tcpdump {
    guard: Guard,
    pub file: PathBuf,
}

impl Tcpdump {
    /// Starts tcpdump with the BPF `filter` and waits until it says it is listening.
    pub fn start(file: &Path, filter: &str) -> Tcpdump {
        let mut guard = Guard::spawn(
            "tcpdump",
            bounded(600, "tcpdump")
                .args(["-i", "lo", "-U", "-s", "0", "-w"])
                .arg(file)
                .arg(filter)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let stderr = guard.child.stderr.take().expect("tcpdump stderr");
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
        std::thread::spawn(move || lines.for_each(drop));
        Tcpdump {
            guard,
            file: file.to_path_buf(),
        }
    }

    /// Waits until the file holds at least `at_least` frames and has stopped growing, then
    /// stops tcpdump (SIGINT, so that it writes out what it holds).
    pub fn finish(mut self, at_least: usize) -> PathBuf {
        wait_capture_settles(&self.file, at_least);
        signal(self.guard.pid(), "INT");
        let _ = wait_timeout(&mut self.guard.child, Duration::from_secs(5));
        self.file.clone()
    }
}

/// Frames in a classic little-endian pcap file written so far.
pub fn pcap_frames(path: &Path) -> usize {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
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
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (usize::MAX, Instant::now());
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

/// tshark with hep.lua over `pcap`, one `Vec` of fields per frame, each field split on `;` (the
/// aggregator for fields that occur several times in a frame). `decode_as` are `-d` values.
pub fn tshark_fields(pcap: &Path, decode_as: &[String], fields: &[&str]) -> Vec<Vec<Vec<String>>> {
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "tshark", "-X"])
        .arg(format!(
            "lua_script:{}",
            harness().join("wireshark/hep.lua").display()
        ))
        .arg("-r")
        .arg(pcap)
        .args(["-o", "tcp.desegment_tcp_streams:TRUE"]);
    for d in decode_as {
        cmd.args(["-d", d]);
    }
    cmd.args(["-Y", "hep", "-T", "fields", "-E", "separator=|"])
        .args(["-E", "occurrence=a", "-E", "aggregator=;"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("tshark output is text")
        .lines()
        .map(|line| {
            line.split('|')
                .map(|f| {
                    if f.is_empty() {
                        Vec::new()
                    } else {
                        f.split(';').map(str::to_string).collect()
                    }
                })
                .collect()
        })
        .collect()
}

/// UDP payloads of a capture, in frame order, as tshark extracts them.
pub fn udp_payloads(pcap: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("timeout")
        .args(["60", "tshark", "-r"])
        .arg(pcap)
        .args(["-T", "fields", "-e", "udp.payload"])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("text")
        .lines()
        .filter(|l| !l.is_empty())
        .map(unhex)
        .collect()
}

/// The first line of a SIP message and its Call-ID, parsed here (not by hepcap).
pub fn sip_first_line_and_call_id(payload: &[u8]) -> (String, Option<String>) {
    let text = String::from_utf8_lossy(payload);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next().unwrap_or("").to_string();
    let call_id = lines.take_while(|l| !l.is_empty()).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name == "i").then(|| value.trim().to_string())
    });
    (first, call_id)
}

/// `method` or `status` of a SIP first line, as hepcap's JSON writes it.
pub fn method_or_status(first_line: &str) -> String {
    match first_line.strip_prefix("SIP/2.0 ") {
        Some(rest) => rest.split(' ').next().unwrap_or("").to_string(),
        None => first_line.split(' ').next().unwrap_or("").to_string(),
    }
}

/// `method` or `status` of a JSONL record's `sip`.
pub fn record_method_or_status(r: &Value) -> String {
    let sip = &r["sip"];
    match (sip["method"].as_str(), sip["status"].as_u64()) {
        (Some(m), _) => m.to_string(),
        (None, Some(s)) => s.to_string(),
        _ => String::new(),
    }
}

/// One HEP message as tshark + hep.lua decoded it from a capture.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WireHep {
    pub ts_micros: u64,
    /// `v1`, `v2` or `v3`, as hepcap's JSON labels them.
    pub version: String,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_ip: String,
    pub dst_port: u16,
    pub capture_id: Option<u64>,
    pub proto_type: Option<u8>,
    pub correlation_id: Option<String>,
    pub node_name: Option<String>,
    pub call_id: Option<String>,
    /// Request method or response status, from tshark's SIP dissector.
    pub method_or_status: Option<String>,
    pub payload: Vec<u8>,
    /// The sender of the frame that carried it, `ip:port`.
    pub peer: String,
}

/// Every HEP message in `pcap` sent to `port` (UDP or TCP), decoded by tshark + hep.lua, in
/// capture order. A TCP segment may carry several messages; tshark aggregates their fields.
pub fn wire_hep(pcap: &Path, port: u16) -> Vec<WireHep> {
    let fields = [
        "ip.src",
        "udp.srcport",
        "tcp.srcport",
        "hep.version",
        "hep.src_ip",
        "hep.src_ipv6",
        "hep.dst_ip",
        "hep.dst_ipv6",
        "hep.src_port",
        "hep.dst_port",
        "hep.ts_sec",
        "hep.ts_usec",
        "hep.capture_id",
        "hep.proto_type",
        "hep.correlation_id",
        "hep.node_name",
        "hep.payload",
        "sip.Call-ID",
        "sip.Method",
        "sip.Status-Code",
        "udp.payload",
        "hep.payload_compressed",
    ];
    let decode_as = [
        format!("udp.port=={port},hep"),
        format!("tcp.port=={port},hep"),
    ];
    let mut out = Vec::new();
    for f in tshark_fields(pcap, &decode_as, &fields) {
        let k = f[3].len();
        let one = |col: usize, i: usize| -> Option<String> {
            (f[col].len() == k).then(|| f[col][i].clone())
        };
        let sport = f[1].first().or(f[2].first()).cloned().unwrap_or_default();
        let peer = format!("{}:{sport}", f[0].first().cloned().unwrap_or_default());
        let (mut methods, mut statuses) = (f[18].iter(), f[19].iter());
        for i in 0..k {
            let payload = match (f[16].len() == k, f[21].len() == k) {
                (true, _) => unhex(&f[16][i]),
                // hep.lua shows a compressed payload (0x0010) as it is: inflate it with zlib.
                (false, true) => zlib_inflate(&unhex(&f[21][i])),
                // hep.lua hands a v1/v2 payload straight to the SIP dissector without a
                // field: it is the datagram after the fixed header (hep.md §1.2), 8 bytes, two
                // addresses and, for v2, the 12-byte time header.
                (false, false) => {
                    assert!(
                        k == 1 && f[20].len() == 1,
                        "HEP v1/v2 only come alone over UDP"
                    );
                    let datagram = unhex(&f[20][0]);
                    let addresses = if f[4].is_empty() { 32 } else { 8 };
                    let time = if f[3][0] == "2" { 12 } else { 0 };
                    datagram[8 + addresses + time..].to_vec()
                }
            };
            let mut method_or_status = if payload.starts_with(b"SIP/2.0 ") {
                statuses.next().cloned()
            } else {
                methods.next().cloned()
            };
            let mut call_id = one(17, i);
            // tshark cannot dissect the SIP of an inflated payload: parse it here.
            if f[16].len() != k && f[21].len() == k && one(13, i).as_deref() == Some("1") {
                let (first, id) = sip_first_line_and_call_id(&payload);
                method_or_status = Some(self::method_or_status(&first));
                call_id = id;
            }
            let ip = |v4: usize, v6: usize| one(v4, i).or_else(|| one(v6, i)).unwrap_or_default();
            let sec: u64 = f[10][i].parse().expect("hep.ts_sec");
            let usec: u64 = f[11][i].parse().expect("hep.ts_usec");
            out.push(WireHep {
                ts_micros: sec * 1_000_000 + usec,
                version: format!("v{}", f[3][i]),
                src_ip: ip(4, 5),
                src_port: f[8][i].parse().expect("hep.src_port"),
                dst_ip: ip(6, 7),
                dst_port: f[9][i].parse().expect("hep.dst_port"),
                capture_id: one(12, i).map(|c| c.parse().expect("capture id")),
                proto_type: one(13, i).map(|c| c.parse().expect("proto type")),
                correlation_id: one(14, i),
                node_name: one(15, i),
                call_id,
                method_or_status,
                payload,
                peer: peer.clone(),
            });
        }
    }
    out
}

/// A JSONL record of received HEP in the shape of [`WireHep`], for comparison.
pub fn record_as_wire(r: &Value) -> WireHep {
    let opt = |v: &Value| v.as_str().map(str::to_string);
    WireHep {
        ts_micros: record_micros(r),
        version: r["hep_version"].as_str().expect("hep_version").to_string(),
        src_ip: r["src_ip"].as_str().expect("src_ip").to_string(),
        src_port: r["src_port"].as_u64().expect("src_port") as u16,
        dst_ip: r["dst_ip"].as_str().expect("dst_ip").to_string(),
        dst_port: r["dst_port"].as_u64().expect("dst_port") as u16,
        capture_id: r["node_id"].as_u64(),
        proto_type: r["proto_type"].as_u64().map(|p| p as u8),
        correlation_id: opt(&r["correlation_id"]),
        node_name: opt(&r["node_name"]),
        call_id: opt(&r["sip"]["call_id"]),
        method_or_status: Some(record_method_or_status(r)).filter(|s| !s.is_empty()),
        payload: record_payload(r),
        peer: r["peer"].as_str().expect("peer").to_string(),
    }
}

/// Compares two lists of messages as multisets, failing on the first difference with both
/// sides shown.
pub fn assert_same_messages(what: &str, mut want: Vec<WireHep>, mut got: Vec<WireHep>) {
    want.sort();
    got.sort();
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(
            g, w,
            "{what}: message {i} (sorted) differs: left hepcap, right wire"
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: message count");
}

/// Runs a python3 one-liner reading stdin and writing stdout, bytes to bytes.
fn python_filter(program: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).expect("write to python3"));
    let out = child.wait_with_output().expect("python3");
    writer.join().expect("writer");
    assert!(out.status.success(), "python3 {program} failed");
    out.stdout
}

/// zlib (the C library, through Python) compression of `data`.
pub fn zlib_compress(data: &[u8]) -> Vec<u8> {
    python_filter(
        "import sys, zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read(), 9))",
        data,
    )
}

/// zlib (the C library, through Python) of a zlib or gzip stream.
pub fn zlib_inflate(data: &[u8]) -> Vec<u8> {
    python_filter(
        "import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read(), 47))",
        data,
    )
}

// ---------------------------------------------------------------------------------------------
// The harness's Kamailio proxy with siptrace, and SIPp calls through it.

/// Fails the test unless it runs as root (effective uid 0, read from `/proc/self/status`).
pub fn require_root(why: &str) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .expect("Uid line in /proc/self/status");
    assert_eq!(euid, "0", "prerequisite missing: root ({why})");
}

/// Holds the lock on the fixed SIP ports for as long as it lives, once the ports are free.
///
/// Kamailio's SIP port (5060) and SIPp's (5070, 5080) are fixed, so every test that starts the
/// harness's Kamailio or SIPp takes this lock file under `target/`, also across test binaries.
/// One that does not is waited for (bounded) until it frees the ports.
pub fn sip_ports_lock() -> File {
    let path = scratch_dir("locks").join("kamailio-sip-5060.lock");
    let file = File::create(&path).expect("create lock file");
    file.lock().expect("lock the SIP ports");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let busy: Vec<u16> = [5060u16, 5070, 5080]
            .into_iter()
            .filter(|&p| {
                UdpSocket::bind(("127.0.0.1", p)).is_err()
                    || TcpListener::bind(("127.0.0.1", p)).is_err()
            })
            .collect();
        if busy.is_empty() {
            return file;
        }
        assert!(
            Instant::now() < deadline,
            "127.0.0.1 ports {busy:?} (Kamailio/SIPp) stayed busy for 5 minutes: another \
             Kamailio or SIPp is running"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Kamailio started with the harness's `kamailio/run.sh`; stopped by PID on drop.
#[derive(Debug)]
pub struct Kamailio {
    run_dir: PathBuf,
}

impl Kamailio {
    /// `run.sh start RUN_DIR -A ARG...` (with `CFG=cfg` when given); fails unless it runs.
    pub fn start(run_dir: &Path, cfg: Option<&str>, args: &[String]) -> Kamailio {
        let mut cmd = Command::new("sh");
        cmd.arg(harness().join("kamailio/run.sh"))
            .arg("start")
            .arg(run_dir);
        for a in args {
            cmd.args(["-A", a]);
        }
        if let Some(cfg) = cfg {
            cmd.env("CFG", cfg);
        }
        let out = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run kamailio/run.sh");
        let k = Kamailio {
            run_dir: run_dir.to_path_buf(),
        };
        assert!(
            out.status.success(),
            "kamailio did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        k
    }

    /// `run.sh stop`: SIGTERM to the PID in the run directory, waits up to 3 s.
    pub fn stop(&self) {
        let _ = Command::new("sh")
            .arg(harness().join("kamailio/run.sh"))
            .arg("stop")
            .arg(&self.run_dir)
            .stdin(Stdio::null())
            .status();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // run.sh stop sends SIGTERM and waits 3 s; anything left is killed by PID.
        let pid = std::fs::read_to_string(self.run_dir.join("kamailio.pid")).ok();
        self.stop();
        if let Some(pid) = pid.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            signal(pid.parse().unwrap_or(0), "KILL");
        }
    }
}

/// The harness's `gen_calls.sh`: a SIPp UAS (5080) and UAC (5070) place `calls` calls through
/// Kamailio (10 per second, 200 ms hold, UDP); logs in `dir/calls`. Accepts calls the UAC
/// aborted on a response Kamailio reordered (a 180 forwarded after the 200 by another worker
/// process, which the harness scenario does not expect): their messages were still sent and
/// mirrored. Returns the Call-IDs of those calls; any other failure fails the test.
pub fn place_calls_allowing_reorder(dir: &Path, calls: usize) -> Vec<String> {
    let out = Command::new("timeout")
        .arg("90")
        .arg("bash")
        .arg(harness().join("gen_calls.sh"))
        .args(["-n", &calls.to_string(), "-r", "10", "-d", "200", "-w"])
        .arg(dir.join("calls"))
        .stdin(Stdio::null())
        .output()
        .expect("run gen_calls.sh");
    if out.status.success() {
        return Vec::new();
    }
    let report = format!(
        "gen_calls.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // SIPp's error logs: one "Aborting call on unexpected message for Call-Id 'X': ...
    // received 'SIP/2.0 180" line per reordered call.
    let mut aborted = Vec::new();
    let mut other = false;
    for entry in std::fs::read_dir(dir.join("calls"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with("_errors.log") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("Aborting call")) {
            let id = line
                .split("Call-Id '")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .map(str::to_string);
            match id {
                Some(id) if line.contains("received 'SIP/2.0 180") => aborted.push(id),
                _ => other = true,
            }
        }
    }
    assert!(!other && !aborted.is_empty(), "{report}");
    aborted
}
