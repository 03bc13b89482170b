//! RTCP compound packets (RFC 3550 §6, RFC 3611 §4.7) into the JSON that Homer reads.
//!
//! [`RtcpReport::parse`] walks a compound packet one header at a time. It borrows the
//! datagram, reads every field with checked slicing and never panics. The walk is tolerant:
//! packet types it does not know (feedback 205/206, anything up to 223 under rtcp-mux) are
//! skipped by their length, so are APP packets and unknown XR blocks. It rejects only what is
//! truly malformed: a header that is not version 2, a length that runs past the datagram, or a
//! report count that does not fit the packet's own length. Up to three bytes after the last
//! packet are ignored, as tshark does. Each rejection is an [`RtcpError`]
//! carrying the offset and the lengths involved.
//!
//! The JSON ([`RtcpReport::to_json`]) uses the key schema heplify and captagent send as HEP
//! type 5 (hep.md §1.6): `sender_information`, `ssrc`, `type`, `report_count`,
//! `report_blocks`, `report_blocks_xr`, `sdes_ssrc`, and heplify v2's optional `voip_metrics`.
//! Values are the raw wire values: `ntp_timestamp_usec` is the NTP fraction word (as heplify,
//! captagent and tshark's `rtcp.timestamp.ntp.lsw` give it), `fraction_lost` is 0–255,
//! `packets_lost` the 24-bit field as unsigned.

use serde::Serialize;

/// RTCP packet types (RFC 3550 §12.1, RFC 3611 §7.1).
pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
pub const PT_XR: u8 = 207;

/// XR block type of VoIP metrics (RFC 3611 §4.7).
pub const XR_VOIP_METRICS: u8 = 7;

const HEADER_LEN: usize = 4;
const SENDER_INFO_LEN: usize = 20;
const REPORT_BLOCK_LEN: usize = 24;
/// VoIP metrics block: 4-byte block header plus 32 bytes (RFC 3611 §4.7).
const VOIP_METRICS_LEN: usize = 36;

/// Why a datagram is not an RTCP compound packet. `Display` is a lowercase fragment; the
/// variant name is a bounded metric label ([`RtcpError::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Fewer bytes than one RTCP header needs.
    #[error("rtcp header at offset {offset} needs {needed} bytes, {available} available")]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// The version bits are not 2.
    #[error("rtcp version {version} at offset {offset}")]
    BadVersion { offset: usize, version: u8 },
    /// A header's length runs past the end of the datagram.
    #[error("rtcp packet at offset {offset} declares {declared} bytes, {available} available")]
    LengthOverrun {
        offset: usize,
        declared: usize,
        available: usize,
    },
    /// SR or RR whose count of report blocks (or sender info) does not fit its own length.
    #[error("rtcp type {pt} at offset {offset} needs {needed} bytes, its length is {declared}")]
    CountOverrun {
        offset: usize,
        pt: u8,
        needed: usize,
        declared: usize,
    },
    /// The padding count of the last packet is zero or larger than the packet.
    #[error("rtcp padding of {padding} bytes at offset {offset} in {declared} bytes")]
    BadPadding {
        offset: usize,
        padding: usize,
        declared: usize,
    },
}

impl RtcpError {
    /// Bounded label for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            RtcpError::Truncated { .. } => "truncated",
            RtcpError::BadVersion { .. } => "bad_version",
            RtcpError::LengthOverrun { .. } => "length_overrun",
            RtcpError::CountOverrun { .. } => "count_overrun",
            RtcpError::BadPadding { .. } => "bad_padding",
        }
    }
}

/// True when `payload` starts like an RTCP packet: version 2 and a packet type in 200..=207
/// (RFC 5761 §4 reserves 192–223 under rtcp-mux; only the assigned ones are taken here so
/// that RTP with a marker bit on payload types 72–79 is not mistaken for RTCP).
pub fn looks_like_rtcp(payload: &[u8]) -> bool {
    matches!(payload, [first, pt, _, _, ..] if first >> 6 == 2 && (PT_SR..=PT_XR).contains(pt))
}

/// SR sender information (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SenderInfo {
    /// NTP timestamp, most significant word (seconds since 1900).
    pub ntp_timestamp_sec: u32,
    /// NTP timestamp, least significant word (the raw fraction, as heplify sends it).
    pub ntp_timestamp_usec: u32,
    pub rtp_timestamp: u32,
    /// Sender's packet count.
    pub packets: u32,
    /// Sender's octet count.
    pub octets: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReportBlock {
    pub source_ssrc: u32,
    /// Fraction lost, raw 0–255 (a fraction of 256).
    pub fraction_lost: u8,
    /// Cumulative number of packets lost, the 24-bit field unsigned.
    pub packets_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq_no: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub ia_jitter: u32,
    pub lsr: u32,
    pub dlsr: u32,
}

/// XR VoIP metrics block (RFC 3611 §4.7), every field raw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VoipMetrics {
    pub ssrc: u32,
    pub loss_rate: u8,
    pub discard_rate: u8,
    pub burst_density: u8,
    pub gap_density: u8,
    pub burst_duration: u16,
    pub gap_duration: u16,
    pub round_trip_delay: u16,
    pub end_system_delay: u16,
    pub signal_level: i8,
    pub noise_level: i8,
    pub rerl: u8,
    pub gmin: u8,
    pub r_factor: u8,
    pub ext_r_factor: u8,
    /// MOS-LQ ×10; 127 means unavailable.
    pub mos_lq: u8,
    /// MOS-CQ ×10; 127 means unavailable.
    pub mos_cq: u8,
    pub rx_config: u8,
    pub jb_nominal: u16,
    pub jb_maximum: u16,
    pub jb_abs_max: u16,
}

impl VoipMetrics {
    /// MOS×100 for HEP chunk 0x0020: MOS-CQ, else MOS-LQ, when in the valid 1.0–5.0 range.
    pub fn mos_x100(&self) -> Option<u16> {
        [self.mos_cq, self.mos_lq]
            .into_iter()
            .find(|m| (10..=50).contains(m))
            .map(|m| u16::from(m) * 10)
    }
}

/// What one compound packet says, ready to be written as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RtcpReport {
    /// Sender information of the first SR.
    pub sender_info: Option<SenderInfo>,
    /// The JSON `ssrc`: sender SSRC of the first SR or RR, else of an XR (as heplify fills it;
    /// tshark's `rtcp.senderssrc`).
    pub ssrc: Option<u32>,
    /// Type of the last packet in the compound (heplify's `type`).
    pub last_type: u8,
    /// Report blocks of every SR and RR, in order.
    pub report_blocks: Vec<ReportBlock>,
    /// The first XR VoIP metrics block.
    pub voip_metrics: Option<VoipMetrics>,
    /// SSRC of the first SDES chunk.
    pub sdes_ssrc: Option<u32>,
    /// First SSRC of a BYE or APP packet.
    pub other_ssrc: Option<u32>,
    /// Packets in the compound, unknown types included.
    pub packets: u16,
    /// Packets of types this walker does not decode (skipped by length).
    pub skipped: u16,
    /// Bytes after the last packet, fewer than a header, ignored.
    pub trailing: u8,
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, c, d, e]) => u32::from_be_bytes([a, c, d, e]),
        _ => 0,
    }
}

impl RtcpReport {
    /// Walks a compound packet. Callers have sized every read: the helpers above only see
    /// slices already checked against the packet's declared length.
    pub fn parse(data: &[u8]) -> Result<RtcpReport, RtcpError> {
        let mut report = RtcpReport::default();
        let mut offset = 0;
        if data.len() < HEADER_LEN {
            return Err(RtcpError::Truncated {
                offset,
                needed: HEADER_LEN,
                available: data.len(),
            });
        }
        while offset < data.len() {
            let rest = &data[offset..];
            // Some stacks leave a few bytes after the last packet (seen: two zero bytes after
            // an SR+RR+SDES); tshark ignores them too. Less than a header cannot be a packet.
            if offset > 0 && rest.len() < HEADER_LEN {
                report.trailing = rest.len() as u8;
                break;
            }
            if rest.len() < HEADER_LEN {
                return Err(RtcpError::Truncated {
                    offset,
                    needed: HEADER_LEN,
                    available: rest.len(),
                });
            }
            let version = rest[0] >> 6;
            if version != 2 {
                return Err(RtcpError::BadVersion { offset, version });
            }
            let padded = rest[0] & 0x20 != 0;
            let count = usize::from(rest[0] & 0x1f);
            let pt = rest[1];
            let declared = (usize::from(be16(rest, 2)) + 1) * 4;
            if declared > rest.len() {
                return Err(RtcpError::LengthOverrun {
                    offset,
                    declared,
                    available: rest.len(),
                });
            }
            let mut packet = &rest[..declared];
            // Padding is only allowed on the last packet (RFC 3550 §6.4.1); accepted anywhere
            // as long as it fits, since it changes nothing for the other packets.
            if padded {
                let padding = usize::from(packet[declared - 1]);
                if padding == 0 || padding > declared - HEADER_LEN {
                    return Err(RtcpError::BadPadding {
                        offset,
                        padding,
                        declared,
                    });
                }
                packet = &packet[..declared - padding];
            }
            report.packets = report.packets.saturating_add(1);
            report.last_type = pt;
            report.walk_packet(offset, pt, count, packet)?;
            offset += declared;
        }
        Ok(report)
    }

    fn walk_packet(
        &mut self,
        offset: usize,
        pt: u8,
        count: usize,
        packet: &[u8],
    ) -> Result<(), RtcpError> {
        let body = &packet[HEADER_LEN..];
        match pt {
            PT_SR | PT_RR => {
                let info_len = if pt == PT_SR { SENDER_INFO_LEN } else { 0 };
                let needed = HEADER_LEN + 4 + info_len + count * REPORT_BLOCK_LEN;
                if needed > packet.len() {
                    return Err(RtcpError::CountOverrun {
                        offset,
                        pt,
                        needed,
                        declared: packet.len(),
                    });
                }
                let ssrc = be32(body, 0);
                self.ssrc.get_or_insert(ssrc);
                if pt == PT_SR && self.sender_info.is_none() {
                    self.sender_info = Some(SenderInfo {
                        ntp_timestamp_sec: be32(body, 4),
                        ntp_timestamp_usec: be32(body, 8),
                        rtp_timestamp: be32(body, 12),
                        packets: be32(body, 16),
                        octets: be32(body, 20),
                    });
                }
                let blocks = &body[4 + info_len..];
                // Anything after the blocks is a profile-specific extension, ignored.
                for block in blocks.chunks_exact(REPORT_BLOCK_LEN).take(count) {
                    self.report_blocks.push(ReportBlock {
                        source_ssrc: be32(block, 0),
                        fraction_lost: block[4],
                        packets_lost: be32(block, 4) & 0x00ff_ffff,
                        highest_seq_no: be32(block, 8),
                        ia_jitter: be32(block, 12),
                        lsr: be32(block, 16),
                        dlsr: be32(block, 20),
                    });
                }
            }
            PT_SDES => {
                // An SDES with zero chunks is legal; its items are not needed.
                if count > 0 && body.len() >= 4 {
                    let ssrc = be32(body, 0);
                    self.sdes_ssrc.get_or_insert(ssrc);
                }
            }
            PT_BYE | PT_APP => {
                // BYE with a zero source count carries no SSRC; APP always has one.
                if (pt == PT_APP || count > 0) && body.len() >= 4 {
                    self.other_ssrc.get_or_insert(be32(body, 0));
                }
                if pt == PT_APP {
                    self.skipped = self.skipped.saturating_add(1);
                }
            }
            PT_XR => self.walk_xr(body),
            // Feedback (205, 206) and anything else: skipped by length.
            _ => self.skipped = self.skipped.saturating_add(1),
        }
        Ok(())
    }

    /// XR body: reporter SSRC, then blocks of `BT, type-specific, length` (RFC 3611 §3).
    /// A block that runs past the packet ends the walk of this XR (the rest is kept).
    fn walk_xr(&mut self, body: &[u8]) {
        if body.len() < 4 {
            return;
        }
        let ssrc = be32(body, 0);
        if self.ssrc.is_none() {
            self.ssrc = Some(ssrc);
        }
        let mut at = 4;
        while body.len() >= at + 4 {
            let block_type = body[at];
            let len = (usize::from(be16(body, at + 2)) + 1) * 4;
            let Some(block) = body.get(at..at + len) else {
                break;
            };
            if block_type == XR_VOIP_METRICS
                && block.len() >= VOIP_METRICS_LEN
                && self.voip_metrics.is_none()
            {
                self.voip_metrics = Some(VoipMetrics {
                    ssrc: be32(block, 4),
                    loss_rate: block[8],
                    discard_rate: block[9],
                    burst_density: block[10],
                    gap_density: block[11],
                    burst_duration: be16(block, 12),
                    gap_duration: be16(block, 14),
                    round_trip_delay: be16(block, 16),
                    end_system_delay: be16(block, 18),
                    signal_level: block[20] as i8,
                    noise_level: block[21] as i8,
                    rerl: block[22],
                    gmin: block[23],
                    r_factor: block[24],
                    ext_r_factor: block[25],
                    mos_lq: block[26],
                    mos_cq: block[27],
                    rx_config: block[28],
                    jb_nominal: be16(block, 30),
                    jb_maximum: be16(block, 32),
                    jb_abs_max: be16(block, 34),
                });
            }
            at += len;
        }
    }

    /// Whose report this is, for correlation: the JSON `ssrc`, else the SSRC of an SDES chunk,
    /// BYE or APP (a compound of SDES and BYE names its sender only there).
    pub fn reporter(&self) -> Option<u32> {
        self.ssrc.or(self.sdes_ssrc).or(self.other_ssrc)
    }

    /// MOS×100 for chunk 0x0020, when an XR VoIP metrics block gives one.
    pub fn mos_x100(&self) -> Option<u16> {
        self.voip_metrics.as_ref()?.mos_x100()
    }

    /// The HEP type 5 JSON payload (hep.md §1.6).
    pub fn to_json(&self) -> Vec<u8> {
        let xr = self.voip_metrics.as_ref();
        let json = Json {
            sender_information: self.sender_info.unwrap_or_default(),
            ssrc: self.ssrc.unwrap_or_default(),
            r#type: self.last_type,
            report_count: u8::try_from(self.report_blocks.len()).unwrap_or(u8::MAX),
            report_blocks: &self.report_blocks,
            report_blocks_xr: XrJson {
                r#type: if xr.is_some() { XR_VOIP_METRICS } else { 0 },
                id: xr.map_or(0, |m| m.ssrc),
                fraction_lost: xr.map_or(0, |m| m.loss_rate),
                fraction_discard: xr.map_or(0, |m| m.discard_rate),
                burst_density: xr.map_or(0, |m| m.burst_density),
                gap_density: xr.map_or(0, |m| m.gap_density),
                burst_duration: xr.map_or(0, |m| m.burst_duration),
                gap_duration: xr.map_or(0, |m| m.gap_duration),
                round_trip_delay: xr.map_or(0, |m| m.round_trip_delay),
                end_system_delay: xr.map_or(0, |m| m.end_system_delay),
            },
            voip_metrics: xr.map(VoipJson::from),
            sdes_ssrc: self.sdes_ssrc.unwrap_or_default(),
        };
        // Serializing plain integers, floats from u8 and slices into a Vec cannot fail.
        serde_json::to_vec(&json).unwrap_or_default()
    }
}

/// The JSON object; field order is key order, as heplify writes it.
#[derive(Serialize)]
struct Json<'a> {
    sender_information: SenderInfo,
    ssrc: u32,
    r#type: u8,
    report_count: u8,
    report_blocks: &'a [ReportBlock],
    report_blocks_xr: XrJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    voip_metrics: Option<VoipJson>,
    sdes_ssrc: u32,
}

/// heplify v1's flat XR object; zeros when the compound has no VoIP metrics block (heplify
/// always sends the key, and Homer's models declare it).
#[derive(Serialize)]
struct XrJson {
    r#type: u8,
    id: u32,
    fraction_lost: u8,
    fraction_discard: u8,
    burst_density: u8,
    gap_density: u8,
    burst_duration: u16,
    gap_duration: u16,
    round_trip_delay: u16,
    end_system_delay: u16,
}

/// heplify v2's `voip_metrics`, with MOS as a decimal (×10 on the wire).
#[derive(Serialize)]
struct VoipJson {
    ssrc: u32,
    loss_rate: u8,
    discard_rate: u8,
    burst_density: u8,
    gap_density: u8,
    burst_duration: u16,
    gap_duration: u16,
    round_trip_delay: u16,
    end_system_delay: u16,
    signal_level: i8,
    noise_level: i8,
    rerl: u8,
    gmin: u8,
    r_factor: u8,
    ext_r_factor: u8,
    mos_cq: f64,
    mos_lq: f64,
    rx_config: u8,
    jb_nominal: u16,
    jb_maximum: u16,
    jb_abs_max: u16,
}

impl From<&VoipMetrics> for VoipJson {
    fn from(m: &VoipMetrics) -> Self {
        VoipJson {
            ssrc: m.ssrc,
            loss_rate: m.loss_rate,
            discard_rate: m.discard_rate,
            burst_density: m.burst_density,
            gap_density: m.gap_density,
            burst_duration: m.burst_duration,
            gap_duration: m.gap_duration,
            round_trip_delay: m.round_trip_delay,
            end_system_delay: m.end_system_delay,
            signal_level: m.signal_level,
            noise_level: m.noise_level,
            rerl: m.rerl,
            gmin: m.gmin,
            r_factor: m.r_factor,
            ext_r_factor: m.ext_r_factor,
            mos_cq: f64::from(m.mos_cq) / 10.0,
            mos_lq: f64::from(m.mos_lq) / 10.0,
            rx_config: m.rx_config,
            jb_nominal: m.jb_nominal,
            jb_maximum: m.jb_maximum,
            jb_abs_max: m.jb_abs_max,
        }
    }
}

#[cfg(test)]
#[path = "tests/rtcp.rs"]
pub(crate) mod tests;
