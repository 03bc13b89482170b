//! Frame builders for the synthetic captures: link headers, IPv4/IPv6 (with extension
//! headers) and UDP, with correct lengths and checksums so that tshark decodes them as a real
//! stack would have sent them.
//!
//! Everything is written big-endian as on the wire (RFC 791, RFC 8200, RFC 768), except the
//! BSD loopback family of LINKTYPE_NULL, which is in the capturing host's byte order.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use anyhow::Context;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

const IPPROTO_UDP: u8 = 17;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_DEST_OPTS: u8 = 60;

/// An IPv6 extension header placed between the fixed header and UDP.
#[derive(Clone, Debug)]
pub enum Ipv6Ext {
    /// Hop-by-Hop Options with one PadN option (8 bytes).
    HopByHop,
    /// Routing header of `routing_type` with segments left 0 and the given addresses
    /// (type 0: RFC 2460, deprecated by RFC 5095; type 2: Mobile IPv6 home address, RFC 6275).
    Routing {
        routing_type: u8,
        addresses: Vec<Ipv6Addr>,
    },
    /// Destination Options with one PadN option (8 bytes).
    DestinationOptions,
}

impl Ipv6Ext {
    fn protocol_number(&self) -> u8 {
        match self {
            Ipv6Ext::HopByHop => IPV6_HOP_BY_HOP,
            Ipv6Ext::Routing { .. } => IPV6_ROUTING,
            Ipv6Ext::DestinationOptions => IPV6_DEST_OPTS,
        }
    }

    /// The header bytes with `next` as its Next Header; always a multiple of 8 bytes.
    fn encode(&self, next: u8) -> anyhow::Result<Vec<u8>> {
        // PadN of 4 data bytes fills the 6 bytes after Next Header and Hdr Ext Len.
        const PADN_4: [u8; 6] = [1, 4, 0, 0, 0, 0];
        let mut out = vec![next, 0];
        match self {
            Ipv6Ext::HopByHop | Ipv6Ext::DestinationOptions => out.extend_from_slice(&PADN_4),
            Ipv6Ext::Routing {
                routing_type,
                addresses,
            } => {
                // Hdr Ext Len counts 8-byte units after the first 8 bytes.
                out[1] = u8::try_from(addresses.len() * 2).context("too many routing addresses")?;
                out.extend_from_slice(&[*routing_type, 0, 0, 0, 0, 0]);
                for address in addresses {
                    out.extend_from_slice(&address.octets());
                }
            }
        }
        Ok(out)
    }
}

/// One UDP datagram as the IP layer carries it.
#[derive(Clone, Debug)]
pub struct Datagram<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// IPv4 Identification (ignored for IPv6).
    pub ip_id: u16,
    /// IPv6 extension headers, in order (ignored for IPv4).
    pub ipv6_ext: &'a [Ipv6Ext],
    pub payload: &'a [u8],
}

impl Datagram<'_> {
    /// EtherType of the network layer.
    pub fn ether_type(&self) -> u16 {
        match self.src.ip() {
            IpAddr::V4(_) => ETHERTYPE_IPV4,
            IpAddr::V6(_) => ETHERTYPE_IPV6,
        }
    }

    /// The IP packet: header(s), UDP header and payload.
    pub fn to_ip(&self) -> anyhow::Result<Vec<u8>> {
        let udp_len = u16::try_from(8 + self.payload.len()).context("UDP payload too large")?;
        let mut udp = Vec::with_capacity(usize::from(udp_len));
        udp.extend_from_slice(&self.src.port().to_be_bytes());
        udp.extend_from_slice(&self.dst.port().to_be_bytes());
        udp.extend_from_slice(&udp_len.to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(self.payload);

        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut pseudo = Vec::with_capacity(12);
                pseudo.extend_from_slice(&src.octets());
                pseudo.extend_from_slice(&dst.octets());
                pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
                pseudo.extend_from_slice(&udp_len.to_be_bytes());
                set_udp_checksum(&mut udp, &pseudo);

                let total = u16::try_from(20 + udp.len()).context("IPv4 packet too large")?;
                let mut ip = Vec::with_capacity(usize::from(total));
                ip.extend_from_slice(&[0x45, 0]);
                ip.extend_from_slice(&total.to_be_bytes());
                ip.extend_from_slice(&self.ip_id.to_be_bytes());
                // Flags: Don't Fragment; offset 0.
                ip.extend_from_slice(&[0x40, 0x00, 64, IPPROTO_UDP, 0, 0]);
                ip.extend_from_slice(&src.octets());
                ip.extend_from_slice(&dst.octets());
                let sum = checksum(&[&ip]);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                ip.extend_from_slice(&udp);
                Ok(ip)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let mut pseudo = Vec::with_capacity(40);
                pseudo.extend_from_slice(&src.octets());
                pseudo.extend_from_slice(&dst.octets());
                pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_UDP]);
                set_udp_checksum(&mut udp, &pseudo);

                let mut ext = Vec::new();
                for (i, header) in self.ipv6_ext.iter().enumerate() {
                    let next = self
                        .ipv6_ext
                        .get(i + 1)
                        .map_or(IPPROTO_UDP, Ipv6Ext::protocol_number);
                    ext.extend_from_slice(&header.encode(next)?);
                }
                let first = self
                    .ipv6_ext
                    .first()
                    .map_or(IPPROTO_UDP, Ipv6Ext::protocol_number);
                let payload_len =
                    u16::try_from(ext.len() + udp.len()).context("IPv6 payload too large")?;

                let mut ip = Vec::with_capacity(40 + usize::from(payload_len));
                ip.extend_from_slice(&[0x60, 0, 0, 0]);
                ip.extend_from_slice(&payload_len.to_be_bytes());
                ip.extend_from_slice(&[first, 64]);
                ip.extend_from_slice(&src.octets());
                ip.extend_from_slice(&dst.octets());
                ip.extend_from_slice(&ext);
                ip.extend_from_slice(&udp);
                Ok(ip)
            }
            _ => anyhow::bail!("mixed IPv4/IPv6 endpoints {} -> {}", self.src, self.dst),
        }
    }
}

/// Fills the UDP checksum (bytes 6..8) over the pseudo-header and the datagram.
fn set_udp_checksum(udp: &mut [u8], pseudo: &[u8]) {
    let sum = match checksum(&[pseudo, udp]) {
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`, each of even length
/// except possibly the last.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = match pair {
                [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                [hi] => u16::from_be_bytes([*hi, 0]),
                _ => 0,
            };
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The fold above leaves at most 16 bits.
    !(sum as u16)
}

/// An Ethernet II frame; `tags` are (TPID, VLAN id) from outermost to innermost.
pub fn ethernet(
    dst: [u8; 6],
    src: [u8; 6],
    tags: &[(u16, u16)],
    ether_type: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    for (tpid, vid) in tags {
        frame.extend_from_slice(&tpid.to_be_bytes());
        // PCP 0, DEI 0, 12-bit VLAN id.
        frame.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 16-byte header).
pub fn linux_sll(packet_type: u16, src_mac: [u8; 6], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    const ARPHRD_ETHER: u16 = 1;
    let mut frame = Vec::with_capacity(16 + payload.len());
    frame.extend_from_slice(&packet_type.to_be_bytes());
    frame.extend_from_slice(&ARPHRD_ETHER.to_be_bytes());
    frame.extend_from_slice(&6u16.to_be_bytes());
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 20-byte header, protocol first).
pub fn linux_sll2(
    ether_type: u16,
    if_index: u32,
    packet_type: u8,
    src_mac: [u8; 6],
    payload: &[u8],
) -> Vec<u8> {
    const ARPHRD_ETHER: u16 = 1;
    let mut frame = Vec::with_capacity(20 + payload.len());
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&if_index.to_be_bytes());
    frame.extend_from_slice(&ARPHRD_ETHER.to_be_bytes());
    frame.extend_from_slice(&[packet_type, 6]);
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// BSD loopback (LINKTYPE_NULL): the address family in the writer's byte order, here
/// little-endian as written by an x86 host.
pub fn bsd_null_le(family: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = family.to_le_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// OpenBSD loopback (LINKTYPE_LOOP): the address family in network byte order.
pub fn openbsd_loop(family: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = family.to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_checksum_verifies_and_udp_length_matches() {
        let payload = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n";
        let d = Datagram {
            src: "192.0.2.1:5060".parse().unwrap(),
            dst: "192.0.2.2:5060".parse().unwrap(),
            ip_id: 7,
            ipv6_ext: &[],
            payload,
        };
        let ip = d.to_ip().unwrap();
        assert_eq!(checksum(&[&ip[..20]]), 0, "IPv4 header checksum verifies");
        assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
        assert_eq!(
            usize::from(u16::from_be_bytes([ip[24], ip[25]])),
            8 + payload.len()
        );
    }

    #[test]
    fn ipv6_extension_chain_links_next_headers() {
        let ext = [
            Ipv6Ext::HopByHop,
            Ipv6Ext::Routing {
                routing_type: 0,
                addresses: vec!["2001:db8::9".parse().unwrap()],
            },
            Ipv6Ext::DestinationOptions,
        ];
        let d = Datagram {
            src: "[2001:db8::1]:5060".parse().unwrap(),
            dst: "[2001:db8::2]:5060".parse().unwrap(),
            ip_id: 0,
            ipv6_ext: &ext,
            payload: b"x",
        };
        let ip = d.to_ip().unwrap();
        assert_eq!(ip[6], IPV6_HOP_BY_HOP);
        assert_eq!(ip[40], IPV6_ROUTING);
        assert_eq!(ip[48], IPV6_DEST_OPTS);
        assert_eq!(ip[48 + 24], IPPROTO_UDP);
        assert_eq!(
            usize::from(u16::from_be_bytes([ip[4], ip[5]])),
            ip.len() - 40
        );
    }
}
