//! Live capture against real software: SIPp calls through the harness's Kamailio on `lo`, with
//! Kamailio's siptrace mirroring every SIP message it receives and sends as HEPv3 (harness
//! README §1, `trace_mode=1`).
//!
//! One `hepcap run --capture MODE -i lo --hep-listen udp://127.0.0.1:PORT --jsonl FILE` both
//! captures `lo` and receives Kamailio's mirror (siptrace's `duplicate_uri` points at PORT), so
//! one JSON lines file holds the captured messages (`"source":"ebpf"` or `"pcap"`) and the
//! mirrored ones (`"source":"hep-udp"`).
//!
//! Every SIP message on `lo` here goes to or comes from Kamailio (the SIPp UAC only talks to the
//! proxy, the UAS only answers it), and siptrace mirrors each of them once, as Kamailio read it
//! or wrote it: so what hepcap captured must be exactly what Kamailio mirrored, message for
//! message — the same Call-IDs, the same count per direction (src ip:port → dst ip:port), the
//! same method or status and the same payload bytes — and each packet once (on `lo` the eBPF
//! program skips a packet's outgoing sighting; libpcap sees it once), which the capture summary
//! confirms: the deduplication behind it had nothing to drop.
//!
//! Kamailio's SIP port (5060) and SIPp's (5070, 5080) are fixed, so the tests take
//! `relay_support::sip_ports_lock` and run one at a time. Needs root, kamailio and sipp.

mod relay_support;

use std::collections::{BTreeMap, BTreeSet};

use hepcap_e2e::require_tool;
use relay_support::*;
use serde_json::Value;

/// Calls per test.
const CALLS: usize = 10;

const PROXY: &str = "127.0.0.1:5060";
const UAC: &str = "127.0.0.1:5070";
const UAS: &str = "127.0.0.1:5080";

/// One proxied call on the wire (gen_calls.sh through kamailio.cfg): the UAS answers INVITE
/// with 100, 180, 200; Kamailio sends its own 100 to the UAC and absorbs the UAS's; ACK and BYE
/// follow the Record-Route. A response is its status and CSeq method.
const CALL: [(&str, &str, &str); 14] = [
    (UAC, PROXY, "INVITE"),
    (PROXY, UAC, "100 INVITE"),
    (PROXY, UAS, "INVITE"),
    (UAS, PROXY, "100 INVITE"),
    (UAS, PROXY, "180 INVITE"),
    (PROXY, UAC, "180 INVITE"),
    (UAS, PROXY, "200 INVITE"),
    (PROXY, UAC, "200 INVITE"),
    (UAC, PROXY, "ACK"),
    (PROXY, UAS, "ACK"),
    (UAC, PROXY, "BYE"),
    (PROXY, UAS, "BYE"),
    (UAS, PROXY, "200 BYE"),
    (PROXY, UAC, "200 BYE"),
];

/// The one message of [`CALL`] that Kamailio may rightly not send: when the UAS's 200 is
/// handled (by another Kamailio worker) before its 180, tm drops the late provisional reply
/// instead of relaying it. It is then neither on the wire nor in the mirror.
const MAY_BE_ABSORBED: (&str, &str, &str) = (PROXY, UAC, "180 INVITE");

/// A captured or mirrored SIP message, from its JSONL record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Msg {
    call_id: String,
    src: String,
    dst: String,
    /// The request method, or the status and CSeq method of a response (`200 BYE`).
    what: String,
    payload: Vec<u8>,
}

impl Msg {
    fn of(r: &Value) -> Msg {
        let sip = &r["sip"];
        let what = match (sip["method"].as_str(), sip["status"].as_u64()) {
            (Some(m), _) => m.to_string(),
            (None, Some(s)) => format!(
                "{s} {}",
                sip["cseq"]["method"]
                    .as_str()
                    .expect("CSeq method of a response")
            ),
            _ => panic!("record without SIP method or status: {r}"),
        };
        let end = |side: &str| {
            format!(
                "{}:{}",
                r[format!("{side}_ip")].as_str().expect("ip"),
                r[format!("{side}_port")].as_u64().expect("port")
            )
        };
        Msg {
            call_id: sip["call_id"]
                .as_str()
                .unwrap_or_else(|| panic!("record without Call-ID: {r}"))
                .to_string(),
            src: end("src"),
            dst: end("dst"),
            what,
            payload: record_payload(r),
        }
    }

    fn direction(&self) -> (String, String, String) {
        (self.call_id.clone(), self.src.clone(), self.dst.clone())
    }

    fn short(&self) -> String {
        format!(
            "{} {} -> {} {}",
            self.call_id, self.src, self.dst, self.what
        )
    }
}

/// How many times each element occurs.
fn multiset<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// `a` minus `b`, as multisets, each message shortened for a failure message.
fn missing_from(a: &BTreeMap<Msg, usize>, b: &BTreeMap<Msg, usize>) -> Vec<String> {
    a.iter()
        .filter_map(|(m, &n)| {
            let other = b.get(m).copied().unwrap_or(0);
            (n > other).then(|| format!("{} ×{}", m.short(), n - other))
        })
        .collect()
}

fn live_capture_matches_kamailio_mirror(mode: &str) {
    require_root("live capture on lo");
    for tool in ["kamailio", "sipp"] {
        require_tool(tool);
    }
    let _lock = sip_ports_lock();
    let dir = fresh_dir(&format!("live_kamailio_{mode}"));
    let jsonl = dir.join("records.jsonl");
    let jsonl_arg = jsonl.display().to_string();
    let hepcap = Hepcap::start(&[
        "--capture",
        mode,
        "-i",
        "lo",
        "--hep-listen",
        "udp://127.0.0.1:0",
        "--jsonl",
        &jsonl_arg,
    ]);
    let port = hepcap.udp[0].port();
    let kamailio = Kamailio::start(
        &dir.join("kamailio"),
        None,
        &[format!("HEP_DST=\"sip:127.0.0.1:{port}\"")],
    );
    // A call SIPp aborted on a reordered 180 still sent (and Kamailio mirrored) its messages;
    // only its message set differs from the template.
    let aborted = place_calls_allowing_reorder(&dir, CALLS);
    // gen_calls.sh waits 2.5 s after the last call; nothing is in flight any more.
    kamailio.stop();
    drop(kamailio);
    let summary = hepcap.stop_ok();
    let records = read_jsonl(&jsonl);
    assert_eq!(
        sink_records(&summary, "jsonl") as usize,
        records.len(),
        "{summary}"
    );

    // Split the file by source and check what each record must carry.
    let mut captured: Vec<(Msg, u64)> = Vec::new();
    let mut mirrored: Vec<(Msg, u64)> = Vec::new();
    for r in &records {
        let source = r["source"].as_str().expect("source");
        if source == mode {
            assert_eq!(r["transport"], "udp", "{r}");
            assert_eq!(r["ip_family"], 4, "{r}");
            assert_eq!(r["proto_type"], 1, "{r}");
            captured.push((Msg::of(r), record_micros(r)));
        } else if source == "hep-udp" {
            assert_eq!(r["hep_version"], "v3", "{r}");
            assert_eq!(r["node_id"], 2001, "kamailio.cfg's hep_capture_id: {r}");
            assert_eq!(
                r["peer"], PROXY,
                "siptrace sends HEP over UDP from the SIP socket: {r}"
            );
            assert_eq!(r["transport"], "udp", "{r}");
            mirrored.push((Msg::of(r), record_micros(r)));
        } else {
            panic!("record from an unexpected source {source:?}: {r}");
        }
    }
    let listener = listener_summary(&summary, "udp://");
    assert_eq!(listener.received, mirrored.len() as u64, "{summary}");
    assert_eq!(listener.relayed, mirrored.len() as u64, "{summary}");
    assert!(listener.rejected.is_empty(), "{summary}");

    // 1. The words: the same Call-IDs, and per Call-ID the same count per direction.
    let per_direction = |msgs: &[(Msg, u64)]| multiset(msgs.iter().map(|(m, _)| m.direction()));
    assert_eq!(
        per_direction(&captured),
        per_direction(&mirrored),
        "{mode}: messages per (Call-ID, src -> dst), left captured, right Kamailio's mirror"
    );

    // 2. Message for message: method or status, and payload bytes.
    let cap = multiset(captured.iter().map(|(m, _)| m.clone()));
    let mir = multiset(mirrored.iter().map(|(m, _)| m.clone()));
    let only_captured = missing_from(&cap, &mir);
    let only_mirrored = missing_from(&mir, &cap);
    assert!(
        only_captured.is_empty() && only_mirrored.is_empty(),
        "{mode}: captured but not mirrored: {only_captured:#?}\nmirrored but not captured: \
         {only_mirrored:#?}"
    );

    // 3. Each packet once. A datagram repeated byte for byte would be a retransmission, which
    //    Kamailio mirrors as often as it sees it (and which the equality above already holds
    //    to); and the deduplication had nothing to drop, so the single sighting comes from
    //    the capture itself.
    let repeated_captured: Vec<_> = cap.iter().filter(|(_, n)| **n > 1).collect();
    let repeated_mirrored: Vec<_> = mir.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(
        repeated_captured, repeated_mirrored,
        "{mode}: packets captured more than once"
    );
    let cs = capture_summary(&summary);
    assert_eq!(cs.mode, mode, "{summary}");
    assert_eq!(cs.duplicates, 0, "{mode}: dedup had to drop: {summary}");

    // 4. Real numbers: CALLS calls, each the 14 messages of CALL (13 when Kamailio rightly
    //    absorbed the late 180), retransmissions apart.
    let calls: BTreeSet<&str> = cap.keys().map(|m| m.call_id.as_str()).collect();
    assert_eq!(calls.len(), CALLS, "{mode}: Call-IDs {calls:?}");
    let template: BTreeSet<(String, String, String)> = CALL
        .iter()
        .map(|(s, d, w)| (s.to_string(), d.to_string(), w.to_string()))
        .collect();
    let absorbed = (
        MAY_BE_ABSORBED.0.to_string(),
        MAY_BE_ABSORBED.1.to_string(),
        MAY_BE_ABSORBED.2.to_string(),
    );
    let mut absorbed_180 = 0;
    for call in calls.iter().filter(|c| !aborted.iter().any(|a| a == *c)) {
        let seen: BTreeSet<(String, String, String)> = cap
            .keys()
            .filter(|m| m.call_id == *call)
            .map(|m| (m.src.clone(), m.dst.clone(), m.what.clone()))
            .collect();
        let mut want = template.clone();
        if !seen.contains(&absorbed) {
            want.remove(&absorbed);
            absorbed_180 += 1;
        }
        assert_eq!(seen, want, "{mode}: messages of call {call}");
    }
    let distinct = cap.len();
    let complete = cap.keys().filter(|m| !aborted.contains(&m.call_id)).count();
    assert_eq!(
        complete,
        (CALLS - aborted.len()) * CALL.len() - absorbed_180,
        "{mode}"
    );
    let retransmissions = captured.len() - distinct;

    // 5. Time: each captured message within 100 ms of Kamailio's stamp of the same message
    //    (siptrace stamps when it mirrors; a monotonic clock sent as wall time would be off
    //    by years).
    let mut times: BTreeMap<&Msg, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for (m, t) in &captured {
        times.entry(m).or_default().0.push(*t);
    }
    for (m, t) in &mirrored {
        times.entry(m).or_default().1.push(*t);
    }
    let mut max_gap = 0u64;
    for (m, (c, k)) in &mut times {
        c.sort_unstable();
        k.sort_unstable();
        for (c, k) in c.iter().zip(k.iter()) {
            let gap = c.abs_diff(*k);
            assert!(
                gap <= 100_000,
                "{mode}: {} captured at {c} µs, Kamailio stamped {k} µs",
                m.short()
            );
            max_gap = max_gap.max(gap);
        }
    }

    // 6. The capture's own counts. Kamailio sends its HEP over UDP from its SIP socket
    //    (127.0.0.1:5060); the kernel program and the pcap filter recognise HEPv3 on a SIP
    //    port and leave it in the kernel: copied = SIP captured, each once.
    assert_eq!(cs.sip_messages, captured.len() as u64, "{summary}");
    assert_eq!(cs.without_call_id, 0, "{summary}");
    assert!(
        cs.lost.is_empty(),
        "{mode}: capture lost packets: {summary}"
    );
    assert_eq!(
        cs.skipped,
        BTreeMap::new(),
        "{mode}: nothing but SIP should reach the decoder: {summary}"
    );
    assert_eq!(
        cs.copied,
        captured.len() as u64,
        "{mode}: packets copied to user space: {summary}"
    );
    if mode != "pcap" {
        let k = |name: &str| -> u64 {
            *cs.kernel
                .get(name)
                .unwrap_or_else(|| panic!("kernel counter {name}: {summary}"))
        };
        assert_eq!(k("sip"), cs.copied, "{summary}");
        assert_eq!(k("rtcp"), 0, "no RTCP in these calls: {summary}");
        assert_eq!(k("fragments"), 0, "{summary}");
        assert_eq!(k("output_failed"), 0, "{summary}");
        // Kamailio's HEP datagrams, seen once each (incoming sighting), left in the kernel.
        assert_eq!(k("hep"), mirrored.len() as u64, "{summary}");
        // Every packet on lo passes the socket twice; the outgoing sighting is never copied.
        assert!(k("lo_outgoing") >= cs.copied, "{summary}");
        assert!(k("seen") >= 2 * cs.copied, "{summary}");
    }
    eprintln!(
        "{mode}: {CALLS} calls, {} messages captured = {} mirrored by Kamailio ({distinct} \
         distinct, {retransmissions} retransmitted, {absorbed_180} late 180s absorbed), {} \
         packets copied, capture within {max_gap} µs of Kamailio's stamps",
        captured.len(),
        mirrored.len(),
        cs.copied
    );
}

#[test]
fn ebpf_on_lo_matches_kamailio_mirror() {
    live_capture_matches_kamailio_mirror("ebpf");
}

#[test]
fn pcap_on_lo_matches_kamailio_mirror() {
    live_capture_matches_kamailio_mirror("pcap");
}
