//! Fuzzes the IP fragment table (`reassembly::FragmentTable`) under small limits.
//!
//! Asserts besides "no panic": the table never holds more datagrams or bytes than its limits;
//! and a datagram cut into fragments at points the input chooses, fed in any order the input
//! chooses (with overlapping duplicates), reassembles to the original bytes (first wins, and
//! the duplicates carry the same bytes).

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use hepcap::reassembly::defrag::{DefragConfig, Fragment, FragmentKey, FragmentOutcome, FragmentTable};
use hepcap::record::Timestamp;
use libfuzzer_sys::fuzz_target;

fn key(id: u8) -> FragmentKey {
    FragmentKey {
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        id: u32::from(id % 16),
        protocol: 17,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cfg = DefragConfig {
        max_entries: 4,
        max_bytes: 2048,
        max_datagram: 4096,
        timeout_us: 1_000,
    };
    let mut table = FragmentTable::new(cfg.clone());
    if mode & 1 == 0 {
        // Arbitrary fragments: [id, offset/8 (2), flags, time delta, len, bytes...]*.
        let mut now = 0u64;
        let mut input = rest;
        while let [id, o0, o1, flags, dt, len, tail @ ..] = input {
            let n = usize::from(*len).min(tail.len());
            let (bytes, next) = tail.split_at(n);
            input = next;
            now += u64::from(*dt) * 10;
            let offset = usize::from(u16::from_be_bytes([*o0, *o1]) & 0x1fff) * 8;
            let frag = Fragment { offset, more: flags & 1 != 0, data: bytes };
            if let FragmentOutcome::Complete(d) = table.insert(key(*id), frag, Timestamp(now)) {
                assert!(d.len() <= cfg.max_datagram);
            }
            assert!(table.len() <= cfg.max_entries);
            assert!(table.bytes() <= cfg.max_bytes);
        }
    } else {
        // One datagram: [n cuts, cuts..., order seeds...] then the payload.
        let Some((&n, rest)) = rest.split_first() else {
            return;
        };
        let n = usize::from(n % 8);
        if rest.len() < 2 * n {
            return;
        }
        let (control, payload) = rest.split_at(2 * n);
        let payload = &payload[..payload.len().min(cfg.max_bytes)];
        let mut points: Vec<usize> = control[..n]
            .iter()
            .map(|c| usize::from(*c) * payload.len() / 256 / 8 * 8)
            .collect();
        points.push(0);
        points.push(payload.len());
        points.sort_unstable();
        points.dedup();
        let mut frags: Vec<(usize, usize)> = points.windows(2).map(|w| (w[0], w[1])).collect();
        if frags.is_empty() {
            return;
        }
        // A duplicate that overlaps its neighbour, when there is one.
        if let [(a, _), (_, d), ..] = frags[..] {
            frags.push((a, d));
        }
        // Order chosen by the input.
        let count = frags.len();
        for (i, s) in control[n..].iter().enumerate() {
            frags.swap(i % count, usize::from(*s) % count);
        }
        let mut done = None;
        for (a, b) in frags {
            let more = b != payload.len();
            let frag = Fragment { offset: a, more, data: &payload[a..b] };
            match table.insert(key(1), frag, Timestamp(1)) {
                FragmentOutcome::Complete(d) => {
                    done.get_or_insert(d);
                }
                FragmentOutcome::Held | FragmentOutcome::Malformed => {}
            }
        }
        if let Some(d) = done {
            assert_eq!(d, payload);
        }
    }
});
