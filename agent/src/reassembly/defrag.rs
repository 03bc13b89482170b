//! IPv4 (RFC 791) and IPv6 (RFC 8200 §4.5) fragment reassembly in a bounded table.
//!
//! A datagram is keyed by (source, destination, identification, protocol); IPv4 and IPv6
//! identifications live in one `u32` space because the addresses already differ in family.
//!
//! Overlap policy: **first wins** (BSD "first"): bytes already received are kept and the
//! overlapping part of a later fragment is ignored, only the holes it covers are filled. A
//! fragment whose end disagrees with an already known total length (a second "last" fragment
//! with another end, or data beyond the end) marks the datagram malformed: it is dropped and
//! counted in `malformed`. RFC 5722 asks IPv6 receivers to drop overlapping datagrams
//! silently; hepcap is a passive observer that must show what the endpoints most likely
//! accepted, and "first" is what Linux and the BSDs do for IPv4.
//!
//! Limits: at most `max_entries` datagrams in progress and `max_bytes` buffered in total; a
//! datagram may not exceed `max_datagram` bytes of payload. When a new datagram does not fit,
//! the **oldest** one (by its first fragment) is evicted and counted in `evicted`. A datagram
//! still incomplete `timeout_us` after its first fragment is expired (`expired`), checked on
//! each call with the caller's `now`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::record::Timestamp;

/// Limits of the fragment table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefragConfig {
    /// Datagrams in progress at once.
    pub max_entries: usize,
    /// Payload bytes buffered over all datagrams in progress.
    pub max_bytes: usize,
    /// Largest reassembled payload accepted.
    pub max_datagram: usize,
    /// Microseconds after its first fragment that an incomplete datagram is dropped.
    pub timeout_us: u64,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_entries: 4096,
            max_bytes: 32 << 20,
            max_datagram: 65_535,
            timeout_us: 30_000_000,
        }
    }
}

/// Counters of the fragment table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments accepted into the table.
    pub fragments: u64,
    /// Datagrams reassembled.
    pub completed: u64,
    /// Datagrams dropped incomplete after the timeout (or at the end of the input).
    pub expired: u64,
    /// Datagrams dropped to make room for a new one.
    pub evicted: u64,
    /// Datagrams or fragments dropped as inconsistent (bad offsets, conflicting ends, too big).
    pub malformed: u64,
    /// Most datagrams in progress at once.
    pub peak_entries: usize,
    /// Most bytes buffered at once.
    pub peak_bytes: usize,
}

/// Identifies one fragmented datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    pub protocol: u8,
}

/// One fragment as the IP layer describes it.
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    /// Offset of `data` in the datagram's payload, in bytes.
    pub offset: usize,
    /// False on the last fragment.
    pub more: bool,
    pub data: &'a [u8],
}

/// What feeding a fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum FragmentOutcome {
    /// Stored; the datagram is not complete yet.
    Held,
    /// The datagram is complete: its whole payload.
    Complete(Vec<u8>),
    /// Dropped as inconsistent (counted in `malformed`).
    Malformed,
}

#[derive(Debug)]
struct Entry {
    order: u64,
    created: Timestamp,
    data: Vec<u8>,
    /// Received byte ranges, sorted and disjoint.
    have: Vec<(usize, usize)>,
    /// Payload length, known once the last fragment arrived.
    total: Option<usize>,
}

/// The table of datagrams in progress.
#[derive(Debug)]
pub struct FragmentTable {
    config: DefragConfig,
    entries: HashMap<FragmentKey, Entry>,
    /// Creation order: the first entry is the oldest, evicted or expired first.
    by_age: BTreeMap<u64, FragmentKey>,
    next_order: u64,
    bytes: usize,
    stats: DefragStats,
}

/// More ranges than this in one datagram is a fragment flood, not a datagram.
const MAX_RANGES: usize = 512;

impl FragmentTable {
    pub fn new(config: DefragConfig) -> Self {
        FragmentTable {
            config,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            next_order: 0,
            bytes: 0,
            stats: DefragStats::default(),
        }
    }

    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }

    /// Datagrams in progress.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a fragment received at `now`.
    pub fn insert(
        &mut self,
        key: FragmentKey,
        fragment: Fragment<'_>,
        now: Timestamp,
    ) -> FragmentOutcome {
        self.expire(now);
        let Fragment { offset, more, data } = fragment;
        let end = offset + data.len();
        // Every fragment but the last carries a multiple of 8 bytes (RFC 791, RFC 8200).
        if end > self.config.max_datagram
            || (more && data.len() % 8 != 0)
            || (more && data.is_empty())
        {
            // Only this fragment is dropped; the datagram may still complete from others.
            self.stats.malformed += 1;
            return FragmentOutcome::Malformed;
        }
        self.stats.fragments += 1;

        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.config.max_entries.max(1) {
                self.evict_oldest();
            }
            let order = self.next_order;
            self.next_order += 1;
            self.by_age.insert(order, key);
            self.entries.insert(
                key,
                Entry {
                    order,
                    created: now,
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                },
            );
            self.stats.peak_entries = self.stats.peak_entries.max(self.entries.len());
        }

        // Room for the bytes this fragment may add: evict older datagrams, never this one.
        let grow = {
            let entry = &self.entries[&key];
            end.saturating_sub(entry.data.len())
        };
        while self.bytes + grow > self.config.max_bytes {
            let oldest = self.by_age.values().next().copied();
            match oldest {
                Some(k) if k != key => {
                    self.remove(&k);
                    self.stats.evicted += 1;
                }
                _ => {
                    // This datagram alone is over the byte limit.
                    self.remove(&key);
                    self.stats.evicted += 1;
                    return FragmentOutcome::Held;
                }
            }
        }

        let entry = self.entries.get_mut(&key).expect("inserted above");
        let consistent = match (entry.total, more) {
            (Some(total), false) => total == end,
            (Some(total), true) => end <= total,
            (None, false) => entry.have.last().is_none_or(|r| r.1 <= end),
            (None, true) => true,
        };
        if !consistent || entry.have.len() >= MAX_RANGES {
            self.remove(&key);
            self.stats.malformed += 1;
            return FragmentOutcome::Malformed;
        }
        if !more {
            entry.total = Some(end);
        }
        if entry.data.len() < end {
            self.bytes += end - entry.data.len();
            entry.data.resize(end, 0);
            self.stats.peak_bytes = self.stats.peak_bytes.max(self.bytes);
        }
        fill_holes(entry, offset, data);

        let complete = entry.total.is_some_and(|t| {
            entry.have.first() == Some(&(0, t)) || (t == 0 && entry.have.is_empty())
        });
        if !complete {
            return FragmentOutcome::Held;
        }
        let entry = self.entries.remove(&key).expect("present");
        self.by_age.remove(&entry.order);
        self.bytes -= entry.data.len();
        self.stats.completed += 1;
        FragmentOutcome::Complete(entry.data)
    }

    /// Drops every datagram whose first fragment is older than the timeout at `now`.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some((_, key)) = self.by_age.first_key_value() {
            let key = *key;
            let created = self.entries[&key].created;
            if created.0.saturating_add(self.config.timeout_us) >= now.0 {
                break;
            }
            self.remove(&key);
            self.stats.expired += 1;
        }
    }

    /// Drops everything in progress, counted as expired (the input ended).
    pub fn flush(&mut self) {
        let n = self.entries.len() as u64;
        self.entries.clear();
        self.by_age.clear();
        self.bytes = 0;
        self.stats.expired += n;
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.by_age.first_key_value() {
            let key = *key;
            self.remove(&key);
            self.stats.evicted += 1;
        }
    }

    fn remove(&mut self, key: &FragmentKey) -> bool {
        match self.entries.remove(key) {
            Some(entry) => {
                self.by_age.remove(&entry.order);
                self.bytes -= entry.data.len();
                true
            }
            None => false,
        }
    }
}

/// Copies the parts of `data` (at `offset`) that no earlier fragment covered, and records them.
fn fill_holes(entry: &mut Entry, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if data.is_empty() {
        return;
    }
    let mut cursor = offset;
    let mut new_ranges = Vec::new();
    for &(a, b) in &entry.have {
        if b <= cursor {
            continue;
        }
        if a >= end {
            break;
        }
        if a > cursor {
            new_ranges.push((cursor, a));
        }
        cursor = cursor.max(b);
        if cursor >= end {
            break;
        }
    }
    if cursor < end {
        new_ranges.push((cursor, end));
    }
    for &(a, b) in &new_ranges {
        entry.data[a..b].copy_from_slice(&data[a - offset..b - offset]);
    }
    entry.have.extend(new_ranges);
    entry.have.sort_unstable();
    // Merge touching ranges.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(entry.have.len());
    for &(a, b) in &entry.have {
        match merged.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    entry.have = merged;
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn key(id: u32) -> FragmentKey {
        FragmentKey {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            id,
            protocol: 17,
        }
    }

    fn frag(offset: usize, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment { offset, more, data }
    }

    const A16: &[u8; 16] = b"AAAAAAAABBBBBBBB";

    #[test]
    fn in_order_and_out_of_order() {
        let mut t = FragmentTable::new(DefragConfig::default());
        assert_eq!(
            t.insert(key(1), frag(8, false, b"tail"), Timestamp(1)),
            FragmentOutcome::Held
        );
        assert_eq!(
            t.insert(key(1), frag(0, true, &A16[..8]), Timestamp(2)),
            FragmentOutcome::Complete(b"AAAAAAAAtail".to_vec())
        );
        assert!(t.is_empty());
        assert_eq!(t.bytes(), 0);
        assert_eq!(t.stats().completed, 1);
    }

    #[test]
    fn overlap_first_wins() {
        let mut t = FragmentTable::new(DefragConfig::default());
        t.insert(key(2), frag(0, true, b"11111111"), Timestamp(1));
        // Overlaps bytes 0..8 with other content: the first copy is kept.
        let out = t.insert(key(2), frag(0, false, b"2222222233"), Timestamp(2));
        assert_eq!(out, FragmentOutcome::Complete(b"1111111133".to_vec()));
    }

    #[test]
    fn conflicting_ends_are_malformed() {
        let mut t = FragmentTable::new(DefragConfig::default());
        t.insert(key(3), frag(8, false, b"xx"), Timestamp(1));
        assert_eq!(
            t.insert(key(3), frag(8, false, b"xxx"), Timestamp(2)),
            FragmentOutcome::Malformed
        );
        assert_eq!(t.stats().malformed, 1);
        assert!(t.is_empty());
        // A non-final fragment that is not a multiple of 8 bytes.
        assert_eq!(
            t.insert(key(4), frag(0, true, b"abc"), Timestamp(3)),
            FragmentOutcome::Malformed
        );
        // Past the largest datagram.
        assert_eq!(
            t.insert(key(5), frag(65_528, false, &[0; 16]), Timestamp(3)),
            FragmentOutcome::Malformed
        );
    }

    #[test]
    fn timeout_expires() {
        let cfg = DefragConfig {
            timeout_us: 10,
            ..DefragConfig::default()
        };
        let mut t = FragmentTable::new(cfg);
        t.insert(key(1), frag(0, true, &A16[..8]), Timestamp(100));
        t.insert(key(2), frag(0, true, &A16[..8]), Timestamp(105));
        t.expire(Timestamp(112));
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().expired, 1);
        // The late last fragment of datagram 1 starts a new, incomplete datagram.
        assert_eq!(
            t.insert(key(1), frag(8, false, b"z"), Timestamp(113)),
            FragmentOutcome::Held
        );
        t.flush();
        assert_eq!(t.stats().expired, 3);
        assert_eq!(t.bytes(), 0);
    }

    #[test]
    fn entry_and_byte_limits_evict_oldest() {
        let cfg = DefragConfig {
            max_entries: 2,
            max_bytes: 24,
            ..DefragConfig::default()
        };
        let mut t = FragmentTable::new(cfg);
        for id in 0..3 {
            t.insert(key(id), frag(0, true, &A16[..8]), Timestamp(u64::from(id)));
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.stats().evicted, 1);
        // 16 more bytes for datagram 2 need 8 bytes freed: datagram 1 goes.
        t.insert(key(2), frag(8, true, A16), Timestamp(5));
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().evicted, 2);
        assert!(t.bytes() <= 24);
        // A datagram alone over the byte limit is evicted itself.
        t.insert(key(9), frag(0, true, &[0; 32]), Timestamp(6));
        assert!(t.bytes() <= 24);
        assert_eq!(t.stats().peak_entries, 2);
    }

    #[test]
    fn empty_last_fragment_and_duplicates() {
        let mut t = FragmentTable::new(DefragConfig::default());
        assert_eq!(
            t.insert(key(1), frag(0, true, &A16[..8]), Timestamp(1)),
            FragmentOutcome::Held
        );
        assert_eq!(
            t.insert(key(1), frag(0, true, &A16[..8]), Timestamp(1)),
            FragmentOutcome::Held
        );
        assert_eq!(
            t.insert(key(1), frag(8, false, b""), Timestamp(2)),
            FragmentOutcome::Complete(A16[..8].to_vec())
        );
    }
}
