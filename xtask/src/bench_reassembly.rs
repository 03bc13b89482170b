//! The reassembly part of `cargo xtask bench-replay`: the same generated SIP traffic as the
//! UDP benchmark, rewritten as SIP over TCP (each message in two segments, one flow per
//! address and port pair, picked up mid-stream) and as IPv4 fragments (each message in two
//! fragments), replayed with `hepcap replay -q FILE --jsonl /dev/null` next to the UDP file.
//! Reports packets/s (frames read) and SIP messages/s; the target is TCP and fragmented input
//! at no less than half the UDP packet rate.
//!
//! The rewrite reads the classic pcap that `siptraffic` writes (Ethernet, IPv4, UDP) and keeps
//! every frame that is not IPv4/UDP unchanged.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

/// A frame of a classic pcap: the 16-byte record header and the data.
struct Record<'a> {
    header: [u8; 16],
    data: &'a [u8],
}

fn records(file: &[u8]) -> anyhow::Result<Vec<Record<'_>>> {
    if file.len() < 24 || file[..4] != 0xa1b2_c3d4u32.to_le_bytes() {
        bail!("not a little-endian microsecond pcap");
    }
    let mut out = Vec::new();
    let mut at = 24;
    while let Some(h) = file.get(at..at + 16) {
        let len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let data = file.get(at + 16..at + 16 + len).context("cut record")?;
        let mut header = [0u8; 16];
        header.copy_from_slice(h);
        out.push(Record { header, data });
        at += 16 + len;
    }
    Ok(out)
}

fn write_record(out: &mut impl Write, header: &[u8; 16], data: &[u8]) -> std::io::Result<()> {
    let mut h = *header;
    let len = (data.len() as u32).to_le_bytes();
    h[8..12].copy_from_slice(&len);
    h[12..16].copy_from_slice(&len);
    out.write_all(&h)?;
    out.write_all(data)
}

/// The layers of an Ethernet + IPv4 (no options) + UDP frame.
struct UdpFrame<'a> {
    eth: &'a [u8],
    ip: &'a [u8],
    udp: &'a [u8],
    payload: &'a [u8],
}

fn split_udp(data: &[u8]) -> Option<UdpFrame<'_>> {
    if data.len() < 14 + 20 + 8 || data[12..14] != [0x08, 0x00] || data[14] != 0x45 {
        return None;
    }
    if data[14 + 9] != 17 {
        return None;
    }
    Some(UdpFrame {
        eth: &data[..14],
        ip: &data[14..34],
        udp: &data[34..42],
        payload: &data[42..],
    })
}

fn ipv4_header(template: &[u8], proto: u8, total: usize, flags_offset: u16) -> Vec<u8> {
    let mut ip = template.to_vec();
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&flags_offset.to_be_bytes());
    ip[9] = proto;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip
}

/// Writes the TCP and the fragmented variants of `udp_capture` next to it (once).
pub fn ensure_variants(udp_capture: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let tcp_path = udp_capture.with_extension("tcp.pcap");
    let frag_path = udp_capture.with_extension("frag.pcap");
    if tcp_path.is_file() && frag_path.is_file() {
        return Ok((tcp_path, frag_path));
    }
    let file =
        std::fs::read(udp_capture).with_context(|| format!("read {}", udp_capture.display()))?;
    let recs = records(&file)?;
    let mut tcp = BufWriter::new(std::fs::File::create(&tcp_path)?);
    let mut frag = BufWriter::new(std::fs::File::create(&frag_path)?);
    tcp.write_all(&file[..24])?;
    frag.write_all(&file[..24])?;
    let mut seqs: HashMap<Vec<u8>, u32> = HashMap::new();
    for r in &recs {
        let Some(UdpFrame {
            eth,
            ip,
            udp,
            payload,
        }) = split_udp(r.data)
        else {
            write_record(&mut tcp, &r.header, r.data)?;
            write_record(&mut frag, &r.header, r.data)?;
            continue;
        };
        // TCP: the message in two segments, sequence numbers per four-tuple.
        let flow = [&ip[12..20], &udp[..4]].concat();
        let seq = seqs.entry(flow).or_insert(1);
        let half = payload.len() / 2;
        for part in [&payload[..half], &payload[half..]] {
            let mut seg = Vec::with_capacity(20 + part.len());
            seg.extend_from_slice(&udp[..4]);
            seg.extend_from_slice(&seq.to_be_bytes());
            seg.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
            seg.extend_from_slice(part);
            *seq = seq.wrapping_add(part.len() as u32);
            let mut f = eth.to_vec();
            f.extend_from_slice(&ipv4_header(ip, 6, 20 + seg.len(), 0x4000));
            f.extend_from_slice(&seg);
            write_record(&mut tcp, &r.header, &f)?;
        }
        // Fragments: UDP header and payload cut at a multiple of 8 near the middle.
        let whole = [udp, payload].concat();
        let cut = (whole.len() / 2).max(8) / 8 * 8;
        for (offset, part, more) in [(0, &whole[..cut], true), (cut, &whole[cut..], false)] {
            let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
            let mut f = eth.to_vec();
            f.extend_from_slice(&ipv4_header(ip, 17, 20 + part.len(), flags));
            f.extend_from_slice(part);
            write_record(&mut frag, &r.header, &f)?;
        }
    }
    tcp.flush()?;
    frag.flush()?;
    Ok((tcp_path, frag_path))
}

/// One replay: frames read and SIP messages per second, from hepcap's exit summary.
struct Rate {
    packets: u64,
    messages: u64,
    secs: f64,
}

fn replay(hepcap: &Path, capture: &Path) -> anyhow::Result<Rate> {
    let start = Instant::now();
    let out = Command::new(hepcap)
        .args(["replay", "--jsonl", "/dev/null"])
        .arg(capture)
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("run {}", hepcap.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let summary = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("hepcap replay {} failed: {summary}", capture.display());
    }
    // "hepcap replay: 1 file(s) read, 0 failed; N packets; M SIP messages (...)"
    let first = summary.lines().next().unwrap_or_default();
    let number_before = |word: &str| -> u64 {
        let words: Vec<&str> = first.split_whitespace().collect();
        words
            .iter()
            .position(|w| w.trim_end_matches(';') == word)
            .and_then(|i| words.get(i.checked_sub(1)?))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(Rate {
        packets: number_before("packets"),
        messages: number_before("SIP"),
        secs,
    })
}

/// Replays the UDP capture and its TCP and fragmented variants `runs` times each and prints
/// the medians. Called by `bench_replay::run` after the UDP benchmark.
pub fn run(hepcap: &Path, udp_capture: &Path, runs: usize) -> anyhow::Result<()> {
    let (tcp, frag) = ensure_variants(udp_capture)?;
    println!();
    println!("-- reassembly: hepcap replay FILE --jsonl /dev/null ({runs} runs, medians) --");
    println!(
        "{:<26} {:>10} {:>10} {:>9} {:>13} {:>13} {:>8}",
        "input", "packets", "messages", "wall s", "packets/s", "messages/s", "vs UDP"
    );
    let mut udp_pps = 0.0;
    for (label, path) in [
        ("UDP (one frame/message)", udp_capture),
        ("TCP (2 segments/message)", tcp.as_path()),
        ("IPv4 fragments (2/msg)", frag.as_path()),
    ] {
        let mut rates = Vec::new();
        for _ in 0..runs.max(1) {
            rates.push(replay(hepcap, path)?);
        }
        rates.sort_by(|a, b| a.secs.total_cmp(&b.secs));
        let r = &rates[rates.len() / 2];
        let pps = r.packets as f64 / r.secs;
        if udp_pps == 0.0 {
            udp_pps = pps;
        }
        println!(
            "{:<26} {:>10} {:>10} {:>9.3} {:>13.0} {:>13.0} {:>7.0}%",
            label,
            r.packets,
            r.messages,
            r.secs,
            pps,
            r.messages as f64 / r.secs,
            100.0 * pps / udp_pps
        );
    }
    println!("target (issue): TCP and fragmented input >= 50% of the UDP packet rate");
    Ok(())
}
