//! The one duplex pump, over endpoints that say what they are.
//!
//! [`pump`] moves bytes both ways between two [`Endpoint`]s at once and
//! owns the rules every relay shares:
//! - an end of stream in one direction is passed on as a FIN (TLS:
//!   close_notify, a child: its stdin closed) while the other direction
//!   keeps flowing, with no timer;
//! - a failure on either side is passed on as a reset (`SO_LINGER` 0) to
//!   both sockets;
//! - backpressure both ways: a side that does not read stops the pump
//!   reading the other, and nothing grows without bound;
//! - when both ends are plain sockets (TCP or Unix), bulk goes
//!   socket -> pipe -> socket with `splice(2)` (see `splice`), pipes taken
//!   from a pool only while bytes move, and small messages take one read
//!   and one write through a stack buffer; otherwise bytes go through a
//!   userspace buffer per direction.
//!
//! - faults (`forward --delay`, `--slice`, `--reset-after`, ...) are a
//!   stage of the userspace copy: a connection that suffers them leaves
//!   the splice path, the others stay zero-copy.
//!
//! - a [`Stage`] per direction transforms what the userspace copy moves
//!   (a session's lines, encodings, quit words and frames), and
//!   [`Extras`] carries a session's end rules: it may end with one side's
//!   stream, and only one side's bytes may count against the idle timeout.
//!
//! Files: `splice` (the zero-copy path and its pipe pool), [`child`] (a
//! program per connection as an endpoint), [`threaded`] (stdin and stdout,
//! or any reader and writer, on threads; stdin to a socket on one thread),
//! [`proxy_header`] (the PROXY protocol header, pure), [`fault`] (what
//! faults a connection suffers, pure). `forward`, `sockit proxy`,
//! `tcp connect`, `tcp listen` (one peer, and `--exec`) and `unix
//! connect`/`listen` all run through here.

pub mod child;
pub mod fault;
pub mod proxy_header;
mod splice;
pub mod threaded;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

pub use splice::PipePool;

/// Buffer per direction for the userspace path.
const COPY_BUF: usize = 64 * 1024;

/// One end of a relay.
pub enum Endpoint {
    /// A plain TCP socket.
    Tcp(TcpStream),
    /// A plain Unix stream socket.
    Unix(UnixStream),
    /// TLS we accepted (the listener's `--tls`).
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS we started (a `tls:` target).
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A child process: its stdout is read, its stdin written.
    Child(Box<child::ChildIo>),
    /// Blocking I/O on threads: stdio, or a reader and a writer.
    Threaded(Box<threaded::Threaded>),
}

impl Endpoint {
    fn sock(&self) -> Option<splice::Sock<'_>> {
        match self {
            Endpoint::Tcp(s) => Some(splice::Sock::Tcp(s)),
            Endpoint::Unix(s) => Some(splice::Sock::Unix(s)),
            _ => None,
        }
    }

    /// Arms a reset: the socket underneath sends RST when closed.
    pub fn reset(&self) {
        match self {
            Endpoint::Tcp(s) => crate::net::arm_reset(s),
            Endpoint::Unix(_) | Endpoint::Child(_) | Endpoint::Threaded(_) => {}
            Endpoint::TlsServer(s) => crate::net::arm_reset(s.get_ref().0),
            Endpoint::TlsClient(s) => crate::net::arm_reset(s.get_ref().0),
        }
    }

    /// The socket underneath, for watching it for a reset.
    fn raw_socket(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Endpoint::Tcp(s) => Some(s.as_raw_fd()),
            Endpoint::Unix(s) => Some(s.as_raw_fd()),
            Endpoint::TlsServer(s) => Some(s.get_ref().0.as_raw_fd()),
            Endpoint::TlsClient(s) => Some(s.get_ref().0.as_raw_fd()),
            Endpoint::Child(_) | Endpoint::Threaded(_) => None,
        }
    }

    /// The child behind this endpoint, if it is one.
    pub fn child(&mut self) -> Option<&mut child::ChildIo> {
        match self {
            Endpoint::Child(c) => Some(c),
            _ => None,
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Endpoint::Tcp($s) => $e,
            Endpoint::Unix($s) => $e,
            Endpoint::TlsServer($s) => $e,
            Endpoint::TlsClient($s) => $e,
            Endpoint::Child($s) => $e,
            Endpoint::Threaded($s) => $e,
        }
    };
}

impl AsyncRead for Endpoint {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Endpoint {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// One of the two ends of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first endpoint (the client, in `forward`).
    A,
    /// The second endpoint (the target).
    B,
}

/// How a pump ended.
#[derive(Debug)]
pub enum End {
    /// Both directions reached end of stream.
    Done,
    /// A side failed (a reset, most often); both were reset.
    Failed(Side, io::Error),
    /// No byte moved either way for the idle timeout; both were reset.
    Idle,
    /// The stop token was cancelled; both were reset.
    Stopped,
    /// A fault's byte limit ended it (reset: both were reset; close: both
    /// got a FIN), after this many bytes from this side.
    Fault(fault::Limit, Side, u64),
    /// A quit word in the stream from this side ended it; both got a FIN.
    Quit(Side),
}

/// A transformation one direction of a userspace copy applies: lines,
/// text encodings, quit words, framing (`tcp connect`'s text options).
/// Pure: bytes in, bytes out.
pub trait Stage: Send {
    /// Turns `data`, just read, into the bytes to write, appended to `out`.
    /// `eof` marks the last call (with no data): a partial line goes out.
    ///
    /// # Errors
    /// A violation the direction ends on (a frame too large, TLS bytes
    /// where plain text belongs), carried as `io::Error::other`.
    fn feed(&mut self, data: &[u8], eof: bool, out: &mut bytes::BytesMut) -> io::Result<Flow>;
}

/// Whether a direction goes on after a [`Stage`] has seen a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going: `out` holds what to write.
    More,
    /// Write the chunk as it was read (`out` untouched), and keep going.
    Pass,
    /// A quit word: write what came before it, then end the pump.
    Quit,
}

/// What a pump does beyond moving bytes; most relays need none of it.
#[derive(Default)]
pub struct Extras {
    /// Faults the connection suffers (`forward --delay`, ...).
    pub faults: Option<Box<fault::ConnFaults>>,
    /// The stage from A to B.
    pub up: Option<Box<dyn Stage>>,
    /// The stage from B to A.
    pub down: Option<Box<dyn Stage>>,
    /// The pump ends as soon as this side's stream ends, instead of when
    /// both have (a person at a terminal leaves when the peer does).
    pub ends_with: Option<Side>,
    /// Only bytes from this side count against the idle timeout.
    pub idle_from: Option<Side>,
    /// The copy buffer per direction, when not the default.
    pub buf: Option<usize>,
    /// Told when the stream from a side ends, and whether it was the first
    /// to (for a log line).
    pub on_eof: Option<Box<dyn Fn(Side, bool) + Send + Sync>>,
}

/// A direction ended by a quit word.
#[derive(Debug)]
struct QuitWord;

impl std::fmt::Display for QuitWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quit word")
    }
}

impl std::error::Error for QuitWord {}

/// A direction ended by a fault's byte limit.
#[derive(Debug)]
struct FaultEnd(fault::Limit, u64);

impl std::fmt::Display for FaultEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} after {} bytes", self.0, self.1)
    }
}

impl std::error::Error for FaultEnd {}

/// What a pump moved, and how it ended.
#[derive(Debug)]
pub struct Pumped {
    /// Bytes from A to B.
    pub a_to_b: u64,
    /// Bytes from B to A.
    pub b_to_a: u64,
    /// Which side ended its stream first, if either did.
    pub first_eof: Option<Side>,
    /// How it ended.
    pub end: End,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Shared by both directions of one pump.
struct Meter {
    start: Instant,
    /// Milliseconds after `start` of the last move, either way (kept only
    /// when there is an idle timeout to watch: it costs a clock read).
    last_ms: AtomicU64,
    timed: bool,
    a_to_b: AtomicU64,
    b_to_a: AtomicU64,
    /// 0 none, 1 A, 2 B.
    first_eof: AtomicU8,
    /// Only moves from this side reset the idle clock, if set.
    idle_from: Option<Side>,
    on_eof: Option<Box<dyn Fn(Side, bool) + Send + Sync>>,
}

impl Meter {
    fn new(timed: bool) -> Meter {
        Meter {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            timed,
            a_to_b: AtomicU64::new(0),
            b_to_a: AtomicU64::new(0),
            first_eof: AtomicU8::new(0),
            idle_from: None,
            on_eof: None,
        }
    }

    fn moved(&self, from: Side, n: usize) {
        let c = match from {
            Side::A => &self.a_to_b,
            Side::B => &self.b_to_a,
        };
        c.fetch_add(n as u64, Ordering::Relaxed);
        if self.timed && self.idle_from.is_none_or(|s| s == from) {
            let ms = self.start.elapsed().as_millis() as u64;
            self.last_ms.store(ms, Ordering::Relaxed);
        }
    }

    fn eof(&self, from: Side) {
        let v = if from == Side::A { 1 } else { 2 };
        let first = self
            .first_eof
            .compare_exchange(0, v, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if let Some(f) = &self.on_eof {
            f(from, first);
        }
    }

    /// Resolves once nothing has moved for `limit` (never without one).
    async fn idle(&self, limit: Option<Duration>) {
        let Some(limit) = limit else {
            return std::future::pending().await;
        };
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

/// Moves bytes between `a` and `b` until both directions have ended, one
/// side fails, nothing moves for `idle`, or `stop` is cancelled.
///
/// Between two plain sockets the direction that ends last leaves its FIN
/// to the close: drop both endpoints as soon as this returns.
pub fn pump<'a>(
    a: &'a mut Endpoint,
    b: &'a mut Endpoint,
    idle: Option<Duration>,
    stop: &'a CancellationToken,
    pipes: &'a PipePool,
    faults: Option<Box<fault::ConnFaults>>,
) -> impl std::future::Future<Output = Pumped> + Send + 'a {
    // Not an async fn: its future would hold `pump_with`'s, one more layer
    // in every relay's task.
    let extras = faults.map(|f| {
        Box::new(Extras {
            faults: Some(f),
            ..Extras::default()
        })
    });
    pump_with(a, b, idle, stop, pipes, extras)
}

/// [`pump`] with stages, an end rule and the other [`Extras`].
pub async fn pump_with(
    a: &mut Endpoint,
    b: &mut Endpoint,
    idle: Option<Duration>,
    stop: &CancellationToken,
    pipes: &PipePool,
    extras: Option<Box<Extras>>,
) -> Pumped {
    let mut meter = Meter::new(idle.is_some());
    let mut extras = extras;
    if let Some(x) = extras.as_mut() {
        meter.idle_from = x.idle_from;
        meter.on_eof = x.on_eof.take();
    }
    // Each path boxed on its own: a relay's task holds only the one it uses.
    let end = match (a.sock(), b.sock(), extras) {
        (Some(sa), Some(sb), None) => {
            Box::pin(pump_splice(sa, sb, &meter, idle, stop, pipes)).await
        }
        (_, _, extras) => Box::pin(pump_copy(a, b, &meter, idle, stop, extras)).await,
    };
    match end {
        End::Done => {}
        End::Fault(fault::Limit::Close, ..) | End::Quit(_) => {
            let _ = a.shutdown().await;
            let _ = b.shutdown().await;
        }
        _ => {
            a.reset();
            b.reset();
        }
    }
    Pumped {
        a_to_b: meter.a_to_b.load(Ordering::Relaxed),
        b_to_a: meter.b_to_a.load(Ordering::Relaxed),
        first_eof: match meter.first_eof.load(Ordering::Relaxed) {
            1 => Some(Side::A),
            2 => Some(Side::B),
            _ => None,
        },
        end,
        elapsed: meter.start.elapsed(),
    }
}

/// Both directions with `splice(2)`, between two plain sockets.
///
/// Every future is built inside the `select!` that polls it: a future
/// passed by value into another async fn is stored twice, and at this
/// nesting that tripled the size of each relay (5 KiB instead of 1.6).
async fn pump_splice(
    sa: splice::Sock<'_>,
    sb: splice::Sock<'_>,
    meter: &Meter,
    idle: Option<Duration>,
    stop: &CancellationToken,
    pipes: &PipePool,
) -> End {
    tokio::select! {
        biased;
        r = splice_both(sa, sb, meter, pipes) => r.map_or_else(|(side, e)| End::Failed(side, e), |()| End::Done),
        _ = stop.cancelled() => End::Stopped,
        _ = meter.idle(idle) => End::Idle,
    }
}

/// Both directions until both have ended or one fails.
///
/// A reset is seen without a watcher on every wake-up: a direction that
/// waits to read its source sees the source's reset in that read, and one
/// that waits to write watches its source meanwhile (`splice::one_way`).
/// Once a direction has ended, its source is watched here.
async fn splice_both(
    sa: splice::Sock<'_>,
    sb: splice::Sock<'_>,
    meter: &Meter,
    pipes: &PipePool,
) -> Result<(), (Side, io::Error)> {
    let a_to_b = splice_one(sa, sb, Side::A, meter, pipes);
    let b_to_a = splice_one(sb, sa, Side::B, meter, pipes);
    tokio::pin!(a_to_b, b_to_a);
    tokio::select! {
        biased;
        r = &mut a_to_b => {
            r?;
            tokio::select! {
                biased;
                r = &mut b_to_a => r,
                e = sa.broken() => Err((Side::A, e)),
            }
        }
        r = &mut b_to_a => {
            r?;
            tokio::select! {
                biased;
                r = &mut a_to_b => r,
                e = sb.broken() => Err((Side::B, e)),
            }
        }
    }
}

async fn splice_one(
    from: splice::Sock<'_>,
    to: splice::Sock<'_>,
    side: Side,
    meter: &Meter,
    pipes: &PipePool,
) -> Result<(), (Side, io::Error)> {
    match splice::one_way(from, to, pipes, |n| meter.moved(side, n)).await {
        Ok(()) => {
            // Pass the end of stream on. When the other way has already
            // ended, the close that follows sends this FIN (both receive
            // queues are empty, so it is a FIN, not a reset): one syscall
            // less per connection.
            if meter.first_eof.load(Ordering::Relaxed) == 0 {
                to.shutdown_write();
            }
            meter.eof(side);
            Ok(())
        }
        Err(f) => Err(fault(f, side)),
    }
}

/// The first of two watched sockets to report an error.
async fn watched_either(a: &Watch, b: &Watch) -> (Side, io::Error) {
    tokio::select! {
        e = a.broken() => (Side::A, e),
        e = b.broken() => (Side::B, e),
    }
}

/// Both directions through userspace buffers (TLS, a child process,
/// stdio), with the [`Extras`]' stages and faults.
async fn pump_copy(
    a: &mut Endpoint,
    b: &mut Endpoint,
    meter: &Meter,
    idle: Option<Duration>,
    stop: &CancellationToken,
    extras: Option<Box<Extras>>,
) -> End {
    // A side whose peer resets is noticed even while both copies wait on
    // the other side (a child that does not read, say).
    let wa = Watch::new(a.raw_socket());
    let wb = Watch::new(b.raw_socket());
    let (a_child, b_child) = (a.child().is_some(), b.child().is_some());
    let mut x = extras.map(|x| *x).unwrap_or_default();
    // Stdin that is a file or a pipe goes to a plain socket on a thread of
    // its own, without the hop through the pump.
    let stdin_fd = match (&mut *a, b.sock(), &x.up, &x.faults) {
        (Endpoint::Threaded(t), Some(_), None, None) => t.take_stdin_fd(),
        _ => None,
    };
    let b_fd = b.raw_socket();
    let (ar, aw) = tokio::io::split(&mut *a);
    let (br, bw) = tokio::io::split(&mut *b);
    let (mut up, mut down) = match x.faults.take() {
        Some(f) => {
            let f = *f;
            (Some(f.up), Some(f.down))
        }
        None => (None, None),
    };
    let buf = x.buf.unwrap_or(COPY_BUF);
    let up_dir = Dir {
        to_child: b_child,
        faults: up.as_mut().map(|(f, r)| (&*f, r)),
        stage: x.up.as_deref_mut(),
        buf,
    };
    let down_dir = Dir {
        to_child: a_child,
        faults: down.as_mut().map(|(f, r)| (&*f, r)),
        stage: x.down.as_deref_mut(),
        buf,
    };
    let a_to_b: Pin<Box<dyn std::future::Future<Output = Copied> + Send + '_>> =
        match (stdin_fd, b_fd) {
            (Some(fd), Some(sock)) => Box::pin(stdin_up(fd, sock, meter)),
            _ => Box::pin(copy(ar, bw, Side::A, meter, up_dir)),
        };
    let b_to_a = copy(br, aw, Side::B, meter, down_dir);
    tokio::select! {
        r = both(a_to_b, b_to_a, x.ends_with) => match r {
            Ok(()) => End::Done,
            Err((side, e)) => match e.get_ref() {
                Some(i) if i.is::<QuitWord>() => End::Quit(side),
                Some(i) => match i.downcast_ref::<FaultEnd>() {
                    Some(FaultEnd(limit, n)) => End::Fault(*limit, side, *n),
                    None => End::Failed(side, e),
                },
                None => End::Failed(side, e),
            },
        },
        (side, e) = watched_either(&wa, &wb) => End::Failed(side, e),
        _ = meter.idle(idle) => End::Idle,
        _ = stop.cancelled() => End::Stopped,
    }
}

/// What one direction's copy comes to.
type Copied = Result<(), (Side, io::Error)>;

/// What one direction of a userspace copy writes to, and suffers.
struct Dir<'f> {
    /// Its destination is a child's stdin.
    to_child: bool,
    faults: Option<(&'f fault::DirFaults, &'f mut fault::Rand)>,
    stage: Option<&'f mut (dyn Stage + 'static)>,
    buf: usize,
}

/// Both directions until both have ended (or `ends_with`'s has), or one
/// fails.
async fn both<U, D>(up: U, down: D, ends_with: Option<Side>) -> Copied
where
    U: std::future::Future<Output = Copied>,
    D: std::future::Future<Output = Copied>,
{
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                r?;
                up_done = true;
                if ends_with == Some(Side::A) {
                    break;
                }
            }
            r = &mut down, if !down_done => {
                r?;
                down_done = true;
                if ends_with == Some(Side::B) {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Stdin (a pipe or a file) to a plain socket on a thread of its own (see
/// [`threaded::send_fd`]); the socket is half-closed at the end.
async fn stdin_up(fd: std::os::fd::RawFd, sock: std::os::fd::RawFd, meter: &Meter) -> Copied {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    /// When the pump is done with the thread (or it is done): the bytes
    /// it moved are counted, and it is told to stop.
    struct Done<'m> {
        meter: &'m Meter,
        moved: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    }
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            let n = self.moved.load(Ordering::Relaxed);
            self.meter
                .moved(Side::A, usize::try_from(n).unwrap_or(usize::MAX));
        }
    }
    let done = Done {
        meter,
        moved: Arc::new(AtomicU64::new(0)),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (m, st) = (done.moved.clone(), done.stop.clone());
    let spawned = std::thread::Builder::new()
        .name("sockit-stdin".into())
        .spawn(move || {
            let _ = tx.send(threaded::send_fd(fd, sock, &m, &st));
        });
    if let Err(e) = spawned {
        return Err((Side::A, io::Error::other(threaded::InputFailed(e))));
    }
    let r = rx.await;
    drop(done);
    match r {
        Ok(Ok(())) => {
            meter.eof(Side::A);
            Ok(())
        }
        Ok(Err(e)) if e.get_ref().is_some_and(|i| i.is::<threaded::InputFailed>()) => {
            Err((Side::A, e))
        }
        Ok(Err(e)) => Err((Side::B, e)),
        Err(_) => Err((Side::A, io::Error::other("the sending thread stopped"))),
    }
}

/// The side a splice fault belongs to, for a direction reading `from`.
fn fault(f: splice::Fault, from: Side) -> (Side, io::Error) {
    let other = if from == Side::A { Side::B } else { Side::A };
    match f {
        splice::Fault::Source(e) => (from, e),
        splice::Fault::Dest(e) => (other, e),
    }
}

/// Watches a socket that the copies cannot reach (it is borrowed by
/// them) for an error: a duplicate descriptor registered for error events
/// only.
struct Watch(Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>);

impl Watch {
    fn new(fd: Option<std::os::fd::RawFd>) -> Watch {
        use std::os::fd::FromRawFd;
        let dup = fd.and_then(|fd| {
            // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor we own.
            let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
            // SAFETY: `d` is fresh and owned only here.
            (d >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(d) })
        });
        Watch(dup.and_then(|d| {
            // SAFETY: the OwnedFd is open, owned by the AsyncFd, and its
            // descriptor never changes.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(d, tokio::io::Interest::ERROR)
            }
            .ok()
        }))
    }

    /// Resolves with the socket's error once it has one (never without a
    /// socket).
    async fn broken(&self) -> io::Error {
        let Some(fd) = &self.0 else {
            return std::future::pending().await;
        };
        loop {
            match fd.ready(tokio::io::Interest::ERROR).await {
                Ok(mut g) => match socket2::SockRef::from(fd.get_ref()).take_error() {
                    Ok(Some(e)) => return e,
                    _ => g.clear_ready(),
                },
                Err(e) => return e,
            }
        }
    }
}

/// One direction through a userspace buffer: read, write all, and on end
/// of stream shut the writer down. A TLS peer that closes without
/// close_notify counts as an end of stream.
///
/// With faults, each chunk waits out the delay and the rate, goes on in
/// slices, and the first byte limit ends the direction: a reset or a close
/// (an error carrying [`FaultEnd`]) or a stall (nothing more, ever).
async fn copy<R, W>(
    mut r: R,
    mut w: W,
    from: Side,
    meter: &Meter,
    dir: Dir<'_>,
) -> Result<(), (Side, io::Error)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let to = if from == Side::A { Side::B } else { Side::A };
    let mut buf = vec![0u8; dir.buf];
    let mut stage = dir.stage;
    let mut staged = bytes::BytesMut::new();
    // Without faults: no limits, no waits, one piece per chunk.
    let mut unused = fault::Rand::new(0);
    let (f, rng) = match dir.faults {
        Some((f, rng)) => (f, rng),
        None => (&fault::DirFaults::NONE, &mut unused),
    };
    let limit = f.limit();
    let started = Instant::now();
    let mut sent = 0u64;
    loop {
        let mut want = buf.len();
        if let Some(rate) = f.rate {
            // A twentieth of a second's worth at a time: the cap is smooth.
            want = want.min(usize::try_from((rate / 20).max(1)).unwrap_or(usize::MAX));
        }
        if let Some((n, how)) = limit {
            let left = n.saturating_sub(sent);
            if left == 0 {
                return limit_reached(how, n, from).await;
            }
            want = want.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        let n = match r.read(&mut buf[..want]).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err((from, e)),
        };
        let mut flow = Flow::More;
        let data: &[u8] = match stage.as_deref_mut() {
            Some(st) => {
                staged.clear();
                flow = st
                    .feed(&buf[..n], n == 0, &mut staged)
                    .map_err(|e| (from, e))?;
                if flow == Flow::Pass {
                    &buf[..n]
                } else {
                    &staged
                }
            }
            None => &buf[..n],
        };
        let at_end = n == 0;
        if let (Some((d, j)), false) = (f.delay, data.is_empty()) {
            tokio::time::sleep(rng.jittered(d, j)).await;
        }
        let n = data.len();
        let mut off = 0;
        while off < n {
            let piece = match f.slice {
                Some((lo, hi)) => rng.size(lo, hi).min(n - off),
                None => n - off,
            };
            match w.write_all(&data[off..off + piece]).await {
                Ok(()) => {}
                // A child that closed its stdin: nothing more can go to it.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe && dir.to_child => {
                    meter.eof(from);
                    return Ok(());
                }
                Err(e) => return Err((to, e)),
            }
            if let Err(e) = w.flush().await {
                return Err((to, e));
            }
            off += piece;
            sent += piece as u64;
            meter.moved(from, piece);
            if let Some(rate) = f.rate {
                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                let so_far = started.elapsed();
                if due > so_far {
                    tokio::time::sleep(due - so_far).await;
                }
            }
            if off < n {
                if let Some(d) = f.slice_delay {
                    tokio::time::sleep(d).await;
                }
            }
        }
        if flow == Flow::Quit {
            return Err((from, io::Error::other(QuitWord)));
        }
        if at_end {
            meter.eof(from);
            if let Some(d) = f.slow_close {
                tokio::time::sleep(d).await;
            }
            let _ = w.shutdown().await;
            return Ok(());
        }
    }
}

/// A fault's byte limit reached: a stall never returns, a reset or close
/// ends the pump with a [`FaultEnd`].
async fn limit_reached(how: fault::Limit, n: u64, from: Side) -> Result<(), (Side, io::Error)> {
    if how == fault::Limit::Stall {
        std::future::pending::<()>().await;
    }
    Err((from, io::Error::other(FaultEnd(how, n))))
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Every held relay carries these futures: 8,000 idle connections cost
    /// what they add up to. A future passed by value into another async fn
    /// is stored twice, which once made `pump_splice` 5 KiB.
    #[tokio::test]
    async fn relay_futures_stay_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        let (pipes, stop) = (PipePool::new(), CancellationToken::new());
        let meter = Meter::new(false);
        let (sa, sb) = (splice::Sock::Tcp(&a), splice::Sock::Tcp(&b));
        let one = splice::one_way(sa, sb, &pipes, |_| ());
        assert!(
            std::mem::size_of_val(&one) <= 320,
            "one_way: {}",
            std::mem::size_of_val(&one)
        );
        let both = pump_splice(sa, sb, &meter, None, &stop, &pipes);
        assert!(
            std::mem::size_of_val(&both) <= 1600,
            "pump_splice: {}",
            std::mem::size_of_val(&both)
        );
        drop((one, both));
        let (mut ea, mut eb) = (Endpoint::Tcp(a), Endpoint::Tcp(b));
        let p = pump(&mut ea, &mut eb, None, &stop, &pipes, None);
        assert!(
            std::mem::size_of_val(&p) <= 256,
            "pump: {}",
            std::mem::size_of_val(&p)
        );
    }
}
