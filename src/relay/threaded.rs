//! An endpoint whose I/O blocks: the process's stdin and stdout, or any
//! reader and writer (the library, the demo).
//!
//! Files and terminals cannot be polled, and stdin may be shared with other
//! processes, so it is never made non-blocking. Instead each direction gets
//! a thread behind a bounded channel of `QUEUE` chunks: a side that
//! stops reading holds at most that much, and the pump sees backpressure as
//! a full channel. Threads start at the first read or write, so a direction
//! the pump never uses (the stdin thread moves stdin itself) costs none.
//!
//! Two shortcuts keep bulk off the threads:
//! - stdin that is a pipe goes straight to a plain socket with
//!   `splice(2)`, and a regular file with `read`/`write` on one thread,
//!   without the hop through the pump (`send_fd`);
//! - stdout that is a regular file or a device other than a terminal
//!   (`/dev/null`) is written in place: such writes never wait on a peer.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

/// Chunks each channel holds: with [`CHUNK`], what a stalled side buffers.
const QUEUE: usize = 4;

/// Largest chunk the reader thread reads at once.
const CHUNK: usize = 256 * 1024;

/// The buffer a file on stdin is copied to the socket through: 1 MiB
/// measured steadier than 256 or 512 KiB (0.82 s median for 2 GiB, against
/// 0.90 s with 256 KiB, same run).
const FILE_CHUNK: usize = 1 << 20;

/// Largest chunk one `splice` call is asked to move.
const SPLICE_CHUNK: usize = 1 << 20;

/// How often the stdin thread, waiting for room in the socket, checks that
/// the pump still wants it.
const STDIN_POLL_MS: libc::c_int = 100;

/// Where a threaded endpoint's reads come from.
pub enum Source {
    /// The process's stdin (fd 0): a file or a pipe goes straight to a
    /// socket (`send_fd`), and a terminal is never read while the job is
    /// in the background.
    Stdin,
    /// Any reader.
    Reader(Box<dyn Read + Send>),
}

/// Where a threaded endpoint's writes go.
pub enum Sink {
    /// The process's stdout (fd 1). Its end points fd 1 at `/dev/null`, so
    /// a pipeline reading it sees the end while fd 1 stays valid.
    Stdout,
    /// Any writer; its end is a flush.
    Writer(Box<dyn Write + Send>),
}

/// Reading our input failed (not the peer: stdin, a file, a reader).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputFailed(pub io::Error);

/// Writing our output failed (stdout, a file, a writer).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OutputFailed(pub io::Error);

/// What the pump reads from and writes to, on threads.
pub struct Threaded {
    source: Option<Source>,
    rx: Option<mpsc::Receiver<io::Result<Bytes>>>,
    pending: Bytes,
    sink: Option<Sink>,
    /// fd 1 written in place (a file or `/dev/null`).
    direct: bool,
    tx: Option<PollSender<Bytes>>,
    /// Resolves when the writer thread has finished: after our shutdown,
    /// or with the error that stopped it.
    done: Option<oneshot::Receiver<io::Result<()>>>,
    /// Whether the input is a person at a terminal.
    interactive: bool,
}

impl Threaded {
    /// The session's own side: its input and output.
    pub fn new(source: Source, sink: Sink) -> Threaded {
        // SAFETY: isatty only inspects fd 0.
        let interactive = matches!(source, Source::Stdin) && unsafe { libc::isatty(0) } == 1;
        let direct = matches!(sink, Sink::Stdout) && writes_in_place(1);
        Threaded {
            source: Some(source),
            rx: None,
            pending: Bytes::new(),
            sink: Some(sink),
            direct,
            tx: None,
            done: None,
            interactive,
        }
    }

    /// Whether a person types the input at a terminal.
    pub fn interactive(&self) -> bool {
        self.interactive
    }

    /// The input's descriptor, when it is stdin and a regular file or a
    /// pipe, which [`send_fd`] moves to a socket itself. Taking it means
    /// the reader thread never starts.
    pub(super) fn take_stdin_fd(&mut self) -> Option<RawFd> {
        if !matches!(self.source, Some(Source::Stdin)) || fd_kind(0) == FdKind::Other {
            return None;
        }
        self.source = None;
        Some(0)
    }

    fn start_reader(&mut self) -> io::Result<()> {
        let Some(source) = self.source.take() else {
            // The stdin thread took stdin: nothing is read here.
            let (_, rx) = mpsc::channel(1);
            self.rx = Some(rx);
            return Ok(());
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sockit-in".into())
            .spawn(move || {
                let mut r: Box<dyn Read + Send> = match source {
                    Source::Stdin => Box::new(crate::console::Stdin),
                    Source::Reader(r) => r,
                };
                read_all(&mut *r, &tx);
            })?;
        self.rx = Some(rx);
        Ok(())
    }

    fn start_writer(&mut self) -> io::Result<()> {
        let sink = self
            .sink
            .take()
            .unwrap_or(Sink::Writer(Box::new(io::sink())));
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("sockit-out".into())
            .spawn(move || {
                let _ = done_tx.send(write_all(sink, rx));
            })?;
        self.tx = Some(PollSender::new(tx));
        self.done = Some(done_rx);
        Ok(())
    }

    /// The writer thread's error, once it has stopped (its channel
    /// closed): it is on its way through `done`.
    fn poll_writer_error(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let e = match self.done.as_mut() {
            Some(done) => match ready!(Pin::new(done).poll(cx)) {
                Ok(Err(e)) => e,
                _ => io::ErrorKind::BrokenPipe.into(),
            },
            None => io::ErrorKind::BrokenPipe.into(),
        };
        self.done = None;
        self.tx = None;
        Poll::Ready(out_err(e))
    }

    /// Waits until everything written so far is out (the output stays
    /// open). For the end of a session that did not end in order.
    pub async fn drain(&mut self) {
        if let Some(tx) = self.tx.as_mut() {
            tx.close();
        }
        self.tx = None;
        self.sink = None;
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

fn in_err(e: io::Error) -> io::Error {
    io::Error::other(InputFailed(e))
}

fn out_err(e: io::Error) -> io::Error {
    io::Error::other(OutputFailed(e))
}

/// Whether writes to `fd` finish without waiting on anyone: a regular file
/// or a character device that is not a terminal (`/dev/null`).
fn writes_in_place(fd: RawFd) -> bool {
    // SAFETY: fstat writes into the zeroed struct we own; isatty inspects fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => true,
        libc::S_IFCHR => (unsafe { libc::isatty(fd) }) == 0,
        _ => false,
    }
}

/// The reader thread: chunks into the channel until end of input or until
/// nobody listens.
fn read_all(r: &mut dyn Read, tx: &mpsc::Sender<io::Result<Bytes>>) {
    crate::interrupt::shield_thread();
    let mut buf = BytesMut::new();
    loop {
        buf.resize(CHUNK, 0);
        match r.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(buf.split().freeze())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

/// The writer thread: writes each chunk out. An empty chunk ends the
/// sink (stdout to `/dev/null`, a writer flushed); a closed channel just
/// stops.
fn write_all(sink: Sink, mut rx: mpsc::Receiver<Bytes>) -> io::Result<()> {
    crate::interrupt::shield_thread();
    let mut stdout = borrowed_fd(1);
    let mut sink = sink;
    let w: &mut dyn Write = match &mut sink {
        Sink::Stdout => &mut *stdout,
        Sink::Writer(w) => w,
    };
    while let Some(b) = rx.blocking_recv() {
        if !b.is_empty() {
            w.write_all(&b)?;
            continue;
        }
        w.flush()?;
        if let Sink::Stdout = sink {
            close_stdout();
        }
        return Ok(());
    }
    w.flush()
}

/// Points fd 1 at `/dev/null`, so whoever reads our stdout sees its end
/// while fd 1 stays a valid descriptor.
fn close_stdout() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1, which we own for the life of the process.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

/// The file behind fd 0 or 1, not closed on drop.
fn borrowed_fd(fd: RawFd) -> ManuallyDrop<File> {
    // SAFETY: fd 0 and 1 stay open for the life of the process; the
    // ManuallyDrop keeps us from closing them.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

impl AsyncRead for Threaded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.pending.is_empty() {
            if me.rx.is_none() {
                me.start_reader()?;
            }
            let Some(rx) = me.rx.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match ready!(rx.poll_recv(cx)) {
                Some(Ok(b)) => me.pending = b,
                Some(Err(e)) => return Poll::Ready(Err(in_err(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = me.pending.len().min(buf.remaining());
        buf.put_slice(&me.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Threaded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if me.direct {
            let mut out = borrowed_fd(1);
            return Poll::Ready(out.write(data).map_err(out_err));
        }
        if me.tx.is_none() {
            if me.sink.is_none() {
                return Poll::Ready(Err(out_err(io::ErrorKind::BrokenPipe.into())));
            }
            me.start_writer()?;
        }
        let Some(tx) = me.tx.as_mut() else {
            return Poll::Ready(Err(out_err(io::ErrorKind::BrokenPipe.into())));
        };
        let queued = match ready!(tx.poll_reserve(cx)) {
            Ok(()) => tx.send_item(Bytes::copy_from_slice(data)).is_ok(),
            Err(_) => false,
        };
        if !queued {
            return me.poll_writer_error(cx).map(Err);
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Ends the output once everything queued is written: stdout is
    /// pointed at `/dev/null`, a writer flushed.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.direct {
            me.direct = false;
            me.sink = None;
            close_stdout();
            return Poll::Ready(Ok(()));
        }
        if me.tx.is_none() && me.done.is_none() {
            if me.sink.is_none() {
                return Poll::Ready(Ok(()));
            }
            // Never written to, it still ends (stdout to /dev/null).
            me.start_writer()?;
        }
        if let Some(tx) = me.tx.as_mut() {
            if ready!(tx.poll_reserve(cx)).is_ok() {
                let _ = tx.send_item(Bytes::new());
            }
            tx.close();
        }
        me.tx = None;
        if let Some(done) = me.done.as_mut() {
            let r = ready!(Pin::new(done).poll(cx));
            me.done = None;
            if let Ok(Err(e)) = r {
                return Poll::Ready(Err(out_err(e)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// What kind of file a descriptor is.
#[derive(PartialEq, Eq, Clone, Copy)]
enum FdKind {
    Regular,
    Pipe,
    Other,
}

/// Classifies a file descriptor with `fstat`.
fn fd_kind(fd: RawFd) -> FdKind {
    // SAFETY: fstat writes into the zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return FdKind::Other;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => FdKind::Regular,
        libc::S_IFIFO => FdKind::Pipe,
        _ => FdKind::Other,
    }
}

/// Moves a pipe (`splice`) or a regular file (`read` and `write`, which
/// measured faster than `sendfile`) into a non-blocking socket, on a
/// thread of its own, until the input ends; then half-closes the socket
/// (unless `half_close` is false: netcat without `-N`).
/// The socket is never made blocking: on `EAGAIN` the thread waits with
/// `poll(2)` for room. An empty pipe blocks in `splice` itself (stdin is
/// never made non-blocking: other processes may share it).
///
/// `moved` counts as it goes; `stop` ends the thread within
/// [`STDIN_POLL_MS`] once the pump is over.
///
/// When the kernel refuses (`EINVAL` on the first call) it falls back to
/// `read` and `write` on the same thread.
///
/// # Errors
/// [`InputFailed`] for the input's error, the socket's error otherwise.
pub(super) fn send_fd(
    fd: RawFd,
    sock: RawFd,
    half_close: bool,
    moved: &AtomicU64,
    stop: &AtomicBool,
) -> io::Result<()> {
    crate::interrupt::shield_thread();
    let kind = fd_kind(fd);
    if kind == FdKind::Regular {
        // Measured on kernel 6.18 (BENCHMARKS.md, "TCP pipe"): `sendfile`
        // from the page cache to a loopback socket moved 2 GiB in 1.08 s,
        // `read` and `write` through a 256 KiB buffer in 0.86 s, and
        // splicing through a 1 MiB pipe in 1.19 s. So a file is copied.
        return copy_fd(fd, sock, half_close, moved, stop);
    }
    let mut any = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Blocking on the pipe (an empty one waits for input), never on the
        // socket, which is non-blocking.
        let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE;
        let e = match super::splice::splice_with(fd, sock, SPLICE_CHUNK, flags) {
            Ok(0) => {
                if half_close {
                    // SAFETY: shutdown on the socket the pump holds open.
                    unsafe { libc::shutdown(sock, libc::SHUT_WR) };
                }
                return Ok(());
            }
            Ok(n) => {
                any = true;
                moved.fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
            Err(e) => e,
        };
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => wait_writable(sock)?,
            Some(libc::EINVAL) | Some(libc::ENOSYS) if !any => {
                return copy_fd(fd, sock, half_close, moved, stop);
            }
            _ if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
            {
                return Err(e)
            }
            _ => return Err(e),
        }
    }
}

/// The fallback when the kernel will not move this input without a copy:
/// `read` and `write`, waiting with `poll(2)` when the socket is full.
fn copy_fd(
    fd: RawFd,
    sock: RawFd,
    half_close: bool,
    moved: &AtomicU64,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut input = borrowed_fd(fd);
    let mut buf = vec![0u8; FILE_CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => {
                if half_close {
                    // SAFETY: shutdown on the socket the pump holds open.
                    unsafe { libc::shutdown(sock, libc::SHUT_WR) };
                }
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io::Error::other(InputFailed(e))),
        };
        let mut off = 0;
        while off < n {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // SAFETY: writes from our buffer to the socket the pump holds.
            let w = unsafe { libc::write(sock, buf[off..n].as_ptr().cast(), n - off) };
            if w >= 0 {
                off += w as usize;
                moved.fetch_add(w as u64, Ordering::Relaxed);
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => wait_writable(sock)?,
                _ => return Err(e),
            }
        }
    }
}

/// After `EAGAIN` (the socket is full; a pipe input blocks in `splice`
/// itself): waits, bounded, for room in the socket.
fn wait_writable(sock: RawFd) -> io::Result<()> {
    let mut p = libc::pollfd {
        fd: sock,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one pollfd we own.
    let rc = unsafe { libc::poll(&mut p, 1, STDIN_POLL_MS) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
