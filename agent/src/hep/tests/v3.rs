//! HEPv3: encoder and decoder against the worked example of the HEP3 specification (hep.md
//! §1.3.4) and against each other; every typed chunk, every error kind, compressed payloads.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

use super::super::*;
use super::{SIP_INVITE, SIP_REGISTER, decode, fixture, patch_len};
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
    assert_eq!(
        decode_v3(b"HEP3"),
        Err(DecodeError::Truncated {
            version: HepVersion::V3,
            needed: 6,
            available: 4
        })
    );
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

#[test]
fn spec_example_fixture_matches() {
    assert_eq!(fixture!("v3_spec_example.bin"), SPEC_EXAMPLE);
    let m = decode(&SPEC_EXAMPLE).unwrap();
    assert_eq!(m.version, HepVersion::V3);
    assert_eq!(m.payload.as_deref(), Some(&b"INVITE sip:bob"[..]));
    assert!(!m.payload_compressed);
    assert_eq!(&m.raw[..], SPEC_EXAMPLE);
    assert!(!m.is_keepalive());
}

#[test]
fn every_generic_chunk_typed() {
    let p = fixture!("v3_ipv6_all_chunks.bin");
    let h = decode_v3(p).unwrap();
    assert_eq!(&h.magic, b"HEP3");
    assert_eq!(h.ip_family, Some(10));
    assert_eq!(h.ip_proto, Some(6));
    assert_eq!(h.src_ip, Some("2001:db8::10".parse().unwrap()));
    assert_eq!(h.dst_ip, Some("2001:db8::20".parse().unwrap()));
    assert_eq!((h.src_port, h.dst_port), (Some(5061), Some(5060)));
    assert_eq!((h.ts_sec, h.ts_usec), (Some(1_700_000_000), Some(999_999)));
    assert_eq!(h.proto_type, Some(1));
    assert_eq!(h.capture_id, Some(2002));
    assert_eq!(h.keep_alive, Some(30));
    assert_eq!(h.auth_key, Some(&b"myHep"[..]));
    assert_eq!(
        h.correlation_id,
        Some(&b"a84b4c76e66710@pc33.example.com"[..])
    );
    assert_eq!(h.vlan, Some(142));
    assert_eq!(h.node_name, Some(&b"edge-1"[..]));
    assert_eq!(h.src_mac, Some(0x0200_5e10_0001));
    assert_eq!(h.dst_mac, Some(0x0200_5e10_0002));
    assert_eq!(h.eth_type, Some(0x86dd));
    assert_eq!(h.tcp_flags, Some(0x18));
    assert_eq!(h.ip_tos, Some(0xb8));
    assert_eq!(h.mos, Some(441));
    assert_eq!(h.r_factor, Some(93));
    assert_eq!(h.geo_location, Some(&b"48.85,2.35"[..]));
    assert_eq!(h.jitter, Some(1234));
    assert_eq!(h.transaction_type, Some(&b"call"[..]));
    assert_eq!(h.payload_json_keys, Some(&b"mos,jitter"[..]));
    assert_eq!(h.tags_values, Some(&b"tag1"[..]));
    assert_eq!(h.tag_type, Some(1));
    assert_eq!(h.event_type, Some(2));
    assert_eq!(h.group_id, Some(&b"group-a"[..]));
    assert_eq!(h.payload, Some(SIP_INVITE));
    assert_eq!(h.compressed_payload, None);
    assert!(!h.is_keepalive());

    // Every chunk in wire order, the vendor ones and the reserved generic type included.
    let order: Vec<(u16, u16)> = h.chunks.iter().map(|c| (c.vendor, c.chunk_type)).collect();
    let mut expected = vec![(2, 0x0001)];
    expected.extend(
        [
            0x01, 0x02, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x11, 0x12,
            0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
            0x27, 0x28, 0x29,
        ]
        .map(|t| (0, t)),
    );
    expected.extend([(3, 0x0042), (0, 0x0f)]);
    assert_eq!(order, expected);
    assert_eq!(h.chunks[0].body, [1, 2, 3]);
    assert_eq!(h.chunks[21].body, b"reserved");
    // Offsets point at the chunk headers.
    for c in &h.chunks {
        let at = c.offset;
        assert_eq!(&p[at + 2..at + 4], c.chunk_type.to_be_bytes());
        assert_eq!(&p[at + 6..at + 6 + c.body.len()], c.body);
    }
}

#[test]
fn every_fixed_size_type_is_size_checked() {
    for chunk_type in 0..=0x0030u16 {
        let Some(expected) = chunk::fixed_body_len(chunk_type) else {
            continue;
        };
        for actual in [0, expected - 1, expected + 1] {
            let mut p = b"HEP3\0\0".to_vec();
            p.extend_from_slice(&[0, 0]);
            p.extend_from_slice(&chunk_type.to_be_bytes());
            p.extend_from_slice(&(6 + actual as u16).to_be_bytes());
            p.extend(std::iter::repeat_n(7, actual));
            patch_len(&mut p);
            assert_eq!(
                decode_v3(&p),
                Err(DecodeError::ChunkSize {
                    offset: 6,
                    chunk_type,
                    expected,
                    actual
                }),
                "type {chunk_type:#x} with {actual} bytes"
            );
            assert_eq!(decode(&p).unwrap_err().reason(), "chunk_size");
        }
        // Another vendor's chunk of the same number is opaque: any size goes.
        let mut p = b"HEP3\0\0\0\x09".to_vec();
        p.extend_from_slice(&chunk_type.to_be_bytes());
        p.extend_from_slice(&[0, 9, 1, 2, 3]);
        patch_len(&mut p);
        assert!(decode_v3(&p).is_ok(), "vendor chunk {chunk_type:#x}");
    }
}

#[test]
fn every_truncation_of_every_v3_fixture() {
    for (name, p) in [
        ("spec", fixture!("v3_spec_example.bin")),
        ("all_chunks", fixture!("v3_ipv6_all_chunks.bin")),
        ("zlib", fixture!("v3_zlib.bin")),
        ("gzip", fixture!("v3_gzip.bin")),
        ("keepalive", fixture!("v3_keepalive.bin")),
    ] {
        let boundaries: Vec<usize> = decode_v3(p)
            .unwrap()
            .chunks
            .iter()
            .map(|c| c.offset)
            .collect();
        for n in 0..p.len() {
            let t = &p[..n];
            let err = decode(t).unwrap_err();
            match n {
                0 => assert_eq!(err, DecodeError::Empty, "{name} {n}"),
                // A cut magic, as a cut header: a HEP3 packet cut short.
                1..6 => assert_eq!(
                    err,
                    DecodeError::Truncated {
                        version: HepVersion::V3,
                        needed: 6,
                        available: n
                    },
                    "{name} {n}"
                ),
                _ => assert_eq!(
                    err,
                    DecodeError::Length {
                        declared: p.len(),
                        actual: n
                    },
                    "{name} {n}"
                ),
            }

            // With the length patched, a cut between chunks is a shorter valid packet and a
            // cut inside one is a chunk length error at that chunk.
            if n >= 6 {
                let mut t = t.to_vec();
                patch_len(&mut t);
                match decode_v3(&t) {
                    Ok(_) => assert!(n == 6 || boundaries.contains(&n), "{name} {n}"),
                    Err(DecodeError::ChunkLength { offset, .. }) => {
                        assert!(boundaries.contains(&offset) && offset < n, "{name} {n}")
                    }
                    Err(e) => panic!("{name} cut at {n}: {e}"),
                }
            }
        }
    }
}

#[test]
fn keepalive_is_recognised() {
    let m = decode(fixture!("v3_keepalive.bin")).unwrap();
    assert!(m.is_keepalive());
    assert_eq!(m.proto_type, Some(0));
    assert_eq!(m.capture_id, Some(2002));
    assert!(
        decode_v3(fixture!("v3_keepalive.bin"))
            .unwrap()
            .is_keepalive()
    );
}

#[test]
fn compressed_payloads_inflate() {
    for (name, p, format, magic) in [
        ("zlib", fixture!("v3_zlib.bin"), Compression::Zlib, b"HEP3"),
        ("gzip", fixture!("v3_gzip.bin"), Compression::Gzip, b"EEP3"),
        (
            "deflate",
            fixture!("v3_deflate.bin"),
            Compression::Deflate,
            b"HEP3",
        ),
    ] {
        let h = decode_v3(p).unwrap();
        assert_eq!(&h.magic, magic, "{name}");
        assert_eq!(h.payload, None);
        let c = h.compressed_payload.unwrap();
        assert_eq!(inflate::detect(c.body), format, "{name}");
        assert_eq!(
            h.inflated_payload(65_536).unwrap().as_deref(),
            Some(SIP_REGISTER),
            "{name}"
        );

        let m = decode(p).unwrap();
        assert!(m.payload_compressed);
        assert_eq!(m.payload.as_deref(), Some(SIP_REGISTER));
        assert_eq!(m.auth_key.as_deref(), Some(&b"myHep"[..]));
        assert_eq!(
            &m.raw[..],
            p,
            "the relay forwards the compressed packet as is"
        );

        // The limit is inclusive.
        let exact = Limits {
            max_inflated_len: SIP_REGISTER.len(),
        };
        assert!(decode_datagram(Bytes::copy_from_slice(p), &exact).is_ok());
        let short = Limits {
            max_inflated_len: SIP_REGISTER.len() - 1,
        };
        assert_eq!(
            decode_datagram(Bytes::copy_from_slice(p), &short),
            Err(DecodeError::Decompress {
                offset: c.offset,
                compressed_len: c.body.len(),
                cause: InflateError::TooLarge {
                    format,
                    limit: SIP_REGISTER.len() - 1
                }
            })
        );
    }
}

#[test]
fn compression_bomb_is_rejected_at_the_limit() {
    // 10 MB of zeros in under 10 KB.
    let p = fixture!("v3_zlib_bomb.bin");
    assert!(p.len() < 10_000);
    let err = decode(p).unwrap_err();
    assert_eq!(err.reason(), "decompress");
    assert!(matches!(
        err,
        DecodeError::Decompress {
            cause: InflateError::TooLarge {
                format: Compression::Zlib,
                limit: 65_536
            },
            ..
        }
    ));
    // The inflater stops one byte past the limit whatever the stream holds.
    let body = decode_v3(p).unwrap().compressed_payload.unwrap().body;
    assert!(matches!(
        inflate(body, 1_000),
        Err(InflateError::TooLarge { limit: 1_000, .. })
    ));
    // A limit large enough lets it through.
    assert_eq!(inflate(body, 10_000_000).unwrap().len(), 10_000_000);
}

#[test]
fn corrupt_compressed_payloads() {
    let p = fixture!("v3_zlib.bin");
    let c = decode_v3(p).unwrap().compressed_payload.unwrap();

    // Every truncation of the compressed stream is an error, never a short payload.
    for cut in 0..c.body.len() {
        let mut t = p[..c.offset].to_vec();
        t.extend_from_slice(&[0, 0, 0, 0x10]);
        t.extend_from_slice(&(6 + cut as u16).to_be_bytes());
        t.extend_from_slice(&c.body[..cut]);
        patch_len(&mut t);
        let err = decode(&t).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Decompress {
                    cause: InflateError::Corrupt { .. },
                    ..
                }
            ),
            "cut at {cut}: {err:?}"
        );
    }

    // A flipped byte inside the deflate data or the Adler-32 trailer.
    for at in [2, c.body.len() / 2, c.body.len() - 1] {
        let mut t = p.to_vec();
        t[c.offset + 6 + at] ^= 0x55;
        assert_eq!(
            decode(&t).unwrap_err().reason(),
            "decompress",
            "flip at {at}"
        );
    }
}

#[test]
fn plain_payload_wins_over_compressed() {
    let mut p = fixture!("v3_zlib.bin").to_vec();
    p.extend_from_slice(&[0, 0, 0, 0x0f, 0, 8, b'h', b'i']);
    patch_len(&mut p);
    let m = decode(&p).unwrap();
    assert_eq!(m.payload.as_deref(), Some(&b"hi"[..]));
    assert!(!m.payload_compressed);
}

#[test]
fn error_reasons_are_bounded_labels() {
    let cases: Vec<(DecodeError, &str)> = vec![
        (decode(b"").unwrap_err(), "truncated"),
        (decode(b"HEP3\0").unwrap_err(), "truncated"),
        (decode_v3(b"XEP3\0\x06").unwrap_err(), "bad_magic"),
        (decode(b"HEP3\0\x08x").unwrap_err(), "length"),
        (
            decode(b"HEP3\0\x0b\0\0\0\x01\0").unwrap_err(),
            "chunk_length",
        ),
        (
            decode(b"HEP3\0\x0c\0\0\0\x01\0\x06").unwrap_err(),
            "chunk_size",
        ),
        (
            decode(fixture!("v3_zlib_bomb.bin")).unwrap_err(),
            "decompress",
        ),
        (decode(b"\x01\x10\x03\x11\0\0\0\0").unwrap_err(), "family"),
        (decode(b"\x08").unwrap_err(), "protobuf"),
    ];
    for (err, reason) in cases {
        assert_eq!(err.reason(), reason, "{err}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(
        decode(b"HEP3\0\x0b\0\0\0\x01\0").unwrap_err(),
        DecodeError::ChunkLength {
            offset: 6,
            declared: 6,
            available: 5
        }
    );
}
