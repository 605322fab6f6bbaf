//! `sockit forward LISTEN TARGET…`: a TCP or UDP relay on one event loop.
//!
//! Each accepted client is joined to one target, chosen round robin. A
//! target that refuses or times out is skipped for [`DOWN_FOR`], and the
//! client goes to the next one; when none answers, the client is reset and
//! the log line names each target's error. Bytes move in both directions at
//! once; an end of stream in one direction is passed on as a FIN while the
//! other keeps flowing (no timer), and a reset on either side is passed on
//! as a reset (`SO_LINGER` 0).
//!
//! `udp:` on both sides relays datagrams through a session table (see
//! `run_udp`). What this cut does not do yet (issue 14): Unix sockets,
//! TLS at either end, a program per connection, the PROXY protocol,
//! and `--json` events. Their spellings are
//! refused with a sentence that says so, never ignored.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::AccessList;
use crate::net::{self, describe, show_addr, BindAddr, Family, NetError};

/// How long a target that refused or timed out is skipped.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// Default `--max-conns`: client connections relayed at once (each holds
/// two descriptors).
pub const DEFAULT_MAX_CONNS: usize = 8192;

/// How long a UDP session lives without a datagram either way, by default.
pub const DEFAULT_UDP_IDLE: Duration = Duration::from_secs(60);

/// Default `--max-sessions` for UDP.
pub const DEFAULT_MAX_SESSIONS: usize = 4096;

/// Default `--connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Copy buffer per direction, for the userspace pump.
const COPY_BUF: usize = 64 * 1024;

/// Relays that may use `splice(2)` at once. Each holds a pipe pair per
/// direction (four descriptors more); past this many, relays use the
/// userspace copy, so 10,000 connections still fit a 20,000-fd limit.
const SPLICE_RELAYS: usize = 1024;

/// Most bytes one `splice` call is asked to move, and the pipe size asked
/// for: fewer, larger moves cost fewer syscalls per byte.
const SPLICE_CHUNK: usize = 1 << 20;

/// Errors from `forward`.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A LISTEN or TARGET that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Binding the listener failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The listener failed for good.
    #[error("the listener failed ({0})")]
    Listener(String),
}

/// Which transport a LISTEN or TARGET names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `[tcp:]HOST:PORT`.
    Tcp,
    /// `udp:HOST:PORT`.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One target: where to connect, and until when it is skipped.
#[derive(Debug)]
pub struct Target {
    /// TCP or UDP.
    pub proto: Proto,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Set when the target refused or timed out: skip it until then.
    down_until: Mutex<Option<Instant>>,
}

impl Target {
    /// `HOST:PORT` as the log shows it.
    pub fn name(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
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

/// Parses a TARGET: `HOST:PORT`, `tcp:HOST:PORT`, `[V6]:PORT`.
///
/// # Errors
/// A sentence for a spelling that is wrong or not built yet.
pub fn parse_target(s: &str) -> Result<Target, ForwardError> {
    for scheme in ["unix:", "tls:", "exec:", "sh:"] {
        if s.starts_with(scheme) {
            return Err(ForwardError::Usage(format!(
                "{s:?}: {scheme} targets are not built yet; this sockit forwards TCP and UDP only"
            )));
        }
    }
    let (proto, rest) = match s.strip_prefix("udp:") {
        Some(r) => (Proto::Udp, r),
        None => (Proto::Tcp, s.strip_prefix("tcp:").unwrap_or(s)),
    };
    let bad = || ForwardError::Usage(format!("{s:?} is not a target; write HOST:PORT"));
    let (host, port) = if let Ok(sa) = rest.parse::<SocketAddr>() {
        (sa.ip().to_string(), sa.port())
    } else {
        let (h, p) = rest.rsplit_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.contains(':') {
            return Err(bad());
        }
        (
            h.to_string(),
            net::parse_port(p).map_err(ForwardError::Usage)?,
        )
    };
    if port == 0 {
        return Err(bad());
    }
    Ok(Target {
        proto,
        host,
        port,
        down_until: Mutex::new(None),
    })
}

/// Parses a LISTEN spelling: `[ADDR:]PORT` or `tcp:[ADDR:]PORT`.
///
/// # Errors
/// A sentence for a spelling that is wrong or not built yet.
pub fn parse_listen(s: &str) -> Result<(Proto, BindAddr), ForwardError> {
    if s.starts_with("unix:") {
        return Err(ForwardError::Usage(format!(
            "{s:?}: unix: listeners are not built yet; this sockit forwards TCP and UDP only"
        )));
    }
    let (proto, rest) = match s.strip_prefix("udp:") {
        Some(r) => (Proto::Udp, r),
        None => (Proto::Tcp, s.strip_prefix("tcp:").unwrap_or(s)),
    };
    Ok((
        proto,
        rest.parse::<BindAddr>().map_err(ForwardError::Usage)?,
    ))
}

/// How `forward` behaves.
#[derive(Debug)]
pub struct ForwardOptions {
    /// TCP or UDP, for the listener and every target.
    pub proto: Proto,
    /// Where to listen.
    pub listen: BindAddr,
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
    /// `--allow` and `--deny`.
    pub access: AccessList,
}

/// What one run of the relay saw.
#[derive(Debug, Default)]
pub struct ForwardSummary {
    /// Clients relayed to a target.
    pub relayed: u64,
    /// Clients turned away (access, `--max-conns`, no target answered).
    pub refused: u64,
}

/// Binds, announces `listening on`, and relays until `stop` is cancelled.
///
/// # Errors
/// Bind errors, or a listener that fails for good.
pub async fn run(
    opts: ForwardOptions,
    stop: CancellationToken,
) -> Result<ForwardSummary, ForwardError> {
    net::raise_nofile_limit();
    if opts.proto == Proto::Udp {
        return run_udp(opts, stop).await;
    }
    let std_listener = net::bind_tcp(&opts.listen, opts.family)?;
    let local = std_listener
        .local_addr()
        .map_err(|e| ForwardError::Listener(describe(&e)))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| ForwardError::Listener(describe(&e)))?;
    let listener =
        TcpListener::from_std(std_listener).map_err(|e| ForwardError::Listener(describe(&e)))?;
    net::announce_listening(local);
    serve(listener, Arc::new(opts), stop).await
}

/// The accept loop, on a bound listener.
async fn serve(
    listener: TcpListener,
    opts: Arc<ForwardOptions>,
    stop: CancellationToken,
) -> Result<ForwardSummary, ForwardError> {
    let slots = Arc::new(Semaphore::new(opts.max_conns.max(1)));
    let splice_slots = Arc::new(Semaphore::new(SPLICE_RELAYS));
    let next = Arc::new(AtomicUsize::new(0));
    let tracker = TaskTracker::new();
    let mut summary = ForwardSummary::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (client, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: back off instead of
                // spinning, and keep relaying the clients we have.
                tracing::warn!("accept failed ({}); retrying", describe(&e));
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        if let Err(why) = opts.access.check(peer.ip()) {
            summary.refused += 1;
            tracing::warn!("refused {}: {why}", show_addr(peer));
            net::arm_reset(&client);
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            summary.refused += 1;
            tracing::warn!(
                "refused {}: already relaying {} (--max-conns)",
                show_addr(peer),
                crate::text::counted(opts.max_conns as u64, "connection", "connections")
            );
            net::arm_reset(&client);
            continue;
        };
        summary.relayed += 1;
        let opts = opts.clone();
        let next = next.clone();
        let stop = stop.clone();
        let zero_copy = splice_slots.clone().try_acquire_owned().ok();
        tracker.spawn(async move {
            let _permit = permit;
            relay(client, peer, &opts, &next, &stop, zero_copy.is_some()).await;
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(summary)
}

/// Connects to the first target that answers, starting at the next one in
/// turn and skipping those marked down (unless all are).
async fn connect_target(
    opts: &ForwardOptions,
    next: &AtomicUsize,
) -> Result<(TcpStream, String), Vec<String>> {
    let n = opts.targets.len();
    let start = next.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
    // Targets that are up first, then the ones marked down, as a last try.
    let (up, down): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|&i| !opts.targets[i].is_down(now));
    let mut errors = Vec::new();
    for i in up.into_iter().chain(down) {
        let t = &opts.targets[i];
        match connect_one(t, opts.connect_timeout).await {
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

/// One target, every address it resolves to, within the timeout.
async fn connect_one(t: &Target, timeout: Duration) -> Result<TcpStream, String> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
            .await
            .map_err(|e| format!("could not be resolved ({})", describe(&e)))?
            .collect();
        let mut last = String::from("has no address");
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    last = match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => "refused the connection".into(),
                        _ => format!("failed ({})", describe(&e)),
                    }
                }
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {} s", timeout.as_secs_f64())),
    }
}

/// Relays one client to a target until both directions have ended.
async fn relay(
    mut client: TcpStream,
    peer: SocketAddr,
    opts: &ForwardOptions,
    next: &AtomicUsize,
    stop: &CancellationToken,
    zero_copy: bool,
) {
    let who = show_addr(peer);
    let (mut target, name) = match connect_target(opts, next).await {
        Ok(x) => x,
        Err(errors) => {
            tracing::warn!(
                "{who}: no target answered ({}); reset the client",
                errors.join("; ")
            );
            net::arm_reset(&client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = target.set_nodelay(true);
    tracing::info!("{who} -> {name}: relaying");
    let started = Instant::now();
    let pipes = if zero_copy {
        match (Pipe::new(), Pipe::new()) {
            (Ok(a), Ok(b)) => Some((a, b)),
            _ => None,
        }
    } else {
        None
    };
    let activity = Activity::new();
    let idle = activity.idle(opts.idle_timeout);
    let on_idle = || {
        let secs = opts.idle_timeout.map(|d| d.as_secs_f64()).unwrap_or(0.0);
        tracing::info!("{who} -> {name}: idle for {secs} s");
    };
    let result = match &pipes {
        Some((up_pipe, down_pipe)) => {
            // Both directions at once, each through its own pipe, the bytes
            // never entering user space.
            let pump = async {
                tokio::try_join!(
                    splice_one_way(&client, &target, up_pipe, &activity),
                    splice_one_way(&target, &client, down_pipe, &activity),
                )
            };
            drive(pump, idle, stop, on_idle).await
        }
        None => {
            let mut c = Tracked(&mut client, &activity);
            let mut t = Tracked(&mut target, &activity);
            let pump = tokio::io::copy_bidirectional_with_sizes(&mut c, &mut t, COPY_BUF, COPY_BUF);
            drive(pump, idle, stop, on_idle).await
        }
    };
    let secs = started.elapsed().as_secs_f64();
    match result {
        Some(Ok((up, down))) => {
            tracing::info!("{who} -> {name}: closed; {up} bytes up, {down} bytes down, {secs:.2} s")
        }
        Some(Err(e)) => {
            // A reset (or any failure) on one side is passed on as a reset.
            tracing::info!(
                "{who} -> {name}: {} after {secs:.2} s; reset both sides",
                describe(&e)
            );
            net::arm_reset(&client);
            net::arm_reset(&target);
        }
        None => {
            tracing::info!("{who} -> {name}: stopped after {secs:.2} s");
            net::arm_reset(&client);
            net::arm_reset(&target);
        }
    }
}

/// Runs a relay's pump until it ends, the relay goes idle, or the relay is
/// stopped; `None` for the last two.
async fn drive(
    pump: impl std::future::Future<Output = std::io::Result<(u64, u64)>>,
    idle: impl std::future::Future<Output = ()>,
    stop: &CancellationToken,
    on_idle: impl FnOnce(),
) -> Option<std::io::Result<(u64, u64)>> {
    tokio::select! {
        r = pump => Some(r),
        _ = idle => {
            on_idle();
            None
        }
        _ = stop.cancelled() => None,
    }
}

/// One UDP client's session: its own connected socket to the target.
struct Session {
    /// Connected to the target; replies come back on it.
    up: Arc<tokio::net::UdpSocket>,
    /// Milliseconds after the relay's start of the last datagram either way.
    last_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Carries replies back to the client.
    task: tokio::task::JoinHandle<()>,
}

/// Binds the UDP listener: the first candidate address that binds. No
/// SO_REUSEADDR, so a taken port is an error.
fn bind_udp(opts: &ForwardOptions) -> Result<std::net::UdpSocket, ForwardError> {
    let mut last = None;
    for addr in net::listen_candidates(&opts.listen, opts.family)? {
        match std::net::UdpSocket::bind(addr) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(net::bind_error(addr, e)),
        }
    }
    Err(last
        .map(ForwardError::Net)
        .unwrap_or_else(|| ForwardError::Listener("no address to bind".into())))
}

/// Opens a session: a socket connected to the next target in turn.
async fn open_session(
    opts: &ForwardOptions,
    next: &AtomicUsize,
) -> Result<(tokio::net::UdpSocket, String), String> {
    let n = opts.targets.len();
    let t = &opts.targets[next.fetch_add(1, Ordering::Relaxed) % n];
    let addr = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("{} could not be resolved ({})", t.name(), describe(&e)))?
        .next()
        .ok_or_else(|| format!("{} has no address", t.name()))?;
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let up = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| describe(&e))?;
    up.connect(addr).await.map_err(|e| describe(&e))?;
    Ok((up, t.name()))
}

/// The UDP relay: a session table keyed by client address, each session
/// with its own connected socket, so replies go back to the right client
/// and datagram boundaries are kept. Sessions end after the idle timeout;
/// the table holds at most `max_sessions`, evicting the one idle longest.
async fn run_udp(
    opts: ForwardOptions,
    stop: CancellationToken,
) -> Result<ForwardSummary, ForwardError> {
    use std::collections::HashMap;
    let std_sock = bind_udp(&opts)?;
    let local = std_sock
        .local_addr()
        .map_err(|e| ForwardError::Listener(describe(&e)))?;
    std_sock
        .set_nonblocking(true)
        .map_err(|e| ForwardError::Listener(describe(&e)))?;
    let sock = Arc::new(
        tokio::net::UdpSocket::from_std(std_sock)
            .map_err(|e| ForwardError::Listener(describe(&e)))?,
    );
    net::announce_listening(local);
    let idle = opts.idle_timeout.unwrap_or(DEFAULT_UDP_IDLE);
    let started = Instant::now();
    let now_ms = move || started.elapsed().as_millis() as u64;
    let next = AtomicUsize::new(0);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut summary = ForwardSummary::default();
    let mut buf = vec![0u8; 65536];
    let mut sweep = tokio::time::interval(idle.min(Duration::from_secs(1)));
    loop {
        let got = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = sweep.tick() => {
                let limit = idle.as_millis() as u64;
                let now = now_ms();
                sessions.retain(|client, s| {
                    let keep = now.saturating_sub(s.last_ms.load(Ordering::Relaxed)) < limit;
                    if !keep {
                        tracing::info!(
                            "{}: UDP session ended after {} s idle",
                            show_addr(*client),
                            idle.as_secs_f64()
                        );
                        s.task.abort();
                    }
                    keep
                });
                continue;
            }
            r = sock.recv_from(&mut buf) => r,
        };
        let (n, client) = match got {
            Ok(x) => x,
            // An ICMP error for a reply we sent: not fatal for a relay.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                tracing::warn!("receive failed ({}); retrying", describe(&e));
                continue;
            }
        };
        if opts.access.check(client.ip()).is_err() {
            tracing::debug!("dropped a datagram from {}", show_addr(client));
            continue;
        }
        if !sessions.contains_key(&client) {
            if sessions.len() >= opts.max_sessions.max(1) {
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.last_ms.load(Ordering::Relaxed))
                    .map(|(c, _)| *c);
                if let Some((c, s)) = oldest.and_then(|c| sessions.remove_entry(&c)) {
                    tracing::warn!(
                        "evicted the UDP session of {} to make room for {} (--max-sessions {})",
                        show_addr(c),
                        show_addr(client),
                        opts.max_sessions
                    );
                    s.task.abort();
                }
            }
            let (up, name) = match open_session(&opts, &next).await {
                Ok(x) => x,
                Err(why) => {
                    summary.refused += 1;
                    tracing::warn!(
                        "{}: no session ({why}); datagram dropped",
                        show_addr(client)
                    );
                    continue;
                }
            };
            tracing::info!("{} -> {name}: new UDP session", show_addr(client));
            summary.relayed += 1;
            let up = Arc::new(up);
            let last_ms = Arc::new(std::sync::atomic::AtomicU64::new(now_ms()));
            let task = {
                let (up, sock, last_ms) = (up.clone(), sock.clone(), last_ms.clone());
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65536];
                    loop {
                        match up.recv(&mut b).await {
                            Ok(m) => {
                                let ms = started.elapsed().as_millis() as u64;
                                last_ms.store(ms, Ordering::Relaxed);
                                let _ = sock.send_to(&b[..m], client).await;
                            }
                            // The target is not there (ICMP): keep the session.
                            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                            Err(_) => return,
                        }
                    }
                })
            };
            sessions.insert(client, Session { up, last_ms, task });
        }
        if let Some(s) = sessions.get(&client) {
            s.last_ms.store(now_ms(), Ordering::Relaxed);
            if let Err(e) = s.up.send(&buf[..n]).await {
                tracing::debug!(
                    "{}: send to the target failed ({})",
                    show_addr(client),
                    describe(&e)
                );
            }
        }
    }
    for (_, s) in sessions.drain() {
        s.task.abort();
    }
    Ok(summary)
}

/// When bytes last moved on a relay, for `--idle-timeout`.
struct Activity {
    /// When the relay started.
    start: Instant,
    /// Milliseconds after `start` of the last move, either way.
    last_ms: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
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

/// A stream that records each read that moved bytes in an [`Activity`].
struct Tracked<'a, S>(&'a mut S, &'a Activity);

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Tracked<'_, S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut *self.0).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.1.touch();
        }
        r
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Tracked<'_, S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut *self.0).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// A pipe pair for `splice(2)`, closed on drop.
struct Pipe {
    /// Read end.
    r: std::os::fd::OwnedFd,
    /// Write end.
    w: std::os::fd::OwnedFd,
}

impl Pipe {
    fn new() -> std::io::Result<Pipe> {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two new descriptors into `fds`, which we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // A larger pipe, where the system allows it; the default works too.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, SPLICE_CHUNK as libc::c_int) };
        // SAFETY: both descriptors are fresh and owned only here.
        Ok(unsafe {
            Pipe {
                r: std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                w: std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            }
        })
    }
}

/// One `splice` call between two descriptors, non-blocking.
fn splice(from: i32, to: i32, len: usize) -> std::io::Result<usize> {
    // SAFETY: plain syscall on descriptors the caller holds open.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Moves one direction socket -> pipe -> socket until the source ends, then
/// passes the end on as a FIN. Backpressure is the kernel's: a full target
/// leaves bytes in the pipe, and the source is not read again until they
/// have gone out. Returns the bytes moved.
async fn splice_one_way(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    activity: &Activity,
) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;
    let (src, dst) = (from.as_raw_fd(), to.as_raw_fd());
    let (pr, pw) = (pipe.r.as_raw_fd(), pipe.w.as_raw_fd());
    let mut total = 0u64;
    loop {
        let n = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || splice(src, pw, SPLICE_CHUNK)) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            let _ = socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write);
            return Ok(total);
        }
        activity.touch();
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || splice(pr, dst, left)) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_spellings() {
        let t = parse_target("127.0.0.1:80").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 80));
        let t = parse_target("tcp:localhost:8080").unwrap();
        assert_eq!(t.name(), "localhost:8080");
        let t = parse_target("[::1]:22").unwrap();
        assert_eq!(t.name(), "[::1]:22");
        for bad in ["", "host", "host:0", "host:70000", ":80", "::1:80"] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_target("udp:127.0.0.1:53").unwrap().proto, Proto::Udp);
        for later in ["unix:/run/x.sock", "tls:h:443", "exec:/bin/cat", "sh:cat"] {
            let e = parse_target(later).unwrap_err().to_string();
            assert!(e.contains("not built yet"), "{e}");
        }
        assert!(parse_listen("8080").is_ok());
        assert!(parse_listen("tcp:127.0.0.1:0").is_ok());
        assert_eq!(parse_listen("udp:53").unwrap().0, Proto::Udp);
        assert!(parse_listen("unix:/x").is_err());
    }
}
