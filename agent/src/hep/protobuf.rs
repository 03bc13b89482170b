//! Protobuf HEP: heplify v1's `-protobuf` output, one message per UDP datagram (hep.md §1.7).
//!
//! The schema is `proto/hep.proto` (crate `hepcap-proto`). A datagram is tried as protobuf only
//! when it is neither HEP3/EEP3 nor starts with byte 1 or 2 (a protobuf message cannot start
//! with either: they would be field number 0).
//!
//! Garbage often parses as *some* protobuf message, so a message must carry at least the
//! address family (field 1, 2 or 10) and the payload (field 12) to be taken as HEP. Every other
//! field may be absent, as a proto3-style sender omits zero values: absent numbers read as
//! absent, absent or empty addresses as the family's unspecified address. Numbers that do not
//! fit their HEP3 chunk and addresses that are not text of the message's family are rejected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use hepcap_proto::{Hep, Message as _};

use super::chunk::{FAMILY_IPV4, FAMILY_IPV6};
use super::{DecodeError, HepMessage, HepVersion, ProtobufError};

/// Decodes one protobuf HEP datagram. String and payload fields slice `datagram`.
pub fn decode_protobuf(datagram: Bytes) -> Result<HepMessage, DecodeError> {
    let pb = Hep::decode(datagram.clone())
        .map_err(|e| DecodeError::Protobuf(ProtobufError::Wire(e.to_string())))?;

    let family = pb.version.ok_or(missing("version"))?;
    let v6 = match u8::try_from(family) {
        Ok(FAMILY_IPV4) => false,
        Ok(FAMILY_IPV6) => true,
        _ => {
            return Err(DecodeError::Family {
                version: HepVersion::Protobuf,
                family,
            });
        }
    };
    let payload = pb.payload.ok_or(missing("payload"))?;

    Ok(HepMessage {
        version: HepVersion::Protobuf,
        ip_family: u8::try_from(family).ok(),
        ip_proto: narrow("protocol", pb.protocol)?,
        src_ip: Some(address("src_ip", pb.src_ip.as_deref(), v6)?),
        dst_ip: Some(address("dst_ip", pb.dst_ip.as_deref(), v6)?),
        src_port: narrow("src_port", pb.src_port)?,
        dst_port: narrow("dst_port", pb.dst_port)?,
        ts_sec: pb.tsec,
        ts_usec: pb.tmsec,
        proto_type: narrow("proto_type", pb.proto_type)?,
        capture_id: pb.node_id,
        // heplify always fills the text fields; an empty one means "not set".
        auth_key: pb.node_pw.filter(|b| !b.is_empty()),
        node_name: None,
        correlation_id: pb.cid.filter(|b| !b.is_empty()),
        vlan: narrow("vlan", pb.vlan)?,
        payload: Some(payload),
        payload_compressed: false,
        raw: datagram,
    })
}

fn missing(field: &'static str) -> DecodeError {
    DecodeError::Protobuf(ProtobufError::Missing { field })
}

/// A uint32 field into the narrower HEP3 chunk type it maps to.
fn narrow<T: TryFrom<u32>>(field: &'static str, v: Option<u32>) -> Result<Option<T>, DecodeError> {
    v.map(|value| {
        T::try_from(value).map_err(|_| DecodeError::Protobuf(ProtobufError::Range { field, value }))
    })
    .transpose()
}

/// A textual address of the message's family; absent or empty is the unspecified address.
fn address(field: &'static str, text: Option<&[u8]>, v6: bool) -> Result<IpAddr, DecodeError> {
    let bad = || DecodeError::Protobuf(ProtobufError::Address { field });
    let text = match text {
        None | Some(b"") => {
            return Ok(if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            });
        }
        Some(t) => std::str::from_utf8(t).map_err(|_| bad())?,
    };
    let ip: IpAddr = text.parse().map_err(|_| bad())?;
    if ip.is_ipv6() != v6 {
        return Err(bad());
    }
    Ok(ip)
}
