//! `cargo xtask bench-capture`: live capture under load, hepcap's capture modes and tcpdump side
//! by side, at increasing packet rates.
//!
//! Setup (names carry this process's id; removed at the end, on error and on Ctrl-C): two
//! network namespaces joined by a veth pair. The sender side (10.77.0.1) sends everything to
//! the capture side (10.77.0.2, media addresses in 10.78.0.0/16 routed through it). The sender's
//! neighbour entry for 10.77.0.2 is a fixed MAC that is not the capture side's, so the capture
//! side's IP stack drops every packet at once (PACKET_OTHERHOST): no ICMP comes back, no socket
//! queues anything, and the capture taps see each packet once, as on a SPAN port. IPv6 is off
//! on both sides, so the wire carries only what the sender sends.
//!
//! The traffic: calls. Per 110 packets the sender sends a new call's INVITE (with SDP), 200 OK
//! (with SDP naming the media address) and ACK; five RTCP compound reports (SR + SDES) of calls
//! set up `--rtcp-after-ms` earlier, sent to the RTCP port (RTP port + 1) the 200 OK announced,
//! so hepcap has learnt it from the SDP (and, in the eBPF modes, put it into the kernel's RTCP
//! map); the BYE and 200 OK of a call set up twice that long ago; and 100 RTP packets (172
//! bytes: RTP v2 header, PT 0, 160 bytes of PCMU) to the RTP ports of calls in progress. So RTP
//! is 10x SIP + RTCP. Before there are old enough calls, those slots carry OPTIONS instead.
//! Every SIP message and RTCP report is unique (hepcap's live dedup keeps them all). One thread
//! sends, `sendmmsg` batches with a destination per message, paced per batch; the rate it
//! achieved and what the veth carried (its counters) are reported.
//!
//! At each rate, in turn: no capture (the sender alone: achieved rate and the sender's CPU
//! baseline), `hepcap run --capture ebpf|xdp|pcap -i <veth> --jsonl FILE --rtcp-uncorrelated
//! send` (`xdp`: native attach if the driver takes it, else generic; `xdp-generic`: forced
//! generic), and `tcpdump -w FILE` with the filter `--capture pcap` generates (printed in the
//! header; `tcpdump-immediate` adds `--immediate-mode`, as hepcap's pcap mode opens libpcap).
//! Each is a fresh process in the capture namespace. Delivered: hepcap's JSON lines by
//! `proto_type` (1 SIP, 5 RTCP); for tcpdump, the frames in its file that are SIP (port 5060)
//! or RTCP (v2, PT 200-207). CPU: the capturing process's run time (its threads'
//! /proc/PID/task/*/schedstat, nanoseconds; /proc/PID/stat's user + sys ticks are too coarse
//! for tcpdump) over the window from the first packet sent to the moment it is stopped
//! (start-up, eBPF verification included, is not counted), per million packets it got in user
//! space; peak RSS is its VmHWM. The in-kernel filters run in softirq inside the sender's send
//! calls (the veth delivers on the sending CPU): the sender thread's CPU per packet over the
//! no-capture baseline is shown as the kernel side, indicative only.
//!
//! Benchmarks on a shared 2-core machine are reported, never asserted: the run fails only when
//! something could not run.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::mem::zeroed;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::measure::{build_hepcap, online_cpus, proc_stat_cpu, proc_vm_hwm, thread_cpu};
use crate::workspace;

/// Packets per "frame" of the traffic pattern: 10 SIP/RTCP slots, 100 RTP.
const FRAME: u64 = 110;
/// Every 11th packet of a frame is a SIP or RTCP slot.
const CONTROL_EVERY: u64 = 11;
/// Most datagrams per `sendmmsg`.
const MAX_BATCH: usize = 64;
/// The MAC the sender addresses its frames to: not the capture side's.
const FOREIGN_MAC: &str = "02:00:5e:10:77:99";
const SENDER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const CAPTURE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Source port of RTP and RTCP: outside every range an SDP here announces.
const MEDIA_SRC_PORT: u16 = 4000;
const SIP_PORT: u16 = 5060;
/// Bytes of an RTP packet: 12 header + 160 PCMU.
const RTP_LEN: usize = 172;
/// The capturers' start-up (eBPF verification included) may take this long.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// A sender that cannot keep up stops at this multiple of the planned time.
const SEND_OVERRUN: f64 = 1.25;

/// What captures during a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Capturer {
    /// Nothing: the sender alone (achieved rate, host CPU baseline).
    None,
    /// `hepcap run --capture ebpf` (socket filter on an AF_PACKET socket).
    Ebpf,
    /// `hepcap run --capture xdp --xdp-mode auto` (native if the driver takes it).
    Xdp,
    /// `hepcap run --capture xdp --xdp-mode generic`.
    XdpGeneric,
    /// `hepcap run --capture pcap`.
    Pcap,
    /// `tcpdump -w FILE` with the generated filter: the libpcap baseline.
    Tcpdump,
    /// The same with `--immediate-mode`, as hepcap's pcap mode opens libpcap (TPACKET_V2, a
    /// wakeup per packet, ring slots sized for the snap length); not run by default.
    TcpdumpImmediate,
}

impl Capturer {
    fn name(self) -> &'static str {
        match self {
            Capturer::None => "none",
            Capturer::Ebpf => "ebpf",
            Capturer::Xdp => "xdp",
            Capturer::XdpGeneric => "xdp-generic",
            Capturer::Pcap => "pcap",
            Capturer::Tcpdump => "tcpdump",
            Capturer::TcpdumpImmediate => "tcpdump-immediate",
        }
    }

    fn is_tcpdump(self) -> bool {
        matches!(self, Capturer::Tcpdump | Capturer::TcpdumpImmediate)
    }

    fn is_hepcap(self) -> bool {
        matches!(
            self,
            Capturer::Ebpf | Capturer::Xdp | Capturer::XdpGeneric | Capturer::Pcap
        )
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Offered rates, packets per second in total (SIP + RTCP + RTP), in the order run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000,50000,100000,200000,400000"
    )]
    rates: Vec<u64>,
    /// Seconds of traffic per rate and capturer.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Capturers run at each rate, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "none,ebpf,xdp,xdp-generic,pcap,tcpdump"
    )]
    modes: Vec<Capturer>,
    /// Give hepcap --rtcp-heuristic, so the eBPF modes take RTCP by its looks instead of the
    /// endpoints learnt from SDP (pcap mode and tcpdump always do).
    #[arg(long)]
    rtcp_heuristic: bool,
    /// A call's RTCP starts this long after its INVITE: the time hepcap has to learn the
    /// endpoint from the SDP. Its BYE comes after twice as long.
    #[arg(long, default_value_t = 400)]
    rtcp_after_ms: u64,
    /// More arguments for every `hepcap run`, separated by spaces (e.g. "--perf-pages 1024").
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    hepcap_args: String,
    /// Keep each step's JSON lines, logs and tcpdump files in target/bench/capture/.
    #[arg(long)]
    keep: bool,
    /// Use target/release/hepcap as it is instead of running `cargo build --release`.
    #[arg(long)]
    no_build: bool,
}

/// Set by SIGINT/SIGTERM: every wait and the sender stop, and the namespaces are removed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.rates.is_empty(), "--rates needs at least one rate");
    anyhow::ensure!(
        args.rates.iter().all(|r| (FRAME..=2_000_000).contains(r)),
        "each rate must be {FRAME}..=2000000 packets/s"
    );
    anyhow::ensure!((1..=60).contains(&args.seconds), "--seconds must be 1..=60");
    anyhow::ensure!(
        !args.modes.is_empty(),
        "--modes needs at least one capturer"
    );
    anyhow::ensure!(
        (50..=5000).contains(&args.rtcp_after_ms),
        "--rtcp-after-ms must be 50..=5000"
    );
    prerequisites(&args.modes)?;

    let root = workspace::root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let hepcap = if args.modes.iter().any(|m| m.is_hepcap()) {
        Some(build_hepcap(
            "bench-capture",
            &root,
            &target,
            args.no_build,
        )?)
    } else {
        None
    };
    let dir = target.join("bench/capture");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let filter = hepcap::capture::filter::generate(&hepcap::decode::PortSet::default(), true);

    // SAFETY: installing a handler that only stores to an atomic is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    remove_stale_namespaces();
    let net = Netns::create()?;
    eprintln!(
        "bench-capture: namespaces {} (sender, {}) and {} (capture, {})",
        net.sender, net.sender_if, net.capture, net.capture_if
    );
    let total_steps = args.rates.len() * args.modes.len();
    eprintln!(
        "bench-capture: {total_steps} steps of {} s of traffic (about {} s in all)",
        args.seconds,
        total_steps as u64 * (args.seconds + 4)
    );

    let mut steps = Vec::new();
    for &rate in &args.rates {
        for &mode in &args.modes {
            check_interrupted()?;
            let step = run_step(&net, &args, hepcap.as_deref(), &dir, &filter, mode, rate)?;
            eprintln!("  {}", step.one_line());
            steps.push(step);
        }
    }
    report(&args, hepcap.as_deref(), &filter, &net, &steps);
    Ok(())
}

/// Root, `ip`, and `tcpdump` when it is to run: a clear message for the first one missing.
fn prerequisites(modes: &[Capturer]) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "bench-capture needs root (it creates network namespaces, loads eBPF programs and \
             opens capture sockets): run it as root"
        );
    }
    let mut tools = vec!["ip"];
    if modes.iter().any(|m| m.is_tcpdump()) {
        tools.push("tcpdump");
    }
    for tool in tools {
        if which(tool).is_none() {
            bail!(
                "bench-capture needs `{tool}` in PATH ({}): install it (scripts/setup.sh or \
                 apt-get install {})",
                if tool == "ip" {
                    "iproute2"
                } else {
                    "the libpcap baseline"
                },
                if tool == "ip" { "iproute2" } else { "tcpdump" }
            );
        }
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// Namespaces

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run ip")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The prefix of every namespace this bench makes; the creator's pid follows.
const NS_PREFIX: &str = "hcbench-";

/// Namespaces left by a bench that was killed (its pid is gone).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            eprintln!("bench-capture: removing stale namespace {name}");
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Two namespaces and a veth pair; deleting the namespaces (on drop) removes the pair.
#[derive(Debug)]
struct Netns {
    sender: String,
    capture: String,
    sender_if: String,
    capture_if: String,
}

impl Netns {
    fn create() -> anyhow::Result<Netns> {
        let id = std::process::id();
        let net = Netns {
            sender: format!("{NS_PREFIX}s-{id}"),
            capture: format!("{NS_PREFIX}c-{id}"),
            sender_if: format!("hcbs{id}"),
            capture_if: format!("hcbc{id}"),
        };
        // From here on, drop removes whatever was made.
        ip(&["netns", "add", &net.sender])?;
        ip(&["netns", "add", &net.capture])?;
        for ns in [&net.sender, &net.capture] {
            in_netns(ns, || {
                // No router solicitations, DAD or MLD on the wire; absent without IPv6.
                for f in ["all", "default"] {
                    let _ =
                        std::fs::write(format!("/proc/sys/net/ipv6/conf/{f}/disable_ipv6"), "1");
                }
                Ok(())
            })?;
        }
        ip(&[
            "link",
            "add",
            &net.sender_if,
            "netns",
            &net.sender,
            "type",
            "veth",
            "peer",
            "name",
            &net.capture_if,
            "netns",
            &net.capture,
        ])?;
        for (ns, dev, addr) in [
            (&net.sender, &net.sender_if, "10.77.0.1/24"),
            (&net.capture, &net.capture_if, "10.77.0.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n",
            &net.sender,
            "neigh",
            "replace",
            "10.77.0.2",
            "lladdr",
            FOREIGN_MAC,
            "dev",
            &net.sender_if,
            "nud",
            "permanent",
        ])?;
        ip(&[
            "-n",
            &net.sender,
            "route",
            "add",
            "10.78.0.0/16",
            "via",
            "10.77.0.2",
            "dev",
            &net.sender_if,
        ])?;
        Ok(net)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.sender, &self.capture] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("bench-capture: could not remove namespace {ns}: {e:#}");
            }
        }
    }
}

/// Runs `f` on a thread that has joined network namespace `ns` (network namespaces are per
/// thread: sockets it opens and /proc/thread-self/net are that namespace's).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    let path = format!("/run/netns/{ns}");
    thread::scope(|s| {
        let handle = s.spawn(|| {
            let file = File::open(&path).with_context(|| format!("open {path}"))?;
            // SAFETY: setns on a namespace file descriptor we own; affects this thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error()).with_context(|| format!("setns {path}"));
            }
            f()
        });
        match handle.join() {
            Ok(r) => r,
            Err(_) => bail!("a thread in namespace {ns} panicked"),
        }
    })
}

/// An interface's counters from /proc/thread-self/net/dev (call inside its namespace).
#[derive(Clone, Copy, Debug, Default)]
struct DevCounters {
    rx_packets: u64,
    rx_drop: u64,
    tx_drop: u64,
}

fn dev_counters(iface: &str) -> anyhow::Result<DevCounters> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev")
        .context("read /proc/thread-self/net/dev")?;
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != iface {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if v.len() < 12 {
            bail!("short line for {iface} in /proc/net/dev: {line}");
        }
        return Ok(DevCounters {
            rx_packets: v[1],
            rx_drop: v[3],
            tx_drop: v[11],
        });
    }
    bail!("{iface} not in /proc/net/dev")
}

// ---------------------------------------------------------------------------------------------
// Traffic

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sip,
    Rtcp,
    Rtp,
}

/// A field of a template: its placeholder in the text, rendered as fixed-width digits.
#[derive(Clone, Copy, Debug)]
enum Field {
    /// Call number, 10 digits.
    Call,
    /// Caller's RTP port, 5 digits.
    CallerPort,
    /// Callee's RTP port, 5 digits.
    CalleePort,
    /// Third octet of the callee's media address, 100-199.
    MediaA,
    /// Fourth octet, 100-199.
    MediaB,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Call,
        Field::CallerPort,
        Field::CalleePort,
        Field::MediaA,
        Field::MediaB,
    ];

    fn token(self) -> &'static [u8] {
        match self {
            Field::Call => b"%CALL_____",
            Field::CallerPort => b"%PPPP",
            Field::CalleePort => b"%QQQQ",
            Field::MediaA => b"%AA",
            Field::MediaB => b"%BB",
        }
    }

    fn value(self, c: u64) -> u64 {
        match self {
            Field::Call => c % 10_000_000_000,
            Field::CallerPort => u64::from(caller_rtp_port(c)),
            Field::CalleePort => u64::from(media(c).port()),
            Field::MediaA => u64::from(media(c).ip().octets()[2]),
            Field::MediaB => u64::from(media(c).ip().octets()[3]),
        }
    }
}

/// The callee's RTP address of call `c` (its RTCP is the next port): unique for 50 M calls.
fn media(c: u64) -> SocketAddrV4 {
    let a = 100 + (c % 100) as u8;
    let b = 100 + (c / 100 % 100) as u8;
    let port = 40_000 + 2 * (c / 10_000 % 5_000) as u16;
    SocketAddrV4::new(Ipv4Addr::new(10, 78, a, b), port)
}

fn caller_rtp_port(c: u64) -> u16 {
    20_000 + 2 * (c % 5_000) as u16
}

/// A message with fixed-width placeholders: copied, then its digits written in place.
#[derive(Debug)]
struct Template {
    bytes: Vec<u8>,
    fields: Vec<(usize, Field)>,
}

impl Template {
    fn new(text: &str) -> Template {
        let bytes = text.as_bytes().to_vec();
        let mut fields = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hit = Field::ALL
                .iter()
                .find(|f| bytes[i..].starts_with(f.token()))
                .copied();
            match hit {
                Some(f) => {
                    fields.push((i, f));
                    i += f.token().len();
                }
                None => i += 1,
            }
        }
        Template { bytes, fields }
    }

    fn render(&self, c: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.bytes);
        for &(at, f) in &self.fields {
            let mut v = f.value(c);
            for b in out[at..at + f.token().len()].iter_mut().rev() {
                *b = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
    }
}

/// A SIP message: start line and headers (CRLF-separated, without the final empty line),
/// Content-Length computed, then the body.
fn sip(head: &[&str], body: &str) -> String {
    let mut s = head.join("\r\n");
    s.push_str(&format!("\r\nContent-Length: {}\r\n\r\n", body.len()));
    s.push_str(body);
    s
}

fn sdp(lines: &[&str]) -> String {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n");
    s
}

#[derive(Debug)]
struct Templates {
    invite: Template,
    ok_invite: Template,
    ack: Template,
    bye: Template,
    ok_bye: Template,
    options: Template,
}

impl Templates {
    fn new() -> Templates {
        const ALLOW: &str =
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY";
        const VIA: &str = "Via: SIP/2.0/UDP 10.77.0.1:5060;rport;branch=z9hG4bK-%CALL_____";
        const FROM: &str = "From: \"Bench Caller\" <sip:+4989%CALL_____@10.77.0.1>;tag=f%CALL_____";
        const TO: &str = "To: <sip:+4930%CALL_____@10.77.0.2>";
        const TO_TAG: &str = "To: <sip:+4930%CALL_____@10.77.0.2>;tag=t%CALL_____";
        const CALL_ID: &str = "Call-ID: bench-%CALL_____@10.77.0.1";
        let offer = sdp(&[
            "v=0",
            "o=caller %CALL_____ 1 IN IP4 10.77.0.1",
            "s=call",
            "c=IN IP4 10.77.0.1",
            "t=0 0",
            "m=audio %PPPP RTP/AVP 0 8 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            "a=sendrecv",
        ]);
        let answer = sdp(&[
            "v=0",
            "o=callee %CALL_____ 1 IN IP4 10.78.%AA.%BB",
            "s=call",
            "c=IN IP4 10.78.%AA.%BB",
            "t=0 0",
            "m=audio %QQQQ RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            "a=sendrecv",
        ]);
        Templates {
            invite: Template::new(&sip(
                &[
                    "INVITE sip:+4930%CALL_____@10.77.0.2:5060 SIP/2.0",
                    VIA,
                    "Max-Forwards: 70",
                    FROM,
                    TO,
                    CALL_ID,
                    "CSeq: 1 INVITE",
                    "Contact: <sip:+4989%CALL_____@10.77.0.1:5060;transport=udp>",
                    ALLOW,
                    "Supported: replaces, timer, 100rel",
                    "Session-Expires: 1800;refresher=uac",
                    "Min-SE: 90",
                    "User-Agent: hepcap-bench/1.0",
                    "Content-Type: application/sdp",
                ],
                &offer,
            )),
            ok_invite: Template::new(&sip(
                &[
                    "SIP/2.0 200 OK",
                    VIA,
                    "Record-Route: <sip:10.77.0.2;lr;ftag=f%CALL_____>",
                    FROM,
                    TO_TAG,
                    CALL_ID,
                    "CSeq: 1 INVITE",
                    "Contact: <sip:+4930%CALL_____@10.77.0.2:5060;transport=udp>",
                    ALLOW,
                    "Supported: replaces, timer",
                    "Session-Expires: 1800;refresher=uac",
                    "Require: timer",
                    "Server: hepcap-bench/1.0",
                    "Content-Type: application/sdp",
                ],
                &answer,
            )),
            ack: Template::new(&sip(
                &[
                    "ACK sip:+4930%CALL_____@10.77.0.2:5060 SIP/2.0",
                    "Via: SIP/2.0/UDP 10.77.0.1:5060;rport;branch=z9hG4bK-a%CALL_____",
                    "Route: <sip:10.77.0.2;lr;ftag=f%CALL_____>",
                    "Max-Forwards: 70",
                    FROM,
                    TO_TAG,
                    CALL_ID,
                    "CSeq: 1 ACK",
                    "User-Agent: hepcap-bench/1.0",
                ],
                "",
            )),
            bye: Template::new(&sip(
                &[
                    "BYE sip:+4930%CALL_____@10.77.0.2:5060 SIP/2.0",
                    "Via: SIP/2.0/UDP 10.77.0.1:5060;rport;branch=z9hG4bK-b%CALL_____",
                    "Route: <sip:10.77.0.2;lr;ftag=f%CALL_____>",
                    "Max-Forwards: 70",
                    FROM,
                    TO_TAG,
                    CALL_ID,
                    "CSeq: 2 BYE",
                    "Reason: Q.850;cause=16;text=\"Normal call clearing\"",
                    "User-Agent: hepcap-bench/1.0",
                ],
                "",
            )),
            ok_bye: Template::new(&sip(
                &[
                    "SIP/2.0 200 OK",
                    "Via: SIP/2.0/UDP 10.77.0.1:5060;rport;branch=z9hG4bK-b%CALL_____",
                    FROM,
                    TO_TAG,
                    CALL_ID,
                    "CSeq: 2 BYE",
                    "Server: hepcap-bench/1.0",
                ],
                "",
            )),
            options: Template::new(&sip(
                &[
                    "OPTIONS sip:10.77.0.2:5060 SIP/2.0",
                    "Via: SIP/2.0/UDP 10.77.0.1:5060;rport;branch=z9hG4bK-o%CALL_____",
                    "Max-Forwards: 70",
                    "From: <sip:keepalive@10.77.0.1>;tag=o%CALL_____",
                    "To: <sip:10.77.0.2>",
                    "Call-ID: options-%CALL_____@10.77.0.1",
                    "CSeq: 1 OPTIONS",
                    "Accept: application/sdp",
                    "User-Agent: hepcap-bench/1.0",
                ],
                "",
            )),
        }
    }
}

/// The packet schedule: packet `n` of a step is fully determined by `n`.
#[derive(Debug)]
struct Traffic {
    templates: Templates,
    /// Frames between a call's INVITE and its first RTCP report (at least 5, so that its
    /// five reports come before its BYE at twice that).
    lag: u64,
}

impl Traffic {
    fn new(rate: u64, rtcp_after: Duration) -> Traffic {
        let frames_per_s = rate as f64 / FRAME as f64;
        let lag = ((rtcp_after.as_secs_f64() * frames_per_s).ceil() as u64).max(5);
        Traffic {
            templates: Templates::new(),
            lag,
        }
    }

    /// Writes packet `n` into `buf` and its destination into `dst`.
    fn fill(&self, n: u64, buf: &mut Vec<u8>, dst: &mut SocketAddrV4) -> Kind {
        let f = n / FRAME;
        let p = n % FRAME;
        let sip_dst = SocketAddrV4::new(CAPTURE_IP, SIP_PORT);
        if !p.is_multiple_of(CONTROL_EVERY) {
            // RTP to a call in progress.
            let c = f.saturating_sub(p % self.lag);
            *dst = media(c);
            rtp(c, n, buf);
            return Kind::Rtp;
        }
        let t = &self.templates;
        *dst = sip_dst;
        match p / CONTROL_EVERY {
            0 => t.invite.render(f, buf),
            1 => t.ok_invite.render(f, buf),
            2 => t.ack.render(f, buf),
            s @ 3..=7 => {
                let k = s - 3;
                match f.checked_sub(self.lag + k) {
                    Some(c) => {
                        let m = media(c);
                        *dst = SocketAddrV4::new(*m.ip(), m.port() + 1);
                        rtcp(c, k, buf);
                        return Kind::Rtcp;
                    }
                    None => t.options.render(n, buf),
                }
            }
            s => match f.checked_sub(2 * self.lag) {
                Some(c) if s == 8 => t.bye.render(c, buf),
                Some(c) => t.ok_bye.render(c, buf),
                None => t.options.render(n, buf),
            },
        }
        Kind::Sip
    }
}

/// RTP v2, PT 0 (PCMU), 160 bytes of silence.
fn rtp(c: u64, n: u64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0x80, 0x00]);
    buf.extend_from_slice(&(n as u16).to_be_bytes());
    buf.extend_from_slice(&((n as u32).wrapping_mul(160)).to_be_bytes());
    buf.extend_from_slice(&(0x5000_0000 ^ c as u32).to_be_bytes());
    buf.resize(RTP_LEN, 0xff);
}

/// Report `k` of call `c`: SR with one report block, then SDES with a CNAME.
fn rtcp(c: u64, k: u64, buf: &mut Vec<u8>) {
    let ssrc = 0x1000_0000 ^ c as u32;
    let k32 = k as u32;
    buf.clear();
    // SR: V=2, RC=1, PT=200, length 12 (52 bytes).
    buf.extend_from_slice(&[0x81, 200, 0, 12]);
    buf.extend_from_slice(&ssrc.to_be_bytes());
    buf.extend_from_slice(&(0xE800_0000u32 + k32).to_be_bytes()); // NTP seconds
    buf.extend_from_slice(&(c as u32).to_be_bytes()); // NTP fraction
    buf.extend_from_slice(&(8000 * 5 * (k32 + 1)).to_be_bytes()); // RTP timestamp
    buf.extend_from_slice(&(250 * (k32 + 1)).to_be_bytes()); // packets
    buf.extend_from_slice(&(40_000 * (k32 + 1)).to_be_bytes()); // octets
    // Report block about the callee's stream.
    buf.extend_from_slice(&(0x5000_0000 ^ c as u32).to_be_bytes());
    buf.extend_from_slice(&[2, 0, 0, k as u8]); // fraction lost, cumulative lost
    buf.extend_from_slice(&(250 * (k32 + 1)).to_be_bytes()); // highest sequence
    buf.extend_from_slice(&(20 + k32).to_be_bytes()); // jitter
    buf.extend_from_slice(&0u32.to_be_bytes()); // LSR
    buf.extend_from_slice(&0u32.to_be_bytes()); // DLSR
    // SDES: V=2, SC=1, PT=202, length 6 (28 bytes): SSRC, CNAME "bench-NNNNNNNNNN" (16), end.
    buf.extend_from_slice(&[0x81, 202, 0, 6]);
    buf.extend_from_slice(&ssrc.to_be_bytes());
    buf.extend_from_slice(&[1, 16]);
    buf.extend_from_slice(format!("bench-{:010}", c % 10_000_000_000).as_bytes());
    buf.extend_from_slice(&[0, 0]);
}

/// What the sender did in one step.
#[derive(Debug, Clone, Default)]
struct SendReport {
    sip: u64,
    rtcp: u64,
    rtp: u64,
    /// From the first send to the last.
    elapsed: Duration,
    /// The capture side's veth: packets received, and drops on either end.
    wire: u64,
    veth_drops: u64,
    /// CPU time of the sending thread. Without IRQ time accounting this includes the veth's
    /// receive path (softirq run on the way out of the send call): the capture side's taps,
    /// socket filter or generic XDP, and the copy into a capture ring.
    cpu: Duration,
}

impl SendReport {
    fn total(&self) -> u64 {
        self.sip + self.rtcp + self.rtp
    }

    fn achieved(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn to_sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is valid and the fields are set below.
    let mut s: libc::sockaddr_in = unsafe { zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr = libc::in_addr {
        s_addr: u32::from(*a.ip()).to_be(),
    };
    s
}

/// `sendmmsg` until every header is sent, the deadline passes, or an error; the count sent.
fn send_all(
    fd: libc::c_int,
    headers: &mut [libc::mmsghdr],
    deadline: Instant,
) -> io::Result<usize> {
    let mut done = 0;
    while done < headers.len() {
        // SAFETY: every header points at a live sockaddr_in and iovec, which point at live
        // buffers of their length; nothing moves during the call and the kernel only reads.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                headers[done..].as_mut_ptr(),
                (headers.len() - done) as libc::c_uint,
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR | libc::EAGAIN | libc::ENOBUFS) if Instant::now() < deadline => {
                    thread::yield_now();
                    continue;
                }
                Some(libc::EINTR | libc::EAGAIN | libc::ENOBUFS) => return Ok(done),
                _ => return Err(e),
            }
        }
        done += r as usize;
    }
    Ok(done)
}

/// Sends `rate * seconds` packets at `rate`, in the sender namespace.
fn send(net: &Netns, traffic: &Traffic, rate: u64, seconds: u64) -> anyhow::Result<SendReport> {
    let before = in_netns(&net.capture, || dev_counters(&net.capture_if))?;
    let mut report = in_netns(&net.sender, || {
        let sip = UdpSocket::bind((SENDER_IP, SIP_PORT)).context("bind the SIP socket")?;
        let media =
            UdpSocket::bind((SENDER_IP, MEDIA_SRC_PORT)).context("bind the media socket")?;
        let tx_before = dev_counters(&net.sender_if)?;
        let total = rate * seconds;
        let batch = ((rate / 4000) as usize).clamp(4, MAX_BATCH);
        let mut bufs: Vec<Vec<u8>> = (0..batch).map(|_| Vec::with_capacity(2048)).collect();
        let mut dsts = vec![SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0); batch];
        let mut kinds = vec![Kind::Rtp; batch];
        // SAFETY: sockaddr_in, iovec and mmsghdr are plain old data; all-zero is valid and
        // every field used is set before each call.
        let mut names = vec![unsafe { zeroed::<libc::sockaddr_in>() }; batch];
        let mut iovs = vec![unsafe { zeroed::<libc::iovec>() }; batch];
        let mut sip_hdrs = vec![unsafe { zeroed::<libc::mmsghdr>() }; batch];
        let mut media_hdrs = vec![unsafe { zeroed::<libc::mmsghdr>() }; batch];
        let mut sip_kinds = Vec::with_capacity(batch);
        let mut media_kinds = Vec::with_capacity(batch);
        let mut out = SendReport::default();
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(seconds as f64 * SEND_OVERRUN);
        let mut n = 0u64;
        while n < total && Instant::now() < deadline && !INTERRUPTED.load(Ordering::Relaxed) {
            // Pace per batch: wait until its first packet is due.
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            let now = start.elapsed();
            if due > now {
                thread::sleep(due - now);
            }
            let k = (total - n).min(batch as u64) as usize;
            let (mut ns, mut nm) = (0, 0);
            sip_kinds.clear();
            media_kinds.clear();
            for j in 0..k {
                kinds[j] = traffic.fill(n + j as u64, &mut bufs[j], &mut dsts[j]);
                names[j] = to_sockaddr(dsts[j]);
                iovs[j] = libc::iovec {
                    iov_base: bufs[j].as_mut_ptr().cast(),
                    iov_len: bufs[j].len(),
                };
                let h = if kinds[j] == Kind::Sip {
                    sip_kinds.push(kinds[j]);
                    ns += 1;
                    &mut sip_hdrs[ns - 1]
                } else {
                    media_kinds.push(kinds[j]);
                    nm += 1;
                    &mut media_hdrs[nm - 1]
                };
                h.msg_hdr.msg_name = std::ptr::from_mut(&mut names[j]).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                h.msg_hdr.msg_iov = std::ptr::from_mut(&mut iovs[j]);
                h.msg_hdr.msg_iovlen = 1;
            }
            let sent_media = send_all(media.as_raw_fd(), &mut media_hdrs[..nm], deadline)
                .context("sendmmsg (media)")?;
            let sent_sip = send_all(sip.as_raw_fd(), &mut sip_hdrs[..ns], deadline)
                .context("sendmmsg (SIP)")?;
            for kind in media_kinds[..sent_media]
                .iter()
                .chain(&sip_kinds[..sent_sip])
            {
                match kind {
                    Kind::Sip => out.sip += 1,
                    Kind::Rtcp => out.rtcp += 1,
                    Kind::Rtp => out.rtp += 1,
                }
            }
            if sent_media < nm || sent_sip < ns {
                break;
            }
            n += k as u64;
        }
        out.elapsed = start.elapsed();
        out.cpu = thread_cpu().saturating_sub(cpu0);
        let tx_after = dev_counters(&net.sender_if)?;
        out.veth_drops = tx_after.tx_drop.saturating_sub(tx_before.tx_drop);
        Ok(out)
    })?;
    check_interrupted()?;
    let after = in_netns(&net.capture, || dev_counters(&net.capture_if))?;
    report.wire = after.rx_packets.saturating_sub(before.rx_packets);
    report.veth_drops += after.rx_drop.saturating_sub(before.rx_drop);
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Capturers

/// A capturing process in the capture namespace; killed on drop if still running.
#[derive(Debug)]
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `ip netns exec NS PROGRAM ARGS` (ip execs the program: same pid) and waits
    /// for `ready` in its log. The child dies with this process (PR_SET_PDEATHSIG).
    fn start(
        ns: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        ready: &str,
    ) -> anyhow::Result<Running> {
        let file = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .env("RUST_LOG", "warn,hepcap=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        let mut running = Running {
            child,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = running.log_text();
            if text.contains(ready) {
                return Ok(running);
            }
            if let Some(status) = running.child.try_wait()? {
                bail!(
                    "{} exited at start ({status}):\n{}",
                    program.display(),
                    tail(&text, 12)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready within {START_TIMEOUT:?}:\n{}",
                    program.display(),
                    tail(&text, 12)
                );
            }
            check_interrupted()?;
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGINT, then waits for the exit; the log.
    fn stop(mut self) -> anyhow::Result<String> {
        // SAFETY: kill(2) on the pid of a child not yet waited for.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                bail!(
                    "capturer did not exit within {STOP_TIMEOUT:?} of SIGINT:\n{}",
                    tail(&self.log_text(), 12)
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let text = self.log_text();
        if !status.success() {
            bail!("capturer exited with {status}:\n{}", tail(&text, 20));
        }
        Ok(text)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One rate with one capturer.
#[derive(Debug, Clone)]
struct Step {
    mode: Capturer,
    /// The mode as shown: `xdp` gets its attach mode.
    label: String,
    rate: u64,
    send: SendReport,
    got_sip: u64,
    got_rtcp: u64,
    /// Packets the capturer got in user space.
    to_user: u64,
    cpu: Duration,
    rss_kib: u64,
    notes: Vec<String>,
}

impl Step {
    fn sent(&self) -> u64 {
        self.send.sip + self.send.rtcp
    }

    fn delivered(&self) -> u64 {
        self.got_sip + self.got_rtcp
    }

    /// SIP + RTCP not delivered (`None` without a capturer). Over-delivery is 0 here and
    /// noted separately.
    fn lost(&self) -> Option<u64> {
        (self.mode != Capturer::None).then(|| self.sent().saturating_sub(self.delivered()))
    }

    /// CPU seconds per million packets in user space.
    fn cpu_per_m(&self) -> Option<f64> {
        (self.mode != Capturer::None && self.to_user > 0)
            .then(|| self.cpu.as_secs_f64() * 1e6 / self.to_user as f64)
    }

    fn one_line(&self) -> String {
        format!(
            "{:>7}/s {:<18} achieved {}/s, SIP+RTCP sent {}, delivered {}, cpu {:.2} s, rss {:.1} MiB{}",
            thousands(self.rate),
            self.label,
            thousands(self.send.achieved() as u64),
            thousands(self.sent()),
            thousands(self.delivered()),
            self.cpu.as_secs_f64(),
            self.rss_kib as f64 / 1024.0,
            if self.notes.is_empty() {
                String::new()
            } else {
                format!(" [{}]", self.notes.join("; "))
            }
        )
    }
}

/// Starts the capturer, sends, stops it, counts.
fn run_step(
    net: &Netns,
    args: &Args,
    hepcap: Option<&Path>,
    dir: &Path,
    filter: &str,
    mode: Capturer,
    rate: u64,
) -> anyhow::Result<Step> {
    let stem = format!("{}-{rate}", mode.name());
    let log = dir.join(format!("{stem}.log"));
    let out = dir.join(format!(
        "{stem}.{}",
        if mode.is_tcpdump() { "pcap" } else { "jsonl" }
    ));
    let _ = std::fs::remove_file(&out);
    let traffic = Traffic::new(rate, Duration::from_millis(args.rtcp_after_ms));
    let mut step = Step {
        mode,
        label: mode.name().to_string(),
        rate,
        send: SendReport::default(),
        got_sip: 0,
        got_rtcp: 0,
        to_user: 0,
        cpu: Duration::ZERO,
        rss_kib: 0,
        notes: Vec::new(),
    };

    let running = match mode {
        Capturer::None => None,
        Capturer::Tcpdump | Capturer::TcpdumpImmediate => {
            let tcpdump = which("tcpdump").context("tcpdump not found")?;
            let mut a: Vec<String> = [
                "-i",
                &net.capture_if,
                "-n",
                "-s",
                "65535",
                "-B",
                "8192",
                "-Z",
                "root",
                "-w",
                &out.display().to_string(),
                filter,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if mode == Capturer::TcpdumpImmediate {
                a.insert(0, "--immediate-mode".into());
            }
            Some(Running::start(
                &net.capture,
                &tcpdump,
                &a,
                &log,
                "listening on",
            )?)
        }
        _ => {
            let bin = hepcap.context("hepcap was not built")?;
            let capture = match mode {
                Capturer::Pcap => "pcap",
                Capturer::Ebpf => "ebpf",
                _ => "xdp",
            };
            let mut a: Vec<String> = [
                "run",
                "--capture",
                capture,
                "-i",
                &net.capture_if,
                "--jsonl",
                &out.display().to_string(),
                "--rtcp-uncorrelated",
                "send",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            match mode {
                Capturer::Xdp => a.extend(["--xdp-mode".into(), "auto".into()]),
                Capturer::XdpGeneric => a.extend(["--xdp-mode".into(), "generic".into()]),
                _ => {}
            }
            if args.rtcp_heuristic {
                a.push("--rtcp-heuristic".into());
            }
            a.extend(args.hepcap_args.split_whitespace().map(String::from));
            match Running::start(&net.capture, bin, &a, &log, "live capture started") {
                Ok(r) => {
                    if mode == Capturer::Xdp {
                        let generic = r.log_text().contains("native XDP refused");
                        step.label =
                            format!("xdp ({})", if generic { "generic" } else { "native" });
                    }
                    Some(r)
                }
                Err(e) => {
                    // A mode this host or build cannot run is a row, not the end of the bench.
                    step.label = format!("{} (failed)", mode.name());
                    step.notes
                        .push(format!("did not start: {}", first_line(&format!("{e:#}"))));
                    eprintln!(
                        "bench-capture: {} at {rate}/s did not start: {e:#}",
                        mode.name()
                    );
                    return Ok(step);
                }
            }
        }
    };
    // Let the capturer settle into its loop.
    thread::sleep(Duration::from_millis(300));
    let pid = running.as_ref().map(Running::pid);
    let cpu0 = pid.and_then(proc_cpu).unwrap_or_default();

    step.send = send(net, &traffic, rate, args.seconds)?;

    // Let the capturer drain: hepcap until its JSON lines stop growing; tcpdump past its
    // libpcap block timeout (1 s).
    match mode {
        Capturer::None => {}
        Capturer::Tcpdump | Capturer::TcpdumpImmediate => {
            thread::sleep(Duration::from_millis(1500))
        }
        _ => wait_quiet(&out, Duration::from_secs(1), Duration::from_secs(15))?,
    }
    let cpu1 = pid.and_then(proc_cpu).unwrap_or_default();
    step.cpu = cpu1.saturating_sub(cpu0);
    step.rss_kib = pid.and_then(proc_vm_hwm).unwrap_or(0);

    if let Some(running) = running {
        let text = running.stop()?;
        if mode.is_tcpdump() {
            let c = count_pcap(&out)?;
            step.got_sip = c.sip;
            step.got_rtcp = c.rtcp;
            let stats = TcpdumpStats::parse(&text);
            step.to_user = stats.captured.unwrap_or(c.frames);
            if c.other > 0 {
                step.notes.push(format!("{} other frames", c.other));
            }
            if let Some(d) = stats.dropped.filter(|&d| d > 0) {
                step.notes.push(format!("kernel dropped {d}"));
            }
        } else {
            let c = count_jsonl(&out)?;
            step.got_sip = c.sip;
            step.got_rtcp = c.rtcp;
            let s = HepcapSummary::parse(&text)
                .with_context(|| format!("no exit summary in {}", log.display()))?;
            step.to_user = s.copied;
            step.notes.extend(s.notes());
        }
    }
    if step.delivered() > step.sent() && mode != Capturer::None {
        step.notes
            .push(format!("{} more than sent", step.delivered() - step.sent()));
    }
    if step.send.veth_drops > 0 {
        step.notes
            .push(format!("veth dropped {}", step.send.veth_drops));
    }
    let planned = rate * args.seconds;
    if step.send.total() < planned {
        step.notes.push(format!(
            "sender sent {} of {} in {:.1} s",
            thousands(step.send.total()),
            thousands(planned),
            step.send.elapsed.as_secs_f64()
        ));
    }
    if !args.keep {
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&log);
    }
    Ok(step)
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or_default();
    l.chars().take(120).collect()
}

/// Waits at least `min`, then until `path` has not grown for 400 ms, at most `max`.
fn wait_quiet(path: &Path, min: Duration, max: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    thread::sleep(min);
    let size = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut last = size();
    while start.elapsed() < max {
        check_interrupted()?;
        thread::sleep(Duration::from_millis(400));
        let now = size();
        if now == last {
            break;
        }
        last = now;
    }
    Ok(())
}

/// The figures of hepcap's exit summary used here.
#[derive(Debug, Default)]
struct HepcapSummary {
    copied: u64,
    /// `kernel:` counters by name (eBPF modes).
    kernel: Vec<(String, u64)>,
    /// `lost REASON: N` of the capture, and pipeline `dropped REASON: N`.
    losses: Vec<(String, u64)>,
}

impl HepcapSummary {
    fn parse(text: &str) -> Option<HepcapSummary> {
        let start = text.find("hepcap run: ")?;
        let mut s = HepcapSummary::default();
        let mut seen_capture = false;
        for line in text[start..].lines().skip(1) {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("capture ") {
                let (_, counts) = rest.split_once(": ")?;
                s.copied = counts.split_whitespace().next()?.parse().ok()?;
                seen_capture = true;
            } else if let Some(rest) = t.strip_prefix("kernel: ") {
                for kv in rest.split(", ") {
                    if let Some((k, v)) = kv.rsplit_once(' ') {
                        s.kernel.push((k.to_string(), v.parse().unwrap_or(0)));
                    }
                }
            } else if let Some((reason, n)) = t
                .strip_prefix("lost ")
                .or_else(|| t.strip_prefix("dropped "))
                .and_then(|rest| rest.rsplit_once(": "))
            {
                s.losses
                    .push((reason.to_string(), n.trim().parse().unwrap_or(0)));
            }
        }
        seen_capture.then_some(s)
    }

    fn kernel(&self, name: &str) -> Option<u64> {
        self.kernel.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(n) = self.kernel("output_failed").filter(|&n| n > 0) {
            notes.push(format!("kernel output_failed {n}"));
        }
        for (reason, n) in &self.losses {
            if *n > 0 {
                notes.push(format!("{reason} {n}"));
            }
        }
        notes
    }
}

#[derive(Debug, Default)]
struct TcpdumpStats {
    captured: Option<u64>,
    dropped: Option<u64>,
}

impl TcpdumpStats {
    fn parse(text: &str) -> TcpdumpStats {
        let mut s = TcpdumpStats::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let n = words.next().and_then(|w| w.parse::<u64>().ok());
            let rest: Vec<&str> = words.collect();
            if rest.starts_with(&["packets", "captured"]) {
                s.captured = n;
            } else if rest.starts_with(&["packets", "dropped", "by", "kernel"]) {
                s.dropped = n;
            }
        }
        s
    }
}

#[derive(Debug, Default)]
struct Counts {
    sip: u64,
    rtcp: u64,
    frames: u64,
    other: u64,
}

/// hepcap's JSON lines by `proto_type`.
fn count_jsonl(path: &Path) -> anyhow::Result<Counts> {
    let mut c = Counts::default();
    let Ok(f) = File::open(path) else {
        return Ok(c);
    };
    for line in BufReader::with_capacity(1 << 20, f).lines() {
        let line = line.with_context(|| format!("read {}", path.display()))?;
        if line.contains("\"proto_type\":1,") {
            c.sip += 1;
        } else if line.contains("\"proto_type\":5,") {
            c.rtcp += 1;
        } else {
            c.other += 1;
        }
    }
    Ok(c)
}

/// tcpdump's file (classic pcap, Ethernet): SIP (UDP port 5060) and RTCP (v2, PT 200-207).
fn count_pcap(path: &Path) -> anyhow::Result<Counts> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut global = [0u8; 24];
    r.read_exact(&mut global)
        .with_context(|| format!("{}: no pcap header", path.display()))?;
    let magic = u32::from_le_bytes([global[0], global[1], global[2], global[3]]);
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => bail!("{}: not a classic pcap file", path.display()),
    };
    let u32_at = |b: &[u8], i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut c = Counts::default();
    let mut rec = [0u8; 16];
    let mut data = Vec::new();
    loop {
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            // tcpdump stopped by a signal may leave a partial record: the end either way.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        }
        let incl = u32_at(&rec, 8) as usize;
        anyhow::ensure!(
            incl <= 262_144,
            "{}: record of {incl} bytes",
            path.display()
        );
        data.resize(incl, 0);
        if r.read_exact(&mut data).is_err() {
            break;
        }
        c.frames += 1;
        match classify_frame(&data) {
            Some(Kind::Sip) => c.sip += 1,
            Some(Kind::Rtcp) => c.rtcp += 1,
            _ => c.other += 1,
        }
    }
    Ok(c)
}

fn classify_frame(f: &[u8]) -> Option<Kind> {
    let mut o = 12;
    let mut ethertype = u16::from_be_bytes([*f.get(o)?, *f.get(o + 1)?]);
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        o += 4;
        ethertype = u16::from_be_bytes([*f.get(o)?, *f.get(o + 1)?]);
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = f.get(o + 2..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
    if *ip.get(9)? != 17 || frag != 0 {
        return None;
    }
    let udp = ip.get(ihl..)?;
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let payload = udp.get(8..)?;
    if sport == SIP_PORT || dport == SIP_PORT {
        return Some(Kind::Sip);
    }
    let (b0, b1) = (*payload.first()?, *payload.get(1)?);
    if b0 & 0xc0 == 0x80 && (200..=207).contains(&b1) {
        return Some(Kind::Rtcp);
    }
    Some(Kind::Rtp)
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// CPU time of a process: the sum of its threads' run time in /proc/PID/task/*/schedstat
/// (nanoseconds; /proc/PID/stat counts in 10 ms ticks, too coarse for tcpdump), else user +
/// sys from /proc/PID/stat. The capturers' threads live as long as they do, so the sum over
/// the threads alive at each reading is the process's.
fn proc_cpu(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    let mut any = false;
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        if let Some(v) = text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            ns += v;
            any = true;
        }
    }
    if any {
        return Some(Duration::from_nanos(ns));
    }
    proc_stat_cpu(pid)
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Report

fn report(args: &Args, hepcap: Option<&Path>, filter: &str, net: &Netns, steps: &[Step]) {
    println!();
    println!("== hepcap live capture benchmark (veth between two network namespaces) ==");
    println!(
        "host:      kernel {}, {} CPUs online, nothing pinned; sender: one thread, sendmmsg \
         (4-64 per call), paced per batch",
        kernel_release(),
        online_cpus()
    );
    println!(
        "traffic:   per 110 packets: INVITE+200 (SDP) +ACK of a new call, 5 RTCP (SR+SDES) of \
         calls {} ms old, BYE+200 of calls {} ms old, 100 RTP (172 B, PT 0); {} s per rate",
        args.rtcp_after_ms,
        2 * args.rtcp_after_ms,
        args.seconds
    );
    if let Some(bin) = hepcap {
        println!(
            "hepcap:    {} run --capture MODE -i {} --jsonl FILE --rtcp-uncorrelated send{}{}",
            bin.display(),
            net.capture_if,
            if args.rtcp_heuristic {
                " --rtcp-heuristic"
            } else {
                ""
            },
            if args.hepcap_args.trim().is_empty() {
                String::new()
            } else {
                format!(" {}", args.hepcap_args.trim())
            }
        );
    }
    println!(
        "tcpdump:   tcpdump -i {} -n -s 65535 -B 8192 -Z root -w FILE '<filter>'",
        net.capture_if
    );
    println!("filter:    {filter}");
    println!(
        "columns:   sent/got = SIP+RTCP packets; to user = packets the capturer got in user \
         space; cpu = its CPU time over the traffic and drain; s/Mpkt = cpu seconds per million \
         packets to user; sndr = the sending thread's CPU (its send calls run the veth's receive \
         path in softirq, capture taps included)"
    );
    println!();
    let header = format!(
        "{:>8} {:<17} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7}  {}",
        "rate/s",
        "capture",
        "achieved/s",
        "wire",
        "sent SIP",
        "got SIP",
        "snt RTCP",
        "got RTCP",
        "lost",
        "to user",
        "cpu s",
        "s/Mpkt",
        "RSS MiB",
        "sndr s",
        "notes"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len().min(150)));
    let mut last_rate = None;
    for s in steps {
        if last_rate.is_some_and(|r| r != s.rate) {
            println!();
        }
        last_rate = Some(s.rate);
        let capturing = s.mode != Capturer::None;
        let dash = || "-".to_string();
        println!(
            "{:>8} {:<17} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7.2}  {}",
            thousands(s.rate),
            s.label,
            thousands(s.send.achieved() as u64),
            thousands(s.send.wire),
            thousands(s.send.sip),
            if capturing {
                thousands(s.got_sip)
            } else {
                dash()
            },
            thousands(s.send.rtcp),
            if capturing {
                thousands(s.got_rtcp)
            } else {
                dash()
            },
            s.lost().map_or_else(dash, thousands),
            if capturing {
                thousands(s.to_user)
            } else {
                dash()
            },
            if capturing {
                format!("{:.2}", s.cpu.as_secs_f64())
            } else {
                dash()
            },
            s.cpu_per_m().map_or_else(dash, |v| format!("{v:.2}")),
            if s.rss_kib > 0 {
                format!("{:.1}", s.rss_kib as f64 / 1024.0)
            } else {
                dash()
            },
            s.send.cpu.as_secs_f64(),
            s.notes.join("; ")
        );
    }
    targets(steps);
}

/// The two targets, judged per rate.
fn targets(steps: &[Step]) {
    let mut rates: Vec<u64> = steps.iter().map(|s| s.rate).collect();
    rates.dedup();
    let find = |rate: u64, mode: Capturer| steps.iter().find(|s| s.rate == rate && s.mode == mode);
    println!();
    println!("target 1: no loss at every rate where tcpdump loses none");
    for &rate in &rates {
        let Some(td) = find(rate, Capturer::Tcpdump) else {
            continue;
        };
        let hep: Vec<&Step> = steps
            .iter()
            .filter(|s| s.rate == rate && s.mode.is_hepcap())
            .collect();
        let detail: Vec<String> = hep
            .iter()
            .map(|s| {
                if s.to_user == 0 && s.label.ends_with("(failed)") {
                    format!("{} did not run", s.mode.name())
                } else {
                    format!("{} lost {}", s.label, s.lost().unwrap_or(0))
                }
            })
            .collect();
        let td_lost = td.lost().unwrap_or(0);
        let verdict = if td_lost > 0 {
            format!("not applicable (tcpdump lost {td_lost})")
        } else if hep.iter().all(|s| s.lost() == Some(0) && s.to_user > 0) {
            "MET".to_string()
        } else {
            "MISSED".to_string()
        };
        println!(
            "  {:>8}/s: tcpdump lost {td_lost}; {} -> {verdict}",
            thousands(rate),
            detail.join(", ")
        );
    }
    println!("target 2: eBPF CPU per captured packet <= pcap mode's (cpu s per million packets)");
    for &rate in &rates {
        let (Some(e), Some(p)) = (find(rate, Capturer::Ebpf), find(rate, Capturer::Pcap)) else {
            continue;
        };
        let (Some(ev), Some(pv)) = (e.cpu_per_m(), p.cpu_per_m()) else {
            println!("  {:>8}/s: no figure (a mode did not run)", thousands(rate));
            continue;
        };
        let xdp: Vec<String> = steps
            .iter()
            .filter(|s| s.rate == rate && matches!(s.mode, Capturer::Xdp | Capturer::XdpGeneric))
            .filter_map(|s| Some(format!("{} {:.2}", s.label, s.cpu_per_m()?)))
            .collect();
        let td = find(rate, Capturer::Tcpdump)
            .and_then(Step::cpu_per_m)
            .map(|v| format!(", tcpdump {v:.2}"))
            .unwrap_or_default();
        println!(
            "  {:>8}/s: ebpf {ev:.2} vs pcap {pv:.2} -> {} (xdp: {}{td})",
            thousands(rate),
            if ev <= pv { "MET" } else { "MISSED" },
            if xdp.is_empty() {
                "-".to_string()
            } else {
                xdp.join(", ")
            }
        );
    }
    let none: Vec<&Step> = steps.iter().filter(|s| s.mode == Capturer::None).collect();
    if !none.is_empty() {
        println!(
            "kernel side (indicative; the sender also slows when it shares the CPUs): the sender \
             thread's CPU per packet on the wire over the no-capture baseline at the same rate \
             (the veth's receive path, taps and filters run in softirq inside its send calls), \
             ns; then capturer + that kernel CPU per packet to user, us:"
        );
        for base in none {
            let rows: Vec<String> = steps
                .iter()
                .filter(|s| s.rate == base.rate && s.mode != Capturer::None)
                .map(|s| {
                    let per_wire = |r: &SendReport| r.cpu.as_secs_f64() / r.wire.max(1) as f64;
                    let extra = per_wire(&s.send) - per_wire(&base.send);
                    let total = (s.cpu.as_secs_f64() + extra.max(0.0) * s.send.wire as f64) * 1e6
                        / s.to_user.max(1) as f64;
                    format!("{} {:+.0} ns, {total:.1} us", s.label, extra * 1e9)
                })
                .collect();
            println!("  {:>8}/s: {}", thousands(base.rate), rows.join("; "));
        }
    }
}
