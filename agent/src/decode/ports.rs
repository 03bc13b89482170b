//! A set of ports given as `5060-5090,6060` (`--sip-ports`).

use std::fmt;
use std::str::FromStr;

/// Port ranges, inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSet(Vec<(u16, u16)>);

impl Default for PortSet {
    /// 5060 (SIP over TCP) and 5061 (SIP over TLS, whose handshake is then skipped).
    fn default() -> Self {
        PortSet(vec![(5060, 5061)])
    }
}

impl PortSet {
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(a, b)| (a..=b).contains(&port))
    }

    /// The inclusive ranges, as given.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }
}

/// A `--sip-ports` value that does not parse.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("bad port list {0:?}: expected ports or ranges like 5060-5090,6060")]
pub struct PortSetError(String);

impl FromStr for PortSet {
    type Err = PortSetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PortSetError(s.to_owned());
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let a: u16 = a.parse().map_err(|_| bad())?;
            let b: u16 = b.parse().map_err(|_| bad())?;
            if a > b {
                return Err(bad());
            }
            ranges.push((a, b));
        }
        if ranges.is_empty() {
            return Err(bad());
        }
        Ok(PortSet(ranges))
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contains() {
        let p: PortSet = "5060-5090, 6060".parse().unwrap();
        assert!(p.contains(5075) && p.contains(6060) && !p.contains(5091));
        assert_eq!(p.to_string(), "5060-5090,6060");
        for bad in ["", "x", "5090-5060", "70000", "1-"] {
            assert!(bad.parse::<PortSet>().is_err(), "{bad}");
        }
        assert!(PortSet::default().contains(5061));
    }
}
