//! Real RTCP from real softphones, correlated to its calls: the harness's baresip calls alice
//! to bob through Kamailio while tcpdump captures the loopback and `hepcap run --capture ebpf
//! -i lo` captures it live. Both the live agent and `hepcap replay` of tcpdump's capture must
//! send every RTCP packet that tshark ties to a call (through its own SDP tracking) as a HEP
//! type 5 record with that call's Call-ID, and the JSON values must equal tshark's decode of
//! the same packet. Live, the RTCP only leaves the kernel because the agent put the ports the
//! SDP announced into the eBPF program's RTCP map.
//!
//! Needs root (tcpdump and eBPF on `lo`, Kamailio on 127.0.0.1:5060), baresip, kamailio,
//! tcpdump and tshark; a missing one fails the test. Everything it starts is stopped by its
//! PID.

use std::collections::HashMap;
use std::process::Command;

use hepcap_e2e::{hepcap, require_tool, scratch_dir, shared_dir};
use relay_support::{Hepcap, Tcpdump, rfc3339_micros};
use serde_json::Value;

mod relay_support;

const TSHARK_FIELDS: [&str; 16] = [
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "udp.srcport",
    "ip.dst",
    "udp.dstport",
    "rtcp.setup-frame",
    "rtcp.senderssrc",
    "rtcp.timestamp.ntp.msw",
    "rtcp.timestamp.ntp.lsw",
    "rtcp.sender.packetcount",
    "rtcp.sender.octetcount",
    "rtcp.ssrc.ext_high",
    "rtcp.ssrc.identifier",
    "rtcp.ssrc.jitter",
    "rtcp.ssrc.lsr",
];

/// Stops the harness Kamailio of `rundir` when the test ends.
struct Kamailio(std::path::PathBuf);

impl Drop for Kamailio {
    fn drop(&mut self) {
        let run = shared_dir().join("harness/kamailio/run.sh");
        let _ = Command::new(run).arg("stop").arg(&self.0).status();
    }
}

fn split(field: &str) -> Vec<u64> {
    field
        .split(',')
        .filter(|v| !v.is_empty())
        .filter_map(|v| match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        })
        .collect()
}

fn epoch_us(text: &str) -> u64 {
    let (sec, frac) = text.split_once('.').unwrap_or((text, "0"));
    let frac = format!("{frac:0<6}");
    sec.parse::<u64>().expect("seconds") * 1_000_000 + frac[..6].parse::<u64>().expect("usec")
}

#[test]
fn baresip_rtcp_is_correlated_to_its_calls() {
    for tool in ["baresip", "kamailio", "tcpdump", "tshark"] {
        require_tool(tool);
    }
    let harness = shared_dir().join("harness");
    assert!(
        harness.join("baresip/calls.sh").is_file(),
        "harness missing at {}",
        harness.display()
    );
    let dir = scratch_dir("rtcp_baresip");
    let capture = dir.join("calls.pcap");
    let _ = std::fs::remove_file(&capture);

    let rundir = dir.join("kamailio");
    let started = Command::new(harness.join("kamailio/run.sh"))
        .arg("start")
        .arg(&rundir)
        .status()
        .expect("run kamailio/run.sh");
    assert!(
        started.success(),
        "Kamailio did not start (see {})",
        rundir.display()
    );
    let _kamailio = Kamailio(rundir);

    // The live agent, capturing lo with the eBPF socket filter. Kamailio's siptrace mirror is
    // not SIP and stays in the kernel; the calls' SIP and RTCP come out.
    let live_out = dir.join("live.jsonl");
    let _ = std::fs::remove_file(&live_out);
    let live = Hepcap::start(&[
        "--capture",
        "ebpf",
        "-i",
        "lo",
        "--jsonl",
        live_out.to_str().expect("utf-8 path"),
    ]);

    // Only the calls' own SIP (proxy 5060, alice 5062, bob 5064), RTP and RTCP (10000-10019):
    // not Kamailio's HEP mirror, nor whatever else runs on the loopback.
    let tcpdump = Tcpdump::start(
        &capture,
        "udp and (port 5060 or port 5062 or port 5064 or portrange 10000-10019)",
    );
    let calls = Command::new(harness.join("baresip/calls.sh"))
        .args(["-n", "2", "-d", "7", "-w"])
        .arg(dir.join("baresip"))
        .output()
        .expect("run baresip/calls.sh");
    assert!(
        calls.status.success(),
        "baresip calls failed: {}",
        String::from_utf8_lossy(&calls.stdout)
    );
    // Stops tcpdump once its file settles; it writes out what it holds.
    tcpdump.finish(1);
    let live_summary = live.stop_ok();

    // tshark's view: RTCP frames and the Call-ID of the frame that set each one up.
    let mut args = vec!["--enable-heuristic", "rtcp_udp", "-r"];
    let cap = capture.to_str().expect("utf-8 path");
    args.push(cap);
    args.extend(["-Y", "rtcp", "-T", "fields", "-E", "separator=/t"]);
    args.extend(["-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in TSHARK_FIELDS {
        args.extend(["-e", f]);
    }
    let out = Command::new("tshark").args(&args).output().expect("tshark");
    let rtcp_text = String::from_utf8_lossy(&out.stdout).into_owned();
    let out = Command::new("tshark")
        .args([
            "-r",
            cap,
            "-Y",
            "sip.Call-ID",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .args(["-e", "sip.Call-ID"])
        .output()
        .expect("tshark");
    let call_ids: HashMap<u64, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (n, id) = l.split_once('\t')?;
            Some((n.parse().ok()?, id.to_owned()))
        })
        .collect();
    assert!(!call_ids.is_empty(), "no SIP in the capture");

    // hepcap's view: replay of tcpdump's file, and the live agent.
    let out = hepcap()
        .args(["replay", "-q", "--jsonl", "-"])
        .arg(&capture)
        .output()
        .expect("run hepcap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = rtcp_records(&String::from_utf8_lossy(&out.stdout));
    // Same packets, same kernel clock: tcpdump's stamp and the eBPF program's differ by the
    // few microseconds between the two taps.
    compare("replay", &replayed, 0, &rtcp_text, &call_ids);
    eprintln!("live agent's summary:\n{live_summary}");
    let lived = rtcp_records(&std::fs::read_to_string(&live_out).expect("live JSON lines"));
    compare("live ebpf", &lived, 2_000, &rtcp_text, &call_ids);
    assert!(
        live_summary.contains("capture ebpf:"),
        "live summary: {live_summary}"
    );
}

/// Type 5 records keyed by "src port dst port", each with its time in µs.
fn rtcp_records(jsonl: &str) -> HashMap<String, Vec<(u64, Value)>> {
    let mut records: HashMap<String, Vec<(u64, Value)>> = HashMap::new();
    for line in jsonl.lines() {
        let v: Value = serde_json::from_str(line).expect("json line");
        if v["proto_type"] != 5 {
            continue;
        }
        let key = format!(
            "{} {} {} {}",
            v["src_ip"].as_str().unwrap_or_default(),
            v["src_port"],
            v["dst_ip"].as_str().unwrap_or_default(),
            v["dst_port"]
        );
        let ts = rfc3339_micros(v["timestamp"].as_str().expect("timestamp"));
        records.entry(key).or_default().push((ts, v));
    }
    records
}

/// Every RTCP frame tshark ties to a call must have one record within `tolerance_us` of the
/// frame's time, on the same addresses, with tshark's values; and no other record exists.
fn compare(
    label: &str,
    records: &HashMap<String, Vec<(u64, Value)>>,
    tolerance_us: u64,
    rtcp_text: &str,
    call_ids: &HashMap<u64, String>,
) {
    let total: usize = records.values().map(Vec::len).sum();
    let mut in_call = 0;
    let mut problems = Vec::new();
    for line in rtcp_text.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        assert_eq!(c.len(), TSHARK_FIELDS.len(), "tshark row: {line}");
        let Some(&setup) = split(c[6]).first() else {
            continue;
        };
        let Some(call_id) = call_ids.get(&setup) else {
            continue;
        };
        in_call += 1;
        let frame = c[0];
        let at = epoch_us(c[1]);
        let key = format!("{} {} {} {}", c[2], c[3], c[4], c[5]);
        let Some((_, v)) = records.get(&key).and_then(|rs| {
            rs.iter()
                .filter(|(ts, _)| ts.abs_diff(at) <= tolerance_us)
                .min_by_key(|(ts, _)| ts.abs_diff(at))
        }) else {
            problems.push(format!("frame {frame}: no record (call {call_id})"));
            continue;
        };
        if v["correlation_id"].as_str() != Some(call_id.as_str()) {
            problems.push(format!(
                "frame {frame}: {} vs {call_id}",
                v["correlation_id"]
            ));
        }
        let rtcp: Value =
            serde_json::from_str(v["payload"].as_str().expect("payload")).expect("rtcp json");
        let want = |i: usize| split(c[i]).first().copied().unwrap_or(0);
        let si = &rtcp["sender_information"];
        for (got, want, what) in [
            (&rtcp["ssrc"], want(7), "ssrc"),
            (&si["ntp_timestamp_sec"], want(8), "ntp msw"),
            (&si["ntp_timestamp_usec"], want(9), "ntp lsw"),
            (&si["packets"], want(10), "packets"),
            (&si["octets"], want(11), "octets"),
        ] {
            if got.as_u64() != Some(want) {
                problems.push(format!("frame {frame}: {what} {got} vs tshark {want}"));
            }
        }
        let blocks = rtcp["report_blocks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let (high, ident, jitter, lsr) = (split(c[12]), split(c[13]), split(c[14]), split(c[15]));
        if blocks.len() != high.len() {
            problems.push(format!(
                "frame {frame}: {} blocks vs tshark {}",
                blocks.len(),
                high.len()
            ));
            continue;
        }
        for (i, b) in blocks.iter().enumerate() {
            for (key, want) in [
                ("highest_seq_no", high[i]),
                ("source_ssrc", ident[i]),
                ("ia_jitter", jitter[i]),
                ("lsr", lsr[i]),
            ] {
                if b[key].as_u64() != Some(want) {
                    problems.push(format!(
                        "frame {frame}: block {i} {key} {} vs {want}",
                        b[key]
                    ));
                }
            }
        }
    }
    eprintln!(
        "baresip {label}: {in_call} RTCP frames in calls (tshark), {total} type 5 records (hepcap)"
    );
    assert!(
        in_call >= 4,
        "too little RTCP in the calls: {in_call}\n{rtcp_text}"
    );
    assert!(problems.is_empty(), "{label}: {}", problems.join("\n"));
    // Nothing outside the calls is sent by default.
    assert_eq!(total, in_call, "{label}: records for RTCP of no call");
}
