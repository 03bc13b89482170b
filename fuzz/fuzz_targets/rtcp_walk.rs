//! Fuzzes the RTCP compound walker and the correlator's handling of any UDP payload.

#![no_main]

use hepcap::correlate::rtcp::{RtcpReport, looks_like_rtcp};
use hepcap::correlate::{Correlator, CorrelatorConfig, UdpDatagram, Uncorrelated};
use hepcap::record::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match RtcpReport::parse(data) {
        Ok(report) => {
            // Every report block is 24 bytes of the input.
            assert!(report.report_blocks.len() * 24 <= data.len());
            assert!(usize::from(report.packets) * 4 <= data.len());
            if let Some(mos) = report.mos_x100() {
                assert!((100..=500).contains(&mos));
            }
            let json = report.to_json();
            assert!(json.starts_with(b"{\"sender_information\":") && json.ends_with(b"}"));
        }
        Err(e) => {
            const REASONS: &[&str] = &[
                "truncated",
                "bad_version",
                "length_overrun",
                "count_overrun",
                "bad_padding",
            ];
            assert!(REASONS.contains(&e.reason()));
            assert!(!e.to_string().is_empty());
        }
    }

    // The correlator takes anything RTCP-looking and sends it (uncorrelated, here) or counts
    // it as malformed; it never loses count.
    let config = CorrelatorConfig {
        uncorrelated: Uncorrelated::Send,
        hold_us: 0,
        ..CorrelatorConfig::default()
    };
    let mut correlator = Correlator::new(config, "fuzz");
    let mut out = Vec::new();
    let d = UdpDatagram {
        src: "192.0.2.1:4001".parse().expect("literal"),
        dst: "192.0.2.2:4003".parse().expect("literal"),
        vlan: None,
        payload: data,
        ts: Timestamp(1),
    };
    let taken = correlator.on_udp(&d, &mut out);
    assert_eq!(taken, looks_like_rtcp(data));
    let stats = correlator.stats();
    let malformed: u64 = stats.rtcp_malformed.iter().map(|(_, n)| n).sum();
    assert_eq!(stats.rtcp + malformed, u64::from(taken));
    assert_eq!(out.len() as u64, stats.rtcp);
});
