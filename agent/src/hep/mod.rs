//! HEP, the Homer Encapsulation Protocol: sending (v3 encoder) and receiving (v1, v2, v3 and
//! protobuf decoders, a TCP stream framer, relay helpers).
//!
//! Wire formats: `../shared/docs/hep.md` §1 — v3 §1.3 (HEP3 spec rev 37, every integer
//! big-endian), v1/v2 §1.2, protobuf §1.7, stream framing §1.8.2.
//!
//! Receive path for a listener: UDP datagrams go to [`decode_datagram`]; TCP/TLS byte streams
//! go through a [`StreamFramer`] and each frame to [`decode_datagram`]. The resulting
//! [`HepMessage`] is relayed with [`HepMessage::relay_v3`]. Decoders are borrowed views
//! ([`decode_v3`], [`decode_v12`]) that never panic on any input; errors carry offsets and
//! lengths, and [`DecodeError::reason`] gives a bounded counter label.

pub mod chunk;
mod decode;
mod encode;
mod error;
mod inflate;
mod legacy;
mod message;
mod protobuf;
mod rewrite;
mod stream;

pub use decode::{Chunk, Hep3, decode_v3};
pub use encode::{EncodeError, Hep3Writer, HepEncoder, NodeIdentity};
pub use error::{Compression, DecodeError, InflateError, ProtobufError};
pub use inflate::{DEFAULT_MAX_INFLATED_LEN, inflate};
pub use legacy::{ByteOrder, HepV12, V2Time, decode_v12};
pub use message::{HepMessage, HepVersion, Limits, decode_datagram};
pub use protobuf::decode_protobuf;
pub use rewrite::{IdentityRewrite, rewrite_identity};
pub use stream::{FramerStats, StreamFramer};

#[cfg(test)]
mod tests;
