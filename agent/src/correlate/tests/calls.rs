//! Call table: lookups, sticky SSRCs, expiry, bounds and the kernel-map mirror.

use std::sync::{Arc, Mutex};

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const SEC: u64 = 1_000_000;

fn t(secs: u64) -> Timestamp {
    Timestamp(1_700_000_000 * SEC + secs * SEC)
}

fn id(v: Option<Box<[u8]>>) -> Option<String> {
    v.map(|b| String::from_utf8(b.into_vec()).unwrap())
}

#[test]
fn source_then_destination_then_learned_ssrc() {
    let mut table = CallTable::new(CallTableConfig::default());
    table.insert(sa("192.0.2.1:4001"), b"call-a", t(0));
    // From the announced address.
    let got = table.lookup(sa("192.0.2.1:4001"), sa("192.0.2.9:7001"), Some(7), t(1));
    assert_eq!(id(got).as_deref(), Some("call-a"));
    // To the announced address, from somewhere no SDP named.
    let got = table.lookup(sa("198.51.100.1:5001"), sa("192.0.2.1:4001"), Some(8), t(1));
    assert_eq!(id(got).as_deref(), Some("call-a"));
    // Neither end known.
    assert_eq!(
        table.lookup(
            sa("198.51.100.1:5001"),
            sa("198.51.100.2:5003"),
            Some(9),
            t(1)
        ),
        None
    );
    assert_eq!(table.stats().ssrc_learned, 2);
}

#[test]
fn learned_ssrc_is_sticky_when_the_port_moves_to_another_call() {
    let mut table = CallTable::new(CallTableConfig::default());
    table.insert(sa("192.0.2.1:4001"), b"call-a", t(0));
    assert!(
        table
            .lookup(sa("192.0.2.1:4001"), sa("192.0.2.2:1"), Some(0xa), t(1))
            .is_some()
    );
    // A B2BUA reuses the port for a new call.
    table.insert(sa("192.0.2.1:4001"), b"call-b", t(2));
    let old = table.lookup(sa("192.0.2.1:4001"), sa("192.0.2.2:1"), Some(0xa), t(3));
    assert_eq!(
        id(old).as_deref(),
        Some("call-a"),
        "the SSRC stays with its call"
    );
    let new = table.lookup(sa("192.0.2.1:4001"), sa("192.0.2.2:1"), Some(0xb), t(3));
    assert_eq!(id(new).as_deref(), Some("call-b"));
}

#[test]
fn same_port_and_ssrc_in_the_next_call_after_bye() {
    let mut table = CallTable::new(CallTableConfig::default());
    table.insert(sa("127.0.0.1:10016"), b"call-1", t(0));
    let first = table.lookup(
        sa("127.0.0.1:10016"),
        sa("127.0.0.1:10005"),
        Some(0x77),
        t(5),
    );
    assert_eq!(id(first).as_deref(), Some("call-1"));
    table.end_call(b"call-1", t(9));
    // Within call-1's grace period the phone is called again on the same port.
    table.insert(sa("127.0.0.1:10016"), b"call-2", t(10));
    let next = table.lookup(
        sa("127.0.0.1:10016"),
        sa("127.0.0.1:10005"),
        Some(0x77),
        t(15),
    );
    assert_eq!(id(next).as_deref(), Some("call-2"));
    // And it stays there (re-learned).
    let again = table.lookup(
        sa("127.0.0.1:10016"),
        sa("127.0.0.1:10005"),
        Some(0x77),
        t(16),
    );
    assert_eq!(id(again).as_deref(), Some("call-2"));
}

#[test]
fn new_call_at_the_destination_beats_an_ended_call_at_the_source() {
    let mut table = CallTable::new(CallTableConfig::default());
    table.insert(sa("127.0.0.1:10011"), b"call-1", t(0));
    table.end_call(b"call-1", t(9));
    // Call 2's INVITE names the caller's new port; the callee's answer is not seen yet.
    table.insert(sa("127.0.0.1:10003"), b"call-2", t(10));
    let got = table.lookup(sa("127.0.0.1:10011"), sa("127.0.0.1:10003"), Some(5), t(10));
    assert_eq!(id(got).as_deref(), Some("call-2"));
    // Without a newer call, the ended one still gets its late RTCP.
    let got = table.lookup(sa("127.0.0.1:10011"), sa("127.0.0.1:9"), Some(6), t(11));
    assert_eq!(id(got).as_deref(), Some("call-1"));
}

#[test]
fn bye_grace_then_gone() {
    let config = CallTableConfig::default();
    let grace = config.bye_grace_us / SEC;
    let mut table = CallTable::new(config);
    table.insert(sa("192.0.2.1:4001"), b"call-a", t(0));
    assert!(
        table
            .lookup(sa("192.0.2.1:4001"), sa("192.0.2.2:1"), Some(1), t(1))
            .is_some()
    );
    table.end_call(b"call-a", t(5));
    assert!(
        table
            .lookup(
                sa("192.0.2.1:4001"),
                sa("192.0.2.2:1"),
                Some(1),
                t(5 + grace - 1)
            )
            .is_some()
    );
    assert!(
        table
            .lookup(
                sa("192.0.2.1:4001"),
                sa("192.0.2.2:1"),
                Some(1),
                t(5 + grace)
            )
            .is_none()
    );
    assert!(
        table
            .lookup(
                sa("192.0.2.1:4001"),
                sa("192.0.2.2:1"),
                Some(2),
                t(5 + grace + 2)
            )
            .is_none()
    );
    assert_eq!(table.addresses(), 0);
    assert_eq!(table.ssrcs(), 0);
    let s = table.stats();
    assert_eq!((s.address_expired, s.ssrc_expired), (1, 1));
    // BYE of a call never seen changes nothing.
    table.end_call(b"nobody", t(100));
}

#[test]
fn max_age_since_last_confirmation() {
    let config = CallTableConfig {
        max_age_us: 60 * SEC,
        ..CallTableConfig::default()
    };
    let mut table = CallTable::new(config);
    table.insert(sa("192.0.2.1:4001"), b"call-a", t(0));
    table.insert(sa("192.0.2.1:4001"), b"call-a", t(50)); // re-INVITE refreshes
    assert!(
        table
            .lookup(sa("192.0.2.3:1"), sa("192.0.2.1:4001"), None, t(100))
            .is_some()
    );
    assert!(
        table
            .lookup(sa("192.0.2.3:1"), sa("192.0.2.1:4001"), None, t(111))
            .is_none()
    );
}

#[test]
fn bounded_with_evictions_counted() {
    let config = CallTableConfig {
        max_addresses: 3,
        max_ssrcs: 2,
        ..CallTableConfig::default()
    };
    let mut table = CallTable::new(config);
    for port in 0..10u16 {
        table.insert(
            SocketAddr::new([192, 0, 2, 1].into(), 4000 + port),
            b"c",
            t(0),
        );
    }
    assert_eq!(table.addresses(), 3);
    assert_eq!(table.stats().address_evictions, 7);
    // The newest three survive.
    assert!(
        table
            .lookup(sa("192.0.2.1:4009"), sa("192.0.2.2:1"), Some(1), t(0))
            .is_some()
    );
    assert!(
        table
            .lookup(sa("192.0.2.1:4006"), sa("192.0.2.2:1"), Some(1), t(0))
            .is_none()
    );
    for ssrc in 0..5 {
        table.lookup(sa("192.0.2.1:4008"), sa("192.0.2.2:1"), Some(ssrc), t(0));
    }
    assert_eq!(table.ssrcs(), 2);
    assert_eq!(table.stats().ssrc_evictions, 4);
}

#[derive(Debug, Default, Clone)]
struct Log(Arc<Mutex<Vec<(bool, SocketAddr)>>>);

impl AddressMirror for Log {
    fn inserted(&mut self, addr: SocketAddr) {
        self.0.lock().unwrap().push((true, addr));
    }
    fn removed(&mut self, addr: SocketAddr) {
        self.0.lock().unwrap().push((false, addr));
    }
}

#[test]
fn mirror_sees_inserts_evictions_and_expiry() {
    let config = CallTableConfig {
        max_addresses: 1,
        ..CallTableConfig::default()
    };
    let mut table = CallTable::new(config);
    let log = Log::default();
    table.set_mirror(Box::new(log.clone()));
    table.insert(sa("192.0.2.1:4001"), b"a", t(0));
    table.insert(sa("192.0.2.1:4001"), b"a", t(0)); // refresh: no new insert
    table.insert(sa("192.0.2.1:4003"), b"b", t(0)); // evicts 4001
    table.end_call(b"b", t(1));
    table.lookup(sa("192.0.2.9:1"), sa("192.0.2.9:2"), None, t(100));
    assert_eq!(
        *log.0.lock().unwrap(),
        [
            (true, sa("192.0.2.1:4001")),
            (false, sa("192.0.2.1:4001")),
            (true, sa("192.0.2.1:4003")),
            (false, sa("192.0.2.1:4003")),
        ]
    );
}
