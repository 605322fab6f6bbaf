//! The one accept loop of every stream server: `forward`, `sockit proxy`,
//! and `tcp listen`/`unix listen` with `-k`, `--echo`, `--upper` or
//! `--chat`.
//!
//! [`run`] takes a bound listener (TCP or Unix) and a [`Handler`], and
//! owns what those servers share:
//! - one accept loop per core it is told to use, each on a
//!   single-threaded runtime of its own thread (the first on the caller's
//!   runtime), all accepting from the same listening socket with
//!   `accept4`; a client lives on the loop that accepted it, and
//!   `balance` evens out what the kernel handed each loop;
//! - admission: `--allow`/`--deny` for IP peers, then `--max-conns`; a
//!   client turned away is logged (`refused NAME: WHY`), told to the
//!   handler (a `--json` event), and reset;
//! - accept failures (out of descriptors) are logged at most once a second
//!   and retried after a pause, while the clients already in are served;
//! - shutdown: when `stop` is cancelled the loops stop accepting and wait
//!   until every client they started has ended.
//!
//! What differs between the servers is passed in: the words for a full
//! server ([`Rules::busy`]), what a refusal becomes ([`Handler::refused`]),
//! and what serving a client means ([`Handler::serve`]).
//!
//! Files: this one, `balance` (spreading clients over the loops, and the
//! raw `accept4` listener), [`events`] (the `--json` writer).

pub(crate) mod balance;
pub mod events;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::AccessList;
use crate::net::unix::{self, BoundUnix};
use crate::net::{self, describe, show_addr, AcceptTrouble};
use balance::{Balance, Inbox, Load, RawListener};

/// Most accept loops, however many cores there are.
const MAX_LOOPS: usize = 16;

/// How many accept loops a server that spreads over the cores runs: one
/// per core it may use.
pub fn loops_per_core() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_LOOPS)
}

/// A bound, non-blocking listening socket, before any runtime takes it.
pub enum Bound {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix listener; its socket file goes when the last loop lets go.
    Unix(Arc<BoundUnix>),
}

impl Bound {
    fn try_clone(&self) -> io::Result<Bound> {
        Ok(match self {
            Bound::Tcp(l) => Bound::Tcp(l.try_clone()?),
            Bound::Unix(b) => Bound::Unix(b.clone()),
        })
    }
}

/// The words for a server that is full: `already {verb} {N} {noun}`
/// (`already relaying 8192 connections`).
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    /// What the server does with its clients: `relaying`, `serving`.
    pub verb: &'static str,
    /// One client: `connection`, `tunnel`, `peer`.
    pub one: &'static str,
    /// Many clients.
    pub many: &'static str,
}

/// How a server admits and spreads its clients.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Accept loops (at least one); see [`loops_per_core`].
    pub loops: usize,
    /// The accept loops' thread names start with this.
    pub name: &'static str,
    /// Most clients served at once; more are refused with a reset.
    pub max_conns: Option<usize>,
    /// `--allow` and `--deny` (IP peers only).
    pub access: AccessList,
    /// Serve one client, then stop accepting (`tcp listen --exec` without `-k`).
    pub once: bool,
    /// Look up each TCP client's local address (the PROXY header and a
    /// program's environment carry it).
    pub want_local: bool,
    /// The words for a full server.
    pub busy: Busy,
    /// Call [`Handler::tick`] on each loop this often.
    pub tick: Option<Duration>,
}

/// Who a client is, as logs, a child's environment and a PROXY header
/// need it.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// As messages show it: an address, or `pid N (uid U)` on a Unix socket.
    pub name: String,
    /// A TCP client's address.
    pub addr: Option<SocketAddr>,
    /// A Unix client's process and user id.
    pub cred: Option<(Option<i32>, u32)>,
    /// The local end as shown (the socket file of a Unix listener; a TCP
    /// listener's only with [`Rules::want_local`]).
    pub local: String,
    /// The local address of a TCP client, with [`Rules::want_local`].
    pub local_addr: Option<SocketAddr>,
}

/// An accepted socket, not yet on any runtime: the loop that serves it
/// registers it (see `balance`).
pub enum Conn {
    /// A TCP socket, non-blocking, Nagle's algorithm off.
    Tcp(OwnedFd),
    /// A Unix stream socket, non-blocking.
    Unix(OwnedFd),
}

/// An accepted socket on the current runtime.
pub enum Stream {
    /// TCP.
    Tcp(tokio::net::TcpStream),
    /// A Unix stream socket.
    Unix(tokio::net::UnixStream),
}

impl Conn {
    /// Registers the socket with the current runtime.
    ///
    /// # Errors
    /// The runtime's (out of memory for its registration, say).
    pub fn register(self) -> io::Result<Stream> {
        Ok(match self {
            Conn::Tcp(fd) => Stream::Tcp(tokio::net::TcpStream::from_std(fd.into())?),
            Conn::Unix(fd) => Stream::Unix(tokio::net::UnixStream::from_std(fd.into())?),
        })
    }

    /// Arms a reset for a TCP socket (see [`net::arm_reset`]).
    pub fn reset(&self) {
        match self {
            Conn::Tcp(fd) => net::arm_reset(fd),
            Conn::Unix(_) => {}
        }
    }
}

/// A client admitted and handed to [`Handler::serve`].
pub struct Client {
    /// Its socket.
    pub conn: Conn,
    /// Who it is.
    pub peer: Peer,
    /// 1 for the first client admitted, 2 for the next, ...
    pub id: u64,
}

/// What a server does with the clients [`run`] admits.
pub trait Handler: Send + Sync + 'static {
    /// Serves one client until it is done, on the loop that admitted it:
    /// this is called on that loop's runtime (the socket can be registered
    /// at once), and the future it returns runs there. [`run`] holds the
    /// client's `--max-conns` slot until the future ends.
    fn serve(self: Arc<Self>, client: Client) -> impl Future<Output = ()> + Send + 'static;

    /// Told of a client turned away (already logged as `refused NAME:
    /// WHY`), before it is reset.
    fn refused<'a>(&'a self, peer: &'a Peer, why: &'a str) -> impl Future<Output = ()> + Send + 'a {
        let _ = (peer, why);
        async {}
    }

    /// Called on each loop every [`Rules::tick`] (to trim a pool, say).
    fn tick(&self) {}
}

/// What a server's run saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Clients admitted and served.
    pub admitted: u64,
    /// Clients turned away by `--allow`/`--deny` or `--max-conns`.
    pub refused: u64,
}

/// What every loop of one server shares.
struct Shared<H> {
    rules: Rules,
    handler: Arc<H>,
    stop: CancellationToken,
    slots: Option<Arc<Semaphore>>,
    admitted: AtomicU64,
    refused: AtomicU64,
    balance: Arc<Balance<Admitted>>,
}

/// A client admitted, on its way to the loop that serves it.
struct Admitted {
    client: Client,
    permit: Option<OwnedSemaphorePermit>,
}

/// Accepts and serves clients on `bound` until `stop` is cancelled (or,
/// with [`Rules::once`], until the one client is done), then waits for
/// every client to end.
///
/// # Errors
/// When the listener cannot be registered on a runtime; accept errors are
/// logged and retried.
pub async fn run<H: Handler>(
    bound: Bound,
    rules: Rules,
    handler: Arc<H>,
    stop: CancellationToken,
) -> io::Result<Summary> {
    let loops = if rules.once { 1 } else { rules.loops.max(1) };
    let name = rules.name;
    let (balance, inboxes) = Balance::new(loops);
    let shared = Arc::new(Shared {
        slots: rules.max_conns.map(|n| Arc::new(Semaphore::new(n.max(1)))),
        rules,
        handler,
        stop,
        admitted: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        balance,
    });
    let mut inboxes = inboxes.into_iter().enumerate();
    let first = inboxes.next();
    let mut tasks = Vec::with_capacity(loops);
    for (me, inbox) in inboxes {
        tasks.push(loop_task(bound.try_clone()?, shared.clone(), me, inbox));
    }
    if let Some((me, inbox)) = first {
        tasks.insert(0, loop_task(bound, shared.clone(), me, inbox));
    }
    on_each_core(name, tasks).await?;
    Ok(Summary {
        admitted: shared.admitted.load(Ordering::Relaxed),
        refused: shared.refused.load(Ordering::Relaxed),
    })
}

/// Runs the first of `tasks` here and each other on a thread of its own,
/// with a single-threaded runtime, and waits for them all. A thread that
/// cannot start is skipped (fewer loops still serve); a loop that fails
/// later is logged. Returns the first task's result.
async fn on_each_core<F>(name: &str, tasks: Vec<F>) -> io::Result<()>
where
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let mut tasks = tasks.into_iter();
    let Some(first) = tasks.next() else {
        return Ok(());
    };
    let mut others = Vec::new();
    for (i, task) in tasks.enumerate() {
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-{}", i + 1))
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(task)
            });
        match spawned {
            Ok(h) => others.push(h),
            Err(e) => tracing::debug!("could not start accept loop {} ({e})", i + 1),
        }
    }
    let result = first.await;
    for h in others {
        let joined = tokio::task::spawn_blocking(move || h.join()).await;
        if let Ok(Ok(Err(e))) = joined {
            tracing::warn!("an accept loop failed ({})", describe(&e));
        }
    }
    result
}

/// An accept loop as a task of the current runtime: woken by the
/// listener like any task (a `block_on` future is woken through the
/// runtime's eventfd, one more syscall per wake).
async fn loop_task<H: Handler>(
    bound: Bound,
    shared: Arc<Shared<H>>,
    me: usize,
    inbox: Inbox<Admitted>,
) -> io::Result<()> {
    let task = tokio::spawn(async move {
        let acceptor = Acceptor::new(bound, shared.rules.want_local)?;
        accept_loop(acceptor, shared, me, inbox).await
    });
    task.await.map_err(io::Error::other)?
}

/// A listener on the current runtime.
enum Acceptor {
    /// The listener, and whether each client's local address is needed.
    Tcp(RawListener<std::net::TcpListener>, bool),
    Unix(
        RawListener<std::os::unix::net::UnixListener>,
        Arc<BoundUnix>,
    ),
}

impl Acceptor {
    fn new(bound: Bound, want_local: bool) -> io::Result<Acceptor> {
        Ok(match bound {
            Bound::Tcp(l) => Acceptor::Tcp(RawListener::new(l)?, want_local),
            Bound::Unix(b) => {
                let l = RawListener::new(b.listener.try_clone()?)?;
                Acceptor::Unix(l, b)
            }
        })
    }

    async fn accept(&self) -> io::Result<(Conn, Peer)> {
        match self {
            Acceptor::Tcp(l, want_local) => {
                let (fd, a) = l.accept().await?;
                let a = balance::tcp_peer(&a)?;
                let sock = socket2::SockRef::from(&fd);
                // getsockname only for those who use it (PROXY, programs).
                let local = if *want_local {
                    sock.local_addr().ok().and_then(|a| a.as_socket())
                } else {
                    None
                };
                let _ = sock.set_tcp_nodelay(true);
                Ok((
                    Conn::Tcp(fd),
                    Peer {
                        name: show_addr(a),
                        addr: Some(a),
                        cred: None,
                        local: local.map(show_addr).unwrap_or_default(),
                        local_addr: local,
                    },
                ))
            }
            Acceptor::Unix(l, b) => {
                let (fd, _) = l.accept().await?;
                let cred = unix::peer_cred(&fd);
                Ok((
                    Conn::Unix(fd),
                    Peer {
                        name: unix::cred_name(cred),
                        addr: None,
                        cred,
                        local: b.addr.to_string(),
                        local_addr: None,
                    },
                ))
            }
        }
    }
}

/// One accept loop; ends when `stop` is cancelled (or, with `once`, after
/// one client), once the clients it started have ended.
async fn accept_loop<H: Handler>(
    acceptor: Acceptor,
    shared: Arc<Shared<H>>,
    me: usize,
    mut inbox: Inbox<Admitted>,
) -> io::Result<()> {
    let tracker = TaskTracker::new();
    let stop = shared.stop.clone();
    let mut trouble = AcceptTrouble::default();
    let mut tick = shared.rules.tick.map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some((a, load)) = inbox.recv() => {
                start(&tracker, &shared, a, load);
                continue;
            }
            r = acceptor.accept() => r,
            _ = async { tick.as_mut()?.tick().await; Some(()) }, if tick.is_some() => {
                shared.handler.tick();
                continue;
            }
        };
        let (conn, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: back off instead of
                // spinning, and keep serving the clients we have.
                trouble.failed(&e);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(AcceptTrouble::BACKOFF) => continue,
                }
            }
        };
        let Some(permit) = admit(&shared, &conn, &peer).await else {
            continue;
        };
        let id = shared.admitted.fetch_add(1, Ordering::Relaxed) + 1;
        let admitted = Admitted {
            client: Client { conn, peer, id },
            permit,
        };
        let load = shared.balance.place(me);
        if let Some((a, load)) = shared.balance.hand(me, admitted, load) {
            start(&tracker, &shared, a, load);
        }
        if shared.rules.once {
            break;
        }
    }
    drop(acceptor);
    // Clients handed to this loop as it stopped are closed.
    inbox.close();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// The access check, then a `--max-conns` slot; `None` when the client was
/// turned away (logged, told to the handler, and reset).
async fn admit<H: Handler>(
    shared: &Shared<H>,
    conn: &Conn,
    peer: &Peer,
) -> Option<Option<OwnedSemaphorePermit>> {
    let why = match peer.addr.map(|a| shared.rules.access.check(a.ip())) {
        Some(Err(why)) => why.to_string(),
        _ => match &shared.slots {
            None => return Some(None),
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => return Some(Some(p)),
                Err(_) => {
                    let b = shared.rules.busy;
                    let n = shared.rules.max_conns.unwrap_or(0) as u64;
                    format!(
                        "already {} {} (--max-conns)",
                        b.verb,
                        crate::text::counted(n, b.one, b.many)
                    )
                }
            },
        },
    };
    shared.refused.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(event = "refused", client = %peer.name, reason = %why, "refused {}: {why}", peer.name);
    shared.handler.refused(peer, &why).await;
    conn.reset();
    None
}

/// Serves an admitted client on this loop, holding its slot and its place
/// in `load` until it ends.
fn start<H: Handler>(tracker: &TaskTracker, shared: &Shared<H>, a: Admitted, load: Load<Admitted>) {
    let Admitted { client, permit } = a;
    tracker.spawn(Held {
        serving: shared.handler.clone().serve(client),
        _permit: permit,
        _load: load,
    });
}

/// A client's serving future with its `--max-conns` slot and its place in
/// its loop's count, which go when it ends. A plain struct, not an async
/// block around the future: a future moved into an async block is stored
/// twice, and every client's task would carry both copies.
struct Held<F> {
    serving: F,
    _permit: Option<OwnedSemaphorePermit>,
    _load: Load<Admitted>,
}

impl<F: Future> Future for Held<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `serving` is pinned whenever `Held` is (structural
        // pinning): it is never moved out, and `Held` has no `Drop` that
        // could move it.
        unsafe { self.map_unchecked_mut(|h| &mut h.serving) }.poll(cx)
    }
}
