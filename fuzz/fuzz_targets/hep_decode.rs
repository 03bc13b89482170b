//! Fuzzes the receive-side HEP decoders: any datagram, any version.

#![no_main]

use bytes::Bytes;
use hepcap::hep::{
    self, DecodeError, HepMessage, HepVersion, IdentityRewrite, Limits, decode_datagram, decode_v3,
    decode_v12,
};
use libfuzzer_sys::fuzz_target;

/// Small enough that bombs are cheap, large enough for any real payload.
const LIMITS: Limits = Limits {
    max_inflated_len: 64 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let _ = decode_v3(data);
    let _ = decode_v12(data);

    match decode_datagram(Bytes::copy_from_slice(data), &LIMITS) {
        Ok(m) => check_message(&m, data),
        Err(e) => check_error(&e),
    }
});

fn check_error(e: &DecodeError) {
    const REASONS: &[&str] = &[
        "truncated",
        "bad_magic",
        "length",
        "chunk_length",
        "chunk_size",
        "decompress",
        "family",
        "protobuf",
    ];
    assert!(REASONS.contains(&e.reason()));
    assert!(!e.to_string().is_empty());
}

fn check_message(m: &HepMessage, data: &[u8]) {
    assert_eq!(&m.raw[..], data);
    let _ = m.is_keepalive();

    // Relay without a rewrite: v3 byte for byte, others re-encoded with the same fields.
    let mut out = Vec::new();
    if let Ok(n) = m.relay_v3(&IdentityRewrite::default(), &mut out) {
        assert_eq!(n, out.len());
        if m.version == HepVersion::V3 {
            assert_eq!(out, data);
        }
        let back = decode_datagram(Bytes::from(out), &LIMITS).expect("a relayed packet decodes");
        assert_eq!(back.version, HepVersion::V3);
        if m.version != HepVersion::V3 {
            let same = HepMessage {
                version: m.version,
                raw: m.raw.clone(),
                ..back
            };
            assert_eq!(&same, m, "re-encoding keeps every field");
        }
    }

    // Relay with every identity chunk rewritten.
    let rewrite = IdentityRewrite {
        node_id: Some(0xfeed),
        node_name: Some("fuzz-node".into()),
        password: Some("pw".into()),
    };
    let mut out = Vec::new();
    if m.relay_v3(&rewrite, &mut out).is_ok() {
        let h = decode_v3(&out).expect("a rewritten packet decodes");
        assert_eq!(h.capture_id, Some(0xfeed));
        assert_eq!(h.node_name, Some(&b"fuzz-node"[..]));
        assert_eq!(h.auth_key, Some(&b"pw"[..]));
        if let Some(orig) = m.as_v3() {
            let identity = |c: &&hep::Chunk<'_>| {
                c.vendor == 0
                    && [
                        hep::chunk::CAPTURE_ID,
                        hep::chunk::NODE_NAME,
                        hep::chunk::AUTH_KEY,
                    ]
                    .contains(&c.chunk_type)
            };
            let kept = |h: &hep::Hep3<'_>| -> Vec<(u16, u16, Vec<u8>)> {
                h.chunks
                    .iter()
                    .filter(|c| !identity(c))
                    .map(|c| (c.vendor, c.chunk_type, c.body.to_vec()))
                    .collect()
            };
            assert_eq!(kept(&orig), kept(&h), "other chunks kept in order");
            assert_eq!(orig.magic, h.magic);
        }
    }
}
