//! Duplicate suppression: the same datagram seen twice within a short window (a packet
//! mirrored by two SPAN ports, or captured on two interfaces) is sent once.
//!
//! The key is a 64-bit hash of the addresses, ports, transport and payload; the IP header is
//! left out because TTL and checksum differ between the copies. A SIP retransmission is the
//! same bytes again after 500 ms or more (RFC 3261 T1): the window (default 50 ms) is far
//! shorter, so retransmissions are kept as the real events they are.
//!
//! Memory is bounded: a ring of (time, hash) in arrival order and a map of the hashes in it,
//! at most `max_entries`. When the ring is full the oldest entry is forgotten early, which can
//! only let a duplicate through, never drop a distinct packet. A 64-bit hash collision within
//! 50 ms between different packets is the one way to lose one (about 2^-64 per pair).
//! Capture time is explicit; nothing reads a clock.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use crate::record::Timestamp;

/// Window and bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupConfig {
    /// Copies closer than this are duplicates, microseconds (default 50 ms).
    pub window_us: u64,
    /// Hashes remembered at most (default 65536: 50 ms at 1.3 M packets/s).
    pub max_entries: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            window_us: 50_000,
            max_entries: 65_536,
        }
    }
}

/// Remembers recent datagrams.
#[derive(Debug)]
pub struct Dedup {
    config: DedupConfig,
    ring: VecDeque<(Timestamp, u64)>,
    /// Hash → time of its latest sighting still in the ring, and how many ring slots hold it.
    seen: HashMap<u64, (Timestamp, u32)>,
    duplicates: u64,
}

impl Dedup {
    pub fn new(config: DedupConfig) -> Self {
        Dedup {
            config,
            ring: VecDeque::new(),
            seen: HashMap::new(),
            duplicates: 0,
        }
    }

    /// Duplicates suppressed so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// True when this datagram is a copy of one seen less than the window ago (drop it).
    pub fn is_duplicate(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        transport: u8,
        payload: &[u8],
        now: Timestamp,
    ) -> bool {
        let mut h = DefaultHasher::new();
        (src, dst, transport, payload).hash(&mut h);
        let key = h.finish();
        self.forget_before(now);

        if let Some((at, _)) = self.seen.get(&key)
            && now.0.saturating_sub(at.0) < self.config.window_us
        {
            self.duplicates += 1;
            return true;
        }
        if self.ring.len() >= self.config.max_entries {
            self.pop_oldest();
        }
        self.ring.push_back((now, key));
        let slot = self.seen.entry(key).or_insert((now, 0));
        slot.0 = now;
        slot.1 += 1;
        false
    }

    fn forget_before(&mut self, now: Timestamp) {
        while let Some(&(at, _)) = self.ring.front() {
            if now.0.saturating_sub(at.0) < self.config.window_us {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((_, key)) = self.ring.pop_front() else {
            return;
        };
        if let Some(slot) = self.seen.get_mut(&key) {
            slot.1 -= 1;
            if slot.1 == 0 {
                self.seen.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn check(d: &mut Dedup, payload: &[u8], ms: u64) -> bool {
        d.is_duplicate(
            sa("192.0.2.1:5060"),
            sa("192.0.2.2:5060"),
            17,
            payload,
            Timestamp(1_000_000_000 + ms * MS),
        )
    }

    #[test]
    fn copy_within_window_dropped_retransmission_kept() {
        let mut d = Dedup::new(DedupConfig::default());
        assert!(!check(&mut d, b"INVITE", 0));
        assert!(check(&mut d, b"INVITE", 1), "mirrored copy 1 ms later");
        assert!(check(&mut d, b"INVITE", 49));
        assert!(!check(&mut d, b"INVITE", 500), "T1 retransmission");
        assert!(!check(&mut d, b"INVITE", 1500), "second retransmission");
        assert!(!check(&mut d, b"OTHER", 1500));
        assert_eq!(d.duplicates(), 2);
    }

    #[test]
    fn addresses_are_part_of_the_key() {
        let mut d = Dedup::new(DedupConfig::default());
        let t = Timestamp(1);
        assert!(!d.is_duplicate(sa("192.0.2.1:1"), sa("192.0.2.2:2"), 17, b"x", t));
        assert!(!d.is_duplicate(sa("192.0.2.1:1"), sa("192.0.2.3:2"), 17, b"x", t));
        assert!(!d.is_duplicate(sa("192.0.2.1:1"), sa("192.0.2.2:2"), 6, b"x", t));
        assert!(d.is_duplicate(sa("192.0.2.1:1"), sa("192.0.2.2:2"), 17, b"x", t));
    }

    #[test]
    fn bounded() {
        let mut d = Dedup::new(DedupConfig {
            window_us: 50 * MS,
            max_entries: 4,
        });
        for i in 0..100u32 {
            assert!(!check(&mut d, &i.to_be_bytes(), 0));
        }
        assert_eq!(d.ring.len(), 4);
        assert_eq!(d.seen.len(), 4);
        // The newest are still remembered; the oldest were forgotten early.
        assert!(check(&mut d, &99u32.to_be_bytes(), 1));
        assert!(!check(&mut d, &0u32.to_be_bytes(), 1));
    }

    #[test]
    fn window_slides_with_capture_time() {
        let mut d = Dedup::new(DedupConfig::default());
        assert!(!check(&mut d, b"a", 0));
        assert!(!check(&mut d, b"b", 100));
        assert!(d.ring.len() == 1 && d.seen.len() == 1, "a was forgotten");
    }
}
