//! Command-line interface. Flag names are a contract with operators' scripts: extend, never
//! rename.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::hep::NodeIdentity;
use crate::pipeline::WhenFull;
use crate::sink::HepTarget;
use crate::source::hep_listen::ListenAddr;

/// SIP/RTCP capture agent that speaks HEPv3 to Homer, sngrep and other collectors.
#[derive(Debug, Parser)]
#[command(name = "hepcap", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More logging: -v debug, -vv trace. RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr, and no exit summary.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log level (error, warn, info, debug, trace, or a RUST_LOG-style filter). RUST_LOG
    /// overrides it; -v and -q are shorthands.
    #[arg(long, value_name = "FILTER", global = true)]
    pub log_level: Option<String>,

    /// Log line format on stderr: text, or json (one object per line, for log shippers).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

/// How several HEP destinations share the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HepMode {
    /// Every destination gets every record.
    Fanout,
    /// One destination at a time, in order; the next takes over when it fails.
    Failover,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How the pipeline delivers, shared by every command that sends.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// Serve Prometheus metrics on ADDR (`/metrics`, `/healthz`, `/readyz`), e.g.
    /// 127.0.0.1:9100.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Keep serving --metrics this many seconds after the run ends, so that a scraper
    /// collects the final values of a short replay.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub metrics_hold: u64,

    /// Records per batch handed from the dispatcher to the sinks (one sendmmsg or vectored
    /// write per batch).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub batch_size: usize,

    /// A batch that is not full leaves after this many microseconds (latency bound).
    #[arg(long, value_name = "USECS", default_value_t = 1000)]
    pub batch_timeout_us: u64,

    /// On SIGINT/SIGTERM, how many seconds the sinks get to drain their queues; what is left
    /// then is spooled by tcp/tls destinations with --spool-dir, else counted as dropped
    /// (`shutdown`).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Records per second each HEP destination gets at most (token bucket, a tenth of a
    /// second of burst). Unlimited when absent.
    #[arg(long, value_name = "PPS")]
    pub hep_rate_limit: Option<u64>,

    /// What happens over --hep-rate-limit: delay (wait; the sink queue fills, then
    /// `queue_full` drops) or drop (counted `rate_limited`).
    #[arg(long, value_enum, default_value = "delay")]
    pub hep_rate_policy: crate::pipeline::RatePolicy,

    /// Consecutive failed batches (records lost, or spooled) that open a sink's circuit
    /// breaker (0: no breaker). While open, batches are spooled where --spool-dir gives the
    /// sink a spool, else dropped as `breaker_open`; one probe goes through per cool-down.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub breaker_failures: u32,

    /// Milliseconds an open breaker waits before letting a probe batch through.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub breaker_cool_down_ms: u64,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
pub enum Command {
    /// Replay pcap/pcapng files through the capture decode path into the sinks.
    Replay(ReplayArgs),
    /// Run the agent: capture SIP and RTCP live and receive HEP from other agents until
    /// Ctrl-C or SIGTERM, then flush the sinks and exit 0.
    Run(RunArgs),
    /// Probe this host: kernel, BTF, capabilities, eBPF program and map types, and which
    /// capture modes work here, each with yes or no and why.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the report as one JSON object ({"kernel": ..., "items": [{"name", "ok", "why"}]}).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub live: CaptureArgs,

    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// Where records go and how the agent names itself. Shared by every command that sends.
#[derive(Debug, Args, Clone)]
pub struct SinkArgs {
    /// HEP collector, udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT. Repeatable: see
    /// --hep-mode.
    #[arg(long = "hep", value_name = "URL")]
    pub hep: Vec<HepTarget>,

    /// With several --hep: fanout (every destination gets every record) or failover (the
    /// first healthy destination in the order given gets them; the rest are backups).
    #[arg(long, value_enum, default_value = "fanout")]
    pub hep_mode: HepMode,

    /// Directory of the disk spool of tcp:// and tls:// destinations (one subdirectory each):
    /// while a collector is down, records wait there and are sent, in order, before live ones
    /// once it is back; they survive a restart. Without it a down collector's records are
    /// dropped as `sink_down`.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Bytes each destination's spool may hold; when full the oldest segment is deleted and
    /// its records counted `spool_full`.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,

    /// Write one JSON object per record to PATH, or to standard output with `-`. The default
    /// when no sink is given is `--jsonl -`.
    #[arg(long, value_name = "PATH")]
    pub jsonl: Option<String>,

    /// HEP capture agent id (chunk 0x000c).
    #[arg(long, value_name = "N", default_value_t = 2002)]
    pub node_id: u32,

    /// HEP capture agent name (chunk 0x0013).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// HEP authentication key (chunk 0x000e).
    #[arg(long, value_name = "KEY")]
    pub node_password: Option<String>,

    /// PEM file of the certificate authorities that sign tls:// collectors' certificates
    /// (default: the system's trust store is not used; give this or --tls-insecure).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Do not verify tls:// collectors' certificates (logged as a warning).
    #[arg(long)]
    pub tls_insecure: bool,
}

impl SinkArgs {
    pub fn identity(&self) -> NodeIdentity {
        NodeIdentity {
            node_id: self.node_id,
            node_name: self.node_name.clone(),
            password: self.node_password.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files (pcap or pcapng), replayed in the order given.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub sinks: SinkArgs,

    /// Keep the capture's gaps between packets instead of replaying as fast as possible.
    #[arg(long)]
    pub pace: bool,

    /// Scale the gaps: 2 replays twice as fast, 0.5 half as fast. Implies --pace.
    #[arg(long, value_name = "F", value_parser = parse_speed)]
    pub speed: Option<f64>,

    /// Stamp records with the current time instead of the capture time.
    #[arg(long)]
    pub restamp: bool,

    /// Replay the files N times; 0 repeats until Ctrl-C.
    #[arg(long = "loop", value_name = "N", default_value_t = 1)]
    pub loops: u64,

    #[command(flatten)]
    pub decode: DecodeArgs,

    #[command(flatten)]
    pub correlate: CorrelateArgs,

    /// Records the pipeline's ring holds between the replay and the sinks.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub ring_capacity: usize,

    /// What a full ring or sink queue does. block (default): the replay slows to the slowest
    /// sink's pace and nothing is dropped. drop-newest / drop-oldest: the replay runs at full
    /// speed and what does not fit is dropped and counted, as live capture would.
    #[arg(long, value_enum, default_value = "block")]
    pub when_full: WhenFull,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// What `--capture` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CaptureMode {
    /// eBPF socket filter when this host allows it, otherwise libpcap; the reason for the
    /// fallback is logged once.
    Auto,
    /// eBPF socket filter on AF_PACKET sockets (all interfaces, or each --interface).
    Ebpf,
    /// XDP on each --interface (ingress only; SPAN/mirror ports). Native mode, else generic.
    Xdp,
    /// libpcap with a generated classic BPF filter (or --bpf).
    Pcap,
    /// No live capture: only HEP listeners feed the pipeline.
    None,
}

impl CaptureMode {
    /// The live capture this mode asks for; `None` for `none`.
    pub fn live(self) -> Option<crate::capture::Mode> {
        use crate::capture::Mode;
        match self {
            CaptureMode::Auto => Some(Mode::Auto),
            CaptureMode::Ebpf => Some(Mode::Ebpf),
            CaptureMode::Xdp => Some(Mode::Xdp),
            CaptureMode::Pcap => Some(Mode::Pcap),
            CaptureMode::None => None,
        }
    }
}

/// Live capture: where, how much, and what besides SIP.
#[derive(Debug, Args, Clone)]
pub struct CaptureArgs {
    /// Interface to capture on. Repeatable; default: all interfaces (required for xdp).
    #[arg(long = "interface", short = 'i', value_name = "NAME")]
    pub interfaces: Vec<String>,

    /// Bytes of each packet copied to user space at most.
    #[arg(long, value_name = "BYTES", default_value_t = 65_535,
          value_parser = clap::value_parser!(u32).range(64..=262_144))]
    pub snaplen: u32,

    /// Also capture UDP that looks like RTCP (version 2, packet type 200-207) on any port,
    /// not only the RTCP endpoints learnt from SDP.
    #[arg(long)]
    pub rtcp_heuristic: bool,

    /// eBPF and XDP modes: for this long after the last SIP packet, UDP that looks like RTCP
    /// is copied even before its endpoint is learnt (the first RTCP of a call can follow its
    /// SDP within a millisecond). The correlator keeps what a call explains. 0: off.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub rtcp_after_sip_ms: u32,

    /// Classic BPF filter expression for --capture pcap, replacing the generated one. With
    /// --capture auto it selects libpcap; --capture ebpf and xdp refuse it.
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,

    /// After start-up (programs attached, capture sockets open), become this user. Every
    /// capability is dropped either way; sinks, spool, --metrics and listeners are opened
    /// afterwards, as this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// Perf ring pages per CPU (eBPF and XDP modes), a power of two.
    #[arg(long, value_name = "PAGES", default_value_t = 256, value_parser = parse_pages)]
    pub perf_pages: usize,

    /// Captured packets queued for the decoder; more are dropped and counted (`queue_full`).
    /// The queue also stops at 256 MiB of packet bytes.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub capture_queue: usize,

    /// How --capture xdp attaches: auto (native, else generic with a warning), native, or
    /// generic.
    #[arg(long, value_enum, default_value = "auto")]
    pub xdp_mode: crate::capture::XdpAttach,
}

impl CaptureArgs {
    /// The live capture these flags, the decoder's and the correlator's describe.
    pub fn options(
        &self,
        mode: crate::capture::Mode,
        decode: &DecodeArgs,
        correlate: &CorrelateArgs,
    ) -> crate::capture::LiveOptions {
        self.options_with(mode, decode, correlate.config(), correlate.dedup(true))
    }

    /// As [`CaptureArgs::options`], with the correlator configured directly.
    pub fn options_with(
        &self,
        mode: crate::capture::Mode,
        decode: &DecodeArgs,
        correlate: crate::correlate::CorrelatorConfig,
        dedup: Option<crate::correlate::dedup::DedupConfig>,
    ) -> crate::capture::LiveOptions {
        let decoder = decode.config();
        crate::capture::LiveOptions {
            mode,
            interfaces: self.interfaces.clone(),
            snaplen: self.snaplen,
            rtcp_heuristic: self.rtcp_heuristic,
            rtcp_after_sip_ms: self.rtcp_after_sip_ms,
            bpf: self.bpf.clone(),
            perf_pages: self.perf_pages,
            queue_frames: self.capture_queue,
            xdp_attach: self.xdp_mode,
            sip_ports: decoder.sip_ports.clone(),
            decoder,
            correlate,
            dedup,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Live capture mode.
    #[arg(long, value_enum, default_value = "auto")]
    pub capture: CaptureMode,

    #[command(flatten)]
    pub live: CaptureArgs,

    #[command(flatten)]
    pub decode: DecodeArgs,

    #[command(flatten)]
    pub correlate: CorrelateArgs,

    /// Receive HEP on udp://ADDR:PORT, tcp://ADDR:PORT or tls://ADDR:PORT. Repeatable.
    #[arg(long = "hep-listen", value_name = "URL")]
    pub hep_listen: Vec<ListenAddr>,

    /// Reject received HEP whose password (chunk 0x000e) is not KEY, or is missing.
    #[arg(long, value_name = "KEY")]
    pub hep_listen_password: Option<String>,

    /// Receive buffer of UDP listeners, bytes. As root it may exceed net.core.rmem_max; the
    /// size the kernel granted is logged at start.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub hep_listen_rcvbuf: usize,

    /// Open connections per TCP/TLS listener; more are closed on accept and counted.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub hep_listen_max_connections: usize,

    /// Close a TCP/TLS connection that sent nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub hep_listen_idle_timeout: u64,

    /// Largest payload a compressed chunk (0x0010) may inflate to; more is rejected.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    pub hep_listen_max_inflated: usize,

    /// Certificate chain (PEM) of tls:// listeners.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of tls:// listeners.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Rewrite the node id (chunk 0x000c) of relayed HEP. Other chunks stay byte for byte.
    #[arg(long, value_name = "N")]
    pub relay_node_id: Option<u32>,

    /// Rewrite the node name (chunk 0x0013) of relayed HEP.
    #[arg(long, value_name = "NAME")]
    pub relay_node_name: Option<String>,

    /// Rewrite the password (chunk 0x000e) of relayed HEP.
    #[arg(long, value_name = "KEY")]
    pub relay_password: Option<String>,

    /// Rewrite the password of relayed HEP with --node-password (heplify's -replacetoken).
    #[arg(long, alias = "replacetoken")]
    pub replace_token: bool,

    /// Records the pipeline's ring holds between sources and sinks.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub ring_capacity: usize,

    /// What a full ring does: drop-newest (keep what is queued) or drop-oldest. `block` is
    /// refused here: a listener must never wait for a sink (the kernel would drop instead).
    #[arg(long, value_enum, default_value = "drop-newest")]
    pub when_full: WhenFull,

    #[command(flatten)]
    pub sinks: SinkArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// On or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// RTCP correlation and duplicate suppression; shared by replay and live capture.
#[derive(Debug, Args, Clone)]
pub struct CorrelateArgs {
    /// RTCP that matches no call's SDP: drop it (counted as rtcp_uncorrelated; Homer stores no
    /// RTCP without a Call-ID) or send it without a correlation id.
    #[arg(long, value_enum, value_name = "WHAT", default_value = "drop")]
    pub rtcp_uncorrelated: crate::correlate::Uncorrelated,

    /// How long RTCP waits for the SDP that explains it (arrival order is not guaranteed),
    /// milliseconds of capture time; 0 gives up at once.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub rtcp_hold_ms: u64,

    /// RTCP datagrams held at most while waiting; the oldest is given up beyond.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub rtcp_hold_max: usize,

    /// Seconds RTCP is still tied to a call after its BYE or CANCEL.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub rtcp_bye_grace: u64,

    /// RTCP addresses and learned SSRCs kept at most (each); the oldest is evicted beyond.
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub rtcp_max_entries: usize,

    /// Drop the same datagram (addresses, ports, payload) seen again within
    /// --dedup-window-ms, counted as duplicate. Default: off for replay (a capture file holds
    /// each packet once), on for live capture. SIP retransmissions (500 ms apart) are kept.
    #[arg(long, value_enum, value_name = "ON|OFF")]
    pub dedup: Option<OnOff>,

    /// Window of --dedup, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub dedup_window_ms: u64,
}

impl CorrelateArgs {
    /// The correlator configuration these flags describe.
    pub fn config(&self) -> crate::correlate::CorrelatorConfig {
        let CorrelateArgs {
            rtcp_uncorrelated,
            rtcp_hold_ms,
            rtcp_hold_max,
            rtcp_bye_grace,
            rtcp_max_entries,
            dedup: _,
            dedup_window_ms: _,
        } = self.clone();
        crate::correlate::CorrelatorConfig {
            calls: crate::correlate::calls::CallTableConfig {
                max_addresses: rtcp_max_entries,
                max_ssrcs: rtcp_max_entries,
                bye_grace_us: rtcp_bye_grace.saturating_mul(1_000_000),
                ..Default::default()
            },
            hold_us: rtcp_hold_ms.saturating_mul(1_000),
            hold_max: rtcp_hold_max,
            uncorrelated: rtcp_uncorrelated,
        }
    }

    /// Duplicate suppression, when on; `live` gives the default when --dedup is not given.
    pub fn dedup(&self, live: bool) -> Option<crate::correlate::dedup::DedupConfig> {
        let on = self.dedup.map_or(live, |d| d == OnOff::On);
        on.then(|| crate::correlate::dedup::DedupConfig {
            window_us: self.dedup_window_ms.saturating_mul(1_000),
            ..Default::default()
        })
    }
}

fn parse_pages(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n == 0 || !n.is_power_of_two() || n > 65_536 {
        return Err(format!("{n} is not a power of two between 1 and 65536"));
    }
    Ok(n)
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("speed must be a positive number, got {s}"))
    }
}

/// What the decoder treats as SIP and how much reassembly state it may keep; shared by replay
/// and live capture.
#[derive(Debug, Args, Clone)]
pub struct DecodeArgs {
    /// TCP ports whose streams are SIP (at either end), e.g. 5060-5090,6060. A TCP stream on
    /// another port is SIP too when its first payload is a SIP start line or a WebSocket
    /// upgrade.
    #[arg(long, value_name = "PORTS", default_value = "5060-5061")]
    pub sip_ports: crate::decode::PortSet,

    /// UDP destination port of VXLAN.
    #[arg(long, value_name = "PORT", default_value_t = 4789)]
    pub vxlan_port: u16,

    /// Nested encapsulations (GRE, VXLAN, IP-in-IP, PPPoE, MPLS) followed.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_tunnel_depth: u8,

    /// IP datagrams being reassembled at once; the oldest is evicted at the limit.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub frag_max_entries: usize,

    /// Bytes held by IP reassembly; the oldest datagram is evicted at the limit.
    #[arg(long, value_name = "BYTES", default_value_t = 32 << 20)]
    pub frag_max_bytes: usize,

    /// Seconds after its first fragment that an incomplete datagram is dropped.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub frag_timeout: u64,

    /// TCP flows (one per direction) tracked at once; the least recently active is evicted.
    #[arg(long, value_name = "N", default_value_t = 16_384)]
    pub tcp_max_flows: usize,

    /// Bytes buffered over all TCP flows; the least recently active flow is evicted.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub tcp_max_bytes: usize,

    /// Seconds without a segment after which a TCP flow is forgotten.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub tcp_idle_timeout: u64,

    /// Largest SIP message (or WebSocket message) reassembled from a TCP stream.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 10)]
    pub tcp_max_message: usize,
}

impl DecodeArgs {
    /// The decoder configuration these flags describe.
    pub fn config(&self) -> crate::decode::DecoderConfig {
        let DecodeArgs {
            sip_ports,
            vxlan_port,
            max_tunnel_depth,
            frag_max_entries,
            frag_max_bytes,
            frag_timeout,
            tcp_max_flows,
            tcp_max_bytes,
            tcp_idle_timeout,
            tcp_max_message,
        } = self.clone();
        let defaults = crate::decode::DecoderConfig::default();
        crate::decode::DecoderConfig {
            sip_ports,
            vxlan_port,
            max_depth: max_tunnel_depth,
            defrag: crate::reassembly::DefragConfig {
                max_entries: frag_max_entries,
                max_bytes: frag_max_bytes,
                timeout_us: frag_timeout.saturating_mul(1_000_000),
                ..defaults.defrag
            },
            tcp: crate::reassembly::TcpConfig {
                max_flows: tcp_max_flows,
                max_bytes: tcp_max_bytes,
                idle_timeout_us: tcp_idle_timeout.saturating_mul(1_000_000),
                max_message: tcp_max_message,
                ..defaults.tcp
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn correlation_flags() {
        let cli = Cli::try_parse_from([
            "hepcap",
            "replay",
            "a.pcap",
            "--rtcp-uncorrelated",
            "send",
            "--rtcp-hold-ms",
            "500",
            "--dedup",
            "on",
            "--dedup-window-ms",
            "20",
        ])
        .unwrap();
        let Command::Replay(r) = cli.command else {
            panic!("replay")
        };
        let c = r.correlate.config();
        assert_eq!(c.uncorrelated, crate::correlate::Uncorrelated::Send);
        assert_eq!(c.hold_us, 500_000);
        assert_eq!(r.correlate.dedup(false).map(|d| d.window_us), Some(20_000));
        assert!(Cli::try_parse_from(["hepcap", "replay", "a", "--dedup", "maybe"]).is_err());
    }

    #[test]
    fn replay_flags() {
        let cli = Cli::try_parse_from([
            "hepcap",
            "replay",
            "a.pcap",
            "b.pcapng",
            "--hep",
            "udp://127.0.0.1:9060",
            "--hep",
            "tcp://[::1]:9061",
            "--jsonl",
            "-",
            "--node-id",
            "7",
            "--speed",
            "2",
            "--loop",
            "0",
        ])
        .unwrap();
        let Command::Replay(r) = cli.command else {
            panic!("replay")
        };
        assert_eq!(r.files.len(), 2);
        assert_eq!(r.sinks.hep.len(), 2);
        assert_eq!(r.sinks.node_id, 7);
        assert_eq!(r.speed, Some(2.0));
        assert_eq!(r.loops, 0);
        assert_eq!(
            r.correlate.config(),
            crate::correlate::CorrelatorConfig::default()
        );
        assert_eq!(r.correlate.dedup(false), None);
        assert!(r.correlate.dedup(true).is_some());
        assert!(Cli::try_parse_from(["hepcap", "replay", "a", "--speed", "0"]).is_err());
        assert!(Cli::try_parse_from(["hepcap", "replay", "a", "--hep", "9060"]).is_err());
    }

    #[test]
    fn run_flags() {
        let cli = Cli::try_parse_from([
            "hepcap",
            "run",
            "--capture",
            "none",
            "--hep-listen",
            "udp://127.0.0.1:9060",
            "--hep-listen",
            "tls://[::]:9061",
            "--hep-listen-password",
            "pw",
            "--hep",
            "udp://127.0.0.1:9070",
            "--replacetoken",
            "--node-password",
            "x",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!("run")
        };
        assert_eq!(r.hep_listen.len(), 2);
        assert_eq!(r.hep_listen_password.as_deref(), Some("pw"));
        assert!(r.replace_token);
        assert_eq!(r.when_full, WhenFull::DropNewest);
        assert!(Cli::try_parse_from(["hepcap", "run", "--hep-listen", "9060"]).is_err());
    }
}
