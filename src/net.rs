//! Socket setup shared by every command: address parsing, name resolution
//! through the system resolver, connecting to every address in turn, binding
//! listeners, and raising the open-file limit.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Backlog for listening sockets. Large, so that a burst of thousands of
/// connects (the 15,000-connection benchmark) is not dropped by the kernel;
/// Linux caps it at `net.core.somaxconn` anyway.
const LISTEN_BACKLOG: i32 = 4096;

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
    /// A proxy of `--proxy` failed: which hop, and why.
    #[error(transparent)]
    Proxy(Box<crate::proxy::ProxyError>),
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

/// A local address to bind: `PORT`, `ADDR:PORT`, `[V6]:PORT` or `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAddr {
    /// The host part; `None` means every interface.
    pub host: Option<String>,
    /// The port; 0 asks the kernel for a free one.
    pub port: u16,
}

impl FromStr for BindAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("an empty address; give PORT or ADDR:PORT".into());
        }
        if !s.contains(':') {
            return Ok(BindAddr {
                host: None,
                port: parse_port_or_zero(s)?,
            });
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(BindAddr {
                host: Some(sa.ip().to_string()),
                port: sa.port(),
            });
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not PORT or ADDR:PORT"))?;
        if host.contains(':') && !host.starts_with('[') {
            return Err(format!(
                "{s:?} looks like an IPv6 address without a port; write it as [ADDR]:PORT"
            ));
        }
        // One pair of brackets, closed: `[0:::6` is no address.
        let host = match host.strip_prefix('[') {
            Some(h) => h
                .strip_suffix(']')
                .filter(|h| !h.contains(['[', ']']))
                .ok_or_else(|| format!("{s:?} has unbalanced [ ]; write [ADDR]:PORT"))?,
            None if host.contains(['[', ']']) => {
                return Err(format!("{s:?} has unbalanced [ ]; write [ADDR]:PORT"))
            }
            None => host,
        };
        let port = parse_port_or_zero(port)?;
        if host.is_empty() || host == "*" {
            return Ok(BindAddr { host: None, port });
        }
        check_name(host).map_err(|why| format!("{s:?}: {why}"))?;
        // An address literal in its one canonical spelling (0:: is ::).
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host.to_string(),
        };
        Ok(BindAddr {
            host: Some(host),
            port,
        })
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Some(h) => write!(f, "{h}:{}", self.port),
            None => write!(f, "*:{}", self.port),
        }
    }
}

/// Strips the brackets users put around IPv6 literals (`[::1]`).
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Resolves `host` through the system resolver (getaddrinfo), keeping the
/// resolver's order, dropping duplicates and addresses outside `family`.
/// An IP literal resolves to itself without any lookup.
///
/// # Errors
/// [`NetError::Resolve`] when the resolver fails, [`NetError::NoAddress`]
/// when nothing of the wanted family is left.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<Vec<SocketAddr>, NetError> {
    let bare = unbracket(host);
    let found: Vec<SocketAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            // Digits and dots are an IPv4 literal or a mistake; the
            // resolver would read `300.1.1.1` as a name (or `1.2` as
            // inet_aton's short form) and ask DNS about it.
            return Err(NetError::BadAddress {
                host: host.to_string(),
            });
        }
        if let Err(reason) = check_name(bare) {
            return Err(NetError::Resolve {
                host: host.to_string(),
                reason: reason.into(),
            });
        }
        (bare, port)
            .to_socket_addrs()
            .map_err(|e| NetError::Resolve {
                host: host.to_string(),
                reason: resolver_reason(&e),
            })?
            .collect()
    };
    let mut out: Vec<SocketAddr> = Vec::with_capacity(found.len());
    for a in found {
        if family.admits(&a) && !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(NetError::NoAddress {
            host: host.to_string(),
            family,
        });
    }
    Ok(out)
}

/// Whether `name` could be a host name at all: not empty, at most 253
/// bytes, no spaces or control characters. Anything else is refused before
/// the resolver sends it anywhere.
///
/// # Errors
/// A short phrase saying what is wrong with the name.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("the name is empty")
    } else if name.len() > 253 {
        Err("a host name is at most 253 bytes")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("a host name holds no spaces or control characters")
    } else {
        Ok(())
    }
}

/// Turns the resolver's error into a short phrase.
fn resolver_reason(e: &io::Error) -> String {
    let s = e.to_string();
    let s = s
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&s);
    let mut s = s.to_string();
    if let Some(first) = s.get(..1) {
        let lower = first.to_lowercase();
        s.replace_range(..1, &lower);
    }
    s
}

/// How `connect` should behave.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Which families to try.
    pub family: Family,
    /// Per-address connect timeout; `None` waits as long as the kernel does.
    pub timeout: Option<Duration>,
    /// A fixed local address or port (nc's `-s` / `-p`).
    pub bind: Option<BindAddr>,
    /// Disable Nagle's algorithm, for interactive traffic and round trips.
    pub nodelay: bool,
    /// `--proxy`: go through each of these in order (empty: connect directly).
    pub proxies: Vec<crate::proxy::ProxyUrl>,
}

/// Connects to `host:port`, trying every resolved address in order, and
/// returns a blocking stream.
///
/// # Errors
/// Resolution errors, or the error from the last address tried.
pub fn connect(
    host: &str,
    port: u16,
    opts: &ConnectOptions,
) -> Result<std::net::TcpStream, NetError> {
    if !opts.proxies.is_empty() {
        let s = crate::proxy::connect(&opts.proxies, host, port, opts)
            .map_err(|e| NetError::Proxy(Box::new(e)))?;
        if opts.nodelay {
            let _ = s.set_nodelay(true);
        }
        return Ok(s);
    }
    let addrs = resolve(host, port, opts.family)?;
    tracing::debug!(
        "{host} resolved to {}",
        addrs
            .iter()
            .map(|a| show_addr(*a))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut last: Option<NetError> = None;
    for addr in addrs {
        tracing::debug!(
            "trying {} (timeout {})",
            show_addr(addr),
            opts.timeout
                .map(|t| format!("{} s", t.as_secs_f64()))
                .unwrap_or_else(|| "the kernel's".into())
        );
        match connect_one(addr, opts) {
            Ok(s) => return Ok(s),
            Err(e) => {
                tracing::debug!("connect to {addr} failed: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(NetError::NoAddress {
        host: host.to_string(),
        family: opts.family,
    }))
}

/// Connects to one address, binding first when asked.
fn connect_one(addr: SocketAddr, opts: &ConnectOptions) -> Result<std::net::TcpStream, NetError> {
    let sock =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(|e| {
            NetError::Connect {
                addr,
                reason: describe(&e),
                source: e,
            }
        })?;
    if let Some(bind) = &opts.bind {
        let local = local_for(bind, addr)?;
        let _ = sock.set_reuse_address(true);
        sock.bind(&SockAddr::from(local))
            .map_err(|e| bind_error(local, e))?;
    }
    let res = match opts.timeout {
        Some(t) => sock.connect_timeout(&SockAddr::from(addr), t),
        None => sock.connect(&SockAddr::from(addr)),
    };
    if let Err(e) = res {
        return Err(match e.kind() {
            io::ErrorKind::ConnectionRefused => NetError::Refused { addr },
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => NetError::TimedOut {
                addr,
                secs: opts.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0),
            },
            _ => NetError::Connect {
                addr,
                reason: describe(&e),
                source: e,
            },
        });
    }
    if opts.nodelay {
        let _ = sock.set_nodelay(true);
    }
    // A connection to itself is no connection: on loopback the kernel can
    // pick the destination port as the source port (a simultaneous open),
    // and the "peer" then echoes everything back.
    if let (Ok(l), Ok(p)) = (sock.local_addr(), sock.peer_addr()) {
        if l == p {
            tracing::info!(
                "{} connected to itself (source port = destination port); treating it as refused",
                show_addr(addr)
            );
            return Err(NetError::Refused { addr });
        }
    }
    tracing::debug!(
        "connected to {} from {}",
        show_addr(addr),
        sock.local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(show_addr)
            .unwrap_or_default()
    );
    Ok(sock.into())
}

/// Arms a socket to close with a reset (`SO_LINGER` 0) instead of a FIN:
/// for a peer we turn away (`--deny`, `--max-conns`) or stop reading, so
/// its side fails loudly instead of seeing a clean, empty session.
/// The reset goes out when the last descriptor of the socket is closed.
pub fn arm_reset<S: std::os::fd::AsFd>(s: &S) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// Picks the local address for `--bind` that matches the family of `remote`.
fn local_for(bind: &BindAddr, remote: SocketAddr) -> Result<SocketAddr, NetError> {
    match &bind.host {
        None => Ok(match remote {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), bind.port),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), bind.port),
        }),
        Some(h) => {
            let fam = if remote.is_ipv4() {
                Family::V4
            } else {
                Family::V6
            };
            Ok(resolve(h, bind.port, fam)?[0])
        }
    }
}

/// Maps a bind failure to the right error.
pub(crate) fn bind_error(addr: SocketAddr, e: io::Error) -> NetError {
    if e.kind() == io::ErrorKind::AddrInUse {
        NetError::AddrInUse { addr }
    } else {
        NetError::Bind {
            addr,
            reason: describe(&e),
            source: e,
        }
    }
}

/// The addresses a listener should try, in order. With no host, that is
/// `[::]` in dual-stack mode (IPv6 and IPv4), then `0.0.0.0` for machines
/// without IPv6.
pub fn listen_candidates(bind: &BindAddr, family: Family) -> Result<Vec<SocketAddr>, NetError> {
    match &bind.host {
        Some(h) => resolve(h, bind.port, family),
        None => {
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), bind.port);
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), bind.port);
            Ok(match family {
                Family::Any => vec![v6, v4],
                Family::V4 => vec![v4],
                Family::V6 => vec![v6],
            })
        }
    }
}

/// Binds a TCP listener with `SO_REUSEADDR`, as the seeds do. A wildcard
/// IPv6 bind with [`Family::Any`] also accepts IPv4 peers.
///
/// # Errors
/// [`NetError::AddrInUse`] or [`NetError::Bind`] from the last candidate.
pub fn bind_tcp(bind: &BindAddr, family: Family) -> Result<std::net::TcpListener, NetError> {
    let mut last = None;
    for addr in listen_candidates(bind, family)? {
        match bind_tcp_one(addr, bind.host.is_none() && family == Family::Any) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(NetError::NoAddress {
        host: bind.to_string(),
        family,
    }))
}

/// Binds one listening socket.
fn bind_tcp_one(addr: SocketAddr, dual_stack: bool) -> Result<std::net::TcpListener, NetError> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| bind_error(addr, e))?;
    sock.set_reuse_address(true)
        .map_err(|e| bind_error(addr, e))?;
    if addr.is_ipv6() {
        let _ = sock.set_only_v6(!dual_stack);
    }
    sock.bind(&SockAddr::from(addr))
        .map_err(|e| bind_error(addr, e))?;
    sock.listen(LISTEN_BACKLOG)
        .map_err(|e| bind_error(addr, e))?;
    Ok(sock.into())
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
    eprintln!("listening on {addr}");
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
