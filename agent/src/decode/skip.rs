//! Why a captured frame produced no record. Each reason is a bounded metric label.

/// Why a frame was not turned into a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Shorter than its link, IP or UDP header says it is (snaplen or a broken frame).
    Truncated,
    /// An IP header that does not parse (bad version, bad lengths).
    MalformedIp,
    /// A frame that carries no IP (ARP, LLDP, spanning tree, …).
    NonIp,
    /// An IP fragment stored until its datagram is complete (the completing fragment yields
    /// the message; expired and evicted datagrams are counted by the fragment table).
    FragmentHeld,
    /// An IP fragment inconsistent with its datagram (bad length, conflicting end).
    FragmentMalformed,
    /// A TCP segment of a SIP flow that completed no message (part of one, an ACK, a
    /// retransmission, a keep-alive).
    TcpBuffered,
    /// TCP that is not on a SIP port and does not start with a SIP or WebSocket upgrade line.
    NonSipTcp,
    /// SCTP without a DATA chunk holding a SIP message.
    SctpNoSip,
    /// Pieces of an SCTP user message split over DATA chunks (held until the last piece).
    SctpFragmented,
    /// An encapsulation hepcap does not open (GRE source routing, GRE version > 1, a
    /// VXLAN header without the I flag).
    Tunnel,
    /// More nested encapsulations (or MPLS labels) than the decoder follows.
    TunnelDepth,
    /// RTCP: correlation to calls is not done yet.
    Rtcp,
    /// UDP whose payload is not a SIP message.
    NonSipUdp,
    /// Any other IP protocol (ICMP, IGMP, ESP, …).
    OtherIpProto,
    /// More stacked VLAN tags than the decoder follows.
    VlanDepth,
}

impl SkipReason {
    /// Every reason, for summaries that list them in a stable order.
    pub const ALL: [SkipReason; 15] = [
        SkipReason::Truncated,
        SkipReason::MalformedIp,
        SkipReason::NonIp,
        SkipReason::FragmentHeld,
        SkipReason::FragmentMalformed,
        SkipReason::TcpBuffered,
        SkipReason::NonSipTcp,
        SkipReason::SctpNoSip,
        SkipReason::SctpFragmented,
        SkipReason::Tunnel,
        SkipReason::TunnelDepth,
        SkipReason::Rtcp,
        SkipReason::NonSipUdp,
        SkipReason::OtherIpProto,
        SkipReason::VlanDepth,
    ];

    /// Label used in metrics, logs and the exit summary.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Truncated => "truncated",
            SkipReason::MalformedIp => "malformed_ip",
            SkipReason::NonIp => "non_ip",
            SkipReason::FragmentHeld => "frag_held",
            SkipReason::FragmentMalformed => "frag_malformed",
            SkipReason::TcpBuffered => "tcp_buffered",
            SkipReason::NonSipTcp => "non_sip_tcp",
            SkipReason::SctpNoSip => "sctp_no_sip",
            SkipReason::SctpFragmented => "sctp_fragmented",
            SkipReason::Tunnel => "tunnel",
            SkipReason::TunnelDepth => "tunnel_depth",
            SkipReason::Rtcp => "rtcp",
            SkipReason::NonSipUdp => "non_sip_udp",
            SkipReason::OtherIpProto => "other_ip_proto",
            SkipReason::VlanDepth => "vlan_depth",
        }
    }

    /// Position in [`SkipReason::ALL`], for array-backed counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Per-reason skip counts, cheap enough to bump per packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkipCounts([u64; SkipReason::ALL.len()]);

impl SkipCounts {
    pub fn add(&mut self, reason: SkipReason) {
        self.0[reason.index()] += 1;
    }

    pub fn get(&self, reason: SkipReason) -> u64 {
        self.0[reason.index()]
    }

    /// Non-zero counts in stable order.
    pub fn iter(&self) -> impl Iterator<Item = (SkipReason, u64)> + '_ {
        SkipReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}
