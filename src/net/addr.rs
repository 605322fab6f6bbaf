//! Addresses as people write them: `PORT`, `ADDR:PORT`, `[V6]:PORT`,
//! `HOST:PORT`; host names checked before any lookup; the system resolver.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use super::{parse_port_or_zero, Family, NetError};

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
    let found: Vec<SocketAddr> = match literal_or_name(host)? {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(bare) => (bare, port)
            .to_socket_addrs()
            .map_err(|e| resolve_error(host, &e))?
            .collect(),
    };
    of_family(host, found, family)
}

/// [`resolve`] on the current runtime: a literal at once, a name on
/// tokio's blocking pool.
///
/// # Errors
/// As [`resolve`].
pub async fn resolve_async(
    host: &str,
    port: u16,
    family: Family,
) -> Result<Vec<SocketAddr>, NetError> {
    let found: Vec<SocketAddr> = match literal_or_name(host)? {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(bare) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| resolve_error(host, &e))?
            .collect(),
    };
    of_family(host, found, family)
}

/// An IP literal, or the bare name to look up once it passed the checks
/// that keep mistakes away from the resolver.
fn literal_or_name(host: &str) -> Result<Result<IpAddr, &str>, NetError> {
    let bare = unbracket(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Ok(ip));
    }
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
    Ok(Err(bare))
}

fn resolve_error(host: &str, e: &io::Error) -> NetError {
    NetError::Resolve {
        host: host.to_string(),
        reason: resolver_reason(e),
    }
}

/// What the resolver found, in its order, without duplicates and
/// addresses outside `family`.
fn of_family(
    host: &str,
    found: Vec<SocketAddr>,
    family: Family,
) -> Result<Vec<SocketAddr>, NetError> {
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
