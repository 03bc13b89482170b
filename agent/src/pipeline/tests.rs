//! Pipeline behaviour at its bounds, with in-memory sinks.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::record::{Source, Timestamp, Transport};

fn record(n: u64) -> Record {
    Record {
        source: Source::Replay,
        ts: Timestamp(n),
        src: IpAddr::V4(Ipv4Addr::LOCALHOST),
        dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
        src_port: 1,
        dst_port: 2,
        transport: Transport::UDP,
        vlan: None,
        proto_type: 1,
        payload: Bytes::from_static(b"x"),
        sip: None,
    }
}

type Seen = Arc<Mutex<Vec<u64>>>;
type Gate = Arc<(Mutex<bool>, Condvar)>;

/// Remembers the timestamps it received; optionally slow, optionally held at a gate.
struct Collect {
    name: String,
    seen: Arc<Mutex<Vec<u64>>>,
    delay: Duration,
    gate: Option<Arc<(Mutex<bool>, Condvar)>>,
    stats: SinkStats,
}

impl Collect {
    fn boxed(name: &str, delay: Duration) -> (Box<dyn Sink>, Arc<Mutex<Vec<u64>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Collect {
            name: name.into(),
            seen: Arc::clone(&seen),
            delay,
            gate: None,
            stats: SinkStats::default(),
        };
        (Box::new(sink), seen)
    }

    /// A sink that takes one batch, then waits until the gate opens.
    fn gated(name: &str) -> (Box<dyn Sink>, Seen, Gate) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Collect {
            name: name.into(),
            seen: Arc::clone(&seen),
            delay: Duration::ZERO,
            gate: Some(Arc::clone(&gate)),
            stats: SinkStats::default(),
        };
        (Box::new(sink), seen, gate)
    }
}

impl Sink for Collect {
    fn name(&self) -> &str {
        &self.name
    }
    fn send_batch(&mut self, batch: &[Record]) {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.seen
            .lock()
            .unwrap()
            .extend(batch.iter().map(|r| r.ts.0));
        self.stats.records_sent += batch.len() as u64;
        if let Some(gate) = &self.gate {
            let (open, cv) = &**gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
        }
    }
    fn flush(&mut self) {}
    fn stats(&self) -> SinkStats {
        self.stats.clone()
    }
}

#[test]
fn block_delivers_everything_in_order_through_a_tiny_ring() {
    let (a, seen_a) = Collect::boxed("a", Duration::ZERO);
    let (b, seen_b) = Collect::boxed("b", Duration::from_micros(200));
    let config = PipelineConfig {
        ring_capacity: 16,
        when_full: WhenFull::Block,
        batch_size: 8,
        sink_queue_batches: 2,
        ..PipelineConfig::default()
    };
    let p = Pipeline::start(&config, vec![a, b]).unwrap();
    for n in 0..20_000 {
        p.push(record(n));
    }
    let stats = p.finish();
    let want: Vec<u64> = (0..20_000).collect();
    assert_eq!(*seen_a.lock().unwrap(), want);
    assert_eq!(*seen_b.lock().unwrap(), want);
    assert!(stats.ring_drops.is_empty());
    assert_eq!(stats.sinks[0].1.records_sent, 20_000);
    assert!(stats.sinks.iter().all(|(_, s)| s.dropped.is_empty()));
}

#[test]
fn stuck_sink_drops_only_its_own_records() {
    let (fast, seen_fast) = Collect::boxed("fast", Duration::ZERO);
    let (stuck, seen_stuck, gate) = Collect::gated("stuck");
    let config = PipelineConfig {
        ring_capacity: 1024,
        when_full: WhenFull::DropNewest,
        batch_size: 16,
        sink_queue_batches: 4,
        ..PipelineConfig::default()
    };
    let p = Pipeline::start(&config, vec![fast, stuck]).unwrap();
    let total = 2_000u64;
    for n in 0..total {
        p.push(record(n));
        // Wait for the fast sink after each batch so only the stuck one can fall behind.
        if (n + 1) % 16 == 0 {
            while (seen_fast.lock().unwrap().len() as u64) < n + 1 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
    let (open, cv) = &*gate;
    *open.lock().unwrap() = true;
    cv.notify_all();
    let stats = p.finish();

    assert!(stats.ring_drops.is_empty());
    assert_eq!(*seen_fast.lock().unwrap(), (0..total).collect::<Vec<_>>());
    assert!(!stats.sinks[0].1.dropped.contains_key("queue_full"));
    // The stuck sink took one batch and its queue held four more (batches hold up to 16
    // records: the dispatcher sends what it finds); everything else was dropped and counted.
    let stuck_seen = seen_stuck.lock().unwrap();
    let queue_full = stats.sinks[1]
        .1
        .dropped
        .get("queue_full")
        .copied()
        .unwrap_or(0);
    assert!(
        stuck_seen.len() >= 5 && stuck_seen.len() <= 16 * 5,
        "{}",
        stuck_seen.len()
    );
    assert_eq!(stuck_seen.len() as u64 + queue_full, total);
    assert!(stuck_seen.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn ring_policies_count_with_source_and_reason() {
    let ring = Ring::new(4, WhenFull::DropOldest);
    for n in 0..10 {
        ring.push(record(n));
    }
    let kept: Vec<u64> = std::iter::from_fn(|| ring.pop()).map(|r| r.ts.0).collect();
    assert_eq!(kept, [6, 7, 8, 9]);
    assert_eq!(ring.drops().get(&("replay", "ring_full_oldest")), Some(&6));

    let ring = Ring::new(4, WhenFull::DropNewest);
    for n in 0..10 {
        ring.push(record(n));
    }
    let kept: Vec<u64> = std::iter::from_fn(|| ring.pop()).map(|r| r.ts.0).collect();
    assert_eq!(kept, [0, 1, 2, 3]);
    assert_eq!(ring.drops().get(&("replay", "ring_full")), Some(&6));
}

/// Pushes 40 records into a pipeline whose only sink waits on `gate`, and finishes it with a
/// 200 ms shutdown timeout; the gate opens only at 600 ms, after the timeout.
fn finish_held_past_the_timeout(sink: Box<dyn Sink>, gate: &Gate) -> PipelineStats {
    let config = PipelineConfig {
        ring_capacity: 1024,
        when_full: WhenFull::DropNewest,
        batch_size: 4,
        sink_queue_batches: 64,
        batch_timeout: Duration::ZERO,
        shutdown_timeout: Duration::from_millis(200),
        ..PipelineConfig::default()
    };
    let p = Pipeline::start(&config, vec![sink]).unwrap();
    for n in 0..40 {
        p.push(record(n));
    }
    let opener = {
        let gate = Arc::clone(gate);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(600));
            let (lock, cv) = &*gate;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        })
    };
    let stats = p.finish();
    opener.join().unwrap();
    stats
}

#[test]
fn shutdown_timeout_counts_what_was_left() {
    let (stuck, seen, gate) = Collect::gated("stuck");
    let stats = finish_held_past_the_timeout(stuck, &gate);
    let delivered = seen.lock().unwrap().len() as u64;
    let dropped: u64 =
        stats.sinks[0].1.dropped.values().sum::<u64>() + stats.ring_drops.values().sum::<u64>();
    assert!(delivered < 40, "the gate held the sink");
    assert_eq!(delivered + dropped, 40, "every record delivered or counted");
}

/// A gated sink that can keep batches for later (as a stream sink with a spool does).
struct Parking {
    inner: Box<dyn Sink>,
    parked: Arc<Mutex<Vec<u64>>>,
    spooled: u64,
}

impl Sink for Parking {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn send_batch(&mut self, batch: &[Record]) {
        self.inner.send_batch(batch);
    }
    fn park(&mut self, batch: &[Record]) -> bool {
        self.parked
            .lock()
            .unwrap()
            .extend(batch.iter().map(|r| r.ts.0));
        self.spooled += batch.len() as u64;
        true
    }
    fn flush(&mut self) {}
    fn stats(&self) -> SinkStats {
        SinkStats {
            spooled: self.spooled,
            ..self.inner.stats()
        }
    }
}

#[test]
fn past_the_shutdown_timeout_a_sink_that_can_park_keeps_what_is_left() {
    let (stuck, seen, gate) = Collect::gated("stuck");
    let parked = Arc::new(Mutex::new(Vec::new()));
    let sink = Box::new(Parking {
        inner: stuck,
        parked: Arc::clone(&parked),
        spooled: 0,
    });
    let stats = finish_held_past_the_timeout(sink, &gate);
    let delivered = seen.lock().unwrap().clone();
    let parked = parked.lock().unwrap().clone();
    assert!(
        !parked.is_empty(),
        "the gate held the sink past the timeout"
    );
    assert!(
        stats.sinks[0].1.dropped.is_empty(),
        "{:?}",
        stats.sinks[0].1.dropped
    );
    assert!(stats.ring_drops.is_empty(), "{:?}", stats.ring_drops);
    // Delivered, then parked, in order: nothing lost, nothing twice.
    let mut all = delivered;
    all.extend(parked);
    assert_eq!(all, (0..40).collect::<Vec<u64>>());
    assert_eq!(stats.sinks[0].1.spooled, 40 - stats.sinks[0].1.records_sent);
}

#[test]
fn a_partial_batch_leaves_at_its_deadline() {
    let (sink, seen) = Collect::boxed("a", Duration::ZERO);
    let config = PipelineConfig {
        batch_size: 1000,
        batch_timeout: Duration::from_millis(5),
        ..PipelineConfig::default()
    };
    let p = Pipeline::start(&config, vec![sink]).unwrap();
    p.push(record(1));
    let start = std::time::Instant::now();
    while seen.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "batch never left");
        std::thread::sleep(Duration::from_millis(1));
    }
    p.finish();
}
