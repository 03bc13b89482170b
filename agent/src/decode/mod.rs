//! From a captured frame to a SIP message: link layer, IP, UDP, then the lazy SIP scan.
//!
//! The same path serves replay and live capture. It borrows the frame and allocates nothing;
//! [`SipPacket::to_record`] copies the payload once when the pipeline needs to keep it.
//! Everything that does not end as SIP returns a [`SkipReason`].

pub mod link;
mod skip;

use std::net::IpAddr;

use bytes::Bytes;
use etherparse::{IpNumber, IpSlice};

pub use link::{LinkType, UnsupportedLinkType};
pub use skip::{SkipCounts, SkipReason};

use crate::record::{PROTO_SIP, Record, SipSummary, Source, Timestamp, Transport};
use crate::sip::SipScan;

const UDP_HEADER_LEN: usize = 8;
const VXLAN_PORT: u16 = 4789;

/// A SIP message found in a frame, borrowing the frame's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub transport: Transport,
    pub vlan: Option<u16>,
    pub payload: &'a [u8],
    pub sip: SipSummary,
}

impl SipPacket<'_> {
    /// Copies the message into an owned record.
    pub fn to_record(&self, ts: Timestamp, source: Source) -> Record {
        Record {
            source,
            ts,
            src: self.src,
            dst: self.dst,
            src_port: self.src_port,
            dst_port: self.dst_port,
            transport: self.transport,
            vlan: self.vlan,
            proto_type: PROTO_SIP,
            payload: Bytes::copy_from_slice(self.payload),
            sip: Some(self.sip.clone()),
        }
    }
}

/// Decodes one frame of the given link type.
pub fn decode_frame(link: LinkType, frame: &[u8]) -> Result<SipPacket<'_>, SkipReason> {
    let net = link::strip(link, frame)?;
    match net.ether_type {
        link::ETHERTYPE_IPV4 | link::ETHERTYPE_IPV6 => decode_ip(net.data, net.vlan),
        link::ETHERTYPE_PPPOE_SESSION
        | link::ETHERTYPE_MPLS
        | link::ETHERTYPE_MPLS_MULTICAST
        | link::ETHERTYPE_TEB
        | link::ETHERTYPE_ERSPAN_II
        | link::ETHERTYPE_ERSPAN_III => Err(SkipReason::Tunnel),
        _ => Err(SkipReason::NonIp),
    }
}

/// Decodes an IPv4 or IPv6 packet (with IPv6 extension headers).
pub fn decode_ip(data: &[u8], vlan: Option<u16>) -> Result<SipPacket<'_>, SkipReason> {
    let ip = IpSlice::from_slice(data).map_err(|e| match e {
        etherparse::err::ip::SliceError::Len(_) => SkipReason::Truncated,
        _ => SkipReason::MalformedIp,
    })?;
    let payload = ip.payload();
    if payload.fragmented {
        return Err(SkipReason::IpFragment);
    }
    match payload.ip_number {
        IpNumber::UDP => decode_udp(&ip, payload.payload, vlan),
        IpNumber::TCP => Err(SkipReason::Tcp),
        IpNumber::SCTP => Err(SkipReason::Sctp),
        IpNumber::GRE | IpNumber::IPV4 | IpNumber::IPV6 => Err(SkipReason::Tunnel),
        _ => Err(SkipReason::OtherIpProto),
    }
}

fn decode_udp<'a>(
    ip: &IpSlice<'a>,
    udp: &'a [u8],
    vlan: Option<u16>,
) -> Result<SipPacket<'a>, SkipReason> {
    let header = udp.get(..UDP_HEADER_LEN).ok_or(SkipReason::Truncated)?;
    let src_port = u16::from_be_bytes([header[0], header[1]]);
    let dst_port = u16::from_be_bytes([header[2], header[3]]);
    let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let payload = match length {
        // Zero: an IPv6 jumbogram, or a sender that left it unset; the IP length rules.
        0 => &udp[UDP_HEADER_LEN..],
        1..UDP_HEADER_LEN => return Err(SkipReason::MalformedIp),
        n => udp.get(UDP_HEADER_LEN..n).ok_or(SkipReason::Truncated)?,
    };

    let Some(sip) = SipScan::scan(payload) else {
        return Err(classify_non_sip(src_port, dst_port, payload));
    };
    Ok(SipPacket {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        src_port,
        dst_port,
        transport: Transport::UDP,
        vlan,
        payload,
        sip,
    })
}

/// Names what a non-SIP UDP datagram most likely is, for the skip counters.
fn classify_non_sip(src_port: u16, dst_port: u16, payload: &[u8]) -> SkipReason {
    if src_port == VXLAN_PORT || dst_port == VXLAN_PORT {
        return SkipReason::Tunnel;
    }
    // RTP version 2 with an RTCP packet type 200..=207 (RFC 3550, RFC 3611).
    if let [first, pt, ..] = payload
        && first >> 6 == 2
        && (200..=207).contains(pt)
        && payload.len() >= 8
    {
        return SkipReason::Rtcp;
    }
    SkipReason::NonSipUdp
}

#[cfg(test)]
mod tests;
