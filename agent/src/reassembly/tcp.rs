//! TCP byte-stream reassembly per direction (RFC 9293 sequence numbers) and SIP framing on top,
//! directly or inside WebSocket frames.
//!
//! Each direction of a connection is its own flow, keyed by its four-tuple. Bytes are placed
//! by sequence number only (PSH means nothing here): a segment that repeats bytes already
//! delivered (a retransmission) is trimmed or ignored, one that starts beyond the next
//! expected byte waits in a small per-flow queue. When that queue is full the missing bytes
//! are given up: the flow jumps to the earliest queued segment, drops the partial message it
//! held and counts a `gap`; the SIP framer then resynchronises at the next start line.
//!
//! Limits: `max_flows` flows and `max_bytes` buffered over all flows; at either limit the
//! least recently active flow is evicted (`flows_evicted`). A flow idle for `idle_timeout_us`
//! is expired. A message may not exceed `max_message` bytes (`oversize`). FIN and RST close
//! the flow after their payload is delivered.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::sipframe::{self, Framed};
use super::websocket::{self, WsParse};
use crate::record::Timestamp;

/// Limits of the flow table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    pub max_flows: usize,
    /// Bytes buffered over all flows (stream buffers and out-of-order segments).
    pub max_bytes: usize,
    /// Largest SIP message (headers plus body) or WebSocket message.
    pub max_message: usize,
    /// Out-of-order segments held per flow before the hole is given up.
    pub max_out_of_order: usize,
    pub idle_timeout_us: u64,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_flows: 16_384,
            max_bytes: 64 << 20,
            max_message: 256 << 10,
            max_out_of_order: 32,
            idle_timeout_us: 300_000_000,
        }
    }
}

/// Counters of the flow table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub flows_opened: u64,
    /// Closed by FIN or RST.
    pub flows_closed: u64,
    /// Idle past the timeout, or still open at the end of the input.
    pub flows_expired: u64,
    /// Evicted at the flow or byte limit.
    pub flows_evicted: u64,
    pub messages: u64,
    /// Segments whose bytes had all been delivered already.
    pub retransmissions: u64,
    pub out_of_order: u64,
    /// Holes given up.
    pub gaps: u64,
    /// Bytes dropped while looking for a start line (mid-stream pickup, after a gap).
    pub resync_bytes: u64,
    /// Messages with a missing or non-numeric Content-Length.
    pub no_content_length: u64,
    /// Messages over `max_message`, dropped.
    pub oversize: u64,
    /// WebSocket frames that did not parse; the flow's buffer is dropped.
    pub ws_malformed: u64,
    pub peak_flows: usize,
    pub peak_bytes: usize,
}

/// One direction of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// What the stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// SIP messages back to back.
    Sip,
    /// An HTTP head (upgrade request or 101 response), then WebSocket frames.
    WebSocket,
}

/// One TCP segment as the decoder sees it.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Sip,
    HttpHead,
    WsFrames,
}

#[derive(Debug)]
struct Flow {
    last_seen: Timestamp,
    order: u64,
    next_seq: u32,
    phase: Phase,
    buf: Vec<u8>,
    out_of_order: Vec<(u32, Vec<u8>)>,
    /// A fragmented WebSocket message being collected.
    ws_message: Vec<u8>,
}

impl Flow {
    fn bytes(&self) -> usize {
        self.buf.len()
            + self.ws_message.len()
            + self
                .out_of_order
                .iter()
                .map(|(_, d)| d.len())
                .sum::<usize>()
    }
}

/// The flow table.
#[derive(Debug)]
pub struct TcpTable {
    config: TcpConfig,
    flows: HashMap<FlowKey, Flow>,
    /// Least recently active first.
    by_activity: BTreeMap<(Timestamp, u64), FlowKey>,
    next_order: u64,
    bytes: usize,
    stats: TcpStats,
}

impl TcpTable {
    pub fn new(config: TcpConfig) -> Self {
        TcpTable {
            config,
            flows: HashMap::new(),
            by_activity: BTreeMap::new(),
            next_order: 0,
            bytes: 0,
            stats: TcpStats::default(),
        }
    }

    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, key: &FlowKey) -> bool {
        self.flows.contains_key(key)
    }

    /// Feeds a segment of flow `key`. A flow is opened when `open` names what it carries and
    /// the flow is not known; otherwise a segment of an unknown flow is ignored (false).
    /// `emit` receives each completed message (its bytes and its index within this segment).
    pub fn feed(
        &mut self,
        key: FlowKey,
        seg: Segment<'_>,
        open: Option<StreamKind>,
        now: Timestamp,
        emit: &mut dyn FnMut(&[u8], u32),
    ) -> bool {
        self.expire(now);
        if seg.syn && self.flows.contains_key(&key) {
            // A new connection on the same four-tuple.
            self.remove(&key);
            self.stats.flows_closed += 1;
        }
        if !self.flows.contains_key(&key) {
            let Some(kind) = open else {
                return false;
            };
            if seg.rst || (seg.fin && seg.payload.is_empty()) {
                return true;
            }
            self.open(key, kind, seg, now);
        }
        self.touch(&key, now);

        let before = self.flows[&key].bytes();
        self.accept(&key, seg);
        self.deliver(&key, emit);
        let after = self.flows.get(&key).map_or(0, Flow::bytes);
        self.bytes = (self.bytes + after).saturating_sub(before);
        self.enforce_bytes(&key);
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.bytes);

        if seg.fin || seg.rst {
            self.remove(&key);
            self.stats.flows_closed += 1;
        }
        true
    }

    /// Expires flows idle past the timeout at `now`.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some((&(seen, _), &key)) = self.by_activity.first_key_value() {
            if seen.0.saturating_add(self.config.idle_timeout_us) >= now.0 {
                break;
            }
            self.remove(&key);
            self.stats.flows_expired += 1;
        }
    }

    /// Drops every flow, counted as expired (the input ended).
    pub fn flush(&mut self) {
        self.stats.flows_expired += self.flows.len() as u64;
        self.flows.clear();
        self.by_activity.clear();
        self.bytes = 0;
    }

    fn open(&mut self, key: FlowKey, kind: StreamKind, seg: Segment<'_>, now: Timestamp) {
        while self.flows.len() >= self.config.max_flows.max(1) {
            let Some((_, &oldest)) = self.by_activity.first_key_value() else {
                break;
            };
            self.remove(&oldest);
            self.stats.flows_evicted += 1;
        }
        let order = self.next_order;
        self.next_order += 1;
        self.flows.insert(
            key,
            Flow {
                last_seen: now,
                order,
                // Picked up mid-stream: this segment's first byte is the first we know.
                next_seq: if seg.syn {
                    seg.seq.wrapping_add(1)
                } else {
                    seg.seq
                },
                phase: match kind {
                    StreamKind::Sip => Phase::Sip,
                    StreamKind::WebSocket => Phase::HttpHead,
                },
                buf: Vec::new(),
                out_of_order: Vec::new(),
                ws_message: Vec::new(),
            },
        );
        self.by_activity.insert((now, order), key);
        self.stats.flows_opened += 1;
        self.stats.peak_flows = self.stats.peak_flows.max(self.flows.len());
    }

    fn touch(&mut self, key: &FlowKey, now: Timestamp) {
        let flow = self.flows.get_mut(key).expect("flow exists");
        if flow.last_seen == now {
            return;
        }
        self.by_activity.remove(&(flow.last_seen, flow.order));
        flow.last_seen = now;
        self.by_activity.insert((now, flow.order), *key);
    }

    /// Places the segment's bytes in the stream.
    fn accept(&mut self, key: &FlowKey, seg: Segment<'_>) {
        let max_ooo = self.config.max_out_of_order;
        let flow = self.flows.get_mut(key).expect("flow exists");
        let seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if seg.payload.is_empty() {
            return;
        }
        let ahead = seq.wrapping_sub(flow.next_seq) as i32;
        if ahead > 0 {
            self.stats.out_of_order += 1;
            flow.out_of_order.push((seq, seg.payload.to_vec()));
            if flow.out_of_order.len() > max_ooo {
                // Give up the hole: continue from the earliest queued byte.
                let earliest = flow
                    .out_of_order
                    .iter()
                    .map(|(s, _)| *s)
                    .min_by_key(|s| s.wrapping_sub(flow.next_seq))
                    .expect("queue is not empty");
                flow.next_seq = earliest;
                flow.buf.clear();
                flow.ws_message.clear();
                self.stats.gaps += 1;
            }
        } else if !append(flow, seq, seg.payload) {
            self.stats.retransmissions += 1;
        }
        // Queued segments that now touch the stream.
        while let Some(i) = flow
            .out_of_order
            .iter()
            .position(|(s, _)| s.wrapping_sub(flow.next_seq) as i32 <= 0)
        {
            let (s, data) = flow.out_of_order.swap_remove(i);
            append(flow, s, &data);
        }
    }

    /// Frames and hands out every complete message buffered in the flow.
    fn deliver(&mut self, key: &FlowKey, emit: &mut dyn FnMut(&[u8], u32)) {
        let max = self.config.max_message;
        let flow = self.flows.get_mut(key).expect("flow exists");
        let stats = &mut self.stats;
        let mut index = 0u32;
        loop {
            match flow.phase {
                Phase::Sip => match sipframe::frame(&flow.buf, max) {
                    Framed::Message {
                        skip,
                        len,
                        no_length,
                    } => {
                        stats.resync_bytes += sipframe::junk_len(&flow.buf[..skip]) as u64;
                        if no_length {
                            stats.no_content_length += 1;
                        }
                        emit(&flow.buf[skip..skip + len], index);
                        index += 1;
                        stats.messages += 1;
                        flow.buf.drain(..skip + len);
                    }
                    Framed::NeedMore { skip } => {
                        stats.resync_bytes += sipframe::junk_len(&flow.buf[..skip]) as u64;
                        flow.buf.drain(..skip);
                        if flow.buf.len() > max {
                            stats.oversize += 1;
                            flow.buf.clear();
                        }
                        return;
                    }
                    Framed::TooLong { skip } => {
                        stats.oversize += 1;
                        flow.buf.drain(..skip);
                    }
                },
                Phase::HttpHead => {
                    let Some(end) = memchr::memmem::find(&flow.buf, b"\r\n\r\n") else {
                        if flow.buf.len() > max {
                            stats.oversize += 1;
                            flow.buf.clear();
                        }
                        return;
                    };
                    flow.buf.drain(..end + 4);
                    flow.phase = Phase::WsFrames;
                }
                Phase::WsFrames => match websocket::parse(&flow.buf, max) {
                    WsParse::Frame(h) => {
                        let payload = &flow.buf[h.header_len..h.header_len + h.payload_len];
                        let data_frame = matches!(
                            h.opcode,
                            websocket::OPCODE_TEXT
                                | websocket::OPCODE_BINARY
                                | websocket::OPCODE_CONTINUATION
                        );
                        if data_frame {
                            if flow.ws_message.len() + payload.len() > max {
                                stats.oversize += 1;
                                flow.ws_message.clear();
                            } else {
                                websocket::unmask_into(payload, h.mask, &mut flow.ws_message);
                            }
                            if h.fin {
                                if !flow.ws_message.is_empty() {
                                    emit(&flow.ws_message, index);
                                    index += 1;
                                    stats.messages += 1;
                                }
                                flow.ws_message.clear();
                            }
                        }
                        flow.buf.drain(..h.header_len + h.payload_len);
                    }
                    WsParse::NeedMore => return,
                    WsParse::Malformed => {
                        stats.ws_malformed += 1;
                        flow.buf.clear();
                        flow.ws_message.clear();
                        return;
                    }
                },
            }
        }
    }

    /// Evicts the least recently active flows (this one last) until the byte limit holds.
    fn enforce_bytes(&mut self, current: &FlowKey) {
        while self.bytes > self.config.max_bytes {
            let victim = self
                .by_activity
                .values()
                .find(|k| *k != current)
                .copied()
                .unwrap_or(*current);
            self.remove(&victim);
            self.stats.flows_evicted += 1;
            if victim == *current {
                break;
            }
        }
    }

    fn remove(&mut self, key: &FlowKey) {
        if let Some(flow) = self.flows.remove(key) {
            self.by_activity.remove(&(flow.last_seen, flow.order));
            self.bytes = self.bytes.saturating_sub(flow.bytes());
        }
    }
}

/// Appends the part of `data` (starting at `seq`) beyond `next_seq`; false if it was all old.
fn append(flow: &mut Flow, seq: u32, data: &[u8]) -> bool {
    let behind = flow.next_seq.wrapping_sub(seq) as usize;
    let Some(new) = data.get(behind..).filter(|d| !d.is_empty()) else {
        return false;
    };
    flow.buf.extend_from_slice(new);
    flow.next_seq = flow.next_seq.wrapping_add(new.len() as u32);
    true
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            src_port: port,
            dst_port: 5060,
        }
    }

    fn seg(seq: u32, payload: &[u8]) -> Segment<'_> {
        Segment {
            seq,
            syn: false,
            fin: false,
            rst: false,
            payload,
        }
    }

    const M1: &[u8] = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 2\r\n\r\n\r\n";
    const M2: &[u8] = b"SIP/2.0 200 OK\r\nCall-ID: 2\r\nl: 0\r\n\r\n";

    fn run(t: &mut TcpTable, k: FlowKey, s: Segment<'_>, ts: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        t.feed(k, s, Some(StreamKind::Sip), Timestamp(ts), &mut |m, _| {
            out.push(m.to_vec())
        });
        out
    }

    #[test]
    fn two_messages_in_one_segment_and_keepalive() {
        let mut t = TcpTable::new(TcpConfig::default());
        let mut data = M1.to_vec();
        data.extend_from_slice(b"\r\n\r\n");
        data.extend_from_slice(M2);
        assert_eq!(
            run(&mut t, key(1), seg(100, &data), 1),
            vec![M1.to_vec(), M2.to_vec()]
        );
        assert_eq!(t.stats().resync_bytes, 0);
        assert_eq!(t.bytes(), 0);
    }

    #[test]
    fn one_message_over_segments_out_of_order_with_retransmission() {
        let mut t = TcpTable::new(TcpConfig::default());
        let k = key(2);
        let syn = Segment {
            seq: 99,
            syn: true,
            fin: false,
            rst: false,
            payload: b"",
        };
        assert!(run(&mut t, k, syn, 1).is_empty());
        assert!(run(&mut t, k, seg(110, &M1[10..]), 2).is_empty());
        assert!(run(&mut t, k, seg(100, &M1[..5]), 3).is_empty());
        assert!(run(&mut t, k, seg(100, &M1[..5]), 3).is_empty());
        assert_eq!(run(&mut t, k, seg(105, &M1[5..12]), 4), vec![M1.to_vec()]);
        assert_eq!(t.stats().retransmissions, 1);
        assert_eq!(t.stats().out_of_order, 1);
    }

    #[test]
    fn mid_stream_pickup_resynchronises() {
        let mut t = TcpTable::new(TcpConfig::default());
        // From inside M1's headers.
        let mut data = M1[30..].to_vec();
        data.extend_from_slice(M2);
        assert_eq!(run(&mut t, key(3), seg(7, &data), 1), vec![M2.to_vec()]);
        assert!(t.stats().resync_bytes > 0);
    }

    #[test]
    fn gap_is_given_up_after_the_queue_fills() {
        let cfg = TcpConfig {
            max_out_of_order: 1,
            ..TcpConfig::default()
        };
        let mut t = TcpTable::new(cfg);
        let k = key(4);
        assert!(run(&mut t, k, seg(0, &M1[..4]), 1).is_empty());
        // Bytes 4..10 never arrive.
        assert!(run(&mut t, k, seg(10, &M1[10..]), 2).is_empty());
        assert_eq!(
            run(&mut t, k, seg(M1.len() as u32, M2), 3),
            vec![M2.to_vec()]
        );
        assert_eq!(t.stats().gaps, 1);
    }

    #[test]
    fn flow_limit_evicts_least_recent_and_idle_expires() {
        let cfg = TcpConfig {
            max_flows: 2,
            idle_timeout_us: 100,
            ..TcpConfig::default()
        };
        let mut t = TcpTable::new(cfg);
        for p in 0..3 {
            run(&mut t, key(p), seg(0, &M1[..4]), 10 + u64::from(p));
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.stats().flows_evicted, 1);
        assert!(!t.contains(&key(0)));
        t.expire(Timestamp(1000));
        assert!(t.is_empty());
        assert_eq!(t.stats().flows_expired, 2);
        assert_eq!(t.bytes(), 0);
    }

    #[test]
    fn byte_limit_and_fin() {
        let cfg = TcpConfig {
            max_bytes: 10,
            ..TcpConfig::default()
        };
        let mut t = TcpTable::new(cfg);
        run(&mut t, key(1), seg(0, &M1[..8]), 1);
        run(&mut t, key(2), seg(0, &M1[..8]), 2);
        assert!(t.bytes() <= 10);
        assert_eq!(t.stats().flows_evicted, 1);
        let fin = Segment {
            seq: 8,
            syn: false,
            fin: true,
            rst: false,
            payload: &M1[8..],
        };
        assert_eq!(run(&mut t, key(2), fin, 3), vec![M1.to_vec()]);
        assert!(t.is_empty());
        assert_eq!(t.stats().flows_closed, 1);
    }

    #[test]
    fn websocket_after_upgrade() {
        let mut t = TcpTable::new(TcpConfig::default());
        let k = key(5);
        let mut data = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n".to_vec();
        let mask = [1u8, 2, 3, 4];
        data.extend_from_slice(&[0x81, 0x80 | M2.len() as u8]);
        data.extend_from_slice(&mask);
        data.extend(M2.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let mut out = Vec::new();
        t.feed(
            k,
            seg(0, &data),
            Some(StreamKind::WebSocket),
            Timestamp(1),
            &mut |m, _| out.push(m.to_vec()),
        );
        assert_eq!(out, vec![M2.to_vec()]);
    }
}
