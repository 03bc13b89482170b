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
pub const REJECTED: [(&str, &str); 4] = [
    (
        "sipnab__c07-sip-r2.cap",
        "Microsoft NetMon 2.x file: hepcap reads pcap and pcapng only (negative test)",
    ),
    (
        "zeek__nflog-http.pcap",
        "LINKTYPE_NFLOG (239) is not decoded in this issue (and the file has no SIP)",
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

/// Files whose SIP is partly or wholly outside what hepcap decodes in this issue. They are
/// compared on the subset the tshark filter keeps (SIP in plain, unfragmented UDP); the note
/// says what is left out, so that a reader of the table knows why a count is low.
pub const SUBSET_NOTES: [(&str, &str); 13] = [
    ("heplify__sip_ipv4_tcp.pcap", "SIP over TCP left out"),
    (
        "heplify__sip_ipv4_tcp_retrans.pcap",
        "TCP leg left out; the UDP leg is compared",
    ),
    (
        "heplify__sip_ipv4_tcp_fragmented.pcap",
        "SIP over TCP port 6060 left out",
    ),
    (
        "heplify__sip_tcp_websocket.pcap",
        "SIP over WebSocket left out; the UDP legs are compared",
    ),
    ("heplify__sip_sctp.pcap", "SIP over SCTP left out"),
    ("suricata__sip-tcp.pcap", "SIP over TCP left out"),
    (
        "suricata__sip-body-large.pcap",
        "SIP over TCP (64 KB body) left out",
    ),
    ("sngrep__ipip.pcap", "SIP over TCP and IP-in-IP left out"),
    (
        "sngrep__ipv6frag.pcap",
        "IPv6-fragmented INVITEs left out (no reassembly yet)",
    ),
    (
        "peafowl__ip_fragmentation_correct_1.pcap",
        "IPv4-fragmented SIP CANCEL left out (no reassembly yet)",
    ),
    ("sipnab__DTMFsipinfo.pcap", "SIP inside PPPoE left out"),
    (
        "heplify__erspan_sip_ipv4_udp.pcapng",
        "SIP inside GRE (TEB) left out",
    ),
    ("ndpi__gre.pcapng", "SIP inside VLAN + GRE + PPP left out"),
];

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
