//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers as checked views: addresses, the upper-layer
//! protocol, its bytes, and the fragment fields when the packet is a fragment.
//!
//! The view trims to the header's total length (link padding is not payload); a zero IPv4
//! total length (TCP segmentation offload on the capturing host) or IPv6 payload length (a
//! jumbogram) means "up to the end of the frame".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::skip::SkipReason;

pub const PROTO_HOP_BY_HOP: u8 = 0;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_IPV6: u8 = 41;
pub const PROTO_ROUTING: u8 = 43;
pub const PROTO_FRAGMENT: u8 = 44;
pub const PROTO_GRE: u8 = 47;
pub const PROTO_AH: u8 = 51;
pub const PROTO_DEST_OPTS: u8 = 60;
pub const PROTO_SCTP: u8 = 132;

/// Extension headers walked before giving up.
const MAX_EXTENSIONS: usize = 8;

/// Fragment fields of a packet that is part of a larger datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentInfo {
    pub id: u32,
    /// Byte offset of this fragment's data.
    pub offset: usize,
    pub more: bool,
}

/// An IP packet's addresses, protocol and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpView<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol; for an IPv6 fragment, the Fragment header's next header.
    pub protocol: u8,
    pub payload: &'a [u8],
    pub fragment: Option<FragmentInfo>,
}

/// Parses an IPv4 or IPv6 packet by its version nibble.
pub fn parse(data: &[u8]) -> Result<IpView<'_>, SkipReason> {
    match data.first().map(|b| b >> 4) {
        None => Err(SkipReason::Truncated),
        Some(4) => parse_v4(data),
        Some(6) => parse_v6(data),
        Some(_) => Err(SkipReason::MalformedIp),
    }
}

fn parse_v4(data: &[u8]) -> Result<IpView<'_>, SkipReason> {
    let h = data.get(..20).ok_or(SkipReason::Truncated)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(SkipReason::MalformedIp);
    }
    let total = match usize::from(u16::from_be_bytes([h[2], h[3]])) {
        0 => data.len(),
        n => n,
    };
    if total < ihl {
        return Err(SkipReason::MalformedIp);
    }
    if data.len() < total {
        return Err(SkipReason::Truncated);
    }
    let flags_offset = u16::from_be_bytes([h[6], h[7]]);
    let more = flags_offset & 0x2000 != 0;
    let offset = usize::from(flags_offset & 0x1fff) * 8;
    let fragment = (more || offset > 0).then_some(FragmentInfo {
        id: u32::from(u16::from_be_bytes([h[4], h[5]])),
        offset,
        more,
    });
    Ok(IpView {
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        protocol: h[9],
        payload: &data[ihl..total],
        fragment,
    })
}

fn parse_v6(data: &[u8]) -> Result<IpView<'_>, SkipReason> {
    let h = data.get(..40).ok_or(SkipReason::Truncated)?;
    let end = match usize::from(u16::from_be_bytes([h[4], h[5]])) {
        0 => data.len(),
        n => 40 + n,
    };
    if data.len() < end {
        return Err(SkipReason::Truncated);
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    let mut view = IpView {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        protocol: h[6],
        payload: &data[40..end],
        fragment: None,
    };

    for _ in 0..MAX_EXTENSIONS {
        match view.protocol {
            PROTO_HOP_BY_HOP | PROTO_ROUTING | PROTO_DEST_OPTS | PROTO_AH => {
                let (next, rest) = skip_extension(view.protocol, view.payload)?;
                view.protocol = next;
                view.payload = rest;
            }
            PROTO_FRAGMENT => {
                let f = view.payload.get(..8).ok_or(SkipReason::Truncated)?;
                let word = u16::from_be_bytes([f[2], f[3]]);
                let offset = usize::from(word & 0xfff8);
                let more = word & 1 != 0;
                view.protocol = f[0];
                view.payload = &view.payload[8..];
                // An atomic fragment (RFC 6946) is a whole datagram: keep walking.
                if offset > 0 || more {
                    view.fragment = Some(FragmentInfo {
                        id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
                        offset,
                        more,
                    });
                    return Ok(view);
                }
            }
            _ => return Ok(view),
        }
    }
    Err(SkipReason::MalformedIp)
}

/// Walks IPv6 extension headers at the start of a reassembled payload.
pub fn skip_v6_extensions(mut protocol: u8, mut data: &[u8]) -> Result<(u8, &[u8]), SkipReason> {
    for _ in 0..MAX_EXTENSIONS {
        match protocol {
            PROTO_HOP_BY_HOP | PROTO_ROUTING | PROTO_DEST_OPTS | PROTO_AH => {
                (protocol, data) = skip_extension(protocol, data)?;
            }
            _ => return Ok((protocol, data)),
        }
    }
    Err(SkipReason::MalformedIp)
}

fn skip_extension(protocol: u8, data: &[u8]) -> Result<(u8, &[u8]), SkipReason> {
    let [next, len, ..] = *data else {
        return Err(SkipReason::Truncated);
    };
    let size = if protocol == PROTO_AH {
        (usize::from(len) + 2) * 4
    } else {
        (usize::from(len) + 1) * 8
    };
    let rest = data.get(size..).ok_or(SkipReason::Truncated)?;
    Ok((next, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4, 20-byte header, total length 24, MF set, offset 0, id 0x1234, UDP.
    const V4_FIRST_FRAGMENT: &[u8] = &[
        0x45, 0, 0, 24, 0x12, 0x34, 0x20, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 1, 2, 3, 4,
    ];

    #[test]
    fn v4_fragment_fields() {
        let v = parse(V4_FIRST_FRAGMENT).unwrap();
        assert_eq!(v.payload, &[1, 2, 3, 4]);
        assert_eq!(
            v.fragment,
            Some(FragmentInfo {
                id: 0x1234,
                offset: 0,
                more: true
            })
        );
    }

    #[test]
    fn v4_every_truncation() {
        for n in 0..V4_FIRST_FRAGMENT.len() {
            assert_eq!(
                parse(&V4_FIRST_FRAGMENT[..n]),
                Err(SkipReason::Truncated),
                "{n}"
            );
        }
    }

    #[test]
    fn v6_fragment_header() {
        let mut p = vec![0x60, 0, 0, 0, 0, 12, 44, 64];
        p.extend_from_slice(&[0; 32]);
        p.extend_from_slice(&[17, 0, 0x05, 0xa9, 0, 0, 0, 7, 9, 9, 9, 9]);
        let v = parse(&p).unwrap();
        assert_eq!(v.protocol, 17);
        assert_eq!(
            v.fragment,
            Some(FragmentInfo {
                id: 7,
                offset: 181 * 8,
                more: true
            })
        );
        assert_eq!(v.payload, &[9, 9, 9, 9]);
        for n in 0..p.len() {
            assert!(parse(&p[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn v6_atomic_fragment_is_whole() {
        let mut p = vec![0x60, 0, 0, 0, 0, 10, 44, 64];
        p.extend_from_slice(&[0; 32]);
        p.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 7, 1, 2]);
        let v = parse(&p).unwrap();
        assert_eq!(
            (v.protocol, v.fragment, v.payload),
            (17, None, &[1u8, 2][..])
        );
    }
}
