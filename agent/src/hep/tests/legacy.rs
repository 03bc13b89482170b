//! HEPv1 and HEPv2 (hep.md §1.2) as Kamailio, captagent, OpenSIPS and sngrep write them.

use std::net::IpAddr;

use super::super::*;
use super::{SIP_INVITE, SIP_REGISTER, decode, fixture};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn v1_ipv4() {
    let p = fixture!("v1_ipv4.bin");
    let h = decode_v12(p).unwrap();
    assert_eq!(
        h,
        HepV12 {
            version: 1,
            declared_header_len: 16,
            family: 2,
            ip_proto: 17,
            src_port: 5060,
            dst_port: 5080,
            src_ip: ip("192.0.2.10"),
            dst_ip: ip("192.0.2.20"),
            time: None,
            payload: SIP_INVITE,
        }
    );
    let m = decode(p).unwrap();
    assert_eq!(m.version, HepVersion::V1);
    assert_eq!((m.ts_sec, m.ts_usec, m.capture_id), (None, None, None));
    assert_eq!(m.proto_type, Some(1), "v1/v2 carry SIP");
    assert_eq!(m.payload.as_deref(), Some(SIP_INVITE));
}

#[test]
fn v1_ipv6() {
    let h = decode_v12(fixture!("v1_ipv6.bin")).unwrap();
    assert_eq!((h.version, h.declared_header_len, h.family), (1, 40, 10));
    assert_eq!(h.ip_proto, 6);
    assert_eq!((h.src_port, h.dst_port), (5061, 5060));
    assert_eq!(h.src_ip, ip("2001:db8::10"));
    assert_eq!(h.dst_ip, ip("2001:db8::20"));
    assert_eq!(h.payload, SIP_REGISTER);
}

#[test]
fn v2_little_endian_time() {
    let h = decode_v12(fixture!("v2_ipv4_le.bin")).unwrap();
    assert_eq!(h.version, 2);
    assert_eq!(
        h.time,
        Some(V2Time {
            ts_sec: 1_700_000_003,
            ts_usec: 654_321,
            capture_id: 2001,
            byte_order: ByteOrder::Little,
        })
    );
    // The 2 padding bytes after the capture id are not payload.
    assert_eq!(h.payload, SIP_INVITE);

    let h = decode_v12(fixture!("v2_ipv6_le.bin")).unwrap();
    assert_eq!(
        h.ip_proto, 22,
        "Kamailio's TLS pseudo protocol passes through"
    );
    assert_eq!(h.src_ip, ip("2001:db8::10"));
    assert_eq!(
        h.time,
        Some(V2Time {
            ts_sec: 1_700_000_004,
            ts_usec: 5,
            capture_id: 7,
            byte_order: ByteOrder::Little,
        })
    );
    assert_eq!(h.payload, SIP_REGISTER);

    let m = decode(fixture!("v2_ipv6_le.bin")).unwrap();
    assert_eq!(m.version, HepVersion::V2);
    assert_eq!(
        (m.ts_sec, m.ts_usec, m.capture_id),
        (Some(1_700_000_004), Some(5), Some(7))
    );
}

#[test]
fn v2_big_endian_time_falls_back() {
    let h = decode_v12(fixture!("v2_ipv4_be.bin")).unwrap();
    assert_eq!(
        h.time,
        Some(V2Time {
            ts_sec: 1_700_000_005,
            ts_usec: 500_000,
            capture_id: 2001,
            byte_order: ByteOrder::Big,
        })
    );
}

#[test]
fn byte_order_rule() {
    fn time_of(t: [u8; 12]) -> V2Time {
        let mut p = fixture!("v2_ipv4_le.bin").to_vec();
        p[16..28].copy_from_slice(&t);
        decode_v12(&p).unwrap().time.unwrap()
    }
    fn le(sec: u32, usec: u32) -> [u8; 12] {
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&sec.to_le_bytes());
        t[4..8].copy_from_slice(&usec.to_le_bytes());
        t[8..10].copy_from_slice(&0x0102u16.to_le_bytes());
        t
    }

    // A sender that leaves the time at zero: neither reading is plausible, little-endian stays.
    let t = time_of([0; 12]);
    assert_eq!(
        (t.ts_sec, t.ts_usec, t.byte_order),
        (0, 0, ByteOrder::Little)
    );
    // Both readings plausible (a byte-swapped seconds value past 2000, zero microseconds):
    // little-endian, the documented format, wins.
    let t = time_of(le(0x6553_f13a, 0));
    assert_eq!((t.ts_sec, t.byte_order), (0x6553_f13a, ByteOrder::Little));
    assert!(u32::from_be_bytes(0x6553_f13a_u32.to_le_bytes()) >= 946_684_800);
    // Little-endian seconds before 2000: big-endian when that reading is plausible.
    let t = time_of(le(0x00f1_5365, 0x20a1_0700));
    assert_eq!(
        (t.ts_sec, t.ts_usec, t.capture_id, t.byte_order),
        (0x6553_f100, 0x0007_a120, 0x0201, ByteOrder::Big)
    );
    // Microseconds out of range in both readings: little-endian, values passed on as read.
    let t = time_of(le(1_700_000_000, 0xffff_ffff));
    assert_eq!((t.ts_usec, t.byte_order), (0xffff_ffff, ByteOrder::Little));
}

#[test]
fn header_length_byte_is_not_trusted() {
    // sngrep's byte 1 is garbage; the header length comes from the family.
    let h = decode_v12(fixture!("v2_ipv4_sngrep.bin")).unwrap();
    assert_eq!(h.declared_header_len, 0xa7);
    assert_eq!(h.payload, SIP_INVITE);
    assert_eq!(h.time.unwrap().ts_sec, 1_700_000_006);
    assert_eq!(h.time.unwrap().capture_id, 2002);
}

#[test]
fn bad_family() {
    for family in [0u8, 1, 3, 9, 11, 23, 28, 30, 255] {
        for version in [1u8, 2] {
            let mut p = fixture!("v2_ipv4_le.bin").to_vec();
            p[0] = version;
            p[2] = family;
            let v = if version == 1 {
                HepVersion::V1
            } else {
                HepVersion::V2
            };
            let err = decode(&p).unwrap_err();
            assert_eq!(
                err,
                DecodeError::Family {
                    version: v,
                    family: u32::from(family)
                }
            );
            assert_eq!(err.reason(), "family");
        }
    }
}

#[test]
fn every_truncation_of_every_v1_v2_fixture() {
    for (name, p, version, header) in [
        ("v1_ipv4", fixture!("v1_ipv4.bin"), HepVersion::V1, 16),
        ("v1_ipv6", fixture!("v1_ipv6.bin"), HepVersion::V1, 40),
        ("v2_ipv4", fixture!("v2_ipv4_le.bin"), HepVersion::V2, 28),
        ("v2_ipv6", fixture!("v2_ipv6_le.bin"), HepVersion::V2, 52),
        (
            "v2_sngrep",
            fixture!("v2_ipv4_sngrep.bin"),
            HepVersion::V2,
            28,
        ),
    ] {
        for n in 0..=p.len() {
            let t = &p[..n];
            match (n, decode(t)) {
                (0, r) => assert_eq!(r, Err(DecodeError::Empty), "{name}"),
                (1..8, r) => assert_eq!(
                    r,
                    Err(DecodeError::Truncated {
                        version,
                        needed: 8,
                        available: n
                    }),
                    "{name} {n}"
                ),
                (n, r) if n < header => assert_eq!(
                    r,
                    Err(DecodeError::Truncated {
                        version,
                        needed: header,
                        available: n
                    }),
                    "{name} {n}"
                ),
                // The payload runs to the end of the datagram: any cut past the header is a
                // shorter payload.
                (n, r) => {
                    let m = r.unwrap_or_else(|e| panic!("{name} {n}: {e}"));
                    assert_eq!(m.payload.unwrap().len(), n - header, "{name} {n}");
                    assert_eq!(m.version, version);
                }
            }
        }
    }
}

#[test]
fn decode_v12_rejects_other_first_bytes() {
    assert_eq!(decode_v12(b""), Err(DecodeError::Empty));
    assert_eq!(
        decode_v12(b"HEP3\0\x06"),
        Err(DecodeError::BadMagic { magic: *b"HEP3" })
    );
    assert_eq!(
        decode_v12(b"\x03"),
        Err(DecodeError::BadMagic {
            magic: [3, 0, 0, 0]
        })
    );
}
