//! The protobuf HEP message: heplify's legacy encoding (docs: `shared/docs/hep.md` §1.7).
//!
//! `hep.proto` is the schema; `src/hep.rs` is generated from it by prost-build and committed, so
//! building needs neither `protoc` nor a build script. After editing the schema run
//! `cargo run -p hepcap-proto --features codegen --example regenerate` (pure Rust: protox
//! parses the schema); `--check` verifies the committed file is current.
//!
//! The message only describes the wire format. hepcap's `hep` module decides which fields a
//! packet must carry and converts it to its own types.

mod hep;

pub use hep::Hep;
pub use prost::Message;
