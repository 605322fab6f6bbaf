//! Access control for every listener: `--allow CIDR` and `--deny CIDR`.
//!
//! Pure: parsing and matching only. A deny rule always wins; when any allow
//! rule is given, a peer must match one of them. IPv4-mapped IPv6 peers
//! (`::ffff:a.b.c.d`, as a dual-stack listener sees IPv4 clients) are
//! matched as the IPv4 address they are.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an address or a network like 127.0.0.0/8 or ::1/128")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr {
            addr: canonical(addr),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl Cidr {
    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

/// The allow and deny lists of one listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    /// `--allow`: when not empty, only these networks may connect.
    pub allow: Vec<Cidr>,
    /// `--deny`: these networks may never connect.
    pub deny: Vec<Cidr>,
}

/// Why a peer was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It matched this `--deny` rule.
    Denied(Cidr),
    /// `--allow` rules exist and it matched none.
    NotAllowed,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Denied(c) => write!(f, "matches --deny {c}"),
            Refused::NotAllowed => write!(f, "matches no --allow rule"),
        }
    }
}

impl AccessList {
    /// Whether there are no rules at all (everyone may connect).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Checks one peer.
    ///
    /// # Errors
    /// The reason the peer is refused.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        if let Some(c) = self.deny.iter().find(|c| c.contains(ip)) {
            return Err(Refused::Denied(*c));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|c| c.contains(ip)) {
            return Err(Refused::NotAllowed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_hosts() {
        assert_eq!(
            "127.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "127.0.0.0/8"
        );
        assert_eq!(
            "127.0.0.2".parse::<Cidr>().unwrap().to_string(),
            "127.0.0.2/32"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!("[::]/127".parse::<Cidr>().unwrap().to_string(), "::/127");
        assert_eq!(
            "::ffff:127.1.2.3/32".parse::<Cidr>().unwrap().to_string(),
            "127.1.2.3/32"
        );
        for bad in [
            "",
            "127.0.0.0/33",
            "::/129",
            "127.0.0.0/",
            "127.0.0.0/-1",
            "x/8",
            "127.0.0.0/8/8",
            "/8",
            "127.0.0.0/+8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn matches_by_prefix() {
        let c: Cidr = "127.168.16.0/20".parse().unwrap();
        assert!(c.contains(ip("127.168.31.255")));
        assert!(!c.contains(ip("127.168.32.0")));
        assert!(c.contains(ip("::ffff:127.168.16.1")));
        assert!(!c.contains(ip("::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("127.8.8.8")));
        let v6: Cidr = "::/127".parse().unwrap();
        assert!(v6.contains(ip("::1")) && v6.contains(ip("::")) && !v6.contains(ip("::2")));
    }

    #[test]
    fn deny_wins_and_allow_restricts() {
        let mut acl = AccessList::default();
        assert!(acl.is_open() && acl.check(ip("127.0.0.2")).is_ok());
        acl.allow.push("127.0.0.0/8".parse().unwrap());
        acl.deny.push("127.0.0.2".parse().unwrap());
        assert!(acl.check(ip("127.0.0.1")).is_ok());
        assert!(matches!(
            acl.check(ip("127.0.0.2")),
            Err(Refused::Denied(_))
        ));
        assert_eq!(acl.check(ip("::1")), Err(Refused::NotAllowed));
        assert!(acl.check(ip("::ffff:127.0.0.1")).is_ok());
    }
}
