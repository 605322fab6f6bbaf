//! Direct connects: every resolved address in turn, blocking (the stdio
//! commands) or async (`forward`'s targets, a proxy's first hop).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{bind_error, describe, resolve, show_addr, BindAddr, Family, NetError};

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
        let _ = sock.set_tcp_nodelay(true);
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

/// Connects to `host:port` on the current runtime, trying every resolved
/// address of `family` in turn, the whole attempt (the lookup included)
/// within `timeout`. The timer is armed only when the attempt is not done
/// at once (see [`lazy_timeout`]). Nagle's algorithm is off on the stream.
///
/// # Errors
/// Resolution errors, the last address's error, or
/// [`NetError::TimedOut`] (or [`NetError::Deadline`] while resolving).
pub async fn connect_async(
    host: &str,
    port: u16,
    family: Family,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, NetError> {
    // The address being tried, for the message when time runs out.
    let trying = std::sync::Mutex::new(None);
    let attempt = async {
        let addrs = super::addr::resolve_async(host, port, family).await?;
        let mut last = None;
        for addr in addrs {
            if let Ok(mut t) = trying.lock() {
                *t = Some(addr);
            }
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    last = Some(NetError::Refused { addr })
                }
                Err(e) => {
                    last = Some(NetError::Connect {
                        addr,
                        reason: describe(&e),
                        source: e,
                    })
                }
            }
        }
        Err(last.unwrap_or(NetError::NoAddress {
            host: host.to_string(),
            family,
        }))
    };
    let secs = timeout.as_secs_f64();
    match lazy_timeout(timeout, attempt).await {
        Some(r) => r,
        None => Err(match trying.lock().ok().and_then(|t| *t) {
            Some(addr) => NetError::TimedOut { addr, secs },
            None => NetError::Deadline {
                host: host.to_string(),
                secs,
            },
        }),
    }
}

/// `fut` within `limit`, arming the timer only when `fut` is not done by
/// the second turn of the event loop. A connect on loopback is done by
/// then, and a timer set on an idle runtime wakes it through its eventfd:
/// one more syscall, and a wake-up, for every relayed connection.
pub async fn lazy_timeout<F: std::future::Future>(limit: Duration, fut: F) -> Option<F::Output> {
    use std::task::Poll;
    let start = Instant::now();
    let mut fut = std::pin::pin!(fut);
    for _ in 0..2 {
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        if let Poll::Ready(v) = polled {
            return Some(v);
        }
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(limit.saturating_sub(start.elapsed()), fut)
        .await
        .ok()
}
