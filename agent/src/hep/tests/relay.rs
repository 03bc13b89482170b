//! Relaying: v3 byte for byte, identity rewriting, v1/v2/protobuf re-encoded as HEP3.

use bytes::Bytes;

use super::super::*;
use super::{SIP_INVITE, decode, fixture, patch_len};

fn rewrite_all() -> IdentityRewrite {
    IdentityRewrite {
        node_id: Some(7),
        node_name: Some("relay-1".into()),
        password: Some("secret".into()),
    }
}

#[test]
fn v3_is_relayed_byte_for_byte() {
    for p in [
        fixture!("v3_spec_example.bin"),
        fixture!("v3_ipv6_all_chunks.bin"),
        fixture!("v3_gzip.bin"),
    ] {
        let m = decode(p).unwrap();
        let mut out = vec![0xaa];
        let n = m.relay_v3(&IdentityRewrite::default(), &mut out).unwrap();
        assert_eq!(n, p.len());
        assert_eq!(&out[1..], p);
        // A rewrite to nothing changes nothing either.
        let mut again = Vec::new();
        rewrite_identity(
            &decode_v3(p).unwrap(),
            &IdentityRewrite::default(),
            &mut again,
        )
        .unwrap();
        assert_eq!(again, p);
    }
}

#[test]
fn rewrite_replaces_in_place_and_keeps_everything_else() {
    let p = fixture!("v3_ipv6_all_chunks.bin");
    let m = decode(p).unwrap();
    let mut out = Vec::new();
    let n = m.relay_v3(&rewrite_all(), &mut out).unwrap();
    assert_eq!(n, out.len());

    let before = decode_v3(p).unwrap();
    let after = decode_v3(&out).unwrap();
    assert_eq!(after.capture_id, Some(7));
    assert_eq!(after.node_name, Some(&b"relay-1"[..]));
    assert_eq!(after.auth_key, Some(&b"secret"[..]));
    assert_eq!(before.chunks.len(), after.chunks.len());
    for (b, a) in before.chunks.iter().zip(&after.chunks) {
        assert_eq!((b.vendor, b.chunk_type), (a.vendor, a.chunk_type));
        let identity = b.vendor == 0
            && [chunk::CAPTURE_ID, chunk::NODE_NAME, chunk::AUTH_KEY].contains(&b.chunk_type);
        if !identity {
            assert_eq!(
                a.body, b.body,
                "chunk {:#x} of vendor {}",
                b.chunk_type, b.vendor
            );
        }
    }
    // Only the name and the password changed size.
    assert_eq!(out.len(), p.len() + (7 - 6) + (6 - 5));
}

#[test]
fn rewrite_inserts_missing_chunks_before_the_payload() {
    let p = fixture!("v3_spec_example.bin");
    let mut out = Vec::new();
    rewrite_identity(&decode_v3(p).unwrap(), &rewrite_all(), &mut out).unwrap();
    let h = decode_v3(&out).unwrap();
    let types: Vec<u16> = h.chunks.iter().map(|c| c.chunk_type).collect();
    assert_eq!(types, [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 0x0e, 0x13, 0x0f]);
    assert_eq!(h.capture_id, Some(7));
    assert_eq!(h.auth_key, Some(&b"secret"[..]));
    assert_eq!(h.node_name, Some(&b"relay-1"[..]));
    assert_eq!(h.payload, Some(&b"INVITE sip:bob"[..]));
    // Up to the capture id chunk (offset 83) the packet is byte for byte the original.
    assert_eq!(&out[6..83], &p[6..83]);

    // Only the name: the id chunk stays the sender's.
    let name_only = IdentityRewrite {
        node_name: Some("n".into()),
        ..IdentityRewrite::default()
    };
    let mut out = Vec::new();
    rewrite_identity(&decode_v3(p).unwrap(), &name_only, &mut out).unwrap();
    let h = decode_v3(&out).unwrap();
    assert_eq!(
        (h.capture_id, h.node_name, h.auth_key),
        (Some(228), Some(&b"n"[..]), None)
    );
}

#[test]
fn rewrite_before_a_compressed_payload_and_without_any_payload() {
    let mut out = Vec::new();
    let gz = decode_v3(fixture!("v3_gzip.bin")).unwrap();
    rewrite_identity(&gz, &rewrite_all(), &mut out).unwrap();
    let h = decode_v3(&out).unwrap();
    assert_eq!(&h.magic, b"EEP3", "the packet keeps its own id");
    assert_eq!(
        h.chunks.last().unwrap().chunk_type,
        chunk::COMPRESSED_PAYLOAD
    );
    assert_eq!(h.node_name, Some(&b"relay-1"[..]));
    assert_eq!(h.auth_key, Some(&b"secret"[..]), "replaced in place");

    let no_payload = b"HEP3\0\x0d\0\0\0\x0b\0\x07\x01";
    let mut out = Vec::new();
    rewrite_identity(&decode_v3(no_payload).unwrap(), &rewrite_all(), &mut out).unwrap();
    let types: Vec<u16> = decode_v3(&out)
        .unwrap()
        .chunks
        .iter()
        .map(|c| c.chunk_type)
        .collect();
    assert_eq!(types, [0x0b, 0x0c, 0x0e, 0x13]);
}

#[test]
fn rewrite_too_large_leaves_buffer_untouched() {
    let p = fixture!("v3_spec_example.bin");
    let huge = IdentityRewrite {
        node_name: Some("x".repeat(65_500)),
        ..IdentityRewrite::default()
    };
    let mut out = vec![1, 2, 3];
    let err = rewrite_identity(&decode_v3(p).unwrap(), &huge, &mut out).unwrap_err();
    assert!(matches!(err, EncodeError::TooLarge { .. }));
    assert_eq!(out, [1, 2, 3]);

    let huger = IdentityRewrite {
        password: Some("x".repeat(70_000)),
        ..IdentityRewrite::default()
    };
    let err = rewrite_identity(&decode_v3(p).unwrap(), &huger, &mut out).unwrap_err();
    assert!(matches!(
        err,
        EncodeError::ChunkTooLarge {
            chunk_type: 0x0e,
            ..
        }
    ));
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn legacy_and_protobuf_are_reencoded_as_v3() {
    for (name, p) in [
        ("v1_ipv4", fixture!("v1_ipv4.bin")),
        ("v1_ipv6", fixture!("v1_ipv6.bin")),
        ("v2_ipv4_le", fixture!("v2_ipv4_le.bin")),
        ("v2_ipv6_le", fixture!("v2_ipv6_le.bin")),
        ("v2_ipv4_be", fixture!("v2_ipv4_be.bin")),
        ("protobuf_ipv4", fixture!("protobuf_ipv4.bin")),
        ("protobuf_ipv6_sparse", fixture!("protobuf_ipv6_sparse.bin")),
    ] {
        let m = decode(p).unwrap();
        let mut out = Vec::new();
        let n = m.relay_v3(&IdentityRewrite::default(), &mut out).unwrap();
        assert_eq!(n, out.len());
        let back = decode(&out).unwrap();
        assert_eq!(back.version, HepVersion::V3, "{name}");
        assert_eq!(
            HepMessage {
                version: m.version,
                raw: m.raw.clone(),
                ..back
            },
            m,
            "{name}: every field survives"
        );
    }
}

#[test]
fn v1_has_no_time_chunks_unless_the_listener_sets_them() {
    let mut m = decode(fixture!("v1_ipv4.bin")).unwrap();
    let mut out = Vec::new();
    m.encode_v3(&mut out).unwrap();
    let types: Vec<u16> = decode_v3(&out)
        .unwrap()
        .chunks
        .iter()
        .map(|c| c.chunk_type)
        .collect();
    assert_eq!(types, [1, 2, 3, 4, 7, 8, 0x0b, 0x0f]);

    m.ts_sec = Some(1_700_000_000);
    m.ts_usec = Some(1);
    let mut out = Vec::new();
    m.relay_v3(&rewrite_all(), &mut out).unwrap();
    let h = decode_v3(&out).unwrap();
    let types: Vec<u16> = h.chunks.iter().map(|c| c.chunk_type).collect();
    assert_eq!(types, [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 0x0e, 0x13, 0x0f]);
    assert_eq!(h.payload, Some(SIP_INVITE));
    assert_eq!(h.capture_id, Some(7));
}

#[test]
fn mixed_address_families_use_the_ipv6_chunks() {
    let mut m = decode(fixture!("v1_ipv4.bin")).unwrap();
    m.ip_family = None;
    m.dst_ip = Some("2001:db8::1".parse().unwrap());
    let mut out = Vec::new();
    m.encode_v3(&mut out).unwrap();
    let h = decode_v3(&out).unwrap();
    assert_eq!(h.src_ip, Some("::ffff:192.0.2.10".parse().unwrap()));
    assert_eq!(h.dst_ip, Some("2001:db8::1".parse().unwrap()));
}

#[test]
fn writer_dropped_unfinished_leaves_buffer_untouched() {
    let mut out = vec![9];
    {
        let mut w = Hep3Writer::new(&mut out, chunk::MAGIC);
        w.u8(chunk::IP_FAMILY, 2).u16(chunk::SRC_PORT, 1);
    }
    assert_eq!(out, [9]);
    let mut w = Hep3Writer::new(&mut out, chunk::MAGIC);
    w.chunk(0x1234, 0x0001, b"opaque");
    assert_eq!(w.finish(), Ok(18));
    assert_eq!(&out[1..], b"HEP3\0\x12\x12\x34\0\x01\0\x0copaque");
}

#[test]
fn shared_payload_of_v3_is_a_slice_of_the_datagram() {
    let raw = Bytes::copy_from_slice(fixture!("v3_spec_example.bin"));
    let m = decode_datagram(raw.clone(), &Limits::default()).unwrap();
    let payload = m.payload.unwrap();
    assert_eq!(payload.as_ptr(), raw[99..].as_ptr());
    let mut p = fixture!("v3_spec_example.bin").to_vec();
    p.truncate(93);
    patch_len(&mut p);
    assert_eq!(decode(&p).unwrap().payload, None);
}
