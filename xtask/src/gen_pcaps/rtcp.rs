//! `synth__rtcp-correlation.pcap`: SIP calls with SDP and the RTCP that belongs to them, in
//! the cases no shared capture shows: rtcp-mux RTCP on the RTP port, RTCP XR with a VoIP
//! metrics block, SDP naming a private address behind NAT, RTCP that arrives before the SDP
//! that explains it, and RTCP that belongs to no call. The values each report must carry are
//! listed in [`EXPECTED`], worked out by hand from the bytes built here (RFC 3550 §6.4,
//! RFC 3611 §4.7).

use std::net::SocketAddr;

use super::capture::{self, Frame, Precision, Ts};
use super::packet::{self, Datagram};

/// File name in `pcaps/`.
pub const NAME: &str = "synth__rtcp-correlation.pcap";
/// What the file exercises.
pub const EXERCISES: &str = "SIP/SDP calls with RTCP: rtcp-mux, XR VoIP metrics (MOS), NAT'd SDP, RTCP before its \
     SDP, uncorrelated RTCP";

/// One RTCP datagram of the file and what hepcap must send for it.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    /// 1-based frame number.
    pub frame: u32,
    /// Call-ID in chunk 0x0011; `None`: not sent (matches no call).
    pub call_id: Option<&'static str>,
    /// `ssrc` of the JSON.
    pub ssrc: u32,
    /// `sender_information.packets`, 0 without an SR.
    pub packets: u32,
    /// `report_blocks[*].source_ssrc`, `fraction_lost`, `packets_lost`.
    pub blocks: &'static [(u32, u8, u32)],
    /// MOS×100 (chunk 0x0020).
    pub mos: Option<u16>,
}

pub const CALL_A: &str = "rtcp-a@synth.example";
pub const CALL_NAT: &str = "rtcp-nat@synth.example";
pub const CALL_EARLY: &str = "rtcp-early@synth.example";

/// Hand-worked expectations, in frame order.
pub const EXPECTED: [Expected; 5] = [
    // Frame 3: SR + SDES from the caller's announced RTCP port (RTP 40000 + 1).
    Expected {
        frame: 3,
        call_id: Some(CALL_A),
        ssrc: 0x0a0a_0a0a,
        packets: 50,
        blocks: &[(0x0b0b_0b0b, 5, 2)],
        mos: None,
    },
    // Frame 4: RR + XR on the callee's RTP port (a=rtcp-mux): MOS-CQ 4.2 → 420.
    Expected {
        frame: 4,
        call_id: Some(CALL_A),
        ssrc: 0x0b0b_0b0b,
        packets: 0,
        blocks: &[(0x0a0a_0a0a, 0, 0)],
        mos: Some(420),
    },
    // Frame 6: RR from the NAT's public address, port 30001 of the private SDP.
    Expected {
        frame: 6,
        call_id: Some(CALL_NAT),
        ssrc: 0x0c0c_0c0c,
        packets: 0,
        blocks: &[(0x0d0d_0d0d, 26, 13)],
        mos: None,
    },
    // Frame 7: SR before its INVITE (frame 8, one second later): held, then sent.
    Expected {
        frame: 7,
        call_id: Some(CALL_EARLY),
        ssrc: 0x0e0e_0e0e,
        packets: 7,
        blocks: &[],
        mos: None,
    },
    // Frame 9: RR between addresses no SDP names: counted, not sent.
    Expected {
        frame: 9,
        call_id: None,
        ssrc: 0x0f0f_0f0f,
        packets: 0,
        blocks: &[(0x1010_1010, 0, 0)],
        mos: None,
    },
];

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("fixed address literal")
}

fn header(count: u8, pt: u8, body_len: usize) -> Vec<u8> {
    // Length in 32-bit words minus one (RFC 3550 §6.4.1); bodies here are word-aligned.
    let words = u16::try_from((4 + body_len) / 4 - 1).expect("small packet");
    let mut h = vec![0x80 | count, pt];
    h.extend_from_slice(&words.to_be_bytes());
    h
}

fn block(source: u32, fraction: u8, lost: u32, ext_high: u32, jitter: u32) -> Vec<u8> {
    let mut b = source.to_be_bytes().to_vec();
    b.push(fraction);
    b.extend_from_slice(&lost.to_be_bytes()[1..]);
    b.extend_from_slice(&ext_high.to_be_bytes());
    b.extend_from_slice(&jitter.to_be_bytes());
    b.extend_from_slice(&0x1234_5678u32.to_be_bytes()); // LSR
    b.extend_from_slice(&0x0000_8000u32.to_be_bytes()); // DLSR: 0.5 s
    b
}

fn sr(ssrc: u32, packets: u32, blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut body = ssrc.to_be_bytes().to_vec();
    body.extend_from_slice(&0xe8f0_0000u32.to_be_bytes()); // NTP seconds (2023)
    body.extend_from_slice(&0x8000_0000u32.to_be_bytes()); // NTP fraction: 0.5 s
    body.extend_from_slice(&(packets * 160).to_be_bytes()); // RTP timestamp
    body.extend_from_slice(&packets.to_be_bytes());
    body.extend_from_slice(&(packets * 160).to_be_bytes()); // octets
    for b in blocks {
        body.extend_from_slice(b);
    }
    let mut p = header(blocks.len() as u8, 200, body.len());
    p.extend_from_slice(&body);
    p
}

fn rr(ssrc: u32, blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut body = ssrc.to_be_bytes().to_vec();
    for b in blocks {
        body.extend_from_slice(b);
    }
    let mut p = header(blocks.len() as u8, 201, body.len());
    p.extend_from_slice(&body);
    p
}

fn sdes(ssrc: u32, cname: &str) -> Vec<u8> {
    let mut body = ssrc.to_be_bytes().to_vec();
    body.push(1);
    body.push(u8::try_from(cname.len()).expect("short cname"));
    body.extend_from_slice(cname.as_bytes());
    // END item, then zero padding to a word boundary.
    body.push(0);
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let mut p = header(1, 202, body.len());
    p.extend_from_slice(&body);
    p
}

/// XR with one VoIP metrics block: loss 2/256, RTT 120 ms, MOS-LQ 4.3, MOS-CQ 4.2.
fn xr_voip(reporter: u32, source: u32) -> Vec<u8> {
    let mut body = reporter.to_be_bytes().to_vec();
    body.extend_from_slice(&[7, 0, 0, 8]);
    body.extend_from_slice(&source.to_be_bytes());
    body.extend_from_slice(&[2, 0, 16, 1]); // loss, discard, burst and gap density
    body.extend_from_slice(&[0, 60, 0x01, 0xf4]); // burst 60 ms, gap 500 ms
    body.extend_from_slice(&[0, 120, 0, 30]); // round trip 120 ms, end system 30 ms
    body.extend_from_slice(&[0xe7, 0xb5, 127, 16]); // signal -25, noise -75 dBm, RERL, Gmin
    body.extend_from_slice(&[88, 127, 43, 42]); // R 88, ext R unavailable, MOS-LQ, MOS-CQ
    body.extend_from_slice(&[0, 0, 0, 40, 0, 80, 0, 200]); // RX config, JB nominal/max/abs
    let mut p = header(0, 207, body.len());
    p.extend_from_slice(&body);
    p
}

fn invite(call_id: &str, from: SocketAddr, to: SocketAddr, sdp: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{len}\r\n\
         From: <sip:alice@{from}>;tag=1\r\nTo: <sip:bob@{to}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:alice@{from}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
        len = sdp.len()
    )
    .into_bytes()
}

fn ok(call_id: &str, from: SocketAddr, to: SocketAddr, sdp: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {to};branch=z9hG4bK{len}\r\n\
         From: <sip:alice@{to}>;tag=1\r\nTo: <sip:bob@{from}>;tag=2\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:bob@{from}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
        len = sdp.len()
    )
    .into_bytes()
}

fn sdp(origin_ip: &str, conn: &str, port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {origin_ip}\r\ns=-\r\nc=IN IP4 {conn}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"
    )
}

/// The file's bytes.
pub fn build() -> anyhow::Result<Vec<u8>> {
    let caller = sa("192.0.2.10:5060");
    let callee = sa("192.0.2.20:5060");
    let nat_public = sa("203.0.113.5:5060");
    let early = sa("198.51.100.7:5060");

    let sent: Vec<(u32, SocketAddr, SocketAddr, Vec<u8>)> = vec![
        (
            0,
            caller,
            callee,
            invite(
                CALL_A,
                caller,
                callee,
                &sdp("192.0.2.10", "192.0.2.10", 40000, ""),
            ),
        ),
        (
            50_000,
            callee,
            caller,
            ok(
                CALL_A,
                callee,
                caller,
                &sdp("192.0.2.20", "192.0.2.20", 50000, "a=rtcp-mux\r\n"),
            ),
        ),
        (
            1_000_000,
            sa("192.0.2.10:40001"),
            sa("192.0.2.20:50000"),
            [
                sr(
                    0x0a0a_0a0a,
                    50,
                    &[block(0x0b0b_0b0b, 5, 2, 0x0001_0064, 12)],
                ),
                sdes(0x0a0a_0a0a, "alice@192.0.2.10"),
            ]
            .concat(),
        ),
        (
            1_100_000,
            sa("192.0.2.20:50000"),
            sa("192.0.2.10:40000"),
            [
                rr(0x0b0b_0b0b, &[block(0x0a0a_0a0a, 0, 0, 0x0000_0032, 3)]),
                xr_voip(0x0b0b_0b0b, 0x0a0a_0a0a),
            ]
            .concat(),
        ),
        (
            2_000_000,
            nat_public,
            callee,
            invite(
                CALL_NAT,
                nat_public,
                callee,
                &sdp("10.0.0.5", "10.0.0.5", 30000, ""),
            ),
        ),
        (
            3_000_000,
            sa("203.0.113.5:30001"),
            sa("192.0.2.20:50003"),
            rr(0x0c0c_0c0c, &[block(0x0d0d_0d0d, 26, 13, 0x0000_0100, 40)]),
        ),
        (
            4_000_000,
            sa("198.51.100.7:7001"),
            sa("198.51.100.8:9001"),
            sr(0x0e0e_0e0e, 7, &[]),
        ),
        (
            5_000_000,
            early,
            sa("198.51.100.8:5060"),
            invite(
                CALL_EARLY,
                early,
                sa("198.51.100.8:5060"),
                &sdp("198.51.100.7", "198.51.100.7", 7000, ""),
            ),
        ),
        (
            6_000_000,
            sa("198.51.100.50:6001"),
            sa("198.51.100.51:6003"),
            rr(0x0f0f_0f0f, &[block(0x1010_1010, 0, 0, 0x0000_0010, 0)]),
        ),
    ];

    let mut frames = Vec::with_capacity(sent.len());
    for (i, (offset_us, src, dst, payload)) in sent.iter().enumerate() {
        let datagram = Datagram {
            src: *src,
            dst: *dst,
            ip_id: 0x2000 + i as u16,
            ipv6_ext: &[],
            payload,
        };
        let ip = datagram.to_ip()?;
        let data = packet::ethernet(
            [0x02, 0, 0, 0, 0, 0x02],
            [0x02, 0, 0, 0, 0, 0x01],
            &[],
            datagram.ether_type(),
            &ip,
        );
        let ts = Ts::micros(1_700_000_000 + offset_us / 1_000_000, offset_us % 1_000_000);
        frames.push(Frame { ts, data });
    }
    capture::pcap(1, Precision::Micro, &frames)
}
