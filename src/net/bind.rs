//! Listening sockets: the candidate addresses, dual-stack binding,
//! `SO_REUSEADDR`, and bind errors in words.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{describe, resolve, BindAddr, Family, NetError};

/// Backlog for listening sockets. Large, so that a burst of thousands of
/// connects (the 15,000-connection benchmark) is not dropped by the kernel;
/// Linux caps it at `net.core.somaxconn` anyway.
const LISTEN_BACKLOG: i32 = 4096;

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
