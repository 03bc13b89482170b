//! What hepcap must do with each capture, where that is not "match tshark's rows".
//!
//! Plain `std`; compiled into `tests/tests/conformance.rs` too. Files are named without their
//! directory, so an entry applies to `pcaps/` and to the shared corpus alike. Every file not
//! listed in [`REJECTED`] or [`MATCH_THEN_ERROR`] must match tshark exactly.

/// hepcap's expected behaviour for one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Records equal tshark's rows; exit status 0.
    Match,
    /// hepcap refuses the file: an error naming it on stderr, no records from it, a non-zero
    /// exit status once the other files are done. The text says why.
    Rejected(&'static str),
    /// Records up to the damage equal tshark's rows; then the error is reported as for
    /// [`Expect::Rejected`].
    MatchThenError(&'static str),
}

/// Files hepcap must refuse, with the reason. These are the only files not compared.
pub const REJECTED: [(&str, &str); 3] = [
    (
        "sipnab__c07-sip-r2.cap",
        "Microsoft NetMon 2.x file: hepcap reads pcap and pcapng only (negative test)",
    ),
    (
        "synth__unsupported-linktype-147.pcap",
        "LINKTYPE_USER0 (147) is not a link type hepcap decodes (negative fixture)",
    ),
    (
        "synth__not-a-capture.pcap",
        "a text file, not a capture (negative fixture)",
    ),
];

/// Files cut short: whole records are compared, then the damage must be reported.
pub const MATCH_THEN_ERROR: [(&str, &str); 1] = [(
    "synth__truncated-record.pcap",
    "the last record is cut in the middle (negative fixture)",
)];

/// Files compared message by message after reassembly (`messages.rs`): tshark with its IP
/// defragmentation and TCP reassembly on, hepcap with every transport. Each entry gives the
/// extra tshark arguments and the extra hepcap arguments the file needs (the same port made
/// SIP on both sides).
pub const REASSEMBLED: [(&str, &[&str], &[&str]); 23] = [
    (
        "heplify__sip_ipv4_tcp_fragmented.pcap",
        &["-d", "tcp.port==6060,sip"],
        &["--sip-ports", "5060-5061,6060"],
    ),
    ("heplify__sip_ipv4_tcp.pcap", &[], &[]),
    ("heplify__sip_ipv4_tcp_retrans.pcap", &[], &[]),
    ("heplify__sip_tcp_websocket.pcap", &[], &[]),
    ("heplify__sip_sctp.pcap", &[], &[]),
    ("suricata__sip-tcp.pcap", &[], &[]),
    ("suricata__sip-body-large.pcap", &[], &[]),
    ("sngrep__ipip.pcap", &[], &[]),
    ("heplify__ipip0.pcap", &[], &[]),
    ("sngrep__ipv6frag.pcap", &[], &[]),
    ("peafowl__ip_fragmentation_correct_1.pcap", &[], &[]),
    ("sipnab__DTMFsipinfo.pcap", &[], &[]),
    ("heplify__erspan_sip_ipv4_udp.pcapng", &[], &[]),
    ("ndpi__gre.pcapng", &[], &[]),
    ("synth__tcp-packed-and-split.pcap", &[], &[]),
    ("synth__tcp-mid-stream.pcap", &[], &[]),
    ("synth__vxlan.pcap", &[], &[]),
    ("synth__erspan-ii-iii.pcap", &[], &[]),
    ("synth__gre-variants.pcap", &[], &[]),
    ("synth__ipv4-fragments-ooo-overlap.pcap", &[], &[]),
    ("synth__ipv6-fragments-ooo.pcap", &[], &[]),
    ("synth__ip-in-ip.pcap", &[], &[]),
    ("synth__mpls-pppoe.pcap", &[], &[]),
];

/// The extra (tshark, hepcap) arguments of a file compared after reassembly, or `None` for a
/// file compared row by row.
pub fn reassembled(file_name: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    REASSEMBLED
        .iter()
        .find(|(f, _, _)| *f == file_name)
        .map(|(_, t, h)| (*t, *h))
}

/// Captures without SIP whose tunnels or link layers are checked at the five-tuple level: the
/// innermost IP addresses, protocol and ports of every frame, as hepcap's decoder reaches them
/// (`agent/examples/decode_tuples.rs`) and as tshark shows them (last occurrence of each field).
pub const TUPLES: [&str; 6] = [
    "tcpdump__vxlan.pcap",
    "zeek__erspanII.pcap",
    "zeek__erspanIII.pcap",
    "zeek__linux_dlt_sll2.pcap",
    "zeek__nflog-http.pcap",
    "zeek__http-qinq-0.pcap",
];

/// Files compared row by row on a subset; the note says what is left out.
pub const SUBSET_NOTES: [(&str, &str); 0] = [];

/// The expectation for a file name.
pub fn expect(file_name: &str) -> Expect {
    if let Some((_, why)) = REJECTED.iter().find(|(f, _)| *f == file_name) {
        return Expect::Rejected(why);
    }
    if let Some((_, why)) = MATCH_THEN_ERROR.iter().find(|(f, _)| *f == file_name) {
        return Expect::MatchThenError(why);
    }
    Expect::Match
}

/// The subset note for a file name, if any.
pub fn subset_note(file_name: &str) -> Option<&'static str> {
    SUBSET_NOTES
        .iter()
        .find(|(f, _)| *f == file_name)
        .map(|(_, note)| *note)
}

/// Checks hepcap's stderr and exit status for a file it must refuse or report. `shown` is
/// the path as given on hepcap's command line. Returns what is wrong, if anything.
pub fn check_reported(stderr: &str, exit_ok: bool, shown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if stderr.contains("panicked") {
        problems.push("hepcap panicked".to_owned());
    }
    if exit_ok {
        problems.push("hepcap exited with status 0".to_owned());
    }
    if !stderr.contains(shown) {
        problems.push(format!("stderr does not name {shown}"));
    }
    problems
}
