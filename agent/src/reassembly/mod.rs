//! Stateful reassembly: IP fragments back into datagrams, TCP segments back into byte streams
//! and byte streams into SIP messages (directly or inside WebSocket frames).
//!
//! Every type here is a plain state machine: it is fed bytes and an explicit `now`
//! ([`Timestamp`](crate::record::Timestamp)), never reads a clock, never does I/O, and keeps
//! its memory under configured limits (entries and bytes), with a stated policy at the limit
//! and a counter for each way state can end (completed, expired, evicted, malformed).

pub mod defrag;
pub mod sctp;
pub mod sipframe;
pub mod tcp;
pub mod websocket;

pub use defrag::{DefragConfig, DefragStats, FragmentKey, FragmentTable};
pub use sctp::{SctpStats, SctpStreamKey, SctpTable};
pub use tcp::{FlowKey, TcpConfig, TcpStats, TcpTable};
