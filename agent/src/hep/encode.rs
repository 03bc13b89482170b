//! HEPv3 encoder: one [`Record`] into one HEP3 packet.
//!
//! Chunk order follows what Homer's own agents send (hep.md §1.3.5, §6): family, protocol,
//! addresses, ports, time, protocol type, capture id, then the optional password, node name,
//! correlation id and VLAN, and the payload last. Sizes are exact; nothing is padded.

use std::net::IpAddr;

use super::chunk::{self, HEADER_LEN, MAGIC, PACKET_HEADER_LEN};
use crate::record::Record;

/// Who this agent says it is in every packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Capture agent id, chunk 0x000c.
    pub node_id: u32,
    /// Capture agent name, chunk 0x0013, when set.
    pub node_name: Option<String>,
    /// Authentication key, chunk 0x000e, when set.
    pub password: Option<String>,
}

/// Why a record could not be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The packet would exceed the 16-bit HEP length field.
    #[error("hep packet of {len} bytes exceeds the 65535-byte limit")]
    TooLarge { len: usize },
    /// A variable-length chunk does not fit its 16-bit length field.
    #[error("chunk 0x{chunk_type:04x} of {len} bytes exceeds the chunk length limit")]
    ChunkTooLarge { chunk_type: u16, len: usize },
}

/// Encodes records with a fixed node identity.
#[derive(Clone, Debug)]
pub struct HepEncoder {
    identity: NodeIdentity,
}

impl HepEncoder {
    pub fn new(identity: NodeIdentity) -> Self {
        HepEncoder { identity }
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// Appends one HEP3 packet for `record` to `out` and returns its length. On error `out` is
    /// left as it was.
    pub fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        let start = out.len();
        let result = self.encode_inner(record, out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_inner(
        &self,
        record: &Record,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<usize, EncodeError> {
        out.reserve(160 + record.payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[0, 0]); // total length, patched below

        match (record.src, record.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                put_u8(out, chunk::IP_FAMILY, chunk::FAMILY_IPV4);
                put_u8(out, chunk::IP_PROTO, record.transport.0);
                put_bytes(out, chunk::SRC_IP4, &s.octets())?;
                put_bytes(out, chunk::DST_IP4, &d.octets())?;
            }
            (s, d) => {
                // A mixed pair cannot come off the wire; map both to IPv6 so nothing is lost.
                put_u8(out, chunk::IP_FAMILY, chunk::FAMILY_IPV6);
                put_u8(out, chunk::IP_PROTO, record.transport.0);
                put_bytes(out, chunk::SRC_IP6, &to_v6(s))?;
                put_bytes(out, chunk::DST_IP6, &to_v6(d))?;
            }
        }
        put_u16(out, chunk::SRC_PORT, record.src_port);
        put_u16(out, chunk::DST_PORT, record.dst_port);
        // HEP carries 32-bit seconds: fine until 2106.
        put_u32(out, chunk::TS_SEC, record.ts.secs() as u32);
        put_u32(out, chunk::TS_USEC, record.ts.subsec_micros());
        put_u8(out, chunk::PROTO_TYPE, record.proto_type);
        put_u32(out, chunk::CAPTURE_ID, self.identity.node_id);
        if let Some(pw) = &self.identity.password {
            put_bytes(out, chunk::AUTH_KEY, pw.as_bytes())?;
        }
        if let Some(name) = &self.identity.node_name {
            put_bytes(out, chunk::NODE_NAME, name.as_bytes())?;
        }
        if let Some(cid) = record.correlation_id() {
            put_bytes(out, chunk::CORRELATION_ID, cid)?;
        }
        if let Some(vlan) = record.vlan {
            put_u16(out, chunk::VLAN_ID, vlan);
        }
        put_bytes(out, chunk::PAYLOAD, &record.payload)?;

        let len = out.len() - start;
        let total = u16::try_from(len).map_err(|_| EncodeError::TooLarge { len })?;
        out[start + 4..start + PACKET_HEADER_LEN].copy_from_slice(&total.to_be_bytes());
        Ok(len)
    }
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn put_header(out: &mut Vec<u8>, chunk_type: u16, body_len: usize) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&chunk_type.to_be_bytes());
    // Callers check the length before narrowing.
    out.extend_from_slice(&((HEADER_LEN + body_len) as u16).to_be_bytes());
}

fn put_u8(out: &mut Vec<u8>, chunk_type: u16, v: u8) {
    put_header(out, chunk_type, 1);
    out.push(v);
}

fn put_u16(out: &mut Vec<u8>, chunk_type: u16, v: u16) {
    put_header(out, chunk_type, 2);
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, chunk_type: u16, v: u32) {
    put_header(out, chunk_type, 4);
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, chunk_type: u16, body: &[u8]) -> Result<(), EncodeError> {
    if body.len() > usize::from(u16::MAX) - HEADER_LEN {
        return Err(EncodeError::ChunkTooLarge {
            chunk_type,
            len: body.len(),
        });
    }
    put_header(out, chunk_type, body.len());
    out.extend_from_slice(body);
    Ok(())
}
