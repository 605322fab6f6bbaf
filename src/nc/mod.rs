//! `sockit nc`: netcat-openbsd's command line on sockit's engine. The
//! binary also answers to the name `nc` (a symlink to it), as busybox does.
//!
//! What nc does, this does, with nc's words on stderr and nc's exit codes:
//! connect and listen over TCP, UDP and Unix sockets, scan with `-z`, go
//! through SOCKS4, SOCKS5 or HTTP CONNECT proxies (`-X`, `-x`, `-P`), and
//! run a program per connection as ncat does (`-e`, `-c`). The bytes move
//! through [`crate::session`]'s pump with netcat's rules in place of
//! sockit's ([`crate::session::NcRules`]): the end of stdin is not passed
//! on without `-N`, and the session runs until both ways are done. The
//! README lists the few places it differs from nc on purpose.
//!
//! Files: `args` (the command line, pure), `say` (nc's messages, pure),
//! this one (names, ports and socket options), `stream` (TCP and Unix:
//! connect, listen, scan, programs), `dgram` (UDP).

pub mod args;
mod dgram;
mod say;
mod stream;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use socket2::Socket;

use args::PortSpec;
pub use args::{parse, NcArgs, NcError};

use crate::net::Family;
use crate::session::StreamError;

/// Why a netcat command could not do its job (beyond the connect
/// failures netcat itself is quiet about).
#[derive(Debug, thiserror::Error)]
pub enum NcRunError {
    /// The command line.
    #[error(transparent)]
    Usage(#[from] NcError),
    /// A failure netcat would name, in its words.
    #[error("{0}")]
    Failed(String),
    /// The session's own failure, in sockit's words (a lost upload, a
    /// reset, a full disk).
    #[error(transparent)]
    Stream(#[from] StreamError),
}

impl crate::error::Failure for NcRunError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            NcRunError::Usage(e) => e.kind(),
            NcRunError::Failed(_) => crate::error::Kind::Runtime,
            NcRunError::Stream(e) => e.kind(),
        }
    }
}

/// Runs a netcat command line and returns its exit code. The lines nc
/// prints (`-v`, `-z`) go to stderr here; a failure nc would report comes
/// back as an error for the caller to print after `nc: `.
///
/// # Errors
/// See [`NcRunError`].
pub fn run(a: &NcArgs) -> Result<u8, NcRunError> {
    if a.help {
        print!("{}{}", args::USAGE, args::HELP);
        return Ok(0);
    }
    if a.unix {
        return stream::unix(a);
    }
    if a.udp {
        return dgram::run(a);
    }
    if a.listen {
        return stream::listen(a);
    }
    if a.scan {
        return stream::scan(a);
    }
    stream::connect(a)
}

/// `-4` / `-6`.
fn family(a: &NcArgs) -> Family {
    Family::from_flags(a.v4, a.v6)
}

/// Resolves `host` for `port` as netcat does, but without sending a name
/// that can only be a mistake (`300.1.1.1`, spaces) to DNS; with `-n`,
/// only an address literal.
fn resolve(a: &NcArgs, host: &str, port: u16) -> Result<Vec<SocketAddr>, NcRunError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let fail = |why: &str| NcRunError::Failed(say::no_address(host, &port.to_string(), why));
    let found: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) if a.numeric => return Err(fail("Name or service not known")),
        Err(_) => {
            let digits = !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if digits || crate::net::check_name(bare).is_err() {
                return Err(fail("Name or service not known"));
            }
            (bare, port)
                .to_socket_addrs()
                .map_err(|e| {
                    let s = e.to_string();
                    let why = s
                        .strip_prefix("failed to lookup address information: ")
                        .unwrap_or(&s)
                        .to_string();
                    fail(&why)
                })?
                .collect()
        }
    };
    let fam = family(a);
    let mut out: Vec<SocketAddr> = Vec::new();
    for s in found {
        if fam.admits(&s) && !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err(fail("Address family for hostname not supported"));
    }
    Ok(out)
}

/// The port operands, in order (shuffled with `-r`): numbers, ranges and
/// service names for `proto`.
fn ports(a: &NcArgs, specs: &[String], proto: &str) -> Result<Vec<u16>, NcRunError> {
    let mut out = Vec::new();
    for s in specs {
        match args::port_spec(s)? {
            PortSpec::Numbers(v) => out.extend(v),
            PortSpec::Name(n) => match crate::lookup::service(&n, proto) {
                Ok(p) => out.push(p),
                Err(_) => return Err(NcError::Usage(format!("port number invalid: {n}")).into()),
            },
        }
    }
    if a.random {
        fastrand::shuffle(&mut out);
    }
    Ok(out)
}

/// One port, for `-p` and the listen operand.
fn one_port(s: &str, proto: &str) -> Result<u16, NcRunError> {
    match args::port_spec(s)? {
        PortSpec::Numbers(v) if v.len() == 1 => Ok(v[0]),
        PortSpec::Numbers(_) => Err(NcError::Usage(format!("port number invalid: {s}")).into()),
        PortSpec::Name(n) => crate::lookup::service(&n, proto)
            .map_err(|_| NcError::Usage(format!("port number invalid: {n}")).into()),
    }
}

/// The service name netcat shows for a port, `None` for `*` (always with
/// `-n`).
fn service(a: &NcArgs, port: u16, proto: &str) -> Option<String> {
    if a.numeric {
        return None;
    }
    crate::lookup::port(port, proto).ok()
}

/// How netcat names an address in `Listening on` and `Connection received
/// on`: its name when it has one (not with `-n`), or the address.
fn shown_host(a: &NcArgs, ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if a.numeric || ip.is_unspecified() {
        return ip.to_string();
    }
    crate::lookup::addr(ip).unwrap_or_else(|_| ip.to_string())
}

/// The local address for `-s`/`-p` (a client's source), in the family of
/// `remote`.
fn local_for(
    a: &NcArgs,
    remote: SocketAddr,
    proto: &str,
) -> Result<Option<SocketAddr>, NcRunError> {
    let port = match &a.source_port {
        Some(p) => one_port(p, proto)?,
        None => 0,
    };
    let ip = match &a.source {
        Some(h) => {
            let found = resolve(a, h, port)?;
            match found.iter().find(|s| s.is_ipv4() == remote.is_ipv4()) {
                Some(s) => s.ip(),
                None => {
                    return Err(NcRunError::Failed(format!(
                        "{h} has no address of the destination's family"
                    )))
                }
            }
        }
        None if port == 0 => return Ok(None),
        None if remote.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    Ok(Some(SocketAddr::new(ip, port)))
}

/// Applies `-b`, `-D`, `-I`, `-O`, `-M`, `-m` and `-T` to a socket before it
/// connects or listens. A kernel that refuses one is a failure, named.
fn socket_options(a: &NcArgs, s: &Socket, v6: bool) -> Result<(), NcRunError> {
    let named = |what: &str, r: io::Result<()>| {
        r.map_err(|e| NcRunError::Failed(format!("{what}: {}", say::strerror(&e))))
    };
    if a.broadcast {
        named("setsockopt SO_BROADCAST", s.set_broadcast(true))?;
    }
    if let Some(n) = a.recv_buf {
        named("setsockopt SO_RCVBUF", s.set_recv_buffer_size(n))?;
    }
    if let Some(n) = a.send_buf {
        named("setsockopt SO_SNDBUF", s.set_send_buffer_size(n))?;
    }
    if let Some(ttl) = a.ttl {
        if v6 {
            named("setsockopt IPV6_UNICAST_HOPS", s.set_unicast_hops_v6(ttl))?;
        } else {
            named("setsockopt IP_TTL", s.set_ttl_v4(ttl))?;
        }
    }
    if let Some(t) = a.tos {
        if v6 {
            named("setsockopt IPV6_TCLASS", s.set_tclass_v6(u32::from(t)))?;
        } else {
            named("setsockopt IP_TOS", s.set_tos_v4(u32::from(t)))?;
        }
    }
    if let Some(min) = a.min_ttl {
        let (level, opt) = if v6 {
            (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT)
        } else {
            (libc::IPPROTO_IP, libc::IP_MINTTL)
        };
        named(
            "setsockopt IP_MINTTL",
            setsockopt_int(s, level, opt, min as libc::c_int),
        )?;
    }
    if a.debug {
        named(
            "setsockopt SO_DEBUG",
            setsockopt_int(s, libc::SOL_SOCKET, libc::SO_DEBUG, 1),
        )?;
    }
    Ok(())
}

/// An integer socket option socket2 has no call for.
fn setsockopt_int(
    s: &Socket,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads one int from the pointer we pass.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// netcat's session rules from its flags.
fn rules(a: &NcArgs) -> crate::session::NcRules {
    crate::session::NcRules {
        half_close: a.half_close,
        quit_after_eof: a.quit_after,
        crlf: a.crlf,
        line_pause: a.interval,
    }
}

/// Sleeps `-i`'s interval between ports, if there is one.
fn pause_between(a: &NcArgs) {
    if let Some(d) = a.interval {
        std::thread::sleep(d.min(Duration::from_secs(3600)));
    }
}
