//! HEP over UDP: one HEP3 packet per datagram (hep.md §1.8.1).
//!
//! The destination is resolved once, at construction, and the socket is `connect`ed to it, so
//! the kernel filters what comes back and reports ICMP errors on the socket. A batch is encoded
//! into one reused buffer and handed to the kernel with a single `sendmmsg(2)` (Linux); the
//! loop continues from the first datagram not sent, so a partial send costs one more call.
//!
//! Error handling, per datagram:
//! - `EINTR`: the call is repeated.
//! - `ECONNREFUSED`: on a connected UDP socket the kernel reports an ICMP port unreachable
//!   caused by an *earlier* datagram on the next send, and that send does not happen. The
//!   refused datagram is therefore retried once: a collector that restarts loses only what it
//!   missed while down. If the retry is refused again the datagram is dropped as `refused`;
//!   any other failure on the retry is a `send_error`. The same single retry applies to host
//!   and network unreachable, which ICMP reports the same deferred way.
//! - `ENOBUFS` / `EAGAIN`: the interface queue is full; wait [`NOBUFS_WAIT`] and retry, at most
//!   [`NOBUFS_RETRIES`] times, then drop as `send_error`.
//! - A packet over [`MAX_UDP_HEP`] bytes, one the encoder rejects (over 65535), and `EMSGSIZE`
//!   are dropped as `oversize`.
//!
//! Logs that a packet can trigger are limited to one line per 10 s, carrying the count of
//! lines suppressed since the previous one.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::ops::Range;
use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::{HepTarget, MAX_UDP_HEP, Sink, SinkStats};
use crate::hep::{EncodeError, HepEncoder};
use crate::record::Record;
use crate::telemetry::LogLimit;

/// Pause before retrying a datagram the kernel refused with `ENOBUFS` or `EAGAIN`.
const NOBUFS_WAIT: Duration = Duration::from_millis(1);

/// How many times one datagram is retried after `ENOBUFS` or `EAGAIN` before it is dropped.
const NOBUFS_RETRIES: u32 = 100;

/// HEP over UDP.
#[derive(Debug)]
pub struct UdpHepSink {
    name: String,
    socket: UdpSocket,
    encoder: HepEncoder,
    /// The current batch's packets, back to back; reused across batches.
    buf: Vec<u8>,
    /// Where each packet of the current batch lies in `buf`.
    spans: Vec<Range<usize>>,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    mmsg: mmsg::Scratch,
    stats: SinkStats,
    oversize_log: LogLimit,
    refused_log: LogLimit,
    error_log: LogLimit,
}

/// What a failed send means for the datagram at the head of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Interrupted by a signal: repeat at once.
    Interrupted,
    /// An ICMP error about an earlier datagram, reported instead of sending this one.
    Deferred,
    /// Local queue full: wait and repeat.
    NoBuffers,
    /// The kernel says the datagram is too large.
    Oversize,
    /// Anything else: drop the datagram.
    Other,
}

impl Failure {
    fn of(e: &io::Error) -> Failure {
        match e.raw_os_error() {
            Some(libc::EINTR) => Failure::Interrupted,
            Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH) => Failure::Deferred,
            // EWOULDBLOCK is EAGAIN on Linux; a blocking socket sees it only with a send timeout.
            Some(libc::ENOBUFS | libc::EAGAIN) => Failure::NoBuffers,
            Some(libc::EMSGSIZE) => Failure::Oversize,
            _ => Failure::Other,
        }
    }
}

impl UdpHepSink {
    /// Resolves `target`, binds an ephemeral socket of the same family and connects it.
    pub fn new(target: &HepTarget, encoder: HepEncoder) -> io::Result<Self> {
        let peer = target.address.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} resolves to no address", target.address),
            )
        })?;
        let local: SocketAddr = match peer {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(peer)?;

        Ok(UdpHepSink {
            name: format!("hep {target}"),
            socket,
            encoder,
            buf: Vec::new(),
            spans: Vec::new(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            mmsg: mmsg::Scratch::default(),
            stats: SinkStats::default(),
            oversize_log: LogLimit::default(),
            refused_log: LogLimit::default(),
            error_log: LogLimit::default(),
        })
    }

    /// Encodes the batch into `buf`/`spans`, dropping what cannot travel in one datagram.
    fn encode(&mut self, batch: &[Record]) {
        self.buf.clear();
        self.spans.clear();
        for record in batch {
            let start = self.buf.len();
            match self.encoder.encode(record, &mut self.buf) {
                Ok(len) if len <= MAX_UDP_HEP => self.spans.push(start..start + len),
                Ok(len) => {
                    self.buf.truncate(start);
                    self.drop_oversize(len);
                }
                // The chunk length is a lower bound of the packet size; good enough for a log.
                Err(EncodeError::TooLarge { len } | EncodeError::ChunkTooLarge { len, .. }) => {
                    self.drop_oversize(len)
                }
            }
        }
    }

    /// Sends every encoded packet, retrying and dropping as the module docs describe.
    fn transmit(&mut self) {
        let mut next = 0;
        let mut retried_deferred = false;
        let mut nobufs_waits = 0;

        while next < self.spans.len() {
            let result = self.send_some(next);
            let e = match result {
                Ok(sent) => {
                    // The kernel never reports more than it was given; the bound keeps the
                    // slicing below obviously in range.
                    let sent = sent.min(self.spans.len() - next);
                    let bytes: usize = self.spans[next..next + sent].iter().map(|s| s.len()).sum();
                    self.stats.records_sent += sent as u64;
                    self.stats.bytes_sent += bytes as u64;
                    next += sent;
                    retried_deferred = false;
                    nobufs_waits = 0;
                    continue;
                }
                Err(e) => e,
            };

            let skip = match Failure::of(&e) {
                Failure::Interrupted => false,
                Failure::Deferred if !retried_deferred => {
                    retried_deferred = true;
                    self.log_refused(&e);
                    false
                }
                Failure::NoBuffers if nobufs_waits < NOBUFS_RETRIES => {
                    nobufs_waits += 1;
                    std::thread::sleep(NOBUFS_WAIT);
                    false
                }
                Failure::Deferred if e.kind() == io::ErrorKind::ConnectionRefused => {
                    self.stats.drop_one("refused");
                    self.log_refused(&e);
                    true
                }
                Failure::Oversize => {
                    let len = self.spans[next].len();
                    self.drop_oversize(len);
                    true
                }
                Failure::Deferred | Failure::NoBuffers | Failure::Other => {
                    self.stats.drop_one("send_error");
                    self.stats.errors += 1;
                    if let Some(suppressed) = self.error_log.allow(Instant::now()) {
                        error!(sink = %self.name, error = %e, suppressed, "hep datagram not sent");
                    }
                    true
                }
            };
            if skip {
                next += 1;
                retried_deferred = false;
                nobufs_waits = 0;
            }
        }
    }

    /// Sends datagrams from `spans[first..]`; returns how many were sent (at least one).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn send_some(&mut self, first: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;

        self.mmsg
            .send(self.socket.as_raw_fd(), &self.buf, &self.spans[first..])
    }

    /// Sends the datagram `spans[first]`; returns 1.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn send_some(&mut self, first: usize) -> io::Result<usize> {
        let span = self.spans[first].clone();
        self.socket.send(&self.buf[span]).map(|_| 1)
    }

    fn drop_oversize(&mut self, len: usize) {
        self.stats.drop_one("oversize");
        if let Some(suppressed) = self.oversize_log.allow(Instant::now()) {
            warn!(
                sink = %self.name,
                size = len,
                limit = MAX_UDP_HEP,
                suppressed,
                "hep packet too large for a udp datagram, dropped"
            );
        }
    }

    fn log_refused(&mut self, e: &io::Error) {
        if let Some(suppressed) = self.refused_log.allow(Instant::now()) {
            warn!(
                sink = %self.name,
                error = %e,
                suppressed,
                "hep collector unreachable (icmp), it is losing datagrams"
            );
        }
    }
}

impl Sink for UdpHepSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send_batch(&mut self, batch: &[Record]) {
        self.encode(batch);
        self.transmit();
    }

    /// Datagrams leave in `send_batch`; nothing is buffered here.
    fn flush(&mut self) {}

    fn stats(&self) -> SinkStats {
        self.stats.clone()
    }
}

/// `sendmmsg(2)` with argument arrays kept across batches.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod mmsg {
    use std::fmt;
    use std::io;
    use std::ops::Range;
    use std::os::fd::RawFd;

    /// Most messages one call accepts (`UIO_MAXIOV`).
    const MAX_MESSAGES: usize = 1024;

    /// The `iovec` and `mmsghdr` arrays of one call. They are filled, used and emptied inside
    /// [`Scratch::send`]; between calls only their allocations remain.
    #[derive(Default)]
    pub(super) struct Scratch {
        iov: Vec<libc::iovec>,
        hdrs: Vec<libc::mmsghdr>,
    }

    // SAFETY: the raw pointers in the arrays point into the buffer borrowed by `send` and are
    // cleared before it returns, so no pointer ever outlives that borrow or crosses a thread;
    // moving the empty vectors to another thread moves only their allocations.
    unsafe impl Send for Scratch {}

    impl fmt::Debug for Scratch {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Scratch")
                .field("capacity", &self.hdrs.capacity())
                .finish()
        }
    }

    impl Scratch {
        /// Sends `buf[span]` for each of `spans` (up to [`MAX_MESSAGES`]) as one datagram
        /// each; returns how many were sent, at least one. The first datagram's error is
        /// returned as is; an error after the first datagram ends the call early, and the
        /// next call reports it (or succeeds).
        pub(super) fn send(
            &mut self,
            fd: RawFd,
            buf: &[u8],
            spans: &[Range<usize>],
        ) -> io::Result<usize> {
            let spans = &spans[..spans.len().min(MAX_MESSAGES)];
            self.iov.clear();
            self.hdrs.clear();
            for span in spans {
                let packet = &buf[span.clone()];
                self.iov.push(libc::iovec {
                    iov_base: packet.as_ptr().cast_mut().cast(),
                    iov_len: packet.len(),
                });
            }
            // `iov` is complete and not touched again until cleared: its addresses are stable.
            for iov in &mut self.iov {
                // SAFETY: mmsghdr is a C struct of integers and pointers, for which all-zero
                // bytes are a valid value (no name, no control data, empty flags).
                let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
                hdr.msg_hdr.msg_iov = iov;
                hdr.msg_hdr.msg_iovlen = 1;
                self.hdrs.push(hdr);
            }

            // SAFETY: `hdrs` holds `spans.len()` initialised headers, each pointing at one
            // `iovec` in `iov`, which points into `buf`; all three outlive the call, and the
            // kernel only reads the data and writes `msg_len` inside `hdrs`.
            let rc = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    self.hdrs.len() as libc::c_uint,
                    0,
                )
            };
            let result = if rc < 0 {
                Err(io::Error::last_os_error())
            } else if rc == 0 {
                // Not expected for a non-empty vector; an error keeps the caller progressing.
                Err(io::ErrorKind::WriteZero.into())
            } else {
                Ok(rc as usize)
            };

            self.hdrs.clear();
            self.iov.clear();
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use bytes::Bytes;

    use super::*;
    use crate::hep::{NodeIdentity, decode_v3};
    use crate::record::{Source, Timestamp, Transport};
    use crate::sip::SipScan;

    fn record(i: usize, payload: Vec<u8>) -> Record {
        let v6 = i % 3 == 2;
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            (
                Ipv4Addr::new(10, 0, 0, 1).into(),
                Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8).into(),
            )
        };
        let sip = SipScan::scan(&payload);
        Record {
            source: Source::Replay,
            ts: Timestamp::from_parts(1_313_440_459 + i as u64, 120_000 + i as u32),
            src,
            dst,
            src_port: 5060,
            dst_port: 10_000 + i as u16,
            transport: Transport::UDP,
            vlan: None,
            proto_type: 1,
            payload: Bytes::from(payload),
            sip,
        }
    }

    fn sip_record(i: usize) -> Record {
        let payload = format!(
            "OPTIONS sip:{i}@example.com SIP/2.0\r\nCall-ID: call-{i}\r\nCSeq: {i} OPTIONS\r\n\r\n"
        );
        record(i, payload.into_bytes())
    }

    fn encoder() -> HepEncoder {
        HepEncoder::new(NodeIdentity {
            node_id: 2002,
            node_name: Some("edge-1".into()),
            password: None,
        })
    }

    fn collector() -> (UdpSocket, HepTarget) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let target = format!("udp://{}", socket.local_addr().unwrap())
            .parse()
            .unwrap();
        (socket, target)
    }

    /// Receives one datagram and checks it is the HEP encoding of `want`.
    fn expect_record(socket: &UdpSocket, want: &Record) {
        let mut buf = vec![0; 65_536];
        let n = socket.recv(&mut buf).expect("datagram within 5 s");
        let hep = decode_v3(&buf[..n]).unwrap();
        assert_eq!(hep.src_ip, Some(want.src));
        assert_eq!(hep.dst_ip, Some(want.dst));
        assert_eq!(hep.src_port, Some(want.src_port));
        assert_eq!(hep.dst_port, Some(want.dst_port));
        assert_eq!(hep.ts_sec, Some(want.ts.secs() as u32));
        assert_eq!(hep.ts_usec, Some(want.ts.subsec_micros()));
        assert_eq!(hep.capture_id, Some(2002));
        assert_eq!(hep.node_name, Some(&b"edge-1"[..]));
        assert_eq!(hep.correlation_id, want.correlation_id());
        assert_eq!(hep.payload, Some(&want.payload[..]));
    }

    #[test]
    fn batch_arrives_in_order_and_decodes() {
        let (rx, target) = collector();
        let mut sink = UdpHepSink::new(&target, encoder()).unwrap();
        assert_eq!(sink.name(), format!("hep {target}"));

        let batch: Vec<Record> = (0..100).map(sip_record).collect();
        sink.send_batch(&batch);

        for want in &batch {
            expect_record(&rx, want);
        }
        let mut expected_bytes = 0;
        for r in &batch {
            expected_bytes += encoder().encode(r, &mut Vec::new()).unwrap() as u64;
        }
        let stats = sink.stats();
        assert_eq!(stats.records_sent, 100);
        assert_eq!(stats.bytes_sent, expected_bytes);
        assert!(stats.dropped.is_empty(), "{:?}", stats.dropped);
    }

    #[test]
    fn oversize_records_are_counted_and_the_rest_arrive() {
        let (rx, target) = collector();
        let mut sink = UdpHepSink::new(&target, encoder()).unwrap();

        // Sized so that one packet lands between the UDP and the HEP limit and one above both.
        let overhead = encoder()
            .encode(&record(2, Vec::new()), &mut Vec::new())
            .unwrap();
        let over_udp = record(2, vec![b'x'; MAX_UDP_HEP + 10 - overhead]);
        assert_eq!(
            encoder().encode(&over_udp, &mut Vec::new()),
            Ok(MAX_UDP_HEP + 10)
        );
        let over_hep = record(3, vec![b'y'; 65_535]);
        assert!(encoder().encode(&over_hep, &mut Vec::new()).is_err());

        let batch = vec![
            sip_record(0),
            sip_record(1),
            over_udp,
            over_hep,
            sip_record(4),
        ];
        sink.send_batch(&batch);

        for i in [0, 1, 4] {
            expect_record(&rx, &batch[i]);
        }
        let stats = sink.stats();
        assert_eq!(stats.records_sent, 3);
        assert_eq!(stats.dropped.get("oversize"), Some(&2));
        assert_eq!(stats.dropped.len(), 1);
    }

    #[test]
    fn refused_port_then_listener_loses_nothing_later() {
        // A port with nobody behind it: every datagram draws an ICMP port unreachable.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target: HepTarget = format!("udp://127.0.0.1:{port}").parse().unwrap();
        let mut sink = UdpHepSink::new(&target, encoder()).unwrap();

        for round in 0..5 {
            let batch: Vec<Record> = (round * 20..round * 20 + 20).map(sip_record).collect();
            sink.send_batch(&batch);
        }
        let stats = sink.stats();
        let refused = stats.dropped.get("refused").copied().unwrap_or(0);
        assert_eq!(stats.records_sent + refused, 100);
        assert!(stats.records_sent > 0);
        assert_eq!(stats.dropped.get("send_error"), None);

        // The collector comes back; the socket still holds the refusal of the last datagram,
        // which the first send of the next batch reports and retries past.
        std::thread::sleep(Duration::from_millis(50));
        let rx = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let batch: Vec<Record> = (100..120).map(sip_record).collect();
        sink.send_batch(&batch);

        for want in &batch {
            expect_record(&rx, want);
        }
        let after = sink.stats();
        assert_eq!(after.records_sent, stats.records_sent + 20);
        assert_eq!(after.dropped, stats.dropped);
    }

    #[test]
    fn failure_classes() {
        let of = |errno| Failure::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::EINTR), Failure::Interrupted);
        assert_eq!(of(libc::ECONNREFUSED), Failure::Deferred);
        assert_eq!(of(libc::EHOSTUNREACH), Failure::Deferred);
        assert_eq!(of(libc::ENOBUFS), Failure::NoBuffers);
        assert_eq!(of(libc::EAGAIN), Failure::NoBuffers);
        assert_eq!(of(libc::EMSGSIZE), Failure::Oversize);
        assert_eq!(of(libc::EBADF), Failure::Other);
    }
}
