//! `sockit forward LISTEN TARGET…`: a relay on one event loop.
//!
//! LISTEN is `[tcp:][ADDR:]PORT`, `udp:[ADDR:]PORT` or `unix:PATH`
//! (`unix:@name` for the abstract namespace); `--tls` terminates TLS on a
//! TCP listener. TARGET is `[tcp:]HOST:PORT`, `udp:HOST:PORT`,
//! `unix:PATH`, `tls:HOST:PORT`, `exec:PROGRAM ARGS…` or `sh:COMMAND`.
//!
//! Each accepted client is joined to one target, chosen round robin. A
//! target that refuses or times out is skipped for [`DOWN_FOR`], and the
//! client goes to the next one; when none answers, the client is reset and
//! the log line names each target's error. The bytes move through
//! [`crate::relay::pump`], which owns half-close, reset and backpressure.
//!
//! Files: this one (spellings, options, the stream relay), `udp` (the
//! datagram relay and its session table), `events` (`--json`).

pub(crate) mod balance;
pub mod events;
mod udp;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::AccessList;
use crate::net::{self, describe, show_addr, BindAddr, Family, NetError};
use crate::relay::child::{self, ConnEnv, Program};
use crate::relay::proxy_header::{self, Version};
use crate::relay::{self, End, Endpoint, PipePool, Side};
use crate::tls::{ClientTls, ClientTlsOptions, ServerTls};
use crate::unix::{self, UnixAddr, UnixError};
use balance::{Balance, Load, RawListener};
use events::Events;

/// How long a target that refused or timed out is skipped.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// Default `--max-conns`: client connections relayed at once.
pub const DEFAULT_MAX_CONNS: usize = 8192;

/// How long a UDP session lives without a datagram either way, by default.
pub const DEFAULT_UDP_IDLE: Duration = Duration::from_secs(60);

/// Default `--max-sessions` for UDP.
pub const DEFAULT_MAX_SESSIONS: usize = 4096;

/// Default `--connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors from `forward`.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A LISTEN or TARGET that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Binding the listener failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Binding a Unix listener failed.
    #[error(transparent)]
    Unix(#[from] UnixError),
    /// TLS set-up for a target failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The listener failed for good.
    #[error("the listener failed ({0})")]
    Listener(String),
}

/// Which transport a LISTEN or TARGET uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A byte stream: TCP, TLS, Unix or a child process.
    Stream,
    /// UDP datagrams.
    Udp,
}

impl Proto {
    /// `stream` or `udp`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Stream => "a stream",
            Proto::Udp => "udp",
        }
    }
}

/// What a target is.
#[derive(Debug)]
pub enum TargetKind {
    /// `[tcp:]HOST:PORT`.
    Tcp(String, u16),
    /// `tls:HOST:PORT`.
    Tls(String, u16),
    /// `udp:HOST:PORT`.
    Udp(String, u16),
    /// `unix:PATH`.
    Unix(UnixAddr),
    /// `exec:` or `sh:`.
    Exec(Program),
}

/// One target: where to connect, and until when it is skipped.
#[derive(Debug)]
pub struct Target {
    /// What and where.
    pub kind: TargetKind,
    /// Set when the target refused or timed out: skip it until then.
    down_until: Mutex<Option<Instant>>,
}

fn host_port_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Target {
    /// A program-per-connection target.
    pub fn program(p: Program) -> Target {
        Target {
            kind: TargetKind::Exec(p),
            down_until: Mutex::new(None),
        }
    }

    /// The target as the log shows it.
    pub fn name(&self) -> String {
        match &self.kind {
            TargetKind::Tcp(h, p) => host_port_name(h, *p),
            TargetKind::Tls(h, p) => format!("tls:{}", host_port_name(h, *p)),
            TargetKind::Udp(h, p) => format!("udp:{}", host_port_name(h, *p)),
            TargetKind::Unix(a) => a.to_string(),
            TargetKind::Exec(p) => p.shown.clone(),
        }
    }

    /// Stream or datagrams.
    pub fn proto(&self) -> Proto {
        match self.kind {
            TargetKind::Udp(..) => Proto::Udp,
            _ => Proto::Stream,
        }
    }

    fn is_down(&self, now: Instant) -> bool {
        self.down_until
            .lock()
            .map(|g| g.is_some_and(|t| t > now))
            .unwrap_or(false)
    }

    fn mark(&self, down: bool) {
        if let Ok(mut g) = self.down_until.lock() {
            *g = down.then(|| Instant::now() + DOWN_FOR);
        }
    }
}

/// Parses `HOST:PORT` or `[V6]:PORT`.
fn parse_host_port(s: &str, whole: &str) -> Result<(String, u16), ForwardError> {
    let bad = || ForwardError::Usage(format!("{whole:?} is not a target; write HOST:PORT"));
    let (host, port) = if let Ok(sa) = s.parse::<SocketAddr>() {
        (sa.ip().to_string(), sa.port())
    } else {
        let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.contains(':') {
            return Err(bad());
        }
        net::check_name(h).map_err(|why| ForwardError::Usage(format!("{whole:?}: {why}")))?;
        (
            h.to_string(),
            net::parse_port(p).map_err(ForwardError::Usage)?,
        )
    };
    if port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

/// Parses a TARGET: `HOST:PORT`, `tcp:HOST:PORT`, `[V6]:PORT`,
/// `udp:HOST:PORT`, `tls:HOST:PORT`, `unix:PATH`, `exec:PROGRAM ARGS…`,
/// `sh:COMMAND`. An `exec:` program must exist.
///
/// # Errors
/// A sentence for a spelling that is wrong, or a program that is missing.
pub fn parse_target(s: &str) -> Result<Target, ForwardError> {
    let usage = ForwardError::Usage;
    let kind = if let Some(r) = s.strip_prefix("udp:") {
        let (h, p) = parse_host_port(r, s)?;
        TargetKind::Udp(h, p)
    } else if let Some(r) = s.strip_prefix("tls:") {
        let (h, p) = parse_host_port(r, s)?;
        TargetKind::Tls(h, p)
    } else if let Some(r) = s.strip_prefix("unix:") {
        TargetKind::Unix(UnixAddr::parse(r)?)
    } else if let Some(r) = s.strip_prefix("exec:") {
        TargetKind::Exec(child::parse_exec(r).map_err(|e| usage(format!("{s:?}: {e}")))?)
    } else if let Some(r) = s.strip_prefix("sh:") {
        TargetKind::Exec(child::parse_sh(r).map_err(|e| usage(format!("{s:?}: {e}")))?)
    } else {
        let (h, p) = parse_host_port(s.strip_prefix("tcp:").unwrap_or(s), s)?;
        TargetKind::Tcp(h, p)
    };
    Ok(Target {
        kind,
        down_until: Mutex::new(None),
    })
}

/// A target list: several targets, each parsed.
///
/// # Errors
/// The first bad one.
pub fn parse_targets<S: AsRef<str>>(list: &[S]) -> Result<Vec<Target>, ForwardError> {
    list.iter().map(|t| parse_target(t.as_ref())).collect()
}

/// Where `forward` listens.
#[derive(Debug, Clone)]
pub enum Listen {
    /// `[tcp:][ADDR:]PORT`.
    Tcp(BindAddr),
    /// `udp:[ADDR:]PORT`.
    Udp(BindAddr),
    /// `unix:PATH` or `unix:@name`.
    Unix(UnixAddr),
}

impl Listen {
    /// Stream or datagrams.
    pub fn proto(&self) -> Proto {
        match self {
            Listen::Udp(_) => Proto::Udp,
            _ => Proto::Stream,
        }
    }
}

/// Parses a LISTEN spelling.
///
/// # Errors
/// A sentence for a spelling that is wrong.
pub fn parse_listen(s: &str) -> Result<Listen, ForwardError> {
    if let Some(r) = s.strip_prefix("unix:") {
        return Ok(Listen::Unix(UnixAddr::parse(r)?));
    }
    let bind = |r: &str| r.parse::<BindAddr>().map_err(ForwardError::Usage);
    Ok(match s.strip_prefix("udp:") {
        Some(r) => Listen::Udp(bind(r)?),
        None => Listen::Tcp(bind(s.strip_prefix("tcp:").unwrap_or(s))?),
    })
}

/// How `forward` behaves.
#[derive(Debug)]
pub struct ForwardOptions {
    /// Where to listen.
    pub listen: Listen,
    /// `-4` / `-6` for the listener.
    pub family: Family,
    /// Where to send each client, round robin.
    pub targets: Vec<Target>,
    /// Most clients relayed at once; more are refused with a reset.
    pub max_conns: usize,
    /// Give up on a target after this long.
    pub connect_timeout: Duration,
    /// Close a relay on which no byte moved either way for this long
    /// (UDP: end a session; [`DEFAULT_UDP_IDLE`] when `None`).
    pub idle_timeout: Option<Duration>,
    /// UDP: most client sessions at once; when full, the one idle longest
    /// is evicted.
    pub max_sessions: usize,
    /// UDP: receive buffer per datagram; longer ones are dropped and
    /// reported.
    pub udp_buffer: usize,
    /// `--allow` and `--deny`.
    pub access: AccessList,
    /// `--tls`: terminate TLS on the listener.
    pub tls: Option<ServerTls>,
    /// Deadline for TLS handshakes, both sides.
    pub handshake_timeout: Duration,
    /// Trust for `tls:` targets.
    pub target_tls: ClientTlsOptions,
    /// `--proxy-protocol`: tell socket targets who the client is.
    pub proxy_protocol: Option<Version>,
    /// `--json`: one event per line on stdout.
    pub json: bool,
    /// Relay one client, then stop listening and exit when it ends
    /// (`tcp listen --exec` without `-k`).
    pub once: bool,
    /// `--delay`, `--slice`, `--loss` and the other faults.
    pub faults: crate::relay::fault::Faults,
    /// `--proxy`: reach TCP and `tls:` targets through these, in order.
    pub proxies: Vec<crate::proxy::ProxyUrl>,
}

impl ForwardOptions {
    /// Options with the defaults, for `listen` and `targets`.
    pub fn new(listen: Listen, targets: Vec<Target>) -> ForwardOptions {
        ForwardOptions {
            listen,
            family: Family::Any,
            targets,
            max_conns: DEFAULT_MAX_CONNS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
            udp_buffer: crate::udp::DEFAULT_BUFFER,
            access: AccessList::default(),
            tls: None,
            handshake_timeout: crate::tls::DEFAULT_HANDSHAKE_TIMEOUT,
            target_tls: ClientTlsOptions::default(),
            proxy_protocol: None,
            json: false,
            once: false,
            faults: crate::relay::fault::Faults::default(),
            proxies: Vec::new(),
        }
    }

    /// Whether relays need each client's local address: the PROXY header
    /// and a program's environment carry it.
    fn wants_local(&self) -> bool {
        self.proxy_protocol.is_some()
            || self
                .targets
                .iter()
                .any(|t| matches!(t.kind, TargetKind::Exec(_)))
    }

    /// Checks that the listener and the targets fit together.
    ///
    /// # Errors
    /// A sentence naming the mismatch.
    pub fn check(&self) -> Result<(), ForwardError> {
        let proto = self.listen.proto();
        if self.targets.is_empty() {
            return Err(ForwardError::Usage(
                "forward needs at least one TARGET".into(),
            ));
        }
        if let Some(t) = self.targets.iter().find(|t| t.proto() != proto) {
            return Err(ForwardError::Usage(format!(
                "the listener is {} but target {} is {}; a relay keeps one transport (write udp: on both or neither)",
                proto.name(),
                t.name(),
                t.proto().name()
            )));
        }
        if self.tls.is_some() && !matches!(self.listen, Listen::Tcp(_)) {
            return Err(ForwardError::Usage(
                "--tls terminates TLS on a TCP listener; this one is not TCP".into(),
            ));
        }
        if matches!(self.listen, Listen::Unix(_)) && !self.access.is_open() {
            return Err(ForwardError::Usage(
                "--allow and --deny take IP networks; a Unix listener's peers have no address (use the socket file's permissions)".into(),
            ));
        }
        if !self.proxies.is_empty() {
            if let Some(t) = self
                .targets
                .iter()
                .find(|t| !matches!(t.kind, TargetKind::Tcp(..) | TargetKind::Tls(..)))
            {
                return Err(ForwardError::Usage(format!(
                    "--proxy reaches TCP and tls: targets; {} is neither",
                    t.name()
                )));
            }
        }
        if let Some(flag) = self.faults.misfit(proto == Proto::Udp) {
            return Err(ForwardError::Usage(if proto == Proto::Udp {
                format!("{flag} shapes a byte stream; a UDP relay takes --loss, --duplicate and --reorder")
            } else {
                format!("{flag} is for datagrams; a stream relay takes --delay, --rate, --slice and the --*-after limits")
            }));
        }
        if self.proxy_protocol.is_some() && proto == Proto::Udp {
            return Err(ForwardError::Usage(
                "--proxy-protocol is for stream relays; UDP has no header to carry it".into(),
            ));
        }
        Ok(())
    }
}

/// What one run of the relay saw.
#[derive(Debug, Default)]
pub struct ForwardSummary {
    /// Clients relayed to a target.
    pub relayed: u64,
    /// Clients turned away (access, `--max-conns`, no target answered).
    pub refused: u64,
}

/// Who a client is, as the log, the child's environment and the PROXY
/// header need it.
struct Peer {
    name: String,
    addr: Option<SocketAddr>,
    cred: Option<(Option<i32>, u32)>,
    local: String,
    local_addr: Option<SocketAddr>,
}

/// A bound stream listener.
enum Acceptor {
    /// The listener, and whether each client's local address is needed.
    Tcp(RawListener<std::net::TcpListener>, bool),
    Unix(
        RawListener<std::os::unix::net::UnixListener>,
        Arc<unix::BoundUnix>,
    ),
}

/// An accepted client socket, not yet on any runtime: the loop that
/// relays it registers it (see `balance`).
enum Conn {
    Tcp(OwnedFd),
    Unix(OwnedFd),
}

impl Conn {
    /// The socket as an endpoint of the current runtime.
    fn endpoint(self) -> std::io::Result<Endpoint> {
        Ok(match self {
            Conn::Tcp(fd) => Endpoint::Tcp(TcpStream::from_std(fd.into())?),
            Conn::Unix(fd) => Endpoint::Unix(tokio::net::UnixStream::from_std(fd.into())?),
        })
    }

    fn reset(&self) {
        match self {
            Conn::Tcp(fd) => net::arm_reset(fd),
            Conn::Unix(_) => {}
        }
    }
}

/// A client accepted and admitted, on its way to the loop that relays it.
struct Admitted {
    conn: Conn,
    peer: Peer,
    permit: OwnedSemaphorePermit,
    id: u64,
}

impl Acceptor {
    async fn accept(&self) -> std::io::Result<(Conn, Peer)> {
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
                let _ = sock.set_nodelay(true);
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

/// What every relay task shares.
struct Ctx {
    opts: ForwardOptions,
    /// One per `tls:` target (same index), `None` for the others.
    target_tls: Vec<Option<ClientTls>>,
    next: AtomicUsize,
    pipes: PipePool,
    events: Events,
    stop: CancellationToken,
    /// `--max-conns`, shared by every accept loop.
    slots: Arc<Semaphore>,
    /// The faults' seed for this run.
    seed: u64,
    /// Clients relayed so far (each one's id), and clients turned away.
    relayed: AtomicU64,
    refused: AtomicU64,
    /// What each accept loop relays, and its inbox of handed clients.
    balance: Arc<Balance<Admitted>>,
}

/// One accept loop's place in the balance.
struct Loop {
    me: usize,
    inbox: balance::Inbox<Admitted>,
}

/// Binds, announces `listening on`, and relays until `stop` is cancelled.
///
/// # Errors
/// Bad combinations, bind errors, TLS set-up, or a listener that fails for good.
pub async fn run(
    opts: ForwardOptions,
    stop: CancellationToken,
) -> Result<ForwardSummary, ForwardError> {
    opts.check()?;
    net::raise_nofile_limit();
    let (events, writer) = Events::start(opts.json);
    let result = if opts.listen.proto() == Proto::Udp {
        udp::run(opts, stop, events).await
    } else {
        run_stream(opts, stop, events).await
    };
    if let Some(w) = writer {
        let _ = tokio::task::spawn_blocking(move || w.join()).await;
    }
    result
}

async fn run_stream(
    opts: ForwardOptions,
    stop: CancellationToken,
    events: Events,
) -> Result<ForwardSummary, ForwardError> {
    let listener_err = |e: std::io::Error| ForwardError::Listener(describe(&e));
    let target_tls = target_configs(&opts)?;
    let bound = match &opts.listen {
        Listen::Tcp(bind) => {
            let l = net::bind_tcp(bind, opts.family)?;
            let local = l.local_addr().map_err(listener_err)?;
            l.set_nonblocking(true).map_err(listener_err)?;
            net::announce_listening(local);
            Bound::Tcp(l, opts.wants_local())
        }
        Listen::Unix(addr) => {
            let b = unix::bind(addr)?;
            b.listener.set_nonblocking(true).map_err(listener_err)?;
            eprintln!("listening on {}", b.addr);
            Bound::Unix(Arc::new(b))
        }
        Listen::Udp(_) => {
            return Err(ForwardError::Usage(
                "a UDP listener has no stream acceptor".into(),
            ))
        }
    };
    if let Some(t) = &opts.tls {
        eprintln!("{}", t.banner);
    }
    let loops = if opts.once { 1 } else { accept_loops() };
    let (balance, inboxes) = Balance::new(loops);
    let ctx = Arc::new(Ctx::new(opts, target_tls, events, stop, balance));
    // One accept loop per core, each on a runtime of its own thread: a
    // relay lives on one thread, so its wake-ups never cross threads. All
    // loops share one listening socket; the kernel hands each connection
    // to one of them, and `balance` evens out what it handed.
    let mut inboxes = inboxes.into_iter().enumerate();
    let first = inboxes.next();
    let mut tasks = Vec::with_capacity(loops);
    for (me, inbox) in inboxes {
        let b = bound.try_clone().map_err(listener_err)?;
        tasks.push(serve_task(b, ctx.clone(), Loop { me, inbox }));
    }
    if let Some((me, inbox)) = first {
        tasks.insert(0, serve_task(bound, ctx.clone(), Loop { me, inbox }));
    }
    let first = on_each_core("sockit-relay", tasks).await;
    first.map_err(listener_err)?;
    Ok(ctx.summary())
}

/// Runs the first of `tasks` here and each other on a thread of its own,
/// with a single-threaded runtime, and waits for them all. A thread that
/// cannot start is skipped (fewer loops still serve); a loop that fails
/// later is logged. Returns the first task's result.
pub(crate) async fn on_each_core<F>(name: &str, tasks: Vec<F>) -> std::io::Result<()>
where
    F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
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
async fn serve_task(bound: Bound, ctx: Arc<Ctx>, lp: Loop) -> std::io::Result<()> {
    let task = tokio::spawn(async move { serve(bound.acceptor()?, ctx, lp).await });
    task.await.map_err(std::io::Error::other)?
}

/// How many accept loops a stream relay (or `sockit proxy`) runs: one
/// per core it may use.
pub(crate) fn accept_loops() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_LOOPS)
}

/// Most accept loops, however many cores there are.
const MAX_LOOPS: usize = 16;

/// A bound listener, before a runtime takes it.
enum Bound {
    Tcp(std::net::TcpListener, bool),
    Unix(Arc<unix::BoundUnix>),
}

impl Bound {
    fn try_clone(&self) -> std::io::Result<Bound> {
        Ok(match self {
            Bound::Tcp(l, w) => Bound::Tcp(l.try_clone()?, *w),
            Bound::Unix(b) => Bound::Unix(b.clone()),
        })
    }

    /// The listener on the current runtime.
    fn acceptor(self) -> std::io::Result<Acceptor> {
        Ok(match self {
            Bound::Tcp(l, w) => Acceptor::Tcp(RawListener::new(l)?, w),
            Bound::Unix(b) => {
                let l = RawListener::new(b.listener.try_clone()?)?;
                Acceptor::Unix(l, b)
            }
        })
    }
}

/// Relays clients of a TCP listener the caller bound (the demo, tests of
/// the library), printing nothing; `opts.listen` is not used.
///
/// # Errors
/// Bad combinations, TLS set-up for targets, or a listener that fails.
pub async fn serve_tcp(
    listener: std::net::TcpListener,
    opts: ForwardOptions,
    stop: CancellationToken,
) -> Result<ForwardSummary, ForwardError> {
    opts.check()?;
    let listener_err = |e: std::io::Error| ForwardError::Listener(describe(&e));
    let target_tls = target_configs(&opts)?;
    listener.set_nonblocking(true).map_err(listener_err)?;
    let bound = Bound::Tcp(listener, opts.wants_local());
    let (balance, mut inboxes) = Balance::new(1);
    let ctx = Arc::new(Ctx::new(opts, target_tls, Events::default(), stop, balance));
    let Some(inbox) = inboxes.pop() else {
        return Ok(ctx.summary());
    };
    serve_task(bound, ctx.clone(), Loop { me: 0, inbox })
        .await
        .map_err(listener_err)?;
    Ok(ctx.summary())
}

/// A client configuration per `tls:` target (same index), built before
/// anything listens so a bad pin or CA file is reported first.
fn target_configs(opts: &ForwardOptions) -> Result<Vec<Option<ClientTls>>, ForwardError> {
    let mut v = Vec::with_capacity(opts.targets.len());
    for t in &opts.targets {
        v.push(match &t.kind {
            TargetKind::Tls(h, p) => Some(ClientTls::new(h, *p, &opts.target_tls)?),
            _ => None,
        });
    }
    Ok(v)
}

impl Ctx {
    fn new(
        opts: ForwardOptions,
        target_tls: Vec<Option<ClientTls>>,
        events: Events,
        stop: CancellationToken,
        balance: Arc<Balance<Admitted>>,
    ) -> Ctx {
        let seed = opts.faults.run_seed("connections");
        Ctx {
            seed,
            slots: Arc::new(Semaphore::new(opts.max_conns.max(1))),
            opts,
            target_tls,
            next: AtomicUsize::new(0),
            pipes: PipePool::new(),
            events,
            stop,
            relayed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            balance,
        }
    }

    fn summary(&self) -> ForwardSummary {
        ForwardSummary {
            relayed: self.relayed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// How long an emptied splice pipe waits in the pool before it is closed.
pub(crate) const PIPE_IDLE: Duration = Duration::from_secs(5);

/// An accept loop, on a bound listener; ends when `stop` is cancelled
/// (or, with `once`, after one client), once its relays have ended.
async fn serve(acceptor: Acceptor, ctx: Arc<Ctx>, mut lp: Loop) -> std::io::Result<()> {
    let tracker = TaskTracker::new();
    let stop = ctx.stop.clone();
    let mut trouble = crate::net::AcceptTrouble::default();
    // Pipes left idle by a burst are closed again after a while.
    let mut trim = tokio::time::interval(PIPE_IDLE);
    trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some((a, load)) = lp.inbox.recv() => {
                start_relay(&tracker, &ctx, a, load);
                continue;
            }
            r = acceptor.accept() => r,
            _ = trim.tick() => {
                ctx.pipes.trim(PIPE_IDLE);
                continue;
            }
        };
        let (conn, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: back off instead of
                // spinning, and keep relaying the clients we have.
                trouble.failed(&e);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(crate::net::AcceptTrouble::BACKOFF) => continue,
                }
            }
        };
        if let Some(a) = peer.addr {
            if let Err(why) = ctx.opts.access.check(a.ip()) {
                ctx.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("refused {}: {why}", peer.name);
                refused(&ctx, &peer, &why.to_string()).await;
                conn.reset();
                continue;
            }
        }
        let Ok(permit) = ctx.slots.clone().try_acquire_owned() else {
            ctx.refused.fetch_add(1, Ordering::Relaxed);
            let why = format!(
                "already relaying {} (--max-conns)",
                crate::text::counted(ctx.opts.max_conns as u64, "connection", "connections")
            );
            tracing::warn!("refused {}: {why}", peer.name);
            refused(&ctx, &peer, &why).await;
            conn.reset();
            continue;
        };
        let id = ctx.relayed.fetch_add(1, Ordering::Relaxed) + 1;
        let admitted = Admitted {
            conn,
            peer,
            permit,
            id,
        };
        let load = ctx.balance.place(lp.me);
        if let Some((a, load)) = ctx.balance.hand(lp.me, admitted, load) {
            start_relay(&tracker, &ctx, a, load);
        }
        if ctx.opts.once {
            break;
        }
    }
    drop(acceptor);
    // Clients handed to this loop as it stopped are closed.
    lp.inbox.close();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Relays an admitted client on this loop, counted in `load` until it ends.
fn start_relay(tracker: &TaskTracker, ctx: &Arc<Ctx>, a: Admitted, load: Load<Admitted>) {
    let ctx = ctx.clone();
    tracker.spawn(async move {
        let _permit = a.permit;
        let _load = load;
        match a.conn.endpoint() {
            Ok(client) => relay(client, a.peer, &ctx, a.id).await,
            Err(e) => tracing::warn!(
                "{}: could not take the connection on ({})",
                a.peer.name,
                describe(&e)
            ),
        }
    });
}

async fn refused(ctx: &Ctx, peer: &Peer, why: &str) {
    ctx.events
        .emit(
            "refused",
            &[
                ("client", events::s(&peer.name)),
                ("reason", events::s(why)),
            ],
        )
        .await;
}

/// Connects to the first target that answers, starting at the next one in
/// turn and skipping those marked down (unless all are).
async fn connect_target(ctx: &Ctx, peer: &Peer) -> Result<(Endpoint, String), Vec<String>> {
    let n = ctx.opts.targets.len();
    let start = ctx.next.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
    // Targets that are up first, then the ones marked down, as a last try.
    let (up, down): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|&i| !ctx.opts.targets[i].is_down(now));
    let mut errors = Vec::new();
    for i in up.into_iter().chain(down) {
        let t = &ctx.opts.targets[i];
        match connect_one(ctx, i, peer).await {
            Ok(s) => {
                t.mark(false);
                return Ok((s, t.name()));
            }
            Err(why) => {
                if !t.is_down(now) {
                    tracing::warn!(
                        "target {} {why}; skipping it for {} s",
                        t.name(),
                        DOWN_FOR.as_secs()
                    );
                }
                t.mark(true);
                errors.push(format!("{} {why}", t.name()));
            }
        }
    }
    Err(errors)
}

/// One target, within the connect timeout (TLS: the handshake has its own).
async fn connect_one(ctx: &Ctx, i: usize, peer: &Peer) -> Result<Endpoint, String> {
    let timeout = ctx.opts.connect_timeout;
    let header = ctx
        .opts
        .proxy_protocol
        .map(|v| proxy_header::encode(v, peer.addr.zip(peer.local_addr)));
    let with_header = |mut e: Endpoint| async {
        if let Some(h) = &header {
            if let Err(e) = e.write_all(h).await {
                return Err(format!(
                    "failed while sending the PROXY header ({})",
                    describe(&e)
                ));
            }
        }
        Ok(e)
    };
    match &ctx.opts.targets[i].kind {
        TargetKind::Tcp(h, p) => {
            with_header(Endpoint::Tcp(target_connect(ctx, h, *p).await?)).await
        }
        TargetKind::Tls(h, p) => {
            let s = target_connect(ctx, h, *p).await?;
            let Endpoint::Tcp(s) = with_header(Endpoint::Tcp(s)).await? else {
                return Err("lost its socket".into());
            };
            let Some(cfg) = &ctx.target_tls[i] else {
                return Err("has no TLS configuration".into());
            };
            let s = crate::tls::connect_async(cfg, s, ctx.opts.handshake_timeout)
                .await
                .map_err(|e| format!("failed the TLS handshake ({e})"))?;
            Ok(Endpoint::TlsClient(Box::new(s)))
        }
        TargetKind::Unix(a) => with_header(Endpoint::Unix(unix::connect(a, timeout).await?)).await,
        TargetKind::Exec(p) => {
            let env = ConnEnv {
                proto: match (&ctx.opts.listen, ctx.opts.tls.is_some()) {
                    (Listen::Unix(_), _) => "unix",
                    (_, true) => "tls",
                    _ => "tcp",
                },
                peer: peer.name.clone(),
                peer_addr: peer.addr,
                peer_cred: peer.cred,
                local: peer.local.clone(),
                local_addr: peer.local_addr,
            };
            let c =
                child::spawn(p, &env).map_err(|e| format!("could not start ({})", describe(&e)))?;
            tracing::debug!("{}: started child {}", peer.name, c.pid());
            Ok(Endpoint::Child(Box::new(c)))
        }
        TargetKind::Udp(..) => Err("is UDP; a stream relay cannot use it".into()),
    }
}

/// A TCP connection to a target, directly or through `--proxy`.
async fn target_connect(ctx: &Ctx, host: &str, port: u16) -> Result<TcpStream, String> {
    let timeout = ctx.opts.connect_timeout;
    if ctx.opts.proxies.is_empty() {
        return tcp_connect(host, port, timeout).await;
    }
    crate::proxy::connect_async(&ctx.opts.proxies, host, port, timeout)
        .await
        .map_err(|e| format!("is out of reach: {e}"))
}

/// A TCP connection to every address `host` resolves to, in turn.
async fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("could not be resolved ({})", describe(&e)))?
            .collect();
        let mut last = String::from("has no address");
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => {
                    last = match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => "refused the connection".into(),
                        _ if e.raw_os_error() == Some(libc::EHOSTUNREACH)
                            || e.raw_os_error() == Some(libc::ENETUNREACH) =>
                        {
                            "has no route (host or network unreachable)".into()
                        }
                        _ => format!("failed ({})", describe(&e)),
                    }
                }
            }
        }
        Err(last)
    };
    match lazy_timeout(timeout, attempt).await {
        Some(r) => r,
        None => Err(format!("timed out after {} s", timeout.as_secs_f64())),
    }
}

/// `fut` within `limit`, arming the timer only when `fut` is not done by
/// the second turn of the event loop. A connect on loopback is done by
/// then, and a timer set on an idle runtime wakes it through its eventfd:
/// one more syscall, and a wake-up, for every relayed connection.
pub(crate) async fn lazy_timeout<F: std::future::Future>(
    limit: Duration,
    fut: F,
) -> Option<F::Output> {
    use std::task::Poll;
    let start = Instant::now();
    let mut fut = std::pin::pin!(fut);
    for _ in 0..2 {
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        if let Poll::Ready(v) = polled {
            return Some(v);
        }
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(limit.saturating_sub(start.elapsed()), fut)
        .await
        .ok()
}

/// Relays one client to a target until both directions have ended.
async fn relay(client: Endpoint, peer: Peer, ctx: &Ctx, id: u64) {
    let who = &peer.name;
    let mut client = match (client, &ctx.opts.tls) {
        (Endpoint::Tcp(s), Some(tls)) => {
            // Boxed, and the stream boxed inside: a TLS stream is 1.2 KiB,
            // and every relay's task would otherwise carry room for one.
            let r = tokio::select! {
                r = Box::pin(tls_accept(ctx, tls, s, &peer)) => r,
                _ = ctx.stop.cancelled() => return,
            };
            match r {
                Some(e) => e,
                None => return,
            }
        }
        (c, _) => c,
    };
    let connected = tokio::select! {
        r = Box::pin(connect_target(ctx, &peer)) => r,
        _ = ctx.stop.cancelled() => return,
    };
    let (mut target, name) = match connected {
        Ok(x) => x,
        Err(errors) => {
            let why = format!("no target answered ({})", errors.join("; "));
            tracing::warn!("{who}: {why}; reset the client");
            Box::pin(error_event(ctx, who, &why)).await;
            client.reset();
            return;
        }
    };
    tracing::info!("{who} -> {name}: relaying");
    if ctx.events.on() {
        Box::pin(ctx.events.emit(
            "open",
            &[
                ("id", id.to_string()),
                ("client", events::s(who)),
                ("target", events::s(&name)),
            ],
        ))
        .await;
    }
    let faults = ctx.opts.faults.for_conn(ctx.seed, id);
    if faults.is_some() {
        tracing::info!("{who} -> {name}: faults: {}", ctx.opts.faults.describe());
    }
    let p = relay::pump(
        &mut client,
        &mut target,
        ctx.opts.idle_timeout,
        &ctx.stop,
        &ctx.pipes,
        faults,
    )
    .await;
    let first = match p.first_eof {
        Some(Side::A) => "client",
        Some(Side::B) => "target",
        None => "neither",
    };
    let secs = p.elapsed.as_secs_f64();
    let (end, detail) = match &p.end {
        // No stages here, so no quit word: both read as a close.
        End::Done | End::Quit(_) => ("closed", String::new()),
        End::Failed(side, e) => {
            let whose = if *side == Side::A { "client" } else { "target" };
            // A TLS target that wants a client certificate says so at the
            // first read, after the handshake.
            let why = match (&target, side) {
                (Endpoint::TlsClient(_), Side::B) => {
                    crate::tls::cert_refusal(e, crate::tls::TrustFlags::TARGET.cert)
                }
                _ => None,
            };
            (
                "reset",
                format!("{whose}: {}", why.unwrap_or_else(|| describe(e))),
            )
        }
        End::Idle => ("idle", String::new()),
        End::Stopped => ("stopped", String::new()),
        End::Fault(limit, side, n) => {
            let (end, how) = match limit {
                relay::fault::Limit::Reset => ("fault-reset", "reset"),
                relay::fault::Limit::Close => ("fault-close", "closed"),
                relay::fault::Limit::Stall => ("fault-stall", "stalled"),
            };
            let way = if *side == Side::A { "up" } else { "down" };
            (end, format!("{how} by the fault after {n} bytes {way}"))
        }
    };
    // Closed now, not after the events below: the pump leaves the last
    // FIN to this close.
    drop(client);
    let status = match target.child() {
        Some(c) => {
            let hurry = !matches!(p.end, End::Done);
            Box::pin(c.finish(hurry)).await
        }
        None => None,
    };
    drop(target);
    // Logged once both sockets are closed: a line that says "reset both
    // sides" is true when it is read.
    if tracing::enabled!(tracing::Level::INFO) {
        log_end(who, &name, &p, first, &detail, ctx.opts.idle_timeout);
    }
    if let Some(st) = status {
        if !st.success() {
            tracing::info!("{who} -> {name}: the program ended with {st}");
        }
    }
    if !ctx.events.on() {
        return;
    }
    let mut fields = vec![
        ("id", id.to_string()),
        ("client", events::s(who)),
        ("target", events::s(&name)),
        ("end", events::s(end)),
        ("bytes_up", p.a_to_b.to_string()),
        ("bytes_down", p.b_to_a.to_string()),
        ("secs", format!("{secs:.6}")),
        ("first_closed", events::s(first)),
    ];
    if !detail.is_empty() {
        fields.push(("reason", events::s(&detail)));
    }
    if let Some(code) = status.and_then(|s| s.code()) {
        fields.push(("exit_code", code.to_string()));
    }
    Box::pin(ctx.events.emit("close", &fields)).await;
}

/// The TLS handshake with a client; a failure is logged and reported.
async fn tls_accept(ctx: &Ctx, tls: &ServerTls, s: TcpStream, peer: &Peer) -> Option<Endpoint> {
    let addr = peer
        .addr
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    match crate::tls::accept_async(tls, s, addr, ctx.opts.handshake_timeout).await {
        Ok(s) => Some(Endpoint::TlsServer(Box::new(s))),
        Err(e) => {
            tracing::warn!("{e}");
            error_event(ctx, &peer.name, &e.to_string()).await;
            None
        }
    }
}

/// `-v`'s line for a relay's end: bytes each way, duration, who closed.
fn log_end(
    who: &str,
    name: &str,
    p: &relay::Pumped,
    first: &str,
    detail: &str,
    idle: Option<Duration>,
) {
    let bytes = format!(
        "{} up, {} down, {:.2} s",
        crate::text::counted(p.a_to_b, "byte", "bytes"),
        crate::text::counted(p.b_to_a, "byte", "bytes"),
        p.elapsed.as_secs_f64()
    );
    match &p.end {
        End::Done | End::Quit(_) => {
            tracing::info!("{who} -> {name}: closed; {bytes}; the {first} closed first")
        }
        End::Failed(..) => tracing::info!("{who} -> {name}: {detail}; reset both sides; {bytes}"),
        End::Idle => tracing::info!(
            "{who} -> {name}: idle for {} s; reset both sides; {bytes}",
            idle.map(|d| d.as_secs_f64()).unwrap_or(0.0)
        ),
        End::Stopped => tracing::info!("{who} -> {name}: stopped; {bytes}"),
        End::Fault(..) => tracing::info!("{who} -> {name}: {detail}; {bytes}"),
    }
}

async fn error_event(ctx: &Ctx, who: &str, why: &str) {
    ctx.events
        .emit(
            "error",
            &[("client", events::s(who)), ("reason", events::s(why))],
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_spellings() {
        let t = parse_target("127.0.0.1:80").unwrap();
        assert_eq!(t.name(), "127.0.0.1:80");
        let t = parse_target("tcp:localhost:8080").unwrap();
        assert_eq!(t.name(), "localhost:8080");
        let t = parse_target("[::1]:22").unwrap();
        assert_eq!(t.name(), "[::1]:22");
        for bad in [
            "",
            "host",
            "host:0",
            "host:70000",
            ":80",
            "::1:80",
            "unix:",
            "exec:",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_target("udp:127.0.0.1:53").unwrap().proto(),
            Proto::Udp
        );
        assert_eq!(parse_target("tls:h:443").unwrap().name(), "tls:h:443");
        assert_eq!(
            parse_target("unix:/run/x.sock").unwrap().name(),
            "unix:/run/x.sock"
        );
        assert_eq!(parse_target("exec:cat").unwrap().name(), "exec:cat");
        assert!(parse_target("sh:cat | tr a b").is_ok());
        let e = parse_target("exec:/no/such/thing").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        assert!(matches!(parse_listen("8080").unwrap(), Listen::Tcp(_)));
        assert!(matches!(
            parse_listen("tcp:127.0.0.1:0").unwrap(),
            Listen::Tcp(_)
        ));
        assert!(matches!(parse_listen("udp:53").unwrap(), Listen::Udp(_)));
        assert!(matches!(parse_listen("unix:@x").unwrap(), Listen::Unix(_)));
    }

    #[test]
    fn mixed_kinds_are_refused() {
        let o = ForwardOptions::new(
            parse_listen("udp:0").unwrap(),
            parse_targets(&["127.0.0.1:80"]).unwrap(),
        );
        assert!(o.check().is_err());
        let mut o = ForwardOptions::new(
            parse_listen("unix:@x").unwrap(),
            parse_targets(&["127.0.0.1:80"]).unwrap(),
        );
        assert!(o.check().is_ok());
        o.access.allow.push("127.0.0.0/8".parse().unwrap());
        assert!(o.check().is_err());
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// A relay's task is allocated at its largest state for as long as the
    /// connection lives: a TLS stream or a connect future kept inline once
    /// made it 2 KiB.
    #[tokio::test]
    async fn a_relay_task_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let opts = ForwardOptions::new(
            parse_listen("127.0.0.1:0").unwrap(),
            vec![parse_target("127.0.0.1:1").unwrap()],
        );
        let ctx = Ctx::new(
            opts,
            vec![None],
            Events::default(),
            CancellationToken::new(),
            Balance::new(1).0,
        );
        let peer = Peer {
            name: String::new(),
            addr: None,
            cred: None,
            local: String::new(),
            local_addr: None,
        };
        let f = relay(Endpoint::Tcp(a), peer, &ctx, 1);
        assert!(
            std::mem::size_of_val(&f) <= 1024,
            "relay: {}",
            std::mem::size_of_val(&f)
        );
    }
}
