//! Fuzzes the SDP scanner: any SIP message body, any SDP, and the correlator learning from it.

#![no_main]

use hepcap::correlate::sdp::{self, MediaEndpoint};
use hepcap::correlate::{Correlator, CorrelatorConfig, SipMessageView};
use hepcap::record::Timestamp;
use hepcap::sip::SipScan;
use libfuzzer_sys::fuzz_target;

fn check(m: &MediaEndpoint) {
    assert_ne!(m.rtp.port(), 0, "declined streams are not reported");
    assert_ne!(m.rtcp.port(), 0);
}

fuzz_target!(|data: &[u8]| {
    // As a bare SDP body.
    sdp::scan(data, |m| check(&m));

    // As a whole SIP message: bodies found by Content-Type, multipart included.
    let mut bodies = 0usize;
    sdp::sip_sdp_bodies(data, |body| {
        bodies += 1;
        // Every body is a slice of the message.
        let start = body.as_ptr() as usize;
        let base = data.as_ptr() as usize;
        assert!(start >= base && start + body.len() <= base + data.len());
        sdp::scan(body, |m| check(&m));
    });

    // And through the correlator, if it scans as SIP.
    if let Some(summary) = SipScan::scan(data) {
        let mut correlator = Correlator::new(CorrelatorConfig::default(), "fuzz");
        let view = SipMessageView {
            src: "192.0.2.1:5060".parse().expect("literal"),
            payload: data,
            sip: &summary,
        };
        let mut out = Vec::new();
        correlator.on_sip(&view, Timestamp(1), &mut out);
        assert!(out.is_empty(), "nothing was held");
    }
});
