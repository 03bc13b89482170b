//! Where frames come from. Today: capture files for `hepcap replay`.

pub mod hep_listen;
pub mod pcap_file;

pub use pcap_file::{CaptureFile, Frame, OpenError, ReadError};
