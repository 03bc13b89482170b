//! Link layers of captures (LINKTYPE_* values of pcap/pcapng) down to the network layer.
//!
//! Each function is a checked view: it returns the EtherType of what follows, the bytes that
//! follow and the outermost VLAN id, or `Truncated`. VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8,
//! the pre-standard QinQ 0x9100) are followed up to [`MAX_VLAN_TAGS`] deep.

use super::skip::SkipReason;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
pub const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
pub const ETHERTYPE_MPLS: u16 = 0x8847;
pub const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
pub const ETHERTYPE_TEB: u16 = 0x6558;
pub const ETHERTYPE_ERSPAN_II: u16 = 0x88be;
pub const ETHERTYPE_ERSPAN_III: u16 = 0x22eb;

/// Deepest VLAN stack the decoder follows (QinQ plus one).
pub const MAX_VLAN_TAGS: usize = 3;

/// Link types hepcap reads, by their LINKTYPE/DLT number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// 1: Ethernet II.
    Ethernet,
    /// 0: BSD loopback, address family in the capturing host's byte order.
    Null,
    /// 108: OpenBSD loopback, address family in network byte order.
    Loop,
    /// 101, 12, 14: raw IPv4 or IPv6, version from the first nibble.
    Raw,
    /// 113: Linux cooked capture v1.
    LinuxSll,
    /// 276: Linux cooked capture v2.
    LinuxSll2,
    /// 228: raw IPv4.
    Ipv4,
    /// 229: raw IPv6.
    Ipv6,
    /// 239: Linux NFLOG, the packet in a TLV of the netlink log message.
    Nflog,
}

/// A link type hepcap does not decode.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[error("unsupported link type {0}")]
pub struct UnsupportedLinkType(pub i32);

impl LinkType {
    /// Maps a LINKTYPE/DLT number; both numbering schemes agree on every value listed.
    pub fn from_linktype(value: i32) -> Result<Self, UnsupportedLinkType> {
        Ok(match value {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            239 => LinkType::Nflog,
            276 => LinkType::LinuxSll2,
            other => return Err(UnsupportedLinkType(other)),
        })
    }
}

/// What a link layer hands to the network layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetFrame<'a> {
    pub ether_type: u16,
    pub data: &'a [u8],
    pub vlan: Option<u16>,
}

/// Strips the link header of `frame`.
pub fn strip(link: LinkType, frame: &[u8]) -> Result<NetFrame<'_>, SkipReason> {
    match link {
        LinkType::Ethernet => {
            let header = frame.get(..14).ok_or(SkipReason::Truncated)?;
            vlan_chain(be16(&header[12..]), &frame[14..])
        }
        LinkType::LinuxSll => {
            let header = frame.get(..16).ok_or(SkipReason::Truncated)?;
            vlan_chain(be16(&header[14..]), &frame[16..])
        }
        LinkType::LinuxSll2 => {
            let header = frame.get(..20).ok_or(SkipReason::Truncated)?;
            vlan_chain(be16(&header[0..]), &frame[20..])
        }
        LinkType::Null | LinkType::Loop => {
            let header = frame.get(..4).ok_or(SkipReason::Truncated)?;
            let raw = [header[0], header[1], header[2], header[3]];
            let family = if link == LinkType::Loop {
                u32::from_be_bytes(raw)
            } else {
                // The writer's byte order: a family number fits in the low 16 bits.
                let le = u32::from_le_bytes(raw);
                if le > 0xffff {
                    u32::from_be_bytes(raw)
                } else {
                    le
                }
            };
            let ether_type = match family {
                2 => ETHERTYPE_IPV4,
                // AF_INET6 differs per OS: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30.
                10 | 24 | 28 | 30 => ETHERTYPE_IPV6,
                _ => return Err(SkipReason::NonIp),
            };
            Ok(NetFrame {
                ether_type,
                data: &frame[4..],
                vlan: None,
            })
        }
        LinkType::Raw => {
            let first = frame.first().ok_or(SkipReason::Truncated)?;
            let ether_type = match first >> 4 {
                4 => ETHERTYPE_IPV4,
                6 => ETHERTYPE_IPV6,
                _ => return Err(SkipReason::MalformedIp),
            };
            Ok(NetFrame {
                ether_type,
                data: frame,
                vlan: None,
            })
        }
        LinkType::Ipv4 => Ok(NetFrame {
            ether_type: ETHERTYPE_IPV4,
            data: frame,
            vlan: None,
        }),
        LinkType::Ipv6 => Ok(NetFrame {
            ether_type: ETHERTYPE_IPV6,
            data: frame,
            vlan: None,
        }),
        LinkType::Nflog => nflog(frame),
    }
}

/// NFLOG TLV type of the packet payload (NFULA_PAYLOAD).
const NFULA_PAYLOAD: u16 = 9;

/// An NFLOG record: family, version, resource id, then TLVs whose length and type are in the
/// capturing host's byte order (little-endian on every host NFLOG captures come from), each
/// padded to four bytes. The payload TLV holds the IP packet.
fn nflog(frame: &[u8]) -> Result<NetFrame<'_>, SkipReason> {
    let header = frame.get(..4).ok_or(SkipReason::Truncated)?;
    let ether_type = match header[0] {
        2 => ETHERTYPE_IPV4,
        10 => ETHERTYPE_IPV6,
        _ => return Err(SkipReason::NonIp),
    };
    let mut at = 4;
    while let Some(tlv) = frame.get(at..at + 4) {
        let len = usize::from(u16::from_le_bytes([tlv[0], tlv[1]]));
        let kind = u16::from_le_bytes([tlv[2], tlv[3]]) & 0x7fff;
        if len < 4 {
            return Err(SkipReason::Truncated);
        }
        let value = frame.get(at + 4..at + len).ok_or(SkipReason::Truncated)?;
        if kind == NFULA_PAYLOAD {
            return Ok(NetFrame {
                ether_type,
                data: value,
                vlan: None,
            });
        }
        at += len.div_ceil(4) * 4;
    }
    Err(SkipReason::NonIp)
}

/// Follows VLAN tags from `ether_type`; the first (outermost) tag's id is kept.
fn vlan_chain(mut ether_type: u16, mut data: &[u8]) -> Result<NetFrame<'_>, SkipReason> {
    let mut vlan = None;
    let mut depth = 0;
    while matches!(
        ether_type,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        if depth == MAX_VLAN_TAGS {
            return Err(SkipReason::VlanDepth);
        }
        let tag = data.get(..4).ok_or(SkipReason::Truncated)?;
        vlan.get_or_insert(be16(tag) & 0x0fff);
        ether_type = be16(&tag[2..]);
        data = &data[4..];
        depth += 1;
    }
    Ok(NetFrame {
        ether_type,
        data,
        vlan,
    })
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qinq_keeps_outer_id() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[
            0x88, 0xa8, 0x20, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00, 0x45,
        ]);
        let n = strip(LinkType::Ethernet, &f).unwrap();
        assert_eq!(n.vlan, Some(100));
        assert_eq!(n.ether_type, ETHERTYPE_IPV4);
        assert_eq!(n.data, &[0x45]);
    }

    #[test]
    fn vlan_depth_bounded() {
        let mut f = vec![0u8; 12];
        for _ in 0..4 {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        assert_eq!(strip(LinkType::Ethernet, &f), Err(SkipReason::VlanDepth));
    }

    #[test]
    fn null_both_byte_orders() {
        assert_eq!(
            strip(LinkType::Null, &[2, 0, 0, 0, 0x45])
                .unwrap()
                .ether_type,
            ETHERTYPE_IPV4
        );
        assert_eq!(
            strip(LinkType::Null, &[0, 0, 0, 30, 0x60])
                .unwrap()
                .ether_type,
            ETHERTYPE_IPV6
        );
        assert_eq!(
            strip(LinkType::Loop, &[0, 0, 0, 2]).unwrap().ether_type,
            ETHERTYPE_IPV4
        );
    }

    #[test]
    fn truncations() {
        for link in [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::Null,
        ] {
            assert_eq!(strip(link, &[0u8; 3]), Err(SkipReason::Truncated));
        }
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert_eq!(strip(LinkType::Ethernet, &f), Err(SkipReason::Truncated));
    }

    #[test]
    fn link_type_numbers() {
        assert_eq!(LinkType::from_linktype(276), Ok(LinkType::LinuxSll2));
        assert_eq!(LinkType::from_linktype(105), Err(UnsupportedLinkType(105)));
        assert_eq!(LinkType::from_linktype(239), Ok(LinkType::Nflog));
    }

    /// AF_INET, version 0, resource 0; a prefix TLV (type 10, "x" padded), a payload TLV.
    const NFLOG_FRAME: &[u8] = &[
        2, 0, 0, 0, 5, 0, 10, 0, b'x', 0, 0, 0, 6, 0, 9, 0, 0x45, 0x00,
    ];

    #[test]
    fn nflog_payload_tlv() {
        let n = strip(LinkType::Nflog, NFLOG_FRAME).unwrap();
        assert_eq!((n.ether_type, n.data), (ETHERTYPE_IPV4, &[0x45, 0][..]));
        for cut in 0..NFLOG_FRAME.len() {
            assert!(
                strip(LinkType::Nflog, &NFLOG_FRAME[..cut]).is_err(),
                "{cut}"
            );
        }
    }
}
