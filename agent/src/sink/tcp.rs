//! HEP over TCP or TLS: HEP3 packets back to back on one stream, no extra framing
//! (hep.md §1.8.2–1.8.3).
//!
//! A batch is encoded into one reused buffer and written with as few `write` calls as the
//! kernel allows. When a write fails (`EPIPE`, `ECONNRESET`, the [`WRITE_TIMEOUT`]) or the
//! collector half-closes its side, the sink stops writing on that connection, reconnects and
//! resends from the start of the first packet not written whole, so the new stream never
//! begins inside a packet.
//!
//! HEP has no acknowledgements, but TCP has: over plain TCP the sink keeps the packets written
//! on the current connection until the peer's TCP acknowledged them (the kernel's send queue,
//! `SIOCOUTQ`, says how many bytes it still holds). When the connection is lost, every packet
//! not wholly acknowledged is sent again, first, and counted in [`SinkStats::resent`]. What the
//! collector's kernel acknowledged but the collector never read (it was killed) is lost to any
//! HEP sender. Under TLS the kernel counts ciphertext, so a packet written whole is counted
//! sent and nothing is re-sent.
//!
//! The collector may be down at construction; the sink then connects on the first batch.
//! After a failed connect or a lost connection the next attempt waits a delay that starts at
//! [`RECONNECT_BACKOFF_MIN`] and doubles up to [`RECONNECT_BACKOFF_MAX`], each wait drawn
//! between half and all of it (jitter, so that many agents do not reconnect in step); the
//! first write that succeeds resets it, so a collector that accepts and drops at once is not
//! hammered.
//!
//! Without a spool, a batch waits through reconnects for at most [`SINK_DOWN_TIMEOUT`] and is
//! then dropped as `sink_down`. After such a drop the sink sheds load: later batches make one
//! connect attempt when the backoff allows and are dropped at once otherwise, until a
//! connection succeeds, so a replay against a dead collector finishes (with its losses
//! counted) instead of stalling for the timeout on every batch. With a spool nothing waits:
//! what the connection cannot take at once goes to the spool, and the spool is sent, in
//! order, before live records once a connect succeeds.
//!
//! Sockets get `TCP_NODELAY` (each batch is written whole, Nagle would only delay it) and
//! `SO_KEEPALIVE`. Dropping the sink shuts the write side down so the collector reads every
//! byte before end of stream.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{SockRef, TcpKeepalive};
use tracing::{debug, error, info, warn};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use super::conn::{Conn, Wrap};
use super::{HepTarget, Sink, SinkStats};
use crate::hep::{EncodeError, HepEncoder};
use crate::record::Record;
use crate::spool::{Position, Spool};
use crate::telemetry::LogLimit;

/// How long one batch waits for the collector through reconnects before it is dropped
/// (sinks without a spool).
pub const SINK_DOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// First reconnect delay after a failed connect.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Ceiling of the doubling reconnect delay.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A write that makes no progress for this long counts as a lost connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// After the collector half-closes (or at the end of a run), how long the sink waits for the
/// peer's TCP to acknowledge what was written before it closes its own side.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Packets kept for re-sending at most, in bytes. The kernel's send buffer (`tcp_wmem`, 4 MiB
/// by default) bounds what can be unacknowledged; this only caps memory if it is raised.
const UNACKED_MAX_BYTES: usize = 16 << 20;

/// Limit of one connect attempt to one address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Idle time before the first keepalive probe, and the interval between probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Where a packet of the current buffer came from.
#[derive(Clone, Copy, Debug)]
enum Origin {
    /// A live record, with its capture time in microseconds (kept when it is spooled).
    Live(u64),
    /// A spooled record: the position just after it, acknowledged once the peer has it.
    Spool(Position),
}

/// A packet written whole on the current connection, not yet known acknowledged.
#[derive(Debug)]
struct InFlight {
    /// Offset in the connection's byte stream just after the packet.
    end: u64,
    origin: Origin,
    /// The packet itself for live records (spooled ones are read again from the spool).
    packet: Option<Vec<u8>>,
}

/// What went out on the current connection, for re-sending what its peer did not take.
#[derive(Debug, Default)]
struct Unacked {
    /// Bytes written on the connection, partial packets included.
    written: u64,
    packets: VecDeque<InFlight>,
    /// Bytes of the live packet copies in `packets`.
    held: usize,
}

/// HEP over TCP.
#[derive(Debug)]
pub struct TcpHepSink {
    name: String,
    /// `host:port`, resolved again on each connect attempt.
    address: String,
    /// The last successful resolution, used when resolving fails.
    addrs: Vec<SocketAddr>,
    encoder: HepEncoder,
    /// The current batch's packets, back to back; reused across batches.
    buf: Vec<u8>,
    /// End offset in `buf` of each packet of the current batch.
    ends: Vec<usize>,
    /// Origin of each packet in `buf`.
    origins: Vec<Origin>,
    conn: Option<Conn>,
    unacked: Unacked,
    /// Live packets of a lost connection its peer never acknowledged, sent before anything
    /// else on the next one (sinks without a spool; with one they are spooled).
    resend: VecDeque<(u64, Vec<u8>)>,
    /// Where records wait while the collector is down (`--spool-dir`).
    spool: Option<Spool>,
    /// Plain TCP, or TLS with its client configuration.
    wrap: Wrap,
    /// Why the collector's TLS certificate was refused on the first connect, if it was.
    refused_certificate: Option<String>,
    backoff: Backoff,
    /// How long a batch waits for the collector; [`SINK_DOWN_TIMEOUT`] outside tests.
    down_timeout: Duration,
    /// A batch was dropped as `sink_down` and no connection has succeeded since.
    shedding: bool,
    link: Link,
    stats: SinkStats,
    up_log: LogLimit,
    down_log: LogLimit,
    drop_log: LogLimit,
}

/// Connection state as last logged, so each transition is logged once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Unknown,
    Up,
    Down,
}

/// Exponential reconnect delay with jitter.
#[derive(Debug)]
struct Backoff {
    delay: Duration,
    /// No connect attempt before this instant; `None` means now.
    next_attempt: Option<Instant>,
    /// xorshift state for the jitter; seeded from the process's random hasher keys.
    rng: u64,
}

impl Backoff {
    fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Backoff {
            delay: RECONNECT_BACKOFF_MIN,
            next_attempt: None,
            rng: seed | 1,
        }
    }

    /// The next attempt waits between half and all of the current delay, which then doubles.
    fn failed(&mut self, now: Instant) {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = 0.5 + (self.rng >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        self.next_attempt = Some(now + self.delay.mul_f64(fraction));
        self.delay = (self.delay * 2).min(RECONNECT_BACKOFF_MAX);
    }

    fn reset(&mut self) {
        self.delay = RECONNECT_BACKOFF_MIN;
        self.next_attempt = None;
    }

    fn due(&self, now: Instant) -> bool {
        self.next_attempt.is_none_or(|at| at <= now)
    }
}

impl TcpHepSink {
    /// Resolves `target` and tries to connect once. An unreachable collector is not an error
    /// here: the sink connects when it has something to send.
    pub fn new(target: &HepTarget, encoder: HepEncoder) -> io::Result<Self> {
        Self::with_wrap(target, encoder, Wrap::Plain)
    }

    /// As [`TcpHepSink::new`], speaking TLS with `config`. The certificate must name the
    /// host of `target` (unless `config` verifies nothing, `--tls-insecure`).
    pub fn new_tls(
        target: &HepTarget,
        encoder: HepEncoder,
        config: Arc<ClientConfig>,
    ) -> io::Result<Self> {
        let host = target
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let server_name = ServerName::try_from(host)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Self::with_wrap(
            target,
            encoder,
            Wrap::Tls {
                config,
                server_name,
            },
        )
    }

    fn with_wrap(target: &HepTarget, encoder: HepEncoder, wrap: Wrap) -> io::Result<Self> {
        let addrs: Vec<SocketAddr> = target.address.to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} resolves to no address", target.address),
            ));
        }

        let mut sink = TcpHepSink {
            name: format!("hep {target}"),
            address: target.address.clone(),
            addrs,
            encoder,
            buf: Vec::new(),
            ends: Vec::new(),
            origins: Vec::new(),
            conn: None,
            unacked: Unacked::default(),
            resend: VecDeque::new(),
            spool: None,
            wrap,
            refused_certificate: None,
            backoff: Backoff::new(),
            down_timeout: SINK_DOWN_TIMEOUT,
            shedding: false,
            link: Link::Unknown,
            stats: SinkStats::default(),
            up_log: LogLimit::default(),
            down_log: LogLimit::default(),
            drop_log: LogLimit::default(),
        };
        sink.connect();
        if let Some(reason) = sink.refused_certificate.take() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the collector's TLS certificate was refused ({reason}); --tls-ca must hold \
                     the CA that signed it (a self-signed CA certificate cannot be the server's \
                     own), or use --tls-insecure"
                ),
            ));
        }
        Ok(sink)
    }

    /// Encodes the batch into `buf`/`ends`, after the packets waiting to be re-sent; a record
    /// the encoder rejects is dropped.
    fn encode(&mut self, batch: &[Record]) {
        self.buf.clear();
        self.ends.clear();
        self.origins.clear();
        for (ts, packet) in self.resend.drain(..) {
            self.buf.extend_from_slice(&packet);
            self.ends.push(self.buf.len());
            self.origins.push(Origin::Live(ts));
        }
        for record in batch {
            match self.encoder.encode(record, &mut self.buf) {
                Ok(_) => {
                    self.ends.push(self.buf.len());
                    self.origins.push(Origin::Live(record.ts.0));
                }
                Err(EncodeError::TooLarge { len } | EncodeError::ChunkTooLarge { len, .. }) => {
                    self.stats.drop_one("oversize");
                    if let Some(suppressed) = self.drop_log.allow(Instant::now()) {
                        warn!(
                            sink = %self.name,
                            size = len,
                            suppressed,
                            "record too large for a hep packet, dropped"
                        );
                    }
                }
            }
        }
    }

    /// Writes `buf` through reconnects until done, the batch's time is up, or the sink is
    /// shedding (with a spool: until the connection cannot take more now); returns how many
    /// bytes of `buf` went out as whole packets.
    fn deliver(&mut self) -> usize {
        let deadline = Instant::now() + self.down_timeout;
        let mut written = 0;

        while written < self.buf.len() {
            // Packets a lost connection never acknowledged go before the rest.
            if !self.resend.is_empty() {
                self.splice_resend(&mut written);
            }
            let Some(conn) = self.conn.as_mut() else {
                if self.backoff.due(Instant::now()) && self.connect() {
                    continue;
                }
                let now = Instant::now();
                // With a spool nothing waits for the collector: the rest is spooled at once.
                if self.shedding || self.spool.is_some() || now >= deadline {
                    break;
                }
                if let Some(at) = self.backoff.next_attempt {
                    std::thread::sleep(at.min(deadline).saturating_duration_since(now));
                }
                continue;
            };

            // A collector shutting down half-closes first: stop writing on that connection.
            if conn.peer_closed() {
                self.settle_and_drop("collector closed its side of the connection");
                continue;
            }
            let before = written;
            let result = write_packets(conn, &self.buf, &self.ends, &mut written);
            self.track(before, written, result.as_ref().err().map(|e| e.1));
            match result {
                Ok(()) => {
                    self.backoff.reset();
                    self.release_acked();
                }
                Err((e, _)) => self.lost(&e),
            }
        }
        written
    }

    /// Replaces what `buf` holds before `*written` (already on a connection) with the
    /// packets waiting to be re-sent, so that they go out first, in their order.
    fn splice_resend(&mut self, written: &mut usize) {
        let done = self.ends.partition_point(|&end| end <= *written);
        let mut buf = Vec::with_capacity(self.buf.len());
        let mut ends = Vec::with_capacity(self.ends.len());
        let mut origins = Vec::with_capacity(self.origins.len());
        for (ts, packet) in self.resend.drain(..) {
            buf.extend_from_slice(&packet);
            ends.push(buf.len());
            origins.push(Origin::Live(ts));
        }
        let shift = buf.len();
        buf.extend_from_slice(&self.buf[*written..]);
        ends.extend(self.ends[done..].iter().map(|&end| end - *written + shift));
        origins.extend_from_slice(&self.origins[done..]);
        self.buf = buf;
        self.ends = ends;
        self.origins = origins;
        *written = 0;
    }

    /// Notes what one `write_packets` call put on the connection: `raw` bytes past `from`
    /// when it failed inside a packet, else up to `to`. Whole packets are kept until the
    /// peer acknowledges them (plain TCP); under TLS spooled ones are acknowledged at once.
    fn track(&mut self, from: usize, to: usize, raw: Option<usize>) {
        let base = self.unacked.written;
        let bytes = raw.unwrap_or(to).saturating_sub(from) as u64;
        self.unacked.written += bytes;
        self.stats.bytes_sent += bytes;
        let tracking = matches!(self.wrap, Wrap::Plain);
        let first = self.ends.partition_point(|&end| end <= from);
        let mut start = if first == 0 { 0 } else { self.ends[first - 1] };
        for i in first..self.ends.len() {
            let end = self.ends[i];
            if end > to {
                break;
            }
            let origin = self.origins[i];
            self.stats.records_sent += 1;
            if tracking {
                let packet = match origin {
                    Origin::Live(_) => {
                        self.unacked.held += end - start;
                        Some(self.buf[start..end].to_vec())
                    }
                    Origin::Spool(_) => None,
                };
                self.unacked.packets.push_back(InFlight {
                    end: base + (end - from) as u64,
                    origin,
                    packet,
                });
            } else if let (Origin::Spool(pos), Some(spool)) = (origin, self.spool.as_mut())
                && let Err(e) = spool.ack(pos)
            {
                error!(sink = %self.name, error = %e, "spool ack failed");
            }
            start = end;
        }
        // Memory stays bounded even with a huge send buffer: the oldest copies go first
        // (they are the likeliest to be acknowledged already).
        while self.unacked.held > UNACKED_MAX_BYTES {
            let Some(old) = self.unacked.packets.pop_front() else {
                break;
            };
            self.forget(old);
        }
    }

    /// Drops one tracked packet as delivered; a spooled one is acknowledged in the spool.
    fn forget(&mut self, p: InFlight) {
        if let Some(packet) = &p.packet {
            self.unacked.held -= packet.len();
        }
        if let (Origin::Spool(pos), Some(spool)) = (p.origin, self.spool.as_mut())
            && let Err(e) = spool.ack(pos)
        {
            error!(sink = %self.name, error = %e, "spool ack failed");
        }
    }

    /// Forgets the packets the peer's TCP has acknowledged so far.
    fn release_acked(&mut self) {
        let Some(outq) = self.conn.as_ref().and_then(Conn::unacked_bytes) else {
            return;
        };
        self.release_upto(self.unacked.written.saturating_sub(outq));
    }

    fn release_upto(&mut self, acked: u64) {
        while self.unacked.packets.front().is_some_and(|p| p.end <= acked) {
            if let Some(p) = self.unacked.packets.pop_front() {
                self.forget(p);
            }
        }
    }

    /// The collector half-closed: write nothing more, give its TCP [`SETTLE_TIMEOUT`] to
    /// acknowledge what is in flight (it is reading its last bytes), then close our side and
    /// re-send what it did not take.
    fn settle_and_drop(&mut self, why: &str) {
        self.settle();
        let e = io::Error::new(io::ErrorKind::ConnectionAborted, why.to_string());
        self.lost(&e);
    }

    /// Waits until the peer acknowledged every byte written, the connection failed, or
    /// [`SETTLE_TIMEOUT`] passed.
    fn settle(&mut self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while let Some(conn) = self.conn.as_ref() {
            match conn.unacked_bytes() {
                Some(0) | None => break,
                Some(_) if conn.take_error().is_some() || Instant::now() >= deadline => break,
                // Loopback acknowledges in microseconds, a WAN in a round trip.
                Some(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        self.release_acked();
    }

    /// One connect attempt over the resolved addresses; true when connected.
    fn connect(&mut self) -> bool {
        let now = Instant::now();
        if self.link == Link::Down {
            self.stats.retries += 1;
        }
        match self.address.to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if !addrs.is_empty() {
                    self.addrs = addrs;
                }
            }
            Err(e) => debug!(sink = %self.name, error = %e, "resolving hep collector failed"),
        }

        let mut last_error = None;
        for addr in &self.addrs {
            let connected = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).and_then(|stream| {
                if let Err(e) = configure(&stream) {
                    warn!(sink = %self.name, error = %e, "setting hep socket options failed");
                }
                self.wrap.wrap(stream)
            });
            match connected {
                Ok(stream) => {
                    if let Some(suppressed) = self.up_log.allow(now) {
                        info!(
                            sink = %self.name,
                            peer = %addr,
                            suppressed,
                            "connected to hep collector"
                        );
                    }
                    // The backoff resets once a write succeeds: a collector that accepts and
                    // drops at once must not be hammered.
                    self.conn = Some(stream);
                    self.unacked = Unacked::default();
                    self.backoff.next_attempt = None;
                    self.shedding = false;
                    self.link = Link::Up;
                    return true;
                }
                Err(e) => {
                    if let Some(reason) = certificate_error(&e) {
                        error!(sink = %self.name, peer = %addr, %reason,
                            "hep collector's tls certificate refused");
                        self.refused_certificate = Some(reason);
                    }
                    last_error = Some(e);
                }
            }
        }

        self.backoff.failed(now);
        self.stats.errors += 1;
        let error = last_error.map(|e| e.to_string()).unwrap_or_default();
        if self.link != Link::Down {
            self.link = Link::Down;
            if let Some(suppressed) = self.down_log.allow(now) {
                warn!(sink = %self.name, error, suppressed, "hep collector unreachable, retrying");
            }
        } else {
            let retry_in = self.backoff.next_attempt.map(|at| at - now);
            debug!(sink = %self.name, error, ?retry_in, "connect to hep collector failed");
        }
        false
    }

    /// Forgets a connection that failed or closed: what its peer did not acknowledge is
    /// queued to be sent again first (spooled, with a spool); the reconnect waits for the
    /// backoff.
    fn lost(&mut self, e: &io::Error) {
        if let Some(mut conn) = self.conn.take() {
            // Unknown (the query failed): every tracked packet goes again, at least once.
            if let Some(outq) = conn.unacked_bytes() {
                self.release_upto(self.unacked.written.saturating_sub(outq));
            }
            conn.close();
        }
        self.requeue_unacked();
        self.stats.errors += 1;
        self.backoff.failed(Instant::now());
        if self.link != Link::Down {
            self.link = Link::Down;
            if let Some(suppressed) = self.down_log.allow(Instant::now()) {
                warn!(sink = %self.name, error = %e, suppressed, "lost hep collector connection");
            }
        }
    }

    /// Moves the tracked packets of the closed connection back in front of everything else:
    /// spooled ones are read again from the spool's acknowledged position, live ones join
    /// the spool (they are older than anything appended since) or the in-memory resend queue.
    fn requeue_unacked(&mut self) {
        let packets = std::mem::take(&mut self.unacked.packets);
        self.unacked = Unacked::default();
        if packets.is_empty() {
            return;
        }
        self.stats.resent += packets.len() as u64;
        let mut rewind = false;
        for p in packets {
            match (p.origin, p.packet) {
                (Origin::Spool(_), _) => rewind = true,
                (Origin::Live(ts), Some(packet)) => match self.spool.as_mut() {
                    Some(spool) => {
                        if let Err(e) = spool.append(ts, &packet) {
                            self.stats.drop_one("spool_error");
                            if let Some(suppressed) = self.drop_log.allow(Instant::now()) {
                                error!(sink = %self.name, error = %e, suppressed,
                                    "spool write failed");
                            }
                        }
                    }
                    None => self.resend.push_back((ts, packet)),
                },
                (Origin::Live(_), None) => {}
            }
        }
        if let Some(spool) = self.spool.as_mut() {
            if rewind {
                spool.rewind();
            }
            if let Err(e) = spool.sync() {
                debug!(sink = %self.name, error = %e, "spool sync failed");
            }
        }
        debug!(sink = %self.name, records = self.stats.resent, "re-sending unacknowledged records");
    }
}

impl TcpHepSink {
    /// Spools what a connection could not take: collector outages cost disk, not records.
    pub fn with_spool(mut self, spool: Spool) -> Self {
        self.spool = Some(spool);
        self.publish_spool();
        self
    }

    /// Appends the encoded packets from index `from` of the current buffer to the spool.
    fn spool_packets(&mut self, from: usize) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let mut start = if from == 0 { 0 } else { self.ends[from - 1] };
        for (i, &end) in self.ends.iter().enumerate().skip(from) {
            let ts = match self.origins.get(i) {
                Some(Origin::Live(ts)) => *ts,
                _ => 0,
            };
            match spool.append(ts, &self.buf[start..end]) {
                Ok(()) => self.stats.spooled += 1,
                Err(e) => {
                    self.stats.drop_one("spool_error");
                    if let Some(suppressed) = self.drop_log.allow(Instant::now()) {
                        error!(sink = %self.name, error = %e, suppressed, "spool write failed");
                    }
                }
            }
            start = end;
        }
        if let Err(e) = spool.sync() {
            debug!(sink = %self.name, error = %e, "spool sync failed");
        }
    }

    /// Sends what the spool holds, in order; true when it is all sent (the peer's TCP may
    /// not have acknowledged it yet: the spool keeps it until then).
    fn drain_spool(&mut self) -> bool {
        let live_buf = std::mem::take(&mut self.buf);
        let live_ends = std::mem::take(&mut self.ends);
        let live_origins = std::mem::take(&mut self.origins);
        let mut drained = true;
        while let Some(spool) = self.spool.as_mut() {
            let records = match spool.read(256) {
                Ok(r) => r,
                Err(e) => {
                    error!(sink = %self.name, error = %e, "spool read failed");
                    drained = false;
                    break;
                }
            };
            if records.is_empty() {
                break;
            }
            self.buf.clear();
            self.ends.clear();
            self.origins.clear();
            for r in &records {
                self.buf.extend_from_slice(&r.payload);
                self.ends.push(self.buf.len());
                self.origins.push(Origin::Spool(r.end));
            }
            let written = self.deliver();
            let sent = self.ends.partition_point(|&end| end <= written);
            if sent < records.len() {
                if let Some(spool) = self.spool.as_mut() {
                    spool.rewind();
                }
                drained = false;
                break;
            }
        }
        self.buf = live_buf;
        self.ends = live_ends;
        self.origins = live_origins;
        drained
    }

    /// Copies the spool's counters into the sink stats.
    fn publish_spool(&mut self) {
        if let Some(spool) = self.spool.as_ref() {
            let s = spool.stats();
            self.stats.spool_records = s.records;
            self.stats.spool_bytes = s.bytes;
            self.stats.spool_oldest_ts_us = s.oldest_ts_us;
            if s.dropped_full > 0 {
                self.stats.dropped.insert("spool_full", s.dropped_full);
            }
        }
    }
}

/// The certificate problem behind a failed TLS connect, if that is what failed: retrying will
/// not fix it, so the operator is told at once.
fn certificate_error(e: &io::Error) -> Option<String> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(c) => Some(format!("{c:?}")),
        rustls::Error::NoCertificatesPresented => Some("no certificate presented".into()),
        _ => None,
    }
}

/// Applies the socket options of the module docs.
fn configure(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    let sock = SockRef::from(stream);
    sock.set_keepalive(true)?;
    sock.set_tcp_keepalive(&keepalive)
}

/// Writes `buf[*written..]` to `w`, advancing `*written`. On error `*written` is moved back
/// to the start of the packet it was inside (packets end at `ends`), so the caller resends
/// that packet whole on its next connection; the error comes with the offset in `buf` the
/// connection actually got to (partial packet included).
fn write_packets(
    w: &mut impl Write,
    buf: &[u8],
    ends: &[usize],
    written: &mut usize,
) -> Result<(), (io::Error, usize)> {
    while *written < buf.len() {
        let e = match w.write(&buf[*written..]) {
            Ok(0) => io::ErrorKind::WriteZero.into(),
            Ok(n) => {
                *written += n;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        let reached = *written;
        let whole = ends.partition_point(|&end| end <= *written);
        *written = if whole == 0 { 0 } else { ends[whole - 1] };
        return Err((e, reached));
    }
    Ok(())
}

impl Sink for TcpHepSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send_batch(&mut self, batch: &[Record]) {
        self.encode(batch);
        if self.ends.is_empty() {
            return;
        }

        // With a spool, what waits there goes first; while it cannot, live records join it.
        if self.spool.is_some() && !self.drain_spool() {
            self.spool_packets(0);
            self.publish_spool();
            return;
        }

        let written = self.deliver();
        let sent = self.ends.partition_point(|&end| end <= written);

        if self.spool.is_some() && sent < self.ends.len() {
            self.spool_packets(sent);
            self.publish_spool();
            return;
        }
        self.publish_spool();

        let lost = (self.ends.len() - sent) as u64;
        if lost > 0 {
            *self.stats.dropped.entry("sink_down").or_default() += lost;
            self.shedding = true;
            if let Some(suppressed) = self.drop_log.allow(Instant::now()) {
                error!(
                    sink = %self.name,
                    records = lost,
                    suppressed,
                    "hep collector down, batch dropped"
                );
            }
        }
    }

    /// Spools the batch without trying the collector (its breaker is open, or the run is
    /// ending); false without a spool.
    fn park(&mut self, batch: &[Record]) -> bool {
        if self.spool.is_none() {
            return false;
        }
        self.encode(batch);
        self.spool_packets(0);
        self.publish_spool();
        true
    }

    /// Between batches: notices a collector that half-closed, forgets what its TCP
    /// acknowledged, and sends the spool once the collector is back (when the backoff
    /// allows an attempt); reports whether that attempt emptied the spool.
    fn idle(&mut self) -> Option<bool> {
        if let Some(conn) = self.conn.as_ref()
            && conn.peer_closed()
        {
            self.settle_and_drop("collector closed its side of the connection");
        }
        self.release_acked();
        let waiting = self.spool.as_ref().is_some_and(|s| !s.is_drained());
        let outcome = (waiting && (self.conn.is_some() || self.backoff.due(Instant::now())))
            .then(|| self.drain_spool());
        self.publish_spool();
        outcome
    }

    /// End of a run: lets the peer acknowledge what is in flight; with a spool, what it did
    /// not acknowledge is spooled for the next run instead of being lost.
    fn flush(&mut self) {
        if let Some(conn) = self.conn.as_mut()
            && let Err(e) = conn.flush()
        {
            self.lost(&e);
        }
        if self.spool.is_some() && self.conn.is_some() {
            self.settle();
            if !self.unacked.packets.is_empty() {
                let e = io::Error::new(io::ErrorKind::TimedOut, "unacknowledged at shutdown");
                self.lost(&e);
            }
        }
        self.publish_spool();
    }

    fn stats(&self) -> SinkStats {
        self.stats.clone()
    }
}

impl Drop for TcpHepSink {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            // FIN after the queued data: the collector reads everything, then end of stream.
            conn.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{IpAddr, Ipv4Addr, TcpListener};
    use std::sync::mpsc;
    use std::thread;

    use bytes::Bytes;

    use super::*;
    use crate::hep::{NodeIdentity, decode_v3};
    use crate::record::{Source, Timestamp, Transport};
    use crate::sip::SipScan;

    fn record(i: usize) -> Record {
        let payload = format!(
            "INVITE sip:{i}@example.com SIP/2.0\r\nCall-ID: call-{i}\r\nCSeq: 1 INVITE\r\n\r\n"
        )
        .into_bytes();
        Record {
            source: Source::Replay,
            ts: Timestamp::from_parts(1_313_440_459, i as u32),
            src: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)),
            src_port: 5060,
            dst_port: 20_000 + i as u16,
            transport: Transport::TCP,
            vlan: Some(7),
            proto_type: 1,
            sip: SipScan::scan(&payload),
            payload: Bytes::from(payload),
        }
    }

    fn batch(range: std::ops::Range<usize>) -> Vec<Record> {
        range.map(record).collect()
    }

    fn encoder() -> HepEncoder {
        HepEncoder::new(NodeIdentity {
            node_id: 7,
            ..Default::default()
        })
    }

    fn target(port: u16) -> HepTarget {
        format!("tcp://127.0.0.1:{port}").parse().unwrap()
    }

    /// Splits a received stream into packets by their length field; every packet must decode
    /// and the stream must end on a packet boundary. Returns the dst ports, which number the
    /// records.
    fn split(stream: &[u8]) -> Vec<u16> {
        let mut ids = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            assert!(rest.len() >= 6, "torn packet header at the end");
            let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
            assert!(rest.len() >= len, "torn packet at the end");
            let hep = decode_v3(&rest[..len]).expect("every packet decodes");
            let port = hep.dst_port.unwrap();
            let want = record(usize::from(port - 20_000));
            assert_eq!(hep.payload, Some(&want.payload[..]));
            assert_eq!(hep.ts_usec, Some(want.ts.subsec_micros()));
            assert_eq!(hep.correlation_id, want.correlation_id());
            assert_eq!(hep.vlan, Some(7));
            assert_eq!(hep.capture_id, Some(7));
            ids.push(port);
            rest = &rest[len..];
        }
        ids
    }

    fn ports(range: std::ops::Range<usize>) -> Vec<u16> {
        range.map(|i| 20_000 + i as u16).collect()
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn packets_arrive_back_to_back() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            got
        });

        let mut sink = TcpHepSink::new(&target(port), encoder()).unwrap();
        sink.send_batch(&batch(0..50));
        sink.send_batch(&batch(50..120));
        sink.flush();
        let stats = sink.stats();
        drop(sink);

        let got = server.join().unwrap();
        assert_eq!(split(&got), ports(0..120));
        assert_eq!(stats.records_sent, 120);
        assert_eq!(stats.bytes_sent, got.len() as u64);
        assert!(stats.dropped.is_empty(), "{:?}", stats.dropped);
    }

    #[test]
    fn collector_down_at_construction_then_up() {
        let port = free_port();
        let mut sink = TcpHepSink::new(&target(port), encoder()).unwrap();
        assert!(sink.conn.is_none());

        let server = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            got
        });

        // Waits through the backoff until the listener is there.
        sink.send_batch(&batch(0..30));
        let stats = sink.stats();
        drop(sink);

        assert_eq!(split(&server.join().unwrap()), ports(0..30));
        assert_eq!(stats.records_sent, 30);
        assert!(stats.dropped.is_empty(), "{:?}", stats.dropped);
    }

    #[test]
    fn a_half_closed_collector_gets_no_more_writes_on_that_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (half_closed_tx, half_closed_rx) = mpsc::channel();
        let server = thread::spawn(move || {
            let (mut first, _) = listener.accept().unwrap();
            // A clean shutdown: stop sending, read what is in flight, then close.
            first.shutdown(std::net::Shutdown::Write).unwrap();
            half_closed_tx.send(()).unwrap();
            let mut before = Vec::new();
            first.read_to_end(&mut before).unwrap();

            let (mut second, _) = listener.accept().unwrap();
            let mut after = Vec::new();
            second.read_to_end(&mut after).unwrap();
            (before, after)
        });

        let mut sink = TcpHepSink::new(&target(port), encoder()).unwrap();
        half_closed_rx.recv().unwrap();
        thread::sleep(Duration::from_millis(50));
        sink.send_batch(&batch(0..10));
        drop(sink);

        let (before, after) = server.join().unwrap();
        assert!(
            before.is_empty(),
            "wrote {} bytes after the FIN",
            before.len()
        );
        assert_eq!(split(&after), ports(0..10));
    }

    #[test]
    fn server_closing_mid_run_reconnects_without_torn_packets() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (closed_tx, closed_rx) = mpsc::channel();
        let server = thread::spawn(move || {
            let (mut first, _) = listener.accept().unwrap();
            // Read a little and close with the rest unread: the kernel answers with a reset.
            let mut some = [0; 16];
            first.read_exact(&mut some).unwrap();
            drop(first);
            closed_tx.send(()).unwrap();

            let (mut second, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            second.read_to_end(&mut got).unwrap();
            got
        });

        let mut sink = TcpHepSink::new(&target(port), encoder()).unwrap();
        sink.send_batch(&batch(0..20));
        closed_rx.recv().unwrap();
        // Either this write fails at once or it lands in the dead socket and the next fails.
        sink.send_batch(&batch(20..40));
        thread::sleep(Duration::from_millis(100));
        sink.send_batch(&batch(40..60));
        sink.send_batch(&batch(60..80));
        let stats = sink.stats();
        drop(sink);

        let ids = split(&server.join().unwrap());
        // Whatever of 20..40 reached the second connection, it came whole, and everything
        // after the loss was noticed arrived in order.
        assert!(ids.len() >= 40);
        assert_eq!(ids[ids.len() - 40..], ports(40..80)[..]);
        assert_eq!(stats.records_sent - stats.resent, 80, "{stats:?}");
        assert!(stats.dropped.is_empty(), "{:?}", stats.dropped);
    }

    #[test]
    fn collector_never_up_drops_as_sink_down_then_sheds() {
        let port = free_port();
        let mut sink = TcpHepSink::new(&target(port), encoder()).unwrap();
        sink.down_timeout = Duration::from_millis(300);

        sink.send_batch(&batch(0..10));
        assert!(sink.shedding);
        sink.send_batch(&batch(10..15));

        let stats = sink.stats();
        assert_eq!(stats.records_sent, 0);
        assert_eq!(stats.bytes_sent, 0);
        assert_eq!(stats.dropped.get("sink_down"), Some(&15));
        assert_eq!(stats.dropped.len(), 1);
    }

    #[test]
    fn a_spooled_outage_is_delivered_in_order_once_the_collector_is_back() {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("hepcap-tcp-spool-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (spool, _) =
            Spool::open(&dir, crate::spool::SpoolConfig::with_max_bytes(1 << 20)).unwrap();
        let mut sink = TcpHepSink::new(&target(port), encoder())
            .unwrap()
            .with_spool(spool);
        sink.down_timeout = Duration::from_millis(200);

        sink.send_batch(&batch(0..10));
        sink.send_batch(&batch(10..15));
        assert_eq!(sink.stats().spool_records, 15);
        assert!(
            sink.stats().dropped.is_empty(),
            "{:?}",
            sink.stats().dropped
        );

        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            got
        });
        // The backoff may still hold the next attempt back: keep offering live records.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut next = 15;
        while sink.stats().records_sent < next as u64 && Instant::now() < deadline {
            sink.send_batch(&batch(next..next + 1));
            next += 1;
            thread::sleep(Duration::from_millis(50));
        }
        let stats = sink.stats();
        drop(sink);
        assert_eq!(split(&server.join().unwrap()), ports(0..next));
        assert_eq!(stats.spool_records, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A listener whose accepted sockets have a small receive buffer, so that a collector
    /// that stops reading soon closes its window and the sender's kernel keeps the rest.
    fn small_window_listener() -> TcpListener {
        let sock = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        sock.listen(4).unwrap();
        sock.into()
    }

    /// Bytes waiting unread in a socket's receive queue (FIONREAD).
    fn unread_bytes(s: &TcpStream) -> usize {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through a pointer to a live local.
        let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
        assert_eq!(rc, 0);
        usize::try_from(n).unwrap()
    }

    #[test]
    fn a_killed_collector_gets_again_what_its_tcp_never_acknowledged() {
        let listener = small_window_listener();
        let port = listener.local_addr().unwrap().port();
        let (killed_tx, killed_rx) = mpsc::channel();
        let server = thread::spawn(move || {
            let (mut first, _) = listener.accept().unwrap();
            // Read a little, then hang: the window closes and the sender's kernel holds the
            // rest, unacknowledged. Past the delayed-ACK timer everything received is ACKed.
            let mut read = vec![0; 1500];
            first.read_exact(&mut read).unwrap();
            thread::sleep(Duration::from_millis(500));
            // Killed: closing with unread data answers the sender with a reset. What sat
            // unread was acknowledged by this kernel and is lost to any HEP sender.
            let unread = unread_bytes(&first);
            drop(first);
            killed_tx.send(()).unwrap();
            let (mut second, _) = listener.accept().unwrap();
            second
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut after = Vec::new();
            second.read_to_end(&mut after).unwrap();
            (read.len() + unread, after)
        });

        // Steady traffic until the collector is gone, then a little more: the first write
        // after the reset fails and the sink reconnects.
        let mut sink = TcpHepSink::new(&target(port), encoder()).unwrap();
        let mut n = 0;
        let mut after_kill = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while after_kill.is_none_or(|k| n < k + 500) {
            assert!(Instant::now() < deadline && n < 60_000, "no reset seen");
            sink.send_batch(&batch(n..n + 50));
            n += 50;
            if after_kill.is_none() && killed_rx.try_recv().is_ok() {
                after_kill = Some(n);
            }
            thread::sleep(Duration::from_millis(5));
        }
        let stats = sink.stats();
        drop(sink);
        let (acked, after) = server.join().unwrap();

        // Where each packet ends in the stream, from an independent encoding of the same
        // records: the first connection's peer acknowledged `acked` bytes, so the second
        // connection must start with the first packet not wholly inside them.
        let enc = encoder();
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for r in batch(0..n) {
            enc.encode(&r, &mut stream).unwrap();
            ends.push(stream.len() as u64);
        }
        let first_unacked = ends.partition_point(|&end| end <= acked as u64);
        assert!(first_unacked < n, "the first connection took everything");
        let got = split(&after);
        let want = ports(first_unacked..n);
        assert!(
            got == want,
            "second connection: {} packets from {:?}, want {} from {:?}",
            got.len(),
            got.first(),
            want.len(),
            want.first()
        );
        assert!(stats.resent > 0, "{stats:?}");
        assert!(stats.dropped.is_empty(), "{:?}", stats.dropped);
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_with_each_wait_between_half_and_all() {
        let now = Instant::now();
        let mut b = Backoff::new();
        let mut waits = Vec::new();
        let mut ceiling = RECONNECT_BACKOFF_MIN;
        for _ in 0..12 {
            b.failed(now);
            let wait = b.next_attempt.unwrap() - now;
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{wait:?} for {ceiling:?}"
            );
            waits.push(wait);
            ceiling = (ceiling * 2).min(RECONNECT_BACKOFF_MAX);
        }
        // Jitter: the waits at the ceiling are not all the same.
        assert!(waits[6..].windows(2).any(|w| w[0] != w[1]), "{waits:?}");
        b.reset();
        assert!(b.due(now));
        b.failed(now);
        assert!(b.next_attempt.unwrap() - now <= RECONNECT_BACKOFF_MIN);
    }

    /// Accepts `limit` bytes in writes of at most 7, then fails like a reset connection.
    struct Flaky {
        limit: usize,
        got: Vec<u8>,
    }

    impl Write for Flaky {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let room = self.limit - self.got.len();
            if room == 0 {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            let n = data.len().min(room).min(7);
            self.got.extend_from_slice(&data[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failed_write_rewinds_to_the_packet_start() {
        let buf: Vec<u8> = (0..60).collect();
        let ends = [10, 30, 60];

        // Fails inside the second packet: resume at its start.
        let mut written = 0;
        let mut w = Flaky {
            limit: 15,
            got: Vec::new(),
        };
        let e = write_packets(&mut w, &buf, &ends, &mut written).unwrap_err();
        assert_eq!(e.0.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(written, 10);

        // Fails exactly on a boundary: nothing to resend.
        let mut w = Flaky {
            limit: 20,
            got: Vec::new(),
        };
        write_packets(&mut w, &buf, &ends, &mut written).unwrap_err();
        assert_eq!(written, 30);

        // Fails inside the first packet: resume at zero.
        let mut from_zero = 0;
        let mut w = Flaky {
            limit: 3,
            got: Vec::new(),
        };
        write_packets(&mut w, &buf, &ends, &mut from_zero).unwrap_err();
        assert_eq!(from_zero, 0);

        // A healthy connection takes the rest, starting on a packet boundary.
        let mut w = Flaky {
            limit: usize::MAX,
            got: Vec::new(),
        };
        write_packets(&mut w, &buf, &ends, &mut written).unwrap();
        assert_eq!(written, 60);
        assert_eq!(w.got, buf[30..]);
    }
}
