//! Where a tunnel may lead: the destination guard of `sockit proxy`
//! (an SSRF guard). Loopback, link-local, unspecified, broadcast and
//! multicast destinations, and this host's own addresses, are refused
//! unless `--allow-dest` names them; `--deny-dest` always wins. The server
//! checks TCP tunnels with it, and `udp` each datagram of an association.

use std::net::IpAddr;

use crate::access::Cidr;

/// Where tunnels may lead.
#[derive(Debug, Clone, Default)]
pub struct DestPolicy {
    /// `--allow-dest`: allowed, even in the guarded ranges.
    pub allow: Vec<Cidr>,
    /// `--deny-dest`: never.
    pub deny: Vec<Cidr>,
    /// This host's own addresses (refused unless allowed).
    pub own: Vec<IpAddr>,
}

impl DestPolicy {
    /// The policy, with this host's addresses read from its interfaces.
    pub fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> DestPolicy {
        DestPolicy {
            allow,
            deny,
            own: own_addresses(),
        }
    }

    /// Whether a tunnel may go to `ip`.
    ///
    /// # Errors
    /// Why not, for the log.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if let Some(c) = self.deny.iter().find(|c| c.contains(ip)) {
            return Err(format!("{ip} matches --deny-dest {c}"));
        }
        if !self.allow.is_empty() && self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        let guarded = match ip {
            IpAddr::V4(a) => {
                a.is_loopback()
                    || a.is_link_local()
                    || a.is_unspecified()
                    || a.is_broadcast()
                    || a.is_multicast()
            }
            IpAddr::V6(a) => {
                a.is_loopback()
                    || a.is_unspecified()
                    || a.is_multicast()
                    || (a.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        if guarded {
            return Err(format!(
                "{ip} is loopback, link-local or a broadcast/multicast address (allow it with --allow-dest)"
            ));
        }
        if self.own.contains(&ip) {
            return Err(format!(
                "{ip} is this host's own address (allow it with --allow-dest)"
            ));
        }
        Ok(())
    }
}

/// The addresses of this host's interfaces (getifaddrs).
fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut p = head;
    // Bounded: the kernel's interface list is finite; stop at 10,000.
    for _ in 0..10_000 {
        if p.is_null() {
            break;
        }
        // SAFETY: `p` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr of the family it names.
            let fam = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if fam == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if fam == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_guard() {
        let p = DestPolicy {
            allow: vec![],
            deny: vec!["203.0.113.0/24".parse().unwrap()],
            own: vec!["192.0.2.7".parse().unwrap()],
        };
        for bad in [
            "127.0.0.1",
            "::1",
            "169.254.1.1",
            "fe80::1",
            "0.0.0.0",
            "192.0.2.7",
            "203.0.113.9",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(p.check(bad.parse().unwrap()).is_err(), "{bad}");
        }
        assert!(p.check("198.51.100.1".parse().unwrap()).is_ok());
        let open = DestPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ..p
        };
        assert!(open.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(open.check("::1".parse().unwrap()).is_err());
    }
}
