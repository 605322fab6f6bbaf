//! Reaching a tunnel's destination: the name resolved by the proxy, each
//! address checked by the guard, the first allowed one that answers
//! connected within the connect timeout, and each failure kept as what the
//! client is told (a SOCKS5 reply code, an HTTP status).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::Ctx;
use crate::net::describe;
use crate::proxy::socks::{Dest, Reply};

/// Why a destination could not be opened.
pub(super) enum OpenError {
    NotAllowed(String),
    Resolve(String),
    Refused,
    TimedOut(Duration),
    Unreachable(String),
    Other(String),
}

impl OpenError {
    pub(super) fn socks5(&self) -> Reply {
        match self {
            OpenError::NotAllowed(_) => Reply::NotAllowed,
            OpenError::Resolve(_) => Reply::HostUnreachable,
            OpenError::Refused => Reply::Refused,
            OpenError::TimedOut(_) => Reply::TtlExpired,
            OpenError::Unreachable(_) => Reply::NetUnreachable,
            OpenError::Other(_) => Reply::Failure,
        }
    }

    pub(super) fn http(&self) -> u16 {
        match self {
            OpenError::NotAllowed(_) => 403,
            OpenError::TimedOut(_) => 504,
            _ => 502,
        }
    }

    pub(super) fn why(&self) -> String {
        match self {
            OpenError::NotAllowed(w) => format!("not allowed: {w}"),
            OpenError::Resolve(w) => format!("could not resolve the name ({w})"),
            OpenError::Refused => "the destination refused the connection".into(),
            OpenError::TimedOut(t) => format!(
                "the destination did not answer within {} s",
                t.as_secs_f64()
            ),
            OpenError::Unreachable(w) => format!("no route to the destination ({w})"),
            OpenError::Other(w) => format!("could not connect ({w})"),
        }
    }
}

/// Resolves (for a name), checks the policy on each address, and connects
/// to the first allowed address that answers.
pub(super) async fn open(dest: &Dest, ctx: &Ctx) -> Result<TcpStream, OpenError> {
    let limit = ctx.opts.connect_timeout;
    let addrs: Vec<SocketAddr> = match dest {
        Dest::Addr(a) => vec![*a],
        Dest::Name(h, p) => {
            if crate::net::check_name(h).is_err() {
                return Err(OpenError::Resolve("not a host name".into()));
            }
            match tokio::time::timeout(limit, tokio::net::lookup_host((h.as_str(), *p))).await {
                Ok(Ok(a)) => a.collect(),
                Ok(Err(e)) => return Err(OpenError::Resolve(describe(&e))),
                Err(_) => return Err(OpenError::TimedOut(limit)),
            }
        }
    };
    if dest.port() == 0 {
        return Err(OpenError::NotAllowed("port 0".into()));
    }
    let mut last = OpenError::Resolve("no address".into());
    let mut tried = false;
    for a in addrs {
        if let Err(w) = ctx.opts.dest.check(a.ip()) {
            if !tried {
                last = OpenError::NotAllowed(w);
            }
            continue;
        }
        tried = true;
        // The timer is armed only if the connect is not done at once.
        match crate::net::lazy_timeout(limit, TcpStream::connect(a))
            .await
            .ok_or(())
        {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => {
                last = match e.kind() {
                    io::ErrorKind::ConnectionRefused => OpenError::Refused,
                    _ if matches!(
                        e.raw_os_error(),
                        Some(libc::EHOSTUNREACH | libc::ENETUNREACH)
                    ) =>
                    {
                        OpenError::Unreachable(describe(&e))
                    }
                    _ => OpenError::Other(describe(&e)),
                }
            }
            Err(_) => last = OpenError::TimedOut(limit),
        }
    }
    Err(last)
}
