//! SDP scanner tests from named message fixtures.

use std::net::SocketAddr;

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn endpoints(msg: &[u8]) -> Vec<MediaEndpoint> {
    let mut out = Vec::new();
    sip_sdp_bodies(msg, |body| scan(body, |m| out.push(m)));
    out
}

/// An INVITE whose SDP has a session-level c=, an audio and a video stream, a declined
/// stream, and a T.38 image stream with its own c= and a=rtcp with an address.
pub const INVITE_SDP: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 0\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8\r\n\
a=rtpmap:0 PCMU/8000\r\n\
m=video 51372/2 RTP/SAVPF 99\r\n\
a=rtcp-mux\r\n\
m=text 0 RTP/AVP 98\r\n\
m=image 6000 udptl t38\r\n\
c=IN IP4 198.51.100.7/127\r\n\
a=rtcp:6011 IN IP4 203.0.113.9\r\n";

#[test]
fn session_and_media_level() {
    let got = endpoints(INVITE_SDP);
    assert_eq!(
        got,
        [
            MediaEndpoint {
                kind: MediaKind::Audio,
                rtp: sa("192.0.2.10:49170"),
                rtcp: sa("192.0.2.10:49171"),
                rtcp_mux: false,
            },
            MediaEndpoint {
                kind: MediaKind::Video,
                rtp: sa("192.0.2.10:51372"),
                rtcp: sa("192.0.2.10:51373"),
                rtcp_mux: true,
            },
            MediaEndpoint {
                kind: MediaKind::Image,
                rtp: sa("198.51.100.7:6000"),
                rtcp: sa("203.0.113.9:6011"),
                rtcp_mux: false,
            },
        ]
    );
}

/// A 200 OK in IPv6 with LF line endings, compact `c` header name, bracketed address,
/// a=rtcp with a port only.
pub const OK_IP6: &[u8] = b"SIP/2.0 200 OK\n\
i: x@y\n\
CSeq: 1 INVITE\n\
c: Application/SDP\n\
\n\
v=0\n\
o=- 1 1 IN IP6 2001:db8::1\n\
s=-\n\
t=0 0\n\
m=audio 7078 RTP/AVP 0\n\
c=IN IP6 [2001:db8::1]\n\
a=rtcp:7079\n";

#[test]
fn ipv6_lf_compact_content_type() {
    assert_eq!(
        endpoints(OK_IP6),
        [MediaEndpoint {
            kind: MediaKind::Audio,
            rtp: sa("[2001:db8::1]:7078"),
            rtcp: sa("[2001:db8::1]:7079"),
            rtcp_mux: false,
        }]
    );
}

/// multipart/mixed with a quoted boundary: an ISUP part and an SDP part (RFC 3204 style).
pub const MULTIPART: &[u8] = b"INVITE sip:+15555550100@example.net SIP/2.0\r\n\
Call-ID: mp-1\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: multipart/mixed;boundary=\"unique-boundary-1\"\r\n\
\r\n\
preamble\r\n\
--unique-boundary-1\r\n\
Content-Type: application/ISUP;version=itu-t92+\r\n\
\r\n\
\x01\x00\x49\x00\r\n\
--unique-boundary-1\r\n\
Content-Type: application/sdp\r\n\
\r\n\
v=0\r\n\
c=IN IP4 192.0.2.33\r\n\
m=audio 30000 RTP/AVP 8\r\n\
--unique-boundary-1--\r\n";

#[test]
fn multipart_sdp_part() {
    assert_eq!(
        endpoints(MULTIPART),
        [MediaEndpoint {
            kind: MediaKind::Audio,
            rtp: sa("192.0.2.33:30000"),
            rtcp: sa("192.0.2.33:30001"),
            rtcp_mux: false,
        }]
    );
}

#[test]
fn no_body_other_type_or_no_address() {
    assert!(endpoints(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: 1\r\n").is_empty());
    assert!(endpoints(b"OPTIONS sip:a SIP/2.0\r\nContent-Type: text/plain\r\n\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n").is_empty());
    // No c= anywhere: nothing to key on.
    assert!(endpoints(b"ACK sip:a SIP/2.0\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 4000 RTP/AVP 0\r\n").is_empty());
}

#[test]
fn malformed_lines_are_ignored() {
    let sdp = b"c=IN IP4 not-an-ip\r\nc=IN IP4 192.0.2.5\r\nm=audio 99999 RTP/AVP 0\r\n\
m=audio x RTP/AVP 0\r\nm=audio 65535 RTP/AVP 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtcp:\r\n\
a=rtcp:abc\r\n=\r\nm\r\n";
    let mut got = Vec::new();
    scan(sdp, |m| got.push(m));
    // 99999 and x are not ports; 65535 has no port + 1.
    assert_eq!(
        got,
        [MediaEndpoint {
            kind: MediaKind::Audio,
            rtp: sa("192.0.2.5:5000"),
            rtcp: sa("192.0.2.5:5001"),
            rtcp_mux: false,
        }]
    );
}

#[test]
fn every_truncation_of_the_fixtures_is_safe() {
    for fixture in [INVITE_SDP, OK_IP6, MULTIPART] {
        for len in 0..=fixture.len() {
            let _ = endpoints(&fixture[..len]);
        }
    }
    // A cut inside the last m= line's port still reports what was complete before it.
    let cut = INVITE_SDP.len()
        - "00 udptl t38\r\nc=IN IP4 198.51.100.7/127\r\na=rtcp:6011 IN IP4 203.0.113.9\r\n".len();
    let got = endpoints(&INVITE_SDP[..cut]);
    assert_eq!(got.len(), 3, "audio, video and image on port 60: {got:?}");
    assert_eq!(got[2].rtp, sa("192.0.2.10:60"));
}

#[test]
fn empty_body_is_a_slice_of_the_message() {
    // Found by fuzzing: a head ending in CR LF CR with nothing after it.
    let msg = b"INVITE sip:a SIP/2.0\r\nContent-Type: application/sdp\r\n\r";
    let mut bodies = Vec::new();
    sip_sdp_bodies(msg, |b| bodies.push(b));
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].is_empty());
    let end = msg.as_ptr() as usize + msg.len();
    assert_eq!(bodies[0].as_ptr() as usize, end);
}

#[test]
fn rtcp_port_zero_is_ignored() {
    let mut got = Vec::new();
    scan(
        b"c=IN IP4 192.0.2.1\nm=audio 7078 RTP/AVP 0\na=rtcp:0\n",
        |m| got.push(m),
    );
    assert_eq!(got[0].rtcp, sa("192.0.2.1:7079"));
}
