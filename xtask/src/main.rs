//! `cargo xtask <command>`: project chores that cargo cannot do by itself.
//!
//! This file only dispatches; each command lives in its own module. To add one, add a variant
//! to [`Command`], a module, and a line in `main`.

mod bench_capture;
mod bench_pipeline;
mod bench_reassembly;
mod bench_relay;
mod bench_replay;
mod chores;
mod conformance;
mod expected;
mod gen_pcaps;
mod measure;
mod siptraffic;
mod tshark;
mod workspace;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "hepcap project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what a fresh machine lacks (scripts/setup.sh).
    Setup,
    /// Set up, then run every test: `cargo test --workspace` and the conformance suite.
    Test,
    /// Set up, build, and replay a bundled capture into JSON lines and HEP over UDP.
    Demo,
    /// Write the synthetic captures `pcaps/synth__*` (deterministic; commit the result).
    GenPcaps(gen_pcaps::Args),
    /// Regenerate `pcaps/expected/<file>.tsv` with tshark for every capture in `pcaps/`.
    Expected(expected::Args),
    /// Compare hepcap's JSON lines with tshark, live, for every capture in the corpus.
    Conformance(conformance::Args),
    /// Time `hepcap replay` on 1M generated SIP messages into a counting UDP receiver and
    /// into JSON lines; print rates, delivery, CPU and peak RSS.
    BenchReplay(bench_replay::Args),
    /// Time `hepcap run` relaying HEPv3 over UDP against a plain recvmmsg/sendmmsg forwarder;
    /// print both delivered rates, the ratio, hepcap's CPU, peak RSS and drop counters.
    BenchRelay(bench_relay::Args),
    /// Records/s through ring + dispatcher into a null sink (1, 2, 4 producers), and the
    /// spool's write/replay MB/s beside a plain sequential write measured in the same run.
    BenchPipeline(bench_pipeline::Args),
    /// Live capture under load (root): SIP, RTCP and 10x RTP over a veth between two network
    /// namespaces at increasing rates, captured by hepcap (ebpf, xdp, pcap) and by tcpdump;
    /// print delivered vs sent, CPU per captured packet and peak RSS.
    BenchCapture(bench_capture::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup => chores::setup(),
        Command::Test => chores::test(),
        Command::Demo => chores::demo(),
        Command::GenPcaps(args) => gen_pcaps::run(args),
        Command::Expected(args) => expected::run(args),
        Command::Conformance(args) => conformance::run(args),
        Command::BenchReplay(args) => bench_replay::run(args),
        Command::BenchRelay(args) => bench_relay::run(args),
        Command::BenchPipeline(args) => bench_pipeline::run(args),
        Command::BenchCapture(args) => bench_capture::run(args),
    }
}
