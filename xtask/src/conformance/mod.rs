//! `cargo xtask conformance`: for every capture in the shared corpus (`../shared/pcaps`) and
//! in `pcaps/`, computes tshark's rows live, runs hepcap on the file, and compares message by
//! message (see [`rows`] for the rules and [`cases`] for the files that are refused on
//! purpose). Prints a table and fails on any difference.
//!
//! `rows`, `json` and `cases` are plain `std` so that `tests/tests/conformance.rs` compiles the
//! same files against the committed `pcaps/expected/*.tsv` without tshark.

pub mod cases;
pub mod json;
pub mod messages;
pub mod rows;
pub mod rtcp;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};

use crate::{tshark, workspace};
use cases::Expect;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Use this hepcap binary instead of building one.
    #[arg(long)]
    hepcap: Option<PathBuf>,
    /// Build and use the release binary (default: debug).
    #[arg(long)]
    release: bool,
    /// Only files whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Differences shown per failing file.
    #[arg(long, default_value_t = 10)]
    max_diffs: usize,
}

/// Outcome for one file.
#[derive(Debug)]
struct FileResult {
    shown: String,
    tshark_all: Option<usize>,
    tshark_compared: Option<usize>,
    hepcap: Option<usize>,
    verdict: &'static str,
    note: String,
    problems: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        hepcap,
        release,
        only,
        max_diffs,
    } = args;

    println!("tshark: {}", tshark::version()?);
    let bin = match hepcap {
        Some(path) => path,
        None => build_hepcap(release)?,
    };
    println!("hepcap: {}", bin.display());

    let shared = workspace::shared_pcaps_dir();
    if !shared.is_dir() {
        bail!(
            "shared corpus not found at {} (expected next to the workspace)",
            shared.display()
        );
    }
    let mut files = Vec::new();
    for (label, dir) in [("shared", shared), ("pcaps", workspace::pcaps_dir())] {
        for path in workspace::captures_in(&dir)? {
            let name = workspace::file_name(&path)?.to_owned();
            if only.as_deref().is_none_or(|o| name.contains(o)) {
                files.push((format!("{label}/{name}"), name, path));
            }
        }
    }

    // tshark is the slow part: run it once per distinct content (the copies in `pcaps/` are
    // byte-identical to their originals), on every core.
    let mut contents: Vec<Vec<u8>> = Vec::new();
    let mut content_of = Vec::with_capacity(files.len());
    let mut first_path: Vec<&Path> = Vec::new();
    for (_, _, path) in &files {
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let index = match contents.iter().position(|c| *c == bytes) {
            Some(i) => i,
            None => {
                contents.push(bytes);
                first_path.push(path);
                contents.len() - 1
            }
        };
        content_of.push(index);
    }
    let tshark_results = parallel_map(&first_path, |path| tshark_view(path));

    let mut results = Vec::with_capacity(files.len());
    for ((shown, name, path), index) in files.iter().zip(content_of) {
        let view = tshark_results[index]
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let result = check_file(&bin, shown, name, path, view, max_diffs)
            .with_context(|| format!("check {}", path.display()))?;
        results.push(result);
    }

    print_table(&results);
    let tuple_failures = check_tuples(&files)?;
    let failed: Vec<&FileResult> = results.iter().filter(|r| !r.problems.is_empty()).collect();
    for r in &failed {
        println!("\n{}:", r.shown);
        for p in &r.problems {
            println!("  {p}");
        }
    }
    println!("\nExcluded: files hepcap must refuse (checked for a clean error, not compared):");
    for (file, why) in cases::REJECTED {
        println!("  {file}: {why}");
    }
    println!("Damaged files (compared up to the damage, then checked for a clean error):");
    for (file, why) in cases::MATCH_THEN_ERROR {
        println!("  {file}: {why}");
    }
    println!("\nFilter: {}", tshark::filter());

    let rtcp = rtcp::check_all(&bin, only.as_deref())?;
    let rtcp_failed = rtcp.iter().filter(|r| !r.problems.is_empty()).count();
    if rtcp_failed > 0 {
        bail!("{rtcp_failed} RTCP capture(s) do not conform");
    }

    if !failed.is_empty() || tuple_failures > 0 {
        bail!(
            "{} of {} files do not conform; {tuple_failures} differ at the five-tuple level",
            failed.len(),
            results.len()
        );
    }
    println!("\nAll {} files conform.", results.len());
    Ok(())
}

/// Checks the captures of [`cases::TUPLES`] frame by frame: the innermost five-tuple of
/// hepcap's decoder against tshark's. Returns how many files differ.
fn check_tuples(files: &[(String, String, PathBuf)]) -> anyhow::Result<usize> {
    let wanted: Vec<&(String, String, PathBuf)> = files
        .iter()
        .filter(|(_, name, _)| cases::TUPLES.contains(&name.as_str()))
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .current_dir(workspace::root())
        .args([
            "build",
            "--quiet",
            "-p",
            "hepcap",
            "--example",
            "decode_tuples",
        ])
        .status()
        .with_context(|| format!("run {cargo} build --example decode_tuples"))?;
    if !status.success() {
        bail!("cargo build --example decode_tuples failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace::root().join("target"));
    let example = target.join("debug").join("examples").join("decode_tuples");

    println!("\nFive-tuples of captures without SIP (innermost IP layer, frame by frame):");
    let mut failures = 0;
    for (shown, _, path) in wanted {
        let ours = Command::new(&example)
            .arg(path)
            .output()
            .with_context(|| format!("run {}", example.display()))?;
        let theirs = Command::new(tshark::program())
            .arg("-r")
            .arg(path)
            .args(["-T", "fields", "-E", "occurrence=l"])
            .args([
                "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst",
            ])
            .args([
                "-e",
                "ip.proto",
                "-e",
                "ipv6.nxt",
                "-e",
                "udp.srcport",
                "-e",
                "tcp.srcport",
            ])
            .args(["-e", "udp.dstport", "-e", "tcp.dstport"])
            .output()
            .context("run tshark")?;
        let ours = String::from_utf8_lossy(&ours.stdout).into_owned();
        let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
        let mut diffs = Vec::new();
        let (mut frames, mut with_ip) = (0, 0);
        for (i, (h, t)) in ours.lines().zip(theirs.lines()).enumerate() {
            frames += 1;
            let h: Vec<&str> = h.split('\t').skip(1).take(5).collect();
            let t: Vec<&str> = t.split('\t').collect();
            let cell = |n: usize| t.get(n).copied().unwrap_or_default();
            let pick = |a: usize, b: usize| -> String {
                if cell(a).is_empty() {
                    cell(b).to_owned()
                } else {
                    cell(a).to_owned()
                }
            };
            let (src, dst, proto) = (pick(1, 0), pick(3, 2), pick(5, 4));
            let (sport, dport) = (pick(6, 7), pick(8, 9));
            let norm = |a: &str| {
                a.parse::<std::net::IpAddr>()
                    .map(|ip| ip.to_string())
                    .unwrap_or_default()
            };
            let want = [
                norm(&src),
                norm(&dst),
                proto.clone(),
                sport.clone(),
                dport.clone(),
            ];
            let got: Vec<String> = (0..5)
                .map(|n| h.get(n).copied().unwrap_or_default().to_owned())
                .collect();
            if !want[0].is_empty() {
                with_ip += 1;
            }
            // Ports only for UDP, TCP and SCTP: for an ICMP packet in VXLAN tshark's last port
            // is the outer UDP's, and hepcap prints 0 for a protocol without ports.
            let has_ports = matches!(proto.as_str(), "6" | "17" | "132");
            let ports_ok = !has_ports || (got[3] == want[3] && got[4] == want[4]);
            if got[..3] != want[..3] || !ports_ok {
                diffs.push(format!("frame {}: tshark {want:?}, hepcap {got:?}", i + 1));
            }
        }
        if ours.lines().count() != theirs.lines().count() {
            diffs.push(format!(
                "{} frames from hepcap, {} from tshark",
                ours.lines().count(),
                theirs.lines().count()
            ));
        }
        let verdict = if diffs.is_empty() { "ok" } else { "FAIL" };
        println!("  {shown}: {frames} frames, {with_ip} with IP: {verdict}");
        for d in diffs.iter().take(5) {
            println!("    {d}");
        }
        if !diffs.is_empty() {
            failures += 1;
        }
    }
    Ok(failures)
}

/// Builds the hepcap binary with cargo and returns its path.
fn build_hepcap(release: bool) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace::root())
        .args(["build", "--quiet", "-p", "hepcap", "--bin", "hepcap"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().with_context(|| format!("run {cargo} build"))?;
    if !status.success() {
        bail!("cargo build -p hepcap failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace::root().join("target"));
    let bin = target
        .join(if release { "release" } else { "debug" })
        .join("hepcap");
    if !bin.is_file() {
        bail!("hepcap binary not found at {}", bin.display());
    }
    Ok(bin)
}

/// What tshark says about one capture.
#[derive(Debug)]
struct TsharkView {
    /// Frames decoded as SIP at all.
    all: Option<usize>,
    /// The filtered rows command, or the message command for files that need reassembly.
    out: Output,
}

fn tshark_view(path: &Path) -> anyhow::Result<TsharkView> {
    let name = workspace::file_name(path)?;
    Ok(TsharkView {
        all: tshark::count_sip_frames(path)?,
        out: match cases::reassembled(name) {
            Some((extra, _)) => tshark::run_messages(path, extra)?,
            None => tshark::run(path)?,
        },
    })
}

/// `f` over `items` on every available core, results in input order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers.min(items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every index below items.len() is taken by exactly one worker")
        })
        .collect()
}

fn check_file(
    bin: &Path,
    shown: &str,
    name: &str,
    path: &Path,
    view: &TsharkView,
    max_diffs: usize,
) -> anyhow::Result<FileResult> {
    if let Some((_, hepcap_args)) = cases::reassembled(name) {
        return check_messages(bin, shown, path, view, hepcap_args, max_diffs);
    }
    let expect = cases::expect(name);
    let mut result = FileResult {
        shown: shown.to_owned(),
        tshark_all: view.all,
        tshark_compared: None,
        hepcap: None,
        verdict: "ok",
        note: cases::subset_note(name).unwrap_or_default().to_owned(),
        problems: Vec::new(),
    };

    let tshark_out = &view.out;
    let tshark_rows = match rows::parse_tshark(&String::from_utf8_lossy(&tshark_out.stdout)) {
        Ok(parsed) => Some(parsed),
        Err(e) if expect == Expect::Match => {
            result.problems.push(format!(
                "tshark output unusable: {e}; tshark said: {}",
                tshark::stderr_text(tshark_out)
            ));
            None
        }
        Err(_) => None,
    };
    if expect == Expect::Match && !tshark_out.status.success() {
        result.problems.push(format!(
            "tshark failed ({}): {}",
            tshark_out.status,
            tshark::stderr_text(tshark_out)
        ));
    }

    let out = Command::new(bin)
        .args(["replay", "-q", "--jsonl", "-"])
        .arg(path)
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hepcap = rows::parse_hepcap(&String::from_utf8_lossy(&out.stdout));

    match &hepcap {
        Ok(h) => {
            result.hepcap = Some(h.rows.len());
            if h.other > 0 {
                result.note = join_note(&result.note, &format!("{} non-UDP records", h.other));
            }
        }
        Err(e) => result.problems.push(format!("hepcap output unusable: {e}")),
    }

    match expect {
        Expect::Rejected(why) => {
            result.note = join_note(&result.note, why);
            result.verdict = "refused";
            result.problems.extend(cases::check_reported(
                &stderr,
                out.status.success(),
                &path.display().to_string(),
            ));
            if result.hepcap.is_some_and(|n| n > 0) {
                result
                    .problems
                    .push("hepcap emitted records for a refused file".to_owned());
            }
        }
        Expect::Match | Expect::MatchThenError(_) => {
            if let Expect::MatchThenError(why) = expect {
                result.note = join_note(&result.note, why);
                result.verdict = "ok+error";
                result.problems.extend(cases::check_reported(
                    &stderr,
                    out.status.success(),
                    &path.display().to_string(),
                ));
            } else if !out.status.success() || stderr.contains("panicked") {
                result
                    .problems
                    .push(format!("hepcap failed ({}): {}", out.status, stderr.trim()));
            }
            if let (Some(t), Ok(h)) = (&tshark_rows, &hepcap) {
                result.tshark_compared = Some(t.rows.len());
                if !t.without_start_line.is_empty() {
                    result.note = join_note(
                        &result.note,
                        &format!(
                            "{} tshark SIP frames without a start line set aside: {:?}",
                            t.without_start_line.len(),
                            t.without_start_line
                        ),
                    );
                }
                result
                    .problems
                    .extend(rows::compare(&t.rows, &h.rows, max_diffs));
            }
        }
    }
    if !result.problems.is_empty() {
        result.verdict = "FAIL";
    }
    Ok(result)
}

/// A file compared message by message after reassembly (`messages.rs`).
fn check_messages(
    bin: &Path,
    shown: &str,
    path: &Path,
    view: &TsharkView,
    hepcap_args: &[&str],
    max_diffs: usize,
) -> anyhow::Result<FileResult> {
    let mut result = FileResult {
        shown: shown.to_owned(),
        tshark_all: view.all,
        tshark_compared: None,
        hepcap: None,
        verdict: "ok",
        note: "after reassembly, all transports".to_owned(),
        problems: Vec::new(),
    };
    let tshark = messages::parse_tshark(&String::from_utf8_lossy(&view.out.stdout));
    if !view.out.status.success() {
        result.problems.push(format!(
            "tshark failed ({}): {}",
            view.out.status,
            tshark::stderr_text(&view.out)
        ));
    }
    let out = Command::new(bin)
        .args(["replay", "-q", "--jsonl", "-"])
        .args(hepcap_args)
        .arg(path)
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stderr.contains("panicked") {
        result
            .problems
            .push(format!("hepcap failed ({}): {}", out.status, stderr.trim()));
    }
    let hepcap = messages::parse_hepcap(&String::from_utf8_lossy(&out.stdout));
    match (&tshark, &hepcap) {
        (Ok(t), Ok(h)) => {
            result.tshark_compared = Some(messages::count(t));
            result.hepcap = Some(h.len());
            if !hepcap_args.is_empty() {
                result.note = join_note(&result.note, &hepcap_args.join(" "));
            }
            result.problems.extend(messages::compare(t, h, max_diffs));
        }
        (Err(e), _) => result.problems.push(format!("tshark output unusable: {e}")),
        (_, Err(e)) => result.problems.push(format!("hepcap output unusable: {e}")),
    }
    if !result.problems.is_empty() {
        result.verdict = "FAIL";
    }
    Ok(result)
}

fn join_note(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a}; {b}")
    }
}

fn print_table(results: &[FileResult]) {
    let width = results
        .iter()
        .map(|r| r.shown.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let num = |n: Option<usize>| n.map_or("-".to_owned(), |n| n.to_string());
    println!(
        "\n{:width$}  {:>10}  {:>11}  {:>6}  {:8}  note",
        "file", "tshark sip", "tshark cmp.", "hepcap", "result"
    );
    for r in results {
        println!(
            "{:width$}  {:>10}  {:>11}  {:>6}  {:8}  {}",
            r.shown,
            num(r.tshark_all),
            num(r.tshark_compared),
            num(r.hepcap),
            r.verdict,
            r.note
        );
    }
    println!(
        "\ntshark sip: frames tshark decodes as SIP (no reassembly); tshark cmp.: those the \
         filter keeps and hepcap must reproduce (for files compared after reassembly: the SIP \
         messages tshark finds with its own reassembly); hepcap: SIP/UDP records hepcap wrote \
         (all its SIP records for files compared after reassembly)."
    );
}
