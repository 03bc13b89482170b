//! Tests of the HEP codec from named byte fixtures (`../fixtures/`, built by
//! `make_fixtures.py` from hand-picked fields; see its docstring).

mod legacy;
mod pcaps;
mod protobuf;
mod relay;
mod stream;
mod v3;

use bytes::Bytes;

/// A fixture file by name.
macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/hep/fixtures/",
            $name
        ))
        .as_slice()
    };
}
pub(crate) use fixture;

/// The SIP payloads of `make_fixtures.py`.
pub const SIP_INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
From: <sip:alice@example.com>;tag=1928301774\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n";

pub const SIP_REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKnashds7\r\n\
From: <sip:carol@example.com>;tag=456248\r\n\
To: <sip:carol@example.com>\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:carol@198.51.100.7>\r\n\
Expires: 7200\r\n\
Content-Length: 0\r\n\r\n";

/// Decodes with the default limits.
pub fn decode(bytes: &[u8]) -> Result<super::HepMessage, super::DecodeError> {
    super::decode_datagram(Bytes::copy_from_slice(bytes), &super::Limits::default())
}

/// Rewrites the total length of a HEP3 packet after editing it.
pub fn patch_len(p: &mut [u8]) {
    let len = u16::try_from(p.len()).expect("test packets fit the length field");
    p[4..6].copy_from_slice(&len.to_be_bytes());
}
