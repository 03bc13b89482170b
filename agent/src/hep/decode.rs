//! HEPv3 decoder: a validated view over one packet.
//!
//! Validation follows what Homer requires (hep.md §1.4): the `HEP3` (or `EEP3`) magic, a total
//! length equal to the bytes given, every chunk at least 6 bytes and inside the packet, and the
//! fixed-size generic chunks of exactly their size. Chunks of other vendors and unknown generic
//! types are kept, in order, as opaque bodies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::chunk::{self, HEADER_LEN, PACKET_HEADER_LEN, fixed_body_len};

/// Why a HEP3 packet was rejected. Offsets count from the start of the packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DecodeError {
    /// Fewer bytes than the 6-byte packet header.
    #[error("packet of {len} bytes is shorter than the 6-byte hep3 header")]
    Truncated { len: usize },
    /// The first four bytes are not `HEP3` or `EEP3`.
    #[error("bad magic {magic:02x?}")]
    BadMagic { magic: [u8; 4] },
    /// The header's total length differs from the bytes given.
    #[error("header says {declared} bytes, packet has {actual}")]
    Length { declared: usize, actual: usize },
    /// A chunk header or body runs past the end of the packet, or is shorter than 6 bytes.
    #[error("chunk at offset {offset} declares {declared} bytes, {available} available")]
    ChunkLength {
        offset: usize,
        declared: usize,
        available: usize,
    },
    /// A fixed-size generic chunk has the wrong body size.
    #[error(
        "chunk 0x{chunk_type:04x} at offset {offset} has {actual} body bytes, needs {expected}"
    )]
    ChunkSize {
        offset: usize,
        chunk_type: u16,
        expected: usize,
        actual: usize,
    },
}

impl DecodeError {
    /// Bounded label for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } | DecodeError::Length { .. } => "length",
            DecodeError::BadMagic { .. } => "bad_magic",
            DecodeError::ChunkLength { .. } => "chunk_length",
            DecodeError::ChunkSize { .. } => "chunk_size",
        }
    }
}

/// One chunk as it appeared on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub vendor: u16,
    pub chunk_type: u16,
    pub body: &'a [u8],
}

/// A decoded HEP3 packet: the typed generic chunks plus every chunk in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hep3<'a> {
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
    pub auth_key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub compressed_payload: Option<&'a [u8]>,
    pub correlation_id: Option<&'a [u8]>,
    pub vlan: Option<u16>,
    pub node_name: Option<&'a [u8]>,
    /// Every chunk, typed or not, in wire order.
    pub chunks: Vec<Chunk<'a>>,
}

/// Decodes one whole HEP3 packet.
pub fn decode_v3(packet: &[u8]) -> Result<Hep3<'_>, DecodeError> {
    if packet.len() < PACKET_HEADER_LEN {
        return Err(DecodeError::Truncated { len: packet.len() });
    }
    let magic: [u8; 4] = [packet[0], packet[1], packet[2], packet[3]];
    if &magic != chunk::MAGIC && &magic != b"EEP3" {
        return Err(DecodeError::BadMagic { magic });
    }
    let declared = usize::from(be16(&packet[4..6]));
    if declared != packet.len() {
        return Err(DecodeError::Length {
            declared,
            actual: packet.len(),
        });
    }

    let mut hep = Hep3::default();
    let mut offset = PACKET_HEADER_LEN;
    while offset < packet.len() {
        let available = packet.len() - offset;
        if available < HEADER_LEN {
            return Err(DecodeError::ChunkLength {
                offset,
                declared: HEADER_LEN,
                available,
            });
        }
        let vendor = be16(&packet[offset..]);
        let chunk_type = be16(&packet[offset + 2..]);
        let len = usize::from(be16(&packet[offset + 4..]));
        if len < HEADER_LEN || len > available {
            return Err(DecodeError::ChunkLength {
                offset,
                declared: len,
                available,
            });
        }
        let body = &packet[offset + HEADER_LEN..offset + len];
        if vendor == 0 {
            if let Some(expected) = fixed_body_len(chunk_type) {
                if body.len() != expected {
                    return Err(DecodeError::ChunkSize {
                        offset,
                        chunk_type,
                        expected,
                        actual: body.len(),
                    });
                }
            }
            hep.apply(chunk_type, body);
        }
        hep.chunks.push(Chunk {
            vendor,
            chunk_type,
            body,
        });
        offset += len;
    }
    Ok(hep)
}

impl<'a> Hep3<'a> {
    /// Stores a generic chunk whose size was already checked.
    fn apply(&mut self, chunk_type: u16, body: &'a [u8]) {
        match chunk_type {
            chunk::IP_FAMILY => self.ip_family = Some(body[0]),
            chunk::IP_PROTO => self.ip_proto = Some(body[0]),
            chunk::SRC_IP4 => self.src_ip = Some(IpAddr::V4(ipv4(body))),
            chunk::DST_IP4 => self.dst_ip = Some(IpAddr::V4(ipv4(body))),
            chunk::SRC_IP6 => self.src_ip = Some(IpAddr::V6(ipv6(body))),
            chunk::DST_IP6 => self.dst_ip = Some(IpAddr::V6(ipv6(body))),
            chunk::SRC_PORT => self.src_port = Some(be16(body)),
            chunk::DST_PORT => self.dst_port = Some(be16(body)),
            chunk::TS_SEC => self.ts_sec = Some(be32(body)),
            chunk::TS_USEC => self.ts_usec = Some(be32(body)),
            chunk::PROTO_TYPE => self.proto_type = Some(body[0]),
            chunk::CAPTURE_ID => self.capture_id = Some(be32(body)),
            chunk::AUTH_KEY => self.auth_key = Some(body),
            chunk::PAYLOAD => self.payload = Some(body),
            chunk::COMPRESSED_PAYLOAD => self.compressed_payload = Some(body),
            chunk::CORRELATION_ID => self.correlation_id = Some(body),
            chunk::VLAN_ID => self.vlan = Some(be16(body)),
            chunk::NODE_NAME => self.node_name = Some(body),
            _ => {}
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn ipv6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}
