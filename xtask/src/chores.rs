//! The commands README.md opens with: `setup`, `test` and `demo`. Each installs what a fresh
//! machine lacks first (scripts/setup.sh, idempotent), so they work from a clean clone.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::workspace;

/// Runs a command from the workspace root, failing with its name when it fails.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .current_dir(workspace::root())
        .status()
        .with_context(|| format!("start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cargo xtask setup`: install the machine's prerequisites.
pub fn setup() -> anyhow::Result<()> {
    run(Command::new("bash").arg("scripts/setup.sh"))
}

/// `cargo xtask test`: set up, then every test: unit and end-to-end (`cargo test`), then the
/// tshark conformance suite over the whole capture corpus.
pub fn test() -> anyhow::Result<()> {
    setup()?;
    run(cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
    run(cargo().args(["run", "-q", "-p", "xtask", "--", "conformance"]))?;
    println!("xtask test: all test suites passed");
    Ok(())
}

/// `cargo xtask demo`: set up, build, and replay a bundled real capture into JSON lines and
/// into HEP over UDP to a local receiver that counts what arrives.
pub fn demo() -> anyhow::Result<()> {
    setup()?;
    run(cargo().args(["build", "--release", "-q", "-p", "hepcap"]))?;
    let root = workspace::root();
    let capture = root.join("pcaps/sipnab__Asterisk_ZFONE_XLITE.pcap");
    let out_dir = root.join("target/demo");
    std::fs::create_dir_all(&out_dir)?;
    let jsonl = out_dir.join("records.jsonl");

    let receiver = UdpSocket::bind("127.0.0.1:0").context("bind demo HEP receiver")?;
    receiver.set_read_timeout(Some(Duration::from_millis(500)))?;
    let port = receiver.local_addr()?.port();
    let counter = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_535];
        let mut hep3 = 0usize;
        while let Ok(n) = receiver.recv(&mut buf) {
            if buf[..n].starts_with(b"HEP3") {
                hep3 += 1;
            }
        }
        hep3
    });

    println!(
        "$ hepcap replay {} --hep udp://127.0.0.1:{port} --node-name demo --jsonl {}",
        capture.display(),
        jsonl.display()
    );
    let mut child = Command::new(root.join("target/release/hepcap"))
        .arg("replay")
        .arg(&capture)
        .args([
            "--hep",
            &format!("udp://127.0.0.1:{port}"),
            "--node-name",
            "demo",
        ])
        .arg("--jsonl")
        .arg(&jsonl)
        .stderr(Stdio::piped())
        .spawn()
        .context("run hepcap")?;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            println!("{}", line?);
        }
    }
    let status = child.wait()?;
    let received = counter
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))?;
    let text = std::fs::read_to_string(&jsonl)?;
    println!(
        "\nfirst record of {} (all in {}):",
        text.lines().count(),
        jsonl.display()
    );
    if let Some(first) = text.lines().next() {
        println!("{first}");
    }
    println!("\nHEP packets received on udp://127.0.0.1:{port}: {received}");
    if !status.success() {
        bail!("hepcap replay exited with {status}");
    }
    Ok(())
}
