//! SIP message framing on a byte stream (RFC 3261 §18.3): a message is its start line and
//! headers up to the empty line, then exactly `Content-Length` (compact `l`) bytes of body.
//!
//! The framer is a pure function over the bytes buffered so far. It skips CRLF keep-alives
//! between messages (RFC 5626 §3.5.1) and, when the bytes do not begin with a start line (a
//! stream picked up mid-message, or after a gap), resynchronises at the next line that is a
//! complete SIP request or status line. A message without a usable Content-Length is taken as
//! its headers alone and flagged, so the caller counts it; the next call resynchronises.

use memchr::memchr;
use memchr::memmem;

use crate::sip::is_sip_start;

/// What the framer found at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framed {
    /// A whole message at `skip..skip + len`; `skip` bytes before it are dropped.
    Message {
        skip: usize,
        len: usize,
        /// Content-Length was missing or not a number: the body was taken as empty.
        no_length: bool,
    },
    /// No whole message yet; the first `skip` bytes can be dropped.
    NeedMore { skip: usize },
    /// A start line whose headers exceed `max_len` without ending: drop `skip` bytes.
    TooLong { skip: usize },
}

/// Bytes dropped by a `skip` that were not keep-alive line endings.
pub fn junk_len(skipped: &[u8]) -> usize {
    skipped
        .iter()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .count()
}

/// Frames the first message of `buf`. `max_len` bounds a message (headers plus body).
pub fn frame(buf: &[u8], max_len: usize) -> Framed {
    let Some(start) = find_start(buf) else {
        // Keep a possibly incomplete last line: it may become a start line.
        let keep_from = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        return Framed::NeedMore { skip: keep_from };
    };
    let rest = &buf[start..];
    let Some(headers_end) = end_of_headers(rest) else {
        if rest.len() > max_len {
            return Framed::TooLong { skip: start + 1 };
        }
        return Framed::NeedMore { skip: start };
    };
    let (body, no_length) = match content_length(&rest[..headers_end]) {
        Some(n) => (n, false),
        None => (0, true),
    };
    let len = headers_end.saturating_add(body);
    if len > max_len {
        return Framed::TooLong { skip: start + 1 };
    }
    if rest.len() < len {
        return Framed::NeedMore { skip: start };
    }
    Framed::Message {
        skip: start,
        len,
        no_length,
    }
}

/// Offset of the first complete line that is a SIP start line.
fn find_start(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while pos < buf.len() {
        let nl = memchr(b'\n', &buf[pos..])? + pos;
        let line = &buf[pos..=nl];
        if line.len() > 2 && is_sip_start(line) {
            return Some(pos);
        }
        pos = nl + 1;
    }
    None
}

/// Length of the start line and headers including the empty line, if it has arrived.
fn end_of_headers(msg: &[u8]) -> Option<usize> {
    let crlf = memmem::find(msg, b"\r\n\r\n").map(|i| i + 4);
    let lf = memmem::find(msg, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The Content-Length (or `l`) value of a header block; `None` if absent or not a number.
fn content_length(headers: &[u8]) -> Option<usize> {
    for line in headers.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
            return None;
        }
        return Some(
            value
                .iter()
                .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n";
    const WITH_BODY: &[u8] = b"SIP/2.0 200 OK\r\nl: 4\r\n\r\nv=0\n";
    const NO_LENGTH: &[u8] = b"BYE sip:a SIP/2.0\r\nCall-ID: y\r\n\r\n";
    const BAD_LENGTH: &[u8] = b"BYE sip:a SIP/2.0\r\nContent-Length: bad\r\n\r\n";

    #[test]
    fn one_message() {
        assert_eq!(
            frame(OPTIONS, 1000),
            Framed::Message {
                skip: 0,
                len: OPTIONS.len(),
                no_length: false
            }
        );
        assert_eq!(
            frame(WITH_BODY, 1000),
            Framed::Message {
                skip: 0,
                len: WITH_BODY.len(),
                no_length: false
            }
        );
    }

    #[test]
    fn keepalives_and_junk_are_skipped() {
        let mut buf = b"\r\n\r\nbody of an earlier message\r\n".to_vec();
        let junk = buf.len();
        buf.extend_from_slice(OPTIONS);
        assert_eq!(
            frame(&buf, 1000),
            Framed::Message {
                skip: junk,
                len: OPTIONS.len(),
                no_length: false
            }
        );
        assert_eq!(junk_len(&buf[..4]), 0);
        assert_eq!(junk_len(&buf[..junk]), junk - 6);
    }

    #[test]
    fn every_truncation_waits() {
        for cut in 0..WITH_BODY.len() {
            match frame(&WITH_BODY[..cut], 1000) {
                Framed::NeedMore { skip } => assert!(skip <= cut),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_or_bad_length_is_flagged() {
        for msg in [NO_LENGTH, BAD_LENGTH] {
            assert_eq!(
                frame(msg, 1000),
                Framed::Message {
                    skip: 0,
                    len: msg.len(),
                    no_length: true
                }
            );
        }
    }

    #[test]
    fn too_long() {
        assert_eq!(frame(OPTIONS, 10), Framed::TooLong { skip: 1 });
        let mut headers = b"INVITE sip:a SIP/2.0\r\n".to_vec();
        headers.extend(std::iter::repeat_n(b'a', 100));
        assert_eq!(frame(&headers, 50), Framed::TooLong { skip: 1 });
    }
}
