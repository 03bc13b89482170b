//! HEP3 over TCP or TLS: cutting a byte stream into packets (hep.md §1.8.2).
//!
//! A stream is HEP3 packets back to back, each delimited by its 16-bit total length; there is
//! no other framing and v1/v2/protobuf cannot be carried. [`StreamFramer`] is a plain state
//! machine — no I/O, no clock — fed bytes in any split and handing out whole packets.
//!
//! Resynchronisation: heplify-server closes a connection on a bad length; this framer instead
//! skips bytes until a plausible header. A candidate frame at the read position is accepted
//! only if it starts with `HEP3` or `EEP3`, declares a length from 12 (the 6-byte header and at
//! least one chunk header) to the configured maximum, and its chunk-length chain is consistent
//! as far as the bytes go: every chunk at least 6 bytes, none crossing the declared end, the
//! last ending exactly on it. On the first violation the framer drops one byte and scans to the
//! next `H` or `E`; it never waits for the bytes a bogus length promises once the chunk chain
//! already contradicts it. A bogus header whose chain happens to agree with every byte so far
//! holds back the packets behind it until the chain is contradicted (at the latest when the
//! declared length is reached); they are then found in the buffer, not lost. The contents of
//! chunks are not checked here: [`super::decode_v3`] rejects a well-framed but invalid packet
//! without breaking the stream.
//!
//! Memory is bounded: one buffer of `max_frame_len + read_size` bytes, allocated once.

/// The smallest plausible packet: the 6-byte header and one 6-byte chunk header.
pub const MIN_FRAME_LEN: usize = 12;
/// The largest packet the 16-bit length field can describe.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// What a framer has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramerStats {
    /// Whole packets handed out.
    pub messages: u64,
    /// Bytes dropped while looking for a header.
    pub skipped_bytes: u64,
    /// Times the framer lost sync and had to skip bytes (runs of garbage).
    pub resyncs: u64,
}

/// Cuts a HEP3 byte stream into packets.
///
/// Socket use, reading straight into the framer's buffer:
///
/// ```
/// # use hepcap::hep::StreamFramer;
/// # let mut input: &[u8] = b"";
/// # use std::io::Read;
/// let mut framer = StreamFramer::new(65_535, 16 * 1024);
/// loop {
///     let n = input.read(framer.spare()).unwrap();
///     if n == 0 {
///         break; // framer.buffered() bytes of a partial packet are lost
///     }
///     framer.commit(n);
///     while let Some(packet) = framer.next_frame() {
///         // decode and relay `packet`
///     }
/// }
/// ```
#[derive(Debug)]
pub struct StreamFramer {
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    max_frame_len: usize,
    read_size: usize,
    /// How far (from `start`) the chunk chain of the candidate at `start` is already checked.
    checked: usize,
    /// Inside a run of skipped bytes.
    skipping: bool,
    stats: FramerStats,
}

/// Verdict on the bytes at the read position.
enum Candidate {
    /// A whole packet of this length.
    Frame(usize),
    /// Plausible so far; more bytes are needed.
    NeedMore,
    /// Not a packet start.
    Bogus,
}

impl StreamFramer {
    /// A framer for packets of at most `max_frame_len` bytes (clamped to 12..=65 535) reading
    /// at most `read_size` bytes at a time (at least 1).
    pub fn new(max_frame_len: usize, read_size: usize) -> Self {
        let max_frame_len = max_frame_len.clamp(MIN_FRAME_LEN, MAX_FRAME_LEN);
        let read_size = read_size.max(1);
        StreamFramer {
            buf: vec![0; max_frame_len + read_size].into_boxed_slice(),
            start: 0,
            end: 0,
            max_frame_len,
            read_size,
            checked: 0,
            skipping: false,
            stats: FramerStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Bytes held back: the start of a packet not yet complete (lost if the stream ends).
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Free space to read into: at least `read_size` bytes once [`StreamFramer::next_frame`]
    /// has returned `None`. Call [`StreamFramer::commit`] with the number of bytes written.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.buf.len() - self.end < self.read_size && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let end = self.end;
        let limit = (end + self.read_size).min(self.buf.len());
        &mut self.buf[end..limit]
    }

    /// Marks `n` bytes of [`StreamFramer::spare`] as received (clamped to the space there is).
    pub fn commit(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.buf.len());
    }

    /// Copies `data` in and calls `on_frame` for every packet it completes.
    pub fn feed(&mut self, mut data: &[u8], mut on_frame: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.commit(n);
            data = &data[n..];
            while let Some(frame) = self.next_frame() {
                on_frame(frame);
            }
        }
    }

    /// The next whole packet, or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        loop {
            match self.judge() {
                Candidate::Frame(len) => {
                    let at = self.start;
                    self.start += len;
                    self.checked = 0;
                    self.skipping = false;
                    self.stats.messages += 1;
                    return self.buf.get(at..at + len);
                }
                Candidate::NeedMore => return None,
                Candidate::Bogus => self.skip_to_next_candidate(),
            }
        }
    }

    /// Looks at the bytes at the read position.
    fn judge(&mut self) -> Candidate {
        let avail = &self.buf[self.start..self.end];
        let Some(header) = avail.first_chunk::<6>() else {
            // Wait on a prefix of a packet id, skip anything else.
            let n = avail.len().min(4);
            return if n == 0
                || super::chunk::MAGIC[..n] == avail[..n]
                || super::chunk::MAGIC_EEP[..n] == avail[..n]
            {
                Candidate::NeedMore
            } else {
                Candidate::Bogus
            };
        };
        if !super::chunk::has_magic(header) {
            return Candidate::Bogus;
        }
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        if !(MIN_FRAME_LEN..=self.max_frame_len).contains(&len) {
            return Candidate::Bogus;
        }

        // Walk the chunk headers that have arrived, resuming where the last call stopped.
        let mut off = self.checked.max(6);
        while off < len {
            let Some(h) = avail.get(off..).and_then(|r| r.first_chunk::<6>()) else {
                self.checked = off;
                return Candidate::NeedMore;
            };
            let chunk_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if chunk_len < 6 || off + chunk_len > len {
                return Candidate::Bogus;
            }
            off += chunk_len;
        }
        self.checked = off;
        if avail.len() >= len {
            Candidate::Frame(len)
        } else {
            Candidate::NeedMore
        }
    }

    /// Drops the byte at the read position and everything up to the next `H` or `E`.
    fn skip_to_next_candidate(&mut self) {
        let rest = &self.buf[self.start + 1..self.end];
        let n = 1 + memchr::memchr2(b'H', b'E', rest).unwrap_or(rest.len());
        self.start += n;
        self.checked = 0;
        self.stats.skipped_bytes += n as u64;
        if !self.skipping {
            self.skipping = true;
            self.stats.resyncs += 1;
        }
    }
}
