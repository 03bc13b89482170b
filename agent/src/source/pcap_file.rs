//! Reads pcap and pcapng files through libpcap, with nanosecond timestamps when the file has
//! them (truncated to microseconds, the resolution of HEP).

use std::path::{Path, PathBuf};

use pcap::{Capture, Offline, Precision};

use crate::decode::{LinkType, UnsupportedLinkType};
use crate::record::Timestamp;

/// Why a capture file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// libpcap refused the file: missing, unreadable, or not a pcap/pcapng capture.
    #[error("{}: cannot read as a capture: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: pcap::Error,
    },
    /// The capture's link type is not one hepcap decodes.
    #[error("{}: {source} (supported: 0, 1, 12, 14, 101, 108, 113, 228, 229, 276)", path.display())]
    LinkType {
        path: PathBuf,
        #[source]
        source: UnsupportedLinkType,
    },
}

/// A read failure in the middle of a file, such as a truncated last record.
#[derive(Debug, thiserror::Error)]
#[error("{}: read failed after {packets} packets: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    pub packets: u64,
    #[source]
    pub source: pcap::Error,
}

/// One captured frame, borrowed from libpcap's buffer until the next read.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub data: &'a [u8],
    /// Length on the wire; larger than `data` when the capture was cut by a snaplen.
    pub orig_len: u32,
}

/// An open capture file.
pub struct CaptureFile {
    path: PathBuf,
    link: LinkType,
    capture: Capture<Offline>,
    packets: u64,
}

impl std::fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFile")
            .field("path", &self.path)
            .field("link", &self.link)
            .field("packets", &self.packets)
            .finish()
    }
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let capture =
            Capture::from_file_with_precision(path, Precision::Nano).map_err(|source| {
                OpenError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let link = LinkType::from_linktype(capture.get_datalink().0).map_err(|source| {
            OpenError::LinkType {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(CaptureFile {
            path: path.to_path_buf(),
            link,
            capture,
            packets: 0,
        })
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next frame; `None` at the end of the file.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, ReadError>> {
        match self.capture.next_packet() {
            Ok(packet) => {
                self.packets += 1;
                let h = packet.header;
                // With nanosecond precision libpcap stores nanoseconds in tv_usec.
                // pcap stores unsigned 32-bit seconds but libpcap hands them over as a signed
                // 32-bit value: times after January 2038 come out negative. Undo the wrap.
                let tv_sec: i64 = h.ts.tv_sec;
                let secs = if tv_sec < 0 {
                    tv_sec + (1 << 32)
                } else {
                    tv_sec
                };
                let secs = u64::try_from(secs).unwrap_or(0);
                let nanos = u32::try_from(h.ts.tv_usec).unwrap_or(0);
                Some(Ok(Frame {
                    ts: Timestamp::from_parts(secs, nanos / 1000),
                    data: packet.data,
                    orig_len: h.len,
                }))
            }
            Err(pcap::Error::NoMorePackets) => None,
            Err(source) => Some(Err(ReadError {
                path: self.path.clone(),
                packets: self.packets,
                source,
            })),
        }
    }
}
