//! The many-peer server behind `tcp listen` and `unix listen` with `-k`
//! (hub), `--echo`, `--upper` and `--chat`, over any stream: TCP, a Unix
//! socket, or TLS over TCP. Clients come from [`crate::listener`]'s accept
//! loop (`--max-conns`, `--allow`/`--deny`); each peer gets a task, an
//! idle timeout and the server's cancellation token.
//!
//! Files: this one (dispatch to a mode, the echo and transform loops),
//! `room` (the member tasks of the hub and the chat room), `members` (the
//! room's member table and bounded queues, a plain value), `shared`
//! (modes, options, shared state and peer errors, below `room` and this
//! file: accept -> peer task -> room -> queues; no circle), [`wire`]
//! (lines or frames, free of I/O).

mod members;
mod room;
mod shared;
pub mod wire;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::console::{stdin_lines, StdoutWriter};
use crate::listener::{self, Bound, Busy, Client, Handler, Rules, Stream};
use crate::net::show_addr;
use crate::text::{to_upper_in, Line};
use crate::tls::ServerTls;
use members::Room;
use room::PeerReader;
use shared::{with_idle, Shared};
pub use shared::{Mode, Notice, PeerError, ServerOptions, DEFAULT_PEER_QUEUE_BYTES};
use wire::Item;

/// Read size for the line and frame modes.
const READ_CHUNK: usize = 16 * 1024;

/// The server's terminal: lines typed in, bytes to print.
#[derive(Default)]
pub struct Console {
    /// Lines from stdin (hub and chat modes).
    pub input: Option<mpsc::Receiver<Line>>,
    /// Where peers' data and room notices go.
    pub output: Option<mpsc::Sender<Bytes>>,
}

/// What one finished server run saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServeSummary {
    /// Peers accepted and served.
    pub accepted: u64,
    /// Peers refused by `--allow`/`--deny` or `--max-conns`.
    pub refused: u64,
}

/// Serves peers on `bound` (a non-blocking listener) until `shutdown` is
/// cancelled (or, in hub and chat modes, a quit word is typed on the
/// console).
///
/// # Errors
/// When the listener cannot be registered on this runtime.
pub async fn serve(
    bound: Bound,
    opts: ServerOptions,
    console: Console,
    shutdown: CancellationToken,
) -> io::Result<ServeSummary> {
    let rules = Rules {
        // One accept loop on this runtime: the peers' tasks spread over
        // its threads, and the room's state is shared between them.
        loops: 1,
        name: "sockit-listen",
        max_conns: opts.max_conns,
        access: opts.access.clone(),
        once: false,
        want_local: false,
        busy: Busy {
            verb: "serving",
            one: "peer",
            many: "peers",
        },
        tick: None,
    };
    let shared = Arc::new(Shared {
        room: Room::new(opts.peer_queue_bytes),
        opts,
        console: console.output,
        shutdown: shutdown.clone(),
    });
    let tracker = TaskTracker::new();
    if let Some(input) = console.input {
        if matches!(shared.opts.mode, Mode::Hub | Mode::Chat) {
            tracker.spawn(room::console_task(shared.clone(), input));
        }
    }
    let server = Arc::new(Server(shared));
    let s = listener::run(bound, rules, server, shutdown.clone()).await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    let s = s?;
    Ok(ServeSummary {
        accepted: s.admitted,
        refused: s.refused,
    })
}

/// [`serve`] for the commands: on a runtime of its own, with Ctrl-C, and
/// stdin and stdout as the console in the hub and chat modes. Logs what
/// it served when it ends.
///
/// # Errors
/// The runtime or the listener could not start.
pub fn run_stdio(bound: Bound, opts: ServerOptions) -> io::Result<ServeSummary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("interrupted; closing every connection");
                on_signal.cancel();
            }
        });
        let talks = matches!(opts.mode, Mode::Hub | Mode::Chat);
        let writer = talks.then(StdoutWriter::start);
        let console = Console {
            input: talks.then(|| stdin_lines(opts.max_line)),
            output: writer.as_ref().map(|w| w.tx.clone()),
        };
        let res = serve(bound, opts, console, shutdown).await;
        if let Some(w) = writer {
            tokio::task::spawn_blocking(move || w.join()).await.ok();
        }
        res
    });
    // Threads blocked on stdin must not keep the process alive.
    runtime.shutdown_background();
    let s = result?;
    tracing::info!(
        "served {}, refused {}",
        crate::text::counted(s.accepted, "connection", "connections"),
        s.refused
    );
    Ok(s)
}

/// The listener's handler: each admitted client becomes a peer task.
struct Server(Arc<Shared>);

impl Handler for Server {
    fn serve(self: Arc<Self>, c: Client) -> impl std::future::Future<Output = ()> + Send + 'static {
        if let Some(n) = &self.0.opts.notice {
            (n.0)(&c.peer);
        }
        // Only what the peer's task needs crosses into it: the task lives
        // as long as the peer, and 15,000 of them add up.
        let (conn, name, addr) = (c.conn, c.peer.name, c.peer.addr);
        async move {
            let shared = &self.0;
            let stream = match conn.register() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(
                        "{name}: could not take the connection on ({})",
                        crate::net::describe(&e)
                    );
                    return;
                }
            };
            let res = match (stream, addr) {
                (Stream::Unix(s), _) => {
                    tracing::info!(event = "connected", peer = %name, "connection from {name}");
                    handle_unix_peer(shared, s, name.clone()).await
                }
                (Stream::Tcp(s), Some(peer)) => match &shared.opts.tls {
                    None => {
                        tracing::info!(event = "connected", peer = %name, "connection from {name}");
                        handle_peer(shared, s, peer).await
                    }
                    // Boxed, so a plain peer's task does not carry the size
                    // of a TLS session (the 15,000-connection figure
                    // depends on it).
                    Some(tls) => match Box::pin(tls_session(shared, tls, s, peer)).await {
                        Some(r) => r,
                        None => return,
                    },
                },
                (Stream::Tcp(_), None) => return,
            };
            match res {
                Ok(()) => tracing::info!(event = "closed", peer = %name, "{name} disconnected"),
                Err(e) => {
                    tracing::warn!(event = "closed", peer = %name, reason = %e, "{name}: {e}")
                }
            }
        }
    }
}

/// [`handle_stream`] for a Unix peer.
async fn handle_unix_peer(
    shared: &Arc<Shared>,
    stream: UnixStream,
    name: String,
) -> Result<(), PeerError> {
    handle_stream(
        shared,
        stream,
        || name,
        |s| {
            let (rd, wr) = s.into_split();
            (PeerReader::Unix(rd), wr)
        },
    )
    .await
}

/// Dispatches a TCP peer to its mode.
async fn handle_peer(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<(), PeerError> {
    handle_stream(
        shared,
        stream,
        || show_addr(peer),
        |s| {
            let (rd, wr) = s.into_split();
            (PeerReader::Plain(rd), wr)
        },
    )
    .await
}

/// Dispatches a plain peer (TCP or Unix) to its mode; `name` and `split`
/// are used only by the room modes.
async fn handle_stream<S, W>(
    shared: &Arc<Shared>,
    stream: S,
    name: impl FnOnce() -> String,
    split: impl FnOnce(S) -> (PeerReader, W),
) -> Result<(), PeerError>
where
    S: TryIo + AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let o = &shared.opts;
    match o.mode {
        Mode::Echo if !o.text.line_mode() && o.frame.is_none() => {
            echo_raw(stream, o.idle_timeout, &shared.shutdown).await
        }
        Mode::Echo | Mode::Upper => transform(shared, stream, true).await,
        Mode::Hub | Mode::Chat => {
            let (rd, wr) = split(stream);
            room::peer(shared.clone(), rd, wr, name()).await
        }
    }
}

/// Handshake, then [`handle_tls_peer`]. `None` when there is nothing more
/// to log (the handshake failed and was logged, or the server stopped).
async fn tls_session(
    shared: &Arc<Shared>,
    tls: &ServerTls,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<Result<(), PeerError>> {
    let hs = tokio::select! {
        _ = shared.shutdown.cancelled() => return None,
        r = crate::tls::accept_async(tls, stream, peer, shared.opts.handshake_timeout) => r,
    };
    match hs {
        Ok(s) => {
            tracing::info!(
                "TLS connection from {}: {}",
                show_addr(peer),
                crate::tls::describe_cipher(s.get_ref().1)
            );
            Some(handle_tls_peer(shared, s, peer).await)
        }
        Err(e) => {
            tracing::warn!("{e}; closed");
            None
        }
    }
}

/// [`handle_peer`] for a peer under TLS.
async fn handle_tls_peer(
    shared: &Arc<Shared>,
    mut stream: TlsStream<TcpStream>,
    peer: SocketAddr,
) -> Result<(), PeerError> {
    let o = &shared.opts;
    let res = match o.mode {
        Mode::Echo if !o.text.line_mode() && o.frame.is_none() => {
            echo_copy(&mut stream, o.idle_timeout, &shared.shutdown).await
        }
        Mode::Echo | Mode::Upper => transform(shared, &mut stream, false).await,
        Mode::Hub | Mode::Chat => {
            let (rd, wr) = tokio::io::split(stream);
            return room::peer(shared.clone(), PeerReader::Tls(rd), wr, show_addr(peer)).await;
        }
    };
    // close_notify, so the peer knows nothing was cut off.
    let _ = stream.shutdown().await;
    res
}

/// `--echo` over TLS: bytes back as they came, through the cipher.
async fn echo_copy<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    idle: Option<Duration>,
    shutdown: &CancellationToken,
) -> Result<(), PeerError> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = with_idle(idle, stream.read(&mut buf)) => r?,
        };
        let n = match n {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        stream.write_all(&buf[..n]).await?;
        stream.flush().await?;
    }
}

/// One step of the raw echo loop.
enum Step {
    /// Nothing to read after all.
    WouldBlock,
    /// The peer closed.
    Eof,
    /// Everything read was written back.
    Done,
    /// The socket's send buffer filled; these bytes still need writing.
    Partial(Vec<u8>),
}

/// A socket that can be waited on and read and written without blocking:
/// TCP or Unix.
trait TryIo {
    async fn readable(&self) -> io::Result<()>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

macro_rules! try_io_for {
    ($t:ty) => {
        impl TryIo for $t {
            async fn readable(&self) -> io::Result<()> {
                <$t>::readable(self).await
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$t>::try_read(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, buf)
            }
        }
    };
}
try_io_for!(TcpStream);
try_io_for!(UnixStream);

/// Reads what is there and writes it straight back. The buffer lives on
/// this synchronous frame, not in the task, so an idle peer costs no buffer
/// memory (the 15,000-connection figure depends on it).
fn echo_once<S: TryIo>(stream: &S) -> io::Result<Step> {
    let mut buf = [0u8; 16 * 1024];
    let n = match stream.try_read(&mut buf) {
        Ok(0) => return Ok(Step::Eof),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::WouldBlock),
        Err(e) => return Err(e),
    };
    let mut off = 0;
    while off < n {
        match stream.try_write(&buf[off..n]) {
            Ok(k) => off += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(Step::Partial(buf[off..n].to_vec()))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Step::Done)
}

/// `--echo` without text options: bytes back as they came.
async fn echo_raw<S: TryIo + AsyncWrite + Unpin>(
    mut stream: S,
    idle: Option<Duration>,
    shutdown: &CancellationToken,
) -> Result<(), PeerError> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = with_idle(idle, stream.readable()) => r??,
        }
        match echo_once(&stream)? {
            Step::WouldBlock | Step::Done => {}
            Step::Eof => return Ok(()),
            // The peer is not reading: stop reading from it until it does,
            // so memory stays flat.
            Step::Partial(rest) => stream.write_all(&rest).await?,
        }
    }
}

/// `--upper`, and `--echo` with text options or framing: message by message.
async fn transform<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    mut stream: S,
    mut check_plain: bool,
) -> Result<(), PeerError> {
    let o = &shared.opts;
    let upper = o.mode == Mode::Upper;
    let mut wire = shared.wire();
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    loop {
        buf.reserve(READ_CHUNK);
        let n = tokio::select! {
            _ = shared.shutdown.cancelled() => return Ok(()),
            r = with_idle(o.idle_timeout, stream.read_buf(&mut buf)) => r??,
        };
        let eof = n == 0;
        if std::mem::take(&mut check_plain) && crate::tls::looks_like_client_hello(&buf) {
            return Err(PeerError::SpeaksTls);
        }
        let mut quit = false;
        loop {
            let item = match wire.decode(&mut buf, eof) {
                Ok(Some(i)) => i,
                Ok(None) => break,
                Err(e) => {
                    let note = format!("sockit: {e}");
                    out.extend_from_slice(&wire.encode_one(note.as_bytes()).unwrap_or_default());
                    let _ = stream.write_all(&out).await;
                    return Err(e.into());
                }
            };
            match item {
                Item::Msg(m) => {
                    if o.text.is_quit(&o.text.incoming(&m)) {
                        quit = true;
                        break;
                    }
                    if upper {
                        wire.encode(&to_upper_in(&m, o.text.encoding), &mut out)?;
                    } else {
                        wire.encode(&m, &mut out)?;
                    }
                }
                Item::TooLong => {
                    let note = format!(
                        "sockit: line longer than {} bytes; closing the connection",
                        o.max_line
                    );
                    wire.encode(note.as_bytes(), &mut out)?;
                    let _ = stream.write_all(&out).await;
                    return Err(PeerError::LineTooLong(o.max_line));
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if quit || eof {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// A peer's task lives as long as the peer, and the 15,000-connection
    /// figure is what they add up to: going through the shared accept loop
    /// once made each one 2.4 KiB larger (a future stored twice).
    #[tokio::test]
    async fn a_peer_task_stays_small() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = Arc::new(Server(Arc::new(Shared {
            room: Room::new(1000),
            opts: ServerOptions::default(),
            console: None,
            shutdown: CancellationToken::new(),
        })));
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let client = Client {
            conn: listener::Conn::Tcp(c.into()),
            peer: Default::default(),
            id: 1,
        };
        let f = s.serve(client);
        let n = std::mem::size_of_val(&f);
        assert!(n <= 1800, "a peer's task: {n} B");
    }
}
