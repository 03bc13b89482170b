//! The one tshark command whose rows hepcap must reproduce, shared by `expected` (committed
//! rows) and `conformance` (live rows).
//!
//! The filter selects SIP carried directly in UDP over IPv4 or IPv6, unfragmented and not
//! inside a tunnel: what hepcap decodes in this issue. Each clause after the issue's base
//! filter is explained in [`EXCLUSIONS`] and in `pcaps/README.md`. Checked with tshark 4.0.17.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::Context;

/// The tshark binary (override with `TSHARK=/path/to/tshark`).
pub fn program() -> String {
    std::env::var("TSHARK").unwrap_or_else(|_| "tshark".to_owned())
}

/// Options before the filter: no reassembly (hepcap does not reassemble yet), and the SIP
/// heuristic on every UDP port (already on by default; stated so a user profile cannot turn it
/// off), so that tshark looks for SIP by content as hepcap does.
pub const OPTIONS: [&str; 6] = [
    "-o",
    "ip.defragment:FALSE",
    "-o",
    "ipv6.defragment:FALSE",
    "--enable-heuristic",
    "sip_udp",
];

/// The base filter from the issue.
pub const BASE_FILTER: &str =
    "sip && udp && !ipv6.fraghdr && !(ip.flags.mf == 1) && !(ip.frag_offset > 0)";

/// Clauses added to [`BASE_FILTER`], each with the reason it is there.
pub const EXCLUSIONS: [(&str, &str); 7] = [
    (
        "!(count(ip) > 1) && !(count(ipv6) > 1) && !(ip && ipv6)",
        "any packet with a second IP header: IP-in-IP, 6in4, GRE, VXLAN, GTP-U, L2TP, Teredo, \
         and ICMP errors quoting a SIP datagram (count() of an absent field is no value, so \
         each family is counted on its own)",
    ),
    (
        "!gre",
        "GRE and ERSPAN tunnels (hepcap skips them as tunnels)",
    ),
    ("!vxlan", "VXLAN tunnels"),
    (
        "!pppoes",
        "PPPoE session frames: one IP header, but hepcap does not decode PPPoE yet",
    ),
    (
        "!mpls",
        "MPLS label stacks: one IP header, but hepcap does not decode MPLS yet",
    ),
    (
        "!tcp && !sctp",
        "SIP over TCP or SCTP that a UDP encapsulation carries (e.g. SCTP over UDP, RFC 6951)",
    ),
    (
        "!icmp && !icmpv6",
        "SIP quoted inside an ICMP error (already caught by the IP count; stated for clarity)",
    ),
];

/// Fields, in column order. The issue's twelve, then VLAN ids (802.1Q and 802.1ad tags are
/// separate fields in tshark) and the frame number for messages that name a row.
pub const FIELDS: [&str; 15] = [
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "udp.srcport",
    "ip.dst",
    "ipv6.dst",
    "udp.dstport",
    "sip.Call-ID",
    "sip.Method",
    "sip.Status-Code",
    "sip.CSeq.seq",
    "sip.CSeq.method",
    "vlan.id",
    "ieee8021ad.id",
    "frame.number",
];

/// The complete display filter.
pub fn filter() -> String {
    let mut filter = BASE_FILTER.to_owned();
    for (clause, _) in EXCLUSIONS {
        filter.push_str(" && ");
        filter.push_str(clause);
    }
    filter
}

/// Arguments after the program name, for `file`.
pub fn args(file: &Path) -> Vec<String> {
    let mut args: Vec<String> = OPTIONS.iter().map(|s| (*s).to_owned()).collect();
    args.push("-r".to_owned());
    args.push(file.display().to_string());
    args.push("-Y".to_owned());
    args.push(filter());
    for option in ["-T", "fields", "-E", "separator=/t", "-E", "header=y"] {
        args.push(option.to_owned());
    }
    for field in FIELDS {
        args.push("-e".to_owned());
        args.push(field.to_owned());
    }
    args
}

/// The command line as a shell would take it, with `file` in place of the capture.
pub fn command_line(file: &str) -> String {
    let quoted: Vec<String> = args(Path::new(file))
        .into_iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=".contains(c))
            {
                a
            } else {
                format!("'{a}'")
            }
        })
        .collect();
    format!("tshark {}", quoted.join(" "))
}

/// Options of the message command (files in `cases::REASSEMBLED`): tshark's own IP
/// defragmentation and TCP reassembly, stated so that a user profile cannot turn them off.
pub const MESSAGE_OPTIONS: [&str; 8] = [
    "-o",
    "ip.defragment:TRUE",
    "-o",
    "ipv6.defragment:TRUE",
    "-o",
    "tcp.desegment_tcp_streams:TRUE",
    "--enable-heuristic",
    "sip_udp",
];

/// Arguments of the message command for `file`, with the file's `extra` options (e.g.
/// `-d tcp.port==6060,sip`).
pub fn message_args(file: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = MESSAGE_OPTIONS.iter().map(|s| (*s).to_owned()).collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push("-r".to_owned());
    args.push(file.display().to_string());
    for option in [
        "-Y",
        "sip",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "header=y",
        "-E",
        "occurrence=a",
    ] {
        args.push(option.to_owned());
    }
    for field in crate::conformance::messages::FIELDS {
        args.push("-e".to_owned());
        args.push(field.to_owned());
    }
    args
}

/// Runs the message command on `file`.
pub fn run_messages(file: &Path, extra: &[&str]) -> anyhow::Result<Output> {
    let program = program();
    Command::new(&program)
        .args(message_args(file, extra))
        .output()
        .with_context(|| format!("run {program} (is tshark installed? set TSHARK=...)"))
}

/// Runs tshark on `file` and returns its output whatever the exit status.
pub fn run(file: &Path) -> anyhow::Result<Output> {
    let program = program();
    Command::new(&program)
        .args(args(file))
        .output()
        .with_context(|| format!("run {program} (is tshark installed? set TSHARK=...)"))
}

/// Frames tshark decodes as SIP at all (same options, filter `sip`), or `None` when tshark
/// cannot read the file. Shown beside the filtered count so that what is left out is visible.
pub fn count_sip_frames(file: &Path) -> anyhow::Result<Option<usize>> {
    let program = program();
    let out = Command::new(&program)
        .args(OPTIONS)
        .arg("-r")
        .arg(file)
        .args(["-Y", "sip", "-T", "fields", "-e", "frame.number"])
        .output()
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() && out.stdout.is_empty() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).lines().count()))
}

/// The version line of tshark, e.g. `TShark (Wireshark) 4.0.17 ...`.
pub fn version() -> anyhow::Result<String> {
    let program = program();
    let out = Command::new(&program)
        .arg("--version")
        .output()
        .with_context(|| format!("run {program} --version"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// tshark's complaint about a file, without its banner about running as root.
pub fn stderr_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("Running as user"))
        .collect::<Vec<_>>()
        .join(" ")
}
