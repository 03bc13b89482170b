//! Is this packet SIP, RTCP, a UDP fragment, or none of these? Shared by both programs through
//! [`Packet`], which hides how bytes are read (`bpf_skb_load_bytes` or `bpf_xdp_load_bytes`).
//! Every loop is bounded so the verifier can see its end.

use hepcap_common::{
    Config, FLAG_RTCP_HEURISTIC, MATCH_FRAGMENT, MATCH_RTCP_HEURISTIC, MATCH_RTCP_MAP,
    MATCH_RTCP_RECENT, MATCH_SIP_CONTENT, MATCH_SIP_PORT, RtcpKey,
};

pub trait Packet {
    fn load<T: Copy>(&self, offset: usize) -> Option<T>;
    fn len(&self) -> u32;
}

pub enum Verdict {
    Skip,
    /// A HEPv3 datagram on a SIP port: counted, not copied.
    Hep,
    Unparsed,
    Copy(u8),
}

const ETH_HEADER: usize = 14;
const MAX_VLAN_TAGS: usize = 2;
const MAX_IPV6_EXTENSIONS: usize = 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

#[inline(always)]
fn be16<P: Packet>(p: &P, off: usize) -> Option<u16> {
    p.load::<[u8; 2]>(off).map(u16::from_be_bytes)
}

/// Addresses and where the transport header starts and the IP datagram ends.
struct Ip {
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    l4: usize,
    end: usize,
}

#[inline(always)]
pub fn classify<P: Packet>(
    p: &P,
    cfg: &Config,
    sip_port: fn(u16) -> bool,
    rtcp: fn(&RtcpKey) -> bool,
    recent_sip: fn(&Config) -> bool,
) -> Verdict {
    let Some(mut ether_type) = be16(p, 12) else {
        return Verdict::Unparsed;
    };
    let mut off = ETH_HEADER;
    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != 0x8100 && ether_type != 0x88a8 && ether_type != 0x9100 {
            break;
        }
        let Some(inner) = be16(p, off + 2) else {
            return Verdict::Unparsed;
        };
        ether_type = inner;
        off += 4;
    }
    let ip = match ether_type {
        0x0800 => ipv4(p, off),
        0x86dd => ipv6(p, off),
        _ => return Verdict::Skip,
    };
    match ip {
        Ok(ip) => transport(p, cfg, &ip, sip_port, rtcp, recent_sip),
        Err(v) => v,
    }
}

#[inline(always)]
fn ipv4<P: Packet>(p: &P, off: usize) -> Result<Ip, Verdict> {
    let Some(vihl) = p.load::<u8>(off) else {
        return Err(Verdict::Unparsed);
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let (Some(total), Some(frag), Some(proto), Some(s), Some(d)) = (
        be16(p, off + 2),
        be16(p, off + 6),
        p.load::<u8>(off + 9),
        p.load::<[u8; 4]>(off + 12),
        p.load::<[u8; 4]>(off + 16),
    ) else {
        return Err(Verdict::Unparsed);
    };
    if vihl >> 4 != 4 || ihl < 20 {
        return Err(Verdict::Unparsed);
    }
    // More-fragments set or a non-zero offset: user space reassembles the datagram.
    if frag & 0x3fff != 0 {
        return Err(if proto == PROTO_UDP {
            Verdict::Copy(MATCH_FRAGMENT)
        } else {
            Verdict::Skip
        });
    }
    Ok(Ip {
        src: mapped(s),
        dst: mapped(d),
        proto,
        l4: off + ihl,
        end: off + usize::from(total),
    })
}

#[inline(always)]
fn mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

#[inline(always)]
fn ipv6<P: Packet>(p: &P, off: usize) -> Result<Ip, Verdict> {
    let (Some(plen), Some(mut next), Some(src), Some(dst)) = (
        be16(p, off + 4),
        p.load::<u8>(off + 6),
        p.load::<[u8; 16]>(off + 8),
        p.load::<[u8; 16]>(off + 24),
    ) else {
        return Err(Verdict::Unparsed);
    };
    let mut l4 = off + 40;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units after the first.
            0 | 43 | 60 => {
                let (Some(nh), Some(len)) = (p.load::<u8>(l4), p.load::<u8>(l4 + 1)) else {
                    return Err(Verdict::Unparsed);
                };
                next = nh;
                l4 += (usize::from(len) + 1) * 8;
            }
            // Fragment header: every UDP fragment goes to user space for reassembly.
            44 => {
                let Some(nh) = p.load::<u8>(l4) else {
                    return Err(Verdict::Unparsed);
                };
                return Err(if nh == PROTO_UDP {
                    Verdict::Copy(MATCH_FRAGMENT)
                } else {
                    Verdict::Skip
                });
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => {
                let (Some(nh), Some(len)) = (p.load::<u8>(l4), p.load::<u8>(l4 + 1)) else {
                    return Err(Verdict::Unparsed);
                };
                next = nh;
                l4 += (usize::from(len) + 2) * 4;
            }
            _ => break,
        }
    }
    Ok(Ip {
        src,
        dst,
        proto: next,
        l4,
        end: off + 40 + usize::from(plen),
    })
}

#[inline(always)]
fn transport<P: Packet>(
    p: &P,
    cfg: &Config,
    ip: &Ip,
    sip_port: fn(u16) -> bool,
    rtcp: fn(&RtcpKey) -> bool,
    recent_sip: fn(&Config) -> bool,
) -> Verdict {
    let (Some(sport), Some(dport)) = (be16(p, ip.l4), be16(p, ip.l4 + 2)) else {
        return Verdict::Unparsed;
    };
    match ip.proto {
        PROTO_TCP => {
            let Some(doff) = p.load::<u8>(ip.l4 + 12) else {
                return Verdict::Unparsed;
            };
            let payload = ip.l4 + usize::from(doff >> 4) * 4;
            // Only segments with payload: the reassembler needs no bare ACKs.
            if payload < ip.end && (sip_port(sport) || sip_port(dport)) {
                Verdict::Copy(MATCH_SIP_PORT)
            } else {
                Verdict::Skip
            }
        }
        PROTO_UDP => {
            let payload = ip.l4 + 8;
            if payload >= ip.end {
                return Verdict::Skip;
            }
            if sip_port(sport) || sip_port(dport) {
                // A SIP server's HEP mirror leaves from its SIP socket: not SIP.
                if let Some(magic) = p.load::<[u8; 4]>(payload) {
                    if &magic == b"HEP3" || &magic == b"EEP3" {
                        return Verdict::Hep;
                    }
                }
                return Verdict::Copy(MATCH_SIP_PORT);
            }
            let src = RtcpKey {
                addr: ip.src,
                port: sport,
                _pad: [0; 2],
            };
            let dst = RtcpKey {
                addr: ip.dst,
                port: dport,
                _pad: [0; 2],
            };
            if rtcp(&dst) || rtcp(&src) {
                return Verdict::Copy(MATCH_RTCP_MAP);
            }
            let Some(head) = p.load::<[u8; 8]>(payload) else {
                // Shorter than any SIP start line or RTCP header.
                return Verdict::Skip;
            };
            if sip_start(&head) {
                return Verdict::Copy(MATCH_SIP_CONTENT);
            }
            if head[0] >> 6 == 2 && (200..=207).contains(&head[1]) {
                if cfg.flags & FLAG_RTCP_HEURISTIC != 0 {
                    return Verdict::Copy(MATCH_RTCP_HEURISTIC);
                }
                if recent_sip(cfg) {
                    return Verdict::Copy(MATCH_RTCP_RECENT);
                }
            }
            Verdict::Skip
        }
        _ => Verdict::Skip,
    }
}

/// A start-line prefix as (value, mask) over the payload's first 8 bytes read as a
/// little-endian u64: plain integers, so the table lives in .rodata without pointers (a table
/// of byte-string slices would hold relocated pointers the verifier cannot follow).
const fn prefix(p: &[u8]) -> (u64, u64) {
    let mut value = 0u64;
    let mut mask = 0u64;
    let mut i = 0;
    while i < p.len() && i < 8 {
        value |= (p[i] as u64) << (8 * i);
        mask |= 0xffu64 << (8 * i);
        i += 1;
    }
    (value, mask)
}

const PREFIXES: [(u64, u64); 15] = [
    prefix(b"SIP/2.0 "),
    prefix(b"INVITE "),
    prefix(b"ACK "),
    prefix(b"BYE "),
    prefix(b"CANCEL "),
    prefix(b"OPTIONS "),
    prefix(b"REGISTER"),
    prefix(b"PRACK "),
    prefix(b"SUBSCRIB"),
    prefix(b"NOTIFY "),
    prefix(b"PUBLISH "),
    prefix(b"INFO "),
    prefix(b"REFER "),
    prefix(b"MESSAGE "),
    prefix(b"UPDATE "),
];

/// The first 8 bytes of a SIP request or status line.
#[inline(always)]
fn sip_start(h: &[u8; 8]) -> bool {
    let word = u64::from_le_bytes(*h);
    let mut i = 0;
    while i < PREFIXES.len() {
        let (value, mask) = PREFIXES[i];
        if word & mask == value {
            return true;
        }
        i += 1;
    }
    false
}
