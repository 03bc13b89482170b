//! The synthetic captures: one function per file, each a short, realistic SIP exchange put
//! in the framing the file exists to exercise. Everything is fixed (times, addresses, tags,
//! Call-IDs), so the output is byte-for-byte reproducible.
//!
//! Addresses come from the documentation ranges (RFC 5737, RFC 3849); times are in 2023-11.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;

use super::capture::{self, Frame, Precision, Ts};
use super::packet::{self, Datagram, Ipv6Ext, TPID_8021AD, TPID_8021Q};
use super::sip::{Dialog, Dir, Message, Party, sdp};

mod tunnels;

/// A generated file.
#[derive(Debug)]
pub struct Fixture {
    /// File name inside `pcaps/`.
    pub name: &'static str,
    /// One line: what the file is for.
    pub exercises: &'static str,
    pub bytes: Vec<u8>,
}

/// Builds the bytes of one file.
type Build = fn() -> anyhow::Result<Vec<u8>>;

/// Every synthetic capture, in a fixed order.
pub fn all() -> anyhow::Result<Vec<Fixture>> {
    let builders: [(&str, &str, Build); 29] = [
        (
            "synth__vlan-8021q.pcap",
            "Ethernet + 802.1Q VLAN 100, IPv4: INVITE/SDP call flow to BYE",
            vlan_8021q,
        ),
        (
            "synth__qinq-88a8-8100.pcap",
            "QinQ: outer 802.1ad (0x88a8) VLAN 300, inner 802.1Q VLAN 42; REGISTER digest",
            qinq,
        ),
        (
            "synth__linux-sll.pcap",
            "LINKTYPE_LINUX_SLL (113), incoming and outgoing packet types; OPTIONS",
            linux_sll,
        ),
        (
            "synth__linux-sll2.pcap",
            "LINKTYPE_LINUX_SLL2 (276), IPv4 and IPv6; MESSAGE and OPTIONS",
            linux_sll2,
        ),
        (
            "synth__raw-ip-101.pcap",
            "LINKTYPE_RAW (101), IPv4 and IPv6 in one file; SUBSCRIBE/NOTIFY",
            raw_101,
        ),
        (
            "synth__linktype-ipv4-228.pcap",
            "LINKTYPE_IPV4 (228); in-dialog INFO (DTMF) and re-INVITE",
            linktype_ipv4,
        ),
        (
            "synth__linktype-ipv6-229.pcap",
            "LINKTYPE_IPV6 (229); INVITE with IP6 SDP rejected 486",
            linktype_ipv6,
        ),
        (
            "synth__bsd-null-0.pcap",
            "LINKTYPE_NULL (0), little-endian AF_INET 2 and AF_INET6 24; OPTIONS",
            bsd_null,
        ),
        (
            "synth__loop-108.pcap",
            "LINKTYPE_LOOP (108), big-endian AF_INET 2 and AF_INET6 24; OPTIONS",
            openbsd_loop,
        ),
        (
            "synth__ipv6-ext-headers.pcap",
            "IPv6 Hop-by-Hop, Routing (type 0 and type 2, segments left 0), Destination \
             Options before UDP; call flow",
            ipv6_ext_headers,
        ),
        (
            "synth__compact-headers.pcap",
            "compact `i:` Call-ID and other compact forms; lower-case header names",
            compact_headers,
        ),
        (
            "synth__lf-only.pcap",
            "bare LF line endings in headers and SDP body; call flow",
            lf_only,
        ),
        (
            "synth__non-utf8.pcap",
            "Latin-1 0xE9 in a display name, NUL bytes in a MESSAGE body",
            non_utf8,
        ),
        (
            "synth__nonstandard-ports.pcap",
            "SIP on UDP 15060 -> 5999 and 40000 -> 40002 (no port hint)",
            nonstandard_ports,
        ),
        (
            "synth__pcapng-ethernet.pcapng",
            "pcapng: SHB + IDB (Ethernet) + EPBs; INVITE/CANCEL/487",
            pcapng_ethernet,
        ),
        (
            "synth__nanosecond.pcap",
            "nanosecond pcap (magic 0xa1b23c4d) with sub-microsecond digits; REGISTER",
            nanosecond,
        ),
        (
            "synth__udp-keepalive-junk.pcap",
            "CRLF keep-alives, `hello`, zero bytes and SIP-like junk on UDP 5060 among real SIP",
            keepalive_junk,
        ),
        (
            "synth__unsupported-linktype-147.pcap",
            "negative: LINKTYPE_USER0 (147) holding a SIP-looking Ethernet frame",
            unsupported_linktype,
        ),
        (
            "synth__truncated-record.pcap",
            "negative: three whole records, then a record cut off in the middle",
            truncated_record,
        ),
        (
            "synth__not-a-capture.pcap",
            "negative: a text file with a .pcap name",
            not_a_capture,
        ),
        (
            "synth__tcp-packed-and-split.pcap",
            "SIP/TCP 5060: INVITE over 3 segments, 100+180 in one segment, CRLF keep-alive, \
             retransmitted BYE",
            tunnels::tcp_packed_and_split,
        ),
        (
            "synth__tcp-mid-stream.pcap",
            "SIP/TCP on 5080 picked up mid-message; 200 OK over 2 segments",
            tunnels::tcp_mid_stream,
        ),
        (
            "synth__vxlan.pcap",
            "SIP call in VXLAN (UDP 4789, VNI 0x1234)",
            tunnels::vxlan,
        ),
        (
            "synth__erspan-ii-iii.pcap",
            "SIP mirrored in ERSPAN II and III (with and without subheader), inner VLAN 10",
            tunnels::erspan,
        ),
        (
            "synth__gre-variants.pcap",
            "GRE plain/IPv4, checksum/TEB, PPP, key+sequence/IPv6",
            tunnels::gre_variants,
        ),
        (
            "synth__ip-in-ip.pcap",
            "IPv4-in-IPv4 call, 6in4 and 4in6 OPTIONS pings",
            tunnels::ip_in_ip,
        ),
        (
            "synth__mpls-pppoe.pcap",
            "SIP over a 2-label MPLS stack and in PPPoE session frames",
            tunnels::mpls_pppoe,
        ),
        (
            "synth__ipv4-fragments-ooo-overlap.pcap",
            "INVITE and 200 as IPv4 fragments: last first, overlapping middle, then first",
            tunnels::ipv4_fragments,
        ),
        (
            "synth__ipv6-fragments-ooo.pcap",
            "IPv6 call, INVITE and 200 as 3 IPv6 fragments each, out of order",
            tunnels::ipv6_fragments,
        ),
    ];
    builders
        .into_iter()
        .map(|(name, exercises, build)| {
            let bytes = build().with_context(|| format!("build {name}"))?;
            Ok(Fixture {
                name,
                exercises,
                bytes,
            })
        })
        .collect()
}

/// A UDP datagram as sent: when, between which sockets, which payload.
#[derive(Clone, Debug)]
struct Sent {
    ts: Ts,
    src: SocketAddr,
    dst: SocketAddr,
    payload: Vec<u8>,
}

/// How the IP packet of a [`Sent`] is framed.
#[derive(Clone, Copy, Debug)]
enum Link<'a> {
    Ethernet(&'a [(u16, u16)]),
    /// Linux cooked v1; packet type 0 (to us) or 4 (outgoing) by the sender's address.
    Sll {
        local: IpAddr,
    },
    /// Linux cooked v2 on interface `if_index`.
    Sll2 {
        local: IpAddr,
        if_index: u32,
    },
    /// No link header (LINKTYPE_RAW, _IPV4, _IPV6).
    Raw,
    Null,
    Loop,
}

/// Frames every datagram of `sent`, numbering IPv4 identifications from `first_ip_id`.
fn frames(sent: &[Sent], link: Link<'_>, first_ip_id: u16) -> anyhow::Result<Vec<Frame>> {
    frames_with_ext(sent, link, first_ip_id, |_| Vec::new())
}

fn frames_with_ext(
    sent: &[Sent],
    link: Link<'_>,
    first_ip_id: u16,
    ext_for: impl Fn(usize) -> Vec<Ipv6Ext>,
) -> anyhow::Result<Vec<Frame>> {
    // AF_INET6 as NetBSD/OpenBSD write it; tshark and hepcap both know it.
    const BSD_AF_INET6: u32 = 24;
    const BSD_AF_INET: u32 = 2;

    let mut out = Vec::with_capacity(sent.len());
    for (i, s) in sent.iter().enumerate() {
        let ext = ext_for(i);
        let datagram = Datagram {
            src: s.src,
            dst: s.dst,
            ip_id: first_ip_id.wrapping_add(i as u16),
            ipv6_ext: &ext,
            payload: &s.payload,
        };
        let ip = datagram.to_ip()?;
        let ether_type = datagram.ether_type();
        let family = match s.src {
            SocketAddr::V4(_) => BSD_AF_INET,
            SocketAddr::V6(_) => BSD_AF_INET6,
        };
        let data = match link {
            Link::Ethernet(tags) => {
                packet::ethernet(mac(s.dst.ip()), mac(s.src.ip()), tags, ether_type, &ip)
            }
            Link::Sll { local } => {
                let packet_type = if s.src.ip() == local { 4 } else { 0 };
                packet::linux_sll(packet_type, mac(s.src.ip()), ether_type, &ip)
            }
            Link::Sll2 { local, if_index } => {
                let packet_type = if s.src.ip() == local { 4 } else { 0 };
                packet::linux_sll2(ether_type, if_index, packet_type, mac(s.src.ip()), &ip)
            }
            Link::Raw => ip,
            Link::Null => packet::bsd_null_le(family, &ip),
            Link::Loop => packet::openbsd_loop(family, &ip),
        };
        out.push(Frame { ts: s.ts, data });
    }
    Ok(out)
}

/// A locally administered MAC address derived from the host's IP address.
fn mac(ip: IpAddr) -> [u8; 6] {
    let last = match ip {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    [0x02, 0x00, 0x5e, 0x10, 0x00, last]
}

fn addr(text: &str) -> SocketAddr {
    // Only called with the literals below; a typo is a bug in this file.
    text.parse().expect("socket address literal in fixtures.rs")
}

/// Collects messages with their timestamps and routes.
struct Script {
    start: Ts,
    sent: Vec<Sent>,
    /// Applied to every message before it is written (e.g. [`Message::lf_only`]).
    style: fn(Message) -> Message,
}

impl Script {
    fn new(start: Ts) -> Script {
        Script {
            start,
            sent: Vec::new(),
            style: std::convert::identity,
        }
    }

    /// Sends `message` `offset_us` microseconds after the start of the script.
    fn at(&mut self, offset_us: u32, route: (SocketAddr, SocketAddr), message: Message) {
        let bytes = (self.style)(message).to_bytes();
        self.raw(offset_us, route, bytes);
    }

    /// Sends raw bytes (keep-alives, junk).
    fn raw(&mut self, offset_us: u32, (src, dst): (SocketAddr, SocketAddr), payload: Vec<u8>) {
        let total = u64::from(self.start.nanos) + u64::from(offset_us) * 1_000;
        let ts = Ts {
            sec: self.start.sec + (total / 1_000_000_000) as u32,
            nanos: (total % 1_000_000_000) as u32,
        };
        self.sent.push(Sent {
            ts,
            src,
            dst,
            payload,
        });
    }
}

fn dialog(caller: Party, callee: Party, call_id: &str, tag: u32) -> Dialog {
    Dialog {
        caller,
        callee,
        call_id: call_id.to_owned(),
        from_tag: format!("{:08x}", tag),
        to_tag: format!("{:08x}", tag.wrapping_mul(2_654_435_761)),
        user_agent: "hepcap-synth/1.0",
    }
}

/// INVITE with SDP, 100, 180, 200 with SDP, ACK, then BYE from `bye_dir` and its 200.
fn call_flow(script: &mut Script, d: &Dialog, bye_dir: Dir) {
    let fwd = Dir::CallerToCallee;
    let offer = sdp("alice", 2_890_844_526, d.caller.addr, 49_170);
    let answer = sdp("bob", 2_890_844_730, d.callee.addr, 3_456);
    let bye_cseq = if bye_dir == fwd { 2 } else { 1 };

    script.at(
        0,
        d.route(fwd),
        d.request("INVITE", 1, fwd, false)
            .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY")
            .header("Supported", "replaces, timer")
            .body("application/sdp", offer),
    );
    script.at(
        1_273,
        d.reply_route(fwd),
        d.response(100, "Trying", "INVITE", 1, fwd, false),
    );
    script.at(
        41_002,
        d.reply_route(fwd),
        d.response(180, "Ringing", "INVITE", 1, fwd, true),
    );
    script.at(
        2_310_457,
        d.reply_route(fwd),
        d.response(200, "OK", "INVITE", 1, fwd, true)
            .body("application/sdp", answer),
    );
    script.at(2_311_020, d.route(fwd), d.request("ACK", 1, fwd, true));
    script.at(
        9_500_001,
        d.route(bye_dir),
        d.request("BYE", bye_cseq, bye_dir, true),
    );
    script.at(
        9_502_999,
        d.reply_route(bye_dir),
        d.response(200, "OK", "BYE", bye_cseq, bye_dir, true),
    );
}

fn alice_bob_v4() -> (Party, Party) {
    (
        Party::new(
            "Alice",
            "sip:alice@atlanta.example.com",
            addr("192.0.2.10:5060"),
        ),
        Party::new(
            "Bob",
            "sip:bob@biloxi.example.com",
            addr("198.51.100.20:5060"),
        ),
    )
}

fn alice_bob_v6() -> (Party, Party) {
    (
        Party::new(
            "Alice",
            "sip:alice@atlanta.example.com",
            addr("[2001:db8:a::10]:5060"),
        ),
        Party::new(
            "Bob",
            "sip:bob@biloxi.example.com",
            addr("[2001:db8:b::20]:5060"),
        ),
    )
}

fn vlan_8021q() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v4();
    let d = dialog(
        alice,
        bob,
        "a84b4c76e66710@pc33.atlanta.example.com",
        0x1928_3017,
    );
    let mut s = Script::new(Ts::micros(1_700_000_000, 120_000));
    call_flow(&mut s, &d, Dir::CalleeToCaller);
    let tags = [(TPID_8021Q, 100)];
    capture::pcap(
        1,
        Precision::Micro,
        &frames(&s.sent, Link::Ethernet(&tags), 0x1000)?,
    )
}

/// REGISTER, 401 with a digest challenge, REGISTER with credentials, 200 (RFC 3261 §22).
fn register_flow(s: &mut Script, d: &Dialog, base_us: u32) {
    let fwd = Dir::CallerToCallee;
    s.at(
        base_us,
        d.route(fwd),
        d.request("REGISTER", 1, fwd, false)
            .header("Expires", "3600"),
    );
    s.at(
        base_us + 3_481,
        d.reply_route(fwd),
        d.response(401, "Unauthorized", "REGISTER", 1, fwd, true)
            .header(
                "WWW-Authenticate",
                "Digest realm=\"biloxi.example.com\", qop=\"auth\", \
                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", algorithm=MD5",
            ),
    );
    s.at(
        base_us + 20_117,
        d.route(fwd),
        d.request("REGISTER", 2, fwd, false)
            .header(
                "Authorization",
                "Digest username=\"bob\", realm=\"biloxi.example.com\", \
                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:biloxi.example.com\", \
                 qop=auth, nc=00000001, cnonce=\"0a4f113b\", \
                 response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5",
            )
            .header("Expires", "3600"),
    );
    s.at(
        base_us + 24_530,
        d.reply_route(fwd),
        d.response(200, "OK", "REGISTER", 2, fwd, true)
            .header("Expires", "3600"),
    );
}

fn qinq() -> anyhow::Result<Vec<u8>> {
    let bob = Party::new(
        "Bob",
        "sip:bob@biloxi.example.com",
        addr("203.0.113.55:5060"),
    );
    let registrar = Party::new("", "sip:bob@biloxi.example.com", addr("198.51.100.1:5060"));
    let d = dialog(bob, registrar, "843817637684230@998sdasdh09", 0x0a11_6e6b);
    let mut s = Script::new(Ts::micros(1_700_000_100, 1));
    register_flow(&mut s, &d, 0);
    let tags = [(TPID_8021AD, 300), (TPID_8021Q, 42)];
    capture::pcap(
        1,
        Precision::Micro,
        &frames(&s.sent, Link::Ethernet(&tags), 0x2000)?,
    )
}

/// OPTIONS and 200 in both directions between a proxy and a gateway (keep-alive pings).
fn options_ping(s: &mut Script, d: &Dialog, base_us: u32, cseq: u32) {
    for (i, dir) in [Dir::CallerToCallee, Dir::CalleeToCaller]
        .into_iter()
        .enumerate()
    {
        let t = base_us + i as u32 * 500_000;
        s.at(
            t,
            d.route(dir),
            d.request("OPTIONS", cseq, dir, false)
                .header("Accept", "application/sdp"),
        );
        s.at(
            t + 812,
            d.reply_route(dir),
            d.response(200, "OK", "OPTIONS", cseq, dir, true)
                .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
                .header("Accept", "application/sdp"),
        );
    }
}

fn linux_sll() -> anyhow::Result<Vec<u8>> {
    let proxy = Party::new("", "sip:ping@proxy.example.net", addr("192.0.2.1:5060"));
    let gw = Party::new("", "sip:gw1@pstn.example.net", addr("192.0.2.200:5060"));
    let local = proxy.addr.ip();
    let d = dialog(proxy, gw, "6f2b7d9c-0001@192.0.2.1", 0x5111);
    let mut s = Script::new(Ts::micros(1_700_000_200, 999_999));
    options_ping(&mut s, &d, 0, 101);
    capture::pcap(
        113,
        Precision::Micro,
        &frames(&s.sent, Link::Sll { local }, 0x3000)?,
    )
}

fn linux_sll2() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v4();
    let local = alice.addr.ip();
    let d = dialog(alice, bob, "msg-7c1d2e3f@atlanta.example.com", 0x5112);
    let mut s = Script::new(Ts::micros(1_700_000_300, 250_000));
    let fwd = Dir::CallerToCallee;
    s.at(
        0,
        d.route(fwd),
        d.request("MESSAGE", 1, fwd, false)
            .body("text/plain", "Watson, come here."),
    );
    s.at(
        2_048,
        d.reply_route(fwd),
        d.response(200, "OK", "MESSAGE", 1, fwd, true),
    );
    let (a6, b6) = alice_bob_v6();
    let d6 = dialog(a6, b6, "opt6-1@[2001:db8:a::10]", 0x5113);
    options_ping(&mut s, &d6, 1_000_000, 7);
    let link = Link::Sll2 { local, if_index: 3 };
    capture::pcap(276, Precision::Micro, &frames(&s.sent, link, 0x4000)?)
}

fn raw_101() -> anyhow::Result<Vec<u8>> {
    let watcher = Party::new(
        "Watcher",
        "sip:watcher@atlanta.example.com",
        addr("192.0.2.33:5060"),
    );
    let presentity = Party::new("", "sip:bob@biloxi.example.com", addr("198.51.100.20:5060"));
    let d = dialog(watcher, presentity, "sub-4f8a91@atlanta.example.com", 0x101);
    let fwd = Dir::CallerToCallee;
    let back = Dir::CalleeToCaller;
    let mut s = Script::new(Ts::micros(1_700_000_400, 500));
    s.at(
        0,
        d.route(fwd),
        d.request("SUBSCRIBE", 17, fwd, false)
            .header("Event", "presence")
            .header("Accept", "application/pidf+xml")
            .header("Expires", "600"),
    );
    s.at(
        1_500,
        d.reply_route(fwd),
        d.response(200, "OK", "SUBSCRIBE", 17, fwd, true)
            .header("Expires", "600"),
    );
    s.at(
        2_900,
        d.route(back),
        d.request("NOTIFY", 1, back, true)
            .header("Event", "presence")
            .header("Subscription-State", "active;expires=599")
            .body(
                "application/pidf+xml",
                "<?xml version=\"1.0\"?>\r\n\
                 <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
                 entity=\"sip:bob@biloxi.example.com\">\r\n\
                 <tuple id=\"t1\"><status><basic>open</basic></status></tuple>\r\n\
                 </presence>\r\n",
            ),
    );
    s.at(
        3_700,
        d.reply_route(back),
        d.response(200, "OK", "NOTIFY", 1, back, true),
    );
    let (a6, b6) = alice_bob_v6();
    let d6 = dialog(a6, b6, "raw6-opt@atlanta.example.com", 0x6101);
    options_ping(&mut s, &d6, 10_000, 1);
    capture::pcap(101, Precision::Micro, &frames(&s.sent, Link::Raw, 0x5000)?)
}

fn linktype_ipv4() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v4();
    let d = dialog(alice, bob, "info-2a9e@pc33.atlanta.example.com", 0x228);
    let fwd = Dir::CallerToCallee;
    let mut s = Script::new(Ts::micros(1_700_000_500, 10));
    s.at(
        0,
        d.route(fwd),
        d.request("INFO", 2, fwd, true)
            .body("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
    );
    s.at(
        977,
        d.reply_route(fwd),
        d.response(200, "OK", "INFO", 2, fwd, true),
    );
    let offer = sdp("alice", 2_890_844_527, d.caller.addr, 49_172);
    s.at(
        30_000_000,
        d.route(fwd),
        d.request("INVITE", 3, fwd, true)
            .header("Session-Expires", "1800;refresher=uac")
            .body("application/sdp", offer),
    );
    s.at(
        30_004_004,
        d.reply_route(fwd),
        d.response(200, "OK", "INVITE", 3, fwd, true).body(
            "application/sdp",
            sdp("bob", 2_890_844_731, d.callee.addr, 3_456),
        ),
    );
    s.at(30_005_000, d.route(fwd), d.request("ACK", 3, fwd, true));
    capture::pcap(228, Precision::Micro, &frames(&s.sent, Link::Raw, 0x6000)?)
}

fn linktype_ipv6() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v6();
    let d = dialog(alice, bob, "v6call-9b1c@[2001:db8:a::10]", 0x229);
    let fwd = Dir::CallerToCallee;
    let mut s = Script::new(Ts::micros(1_700_000_600, 600_000));
    s.at(
        0,
        d.route(fwd),
        d.request("INVITE", 1, fwd, false)
            .body("application/sdp", sdp("alice", 1, d.caller.addr, 20_000)),
    );
    s.at(
        1_111,
        d.reply_route(fwd),
        d.response(100, "Trying", "INVITE", 1, fwd, false),
    );
    s.at(
        400_000,
        d.reply_route(fwd),
        d.response(486, "Busy Here", "INVITE", 1, fwd, true),
    );
    s.at(400_700, d.route(fwd), d.request("ACK", 1, fwd, true));
    capture::pcap(229, Precision::Micro, &frames(&s.sent, Link::Raw, 0)?)
}

fn loopback_pings(start: Ts) -> Vec<Sent> {
    let a = Party::new("", "sip:probe@localhost", addr("127.0.0.1:5070"));
    let b = Party::new("", "sip:sbc@localhost", addr("127.0.0.1:5060"));
    let d = dialog(a, b, "lo4-ping@127.0.0.1", 0x10);
    let a6 = Party::new("", "sip:probe@localhost", addr("[::1]:5070"));
    let b6 = Party::new("", "sip:sbc@localhost", addr("[::1]:5060"));
    let d6 = dialog(a6, b6, "lo6-ping@[::1]", 0x11);
    let mut s = Script::new(start);
    options_ping(&mut s, &d, 0, 1);
    options_ping(&mut s, &d6, 2_000_000, 1);
    s.sent
}

fn bsd_null() -> anyhow::Result<Vec<u8>> {
    let sent = loopback_pings(Ts::micros(1_700_000_700, 700_007));
    capture::pcap(0, Precision::Micro, &frames(&sent, Link::Null, 0x7000)?)
}

fn openbsd_loop() -> anyhow::Result<Vec<u8>> {
    let sent = loopback_pings(Ts::micros(1_700_000_800, 800_008));
    capture::pcap(108, Precision::Micro, &frames(&sent, Link::Loop, 0x8000)?)
}

fn ipv6_ext_headers() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v6();
    let d = dialog(alice, bob, "ext6-5d2f@[2001:db8:a::10]", 0x60);
    let mut s = Script::new(Ts::micros(1_700_000_900, 90));
    call_flow(&mut s, &d, Dir::CallerToCallee);
    let routing0 = Ipv6Ext::Routing {
        routing_type: 0,
        addresses: vec!["2001:db8:ffff::1".parse()?],
    };
    let routing2 = Ipv6Ext::Routing {
        routing_type: 2,
        addresses: vec!["2001:db8:a::10".parse()?],
    };
    // One chain per message, from a single header to the full RFC 8200 §4.1 order.
    let chains = [
        vec![
            Ipv6Ext::HopByHop,
            routing0.clone(),
            Ipv6Ext::DestinationOptions,
        ],
        vec![Ipv6Ext::HopByHop],
        vec![Ipv6Ext::DestinationOptions],
        vec![routing2],
        vec![routing0, Ipv6Ext::DestinationOptions],
        vec![Ipv6Ext::HopByHop, Ipv6Ext::DestinationOptions],
        vec![],
    ];
    let frames = frames_with_ext(&s.sent, Link::Ethernet(&[]), 0, |i| {
        chains.get(i).cloned().unwrap_or_default()
    })?;
    capture::pcap(1, Precision::Micro, &frames)
}

fn compact_headers() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v4();
    let fwd = Dir::CallerToCallee;
    let mut s = Script::new(Ts::micros(1_700_001_000, 1_000));

    let d = dialog(
        alice.clone(),
        bob.clone(),
        "compact-i-77f0@atlanta.example.com",
        0xc0,
    );
    s.at(
        0,
        d.route(fwd),
        d.request("MESSAGE", 5, fwd, false)
            .header("Supported", "100rel")
            .body("text/plain", "compact form")
            .compact(),
    );
    s.at(
        1_900,
        d.reply_route(fwd),
        d.response(200, "OK", "MESSAGE", 5, fwd, true).compact(),
    );

    let d = dialog(alice, bob, "lower-3e1a@atlanta.example.com", 0xc1);
    s.at(
        100_000,
        d.route(fwd),
        d.request("OPTIONS", 9, fwd, false).lowercase_names(),
    );
    s.at(
        101_500,
        d.reply_route(fwd),
        d.response(404, "Not Found", "OPTIONS", 9, fwd, true)
            .lowercase_names(),
    );
    capture::pcap(
        1,
        Precision::Micro,
        &frames(&s.sent, Link::Ethernet(&[]), 0x0c00)?,
    )
}

fn lf_only() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v4();
    let d = dialog(alice, bob, "lf-only-0b7e@atlanta.example.com", 0x0a);
    let mut s = Script::new(Ts::micros(1_700_001_100, 0));
    s.style = Message::lf_only;
    call_flow(&mut s, &d, Dir::CallerToCallee);
    capture::pcap(
        1,
        Precision::Micro,
        &frames(&s.sent, Link::Ethernet(&[]), 0x0a00)?,
    )
}

fn non_utf8() -> anyhow::Result<Vec<u8>> {
    let (mut jose, bob) = alice_bob_v4();
    // "José" in Latin-1: 0xE9 is not valid UTF-8 on its own.
    jose.display = b"Jos\xe9 Mar\xeda".to_vec();
    jose.aor = "sip:jose@atlanta.example.com".into();
    let d = dialog(jose, bob, "latin1-e9@atlanta.example.com", 0xe9);
    let fwd = Dir::CallerToCallee;
    let mut s = Script::new(Ts::micros(1_700_001_200, 123_456));
    s.at(
        0,
        d.route(fwd),
        d.request("MESSAGE", 1, fwd, false)
            .body("application/octet-stream", b"bin\x00ary\x00\xff\xfe body"),
    );
    s.at(
        654,
        d.reply_route(fwd),
        d.response(200, "OK", "MESSAGE", 1, fwd, true),
    );
    s.at(
        50_000,
        d.route(fwd),
        d.request("OPTIONS", 2, fwd, false)
            .header("Subject", b"caf\xe9"),
    );
    s.at(
        50_999,
        d.reply_route(fwd),
        d.response(200, "OK", "OPTIONS", 2, fwd, true),
    );
    capture::pcap(
        1,
        Precision::Micro,
        &frames(&s.sent, Link::Ethernet(&[]), 0x0e90)?,
    )
}

fn nonstandard_ports() -> anyhow::Result<Vec<u8>> {
    let a = Party::new(
        "",
        "sip:carol@chicago.example.com",
        addr("192.0.2.40:15060"),
    );
    let b = Party::new(
        "",
        "sip:dave@denver.example.com",
        addr("198.51.100.41:5999"),
    );
    let d = dialog(a, b, "ports-15060-5999@chicago.example.com", 0x5999);
    let mut s = Script::new(Ts::micros(1_700_001_300, 300_000));
    call_flow(&mut s, &d, Dir::CalleeToCaller);
    let a = Party::new("", "sip:erin@example.org", addr("203.0.113.7:40000"));
    let b = Party::new("", "sip:frank@example.org", addr("203.0.113.8:40002"));
    let d = dialog(a, b, "ports-40000-40002@example.org", 0x4000);
    options_ping(&mut s, &d, 20_000_000, 3);
    capture::pcap(
        1,
        Precision::Micro,
        &frames(&s.sent, Link::Ethernet(&[]), 0x1506)?,
    )
}

fn pcapng_ethernet() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v4();
    let d = dialog(alice, bob, "pcapng-cancel-3c@atlanta.example.com", 0xa9);
    let fwd = Dir::CallerToCallee;
    let mut s = Script::new(Ts::micros(1_700_001_400, 400_004));
    let offer = sdp("alice", 99, d.caller.addr, 49_180);
    s.at(
        0,
        d.route(fwd),
        d.request("INVITE", 1, fwd, false)
            .body("application/sdp", offer),
    );
    s.at(
        1_234,
        d.reply_route(fwd),
        d.response(100, "Trying", "INVITE", 1, fwd, false),
    );
    s.at(
        80_000,
        d.reply_route(fwd),
        d.response(183, "Session Progress", "INVITE", 1, fwd, true)
            .body("application/sdp", sdp("bob", 100, d.callee.addr, 3_460)),
    );
    s.at(3_000_000, d.route(fwd), d.request("CANCEL", 1, fwd, false));
    s.at(
        3_000_900,
        d.reply_route(fwd),
        d.response(200, "OK", "CANCEL", 1, fwd, true),
    );
    s.at(
        3_001_100,
        d.reply_route(fwd),
        d.response(487, "Request Terminated", "INVITE", 1, fwd, true),
    );
    s.at(3_001_600, d.route(fwd), d.request("ACK", 1, fwd, true));
    capture::pcapng(1, "eth0", &frames(&s.sent, Link::Ethernet(&[]), 0x0a90)?)
}

fn nanosecond() -> anyhow::Result<Vec<u8>> {
    let bob = Party::new(
        "Bob",
        "sip:bob@biloxi.example.com",
        addr("203.0.113.55:5060"),
    );
    let registrar = Party::new("", "sip:bob@biloxi.example.com", addr("198.51.100.1:5060"));
    let d = dialog(bob, registrar, "nano-register-1@203.0.113.55", 0x9);
    let mut s = Script::new(Ts::micros(1_700_001_500, 0));
    register_flow(&mut s, &d, 0);
    // Sub-microsecond parts that truncation and rounding to microseconds tell apart; the
    // last one would round up into the next second.
    let nanos = [123_456_789, 123_457_001, 500_000_500, 999_999_999];
    for (sent, n) in s.sent.iter_mut().zip(nanos) {
        sent.ts.nanos = n;
    }
    capture::pcap(
        1,
        Precision::Nano,
        &frames(&s.sent, Link::Ethernet(&[]), 0x0900)?,
    )
}

fn keepalive_junk() -> anyhow::Result<Vec<u8>> {
    let ua = addr("192.0.2.77:5060");
    let proxy = addr("198.51.100.1:5060");
    let a = Party::new("", "sip:ua77@example.net", ua);
    let b = Party::new("", "sip:proxy@example.net", proxy);
    let d = dialog(a, b, "ka-junk-1@192.0.2.77", 0x77);
    let mut s = Script::new(Ts::micros(1_700_001_600, 600_000));
    // RFC 5626 §4.4.1 CRLF keep-alive ping and its CRLF pong.
    s.raw(0, (ua, proxy), b"\r\n\r\n".to_vec());
    s.raw(400, (proxy, ua), b"\r\n".to_vec());
    // Keep-alives some phones send instead, and stray bytes.
    s.raw(1_000, (ua, proxy), b"hello".to_vec());
    s.raw(2_000, (ua, proxy), vec![0; 4]);
    s.raw(3_000, (ua, proxy), b"jaK\r\n".to_vec());
    // SIP-like, but not a start line hepcap accepts: no URI, wrong version, no version.
    s.raw(
        4_000,
        (ua, proxy),
        b"OPTIONS SIP/2.0\r\nCall-ID: junk-no-uri\r\nCSeq: 1 OPTIONS\r\n\r\n".to_vec(),
    );
    s.raw(
        5_000,
        (ua, proxy),
        b"SIP/3.0 200 OK\r\nCall-ID: junk-v3\r\nCSeq: 1 OPTIONS\r\n\r\n".to_vec(),
    );
    s.raw(6_000, (ua, proxy), b"SIP/2.0\r\n\r\n".to_vec());
    options_ping(&mut s, &d, 10_000, 42);
    capture::pcap(
        1,
        Precision::Micro,
        &frames(&s.sent, Link::Ethernet(&[]), 0x0770)?,
    )
}

fn unsupported_linktype() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v4();
    let d = dialog(alice, bob, "user0-147@atlanta.example.com", 0x147);
    let mut s = Script::new(Ts::micros(1_700_001_700, 147));
    options_ping(&mut s, &d, 0, 1);
    capture::pcap(
        147,
        Precision::Micro,
        &frames(&s.sent, Link::Ethernet(&[]), 0x0147)?,
    )
}

fn truncated_record() -> anyhow::Result<Vec<u8>> {
    let (alice, bob) = alice_bob_v4();
    let d = dialog(alice, bob, "truncated-4b@atlanta.example.com", 0x7c);
    let mut s = Script::new(Ts::micros(1_700_001_800, 800_000));
    options_ping(&mut s, &d, 0, 1);
    let mut bytes = capture::pcap(
        1,
        Precision::Micro,
        &frames(&s.sent, Link::Ethernet(&[]), 0x07c0)?,
    )?;
    // Cut the last record in the middle of its SIP payload: the record header promises more
    // bytes than the file holds, as when a capture is copied while still being written.
    let last_len = s.sent.last().map_or(0, |l| l.payload.len());
    bytes.truncate(bytes.len() - last_len / 2);
    Ok(bytes)
}

fn not_a_capture() -> anyhow::Result<Vec<u8>> {
    Ok(b"This is not a capture file.\n\
         It has a .pcap name so that tools which trust the extension are caught out.\n\
         INVITE sip:bob@biloxi.example.com SIP/2.0\n"
        .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let first = all().unwrap();
        let second = all().unwrap();
        assert_eq!(first.len(), second.len());
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(a.name, b.name);
            assert!(a.bytes == b.bytes, "{} differs between runs", a.name);
        }
    }
}
