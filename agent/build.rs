//! Builds the eBPF programs (`agent-ebpf/`) and embeds the object in the agent.
//!
//! The kernel side needs the nightly toolchain (`-Z build-std=core` for `bpfel-unknown-none`)
//! and bpf-linker; `scripts/setup.sh` installs both. When they are missing the agent still
//! builds: live capture then uses libpcap, and `hepcap check` and the eBPF modes say why.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("agent/ sits in the workspace")
        .to_path_buf();
    let ebpf = root.join("agent-ebpf");
    for dir in [
        "agent-ebpf/src",
        "agent-ebpf/Cargo.toml",
        "common/src",
        "common/Cargo.toml",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo::rerun-if-env-changed=HEPCAP_SKIP_EBPF");
    println!("cargo::rustc-check-cfg=cfg(hepcap_no_ebpf)");

    let out = PathBuf::from(env("OUT_DIR")).join("hepcap-ebpf.o");
    let result = if std::env::var_os("HEPCAP_SKIP_EBPF").is_some() {
        Err("HEPCAP_SKIP_EBPF was set when hepcap was built".to_string())
    } else {
        build(&root, &ebpf, &out)
    };
    match result {
        Ok(()) => {}
        Err(reason) => {
            println!(
                "cargo::warning=eBPF programs not built ({reason}); live capture will use libpcap"
            );
            println!("cargo::rustc-cfg=hepcap_no_ebpf");
            println!(
                "cargo::rustc-env=HEPCAP_EBPF_MISSING={}",
                reason.replace('\n', " ")
            );
            // An empty file keeps `include_bytes!` valid; it is never loaded.
            std::fs::write(&out, []).expect("write placeholder object");
        }
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"))
}

/// Runs `cargo build --release` for the eBPF crate with the nightly toolchain, in a target
/// directory of its own beside the workspace's, and copies the object to `out`.
fn build(root: &Path, ebpf: &Path, out: &Path) -> Result<(), String> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("bpf");
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "build", "--release", "--quiet"])
        .current_dir(ebpf);
    // The outer build's settings (its rustc, wrapper, flags, target) must not leak into the
    // cross build: clippy, for one, sets a rustc wrapper.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTDOC")
            || key == "RUSTFLAGS"
            || key == "RUSTUP_TOOLCHAIN"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.env("CARGO_TARGET_DIR", &target_dir);
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = stderr.lines().rev().take(6).collect();
        let hint = if stderr.contains("bpf-linker") {
            "bpf-linker is missing (scripts/setup.sh installs it)"
        } else if stderr.contains("rust-src") || stderr.contains("build-std") {
            "nightly rust-src is missing (scripts/setup.sh installs it)"
        } else if stderr.contains("toolchain") && stderr.contains("not installed") {
            "the nightly toolchain is missing"
        } else {
            "cargo build of agent-ebpf failed"
        };
        let detail: Vec<&str> = last.into_iter().rev().collect();
        return Err(format!("{hint}: {}", detail.join(" | ")));
    }
    let object = target_dir.join("bpfel-unknown-none/release/hepcap-ebpf");
    std::fs::copy(&object, out)
        .map(|_| ())
        .map_err(|e| format!("copy {}: {e}", object.display()))
}
