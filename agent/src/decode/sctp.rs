//! SCTP (RFC 9260) common header and the user data of DATA chunks (§3.3.1) and I-DATA chunks
//! (RFC 8260 §2.1). A user message split over chunks (B, then middle chunks, then E) comes
//! out as pieces that [`crate::reassembly::SctpTable`] puts back together.

use super::skip::SkipReason;

const CHUNK_DATA: u8 = 0;
const CHUNK_IDATA: u8 = 64;

/// Ports of the SCTP common header.
pub fn ports(packet: &[u8]) -> Result<(u16, u16), SkipReason> {
    let h = packet.get(..12).ok_or(SkipReason::Truncated)?;
    Ok((
        u16::from_be_bytes([h[0], h[1]]),
        u16::from_be_bytes([h[2], h[3]]),
    ))
}

/// A user message found in a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserData<'a> {
    /// A whole user message.
    Whole(&'a [u8]),
    /// A piece of a user message split over chunks.
    Piece {
        stream: u16,
        tsn: u32,
        begin: bool,
        end: bool,
        data: &'a [u8],
    },
}

/// Walks the chunks after the common header; stops at the first truncated chunk.
pub fn user_data(packet: &[u8]) -> impl Iterator<Item = UserData<'_>> {
    let mut at = 12;
    std::iter::from_fn(move || {
        loop {
            let h = packet.get(at..at + 4)?;
            let (kind, flags) = (h[0], h[1]);
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if len < 4 {
                return None;
            }
            let chunk = packet.get(at..at + len)?;
            at += len.div_ceil(4) * 4;
            let header = match kind {
                CHUNK_DATA => 16,
                CHUNK_IDATA => 20,
                _ => continue,
            };
            let Some(data) = chunk.get(header..) else {
                continue;
            };
            // B (0x02) and E (0x01) both set: the chunk holds the whole message.
            let (tsn, stream) = (
                u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
                u16::from_be_bytes([chunk[8], chunk[9]]),
            );
            return Some(if flags & 0x03 == 0x03 {
                UserData::Whole(data)
            } else {
                UserData::Piece {
                    stream,
                    tsn,
                    begin: flags & 0x02 != 0,
                    end: flags & 0x01 != 0,
                    data,
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(chunks: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0];
        for c in chunks {
            p.extend_from_slice(c);
            while p.len() % 4 != 0 {
                p.push(0);
            }
        }
        p
    }

    #[test]
    fn data_chunks() {
        let data: &[u8] = &[
            0, 3, 0, 19, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c',
        ];
        let sack: &[u8] = &[3, 0, 0, 4];
        let piece: &[u8] = &[0, 2, 0, 17, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, b'x'];
        let p = packet(&[sack, data, piece]);
        assert_eq!(ports(&p), Ok((5060, 5060)));
        let found: Vec<_> = user_data(&p).collect();
        let piece = UserData::Piece {
            stream: 0,
            tsn: 2,
            begin: true,
            end: false,
            data: b"x",
        };
        assert_eq!(found, vec![UserData::Whole(b"abc"), piece]);
        // A cut packet yields the chunks wholly before the cut, never a partial one.
        for n in 0..p.len() {
            let got: Vec<_> = user_data(&p[..n]).collect();
            assert!(found.starts_with(&got), "cut at {n}: {got:?}");
        }
        assert_eq!(user_data(&p[..p.len() - 4]).count(), 1);
        assert_eq!(ports(&p[..11]), Err(SkipReason::Truncated));
    }
}
