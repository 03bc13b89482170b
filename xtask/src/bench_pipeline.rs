//! `cargo xtask bench-pipeline`: the pipeline's own ceiling and the spool's disk rates.
//!
//! 1. Records per second through ring + dispatcher + one sink queue into a null sink, with
//!    1, 2 and 4 producer threads pushing a prebuilt record (`block` policy: nothing is
//!    dropped, so the figure is what the pipeline sustains). Target: 5 M records/s with one
//!    producer.
//! 2. The spool's write rate (append + one fdatasync) and replay rate (read + ack) in MB/s,
//!    next to a plain sequential write of the same bytes to the same directory (the disk's
//!    ceiling), measured in the same run. Target: spool write at 50 % of the ceiling or more.
//!
//! Figures only, no assertions: the machine is shared and timings vary.

use std::fs;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use hepcap::pipeline::{Pipeline, PipelineConfig, WhenFull};
use hepcap::record::{Record, Source, Timestamp, Transport};
use hepcap::sink::{Sink, SinkStats};
use hepcap::spool::{Spool, SpoolConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Records pushed per producer configuration.
    #[arg(long, default_value_t = 10_000_000)]
    records: u64,
    /// Records per dispatched batch.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Bytes written through the spool (and the plain file).
    #[arg(long, default_value_t = 256 << 20)]
    spool_bytes: u64,
    /// Payload bytes per spooled record (a typical HEP packet of a SIP message).
    #[arg(long, default_value_t = 600)]
    record_bytes: usize,
    /// Directory for the spool and the plain file (default: target/bench-pipeline).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Counts what it gets.
struct NullSink {
    count: Arc<AtomicU64>,
}

impl Sink for NullSink {
    fn name(&self) -> &str {
        "null"
    }
    fn send_batch(&mut self, batch: &[Record]) {
        self.count.fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
    fn flush(&mut self) {}
    fn stats(&self) -> SinkStats {
        SinkStats {
            records_sent: self.count.load(Ordering::Relaxed),
            ..SinkStats::default()
        }
    }
}

fn record() -> Record {
    Record {
        source: Source::Replay,
        ts: Timestamp(1),
        src: IpAddr::V4(Ipv4Addr::LOCALHOST),
        dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
        src_port: 5060,
        dst_port: 5060,
        transport: Transport::UDP,
        vlan: None,
        proto_type: 1,
        // Static: cloning it costs no shared atomic, as each captured packet's own buffer.
        payload: bytes::Bytes::from_static(&[0x41; 400]),
        sip: None,
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // `cargo xtask` builds in debug; the figures only mean something optimised.
    if cfg!(debug_assertions) {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--release", "--package", "xtask", "--"])
            .args(std::env::args_os().skip(1))
            .status()
            .context("run the release build of xtask")?;
        anyhow::ensure!(status.success(), "release bench-pipeline failed");
        return Ok(());
    }
    println!("bench-pipeline: ring + dispatcher into a null sink, block policy");
    for producers in [1usize, 2, 4] {
        let rate = pipeline_rate(producers, args.records, args.batch_size)?;
        println!(
            "  {producers} producer(s): {:>6.2} M records/s ({} records)",
            rate / 1e6,
            args.records
        );
    }

    let dir = args
        .dir
        .unwrap_or_else(|| crate::workspace::root().join("target/bench-pipeline"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let n = args.spool_bytes / args.record_bytes as u64;
    let payload = vec![0x5au8; args.record_bytes];
    let mb = (n * args.record_bytes as u64) as f64 / 1e6;

    // The disk's ceiling: the same payload bytes, one buffered sequential write and a sync.
    let plain = dir.join("plain.bin");
    let started = Instant::now();
    {
        let file = fs::File::create(&plain)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for _ in 0..n {
            w.write_all(&payload)?;
        }
        w.flush()?;
        w.get_ref().sync_data()?;
    }
    let plain_rate = mb / started.elapsed().as_secs_f64();
    fs::remove_file(&plain)?;

    let spool_dir = dir.join("spool");
    let config = SpoolConfig {
        max_bytes: args.spool_bytes * 2,
        segment_bytes: 64 << 20,
    };
    let started = Instant::now();
    {
        let (mut spool, _) = Spool::open(&spool_dir, config)?;
        for i in 0..n {
            spool.append(i, &payload)?;
        }
        spool.sync()?;
    }
    let write_rate = mb / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut read = 0u64;
    {
        let (mut spool, _) = Spool::open(&spool_dir, config)?;
        loop {
            let batch = spool.read(1024)?;
            let Some(last) = batch.last() else { break };
            read += batch.len() as u64;
            spool.ack(last.end)?;
        }
    }
    let replay_rate = mb / started.elapsed().as_secs_f64();
    anyhow::ensure!(read == n, "spool replayed {read} of {n} records");
    let _ = fs::remove_dir_all(&dir);

    println!(
        "bench-pipeline: spool, {n} records of {} bytes ({mb:.0} MB) in {}",
        args.record_bytes,
        dir.display()
    );
    println!("  sequential write (ceiling): {plain_rate:>8.1} MB/s");
    println!(
        "  spool write:                {write_rate:>8.1} MB/s ({:.0} % of the ceiling)",
        100.0 * write_rate / plain_rate
    );
    println!("  spool replay (read + ack):  {replay_rate:>8.1} MB/s");
    Ok(())
}

fn pipeline_rate(producers: usize, records: u64, batch_size: usize) -> anyhow::Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let sink = NullSink {
        count: Arc::clone(&count),
    };
    let config = PipelineConfig {
        ring_capacity: 1 << 16,
        when_full: WhenFull::Block,
        batch_size,
        batch_timeout: std::time::Duration::ZERO,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::start(&config, vec![Box::new(sink)])?;
    let ring = pipeline.ring();
    let per = records / producers as u64;
    let template = record();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..producers {
            let ring = Arc::clone(&ring);
            let template = template.clone();
            s.spawn(move || {
                for _ in 0..per {
                    ring.push(template.clone());
                }
            });
        }
    });
    drop(ring);
    pipeline.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let got = count.load(Ordering::Relaxed);
    anyhow::ensure!(got == per * producers as u64, "null sink got {got} records");
    Ok(got as f64 / elapsed)
}
