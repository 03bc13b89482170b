//! Protobuf HEP (hep.md §1.7). The fixtures come from the hand-written encoder of
//! `make_fixtures.py`, so they also check the schema against an independent implementation.

use bytes::Bytes;
use hepcap_proto::{Hep, Message as _};

use super::super::*;
use super::{SIP_INVITE, SIP_REGISTER, decode, fixture};

#[test]
fn heplify_message_with_every_field() {
    let p = fixture!("protobuf_ipv4.bin");
    let m = decode(p).unwrap();
    assert_eq!(m.version, HepVersion::Protobuf);
    assert_eq!(m.ip_family, Some(2));
    assert_eq!(m.ip_proto, Some(17));
    assert_eq!(m.src_ip, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(m.dst_ip, Some("192.0.2.20".parse().unwrap()));
    assert_eq!((m.src_port, m.dst_port), (Some(5060), Some(5080)));
    assert_eq!((m.ts_sec, m.ts_usec), (Some(1_700_000_002), Some(123_456)));
    assert_eq!(m.proto_type, Some(1));
    assert_eq!(m.capture_id, Some(2002));
    assert_eq!(m.auth_key.as_deref(), Some(&b"myHep"[..]));
    assert_eq!(m.payload.as_deref(), Some(SIP_INVITE));
    assert_eq!(
        m.correlation_id.as_deref(),
        Some(&b"a84b4c76e66710@pc33.example.com"[..])
    );
    assert_eq!(m.vlan, Some(0));
    assert_eq!(m.node_name, None);
    assert_eq!(&m.raw[..], p);

    // prost writes the same bytes as the hand-written encoder.
    let pb = Hep {
        version: Some(2),
        protocol: Some(17),
        src_ip: Some(Bytes::from_static(b"192.0.2.10")),
        dst_ip: Some(Bytes::from_static(b"192.0.2.20")),
        src_port: Some(5060),
        dst_port: Some(5080),
        tsec: Some(1_700_000_002),
        tmsec: Some(123_456),
        proto_type: Some(1),
        node_id: Some(2002),
        node_pw: Some(Bytes::from_static(b"myHep")),
        payload: Some(Bytes::from_static(SIP_INVITE)),
        cid: Some(Bytes::from_static(b"a84b4c76e66710@pc33.example.com")),
        vlan: Some(0),
    };
    assert_eq!(pb.encode_to_vec(), p);
}

#[test]
fn proto3_style_sparse_message() {
    let m = decode(fixture!("protobuf_ipv6_sparse.bin")).unwrap();
    assert_eq!(m.version, HepVersion::Protobuf);
    assert_eq!(m.ip_family, Some(10));
    assert_eq!(m.ip_proto, Some(6));
    assert_eq!(m.src_ip, Some("2001:db8::2".parse().unwrap()));
    assert_eq!(m.dst_ip, Some("2001:db8::1".parse().unwrap()));
    assert_eq!((m.src_port, m.dst_port), (Some(40000), Some(5060)));
    assert_eq!(
        (m.ts_sec, m.ts_usec, m.capture_id, m.vlan),
        (None, None, None, None)
    );
    assert_eq!(m.auth_key, None);
    assert_eq!(m.payload.as_deref(), Some(SIP_REGISTER));
}

fn encode(pb: &Hep) -> Vec<u8> {
    pb.encode_to_vec()
}

fn minimal() -> Hep {
    Hep {
        version: Some(2),
        payload: Some(Bytes::from_static(b"x")),
        ..Hep::default()
    }
}

#[test]
fn minimal_message_and_defaults() {
    let m = decode(&encode(&minimal())).unwrap();
    assert_eq!(m.src_ip, Some("0.0.0.0".parse().unwrap()));
    assert_eq!(m.dst_ip, Some("0.0.0.0".parse().unwrap()));
    assert_eq!(m.ip_proto, None);
    // Empty text fields mean "not set".
    let mut pb = minimal();
    pb.version = Some(10);
    pb.node_pw = Some(Bytes::new());
    pb.cid = Some(Bytes::new());
    pb.src_ip = Some(Bytes::new());
    let m = decode(&encode(&pb)).unwrap();
    assert_eq!((m.auth_key, m.correlation_id), (None, None));
    assert_eq!(m.src_ip, Some("::".parse().unwrap()));
}

#[test]
fn protobuf_errors() {
    let pe = |e: ProtobufError| Err(DecodeError::Protobuf(e));

    let mut pb = minimal();
    pb.version = None;
    assert_eq!(
        decode(&encode(&pb)),
        pe(ProtobufError::Missing { field: "version" })
    );
    let mut pb = minimal();
    pb.payload = None;
    assert_eq!(
        decode(&encode(&pb)),
        pe(ProtobufError::Missing { field: "payload" })
    );
    for family in [0, 1, 3, 258, 0xffff_ffff] {
        let mut pb = minimal();
        pb.version = Some(family);
        let err = decode(&encode(&pb)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Family {
                version: HepVersion::Protobuf,
                family
            }
        );
        assert_eq!(err.reason(), "family");
    }
    for (field, set) in [
        (
            "protocol",
            (|pb: &mut Hep| pb.protocol = Some(256)) as fn(&mut Hep),
        ),
        ("src_port", |pb| pb.src_port = Some(65_536)),
        ("dst_port", |pb| pb.dst_port = Some(70_000)),
        ("proto_type", |pb| pb.proto_type = Some(300)),
        ("vlan", |pb| pb.vlan = Some(0x1_0000)),
    ] {
        let mut pb = minimal();
        set(&mut pb);
        let err = decode(&encode(&pb)).unwrap_err();
        assert!(
            matches!(err, DecodeError::Protobuf(ProtobufError::Range { field: f, .. }) if f == field),
            "{field}: {err:?}"
        );
    }
    for (field, text, family) in [
        ("src_ip", &b"not an address"[..], 2),
        ("src_ip", b"<nil>", 2),
        ("dst_ip", b"2001:db8::1", 2),
        ("dst_ip", b"192.0.2.1", 10),
        ("src_ip", b"\xff\xfe", 2),
    ] {
        let mut pb = minimal();
        pb.version = Some(family);
        if field == "src_ip" {
            pb.src_ip = Some(Bytes::from_static(text));
        } else {
            pb.dst_ip = Some(Bytes::from_static(text));
        }
        assert_eq!(decode(&encode(&pb)), pe(ProtobufError::Address { field }));
    }
    // Not HEP at all: no magic, and no key of a field of the HEP message first (field 0;
    // field 31; field 1 as bytes instead of a varint; 'G' = field 8 with wire type 7).
    for garbage in [
        &b"\x07"[..],
        b"\xff\xff\xff",
        b"\x0a\x05ab",
        b"GET / HTTP/1.1\r\n",
    ] {
        let err = decode(garbage).unwrap_err();
        assert_eq!(err.reason(), "bad_magic", "{garbage:?}");
    }
    // Starts as a HEP message (field 1, varint) but the varint never ends.
    assert_eq!(decode(b"\x08\xff").unwrap_err().reason(), "protobuf");
}

#[test]
fn every_truncation_of_the_protobuf_fixtures() {
    let p = fixture!("protobuf_ipv4.bin");
    // Complete messages: after the payload (field 12), after the correlation id (13), whole.
    let vlan_field = 2;
    let cid_field = 2 + 31;
    let ok_at = [
        p.len() - vlan_field - cid_field,
        p.len() - vlan_field,
        p.len(),
    ];
    for n in 0..=p.len() {
        match decode(&p[..n]) {
            Ok(m) => {
                assert!(ok_at.contains(&n), "cut at {n} decoded");
                assert_eq!(m.payload.as_deref(), Some(SIP_INVITE));
            }
            Err(DecodeError::Empty) => assert_eq!(n, 0),
            Err(e) => {
                assert!(!ok_at.contains(&n), "cut at {n}: {e}");
                assert_eq!(e.reason(), "protobuf", "cut at {n}: {e}");
            }
        }
    }

    // The payload comes first here: until the family (field 1) follows, it is missing.
    let p = fixture!("protobuf_ipv6_sparse.bin");
    let payload_field = 1 + 2 + SIP_REGISTER.len();
    for n in 1..=p.len() {
        match decode(&p[..n]) {
            Ok(m) => {
                assert!(n >= payload_field + 2, "cut at {n} decoded");
                assert_eq!(m.payload.as_deref(), Some(SIP_REGISTER));
                assert_eq!(m.ip_family, Some(10));
            }
            Err(e) => assert_eq!(e.reason(), "protobuf", "cut at {n}: {e}"),
        }
    }
    assert_eq!(
        decode(&p[..payload_field]),
        Err(DecodeError::Protobuf(ProtobufError::Missing {
            field: "version"
        }))
    );
}

#[test]
fn text_fields_share_the_datagram() {
    let raw = Bytes::copy_from_slice(fixture!("protobuf_ipv4.bin"));
    let m = decode_datagram(raw.clone(), &Limits::default()).unwrap();
    let payload = m.payload.unwrap();
    let base = raw.as_ptr() as usize;
    let at = payload.as_ptr() as usize;
    assert!(at > base && at + payload.len() <= base + raw.len());
}
