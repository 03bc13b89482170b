//! Live capture in network namespaces the test creates: a sender namespace and a capture
//! namespace joined by a veth pair. hepcap captures the capture side's veth with each mode
//! (`ebpf`, `xdp` in generic mode, `pcap`) while the sender sends, all towards the capture
//! side:
//!
//! - an INVITE over UDP whose SDP announces media at 10.77.0.1:30000 (so RTCP at :30001),
//! - a 3.7 kB MESSAGE over UDP, which leaves the sender as three IPv4 fragments,
//! - OPTIONS over UDP to a port that is not a SIP port (found by its start line),
//! - OPTIONS over UDP and IPv6,
//! - three SIP messages over TCP to port 5060: two in one segment, one in a second segment,
//! - three RTCP sender reports from 10.77.0.1:30001 (the endpoint the SDP announced),
//! - 200 RTP packets from the RTP port and 100 unrelated datagrams.
//!
//! The JSON lines must hold every SIP message and every RTCP report exactly once, with the
//! addresses, ports and payload sent and a timestamp within 5 ms of the send time; RTCP carries
//! the INVITE's Call-ID. In the eBPF modes the program's own counters show that only SIP and
//! RTCP packets were copied. While running, `/proc/<pid>/status` shows no capability left.
//!
//! Needs root, `ip` (iproute2) and python3. Each test uses its own namespaces and addresses
//! inside them, so the tests can run in parallel.

mod relay_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hepcap_e2e::{hepcap_bin, require_tool, scratch_dir};
use relay_support::{Guard, bounded, read_jsonl, record_micros, record_payload, require_root};
use serde_json::Value;

const SENDER: &str = r#"
import json, socket, struct, sys, time
out = []
def mark(kind, payload, src, dst, transport):
    out.append({"kind": kind, "t": time.time(), "payload": payload.decode("latin-1"),
                "src": src, "dst": dst, "transport": transport})

def sip(first, call_id, via, body=b"", ctype=None):
    head = first + "\r\nVia: SIP/2.0/" + via + ";branch=z9hG4bK-" + call_id + "\r\n"
    head += "From: <sip:alice@10.77.0.1>;tag=1\r\nTo: <sip:bob@10.77.0.2>\r\n"
    head += "Call-ID: " + call_id + "\r\nCSeq: 1 " + first.split(" ")[0] + "\r\n"
    if ctype:
        head += "Content-Type: " + ctype + "\r\n"
    head += "Content-Length: %d\r\n\r\n" % len(body)
    return head.encode() + body

u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u4.bind(("10.77.0.1", 5060))
sdp = (b"v=0\r\no=- 1 1 IN IP4 10.77.0.1\r\ns=-\r\nc=IN IP4 10.77.0.1\r\nt=0 0\r\n"
       b"m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
invite = sip("INVITE sip:bob@10.77.0.2 SIP/2.0", "live-invite@10.77.0.1", "UDP 10.77.0.1:5060",
             sdp, "application/sdp")
mark("sip", invite, "10.77.0.1:5060", "10.77.0.2:5060", "udp")
u4.sendto(invite, ("10.77.0.2", 5060))
time.sleep(0.02)

# Larger than the veth's 1500-byte MTU: the sender's kernel sends three IPv4 fragments.
big = sip("MESSAGE sip:bob@10.77.0.2 SIP/2.0", "live-fragmented@10.77.0.1", "UDP 10.77.0.1:5060",
          b"x" * 3600, "text/plain")
mark("sip", big, "10.77.0.1:5060", "10.77.0.2:5060", "udp")
u4.sendto(big, ("10.77.0.2", 5060))
time.sleep(0.02)

other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
other.bind(("10.77.0.1", 5081))
opt = sip("OPTIONS sip:bob@10.77.0.2:5080 SIP/2.0", "live-options-5080@10.77.0.1", "UDP 10.77.0.1:5081")
mark("sip", opt, "10.77.0.1:5081", "10.77.0.2:5080", "udp")
other.sendto(opt, ("10.77.0.2", 5080))
time.sleep(0.02)

u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u6.bind(("fd77::1", 5060))
opt6 = sip("OPTIONS sip:bob@[fd77::2] SIP/2.0", "live-options-v6@fd77::1", "UDP [fd77::1]:5060")
mark("sip", opt6, "[fd77::1]:5060", "[fd77::2]:5060", "udp")
u6.sendto(opt6, ("fd77::2", 5060))
time.sleep(0.02)

t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t.bind(("10.77.0.1", 0))
t.connect(("10.77.0.2", 5060))
src = "10.77.0.1:%d" % t.getsockname()[1]
m1 = sip("MESSAGE sip:bob@10.77.0.2 SIP/2.0", "live-tcp-1@10.77.0.1", "TCP " + src, b"first", "text/plain")
m2 = sip("MESSAGE sip:bob@10.77.0.2 SIP/2.0", "live-tcp-2@10.77.0.1", "TCP " + src, b"second", "text/plain")
mark("sip", m1, src, "10.77.0.2:5060", "tcp")
mark("sip", m2, src, "10.77.0.2:5060", "tcp")
t.sendall(m1 + m2)
time.sleep(0.05)
m3 = sip("MESSAGE sip:bob@10.77.0.2 SIP/2.0", "live-tcp-3@10.77.0.1", "TCP " + src, b"third", "text/plain")
mark("sip", m3, src, "10.77.0.2:5060", "tcp")
t.sendall(m3)
time.sleep(0.05)
t.close()

# Give the agent time to learn the RTCP endpoint from the SDP (and, in eBPF modes, to put it
# into the kernel's map) before RTCP flows.
time.sleep(0.7)
rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rtcp.bind(("10.77.0.1", 30001))
rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rtp.bind(("10.77.0.1", 30000))
junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3):
    ssrc = 0x11223344
    # SR: V=2, RC=0, PT=200, length 6 words; NTP, RTP ts, packet and octet counts.
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0xE0000000 + i, 0, 8000 * i, 50 * i, 8000 * i)
    mark("rtcp", sr, "10.77.0.1:30001", "10.77.0.2:40001", "udp")
    rtcp.sendto(sr, ("10.77.0.2", 40001))
    for j in range(67):
        seq = i * 67 + j
        pkt = struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, 0x55667788) + bytes(160)
        rtp.sendto(pkt, ("10.77.0.2", 40000))
    for j in range(34):
        junk.sendto(bytes([0, 1, 2, 3]) + bytes(60), ("10.77.0.2", 9999))
    time.sleep(0.05)
print(json.dumps(out))
"#;

/// The TCP peer on the capture side: accepts one connection and reads it to the end.
const TCP_SINK: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.2", 5060))
s.listen(1)
print("ready", flush=True)
s.settimeout(30)
c, _ = s.accept()
c.settimeout(30)
while c.recv(65536):
    pass
"#;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces and a veth pair, removed on drop.
struct Netns {
    sender: String,
    capture: String,
    /// The capture side's interface name.
    veth: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let id = std::process::id();
        let sender = format!("hcs-{tag}-{id}");
        let capture = format!("hcc-{tag}-{id}");
        for ns in [&sender, &capture] {
            // A leftover from a killed run with the same pid would make `add` fail.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            ip(&["netns", "add", ns]);
        }
        let ns = Netns {
            sender,
            capture,
            veth: "vc0".into(),
        };
        ip(&[
            "link",
            "add",
            "vs0",
            "address",
            "02:77:00:00:00:01",
            "netns",
            &ns.sender,
            "type",
            "veth",
            "peer",
            "name",
            "vc0",
            "address",
            "02:77:00:00:00:02",
            "netns",
            &ns.capture,
        ]);
        for (netns, dev, v4, v6) in [
            (&ns.sender, "vs0", "10.77.0.1/24", "fd77::1/64"),
            (&ns.capture, "vc0", "10.77.0.2/24", "fd77::2/64"),
        ] {
            ip(&["-n", netns, "addr", "add", v4, "dev", dev]);
            ip(&["-n", netns, "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["-n", netns, "link", "set", dev, "up"]);
            ip(&["-n", netns, "link", "set", "lo", "up"]);
        }
        // Static neighbours: no ARP or neighbour discovery delays the first datagram (their
        // retransmit timer is a second, far beyond the 5 ms the timestamps are held to).
        for (netns, dev, v4, v6, mac) in [
            (
                &ns.sender,
                "vs0",
                "10.77.0.2",
                "fd77::2",
                "02:77:00:00:00:02",
            ),
            (
                &ns.capture,
                "vc0",
                "10.77.0.1",
                "fd77::1",
                "02:77:00:00:00:01",
            ),
        ] {
            for addr in [v4, v6] {
                ip(&[
                    "-n",
                    netns,
                    "neigh",
                    "replace",
                    addr,
                    "lladdr",
                    mac,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ]);
            }
        }
        ns
    }

    /// A command run inside `ns`, ended by `timeout` if the test dies first.
    fn exec(&self, ns: &str) -> Command {
        let mut c = bounded(180, "ip");
        c.args(["netns", "exec", ns]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.sender, &self.capture] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// What the sender sent: one entry per SIP message or RTCP report.
#[derive(Debug)]
struct Sent {
    kind: String,
    t_us: u64,
    payload: Vec<u8>,
    src: String,
    dst: String,
    transport: String,
}

fn parse_sent(stdout: &str) -> Vec<Sent> {
    let v: Value = serde_json::from_str(stdout.trim()).expect("sender prints its log as JSON");
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| Sent {
            kind: e["kind"].as_str().unwrap().into(),
            t_us: (e["t"].as_f64().unwrap() * 1e6) as u64,
            payload: e["payload"]
                .as_str()
                .unwrap()
                .chars()
                .map(|c| c as u8)
                .collect(),
            src: e["src"].as_str().unwrap().into(),
            dst: e["dst"].as_str().unwrap().into(),
            transport: e["transport"].as_str().unwrap().into(),
        })
        .collect()
}

fn endpoint(r: &Value, side: &str) -> String {
    let ip = r[format!("{side}_ip")].as_str().unwrap().to_string();
    let port = r[format!("{side}_port")].as_u64().unwrap();
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn wait_for(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not seen within {timeout:?}; log so far:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `name N` from the summary's `kernel:` line.
fn kernel_counter(summary: &str, name: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with("kernel:"))
        .unwrap_or_else(|| panic!("no kernel counters in the summary:\n{summary}"));
    line.split(':')
        .nth(1)
        .unwrap()
        .split(',')
        .map(str::trim)
        .find_map(|kv| kv.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no counter {name} in {line}"))
}

fn copied(summary: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix("capture ")?;
            let (_, n) = rest.split_once(": ")?;
            n.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no capture line in the summary:\n{summary}"))
}

fn cap_eff(pid: u32) -> String {
    proc_status(pid, "CapEff:")
}

/// The value of one `/proc/<pid>/status` line.
fn proc_status(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} line"))
        .trim()
        .to_string()
}

fn run_mode(mode: &str, tag: &str) {
    require_root("network namespaces and eBPF");
    require_tool("ip");
    require_tool("python3");
    let ns = Netns::new(tag);
    let dir = scratch_dir(&format!("live-{tag}"));
    let log = dir.join("hepcap.log");
    // XDP runs as `nobody` after start-up (--user): its JSON lines go to a directory that
    // user can reach and write, outside the checkout (which may sit under /root).
    let as_nobody = mode == "xdp";
    let out_dir = if as_nobody {
        let d = std::env::temp_dir().join(format!("hepcap-live-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        d
    } else {
        dir.clone()
    };
    let jsonl = out_dir.join("out.jsonl");
    let _ = std::fs::remove_file(&jsonl);
    let mut args: Vec<String> = vec![
        "run".into(),
        "--capture".into(),
        mode.into(),
        "-i".into(),
        ns.veth.clone(),
        "--jsonl".into(),
        jsonl.display().to_string(),
    ];
    if mode == "xdp" {
        args.extend(["--xdp-mode".into(), "generic".into()]);
    }
    if as_nobody {
        args.extend(["--user".into(), "nobody".into()]);
    }
    // RTCP must reach user space through the RTCP map the SDP filled, not through the
    // window that follows SIP.
    if mode != "pcap" {
        args.extend(["--rtcp-after-sip-ms".into(), "0".into()]);
    }
    let log_file = std::fs::File::create(&log).unwrap();
    let mut agent = Guard::spawn(
        "hepcap run",
        ns.exec(&ns.capture)
            .arg(hepcap_bin())
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file),
    );
    wait_for(&log, "live capture started", Duration::from_secs(20));
    // Capabilities went before any thread started. `timeout` runs `ip netns exec`, which
    // execs hepcap: hepcap is timeout's only child.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", agent.pid()))
        .expect("read children of timeout");
    let hepcap_pid: u32 = children.trim().parse().expect("one child pid");
    assert_eq!(
        cap_eff(hepcap_pid),
        "0000000000000000",
        "hepcap kept effective capabilities after start-up"
    );
    if as_nobody {
        // Real, effective, saved and filesystem uid all nobody's (65534 on Debian).
        let uid = proc_status(hepcap_pid, "Uid:");
        assert_eq!(uid, "65534\t65534\t65534\t65534", "--user nobody");
        assert_eq!(proc_status(hepcap_pid, "CapPrm:"), "0000000000000000");
    }

    let mut tcp_sink = Guard::spawn(
        "tcp sink",
        ns.exec(&ns.capture)
            .args(["python3", "-c", TCP_SINK])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let ready = {
        use std::io::BufRead;
        let mut line = String::new();
        let out = tcp_sink.child.stdout.take().expect("tcp sink stdout");
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        line
    };
    assert_eq!(ready.trim(), "ready");

    let sender = bounded(60, "ip")
        .args(["netns", "exec", &ns.sender, "python3", "-c", SENDER])
        .output()
        .expect("run the sender");
    assert!(
        sender.status.success(),
        "sender failed: {}",
        String::from_utf8_lossy(&sender.stderr)
    );
    let sent = parse_sent(&String::from_utf8_lossy(&sender.stdout));
    assert_eq!(sent.iter().filter(|s| s.kind == "sip").count(), 7);
    assert_eq!(sent.iter().filter(|s| s.kind == "rtcp").count(), 3);
    tcp_sink.wait_exit(Duration::from_secs(10));

    // Records reach the JSON lines while the agent runs (not only at exit): 7 SIP + 3 RTCP.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = std::fs::read_to_string(&jsonl)
            .unwrap_or_default()
            .lines()
            .count();
        if lines == 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{mode}: {lines} of 10 records written while running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = agent.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "hepcap did not exit cleanly: {status:?}"
    );
    let summary = std::fs::read_to_string(&log).unwrap();

    check_records(mode, &jsonl, &sent, &summary);
    check_counters(mode, &summary);
}

fn check_records(mode: &str, jsonl: &Path, sent: &[Sent], summary: &str) {
    let records = read_jsonl(jsonl);
    let sip: Vec<&Value> = records.iter().filter(|r| r["proto_type"] == 1).collect();
    let rtcp: Vec<&Value> = records.iter().filter(|r| r["proto_type"] == 5).collect();
    assert_eq!(
        records.len(),
        sip.len() + rtcp.len(),
        "only SIP and RTCP expected: {records:#?}"
    );
    assert_eq!(
        sip.len(),
        7,
        "SIP records ({mode}):\n{records:#?}\n{summary}"
    );
    assert_eq!(
        rtcp.len(),
        3,
        "RTCP records ({mode}):\n{records:#?}\n{summary}"
    );
    for r in &records {
        assert_eq!(r["source"], mode, "record source");
    }

    // Every SIP message once, with its addresses, transport, bytes and time.
    for s in sent.iter().filter(|s| s.kind == "sip") {
        let found: Vec<&&Value> = sip
            .iter()
            .filter(|r| record_payload(r) == s.payload)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{mode}: message sent from {} not found exactly once",
            s.src
        );
        let r = found[0];
        assert_eq!(endpoint(r, "src"), s.src);
        assert_eq!(endpoint(r, "dst"), s.dst);
        assert_eq!(r["transport"], s.transport.as_str());
        let ts = record_micros(r);
        assert!(
            ts.abs_diff(s.t_us) <= 5_000,
            "{mode}: timestamp {ts} is {} µs from the send time {}",
            ts.abs_diff(s.t_us),
            s.t_us
        );
    }

    // RTCP: each report once, from the announced endpoint, tied to the INVITE's call.
    let mut rtcp_sorted = rtcp.clone();
    rtcp_sorted.sort_by_key(|r| record_micros(r));
    let sent_rtcp: Vec<&Sent> = sent.iter().filter(|s| s.kind == "rtcp").collect();
    for (r, s) in rtcp_sorted.iter().zip(&sent_rtcp) {
        assert_eq!(endpoint(r, "src"), s.src);
        assert_eq!(endpoint(r, "dst"), s.dst);
        assert_eq!(r["correlation_id"], "live-invite@10.77.0.1");
        let json: Value = serde_json::from_slice(&record_payload(r)).expect("RTCP JSON");
        assert_eq!(json["ssrc"], 0x1122_3344u64, "{json}");
        assert_eq!(json["type"], 200, "{json}");
        let ts = record_micros(r);
        assert!(
            ts.abs_diff(s.t_us) <= 5_000,
            "{mode}: RTCP timestamp {ts} vs sent {}",
            s.t_us
        );
    }
}

fn check_counters(mode: &str, summary: &str) {
    let copied = copied(summary);
    if mode == "pcap" {
        // The classic filter also passes TCP segments without payload on the SIP port
        // (handshake, ACKs, FIN), never RTP or the unrelated datagrams (300 of them).
        assert!(
            (3 + 3 + 2 + 3..=3 + 3 + 2 + 3 + 12).contains(&copied),
            "pcap copied {copied} packets:\n{summary}"
        );
        return;
    }
    // The kernel copied exactly the SIP datagrams (3 UDP + 2 TCP segments with payload), the
    // 3 fragments of the large one, and the 3 RTCP reports; it saw, and kept to itself, 200
    // RTP and 100 unrelated datagrams.
    assert_eq!(kernel_counter(summary, "sip"), 5, "{summary}");
    assert_eq!(kernel_counter(summary, "fragments"), 3, "{summary}");
    assert_eq!(kernel_counter(summary, "rtcp"), 3, "{summary}");
    assert_eq!(kernel_counter(summary, "output_failed"), 0, "{summary}");
    assert_eq!(copied, 11, "{summary}");
    assert!(kernel_counter(summary, "seen") >= 8 + 300, "{summary}");
}

#[test]
fn ebpf_socket_filter_on_veth() {
    run_mode("ebpf", "e");
}

#[test]
fn xdp_generic_on_veth() {
    run_mode("xdp", "x");
}

#[test]
fn pcap_on_veth() {
    run_mode("pcap", "p");
}

#[test]
fn check_reports_every_mode() {
    require_root("eBPF and capture probes");
    let out = bounded(60, hepcap_bin())
        .args(["check", "--json"])
        .output()
        .expect("run hepcap check");
    let report: Value = serde_json::from_slice(&out.stdout).expect("check --json prints JSON");
    let items = report["items"].as_array().expect("items");
    let ok = |name: &str| {
        items
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))["ok"]
            == true
    };
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(report["kernel"], release.trim());
    for name in [
        "mode_ebpf",
        "mode_xdp",
        "mode_pcap",
        "program_socket_filter",
        "btf",
    ] {
        assert!(ok(name), "{name} not supported here: {report:#}");
    }
    assert!(out.status.success());
}
