//! hepcap: capture SIP from the wire or from capture files and ship it as HEPv3.
//!
//! The data path: [`source`] reads frames, [`decode`] turns them into SIP messages (lazily
//! scanned by [`sip`]), [`record::Record`] carries them, [`sink`] writes them as HEP
//! ([`hep`]) or JSON lines.

pub mod capture;
pub mod cli;
pub mod correlate;
pub mod decode;
pub mod hep;
pub mod pipeline;
pub mod process;
pub mod reassembly;
pub mod record;
pub mod replay;
pub mod run;
pub mod sink;
pub mod sip;
pub mod source;
pub mod spool;
pub mod summary;
pub mod telemetry;
pub mod tls;
