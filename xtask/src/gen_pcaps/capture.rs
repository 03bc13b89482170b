//! Capture file writers: classic pcap (microsecond or nanosecond magic) and pcapng
//! (one Section Header Block, one Interface Description Block, Enhanced Packet Blocks).
//!
//! Formats: the pcap file format (draft-ietf-opsawg-pcap) and pcapng
//! (draft-ietf-opsawg-pcapng), both written little-endian as an x86 host would.

use anyhow::{Context, ensure};

/// Snapshot length declared in the headers; every synthetic frame is far shorter.
const SNAPLEN: u32 = 262_144;

/// A capture time: seconds since the Unix epoch and nanoseconds within the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ts {
    pub sec: u32,
    pub nanos: u32,
}

impl Ts {
    /// `sec` plus `micros` microseconds.
    pub const fn micros(sec: u32, micros: u32) -> Ts {
        Ts {
            sec,
            nanos: micros * 1_000,
        }
    }
}

/// One captured frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub ts: Ts,
    pub data: Vec<u8>,
}

/// Timestamp precision of a classic pcap file, chosen by its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Magic 0xa1b2c3d4: the second field of the record header is microseconds.
    Micro,
    /// Magic 0xa1b23c4d: the second field of the record header is nanoseconds.
    Nano,
}

/// A classic pcap file with the given LINKTYPE.
pub fn pcap(linktype: u32, precision: Precision, frames: &[Frame]) -> anyhow::Result<Vec<u8>> {
    let magic: u32 = match precision {
        Precision::Micro => 0xa1b2_c3d4,
        Precision::Nano => 0xa1b2_3c4d,
    };
    let mut out = Vec::new();
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs, both always 0.
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&SNAPLEN.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());

    for frame in frames {
        let fraction = match precision {
            Precision::Micro => {
                ensure!(
                    frame.ts.nanos % 1_000 == 0,
                    "sub-microsecond time {:?} in a microsecond pcap",
                    frame.ts
                );
                frame.ts.nanos / 1_000
            }
            Precision::Nano => frame.ts.nanos,
        };
        let len = u32::try_from(frame.data.len()).context("frame too large")?;
        out.extend_from_slice(&frame.ts.sec.to_le_bytes());
        out.extend_from_slice(&fraction.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame.data);
    }
    Ok(out)
}

/// A pcapng file: SHB, one IDB (`linktype`, default microsecond resolution), one EPB per
/// frame on interface 0.
pub fn pcapng(linktype: u16, if_name: &str, frames: &[Frame]) -> anyhow::Result<Vec<u8>> {
    const SHB: u32 = 0x0a0d_0d0a;
    const IDB: u32 = 0x0000_0001;
    const EPB: u32 = 0x0000_0006;
    const OPT_ENDOFOPT: u16 = 0;
    const OPT_SHB_USERAPPL: u16 = 4;
    const OPT_IF_NAME: u16 = 2;

    let mut out = Vec::new();

    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    // Section length not given.
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    push_option(&mut shb, OPT_SHB_USERAPPL, b"cargo xtask gen-pcaps")?;
    push_option(&mut shb, OPT_ENDOFOPT, b"")?;
    push_block(&mut out, SHB, &shb)?;

    let mut idb = Vec::new();
    idb.extend_from_slice(&linktype.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&SNAPLEN.to_le_bytes());
    push_option(&mut idb, OPT_IF_NAME, if_name.as_bytes())?;
    push_option(&mut idb, OPT_ENDOFOPT, b"")?;
    push_block(&mut out, IDB, &idb)?;

    for frame in frames {
        ensure!(
            frame.ts.nanos % 1_000 == 0,
            "sub-microsecond time {:?} with the default if_tsresol",
            frame.ts
        );
        let micros = u64::from(frame.ts.sec) * 1_000_000 + u64::from(frame.ts.nanos / 1_000);
        let len = u32::try_from(frame.data.len()).context("frame too large")?;
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        // Timestamp (high) and (low): the two halves of the 64-bit count of microseconds.
        epb.extend_from_slice(&((micros >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(micros as u32).to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(&frame.data);
        pad32(&mut epb);
        push_block(&mut out, EPB, &epb)?;
    }
    Ok(out)
}

/// Appends a block: type, total length, body (already padded), total length again.
fn push_block(out: &mut Vec<u8>, block_type: u32, body: &[u8]) -> anyhow::Result<()> {
    ensure!(body.len().is_multiple_of(4), "pcapng block body not padded");
    let total = u32::try_from(body.len() + 12).context("pcapng block too large")?;
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&total.to_le_bytes());
    Ok(())
}

/// Appends a pcapng option (code, length, value padded to 32 bits).
fn push_option(out: &mut Vec<u8>, code: u16, value: &[u8]) -> anyhow::Result<()> {
    let len = u16::try_from(value.len()).context("pcapng option too long")?;
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
    pad32(out);
    Ok(())
}

fn pad32(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_header_and_record_layout() {
        let frames = [Frame {
            ts: Ts {
                sec: 1,
                nanos: 123_456_789,
            },
            data: vec![0xaa; 3],
        }];
        let out = pcap(1, Precision::Nano, &frames).unwrap();
        assert_eq!(&out[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(out.len(), 24 + 16 + 3);
        assert_eq!(&out[28..32], &123_456_789u32.to_le_bytes());
        assert!(pcap(1, Precision::Micro, &frames).is_err());
    }

    #[test]
    fn pcapng_blocks_are_padded_and_framed() {
        let frames = [Frame {
            ts: Ts::micros(2, 5),
            data: vec![1, 2, 3, 4, 5],
        }];
        let out = pcapng(1, "eth0", &frames).unwrap();
        let mut at = 0;
        let mut types = Vec::new();
        while at < out.len() {
            let block_type = u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(out[at + 4..at + 8].try_into().unwrap()) as usize;
            assert!(len.is_multiple_of(4));
            assert_eq!(&out[at + 4..at + 8], &out[at + len - 4..at + len]);
            types.push(block_type);
            at += len;
        }
        assert_eq!(types, [0x0a0d_0d0a, 1, 6]);
    }
}
