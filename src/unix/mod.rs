//! Unix stream socket commands: `unix connect PATH` and `unix listen PATH`
//! (nc's `-U`), a thin layer of Unix addresses over what every stream
//! command shares: [`crate::session`] for one connection joined to stdin
//! and stdout, [`crate::peers`] for `-k`, `--echo`, `--upper`, `--chat`
//! and `--frame`. The addresses themselves (`PATH`, `@name`), binding with
//! the stale-socket rule and peer credentials are [`crate::net::unix`]'s.

use std::time::Duration;

use crate::listener::Bound;
use crate::net::describe;
use crate::net::unix::{bind, peer_name};
use crate::peers::{self, Mode, ServerOptions};
use crate::session::{self, Outcome, PipeOptions, Side, Sock, StreamError};

pub use crate::net::unix::{UnixAddr, UnixError};

/// `unix connect PATH`: joins the connection to stdin and stdout, as
/// `tcp connect` does.
///
/// # Errors
/// A connect failure, or the session's error.
pub fn connect_cmd(
    addr: &UnixAddr,
    timeout: Duration,
    popts: &PipeOptions,
) -> Result<Outcome, StreamError> {
    let s = crate::dial::unix(addr, timeout).map_err(|reason| {
        StreamError::Failed(format!("could not connect to {addr}: it {reason}"))
    })?;
    tracing::info!(event = "connected", peer = %addr, "connected to {addr}");
    session::run_stdio(Sock::Unix(s), popts, Side::Client)
}

/// `unix listen PATH`: one peer like `nc -lU` (`mode` `None`, with
/// `pipe`), or the multi-peer modes (with `server`).
///
/// # Errors
/// Binding, or the session's error.
pub fn listen_cmd(
    addr: &UnixAddr,
    mode: Option<Mode>,
    server: &ServerOptions,
    pipe: &PipeOptions,
) -> Result<Outcome, StreamError> {
    let bound = bind(addr).map_err(|e| StreamError::Failed(e.to_string()))?;
    crate::logline::listening(&bound.addr);
    let Some(mode) = mode else {
        let (s, _) = loop {
            match bound.listener.accept() {
                Ok(x) => break x,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(StreamError::Listener(describe(&e))),
            }
        };
        tracing::info!(event = "connected", peer = %peer_name(&s), "connection from {}", peer_name(&s));
        // One peer: stop listening, and the socket file goes.
        drop(bound);
        return session::run_stdio(Sock::Unix(s), pipe, Side::Server);
    };
    let listener_err = |e: std::io::Error| StreamError::Listener(describe(&e));
    bound.listener.set_nonblocking(true).map_err(listener_err)?;
    let sopts = ServerOptions {
        mode,
        ..server.clone()
    };
    // The socket file goes when the server lets go of the listener.
    peers::run_stdio(Bound::Unix(std::sync::Arc::new(bound)), sopts).map_err(listener_err)?;
    Ok(Outcome::PeerClosed)
}
