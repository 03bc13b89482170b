//! `hepcap check`: what this host supports, each item a plain yes or no with the reason.
//!
//! The capture modes are checked by doing what start-up does, short of attaching: load the
//! embedded object (the kernel's verifier runs), open a libpcap handle. A probe that only
//! looked at kernel versions would miss a locked-down sysctl or a missing capability.

use aya::maps::MapType;
use aya::programs::ProgramType;
use serde::Serialize;

use super::{LiveOptions, Mode, privilege};

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub name: String,
    pub ok: bool,
    /// Why not, or a detail worth knowing when it works.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
}

fn item(name: impl Into<String>, ok: bool, why: impl Into<String>) -> Item {
    Item {
        name: name.into(),
        ok,
        why: why.into(),
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kernel: String,
    pub items: Vec<Item>,
}

impl Report {
    /// The item called `name`.
    pub fn get(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.name == name)
    }

    /// Text for a terminal: one aligned line per item.
    pub fn to_text(&self) -> String {
        let mut out = format!("{:<28} {}\n", "kernel", self.kernel);
        for i in &self.items {
            let verdict = if i.ok { "yes" } else { "no" };
            if i.why.is_empty() {
                out.push_str(&format!("{:<28} {verdict}\n", i.name));
            } else {
                out.push_str(&format!("{:<28} {verdict:<4} {}\n", i.name, i.why));
            }
        }
        out
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// Probes the host. `opts` gives the SIP ports and sizes the modes would use.
pub fn run(opts: &LiveOptions) -> Report {
    let mut items = Vec::new();
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux");
    items.push(if btf.exists() {
        item("btf", true, "/sys/kernel/btf/vmlinux")
    } else {
        item(
            "btf",
            false,
            "no /sys/kernel/btf/vmlinux (kernel built without CONFIG_DEBUG_INFO_BTF)",
        )
    });
    let built = super::ebpf::object();
    items.push(match &built {
        Ok(_) => item("ebpf_programs_built_in", true, ""),
        Err(e) => item("ebpf_programs_built_in", false, e.to_string()),
    });
    for (mode, caps) in [("ebpf", "ebpf"), ("xdp", "xdp"), ("pcap", "pcap")] {
        for h in privilege::check(caps) {
            let name = format!("capability_{}", h.cap.to_string().to_lowercase());
            if items.iter().any(|i| i.name == name) {
                continue;
            }
            items.push(item(
                name,
                h.held,
                if h.held {
                    String::new()
                } else {
                    format!("needed by {mode} capture")
                },
            ));
        }
    }
    for (name, ty) in [
        ("program_socket_filter", ProgramType::SocketFilter),
        ("program_xdp", ProgramType::Xdp),
    ] {
        items.push(match aya::sys::is_program_supported(ty) {
            Ok(true) => item(name, true, ""),
            Ok(false) => item(name, false, "the kernel refuses this program type"),
            Err(e) => item(name, false, e.to_string()),
        });
    }
    for (name, ty) in [
        ("map_perf_event_array", MapType::PerfEventArray),
        ("map_lru_hash", MapType::LruHash),
        ("map_percpu_array", MapType::PerCpuArray),
        ("map_array", MapType::Array),
    ] {
        items.push(match aya::sys::is_map_supported(ty) {
            Ok(true) => item(name, true, ""),
            Ok(false) => item(name, false, "the kernel refuses this map type"),
            Err(e) => item(name, false, e.to_string()),
        });
    }
    items.push(mode_ebpf(opts, false));
    items.push(mode_ebpf(opts, true));
    items.push(mode_pcap(opts));
    Report {
        kernel: kernel_release(),
        items,
    }
}

/// Loads the object and the program through the verifier, without attaching it.
fn mode_ebpf(opts: &LiveOptions, xdp: bool) -> Item {
    let (name, mode) = if xdp {
        ("mode_xdp", "xdp")
    } else {
        ("mode_ebpf", "ebpf")
    };
    if let Err(e) = super::ebpf::object() {
        return item(name, false, e.to_string());
    }
    if let Some(why) = privilege::missing(mode) {
        return item(name, false, why);
    }
    let mut bpf = match super::ebpf::load(opts) {
        Ok(b) => b,
        Err(e) => return item(name, false, e.to_string()),
    };
    let loaded = if xdp {
        super::ebpf::load_program::<aya::programs::Xdp>(&mut bpf, hepcap_common::PROG_XDP)
            .map(|_| "needs --interface; native mode where the driver has it, else generic")
    } else {
        super::ebpf::load_program::<aya::programs::SocketFilter>(
            &mut bpf,
            hepcap_common::PROG_SOCKET,
        )
        .map(|_| "the verifier accepted the socket filter")
    };
    match loaded {
        Ok(detail) => item(name, true, detail),
        Err(e) => item(name, false, e.to_string()),
    }
}

fn mode_pcap(opts: &LiveOptions) -> Item {
    if let Some(why) = privilege::missing(Mode::Pcap.as_str()) {
        return item("mode_pcap", false, why);
    }
    let probe = LiveOptions {
        interfaces: Vec::new(),
        ..opts.clone()
    };
    match super::pcap_live::open(&probe, &[]) {
        Ok(_) => item(
            "mode_pcap",
            true,
            "libpcap opened the 'any' device with the generated filter",
        ),
        Err(e) => item("mode_pcap", false, e.to_string()),
    }
}
