//! The records and map types that cross the kernel/user boundary.
//!
//! Both the eBPF programs (`agent-ebpf`, built for `bpfel-unknown-none`) and the agent compile
//! this crate, so a layout change cannot reach one side only. Every type is `#[repr(C)]`, holds
//! no implicit padding, and has its size and alignment pinned below: the kernel copies these
//! bytes verbatim and user space reads them back at those offsets.
#![no_std]

/// Name of the socket filter program in the object file.
pub const PROG_SOCKET: &str = "hepcap_socket";
/// Name of the XDP program in the object file.
pub const PROG_XDP: &str = "hepcap_xdp";
/// Map names, as user space looks them up.
pub const MAP_EVENTS: &str = "EVENTS";
pub const MAP_SIP_PORTS: &str = "SIP_PORTS";
pub const MAP_RTCP: &str = "RTCP";
pub const MAP_CONFIG: &str = "CONFIG";
pub const MAP_COUNTERS: &str = "COUNTERS";
pub const MAP_LAST_SIP: &str = "LAST_SIP";

/// Entries of the RTCP map (LRU: at the limit the kernel forgets the least recently used).
pub const RTCP_MAP_ENTRIES: u32 = 65_536;

/// Header of every perf sample; the packet's first `cap_len` bytes follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds, not wall-clock time.
    pub ts_ns: u64,
    pub ifindex: u32,
    /// Length of the packet on the wire (from the link header on).
    pub orig_len: u32,
    /// Bytes of the packet that follow this header.
    pub cap_len: u32,
    /// `skb->pkt_type` (PACKET_HOST 0 … PACKET_OUTGOING 4); always 0 from XDP (ingress).
    pub pkt_type: u8,
    /// Why the packet was copied: one of the `MATCH_*` values.
    pub matched: u8,
    /// Which program copied it: `ORIGIN_SOCKET` or `ORIGIN_XDP`.
    pub origin: u8,
    pub _pad: u8,
}

pub const MATCH_SIP_PORT: u8 = 1;
pub const MATCH_SIP_CONTENT: u8 = 2;
pub const MATCH_RTCP_MAP: u8 = 3;
pub const MATCH_RTCP_HEURISTIC: u8 = 4;
pub const MATCH_FRAGMENT: u8 = 5;
/// RTCP-looking UDP shortly after SIP (see `Config::rtcp_recent_ms`).
pub const MATCH_RTCP_RECENT: u8 = 6;

pub const ORIGIN_SOCKET: u8 = 0;
pub const ORIGIN_XDP: u8 = 1;

/// `skb->pkt_type` of a packet this host sends.
pub const PACKET_OUTGOING: u8 = 4;

/// Key of the RTCP map: an address (IPv4 as IPv4-mapped IPv6) and a UDP port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RtcpKey {
    pub addr: [u8; 16],
    /// Host byte order.
    pub port: u16,
    pub _pad: [u8; 2],
}

/// The single entry of the CONFIG array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Bytes of each packet copied at most.
    pub snaplen: u32,
    /// Interface index of `lo` (0: none). Its outgoing sighting of a packet is not copied:
    /// the incoming one follows.
    pub lo_ifindex: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// For this long after the last SIP packet copied, UDP that looks like RTCP is copied
    /// too (0: never). The first RTCP of a call can follow its SDP within a millisecond,
    /// before user space has decoded the SDP and filled the RTCP map; the correlator holds
    /// such reports until the SDP explains them.
    pub rtcp_recent_ms: u32,
}

/// UDP with RTP version 2 and payload type 200–207 is RTCP even when not in the map.
pub const FLAG_RTCP_HEURISTIC: u32 = 1;

/// Indexes of the per-CPU COUNTERS array.
pub mod counter {
    /// Packets the program ran on.
    pub const SEEN: u32 = 0;
    pub const SIP: u32 = 1;
    pub const RTCP: u32 = 2;
    /// UDP fragments copied for reassembly in user space.
    pub const FRAGMENTS: u32 = 3;
    /// `bpf_perf_event_output` failed (ring full or error): the packet is lost.
    pub const OUTPUT_FAILED: u32 = 4;
    /// Outgoing sightings on `lo` not copied (the incoming one is).
    pub const LO_OUTGOING: u32 = 5;
    /// Headers that could not be read: truncated or unknown layouts.
    pub const UNPARSED: u32 = 6;
    /// HEPv3 datagrams on a SIP port, not copied: a SIP server's own HEP mirror (Kamailio's
    /// siptrace sends from its SIP socket) is not SIP, and hepcap receives it as HEP anyway.
    pub const HEP: u32 = 7;
    pub const COUNT: u32 = 8;
    /// Label of each counter, in index order.
    pub const NAMES: [&str; COUNT as usize] = [
        "seen",
        "sip",
        "rtcp",
        "fragments",
        "output_failed",
        "lo_outgoing",
        "unparsed",
        "hep",
    ];
}

const _: () = {
    assert!(core::mem::size_of::<EventHeader>() == 24);
    assert!(core::mem::align_of::<EventHeader>() == 8);
    assert!(core::mem::size_of::<RtcpKey>() == 20);
    assert!(core::mem::align_of::<RtcpKey>() == 2);
    assert!(core::mem::size_of::<Config>() == 16);
    assert!(core::mem::align_of::<Config>() == 4);
};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers and byte arrays without padding (sizes asserted
    // above): every bit pattern is valid.
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::RtcpKey {}
    unsafe impl aya::Pod for super::Config {}
}
