//! From a captured frame to SIP messages: link layer, tunnels, IP (with defragmentation),
//! UDP, TCP (with stream reassembly, directly or in WebSocket), SCTP, then the lazy SIP scan.
//!
//! [`Decoder`] is the one path for replay and live capture. It is stateful (fragment and flow
//! tables from [`crate::reassembly`]) but does no I/O and reads no clock: the caller passes
//! each frame's capture time, which also drives timeouts. One frame yields zero, one or several
//! messages, handed to a callback as [`SipPacket`]s that borrow either the frame (plain UDP,
//! allocation-free) or the decoder's reassembly buffers. Everything that yields no message
//! returns a [`SkipReason`].
//!
//! Tunnels are opened up to [`DecoderConfig::max_depth`] deep; the inner packet is decoded as
//! if captured directly and only the outermost VLAN id is kept.

mod ip;
pub mod link;
mod ports;
mod sctp;
mod skip;
mod tunnel;

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

pub use link::{LinkType, UnsupportedLinkType};
pub use ports::{PortSet, PortSetError};
pub use skip::{SkipCounts, SkipReason};

use crate::correlate::tap::UdpTap;
use crate::reassembly::defrag::{Fragment, FragmentOutcome};
use crate::reassembly::tcp::{Segment, StreamKind};
use crate::reassembly::{
    DefragConfig, DefragStats, FlowKey, FragmentKey, FragmentTable, SctpStats, SctpStreamKey,
    SctpTable, TcpConfig, TcpStats, TcpTable, websocket,
};
use crate::record::{PROTO_SIP, Record, SipSummary, Source, Timestamp, Transport};
use crate::sip::{SipScan, is_sip_start};
use tunnel::Inner;

const UDP_HEADER_LEN: usize = 8;
/// SCTP user messages being reassembled at once.
const SCTP_MAX_PARTIALS: usize = 1024;

/// A SIP message found in a frame, borrowing the frame's bytes or a reassembly buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub transport: Transport,
    pub vlan: Option<u16>,
    pub payload: &'a [u8],
    pub sip: SipSummary,
}

impl SipPacket<'_> {
    /// Copies the message into an owned record.
    pub fn to_record(&self, ts: Timestamp, source: Source) -> Record {
        Record {
            source,
            ts,
            src: self.src,
            dst: self.dst,
            src_port: self.src_port,
            dst_port: self.dst_port,
            transport: self.transport,
            vlan: self.vlan,
            proto_type: PROTO_SIP,
            payload: Bytes::copy_from_slice(self.payload),
            sip: Some(self.sip.clone()),
        }
    }
}

/// What the decoder opens and how much state it may keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// TCP ports whose streams are SIP from their first byte (either end of the flow).
    pub sip_ports: PortSet,
    /// UDP destination port of VXLAN.
    pub vxlan_port: u16,
    /// Nested encapsulations followed (GRE, VXLAN, IP-in-IP, PPPoE, MPLS each count one).
    pub max_depth: u8,
    pub defrag: DefragConfig,
    pub tcp: TcpConfig,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            sip_ports: PortSet::default(),
            vxlan_port: 4789,
            max_depth: 4,
            defrag: DefragConfig::default(),
            tcp: TcpConfig::default(),
        }
    }
}

/// Reassembly counters, for the exit summary and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    pub defrag: DefragStats,
    pub tcp: TcpStats,
    pub sctp: SctpStats,
}

/// One IP layer the decoder walked through, for debugging tunnels (see [`Decoder::set_trace`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// Ports of UDP, TCP and SCTP; 0 for other protocols or a truncated header.
    pub src_port: u16,
    pub dst_port: u16,
}

/// Per-frame context carried down the layers.
#[derive(Clone, Copy)]
struct Ctx {
    ts: Timestamp,
    vlan: Option<u16>,
    depth: u8,
}

type Out<'o> = dyn FnMut(SipPacket<'_>, Timestamp) + 'o;

/// The stateful frame decoder.
#[derive(Debug)]
pub struct Decoder {
    sip_ports: PortSet,
    vxlan_port: u16,
    max_depth: u8,
    frags: FragmentTable,
    tcp: TcpTable,
    sctp: SctpTable,
    /// RTCP-looking UDP handed to the correlation stage when enabled.
    rtcp_tap: UdpTap,
    /// IP layers walked since the last [`Decoder::take_trace`], when tracing is on.
    trace: Option<Vec<LayerTuple>>,
}

impl Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        let DecoderConfig {
            sip_ports,
            vxlan_port,
            max_depth,
            defrag,
            tcp,
        } = config;
        Decoder {
            sip_ports,
            vxlan_port,
            max_depth,
            frags: FragmentTable::new(defrag),
            sctp: SctpTable::new(SCTP_MAX_PARTIALS, tcp.max_message),
            tcp: TcpTable::new(tcp),
            rtcp_tap: UdpTap::default(),
            trace: None,
        }
    }

    /// RTCP-looking UDP datagrams (still returned as [`SkipReason::Rtcp`]) are copied here
    /// once enabled; drain it after each frame.
    pub fn rtcp_tap(&mut self) -> &mut UdpTap {
        &mut self.rtcp_tap
    }

    /// Decodes one frame captured at `ts`. Each message goes to `out` with its timestamp:
    /// `ts`, plus one microsecond per earlier message of the same frame so that wire order
    /// survives. Returns how many messages were found, or why there were none.
    pub fn decode(
        &mut self,
        link: LinkType,
        ts: Timestamp,
        frame: &[u8],
        out: &mut impl FnMut(SipPacket<'_>, Timestamp),
    ) -> Result<usize, SkipReason> {
        let net = link::strip(link, frame)?;
        let ctx = Ctx {
            ts,
            vlan: net.vlan,
            depth: 0,
        };
        let n = self.ether(net.ether_type, net.data, ctx, out)?;
        Ok(n)
    }

    /// Records every IP layer decoded (outermost first) until turned off: a debugging aid for
    /// tunnels, used by the `decode_tuples` example. Off by default; costs one branch per layer.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// The IP layers recorded since the last call.
    pub fn take_trace(&mut self) -> Vec<LayerTuple> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Drops every fragment and flow in progress (end of input); they count as expired.
    pub fn flush(&mut self) {
        self.frags.flush();
        self.tcp.flush();
        self.sctp.flush();
    }

    /// Counters so far.
    pub fn stats(&self) -> ReassemblyStats {
        ReassemblyStats {
            defrag: self.frags.stats().clone(),
            tcp: self.tcp.stats().clone(),
            sctp: self.sctp.stats().clone(),
        }
    }

    /// Fragment datagrams and TCP flows in progress, and the bytes they hold.
    pub fn state_size(&self) -> (usize, usize, usize, usize) {
        (
            self.frags.len(),
            self.frags.bytes(),
            self.tcp.len(),
            self.tcp.bytes(),
        )
    }

    fn nested(&self, ctx: Ctx) -> Result<Ctx, SkipReason> {
        if ctx.depth >= self.max_depth {
            return Err(SkipReason::TunnelDepth);
        }
        Ok(Ctx {
            depth: ctx.depth + 1,
            ..ctx
        })
    }

    fn ether(
        &mut self,
        ether_type: u16,
        data: &[u8],
        ctx: Ctx,
        out: &mut Out<'_>,
    ) -> Result<usize, SkipReason> {
        match ether_type {
            link::ETHERTYPE_IPV4 | link::ETHERTYPE_IPV6 => self.ip(data, ctx, out),
            link::ETHERTYPE_PPPOE_SESSION => {
                let inner = tunnel::pppoe_session(data)?;
                self.inner(inner, self.nested(ctx)?, out)
            }
            tunnel::ETHERTYPE_MPLS | tunnel::ETHERTYPE_MPLS_MULTICAST => {
                let inner = tunnel::mpls(data)?;
                self.inner(inner, self.nested(ctx)?, out)
            }
            tunnel::ETHERTYPE_TEB => self.inner(Inner::Ethernet(data), self.nested(ctx)?, out),
            _ => Err(SkipReason::NonIp),
        }
    }

    fn inner(
        &mut self,
        inner: Inner<'_>,
        ctx: Ctx,
        out: &mut Out<'_>,
    ) -> Result<usize, SkipReason> {
        match inner {
            Inner::Ether(ether_type, data) => self.ether(ether_type, data, ctx, out),
            Inner::Ethernet(frame) => {
                let net = link::strip(LinkType::Ethernet, frame)?;
                let ctx = Ctx {
                    vlan: ctx.vlan.or(net.vlan),
                    ..ctx
                };
                self.ether(net.ether_type, net.data, ctx, out)
            }
        }
    }

    fn ip(&mut self, data: &[u8], ctx: Ctx, out: &mut Out<'_>) -> Result<usize, SkipReason> {
        let view = ip::parse(data)?;
        let Some(frag) = view.fragment else {
            return self.transport(view.src, view.dst, view.protocol, view.payload, ctx, out);
        };

        let key = FragmentKey {
            src: view.src,
            dst: view.dst,
            id: frag.id,
            protocol: view.protocol,
        };
        let fragment = Fragment {
            offset: frag.offset,
            more: frag.more,
            data: view.payload,
        };
        match self.frags.insert(key, fragment, ctx.ts) {
            FragmentOutcome::Held => Err(SkipReason::FragmentHeld),
            FragmentOutcome::Malformed => Err(SkipReason::FragmentMalformed),
            FragmentOutcome::Complete(payload) => {
                let (protocol, payload) = match view.src {
                    IpAddr::V6(_) => ip::skip_v6_extensions(view.protocol, &payload)?,
                    IpAddr::V4(_) => (view.protocol, &payload[..]),
                };
                self.transport(view.src, view.dst, protocol, payload, ctx, out)
            }
        }
    }

    fn transport(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        payload: &[u8],
        ctx: Ctx,
        out: &mut Out<'_>,
    ) -> Result<usize, SkipReason> {
        if let Some(trace) = &mut self.trace {
            let ports = matches!(protocol, ip::PROTO_UDP | ip::PROTO_TCP | ip::PROTO_SCTP);
            let (src_port, dst_port) = match payload.get(..4) {
                Some(p) if ports => (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                ),
                _ => (0, 0),
            };
            trace.push(LayerTuple {
                src,
                dst,
                protocol,
                src_port,
                dst_port,
            });
        }
        match protocol {
            ip::PROTO_UDP => self.udp(src, dst, payload, ctx, out),
            ip::PROTO_TCP => self.tcp(src, dst, payload, ctx, out),
            ip::PROTO_SCTP => self.sctp_messages(src, dst, payload, ctx, out),
            ip::PROTO_GRE => {
                let inner = tunnel::gre(payload)?;
                self.inner(inner, self.nested(ctx)?, out)
            }
            ip::PROTO_IPIP | ip::PROTO_IPV6 => self.ip(payload, self.nested(ctx)?, out),
            _ => Err(SkipReason::OtherIpProto),
        }
    }

    fn udp(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        udp: &[u8],
        ctx: Ctx,
        out: &mut Out<'_>,
    ) -> Result<usize, SkipReason> {
        let header = udp.get(..UDP_HEADER_LEN).ok_or(SkipReason::Truncated)?;
        let src_port = u16::from_be_bytes([header[0], header[1]]);
        let dst_port = u16::from_be_bytes([header[2], header[3]]);
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let payload = match length {
            // Zero: an IPv6 jumbogram, or a sender that left it unset; the IP length rules.
            0 => &udp[UDP_HEADER_LEN..],
            1..UDP_HEADER_LEN => return Err(SkipReason::MalformedIp),
            n => udp.get(UDP_HEADER_LEN..n).ok_or(SkipReason::Truncated)?,
        };

        if dst_port == self.vxlan_port {
            let inner = tunnel::vxlan(payload)?;
            return self.inner(inner, self.nested(ctx)?, out);
        }
        let Some(sip) = SipScan::scan(payload) else {
            let reason = classify_non_sip(payload);
            if reason == SkipReason::Rtcp {
                let (s, d) = (
                    SocketAddr::new(src, src_port),
                    SocketAddr::new(dst, dst_port),
                );
                self.rtcp_tap.push(s, d, ctx.vlan, ctx.ts, payload);
            }
            return Err(reason);
        };
        out(
            SipPacket {
                src,
                dst,
                src_port,
                dst_port,
                transport: Transport::UDP,
                vlan: ctx.vlan,
                payload,
                sip,
            },
            ctx.ts,
        );
        Ok(1)
    }

    fn tcp(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        tcp: &[u8],
        ctx: Ctx,
        out: &mut Out<'_>,
    ) -> Result<usize, SkipReason> {
        let h = tcp.get(..20).ok_or(SkipReason::Truncated)?;
        let src_port = u16::from_be_bytes([h[0], h[1]]);
        let dst_port = u16::from_be_bytes([h[2], h[3]]);
        let seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let offset = usize::from(h[12] >> 4) * 4;
        let flags = h[13];
        if offset < 20 {
            return Err(SkipReason::MalformedIp);
        }
        let payload = tcp.get(offset..).ok_or(SkipReason::Truncated)?;
        let key = FlowKey {
            src,
            dst,
            src_port,
            dst_port,
        };
        let segment = Segment {
            seq,
            syn: flags & 0x02 != 0,
            fin: flags & 0x01 != 0,
            rst: flags & 0x04 != 0,
            payload,
        };

        let open = if self.tcp.contains(&key) {
            None
        } else if websocket::is_upgrade(payload) {
            Some(StreamKind::WebSocket)
        } else if self.sip_ports.contains(src_port)
            || self.sip_ports.contains(dst_port)
            || is_sip_start(payload)
        {
            Some(StreamKind::Sip)
        } else {
            None
        };

        let mut found = 0usize;
        let vlan = ctx.vlan;
        let ts = ctx.ts;
        let known = self
            .tcp
            .feed(key, segment, open, ctx.ts, &mut |message, index| {
                let Some(sip) = SipScan::scan(message) else {
                    return;
                };
                found += 1;
                out(
                    SipPacket {
                        src,
                        dst,
                        src_port,
                        dst_port,
                        transport: Transport::TCP,
                        vlan,
                        payload: message,
                        sip,
                    },
                    Timestamp(ts.0 + u64::from(index)),
                );
            });
        match (known, found) {
            (false, _) => Err(SkipReason::NonSipTcp),
            (true, 0) => Err(SkipReason::TcpBuffered),
            (true, n) => Ok(n),
        }
    }

    /// Every SIP message in the DATA chunks of an SCTP packet, including messages whose last
    /// piece is in this packet.
    fn sctp_messages(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        packet: &[u8],
        ctx: Ctx,
        out: &mut Out<'_>,
    ) -> Result<usize, SkipReason> {
        let (src_port, dst_port) = sctp::ports(packet)?;
        let mut found = 0u64;
        let mut pieces = false;
        let mut emit = |payload: &[u8]| {
            let Some(sip) = SipScan::scan(payload) else {
                return;
            };
            out(
                SipPacket {
                    src,
                    dst,
                    src_port,
                    dst_port,
                    transport: Transport::SCTP,
                    vlan: ctx.vlan,
                    payload,
                    sip,
                },
                Timestamp(ctx.ts.0 + found),
            );
            found += 1;
        };
        for data in sctp::user_data(packet) {
            match data {
                sctp::UserData::Whole(p) => emit(p),
                sctp::UserData::Piece {
                    stream,
                    tsn,
                    begin,
                    end,
                    data,
                } => {
                    pieces = true;
                    let key = SctpStreamKey {
                        src,
                        dst,
                        src_port,
                        dst_port,
                        stream,
                    };
                    if let Some(message) = self.sctp.piece(key, tsn, begin, end, data) {
                        emit(&message);
                    }
                }
            }
        }
        match (found, pieces) {
            (0, true) => Err(SkipReason::SctpFragmented),
            (0, false) => Err(SkipReason::SctpNoSip),
            (n, _) => Ok(n as usize),
        }
    }
}

/// Names what a non-SIP UDP datagram most likely is, for the skip counters.
fn classify_non_sip(payload: &[u8]) -> SkipReason {
    // RTP version 2 with an RTCP packet type 200..=207 (RFC 3550, RFC 3611).
    if let [first, pt, ..] = payload
        && first >> 6 == 2
        && (200..=207).contains(pt)
        && payload.len() >= 8
    {
        return SkipReason::Rtcp;
    }
    SkipReason::NonSipUdp
}

#[cfg(test)]
mod tests;
