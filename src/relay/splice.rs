//! The zero-copy path: socket -> pipe -> socket with `splice(2)`.
//!
//! Pipes are taken from a [`PipePool`] only while bytes move and given
//! back once they are empty, so a relay that is idle holds no pipe and
//! 10,000 quiet connections cost no more descriptors than their sockets.
//! When no pipe can be had (the descriptor limit), a chunk takes the
//! small-message path through a stack buffer instead; the relay never
//! stalls on it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// Most bytes one `splice` call is asked to move, and the pipe size asked
/// for: fewer, larger moves cost fewer syscalls per byte.
pub(crate) const SPLICE_CHUNK: usize = 1 << 20;

/// Idle pipes kept for reuse.
const POOL_IDLE: usize = 256;

/// A plain socket the pump can splice from and to.
#[derive(Clone, Copy)]
pub(crate) enum Sock<'a> {
    /// TCP.
    Tcp(&'a TcpStream),
    /// Unix stream.
    Unix(&'a UnixStream),
}

impl Sock<'_> {
    fn fd(self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Waits until the socket is readable, or writable with
    /// `Interest::WRITABLE`. This goes through the socket's own reader and
    /// writer waker slots, so the future holds no waiter node (168 bytes
    /// less in every direction of every relay); a pump waits on at most
    /// one read and one write per socket, from one task.
    async fn ready(self, i: Interest) -> io::Result<()> {
        let write = i.is_writable();
        std::future::poll_fn(|cx| match (self, write) {
            (Sock::Tcp(s), false) => s.poll_read_ready(cx),
            (Sock::Tcp(s), true) => s.poll_write_ready(cx),
            (Sock::Unix(s), false) => s.poll_read_ready(cx),
            (Sock::Unix(s), true) => s.poll_write_ready(cx),
        })
        .await
    }

    fn try_io<R>(self, i: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Sock::Tcp(s) => s.try_io(i, f),
            Sock::Unix(s) => s.try_io(i, f),
        }
    }

    /// Resolves with the socket's error once it has one (a reset).
    pub(crate) async fn broken(self) -> io::Error {
        loop {
            let r = match self {
                Sock::Tcp(s) => s.ready(Interest::ERROR).await.map(|_| ()),
                Sock::Unix(s) => s.ready(Interest::ERROR).await.map(|_| ()),
            };
            if let Err(e) = r {
                return e;
            }
            let err = match self {
                Sock::Tcp(s) => s.take_error(),
                Sock::Unix(s) => s.take_error(),
            };
            match err {
                Ok(Some(e)) => return e,
                Err(e) => return e,
                // Readiness without an error: clear it, wait for the next.
                Ok(None) => {
                    let _ = self.try_io(Interest::ERROR, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                }
            }
        }
    }

    /// Sends a FIN: the far side sees end of stream.
    pub(crate) fn shutdown_write(self) {
        match self {
            Sock::Tcp(s) => {
                let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write);
            }
            Sock::Unix(s) => {
                let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write);
            }
        }
    }
}

/// A pipe pair for `splice(2)`, closed on drop.
pub(crate) struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two new descriptors into `fds`, which we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // A larger pipe where the system allows it; the default works too.
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            libc::fcntl(fds[1], libc::F_SETPIPE_SZ, SPLICE_CHUNK as libc::c_int);
        }
        // SAFETY: both descriptors are fresh and owned only here.
        Ok(unsafe {
            Pipe {
                r: OwnedFd::from_raw_fd(fds[0]),
                w: OwnedFd::from_raw_fd(fds[1]),
            }
        })
    }
}

/// Empty pipes for reuse, shared by every relay of a listener. Pipes idle
/// longer than [`PipePool::trim`] is told are closed, so a relay that has
/// gone quiet holds no more descriptors than its sockets.
#[derive(Default)]
pub struct PipePool {
    /// Most recently returned last, each with when it came back.
    idle: Mutex<Vec<(Pipe, Instant)>>,
}

impl PipePool {
    /// An empty pool.
    pub fn new() -> PipePool {
        PipePool::default()
    }

    fn take(&self) -> io::Result<Pipe> {
        if let Some((p, _)) = self.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(p);
        }
        Pipe::new()
    }

    /// Gives back a pipe that holds no bytes.
    fn give(&self, p: Pipe) {
        self.give_at(p, Instant::now());
    }

    fn give_at(&self, p: Pipe, at: Instant) {
        if let Ok(mut v) = self.idle.lock() {
            if v.len() < POOL_IDLE {
                v.push((p, at));
            }
        }
    }

    /// Closes the pipes that have been idle for `longer_than`.
    pub fn trim(&self, longer_than: Duration) {
        let Some(cutoff) = Instant::now().checked_sub(longer_than) else {
            return;
        };
        let old = match self.idle.lock() {
            // Oldest first: the ones returned before the cutoff lead.
            Ok(mut v) => {
                let n = v.iter().take_while(|(_, at)| *at < cutoff).count();
                v.drain(..n).collect::<Vec<_>>()
            }
            Err(_) => return,
        };
        drop(old);
    }

    /// How many idle pipes the pool holds.
    pub fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |v| v.len())
    }
}

/// One `splice` call between two descriptors, non-blocking.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    splice_with(from, to, len, libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK)
}

/// One `splice` call between two descriptors with these flags.
pub(super) fn splice_with(
    from: RawFd,
    to: RawFd,
    len: usize,
    flags: libc::c_uint,
) -> io::Result<usize> {
    // SAFETY: plain syscall on descriptors the caller holds open.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Which socket an error came from.
pub(crate) enum Fault {
    /// Reading the source failed.
    Source(io::Error),
    /// Writing the destination failed.
    Dest(io::Error),
}

/// Moves one direction until the source ends (the caller passes the FIN on).
/// Backpressure is the kernel's: a destination that does not read leaves
/// bytes in the pipe, and the source is not read again until they have
/// gone out. `moved` is called with each chunk's size.
pub(crate) async fn one_way(
    src: Sock<'_>,
    dst: Sock<'_>,
    pool: &PipePool,
    mut moved: impl FnMut(usize),
) -> Result<(), Fault> {
    let (sfd, dfd) = (src.fd(), dst.fd());
    // Small messages (requests, replies) go through a buffer on a
    // synchronous frame: a read and a write, no pipe. Once a read fills
    // that buffer, bulk follows, and the bytes go through a pipe instead
    // until a splice comes up short again.
    let mut bulk = false;
    loop {
        src.ready(Interest::READABLE).await.map_err(Fault::Source)?;
        if !bulk {
            match small_once(src, dst)? {
                Small::WouldBlock => continue,
                Small::Eof => return Ok(()),
                Small::Moved(n) => {
                    moved(n);
                    bulk = n == SMALL_BUF;
                    continue;
                }
                Small::Partial(rest, n) => {
                    moved(n);
                    // What the destination did not take, once it has room.
                    let mut off = 0;
                    while off < rest.len() {
                        match dst.try_io(Interest::WRITABLE, || write_fd(dfd, &rest[off..])) {
                            Ok(m) => off += m,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                Box::pin(writable(src, dst)).await?;
                            }
                            Err(e) => return Err(Fault::Dest(e)),
                        }
                    }
                    bulk = n == SMALL_BUF;
                    continue;
                }
            }
        }
        let pipe = match pool.take() {
            Ok(p) => p,
            Err(e) => {
                // No pipe (the descriptor limit): this chunk takes the
                // small path, and the next read tries splice again.
                tracing::debug!("no pipe for splice ({e}); copying one chunk");
                bulk = false;
                continue;
            }
        };
        let (pr, pw) = (pipe.r.as_raw_fd(), pipe.w.as_raw_fd());
        // Only EAGAIN says the socket is drained. A splice shorter than the
        // pipe does not: the kernel stops at the pipe's slots or after one
        // pass over the receive queue, with bytes still waiting, and no new
        // edge comes if the sender has finished. Taking a short splice for
        // "drained" stalled the tail of a transfer until the sender closed.
        let got = src.try_io(Interest::READABLE, || splice(sfd, pw, SPLICE_CHUNK));
        let n = match got {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pool.give(pipe);
                continue;
            }
            Err(e) => return Err(Fault::Source(e)),
        };
        if n == 0 {
            pool.give(pipe);
            return Ok(());
        }
        moved(n);
        bulk = n >= SMALL_BUF;
        let mut left = n;
        while left > 0 {
            match dst.try_io(Interest::WRITABLE, || splice(pr, dfd, left)) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    Box::pin(writable(src, dst)).await?;
                }
                Err(e) => return Err(Fault::Dest(e)),
            }
        }
        pool.give(pipe);
    }
}

/// Size of the buffer for small messages; a read that fills it means bulk.
/// Waits until `dst` takes bytes again, watching `src` meanwhile: while
/// this direction waits here nothing else reads `src`, so its reset would
/// go unseen. Boxed by its callers: it is the rare path (a destination
/// that is full), and every held relay would carry room for it.
async fn writable(src: Sock<'_>, dst: Sock<'_>) -> Result<(), Fault> {
    tokio::select! {
        biased;
        r = dst.ready(Interest::WRITABLE) => r.map_err(Fault::Dest),
        e = src.broken() => Err(Fault::Source(e)),
    }
}

const SMALL_BUF: usize = 16 * 1024;

/// What one small read-and-write did.
enum Small {
    /// Nothing to read after all.
    WouldBlock,
    /// The source ended.
    Eof,
    /// This many bytes went through (all of the buffer: bulk follows).
    Moved(usize),
    /// The destination took only part: the rest, and the bytes read.
    Partial(Vec<u8>, usize),
}

/// Reads what is there into a buffer on this synchronous frame (so an idle
/// relay holds none) and writes it straight on.
fn small_once(src: Sock<'_>, dst: Sock<'_>) -> Result<Small, Fault> {
    // Not zeroed: read(2) fills it, and only the bytes it filled are used.
    let mut space = std::mem::MaybeUninit::<[u8; SMALL_BUF]>::uninit();
    let mut short = None;
    let got = src.try_io(Interest::READABLE, || {
        match read_raw(src.fd(), space.as_mut_ptr().cast(), SMALL_BUF) {
            // A short read drained the socket: clear the readiness now.
            Ok(n) if n > 0 && n < SMALL_BUF => {
                short = Some(n);
                Err(io::ErrorKind::WouldBlock.into())
            }
            r => r,
        }
    });
    let n = match (got, short) {
        (_, Some(n)) => n,
        (Ok(0), None) => return Ok(Small::Eof),
        (Ok(n), None) => n,
        (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Small::WouldBlock),
        (Err(e), None) => return Err(Fault::Source(e)),
    };
    // SAFETY: read(2) initialised the first `n` bytes.
    let buf: &[u8] = unsafe { std::slice::from_raw_parts(space.as_ptr().cast::<u8>(), n) };
    let mut off = 0;
    while off < n {
        match dst.try_io(Interest::WRITABLE, || write_fd(dst.fd(), &buf[off..n])) {
            Ok(m) => off += m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(Small::Partial(buf[off..n].to_vec(), n))
            }
            Err(e) => return Err(Fault::Dest(e)),
        }
    }
    Ok(Small::Moved(n))
}

fn read_raw(fd: RawFd, buf: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: the caller gives `len` writable bytes at `buf`.
    let n = unsafe { libc::read(fd, buf.cast(), len) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: writes from a buffer we own, on a descriptor held open.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_pipes_are_closed_after_a_while_and_fresh_ones_kept() {
        let pool = PipePool::new();
        let long_ago = Instant::now() - Duration::from_secs(60);
        pool.give_at(Pipe::new().unwrap(), long_ago);
        pool.give_at(Pipe::new().unwrap(), long_ago);
        pool.give(Pipe::new().unwrap());
        assert_eq!(pool.idle(), 3);
        pool.trim(Duration::from_secs(5));
        assert_eq!(pool.idle(), 1, "the two old pipes are closed");
        pool.trim(Duration::from_secs(5));
        assert_eq!(pool.idle(), 1, "the fresh one stays for reuse");
    }
}
