//! The TCP stream framer (hep.md §1.8.2): splits, garbage, bogus headers, bounded memory.

use super::super::*;
use super::{fixture, patch_len};

/// xorshift64: deterministic split points without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn packets() -> Vec<&'static [u8]> {
    vec![
        fixture!("v3_spec_example.bin"),
        fixture!("v3_ipv6_all_chunks.bin"),
        fixture!("v3_zlib.bin"),
        fixture!("v3_gzip.bin"),
        fixture!("v3_keepalive.bin"),
        fixture!("v3_zlib_bomb.bin"),
    ]
}

/// Feeds `stream` in pieces cut at random points and collects the frames.
fn frame_randomly(framer: &mut StreamFramer, stream: &[u8], seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut frames = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        // Mostly small reads, sometimes a big one.
        let max = if rng.below(8) == 0 { 20_000 } else { 300 };
        let n = (1 + rng.below(max)).min(rest.len());
        framer.feed(&rest[..n], |f| frames.push(f.to_vec()));
        rest = &rest[n..];
    }
    frames
}

#[test]
fn random_splits_yield_every_packet() {
    let stream: Vec<u8> = packets().concat();
    for seed in 1..=50 {
        let mut framer = StreamFramer::new(65_535, 4096);
        let frames = frame_randomly(&mut framer, &stream, seed);
        assert_eq!(frames, packets(), "seed {seed}");
        assert_eq!(
            framer.stats(),
            FramerStats {
                messages: 6,
                skipped_bytes: 0,
                resyncs: 0
            }
        );
        assert_eq!(framer.buffered(), 0);
    }
}

#[test]
fn one_byte_at_a_time_and_all_at_once() {
    let stream: Vec<u8> = packets().concat();
    let mut framer = StreamFramer::new(65_535, 1);
    let mut frames = Vec::new();
    for b in &stream {
        framer.feed(std::slice::from_ref(b), |f| frames.push(f.to_vec()));
    }
    assert_eq!(frames, packets());

    let mut framer = StreamFramer::new(65_535, 1 << 20);
    let mut frames = Vec::new();
    framer.feed(&stream, |f| frames.push(f.to_vec()));
    assert_eq!(frames, packets());
}

#[test]
fn garbage_between_packets_is_skipped_and_counted() {
    let garbage: [&[u8]; 6] = [
        b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEP",
        b"EEP3",
        b"HHHHEEEE",
        &[0u8; 3000],
    ];
    let mut stream = Vec::new();
    let mut expected_skip = 0;
    for (g, p) in garbage.iter().zip(packets()) {
        stream.extend_from_slice(g);
        stream.extend_from_slice(p);
        expected_skip += g.len();
    }
    for seed in 1..=30 {
        let mut framer = StreamFramer::new(65_535, 1500);
        let frames = frame_randomly(&mut framer, &stream, seed);
        assert_eq!(frames, packets(), "seed {seed}");
        let s = framer.stats();
        assert_eq!(s.messages, 6);
        assert_eq!(s.skipped_bytes, expected_skip as u64, "seed {seed}");
        assert_eq!(s.resyncs, 6, "one per garbage run");
    }
}

#[test]
fn bogus_headers_do_not_swallow_packets() {
    let spec = fixture!("v3_spec_example.bin");
    let bogus: [&[u8]; 6] = [
        // Absurd lengths: above the maximum, below the minimum.
        b"HEP3\xff\xff",
        b"HEP3\x00\x05",
        b"EEP3\x00\x0b\x00",
        // A plausible length whose first chunk is shorter than a chunk header.
        b"HEP3\x01\x00\x00\x00\x00\x01\x00\x02",
        // A plausible length whose first chunk crosses the declared end.
        b"HEP3\x00\x20\x00\x00\x00\x01\x00\x40",
        // A plausible length whose chunk chain breaks at the second chunk: the framer must not
        // wait for 2000 bytes it already knows are not a packet.
        b"HEP3\x07\xd0\x00\x00\x00\x01\x00\x07\x02\x00\x00\x00\x02\x00\x03",
    ];
    for b in bogus {
        let mut stream = b.to_vec();
        stream.extend_from_slice(spec);
        stream.extend_from_slice(spec);
        let mut framer = StreamFramer::new(2048, 512);
        let mut frames = Vec::new();
        framer.feed(&stream, |f| frames.push(f.to_vec()));
        assert_eq!(frames, [spec, spec], "after {b:02x?}");
        let s = framer.stats();
        assert_eq!(s.skipped_bytes, b.len() as u64, "after {b:02x?}");
        assert_eq!(s.resyncs, 1);
    }
}

#[test]
fn plausible_bogus_header_costs_only_itself_once_contradicted() {
    // A bogus header whose chunk chain is consistent with everything after it except the end:
    // the framer waits, and when the chain is finally contradicted the packets inside the
    // waited-for bytes are still found.
    let spec = fixture!("v3_spec_example.bin");
    let mut stream = b"HEP3\x00\x80".to_vec();
    stream.extend_from_slice(spec);
    stream.extend_from_slice(spec);
    let mut framer = StreamFramer::new(65_535, 64);
    let mut frames = Vec::new();
    // Up to the first packet's end the bogus chain holds: nothing yet.
    framer.feed(&stream[..6 + spec.len()], |f| frames.push(f.to_vec()));
    assert!(frames.is_empty());
    framer.feed(&stream[6 + spec.len()..], |f| frames.push(f.to_vec()));
    // The bogus header's chain: the spec packet's first 6 bytes read as a chunk header
    // (vendor 0x4845, type 0x5033, length 0x0071), then the spec's chunks, crossing 0x80.
    assert_eq!(frames, [spec, spec]);
    assert_eq!(framer.stats().skipped_bytes, 6);
}

#[test]
fn frames_above_the_maximum_are_skipped() {
    let big = fixture!("v3_zlib_bomb.bin");
    let spec = fixture!("v3_spec_example.bin");
    let mut framer = StreamFramer::new(1024, 256);
    let mut frames = Vec::new();
    framer.feed(&[big, spec].concat(), |f| frames.push(f.to_vec()));
    assert_eq!(frames, [spec]);
    assert_eq!(framer.stats().messages, 1);
    assert!(framer.stats().skipped_bytes >= big.len() as u64);
}

#[test]
fn memory_stays_bounded_on_endless_garbage() {
    let mut framer = StreamFramer::new(65_535, 4096);
    let mut rng = Rng(7);
    let mut chunk = vec![0u8; 4096];
    let mut frames = 0u64;
    for _ in 0..512 {
        for b in &mut chunk {
            // Lots of candidate starts: H, E and header prefixes.
            *b = match rng.below(4) {
                0 => b'H',
                1 => b'E',
                2 => b"P3"[rng.below(2)],
                _ => rng.next() as u8,
            };
        }
        framer.feed(&chunk, |f| {
            // Garbage can frame by chance (magic, length and chain all consistent); whatever
            // comes out is chain-consistent and left to the decoder.
            assert!(f.len() >= 12 && chunk::has_magic(f));
            frames += 1;
        });
        assert!(framer.buffered() < 65_535);
    }
    let s = framer.stats();
    assert_eq!(s.messages, frames);
    assert!(s.skipped_bytes > 2_000_000);
}

#[test]
fn spare_always_has_room_after_draining() {
    let mut framer = StreamFramer::new(200, 100);
    let stream: Vec<u8> = [fixture!("v3_spec_example.bin"); 20].concat();
    let mut rng = Rng(3);
    let mut rest = &stream[..];
    let mut count = 0;
    while !rest.is_empty() {
        let spare = framer.spare();
        assert_eq!(spare.len(), 100);
        let n = spare.len().min(rest.len()).min(1 + rng.below(150));
        spare[..n].copy_from_slice(&rest[..n]);
        framer.commit(n);
        rest = &rest[n..];
        while let Some(f) = framer.next_frame() {
            assert_eq!(f, fixture!("v3_spec_example.bin"));
            count += 1;
        }
    }
    assert_eq!(count, 20);
    // Committing more than the spare space is clamped.
    framer.commit(usize::MAX);
    assert!(framer.buffered() <= 300);
}

#[test]
fn frames_decode_or_fail_without_breaking_the_stream() {
    // A well-framed packet with a wrong fixed size: the framer hands it out, the decoder
    // rejects it, the next packet is fine.
    let mut bad = fixture!("v3_spec_example.bin").to_vec();
    bad[11] = 8; // family chunk length 8: body 2 for a uint8
    bad.splice(13..13, [0]);
    patch_len(&mut bad);
    let spec = fixture!("v3_spec_example.bin");
    let mut framer = StreamFramer::new(65_535, 4096);
    let mut results = Vec::new();
    framer.feed(&[&bad[..], spec].concat(), |f| {
        results.push(decode_v3(f).map(|h| h.chunks.len()).map_err(|e| e.reason()))
    });
    assert_eq!(results, [Err("chunk_size"), Ok(11)]);
    assert_eq!(framer.stats().skipped_bytes, 0);
}
