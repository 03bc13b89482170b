//! HEPv3 encoder: one [`Record`] into one HEP3 packet.
//!
//! Chunk order follows what Homer's own agents send (hep.md §1.3.5, §6): family, protocol,
//! addresses, ports, time, protocol type, capture id, then the optional password, node name,
//! correlation id, VLAN and MOS (0x0020, as heplify sends it for RTCP), and the payload last.
//! Sizes are exact; nothing is padded.

use std::net::IpAddr;

use super::chunk::{self, HEADER_LEN, MAGIC, PACKET_HEADER_LEN};
use super::rewrite::IdentityRewrite;
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
    /// Applied to records received as HEP, which are otherwise forwarded as they came.
    relay: IdentityRewrite,
}

impl HepEncoder {
    pub fn new(identity: NodeIdentity) -> Self {
        HepEncoder {
            identity,
            relay: IdentityRewrite::default(),
        }
    }

    /// Rewrites the identity chunks of relayed HEP (heplify's `-replacetoken`); by default a
    /// relayed HEPv3 message leaves byte for byte as it came.
    pub fn with_relay_rewrite(mut self, relay: IdentityRewrite) -> Self {
        self.relay = relay;
        self
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// Appends one HEP3 packet for `record` to `out` and returns its length. A record received
    /// as HEP is relayed ([`crate::hep::HepMessage::relay_v3`]): HEPv3 byte for byte unless a
    /// relay rewrite is set, other versions re-encoded as HEPv3. On error `out` is left as it
    /// was.
    pub fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        if let Some(received) = record.source.received() {
            return received.message.relay_v3(&self.relay, out);
        }
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
        if let Some(mos) = record.mos() {
            put_u16(out, chunk::MOS, mos);
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

/// Writes one HEP3 packet chunk by chunk, appended to a buffer: for relays that convert v1, v2
/// or protobuf input to HEP3 or rewrite a HEP3 packet's chunks.
///
/// Chunks are written in call order with exact sizes. [`Hep3Writer::finish`] patches the total
/// length; if it fails, or the writer is dropped unfinished, the buffer is truncated back to
/// what it held before.
#[derive(Debug)]
pub struct Hep3Writer<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    error: Option<EncodeError>,
    finished: bool,
}

impl<'o> Hep3Writer<'o> {
    /// Starts a packet with the given id (`HEP3`, or `EEP3` to keep a relayed packet's own).
    pub fn new(out: &'o mut Vec<u8>, magic: &[u8; 4]) -> Self {
        let start = out.len();
        out.extend_from_slice(magic);
        out.extend_from_slice(&[0, 0]); // total length, patched by finish
        Hep3Writer {
            out,
            start,
            error: None,
            finished: false,
        }
    }

    /// A generic uint8 chunk.
    pub fn u8(&mut self, chunk_type: u16, v: u8) -> &mut Self {
        put_u8(self.out, chunk_type, v);
        self
    }

    /// A generic uint16 chunk.
    pub fn u16(&mut self, chunk_type: u16, v: u16) -> &mut Self {
        put_u16(self.out, chunk_type, v);
        self
    }

    /// A generic uint32 chunk.
    pub fn u32(&mut self, chunk_type: u16, v: u32) -> &mut Self {
        put_u32(self.out, chunk_type, v);
        self
    }

    /// A generic chunk with a variable body (also addresses: 4 or 16 bytes).
    pub fn bytes(&mut self, chunk_type: u16, body: &[u8]) -> &mut Self {
        self.chunk(0, chunk_type, body)
    }

    /// Any chunk, vendor included, with its body copied verbatim.
    pub fn chunk(&mut self, vendor: u16, chunk_type: u16, body: &[u8]) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        if body.len() > usize::from(u16::MAX) - HEADER_LEN {
            self.error = Some(EncodeError::ChunkTooLarge {
                chunk_type,
                len: body.len(),
            });
            return self;
        }
        self.out.extend_from_slice(&vendor.to_be_bytes());
        self.out.extend_from_slice(&chunk_type.to_be_bytes());
        // Checked just above.
        self.out
            .extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
        self.out.extend_from_slice(body);
        self
    }

    /// Patches the total length and returns the packet's size.
    pub fn finish(mut self) -> Result<usize, EncodeError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let len = self.out.len() - self.start;
        let total = u16::try_from(len).map_err(|_| EncodeError::TooLarge { len })?;
        self.out[self.start + 4..self.start + PACKET_HEADER_LEN]
            .copy_from_slice(&total.to_be_bytes());
        self.finished = true;
        Ok(len)
    }
}

impl Drop for Hep3Writer<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}
