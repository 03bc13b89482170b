//! The decoder's hand-over of RTCP-looking UDP datagrams to the correlation stage.
//!
//! The decoder sees RTCP deep inside its own path (after tunnels and defragmentation) but
//! must not know about calls. When a tap is enabled it copies each such datagram here; the
//! caller drains the tap after every frame, in capture order, into the [`super::Correlator`].
//! The copies go into one reused byte buffer, so a warmed-up tap does not allocate. A tap
//! that is not drained keeps at most [`UdpTap::MAX_HELD`] datagrams and counts the rest.

use std::net::SocketAddr;
use std::ops::Range;

use super::UdpDatagram;
use crate::record::Timestamp;

#[derive(Clone, Debug)]
struct Meta {
    src: SocketAddr,
    dst: SocketAddr,
    vlan: Option<u16>,
    ts: Timestamp,
    bytes: Range<usize>,
}

/// Datagrams copied out of the decoder, waiting to be drained.
#[derive(Debug, Default)]
pub struct UdpTap {
    enabled: bool,
    meta: Vec<Meta>,
    bytes: Vec<u8>,
    overflow: u64,
}

impl UdpTap {
    /// Datagrams kept between drains.
    pub const MAX_HELD: usize = 256;

    /// Starts (or stops) copying datagrams.
    pub fn enable(&mut self, on: bool) {
        self.enabled = on;
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Datagrams lost because the tap was not drained in time.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    /// Copies one datagram if the tap is on.
    pub fn push(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        vlan: Option<u16>,
        ts: Timestamp,
        payload: &[u8],
    ) {
        if !self.enabled {
            return;
        }
        if self.meta.len() >= Self::MAX_HELD {
            self.overflow += 1;
            return;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.meta.push(Meta {
            src,
            dst,
            vlan,
            ts,
            bytes: start..self.bytes.len(),
        });
    }

    /// Hands every datagram to `f` in the order it was pushed, then empties the tap.
    pub fn drain(&mut self, mut f: impl FnMut(&UdpDatagram<'_>)) {
        for m in &self.meta {
            f(&UdpDatagram {
                src: m.src,
                dst: m.dst,
                vlan: m.vlan,
                payload: self.bytes.get(m.bytes.clone()).unwrap_or_default(),
                ts: m.ts,
            });
        }
        self.meta.clear();
        self.bytes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_then_copies_in_order_and_bounded() {
        let a: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let mut tap = UdpTap::default();
        tap.push(a, a, None, Timestamp(1), b"x");
        let mut seen = Vec::new();
        tap.drain(|d| seen.push(d.payload.to_vec()));
        assert!(seen.is_empty());

        tap.enable(true);
        tap.push(a, a, Some(7), Timestamp(1), b"one");
        tap.push(a, a, None, Timestamp(2), b"two");
        tap.drain(|d| seen.push(d.payload.to_vec()));
        assert_eq!(seen, [b"one".to_vec(), b"two".to_vec()]);

        for _ in 0..UdpTap::MAX_HELD + 3 {
            tap.push(a, a, None, Timestamp(3), b"z");
        }
        assert_eq!(tap.overflow(), 3);
        let mut n = 0;
        tap.drain(|_| n += 1);
        assert_eq!(n, UdpTap::MAX_HELD);
    }
}
