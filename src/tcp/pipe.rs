//! One TCP session joined to an input and an output, full duplex: what
//! `tcp connect` and the single-peer `tcp listen` run.
//!
//! Each direction runs on its own thread with blocking I/O, so both flow at
//! once (the seeds can only alternate) and a stalled direction holds no more
//! than one buffer. Without text options bytes pass through untouched, with
//! zero-copy `sendfile`/`splice` when stdin is a file or a pipe.

use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{FrameCodec, FrameError};
use crate::net::describe;
use crate::text::{next_line, TextOptions, MAX_LINE};

/// Size of the copy buffer for each direction. Large enough that syscall
/// overhead vanishes at loopback speeds, small enough for a flat RSS.
const COPY_BUF: usize = 256 * 1024;

/// Largest chunk one `sendfile`/`splice` call is asked to move.
const ZERO_COPY_CHUNK: usize = 1 << 20;

/// Where the bytes to send come from.
pub enum Input {
    /// The process's stdin (fd 0); enables the zero-copy paths.
    Stdin,
    /// Any reader, for the library and the demo.
    Reader(Box<dyn Read + Send>),
}

/// Where received bytes go.
pub enum Output {
    /// The process's stdout (fd 1).
    Stdout,
    /// Any writer, for the library and the demo.
    Writer(Box<dyn Write + Send>),
}

/// Session behaviour.
#[derive(Debug, Clone, Default)]
pub struct PipeOptions {
    /// Quit words, CRLF and wire encoding.
    pub text: TextOptions,
    /// `Some(max)` turns on length-prefixed framing with that payload limit.
    pub frame: Option<usize>,
    /// Close the session when the peer sends nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// On a plain connection, check the first bytes received for TLS.
    pub plain_check: Option<Side>,
    /// How messages name the other end when the socket's own peer is not
    /// it (a target reached through `--proxy`); `None` uses the address.
    pub peer: Option<String>,
}

/// How a session ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The peer closed its side and everything it sent was written out.
    PeerClosed,
    /// A quit word was typed and sent.
    QuitSent,
    /// The peer sent a quit word.
    QuitReceived,
    /// Our output (stdout) was closed by its reader.
    OutputClosed,
}

/// Session errors.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// The peer reset the connection.
    #[error("connection to {peer} was reset by the peer")]
    Reset {
        /// The remote end, as shown.
        peer: String,
    },
    /// The peer stopped reading before everything was delivered.
    #[error("sent {sent} {unit} to {peer}, but it stopped reading before the rest was delivered ({reason})", unit = crate::text::plural(*sent, "byte", "bytes"))]
    Undelivered {
        /// The remote end, as shown.
        peer: String,
        /// Bytes written to the socket before it failed.
        sent: u64,
        /// What the socket said.
        reason: String,
    },
    /// The peer sent nothing for the idle timeout.
    #[error("{peer} sent nothing for {secs} s, so the connection was closed (--idle-timeout)")]
    Idle {
        /// The remote end, as shown.
        peer: String,
        /// The timeout, in seconds.
        secs: f64,
    },
    /// Another socket error.
    #[error("connection to {peer} failed ({reason})")]
    Socket {
        /// The remote end, as shown.
        peer: String,
        /// What went wrong, in words.
        reason: String,
    },
    /// Reading the input failed.
    #[error("could not read the input ({0})")]
    Input(String),
    /// Writing the output failed.
    #[error("could not write the output ({0})")]
    Output(String),
    /// Plain text met TLS.
    #[error("{0}")]
    Mismatch(String),
    /// A framing error from the peer or from our own input.
    #[error("{0}")]
    Frame(#[from] FrameError),
}

/// Something that can stop sending: a socket's write side, or a TLS
/// stream's (close_notify, then FIN).
pub trait HalfWrite: Write {
    /// Ends the write direction; the peer sees end of stream.
    ///
    /// # Errors
    /// The socket's error.
    fn close_write(&mut self) -> io::Result<()>;
}

impl HalfWrite for TcpStream {
    fn close_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// A connected stream socket a session can run over: TCP or Unix.
pub enum Sock {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix stream socket (`unix connect`, `unix listen`).
    Unix(UnixStream),
}

impl Sock {
    /// Another handle to the same socket.
    ///
    /// # Errors
    /// The system's error (out of descriptors).
    pub fn try_clone(&self) -> io::Result<Sock> {
        Ok(match self {
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(how),
            Sock::Unix(s) => s.shutdown(how),
        }
    }

    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.set_read_timeout(d),
            Sock::Unix(s) => s.set_read_timeout(d),
        }
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Sock::Tcp(s) => s.take_error(),
            Sock::Unix(s) => s.take_error(),
        }
    }

    /// The other end, as messages show it.
    pub fn peer_name(&self) -> String {
        match self {
            Sock::Tcp(s) => s
                .peer_addr()
                .map(crate::net::show_addr)
                .unwrap_or_else(|_| "the peer".into()),
            Sock::Unix(s) => crate::unix::peer_name(s),
        }
    }
}

impl AsFd for Sock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Tcp(s) => s.as_fd(),
            Sock::Unix(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for Sock {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl HalfWrite for Sock {
    fn close_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// The connection a session runs over.
pub enum Link {
    /// A plain socket: zero-copy paths and socket timeouts apply.
    Plain(Sock),
    /// Separate reading and writing halves (TLS), and the socket under them.
    Split {
        /// The receiving half; it reports the idle timeout as `TimedOut`.
        reader: Box<dyn Read + Send>,
        /// The sending half.
        writer: Box<dyn HalfWrite + Send>,
        /// The socket underneath, to shut down at the end.
        tcp: TcpStream,
    },
}

/// Which end of the connection this session is, for the plaintext-versus-TLS
/// check on the first bytes received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// We connected: a TLS alert as the first reply means the server speaks
    /// TLS. A TLS handshake record is passed on: it answers a ClientHello
    /// that our own input carried, so the user is relaying TLS on purpose.
    Client,
    /// We accepted and print to a terminal: a TLS ClientHello means the
    /// client speaks TLS, and its bytes would only be garbage on the screen.
    Server,
    /// We accepted and write to a file or a pipe: a ClientHello is noted
    /// and passed on unchanged, as a capture or a relay expects.
    ServerRelay,
}

/// Result of one direction's thread.
enum Event {
    /// The sending direction ended: `Ok(true)` if by a quit word, `Ok(false)` at input EOF.
    Sent(Result<bool, PipeError>),
    /// The receiving direction ended.
    Received(Result<Outcome, PipeError>),
}

/// Runs the session until it ends. On input EOF the write side is shut
/// down (half-close) and receiving goes on until the peer closes.
///
/// # Errors
/// A reset, a socket, input or output failure, or a framing violation.
pub fn run(
    link: Link,
    input: Input,
    output: Output,
    opts: &PipeOptions,
) -> Result<Outcome, PipeError> {
    let plain = matches!(link, Link::Plain(_));
    let (stream, reader, writer): (Sock, Box<dyn Read + Send>, Box<dyn HalfWrite + Send>) =
        match link {
            Link::Plain(stream) => {
                let peer = opts.peer.clone().unwrap_or_else(|| stream.peer_name());
                if let Some(t) = opts.idle_timeout {
                    let _ = stream.set_read_timeout(Some(t));
                }
                let clone = |s: &Sock| {
                    s.try_clone().map_err(|e| PipeError::Socket {
                        peer: peer.to_string(),
                        reason: describe(&e),
                    })
                };
                let r = clone(&stream)?;
                let w = clone(&stream)?;
                (stream, Box::new(r), Box::new(w))
            }
            Link::Split {
                reader,
                writer,
                tcp,
            } => (Sock::Tcp(tcp), reader, writer),
        };
    let peer = opts.peer.clone().unwrap_or_else(|| stream.peer_name());
    // The zero-copy paths need the bare socket.
    let zero_copy = if plain { stream.try_clone().ok() } else { None };
    // Whether a person is typing the input: then the session ends as soon
    // as the peer closes. Scripted input (a file, a pipe, a reader) is
    // delivered in full even after the peer half-closes.
    // SAFETY: isatty only inspects fd 0.
    let interactive = matches!(input, Input::Stdin) && unsafe { libc::isatty(0) } == 1;
    let (tx, rx) = mpsc::channel::<Event>();
    let tx2 = tx.clone();
    let send_opts = opts.clone();
    let mut writer = writer;
    let sent_total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent_counter = sent_total.clone();
    let send_peer = peer.clone();
    std::thread::Builder::new()
        .name("sockit-send".into())
        .spawn(move || {
            let peer = send_peer.as_str();
            let res = send_side(
                input,
                &mut *writer,
                zero_copy.as_ref(),
                &send_opts,
                peer,
                &sent_counter,
            );
            let sent = sent_counter.load(std::sync::atomic::Ordering::Relaxed);
            let res = match res {
                // A reset or broken pipe while sending: the peer stopped
                // reading, and what is left was never delivered.
                Err(PipeError::Reset { .. }) => Err(PipeError::Undelivered {
                    peer: peer.to_string(),
                    sent,
                    reason: "connection reset".into(),
                }),
                // Input over: half-close, so the peer sees the end.
                Ok(false) => {
                    let _ = writer.close_write();
                    tracing::info!("input ended; half-closed the connection to {peer}");
                    Ok(false)
                }
                r => r,
            };
            let _ = tx.send(Event::Sent(res));
        })
        .map_err(|e| PipeError::Socket {
            peer: peer.to_string(),
            reason: describe(&e),
        })?;
    let recv_opts = opts.clone();
    let mut reader = reader;
    let recv_peer = peer.clone();
    std::thread::Builder::new()
        .name("sockit-recv".into())
        .spawn(move || {
            let res = recv_side(&mut *reader, output, &recv_opts, &recv_peer);
            let _ = tx2.send(Event::Received(res));
        })
        .map_err(|e| PipeError::Socket {
            peer: peer.to_string(),
            reason: describe(&e),
        })?;

    let mut sent_done = false;
    let mut peer_closed = false;
    let result = loop {
        match rx.recv() {
            Ok(Event::Sent(Ok(false))) => {
                sent_done = true;
                if peer_closed {
                    break Ok(Outcome::PeerClosed);
                }
            }
            Ok(Event::Sent(Ok(true))) => {
                tracing::info!("quit word sent; closing the connection to {peer}");
                break Ok(Outcome::QuitSent);
            }
            // The peer went away while we were still sending, after it had
            // closed its side: it stopped reading, and the rest is lost.
            Ok(Event::Sent(Err(e @ PipeError::Undelivered { .. }))) if peer_closed => break Err(e),
            // A reset while sending may follow a TLS server's alert that the
            // receiving side is about to read: its diagnosis says more.
            Ok(Event::Sent(Err(e @ PipeError::Undelivered { .. }))) => {
                match rx.recv_timeout(std::time::Duration::from_millis(500)) {
                    Ok(Event::Received(Err(m @ PipeError::Mismatch(_)))) => break Err(m),
                    _ => break Err(e),
                }
            }
            Ok(Event::Sent(Err(e))) => break Err(e),
            // A reset before our input was all sent: the rest is lost.
            Ok(Event::Received(Err(PipeError::Reset { .. }))) if !sent_done && !interactive => {
                break Err(PipeError::Undelivered {
                    peer: peer.to_string(),
                    sent: sent_total.load(std::sync::atomic::Ordering::Relaxed),
                    reason: "connection reset".into(),
                })
            }
            Ok(Event::Received(Ok(Outcome::PeerClosed))) if !sent_done && !interactive => {
                tracing::info!("{peer} half-closed; still sending");
                peer_closed = true;
            }
            Ok(Event::Received(r)) => break r,
            Err(_) => break Ok(Outcome::PeerClosed),
        }
    };
    let sent = sent_total.load(std::sync::atomic::Ordering::Relaxed);
    tracing::debug!("session with {peer} ended: {result:?}, {sent} bytes sent");
    let result = match result {
        // Both sides ended in order: make sure the peer took every byte
        // (acknowledged, and no reset that says it closed without reading).
        Ok(Outcome::PeerClosed) if sent_done && sent > 0 => match confirm_delivery(&stream) {
            Ok(()) => Ok(Outcome::PeerClosed),
            Err(reason) => Err(PipeError::Undelivered {
                peer: peer.to_string(),
                sent,
                reason,
            }),
        },
        r => r,
    };
    match &result {
        Ok(Outcome::PeerClosed) => {
            tracing::info!("{peer} closed the connection; sent {sent} bytes")
        }
        Ok(Outcome::QuitReceived) => tracing::info!("{peer} sent a quit word; closing"),
        _ => {}
    }
    match &result {
        // We stopped reading or failed: tell the peer with a reset, so a
        // sender there knows its bytes were not all taken.
        Err(PipeError::Output(_) | PipeError::Frame(_) | PipeError::Idle { .. })
        | Ok(Outcome::OutputClosed) => crate::net::arm_reset(&stream),
        _ => {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
    result
}

/// How long an ended session waits for the peer to acknowledge the last bytes.
const DELIVERY_WAIT: Duration = Duration::from_secs(5);

/// Waits (bounded) until the kernel's send queue is empty, that is until the
/// peer acknowledged every byte, then checks that no reset arrived.
///
/// # Errors
/// A phrase for the error when bytes stayed unacknowledged or were reset.
fn confirm_delivery(stream: &Sock) -> Result<(), String> {
    let fd = stream.as_raw_fd();
    let started = std::time::Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ writes one int into `queued`.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
        if rc != 0 || queued == 0 {
            break;
        }
        if started.elapsed() > DELIVERY_WAIT {
            return Err(format!(
                "{queued} bytes still unacknowledged after {} s",
                DELIVERY_WAIT.as_secs()
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    match stream.take_error() {
        Ok(Some(e)) => Err(describe(&e)),
        _ => Ok(()),
    }
}

/// Maps a socket error to a session error.
fn sock_err(peer: &str, e: &io::Error) -> PipeError {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => PipeError::Reset {
            peer: peer.to_string(),
        },
        _ => PipeError::Socket {
            peer: peer.to_string(),
            reason: describe(e),
        },
    }
}

/// The file behind fd 0 or 1, not closed on drop.
fn borrowed_fd(fd: RawFd) -> ManuallyDrop<File> {
    // SAFETY: fd 0 and 1 stay open for the life of the process; the
    // ManuallyDrop keeps us from closing them.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

/// What kind of file a descriptor is.
#[derive(PartialEq, Eq)]
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

/// Sends the input to the socket. Returns `true` when a quit word ended it.
fn send_side(
    input: Input,
    sock: &mut dyn Write,
    zero_copy: Option<&Sock>,
    opts: &PipeOptions,
    peer: &str,
    sent: &std::sync::atomic::AtomicU64,
) -> Result<bool, PipeError> {
    let line_mode = opts.text.line_mode() || opts.frame.is_some();
    match input {
        Input::Stdin => {
            if let (false, Some(zc)) = (line_mode, zero_copy) {
                match zero_copy_send(0, zc, peer, sent)? {
                    ZeroCopy::Done => return Ok(false),
                    ZeroCopy::Unsupported => {}
                }
            }
            send_from(
                &mut crate::console::Stdin,
                sock,
                opts,
                peer,
                line_mode,
                sent,
            )
        }
        Input::Reader(mut r) => send_from(&mut r, sock, opts, peer, line_mode, sent),
    }
}

/// Whether the zero-copy path moved the whole input.
enum ZeroCopy {
    Done,
    Unsupported,
}

/// `sendfile` from a regular file or `splice` from a pipe into the socket.
fn zero_copy_send(
    fd: RawFd,
    sock: &Sock,
    peer: &str,
    sent: &std::sync::atomic::AtomicU64,
) -> Result<ZeroCopy, PipeError> {
    let kind = fd_kind(fd);
    if kind == FdKind::Other {
        return Ok(ZeroCopy::Unsupported);
    }
    let sfd = sock.as_raw_fd();
    let mut moved_any = false;
    loop {
        // SAFETY: plain syscalls on descriptors we hold; null offsets use
        // and advance the file position.
        let n = unsafe {
            if kind == FdKind::Regular {
                libc::sendfile(sfd, fd, std::ptr::null_mut(), ZERO_COPY_CHUNK)
            } else {
                libc::splice(
                    fd,
                    std::ptr::null_mut(),
                    sfd,
                    std::ptr::null_mut(),
                    ZERO_COPY_CHUNK,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE,
                )
            }
        };
        if n > 0 {
            moved_any = true;
            sent.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        if n == 0 {
            return Ok(ZeroCopy::Done);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
            Some(libc::EINVAL) | Some(libc::ENOSYS) if !moved_any => {
                return Ok(ZeroCopy::Unsupported)
            }
            _ if e.kind() == io::ErrorKind::BrokenPipe
                || e.kind() == io::ErrorKind::ConnectionReset =>
            {
                return Err(sock_err(peer, &e))
            }
            _ => return Err(PipeError::Input(describe(&e))),
        }
    }
}

/// Reads the input with `read` and sends it, raw or line by line.
fn send_from(
    input: &mut dyn Read,
    sock_w: &mut dyn Write,
    opts: &PipeOptions,
    peer: &str,
    line_mode: bool,
    sent: &std::sync::atomic::AtomicU64,
) -> Result<bool, PipeError> {
    let mut chunk = vec![0u8; if line_mode { 64 * 1024 } else { COPY_BUF }];
    let mut pending = BytesMut::new();
    let mut out = BytesMut::new();
    let mut codec = opts.frame.map(FrameCodec::new);
    // One byte over the frame limit, so a line that does not fit shows up
    // as a piece longer than the limit.
    let max_line = opts.frame.map(|m| m.saturating_add(1)).unwrap_or(MAX_LINE);
    loop {
        let n = match input.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PipeError::Input(describe(&e))),
        };
        let eof = n == 0;
        if !line_mode {
            if eof {
                return Ok(false);
            }
            sock_w
                .write_all(&chunk[..n])
                .and_then(|()| sock_w.flush())
                .map_err(|e| sock_err(peer, &e))?;
            sent.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        pending.extend_from_slice(&chunk[..n]);
        let mut quit = false;
        while let Some(line) = next_line(&mut pending, max_line, eof) {
            if line.ended && opts.text.is_quit(&line.data) {
                quit = true;
            }
            if let Some(codec) = codec.as_mut() {
                if line.data.len() >= max_line {
                    return Err(FrameError::LineTooLong { max: max_line - 1 }.into());
                }
                codec.encode(&opts.text.outgoing_piece(&line.data)[..], &mut out)?;
            } else if line.ended {
                opts.text.write_line(&line.data, &mut out);
            } else {
                out.extend_from_slice(&opts.text.outgoing_piece(&line.data));
            }
            if quit {
                break;
            }
        }
        if !out.is_empty() {
            sock_w
                .write_all(&out)
                .and_then(|()| sock_w.flush())
                .map_err(|e| sock_err(peer, &e))?;
            sent.fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
            out.clear();
        }
        if quit {
            return Ok(true);
        }
        if eof {
            return Ok(false);
        }
    }
}

/// Receives from the socket into the output until the peer closes.
fn recv_side(
    sock: &mut dyn Read,
    output: Output,
    opts: &PipeOptions,
    peer: &str,
) -> Result<Outcome, PipeError> {
    match output {
        Output::Stdout => {
            let mut stdout = borrowed_fd(1);
            let r = recv_into(sock, &mut *stdout, opts, peer);
            if matches!(r, Ok(Outcome::PeerClosed)) {
                // Pass the end of the stream on, so a pipeline reading our
                // output ends too (the fifo relay in the README).
                close_stdout();
            }
            r
        }
        Output::Writer(mut w) => {
            let r = recv_into(sock, &mut w, opts, peer);
            let _ = w.flush();
            r
        }
    }
}

/// Closes fd 1 by pointing it at /dev/null, so whoever reads our stdout sees
/// its end while fd 1 stays a valid descriptor.
fn close_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1, which we own for the life of the process.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

/// Writes to the output; a closed output ends the session quietly.
fn put(out: &mut dyn Write, data: &[u8]) -> Result<bool, PipeError> {
    match out.write_all(data) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(PipeError::Output(describe(&e))),
    }
}

/// The receive loop.
fn recv_into(
    sock_r: &mut dyn Read,
    out: &mut dyn Write,
    opts: &PipeOptions,
    peer: &str,
) -> Result<Outcome, PipeError> {
    let line_mode = opts.text.line_mode() || opts.frame.is_some();
    let mut first = opts.plain_check;
    let mut chunk = vec![0u8; if line_mode { 64 * 1024 } else { COPY_BUF }];
    let mut pending = BytesMut::new();
    let mut text_out: Vec<u8> = Vec::new();
    let mut codec = opts.frame.map(FrameCodec::new);
    loop {
        let n = match sock_r.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if opts.idle_timeout.is_some()
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                return Err(PipeError::Idle {
                    peer: peer.to_string(),
                    secs: opts.idle_timeout.map(|d| d.as_secs_f64()).unwrap_or(0.0),
                })
            }
            Err(e) => return Err(sock_err(peer, &e)),
        };
        let eof = n == 0;
        if let Some(side) = first.take() {
            check_plain(side, &chunk[..n], peer)?;
        }
        if !line_mode {
            if eof {
                return Ok(Outcome::PeerClosed);
            }
            if !put(out, &chunk[..n])? {
                return Ok(Outcome::OutputClosed);
            }
            continue;
        }
        pending.extend_from_slice(&chunk[..n]);
        let mut quit = false;
        if let Some(codec) = codec.as_mut() {
            loop {
                let frame = if eof {
                    codec.decode_eof(&mut pending)?
                } else {
                    codec.decode(&mut pending)?
                };
                let Some(frame) = frame else { break };
                let text = opts.text.incoming(&frame);
                if opts.text.is_quit(&text) {
                    quit = true;
                    break;
                }
                text_out.extend_from_slice(&crate::text::escape_line(&text));
                text_out.push(b'\n');
            }
        } else {
            while let Some(line) = next_line(&mut pending, MAX_LINE, eof) {
                let text = opts.text.incoming(&line.data);
                if line.ended && opts.text.is_quit(&text) {
                    quit = true;
                    break;
                }
                text_out.extend_from_slice(&text);
                if line.ended {
                    text_out.push(b'\n');
                }
            }
        }
        if !text_out.is_empty() {
            if !put(out, &text_out)? {
                return Ok(Outcome::OutputClosed);
            }
            text_out.clear();
        }
        if quit {
            return Ok(Outcome::QuitReceived);
        }
        if eof {
            return Ok(Outcome::PeerClosed);
        }
    }
}

/// The first bytes on a plain connection must not be TLS, unless they are
/// being relayed.
fn check_plain(side: Side, first: &[u8], peer: &str) -> Result<(), PipeError> {
    let who = peer;
    match side {
        Side::Client if crate::tls::looks_like_tls_alert(first) => Err(PipeError::Mismatch(
            format!("the server at {who} speaks TLS; add --tls"),
        )),
        Side::Server if crate::tls::looks_like_client_hello(first) => Err(PipeError::Mismatch(
            format!("{who} is speaking TLS to this plain listener; listen with --tls"),
        )),
        Side::ServerRelay if crate::tls::looks_like_client_hello(first) => {
            tracing::warn!(
                "{who} is speaking TLS to this plain listener; passing its bytes on unchanged \
                 (listen with --tls to decrypt them here)"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}
