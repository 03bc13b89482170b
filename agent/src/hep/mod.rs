//! HEP, the Homer Encapsulation Protocol: chunk numbers, the v3 encoder and the v3 decoder.
//!
//! Wire format: `../shared/docs/hep.md` §1.3 (HEP3 spec rev 37). Every integer is big-endian.

pub mod chunk;
mod decode;
mod encode;

pub use decode::{Chunk, DecodeError, Hep3, decode_v3};
pub use encode::{EncodeError, HepEncoder, NodeIdentity};

#[cfg(test)]
mod tests;
