//! The tables that tie RTCP to calls: RTCP address → Call-ID from SDP, and
//! (source address, SSRC) → Call-ID once a report has been matched (sticky SSRC learning).
//!
//! A plain state machine: every method takes the capture time `now`, nothing reads a clock.
//! Both tables are bounded. An entry lives until the call's BYE (or CANCEL) plus a grace
//! period, and at most `max_age` after it was last confirmed (SDP seen again, or a report
//! matched). Expired entries are swept at most once a second of capture time; when a table is
//! full the entry inserted longest ago is evicted and counted.
//!
//! Live eBPF capture mirrors the address table into a kernel map so that the kernel hands
//! over only RTCP that some call announced: [`AddressMirror`] is told of every insert and
//! removal.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::record::Timestamp;

/// Limits and lifetimes of the tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTableConfig {
    /// Address entries at most (each media stream adds one to three).
    pub max_addresses: usize,
    /// Learned (address, SSRC) entries at most.
    pub max_ssrcs: usize,
    /// Lifetime after the last confirmation, microseconds (default 2 h).
    pub max_age_us: u64,
    /// How long RTCP is still matched after BYE or CANCEL, microseconds (default 10 s).
    pub bye_grace_us: u64,
}

impl Default for CallTableConfig {
    fn default() -> Self {
        CallTableConfig {
            max_addresses: 200_000,
            max_ssrcs: 200_000,
            max_age_us: 2 * 3600 * 1_000_000,
            bye_grace_us: 10 * 1_000_000,
        }
    }
}

/// Told about every address the table starts or stops matching, to keep a kernel map in step.
pub trait AddressMirror: Send + std::fmt::Debug {
    fn inserted(&mut self, addr: SocketAddr);
    fn removed(&mut self, addr: SocketAddr);
}

/// What the tables did, for the exit summary and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallTableStats {
    pub address_inserts: u64,
    pub address_evictions: u64,
    pub address_expired: u64,
    pub ssrc_learned: u64,
    pub ssrc_evictions: u64,
    pub ssrc_expired: u64,
}

/// One call, shared by all its entries.
#[derive(Debug)]
struct Call {
    id: Box<[u8]>,
}

#[derive(Debug)]
struct Entry {
    call: Arc<Call>,
    /// Last SDP (or match) that confirmed it.
    confirmed: Timestamp,
    /// Insertion stamp, to tell a live entry from a stale FIFO slot.
    seq: u64,
}

/// Matches RTCP to calls.
#[derive(Debug)]
pub struct CallTable {
    config: CallTableConfig,
    addresses: HashMap<SocketAddr, Entry>,
    ssrcs: HashMap<(SocketAddr, u32), Entry>,
    /// Call-ID → call, for BYE; entries hold the same `Arc`.
    calls: HashMap<Box<[u8]>, Arc<Call>>,
    /// When each ended call stops matching.
    ended: HashMap<Box<[u8]>, Timestamp>,
    address_fifo: VecDeque<(SocketAddr, u64)>,
    ssrc_fifo: VecDeque<((SocketAddr, u32), u64)>,
    next_seq: u64,
    last_sweep: Timestamp,
    mirror: Option<Box<dyn AddressMirror>>,
    stats: CallTableStats,
}

impl CallTable {
    pub fn new(config: CallTableConfig) -> Self {
        CallTable {
            config,
            addresses: HashMap::new(),
            ssrcs: HashMap::new(),
            calls: HashMap::new(),
            ended: HashMap::new(),
            address_fifo: VecDeque::new(),
            ssrc_fifo: VecDeque::new(),
            next_seq: 0,
            last_sweep: Timestamp(0),
            mirror: None,
            stats: CallTableStats::default(),
        }
    }

    /// Mirrors address inserts and removals from now on (live eBPF capture).
    pub fn set_mirror(&mut self, mirror: Box<dyn AddressMirror>) {
        self.mirror = Some(mirror);
    }

    pub fn stats(&self) -> CallTableStats {
        self.stats
    }

    /// Address entries held.
    pub fn addresses(&self) -> usize {
        self.addresses.len()
    }

    /// Learned SSRC entries held.
    pub fn ssrcs(&self) -> usize {
        self.ssrcs.len()
    }

    fn call(&mut self, call_id: &[u8]) -> Arc<Call> {
        if let Some(c) = self.calls.get(call_id) {
            return Arc::clone(c);
        }
        let call = Arc::new(Call { id: call_id.into() });
        self.calls.insert(call_id.into(), Arc::clone(&call));
        call
    }

    /// RTCP for `call_id` is expected at `addr` (from SDP). A re-INVITE or answer that names
    /// the address again refreshes it; an address reused by another call moves to it.
    pub fn insert(&mut self, addr: SocketAddr, call_id: &[u8], now: Timestamp) {
        self.sweep(now);
        // A new offer for an ended call (re-INVITE after BYE is rare, a reused Call-ID is
        // not): the call is live again.
        self.ended.remove(call_id);
        let call = self.call(call_id);
        if let Some(e) = self.addresses.get_mut(&addr) {
            e.call = call;
            e.confirmed = now;
            return;
        }
        if self.addresses.len() >= self.config.max_addresses {
            self.evict_address();
        }
        let seq = self.bump();
        self.addresses.insert(
            addr,
            Entry {
                call,
                confirmed: now,
                seq,
            },
        );
        self.address_fifo.push_back((addr, seq));
        self.stats.address_inserts += 1;
        if let Some(m) = self.mirror.as_mut() {
            m.inserted(addr);
        }
    }

    /// The call ended (BYE or CANCEL seen): its entries stop matching after the grace period.
    pub fn end_call(&mut self, call_id: &[u8], now: Timestamp) {
        if self.calls.contains_key(call_id) {
            let until = Timestamp(now.0.saturating_add(self.config.bye_grace_us));
            self.ended.entry(call_id.into()).or_insert(until);
        }
    }

    /// The Call-ID for a report from `src` to `dst` with reporter `ssrc`: the learned SSRC
    /// first, then the source address, then the destination. A match by address teaches the
    /// (source, SSRC) pair. A learned SSRC whose call has ended (BYE) yields to a live call
    /// that SDP has since announced at the same addresses.
    pub fn lookup(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        ssrc: Option<u32>,
        now: Timestamp,
    ) -> Option<Box<[u8]>> {
        self.sweep(now);
        // Source before destination, but a call that has not ended before one that has (RTCP
        // to a new call's address from a port the previous call used).
        let mut by_address = None;
        for addr in [src, dst] {
            let Some(e) = self.addresses.get(&addr) else {
                continue;
            };
            if !live(&self.ended, &self.config, e, now) {
                continue;
            }
            if !self.ended.contains_key(&e.call.id) {
                by_address = Some(Arc::clone(&e.call));
                break;
            }
            by_address.get_or_insert_with(|| Arc::clone(&e.call));
        }
        if let Some(ssrc) = ssrc
            && let Some(e) = self.ssrcs.get_mut(&(src, ssrc))
            && live(&self.ended, &self.config, e, now)
        {
            // Sticky, except that a call which said BYE gives way to a live call announced
            // at these addresses since: a phone that keeps its port and SSRC from one call to
            // the next (seen with baresip) belongs to the new call.
            let handed_over = self.ended.contains_key(&e.call.id)
                && by_address
                    .as_ref()
                    .is_some_and(|c| c.id != e.call.id && !self.ended.contains_key(&c.id));
            if !handed_over {
                e.confirmed = now;
                return Some(e.call.id.clone());
            }
        }
        let call = by_address?;
        if let Some(ssrc) = ssrc {
            self.learn(src, ssrc, Arc::clone(&call), now);
        }
        Some(call.id.clone())
    }

    fn learn(&mut self, src: SocketAddr, ssrc: u32, call: Arc<Call>, now: Timestamp) {
        let key = (src, ssrc);
        if self.ssrcs.len() >= self.config.max_ssrcs {
            self.evict_ssrc();
        }
        let seq = self.bump();
        self.ssrcs.insert(
            key,
            Entry {
                call,
                confirmed: now,
                seq,
            },
        );
        self.ssrc_fifo.push_back((key, seq));
        self.stats.ssrc_learned += 1;
    }

    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn evict_address(&mut self) {
        while let Some((addr, seq)) = self.address_fifo.pop_front() {
            if self.addresses.get(&addr).is_some_and(|e| e.seq == seq) {
                self.addresses.remove(&addr);
                self.stats.address_evictions += 1;
                if let Some(m) = self.mirror.as_mut() {
                    m.removed(addr);
                }
                return;
            }
        }
    }

    fn evict_ssrc(&mut self) {
        while let Some((key, seq)) = self.ssrc_fifo.pop_front() {
            if self.ssrcs.get(&key).is_some_and(|e| e.seq == seq) {
                self.ssrcs.remove(&key);
                self.stats.ssrc_evictions += 1;
                return;
            }
        }
    }

    /// Removes expired entries, at most once per second of capture time.
    fn sweep(&mut self, now: Timestamp) {
        if now.0 < self.last_sweep.0.saturating_add(1_000_000) {
            return;
        }
        self.last_sweep = now;
        let (ended, config) = (&self.ended, &self.config);
        let mut removed = Vec::new();
        self.addresses.retain(|addr, e| {
            let keep = live(ended, config, e, now);
            if !keep {
                removed.push(*addr);
            }
            keep
        });
        self.stats.address_expired += removed.len() as u64;
        if let Some(m) = self.mirror.as_mut() {
            for addr in removed {
                m.removed(addr);
            }
        }
        let before = self.ssrcs.len();
        self.ssrcs.retain(|_, e| live(ended, config, e, now));
        self.stats.ssrc_expired += (before - self.ssrcs.len()) as u64;

        // Calls no entry refers to any more, and end marks past their grace.
        self.calls.retain(|_, c| Arc::strong_count(c) > 1);
        let calls = &self.calls;
        self.ended
            .retain(|id, until| now.0 < until.0 && calls.contains_key(id));
        let (addresses, ssrcs) = (&self.addresses, &self.ssrcs);
        self.address_fifo
            .retain(|(a, seq)| addresses.get(a).is_some_and(|e| e.seq == *seq));
        self.ssrc_fifo
            .retain(|(k, seq)| ssrcs.get(k).is_some_and(|e| e.seq == *seq));
    }
}

fn live(
    ended: &HashMap<Box<[u8]>, Timestamp>,
    config: &CallTableConfig,
    e: &Entry,
    now: Timestamp,
) -> bool {
    if now.0 >= e.confirmed.0.saturating_add(config.max_age_us) {
        return false;
    }
    ended.get(&e.call.id).is_none_or(|until| now.0 < until.0)
}

#[cfg(test)]
#[path = "tests/calls.rs"]
mod tests;
