//! The bounded ring between sources and the dispatcher.
//!
//! A lock-free [`ArrayQueue`] of records. Sources never take a lock to push; when the ring is
//! full the [`WhenFull`] policy decides: drop the new record, drop the oldest queued one to make
//! room, or wait (only sources that can wait, such as replay, may use `Block`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use crate::record::Record;

/// What a full ring or sink queue does with a new record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WhenFull {
    /// Keep what is queued and drop the new record (counted `ring_full`).
    DropNewest,
    /// Drop the oldest queued record to make room (counted `ring_full_oldest`).
    DropOldest,
    /// Wait for room. The producer slows down to the sinks' pace; allowed for replay only.
    Block,
}

/// Drop counts keyed by (source, reason).
pub type DropCounts = BTreeMap<(&'static str, &'static str), u64>;

/// Bounded multi-producer queue of records.
#[derive(Debug)]
pub struct Ring {
    queue: ArrayQueue<Record>,
    policy: WhenFull,
    consumer: OnceLock<Thread>,
    /// Set by the consumer while it sleeps, so producers unpark it only then.
    consumer_idle: AtomicBool,
    drops: Mutex<DropCounts>,
}

impl Ring {
    pub fn new(capacity: usize, policy: WhenFull) -> Self {
        Ring {
            queue: ArrayQueue::new(capacity.max(1)),
            policy,
            consumer: OnceLock::new(),
            consumer_idle: AtomicBool::new(false),
            drops: Mutex::new(DropCounts::new()),
        }
    }

    pub(super) fn set_consumer(&self, thread: Thread) {
        let _ = self.consumer.set(thread);
    }

    /// Offers a record under the ring's policy. Never fails: a record that does not fit is
    /// counted.
    pub fn push(&self, record: Record) {
        let source = record.source.as_str();
        let mut record = record;
        loop {
            match self.queue.push(record) {
                Ok(()) => break,
                Err(back) => match self.policy {
                    WhenFull::DropNewest => {
                        self.count_drop(source, "ring_full");
                        break;
                    }
                    WhenFull::DropOldest => {
                        if let Some(old) = self.queue.force_push(back) {
                            self.count_drop(old.source.as_str(), "ring_full_oldest");
                        }
                        break;
                    }
                    WhenFull::Block => {
                        record = back;
                        self.wake_consumer();
                        std::thread::sleep(Duration::from_micros(50));
                    }
                },
            }
        }
        // Wake the dispatcher only when it sleeps: one shared load per push, rarely written.
        if self.consumer_idle.load(Ordering::Acquire) {
            self.wake_consumer();
        }
    }

    /// The consumer sleeps until a push wakes it, or `timeout` (a bound on a missed wake-up).
    pub(super) fn consumer_wait(&self, timeout: Duration) {
        self.consumer_idle.store(true, Ordering::SeqCst);
        // A push between our last pop and the store above saw no idle flag: look again.
        if self.queue.is_empty() {
            std::thread::park_timeout(timeout);
        }
        self.consumer_idle.store(false, Ordering::Release);
    }

    fn wake_consumer(&self) {
        if let Some(t) = self.consumer.get() {
            t.unpark();
        }
    }

    pub(super) fn pop(&self) -> Option<Record> {
        self.queue.pop()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    pub(super) fn count_drop(&self, source: &'static str, reason: &'static str) {
        if let Ok(mut d) = self.drops.lock() {
            *d.entry((source, reason)).or_default() += 1;
        }
    }

    /// Drops so far, by (source, reason).
    pub fn drops(&self) -> DropCounts {
        self.drops.lock().map(|d| d.clone()).unwrap_or_default()
    }
}
