//! The one error type of every HEP decoder, with bounded labels for counters.

use super::HepVersion;

/// Why a datagram or packet was rejected. Offsets count from the start of the packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DecodeError {
    /// A zero-length datagram: nothing to tell the version by.
    #[error("empty datagram")]
    Empty,
    /// Fewer bytes than the fixed header of the detected version.
    #[error("{version} packet of {available} bytes is truncated, its header needs {needed}")]
    Truncated {
        version: HepVersion,
        needed: usize,
        available: usize,
    },
    /// Not the packet id the decoder expects: `HEP3`/`EEP3` for v3, a first byte of 1 or 2
    /// for v1/v2.
    #[error("bad magic {magic:02x?}")]
    BadMagic { magic: [u8; 4] },
    /// The HEP3 header's total length differs from the bytes given.
    #[error("header says {declared} bytes, packet has {actual}")]
    Length { declared: usize, actual: usize },
    /// A chunk header or body runs past the end of the packet, or is shorter than 6 bytes.
    #[error("chunk at offset {offset} declares {declared} bytes, {available} available")]
    ChunkLength {
        offset: usize,
        declared: usize,
        available: usize,
    },
    /// A fixed-size generic chunk has the wrong body size.
    #[error(
        "chunk 0x{chunk_type:04x} at offset {offset} has {actual} body bytes, needs {expected}"
    )]
    ChunkSize {
        offset: usize,
        chunk_type: u16,
        expected: usize,
        actual: usize,
    },
    /// The compressed payload chunk (0x0010) at `offset` could not be inflated within the limit.
    #[error("compressed payload at offset {offset} ({compressed_len} bytes): {cause}")]
    Decompress {
        offset: usize,
        compressed_len: usize,
        #[source]
        cause: InflateError,
    },
    /// An address family other than 2 (IPv4) or 10 (IPv6) where the layout depends on it.
    #[error("{version} packet has address family {family}, expected 2 or 10")]
    Family { version: HepVersion, family: u32 },
    /// Not a protobuf HEP message, or one whose fields make no packet.
    #[error("protobuf hep: {0}")]
    Protobuf(#[source] ProtobufError),
}

impl DecodeError {
    /// Bounded label for counters (`reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty | DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadMagic { .. } => "bad_magic",
            DecodeError::Length { .. } => "length",
            DecodeError::ChunkLength { .. } => "chunk_length",
            DecodeError::ChunkSize { .. } => "chunk_size",
            DecodeError::Decompress { .. } => "decompress",
            DecodeError::Family { .. } => "family",
            DecodeError::Protobuf(_) => "protobuf",
        }
    }
}

/// Container format of a compressed payload, told apart by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// RFC 1950: what zlib's `compress()` writes (captagent).
    Zlib,
    /// RFC 1952, magic `1f 8b`.
    Gzip,
    /// RFC 1951 without a container, tried when neither header matches.
    Deflate,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::Zlib => "zlib",
            Compression::Gzip => "gzip",
            Compression::Deflate => "deflate",
        })
    }
}

/// Why a compressed payload was not inflated.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum InflateError {
    /// The inflated payload would be larger than the limit: a compression bomb or a limit set
    /// too low. Inflation stopped at the limit.
    #[error("{format} stream inflates past the {limit}-byte limit")]
    TooLarge { format: Compression, limit: usize },
    /// The stream is corrupt or ends early.
    #[error("{format} stream is corrupt: {detail}")]
    Corrupt { format: Compression, detail: String },
}

/// Why a datagram is not a usable protobuf HEP message.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ProtobufError {
    /// The bytes are not a protobuf message of this schema.
    #[error("not a protobuf message: {0}")]
    Wire(String),
    /// A field the conversion needs is absent.
    #[error("field {field} missing")]
    Missing { field: &'static str },
    /// A numeric field does not fit the HEP3 chunk it maps to.
    #[error("field {field} = {value} out of range")]
    Range { field: &'static str, value: u32 },
    /// An address field is not a textual IPv4 or IPv6 address of the message's family.
    #[error("field {field} is not an address of the message's family")]
    Address { field: &'static str },
}
