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
use pipe::{Input, Link, Outcome, Output, PipeError, PipeOptions, Side};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
}

/// A runtime for one TLS session's I/O, driven from the pipe's threads.
fn session_runtime() -> Result<tokio::runtime::Runtime, TcpError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| TcpError::Listener(net::describe(&e)))
}

/// The receiving half of an async stream, as a blocking reader for the pipe.
struct BridgeRead<R> {
    rt: tokio::runtime::Handle,
    half: R,
    idle: Option<std::time::Duration>,
}

impl<R: AsyncRead + Unpin> std::io::Read for BridgeRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (rt, idle, half) = (&self.rt, self.idle, &mut self.half);
        let r = rt.block_on(async move {
            match idle {
                Some(d) => tokio::time::timeout(d, half.read(buf))
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
                None => half.read(buf).await,
            }
        });
        match r {
            // A peer that closes without close_notify: end of stream.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            r => r,
        }
    }
}

/// The sending half of an async stream, as a blocking writer for the pipe.
struct BridgeWrite<W> {
    rt: tokio::runtime::Handle,
    half: W,
}

impl<W: AsyncWrite + Unpin> std::io::Write for BridgeWrite<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (rt, half) = (&self.rt, &mut self.half);
        rt.block_on(half.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let (rt, half) = (&self.rt, &mut self.half);
        rt.block_on(half.flush())
    }
}

impl<W: AsyncWrite + Unpin> pipe::HalfWrite for BridgeWrite<W> {
    fn close_write(&mut self) -> std::io::Result<()> {
        let (rt, half) = (&self.rt, &mut self.half);
        rt.block_on(half.shutdown())
    }
}

/// Joins an async stream (TLS) to the blocking pipe.
fn bridge<S>(
    rt: &tokio::runtime::Runtime,
    stream: S,
    tcp: std::net::TcpStream,
    idle: Option<std::time::Duration>,
) -> pipe::Link
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    pipe::Link::Split {
        reader: Box::new(BridgeRead {
            rt: rt.handle().clone(),
            half: r,
            idle,
        }),
        writer: Box::new(BridgeWrite {
            rt: rt.handle().clone(),
            half: w,
        }),
        tcp,
    }
}

/// Hands a blocking socket to tokio, keeping a duplicate to shut down later.
fn to_tokio(
    stream: std::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let dup = stream.try_clone()?;
    stream.set_nonblocking(true)?;
    Ok((tokio::net::TcpStream::from_std(stream)?, dup))
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
    if let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) {
        tracing::info!("connected to {} from {}", show_addr(peer), show_addr(local));
    }
    let Some(t) = tls else {
        let mut popts = popts.clone();
        popts.plain_check = Some(Side::Client);
        return Ok(pipe::run(
            Link::Plain(stream),
            Input::Stdin,
            Output::Stdout,
            &popts,
        )?);
    };
    let cfg = ClientTls::new(host, port, t)?;
    let rt = session_runtime()?;
    let io = |e: std::io::Error| TcpError::Listener(net::describe(&e));
    let (sock, dup) = rt.block_on(async { to_tokio(stream) }).map_err(io)?;
    let s = rt.block_on(tls::connect_async(&cfg, sock, t.deadline()))?;
    tracing::info!(
        "TLS with {}: {}",
        cfg.peer(),
        tls::describe_cipher(s.get_ref().1)
    );
    let link = bridge(&rt, s, dup, popts.idle_timeout);
    let r = pipe::run(link, Input::Stdin, Output::Stdout, popts);
    rt.shutdown_background();
    Ok(r?)
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
        tracing::info!("served {} connections, refused {}", s.accepted, s.refused);
        Outcome::PeerClosed
    })
}

/// Accepts one peer, stops listening, and runs the session (`nc -l`).
/// Peers refused by `--allow`/`--deny`, and failed TLS handshakes, are
/// logged and the listener waits for the next one.
fn serve_one(listener: std::net::TcpListener, opts: &ListenOptions) -> Result<Outcome, TcpError> {
    loop {
        let (stream, peer): (std::net::TcpStream, SocketAddr) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(TcpError::Listener(net::describe(&e))),
        };
        if let Err(why) = opts.access.check(peer.ip()) {
            tracing::warn!("refused {}: {why}", show_addr(peer));
            continue;
        }
        let Some(t) = &opts.tls else {
            drop(listener);
            tracing::info!("connection from {}", show_addr(peer));
            let mut popts = opts.pipe.clone();
            popts.plain_check = Some(Side::Server);
            return Ok(pipe::run(
                Link::Plain(stream),
                Input::Stdin,
                Output::Stdout,
                &popts,
            )?);
        };
        let rt = session_runtime()?;
        let io = |e: std::io::Error| TcpError::Listener(net::describe(&e));
        let (sock, dup) = rt.block_on(async { to_tokio(stream) }).map_err(io)?;
        match rt.block_on(tls::accept_async(t, sock, peer, opts.handshake_timeout)) {
            Ok(s) => {
                drop(listener);
                tracing::info!(
                    "TLS connection from {}: {}",
                    show_addr(peer),
                    tls::describe_cipher(s.get_ref().1)
                );
                let link = bridge(&rt, s, dup, opts.pipe.idle_timeout);
                let r = pipe::run(link, Input::Stdin, Output::Stdout, &opts.pipe);
                rt.shutdown_background();
                return Ok(r?);
            }
            Err(e) => {
                tracing::warn!("{e}; waiting for the next peer");
                rt.shutdown_background();
            }
        }
    }
}
