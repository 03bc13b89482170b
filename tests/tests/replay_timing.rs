//! Replay timing flags: `--loop`, `--restamp`, `--pace`/`--speed`, and Ctrl-C on an endless
//! loop. Durations are checked only where the flag is about time, with wide margins.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hepcap_e2e::{hepcap, pcaps_dir};

/// A real capture from 2010 with 27 SIP messages over UDP.
const CAPTURE: &str = "sipnab__Asterisk_ZFONE_XLITE.pcap";

fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::to_string)
        .collect()
}

fn timestamps(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let at = l.find("\"timestamp\":\"").expect("timestamp key") + 13;
            l[at..at + 27].to_string()
        })
        .collect()
}

#[test]
fn loop_repeats_the_files() {
    let capture = pcaps_dir().join(CAPTURE);
    let once = hepcap()
        .args(["replay", "-q"])
        .arg(&capture)
        .output()
        .expect("run");
    let thrice = hepcap()
        .args(["replay", "-q", "--loop", "3"])
        .arg(&capture)
        .output()
        .expect("run");
    assert!(once.status.success() && thrice.status.success());
    let (one, three) = (lines(&once.stdout), lines(&thrice.stdout));
    assert!(!one.is_empty());
    assert_eq!(three.len(), 3 * one.len());
    // Without --restamp every pass keeps the capture's own times.
    assert_eq!(timestamps(&three[..one.len()]), timestamps(&one));
    assert_eq!(timestamps(&three[2 * one.len()..]), timestamps(&one));
}

#[test]
fn restamp_uses_the_current_time() {
    let capture = pcaps_dir().join(CAPTURE);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let out = hepcap()
        .args(["replay", "-q", "--restamp"])
        .arg(&capture)
        .output()
        .expect("run");
    assert!(out.status.success());
    let stamps = timestamps(&lines(&out.stdout));
    // The capture is from 2010; restamped records carry this year.
    let year = 1970 + before / 31_556_952;
    for s in &stamps {
        let y: u64 = s[..4].parse().expect("year");
        assert!(y == year || y == year + 1, "{s} is not the current time");
    }
}

#[test]
fn pace_keeps_the_gaps_scaled_by_speed() {
    // Two copies of one INVITE, 2 s apart in capture time, in a pcap built here.
    let bytes = std::fs::read(pcaps_dir().join("suricata__sip_compact_form.pcap")).expect("read");
    let caplen = u32::from_le_bytes([bytes[32], bytes[33], bytes[34], bytes[35]]) as usize;
    let record = &bytes[24..40 + caplen];
    let mut pcap = bytes[..24].to_vec();
    pcap.extend_from_slice(record);
    let mut later = record.to_vec();
    let secs = u32::from_le_bytes([later[0], later[1], later[2], later[3]]) + 2;
    later[..4].copy_from_slice(&secs.to_le_bytes());
    pcap.extend_from_slice(&later);
    let path = hepcap_e2e::scratch_dir("replay_timing").join("two_seconds.pcap");
    std::fs::write(&path, pcap).expect("write");

    let start = Instant::now();
    let out = hepcap()
        .args(["replay", "-q", "--pace"])
        .arg(&path)
        .output()
        .expect("run");
    let paced = start.elapsed();
    assert!(out.status.success());
    assert_eq!(lines(&out.stdout).len(), 2);
    assert!(
        paced >= Duration::from_millis(1900),
        "--pace took {paced:?}, expected ~2 s"
    );

    let start = Instant::now();
    let out = hepcap()
        .args(["replay", "-q", "--speed", "4"])
        .arg(&path)
        .output()
        .expect("run");
    let fast = start.elapsed();
    assert!(out.status.success());
    assert!(
        fast >= Duration::from_millis(450),
        "--speed 4 took {fast:?}, expected ~0.5 s"
    );
    assert!(
        fast < paced,
        "--speed 4 ({fast:?}) not faster than --pace ({paced:?})"
    );
}

#[test]
fn ctrl_c_ends_an_endless_loop_with_a_summary() {
    let capture = pcaps_dir().join(CAPTURE);
    let mut child = hepcap()
        .args(["replay", "--loop", "0", "--pace", "--jsonl", "/dev/null"])
        .arg(&capture)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(700));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "replay did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert!(exit.success(), "{stderr}");
    assert!(
        stderr.contains("hepcap replay:"),
        "summary missing: {stderr}"
    );
}
