//! From received bytes to a record in the ring: decode, authenticate, filter keep-alives.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::stats::ListenerStats;
use crate::hep::{HepMessage, HepVersion, Limits, decode_datagram};
use crate::pipeline::Ring;
use crate::record::{HepListener, PROTO_SIP, Received, Record, Source, Timestamp, Transport};
use crate::sip::SipScan;
use crate::telemetry::LogLimit;

/// What every listener shares.
#[derive(Clone, Debug, Default)]
pub struct IntakeConfig {
    pub limits: Limits,
    /// When set, messages whose chunk 0x000e differs (or is missing) are rejected.
    pub password: Option<String>,
}

/// Decodes and forwards the messages of one listener.
#[derive(Debug)]
pub struct Intake {
    listener: HepListener,
    label: String,
    config: IntakeConfig,
    ring: Arc<Ring>,
    stats: Arc<ListenerStats>,
    reject_log: Mutex<LogLimit>,
}

impl Intake {
    pub fn new(
        listener: HepListener,
        label: String,
        config: IntakeConfig,
        ring: Arc<Ring>,
    ) -> Self {
        Intake {
            listener,
            label,
            config,
            ring,
            stats: Arc::new(ListenerStats::default()),
            reject_log: Mutex::new(LogLimit::default()),
        }
    }

    pub fn stats(&self) -> Arc<ListenerStats> {
        Arc::clone(&self.stats)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Handles one whole message (a datagram, or one frame of a stream).
    pub fn accept(&self, peer: SocketAddr, datagram: Bytes) {
        self.stats.received(datagram.len());
        let message = match decode_datagram(datagram, &self.config.limits) {
            Ok(m) => m,
            Err(e) => {
                self.reject(e.reason(), peer, &e);
                return;
            }
        };
        if let Some(expected) = &self.config.password
            && message.auth_key.as_deref() != Some(expected.as_bytes())
        {
            self.reject(
                "password",
                peer,
                &"wrong or missing password (chunk 0x000e)",
            );
            return;
        }
        if message.is_keepalive() {
            self.stats.keepalive();
            return;
        }
        self.ring.push(received_record(
            self.listener,
            peer,
            message,
            Timestamp::now(),
        ));
        self.stats.relayed();
    }

    /// Counts a rejected message and logs it at a bounded rate.
    pub(super) fn reject(
        &self,
        reason: &'static str,
        peer: SocketAddr,
        why: &dyn std::fmt::Display,
    ) {
        self.stats.rejected(reason);
        let allowed = self
            .reject_log
            .lock()
            .ok()
            .and_then(|mut l| l.allow(Instant::now()));
        if let Some(suppressed) = allowed {
            tracing::warn!(listener = %self.label, %peer, reason, error = %why, suppressed,
                "hep message rejected");
        }
    }
}

/// Builds the pipeline record of a received message. A message without a time (HEPv1) is
/// stamped with `now`, the time it arrived.
pub fn received_record(
    listener: HepListener,
    peer: SocketAddr,
    mut message: HepMessage,
    now: Timestamp,
) -> Record {
    // HEPv1/v2 have no protocol type: they only ever carry SIP. Homer drops a message without
    // one, so the relayed HEPv3 says SIP explicitly.
    if matches!(message.version, HepVersion::V1 | HepVersion::V2) && message.proto_type.is_none() {
        message.proto_type = Some(PROTO_SIP);
    }
    if message.ts_sec.is_none() {
        message.ts_sec = Some(now.secs() as u32);
        message.ts_usec = Some(now.subsec_micros());
    }
    let ts = Timestamp::from_parts(
        u64::from(message.ts_sec.unwrap_or(0)),
        message.ts_usec.unwrap_or(0),
    );
    let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let payload = message.payload.clone().unwrap_or_default();
    let proto_type = message.proto_type.unwrap_or(0);
    let sip = if proto_type == PROTO_SIP {
        SipScan::scan(&payload)
    } else {
        None
    };
    Record {
        ts,
        src: message.src_ip.unwrap_or(unspecified),
        dst: message.dst_ip.unwrap_or(unspecified),
        src_port: message.src_port.unwrap_or(0),
        dst_port: message.dst_port.unwrap_or(0),
        transport: Transport(message.ip_proto.unwrap_or(0)),
        vlan: message.vlan,
        proto_type,
        payload,
        sip,
        source: Source::Hep(Box::new(Received {
            listener,
            peer,
            message,
        })),
    }
}
