//! Lazy SIP scan (RFC 3261 §7): the start line, Call-ID and CSeq, nothing else.
//!
//! The scan borrows the payload and returns byte ranges into it. It never allocates and never
//! fails: a payload whose first line is a SIP request or status line is SIP, whatever its
//! headers hold, because the agent forwards and does not judge. Header names compare
//! case-insensitively; `i` is the compact form of Call-ID (RFC 3261 §7.3.3). Lines may end in
//! CRLF or a bare LF. The scan stops at the first empty line (the end of the headers).

use std::ops::Range;

use memchr::memchr;

use crate::record::{SipKind, SipSummary};

const SIP_VERSION: &[u8] = b"SIP/2.0";

/// Entry point of the scan.
#[derive(Debug, Clone, Copy, Default)]
pub struct SipScan;

/// True when `payload` begins with a SIP request line or status line.
pub fn is_sip_start(payload: &[u8]) -> bool {
    start_line(payload).is_some()
}

impl SipScan {
    /// Scans `payload`; `None` when it does not start like a SIP message.
    pub fn scan(payload: &[u8]) -> Option<SipSummary> {
        let (kind, first_line_end) = start_line(payload)?;
        let mut summary = SipSummary {
            kind,
            call_id: None,
            cseq: None,
        };

        let mut pos = first_line_end;
        while pos < payload.len() {
            let (line, next) = next_line(payload, pos);
            if line.is_empty() {
                break;
            }
            // Only Call-ID, `i` and CSeq are wanted: a line whose first byte can start none of
            // them (nor the whitespace the name trim accepts) is not searched for its colon.
            let first = payload[line.start];
            let candidate = matches!(first | 0x20, b'c' | b'i') || first.is_ascii_whitespace();
            if candidate && let Some(colon) = memchr(b':', &payload[line.clone()]) {
                let name = trim(&payload[line.start..line.start + colon]);
                let value = || trim_range(payload, line.start + colon + 1..line.end);
                if summary.call_id.is_none()
                    && (name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i"))
                {
                    let value = value();
                    if !value.is_empty() {
                        summary.call_id = Some(to_u32_range(value));
                    }
                } else if summary.cseq.is_none() && name.eq_ignore_ascii_case(b"cseq") {
                    summary.cseq = parse_cseq(payload, value());
                }
            }
            if summary.call_id.is_some() && summary.cseq.is_some() {
                break;
            }
            pos = next;
        }
        Some(summary)
    }
}

/// Recognises the start line; returns its kind and the offset just past its line ending.
fn start_line(payload: &[u8]) -> Option<(SipKind, usize)> {
    let (line, next) = next_line(payload, 0);
    let text = &payload[line.clone()];

    if let Some(rest) = text.strip_prefix(SIP_VERSION) {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let code = rest.strip_prefix(b" ")?.get(..3)?;
        if !code.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if rest.len() > 4 && rest[4] != b' ' {
            return None;
        }
        let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        return Some((SipKind::Response { status }, next));
    }

    // Request-Line = Method SP Request-URI SP SIP-Version
    let sp = memchr(b' ', text)?;
    let method = &text[..sp];
    if method.is_empty() || !method.iter().all(|&b| is_token_char(b)) {
        return None;
    }
    let uri_and_version = &text[sp + 1..];
    let version_at = uri_and_version.len().checked_sub(SIP_VERSION.len() + 1)?;
    if uri_and_version[version_at] != b' '
        || &uri_and_version[version_at + 1..] != SIP_VERSION
        || version_at == 0
        || memchr(b' ', &uri_and_version[..version_at]).is_some()
    {
        return None;
    }
    Some((
        SipKind::Request {
            method: to_u32_range(0..sp),
        },
        next,
    ))
}

/// RFC 3261 token characters (§25.1).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// The line starting at `pos` without its ending, and the offset of the following line.
fn next_line(payload: &[u8], pos: usize) -> (Range<usize>, usize) {
    match memchr(b'\n', &payload[pos..]) {
        Some(i) => {
            let end = pos + i;
            let trimmed = if end > pos && payload[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            (pos..trimmed, end + 1)
        }
        None => {
            let end = payload.len();
            let trimmed = if end > pos && payload[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            (pos..trimmed, end)
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

fn trim_range(payload: &[u8], mut r: Range<usize>) -> Range<usize> {
    while r.start < r.end && payload[r.start].is_ascii_whitespace() {
        r.start += 1;
    }
    while r.end > r.start && payload[r.end - 1].is_ascii_whitespace() {
        r.end -= 1;
    }
    r
}

/// `CSeq: 1 INVITE` → (1, range of `INVITE`). A non-numeric or overflowing number gives `None`.
fn parse_cseq(payload: &[u8], value: Range<usize>) -> Option<(u32, Range<u32>)> {
    let text = &payload[value.clone()];
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let number = std::str::from_utf8(&text[..digits])
        .ok()?
        .parse::<u32>()
        .ok()?;
    let method = trim_range(payload, value.start + digits..value.end);
    if method.is_empty() {
        return None;
    }
    Some((number, to_u32_range(method)))
}

fn to_u32_range(r: Range<usize>) -> Range<u32> {
    // Payloads are bounded by the 64 KiB IP datagram limit, far below u32::MAX.
    r.start as u32..r.end as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(p: &'a [u8], r: &Range<u32>) -> &'a [u8] {
        &p[r.start as usize..r.end as usize]
    }

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
Call-ID:  a84b4c76e66710@pc33.atlanta.com \r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn request_fields() {
        let s = SipScan::scan(INVITE).expect("sip");
        let SipKind::Request { method } = &s.kind else {
            panic!("not a request")
        };
        assert_eq!(get(INVITE, method), b"INVITE");
        assert_eq!(
            get(INVITE, s.call_id.as_ref().unwrap()),
            b"a84b4c76e66710@pc33.atlanta.com"
        );
        let (n, m) = s.cseq.as_ref().unwrap();
        assert_eq!(*n, 314159);
        assert_eq!(get(INVITE, m), b"INVITE");
    }

    #[test]
    fn response_compact_lf_only() {
        let p = b"SIP/2.0 180 Ringing\ncseq:2   BYE\nI:\tabc\n\nbody i: nope\n";
        let s = SipScan::scan(p).expect("sip");
        assert_eq!(s.kind, SipKind::Response { status: 180 });
        assert_eq!(get(p, s.call_id.as_ref().unwrap()), b"abc");
        assert_eq!(
            s.cseq.as_ref().map(|(n, m)| (*n, get(p, m))),
            Some((2, &b"BYE"[..]))
        );
    }

    #[test]
    fn header_name_with_space_before_colon() {
        let p = b"OPTIONS sip:x SIP/2.0\r\nCALL-ID : q1\r\n\r\n";
        let s = SipScan::scan(p).unwrap();
        assert_eq!(get(p, s.call_id.as_ref().unwrap()), b"q1");
        assert!(s.cseq.is_none());
    }

    #[test]
    fn wanted_headers_found_among_skipped_lines() {
        let p = b"BYE sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKc\r\nContact: <sip:c>\r\n\
\tcall-id: w1\r\nMax-Forwards: 70\r\nCSEQ: 7 BYE\r\n\r\n";
        let s = SipScan::scan(p).unwrap();
        assert_eq!(get(p, s.call_id.as_ref().unwrap()), b"w1");
        assert_eq!(s.cseq.as_ref().map(|(n, _)| *n), Some(7));
    }

    #[test]
    fn body_headers_ignored() {
        let p = b"SIP/2.0 200 OK\r\nCSeq: 1 X\r\n\r\nCall-ID: body\r\n";
        assert!(SipScan::scan(p).unwrap().call_id.is_none());
    }

    #[test]
    fn not_sip() {
        for p in [
            &b"hello"[..],
            b"",
            b"\x00\x00\x00\x00",
            b"GET / HTTP/1.1\r\n\r\n",
            b"SIP/2.0 2x0 OK\r\n",
            b"INVITE SIP/2.0\r\n",
            b"INVITE sip:a SIP/2.1\r\n",
            b"IN VITE sip:a SIP/2.0\r\n",
            b"SIP/2.0 2000 OK\r\n",
        ] {
            assert!(
                SipScan::scan(p).is_none(),
                "{:?}",
                String::from_utf8_lossy(p)
            );
        }
    }

    #[test]
    fn start_line_without_headers_is_sip() {
        let s = SipScan::scan(b"SIP/2.0 200 OK").unwrap();
        assert_eq!(s.kind, SipKind::Response { status: 200 });
        assert!(s.call_id.is_none());
    }

    #[test]
    fn bad_cseq_is_none() {
        let p = b"BYE sip:a SIP/2.0\r\nCSeq: x BYE\r\nCall-ID: c\r\n\r\n";
        assert!(SipScan::scan(p).unwrap().cseq.is_none());
        let p = b"BYE sip:a SIP/2.0\r\nCSeq: 99999999999 BYE\r\n\r\n";
        assert!(SipScan::scan(p).unwrap().cseq.is_none());
    }

    #[test]
    fn every_truncation_is_safe() {
        for n in 0..=INVITE.len() {
            let _ = SipScan::scan(&INVITE[..n]);
        }
    }
}
