//! Encoder and decoder against the worked example of the HEP3 specification (hep.md §1.3.4)
//! and against each other.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

use super::*;
use crate::record::{Record, Source, Timestamp, Transport};
use crate::sip::SipScan;

const SPEC_EXAMPLE: [u8; 113] = [
    0x48, 0x45, 0x50, 0x33, 0x00, 0x71, // HEP3, length 113
    0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x02, // family IPv4
    0x00, 0x00, 0x00, 0x02, 0x00, 0x07, 0x11, // UDP
    0x00, 0x00, 0x00, 0x03, 0x00, 0x0a, 0xd4, 0xca, 0x00, 0x01, // 212.202.0.1
    0x00, 0x00, 0x00, 0x04, 0x00, 0x0a, 0x52, 0x74, 0x00, 0xd3, // 82.116.0.211
    0x00, 0x00, 0x00, 0x07, 0x00, 0x08, 0x2e, 0xea, // 12010
    0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x13, 0xc4, // 5060
    0x00, 0x00, 0x00, 0x09, 0x00, 0x0a, 0x4e, 0x49, 0x82, 0xcb, // 1313440459
    0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x01, 0xd4, 0xc0, // 120000
    0x00, 0x00, 0x00, 0x0b, 0x00, 0x07, 0x01, // SIP
    0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x00, 0x00, 0xe4, // capture id 228
    0x00, 0x00, 0x00, 0x0f, 0x00, 0x14, b'I', b'N', b'V', b'I', b'T', b'E', b' ', b's', b'i', b'p',
    b':', b'b', b'o', b'b',
];

fn record(payload: &'static [u8]) -> Record {
    Record {
        source: Source::Replay,
        ts: Timestamp::from_parts(1_313_440_459, 120_000),
        src: IpAddr::V4(Ipv4Addr::new(212, 202, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(82, 116, 0, 211)),
        src_port: 12010,
        dst_port: 5060,
        transport: Transport::UDP,
        vlan: None,
        proto_type: 1,
        payload: Bytes::from_static(payload),
        sip: SipScan::scan(payload),
    }
}

#[test]
fn spec_example_encodes_exactly() {
    let enc = HepEncoder::new(NodeIdentity {
        node_id: 228,
        ..Default::default()
    });
    let mut out = Vec::new();
    let n = enc.encode(&record(b"INVITE sip:bob"), &mut out).unwrap();
    assert_eq!(n, 113);
    assert_eq!(out, SPEC_EXAMPLE);
}

#[test]
fn spec_example_decodes() {
    let h = decode_v3(&SPEC_EXAMPLE).unwrap();
    assert_eq!(h.ip_family, Some(2));
    assert_eq!(h.ip_proto, Some(17));
    assert_eq!(h.src_ip, Some(IpAddr::V4(Ipv4Addr::new(212, 202, 0, 1))));
    assert_eq!(h.dst_ip, Some(IpAddr::V4(Ipv4Addr::new(82, 116, 0, 211))));
    assert_eq!((h.src_port, h.dst_port), (Some(12010), Some(5060)));
    assert_eq!((h.ts_sec, h.ts_usec), (Some(1_313_440_459), Some(120_000)));
    assert_eq!(h.proto_type, Some(1));
    assert_eq!(h.capture_id, Some(228));
    assert_eq!(h.payload, Some(&b"INVITE sip:bob"[..]));
    assert_eq!(h.chunks.len(), 11);
}

#[test]
fn optional_chunks_in_order_with_exact_sizes() {
    let payload: &'static [u8] =
        b"OPTIONS sip:a SIP/2.0\r\nCall-ID: abc\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let mut r = record(payload);
    r.vlan = Some(142);
    r.src = IpAddr::V6(Ipv6Addr::LOCALHOST);
    r.dst = IpAddr::V6("2001:db8::1".parse().unwrap());
    let enc = HepEncoder::new(NodeIdentity {
        node_id: 2002,
        node_name: Some("edge-1".into()),
        password: Some("myHep".into()),
    });
    let mut out = vec![0xee]; // existing bytes are kept
    let n = enc.encode(&r, &mut out).unwrap();
    assert_eq!(out[0], 0xee);
    let h = decode_v3(&out[1..]).unwrap();
    assert_eq!(n, out.len() - 1);
    let types: Vec<u16> = h.chunks.iter().map(|c| c.chunk_type).collect();
    assert_eq!(
        types,
        [
            1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 0x0e, 0x13, 0x11, 0x12, 0x0f
        ]
    );
    assert_eq!(h.ip_family, Some(10));
    assert_eq!(h.src_ip, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!(h.auth_key, Some(&b"myHep"[..]));
    assert_eq!(h.node_name, Some(&b"edge-1"[..]));
    assert_eq!(h.correlation_id, Some(&b"abc"[..]));
    assert_eq!(h.vlan, Some(142));
    assert_eq!(h.payload, Some(payload));
    // 6 + 7 + 7 + 22 + 22 + 8 + 8 + 10 + 10 + 7 + 10 + (6+5) + (6+6) + (6+3) + 8 + (6+len)
    assert_eq!(
        n,
        6 + 7 + 7 + 22 + 22 + 8 + 8 + 10 + 10 + 7 + 10 + 11 + 12 + 9 + 8 + 6 + payload.len()
    );
}

#[test]
fn too_large_leaves_buffer_untouched() {
    let big: &'static [u8] = Box::leak(vec![b'x'; 65_500].into_boxed_slice());
    let enc = HepEncoder::new(NodeIdentity::default());
    let mut out = vec![1, 2, 3];
    let err = enc.encode(&record(big), &mut out).unwrap_err();
    assert!(matches!(err, EncodeError::TooLarge { len } if len > 65_535));
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn decode_errors() {
    assert_eq!(decode_v3(b"HEP3"), Err(DecodeError::Truncated { len: 4 }));
    let mut bad = SPEC_EXAMPLE;
    bad[0] = b'X';
    assert_eq!(decode_v3(&bad).unwrap_err().reason(), "bad_magic");
    let mut eep = SPEC_EXAMPLE;
    eep[0] = b'E';
    eep[1] = b'E';
    assert!(decode_v3(&eep).is_ok());
    assert_eq!(
        decode_v3(&SPEC_EXAMPLE[..112]),
        Err(DecodeError::Length {
            declared: 113,
            actual: 112
        })
    );
    // The family chunk claims 8 bytes: body size 2 for a uint8.
    let mut wrong = SPEC_EXAMPLE;
    wrong[11] = 8;
    wrong[5] = 113;
    assert!(matches!(
        decode_v3(&wrong),
        Err(DecodeError::ChunkSize { offset: 6, .. }) | Err(DecodeError::ChunkLength { .. })
    ));
    // A chunk length below 6.
    let mut short = SPEC_EXAMPLE;
    short[11] = 5;
    assert_eq!(
        decode_v3(&short),
        Err(DecodeError::ChunkLength {
            offset: 6,
            declared: 5,
            available: 107
        })
    );
    // Every truncation of a valid packet with a patched total length is rejected, never panics.
    for n in 0..SPEC_EXAMPLE.len() {
        let mut t = SPEC_EXAMPLE[..n].to_vec();
        if n >= 6 {
            t[4..6].copy_from_slice(&(n as u16).to_be_bytes());
        }
        // Cutting exactly between chunks leaves a shorter valid packet.
        let boundary = [6, 13, 20, 30, 40, 48, 56, 66, 76, 83, 93].contains(&n);
        assert_eq!(decode_v3(&t).is_ok(), boundary, "length {n}");
    }
}

#[test]
fn vendor_chunks_kept_opaque() {
    let mut p = SPEC_EXAMPLE.to_vec();
    // Vendor 0x0002 (Kamailio) chunk of type 0x0001 with a 3-byte body: not the family chunk.
    p.splice(6..6, [0x00, 0x02, 0x00, 0x01, 0x00, 0x09, 1, 2, 3]);
    let len = p.len() as u16;
    p[4..6].copy_from_slice(&len.to_be_bytes());
    let h = decode_v3(&p).unwrap();
    assert_eq!(h.chunks[0].vendor, 2);
    assert_eq!(h.chunks[0].body, &[1, 2, 3]);
    assert_eq!(h.ip_family, Some(2));
}
