//! The userspace path of the pump: both directions through a buffer each
//! (TLS, a child process, stdio, or any relay with stages or faults), with
//! the [`super::Stage`]s applied, the faults suffered, a reset on a socket
//! the copies cannot see noticed by a watcher, and stdin that is a pipe or
//! a file sent straight to a plain socket on a thread of its own.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{fault, threaded, End, Endpoint, Extras, Flow, Meter, Side, Stage, COPY_BUF};

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

/// The first of two watched sockets to report an error.
async fn watched_either(a: &Watch, b: &Watch) -> (Side, io::Error) {
    tokio::select! {
        e = a.broken() => (Side::A, e),
        e = b.broken() => (Side::B, e),
    }
}

/// Both directions through userspace buffers (TLS, a child process,
/// stdio), with the [`Extras`]' stages and faults.
pub(super) async fn pump_copy(
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
    let stdin_fd = match (&mut *a, b.sock(), &x.up, &x.faults, x.line_pause) {
        (Endpoint::Threaded(t), Some(_), None, None, None) => t.take_stdin_fd(),
        _ => None,
    };
    let half_close = x.hold_eof != Some(Side::A);
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
        hold_eof: x.hold_eof == Some(Side::A),
        line_pause: x.line_pause,
    };
    let down_dir = Dir {
        to_child: a_child,
        faults: down.as_mut().map(|(f, r)| (&*f, r)),
        stage: x.down.as_deref_mut(),
        buf,
        hold_eof: x.hold_eof == Some(Side::B),
        line_pause: x.line_pause,
    };
    let a_to_b: Pin<Box<dyn std::future::Future<Output = Copied> + Send + '_>> =
        match (stdin_fd, b_fd) {
            (Some(fd), Some(sock)) => Box::pin(stdin_up(fd, sock, half_close, meter)),
            _ => Box::pin(copy(ar, bw, Side::A, meter, up_dir)),
        };
    let b_to_a = copy(br, aw, Side::B, meter, down_dir);
    // The copies first: a socket can hold a clean end (a TLS close_notify
    // and a FIN) that its reader has not taken yet when a reset arrives
    // behind it (our own late bytes, reset by a peer that had closed). The
    // watcher is for copies that wait on the other side, not a shortcut
    // past what the peer said before it went.
    tokio::select! {
        biased;
        r = both(a_to_b, b_to_a, x.ends_with, x.quit_after_eof) => match r {
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
    /// At the end of the source, leave the destination open.
    hold_eof: bool,
    /// Write line by line, pausing this long after each line.
    line_pause: Option<Duration>,
}

/// Both directions until both have ended (or `ends_with`'s has, or
/// `quit_after`'s side ended that long ago), or one fails.
async fn both<U, D>(
    up: U,
    down: D,
    ends_with: Option<Side>,
    quit_after: Option<(Side, Duration)>,
) -> Copied
where
    U: std::future::Future<Output = Copied>,
    D: std::future::Future<Output = Copied>,
{
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    // Armed once the side that `quit_after` names has ended.
    let mut quit: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let arm = |side: Side, quit: &mut Option<Pin<Box<tokio::time::Sleep>>>| {
        if let Some((s, d)) = quit_after {
            if s == side {
                *quit = Some(Box::pin(tokio::time::sleep(d)));
            }
        }
    };
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                r?;
                up_done = true;
                if ends_with == Some(Side::A) {
                    break;
                }
                arm(Side::A, &mut quit);
            }
            r = &mut down, if !down_done => {
                r?;
                down_done = true;
                if ends_with == Some(Side::B) {
                    break;
                }
                arm(Side::B, &mut quit);
            }
            _ = async { quit.as_mut()?.await; Some(()) }, if quit.is_some() => break,
        }
    }
    Ok(())
}

/// Stdin (a pipe or a file) to a plain socket on a thread of its own (see
/// [`threaded::send_fd`]); the socket is half-closed at the end.
async fn stdin_up(
    fd: std::os::fd::RawFd,
    sock: std::os::fd::RawFd,
    half_close: bool,
    meter: &Meter,
) -> Copied {
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
            let _ = tx.send(threaded::send_fd(fd, sock, half_close, &m, &st));
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
            let mut piece = match f.slice {
                Some((lo, hi)) => rng.size(lo, hi).min(n - off),
                None => n - off,
            };
            // Line by line: the piece ends after its first newline.
            let line_end = match dir.line_pause {
                Some(_) => memchr::memchr(b'\n', &data[off..off + piece]).map(|i| i + 1),
                None => None,
            };
            if let Some(end) = line_end {
                piece = end;
            }
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
            if let (Some(d), Some(_)) = (dir.line_pause, line_end) {
                tokio::time::sleep(d).await;
            }
        }
        if flow == Flow::Quit {
            return Err((from, io::Error::other(QuitWord)));
        }
        if at_end {
            meter.eof(from);
            if dir.hold_eof {
                // The destination stays open: the other way goes on.
                return Ok(());
            }
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
