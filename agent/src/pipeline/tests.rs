//! Pipeline behaviour at its bounds, with in-memory sinks.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
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

/// Remembers the timestamps it received; optionally slow.
struct Collect {
    name: String,
    seen: Arc<Mutex<Vec<u64>>>,
    delay: Duration,
    stats: SinkStats,
}

impl Collect {
    fn new(name: &str, delay: Duration) -> (Box<dyn Sink>, Arc<Mutex<Vec<u64>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Collect {
            name: name.into(),
            seen: Arc::clone(&seen),
            delay,
            stats: SinkStats::default(),
        };
        (Box::new(sink), seen)
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
    }
    fn flush(&mut self) {}
    fn stats(&self) -> SinkStats {
        self.stats.clone()
    }
}

#[test]
fn block_delivers_everything_in_order_through_a_tiny_ring() {
    let (a, seen_a) = Collect::new("a", Duration::ZERO);
    let (b, seen_b) = Collect::new("b", Duration::from_micros(200));
    let config = PipelineConfig {
        ring_capacity: 16,
        when_full: WhenFull::Block,
        batch_size: 8,
        sink_queue_batches: 2,
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
fn slow_sink_drops_only_its_own_records() {
    let (fast, seen_fast) = Collect::new("fast", Duration::ZERO);
    let (slow, seen_slow) = Collect::new("slow", Duration::from_millis(5));
    let config = PipelineConfig {
        ring_capacity: 1 << 16,
        when_full: WhenFull::DropNewest,
        batch_size: 16,
        sink_queue_batches: 4,
    };
    let p = Pipeline::start(&config, vec![fast, slow]).unwrap();
    let total = 20_000u64;
    for n in 0..total {
        p.push(record(n));
        if n % 1000 == 0 {
            // Let the dispatcher keep up so the ring itself does not overflow.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let stats = p.finish();
    let ring_dropped: u64 = stats.ring_drops.values().sum();
    let fast_n = seen_fast.lock().unwrap().len() as u64;
    assert_eq!(fast_n + ring_dropped, total);
    let slow_seen = seen_slow.lock().unwrap();
    let queue_full = stats.sinks[1]
        .1
        .dropped
        .get("queue_full")
        .copied()
        .unwrap_or(0);
    assert!(
        queue_full > 0,
        "the slow sink must have overflowed its queue"
    );
    assert_eq!(slow_seen.len() as u64 + queue_full + ring_dropped, total);
    // What the slow sink got is still in order.
    assert!(slow_seen.windows(2).all(|w| w[0] < w[1]));
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
