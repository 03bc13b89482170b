//! JSON lines: one object per record, to a file or standard output.
//!
//! The keys are a contract with outside scripts:
//!
//! | key | value |
//! | --- | --- |
//! | `timestamp` | RFC 3339 UTC, exactly six fractional digits: `2011-08-15T20:34:19.120000Z` |
//! | `source` | where the record entered the agent (`replay`) |
//! | `proto_type` | HEP protocol type, 1 for SIP, 5 for RTCP (the payload is then its JSON) |
//! | `ip_family` | 4 when both addresses are IPv4, else 6 |
//! | `transport` | `udp`, `tcp`, `sctp`, `tls`, `ws`, or the protocol number |
//! | `src_ip`, `src_port`, `dst_ip`, `dst_port` | addresses as captured (no IPv4 unmapping) |
//! | `vlan` | outer VLAN id or null |
//! | `node_id`, `node_name` | the agent's identity; the name may be null |
//! | `correlation_id` | the HEP correlation id (the Call-ID for SIP and correlated RTCP) or null |
//! | `mos` | MOS×100 of RTCP with an XR VoIP metrics block; absent otherwise |
//! | `sip` | object for SIP records (below), null for others |
//! | `payload` | the payload as a string |
//!
//! `sip` holds `call_id` (or null), `method` for requests or `status` (a number) for
//! responses, and `cseq` as `{"number": 1, "method": "INVITE"}` or null.
//!
//! Nothing is converted lossily. Text that is not valid UTF-8 is written as null (or, for the
//! payload, left out) and a `<key>_base64` key alongside carries the bytes in standard
//! base64: `correlation_id_base64`, `sip.call_id_base64`, `sip.method_base64`,
//! `sip.cseq.method_base64` and `payload_base64`.
//!
//! Lines are serialized with borrowed structs straight into a batch buffer, which is written
//! out once it holds [`WRITE_AT`] bytes, once its oldest line waited [`WRITE_AFTER`] (so a
//! live agent's output can be followed with `tail -f` or a pipe), and on flush. The buffer does what a `BufWriter` would,
//! and because it is written in whole lines the sink knows which records a failed write lost:
//! they are counted as `write_error`, and the sink stops writing (a reader such as `head` has
//! gone away, or the disk is full).

use std::fs::File;
use std::io::{self, Stdout, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use serde::{Serialize, Serializer};
use tracing::{error, warn};

use super::{Sink, SinkStats};
use crate::hep::NodeIdentity;
use crate::record::{Record, SipKind, Timestamp};
use crate::telemetry::LogLimit;

/// Buffered bytes that trigger a write.
pub const WRITE_AT: usize = 64 * 1024;

/// Longest a buffered line waits for more before it is written (checked on each batch and
/// when the pipeline finds the sink idle).
pub const WRITE_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// One JSON object per record, to a file or standard output.
#[derive(Debug)]
pub struct JsonlSink {
    name: String,
    out: Output,
    identity: NodeIdentity,
    /// Complete lines not yet written.
    pending: Vec<u8>,
    /// Records in `pending`.
    pending_records: u64,
    /// When the first line now in `pending` was added.
    pending_since: Instant,
    /// A write failed; every later record is dropped.
    failed: bool,
    clock: Rfc3339Micros,
    stats: SinkStats,
    encode_log: LogLimit,
}

#[derive(Debug)]
enum Output {
    Stdout(Stdout),
    File(File),
}

impl Output {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.write_all(bytes),
            Output::File(file) => file.write_all(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::File(file) => file.flush(),
        }
    }
}

impl JsonlSink {
    /// `path` is a file path, or `-` for standard output. A file is created or truncated.
    pub fn new(path: &str, identity: NodeIdentity) -> io::Result<Self> {
        let out = match path {
            "-" => Output::Stdout(io::stdout()),
            path => Output::File(File::create(path)?),
        };
        Ok(JsonlSink {
            name: format!("jsonl {path}"),
            out,
            identity,
            pending: Vec::with_capacity(WRITE_AT + WRITE_AT / 4),
            pending_records: 0,
            pending_since: Instant::now(),
            failed: false,
            clock: Rfc3339Micros::default(),
            stats: SinkStats::default(),
            encode_log: LogLimit::default(),
        })
    }

    /// Appends one line for `record` to `pending`, or counts why it could not.
    fn encode(&mut self, record: &Record) {
        let Some(timestamp) = self.clock.format(record.ts) else {
            // Past year 9999: RFC 3339 cannot write it.
            self.drop_encode(record.ts.secs(), "timestamp out of range");
            return;
        };
        let transport = record.transport.name();
        let line = Line::new(record, timestamp, &transport, &self.identity);

        let start = self.pending.len();
        match serde_json::to_writer(&mut self.pending, &line) {
            Ok(()) => {
                self.pending.push(b'\n');
                self.pending_records += 1;
            }
            Err(e) => {
                // Not expected: every field serializes infallibly into a Vec.
                self.pending.truncate(start);
                let e = e.to_string();
                self.drop_encode(record.ts.secs(), &e);
            }
        }
    }

    fn drop_encode(&mut self, ts_secs: u64, reason: &str) {
        self.stats.drop_one("encode");
        if let Some(suppressed) = self.encode_log.allow(Instant::now()) {
            warn!(sink = %self.name, ts_secs, reason, suppressed, "record not written as json");
        }
    }

    /// Writes the pending lines; on failure counts them as lost and stops the sink.
    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.out.write_all(&self.pending) {
            Ok(()) => {
                self.stats.records_sent += self.pending_records;
                self.stats.bytes_sent += self.pending.len() as u64;
            }
            Err(e) => self.fail(&e, self.pending_records),
        }
        self.pending.clear();
        self.pending_records = 0;
    }

    fn fail(&mut self, e: &io::Error, lost: u64) {
        if lost > 0 {
            *self.stats.dropped.entry("write_error").or_default() += lost;
        }
        if !self.failed {
            self.failed = true;
            error!(
                sink = %self.name,
                error = %e,
                records = lost,
                "jsonl write failed, output stopped"
            );
        }
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send_batch(&mut self, batch: &[Record]) {
        if self.failed {
            *self.stats.dropped.entry("write_error").or_default() += batch.len() as u64;
            return;
        }
        if self.pending.is_empty() {
            self.pending_since = Instant::now();
        }
        for record in batch {
            self.encode(record);
        }
        if self.pending.len() >= WRITE_AT || self.pending_since.elapsed() >= WRITE_AFTER {
            self.flush();
        }
    }

    fn idle(&mut self) -> Option<bool> {
        if !self.pending.is_empty() && !self.failed {
            self.flush();
        }
        None
    }

    fn flush(&mut self) {
        self.write_pending();
        if !self.failed
            && let Err(e) = self.out.flush()
        {
            self.fail(&e, 0);
        }
    }

    fn stats(&self) -> SinkStats {
        self.stats.clone()
    }
}

impl Drop for JsonlSink {
    /// A sink dropped without a final flush still writes what it holds.
    fn drop(&mut self) {
        if !self.failed {
            self.flush();
        }
    }
}

/// Bytes that are text when valid UTF-8, else base64 under a sibling key.
fn text(bytes: &[u8]) -> (Option<&str>, Option<Base64<'_>>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s), None),
        Err(_) => (None, Some(Base64(bytes))),
    }
}

/// Standard base64 of borrowed bytes, written straight into the output.
struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&Base64Display::new(self.0, &STANDARD))
    }
}

/// One output line; field order is key order.
#[derive(Serialize)]
struct Line<'a> {
    timestamp: &'a str,
    source: &'static str,
    proto_type: u8,
    ip_family: u8,
    transport: &'a str,
    src_ip: IpAddr,
    src_port: u16,
    dst_ip: IpAddr,
    dst_port: u16,
    vlan: Option<u16>,
    node_id: Option<u32>,
    node_name: Option<&'a str>,
    /// Sender of a record received as HEP.
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<SocketAddr>,
    /// Wire format of a record received as HEP: `v1`, `v2`, `v3` or `protobuf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    hep_version: Option<&'static str>,
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id_base64: Option<Base64<'a>>,
    /// MOS×100 of correlated RTCP (HEP chunk 0x0020), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    mos: Option<u16>,
    sip: Option<SipLine<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<Base64<'a>>,
}

#[derive(Serialize)]
struct SipLine<'a> {
    call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id_base64: Option<Base64<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method_base64: Option<Base64<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    cseq: Option<CseqLine<'a>>,
}

#[derive(Serialize)]
struct CseqLine<'a> {
    number: u32,
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method_base64: Option<Base64<'a>>,
}

impl<'a> Line<'a> {
    fn new(
        record: &'a Record,
        timestamp: &'a str,
        transport: &'a str,
        identity: &'a NodeIdentity,
    ) -> Self {
        let ip_family = match (record.src, record.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => 4,
            _ => 6,
        };
        let (correlation_id, correlation_id_base64) = match record.correlation_id() {
            Some(id) => text(id),
            None => (None, None),
        };
        let (payload, payload_base64) = text(&record.payload);
        // A relayed record carries its sender's identity, not ours.
        let received = record.source.received();
        let (node_id, node_name) = match received {
            Some(r) => (
                r.message.capture_id,
                r.message
                    .node_name
                    .as_deref()
                    .and_then(|n| std::str::from_utf8(n).ok()),
            ),
            None => (Some(identity.node_id), identity.node_name.as_deref()),
        };

        Line {
            timestamp,
            source: record.source.as_str(),
            proto_type: record.proto_type,
            ip_family,
            transport,
            src_ip: record.src,
            src_port: record.src_port,
            dst_ip: record.dst,
            dst_port: record.dst_port,
            vlan: record.vlan,
            node_id,
            node_name,
            peer: received.map(|r| r.peer),
            hep_version: received.map(|r| r.message.version.as_str()),
            correlation_id,
            correlation_id_base64,
            mos: record.mos(),
            sip: record.sip.as_ref().map(|_| SipLine::new(record)),
            payload,
            payload_base64,
        }
    }
}

impl<'a> SipLine<'a> {
    fn new(record: &'a Record) -> Self {
        let (call_id, call_id_base64) = match record.call_id() {
            Some(id) => text(id),
            None => (None, None),
        };
        let (method, method_base64) = match record.method() {
            Some(m) => text(m),
            None => (None, None),
        };
        let cseq = record.cseq().map(|(number, m)| {
            let (method, method_base64) = text(m);
            CseqLine {
                number,
                method,
                method_base64,
            }
        });
        let status = match record.sip.as_ref().map(|s| &s.kind) {
            Some(SipKind::Response { status }) => Some(*status),
            Some(SipKind::Request { .. }) | None => None,
        };

        SipLine {
            call_id,
            call_id_base64,
            method,
            method_base64,
            status,
            cseq,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, with the date and time part kept for the last second seen:
/// consecutive records mostly share it, so most records only write their microseconds.
#[derive(Debug, Default)]
struct Rfc3339Micros {
    second: Option<u64>,
    text: [u8; 27],
}

impl Rfc3339Micros {
    /// The formatted time, or `None` past 9999-12-31T23:59:59Z.
    fn format(&mut self, ts: Timestamp) -> Option<&str> {
        let secs = ts.secs();
        if self.second != Some(secs) {
            let t = i64::try_from(secs)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())?;
            let year = u32::try_from(t.year()).ok().filter(|&y| y <= 9999)?;
            let out = &mut self.text;
            put_digits(&mut out[0..4], year);
            out[4] = b'-';
            put_digits(&mut out[5..7], u32::from(u8::from(t.month())));
            out[7] = b'-';
            put_digits(&mut out[8..10], u32::from(t.day()));
            out[10] = b'T';
            put_digits(&mut out[11..13], u32::from(t.hour()));
            out[13] = b':';
            put_digits(&mut out[14..16], u32::from(t.minute()));
            out[16] = b':';
            put_digits(&mut out[17..19], u32::from(t.second()));
            out[19] = b'.';
            out[26] = b'Z';
            self.second = Some(secs);
        }
        put_digits(&mut self.text[20..26], ts.subsec_micros());
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&self.text).ok()
    }
}

/// Writes `v` zero-padded to exactly `out.len()` decimal digits (higher digits are cut).
fn put_digits(out: &mut [u8], mut v: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::path::PathBuf;

    use bytes::Bytes;
    use serde_json::{Value, json};

    use super::*;
    use crate::record::{Source, Transport};
    use crate::sip::SipScan;

    fn record(payload: &[u8]) -> Record {
        Record {
            source: Source::Replay,
            ts: Timestamp::from_parts(1_313_440_459, 120_000),
            src: IpAddr::V4(Ipv4Addr::new(212, 202, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(82, 116, 0, 211)),
            src_port: 12010,
            dst_port: 5060,
            transport: Transport::UDP,
            vlan: None,
            proto_type: 1,
            payload: Bytes::copy_from_slice(payload),
            sip: SipScan::scan(payload),
        }
    }

    fn identity() -> NodeIdentity {
        NodeIdentity {
            node_id: 2002,
            node_name: Some("edge-1".into()),
            password: Some("secret".into()),
        }
    }

    /// A unique file under the temp dir, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str) -> Self {
            TempFile(std::env::temp_dir().join(format!(
                "hepcap-jsonl-{}-{tag}-{:?}.jsonl",
                std::process::id(),
                Instant::now()
            )))
        }

        fn lines(&self) -> Vec<Value> {
            std::fs::read_to_string(&self.0)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Call-ID: a84b4c76e66710@pc33\r\n\
CSeq: 314159 INVITE\r\n\r\n";

    /// A record received as HEPv2 from a peer shows the sender's identity, not ours.
    #[test]
    fn relayed_record_shows_sender() {
        use crate::hep::{Limits, decode_datagram};
        use crate::record::HepListener;
        use crate::source::hep_listen::received_record;

        // HEPv2, IPv4: version 2, length 16, family 2, UDP, ports 5060 → 5080, addresses,
        // then seconds 1313440459 and microseconds 120000 little-endian, capture id 42.
        let mut v2 = vec![
            2, 16, 2, 17, 0x13, 0xc4, 0x13, 0xd8, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        v2.extend_from_slice(&1_313_440_459u32.to_le_bytes());
        v2.extend_from_slice(&120_000u32.to_le_bytes());
        v2.extend_from_slice(&42u16.to_le_bytes());
        v2.extend_from_slice(&[0, 0]);
        v2.extend_from_slice(INVITE);
        let message = decode_datagram(Bytes::from(v2), &Limits::default()).unwrap();
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let r = received_record(HepListener::Udp, peer, message, Timestamp(0));

        let file = TempFile::new("relay");
        let mut sink = JsonlSink::new(file.0.to_str().unwrap(), identity()).unwrap();
        sink.send_batch(&[r]);
        sink.flush();
        let line = &file.lines()[0];
        assert_eq!(line["source"], "hep-udp");
        assert_eq!(line["hep_version"], "v2");
        assert_eq!(line["peer"], "127.0.0.1:40000");
        assert_eq!(line["node_id"], 42);
        assert_eq!(line["node_name"], Value::Null);
        assert_eq!(line["timestamp"], "2011-08-15T20:34:19.120000Z");
        assert_eq!(line["src_ip"], "10.0.0.1");
        assert_eq!(line["dst_port"], 5080);
        assert_eq!(line["correlation_id"], Value::Null);
        assert_eq!(line["sip"]["call_id"], "a84b4c76e66710@pc33");
        assert_eq!(line["payload"], std::str::from_utf8(INVITE).unwrap());
    }

    #[test]
    fn writes_the_contract_keys() {
        let file = TempFile::new("keys");
        let path = file.0.to_str().unwrap();
        let mut sink = JsonlSink::new(path, identity()).unwrap();
        assert_eq!(sink.name(), format!("jsonl {path}"));

        let mut request = record(INVITE);
        request.vlan = Some(142);

        let ok = b"SIP/2.0 200 OK\r\ni: xyz\r\n\r\n";
        let mut response = record(ok);
        response.ts = Timestamp::from_parts(1_700_000_000, 5);
        response.src = IpAddr::V6(Ipv6Addr::LOCALHOST);
        response.dst = IpAddr::V6("::ffff:10.0.0.1".parse().unwrap());
        response.transport = Transport::TCP;

        sink.send_batch(&[request, response]);
        sink.flush();

        let lines = file.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            json!({
                "timestamp": "2011-08-15T20:34:19.120000Z",
                "source": "replay",
                "proto_type": 1,
                "ip_family": 4,
                "transport": "udp",
                "src_ip": "212.202.0.1",
                "src_port": 12010,
                "dst_ip": "82.116.0.211",
                "dst_port": 5060,
                "vlan": 142,
                "node_id": 2002,
                "node_name": "edge-1",
                "correlation_id": "a84b4c76e66710@pc33",
                "sip": {
                    "call_id": "a84b4c76e66710@pc33",
                    "method": "INVITE",
                    "cseq": {"number": 314159, "method": "INVITE"},
                },
                "payload": std::str::from_utf8(INVITE).unwrap(),
            })
        );
        assert_eq!(
            lines[1],
            json!({
                "timestamp": "2023-11-14T22:13:20.000005Z",
                "source": "replay",
                "proto_type": 1,
                "ip_family": 6,
                "transport": "tcp",
                "src_ip": "::1",
                "src_port": 12010,
                "dst_ip": "::ffff:10.0.0.1",
                "dst_port": 5060,
                "vlan": null,
                "node_id": 2002,
                "node_name": "edge-1",
                "correlation_id": "xyz",
                "sip": {"call_id": "xyz", "status": 200, "cseq": null},
                "payload": "SIP/2.0 200 OK\r\ni: xyz\r\n\r\n",
            })
        );
        let stats = sink.stats();
        assert_eq!(stats.records_sent, 2);
        assert_eq!(stats.bytes_sent, std::fs::metadata(&file.0).unwrap().len());
        assert!(stats.dropped.is_empty());
    }

    #[test]
    fn non_utf8_goes_to_base64_keys() {
        let file = TempFile::new("base64");
        let mut sink = JsonlSink::new(
            file.0.to_str().unwrap(),
            NodeIdentity {
                node_id: 9,
                ..Default::default()
            },
        )
        .unwrap();

        let mut binary = record(&[0xff, 0x00, b'a', 0x80]);
        binary.proto_type = 5;
        let bad_ids = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: a\xffb\r\nCSeq: 7 OPT\xc3\r\n\r\n";
        sink.send_batch(&[binary, record(bad_ids)]);
        sink.flush();

        let lines = file.lines();
        let first = lines[0].as_object().unwrap();
        assert_eq!(first["payload_base64"], "/wBhgA==");
        assert!(!first.contains_key("payload"));
        assert!(!first.contains_key("correlation_id_base64"));
        assert_eq!(first["correlation_id"], Value::Null);
        assert_eq!(first["sip"], Value::Null);
        assert_eq!(first["node_name"], Value::Null);
        assert_eq!(first["proto_type"], 5);

        let second = lines[1].as_object().unwrap();
        assert_eq!(second["correlation_id"], Value::Null);
        assert_eq!(second["correlation_id_base64"], "Yf9i");
        assert_eq!(
            second["sip"],
            json!({
                "call_id": null,
                "call_id_base64": "Yf9i",
                "method": "OPTIONS",
                "cseq": {"number": 7, "method": null, "method_base64": "T1BUww=="},
            })
        );
        // The payload as a whole is not UTF-8 either.
        assert!(!second.contains_key("payload"));
        assert!(second.contains_key("payload_base64"));
    }

    #[test]
    fn timestamps_format_exactly() {
        let mut clock = Rfc3339Micros::default();
        let cases = [
            (Timestamp(0), "1970-01-01T00:00:00.000000Z"),
            (
                Timestamp::from_parts(1_313_440_459, 120_000),
                "2011-08-15T20:34:19.120000Z",
            ),
            // Same second, other microseconds: only the fraction changes.
            (
                Timestamp::from_parts(1_313_440_459, 999_999),
                "2011-08-15T20:34:19.999999Z",
            ),
            (
                Timestamp::from_parts(951_782_400, 1),
                "2000-02-29T00:00:00.000001Z",
            ),
            (
                Timestamp::from_parts(253_402_300_799, 0),
                "9999-12-31T23:59:59.000000Z",
            ),
        ];
        for (ts, want) in cases {
            assert_eq!(clock.format(ts), Some(want));
        }
        assert_eq!(
            clock.format(Timestamp::from_parts(253_402_300_800, 0)),
            None
        );
    }

    #[test]
    fn write_error_counts_and_stops() {
        // Every write to /dev/full fails with ENOSPC.
        let mut sink = JsonlSink::new("/dev/full", identity()).unwrap();
        sink.send_batch(&[record(INVITE), record(INVITE), record(INVITE)]);
        sink.flush();
        sink.send_batch(&[record(INVITE), record(INVITE)]);
        sink.flush();

        let stats = sink.stats();
        assert_eq!(stats.records_sent, 0);
        assert_eq!(stats.dropped.get("write_error"), Some(&5));
        assert_eq!(stats.dropped.len(), 1);
    }

    #[test]
    fn large_batches_write_without_flush() {
        let file = TempFile::new("large");
        let mut sink = JsonlSink::new(file.0.to_str().unwrap(), identity()).unwrap();
        let batch: Vec<Record> = (0..64).map(|_| record(INVITE)).collect();
        let mut batches = 0;
        while sink.stats().records_sent == 0 {
            sink.send_batch(&batch);
            batches += 1;
            assert!(batches < 1000, "nothing written past {WRITE_AT} bytes");
        }
        assert_eq!(sink.stats().records_sent, 64 * batches);
        drop(sink);
        assert_eq!(file.lines().len() as u64, 64 * batches);
    }
}
