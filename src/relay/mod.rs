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
//! Files: `endpoint` (what a pump joins), `copy` (the userspace path:
//! stages, faults, the reset watcher), `splice` (the zero-copy path and
//! its pipe pool), [`child`] (a
//! program per connection as an endpoint), [`threaded`] (stdin and stdout,
//! or any reader and writer, on threads; stdin to a socket on one thread),
//! [`proxy_header`] (the PROXY protocol header, pure), [`fault`] (what
//! faults a connection suffers, pure), [`tap`] (a hex dump and raw logs
//! of what passes, as stages). `forward`, `sockit proxy`,
//! `tcp connect`, `tcp listen` (one peer, and `--exec`) and `unix
//! connect`/`listen` all run through here.

pub mod child;
mod copy;
mod endpoint;
pub mod fault;
pub mod proxy_header;
mod splice;
pub mod tap;
pub mod threaded;

use std::io;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

pub use endpoint::Endpoint;
pub use splice::PipePool;

/// Buffer per direction for the userspace path.
const COPY_BUF: usize = 64 * 1024;

/// How long an emptied splice pipe waits in the pool before it is closed
/// (a server trims its [`PipePool`] this often).
pub const PIPE_IDLE: Duration = Duration::from_secs(5);

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
    /// The end of this side's stream is not passed on: no FIN, no
    /// close_notify (netcat without `-N`); the other way goes on.
    pub hold_eof: Option<Side>,
    /// The pump ends this long after this side's stream has ended, whatever
    /// the other way is doing (netcat's `-q`).
    pub quit_after_eof: Option<(Side, Duration)>,
    /// Each direction writes line by line, pausing this long after each
    /// line (netcat's `-i`).
    pub line_pause: Option<Duration>,
    /// The idle timeout applies only once this side's stream has ended
    /// (netcat's `-w`: the final reads).
    pub idle_after_eof: Option<Side>,
}

/// Two stages, one after the other: what the first makes is what the
/// second sees (a session's text, then a hex dump of the wire bytes).
pub struct Chain {
    first: Box<dyn Stage>,
    second: Box<dyn Stage>,
    mid: bytes::BytesMut,
}

impl Chain {
    /// `first`, then `second`.
    pub fn new(first: Box<dyn Stage>, second: Box<dyn Stage>) -> Chain {
        Chain {
            first,
            second,
            mid: bytes::BytesMut::new(),
        }
    }

    /// `a` then `b`, or whichever of them there is.
    pub fn of(a: Option<Box<dyn Stage>>, b: Option<Box<dyn Stage>>) -> Option<Box<dyn Stage>> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Box::new(Chain::new(a, b))),
            (a, b) => a.or(b),
        }
    }
}

impl Stage for Chain {
    fn feed(&mut self, data: &[u8], eof: bool, out: &mut bytes::BytesMut) -> io::Result<Flow> {
        self.mid.clear();
        let first = self.first.feed(data, eof, &mut self.mid)?;
        let made: &[u8] = if first == Flow::Pass { data } else { &self.mid };
        let second = self.second.feed(made, eof, out)?;
        Ok(match (first, second) {
            (Flow::Pass, Flow::Pass) => Flow::Pass,
            (first, Flow::Pass) => {
                out.extend_from_slice(&self.mid);
                first
            }
            (Flow::Quit, _) | (_, Flow::Quit) => Flow::Quit,
            _ => Flow::More,
        })
    }
}

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
    /// The idle timeout applies only once this side's stream has ended.
    idle_after: Option<Side>,
    /// Which streams have ended: 1 A, 2 B.
    ended: AtomicU8,
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
            idle_after: None,
            ended: AtomicU8::new(0),
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
        self.ended.fetch_or(v, Ordering::Relaxed);
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
            let waiting = self.idle_after.is_some_and(|side| {
                let bit = if side == Side::A { 1 } else { 2 };
                self.ended.load(Ordering::Relaxed) & bit == 0
            });
            if waiting {
                // Until that side ends, look again now and then (netcat's
                // -w counts only once stdin is done).
                tokio::time::sleep(limit.min(Duration::from_millis(50))).await;
                continue;
            }
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
        meter.idle_after = x.idle_after_eof;
        meter.on_eof = x.on_eof.take();
    }
    // Each path boxed on its own: a relay's task holds only the one it uses.
    let end = match (a.sock(), b.sock(), extras) {
        (Some(sa), Some(sb), None) => {
            Box::pin(pump_splice(sa, sb, &meter, idle, stop, pipes)).await
        }
        (_, _, extras) => Box::pin(copy::pump_copy(a, b, &meter, idle, stop, extras)).await,
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

/// The side a splice fault belongs to, for a direction reading `from`.
fn fault(f: splice::Fault, from: Side) -> (Side, io::Error) {
    let other = if from == Side::A { Side::B } else { Side::A };
    match f {
        splice::Fault::Source(e) => (from, e),
        splice::Fault::Dest(e) => (other, e),
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use tokio::net::TcpStream;

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
