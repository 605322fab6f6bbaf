//! The multi-peer TCP listener: `-k` (hub), `--echo`, `--upper` and
//! `--chat`. One task per peer, a semaphore for `--max-conns`, an idle
//! timeout per peer, and a cancellation token for shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::net::show_addr;
use crate::tcp::members::Room;
use crate::tcp::room::{self, PeerReader};
use crate::tcp::shared::{with_idle, Shared};
pub use crate::tcp::shared::{Mode, PeerError, ServerOptions, DEFAULT_PEER_QUEUE_BYTES};
use crate::tcp::wire::Item;
use crate::text::{to_upper_in, Line};
use crate::tls::ServerTls;

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
    /// Peers refused by `--max-conns`.
    pub refused: u64,
}

/// What the multi-peer server listens on.
pub enum Listener {
    /// TCP (`tcp listen`).
    Tcp(TcpListener),
    /// A Unix stream socket (`unix listen`).
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Listener {
        Listener::Tcp(l)
    }
}

/// One accepted peer.
enum Conn {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream, String),
}

impl Listener {
    async fn accept(&self) -> io::Result<Conn> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, a)| Conn::Tcp(s, a)),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| {
                let name = crate::unix::peer_name(&s);
                Conn::Unix(s, name)
            }),
        }
    }
}

/// Serves peers on `listener` until `shutdown` is cancelled (or, in hub and
/// chat modes, a quit word is typed on the console).
///
/// # Errors
/// None today; the signature leaves room for fatal listener errors.
pub async fn serve(
    listener: impl Into<Listener>,
    opts: ServerOptions,
    console: Console,
    shutdown: CancellationToken,
) -> io::Result<ServeSummary> {
    let limit = opts.max_conns;
    let sem = limit.map(|n| Arc::new(Semaphore::new(n)));
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
    let mut summary = ServeSummary::default();
    let listener: Listener = listener.into();
    let mut trouble = crate::net::AcceptTrouble::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let conn = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning, and keep serving the peers we have.
                trouble.failed(&e);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(crate::net::AcceptTrouble::BACKOFF) => continue,
                }
            }
        };
        let (stream, peer) = match conn {
            Conn::Tcp(s, a) => (s, a),
            Conn::Unix(s, name) => {
                let Some(permit) = admit(&sem, &mut summary, limit, || name.clone()) else {
                    continue;
                };
                summary.accepted += 1;
                let shared = shared.clone();
                tracker.spawn(async move {
                    let _permit = permit;
                    tracing::info!("connection from {name}");
                    match handle_unix_peer(&shared, s, name.clone()).await {
                        Ok(()) => tracing::info!("{name} disconnected"),
                        Err(e) => tracing::warn!("{name}: {e}"),
                    }
                });
                continue;
            }
        };
        if let Err(why) = shared.opts.access.check(peer.ip()) {
            summary.refused += 1;
            tracing::warn!("refused {}: {why}", show_addr(peer));
            crate::net::arm_reset(&stream);
            drop(stream);
            continue;
        }
        let Some(permit) = admit(&sem, &mut summary, limit, || show_addr(peer)) else {
            crate::net::arm_reset(&stream);
            continue;
        };
        summary.accepted += 1;
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let peer_s = show_addr(peer);
            let res = match &shared.opts.tls {
                None => {
                    tracing::info!("connection from {peer_s}");
                    handle_peer(&shared, stream, peer).await
                }
                // Boxed, so a plain peer's task does not carry the size of
                // a TLS session (the 15,000-connection figure depends on it).
                Some(tls) => match Box::pin(tls_session(&shared, tls, stream, peer)).await {
                    Some(r) => r,
                    None => return,
                },
            };
            match res {
                Ok(()) => tracing::info!("{peer_s} disconnected"),
                Err(e) => tracing::warn!("{peer_s}: {e}"),
            }
        });
    }
    drop(listener);
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(summary)
}

/// A `--max-conns` slot for a peer, or `None` when the server is full (the
/// refusal is counted and logged; the caller closes the peer).
fn admit(
    sem: &Option<Arc<Semaphore>>,
    summary: &mut ServeSummary,
    limit: Option<usize>,
    name: impl FnOnce() -> String,
) -> Option<Option<tokio::sync::OwnedSemaphorePermit>> {
    let Some(s) = sem else { return Some(None) };
    match s.clone().try_acquire_owned() {
        Ok(p) => Some(Some(p)),
        Err(_) => {
            summary.refused += 1;
            tracing::warn!(
                "refused {}: already serving {} (--max-conns)",
                name(),
                crate::text::counted(limit.unwrap_or(0) as u64, "peer", "peers")
            );
            None
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
