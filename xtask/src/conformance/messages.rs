//! Message-level comparison for captures that need reassembly or carry SIP in tunnels, TCP,
//! SCTP or WebSocket: tshark runs with its own IP defragmentation and TCP reassembly on, and
//! hepcap's SIP records (any transport) must equal tshark's SIP messages in count, order,
//! Call-ID, method or status code, and CSeq method.
//!
//! Plain `std`, compiled into `tests/tests/conformance.rs` as well (beside `rows.rs`).
//!
//! Times and addresses are not compared here: a reassembled message carries the time of its
//! last piece in both tools, but tshark shows the outer and the inner addresses of a tunnelled
//! packet in one comma-separated cell. Where one frame completes several messages, tshark
//! lists their Call-IDs and CSeq methods in order, but its method and status columns lose the
//! interleaving of requests and responses: those are compared as a set for that frame.

use super::json::{self, Value};
use super::rows::Start;

/// The fields of tshark's message command, in column order.
pub const FIELDS: [&str; 5] = [
    "frame.number",
    "sip.Call-ID",
    "sip.Method",
    "sip.Status-Code",
    "sip.CSeq.method",
];

/// The SIP messages tshark found in one frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameMessages {
    pub frame: u64,
    pub call_ids: Vec<String>,
    pub starts: Vec<Start>,
    pub cseq_methods: Vec<String>,
}

/// One of hepcap's SIP records, as compared here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub call_id: Option<String>,
    pub start: Start,
    pub cseq_method: Option<String>,
    pub transport: String,
}

fn values(cell: &str) -> Vec<String> {
    if cell.is_empty() {
        return Vec::new();
    }
    cell.split(',').map(str::to_owned).collect()
}

/// Parses `tshark -T fields -E header=y -E separator=/t -E occurrence=a` with [`FIELDS`].
pub fn parse_tshark(tsv: &str) -> Result<Vec<FrameMessages>, String> {
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty tshark output")?
        .split('\t')
        .collect();
    if header != FIELDS {
        return Err(format!("tshark header {header:?} is not {FIELDS:?}"));
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let at = |what: &str| format!("line {}: {what}", i + 2);
        let cells: Vec<&str> = line.split('\t').collect();
        let cell = |n: usize| cells.get(n).copied().unwrap_or_default();
        let frame = cell(0).parse().map_err(|_| at("frame number"))?;
        let mut starts: Vec<Start> = values(cell(2)).into_iter().map(Start::Request).collect();
        for status in values(cell(3)) {
            starts.push(Start::Response(
                status.parse().map_err(|_| at("status code"))?,
            ));
        }
        out.push(FrameMessages {
            frame,
            call_ids: values(cell(1)),
            starts,
            cseq_methods: values(cell(4)),
        });
    }
    Ok(out)
}

/// Parses `hepcap replay --jsonl -` output: every record with a `sip` object.
pub fn parse_hepcap(jsonl: &str) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: &str| format!("hepcap line {}: {what}", i + 1);
        let record = json::parse(line).map_err(|e| at(&e))?;
        let sip = match record.get("sip") {
            None | Some(Value::Null) => continue,
            Some(s) => s,
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let start = match (sip.get("method"), sip.get("status")) {
            (Some(m), None) => {
                Start::Request(text(Some(m)).ok_or_else(|| at("method is not text"))?)
            }
            (None, Some(s)) => Start::Response(
                s.as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .ok_or_else(|| at("status"))?,
            ),
            _ => return Err(at("sip needs exactly one of method and status")),
        };
        out.push(Message {
            call_id: text(sip.get("call_id")),
            start,
            cseq_method: sip.get("cseq").and_then(|c| text(c.get("method"))),
            transport: text(record.get("transport")).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Messages tshark shows, over all frames.
pub fn count(frames: &[FrameMessages]) -> usize {
    frames.iter().map(|f| f.starts.len()).sum()
}

/// Differences, in order; empty when hepcap's messages equal tshark's. At most `limit` are
/// described.
pub fn compare(tshark: &[FrameMessages], hepcap: &[Message], limit: usize) -> Vec<String> {
    let mut diffs = Vec::new();
    let expected = count(tshark);
    if expected != hepcap.len() {
        diffs.push(format!(
            "tshark has {expected} messages, hepcap {}",
            hepcap.len()
        ));
    }
    let mut next = 0;
    for f in tshark {
        let k = f.starts.len();
        let Some(got) = hepcap.get(next..next + k) else {
            diffs.push(format!(
                "frame {}: missing in hepcap ({:?})",
                f.frame, f.call_ids
            ));
            next = hepcap.len();
            continue;
        };
        next += k;
        let call_ids: Vec<String> = got.iter().filter_map(|m| m.call_id.clone()).collect();
        let cseq: Vec<String> = got.iter().filter_map(|m| m.cseq_method.clone()).collect();
        let mut want_starts: Vec<String> = f.starts.iter().map(|s| s.to_string()).collect();
        let mut got_starts: Vec<String> = got.iter().map(|m| m.start.to_string()).collect();
        want_starts.sort();
        got_starts.sort();
        let mut fields = Vec::new();
        if call_ids != f.call_ids {
            fields.push(format!("call-id {:?} vs {:?}", f.call_ids, call_ids));
        }
        if want_starts != got_starts {
            fields.push(format!("method/status {want_starts:?} vs {got_starts:?}"));
        }
        if cseq != f.cseq_methods {
            fields.push(format!("cseq method {:?} vs {cseq:?}", f.cseq_methods));
        }
        if !fields.is_empty() {
            diffs.push(format!(
                "frame {} (message {}): tshark vs hepcap: {}",
                f.frame,
                next - k + 1,
                fields.join("; ")
            ));
        }
    }
    for m in hepcap.iter().skip(next) {
        diffs.push(format!(
            "extra in hepcap: {} call-id={:?}",
            m.start, m.call_id
        ));
    }
    if diffs.len() > limit {
        let rest = diffs.len() - limit;
        diffs.truncate(limit);
        diffs.push(format!("... and {rest} more differences"));
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(call_id: &str, start: Start, cseq: &str) -> Message {
        Message {
            call_id: Some(call_id.to_owned()),
            start,
            cseq_method: Some(cseq.to_owned()),
            transport: "tcp".to_owned(),
        }
    }

    #[test]
    fn two_messages_in_one_frame() {
        let tsv = "frame.number\tsip.Call-ID\tsip.Method\tsip.Status-Code\tsip.CSeq.method\n\
                   3\ta,b\tBYE\t200\tINVITE,BYE\n4\tc\tACK\t\tACK\n";
        let frames = parse_tshark(tsv).unwrap();
        assert_eq!(count(&frames), 3);
        let hepcap = [
            msg("a", Start::Response(200), "INVITE"),
            msg("b", Start::Request("BYE".into()), "BYE"),
            msg("c", Start::Request("ACK".into()), "ACK"),
        ];
        assert!(compare(&frames, &hepcap, 5).is_empty());
        let diffs = compare(&frames, &hepcap[..2], 5);
        assert!(
            diffs[0].contains("tshark has 3 messages, hepcap 2"),
            "{diffs:?}"
        );
        let mut wrong = hepcap.clone();
        wrong[2].call_id = Some("x".into());
        assert!(compare(&frames, &wrong, 5)[0].contains("call-id"));
    }

    #[test]
    fn hepcap_records_of_every_transport() {
        let jsonl = r#"{"transport":"sctp","sip":{"call_id":"a","method":"INVITE","cseq":{"number":1,"method":"INVITE"}}}
{"transport":"udp","sip":null}"#;
        let m = parse_hepcap(jsonl).unwrap();
        assert_eq!(
            m,
            vec![Message {
                call_id: Some("a".into()),
                start: Start::Request("INVITE".into()),
                cseq_method: Some("INVITE".into()),
                transport: "sctp".into(),
            }]
        );
    }
}
