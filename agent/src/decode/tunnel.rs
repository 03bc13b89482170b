//! Encapsulations opened to reach the inner packet, each a checked view returning what it
//! carries: GRE (RFC 2784, RFC 2890 key and sequence, RFC 2637 enhanced GRE for PPTP), ERSPAN
//! types I, II and III (draft-foschiano-erspan), VXLAN (RFC 7348), PPPoE session frames
//! (RFC 2516) with PPP (RFC 1661), and MPLS label stacks (RFC 3032) with an optional
//! pseudowire control word (RFC 4385). The outer addresses are not kept: the inner packet is
//! decoded as if it had been captured directly.

use super::link::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use super::skip::SkipReason;

pub const ETHERTYPE_PPP: u16 = 0x880b;
pub const ETHERTYPE_TEB: u16 = 0x6558;
pub const ETHERTYPE_ERSPAN_II: u16 = 0x88be;
pub const ETHERTYPE_ERSPAN_III: u16 = 0x22eb;
pub const ETHERTYPE_MPLS: u16 = 0x8847;
pub const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;

/// Deepest MPLS label stack followed.
pub const MAX_MPLS_LABELS: usize = 8;

/// What an encapsulation carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner<'a> {
    /// A packet of this EtherType.
    Ether(u16, &'a [u8]),
    /// A whole Ethernet frame (with its own header and maybe VLAN tags).
    Ethernet(&'a [u8]),
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Opens a GRE packet (IP protocol 47).
pub fn gre(data: &[u8]) -> Result<Inner<'_>, SkipReason> {
    let h = data.get(..4).ok_or(SkipReason::Truncated)?;
    let flags = be16(h);
    let protocol = be16(&h[2..]);
    let version = flags & 0x7;
    let checksum = flags & 0x8000 != 0;
    let routing = flags & 0x4000 != 0;
    let key = flags & 0x2000 != 0;
    let sequence = flags & 0x1000 != 0;
    // Source routing (RFC 1701) is obsolete and variable length: not followed.
    if routing || version > 1 {
        return Err(SkipReason::Tunnel);
    }
    let mut at = 4;
    if checksum {
        at += 4;
    }
    if key {
        at += 4;
    }
    if sequence {
        at += 4;
    }
    // Enhanced GRE (version 1) may carry an acknowledgment number.
    if version == 1 && flags & 0x0080 != 0 {
        at += 4;
    }
    let body = data.get(at..).ok_or(SkipReason::Truncated)?;
    match protocol {
        ETHERTYPE_TEB => Ok(Inner::Ethernet(body)),
        // ERSPAN type I has no header and no sequence number; type II has both.
        ETHERTYPE_ERSPAN_II if !sequence => Ok(Inner::Ethernet(body)),
        ETHERTYPE_ERSPAN_II => Ok(Inner::Ethernet(body.get(8..).ok_or(SkipReason::Truncated)?)),
        ETHERTYPE_ERSPAN_III => erspan_iii(body),
        ETHERTYPE_PPP => ppp(body),
        other => Ok(Inner::Ether(other, body)),
    }
}

/// ERSPAN type III: a 12-byte header, then an 8-byte platform subheader when the O bit is set.
fn erspan_iii(body: &[u8]) -> Result<Inner<'_>, SkipReason> {
    let h = body.get(..12).ok_or(SkipReason::Truncated)?;
    let at = if h[11] & 0x01 != 0 { 20 } else { 12 };
    Ok(Inner::Ethernet(
        body.get(at..).ok_or(SkipReason::Truncated)?,
    ))
}

/// A PPP frame, with or without the HDLC address and control bytes, with a one- or two-byte
/// protocol field (RFC 1661 §6.5 protocol compression).
pub fn ppp(data: &[u8]) -> Result<Inner<'_>, SkipReason> {
    let data = match data {
        [0xff, 0x03, rest @ ..] => rest,
        _ => data,
    };
    let (protocol, at) = match data {
        [p, ..] if p & 1 == 1 => (u16::from(*p), 1),
        [a, b, ..] => (u16::from_be_bytes([*a, *b]), 2),
        _ => return Err(SkipReason::Truncated),
    };
    let body = &data[at..];
    match protocol {
        0x0021 => Ok(Inner::Ether(ETHERTYPE_IPV4, body)),
        0x0057 => Ok(Inner::Ether(ETHERTYPE_IPV6, body)),
        _ => Err(SkipReason::NonIp),
    }
}

/// A PPPoE session frame (EtherType 0x8864).
pub fn pppoe_session(data: &[u8]) -> Result<Inner<'_>, SkipReason> {
    let h = data.get(..6).ok_or(SkipReason::Truncated)?;
    if h[0] != 0x11 || h[1] != 0 {
        return Err(SkipReason::NonIp);
    }
    let len = usize::from(be16(&h[4..]));
    let ppp_frame = data.get(6..6 + len).ok_or(SkipReason::Truncated)?;
    ppp(ppp_frame)
}

/// An MPLS label stack, then IPv4, IPv6, or a pseudowire control word and Ethernet.
pub fn mpls(data: &[u8]) -> Result<Inner<'_>, SkipReason> {
    let mut at = 0;
    for _ in 0..MAX_MPLS_LABELS {
        let label = data.get(at..at + 4).ok_or(SkipReason::Truncated)?;
        at += 4;
        if label[2] & 0x01 == 0 {
            continue;
        }
        let body = &data[at..];
        return match body.first().map(|b| b >> 4) {
            None => Err(SkipReason::Truncated),
            Some(4) => Ok(Inner::Ether(ETHERTYPE_IPV4, body)),
            Some(6) => Ok(Inner::Ether(ETHERTYPE_IPV6, body)),
            Some(0) => Ok(Inner::Ethernet(body.get(4..).ok_or(SkipReason::Truncated)?)),
            Some(_) => Err(SkipReason::NonIp),
        };
    }
    Err(SkipReason::TunnelDepth)
}

/// A VXLAN header (8 bytes, I flag set), then an Ethernet frame.
pub fn vxlan(data: &[u8]) -> Result<Inner<'_>, SkipReason> {
    let h = data.get(..8).ok_or(SkipReason::Truncated)?;
    if h[0] & 0x08 == 0 {
        return Err(SkipReason::Tunnel);
    }
    Ok(Inner::Ethernet(&data[8..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_variants() {
        // No options, IPv4.
        assert_eq!(
            gre(&[0, 0, 8, 0, 0x45]),
            Ok(Inner::Ether(ETHERTYPE_IPV4, &[0x45][..]))
        );
        // Key and sequence, TEB.
        let f = [0x30, 0, 0x65, 0x58, 0, 0, 0, 1, 0, 0, 0, 2, 0xaa];
        assert_eq!(gre(&f), Ok(Inner::Ethernet(&[0xaa][..])));
        // Checksum, PPP with address/control and IPv6.
        let f = [
            0x80, 0, 0x88, 0x0b, 0, 0, 0, 0, 0xff, 0x03, 0x00, 0x57, 0x60,
        ];
        assert_eq!(gre(&f), Ok(Inner::Ether(ETHERTYPE_IPV6, &[0x60][..])));
        // Enhanced GRE (PPTP): key, sequence, ack, compressed PPP protocol.
        let f = [
            0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0x21, 0x45,
        ];
        assert_eq!(gre(&f), Ok(Inner::Ether(ETHERTYPE_IPV4, &[0x45][..])));
        assert_eq!(gre(&[0x40, 0, 8, 0]), Err(SkipReason::Tunnel));
        for n in 0..4 {
            assert_eq!(gre(&[0x30, 0, 0x65, 0x58][..n]), Err(SkipReason::Truncated));
        }
        assert_eq!(
            gre(&[0x30, 0, 0x65, 0x58, 0, 0, 0]),
            Err(SkipReason::Truncated)
        );
    }

    #[test]
    fn erspan_types() {
        // Type I: protocol 0x88be without a sequence number.
        assert_eq!(
            gre(&[0, 0, 0x88, 0xbe, 0xee]),
            Ok(Inner::Ethernet(&[0xee][..]))
        );
        // Type II: sequence number and an 8-byte header.
        let mut f = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
        f.extend_from_slice(&[0x10, 0, 0, 1, 0, 0, 0, 0, 0xee]);
        assert_eq!(gre(&f), Ok(Inner::Ethernet(&[0xee][..])));
        f.truncate(14);
        assert_eq!(gre(&f), Err(SkipReason::Truncated));
        // Type III with and without the platform subheader.
        let mut f = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 1];
        f.extend_from_slice(&[0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xee]);
        assert_eq!(gre(&f), Ok(Inner::Ethernet(&[0xee][..])));
        f[8 + 11] = 1;
        f.truncate(20);
        assert_eq!(gre(&f), Err(SkipReason::Truncated));
        f.extend_from_slice(&[0; 8]);
        f.push(0xee);
        assert_eq!(gre(&f), Ok(Inner::Ethernet(&[0xee][..])));
    }

    #[test]
    fn pppoe_and_mpls() {
        let f = [0x11, 0, 0, 1, 0, 3, 0x00, 0x21, 0x45, 0xff];
        assert_eq!(
            pppoe_session(&f),
            Ok(Inner::Ether(ETHERTYPE_IPV4, &[0x45][..]))
        );
        assert_eq!(pppoe_session(&f[..7]), Err(SkipReason::Truncated));
        let f = [0, 0, 0x10, 64, 0, 0, 0x21, 64, 0x60];
        assert_eq!(mpls(&f), Ok(Inner::Ether(ETHERTYPE_IPV6, &[0x60][..])));
        assert_eq!(mpls(&f[..8]), Err(SkipReason::Truncated));
        let f = [0, 0, 0x11, 64, 0, 0, 0, 0, 0xee];
        assert_eq!(mpls(&f), Ok(Inner::Ethernet(&[0xee][..])));
        assert_eq!(mpls(&[0u8; 40]), Err(SkipReason::TunnelDepth));
    }

    #[test]
    fn vxlan_header() {
        assert_eq!(
            vxlan(&[8, 0, 0, 0, 0, 0, 1, 0, 0xee]),
            Ok(Inner::Ethernet(&[0xee][..]))
        );
        assert_eq!(vxlan(&[0, 0, 0, 0, 0, 0, 1, 0]), Err(SkipReason::Tunnel));
        assert_eq!(vxlan(&[8, 0, 0]), Err(SkipReason::Truncated));
    }
}
