//! Where things are: the workspace root, `pcaps/`, the shared corpus, the capture files.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Root of the workspace (the parent of `xtask/`).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `pcaps/` of the workspace: committed captures, synthetic and copied.
pub fn pcaps_dir() -> PathBuf {
    root().join("pcaps")
}

/// `pcaps/expected/`: tshark's rows per capture, committed.
pub fn expected_dir() -> PathBuf {
    pcaps_dir().join("expected")
}

/// The shared, read-only capture corpus next to the workspace.
pub fn shared_pcaps_dir() -> PathBuf {
    root().join("../shared/pcaps")
}

/// Capture files directly in `dir` (by extension), sorted by name for a stable order.
pub fn captures_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let is_capture = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "pcap" | "pcapng" | "cap"));
        if is_capture && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The file name of `path` as text (captures are named in ASCII).
pub fn file_name(path: &Path) -> anyhow::Result<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("file name of {}", path.display()))
}
