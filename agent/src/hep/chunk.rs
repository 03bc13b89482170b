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
/// Source MAC address: 48 bits carried in a uint64.
pub const SRC_MAC: u16 = 0x0014;
/// Destination MAC address: 48 bits carried in a uint64.
pub const DST_MAC: u16 = 0x0015;
pub const ETH_TYPE: u16 = 0x0016;
/// TCP flags: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10 (heplify's bit layout).
pub const TCP_FLAGS: u16 = 0x0017;
pub const IP_TOS: u16 = 0x0018;
/// MOS × 100.
pub const MOS: u16 = 0x0020;
pub const R_FACTOR: u16 = 0x0021;
pub const GEO_LOCATION: u16 = 0x0022;
pub const JITTER: u16 = 0x0023;
pub const TRANSACTION_TYPE: u16 = 0x0024;
pub const PAYLOAD_JSON_KEYS: u16 = 0x0025;
pub const TAGS_VALUES: u16 = 0x0026;
pub const TAG_TYPE: u16 = 0x0027;
/// Event type: 1 recording, 2 recording for lawful interception.
pub const EVENT_TYPE: u16 = 0x0028;
pub const GROUP_ID: u16 = 0x0029;

/// Header of every chunk: vendor, type, length.
pub const HEADER_LEN: usize = 6;
/// `HEP3` plus the total length.
pub const PACKET_HEADER_LEN: usize = 6;
pub const MAGIC: &[u8; 4] = b"HEP3";
/// The alternative packet id the specification allows (hep.md §1.1).
pub const MAGIC_EEP: &[u8; 4] = b"EEP3";

/// Address family values carried in chunk 0x0001 (Linux socket constants).
pub const FAMILY_IPV4: u8 = 2;
pub const FAMILY_IPV6: u8 = 10;

/// Body size a generic chunk must have, for the fixed-size types.
pub fn fixed_body_len(chunk_type: u16) -> Option<usize> {
    match chunk_type {
        IP_FAMILY | IP_PROTO | PROTO_TYPE | TCP_FLAGS | IP_TOS => Some(1),
        SRC_PORT | DST_PORT | KEEP_ALIVE | VLAN_ID | ETH_TYPE | MOS | R_FACTOR | TAG_TYPE
        | EVENT_TYPE => Some(2),
        SRC_IP4 | DST_IP4 | TS_SEC | TS_USEC | CAPTURE_ID | JITTER => Some(4),
        SRC_MAC | DST_MAC => Some(8),
        SRC_IP6 | DST_IP6 => Some(16),
        _ => None,
    }
}

/// Whether `bytes` starts with a HEP3 packet id (`HEP3` or `EEP3`).
pub fn has_magic(bytes: &[u8]) -> bool {
    matches!(bytes.get(..4), Some(m) if m == MAGIC || m == MAGIC_EEP)
}
