//! Memory bounds of reassembly: a generated capture opens 1,000,000 IP fragment sets, another
//! 1,000,000 TCP flows (each a SIP start line that never completes). hepcap must stay within
//! its configured table limits, evict exactly what did not fit, and say so in the exit
//! summary. The peak RSS of the replay is printed (`/usr/bin/time`).
//!
//! `HEPCAP_BOUNDS_N` overrides the count (default 1,000,000). The captures are written under
//! `target/e2e-scratch/reassembly_bounds/`.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

use hepcap_e2e::{hepcap_bin, require_tool, scratch_dir};

const FRAG_MAX_ENTRIES: u64 = 4096;
const TCP_MAX_FLOWS: u64 = 16_384;
const MAX_BYTES: u64 = 1 << 20;

fn count() -> u64 {
    std::env::var("HEPCAP_BOUNDS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A classic pcap (Ethernet) with one frame per call of `frame(i)`, 1 µs apart.
fn write_pcap(path: &Path, n: u64, frame: impl Fn(u64) -> Vec<u8>) {
    let file = std::fs::File::create(path).expect("create capture");
    let mut out = BufWriter::new(file);
    let mut header = Vec::new();
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&65_535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    out.write_all(&header).expect("write");
    for i in 0..n {
        let data = frame(i);
        let mut rec = Vec::with_capacity(16);
        rec.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        rec.extend_from_slice(&(i as u32 % 1_000_000).to_le_bytes());
        rec.extend_from_slice(&(data.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.write_all(&rec).expect("write");
        out.write_all(&data).expect("write");
    }
    out.flush().expect("flush");
}

/// Ethernet + IPv4 (checksum left 0: hepcap does not verify it) from a source derived from `i`.
fn eth_ipv4(i: u64, id: u16, flags_offset: u16, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&flags_offset.to_be_bytes());
    f.extend_from_slice(&[64, proto, 0, 0]);
    f.extend_from_slice(&[10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
    f.extend_from_slice(&[192, 0, 2, 1]);
    f.extend_from_slice(payload);
    f
}

/// Runs the replay under `/usr/bin/time`; returns the summary and the peak RSS in KiB.
fn replay(capture: &Path, args: &[&str]) -> (String, u64) {
    require_tool("/usr/bin/time");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak_rss_kib=%M"])
        .arg(hepcap_bin())
        .args(["replay", "--jsonl", "/dev/null"])
        .args(args)
        .arg(capture)
        .output()
        .expect("run hepcap under /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "hepcap failed:\n{stderr}");
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .expect("peak RSS from /usr/bin/time");
    (stderr, rss)
}

/// The numbers of the summary line that starts with `prefix`, in order.
fn numbers(summary: &str, prefix: &str) -> Vec<u64> {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{summary}"));
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().expect("digits"))
        .collect()
}

#[test]
fn a_million_fragment_sets_stay_within_the_table_limits() {
    let n = count();
    let path = scratch_dir("reassembly_bounds").join("fragments.pcap");
    // First fragments (MF set) of n different datagrams that never complete.
    write_pcap(&path, n, |i| eth_ipv4(i, i as u16, 0x2000, 17, &[0u8; 8]));
    let (summary, rss) = replay(
        &path,
        &[
            "--frag-max-entries",
            &FRAG_MAX_ENTRIES.to_string(),
            "--frag-max-bytes",
            &MAX_BYTES.to_string(),
        ],
    );
    println!("{n} fragment sets: peak RSS {rss} KiB\n{summary}");
    // completed, expired, evicted, malformed, peak datagrams, peak bytes
    let v = numbers(&summary, "ip fragments:");
    let [
        completed,
        expired,
        evicted,
        malformed,
        peak_entries,
        peak_bytes,
    ] = v[..]
    else {
        panic!("unexpected ip fragments line: {v:?}");
    };
    assert_eq!((completed, malformed), (0, 0));
    assert!(peak_entries <= FRAG_MAX_ENTRIES && peak_bytes <= MAX_BYTES);
    // Everything that did not fit was evicted; what was left at the end expired.
    assert_eq!(evicted, n.saturating_sub(FRAG_MAX_ENTRIES));
    assert_eq!(expired, n.min(FRAG_MAX_ENTRIES));
}

#[test]
fn a_million_tcp_flows_stay_within_the_table_limits() {
    let n = count();
    let path = scratch_dir("reassembly_bounds").join("tcp-flows.pcap");
    // One segment per flow (source port 40000 from a distinct address) to 5060: a start line
    // whose message never completes, so every flow holds bytes.
    write_pcap(&path, n, |i| {
        let mut tcp = vec![0x9c, 0x40, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18];
        tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(b"INVITE sip:b@x SIP/2.0\r\n");
        eth_ipv4(i, 0, 0x4000, 6, &tcp)
    });
    let (summary, rss) = replay(
        &path,
        &[
            "--tcp-max-flows",
            &TCP_MAX_FLOWS.to_string(),
            "--tcp-max-bytes",
            &MAX_BYTES.to_string(),
        ],
    );
    println!("{n} TCP flows: peak RSS {rss} KiB\n{summary}");
    // flows, closed, expired, evicted, messages, peak flows, peak bytes
    let v = numbers(&summary, "tcp:");
    let [
        flows,
        closed,
        expired,
        evicted,
        messages,
        peak_flows,
        peak_bytes,
    ] = v[..]
    else {
        panic!("unexpected tcp line: {v:?}");
    };
    assert_eq!((flows, closed, messages), (n, 0, 0));
    assert!(peak_flows <= TCP_MAX_FLOWS && peak_bytes <= MAX_BYTES);
    assert_eq!(evicted, n.saturating_sub(TCP_MAX_FLOWS));
    assert_eq!(expired, n.min(TCP_MAX_FLOWS));
}
