//! Conformance with tshark, offline: hepcap's JSON lines for every capture in `pcaps/` must
//! equal the rows tshark produced for it, committed as `pcaps/expected/<file>.tsv` (see
//! `pcaps/README.md` for the command). No tshark is needed here; `cargo xtask conformance`
//! runs the same comparison live over the shared corpus too.
//!
//! The comparison rules and the list of files hepcap must refuse are compiled from xtask's
//! sources, so that both callers apply one definition.

#[allow(dead_code)]
#[path = "../../xtask/src/conformance/json.rs"]
mod json;

#[allow(dead_code)]
#[path = "../../xtask/src/conformance/rows.rs"]
mod rows;

#[allow(dead_code)]
#[path = "../../xtask/src/conformance/cases.rs"]
mod cases;

#[allow(dead_code)]
#[path = "../../xtask/src/conformance/messages.rs"]
mod messages;

use std::path::{Path, PathBuf};
use std::process::Output;

use cases::Expect;
use hepcap_e2e::{hepcap, pcaps_dir};

/// Differences shown per file.
const MAX_DIFFS: usize = 10;

/// Capture files in `pcaps/`, sorted by name.
fn captures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(pcaps_dir())
        .expect("read pcaps/")
        .map(|e| e.expect("pcaps/ entry").path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no captures in {}",
        pcaps_dir().display()
    );
    files
}

fn name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("capture names are ASCII")
}

fn expected_path(path: &Path) -> PathBuf {
    pcaps_dir()
        .join("expected")
        .join(format!("{}.tsv", name(path)))
}

/// tshark's committed rows for a capture.
fn expected_rows(path: &Path) -> rows::TsharkRows {
    let tsv_path = expected_path(path);
    let tsv = std::fs::read_to_string(&tsv_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", tsv_path.display()));
    rows::parse_tshark(&tsv).unwrap_or_else(|e| panic!("{}: {e}", tsv_path.display()))
}

fn replay(files: &[PathBuf]) -> Output {
    replay_with(files, &[])
}

fn replay_with(files: &[PathBuf], args: &[&str]) -> Output {
    hepcap()
        .args(["replay", "-q", "--jsonl", "-"])
        .args(args)
        .args(files)
        .output()
        .expect("run hepcap replay")
}

/// A capture compared message by message after reassembly (`cases::REASSEMBLED`).
fn check_messages(path: &Path, hepcap_args: &[&str]) -> (Vec<String>, usize) {
    let out = replay_with(std::slice::from_ref(&path.to_path_buf()), hepcap_args);
    let err = stderr(&out);
    let mut problems = Vec::new();
    if !out.status.success() || err.contains("panicked") {
        problems.push(format!("hepcap failed ({}): {}", out.status, err.trim()));
    }
    let tsv_path = expected_path(path);
    let tsv = std::fs::read_to_string(&tsv_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", tsv_path.display()));
    let expected =
        messages::parse_tshark(&tsv).unwrap_or_else(|e| panic!("{}: {e}", tsv_path.display()));
    match messages::parse_hepcap(&String::from_utf8_lossy(&out.stdout)) {
        Ok(got) => problems.extend(messages::compare(&expected, &got, MAX_DIFFS)),
        Err(e) => problems.push(e),
    }
    (problems, messages::count(&expected))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every capture is either compared or deliberately refused, and every expected file belongs
/// to a capture: nothing is skipped silently.
#[test]
fn every_capture_has_expected_rows_or_is_refused() {
    let mut problems = Vec::new();
    let captures = captures();
    for path in &captures {
        let has_tsv = expected_path(path).is_file();
        match cases::expect(name(path)) {
            Expect::Match | Expect::MatchThenError(_) if !has_tsv => problems.push(format!(
                "{}: no pcaps/expected/{}.tsv (run `cargo xtask expected`)",
                name(path),
                name(path)
            )),
            _ => {}
        }
    }
    let expected_dir = pcaps_dir().join("expected");
    for entry in std::fs::read_dir(&expected_dir).expect("read pcaps/expected") {
        let tsv = entry.expect("expected/ entry").path();
        let capture = tsv.file_stem().map(|s| pcaps_dir().join(s));
        if !capture.is_some_and(|c| captures.contains(&c)) {
            problems.push(format!("{}: no capture of that name", tsv.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each capture on its own: records equal tshark's rows (count, order, times to the
/// microsecond, addresses, ports, VLAN, Call-ID, method or status, CSeq), or the file is
/// refused cleanly. Captures that need reassembly or carry SIP in tunnels, TCP, SCTP or
/// WebSocket are compared message by message with tshark's own reassembly (`messages.rs`).
#[test]
fn each_capture_matches_tshark_or_is_refused_cleanly() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in captures() {
        let file = name(&path);
        if let Some((_, hepcap_args)) = cases::reassembled(file) {
            let (problems, n) = check_messages(&path, hepcap_args);
            compared += n;
            if !problems.is_empty() {
                failures.push(format!("{file}:\n  {}", problems.join("\n  ")));
            }
            continue;
        }
        let out = replay(std::slice::from_ref(&path));
        let err = stderr(&out);
        let hepcap_rows = rows::parse_hepcap(&String::from_utf8_lossy(&out.stdout));
        let shown = path.display().to_string();

        let mut problems = Vec::new();
        match cases::expect(file) {
            Expect::Rejected(_) => {
                problems.extend(cases::check_reported(&err, out.status.success(), &shown));
                match &hepcap_rows {
                    Ok(h) if h.rows.is_empty() && h.other == 0 => {}
                    Ok(h) => problems.push(format!("{} records from a refused file", h.rows.len())),
                    Err(e) => problems.push(e.clone()),
                }
            }
            expect @ (Expect::Match | Expect::MatchThenError(_)) => {
                if expect == Expect::Match && (!out.status.success() || err.contains("panicked")) {
                    problems.push(format!("hepcap failed ({}): {}", out.status, err.trim()));
                }
                if let Expect::MatchThenError(_) = expect {
                    problems.extend(cases::check_reported(&err, out.status.success(), &shown));
                }
                let expected = expected_rows(&path);
                match &hepcap_rows {
                    Ok(h) => {
                        problems.extend(rows::compare(&expected.rows, &h.rows, MAX_DIFFS));
                        compared += expected.rows.len();
                    }
                    Err(e) => problems.push(e.clone()),
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{file}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(compared > 0, "no SIP message was compared at all");
}

/// All captures in one run, refused and damaged ones among good ones: each bad file is named
/// on stderr, the good files' records still come out in order, the exit status is non-zero,
/// and nothing panics.
#[test]
fn bad_files_do_not_stop_the_good_ones() {
    // Files compared after reassembly have their own expected format; they are left out here.
    let files: Vec<PathBuf> = captures()
        .into_iter()
        .filter(|p| cases::reassembled(name(p)).is_none())
        .collect();
    let mut expected = Vec::new();
    let mut bad = Vec::new();
    for path in &files {
        match cases::expect(name(path)) {
            Expect::Match => expected.extend(expected_rows(path).rows),
            Expect::MatchThenError(_) => {
                expected.extend(expected_rows(path).rows);
                bad.push(path.display().to_string());
            }
            Expect::Rejected(_) => bad.push(path.display().to_string()),
        }
    }
    assert!(!bad.is_empty(), "no negative fixture in pcaps/");

    let out = replay(&files);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "hepcap panicked:\n{err}");
    assert!(
        !out.status.success(),
        "hepcap exited 0 although {} files are bad",
        bad.len()
    );
    for shown in &bad {
        assert!(
            err.contains(shown.as_str()),
            "stderr does not name {shown}:\n{err}"
        );
    }

    let got = rows::parse_hepcap(&String::from_utf8_lossy(&out.stdout)).expect("hepcap JSON");
    let diffs = rows::compare(&expected, &got.rows, MAX_DIFFS);
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}
