//! RTCP conformance: every RTCP packet tshark decodes in the RTCP captures is compared with
//! the HEP type 5 record hepcap made of it.
//!
//! Which call a packet belongs to is tshark's own view: its RTP/RTCP conversation tracking
//! from SDP names a setup frame (`rtcp.setup-frame`), whose `sip.Call-ID` is the call. For
//! such packets hepcap must send a record with that Call-ID as correlation id. For every record
//! hepcap sends, the JSON must equal tshark's decode of the same frame (matched by capture time
//! and addresses): `ssrc` (first `rtcp.senderssrc`), `sender_information`
//! (`rtcp.timestamp.ntp.msw/lsw`, `rtcp.timestamp.rtp`, `rtcp.sender.packetcount/octetcount`,
//! zeros without an SR) and every report block (`rtcp.ssrc.identifier`, `fraction`, `cum_nr`
//! as 24 bits, `ext_high`, `jitter`, `lsr`, `dlsr`); MOS×100 equals tshark's
//! `rtcp.xr.voipmetrics.moscq`. tshark runs with the `rtcp_udp` heuristic so that it decodes
//! RTCP on ports no SDP named too. For the synthetic capture, which cases tshark cannot
//! follow (NAT, RTCP before its SDP), the Call-IDs are the hand-worked ones of
//! [`crate::gen_pcaps::rtcp::EXPECTED`].
//!
//! The shared captures are AGPL or unlicensed: they are read from `../shared/pcaps`, never
//! copied.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use anyhow::Context;

use super::json::{self, Value};
use crate::gen_pcaps::rtcp as synth;
use crate::{tshark, workspace};

/// Captures with RTCP, and where they live.
const SHARED: [&str; 2] = [
    "heplify__rtp_rtcp_sip_ipv4_udp.pcap",
    "sipcaptures__voip-extension.pcap",
];

const FIELDS: [&str; 23] = [
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "udp.srcport",
    "ip.dst",
    "ipv6.dst",
    "udp.dstport",
    "rtcp.setup-frame",
    "rtcp.senderssrc",
    "rtcp.timestamp.ntp.msw",
    "rtcp.timestamp.ntp.lsw",
    "rtcp.timestamp.rtp",
    "rtcp.sender.packetcount",
    "rtcp.sender.octetcount",
    "rtcp.ssrc.identifier",
    "rtcp.ssrc.fraction",
    "rtcp.ssrc.cum_nr",
    "rtcp.ssrc.ext_high",
    "rtcp.ssrc.jitter",
    "rtcp.ssrc.lsr",
    "rtcp.ssrc.dlsr",
    "rtcp.xr.voipmetrics.moscq",
];

/// One RTCP frame as tshark decodes it; multi-valued fields keep every occurrence.
#[derive(Debug)]
struct TsharkRtcp {
    frame: u32,
    ts_us: u64,
    key: String,
    fields: Vec<Vec<String>>,
}

impl TsharkRtcp {
    fn get(&self, name: &str) -> &[String] {
        let i = FIELDS.iter().position(|f| *f == name).unwrap_or(0);
        &self.fields[i]
    }

    fn first_u64(&self, name: &str) -> Option<u64> {
        self.get(name).first().and_then(|v| parse_num(v))
    }
}

/// One line of the result table.
#[derive(Debug)]
pub struct RtcpResult {
    pub file: String,
    pub tshark_rtcp: usize,
    pub tshark_in_call: usize,
    pub hepcap_sent: usize,
    pub compared: usize,
    pub problems: Vec<String>,
}

/// Runs the check on the shared RTCP captures and the synthetic one; prints a table and
/// returns the results.
pub fn check_all(bin: &Path, only: Option<&str>) -> anyhow::Result<Vec<RtcpResult>> {
    let mut files: Vec<(String, std::path::PathBuf)> = SHARED
        .iter()
        .map(|f| (format!("shared/{f}"), workspace::shared_pcaps_dir().join(f)))
        .collect();
    files.push((
        format!("pcaps/{}", synth::NAME),
        workspace::pcaps_dir().join(synth::NAME),
    ));
    let mut results = Vec::new();
    for (shown, path) in files {
        if only.is_some_and(|o| !shown.contains(o)) {
            continue;
        }
        let synthetic = shown.ends_with(synth::NAME);
        results.push(check_file(bin, &shown, &path, synthetic)?);
    }

    println!(
        "\n{:50}  {:>11}  {:>12}  {:>11}  {:>8}  result",
        "rtcp file", "tshark rtcp", "tshark call", "hepcap sent", "compared"
    );
    for r in &results {
        println!(
            "{:50}  {:>11}  {:>12}  {:>11}  {:>8}  {}",
            r.file,
            r.tshark_rtcp,
            r.tshark_in_call,
            r.hepcap_sent,
            r.compared,
            if r.problems.is_empty() { "ok" } else { "FAIL" }
        );
    }
    println!(
        "\ntshark rtcp: frames tshark decodes as RTCP (rtcp_udp heuristic on); tshark call: \
         those its SDP tracking ties to a call in the capture; hepcap sent: type 5 records; \
         compared: records whose JSON was compared field by field with tshark."
    );
    for r in results.iter().filter(|r| !r.problems.is_empty()) {
        println!("\n{}:", r.file);
        for p in r.problems.iter().take(20) {
            println!("  {p}");
        }
    }
    Ok(results)
}

fn check_file(bin: &Path, shown: &str, path: &Path, synthetic: bool) -> anyhow::Result<RtcpResult> {
    let mut result = RtcpResult {
        file: shown.to_owned(),
        tshark_rtcp: 0,
        tshark_in_call: 0,
        hepcap_sent: 0,
        compared: 0,
        problems: Vec::new(),
    };
    if !path.is_file() {
        result
            .problems
            .push(format!("{} not found", path.display()));
        return Ok(result);
    }
    let frames = tshark_rtcp(path)?;
    let call_ids = tshark_call_ids(path)?;
    result.tshark_rtcp = frames.len();

    let out = Command::new(bin)
        .args(["replay", "-q", "--jsonl", "-"])
        .arg(path)
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        result.problems.push(format!(
            "hepcap failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut records: HashMap<(u64, String), Vec<Value>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v = json::parse(line).map_err(|e| anyhow::anyhow!("hepcap json: {e}"))?;
        if v.get("proto_type").and_then(Value::as_u64) != Some(5) {
            continue;
        }
        result.hepcap_sent += 1;
        let key = record_key(&v).context("hepcap record without time or addresses")?;
        records.entry(key).or_default().push(v);
    }

    let by_frame: HashMap<u32, &TsharkRtcp> = frames.iter().map(|f| (f.frame, f)).collect();
    for f in &frames {
        let setup = f.first_u64("rtcp.setup-frame");
        let expected = if synthetic {
            synth::EXPECTED
                .iter()
                .find(|e| e.frame == f.frame)
                .map(|e| e.call_id.map(str::to_owned))
        } else {
            setup.map(|s| call_ids.get(&(s as u32)).cloned())
        };
        let Some(expected) = expected else {
            continue;
        };
        let Some(expected) = expected else {
            // Hand-worked: this one belongs to no call and must not be sent.
            if records.contains_key(&(f.ts_us, f.key.clone())) {
                result
                    .problems
                    .push(format!("frame {}: sent, but belongs to no call", f.frame));
            }
            continue;
        };
        result.tshark_in_call += 1;
        match records
            .get(&(f.ts_us, f.key.clone()))
            .and_then(|v| v.first())
        {
            None => result
                .problems
                .push(format!("frame {}: no record for call {expected}", f.frame)),
            Some(v) => {
                let got = v.get("correlation_id").and_then(Value::as_str);
                if got != Some(expected.as_str()) {
                    result.problems.push(format!(
                        "frame {}: correlation id {got:?}, tshark's call {expected}",
                        f.frame
                    ));
                }
            }
        }
    }

    // Every record hepcap sent equals tshark's decode of its frame.
    let by_key: HashMap<(u64, String), &TsharkRtcp> = frames
        .iter()
        .map(|f| ((f.ts_us, f.key.clone()), f))
        .collect();
    let mut keys: Vec<_> = records.keys().cloned().collect();
    keys.sort();
    for key in keys {
        let Some(f) = by_key.get(&key) else {
            result.problems.push(format!(
                "record at {} {} is no RTCP frame of tshark's",
                key.0, key.1
            ));
            continue;
        };
        for v in &records[&key] {
            result.compared += 1;
            for p in compare(f, v) {
                result.problems.push(format!("frame {}: {p}", f.frame));
            }
        }
    }
    if synthetic {
        for e in &synth::EXPECTED {
            if !by_frame.contains_key(&e.frame) {
                result.problems.push(format!(
                    "frame {}: tshark does not decode it as RTCP",
                    e.frame
                ));
            }
            check_hand_worked(e, by_frame.get(&e.frame), &records, &mut result.problems);
        }
    }
    Ok(result)
}

/// Values of the synthetic capture worked out by hand, independent of tshark.
fn check_hand_worked(
    e: &synth::Expected,
    frame: Option<&&TsharkRtcp>,
    records: &HashMap<(u64, String), Vec<Value>>,
    problems: &mut Vec<String>,
) {
    let Some(f) = frame else { return };
    let Some(v) = records
        .get(&(f.ts_us, f.key.clone()))
        .and_then(|v| v.first())
    else {
        return;
    };
    let Some(rtcp) = v
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| json::parse(p).ok())
    else {
        problems.push(format!("frame {}: payload is not JSON", e.frame));
        return;
    };
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
    if num(&rtcp, "ssrc") != Some(u64::from(e.ssrc)) {
        problems.push(format!("frame {}: ssrc by hand {:#x}", e.frame, e.ssrc));
    }
    let packets = rtcp
        .get("sender_information")
        .and_then(|s| num(s, "packets"));
    if packets != Some(u64::from(e.packets)) {
        problems.push(format!(
            "frame {}: packets {packets:?}, by hand {}",
            e.frame, e.packets
        ));
    }
    let blocks: Vec<(u64, u64, u64)> = match rtcp.get("report_blocks") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|b| {
                (
                    num(b, "source_ssrc").unwrap_or(u64::MAX),
                    num(b, "fraction_lost").unwrap_or(u64::MAX),
                    num(b, "packets_lost").unwrap_or(u64::MAX),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let want: Vec<(u64, u64, u64)> = e
        .blocks
        .iter()
        .map(|(s, f, l)| (u64::from(*s), u64::from(*f), u64::from(*l)))
        .collect();
    if blocks != want {
        problems.push(format!(
            "frame {}: blocks {blocks:?}, by hand {want:?}",
            e.frame
        ));
    }
    let mos = v.get("mos").and_then(Value::as_u64);
    if mos != e.mos.map(u64::from) {
        problems.push(format!(
            "frame {}: mos {mos:?}, by hand {:?}",
            e.frame, e.mos
        ));
    }
}

/// Field-by-field comparison of one record's JSON with tshark's decode.
fn compare(f: &TsharkRtcp, record: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(rtcp) = record
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| json::parse(p).ok())
    else {
        return vec!["payload is not JSON".to_owned()];
    };
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
    let mut check = |what: &str, got: Option<u64>, want: Option<u64>| {
        if got != want {
            problems.push(format!("{what}: hepcap {got:?}, tshark {want:?}"));
        }
    };

    check(
        "ssrc",
        num(&rtcp, "ssrc"),
        f.first_u64("rtcp.senderssrc").or(Some(0)),
    );
    let si = rtcp.get("sender_information");
    for (key, field) in [
        ("ntp_timestamp_sec", "rtcp.timestamp.ntp.msw"),
        ("ntp_timestamp_usec", "rtcp.timestamp.ntp.lsw"),
        ("rtp_timestamp", "rtcp.timestamp.rtp"),
        ("packets", "rtcp.sender.packetcount"),
        ("octets", "rtcp.sender.octetcount"),
    ] {
        check(
            key,
            si.and_then(|s| num(s, key)),
            f.first_u64(field).or(Some(0)),
        );
    }

    let blocks: &[Value] = match rtcp.get("report_blocks") {
        Some(Value::Array(a)) => a,
        _ => &[],
    };
    // tshark also names SDES chunk and XR block sources `rtcp.ssrc.identifier` (and an XR
    // loss rate `rtcp.ssrc.fraction`); only report blocks have `ext_high`, and a compound
    // starts with its SR/RR (RFC 3550 §6.1), so the report blocks' values are the first ones.
    let count = f.get("rtcp.ssrc.ext_high").len();
    check(
        "report block count",
        Some(blocks.len() as u64),
        Some(count as u64),
    );
    for (i, b) in blocks.iter().enumerate() {
        for (key, field, mask) in [
            ("source_ssrc", "rtcp.ssrc.identifier", u64::MAX),
            ("fraction_lost", "rtcp.ssrc.fraction", u64::MAX),
            ("packets_lost", "rtcp.ssrc.cum_nr", 0x00ff_ffff),
            ("highest_seq_no", "rtcp.ssrc.ext_high", u64::MAX),
            ("ia_jitter", "rtcp.ssrc.jitter", u64::MAX),
            ("lsr", "rtcp.ssrc.lsr", u64::MAX),
            ("dlsr", "rtcp.ssrc.dlsr", u64::MAX),
        ] {
            let want = f
                .get(field)
                .get(i)
                .and_then(|v| parse_num(v))
                .map(|n| n & mask);
            check(&format!("report_blocks[{i}].{key}"), num(b, key), want);
        }
    }

    let mos_cq = f
        .get("rtcp.xr.voipmetrics.moscq")
        .first()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|m| (1.0..=5.0).contains(m))
        .map(|m| (m * 100.0).round() as u64);
    check("mos", record.get("mos").and_then(Value::as_u64), mos_cq);
    problems
}

/// Decimal or 0x-hex, negative 24-bit counts as their two's complement.
fn parse_num(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Some(hex) = v.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok();
    }
    if let Some(neg) = v.strip_prefix('-') {
        let n: u64 = neg.parse().ok()?;
        return Some(0x0100_0000u64.wrapping_sub(n) & 0x00ff_ffff);
    }
    v.parse().ok()
}

/// tshark's RTCP frames of a capture.
fn tshark_rtcp(path: &Path) -> anyhow::Result<Vec<TsharkRtcp>> {
    let program = tshark::program();
    let mut cmd = Command::new(&program);
    cmd.args(["--enable-heuristic", "rtcp_udp", "-r"])
        .arg(path)
        .args(["-Y", "rtcp", "-T", "fields", "-E", "separator=/t"])
        .args(["-E", "occurrence=a", "-E", "aggregator=,"]);
    for field in FIELDS {
        cmd.args(["-e", field]);
    }
    let out = cmd.output().with_context(|| format!("run {program}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut frames = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != FIELDS.len() {
            anyhow::bail!("tshark row with {} columns: {line}", cols.len());
        }
        let fields: Vec<Vec<String>> = cols
            .iter()
            .map(|c| {
                if c.is_empty() {
                    Vec::new()
                } else {
                    c.split(',').map(str::to_owned).collect()
                }
            })
            .collect();
        let frame = cols[0].parse().context("frame number")?;
        let ts_us = epoch_us(cols[1]).context("frame time")?;
        let src = if cols[2].is_empty() { cols[3] } else { cols[2] };
        let dst = if cols[5].is_empty() { cols[6] } else { cols[5] };
        let key = format!("{src} {} {dst} {}", cols[4], cols[7]);
        frames.push(TsharkRtcp {
            frame,
            ts_us,
            key,
            fields,
        });
    }
    Ok(frames)
}

/// Call-ID of every SIP frame, by frame number.
fn tshark_call_ids(path: &Path) -> anyhow::Result<HashMap<u32, String>> {
    let program = tshark::program();
    let out = Command::new(&program)
        .arg("-r")
        .arg(path)
        .args([
            "-Y",
            "sip.Call-ID",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "sip.Call-ID",
        ])
        .output()
        .with_context(|| format!("run {program}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (n, id) = l.split_once('\t')?;
            Some((n.parse().ok()?, id.to_owned()))
        })
        .collect())
}

/// `1105725491.463085000` → microseconds (the SIP rows' parser, unsigned).
fn epoch_us(text: &str) -> Option<u64> {
    u64::try_from(super::rows::epoch_to_micros(text).ok()?).ok()
}

/// Time and addresses of a hepcap JSON line, in the form of [`TsharkRtcp::key`].
fn record_key(v: &Value) -> Option<(u64, String)> {
    let ts = rfc3339_us(v.get("timestamp")?.as_str()?)?;
    let key = format!(
        "{} {} {} {}",
        v.get("src_ip")?.as_str()?,
        v.get("src_port")?.as_u64()?,
        v.get("dst_ip")?.as_str()?,
        v.get("dst_port")?.as_u64()?
    );
    Some((ts, key))
}

/// `2005-01-14T17:58:11.463085Z` → microseconds since the epoch (the SIP rows' parser).
fn rfc3339_us(text: &str) -> Option<u64> {
    u64::try_from(super::rows::rfc3339_to_micros(text).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(
            epoch_us("1105725491.463085000"),
            Some(1_105_725_491_463_085)
        );
        assert_eq!(epoch_us("1700000001.5"), Some(1_700_000_001_500_000));
        assert_eq!(
            rfc3339_us("2005-01-14T17:58:11.463085Z"),
            Some(1_105_725_491_463_085)
        );
        assert_eq!(rfc3339_us("1970-01-01T00:00:00.000001Z"), Some(1));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_num("0x58f33dea"), Some(0x58f3_3dea));
        assert_eq!(parse_num("-1"), Some(0x00ff_ffff));
        assert_eq!(parse_num("262148"), Some(262_148));
    }

    #[test]
    fn synthetic_capture_builds_and_expectations_are_in_order() {
        let bytes = synth::build().unwrap();
        assert!(bytes.len() > 24);
        let frames: Vec<u32> = synth::EXPECTED.iter().map(|e| e.frame).collect();
        let mut sorted = frames.clone();
        sorted.sort_unstable();
        assert_eq!(frames, sorted);
    }
}
