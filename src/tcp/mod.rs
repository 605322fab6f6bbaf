//! TCP commands: `tcp connect` and `tcp listen`.
//!
//! - [`pipe`]: one session joined to stdin/stdout, full duplex, blocking.
//! - [`server`]: the multi-peer listener (`-k`, `--echo`, `--upper`, `--chat`).
//! - `room`: the hub and chat room behind `-k` and `--chat`.
//! - [`wire`]: lines or frames for the multi-peer modes, free of I/O.

pub mod pipe;
mod room;
pub mod server;
pub mod wire;

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::console::{stdin_lines, StdoutWriter};
use crate::net::{self, announce_listening, show_addr, BindAddr, ConnectOptions, Family, NetError};
use pipe::{Input, Outcome, Output, PipeError, PipeOptions};
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
) -> Result<Outcome, TcpError> {
    let stream = net::connect(host, port, copts)?;
    if let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) {
        tracing::info!("connected to {} from {}", show_addr(peer), show_addr(local));
    }
    Ok(pipe::run(stream, Input::Stdin, Output::Stdout, popts)?)
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
    let Some(mode) = opts.mode else {
        return serve_one(listener, &opts.pipe);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| TcpError::Listener(net::describe(&e)))?;
    let result = runtime.block_on(async move {
        listener
            .set_nonblocking(true)
            .map_err(|e| TcpError::Listener(net::describe(&e)))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| TcpError::Listener(net::describe(&e)))?;
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
        let res = server::serve(listener, opts.server.clone(), console, shutdown).await;
        if let Some(w) = writer {
            tokio::task::spawn_blocking(move || w.join()).await.ok();
        }
        res.map_err(|e| TcpError::Listener(net::describe(&e)))
    });
    // Threads blocked on stdin must not keep the process alive.
    runtime.shutdown_background();
    result.map(|s| {
        tracing::info!("served {} connections, refused {}", s.accepted, s.refused);
        Outcome::PeerClosed
    })
}

/// Accepts one peer, stops listening, and runs the session (`nc -l`).
fn serve_one(listener: std::net::TcpListener, popts: &PipeOptions) -> Result<Outcome, TcpError> {
    let (stream, peer): (std::net::TcpStream, SocketAddr) = loop {
        match listener.accept() {
            Ok(x) => break x,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(TcpError::Listener(net::describe(&e))),
        }
    };
    drop(listener);
    tracing::info!("connection from {}", show_addr(peer));
    Ok(pipe::run(stream, Input::Stdin, Output::Stdout, popts)?)
}
