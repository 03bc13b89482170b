//! Command-line interface. Flag names are a contract with operators' scripts: extend, never
//! rename.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::hep::NodeIdentity;
use crate::sink::HepTarget;

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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay pcap/pcapng files through the capture decode path into the sinks.
    Replay(ReplayArgs),
}

/// Where records go and how the agent names itself. Shared by every command that sends.
#[derive(Debug, Args, Clone)]
pub struct SinkArgs {
    /// HEP collector, udp://HOST:PORT or tcp://HOST:PORT. Repeatable: every destination gets
    /// every record.
    #[arg(long = "hep", value_name = "URL")]
    pub hep: Vec<HepTarget>,

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
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("speed must be a positive number, got {s}"))
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
        let Command::Replay(r) = cli.command;
        assert_eq!(r.files.len(), 2);
        assert_eq!(r.sinks.hep.len(), 2);
        assert_eq!(r.sinks.node_id, 7);
        assert_eq!(r.speed, Some(2.0));
        assert_eq!(r.loops, 0);
        assert!(Cli::try_parse_from(["hepcap", "replay", "a", "--speed", "0"]).is_err());
        assert!(Cli::try_parse_from(["hepcap", "replay", "a", "--hep", "9060"]).is_err());
    }
}
