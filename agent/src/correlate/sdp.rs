//! SDP media endpoints (RFC 8866 §5.7, §5.14; RFC 3605 `a=rtcp`; RFC 5761 `a=rtcp-mux`)
//! found in a SIP message's body, where RTCP for the call will flow.
//!
//! Everything here borrows the message and allocates nothing: [`sip_sdp_bodies`] finds the SDP
//! (the body itself when Content-Type is `application/sdp`, or each `application/sdp` part of
//! a `multipart/*` body, boundary taken from Content-Type), and [`scan`] walks one SDP,
//! calling back once per usable `m=` line with its resolved [`MediaEndpoint`]. Lines may end in
//! CRLF or LF. Unparseable lines are ignored, never fatal: the agent forwards, it does not
//! judge. A media line with port 0 (declined) or without any address is not reported.

use std::net::{IpAddr, SocketAddr};

use memchr::memmem;

/// Kind of an `m=` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
    /// `image` (T.38 fax).
    Image,
    /// Anything else (`text`, `application`, `message`, …).
    Other,
}

/// Where one media stream's RTCP goes, as the SDP announces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaEndpoint {
    pub kind: MediaKind,
    /// Address and port of RTP.
    pub rtp: SocketAddr,
    /// Address and port of RTCP: `a=rtcp` when given, else the RTP port + 1 (RFC 3550 §11).
    pub rtcp: SocketAddr,
    /// `a=rtcp-mux` was present: RTCP may also arrive on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
}

/// Nesting of multipart bodies followed; deeper parts are ignored.
const MAX_MULTIPART_DEPTH: u8 = 2;

/// Calls `f` with every SDP body in a SIP message (`payload` is the whole message).
pub fn sip_sdp_bodies<'a>(payload: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let Some((headers, body)) = split_head(payload) else {
        return;
    };
    let Some(content_type) = header_value(headers, b"content-type", b"c") else {
        return;
    };
    sdp_in_body(content_type, body, 0, &mut f);
}

fn sdp_in_body<'a>(
    content_type: &'a [u8],
    body: &'a [u8],
    depth: u8,
    f: &mut impl FnMut(&'a [u8]),
) {
    let media_type = trim(
        content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default(),
    );
    if media_type.eq_ignore_ascii_case(b"application/sdp") {
        f(body);
        return;
    }
    let is_multipart =
        media_type.len() > 10 && media_type[..10].eq_ignore_ascii_case(b"multipart/");
    if !is_multipart || depth >= MAX_MULTIPART_DEPTH {
        return;
    }
    let Some(boundary) = param(content_type, b"boundary") else {
        return;
    };
    for part in multipart_parts(body, boundary) {
        // A part without headers is text/plain (RFC 2046 §5.1.1): not SDP.
        let Some((headers, part_body)) = split_head(part) else {
            continue;
        };
        if let Some(ct) = header_value(headers, b"content-type", b"c") {
            sdp_in_body(ct, part_body, depth + 1, f);
        }
    }
}

/// The parts between `--boundary` delimiter lines (RFC 2046 §5.1.1), without the CRLF that
/// belongs to each delimiter.
fn multipart_parts<'a>(body: &'a [u8], boundary: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = body;
    let mut started = false;
    std::iter::from_fn(move || {
        loop {
            let at = find_delimiter(rest, boundary)?;
            let part = &rest[..at];
            let after = &rest[at + 2 + boundary.len()..];
            if after.starts_with(b"--") {
                rest = &[];
            } else {
                // Skip transport padding and the line ending of the delimiter line.
                let eol = memchr::memchr(b'\n', after).map_or(after.len(), |i| i + 1);
                rest = &after[eol..];
            }
            let was_started = started;
            started = true;
            if was_started {
                return Some(strip_trailing_eol(part));
            }
            if rest.is_empty() {
                return None;
            }
        }
    })
}

/// Offset of the next `--boundary` that starts a line (or the body).
fn find_delimiter(hay: &[u8], boundary: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memmem::find(&hay[from..], b"--") {
        let at = from + i;
        let line_start = at == 0 || hay[at - 1] == b'\n';
        if line_start && hay[at + 2..].starts_with(boundary) {
            return Some(at);
        }
        from = at + 2;
    }
    None
}

fn strip_trailing_eol(part: &[u8]) -> &[u8] {
    let part = part.strip_suffix(b"\n").unwrap_or(part);
    part.strip_suffix(b"\r").unwrap_or(part)
}

/// Splits a message (or MIME part) at the first empty line: headers, body.
fn split_head(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut pos = 0;
    while pos < msg.len() {
        let end = memchr::memchr(b'\n', &msg[pos..]).map_or(msg.len(), |i| pos + i);
        let line = &msg[pos..end];
        if line.is_empty() || line == b"\r" {
            // Past the end (a last line without LF): the empty tail of `msg` itself.
            return Some((&msg[..pos], msg.get(end + 1..).unwrap_or(&msg[msg.len()..])));
        }
        pos = end + 1;
    }
    None
}

/// The first value of a header by its long or compact name. Folded lines are not joined:
/// Content-Type fits on one line in practice.
fn header_value<'a>(headers: &'a [u8], long: &[u8], compact: &[u8]) -> Option<&'a [u8]> {
    headers.split(|&b| b == b'\n').find_map(|line| {
        let colon = memchr::memchr(b':', line)?;
        let name = trim(&line[..colon]);
        (name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(compact))
            .then(|| trim(&line[colon + 1..]))
    })
}

/// A `;name=value` parameter of a header value, quotes removed.
fn param<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    value.split(|&b| b == b';').skip(1).find_map(|p| {
        let eq = memchr::memchr(b'=', p)?;
        if !trim(&p[..eq]).eq_ignore_ascii_case(name) {
            return None;
        }
        let v = trim(&p[eq + 1..]);
        let v = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
        (!v.is_empty()).then_some(v)
    })
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// One media section being read.
#[derive(Clone, Copy, Debug)]
struct Pending {
    kind: MediaKind,
    port: u16,
    addr: Option<IpAddr>,
    rtcp_port: Option<u16>,
    rtcp_addr: Option<IpAddr>,
    rtcp_mux: bool,
}

impl Pending {
    fn finish(self, session: Option<IpAddr>) -> Option<MediaEndpoint> {
        if self.port == 0 {
            return None;
        }
        let addr = self.addr.or(session)?;
        let rtcp_port = match self.rtcp_port {
            Some(p) => p,
            // RFC 3550 §11: RTCP on the next port; an odd RTP port still gets +1.
            None => self.port.checked_add(1)?,
        };
        Some(MediaEndpoint {
            kind: self.kind,
            rtp: SocketAddr::new(addr, self.port),
            rtcp: SocketAddr::new(self.rtcp_addr.unwrap_or(addr), rtcp_port),
            rtcp_mux: self.rtcp_mux,
        })
    }
}

/// Walks one SDP body and calls `f` for every media stream with a usable endpoint.
pub fn scan(sdp: &[u8], mut f: impl FnMut(MediaEndpoint)) {
    let mut session_addr: Option<IpAddr> = None;
    let mut current: Option<Pending> = None;

    for line in sdp.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some((&kind, rest)) = line.split_first() else {
            continue;
        };
        let Some(value) = rest.strip_prefix(b"=") else {
            continue;
        };
        match kind {
            b'c' => {
                let addr = parse_connection(value);
                match current.as_mut() {
                    Some(m) => m.addr = addr.or(m.addr),
                    None => session_addr = addr.or(session_addr),
                }
            }
            b'm' => {
                if let Some(done) = current.take().and_then(|m| m.finish(session_addr)) {
                    f(done);
                }
                current = parse_media(value);
            }
            b'a' => {
                if let Some(m) = current.as_mut() {
                    parse_attribute(value, m);
                }
            }
            _ => {}
        }
    }
    if let Some(done) = current.and_then(|m| m.finish(session_addr)) {
        f(done);
    }
}

/// `IN IP4 192.0.2.1[/ttl[/n]]` or `IN IP6 [2001:db8::1]`.
fn parse_connection(value: &[u8]) -> Option<IpAddr> {
    let mut words = value.split(|&b| b == b' ').filter(|w| !w.is_empty());
    if words.next()? != b"IN" {
        return None;
    }
    let _family = words.next()?;
    parse_addr(words.next()?)
}

fn parse_addr(word: &[u8]) -> Option<IpAddr> {
    let word = word.split(|&b| b == b'/').next()?;
    let word = word
        .strip_prefix(b"[")
        .and_then(|w| w.strip_suffix(b"]"))
        .unwrap_or(word);
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// `audio 49170[/2] RTP/AVP 0 8`: the kind and the first port.
fn parse_media(value: &[u8]) -> Option<Pending> {
    let mut words = value.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let kind = match words.next()? {
        b"audio" => MediaKind::Audio,
        b"video" => MediaKind::Video,
        b"image" => MediaKind::Image,
        _ => MediaKind::Other,
    };
    let port_word = words.next()?.split(|&b| b == b'/').next()?;
    let port = parse_port(port_word)?;
    Some(Pending {
        kind,
        port,
        addr: None,
        rtcp_port: None,
        rtcp_addr: None,
        rtcp_mux: false,
    })
}

/// `rtcp:53020 [IN IP4 192.0.2.1]` (RFC 3605) and `rtcp-mux` (RFC 5761).
fn parse_attribute(value: &[u8], m: &mut Pending) {
    if value == b"rtcp-mux" {
        m.rtcp_mux = true;
        return;
    }
    let Some(rest) = value.strip_prefix(b"rtcp:") else {
        return;
    };
    let rest = trim(rest);
    let (port, addr) = match memchr::memchr(b' ', rest) {
        Some(sp) => (&rest[..sp], parse_connection(trim(&rest[sp + 1..]))),
        None => (rest, None),
    };
    // Port 0 is no RTCP address (found by fuzzing); the default (RTP + 1) stands.
    if let Some(port) = parse_port(port).filter(|&p| p != 0) {
        m.rtcp_port = Some(port);
        m.rtcp_addr = addr.or(m.rtcp_addr);
    }
}

fn parse_port(word: &[u8]) -> Option<u16> {
    if word.is_empty() || word.len() > 5 || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(word).ok()?.parse().ok()
}

#[cfg(test)]
#[path = "tests/sdp.rs"]
mod tests;
