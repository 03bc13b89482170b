//! Shared helpers for the end-to-end tests in `tests/tests/`: where the `hepcap` binary and the
//! captures are, and how to run it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Root of the workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// `pcaps/` of the workspace.
pub fn pcaps_dir() -> PathBuf {
    workspace_root().join("pcaps")
}

/// The shared capture corpus (`../shared/pcaps`), read-only in CI.
pub fn shared_dir() -> PathBuf {
    workspace_root().join("../shared")
}

/// Scratch directory under `target/` (writable in CI, unlike `../shared`).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = target_dir().join("e2e-scratch").join(name);
    std::fs::create_dir_all(&dir).expect("create scratch dir under target/");
    dir
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Path of a freshly built debug `hepcap` binary. Cargo does not hand another package's binary
/// to integration tests, so the first caller builds it (a no-op when it is up to date).
pub fn hepcap_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "hepcap", "--bin", "hepcap"])
            .status()
            .expect("run cargo build for the hepcap binary");
        assert!(status.success(), "cargo build -p hepcap failed");
        let bin = target_dir().join("debug").join("hepcap");
        assert!(bin.exists(), "hepcap binary missing at {}", bin.display());
        bin
    })
}

/// A `Command` for the hepcap binary.
pub fn hepcap() -> Command {
    Command::new(hepcap_bin())
}

/// Fails the test with a clear message when an external tool is missing.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "prerequisite missing: `{name}` is not installed (run .ci/run or install it)"
    );
}
