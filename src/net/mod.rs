//! Socket setup shared by every command, at the bottom of the house:
//! address parsing, name resolution through the system resolver,
//! connecting directly (blocking and async) to every address in turn,
//! binding listeners, Unix socket addresses, and the open-file limit.
//! Nothing here knows about proxies: [`crate::dial`] picks a direct or a
//! tunnelled connection above this.
//!
//! Files: this one (families, errors, how addresses are shown), `addr`
//! (bind addresses, host names, the resolver), `connect` (direct connects),
//! `bind` (listeners), [`unix`] (Unix socket addresses, binding with the
//! stale-socket rule, peer credentials).

mod addr;
mod bind;
mod connect;
pub mod unix;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use addr::{check_name, resolve, BindAddr};
pub(crate) use bind::bind_error;
pub use bind::{bind_tcp, listen_candidates};
pub use connect::{connect, connect_async, lazy_timeout, ConnectOptions};

/// Which IP family a command may use (`-4` / `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv6 and IPv4, in the order the resolver returns them.
    #[default]
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

impl Family {
    /// Picks the family from the `-4` / `-6` flags.
    pub fn from_flags(v4: bool, v6: bool) -> Family {
        match (v4, v6) {
            (true, false) => Family::V4,
            (false, true) => Family::V6,
            _ => Family::Any,
        }
    }

    /// Whether `addr` belongs to this family.
    pub fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Any => "IP",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Errors from resolving, connecting and binding.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The system resolver could not resolve the name.
    #[error("could not resolve host {host:?} ({reason}); check the name or use an IP address")]
    Resolve {
        /// The name that failed.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// Text that can only be meant as an IPv4 address, but is not one
    /// (`300.1.1.1`): a usage error, never sent to the resolver.
    #[error("{host:?} is not a valid IPv4 address (four numbers from 0 to 255, like 127.0.0.1)")]
    BadAddress {
        /// The text given.
        host: String,
    },
    /// The name resolved, but not to an address of the wanted family.
    #[error("host {host:?} has no {family} address; drop -4/-6 or use another host")]
    NoAddress {
        /// The name looked up.
        host: String,
        /// The family that was asked for.
        family: Family,
    },
    /// Every address refused the connection.
    #[error("connection to {addr} refused; is anything listening on that port?")]
    Refused {
        /// The last address tried.
        addr: SocketAddr,
    },
    /// The connect did not finish in time.
    #[error("connection to {addr} timed out after {secs} s; check the host and port, or raise --timeout")]
    TimedOut {
        /// The last address tried.
        addr: SocketAddr,
        /// The timeout that ran out.
        secs: f64,
    },
    /// The whole attempt, the lookup included, ran out of time before any
    /// address was tried.
    #[error("connecting to {host} timed out after {secs} s while resolving it; check the name, or raise the timeout")]
    Deadline {
        /// The name being resolved.
        host: String,
        /// The timeout that ran out.
        secs: f64,
    },
    /// Some other connect failure (unreachable network, and so on).
    #[error("could not connect to {addr} ({reason})")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// The operating system's reason, in words.
        reason: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The address is taken by another socket.
    #[error(
        "address {addr} is already in use; pick another port or stop the program that holds it"
    )]
    AddrInUse {
        /// The address we tried to bind.
        addr: SocketAddr,
    },
    /// Binding failed for another reason (permission, no such local address).
    #[error("could not bind {addr} ({reason})")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The operating system's reason, in words.
        reason: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl crate::error::Failure for NetError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            // Text that can only be meant as an address, and is none.
            NetError::BadAddress { .. } => crate::error::Kind::Usage,
            NetError::Resolve { .. }
            | NetError::NoAddress { .. }
            | NetError::Refused { .. }
            | NetError::TimedOut { .. }
            | NetError::Deadline { .. }
            | NetError::Connect { .. }
            | NetError::AddrInUse { .. }
            | NetError::Bind { .. } => crate::error::Kind::Runtime,
        }
    }
}

/// Describes an I/O error as a short lowercase phrase, without the
/// `(os error N)` suffix, for use inside one-sentence error messages.
pub fn describe(err: &io::Error) -> String {
    use io::ErrorKind::*;
    let text = match err.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset by peer",
        ConnectionAborted => "connection aborted",
        BrokenPipe => "the peer closed the connection",
        TimedOut | WouldBlock => "timed out",
        AddrInUse => "address already in use",
        AddrNotAvailable => "that address is not on this machine",
        PermissionDenied => "permission denied",
        NotFound => "not found",
        UnexpectedEof => "unexpected end of stream",
        _ => "",
    };
    if !text.is_empty() {
        return text.to_string();
    }
    let full = err.to_string();
    let trimmed = match full.find(" (os error") {
        Some(i) => &full[..i],
        None => &full,
    };
    let mut s = trimmed.to_string();
    if let Some(first) = s.get(..1) {
        let lower = first.to_lowercase();
        s.replace_range(..1, &lower);
    }
    s
}

/// Parses a port number from 1 to 65535.
///
/// # Errors
/// A message for clap when the text is not a number in that range.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!("port {s:?} is not a number from 1 to 65535")),
    }
}

/// Parses a port number from 0 to 65535 (0 asks the kernel for a free one).
///
/// # Errors
/// A message for clap when the text is not a number in that range.
pub fn parse_port_or_zero(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if p <= 65535 => Ok(p as u16),
        _ => Err(format!("port {s:?} is not a number from 0 to 65535")),
    }
}

/// Arms a socket to close with a reset (`SO_LINGER` 0) instead of a FIN:
/// for a peer we turn away (`--deny`, `--max-conns`) or stop reading, so
/// its side fails loudly instead of seeing a clean, empty session.
/// The reset goes out when the last descriptor of the socket is closed.
pub fn arm_reset<S: std::os::fd::AsFd>(s: &S) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// Formats an address the way the `listening on ADDR:PORT` line shows it,
/// unmapping IPv4-mapped IPv6 peers (`::ffff:1.2.3.4`) to plain IPv4.
pub fn show_addr(addr: SocketAddr) -> String {
    unmap(addr).to_string()
}

/// An IPv4-mapped IPv6 address (`[::ffff:1.2.3.4]:p`) as plain IPv4; any
/// other address as it is.
pub fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Prints the one line every listener prints once it is bound, on stderr.
/// Tests read the real port from it, so it is printed even with `-q`.
pub fn announce_listening(addr: SocketAddr) {
    crate::logline::listening(addr);
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so a listener can
/// hold thousands of peers. Returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzz/parsers: a host of spaces and control characters
    /// printed back as a different address. Such a host is refused.
    #[test]
    fn hosts_with_spaces_or_control_characters_are_refused() {
        for bad in ["[\u{c}\u{e} x]:6", "a b:80", "[ ]:5", "tab\there:1"] {
            assert!(bad.parse::<BindAddr>().is_err(), "{bad:?}");
        }
        assert!("*:80".parse::<BindAddr>().is_ok());
        // Found by fuzz/parsers: an unclosed bracket was read as an address
        // that printed back as another one.
        for bad in ["[0:::6", "[::1:80", "::1]:80", "[[::1]]:80"] {
            assert!(bad.parse::<BindAddr>().is_err(), "{bad:?}");
        }
        let a: BindAddr = "[0::]:6".parse().unwrap();
        assert_eq!(a.to_string().parse::<BindAddr>().unwrap(), a);
        assert!("[::1]:80".parse::<BindAddr>().is_ok());
        assert!(check_name(&"a".repeat(254)).is_err());
        // Refused before the resolver could send it anywhere.
        let err = resolve("no such host", 80, Family::Any).unwrap_err();
        assert!(err.to_string().contains("no spaces"), "{err}");
    }

    #[test]
    fn bind_addr_forms() {
        assert_eq!(
            "8080".parse::<BindAddr>().unwrap(),
            BindAddr {
                host: None,
                port: 8080
            }
        );
        assert_eq!(
            "127.0.0.1:0".parse::<BindAddr>().unwrap(),
            BindAddr {
                host: Some("127.0.0.1".into()),
                port: 0
            }
        );
        assert_eq!(
            "[::1]:9".parse::<BindAddr>().unwrap(),
            BindAddr {
                host: Some("::1".into()),
                port: 9
            }
        );
        assert_eq!(
            "localhost:7".parse::<BindAddr>().unwrap().host.as_deref(),
            Some("localhost")
        );
        assert_eq!(":7".parse::<BindAddr>().unwrap().host, None);
        assert!("70000".parse::<BindAddr>().is_err());
        assert!("::1".parse::<BindAddr>().is_err());
        assert!("".parse::<BindAddr>().is_err());
        assert!("host:x".parse::<BindAddr>().is_err());
    }

    #[test]
    fn ports() {
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_port("-1").is_err());
        assert_eq!(parse_port("65535"), Ok(65535));
        assert_eq!(parse_port_or_zero("0"), Ok(0));
    }

    #[test]
    fn literals_resolve_without_lookup() {
        let a = resolve("[::1]", 5, Family::Any).unwrap();
        assert_eq!(a, vec!["[::1]:5".parse().unwrap()]);
        assert!(matches!(
            resolve("127.0.0.1", 5, Family::V6),
            Err(NetError::NoAddress { .. })
        ));
    }

    #[test]
    fn overlong_label_is_rejected_locally() {
        // glibc rejects a label over 63 bytes without sending a query.
        let name = format!("{}.invalid", "x".repeat(70));
        assert!(matches!(
            resolve(&name, 80, Family::Any),
            Err(NetError::Resolve { .. })
        ));
    }

    #[test]
    fn describe_strips_os_error() {
        let e = io::Error::from_raw_os_error(libc::ENETUNREACH);
        assert_eq!(describe(&e), "network is unreachable");
    }
}

/// The warning for a listener whose accept fails (out of descriptors, most
/// often): the first failure is logged, then at most one line a second
/// with the count, so a listener retrying every 50 ms does not flood the
/// log.
#[derive(Debug, Default)]
pub struct AcceptTrouble {
    last: Option<std::time::Instant>,
    unlogged: u64,
}

impl AcceptTrouble {
    /// How long a listener waits before it tries to accept again.
    pub const BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

    /// Notes one failed accept, logging as said above.
    pub fn failed(&mut self, e: &std::io::Error) {
        let now = std::time::Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < std::time::Duration::from_secs(1) => {
                self.unlogged += 1;
            }
            _ => {
                if self.unlogged == 0 {
                    tracing::warn!("accept failed ({}); retrying", describe(e));
                } else {
                    tracing::warn!(
                        "accept failed ({}) {} more times in the last second; retrying",
                        describe(e),
                        self.unlogged
                    );
                }
                self.last = Some(now);
                self.unlogged = 0;
            }
        }
    }
}
