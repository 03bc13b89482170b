//! `cargo xtask gen-pcaps`: writes the synthetic captures `pcaps/synth__*`.
//!
//! The output is deterministic (fixed times, addresses, tags and Call-IDs; no randomness), so
//! the committed files can be checked against a fresh run with `--check`. After changing a
//! fixture, run this and then `cargo xtask expected` to refresh tshark's view of it.

mod capture;
mod fixtures;
mod packet;
pub mod rtcp;
mod sip;

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::workspace;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write into (default: the workspace's `pcaps/`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write nothing; fail if a committed file differs from what would be generated.
    #[arg(long)]
    check: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args { out, check } = args;
    let dir = out.unwrap_or_else(workspace::pcaps_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;

    let mut stale = Vec::new();
    let mut all = fixtures::all()?;
    all.push(fixtures::Fixture {
        name: rtcp::NAME,
        exercises: rtcp::EXERCISES,
        bytes: rtcp::build()?,
    });
    for fixture in all {
        let path = dir.join(fixture.name);
        if check {
            let current = std::fs::read(&path).unwrap_or_default();
            let verdict = if current == fixture.bytes {
                "ok"
            } else {
                stale.push(fixture.name);
                "DIFFERS"
            };
            println!("{verdict:8} {}", fixture.name);
        } else {
            std::fs::write(&path, &fixture.bytes)
                .with_context(|| format!("write {}", path.display()))?;
            println!(
                "wrote {:40} {:6} bytes  {}",
                fixture.name,
                fixture.bytes.len(),
                fixture.exercises
            );
        }
    }
    if !stale.is_empty() {
        bail!(
            "{} synthetic capture(s) differ from the generator: {}; run `cargo xtask gen-pcaps`",
            stale.len(),
            stale.join(", ")
        );
    }
    Ok(())
}
