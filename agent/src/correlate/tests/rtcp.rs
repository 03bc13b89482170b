//! RTCP walker tests from named byte fixtures, worked out by hand from RFC 3550 / RFC 3611.

use super::*;

/// SR (52 bytes): SSRC 0x11223344, NTP 0xc59286d4.f645a1cb, RTP ts 640, 4 packets, 640 octets,
/// one block about 0xaabbccdd: fraction 16, lost 5, ext. highest 0x00040004, jitter 7,
/// LSR 0x86d4f645, DLSR 1.
pub const SR: [u8; 52] = [
    0x81, 0xc8, 0x00, 0x0c, 0x11, 0x22, 0x33, 0x44, //
    0xc5, 0x92, 0x86, 0xd4, 0xf6, 0x45, 0xa1, 0xcb, //
    0x00, 0x00, 0x02, 0x80, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, 0x80, //
    0xaa, 0xbb, 0xcc, 0xdd, 0x10, 0x00, 0x00, 0x05, //
    0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07, //
    0x86, 0xd4, 0xf6, 0x45, 0x00, 0x00, 0x00, 0x01,
];

/// RR (32 bytes): SSRC 0x11223344, one block about 0x55667788: fraction 0, lost 0xffffff (-1
/// as a signed 24-bit value), ext. highest 11332, jitter 3, LSR 0, DLSR 0.
pub const RR: [u8; 32] = [
    0x81, 0xc9, 0x00, 0x07, 0x11, 0x22, 0x33, 0x44, //
    0x55, 0x66, 0x77, 0x88, 0x00, 0xff, 0xff, 0xff, //
    0x00, 0x00, 0x2c, 0x44, 0x00, 0x00, 0x00, 0x03, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// SDES (16 bytes): one chunk, SSRC 0x11223344, CNAME "a@b.c", END.
pub const SDES: [u8; 16] = [
    0x81, 0xca, 0x00, 0x03, 0x11, 0x22, 0x33, 0x44, //
    0x01, 0x05, b'a', b'@', b'b', b'.', b'c', 0x00,
];

/// APP (16 bytes): subtype 0, SSRC 0x11223344, name "PING", 4 bytes of data.
pub const APP: [u8; 16] = [
    0x80, 0xcc, 0x00, 0x03, 0x11, 0x22, 0x33, 0x44, //
    b'P', b'I', b'N', b'G', 0xde, 0xad, 0xbe, 0xef,
];

/// BYE (8 bytes): one SSRC, 0x11223344.
pub const BYE: [u8; 8] = [0x81, 0xcb, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44];

/// XR (44 bytes): reporter 0x99887766, one VoIP metrics block about 0x55667788: loss 12,
/// discard 3, burst density 40, gap density 2, burst 256 ms, gap 512 ms, RTT 150 ms, end
/// system 40 ms, signal -20 dBm, noise -60 dBm, RERL 127, Gmin 16, R 80, ext R 127,
/// MOS-LQ 4.1, MOS-CQ 4.0, RX config 0, JB nominal 40, max 80, abs max 120.
pub const XR: [u8; 44] = [
    0x80, 0xcf, 0x00, 0x0a, 0x99, 0x88, 0x77, 0x66, //
    0x07, 0x00, 0x00, 0x08, 0x55, 0x66, 0x77, 0x88, //
    12, 3, 40, 2, 0x01, 0x00, 0x02, 0x00, //
    0x00, 150, 0x00, 40, 0xec, 0xc4, 127, 16, //
    80, 127, 41, 40, 0x00, 0x00, 0x00, 40, //
    0x00, 80, 0x00, 120,
];

/// Transport-wide feedback (RTPFB, 205), 12 bytes: not decoded, skipped by length.
pub const RTPFB: [u8; 12] = [
    0x81, 0xcd, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn sr_rr_sdes_compound() {
    let data = cat(&[&SR, &RR, &SDES]);
    let r = RtcpReport::parse(&data).unwrap();
    assert_eq!(r.ssrc, Some(0x1122_3344));
    assert_eq!(r.last_type, PT_SDES);
    assert_eq!(r.packets, 3);
    assert_eq!(r.sdes_ssrc, Some(0x1122_3344));
    assert_eq!(
        r.sender_info,
        Some(SenderInfo {
            ntp_timestamp_sec: 3_314_714_324,
            ntp_timestamp_usec: 4_131_758_539,
            rtp_timestamp: 640,
            packets: 4,
            octets: 640,
        })
    );
    assert_eq!(
        r.report_blocks,
        [
            ReportBlock {
                source_ssrc: 0xaabb_ccdd,
                fraction_lost: 16,
                packets_lost: 5,
                highest_seq_no: 262_148,
                ia_jitter: 7,
                lsr: 0x86d4_f645,
                dlsr: 1,
            },
            ReportBlock {
                source_ssrc: 0x5566_7788,
                fraction_lost: 0,
                packets_lost: 0x00ff_ffff,
                highest_seq_no: 11_332,
                ia_jitter: 3,
                lsr: 0,
                dlsr: 0,
            },
        ]
    );
    assert_eq!(r.mos_x100(), None);
}

#[test]
fn json_has_heplify_keys_in_order() {
    let data = cat(&[&SR, &SDES]);
    let json = String::from_utf8(RtcpReport::parse(&data).unwrap().to_json()).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"sender_information":{"ntp_timestamp_sec":3314714324,"#,
            r#""ntp_timestamp_usec":4131758539,"rtp_timestamp":640,"packets":4,"octets":640},"#,
            r#""ssrc":287454020,"type":202,"report_count":1,"report_blocks":[{"#,
            r#""source_ssrc":2864434397,"fraction_lost":16,"packets_lost":5,"#,
            r#""highest_seq_no":262148,"ia_jitter":7,"lsr":2262103621,"dlsr":1}],"#,
            r#""report_blocks_xr":{"type":0,"id":0,"fraction_lost":0,"fraction_discard":0,"#,
            r#""burst_density":0,"gap_density":0,"burst_duration":0,"gap_duration":0,"#,
            r#""round_trip_delay":0,"end_system_delay":0},"sdes_ssrc":287454020}"#
        )
    );
}

#[test]
fn xr_voip_metrics_and_mos() {
    let data = cat(&[&RR, &XR]);
    let r = RtcpReport::parse(&data).unwrap();
    assert_eq!(r.ssrc, Some(0x1122_3344), "the RR's sender is the reporter");
    let m = r.voip_metrics.unwrap();
    assert_eq!(m.ssrc, 0x5566_7788);
    assert_eq!((m.loss_rate, m.discard_rate), (12, 3));
    assert_eq!((m.burst_density, m.gap_density), (40, 2));
    assert_eq!((m.burst_duration, m.gap_duration), (256, 512));
    assert_eq!((m.round_trip_delay, m.end_system_delay), (150, 40));
    assert_eq!((m.signal_level, m.noise_level), (-20, -60));
    assert_eq!(
        (m.rerl, m.gmin, m.r_factor, m.ext_r_factor),
        (127, 16, 80, 127)
    );
    assert_eq!((m.mos_lq, m.mos_cq), (41, 40));
    assert_eq!((m.jb_nominal, m.jb_maximum, m.jb_abs_max), (40, 80, 120));
    assert_eq!(r.mos_x100(), Some(400));

    let json: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
    let xr = &json["report_blocks_xr"];
    assert_eq!(xr["type"], 7);
    assert_eq!(xr["id"], 0x5566_7788u32);
    assert_eq!(xr["fraction_lost"], 12);
    assert_eq!(xr["round_trip_delay"], 150);
    assert_eq!(json["voip_metrics"]["mos_cq"], 4.0);
    assert_eq!(json["voip_metrics"]["mos_lq"], 4.1);
    assert_eq!(json["voip_metrics"]["signal_level"], -20);
    assert_eq!(json["type"], 207);
}

#[test]
fn xr_first_and_alone() {
    let r = RtcpReport::parse(&XR).unwrap();
    assert_eq!(r.ssrc, Some(0x9988_7766));
    assert!(r.sender_info.is_none());
}

#[test]
fn mos_unavailable_is_not_sent() {
    let mut xr = XR;
    xr[42 - 8] = 127; // MOS-LQ
    xr[43 - 8] = 127; // MOS-CQ
    let r = RtcpReport::parse(&xr).unwrap();
    assert_eq!(r.mos_x100(), None);
    let mut xr = XR;
    xr[43 - 8] = 127; // MOS-CQ only: MOS-LQ 4.1 is used
    assert_eq!(RtcpReport::parse(&xr).unwrap().mos_x100(), Some(410));
}

#[test]
fn app_bye_and_feedback_are_skipped() {
    let data = cat(&[&APP, &SR, &RTPFB, &BYE]);
    let r = RtcpReport::parse(&data).unwrap();
    assert_eq!(r.packets, 4);
    assert_eq!(r.skipped, 2);
    assert_eq!(r.ssrc, Some(0x1122_3344));
    assert_eq!(r.last_type, PT_BYE);
    assert_eq!(r.report_blocks.len(), 1);
}

#[test]
fn bye_and_app_name_the_reporter_but_not_the_json_ssrc() {
    // As heplify and tshark's rtcp.senderssrc: only SR, RR and XR set `ssrc`.
    let r = RtcpReport::parse(&BYE).unwrap();
    assert_eq!((r.ssrc, r.reporter()), (None, Some(0x1122_3344)));
    let r = RtcpReport::parse(&APP).unwrap();
    assert_eq!((r.ssrc, r.reporter()), (None, Some(0x1122_3344)));
    let json: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
    assert_eq!(json["ssrc"], 0);
    let data = cat(&[&BYE, &SDES]);
    let r = RtcpReport::parse(&data).unwrap();
    assert_eq!((r.ssrc, r.sdes_ssrc), (None, Some(0x1122_3344)));
    assert_eq!(r.reporter(), Some(0x1122_3344));
}

#[test]
fn every_truncation_is_an_error_except_at_packet_boundaries() {
    let data = cat(&[&SR, &RR, &SDES, &XR]);
    let boundaries = [52, 84, 100, 144];
    for len in 0..data.len() {
        let result = RtcpReport::parse(&data[..len]);
        if boundaries.contains(&len) {
            assert!(result.is_ok(), "len {len}: {result:?}");
            continue;
        }
        // Less than a header after a complete packet: ignored.
        if let Some(b) = boundaries.iter().find(|&&b| len > b && len < b + 4) {
            assert_eq!(result.map(|r| r.trailing), Ok((len - b) as u8), "len {len}");
            continue;
        }
        let err = result.expect_err(&format!("len {len}"));
        let start = boundaries
            .iter()
            .rev()
            .find(|&&b| b <= len)
            .copied()
            .unwrap_or(0);
        match err {
            RtcpError::Truncated {
                offset, available, ..
            } => {
                assert_eq!(offset, start, "len {len}");
                assert_eq!(available, len - start);
            }
            RtcpError::LengthOverrun {
                offset, available, ..
            } => {
                assert_eq!(offset, start, "len {len}");
                assert_eq!(available, len - start);
            }
            other => panic!("len {len}: {other:?}"),
        }
    }
}

#[test]
fn trailing_bytes_after_the_compound() {
    let mut data = cat(&[&SR, &RR, &SDES]);
    data.extend_from_slice(&[0, 0]);
    let r = RtcpReport::parse(&data).unwrap();
    assert_eq!((r.packets, r.trailing), (3, 2));
    // Alone, they are still too short to be RTCP.
    assert!(RtcpReport::parse(&[0x80, 0xc8]).is_err());
}

#[test]
fn bad_version() {
    let mut data = SR;
    data[0] = 0x41;
    assert_eq!(
        RtcpReport::parse(&data),
        Err(RtcpError::BadVersion {
            offset: 0,
            version: 1
        })
    );
    let mut data = cat(&[&SR, &RR]);
    data[52] = 0x01;
    assert_eq!(
        RtcpReport::parse(&data),
        Err(RtcpError::BadVersion {
            offset: 52,
            version: 0
        })
    );
}

#[test]
fn report_count_past_the_length() {
    let mut data = RR;
    data[0] = 0x82; // two blocks claimed, one present
    assert_eq!(
        RtcpReport::parse(&data),
        Err(RtcpError::CountOverrun {
            offset: 0,
            pt: PT_RR,
            needed: 56,
            declared: 32
        })
    );
    let mut data = SR;
    data[3] = 0x05; // 24 bytes: no room for the sender info
    assert!(matches!(
        RtcpReport::parse(&data[..24]),
        Err(RtcpError::CountOverrun { pt: PT_SR, .. })
    ));
}

#[test]
fn padding() {
    // RR without blocks (8 bytes) plus 4 bytes of padding: length 2, P set, last byte 4.
    let data = [0xa0, 0xc9, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 4];
    let r = RtcpReport::parse(&data).unwrap();
    assert_eq!(r.ssrc, Some(0x1122_3344));
    let mut bad = data;
    bad[11] = 0;
    assert!(matches!(
        RtcpReport::parse(&bad),
        Err(RtcpError::BadPadding { padding: 0, .. })
    ));
    bad[11] = 13;
    assert!(matches!(
        RtcpReport::parse(&bad),
        Err(RtcpError::BadPadding { padding: 13, .. })
    ));
}

#[test]
fn xr_block_past_its_packet_keeps_the_rest() {
    let mut data = XR;
    data[11] = 0x20; // block claims 132 bytes
    let r = RtcpReport::parse(&data).unwrap();
    assert!(r.voip_metrics.is_none());
    assert_eq!(r.ssrc, Some(0x9988_7766));
}

#[test]
fn detection() {
    assert!(looks_like_rtcp(&SR));
    assert!(looks_like_rtcp(&XR));
    assert!(!looks_like_rtcp(&SR[..3]));
    // RTP version 2, PT 0 without marker.
    assert!(!looks_like_rtcp(&[0x80, 0x00, 0x00, 0x01]));
    assert!(!looks_like_rtcp(&[0x80, 0xd0, 0x00, 0x01]));
}

#[test]
fn error_text_and_reason() {
    let e = RtcpReport::parse(&[0x80]).unwrap_err();
    assert_eq!(e.reason(), "truncated");
    assert_eq!(
        e.to_string(),
        "rtcp header at offset 0 needs 4 bytes, 1 available"
    );
}
