//! What every benchmark needs: a release build of hepcap, and CPU and memory readings of a
//! thread or a process from the kernel.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

/// `cargo build --release -p hepcap --bin hepcap` (unless `no_build`), then the path of the
/// binary. `who` names the benchmark in the progress line.
pub fn build_hepcap(
    who: &str,
    root: &Path,
    target: &Path,
    no_build: bool,
) -> anyhow::Result<PathBuf> {
    if !no_build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("{who}: cargo build --release -p hepcap");
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "hepcap", "--bin", "hepcap"])
            .current_dir(root)
            .status()
            .context("run cargo build")?;
        if !status.success() {
            bail!("cargo build --release -p hepcap failed: {status}");
        }
    }
    let bin = target.join("release/hepcap");
    if !bin.is_file() {
        bail!("{} not found", bin.display());
    }
    Ok(bin)
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain old data; all-zero is a valid value.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// utime + stime of a process, from /proc/PID/stat (in clock ticks, usually 10 ms).
pub fn proc_stat_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are fixed.
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "(comm) ".
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Peak resident set (VmHWM) of a process, KiB.
pub fn proc_vm_hwm(pid: u32) -> Option<u64> {
    let f = File::open(format!("/proc/{pid}/status")).ok()?;
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("VmHWM:")?
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse()
                .ok()
        })
}

/// CPUs online now.
pub fn online_cpus() -> i64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }
}
