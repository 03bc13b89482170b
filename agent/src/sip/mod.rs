//! Just enough SIP for the pipeline: recognise a message and find what routes it.

mod scan;

pub use scan::{SipScan, is_sip_start};
