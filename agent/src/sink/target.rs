//! `udp://HOST:PORT` and `tcp://HOST:PORT` destinations as given on the command line.

use std::fmt;
use std::str::FromStr;

/// Transport of a HEP destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HepTransport {
    Udp,
    Tcp,
    /// TCP with TLS (rustls).
    Tls,
}

/// A HEP destination: transport plus `host:port` (resolved when the sink connects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HepTarget {
    pub transport: HepTransport,
    /// `host:port`, IPv6 literals in brackets.
    pub address: String,
}

/// Why a destination string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("'{0}' has no scheme: write udp://, tcp:// or tls://HOST:PORT")]
    NoScheme(String),
    #[error("unsupported scheme '{0}': use udp, tcp or tls")]
    Scheme(String),
    #[error("'{0}' needs HOST:PORT with a port from 1 to 65535")]
    Address(String),
}

impl FromStr for HepTarget {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| TargetError::NoScheme(s.into()))?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "udp" => HepTransport::Udp,
            "tcp" => HepTransport::Tcp,
            "tls" => HepTransport::Tls,
            other => return Err(TargetError::Scheme(other.into())),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| TargetError::Address(s.into()))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(TargetError::Address(s.into()));
        }
        Ok(HepTarget {
            transport,
            address: rest.to_string(),
        })
    }
}

impl HepTarget {
    /// The host part of the address (brackets kept for IPv6 literals).
    pub fn host(&self) -> &str {
        self.address
            .rsplit_once(':')
            .map_or(self.address.as_str(), |(h, _)| h)
    }
}

impl fmt::Display for HepTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            HepTransport::Udp => "udp",
            HepTransport::Tcp => "tcp",
            HepTransport::Tls => "tls",
        };
        write!(f, "{scheme}://{}", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let t: HepTarget = "udp://127.0.0.1:9060".parse().unwrap();
        assert_eq!(t.transport, HepTransport::Udp);
        assert_eq!(t.address, "127.0.0.1:9060");
        let t: HepTarget = "TCP://[::1]:9061".parse().unwrap();
        assert_eq!(
            (t.transport, t.address.as_str()),
            (HepTransport::Tcp, "[::1]:9061")
        );
        assert_eq!(t.to_string(), "tcp://[::1]:9061");
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            "127.0.0.1:9060".parse::<HepTarget>(),
            Err(TargetError::NoScheme(_))
        ));
        assert!(matches!(
            "sctp://h:1".parse::<HepTarget>(),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            "udp://h".parse::<HepTarget>(),
            Err(TargetError::Address(_))
        ));
        assert!(matches!(
            "udp://h:99999".parse::<HepTarget>(),
            Err(TargetError::Address(_))
        ));
    }
}
