//! Call correlation: RTCP tied to the SIP call whose SDP announced its addresses (hep.md
//! §1.6), and duplicate suppression.
//!
//! [`sdp`] finds media endpoints in SIP bodies, [`rtcp`] decodes RTCP compound packets,
//! [`calls`] keeps the address/SSRC → Call-ID tables, [`Correlator`] is the stage that replay
//! (and live capture) feeds in capture order, and [`dedup`] drops the same datagram seen
//! twice within a short window.
//!
//! The [`Correlator`] is a plain state machine: it is handed each decoded SIP message and
//! each RTCP-looking UDP datagram with its capture time, and appends the HEP type 5 records
//! it makes to an output vector. It knows nothing of the decoder's internals: a SIP message
//! is a [`SipMessageView`], a datagram a [`UdpDatagram`].
//!
//! Arrival order is not guaranteed (several senders, per-CPU rings), so RTCP that matches no
//! call yet is held for a bounded time (`hold_us`, default 2 s) and a bounded count, and
//! matched again whenever SDP adds addresses. What still matches nothing when its time is up
//! is counted as `rtcp_uncorrelated` and, unless [`Uncorrelated::Send`], not sent.

pub mod calls;
pub mod dedup;
pub mod rtcp;
pub mod sdp;
pub mod tap;

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::record::{
    Correlated, PROTO_RTCP_JSON, Record, SipKind, SipSummary, Source, Timestamp, Transport,
};
use calls::{CallTable, CallTableConfig, CallTableStats};
use rtcp::{RtcpError, RtcpReport};

/// What to do with RTCP that matches no call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Uncorrelated {
    /// Count it and send nothing (Homer cannot store type 5 without a correlation id).
    #[default]
    Drop,
    /// Send it without a correlation id.
    Send,
}

/// How the correlator behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelatorConfig {
    pub calls: CallTableConfig,
    /// How long RTCP waits for the SDP that explains it, microseconds (default 2 s; 0 = no
    /// wait).
    pub hold_us: u64,
    /// RTCP datagrams held at most; the oldest is given up when more arrive.
    pub hold_max: usize,
    pub uncorrelated: Uncorrelated,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        CorrelatorConfig {
            calls: CallTableConfig::default(),
            hold_us: 2_000_000,
            hold_max: 4096,
            uncorrelated: Uncorrelated::Drop,
        }
    }
}

/// What the correlator counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorrelatorStats {
    /// SIP messages whose SDP announced at least one media endpoint.
    pub sdp_messages: u64,
    /// Media endpoints announced.
    pub sdp_media: u64,
    /// RTCP compound packets decoded.
    pub rtcp: u64,
    /// Sent with a Call-ID at once.
    pub rtcp_correlated: u64,
    /// Sent with a Call-ID after waiting for their SDP.
    pub rtcp_correlated_late: u64,
    /// Matched no call in time (sent without id only with `--rtcp-uncorrelated send`).
    pub rtcp_uncorrelated: u64,
    /// Given up early because the hold queue was full (also in `rtcp_uncorrelated`).
    pub rtcp_hold_overflow: u64,
    /// RTCP-looking datagrams that did not decode, by [`RtcpError::reason`].
    pub rtcp_malformed: Vec<(&'static str, u64)>,
    pub calls: CallTableStats,
}

/// A decoded SIP message as the correlator needs it.
#[derive(Clone, Copy, Debug)]
pub struct SipMessageView<'a> {
    /// Where the message came from (the NAT'd address when the SDP names a private one).
    pub src: SocketAddr,
    /// The whole message, headers and body.
    pub payload: &'a [u8],
    pub sip: &'a SipSummary,
}

impl<'a> SipMessageView<'a> {
    /// The view of a SIP record; `None` for records that are not SIP.
    pub fn of_record(record: &'a Record) -> Option<Self> {
        Some(SipMessageView {
            src: SocketAddr::new(record.src, record.src_port),
            payload: &record.payload,
            sip: record.sip.as_ref()?,
        })
    }

    fn slice(&self, r: &std::ops::Range<u32>) -> &'a [u8] {
        self.payload
            .get(r.start as usize..r.end as usize)
            .unwrap_or_default()
    }
}

/// One UDP datagram as captured.
#[derive(Clone, Copy, Debug)]
pub struct UdpDatagram<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub vlan: Option<u16>,
    pub payload: &'a [u8],
    pub ts: Timestamp,
}

/// RTCP waiting for its SDP.
#[derive(Debug)]
struct Held {
    src: SocketAddr,
    dst: SocketAddr,
    vlan: Option<u16>,
    ts: Timestamp,
    ssrc: Option<u32>,
    json: Bytes,
    mos: Option<u16>,
    /// Jitter and fraction lost of each report block, for the quality histograms.
    blocks: Vec<(u32, u8)>,
}

/// The correlation stage.
#[derive(Debug)]
pub struct Correlator {
    config: CorrelatorConfig,
    origin: &'static str,
    calls: CallTable,
    held: VecDeque<Held>,
    stats: CorrelatorStats,
}

/// Methods whose bodies (or whose responses' bodies) carry the SDP of a call.
const SDP_METHODS: [&[u8]; 4] = [b"INVITE", b"ACK", b"UPDATE", b"PRACK"];

impl Correlator {
    /// `origin` labels the records it makes (`replay`, or the live capture's source).
    pub fn new(config: CorrelatorConfig, origin: &'static str) -> Self {
        Correlator {
            calls: CallTable::new(config.calls.clone()),
            config,
            origin,
            held: VecDeque::new(),
            stats: CorrelatorStats::default(),
        }
    }

    /// The call table, to attach a kernel-map mirror.
    pub fn calls_mut(&mut self) -> &mut CallTable {
        &mut self.calls
    }

    pub fn stats(&self) -> CorrelatorStats {
        let mut stats = self.stats.clone();
        stats.calls = self.calls.stats();
        stats
    }

    /// Learns the media addresses of a SIP message's SDP and ends calls on BYE/CANCEL.
    /// Held RTCP that the new addresses explain is appended to `out`.
    pub fn on_sip(&mut self, msg: &SipMessageView<'_>, now: Timestamp, out: &mut Vec<Record>) {
        self.release_expired(now, out);
        let Some(call_id) = msg.sip.call_id.as_ref().map(|r| msg.slice(r)) else {
            return;
        };
        let cseq_method = msg.sip.cseq.as_ref().map(|(_, r)| msg.slice(r));
        let carries_sdp = match &msg.sip.kind {
            SipKind::Request { method } => {
                let method = msg.slice(method);
                if method == b"BYE" || method == b"CANCEL" {
                    self.calls.end_call(call_id, now);
                    return;
                }
                SDP_METHODS.contains(&method)
            }
            SipKind::Response { status } => {
                (100..300).contains(status) && cseq_method.is_some_and(|m| SDP_METHODS.contains(&m))
            }
        };
        if !carries_sdp {
            return;
        }

        let mut added = 0u64;
        // The addresses this SDP adds: only held RTCP from or to one of them can now match.
        let mut learnt: Vec<SocketAddr> = Vec::new();
        let calls = &mut self.calls;
        sdp::sip_sdp_bodies(msg.payload, |body| {
            sdp::scan(body, |media| {
                added += 1;
                calls.insert(media.rtcp, call_id, now);
                learnt.push(media.rtcp);
                if media.rtcp_mux {
                    calls.insert(media.rtp, call_id, now);
                    learnt.push(media.rtp);
                }
                // NAT: the SDP names an address the RTCP will not come from; the signalling
                // source is the better guess for the same port.
                if media.rtcp.ip() != msg.src.ip() {
                    let nat = SocketAddr::new(msg.src.ip(), media.rtcp.port());
                    calls.insert(nat, call_id, now);
                    learnt.push(nat);
                }
            });
        });
        if added > 0 {
            self.stats.sdp_messages += 1;
            self.stats.sdp_media += added;
            self.retry_held(&learnt, now, out);
        }
    }

    /// Handles a UDP datagram that may be RTCP. Returns `false` when it does not look like
    /// RTCP at all (the caller counts it as other UDP); RTCP that fails to decode is counted
    /// here by reason and dropped.
    pub fn on_udp(&mut self, d: &UdpDatagram<'_>, out: &mut Vec<Record>) -> bool {
        if !rtcp::looks_like_rtcp(d.payload) {
            return false;
        }
        self.release_expired(d.ts, out);
        let report = match RtcpReport::parse(d.payload) {
            Ok(r) => r,
            Err(e) => {
                self.count_malformed(&e);
                return true;
            }
        };
        self.stats.rtcp += 1;
        let held = Held {
            src: d.src,
            dst: d.dst,
            vlan: d.vlan,
            ts: d.ts,
            ssrc: report.reporter(),
            json: Bytes::from(report.to_json()),
            mos: report.mos_x100(),
            blocks: report
                .report_blocks
                .iter()
                .map(|b| (b.ia_jitter, b.fraction_lost))
                .collect(),
        };
        if let Some(call_id) = self.calls.lookup(d.src, d.dst, report.reporter(), d.ts) {
            self.stats.rtcp_correlated += 1;
            out.push(self.record(held, Some(call_id)));
            return true;
        }
        if self.config.hold_us == 0 || self.config.hold_max == 0 {
            self.give_up(held, out);
            return true;
        }
        if self.held.len() >= self.config.hold_max
            && let Some(oldest) = self.held.pop_front()
        {
            self.stats.rtcp_hold_overflow += 1;
            self.give_up(oldest, out);
        }
        self.held.push_back(held);
        true
    }

    /// Advances time without input: held RTCP past its window is given up.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Record>) {
        self.release_expired(now, out);
    }

    /// End of input: everything still held is given up.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        while let Some(h) = self.held.pop_front() {
            self.give_up(h, out);
        }
    }

    fn count_malformed(&mut self, e: &RtcpError) {
        let reason = e.reason();
        match self
            .stats
            .rtcp_malformed
            .iter_mut()
            .find(|(r, _)| *r == reason)
        {
            Some((_, n)) => *n += 1,
            None => self.stats.rtcp_malformed.push((reason, 1)),
        }
    }

    fn release_expired(&mut self, now: Timestamp, out: &mut Vec<Record>) {
        while let Some(h) = self.held.front() {
            // Held packets are in arrival order; capture times that go backwards only delay
            // the release, they never lose a packet.
            if now.0 < h.ts.0.saturating_add(self.config.hold_us) {
                break;
            }
            if let Some(h) = self.held.pop_front() {
                self.give_up(h, out);
            }
        }
    }

    /// Correlates held RTCP that the addresses an SDP just added explain. Held packets from
    /// or to other addresses are only compared, not looked up: a busy agent holds many
    /// reports (live capture copies RTCP-looking datagrams shortly after any SIP) and sees
    /// many SDPs.
    fn retry_held(&mut self, learnt: &[SocketAddr], now: Timestamp, out: &mut Vec<Record>) {
        if self.held.is_empty() || learnt.is_empty() {
            return;
        }
        let mut still = VecDeque::with_capacity(self.held.len());
        while let Some(h) = self.held.pop_front() {
            if !learnt.iter().any(|a| *a == h.src || *a == h.dst) {
                still.push_back(h);
                continue;
            }
            // Looked up at the SDP's time: the entry was just made, and a lookup at the
            // RTCP's (earlier) time would not see it as live any differently.
            match self.calls.lookup(h.src, h.dst, h.ssrc, now) {
                Some(call_id) => {
                    self.stats.rtcp_correlated_late += 1;
                    out.push(self.record(h, Some(call_id)));
                }
                None => still.push_back(h),
            }
        }
        self.held = still;
    }

    fn give_up(&mut self, h: Held, out: &mut Vec<Record>) {
        self.stats.rtcp_uncorrelated += 1;
        if self.config.uncorrelated == Uncorrelated::Send {
            out.push(self.record(h, None));
        }
    }

    fn record(&self, h: Held, call_id: Option<Box<[u8]>>) -> Record {
        // Call quality is what the histograms describe: reports of no call stay out.
        if call_id.is_some() {
            crate::telemetry::metrics::observe_rtcp(&h.blocks, h.mos);
        }
        Record {
            source: Source::Correlated(Box::new(Correlated {
                origin: self.origin,
                correlation_id: call_id.map(|id| Bytes::from(id.into_vec())),
                mos: h.mos,
            })),
            ts: h.ts,
            src: h.src.ip(),
            dst: h.dst.ip(),
            src_port: h.src.port(),
            dst_port: h.dst.port(),
            transport: Transport::UDP,
            vlan: h.vlan,
            proto_type: PROTO_RTCP_JSON,
            payload: h.json,
            sip: None,
        }
    }
}

#[cfg(test)]
mod tests;
