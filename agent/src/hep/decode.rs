//! HEPv3 decoder: a validated, borrowed view over one packet (hep.md §1.3).
//!
//! Validation follows what Homer requires (hep.md §1.4): the `HEP3` (or `EEP3`) magic, a total
//! length equal to the bytes given, every chunk at least 6 bytes and inside the packet, and the
//! fixed-size generic chunks of exactly their size (`chunk::fixed_body_len`). Only vendor 0
//! chunks are interpreted; chunks of other vendors and unknown generic types are kept, with
//! every other chunk, in wire order as opaque `(vendor, type, body)` views for relaying.
//!
//! Nothing is copied: every byte field borrows the packet. A compressed payload (chunk 0x0010)
//! is exposed as is; [`Hep3::inflated_payload`] inflates it under a size limit.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::chunk::{self, HEADER_LEN, PACKET_HEADER_LEN, fixed_body_len};
use super::inflate::inflate;
use super::{DecodeError, HepVersion};

/// One chunk as it appeared on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Offset of the chunk header from the start of the packet.
    pub offset: usize,
    pub vendor: u16,
    pub chunk_type: u16,
    pub body: &'a [u8],
}

/// A decoded HEP3 packet: the typed generic chunks plus every chunk in order.
///
/// When a generic chunk appears more than once, the typed field holds the last one; `chunks`
/// holds them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hep3<'a> {
    /// The packet id as sent: `HEP3` or `EEP3`.
    pub magic: [u8; 4],
    pub ip_family: Option<u8>,
    pub ip_proto: Option<u8>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub ts_sec: Option<u32>,
    pub ts_usec: Option<u32>,
    pub proto_type: Option<u8>,
    pub capture_id: Option<u32>,
    /// Keep-alive timer in seconds (0x000d); defined by the spec, unused by senders.
    pub keep_alive: Option<u16>,
    pub auth_key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// Chunk 0x0010 as sent (zlib, gzip or raw deflate); see [`Hep3::inflated_payload`].
    pub compressed_payload: Option<Chunk<'a>>,
    pub correlation_id: Option<&'a [u8]>,
    pub vlan: Option<u16>,
    pub node_name: Option<&'a [u8]>,
    /// Source MAC; the 48-bit address is in the low bits.
    pub src_mac: Option<u64>,
    pub dst_mac: Option<u64>,
    pub eth_type: Option<u16>,
    pub tcp_flags: Option<u8>,
    pub ip_tos: Option<u8>,
    /// MOS × 100.
    pub mos: Option<u16>,
    pub r_factor: Option<u16>,
    pub geo_location: Option<&'a [u8]>,
    pub jitter: Option<u32>,
    pub transaction_type: Option<&'a [u8]>,
    pub payload_json_keys: Option<&'a [u8]>,
    pub tags_values: Option<&'a [u8]>,
    pub tag_type: Option<u16>,
    pub event_type: Option<u16>,
    pub group_id: Option<&'a [u8]>,
    /// Every chunk, typed or not, in wire order.
    pub chunks: Vec<Chunk<'a>>,
}

/// Decodes one whole HEP3 packet.
pub fn decode_v3(packet: &[u8]) -> Result<Hep3<'_>, DecodeError> {
    let Some((header, _)) = packet.split_first_chunk::<PACKET_HEADER_LEN>() else {
        return Err(DecodeError::Truncated {
            version: HepVersion::V3,
            needed: PACKET_HEADER_LEN,
            available: packet.len(),
        });
    };
    let magic = [header[0], header[1], header[2], header[3]];
    if !chunk::has_magic(&magic) {
        return Err(DecodeError::BadMagic { magic });
    }
    let declared = usize::from(u16::from_be_bytes([header[4], header[5]]));
    if declared != packet.len() {
        return Err(DecodeError::Length {
            declared,
            actual: packet.len(),
        });
    }

    let mut hep = Hep3 {
        magic,
        ..Hep3::default()
    };
    let mut offset = PACKET_HEADER_LEN;
    while offset < packet.len() {
        let rest = &packet[offset..];
        let Some((h, _)) = rest.split_first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::ChunkLength {
                offset,
                declared: HEADER_LEN,
                available: rest.len(),
            });
        };
        let vendor = u16::from_be_bytes([h[0], h[1]]);
        let chunk_type = u16::from_be_bytes([h[2], h[3]]);
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let Some(body) = rest.get(HEADER_LEN..len).filter(|_| len >= HEADER_LEN) else {
            return Err(DecodeError::ChunkLength {
                offset,
                declared: len,
                available: rest.len(),
            });
        };
        let c = Chunk {
            offset,
            vendor,
            chunk_type,
            body,
        };
        if vendor == 0 {
            hep.apply(c)?;
        }
        hep.chunks.push(c);
        offset += len;
    }
    Ok(hep)
}

impl<'a> Hep3<'a> {
    /// Stores a generic chunk after checking the size of the fixed-size types.
    fn apply(&mut self, c: Chunk<'a>) -> Result<(), DecodeError> {
        let body = c.body;
        if let Some(expected) = fixed_body_len(c.chunk_type)
            && body.len() != expected
        {
            return Err(DecodeError::ChunkSize {
                offset: c.offset,
                chunk_type: c.chunk_type,
                expected,
                actual: body.len(),
            });
        }
        // The sizes of the fixed types are exact from here on, so the readers below only see
        // bodies of their own width; they still read with checked slicing.
        match c.chunk_type {
            chunk::IP_FAMILY => self.ip_family = u8_of(body),
            chunk::IP_PROTO => self.ip_proto = u8_of(body),
            chunk::SRC_IP4 => self.src_ip = ipv4(body),
            chunk::DST_IP4 => self.dst_ip = ipv4(body),
            chunk::SRC_IP6 => self.src_ip = ipv6(body),
            chunk::DST_IP6 => self.dst_ip = ipv6(body),
            chunk::SRC_PORT => self.src_port = be16(body),
            chunk::DST_PORT => self.dst_port = be16(body),
            chunk::TS_SEC => self.ts_sec = be32(body),
            chunk::TS_USEC => self.ts_usec = be32(body),
            chunk::PROTO_TYPE => self.proto_type = u8_of(body),
            chunk::CAPTURE_ID => self.capture_id = be32(body),
            chunk::KEEP_ALIVE => self.keep_alive = be16(body),
            chunk::AUTH_KEY => self.auth_key = Some(body),
            chunk::PAYLOAD => self.payload = Some(body),
            chunk::COMPRESSED_PAYLOAD => self.compressed_payload = Some(c),
            chunk::CORRELATION_ID => self.correlation_id = Some(body),
            chunk::VLAN_ID => self.vlan = be16(body),
            chunk::NODE_NAME => self.node_name = Some(body),
            chunk::SRC_MAC => self.src_mac = be64(body),
            chunk::DST_MAC => self.dst_mac = be64(body),
            chunk::ETH_TYPE => self.eth_type = be16(body),
            chunk::TCP_FLAGS => self.tcp_flags = u8_of(body),
            chunk::IP_TOS => self.ip_tos = u8_of(body),
            chunk::MOS => self.mos = be16(body),
            chunk::R_FACTOR => self.r_factor = be16(body),
            chunk::GEO_LOCATION => self.geo_location = Some(body),
            chunk::JITTER => self.jitter = be32(body),
            chunk::TRANSACTION_TYPE => self.transaction_type = Some(body),
            chunk::PAYLOAD_JSON_KEYS => self.payload_json_keys = Some(body),
            chunk::TAGS_VALUES => self.tags_values = Some(body),
            chunk::TAG_TYPE => self.tag_type = be16(body),
            chunk::EVENT_TYPE => self.event_type = be16(body),
            chunk::GROUP_ID => self.group_id = Some(body),
            // Reserved and future generic types stay in `chunks` only.
            _ => {}
        }
        Ok(())
    }

    /// Protocol type 0: heplify's keep-alive "ping", counted but never relayed (hep.md §1.8.4).
    pub fn is_keepalive(&self) -> bool {
        self.proto_type == Some(0)
    }

    /// The captured payload: chunk 0x000f as is, or else chunk 0x0010 inflated to at most
    /// `max_len` bytes. `None` when the packet carries neither.
    pub fn inflated_payload(&self, max_len: usize) -> Result<Option<Cow<'a, [u8]>>, DecodeError> {
        if let Some(p) = self.payload {
            return Ok(Some(Cow::Borrowed(p)));
        }
        let Some(c) = self.compressed_payload else {
            return Ok(None);
        };
        inflate(c.body, max_len)
            .map(|v| Some(Cow::Owned(v)))
            .map_err(|cause| DecodeError::Decompress {
                offset: c.offset,
                compressed_len: c.body.len(),
                cause,
            })
    }
}

fn u8_of(b: &[u8]) -> Option<u8> {
    b.first().copied()
}

fn be16(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(*b.first_chunk()?))
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(*b.first_chunk()?))
}

fn be64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(*b.first_chunk()?))
}

fn ipv4(b: &[u8]) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::from(*b.first_chunk::<4>()?)))
}

fn ipv6(b: &[u8]) -> Option<IpAddr> {
    Some(IpAddr::V6(Ipv6Addr::from(*b.first_chunk::<16>()?)))
}
