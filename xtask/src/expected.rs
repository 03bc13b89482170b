//! `cargo xtask expected`: regenerates `pcaps/expected/<file>.tsv` with tshark for every
//! capture in `pcaps/` that tshark can open.
//!
//! The files are tshark's output verbatim (header line included), so a reviewer can rerun the
//! printed command and diff. A capture tshark cannot open gets no file; one tshark reads only
//! partly (a truncated pcap) keeps the rows tshark printed before the damage. Run this once
//! after adding a capture or changing the tshark command, and commit the result.

use anyhow::{Context, bail};

use crate::{tshark, workspace};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write nothing; fail if a committed file differs from tshark's output now.
    #[arg(long)]
    check: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args { check } = args;
    let dir = workspace::expected_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    println!("tshark: {}", tshark::version()?);
    println!("command: {}", tshark::command_line("pcaps/<file>"));

    let mut wanted = Vec::new();
    let mut differ = Vec::new();
    for capture in workspace::captures_in(&workspace::pcaps_dir())? {
        let name = workspace::file_name(&capture)?.to_owned();
        // Files that need reassembly are compared message by message (cases::REASSEMBLED).
        let out = match crate::conformance::cases::reassembled(&name) {
            Some((extra, _)) => tshark::run_messages(&capture, extra)?,
            None => tshark::run(&capture)?,
        };
        let complaint = tshark::stderr_text(&out);
        if out.stdout.is_empty() {
            println!("{name}: tshark cannot open it, no expected file ({complaint})");
            continue;
        }
        let rows = String::from_utf8_lossy(&out.stdout)
            .lines()
            .count()
            .saturating_sub(1);
        if !out.status.success() {
            println!(
                "{name}: tshark {} after {rows} rows: {complaint}",
                out.status
            );
        }

        let target = dir.join(format!("{name}.tsv"));
        wanted.push(target.clone());
        if check {
            let committed = std::fs::read(&target).unwrap_or_default();
            let verdict = if committed == out.stdout {
                "ok"
            } else {
                differ.push(name.clone());
                "DIFFERS"
            };
            println!("{verdict:8} {name}.tsv ({rows} rows)");
        } else {
            std::fs::write(&target, &out.stdout)
                .with_context(|| format!("write {}", target.display()))?;
            println!("wrote    {name}.tsv ({rows} rows)");
        }
    }

    // Expected files whose capture is gone.
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        let is_tsv = path.extension().is_some_and(|e| e == "tsv");
        if is_tsv && !wanted.contains(&path) {
            if check {
                differ.push(workspace::file_name(&path)?.to_owned());
                println!("STALE    {}", path.display());
            } else {
                std::fs::remove_file(&path)
                    .with_context(|| format!("remove {}", path.display()))?;
                println!("removed  {}", path.display());
            }
        }
    }

    if !differ.is_empty() {
        bail!(
            "expected files out of date: {}; run `cargo xtask expected`",
            differ.join(", ")
        );
    }
    Ok(())
}
