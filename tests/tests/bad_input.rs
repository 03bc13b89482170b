//! Broken input never panics and never hides the good data around it: a real SIP frame cut at
//! every length is counted as truncated, and the whole frame still comes out.

use hepcap_e2e::{hepcap, pcaps_dir, scratch_dir};

/// One Ethernet/IPv4/UDP INVITE (suricata-verify, MIT).
const CAPTURE: &str = "suricata__sip_compact_form.pcap";

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[test]
fn real_frame_truncated_at_every_length() {
    let bytes = std::fs::read(pcaps_dir().join(CAPTURE)).expect("read capture");
    assert_eq!(
        le32(&bytes[0..4]),
        0xa1b2_c3d4,
        "little-endian microsecond pcap"
    );
    let header = &bytes[..24];
    let record = &bytes[24..40];
    let caplen = le32(&record[8..12]) as usize;
    let frame = &bytes[40..40 + caplen];
    // Ethernet (14 bytes) then IPv4 whose total length sits at offset 2 of its header.
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    let ip_total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let needed = 14 + ip_total;

    // Every prefix of the frame as its own record, the whole frame last.
    let mut pcap = header.to_vec();
    for n in 0..=caplen {
        pcap.extend_from_slice(&record[..8]);
        pcap.extend_from_slice(&(n as u32).to_le_bytes());
        pcap.extend_from_slice(&(caplen as u32).to_le_bytes());
        pcap.extend_from_slice(&frame[..n]);
    }
    let dir = scratch_dir("bad_input");
    let path = dir.join("truncations.pcap");
    std::fs::write(&path, &pcap).expect("write pcap");

    let out = hepcap()
        .args(["replay", "--jsonl", "-"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 jsonl");
    let complete = caplen + 1 - needed;
    assert_eq!(
        stdout.lines().count(),
        complete,
        "records from frames holding the datagram"
    );
    assert!(
        stderr.contains(&format!("{} packets", caplen + 1)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("skipped truncated: {needed}")),
        "{stderr}"
    );
}

#[test]
fn truncated_file_keeps_the_records_before_the_cut() {
    let bytes = std::fs::read(pcaps_dir().join(CAPTURE)).expect("read capture");
    let caplen = le32(&bytes[32..36]) as usize;
    let whole = &bytes[..40 + caplen];
    // Two whole copies of the record, then a third cut in the middle of its data.
    let mut pcap = whole.to_vec();
    pcap.extend_from_slice(&whole[24..]);
    pcap.extend_from_slice(&whole[24..40 + caplen / 2]);
    let path = scratch_dir("bad_input").join("cut.pcap");
    std::fs::write(&path, &pcap).expect("write pcap");

    let out = hepcap()
        .args(["replay", "--jsonl", "-"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "non-zero exit for a damaged file: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("cut.pcap"),
        "the error names the file: {stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

#[test]
fn bad_flags_are_clear_errors() {
    let out = hepcap()
        .args(["replay", "x.pcap", "--hep", "9060"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tls://HOST:PORT"), "{stderr}");

    let out = hepcap().args(["replay"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "no file given");

    let out = hepcap()
        .args(["replay", "/nonexistent/x.pcap"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/x.pcap"), "{stderr}");
}
