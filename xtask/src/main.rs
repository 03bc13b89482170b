//! `cargo xtask <command>`: project chores that cargo cannot do by itself.
//!
//! This file only dispatches; each command lives in its own module. To add one, add a variant
//! to [`Command`], a module, and a line in `main`.

mod bench_replay;
mod conformance;
mod expected;
mod gen_pcaps;
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
    /// Write the synthetic captures `pcaps/synth__*` (deterministic; commit the result).
    GenPcaps(gen_pcaps::Args),
    /// Regenerate `pcaps/expected/<file>.tsv` with tshark for every capture in `pcaps/`.
    Expected(expected::Args),
    /// Compare hepcap's JSON lines with tshark, live, for every capture in the corpus.
    Conformance(conformance::Args),
    /// Time `hepcap replay` on 1M generated SIP messages into a counting UDP receiver and
    /// into JSON lines; print rates, delivery, CPU and peak RSS.
    BenchReplay(bench_replay::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::GenPcaps(args) => gen_pcaps::run(args),
        Command::Expected(args) => expected::run(args),
        Command::Conformance(args) => conformance::run(args),
        Command::BenchReplay(args) => bench_replay::run(args),
    }
}
