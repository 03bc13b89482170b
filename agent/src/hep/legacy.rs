//! HEPv1 and HEPv2: the fixed binary header of the C senders (hep.md §1.2), UDP only.
//!
//! ```text
//! 0  version (1 or 2)      1  header length (untrusted)   2  address family   3  IP protocol
//! 4  source port (BE u16)  6  destination port (BE u16)
//! 8  source address, then destination address: 4 + 4 bytes (family 2) or 16 + 16 (family 10)
//! v2 only, 12 bytes: seconds (u32), microseconds (u32), capture id (u16), 2 bytes of padding
//! payload to the end of the datagram
//! ```
//!
//! The header length is derived from the address family (16 bytes for IPv4, 40 for IPv6),
//! never read from byte 1: sngrep writes garbage there. The byte is kept in
//! [`HepV12::declared_header_len`] for diagnostics only.
//!
//! The v2 time header is in the sender's host order; Kamailio converts it to little-endian
//! explicitly and the other C senders run on little-endian hosts, so it is read little-endian.
//! Byte-order rule, for a big-endian sender: the little-endian reading is *plausible* when its
//! microseconds are below 1 000 000 and its seconds are at or after 2000-01-01
//! (946 684 800). If the little-endian reading is not plausible and the big-endian one is, all
//! three fields (seconds, microseconds, capture id) are read big-endian; otherwise they stay
//! little-endian, so a sender that leaves the time at zero reads as zero. A real little-endian
//! time read big-endian has microseconds ≥ 2^24 unless they are below 256, and a byte-swapped
//! current time lands before 2000 for most values, so the two readings rarely both pass.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::chunk::{FAMILY_IPV4, FAMILY_IPV6};
use super::{DecodeError, HepVersion};

/// Fixed part before the addresses: version, length, family, protocol, two ports.
const FIXED_LEN: usize = 8;
/// The v2 time header: seconds, microseconds, capture id, padding.
pub const TIME_HEADER_LEN: usize = 12;
/// 2000-01-01T00:00:00Z: the earliest seconds value taken as a real capture time.
const PLAUSIBLE_SINCE: u32 = 946_684_800;

/// Byte order the v2 time header was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

/// The v2 time header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Time {
    pub ts_sec: u32,
    pub ts_usec: u32,
    pub capture_id: u16,
    /// How the three fields were read (see the module docs for the rule).
    pub byte_order: ByteOrder,
}

/// A decoded HEPv1 or HEPv2 datagram; the payload borrows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HepV12<'a> {
    /// 1 or 2.
    pub version: u8,
    /// Byte 1 as sent. Not used: see the module docs.
    pub declared_header_len: u8,
    /// 2 (IPv4) or 10 (IPv6).
    pub family: u8,
    pub ip_proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    /// v2 only.
    pub time: Option<V2Time>,
    pub payload: &'a [u8],
}

/// Decodes a datagram whose first byte is 1 or 2.
pub fn decode_v12(datagram: &[u8]) -> Result<HepV12<'_>, DecodeError> {
    let version = match datagram.first() {
        Some(1) => HepVersion::V1,
        Some(2) => HepVersion::V2,
        Some(_) => {
            return Err(DecodeError::BadMagic {
                magic: magic_of(datagram),
            });
        }
        None => return Err(DecodeError::Empty),
    };
    let truncated = |needed: usize| DecodeError::Truncated {
        version,
        needed,
        available: datagram.len(),
    };
    let Some(fixed) = datagram.first_chunk::<FIXED_LEN>() else {
        return Err(truncated(FIXED_LEN));
    };
    let [v, declared_header_len, family, ip_proto, sp0, sp1, dp0, dp1] = *fixed;

    let addr_len = match family {
        FAMILY_IPV4 => 4,
        FAMILY_IPV6 => 16,
        other => {
            return Err(DecodeError::Family {
                version,
                family: u32::from(other),
            });
        }
    };
    let header_len = FIXED_LEN + 2 * addr_len;
    let time_len = if version == HepVersion::V2 {
        TIME_HEADER_LEN
    } else {
        0
    };
    let needed = header_len + time_len;
    let (Some(addrs), Some(payload)) =
        (datagram.get(FIXED_LEN..header_len), datagram.get(needed..))
    else {
        return Err(truncated(needed));
    };
    let (Some(src_ip), Some(dst_ip)) = (addr(addrs, 0, addr_len), addr(addrs, addr_len, addr_len))
    else {
        return Err(truncated(needed));
    };
    let time = datagram
        .get(header_len..needed)
        .and_then(|t| t.first_chunk::<TIME_HEADER_LEN>())
        .map(read_time);

    Ok(HepV12 {
        version: v,
        declared_header_len,
        family,
        ip_proto,
        src_port: u16::from_be_bytes([sp0, sp1]),
        dst_port: u16::from_be_bytes([dp0, dp1]),
        src_ip,
        dst_ip,
        time,
        payload,
    })
}

/// Reads the v2 time header little-endian, or big-endian when only that is plausible.
fn read_time(t: &[u8; TIME_HEADER_LEN]) -> V2Time {
    let [s0, s1, s2, s3, u0, u1, u2, u3, c0, c1, _, _] = *t;
    let le = V2Time {
        ts_sec: u32::from_le_bytes([s0, s1, s2, s3]),
        ts_usec: u32::from_le_bytes([u0, u1, u2, u3]),
        capture_id: u16::from_le_bytes([c0, c1]),
        byte_order: ByteOrder::Little,
    };
    let be = V2Time {
        ts_sec: u32::from_be_bytes([s0, s1, s2, s3]),
        ts_usec: u32::from_be_bytes([u0, u1, u2, u3]),
        capture_id: u16::from_be_bytes([c0, c1]),
        byte_order: ByteOrder::Big,
    };
    if !plausible(&le) && plausible(&be) {
        be
    } else {
        le
    }
}

fn plausible(t: &V2Time) -> bool {
    t.ts_usec < 1_000_000 && t.ts_sec >= PLAUSIBLE_SINCE
}

fn magic_of(b: &[u8]) -> [u8; 4] {
    let mut m = [0u8; 4];
    for (d, s) in m.iter_mut().zip(b) {
        *d = *s;
    }
    m
}

/// The address of `len` (4 or 16) bytes at `at`.
fn addr(b: &[u8], at: usize, len: usize) -> Option<IpAddr> {
    let b = b.get(at..)?;
    if len == 4 {
        Some(IpAddr::V4(Ipv4Addr::from(*b.first_chunk::<4>()?)))
    } else {
        Some(IpAddr::V6(Ipv6Addr::from(*b.first_chunk::<16>()?)))
    }
}
