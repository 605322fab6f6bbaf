//! The one dialer every client command calls: `tcp connect`, `unix
//! connect`, `get`, `ls`, `ping`, `bench client` and `forward`'s targets.
//! It picks a direct connection ([`crate::net`]) or a tunnel through the
//! `--proxy` chain ([`crate::proxy::client`]), so a command never asks
//! which; Unix sockets are dialled here too, for the same reason.
//!
//! The floors: `net` connects directly and knows nothing of proxies; the
//! proxy client reaches its first hop through `net`; this sits on both.

use std::time::Duration;

use crate::net::unix::{self, UnixAddr};
use crate::net::{self, ConnectOptions, Family, NetError};
use crate::proxy::{self, ProxyError, ProxyUrl};

/// How to reach a TCP destination.
#[derive(Debug, Clone, Default)]
pub struct DialOptions {
    /// The direct connect: family, timeout, local address, Nagle.
    pub connect: ConnectOptions,
    /// `--proxy`: go through each of these in order (empty: connect directly).
    pub proxies: Vec<ProxyUrl>,
}

/// Why a destination could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Resolving or connecting directly (or to the first proxy) failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A proxy of `--proxy` failed: which hop, and why.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

impl crate::error::Failure for DialError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            DialError::Net(e) => e.kind(),
            DialError::Proxy(e) => e.kind(),
        }
    }
}

/// Connects to `host:port`, directly or through the proxies, and returns a
/// blocking stream to the destination.
///
/// # Errors
/// See [`DialError`].
pub fn connect(
    host: &str,
    port: u16,
    opts: &DialOptions,
) -> Result<std::net::TcpStream, DialError> {
    if opts.proxies.is_empty() {
        return Ok(net::connect(host, port, &opts.connect)?);
    }
    let s = proxy::connect(&opts.proxies, host, port, &opts.connect)?;
    if opts.connect.nodelay {
        let _ = s.set_nodelay(true);
    }
    Ok(s)
}

/// [`connect`] on the current runtime, for `forward`'s targets: the whole
/// attempt (lookup, each address or each hop) within `timeout`, Nagle's
/// algorithm off.
///
/// # Errors
/// See [`DialError`].
pub async fn connect_async(
    host: &str,
    port: u16,
    proxies: &[ProxyUrl],
    timeout: Duration,
) -> Result<tokio::net::TcpStream, DialError> {
    if proxies.is_empty() {
        return Ok(net::connect_async(host, port, Family::Any, timeout).await?);
    }
    Ok(proxy::connect_async(proxies, host, port, timeout).await?)
}

/// Connects to the Unix socket `addr`, blocking, within `timeout` (a full
/// backlog waits that long).
///
/// # Errors
/// What went wrong, as a phrase for "could not connect to ADDR: it …".
pub fn unix(addr: &UnixAddr, timeout: Duration) -> Result<std::os::unix::net::UnixStream, String> {
    unix::connect_blocking(addr, timeout)
}

/// [`unix()`] on the current runtime.
///
/// # Errors
/// As [`unix()`].
pub async fn unix_async(
    addr: &UnixAddr,
    timeout: Duration,
) -> Result<tokio::net::UnixStream, String> {
    unix::connect(addr, timeout).await
}
