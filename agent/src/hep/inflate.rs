//! Bounded inflation of the compressed payload chunk 0x0010 (hep.md §1.3.3: "gzip/inflate").
//!
//! Senders differ in the container: captagent writes zlib's `compress()` output (RFC 1950),
//! others may write gzip (RFC 1952). The container is told by its first bytes: `1f 8b` is gzip;
//! a valid zlib header (deflate method, window ≤ 32 KiB, header check multiple of 31) is zlib;
//! anything else is tried as a bare deflate stream (RFC 1951).
//!
//! Output is capped: at most `limit + 1` bytes are ever produced, so a compression bomb costs
//! at most the limit in memory and the time to inflate that much, and is then rejected.

use std::io::Read;

use flate2::bufread::{DeflateDecoder, GzDecoder, ZlibDecoder};

use super::{Compression, InflateError};

/// Default cap on an inflated payload: 64 KiB, what one HEP3 packet can carry uncompressed.
pub const DEFAULT_MAX_INFLATED_LEN: usize = 64 * 1024;

/// Tells the container of a compressed payload by its first two bytes.
pub fn detect(data: &[u8]) -> Compression {
    match data {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [cmf, flg, ..]
            if cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0 =>
        {
            Compression::Zlib
        }
        _ => Compression::Deflate,
    }
}

/// Inflates `data` into a new buffer of at most `limit` bytes.
pub fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let format = detect(data);
    match format {
        Compression::Gzip => read_capped(GzDecoder::new(data), format, limit),
        Compression::Zlib => read_capped(ZlibDecoder::new(data), format, limit),
        Compression::Deflate => read_capped(DeflateDecoder::new(data), format, limit),
    }
}

fn read_capped(
    reader: impl Read,
    format: Compression,
    limit: usize,
) -> Result<Vec<u8>, InflateError> {
    // One byte past the limit tells "exactly the limit" from "more than the limit".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::with_capacity(limit.min(DEFAULT_MAX_INFLATED_LEN));
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| InflateError::Corrupt {
            format,
            detail: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(InflateError::TooLarge { format, limit });
    }
    Ok(out)
}
