//! The unit that flows through the pipeline: one message, decoded enough to route it.
//!
//! A [`Record`] owns its payload (the pipeline outlives the capture buffer) but keeps the SIP
//! summary as byte ranges into that payload, so building one costs a single allocation.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use bytes::Bytes;

use crate::hep::HepMessage;

/// HEP protocol type (chunk 0x000b) for SIP.
pub const PROTO_SIP: u8 = 1;

/// HEP protocol type for RTCP as JSON (hep.md §1.6).
pub const PROTO_RTCP_JSON: u8 = 5;

/// Capture time in microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Builds a timestamp from seconds and microseconds; `usec` above one second carries over.
    pub fn from_parts(sec: u64, usec: u32) -> Self {
        Timestamp(sec * 1_000_000 + u64::from(usec))
    }

    /// Whole seconds since the epoch.
    pub fn secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Microseconds within the second.
    pub fn subsec_micros(self) -> u32 {
        (self.0 % 1_000_000) as u32
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_micros() as u64)
    }
}

/// Transport protocol as the IP protocol number (chunk 0x0002).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transport(pub u8);

impl Transport {
    pub const TCP: Transport = Transport(6);
    pub const UDP: Transport = Transport(17);
    pub const SCTP: Transport = Transport(132);

    /// Lower-case name used in JSON output; unknown numbers print as their decimal value.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match self.0 {
            6 => "tcp".into(),
            17 => "udp".into(),
            132 => "sctp".into(),
            // Kamailio's pseudo value for TLS and WebSocket (hep.md §1.3.5).
            22 => "tls".into(),
            50 => "ws".into(),
            other => other.to_string().into(),
        }
    }
}

/// Where a record entered the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Read from a capture file by `hepcap replay`.
    Replay,
    /// Captured live by `hepcap run`; the label is the capture mode (`ebpf`, `xdp`, `pcap`).
    Capture(&'static str),
    /// Received as HEP from another agent; kept whole so a relay can forward it unchanged.
    Hep(Box<Received>),
    /// Made by the correlation stage from captured traffic (RTCP as JSON).
    Correlated(Box<Correlated>),
}

/// What the correlation stage adds to a record it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Correlated {
    /// The capture source the traffic came from, as [`Source::as_str`] reports it.
    pub origin: &'static str,
    /// The call's Call-ID (chunk 0x0011), when a call was matched.
    pub correlation_id: Option<Bytes>,
    /// MOS×100 (chunk 0x0020), when an RTCP XR VoIP metrics block gave one.
    pub mos: Option<u16>,
}

/// The listener kinds HEP arrives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HepListener {
    Udp,
    Tcp,
    Tls,
}

impl HepListener {
    /// Bounded label: `hep-udp`, `hep-tcp`, `hep-tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            HepListener::Udp => "hep-udp",
            HepListener::Tcp => "hep-tcp",
            HepListener::Tls => "hep-tls",
        }
    }
}

/// A HEP message as another agent sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub listener: HepListener,
    /// The sender's address.
    pub peer: SocketAddr,
    /// Every decoded field plus the original bytes.
    pub message: HepMessage,
}

impl Source {
    /// Bounded label for metrics and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Replay => "replay",
            Source::Capture(mode) => mode,
            Source::Hep(r) => r.listener.as_str(),
            Source::Correlated(c) => c.origin,
        }
    }

    /// The received HEP message, for relayed records.
    pub fn received(&self) -> Option<&Received> {
        match self {
            Source::Replay | Source::Capture(_) | Source::Correlated(_) => None,
            Source::Hep(r) => Some(r),
        }
    }
}

/// Start line of a SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SipKind {
    /// A request; the range covers the method token in the payload.
    Request { method: Range<u32> },
    /// A response with its three-digit status code.
    Response { status: u16 },
}

/// What the lazy SIP scan found, as ranges into the record's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipSummary {
    pub kind: SipKind,
    /// Call-ID value, trimmed.
    pub call_id: Option<Range<u32>>,
    /// CSeq sequence number and method.
    pub cseq: Option<(u32, Range<u32>)>,
}

/// One message ready for the sinks.
#[derive(Clone, Debug)]
pub struct Record {
    pub source: Source,
    pub ts: Timestamp,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub transport: Transport,
    /// Outermost VLAN id when the frame was tagged.
    pub vlan: Option<u16>,
    /// HEP protocol type (1 = SIP).
    pub proto_type: u8,
    pub payload: Bytes,
    pub sip: Option<SipSummary>,
}

impl Record {
    fn slice(&self, r: &Range<u32>) -> &[u8] {
        self.payload
            .get(r.start as usize..r.end as usize)
            .unwrap_or_default()
    }

    /// Call-ID bytes, if the SIP scan found one.
    pub fn call_id(&self) -> Option<&[u8]> {
        self.sip.as_ref()?.call_id.as_ref().map(|r| self.slice(r))
    }

    /// Request method bytes, for requests.
    pub fn method(&self) -> Option<&[u8]> {
        match &self.sip.as_ref()?.kind {
            SipKind::Request { method } => Some(self.slice(method)),
            SipKind::Response { .. } => None,
        }
    }

    /// Response status code, for responses.
    pub fn status(&self) -> Option<u16> {
        match self.sip.as_ref()?.kind {
            SipKind::Response { status } => Some(status),
            SipKind::Request { .. } => None,
        }
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &[u8])> {
        let (n, r) = self.sip.as_ref()?.cseq.as_ref()?;
        Some((*n, self.slice(r)))
    }

    /// Correlation id (chunk 0x0011): what a HEP sender gave, the matched call's Call-ID for
    /// correlated RTCP, else the Call-ID for SIP.
    pub fn correlation_id(&self) -> Option<&[u8]> {
        match &self.source {
            Source::Hep(r) => r.message.correlation_id.as_deref(),
            Source::Correlated(c) => c.correlation_id.as_deref(),
            Source::Replay | Source::Capture(_) => self.call_id(),
        }
    }

    /// MOS×100 (chunk 0x0020) of a correlated RTCP record.
    pub fn mos(&self) -> Option<u16> {
        match &self.source {
            Source::Correlated(c) => c.mos,
            Source::Replay | Source::Capture(_) | Source::Hep(_) => None,
        }
    }
}
