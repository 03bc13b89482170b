//! Correlator: SDP then RTCP, RTCP before SDP, NAT, rtcp-mux, BYE, bounds, malformed input.

use super::rtcp::tests as fx;
use super::*;
use crate::sip::SipScan;

const SEC: u64 = 1_000_000;

fn t(ms: u64) -> Timestamp {
    Timestamp(1_700_000_000 * SEC + ms * 1_000)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn invite(call_id: &str, sdp: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn sip(c: &mut Correlator, from: &str, msg: &[u8], ms: u64) -> Vec<Record> {
    let summary = SipScan::scan(msg).unwrap();
    let view = SipMessageView {
        src: sa(from),
        payload: msg,
        sip: &summary,
    };
    let mut out = Vec::new();
    c.on_sip(&view, t(ms), &mut out);
    out
}

fn udp(c: &mut Correlator, src: &str, dst: &str, payload: &[u8], ms: u64) -> Vec<Record> {
    let mut out = Vec::new();
    assert!(c.on_udp(
        &UdpDatagram {
            src: sa(src),
            dst: sa(dst),
            vlan: None,
            payload,
            ts: t(ms),
        },
        &mut out,
    ));
    out
}

const SDP_A: &str = "v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 40000 RTP/AVP 0\r\n";

fn sr_sdes() -> Vec<u8> {
    [&fx::SR[..], &fx::SDES[..]].concat()
}

#[test]
fn rtcp_after_sdp_carries_the_call_id() {
    let mut c = Correlator::new(CorrelatorConfig::default(), "replay");
    assert!(sip(&mut c, "192.0.2.10:5060", &invite("call-1", SDP_A), 0).is_empty());
    let out = udp(
        &mut c,
        "192.0.2.10:40001",
        "198.51.100.1:9001",
        &sr_sdes(),
        100,
    );
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(r.proto_type, PROTO_RTCP_JSON);
    assert_eq!(r.correlation_id(), Some(&b"call-1"[..]));
    assert_eq!(r.source.as_str(), "replay");
    assert_eq!((r.src_port, r.dst_port), (40001, 9001));
    assert_eq!(r.ts, t(100));
    assert_eq!(r.mos(), None);
    let json: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(json["ssrc"], 0x1122_3344u32);
    assert_eq!(json["sender_information"]["packets"], 4);
    // The reverse direction matches by destination.
    let out = udp(
        &mut c,
        "198.51.100.1:9001",
        "192.0.2.10:40001",
        &fx::RR,
        200,
    );
    assert_eq!(out[0].correlation_id(), Some(&b"call-1"[..]));
    let s = c.stats();
    assert_eq!((s.rtcp, s.rtcp_correlated, s.rtcp_uncorrelated), (2, 2, 0));
    assert_eq!((s.sdp_messages, s.sdp_media), (1, 1));
}

#[test]
fn rtcp_before_its_sdp_is_held_then_sent() {
    let mut c = Correlator::new(CorrelatorConfig::default(), "replay");
    assert!(
        udp(
            &mut c,
            "192.0.2.10:40001",
            "198.51.100.1:9001",
            &sr_sdes(),
            0
        )
        .is_empty()
    );
    let out = sip(&mut c, "192.0.2.10:5060", &invite("call-1", SDP_A), 1500);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].correlation_id(), Some(&b"call-1"[..]));
    assert_eq!(out[0].ts, t(0), "the RTCP keeps its own capture time");
    assert_eq!(c.stats().rtcp_correlated_late, 1);
}

#[test]
fn rtcp_never_explained_is_counted_and_dropped_or_sent() {
    for (mode, sent) in [(Uncorrelated::Drop, 0), (Uncorrelated::Send, 1)] {
        let config = CorrelatorConfig {
            uncorrelated: mode,
            ..CorrelatorConfig::default()
        };
        let mut c = Correlator::new(config, "replay");
        assert!(udp(&mut c, "192.0.2.10:40001", "198.51.100.1:9001", &fx::RR, 0).is_empty());
        // SDP for something else, after the hold window.
        let mut out = sip(
            &mut c,
            "192.0.2.99:5060",
            &invite("other", SDP_A.replace("192.0.2.10", "192.0.2.99").as_str()),
            2000,
        );
        c.finish(&mut out);
        assert_eq!(out.len(), sent, "{mode:?}");
        if let Some(r) = out.first() {
            assert_eq!(r.correlation_id(), None);
        }
        assert_eq!(c.stats().rtcp_uncorrelated, 1);
    }
}

#[test]
fn tick_and_finish_release_held_packets() {
    let mut c = Correlator::new(CorrelatorConfig::default(), "replay");
    udp(&mut c, "192.0.2.10:40001", "198.51.100.1:9001", &fx::RR, 0);
    let mut out = Vec::new();
    c.tick(t(1999), &mut out);
    assert_eq!(c.stats().rtcp_uncorrelated, 0);
    c.tick(t(2000), &mut out);
    assert_eq!(c.stats().rtcp_uncorrelated, 1);
    udp(
        &mut c,
        "192.0.2.10:40001",
        "198.51.100.1:9001",
        &fx::RR,
        3000,
    );
    c.finish(&mut out);
    assert_eq!(c.stats().rtcp_uncorrelated, 2);
    assert!(out.is_empty());
}

#[test]
fn hold_queue_is_bounded() {
    let config = CorrelatorConfig {
        hold_max: 2,
        ..CorrelatorConfig::default()
    };
    let mut c = Correlator::new(config, "replay");
    for i in 0..5 {
        udp(&mut c, "192.0.2.10:40001", "198.51.100.1:9001", &fx::RR, i);
    }
    let s = c.stats();
    assert_eq!((s.rtcp_hold_overflow, s.rtcp_uncorrelated), (3, 3));
    let out = sip(&mut c, "192.0.2.10:5060", &invite("call-1", SDP_A), 10);
    assert_eq!(out.len(), 2);
}

#[test]
fn nat_source_address_is_a_second_key() {
    let mut c = Correlator::new(CorrelatorConfig::default(), "replay");
    let sdp = "v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\n";
    sip(&mut c, "203.0.113.5:5060", &invite("nat-call", sdp), 0);
    let out = udp(&mut c, "203.0.113.5:4001", "198.51.100.1:9001", &fx::RR, 10);
    assert_eq!(out[0].correlation_id(), Some(&b"nat-call"[..]));
}

#[test]
fn rtcp_mux_on_the_rtp_port() {
    let mut c = Correlator::new(CorrelatorConfig::default(), "replay");
    let sdp = "v=0\r\nc=IN IP4 192.0.2.20\r\nm=audio 5004 RTP/AVP 0\r\na=rtcp-mux\r\n";
    sip(&mut c, "192.0.2.20:5060", &invite("mux", sdp), 0);
    let out = udp(&mut c, "192.0.2.20:5004", "198.51.100.1:6000", &fx::RR, 10);
    assert_eq!(out[0].correlation_id(), Some(&b"mux"[..]));
}

#[test]
fn answer_in_200_and_bye_grace() {
    let mut c = Correlator::new(CorrelatorConfig::default(), "replay");
    let ok = b"SIP/2.0 200 OK\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nc=IN IP4 192.0.2.30\r\nm=audio 7000 RTP/AVP 0\r\n";
    sip(&mut c, "192.0.2.30:5060", ok, 0);
    assert_eq!(
        udp(&mut c, "192.0.2.30:7001", "192.0.2.31:1", &fx::RR, 10).len(),
        1
    );
    sip(
        &mut c,
        "192.0.2.31:5060",
        b"BYE sip:a SIP/2.0\r\nCall-ID: c2\r\nCSeq: 2 BYE\r\n\r\n",
        1000,
    );
    assert_eq!(
        udp(&mut c, "192.0.2.30:7001", "192.0.2.31:1", &fx::BYE, 1500).len(),
        1
    );
    // Long after the grace period: held, then given up.
    let mut out = udp(&mut c, "192.0.2.30:7001", "192.0.2.31:1", &fx::RR, 60_000);
    c.finish(&mut out);
    assert!(out.is_empty());
    // A 200 to a BYE or an OPTIONS with SDP teaches nothing.
    let opt = b"SIP/2.0 200 OK\r\nCall-ID: c3\r\nCSeq: 1 OPTIONS\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nc=IN IP4 192.0.2.40\r\nm=audio 7000 RTP/AVP 0\r\n";
    sip(&mut c, "192.0.2.40:5060", opt, 61_000);
    assert_eq!(c.stats().sdp_messages, 1);
}

#[test]
fn xr_mos_reaches_the_record() {
    let mut c = Correlator::new(CorrelatorConfig::default(), "replay");
    sip(&mut c, "192.0.2.10:5060", &invite("call-1", SDP_A), 0);
    let data = [&fx::RR[..], &fx::XR[..]].concat();
    let out = udp(&mut c, "192.0.2.10:40001", "198.51.100.1:9001", &data, 10);
    assert_eq!(out[0].mos(), Some(400));
}

#[test]
fn not_rtcp_and_malformed() {
    let mut c = Correlator::new(CorrelatorConfig::default(), "replay");
    let mut out = Vec::new();
    let rtp = [0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
    let d = UdpDatagram {
        src: sa("192.0.2.1:1"),
        dst: sa("192.0.2.2:2"),
        vlan: None,
        payload: &rtp,
        ts: t(0),
    };
    assert!(!c.on_udp(&d, &mut out));
    let bad = &fx::SR[..40];
    assert!(udp(&mut c, "192.0.2.1:1", "192.0.2.2:2", bad, 0).is_empty());
    assert_eq!(c.stats().rtcp_malformed, [("length_overrun", 1)]);
    assert_eq!(c.stats().rtcp, 0);
}

#[test]
fn hep_packet_has_type_5_call_id_and_mos() {
    use crate::hep::{HepEncoder, NodeIdentity, decode_v3};

    let mut c = Correlator::new(CorrelatorConfig::default(), "replay");
    sip(&mut c, "192.0.2.10:5060", &invite("call-1", SDP_A), 0);
    let data = [&fx::RR[..], &fx::XR[..]].concat();
    let out = udp(&mut c, "192.0.2.10:40001", "198.51.100.1:9001", &data, 10);
    let mut wire = Vec::new();
    HepEncoder::new(NodeIdentity::default())
        .encode(&out[0], &mut wire)
        .unwrap();
    let hep = decode_v3(&wire).unwrap();
    assert_eq!(hep.proto_type, Some(5));
    assert_eq!(hep.correlation_id, Some(&b"call-1"[..]));
    assert_eq!(hep.mos, Some(400));
    assert_eq!(hep.payload, Some(&out[0].payload[..]));
}
