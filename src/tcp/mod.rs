//! TCP commands: `tcp connect` and `tcp listen`, a thin layer of TCP
//! addresses over what every stream command shares:
//! - [`crate::dial`] reaches the host, directly or through `--proxy`;
//! - [`crate::session`] joins one connection to stdin and stdout;
//! - [`crate::peers`] serves many peers (`-k`, `--echo`, `--upper`,
//!   `--chat`) through [`crate::listener`]'s accept loop.
//!
//! What is TCP's own lives here: TLS on either side (the handshake on the
//! session's one-thread runtime), `--allow`/`--deny` on the one-peer
//! listener, and naming the target when a proxy stands between.

use std::net::SocketAddr;

use crate::access::AccessList;
use crate::dial::{self, DialOptions};
use crate::listener;
use crate::net::{self, announce_listening, show_addr, BindAddr, Family};
use crate::peers::{self, Mode, ServerOptions};
use crate::session::{self, Input, Link, Outcome, Output, PipeOptions, Side, Sock};
use crate::tls::{self, ClientTls, ClientTlsOptions, ServerTls};

pub use crate::session::StreamError as TcpError;

/// The runtime a TLS session's handshake and pump share.
fn session_runtime() -> Result<tokio::runtime::Runtime, TcpError> {
    session::runtime()
        .map_err(|e| TcpError::Failed(format!("could not start ({})", net::describe(&e))))
}

/// A blocking socket, registered on the runtime `rt` is in.
fn register(s: std::net::TcpStream) -> Result<tokio::net::TcpStream, TcpError> {
    s.set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(s))
        .map_err(|e| {
            TcpError::Failed(format!(
                "could not register the socket ({})",
                net::describe(&e)
            ))
        })
}

/// Connects to `host:port` and joins the connection to stdin and stdout.
///
/// # Errors
/// See [`TcpError`].
pub fn connect(
    host: &str,
    port: u16,
    dopts: &DialOptions,
    popts: &PipeOptions,
    tls: Option<&ClientTlsOptions>,
) -> Result<Outcome, TcpError> {
    let stream = dial::connect(host, port, dopts)?;
    let mut popts = std::borrow::Cow::Borrowed(popts);
    if let Some(last) = dopts.proxies.last() {
        // The socket's peer is the first proxy; messages name the target.
        let target = crate::proxy::socks::Dest::Name(host.to_string(), port).to_string();
        tracing::info!(
            "connected to {target} through {} (last {last})",
            crate::text::counted(dopts.proxies.len() as u64, "proxy", "proxies")
        );
        popts.to_mut().peer = Some(target);
    } else if let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) {
        tracing::info!(
            event = "connected",
            peer = %show_addr(peer),
            local = %show_addr(local),
            "connected to {} from {}",
            show_addr(peer),
            show_addr(local)
        );
    }
    session_over(stream, host, port, popts.as_ref(), tls)
}

/// The stdin/stdout session over a connected stream to `host:port`,
/// with TLS first when `tls` asks for it.
///
/// # Errors
/// See [`TcpError`].
pub fn session_over(
    stream: std::net::TcpStream,
    host: &str,
    port: u16,
    popts: &PipeOptions,
    tls: Option<&ClientTlsOptions>,
) -> Result<Outcome, TcpError> {
    let Some(t) = tls else {
        return session::run_stdio(Sock::Tcp(stream), popts, Side::Client);
    };
    let cfg = ClientTls::new(host, port, t)?;
    let rt = session_runtime()?;
    let s = rt.block_on(async {
        let sock = register(stream)?;
        Ok::<_, TcpError>(tls::connect_async(&cfg, sock, t.deadline()).await?)
    })?;
    tracing::info!(
        "TLS with {}: {}",
        cfg.peer(),
        tls::describe_cipher(s.get_ref().1)
    );
    let link = Link::TlsClient(Box::new(s));
    Ok(session::run_on(
        &rt,
        link,
        Input::Stdin,
        Output::Stdout,
        popts,
    )?)
}

/// What `tcp listen` should do.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Where to listen.
    pub bind: BindAddr,
    /// `-4` / `-6`.
    pub family: Family,
    /// `None`: serve one peer like `nc -l`; otherwise the multi-peer mode.
    pub mode: Option<Mode>,
    /// Options for the multi-peer modes.
    pub server: ServerOptions,
    /// Options for the single-peer session.
    pub pipe: PipeOptions,
    /// `--tls`: the server configuration.
    pub tls: Option<ServerTls>,
    /// How long a TLS handshake may take.
    pub handshake_timeout: std::time::Duration,
    /// `--allow` and `--deny`.
    pub access: AccessList,
}

/// Listens, announces the bound address, and serves.
///
/// # Errors
/// See [`TcpError`].
pub fn listen(opts: &ListenOptions) -> Result<Outcome, TcpError> {
    net::raise_nofile_limit();
    let listener = net::bind_tcp(&opts.bind, opts.family)?;
    let local = listener
        .local_addr()
        .map_err(|e| TcpError::Listener(net::describe(&e)))?;
    announce_listening(local);
    if let Some(t) = &opts.tls {
        t.announce();
    }
    let Some(mode) = opts.mode else {
        return serve_one(listener, opts);
    };
    let listener_err = |e: std::io::Error| TcpError::Listener(net::describe(&e));
    listener.set_nonblocking(true).map_err(listener_err)?;
    let sopts = ServerOptions {
        mode,
        tls: opts.tls.clone(),
        handshake_timeout: opts.handshake_timeout,
        access: opts.access.clone(),
        ..opts.server.clone()
    };
    peers::run_stdio(listener::Bound::Tcp(listener), sopts).map_err(listener_err)?;
    Ok(Outcome::PeerClosed)
}

/// Accepts one peer, stops listening, and runs the session (`nc -l`).
/// Peers refused by `--allow`/`--deny`, and failed TLS handshakes, are
/// logged and the listener waits for the next one.
fn serve_one(listener: std::net::TcpListener, opts: &ListenOptions) -> Result<Outcome, TcpError> {
    let rt = match opts.tls {
        Some(_) => Some(session_runtime()?),
        None => None,
    };
    loop {
        let (stream, peer): (std::net::TcpStream, SocketAddr) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(TcpError::Listener(net::describe(&e))),
        };
        if let Err(why) = opts.access.check(peer.ip()) {
            tracing::warn!(event = "refused", client = %show_addr(peer), reason = %why, "refused {}: {why}", show_addr(peer));
            net::arm_reset(&stream);
            continue;
        }
        let Some(t) = &opts.tls else {
            drop(listener);
            tracing::info!(event = "connected", peer = %show_addr(peer), "connection from {}", show_addr(peer));
            return session::run_stdio(Sock::Tcp(stream), &opts.pipe, Side::Server);
        };
        let Some(rt) = rt.as_ref() else {
            continue;
        };
        let accepted = rt.block_on(async {
            let sock = register(stream)?;
            Ok::<_, TcpError>(tls::accept_async(t, sock, peer, opts.handshake_timeout).await?)
        });
        match accepted {
            Ok(s) => {
                drop(listener);
                tracing::info!(
                    "TLS connection from {}: {}",
                    show_addr(peer),
                    tls::describe_cipher(s.get_ref().1)
                );
                let link = Link::TlsServer(Box::new(s));
                return Ok(session::run_on(
                    rt,
                    link,
                    Input::Stdin,
                    Output::Stdout,
                    &opts.pipe,
                )?);
            }
            Err(e) => tracing::warn!("{e}; waiting for the next peer"),
        }
    }
}
