//! Spool behaviour: a model-based property test over appends, reads, acknowledgements,
//! restarts and torn tails, plus the full-spool eviction.

use std::io::Write;

use proptest::prelude::*;

use super::*;

fn scratch_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hepcap-spool-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    dir
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<u8>),
    Read(usize),
    /// Acknowledge the n-th record in flight (modulo their number).
    Ack(usize),
    Restart,
    /// Garbage after the last whole frame, as a write cut by kill -9 leaves.
    TornTail(Vec<u8>),
    /// Cut the newest record short by n bytes (modulo its length).
    Truncate(usize),
    Rewind,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..120).prop_map(Op::Append),
        3 => (1usize..8).prop_map(Op::Read),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Restart),
        1 => proptest::collection::vec(any::<u8>(), 1..40).prop_map(Op::TornTail),
        1 => any::<usize>().prop_map(Op::Truncate),
        1 => Just(Op::Rewind),
    ]
}

/// What the spool must hold: every record appended (and not cut), how many were
/// acknowledged, and the next one to read.
#[derive(Default)]
struct Model {
    records: Vec<Vec<u8>>,
    acked: usize,
    next: usize,
    in_flight: Vec<(usize, Position)>,
}

fn config() -> SpoolConfig {
    SpoolConfig {
        max_bytes: 1 << 30,
        segment_bytes: 300,
    }
}

fn reopen(spool: Spool, dir: &Path) -> Spool {
    drop(spool);
    Spool::open(dir, config()).expect("reopen").0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn records_come_back_in_order_and_never_after_their_ack(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        let dir = scratch_dir("prop");
        let (mut spool, _) = Spool::open(&dir, config()).expect("open");
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Append(payload) => {
                    spool.append(m.records.len() as u64, &payload).expect("append");
                    m.records.push(payload);
                }
                Op::Read(n) => {
                    let got = spool.read(n).expect("read");
                    let want = &m.records[m.next..(m.next + n).min(m.records.len())];
                    let got_payloads: Vec<&Vec<u8>> = got.iter().map(|r| &r.payload).collect();
                    let want: Vec<&Vec<u8>> = want.iter().collect();
                    prop_assert_eq!(got_payloads, want);
                    for r in got {
                        m.in_flight.push((m.next, r.end));
                        m.next += 1;
                    }
                }
                Op::Ack(k) => {
                    if !m.in_flight.is_empty() {
                        let k = k % m.in_flight.len();
                        let (index, end) = m.in_flight[k];
                        spool.ack(end).expect("ack");
                        m.in_flight.drain(..=k);
                        m.acked = index + 1;
                    }
                }
                Op::Restart => {
                    spool = reopen(spool, &dir);
                    m.next = m.acked;
                    m.in_flight.clear();
                }
                Op::Rewind => {
                    spool.rewind();
                    m.next = m.acked;
                    m.in_flight.clear();
                }
                Op::TornTail(garbage) => {
                    spool.sync().expect("sync");
                    let path = spool.newest_segment_path();
                    drop(spool);
                    if let Some(path) = path {
                        let mut f = OpenOptions::new().append(true).open(&path).expect("seg");
                        f.write_all(&garbage).expect("garbage");
                    }
                    spool = Spool::open(&dir, config()).expect("open torn").0;
                    m.next = m.acked;
                    m.in_flight.clear();
                }
                Op::Truncate(n) => {
                    // Only an unacknowledged newest record can be cut (acknowledged data was
                    // delivered; the spool may have deleted it).
                    if m.records.len() > m.acked {
                        spool.sync().expect("sync");
                        let last = m.records.last().map(Vec::len).unwrap_or(0) + FRAME_HEADER;
                        let cut = 1 + n % (last - 1).max(1);
                        let path = spool.newest_segment_path().expect("a segment");
                        drop(spool);
                        let f = OpenOptions::new().write(true).open(&path).expect("seg");
                        let len = f.metadata().expect("len").len();
                        f.set_len(len - cut as u64).expect("cut");
                        m.records.pop();
                        spool = Spool::open(&dir, config()).expect("open cut").0;
                        m.next = m.acked;
                        m.in_flight.clear();
                    }
                }
            }
            prop_assert_eq!(spool.stats().records, (m.records.len() - m.acked) as u64);
        }
        // Whatever is left reads back in order.
        spool.rewind();
        let rest = spool.read(usize::MAX).expect("read rest");
        let rest: Vec<&Vec<u8>> = rest.iter().map(|r| &r.payload).collect();
        let want: Vec<&Vec<u8>> = m.records[m.acked..].iter().collect();
        prop_assert_eq!(rest, want);
        drop(spool);
        let _ = fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_full_spool_drops_its_oldest_segment_and_counts_it() {
    let dir = scratch_dir("full");
    let config = SpoolConfig {
        max_bytes: 1000,
        segment_bytes: 250,
    };
    let (mut spool, _) = Spool::open(&dir, config).unwrap();
    // 116-byte frames: two per segment.
    for n in 0..20u64 {
        spool.append(n, &[n as u8; 100]).unwrap();
    }
    let stats = spool.stats();
    assert!(stats.bytes <= 1000, "{stats:?}");
    assert!(stats.dropped_full > 0);
    assert_eq!(stats.records + stats.dropped_full, 20);
    let got = spool.read(100).unwrap();
    assert_eq!(got.len() as u64, stats.records);
    // The survivors are the newest, in order.
    let firsts: Vec<u8> = got.iter().map(|r| r.payload[0]).collect();
    let want: Vec<u8> = (20 - stats.records as u8..20).collect();
    assert_eq!(firsts, want);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn acked_segments_are_deleted_and_the_ack_survives_a_restart() {
    let dir = scratch_dir("ack");
    let config = SpoolConfig {
        max_bytes: 1 << 20,
        segment_bytes: 100,
    };
    let (mut spool, _) = Spool::open(&dir, config).unwrap();
    for n in 0..10u64 {
        spool.append(n, &[n as u8; 40]).unwrap();
    }
    spool.sync().unwrap();
    let got = spool.read(6).unwrap();
    spool.ack(got[5].end).unwrap();
    assert_eq!(spool.stats().records, 4);
    drop(spool);
    let (mut spool, recovery) = Spool::open(&dir, config).unwrap();
    assert_eq!(recovery.records, 4);
    let rest: Vec<u8> = spool
        .read(10)
        .unwrap()
        .iter()
        .map(|r| r.payload[0])
        .collect();
    assert_eq!(rest, vec![6, 7, 8, 9]);
    let segs = fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    assert_eq!(
        segs, 4,
        "one record per segment; the acknowledged ones deleted"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_frame_ends_its_segment_and_is_reported() {
    let dir = scratch_dir("crc");
    let config = SpoolConfig::with_max_bytes(1 << 20);
    let (mut spool, _) = Spool::open(&dir, config).unwrap();
    for n in 0..3u64 {
        spool.append(n, b"hello").unwrap();
    }
    spool.sync().unwrap();
    let path = spool.newest_segment_path().unwrap();
    drop(spool);
    let mut data = fs::read(&path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(&path, data).unwrap();
    let (mut spool, recovery) = Spool::open(&dir, config).unwrap();
    assert_eq!(recovery.records, 2);
    assert_eq!(recovery.discarded_bytes, (FRAME_HEADER + 5) as u64);
    assert_eq!(spool.read(10).unwrap().len(), 2);
    let _ = fs::remove_dir_all(&dir);
}
