//! One session: a stream joined to an input and an output, full duplex.
//! It is what `tcp connect`, the single-peer `tcp listen` and `unix
//! connect`/`listen` run, and it does not care which kind of stream it
//! holds: TCP, a Unix socket, or TLS over TCP.
//!
//! The bytes move through [`crate::relay::pump_with`], the same pump as
//! `forward`'s: the input and output are a threaded endpoint (stdin and
//! stdout may be terminals or files, which cannot be polled), the
//! connection is a socket or a TLS session. What is particular to a
//! session lives here, as stages and end rules the pump applies:
//! - text options and framing are [`Stage`]s, one per direction (`stages`);
//! - the first bytes received are checked for TLS on a plain connection;
//! - a person at a terminal leaves when the peer does; scripted input is
//!   delivered in full, then the kernel's send queue is watched until the
//!   peer has acknowledged every byte;
//! - the pump's ending becomes an [`Outcome`] or a [`PipeError`], which the
//!   binary maps to an exit code.
//!
//! Without text options bytes pass through untouched, with zero-copy
//! `splice` when stdin is a pipe; a file goes to the socket on one thread.

mod stages;

use std::io::{self, IsTerminal, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::frame::FrameError;
use crate::net::{describe, NetError};
use crate::relay::threaded::{InputFailed, OutputFailed, Threaded};
use crate::relay::{self, End, Endpoint, Stage};
use crate::text::TextOptions;
use crate::tls::TlsError;
use stages::{check_plain, RecvText, SendText};

/// Errors from the stream commands (`tcp` and `unix`, connect and listen).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Resolving, connecting or binding failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Reaching the destination (directly or through `--proxy`) failed.
    #[error(transparent)]
    Dial(#[from] crate::dial::DialError),
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

impl crate::error::Failure for StreamError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            StreamError::Net(e) => e.kind(),
            StreamError::Dial(e) => e.kind(),
            StreamError::Pipe(e) => e.kind(),
            StreamError::Tls(e) => e.kind(),
            StreamError::Listener(_) | StreamError::Failed(_) => crate::error::Kind::Runtime,
        }
    }
}

/// Runs the session between stdin/stdout and a plain socket, checking
/// that the peer does not speak TLS where its bytes would land on a
/// screen.
///
/// # Errors
/// The session's error.
pub fn run_stdio(stream: Sock, popts: &PipeOptions, side: Side) -> Result<Outcome, StreamError> {
    let mut popts = popts.clone();
    // TLS bytes are refused only where they would land on a screen.
    let side = match side {
        Side::Server if !std::io::stdout().is_terminal() => Side::ServerRelay,
        s => s,
    };
    popts.plain_check = Some(side);
    Ok(run(
        Link::Plain(stream),
        Input::Stdin,
        Output::Stdout,
        &popts,
    )?)
}

/// The copy buffer for each direction. Large enough that syscall overhead
/// vanishes at loopback speeds, small enough for a flat RSS.
const COPY_BUF: usize = 256 * 1024;

/// How long an ended session waits for its output to take what is queued.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Where the bytes to send come from: stdin (with its fast paths) or any
/// reader, for the library and the demo.
pub use crate::relay::threaded::Source as Input;

/// Where received bytes go: stdout or any writer.
pub use crate::relay::threaded::Sink as Output;

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
    /// `--hexdump` and `--log`: what passes is shown or kept.
    pub taps: Option<std::sync::Arc<crate::relay::tap::Taps>>,
    /// `--send-only` or `--recv-only`.
    pub only: Option<Only>,
    /// netcat's rules instead of sockit's (`sockit nc`).
    pub nc: Option<NcRules>,
}

/// One way only, as ncat has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// `--send-only`: what arrives is dropped, and the session ends once
    /// the input is delivered.
    Send,
    /// `--recv-only`: nothing is sent, and the input is not read (the
    /// connection is not half-closed either).
    Recv,
}

/// netcat's session rules, for `sockit nc`. The idle timeout
/// ([`PipeOptions::idle_timeout`], netcat's `-w`) then counts only once the
/// input has ended, and running out of it is a clean end.
#[derive(Debug, Clone, Default)]
pub struct NcRules {
    /// `-N`: the end of the input is passed on as a FIN. Without it the
    /// socket stays open for sending, and receiving goes on.
    pub half_close: bool,
    /// `-q`: the session ends this long after the input ends (implies
    /// `-N`).
    pub quit_after_eof: Option<Duration>,
    /// `-C`: each LF sent goes as CRLF (one already after a CR stays).
    pub crlf: bool,
    /// `-i`: pause this long after each line, both ways.
    pub line_pause: Option<Duration>,
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

impl crate::error::Failure for PipeError {
    fn kind(&self) -> crate::error::Kind {
        // Every ending a session reports as an error is a runtime failure;
        // a closed stdout is an Outcome, not an error.
        crate::error::Kind::Runtime
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
            Sock::Unix(s) => crate::net::unix::peer_name(s),
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

/// The connection a session runs over.
pub enum Link {
    /// A plain socket: stdin that is a file or a pipe goes straight to it.
    Plain(Sock),
    /// TLS we started, registered on the runtime given to [`run_on`].
    TlsClient(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    /// TLS we accepted, registered on the runtime given to [`run_on`].
    TlsServer(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl Link {
    /// Another handle to the socket underneath, for the checks after the
    /// pump: the send queue, a late reset, the final shutdown.
    fn socket(&self) -> io::Result<Sock> {
        let tcp = |fd: BorrowedFd<'_>| -> io::Result<Sock> {
            Ok(Sock::Tcp(TcpStream::from(fd.try_clone_to_owned()?)))
        };
        match self {
            Link::Plain(s) => s.try_clone(),
            Link::TlsClient(s) => tcp(s.get_ref().0.as_fd()),
            Link::TlsServer(s) => tcp(s.get_ref().0.as_fd()),
        }
    }
}

/// The runtime a session's pump runs on: one thread, this one.
///
/// # Errors
/// The system's error (out of descriptors).
pub fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
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
    let rt = runtime().map_err(|e| PipeError::Socket {
        peer: opts.peer.clone().unwrap_or_else(|| "the peer".into()),
        reason: describe(&e),
    })?;
    run_on(&rt, link, input, output, opts)
}

/// [`run`] on a runtime the caller made, the one a TLS link's socket is
/// registered on.
///
/// # Errors
/// As [`run`].
pub fn run_on(
    rt: &tokio::runtime::Runtime,
    link: Link,
    input: Input,
    output: Output,
    opts: &PipeOptions,
) -> Result<Outcome, PipeError> {
    let sock = link.socket().map_err(|e| PipeError::Socket {
        peer: opts.peer.clone().unwrap_or_else(|| "the peer".into()),
        reason: describe(&e),
    })?;
    let peer = opts.peer.clone().unwrap_or_else(|| sock.peer_name());
    let socket_err = |e: io::Error| PipeError::Socket {
        peer: peer.clone(),
        reason: describe(&e),
    };
    // --recv-only: the input is never read.
    let input = match opts.only {
        Some(Only::Recv) => Input::Reader(Box::new(io::empty())),
        _ => input,
    };
    let local = Threaded::new(input, output);
    // Whether a person is typing the input: then the session ends as soon
    // as the peer closes. Scripted input (a file, a pipe, a reader) is
    // delivered in full even after the peer half-closes.
    let interactive = local.interactive();
    let line_mode = opts.text.line_mode() || opts.frame.is_some();
    let nc = opts.nc.as_ref();
    let (tap_up, tap_down) = match &opts.taps {
        Some(t) => {
            let (u, d) = t.stages(1, &peer).map_err(|e| {
                PipeError::Output(format!("could not open the --log files ({})", describe(&e)))
            })?;
            (Some(u), Some(d))
        }
        None => (None, None),
    };
    let send_text = line_mode.then(|| Box::new(SendText::new(opts)) as Box<dyn Stage>);
    let crlf = nc
        .is_some_and(|r| r.crlf)
        .then(|| Box::new(stages::CrlfStage::default()) as Box<dyn Stage>);
    let recv_text = (line_mode || opts.plain_check.is_some())
        .then(|| Box::new(RecvText::new(opts, &peer, line_mode)) as Box<dyn Stage>);
    let drop_all =
        (opts.only == Some(Only::Send)).then(|| Box::new(stages::Discard) as Box<dyn Stage>);
    let extras = relay::Extras {
        // What we send is shown as it goes on the wire; what we receive,
        // as it came.
        up: relay::Chain::of(relay::Chain::of(send_text, crlf), tap_up),
        down: relay::Chain::of(tap_down, relay::Chain::of(recv_text, drop_all)),
        ends_with: match (opts.only, nc) {
            (Some(Only::Send), _) => Some(relay::Side::A),
            // netcat goes on until both ways are done, even at a terminal.
            (_, Some(_)) => None,
            _ => interactive.then_some(relay::Side::B),
        },
        // The idle timeout is about the peer: our own typing does not count.
        idle_from: Some(relay::Side::B),
        idle_after_eof: nc.and(Some(relay::Side::A)),
        hold_eof: match (opts.only, nc) {
            (Some(Only::Recv), _) => Some(relay::Side::A),
            (_, Some(r)) if !r.half_close && r.quit_after_eof.is_none() => Some(relay::Side::A),
            _ => None,
        },
        quit_after_eof: nc
            .and_then(|r| r.quit_after_eof)
            .map(|d| (relay::Side::A, d)),
        line_pause: nc.and_then(|r| r.line_pause),
        buf: Some(COPY_BUF),
        on_eof: Some(Box::new({
            let peer = peer.clone();
            move |side, first| match side {
                relay::Side::A => {
                    tracing::info!("input ended; half-closed the connection to {peer}")
                }
                relay::Side::B if first && !interactive => {
                    tracing::info!("{peer} half-closed; still sending")
                }
                relay::Side::B => {}
            }
        })),
        ..relay::Extras::default()
    };
    let pumped = rt.block_on(async {
        let mut b = match link {
            Link::Plain(Sock::Tcp(s)) => {
                s.set_nonblocking(true)?;
                Endpoint::Tcp(tokio::net::TcpStream::from_std(s)?)
            }
            Link::Plain(Sock::Unix(s)) => {
                s.set_nonblocking(true)?;
                Endpoint::Unix(tokio::net::UnixStream::from_std(s)?)
            }
            Link::TlsClient(s) => Endpoint::TlsClient(s),
            Link::TlsServer(s) => Endpoint::TlsServer(s),
        };
        let mut a = Endpoint::Threaded(Box::new(local));
        let (stop, pipes) = (CancellationToken::new(), relay::PipePool::new());
        let p = relay::pump_with(
            &mut a,
            &mut b,
            opts.idle_timeout,
            &stop,
            &pipes,
            Some(Box::new(extras)),
        )
        .await;
        // What the peer sent before the end goes out before the end is told.
        if let Endpoint::Threaded(t) = &mut a {
            let _ = tokio::time::timeout(DRAIN_WAIT, t.drain()).await;
        }
        Ok::<_, io::Error>(p)
    });
    let p = pumped.map_err(socket_err)?;
    let sent = p.a_to_b;
    // Whether all our input went out: it ended first, or the pump waited
    // for both directions.
    let sent_done = p.first_eof == Some(relay::Side::A) || !interactive;
    tracing::debug!("session with {peer} ended: {:?}, {sent} bytes sent", p.end);
    let result = match p.end {
        End::Done if sent_done && sent > 0 => match confirm_delivery(&sock) {
            Ok(()) => Ok(Outcome::PeerClosed),
            Err(reason) => Err(PipeError::Undelivered {
                peer: peer.clone(),
                sent,
                reason,
            }),
        },
        End::Done | End::Stopped => Ok(Outcome::PeerClosed),
        End::Quit(relay::Side::A) => {
            tracing::info!("quit word sent; closing the connection to {peer}");
            Ok(Outcome::QuitSent)
        }
        End::Quit(relay::Side::B) => {
            tracing::info!("{peer} sent a quit word; closing");
            Ok(Outcome::QuitReceived)
        }
        // netcat's -w: the final reads are over.
        End::Idle if opts.nc.is_some() => Ok(Outcome::PeerClosed),
        End::Idle => Err(PipeError::Idle {
            peer: peer.clone(),
            secs: opts.idle_timeout.map(|d| d.as_secs_f64()).unwrap_or(0.0),
        }),
        End::Fault(..) => Err(PipeError::Socket {
            peer: peer.clone(),
            reason: "a fault ended it".into(),
        }),
        End::Failed(side, e) => {
            let reset = matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            );
            let reset_is_plain = p.first_eof == Some(relay::Side::A) || interactive;
            match (side, reset) {
                // The reset may have overtaken the first bytes the peer
                // sent before it: a TLS alert says more than the reset.
                (relay::Side::B, true) if p.b_to_a == 0 && opts.plain_check.is_some() => {
                    late_mismatch(&sock, opts.plain_check, &peer)
                        .map_or_else(|| failed(e, &peer, sent, reset_is_plain), Err)
                }
                // The peer had closed its side, then went away with nothing
                // of ours unread: nothing was lost.
                (relay::Side::B, true) if p.first_eof == Some(relay::Side::B) && sent == 0 => {
                    Ok(Outcome::PeerClosed)
                }
                _ => failed(e, &peer, sent, reset_is_plain),
            }
        }
    };
    if let Ok(Outcome::PeerClosed) = &result {
        let first = match p.first_eof {
            Some(relay::Side::A) => "local",
            Some(relay::Side::B) => "peer",
            None => "neither",
        };
        tracing::info!(
            event = "closed",
            peer = %peer,
            bytes_up = sent,
            bytes_down = p.b_to_a,
            secs = p.elapsed.as_secs_f64(),
            first_closed = first,
            "{peer} closed the connection; sent {sent} bytes"
        );
    }
    if matches!(
        result,
        Ok(Outcome::PeerClosed | Outcome::QuitSent | Outcome::QuitReceived)
    ) {
        let _ = sock.shutdown(Shutdown::Both);
    }
    // The pump armed a reset for every other ending; it goes out as the
    // last descriptor closes.
    result
}

/// A failed session in words. `reset_is_plain`: a reset now means only that
/// (our input was all sent, or a person was typing); otherwise the peer
/// stopped reading before our input was all delivered.
fn failed(e: io::Error, peer: &str, sent: u64, reset_is_plain: bool) -> Result<Outcome, PipeError> {
    let inner = e
        .get_ref()
        .map(|i| i.is::<PipeError>() || i.is::<InputFailed>() || i.is::<OutputFailed>());
    if inner == Some(true) {
        let Some(inner) = e.into_inner() else {
            return Err(PipeError::Output("lost".into()));
        };
        let inner = match inner.downcast::<PipeError>() {
            Ok(p) => return Err(*p),
            Err(i) => i,
        };
        let inner = match inner.downcast::<InputFailed>() {
            Ok(i) => return Err(PipeError::Input(describe(&i.0))),
            Err(i) => i,
        };
        return match inner.downcast::<OutputFailed>() {
            // Our reader closed our output: a quiet end.
            Ok(o) if o.0.kind() == io::ErrorKind::BrokenPipe => Ok(Outcome::OutputClosed),
            Ok(o) => Err(PipeError::Output(describe(&o.0))),
            Err(i) => Err(PipeError::Output(i.to_string())),
        };
    }
    // A server's refusal of our client certificate shows up at the first
    // read after a TLS 1.3 handshake.
    if let Some(why) = crate::tls::cert_refusal(&e, crate::tls::TrustFlags::CLIENT.cert) {
        return Err(PipeError::Socket {
            peer: peer.to_string(),
            reason: why,
        });
    }
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe if !reset_is_plain => {
            Err(PipeError::Undelivered {
                peer: peer.to_string(),
                sent,
                reason: "connection reset".into(),
            })
        }
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Err(PipeError::Reset {
            peer: peer.to_string(),
        }),
        _ => Err(PipeError::Socket {
            peer: peer.to_string(),
            reason: describe(&e),
        }),
    }
}

/// The plaintext-versus-TLS diagnosis from bytes still queued on a socket
/// the peer has reset (read without taking them).
fn late_mismatch(sock: &Sock, check: Option<Side>, peer: &str) -> Option<PipeError> {
    let side = check?;
    let mut first = [0u8; 16];
    // SAFETY: recv into our buffer; MSG_PEEK leaves the queue alone.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            first.as_mut_ptr().cast(),
            first.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
    check_plain(side, &first[..n], peer).err()
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
