//! The per-packet path on one core: link → IP → UDP → SIP scan → HEP encode.
//!
//! Frames come from real captures (loaded once at start, SIP frames only) and from one generated
//! INVITE with SDP, the largest message of a call flow. Each iteration walks the whole set, so
//! throughput is in packets. Three variants:
//!
//! - `decode`: [`Decoder::decode`] alone (link, IP, UDP and the lazy SIP scan);
//! - `decode_encode`: decode, then [`HepEncoder::encode`] into one reused buffer; the record
//!   shares the frame's bytes (`Bytes::slice_ref`), so no payload is copied;
//! - `decode_record_encode`: the same through [`SipPacket::to_record`], which copies the payload
//!   once, as the replay pipeline does.
//!
//! Target (performance.md): decode + encode ≥ 1.5 M packets/s per core.
//!
//! `packet_path/…` is timed by the wall clock, as usual. `packet_path_cpu/…` repeats the two
//! decode + encode variants timed by the bench thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`):
//! on a shared machine the time the thread spends descheduled then does not count against the
//! per-core rate (caches shared with other work still do).
//!
//! Captures are looked up in the repository's `pcaps/` first, then in `../shared/pcaps/`; a set
//! whose capture is missing is skipped with a note on stderr.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hepcap::decode::{Decoder, DecoderConfig, LinkType, SipPacket};
use hepcap::hep::{HepEncoder, NodeIdentity};
use hepcap::record::{PROTO_SIP, Record, Source, Timestamp};
use hepcap::source::CaptureFile;

/// Captures whose SIP/UDP frames make up the real sets.
const CAPTURES: &[(&str, &str)] = &[
    ("ndpi_sip", "ndpi__sip.pcap"),
    ("asterisk_zfone_xlite", "sipnab__Asterisk_ZFONE_XLITE.pcap"),
    ("voip_extension", "sipcaptures__voip-extension.pcap"),
];

/// Frames of one set, all of one link type, each decoding as SIP.
struct FrameSet {
    name: String,
    link: LinkType,
    frames: Vec<Bytes>,
}

fn find_capture(file: &str) -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        manifest.join("../pcaps").join(file),
        manifest.join("../../shared/pcaps").join(file),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Loads the frames of `file` that decode as SIP.
fn load_capture(name: &str, file: &str) -> Option<FrameSet> {
    let Some(path) = find_capture(file) else {
        eprintln!("packet_path: {file} not found, skipping set {name}");
        return None;
    };
    let mut capture = match CaptureFile::open(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("packet_path: skipping set {name}: {e}");
            return None;
        }
    };
    let link = capture.link_type();
    let mut frames = Vec::new();
    let mut decoder = Decoder::new(DecoderConfig::default());
    while let Some(Ok(frame)) = capture.next_frame() {
        // SIP over UDP only: frames that decode alone, without reassembly state.
        let mut udp = false;
        let _ = decoder.decode(link, frame.ts, frame.data, &mut |p, _| {
            udp = p.transport == hepcap::record::Transport::UDP;
        });
        if udp {
            frames.push(Bytes::copy_from_slice(frame.data));
        }
    }
    if frames.is_empty() {
        eprintln!("packet_path: no SIP frames in {file}, skipping set {name}");
        return None;
    }
    Some(FrameSet {
        name: name.to_string(),
        link,
        frames,
    })
}

/// An Ethernet/IPv4/UDP frame carrying a typical INVITE with an SDP offer (~900 bytes).
fn generated_invite() -> FrameSet {
    let sdp = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 9 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";
    let sip = format!(
        "INVITE sip:+4930123456@pbx.example.net;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds.7f3c1a;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Smith\" <sip:alice@example.com>;tag=1928301774\r\n\
To: <sip:+4930123456@pbx.example.net;user=phone>\r\n\
Call-ID: a84b4c76e66710f2a6b5c3d1@192.0.2.10\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE, PRACK\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
User-Agent: Example-Phone/5.2.1 (build 4711)\r\n\
P-Asserted-Identity: \"Alice Smith\" <sip:alice@example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\
\r\n\
{sdp}",
        sdp.len()
    );
    let frame = udp_frame(
        Ipv4Addr::new(192, 0, 2, 10),
        Ipv4Addr::new(198, 51, 100, 20),
        5060,
        5060,
        sip.as_bytes(),
    );
    FrameSet {
        name: "generated_invite_sdp".to_string(),
        link: LinkType::Ethernet,
        frames: vec![Bytes::from(frame)],
    }
}

/// Ethernet II + IPv4 (no options, checksum computed) + UDP (checksum 0) around `payload`.
fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);

    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    f.extend_from_slice(&ip);

    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A record that shares `frame`'s bytes instead of copying the payload.
fn shared_record(frame: &Bytes, sip: SipPacket<'_>, ts: Timestamp) -> Record {
    Record {
        source: Source::Replay,
        ts,
        src: sip.src,
        dst: sip.dst,
        src_port: sip.src_port,
        dst_port: sip.dst_port,
        transport: sip.transport,
        vlan: sip.vlan,
        proto_type: PROTO_SIP,
        payload: frame.slice_ref(sip.payload),
        sip: Some(sip.sip),
    }
}

fn encoder() -> HepEncoder {
    HepEncoder::new(NodeIdentity {
        node_id: 2001,
        node_name: Some("hepcap-bench".to_string()),
        password: None,
    })
}

/// The benches of one frame set; `all` adds the decode-only and encode-only variants.
fn bench_set<M: Measurement>(c: &mut Criterion<M>, prefix: &str, set: &FrameSet, all: bool) {
    let mut group = c.benchmark_group(format!("{prefix}/{}", set.name));
    group.throughput(Throughput::Elements(set.frames.len() as u64));
    let link = set.link;
    let ts = Timestamp::from_parts(1_700_000_000, 123_456);
    let enc = encoder();

    let mut decoder = Decoder::new(DecoderConfig::default());
    if all {
        group.bench_function("decode", |b| {
            b.iter(|| {
                for frame in &set.frames {
                    let _ = black_box(decoder.decode(link, ts, black_box(frame), &mut |p, _| {
                        black_box(p);
                    }));
                }
            })
        });
    }

    group.bench_function("decode_encode", |b| {
        let mut out = Vec::with_capacity(2048);
        b.iter(|| {
            for frame in &set.frames {
                out.clear();
                let _ = decoder.decode(link, ts, black_box(frame), &mut |sip, ts| {
                    let record = shared_record(frame, sip, ts);
                    let _ = black_box(enc.encode(&record, &mut out));
                });
            }
        })
    });

    group.bench_function("decode_record_encode", |b| {
        let mut out = Vec::with_capacity(2048);
        b.iter(|| {
            for frame in &set.frames {
                out.clear();
                let _ = decoder.decode(link, ts, black_box(frame), &mut |sip, ts| {
                    let record = sip.to_record(ts, Source::Replay);
                    let _ = black_box(enc.encode(&record, &mut out));
                });
            }
        })
    });

    if !all {
        group.finish();
        return;
    }
    // Encode alone, on records built beforehand: what the sink pays per record.
    group.bench_function("encode", |b| {
        let mut records: Vec<Record> = Vec::new();
        for f in &set.frames {
            let _ = decoder.decode(link, ts, f, &mut |sip, ts| {
                records.push(sip.to_record(ts, Source::Replay));
            });
        }
        let mut out = Vec::with_capacity(2048);
        b.iter(|| {
            for record in &records {
                out.clear();
                let _ = black_box(enc.encode(black_box(record), &mut out));
            }
        })
    });
    group.finish();
}

fn frame_sets() -> Vec<FrameSet> {
    let mut sets: Vec<FrameSet> = CAPTURES
        .iter()
        .filter_map(|(name, file)| load_capture(name, file))
        .collect();
    sets.push(generated_invite());
    sets
}

fn packet_path(c: &mut Criterion) {
    for set in &frame_sets() {
        bench_set(c, "packet_path", set, true);
    }
}

fn packet_path_cpu(c: &mut Criterion<ThreadCpuTime>) {
    for set in &frame_sets() {
        bench_set(c, "packet_path_cpu", set, false);
    }
}

/// CPU time of the calling thread in nanoseconds, formatted like wall time.
#[derive(Debug, Default)]
struct ThreadCpuTime;

/// Lends its nanosecond formatter to [`ThreadCpuTime`].
static WALL: WallTime = WallTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec the call writes into.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(
        r, 0,
        "clock_gettime(CLOCK_THREAD_CPUTIME_ID) is available on Linux"
    );
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

criterion_group!(benches, packet_path);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = packet_path_cpu
}
criterion_main!(benches, cpu);
