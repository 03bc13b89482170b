//! One SIP message as both sides describe it, and the comparison of tshark's rows with
//! hepcap's JSON lines.
//!
//! Plain `std` on purpose: `tests/tests/conformance.rs` compiles this file through `#[path]`
//! (with `json.rs` and `cases.rs` beside it), so the test and `cargo xtask conformance` apply
//! exactly the same rules. Errors are `String`s for the same reason.
//!
//! Normalisation, chosen to compare values rather than spellings:
//! - times are microseconds since the epoch; tshark's nine fractional digits are truncated,
//!   as libpcap does when it reads a nanosecond file at microsecond precision;
//! - addresses are parsed, so compressed and expanded IPv6 spellings are equal;
//! - tshark prints repeated fields comma-separated: the first Call-ID and CSeq are kept (hepcap
//!   keeps the first header too); a second address, port, method or status is an error because
//!   the filter should have excluded such a frame;
//! - the VLAN is the outermost tag: tshark's 802.1ad id if any, else its first 802.1Q id.

use std::fmt;
use std::net::IpAddr;

use super::json::{self, Value};

/// What the first line of a SIP message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    Request(String),
    Response(u16),
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::Request(method) => write!(f, "{method}"),
            Start::Response(status) => write!(f, "{status}"),
        }
    }
}

/// One SIP message, as compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipRow {
    /// Microseconds since the Unix epoch.
    pub ts_us: i64,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub vlan: Option<u16>,
    pub call_id: Option<String>,
    pub start: Start,
    pub cseq: Option<(u32, String)>,
}

impl fmt::Display for SipRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cseq = match &self.cseq {
            Some((n, m)) => format!("{n} {m}"),
            None => "-".to_owned(),
        };
        write!(
            f,
            "{} {}:{} -> {}:{} vlan={} {} call-id={} cseq={}",
            format_micros(self.ts_us),
            self.src,
            self.src_port,
            self.dst,
            self.dst_port,
            self.vlan.map_or("-".to_owned(), |v| v.to_string()),
            self.start,
            self.call_id.as_deref().unwrap_or("-"),
            cseq
        )
    }
}

/// tshark's rows for one file.
#[derive(Clone, Debug, Default)]
pub struct TsharkRows {
    /// Frame number (0 when the column is absent) and message.
    pub rows: Vec<(u64, SipRow)>,
    /// Frames tshark calls SIP that have neither a method nor a status code. hepcap by design
    /// emits only messages with a request or status line, so these are left out of the
    /// comparison, and reported. (None occur with tshark 4.0.17 in the corpus.)
    pub without_start_line: Vec<u64>,
}

/// Columns the parser needs, by tshark field name.
const REQUIRED: [&str; 12] = [
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "udp.srcport",
    "ip.dst",
    "ipv6.dst",
    "udp.dstport",
    "sip.Call-ID",
    "sip.Method",
    "sip.Status-Code",
    "sip.CSeq.seq",
    "sip.CSeq.method",
];

/// Parses `tshark -T fields -E header=y -E separator=/t` output (see `xtask/src/tshark.rs`).
pub fn parse_tshark(tsv: &str) -> Result<TsharkRows, String> {
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty tshark output: the header line is missing")?
        .split('\t')
        .collect();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let mut required = [0usize; REQUIRED.len()];
    for (slot, name) in required.iter_mut().zip(REQUIRED) {
        *slot = column(name).ok_or_else(|| format!("tshark header lacks column {name}"))?;
    }
    let [
        ts,
        ip_src,
        ip6_src,
        sport,
        ip_dst,
        ip6_dst,
        dport,
        call_id,
        method,
        status,
        seq,
        seq_m,
    ] = required;
    let (vlan, qinq, frame) = (
        column("vlan.id"),
        column("ieee8021ad.id"),
        column("frame.number"),
    );

    let mut out = TsharkRows::default();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split('\t').collect();
        let line_no = i + 2;
        let cell = |at: usize| cells.get(at).copied().unwrap_or_default();
        let opt = |at: Option<usize>| at.map(cell).unwrap_or_default();
        let frame_no: u64 = match opt(frame) {
            "" => 0,
            n => n
                .parse()
                .map_err(|_| format!("line {line_no}: frame number {n:?}"))?,
        };
        let at = |what: &str| format!("line {line_no} (frame {frame_no}): {what}");

        let start = match (single(cell(method)), single(cell(status))) {
            (Err(e), _) | (_, Err(e)) => return Err(at(&e)),
            (Ok(""), Ok("")) => {
                out.without_start_line.push(frame_no);
                continue;
            }
            (Ok(m), Ok("")) => Start::Request(unescape(m)),
            (Ok(""), Ok(s)) => Start::Response(s.parse().map_err(|_| at("bad status code"))?),
            (Ok(m), Ok(s)) => return Err(at(&format!("both method {m:?} and status {s:?}"))),
        };
        let cseq = match (first(cell(seq)), first(cell(seq_m))) {
            ("", _) => None,
            (n, m) => Some((n.parse().map_err(|_| at("bad CSeq number"))?, unescape(m))),
        };
        let outer_vlan = match (first(opt(qinq)), first(opt(vlan))) {
            ("", "") => None,
            ("", id) | (id, _) => Some(id.parse().map_err(|_| at("bad VLAN id"))?),
        };
        let row = SipRow {
            ts_us: epoch_to_micros(cell(ts)).map_err(|e| at(&e))?,
            src: address(cell(ip_src), cell(ip6_src)).map_err(|e| at(&e))?,
            src_port: port(cell(sport)).map_err(|e| at(&e))?,
            dst: address(cell(ip_dst), cell(ip6_dst)).map_err(|e| at(&e))?,
            dst_port: port(cell(dport)).map_err(|e| at(&e))?,
            vlan: outer_vlan,
            call_id: match first(cell(call_id)) {
                "" => None,
                id => Some(unescape(id)),
            },
            start,
            cseq,
        };
        out.rows.push((frame_no, row));
    }
    Ok(out)
}

/// The first of tshark's comma-separated values.
fn first(cell: &str) -> &str {
    cell.split(',').next().unwrap_or_default()
}

/// A cell that must hold at most one value.
fn single(cell: &str) -> Result<&str, String> {
    if cell.contains(',') {
        Err(format!("several values {cell:?} in one frame"))
    } else {
        Ok(cell)
    }
}

/// Undoes tshark's `-E escape=y` (the default) for the characters it escapes.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn address(v4: &str, v6: &str) -> Result<IpAddr, String> {
    match (single(v4)?, single(v6)?) {
        (a, "") | ("", a) if !a.is_empty() => a.parse().map_err(|_| format!("address {a:?}")),
        ("", "") => Err("no IP address".to_owned()),
        (a, b) => Err(format!("both IPv4 {a} and IPv6 {b} addresses")),
    }
}

fn port(cell: &str) -> Result<u16, String> {
    single(cell)?
        .parse()
        .map_err(|_| format!("UDP port {cell:?}"))
}

/// `1700001500.123456789` → microseconds, truncating below the microsecond.
pub fn epoch_to_micros(text: &str) -> Result<i64, String> {
    let bad = || format!("frame.time_epoch {text:?}");
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if secs < 0 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let micros: String = frac.chars().chain("000000".chars()).take(6).collect();
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(secs * 1_000_000 + micros)
}

/// `2023-11-14T22:15:00.000001Z` (exactly six fractional digits, UTC) → microseconds.
pub fn rfc3339_to_micros(text: &str) -> Result<i64, String> {
    let bad = || format!("timestamp {text:?} is not YYYY-MM-DDTHH:MM:SS.ffffffZ");
    let b = text.as_bytes();
    if b.len() != 27 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return Err(bad());
    }
    if b[16] != b':' || b[19] != b'.' || b[26] != b'Z' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let digits = text.get(range).ok_or_else(bad)?;
        if !digits.bytes().all(|d| d.is_ascii_digit()) {
            return Err(bad());
        }
        digits.parse().map_err(|_| bad())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second, micros) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(bad());
    }
    // A leap second (60) is accepted as written.
    if second > 60 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `1700001500123456` → `1700001500.123456`, for messages.
fn format_micros(us: i64) -> String {
    format!(
        "{}.{:06}",
        us.div_euclid(1_000_000),
        us.rem_euclid(1_000_000)
    )
}

/// hepcap's records for one file.
#[derive(Clone, Debug, Default)]
pub struct HepcapRows {
    /// SIP over UDP, in output order: what the tshark filter selects.
    pub rows: Vec<SipRow>,
    /// Records left out: another transport, or not SIP. Reported, never compared.
    pub other: usize,
}

/// Parses `hepcap replay --jsonl -` output.
pub fn parse_hepcap(jsonl: &str) -> Result<HepcapRows, String> {
    let mut out = HepcapRows::default();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: &str| format!("hepcap line {}: {what}", i + 1);
        let record = json::parse(line).map_err(|e| at(&e))?;
        let sip = record.get("sip").unwrap_or(&Value::Null);
        let transport = record.get("transport").and_then(Value::as_str);
        if sip.is_null() || transport != Some("udp") {
            out.other += 1;
            continue;
        }
        out.rows.push(hepcap_row(&record, sip).map_err(|e| at(&e))?);
    }
    Ok(out)
}

fn hepcap_row(record: &Value, sip: &Value) -> Result<SipRow, String> {
    let text = |v: &Value, key: &str| -> Result<String, String> {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("missing string {key:?}"))
    };
    let integer = |v: &Value, key: &str| -> Result<u64, String> {
        v.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("missing integer {key:?}"))
    };
    let port = |key: &str| -> Result<u16, String> {
        u16::try_from(integer(record, key)?).map_err(|_| format!("{key} out of range"))
    };
    let ip = |key: &str| -> Result<IpAddr, String> {
        text(record, key)?
            .parse()
            .map_err(|_| format!("{key} is not an IP address"))
    };

    let start = match (sip.get("method"), sip.get("status")) {
        (Some(m), None) => Start::Request(string_or_base64(m, sip.get("method_base64"))?),
        (None, Some(s)) => Start::Response(
            s.as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .ok_or("status is not a number")?,
        ),
        _ => return Err("sip needs exactly one of method and status".to_owned()),
    };
    let cseq = match sip.get("cseq") {
        None | Some(Value::Null) => None,
        Some(c) => {
            let number = u32::try_from(integer(c, "number")?).map_err(|_| "cseq.number")?;
            let method = string_or_base64(
                c.get("method").unwrap_or(&Value::Null),
                c.get("method_base64"),
            )?;
            Some((number, method))
        }
    };
    let call_id = match (sip.get("call_id"), sip.get("call_id_base64")) {
        (None | Some(Value::Null), None) => None,
        (v, b64) => Some(string_or_base64(v.unwrap_or(&Value::Null), b64)?),
    };
    let vlan = match record.get("vlan") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|v| u16::try_from(v).ok())
                .ok_or("vlan is not a 16-bit number")?,
        ),
    };
    Ok(SipRow {
        ts_us: rfc3339_to_micros(&text(record, "timestamp")?)?,
        src: ip("src_ip")?,
        src_port: port("src_port")?,
        dst: ip("dst_ip")?,
        dst_port: port("dst_port")?,
        vlan,
        call_id,
        start,
        cseq,
    })
}

/// A text value, or for bytes that are not UTF-8 the `_base64` twin decoded lossily (tshark
/// shows such bytes as U+FFFD too).
fn string_or_base64(value: &Value, base64: Option<&Value>) -> Result<String, String> {
    if let Some(s) = value.as_str() {
        return Ok(s.to_owned());
    }
    let encoded = base64
        .and_then(Value::as_str)
        .ok_or("neither a string nor a _base64 twin")?;
    Ok(String::from_utf8_lossy(&decode_base64(encoded)?).into_owned())
}

/// Standard base64 (RFC 4648 §4) with padding.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let value = |c: u8| -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("invalid base64 byte {c:#04x}")),
        }
        .into())
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c)?;
        }
        // A chunk of n characters carries n * 6 bits, of which whole bytes are kept.
        let keep = chunk.len() * 6 / 8;
        acc <<= 6 * (4 - chunk.len() as u32);
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + keep]);
    }
    Ok(out)
}

/// Differences between tshark's and hepcap's messages, in order; empty when they agree.
/// At most `limit` differences are described, then a count of the rest.
pub fn compare(tshark: &[(u64, SipRow)], hepcap: &[SipRow], limit: usize) -> Vec<String> {
    let mut diffs = Vec::new();
    if tshark.len() != hepcap.len() {
        diffs.push(format!(
            "tshark has {} messages, hepcap {}",
            tshark.len(),
            hepcap.len()
        ));
    }
    for i in 0..tshark.len().max(hepcap.len()) {
        let d = match (tshark.get(i), hepcap.get(i)) {
            (Some((frame, t)), Some(h)) => {
                let fields = differing_fields(t, h);
                if fields.is_empty() {
                    continue;
                }
                format!(
                    "message {} (frame {frame}) differs in {}:\n    tshark: {t}\n    hepcap: {h}",
                    i + 1,
                    fields.join(", ")
                )
            }
            (Some((frame, t)), None) => format!("message {} (frame {frame}) missing: {t}", i + 1),
            (None, Some(h)) => format!("message {} extra in hepcap: {h}", i + 1),
            (None, None) => continue,
        };
        diffs.push(d);
    }
    if diffs.len() > limit {
        let rest = diffs.len() - limit;
        diffs.truncate(limit);
        diffs.push(format!("... and {rest} more differences"));
    }
    diffs
}

fn differing_fields(t: &SipRow, h: &SipRow) -> Vec<&'static str> {
    let SipRow {
        ts_us,
        src,
        src_port,
        dst,
        dst_port,
        vlan,
        call_id,
        start,
        cseq,
    } = t;
    let checks = [
        (*ts_us == h.ts_us, "timestamp"),
        (*src == h.src, "src_ip"),
        (*src_port == h.src_port, "src_port"),
        (*dst == h.dst, "dst_ip"),
        (*dst_port == h.dst_port, "dst_port"),
        (*vlan == h.vlan, "vlan"),
        (*call_id == h.call_id, "call_id"),
        (*start == h.start, "method/status"),
        (*cseq == h.cseq, "cseq"),
    ];
    checks
        .into_iter()
        .filter(|(same, _)| !same)
        .map(|(_, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "frame.time_epoch\tip.src\tipv6.src\tudp.srcport\tip.dst\tipv6.dst\t\
                          udp.dstport\tsip.Call-ID\tsip.Method\tsip.Status-Code\tsip.CSeq.seq\t\
                          sip.CSeq.method\tvlan.id\tieee8021ad.id\tframe.number";

    #[test]
    fn tshark_rows_normalise() {
        let tsv = format!(
            "{HEADER}\n\
             1700001500.999999999\t\t2001:0db8::0001\t5060\t\t2001:db8::2\t5999\ta,b\tINVITE\t\t\
             1,1\tINVITE,INVITE\t42\t300\t7\n\
             1.5\t10.0.0.1\t\t1\t10.0.0.2\t\t2\t\t\t200\t\t\t\t\t8\n"
        );
        let rows = parse_tshark(&tsv).unwrap();
        let (frame, r) = &rows.rows[0];
        assert_eq!(*frame, 7);
        assert_eq!(r.ts_us, 1_700_001_500_999_999);
        assert_eq!(r.src, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(r.vlan, Some(300));
        assert_eq!(r.call_id.as_deref(), Some("a"));
        assert_eq!(r.cseq, Some((1, "INVITE".to_owned())));
        assert_eq!(rows.rows[1].1.ts_us, 1_500_000);
        assert_eq!(rows.rows[1].1.start, Start::Response(200));
    }

    #[test]
    fn tshark_rows_without_start_line_are_set_aside() {
        let tsv = format!("{HEADER}\n1.0\t10.0.0.1\t\t1\t10.0.0.2\t\t2\tx\t\t\t\t\t\t\t3\n");
        let rows = parse_tshark(&tsv).unwrap();
        assert!(rows.rows.is_empty());
        assert_eq!(rows.without_start_line, [3]);
    }

    #[test]
    fn tshark_rejects_two_ip_headers() {
        let tsv =
            format!("{HEADER}\n1.0\t10.0.0.1,10.0.0.3\t\t1\t10.0.0.2\t\t2\tx\tACK\t\t\t\t\t\t3\n");
        assert!(parse_tshark(&tsv).is_err());
    }

    #[test]
    fn rfc3339_matches_epoch() {
        assert_eq!(
            rfc3339_to_micros("2011-08-15T20:34:19.120000Z").unwrap(),
            epoch_to_micros("1313440459.120000000").unwrap()
        );
        assert_eq!(rfc3339_to_micros("1970-01-01T00:00:00.000001Z").unwrap(), 1);
        assert!(rfc3339_to_micros("2011-08-15T20:34:19.12Z").is_err());
    }

    #[test]
    fn hepcap_line_with_base64_call_id() {
        let line = r#"{"timestamp":"2023-11-14T22:15:00.000001Z","transport":"udp",
            "src_ip":"::1","src_port":5060,"dst_ip":"127.0.0.1","dst_port":5070,"vlan":null,
            "sip":{"call_id":null,"call_id_base64":"YWLp","status":486,"cseq":null}}"#
            .replace('\n', "");
        let rows = parse_hepcap(&line).unwrap();
        let r = &rows.rows[0];
        assert_eq!(r.call_id.as_deref(), Some("ab\u{fffd}"));
        assert_eq!(r.start, Start::Response(486));
        assert_eq!(r.ts_us, 1_700_000_100_000_001);
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(decode_base64("TWFu").unwrap(), b"Man");
        assert_eq!(decode_base64("TWE=").unwrap(), b"Ma");
        assert_eq!(decode_base64("TQ==").unwrap(), b"M");
        assert!(decode_base64("T!==").is_err());
    }

    #[test]
    fn compare_names_fields_and_counts() {
        let row = SipRow {
            ts_us: 1,
            src: "10.0.0.1".parse().unwrap(),
            src_port: 1,
            dst: "10.0.0.2".parse().unwrap(),
            dst_port: 2,
            vlan: None,
            call_id: None,
            start: Start::Request("ACK".into()),
            cseq: None,
        };
        let mut other = row.clone();
        other.dst_port = 3;
        assert!(compare(&[(1, row.clone())], std::slice::from_ref(&row), 5).is_empty());
        let diffs = compare(&[(1, row.clone())], &[other, row], 5);
        assert!(diffs[0].contains("tshark has 1 messages, hepcap 2"));
        assert!(diffs[1].contains("dst_port"));
        assert!(diffs[2].contains("extra in hepcap"));
    }
}
