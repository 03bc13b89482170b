//! Per-listener counters, shared between the listener's threads or tasks and the summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one listener.
#[derive(Debug, Default)]
pub struct ListenerStats {
    received: AtomicU64,
    relayed: AtomicU64,
    keepalives: AtomicU64,
    bytes: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Bytes a stream listener skipped to find the next `HEP3`.
    skipped_bytes: AtomicU64,
    /// Datagrams the kernel dropped on this socket (SO_RXQ_OVFL), latest value.
    kernel_drops: AtomicU64,
    connections: AtomicU64,
    refused_connections: AtomicU64,
}

/// A snapshot of [`ListenerStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerTotals {
    pub received: u64,
    pub relayed: u64,
    pub keepalives: u64,
    pub bytes: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub skipped_bytes: u64,
    pub kernel_drops: u64,
    pub connections: u64,
    pub refused_connections: u64,
}

impl ListenerStats {
    pub(super) fn received(&self, bytes: usize) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(super) fn relayed(&self) {
        self.relayed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn keepalive(&self) {
        self.keepalives.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn rejected(&self, reason: &'static str) {
        if let Ok(mut r) = self.rejected.lock() {
            *r.entry(reason).or_default() += 1;
        }
    }

    pub(super) fn skipped_bytes(&self, n: u64) {
        self.skipped_bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn set_kernel_drops(&self, n: u64) {
        self.kernel_drops.fetch_max(n, Ordering::Relaxed);
    }

    pub(super) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn refused_connection(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn totals(&self) -> ListenerTotals {
        ListenerTotals {
            received: self.received.load(Ordering::Relaxed),
            relayed: self.relayed.load(Ordering::Relaxed),
            keepalives: self.keepalives.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            rejected: self.rejected.lock().map(|r| r.clone()).unwrap_or_default(),
            skipped_bytes: self.skipped_bytes.load(Ordering::Relaxed),
            kernel_drops: self.kernel_drops.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            refused_connections: self.refused_connections.load(Ordering::Relaxed),
        }
    }
}
