//! Frames built by hand (and with etherparse's builder) through the whole decode path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::PacketBuilder;

use super::*;

/// The first message of a frame through a fresh decoder, owned.
fn decode_frame(link: LinkType, frame: &[u8]) -> Result<Owned, SkipReason> {
    let mut decoder = Decoder::new(DecoderConfig::default());
    let mut first = None;
    decoder.decode(link, Timestamp(1), frame, &mut |p, _| {
        first.get_or_insert_with(|| Owned::from(&p));
    })?;
    Ok(first.expect("a message when decode returns Ok"))
}

/// An owned [`SipPacket`] for comparisons.
#[derive(Debug)]
struct Owned {
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    vlan: Option<u16>,
    payload: Vec<u8>,
    record: Record,
}

impl From<&SipPacket<'_>> for Owned {
    fn from(p: &SipPacket<'_>) -> Self {
        Owned {
            src: p.src,
            dst: p.dst,
            src_port: p.src_port,
            dst_port: p.dst_port,
            vlan: p.vlan,
            payload: p.payload.to_vec(),
            record: p.to_record(Timestamp(5), Source::Replay),
        }
    }
}

const SIP: &[u8] =
    b"REGISTER sip:example.com SIP/2.0\r\nCall-ID: reg-1@h\r\nCSeq: 7 REGISTER\r\n\r\n";

fn eth_udp_v4(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5062, 5060);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

#[test]
fn ipv4_udp_sip() {
    let f = eth_udp_v4(SIP);
    let p = decode_frame(LinkType::Ethernet, &f).unwrap();
    assert_eq!(p.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(p.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!((p.src_port, p.dst_port), (5062, 5060));
    assert_eq!(p.payload, SIP.to_vec());
    assert_eq!(p.vlan, None);
    let r = p.record;
    assert_eq!(r.call_id(), Some(&b"reg-1@h"[..]));
    assert_eq!(r.method(), Some(&b"REGISTER"[..]));
    assert_eq!(r.cseq(), Some((7, &b"REGISTER"[..])));
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut f = eth_udp_v4(b"SIP/2.0 200 OK\r\n\r\n");
    f.extend_from_slice(&[0; 20]);
    let p = decode_frame(LinkType::Ethernet, &f).unwrap();
    assert_eq!(p.payload, b"SIP/2.0 200 OK\r\n\r\n".to_vec());
}

/// IPv6 with hop-by-hop and destination-options extension headers before UDP.
#[test]
fn ipv6_extension_headers() {
    let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let dst = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    let udp_len = (8 + SIP.len()) as u16;
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(udp_len + 16).to_be_bytes());
    ip.extend_from_slice(&[0, 64]); // next header: hop-by-hop
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop → dest options, PadN
    ip.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // dest options → UDP
    ip.extend_from_slice(&[0x13, 0xc4, 0x13, 0xc4]);
    ip.extend_from_slice(&udp_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(SIP);
    let p = decode_frame(LinkType::Ipv6, &ip).unwrap();
    assert_eq!(p.src, IpAddr::V6(src));
    assert_eq!(p.dst, IpAddr::V6(dst));
    assert_eq!(p.payload, SIP.to_vec());
    assert_eq!(
        decode_frame(LinkType::Raw, &ip).unwrap().payload,
        SIP.to_vec()
    );
}

#[test]
fn fragments_tcp_and_others_are_counted() {
    let mut f = eth_udp_v4(SIP);
    f[14 + 6] = 0x20; // more fragments: held until the rest arrives
    assert_eq!(
        decode_frame(LinkType::Ethernet, &f).err(),
        Some(SkipReason::FragmentHeld)
    );

    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(5060, 5060, 1, 1000);
    let mut t = Vec::new();
    b.write(&mut t, SIP).unwrap();
    // TCP on 5060 is SIP: the stream is picked up, and this segment is the whole message.
    assert_eq!(
        decode_frame(LinkType::Ethernet, &t).unwrap().payload,
        SIP.to_vec()
    );

    assert_eq!(
        decode_frame(LinkType::Ethernet, &eth_udp_v4(b"hello")).err(),
        Some(SkipReason::NonSipUdp)
    );
    let rtcp = [0x81, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0];
    assert_eq!(
        decode_frame(LinkType::Ethernet, &eth_udp_v4(&rtcp)).err(),
        Some(SkipReason::Rtcp)
    );

    let mut arp = vec![0u8; 12];
    arp.extend_from_slice(&[0x08, 0x06, 0, 1]);
    assert_eq!(
        decode_frame(LinkType::Ethernet, &arp).err(),
        Some(SkipReason::NonIp)
    );
}

#[test]
fn every_truncation_is_a_skip() {
    let f = eth_udp_v4(SIP);
    for n in 0..f.len() {
        let r = decode_frame(LinkType::Ethernet, &f[..n]);
        assert!(
            matches!(r, Err(SkipReason::Truncated | SkipReason::MalformedIp)),
            "length {n}: {r:?}"
        );
    }
    assert!(decode_frame(LinkType::Ethernet, &f).is_ok());
}

/// Every message of a frame with its timestamp and transport.
fn decode_all(d: &mut Decoder, ts: u64, frame: &[u8]) -> Vec<(u64, Transport, Vec<u8>)> {
    let mut out = Vec::new();
    let _ = d.decode(LinkType::Ethernet, Timestamp(ts), frame, &mut |p, t| {
        out.push((t.0, p.transport, p.payload.to_vec()))
    });
    out
}

fn eth_tcp_v4(seq: u32, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40_000, 5060, seq, 1000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

const OPTIONS_TCP: &[u8] =
    b"OPTIONS sip:b SIP/2.0\r\nCall-ID: t-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

/// Two messages completed by one segment: the second gets the next microsecond.
#[test]
fn tcp_messages_of_one_segment_get_increasing_microseconds() {
    let mut d = Decoder::new(DecoderConfig::default());
    let first = &OPTIONS_TCP[..10];
    assert!(decode_all(&mut d, 100, &eth_tcp_v4(1, first)).is_empty());
    let mut rest = OPTIONS_TCP[10..].to_vec();
    rest.extend_from_slice(SIP);
    let got = decode_all(&mut d, 200, &eth_tcp_v4(11, &rest));
    assert_eq!(
        got,
        vec![
            (200, Transport::TCP, OPTIONS_TCP.to_vec()),
            (201, Transport::TCP, SIP.to_vec())
        ]
    );
}

/// A TCP stream on a port outside --sip-ports is SIP when its first payload is a start line;
/// other TCP there is not.
#[test]
fn tcp_off_port_needs_a_start_line() {
    let mut d = Decoder::new(DecoderConfig {
        sip_ports: "6060".parse().unwrap(),
        ..DecoderConfig::default()
    });
    assert_eq!(decode_all(&mut d, 1, &eth_tcp_v4(1, OPTIONS_TCP)).len(), 1);
    let mut f = eth_tcp_v4(1, b"GET / HTTP/1.1\r\n\r\n");
    f[14 + 20 + 1] = 0x41; // another source port: another flow
    let mut d2 = Decoder::new(DecoderConfig {
        sip_ports: "6060".parse().unwrap(),
        ..DecoderConfig::default()
    });
    assert_eq!(
        d2.decode(LinkType::Ethernet, Timestamp(1), &f, &mut |_, _| {}),
        Err(SkipReason::NonSipTcp)
    );
}

/// An IPv4 datagram in two fragments, last first: the record has the completing fragment's
/// time.
#[test]
fn ipv4_fragments_reassemble_with_the_last_fragment_time() {
    let whole = eth_udp_v4(SIP);
    let ip = &whole[14..];
    let payload = &ip[20..];
    let frag = |offset: usize, more: bool, data: &[u8]| {
        let mut f = whole[..14].to_vec();
        let mut h = ip[..20].to_vec();
        h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        let word = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&word.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(data);
        f
    };
    let mut d = Decoder::new(DecoderConfig::default());
    let last = frag(16, false, &payload[16..]);
    let first = frag(0, true, &payload[..16]);
    assert!(decode_all(&mut d, 10, &last).is_empty());
    let got = decode_all(&mut d, 20, &first);
    assert_eq!(got, vec![(20, Transport::UDP, SIP.to_vec())]);
    assert_eq!(d.stats().defrag.completed, 1);
}
