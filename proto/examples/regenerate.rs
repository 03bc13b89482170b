//! Regenerates `src/hep.rs` from `hep.proto` with prost-build, parsing the schema with protox
//! (pure Rust), so no `protoc` binary is needed:
//!
//! ```text
//! cargo run -p hepcap-proto --features codegen --example regenerate
//! ```
//!
//! With `--check` it only compares and exits non-zero when the committed file is stale.

use std::path::Path;

fn main() -> anyhow_free::Result {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = std::env::args().any(|a| a == "--check");

    let generated = generate(dir)?;
    let target = dir.join("src/hep.rs");
    if check {
        let committed = std::fs::read_to_string(&target)?;
        if committed != generated {
            eprintln!("{} is stale: run without --check", target.display());
            std::process::exit(1);
        }
        eprintln!("{} is current", target.display());
    } else {
        std::fs::write(&target, generated)?;
        eprintln!("wrote {}", target.display());
    }
    Ok(())
}

fn generate(dir: &Path) -> anyhow_free::Result<String> {
    let fds = protox::compile([dir.join("hep.proto")], [dir])?;
    let out = std::env::temp_dir().join(format!("hepcap-proto-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&out)?;
    prost_build::Config::new()
        // Text and payload fields as `Bytes`: decoding from a `Bytes` buffer then slices it
        // instead of copying.
        .bytes(["."])
        .out_dir(&out)
        .compile_fds(fds)?;
    let body = std::fs::read_to_string(out.join("hep.rs"))?;
    std::fs::remove_dir_all(&out)?;
    Ok(format!(
        "// @generated from hep.proto by `cargo run -p hepcap-proto --features codegen \
         --example regenerate`. Do not edit.\n{body}"
    ))
}

/// A boxed error is all this one-shot tool needs.
mod anyhow_free {
    pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;
}
