//! The kernel side of live capture: decide per packet whether it is SIP or RTCP and, if so,
//! copy it with its metadata to the EVENTS perf ring. Nothing here changes or drops host
//! traffic: the socket filter returns 0 (its own socket queues nothing; other sockets are not
//! affected) and the XDP program always returns XDP_PASS.
#![no_std]
#![no_main]

mod classify;

use aya_ebpf::EbpfContext;
use aya_ebpf::bindings::xdp_action::XDP_PASS;
use aya_ebpf::macros::{map, socket_filter, xdp};
use aya_ebpf::maps::{Array, LruHashMap, PerCpuArray, PerfEventArray};
use aya_ebpf::programs::{SkBuffContext, XdpContext};
use hepcap_common::{
    Config, EventHeader, ORIGIN_SOCKET, ORIGIN_XDP, PACKET_OUTGOING, RtcpKey, counter,
};

use classify::{Packet, Verdict};

#[map(name = "EVENTS")]
static EVENTS: PerfEventArray<EventHeader> = PerfEventArray::new(0);

/// One byte per port: non-zero when the port carries SIP.
#[map(name = "SIP_PORTS")]
static SIP_PORTS: Array<u8> = Array::with_max_entries(65_536, 0);

/// RTCP endpoints learnt from SDP by user space; the value is unused (user space keeps expiry).
#[map(name = "RTCP")]
static RTCP: LruHashMap<RtcpKey, u8> =
    LruHashMap::with_max_entries(hepcap_common::RTCP_MAP_ENTRIES, 0);

#[map(name = "CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// When the last SIP packet was copied (`bpf_ktime_get_ns`), for `Config::rtcp_recent_ms`.
#[map(name = "LAST_SIP")]
static LAST_SIP: Array<u64> = Array::with_max_entries(1, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[inline(always)]
fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no other writer while this program runs on this CPU.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn config() -> Config {
    CONFIG.get(0).copied().unwrap_or(Config {
        snaplen: 65_535,
        lo_ifindex: 0,
        flags: 0,
        rtcp_recent_ms: 0,
    })
}

/// Copies the packet's first `cap_len` bytes after `header` into the perf ring.
#[inline(always)]
fn emit<C: EbpfContext>(ctx: &C, header: &EventHeader) {
    let flags = (u64::from(header.cap_len) << 32) | aya_ebpf::bindings::BPF_F_CURRENT_CPU;
    // SAFETY: the map pointer is the EVENTS definition; `header` lives across the call and
    // its size is passed; the kernel appends `cap_len` bytes of the packet itself.
    let ret = unsafe {
        aya_ebpf::helpers::generated::bpf_perf_event_output(
            ctx.as_ptr(),
            core::ptr::addr_of!(EVENTS).cast_mut().cast(),
            flags,
            core::ptr::from_ref(header).cast_mut().cast(),
            core::mem::size_of::<EventHeader>() as u64,
        )
    };
    if ret != 0 {
        count(counter::OUTPUT_FAILED);
    }
}

#[inline(always)]
fn record(verdict: Verdict) -> Option<u8> {
    match verdict {
        Verdict::Skip => None,
        Verdict::Hep => {
            count(counter::HEP);
            None
        }
        Verdict::Unparsed => {
            count(counter::UNPARSED);
            None
        }
        Verdict::Copy(m) => {
            if m == hepcap_common::MATCH_SIP_PORT || m == hepcap_common::MATCH_SIP_CONTENT {
                if let Some(slot) = LAST_SIP.get_ptr_mut(0) {
                    // SAFETY: a plain u64 slot; a racing writer on another CPU stores a time
                    // just as recent.
                    unsafe { *slot = aya_ebpf::helpers::generated::bpf_ktime_get_ns() };
                }
            }
            count(match m {
                hepcap_common::MATCH_SIP_PORT | hepcap_common::MATCH_SIP_CONTENT => counter::SIP,
                hepcap_common::MATCH_FRAGMENT => counter::FRAGMENTS,
                _ => counter::RTCP,
            });
            Some(m)
        }
    }
}

impl Packet for SkBuffContext {
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        SkBuffContext::load(self, offset).ok()
    }
    #[inline(always)]
    fn len(&self) -> u32 {
        SkBuffContext::len(self)
    }
}

impl Packet for XdpContext {
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        let mut value = core::mem::MaybeUninit::<T>::uninit();
        // SAFETY: the helper writes exactly size_of::<T>() bytes into `value` or fails.
        let ret = unsafe {
            aya_ebpf::helpers::generated::bpf_xdp_load_bytes(
                self.ctx,
                offset as u32,
                value.as_mut_ptr().cast(),
                core::mem::size_of::<T>() as u32,
            )
        };
        // SAFETY: initialised by the successful helper call.
        (ret == 0).then(|| unsafe { value.assume_init() })
    }
    #[inline(always)]
    fn len(&self) -> u32 {
        (self.data_end() - self.data()) as u32
    }
}

fn sip_port(port: u16) -> bool {
    SIP_PORTS.get(u32::from(port)).is_some_and(|v| *v != 0)
}

fn recent_sip(cfg: &Config) -> bool {
    if cfg.rtcp_recent_ms == 0 {
        return false;
    }
    let Some(last) = LAST_SIP.get(0).copied() else {
        return false;
    };
    // SAFETY: helper without arguments.
    let now = unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_ns() };
    last != 0 && now.saturating_sub(last) < u64::from(cfg.rtcp_recent_ms) * 1_000_000
}

fn rtcp_endpoint(key: &RtcpKey) -> bool {
    // SAFETY: the value is only tested for presence, never read through the pointer.
    unsafe { RTCP.get(key).is_some() }
}

#[socket_filter]
pub fn hepcap_socket(ctx: SkBuffContext) -> i64 {
    count(counter::SEEN);
    let cfg = config();
    // SAFETY: reading plain fields of the context the kernel handed us.
    let (ifindex, pkt_type) = unsafe { ((*ctx.skb.skb).ifindex, (*ctx.skb.skb).pkt_type as u8) };
    if cfg.lo_ifindex != 0 && ifindex == cfg.lo_ifindex && pkt_type == PACKET_OUTGOING {
        count(counter::LO_OUTGOING);
        return 0;
    }
    let verdict = classify::classify(&ctx, &cfg, sip_port, rtcp_endpoint, recent_sip);
    if let Some(matched) = record(verdict) {
        let len = ctx.len();
        let header = EventHeader {
            // SAFETY: helper without arguments.
            ts_ns: unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_ns() },
            ifindex,
            orig_len: len,
            cap_len: if len < cfg.snaplen { len } else { cfg.snaplen },
            pkt_type,
            matched,
            origin: ORIGIN_SOCKET,
            _pad: 0,
        };
        emit(&ctx, &header);
    }
    // Socket filters return the bytes to queue on their own socket: none.
    0
}

#[xdp]
pub fn hepcap_xdp(ctx: XdpContext) -> u32 {
    count(counter::SEEN);
    let cfg = config();
    let verdict = classify::classify(&ctx, &cfg, sip_port, rtcp_endpoint, recent_sip);
    if let Some(matched) = record(verdict) {
        let len = Packet::len(&ctx);
        let header = EventHeader {
            // SAFETY: helper without arguments.
            ts_ns: unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_ns() },
            ifindex: ctx.ingress_ifindex() as u32,
            orig_len: len,
            cap_len: if len < cfg.snaplen { len } else { cfg.snaplen },
            pkt_type: 0,
            matched,
            origin: ORIGIN_XDP,
            _pad: 0,
        };
        emit(&ctx, &header);
    }
    XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
