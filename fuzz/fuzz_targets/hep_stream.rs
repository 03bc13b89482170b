//! Fuzzes the HEP3 stream framer with the input cut at points the input itself chooses.

#![no_main]

use hepcap::hep::{StreamFramer, chunk, decode_v3};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Header: maximum frame length (2 bytes), read size (1), cut seed (4); then the stream.
    let Some((head, stream)) = data.split_first_chunk::<7>() else {
        return;
    };
    let max_frame_len = usize::from(u16::from_be_bytes([head[0], head[1]]));
    let read_size = 1 + usize::from(head[2]);
    let mut seed = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) | 1;

    // Reference: the whole stream at once.
    let mut whole = StreamFramer::new(max_frame_len, 1 << 17);
    let mut expected = Vec::new();
    whole.feed(stream, |f| expected.push(f.to_vec()));
    check(&whole, &expected, stream.len());

    // The same stream in pieces, alternating feed and spare/commit.
    let mut framer = StreamFramer::new(max_frame_len, read_size);
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut use_spare = false;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (1 + seed as usize % 700).min(rest.len());
        if use_spare {
            let spare = framer.spare();
            assert!(!spare.is_empty(), "room to read after draining");
            let n = n.min(spare.len());
            spare[..n].copy_from_slice(&rest[..n]);
            framer.commit(n);
            rest = &rest[n..];
            while let Some(f) = framer.next_frame() {
                frames.push(f.to_vec());
            }
        } else {
            framer.feed(&rest[..n], |f| frames.push(f.to_vec()));
            rest = &rest[n..];
        }
        use_spare = !use_spare;
        assert!(framer.buffered() < max_frame_len.max(12));
    }
    check(&framer, &frames, stream.len());
    assert_eq!(
        frames, expected,
        "frames do not depend on how the stream is cut"
    );
    assert_eq!(framer.stats(), whole.stats());
});

fn check(framer: &StreamFramer, frames: &[Vec<u8>], input_len: usize) {
    let s = framer.stats();
    assert_eq!(s.messages, frames.len() as u64);
    let framed: usize = frames.iter().map(Vec::len).sum();
    assert_eq!(
        framed as u64 + s.skipped_bytes + framer.buffered() as u64,
        input_len as u64,
        "every byte is framed, skipped or buffered"
    );
    for f in frames {
        assert!(chunk::has_magic(f));
        assert!(f.len() >= 12);
        assert_eq!(usize::from(u16::from_be_bytes([f[4], f[5]])), f.len());
        let _ = decode_v3(f);
    }
}
