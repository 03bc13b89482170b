//! The classic BPF filter of `--capture pcap`, written in libpcap's filter language.
//!
//! It selects what the eBPF program selects, as far as a static filter can: TCP and UDP on the
//! SIP ports, UDP fragments (the reassembler needs every piece), IPv4 UDP whose payload starts
//! like a SIP start line, and UDP that looks like RTCP. The RTCP endpoints learnt from SDP
//! change while the agent runs and a classic filter cannot follow them, so pcap mode always
//! takes the RTCP heuristic (version 2, packet type 200–207) and the correlator sorts out what
//! belongs to a call. Each clause is repeated under `vlan` for 802.1Q-tagged frames.

use crate::decode::PortSet;

/// First four payload bytes of every SIP start line hepcap looks for, as big-endian words.
const SIP_WORDS: [&[u8; 4]; 15] = [
    b"SIP/", b"INVI", b"ACK ", b"BYE ", b"CANC", b"OPTI", b"REGI", b"PRAC", b"SUBS", b"NOTI",
    b"PUBL", b"INFO", b"REFE", b"MESS", b"UPDA",
];

/// The generated filter for these SIP ports. `vlan`: also match 802.1Q-tagged frames (only
/// on link types that carry the tag in the frame; libpcap refuses it on `any`).
pub fn generate(sip_ports: &PortSet, vlan: bool) -> String {
    let ports = sip_ports
        .ranges()
        .iter()
        .map(|&(a, b)| {
            if a == b {
                format!("port {a}")
            } else {
                format!("portrange {a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(" or ");
    let sip_start = SIP_WORDS
        .iter()
        .map(|w| format!("udp[8:4] = 0x{:08x}", u32::from_be_bytes(**w)))
        .collect::<Vec<_>>()
        .join(" or ");
    let clauses = [
        // A SIP server's HEP mirror leaves from its SIP socket; it is not SIP.
        format!(
            "((tcp or udp) and ({ports}) and not (ip and udp and \
             (udp[8:4] = 0x48455033 or udp[8:4] = 0x45455033)))"
        ),
        // IPv4: more-fragments or a non-zero offset; IPv6: a fragment header right after the
        // fixed header (the usual place).
        "(ip proto 17 and ip[6:2] & 0x3fff != 0)".to_string(),
        "(ip6 and ip6[6] = 44)".to_string(),
        format!("(ip and udp and ({sip_start}))"),
        "(ip and udp and udp[8] & 0xc0 = 0x80 and udp[9] >= 200 and udp[9] <= 207)".to_string(),
    ];
    let base = clauses.join(" or ");
    if vlan {
        format!("({base}) or (vlan and ({base}))")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_port_range_and_the_sip_words() {
        let ports: PortSet = "5060-5090,6060".parse().unwrap();
        let f = generate(&ports, true);
        assert!(
            f.contains("(portrange 5060-5090 or port 6060) and not"),
            "{f}"
        );
        // "INVI" = 0x49 0x4e 0x56 0x49.
        assert!(f.contains("udp[8:4] = 0x494e5649"), "{f}");
        // "SIP/" = 0x53 0x49 0x50 0x2f.
        assert!(f.contains("udp[8:4] = 0x5349502f"), "{f}");
        assert!(f.contains("or (vlan and ("), "{f}");
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(sport, dport)
            .write(&mut frame, payload)
            .unwrap();
        frame
    }

    #[test]
    fn libpcap_runs_it_on_sip_rtcp_and_rtp() {
        let f = generate(&PortSet::default(), true);
        let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
        let program = cap.compile(&f, true).expect("libpcap compiles the filter");
        // SIP on its port, SIP on another port, RTCP (v2, SR = 200), RTP (v2, PT 0).
        assert!(program.filter(&udp(5060, 5060, b"OPTIONS sip:a SIP/2.0\r\n")));
        assert!(program.filter(&udp(40000, 7000, b"SIP/2.0 200 OK\r\n")));
        assert!(program.filter(&udp(40001, 7001, &[0x81, 200, 0, 6, 1, 2, 3, 4])));
        assert!(!program.filter(&udp(40000, 7000, &[0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2])));
        assert!(!program.filter(&udp(53, 40000, b"\x12\x34 dns answer")));
        // Kamailio's siptrace sends HEP from its SIP socket.
        assert!(!program.filter(&udp(5060, 9060, b"HEP3\x00\x20rest of it")));
    }
}
