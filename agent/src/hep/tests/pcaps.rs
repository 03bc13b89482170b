//! The real HEP3 captures in `shared/pcaps` (hep-wireshark's test files, GPL-2.0: read in
//! place, never copied here), when the shared folder sits beside the repository.
//!
//! No pcap reader is needed: a UDP payload lies contiguous inside its capture record, so every
//! `HEP3` in the file is tried with the length it declares. The expected figures are those of
//! `shared/pcaps/INDEX.md` (files 31 and 32).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::super::*;

fn shared_pcap(name: &str) -> Option<Vec<u8>> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "shared",
        "pcaps",
        name,
    ]
    .iter()
    .collect();
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!("skipped: {} not found", path.display());
            None
        }
    }
}

/// Every HEP3 packet found in a capture file, decoded.
fn hep_in(file: &[u8]) -> Vec<HepMessage> {
    let mut found = Vec::new();
    for at in memchr::memmem::find_iter(file, b"HEP3") {
        let Some(len) = file.get(at + 4..at + 6) else {
            continue;
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let Some(packet) = file.get(at..at + len) else {
            continue;
        };
        if let Ok(m) = decode_datagram(bytes::Bytes::copy_from_slice(packet), &Limits::default()) {
            found.push(m);
        }
    }
    found
}

#[test]
fn hep_wireshark_plain() {
    let Some(file) = shared_pcap("hepwireshark__hep.pcap") else {
        return;
    };
    let msgs = hep_in(&file);
    assert_eq!(msgs.len(), 8);
    let types: Vec<u8> = msgs.iter().filter_map(|m| m.proto_type).collect();
    assert_eq!(types.iter().filter(|&&t| t == 1).count(), 6);
    assert_eq!(types.iter().filter(|&&t| t == 5).count(), 1);
    assert_eq!(types.iter().filter(|&&t| t == 100).count(), 1);
    for m in &msgs {
        assert_eq!(m.auth_key.as_deref(), Some(&b"myHep"[..]));
        assert!(!m.payload_compressed);
        assert!(m.payload.as_ref().is_some_and(|p| !p.is_empty()));
        // Relayed byte for byte.
        let mut out = Vec::new();
        m.relay_v3(&IdentityRewrite::default(), &mut out).unwrap();
        assert_eq!(out, m.raw);
    }
    assert!(msgs.iter().any(|m| m.correlation_id.is_some()));
}

#[test]
fn hep_wireshark_compressed() {
    let Some(file) = shared_pcap("hepwireshark__hep3_compressed.pcap.pcapng") else {
        return;
    };
    let msgs = hep_in(&file);
    assert_eq!(msgs.len(), 21);
    for m in &msgs {
        assert!(m.payload_compressed);
        assert_eq!(
            inflate::detect(m.as_v3().unwrap().compressed_payload.unwrap().body),
            Compression::Zlib
        );
        let p = m.payload.as_deref().unwrap();
        assert!(p.starts_with(b"REGISTER ") || p.starts_with(b"SIP/2.0 "));
    }
    let distinct: BTreeSet<&[u8]> = msgs.iter().filter_map(|m| m.payload.as_deref()).collect();
    assert_eq!(distinct.len(), 7);
}
