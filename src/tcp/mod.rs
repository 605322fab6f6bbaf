//! TCP commands: `tcp connect` and `tcp listen`.
//!
//! - [`pipe`]: one session joined to stdin/stdout, full duplex, through
//!   [`crate::relay`]'s pump (stages for text and frames, end rules).
//! - [`server`]: the multi-peer listener (`-k`, `--echo`, `--upper`, `--chat`).
//! - `room`: the member tasks of the hub and chat room behind `-k` and `--chat`.
//! - `members`: the room's member table and bounded queues, a plain value.
//! - `shared`: modes, options, shared state and peer errors, below both
//!   `server` and `room` (accept -> peer task -> room -> queues; no circle).
//! - [`wire`]: lines or frames for the multi-peer modes, free of I/O.

mod members;
pub mod pipe;
mod room;
pub mod server;
mod shared;
pub mod wire;

use std::io::IsTerminal;
use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::console::{stdin_lines, StdoutWriter};
use crate::net::{self, announce_listening, show_addr, BindAddr, ConnectOptions, Family, NetError};
use pipe::{Input, Link, Outcome, Output, PipeError, PipeOptions, Side};

use crate::access::AccessList;
use crate::tls::{self, ClientTls, ClientTlsOptions, ServerTls, TlsError};
use server::{Console, Mode, ServerOptions};

/// Errors from the TCP commands.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    /// Resolving, connecting or binding failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The session failed.
    #[error(transparent)]
    Pipe(#[from] PipeError),
    /// Accepting or running the server failed.
    #[error("the listener failed ({0})")]
    Listener(String),
    /// TLS set-up, trust or handshake failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Another failure, already one sentence.
    #[error("{0}")]
    Failed(String),
}

/// Runs the stdin/stdout session over a plain socket, checking that the
/// peer does not speak TLS.
pub(crate) fn run_plain(
    stream: pipe::Sock,
    popts: &PipeOptions,
    side: Side,
) -> Result<Outcome, TcpError> {
    let mut popts = popts.clone();
    // TLS bytes are refused only where they would land on a screen.
    let side = match side {
        Side::Server if !std::io::stdout().is_terminal() => Side::ServerRelay,
        s => s,
    };
    popts.plain_check = Some(side);
    Ok(pipe::run(
        Link::Plain(stream),
        Input::Stdin,
        Output::Stdout,
        &popts,
    )?)
}

/// The runtime a TLS session's handshake and pump share.
fn session_runtime() -> Result<tokio::runtime::Runtime, TcpError> {
    pipe::runtime()
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
    copts: &ConnectOptions,
    popts: &PipeOptions,
    tls: Option<&ClientTlsOptions>,
) -> Result<Outcome, TcpError> {
    let stream = net::connect(host, port, copts)?;
    let mut popts = std::borrow::Cow::Borrowed(popts);
    if let Some(last) = copts.proxies.last() {
        // The socket's peer is the first proxy; messages name the target.
        let target = crate::proxy::socks::Dest::Name(host.to_string(), port).to_string();
        tracing::info!(
            "connected to {target} through {} (last {last})",
            crate::text::counted(copts.proxies.len() as u64, "proxy", "proxies")
        );
        popts.to_mut().peer = Some(target);
    } else if let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) {
        tracing::info!("connected to {} from {}", show_addr(peer), show_addr(local));
    }
    let popts = popts.as_ref();
    let Some(t) = tls else {
        return run_plain(pipe::Sock::Tcp(stream), popts, Side::Client);
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
    let link = pipe::Link::TlsClient(Box::new(s));
    Ok(pipe::run_on(
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
        eprintln!("{}", t.banner);
    }
    let Some(mode) = opts.mode else {
        return serve_one(listener, opts);
    };
    serve_many(
        move || {
            listener.set_nonblocking(true)?;
            Ok(server::Listener::Tcp(tokio::net::TcpListener::from_std(
                listener,
            )?))
        },
        mode,
        opts,
    )
}

/// Runs the multi-peer server (`-k`, `--echo`, `--upper`, `--chat`) on the
/// listener `make` registers, until Ctrl-C or a quit word.
pub(crate) fn serve_many(
    make: impl FnOnce() -> std::io::Result<server::Listener>,
    mode: Mode,
    opts: &ListenOptions,
) -> Result<Outcome, TcpError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| TcpError::Listener(net::describe(&e)))?;
    let result = runtime.block_on(async move {
        let listener = make().map_err(|e| TcpError::Listener(net::describe(&e)))?;
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("interrupted; closing every connection");
                on_signal.cancel();
            }
        });
        let talks = matches!(mode, Mode::Hub | Mode::Chat);
        let writer = talks.then(StdoutWriter::start);
        let console = Console {
            input: talks.then(|| stdin_lines(opts.server.max_line)),
            output: writer.as_ref().map(|w| w.tx.clone()),
        };
        let sopts = ServerOptions {
            tls: opts.tls.clone(),
            handshake_timeout: opts.handshake_timeout,
            access: opts.access.clone(),
            ..opts.server.clone()
        };
        let res = server::serve(listener, sopts, console, shutdown).await;
        if let Some(w) = writer {
            tokio::task::spawn_blocking(move || w.join()).await.ok();
        }
        res.map_err(|e| TcpError::Listener(net::describe(&e)))
    });
    // Threads blocked on stdin must not keep the process alive.
    runtime.shutdown_background();
    result.map(|s| {
        tracing::info!(
            "served {}, refused {}",
            crate::text::counted(s.accepted, "connection", "connections"),
            s.refused
        );
        Outcome::PeerClosed
    })
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
            tracing::warn!("refused {}: {why}", show_addr(peer));
            net::arm_reset(&stream);
            continue;
        }
        let Some(t) = &opts.tls else {
            drop(listener);
            tracing::info!("connection from {}", show_addr(peer));
            return run_plain(pipe::Sock::Tcp(stream), &opts.pipe, Side::Server);
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
                let link = pipe::Link::TlsServer(Box::new(s));
                return Ok(pipe::run_on(
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
