//! SCTP user messages split over several DATA chunks (RFC 9260 §6.9), put back together per
//! association direction and stream, in TSN order.
//!
//! Pieces must arrive in TSN order (a capture sees them as sent); a piece that does not follow
//! the previous one drops the partial message (`broken`). At most `max_partials` messages are
//! in progress and each is bounded by `max_message`; at the limit the oldest partial message is
//! evicted. Partial messages have no timeout of their own: they live until evicted, replaced
//! or flushed.

use std::collections::HashMap;
use std::net::IpAddr;

/// Identifies a stream of one direction of an association.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SctpStreamKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub stream: u16,
}

/// Counters of SCTP reassembly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SctpStats {
    pub completed: u64,
    pub broken: u64,
    pub evicted: u64,
    pub oversize: u64,
}

#[derive(Debug)]
struct Partial {
    order: u64,
    next_tsn: u32,
    data: Vec<u8>,
}

/// Partial SCTP user messages.
#[derive(Debug)]
pub struct SctpTable {
    max_partials: usize,
    max_message: usize,
    partials: HashMap<SctpStreamKey, Partial>,
    next_order: u64,
    stats: SctpStats,
}

impl SctpTable {
    pub fn new(max_partials: usize, max_message: usize) -> Self {
        SctpTable {
            max_partials,
            max_message,
            partials: HashMap::new(),
            next_order: 0,
            stats: SctpStats::default(),
        }
    }

    pub fn stats(&self) -> &SctpStats {
        &self.stats
    }

    pub fn len(&self) -> usize {
        self.partials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partials.is_empty()
    }

    /// Adds a piece; returns the whole message when `end` completes it.
    pub fn piece(
        &mut self,
        key: SctpStreamKey,
        tsn: u32,
        begin: bool,
        end: bool,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        if begin {
            if self.partials.remove(&key).is_some() {
                self.stats.broken += 1;
            }
            if self.partials.len() >= self.max_partials.max(1) {
                self.evict_oldest();
            }
            let order = self.next_order;
            self.next_order += 1;
            self.partials.insert(
                key,
                Partial {
                    order,
                    next_tsn: tsn,
                    data: Vec::new(),
                },
            );
        }
        let Some(partial) = self.partials.get_mut(&key) else {
            // A middle or last piece whose beginning was not seen.
            self.stats.broken += 1;
            return None;
        };
        if partial.next_tsn != tsn {
            self.partials.remove(&key);
            self.stats.broken += 1;
            return None;
        }
        if partial.data.len() + data.len() > self.max_message {
            self.partials.remove(&key);
            self.stats.oversize += 1;
            return None;
        }
        partial.data.extend_from_slice(data);
        partial.next_tsn = tsn.wrapping_add(1);
        if !end {
            return None;
        }
        self.stats.completed += 1;
        self.partials.remove(&key).map(|p| p.data)
    }

    /// Drops every partial message (end of input).
    pub fn flush(&mut self) {
        self.stats.broken += self.partials.len() as u64;
        self.partials.clear();
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .partials
            .iter()
            .min_by_key(|(_, p)| p.order)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.partials.remove(&k);
            self.stats.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn key(stream: u16) -> SctpStreamKey {
        SctpStreamKey {
            src: IpAddr::V4(Ipv4Addr::LOCALHOST),
            dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
            src_port: 5060,
            dst_port: 5060,
            stream,
        }
    }

    #[test]
    fn pieces_in_order() {
        let mut t = SctpTable::new(4, 100);
        assert_eq!(t.piece(key(0), 7, true, false, b"ab"), None);
        assert_eq!(t.piece(key(0), 8, false, false, b"cd"), None);
        assert_eq!(
            t.piece(key(0), 9, false, true, b"e"),
            Some(b"abcde".to_vec())
        );
        assert!(t.is_empty());
    }

    #[test]
    fn broken_oversize_and_evicted() {
        let mut t = SctpTable::new(1, 4);
        t.piece(key(0), 1, true, false, b"ab");
        assert_eq!(t.piece(key(0), 3, false, true, b"c"), None);
        assert_eq!(t.stats().broken, 1);
        assert_eq!(t.piece(key(0), 5, false, true, b"c"), None);
        assert_eq!(t.stats().broken, 2);
        t.piece(key(1), 1, true, false, b"abc");
        assert_eq!(t.piece(key(1), 2, false, true, b"de"), None);
        assert_eq!(t.stats().oversize, 1);
        t.piece(key(2), 1, true, false, b"a");
        t.piece(key(3), 1, true, false, b"a");
        assert_eq!((t.len(), t.stats().evicted), (1, 1));
    }
}
