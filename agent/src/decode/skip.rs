//! Why a captured frame produced no record. Each reason is a bounded metric label.

/// Why a frame was not turned into a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Shorter than its link, IP or UDP header says it is (snaplen or a broken frame).
    Truncated,
    /// An IP header that does not parse (bad version, bad lengths).
    MalformedIp,
    /// An IPv4 or IPv6 fragment; reassembly is not done yet.
    IpFragment,
    /// A frame that carries no IP (ARP, LLDP, spanning tree, …).
    NonIp,
    /// SIP over TCP is not decoded yet.
    Tcp,
    /// SIP over SCTP is not decoded yet.
    Sctp,
    /// An encapsulation (GRE, IP-in-IP, VXLAN, PPPoE, MPLS) not opened yet.
    Tunnel,
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
    pub const ALL: [SkipReason; 11] = [
        SkipReason::Truncated,
        SkipReason::MalformedIp,
        SkipReason::IpFragment,
        SkipReason::NonIp,
        SkipReason::Tcp,
        SkipReason::Sctp,
        SkipReason::Tunnel,
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
            SkipReason::IpFragment => "ip_fragment",
            SkipReason::NonIp => "non_ip",
            SkipReason::Tcp => "tcp",
            SkipReason::Sctp => "sctp",
            SkipReason::Tunnel => "tunnel",
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
