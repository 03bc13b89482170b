//! Generic (vendor 0) chunk type numbers of HEP3 (hep.md §1.3.3) and their fixed sizes.

pub const IP_FAMILY: u16 = 0x0001;
pub const IP_PROTO: u16 = 0x0002;
pub const SRC_IP4: u16 = 0x0003;
pub const DST_IP4: u16 = 0x0004;
pub const SRC_IP6: u16 = 0x0005;
pub const DST_IP6: u16 = 0x0006;
pub const SRC_PORT: u16 = 0x0007;
pub const DST_PORT: u16 = 0x0008;
pub const TS_SEC: u16 = 0x0009;
pub const TS_USEC: u16 = 0x000a;
pub const PROTO_TYPE: u16 = 0x000b;
pub const CAPTURE_ID: u16 = 0x000c;
pub const KEEP_ALIVE: u16 = 0x000d;
pub const AUTH_KEY: u16 = 0x000e;
pub const PAYLOAD: u16 = 0x000f;
pub const COMPRESSED_PAYLOAD: u16 = 0x0010;
pub const CORRELATION_ID: u16 = 0x0011;
pub const VLAN_ID: u16 = 0x0012;
pub const NODE_NAME: u16 = 0x0013;

/// Header of every chunk: vendor, type, length.
pub const HEADER_LEN: usize = 6;
/// `HEP3` plus the total length.
pub const PACKET_HEADER_LEN: usize = 6;
pub const MAGIC: &[u8; 4] = b"HEP3";

/// Address family values carried in chunk 0x0001 (Linux socket constants).
pub const FAMILY_IPV4: u8 = 2;
pub const FAMILY_IPV6: u8 = 10;

/// Body size a generic chunk must have, for the fixed-size types.
pub fn fixed_body_len(chunk_type: u16) -> Option<usize> {
    match chunk_type {
        IP_FAMILY | IP_PROTO | PROTO_TYPE | 0x0017 | 0x0018 => Some(1),
        SRC_PORT | DST_PORT | KEEP_ALIVE | VLAN_ID | 0x0016 | 0x0020 | 0x0021 | 0x0027 | 0x0028 => {
            Some(2)
        }
        SRC_IP4 | DST_IP4 | TS_SEC | TS_USEC | CAPTURE_ID | 0x0023 => Some(4),
        0x0014 | 0x0015 => Some(8),
        SRC_IP6 | DST_IP6 => Some(16),
        _ => None,
    }
}
