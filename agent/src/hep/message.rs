//! Receiving HEP: one entry point for a datagram of any version and the owned message a
//! listener and relay work with (hep.md §1.1 for how versions are told apart).
//!
//! [`decode_datagram`] dispatches on the first bytes: `HEP3`/`EEP3` is HEPv3 (§1.3), a first
//! byte of 1 or 2 is HEPv1/v2 (§1.2, UDP only), anything else is tried as protobuf (§1.7). The
//! result, [`HepMessage`], owns its bytes but shares them with the datagram (`Bytes` slices):
//! only an inflated payload is a new allocation.
//!
//! Relaying: a v3 message keeps the original datagram in [`HepMessage::raw`] and
//! [`HepMessage::relay_v3`] forwards it byte for byte, or with the node id, name or password
//! rewritten in place (every other chunk kept in order). v1, v2 and protobuf messages are
//! re-encoded as HEP3 from their fields.

use std::fmt;
use std::net::IpAddr;

use bytes::Bytes;

use super::chunk::{self, FAMILY_IPV6, MAGIC};
use super::decode::decode_v3;
use super::encode::{EncodeError, Hep3Writer};
use super::inflate::DEFAULT_MAX_INFLATED_LEN;
use super::legacy::decode_v12;
use super::protobuf::decode_protobuf;
use super::rewrite::{IdentityRewrite, rewrite_identity};
use super::{DecodeError, Hep3};
use crate::record::PROTO_SIP;

/// The wire format a message arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HepVersion {
    V1,
    V2,
    V3,
    /// heplify's protobuf encoding.
    Protobuf,
}

impl HepVersion {
    /// Bounded label for metrics: `v1`, `v2`, `v3`, `protobuf`.
    pub fn as_str(self) -> &'static str {
        match self {
            HepVersion::V1 => "v1",
            HepVersion::V2 => "v2",
            HepVersion::V3 => "v3",
            HepVersion::Protobuf => "protobuf",
        }
    }
}

impl fmt::Display for HepVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HepVersion::V1 => "hepv1",
            HepVersion::V2 => "hepv2",
            HepVersion::V3 => "hepv3",
            HepVersion::Protobuf => "protobuf hep",
        })
    }
}

/// Resource limits of the receive path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload a compressed chunk (0x0010) may inflate to, in bytes; larger is rejected
    /// as `decompress`. Default 65 536.
    pub max_inflated_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflated_len: DEFAULT_MAX_INFLATED_LEN,
        }
    }
}

/// One received HEP message of any version, decoded into the fields common to all of them.
///
/// A field is `None` when the packet did not carry it: v1 has no time and no capture id,
/// protobuf no node name, and a v3 sender may omit any chunk. v1 and v2 carry no protocol
/// type either; it is set to SIP (1), the only payload their senders write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HepMessage {
    pub version: HepVersion,
    /// 2 (IPv4) or 10 (IPv6) for v1, v2 and protobuf; as sent for v3.
    pub ip_family: Option<u8>,
    /// IP protocol, including senders' pseudo values (22 TLS/WS, 50 WS): pass them through.
    pub ip_proto: Option<u8>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub ts_sec: Option<u32>,
    pub ts_usec: Option<u32>,
    /// HEP protocol type; 0 is a keep-alive ([`HepMessage::is_keepalive`]).
    pub proto_type: Option<u8>,
    pub capture_id: Option<u32>,
    pub auth_key: Option<Bytes>,
    pub node_name: Option<Bytes>,
    pub correlation_id: Option<Bytes>,
    pub vlan: Option<u16>,
    /// The captured payload, inflated when it came compressed.
    pub payload: Option<Bytes>,
    /// Whether `payload` was inflated from chunk 0x0010.
    pub payload_compressed: bool,
    /// The datagram as received. For v3 this is the packet a relay forwards.
    pub raw: Bytes,
}

/// Decodes one datagram of any HEP version.
///
/// Takes `Bytes` so that the message can share the receive buffer: pass
/// `Bytes::copy_from_slice(buf)` for a borrowed slice.
pub fn decode_datagram(datagram: Bytes, limits: &Limits) -> Result<HepMessage, DecodeError> {
    if chunk::has_magic(&datagram) {
        return from_v3(datagram, limits);
    }
    match datagram.first() {
        None => Err(DecodeError::Empty),
        Some(1 | 2) => from_v12(datagram),
        // The start of a magic and nothing more: a HEP3 packet cut short.
        Some(_)
            if datagram.len() < 4
                && (MAGIC.starts_with(&datagram) || b"EEP3".starts_with(&datagram)) =>
        {
            Err(DecodeError::Truncated {
                version: HepVersion::V3,
                needed: 6,
                available: datagram.len(),
            })
        }
        Some(&key) if is_hep_protobuf_key(key) => decode_protobuf(datagram),
        // Neither HEP3, HEPv1/v2 nor the start of a protobuf HEP message: not HEP at all.
        Some(_) => {
            let mut magic = [0u8; 4];
            let n = datagram.len().min(4);
            magic[..n].copy_from_slice(&datagram[..n]);
            Err(DecodeError::BadMagic { magic })
        }
    }
}

/// True when `key` is a protobuf field key (field number << 3 | wire type) of a field of
/// heplify's `HEP` message with that field's wire type: varints for the numeric fields
/// (1, 2, 5–10, 14), length-delimited for the byte fields (3, 4, 11–13). Any encoder starts a
/// message with one of these; a datagram starting otherwise is garbage (`bad_magic`), and
/// what starts like one but does not decode is a broken protobuf message (`protobuf`).
fn is_hep_protobuf_key(key: u8) -> bool {
    let (field, wire) = (key >> 3, key & 7);
    match field {
        1 | 2 | 5..=10 | 14 => wire == 0,
        3 | 4 | 11..=13 => wire == 2,
        _ => false,
    }
}

fn from_v3(datagram: Bytes, limits: &Limits) -> Result<HepMessage, DecodeError> {
    let h = decode_v3(&datagram)?;
    let payload = h
        .inflated_payload(limits.max_inflated_len)?
        .map(|p| match p {
            std::borrow::Cow::Borrowed(b) => share(&datagram, b),
            std::borrow::Cow::Owned(v) => Bytes::from(v),
        });
    Ok(HepMessage {
        version: HepVersion::V3,
        ip_family: h.ip_family,
        ip_proto: h.ip_proto,
        src_ip: h.src_ip,
        dst_ip: h.dst_ip,
        src_port: h.src_port,
        dst_port: h.dst_port,
        ts_sec: h.ts_sec,
        ts_usec: h.ts_usec,
        proto_type: h.proto_type,
        capture_id: h.capture_id,
        auth_key: h.auth_key.map(|b| share(&datagram, b)),
        node_name: h.node_name.map(|b| share(&datagram, b)),
        correlation_id: h.correlation_id.map(|b| share(&datagram, b)),
        vlan: h.vlan,
        payload_compressed: h.payload.is_none() && payload.is_some(),
        payload,
        raw: datagram,
    })
}

fn from_v12(datagram: Bytes) -> Result<HepMessage, DecodeError> {
    let h = decode_v12(&datagram)?;
    let version = if h.version == 1 {
        HepVersion::V1
    } else {
        HepVersion::V2
    };
    Ok(HepMessage {
        version,
        ip_family: Some(h.family),
        ip_proto: Some(h.ip_proto),
        src_ip: Some(h.src_ip),
        dst_ip: Some(h.dst_ip),
        src_port: Some(h.src_port),
        dst_port: Some(h.dst_port),
        ts_sec: h.time.map(|t| t.ts_sec),
        ts_usec: h.time.map(|t| t.ts_usec),
        // v1/v2 have no protocol type field. Every sender found writes them for SIP only
        // (Kamailio/OpenSIPS tracing, captagent, sngrep: hep.md §1.2, §2), and Homer drops a
        // v3 packet without a non-zero type, so the relayed packet says SIP.
        proto_type: Some(PROTO_SIP),
        capture_id: h.time.map(|t| u32::from(t.capture_id)),
        auth_key: None,
        node_name: None,
        correlation_id: None,
        vlan: None,
        payload: Some(share(&datagram, h.payload)),
        payload_compressed: false,
        raw: datagram,
    })
}

/// `part` as a slice of `whole` when it lies inside it (always, for views decoded from
/// `whole`), else as a copy.
fn share(whole: &Bytes, part: &[u8]) -> Bytes {
    let base = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    match at.checked_sub(base) {
        Some(start) if start + part.len() <= whole.len() => whole.slice(start..start + part.len()),
        _ => Bytes::copy_from_slice(part),
    }
}

impl HepMessage {
    /// Protocol type 0: a keep-alive "ping" (hep.md §1.8.4), to be counted, not relayed.
    pub fn is_keepalive(&self) -> bool {
        self.proto_type == Some(0)
    }

    /// The v3 view of [`HepMessage::raw`] (all typed chunks, vendor chunks, order); `None` for
    /// other versions.
    pub fn as_v3(&self) -> Option<Hep3<'_>> {
        match self.version {
            HepVersion::V3 => decode_v3(&self.raw).ok(),
            _ => None,
        }
    }

    /// Appends the HEP3 packet a relay sends for this message and returns its length.
    ///
    /// v3: the received packet byte for byte, or with the identity chunks rewritten when
    /// `rewrite` sets any (see [`rewrite_identity`]). Other versions: [`HepMessage::encode_v3`]
    /// with the rewrite applied to the fields. On error `out` is left as it was.
    pub fn relay_v3(
        &self,
        rewrite: &IdentityRewrite,
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        if self.version != HepVersion::V3 {
            let mut m = self.clone();
            rewrite.apply_to(&mut m);
            return m.encode_v3(out);
        }
        if rewrite.is_empty() {
            out.extend_from_slice(&self.raw);
            return Ok(self.raw.len());
        }
        match self.as_v3() {
            Some(h) => rewrite_identity(&h, rewrite, out),
            // `raw` of a v3 message always decodes; a hand-built message that does not is sent
            // re-encoded from its fields.
            None => {
                let mut m = self.clone();
                rewrite.apply_to(&mut m);
                m.encode_v3(out)
            }
        }
    }

    /// Appends a HEP3 packet built from the fields and returns its length.
    ///
    /// Chunk order as [`super::HepEncoder`] writes it: family, protocol, addresses, ports, time,
    /// protocol type, capture id, password, node name, correlation id, VLAN, payload. Absent
    /// fields are left out (a v1 message has no time: a listener that wants one sets `ts_sec`
    /// and `ts_usec` to the receive time first). A v3 message's vendor and unknown chunks are
    /// not in the fields: relay v3 with [`HepMessage::relay_v3`]. On error `out` is left as it
    /// was.
    pub fn encode_v3(&self, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        let mut w = Hep3Writer::new(out, MAGIC);
        if let Some(f) = self.ip_family {
            w.u8(chunk::IP_FAMILY, f);
        }
        if let Some(p) = self.ip_proto {
            w.u8(chunk::IP_PROTO, p);
        }
        // Both addresses go in the same pair of chunk types; an IPv4 address next to an IPv6
        // one is written IPv4-mapped, as the encoder does.
        let v6 = self.ip_family == Some(FAMILY_IPV6)
            || self.src_ip.is_some_and(|a| a.is_ipv6())
            || self.dst_ip.is_some_and(|a| a.is_ipv6());
        let (src_type, dst_type) = if v6 {
            (chunk::SRC_IP6, chunk::DST_IP6)
        } else {
            (chunk::SRC_IP4, chunk::DST_IP4)
        };
        if let Some(a) = self.src_ip {
            w.bytes(src_type, &address_bytes(a, v6));
        }
        if let Some(a) = self.dst_ip {
            w.bytes(dst_type, &address_bytes(a, v6));
        }
        optional_u16(&mut w, chunk::SRC_PORT, self.src_port);
        optional_u16(&mut w, chunk::DST_PORT, self.dst_port);
        optional_u32(&mut w, chunk::TS_SEC, self.ts_sec);
        optional_u32(&mut w, chunk::TS_USEC, self.ts_usec);
        if let Some(t) = self.proto_type {
            w.u8(chunk::PROTO_TYPE, t);
        }
        optional_u32(&mut w, chunk::CAPTURE_ID, self.capture_id);
        optional_bytes(&mut w, chunk::AUTH_KEY, self.auth_key.as_deref());
        optional_bytes(&mut w, chunk::NODE_NAME, self.node_name.as_deref());
        optional_bytes(
            &mut w,
            chunk::CORRELATION_ID,
            self.correlation_id.as_deref(),
        );
        optional_u16(&mut w, chunk::VLAN_ID, self.vlan);
        optional_bytes(&mut w, chunk::PAYLOAD, self.payload.as_deref());
        w.finish()
    }
}

/// A 4-byte address for the IPv4 chunks, 16 bytes (IPv4-mapped if need be) for the IPv6 ones.
fn address_bytes(a: IpAddr, v6: bool) -> Vec<u8> {
    match (a, v6) {
        (IpAddr::V4(a), false) => a.octets().to_vec(),
        (IpAddr::V4(a), true) => a.to_ipv6_mapped().octets().to_vec(),
        (IpAddr::V6(a), _) => a.octets().to_vec(),
    }
}

fn optional_u16(w: &mut Hep3Writer<'_>, chunk_type: u16, v: Option<u16>) {
    if let Some(v) = v {
        w.u16(chunk_type, v);
    }
}

fn optional_u32(w: &mut Hep3Writer<'_>, chunk_type: u16, v: Option<u32>) {
    if let Some(v) = v {
        w.u32(chunk_type, v);
    }
}

fn optional_bytes(w: &mut Hep3Writer<'_>, chunk_type: u16, v: Option<&[u8]>) {
    if let Some(v) = v {
        w.bytes(chunk_type, v);
    }
}
