//! HEP listeners: what other agents (Kamailio, OpenSIPS, FreeSWITCH, heplify, sngrep) send.
//!
//! Every listener hands raw messages to one [`Intake`], which decodes them (any HEP version),
//! checks the password, drops keep-alives, and pushes a record into the pipeline's ring —
//! never waiting: a full ring drops and counts under the pipeline's policy. Per listener the
//! intake counts what it received, relayed and rejected (with the decoder's reason).

mod intake;
mod stats;
mod tcp;
mod udp;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

pub use intake::{Intake, IntakeConfig, received_record};
pub use stats::{ListenerStats, ListenerTotals};
pub use tcp::{StreamConfig, spawn_stream_listener};
pub use udp::{UdpConfig, spawn_udp_listener};

/// Transport of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenKind {
    Udp,
    Tcp,
    Tls,
}

/// `udp://ADDR:PORT`, `tcp://ADDR:PORT` or `tls://ADDR:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    pub kind: ListenKind,
    pub addr: SocketAddr,
}

/// Why a listen address was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenAddrError {
    #[error("'{0}' needs a scheme: udp://ADDR:PORT, tcp://ADDR:PORT or tls://ADDR:PORT")]
    NoScheme(String),
    #[error("unsupported scheme '{0}': use udp, tcp or tls")]
    Scheme(String),
    #[error("'{0}' is not ADDR:PORT with a numeric address (e.g. 0.0.0.0:9060 or [::]:9060)")]
    Address(String),
}

impl FromStr for ListenAddr {
    type Err = ListenAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| ListenAddrError::NoScheme(s.into()))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "udp" => ListenKind::Udp,
            "tcp" => ListenKind::Tcp,
            "tls" => ListenKind::Tls,
            other => return Err(ListenAddrError::Scheme(other.into())),
        };
        let addr = rest
            .trim_end_matches('/')
            .parse()
            .map_err(|_| ListenAddrError::Address(s.into()))?;
        Ok(ListenAddr { kind, addr })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ListenKind::Udp => "udp",
            ListenKind::Tcp => "tcp",
            ListenKind::Tls => "tls",
        };
        write!(f, "{scheme}://{}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let a: ListenAddr = "udp://0.0.0.0:9060".parse().unwrap();
        assert_eq!(a.kind, ListenKind::Udp);
        assert_eq!(a.to_string(), "udp://0.0.0.0:9060");
        let a: ListenAddr = "TLS://[::1]:9061".parse().unwrap();
        assert_eq!((a.kind, a.addr.port()), (ListenKind::Tls, 9061));
        assert!(matches!(
            "0.0.0.0:9060".parse::<ListenAddr>(),
            Err(ListenAddrError::NoScheme(_))
        ));
        assert!(matches!(
            "ws://0.0.0.0:1".parse::<ListenAddr>(),
            Err(ListenAddrError::Scheme(_))
        ));
        assert!(matches!(
            "udp://host:1".parse::<ListenAddr>(),
            Err(ListenAddrError::Address(_))
        ));
    }
}
