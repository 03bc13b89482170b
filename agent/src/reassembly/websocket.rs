//! WebSocket frames (RFC 6455 §5.2) as SIP over WebSocket carries them (RFC 7118): after the
//! HTTP upgrade, each text or binary message (a frame with FIN, or a fragmented sequence ended
//! by one) holds exactly one SIP message. Client frames are masked and are unmasked here.

/// A frame header, checked against the bytes available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsHeader {
    pub fin: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    /// Bytes of the header.
    pub header_len: usize,
    /// Bytes of the payload.
    pub payload_len: usize,
}

/// Result of looking at the front of a stream buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsParse {
    /// A whole frame is buffered.
    Frame(WsHeader),
    /// The header or the payload is not complete yet.
    NeedMore,
    /// Reserved bits or opcodes set, or a control frame over 125 bytes.
    Malformed,
}

pub const OPCODE_CONTINUATION: u8 = 0;
pub const OPCODE_TEXT: u8 = 1;
pub const OPCODE_BINARY: u8 = 2;

/// Parses the frame at the front of `buf`. `max_payload` bounds a frame.
pub fn parse(buf: &[u8], max_payload: usize) -> WsParse {
    let [b0, b1, ..] = *buf else {
        return WsParse::NeedMore;
    };
    let opcode = b0 & 0x0f;
    let reserved_opcode = matches!(opcode, 3..=7 | 11..=15);
    if b0 & 0x70 != 0 || reserved_opcode {
        return WsParse::Malformed;
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return WsParse::NeedMore,
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (u64::from_be_bytes(a), 10)
            }
            None => return WsParse::NeedMore,
        },
        n => (u64::from(n), 2),
    };
    if opcode >= 8 && len > 125 {
        return WsParse::Malformed;
    }
    if len > max_payload as u64 {
        return WsParse::Malformed;
    }
    let mask = if masked {
        let Some(m) = buf.get(at..at + 4) else {
            return WsParse::NeedMore;
        };
        at += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    let payload_len = len as usize;
    if buf.len() < at + payload_len {
        return WsParse::NeedMore;
    }
    WsParse::Frame(WsHeader {
        fin: b0 & 0x80 != 0,
        opcode,
        mask,
        header_len: at,
        payload_len,
    })
}

/// Appends `payload` to `out`, unmasked with `mask` if any.
pub fn unmask_into(payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    match mask {
        None => out.extend_from_slice(payload),
        Some(m) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4])),
    }
}

/// True when an HTTP request or response head asks for or grants a WebSocket upgrade.
pub fn is_upgrade(payload: &[u8]) -> bool {
    let head = &payload[..payload.len().min(2048)];
    let http = head.starts_with(b"GET ") || head.starts_with(b"HTTP/1.1 101");
    http && head
        .windows(9)
        .any(|w| w.eq_ignore_ascii_case(b"websocket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Hello" masked with 37 fa 21 3d (RFC 6455 §5.7).
    const MASKED_HELLO: &[u8] = &[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];

    #[test]
    fn masked_text_frame() {
        let WsParse::Frame(h) = parse(MASKED_HELLO, 1000) else {
            panic!("frame")
        };
        assert_eq!(
            (h.fin, h.opcode, h.header_len, h.payload_len),
            (true, 1, 6, 5)
        );
        let mut out = Vec::new();
        unmask_into(&MASKED_HELLO[6..], h.mask, &mut out);
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn every_truncation_needs_more() {
        for cut in 0..MASKED_HELLO.len() {
            assert_eq!(
                parse(&MASKED_HELLO[..cut], 1000),
                WsParse::NeedMore,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn extended_lengths_and_malformed() {
        let mut f = vec![0x82, 126, 0x01, 0x00];
        f.extend(std::iter::repeat_n(0u8, 256));
        assert!(matches!(parse(&f, 1000), WsParse::Frame(h) if h.payload_len == 256));
        assert_eq!(parse(&f, 100), WsParse::Malformed);
        assert_eq!(parse(&[0xc1, 0], 100), WsParse::Malformed);
        assert_eq!(parse(&[0x83, 0], 100), WsParse::Malformed);
        assert_eq!(parse(&[0x89, 126, 0, 200], 1000), WsParse::Malformed);
        assert_eq!(parse(&[0x82, 127, 0, 0, 0, 0], 1000), WsParse::NeedMore);
    }

    #[test]
    fn upgrade_detection() {
        assert!(is_upgrade(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"));
        assert!(is_upgrade(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n\r\n"
        ));
        assert!(!is_upgrade(b"GET / HTTP/1.1\r\n\r\n"));
    }
}
