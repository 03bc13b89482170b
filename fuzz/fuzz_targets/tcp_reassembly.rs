//! Fuzzes the TCP flow table and SIP framer (`reassembly::TcpTable`) with segments the input
//! describes, under small limits.
//!
//! Asserts besides "no panic": the table never holds more flows or bytes than its limits;
//! every SIP message handed out starts with a SIP start line and fits `max_message`; and a
//! stream fed in order in pieces yields the same messages as the same stream fed at once.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use hepcap::reassembly::tcp::{FlowKey, Segment, StreamKind, TcpConfig, TcpTable};
use hepcap::record::Timestamp;
use libfuzzer_sys::fuzz_target;

fn key(n: u8) -> FlowKey {
    FlowKey {
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, n % 8)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
        src_port: 5060,
        dst_port: 5060,
    }
}

fn config() -> TcpConfig {
    TcpConfig {
        max_flows: 4,
        max_bytes: 4096,
        max_message: 1024,
        max_out_of_order: 4,
        idle_timeout_us: 1_000,
    }
}

fn messages(table: &mut TcpTable, k: FlowKey, kind: StreamKind, pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut seq = 1000u32;
    for p in pieces {
        let seg = Segment { seq, syn: false, fin: false, rst: false, payload: p };
        table.feed(k, seg, Some(kind), Timestamp(1), &mut |m, _| out.push(m.to_vec()));
        seq = seq.wrapping_add(p.len() as u32);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // Arbitrary segments: [flow, flags, seq delta (2), time delta, len, bytes...]*.
        let cfg = config();
        let mut table = TcpTable::new(cfg.clone());
        let mut seqs = [0u32; 8];
        let mut now = 0u64;
        let mut input = rest;
        while let [flow, flags, d0, d1, dt, len, tail @ ..] = input {
            let n = usize::from(*len).min(tail.len());
            let (payload, next) = tail.split_at(n);
            input = next;
            let slot = usize::from(flow % 8);
            seqs[slot] = seqs[slot].wrapping_add(u32::from(u16::from_be_bytes([*d0, *d1])));
            now += u64::from(*dt) * 10;
            let seg = Segment {
                seq: seqs[slot],
                syn: flags & 1 != 0,
                fin: flags & 2 != 0,
                rst: flags & 4 != 0,
                payload,
            };
            let kind = if flags & 8 != 0 { StreamKind::WebSocket } else { StreamKind::Sip };
            table.feed(key(*flow), seg, Some(kind), Timestamp(now), &mut |m, _| {
                assert!(m.len() <= cfg.max_message);
                if kind == StreamKind::Sip {
                    assert!(hepcap::sip::is_sip_start(m), "message without a start line");
                }
            });
            assert!(table.len() <= cfg.max_flows);
            assert!(table.bytes() <= cfg.max_bytes);
        }
    } else {
        // Cut points chosen by the first bytes, then the stream.
        let Some((cuts, stream)) = rest.split_first_chunk::<4>() else {
            return;
        };
        let mut big = config();
        big.max_bytes = 1 << 20;
        let mut whole = TcpTable::new(big.clone());
        let expected = messages(&mut whole, key(0), StreamKind::Sip, &[stream]);
        let mut points: Vec<usize> = cuts.iter().map(|c| usize::from(*c) * stream.len() / 256).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let pieces: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
        let mut split = TcpTable::new(big);
        let got = messages(&mut split, key(0), StreamKind::Sip, &pieces);
        // Oversize handling may differ with the cut (a partial message is dropped when it
        // grows past the limit), so compare only when no message was dropped that way.
        if whole.stats().oversize == 0 && split.stats().oversize == 0 {
            assert_eq!(expected, got);
        }
    }
});
