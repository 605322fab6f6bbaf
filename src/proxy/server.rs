//! `sockit proxy`: SOCKS5 (RFC 1928, username/password RFC 1929), SOCKS4
//! and 4a, HTTP CONNECT and plain HTTP forward proxying (absolute-form
//! requests), all on one port; the first byte tells which.
//!
//! Safe by default: the command binds 127.0.0.1, `--auth` turns on
//! credentials for SOCKS5 and HTTP, and destinations on loopback,
//! link-local or this host's own addresses are refused unless
//! `--allow-dest` names them (an SSRF guard). The destination is checked
//! after the name is resolved, on the address actually connected to.
//! After the handshake, bytes go through [`crate::relay::pump`]: splice,
//! backpressure and half-close done right. A SOCKS5 UDP ASSOCIATE is
//! served by `udp` (a sibling module) for as long as the client's TCP
//! connection lives.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::http;
use super::socks::{self, Dest, Parsed, Reply};
use super::udp;
use super::{same_secret, Creds};
use crate::access::{AccessList, Cidr};
use crate::forward::balance::{self, Balance, Inbox, Load, RawListener};
use crate::forward::events::{self, Events};
use crate::net::{describe, show_addr};
use crate::relay::{self, Endpoint, PipePool};

/// The default port.
pub const DEFAULT_PORT: u16 = 1080;
/// Tunnels at once by default.
pub const DEFAULT_MAX_CONNS: usize = 10_000;

/// Where tunnels may lead.
#[derive(Debug, Clone, Default)]
pub struct DestPolicy {
    /// `--allow-dest`: allowed, even in the guarded ranges.
    pub allow: Vec<Cidr>,
    /// `--deny-dest`: never.
    pub deny: Vec<Cidr>,
    /// This host's own addresses (refused unless allowed).
    pub own: Vec<IpAddr>,
}

impl DestPolicy {
    /// The policy, with this host's addresses read from its interfaces.
    pub fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> DestPolicy {
        DestPolicy {
            allow,
            deny,
            own: own_addresses(),
        }
    }

    /// Whether a tunnel may go to `ip`.
    ///
    /// # Errors
    /// Why not, for the log.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if let Some(c) = self.deny.iter().find(|c| c.contains(ip)) {
            return Err(format!("{ip} matches --deny-dest {c}"));
        }
        if !self.allow.is_empty() && self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        let guarded = match ip {
            IpAddr::V4(a) => {
                a.is_loopback()
                    || a.is_link_local()
                    || a.is_unspecified()
                    || a.is_broadcast()
                    || a.is_multicast()
            }
            IpAddr::V6(a) => {
                a.is_loopback()
                    || a.is_unspecified()
                    || a.is_multicast()
                    || (a.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        if guarded {
            return Err(format!(
                "{ip} is loopback, link-local or a broadcast/multicast address (allow it with --allow-dest)"
            ));
        }
        if self.own.contains(&ip) {
            return Err(format!(
                "{ip} is this host's own address (allow it with --allow-dest)"
            ));
        }
        Ok(())
    }
}

/// The addresses of this host's interfaces (getifaddrs).
fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut p = head;
    // Bounded: the kernel's interface list is finite; stop at 10,000.
    for _ in 0..10_000 {
        if p.is_null() {
            break;
        }
        // SAFETY: `p` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr of the family it names.
            let fam = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if fam == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if fam == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// How `sockit proxy` behaves.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// `--auth`/`--auth-file`: SOCKS5 username/password and HTTP Basic.
    pub auth: Option<Creds>,
    /// `--allow`/`--deny` on clients.
    pub access: AccessList,
    /// `--allow-dest`/`--deny-dest`.
    pub dest: DestPolicy,
    /// `--max-conns`.
    pub max_conns: usize,
    /// How long a client may take over its handshake.
    pub handshake_timeout: Duration,
    /// How long a destination may take to accept.
    pub connect_timeout: Duration,
    /// `--idle-timeout`.
    pub idle_timeout: Option<Duration>,
}

impl Default for ProxyOptions {
    fn default() -> ProxyOptions {
        ProxyOptions {
            auth: None,
            access: AccessList::default(),
            dest: DestPolicy::default(),
            max_conns: DEFAULT_MAX_CONNS,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: None,
        }
    }
}

/// What a server did, for its exit line.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxySummary {
    /// Tunnels opened.
    pub tunnels: u64,
    /// Clients turned away (access, limits, handshakes refused).
    pub refused: u64,
}

struct Ctx {
    opts: ProxyOptions,
    slots: Arc<Semaphore>,
    pipes: PipePool,
    events: Events,
    stop: CancellationToken,
    tunnels: AtomicU64,
    refused: AtomicU64,
    /// What each accept loop serves, and its inbox of handed clients.
    balance: Arc<Balance<Admitted>>,
}

/// A client accepted and admitted, on its way to the loop that serves it:
/// its socket is not yet on any runtime.
struct Admitted {
    fd: OwnedFd,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
}

/// Serves proxy clients on `listener` (non-blocking) until `stop` is
/// cancelled; then every tunnel is closed. Like `forward`, it runs one
/// accept loop per core, each on a single-threaded runtime of its own
/// thread (this one included), all sharing the listening socket: a tunnel
/// lives on the thread that accepted it.
///
/// # Errors
/// When the listener cannot be registered; accept errors are logged and
/// retried.
pub async fn serve(
    listener: std::net::TcpListener,
    opts: ProxyOptions,
    events: Events,
    stop: CancellationToken,
) -> io::Result<ProxySummary> {
    let loops = crate::forward::accept_loops();
    let (balance, inboxes) = Balance::new(loops);
    let ctx = Arc::new(Ctx {
        slots: Arc::new(Semaphore::new(opts.max_conns.max(1))),
        opts,
        pipes: PipePool::new(),
        events,
        stop: stop.clone(),
        tunnels: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        balance,
    });
    let mut inboxes = inboxes.into_iter().enumerate();
    let first = inboxes.next();
    let mut tasks = Vec::with_capacity(loops);
    for (me, inbox) in inboxes {
        tasks.push(accept_task(listener.try_clone()?, ctx.clone(), me, inbox));
    }
    if let Some((me, inbox)) = first {
        tasks.insert(0, accept_task(listener, ctx.clone(), me, inbox));
    }
    let first = crate::forward::on_each_core("sockit-proxy", tasks).await;
    first?;
    Ok(ProxySummary {
        tunnels: ctx.tunnels.load(Ordering::Relaxed),
        refused: ctx.refused.load(Ordering::Relaxed),
    })
}

/// One accept loop, as a task of the current runtime.
async fn accept_task(
    listener: std::net::TcpListener,
    ctx: Arc<Ctx>,
    me: usize,
    inbox: Inbox<Admitted>,
) -> io::Result<()> {
    let task =
        tokio::spawn(async move { accept_loop(RawListener::new(listener)?, ctx, me, inbox).await });
    task.await.map_err(io::Error::other)?
}

async fn accept_loop(
    listener: RawListener<std::net::TcpListener>,
    ctx: Arc<Ctx>,
    me: usize,
    mut inbox: Inbox<Admitted>,
) -> io::Result<()> {
    let stop = ctx.stop.clone();
    let tracker = TaskTracker::new();
    let mut trouble = crate::net::AcceptTrouble::default();
    let mut trim = tokio::time::interval(crate::forward::PIPE_IDLE);
    trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (fd, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some((a, load)) = inbox.recv() => {
                start_tunnel(&tracker, &ctx, a, load);
                continue;
            }
            r = listener.accept() => match r.and_then(|(fd, a)| Ok((fd, balance::tcp_peer(&a)?))) {
                Ok(x) => x,
                Err(e) => {
                    trouble.failed(&e);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(crate::net::AcceptTrouble::BACKOFF) => continue,
                    }
                }
            },
            _ = trim.tick() => {
                ctx.pipes.trim(crate::forward::PIPE_IDLE);
                continue;
            }
        };
        if let Err(why) = ctx.opts.access.check(peer.ip()) {
            ctx.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("refused {}: {why}", show_addr(peer));
            crate::net::arm_reset(&fd);
            continue;
        }
        let Ok(permit) = ctx.slots.clone().try_acquire_owned() else {
            ctx.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "refused {}: already serving {} (--max-conns)",
                show_addr(peer),
                crate::text::counted(ctx.opts.max_conns as u64, "tunnel", "tunnels")
            );
            crate::net::arm_reset(&fd);
            continue;
        };
        let _ = socket2::SockRef::from(&fd).set_nodelay(true);
        let admitted = Admitted { fd, peer, permit };
        let load = ctx.balance.place(me);
        if let Some((a, load)) = ctx.balance.hand(me, admitted, load) {
            start_tunnel(&tracker, &ctx, a, load);
        }
    }
    drop(listener);
    // Clients handed to this loop as it stopped are closed.
    inbox.close();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Serves an admitted client on this loop, counted in `load` until it ends.
fn start_tunnel(tracker: &TaskTracker, ctx: &Arc<Ctx>, a: Admitted, load: Load<Admitted>) {
    let ctx = ctx.clone();
    tracker.spawn(async move {
        let _permit = a.permit;
        let _load = load;
        match TcpStream::from_std(a.fd.into()) {
            Ok(c) => client(c, a.peer, &ctx).await,
            Err(e) => tracing::warn!(
                "{}: could not take the connection on ({})",
                show_addr(a.peer),
                describe(&e)
            ),
        }
    });
}

/// A tunnel agreed on: where it goes and what the target gets first.
struct Tunnel {
    proto: &'static str,
    dest: String,
    target: TcpStream,
    /// Bytes for the target before the relay starts: a rewritten HTTP
    /// head, or what the client sent right after its request.
    first: Vec<u8>,
}

/// What a handshake agreed on.
enum Agreed {
    /// A TCP tunnel.
    Tunnel(Tunnel),
    /// A SOCKS5 UDP association (its reply is sent).
    Udp(udp::Assoc),
}

/// Why a handshake ended without a tunnel (the answer is already sent).
struct NoTunnel {
    why: String,
    /// A protocol refusal (logged as a refusal) rather than a client that
    /// went away or spoke nonsense.
    refused: bool,
}

fn gone(why: impl Into<String>) -> NoTunnel {
    NoTunnel {
        why: why.into(),
        refused: false,
    }
}

fn refusal(why: impl Into<String>) -> NoTunnel {
    NoTunnel {
        why: why.into(),
        refused: true,
    }
}

/// What the client sent after its request, without the buffer's spare room.
fn leftover(buf: &mut Vec<u8>) -> Vec<u8> {
    buf.as_slice().to_vec()
}

/// Most bytes of a handshake buffered (an HTTP head is the largest).
const MAX_HANDSHAKE: usize = http::MAX_HEAD + 4096;

/// Reads more of the handshake into `buf`, by the deadline.
async fn fill(c: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), NoTunnel> {
    if buf.len() >= MAX_HANDSHAKE {
        return Err(gone("sent a handshake over 20 KiB"));
    }
    let at = buf.len();
    buf.resize(MAX_HANDSHAKE.min(at + 4096), 0);
    let r = tokio::time::timeout_at(deadline.into(), c.read(&mut buf[at..])).await;
    match r {
        Ok(Ok(0)) => {
            buf.truncate(at);
            Err(gone("closed the connection during the handshake"))
        }
        Ok(Ok(n)) => {
            buf.truncate(at + n);
            Ok(())
        }
        Ok(Err(e)) => {
            buf.truncate(at);
            Err(gone(format!(
                "failed during the handshake ({})",
                describe(&e)
            )))
        }
        Err(_) => {
            buf.truncate(at);
            Err(gone(
                "did not finish its handshake in time (the handshake timeout)",
            ))
        }
    }
}

async fn client(mut c: TcpStream, peer: SocketAddr, ctx: &Ctx) {
    let who = show_addr(peer);
    let deadline = Instant::now() + ctx.opts.handshake_timeout;
    let mut buf = Vec::new();
    // Boxed: its state is freed once the tunnel is open, so a held tunnel
    // carries only the pump.
    let shaken = tokio::select! {
        r = Box::pin(handshake(&mut c, &mut buf, deadline, ctx, &who, peer)) => r,
        _ = ctx.stop.cancelled() => return,
    };
    drop(buf);
    let Tunnel {
        proto,
        dest,
        mut target,
        first,
    } = match shaken {
        Ok(Agreed::Tunnel(t)) => t,
        Ok(Agreed::Udp(a)) => {
            Box::pin(associate(c, a, ctx, &who)).await;
            return;
        }
        Err(n) => {
            if n.refused {
                ctx.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{who}: {}", n.why);
                if ctx.events.on() {
                    ctx.events
                        .emit(
                            "refused",
                            &[("client", events::s(&who)), ("reason", events::s(&n.why))],
                        )
                        .await;
                }
            } else {
                tracing::info!("{who}: {}", n.why);
            }
            return;
        }
    };
    if !first.is_empty() && target.write_all(&first).await.is_err() {
        tracing::info!("{who} -> {dest}: the destination closed at once");
        return;
    }
    let first_len = first.len() as u64;
    drop(first);
    let id = ctx.tunnels.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::info!("{who} -> {dest} ({proto}): tunnel open");
    if ctx.events.on() {
        ctx.events
            .emit(
                "open",
                &[
                    ("id", id.to_string()),
                    ("client", events::s(&who)),
                    ("destination", events::s(&dest)),
                    ("protocol", events::s(proto)),
                ],
            )
            .await;
    }
    let mut a = Endpoint::Tcp(c);
    let mut b = Endpoint::Tcp(target);
    let p = relay::pump(
        &mut a,
        &mut b,
        ctx.opts.idle_timeout,
        &ctx.stop,
        &ctx.pipes,
        None,
    )
    .await;
    drop((a, b));
    let end = match &p.end {
        relay::End::Done | relay::End::Quit(_) => "closed".to_string(),
        relay::End::Failed(side, e) => format!(
            "{} failed ({})",
            if *side == relay::Side::A {
                "the client"
            } else {
                "the destination"
            },
            describe(e)
        ),
        relay::End::Idle => "idle timeout".into(),
        relay::End::Stopped => "the proxy is stopping".into(),
        relay::End::Fault(..) => "a fault".into(),
    };
    let up = p.a_to_b + first_len;
    tracing::info!(
        "{who} -> {dest} ({proto}): {end}; {up} bytes up, {} down in {:.3} s",
        p.b_to_a,
        p.elapsed.as_secs_f64()
    );
    if ctx.events.on() {
        ctx.events
            .emit(
                "close",
                &[
                    ("id", id.to_string()),
                    ("client", events::s(&who)),
                    ("destination", events::s(&dest)),
                    ("protocol", events::s(proto)),
                    ("bytes_up", up.to_string()),
                    ("bytes_down", p.b_to_a.to_string()),
                    ("seconds", format!("{:.6}", p.elapsed.as_secs_f64())),
                    ("end", events::s(&end)),
                ],
            )
            .await;
    }
}

async fn handshake(
    c: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    ctx: &Ctx,
    who: &str,
    peer: SocketAddr,
) -> Result<Agreed, NoTunnel> {
    fill(c, buf, deadline).await?;
    match buf[0] {
        socks::V5 => socks5(c, buf, deadline, ctx, peer).await,
        socks::V4 => socks4(c, buf, deadline, ctx).await.map(Agreed::Tunnel),
        b'A'..=b'Z' | b'a'..=b'z' => http_proxy(c, buf, deadline, ctx, who)
            .await
            .map(Agreed::Tunnel),
        b => {
            let _ = c
                .write_all(&http::response(
                    400,
                    "",
                    "not a SOCKS or HTTP proxy request",
                ))
                .await;
            Err(gone(format!(
                "spoke neither SOCKS nor HTTP (first byte 0x{b:02x}); closed"
            )))
        }
    }
}

/// Parses with `parse`, reading more until it has enough; the bytes it used
/// are removed from `buf`.
async fn take<T, E>(
    c: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    parse: impl Fn(&[u8]) -> Result<Parsed<T>, E>,
) -> Result<Result<T, E>, NoTunnel> {
    // Bounded: each pass reads more, and fill stops at MAX_HANDSHAKE.
    loop {
        match parse(buf) {
            Ok(Parsed::Done(v, n)) => {
                buf.drain(..n);
                return Ok(Ok(v));
            }
            Ok(Parsed::More) => fill(c, buf, deadline).await?,
            Err(e) => return Ok(Err(e)),
        }
    }
}

async fn socks5(
    c: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    ctx: &Ctx,
    peer: SocketAddr,
) -> Result<Agreed, NoTunnel> {
    let methods = match take(c, buf, deadline, socks::parse_greeting).await? {
        Ok(m) => m,
        Err(why) => {
            let _ = c.write_all(&[socks::V5, socks::NO_METHOD]).await;
            return Err(gone(format!("sent {why}; closed")));
        }
    };
    match &ctx.opts.auth {
        None if methods.contains(&socks::NO_AUTH) => {
            c.write_all(&[socks::V5, socks::NO_AUTH])
                .await
                .map_err(|e| gone(describe(&e)))?;
        }
        Some(creds) if methods.contains(&socks::USER_PASS) => {
            c.write_all(&[socks::V5, socks::USER_PASS])
                .await
                .map_err(|e| gone(describe(&e)))?;
            let (user, pass) = match take(c, buf, deadline, socks::parse_user_pass).await? {
                Ok(up) => up,
                Err(why) => {
                    let _ = c.write_all(&[1, 1]).await;
                    return Err(gone(format!("sent {why}; closed")));
                }
            };
            let ok = same_secret(&user, creds.user.as_bytes())
                & same_secret(&pass, creds.pass.as_bytes());
            if !ok {
                let _ = c.write_all(&[1, 1]).await;
                return Err(refusal(format!(
                    "wrong SOCKS5 username or password (user {:?}); refused",
                    String::from_utf8_lossy(&user)
                )));
            }
            c.write_all(&[1, 0]).await.map_err(|e| gone(describe(&e)))?;
        }
        auth => {
            let _ = c.write_all(&[socks::V5, socks::NO_METHOD]).await;
            return Err(refusal(if auth.is_some() {
                "offered no username/password method, and this proxy requires one; refused"
            } else {
                "offered only methods this proxy does not speak; refused"
            }));
        }
    }
    let req = match take(c, buf, deadline, socks::parse_request5).await? {
        Ok(r) => r,
        Err(r) => {
            let _ = c.write_all(&socks::reply5(r.reply, None)).await;
            return Err(refusal(format!("sent {}; refused", r.why)));
        }
    };
    if req.cmd == socks::CMD_UDP {
        return udp_associate(c, buf, peer, &req.dest).await;
    }
    if req.cmd != socks::CMD_CONNECT {
        let _ = c
            .write_all(&socks::reply5(Reply::CommandNotSupported, None))
            .await;
        let name = match req.cmd {
            socks::CMD_BIND => "BIND".to_string(),
            n => format!("command {n}"),
        };
        return Err(refusal(format!(
            "asked for {name}, which this proxy does not do; refused"
        )));
    }
    open_and_answer(c, buf, ctx, &req.dest, "socks5", |r| match r {
        Ok(bound) => socks::reply5(Reply::Ok, bound),
        Err(e) => socks::reply5(e.socks5(), None),
    })
    .await
    .map(Agreed::Tunnel)
}

/// A UDP ASSOCIATE: binds the client-facing socket on the address the
/// client reached us at, and answers with it.
async fn udp_associate(
    c: &mut TcpStream,
    buf: &[u8],
    peer: SocketAddr,
    asked: &Dest,
) -> Result<Agreed, NoTunnel> {
    if !buf.is_empty() {
        let _ = c.write_all(&socks::reply5(Reply::Failure, None)).await;
        return Err(refusal(
            "sent bytes after its UDP ASSOCIATE request, before the reply; refused",
        ));
    }
    let bound = c
        .local_addr()
        .and_then(|l| udp::bind(l.ip(), peer, asked))
        .and_then(|a| a.bound().map(|b| (a, b)));
    match bound {
        Ok((a, at)) => {
            c.write_all(&socks::reply5(Reply::Ok, Some(at)))
                .await
                .map_err(|e| gone(describe(&e)))?;
            Ok(Agreed::Udp(a))
        }
        Err(e) => {
            let _ = c.write_all(&socks::reply5(Reply::Failure, None)).await;
            Err(refusal(format!(
                "asked for UDP ASSOCIATE, and no UDP socket could be bound ({})",
                describe(&e)
            )))
        }
    }
}

/// Serves a UDP association until the client's TCP connection ends.
async fn associate(c: TcpStream, a: udp::Assoc, ctx: &Ctx, who: &str) {
    let id = ctx.tunnels.fetch_add(1, Ordering::Relaxed) + 1;
    let at = a.bound().map(show_addr).unwrap_or_default();
    tracing::info!("{who}: UDP association open on {at}");
    if ctx.events.on() {
        ctx.events
            .emit(
                "open",
                &[
                    ("id", id.to_string()),
                    ("client", events::s(who)),
                    ("udp", events::s(&at)),
                    ("protocol", events::s("socks5-udp")),
                ],
            )
            .await;
    }
    let started = Instant::now();
    let rules = udp::Rules {
        policy: &ctx.opts.dest,
        stop: &ctx.stop,
        idle: ctx.opts.idle_timeout,
        resolve_timeout: ctx.opts.connect_timeout,
    };
    let (t, end) = udp::serve(c, a, &rules, who).await;
    let secs = started.elapsed().as_secs_f64();
    let dropped = t.dropped_client + t.denied + t.unsolicited + t.full;
    tracing::info!(
        "{who}: UDP association on {at} ended: {end}; {} up ({} bytes), {} down ({} bytes), \
         {dropped} dropped ({} not the client's or malformed, {} to refused destinations, \
         {} from addresses never sent to, {} with a full socket) in {secs:.3} s",
        t.up,
        t.up_bytes,
        t.down,
        t.down_bytes,
        t.dropped_client,
        t.denied,
        t.unsolicited,
        t.full
    );
    if ctx.events.on() {
        ctx.events
            .emit(
                "close",
                &[
                    ("id", id.to_string()),
                    ("client", events::s(who)),
                    ("udp", events::s(&at)),
                    ("protocol", events::s("socks5-udp")),
                    ("datagrams_up", t.up.to_string()),
                    ("datagrams_down", t.down.to_string()),
                    ("bytes_up", t.up_bytes.to_string()),
                    ("bytes_down", t.down_bytes.to_string()),
                    ("dropped", dropped.to_string()),
                    ("seconds", format!("{secs:.6}")),
                    ("end", events::s(&end)),
                ],
            )
            .await;
    }
}

/// Opens the destination of a SOCKS request and answers the client with
/// `answer`'s bytes (given the bound address, or the error).
async fn open_and_answer(
    c: &mut TcpStream,
    buf: &mut Vec<u8>,
    ctx: &Ctx,
    dest: &Dest,
    proto: &'static str,
    answer: impl FnOnce(Result<Option<SocketAddr>, &OpenError>) -> Vec<u8>,
) -> Result<Tunnel, NoTunnel> {
    let shown = dest.to_string();
    match open(dest, ctx).await {
        Ok(target) => {
            c.write_all(&answer(Ok(target.local_addr().ok())))
                .await
                .map_err(|e| gone(describe(&e)))?;
            Ok(Tunnel {
                proto,
                dest: shown,
                target,
                first: leftover(buf),
            })
        }
        Err(e) => {
            let _ = c.write_all(&answer(Err(&e))).await;
            Err(refusal(format!(
                "{} CONNECT to {shown}: {}",
                proto.to_uppercase(),
                e.why()
            )))
        }
    }
}

async fn socks4(
    c: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    ctx: &Ctx,
) -> Result<Tunnel, NoTunnel> {
    let req = match take(c, buf, deadline, socks::parse_request4).await? {
        Ok(r) => r,
        Err(why) => {
            let _ = c.write_all(&socks::reply4(false)).await;
            return Err(refusal(format!("sent {why}; refused")));
        }
    };
    if ctx.opts.auth.is_some() {
        let _ = c.write_all(&socks::reply4(false)).await;
        return Err(refusal(
            "spoke SOCKS4, which carries no password, to a proxy with --auth (use SOCKS5); refused",
        ));
    }
    if req.cmd != socks::CMD_CONNECT {
        let _ = c.write_all(&socks::reply4(false)).await;
        return Err(refusal(
            "asked for SOCKS4 BIND, which this proxy does not do; refused",
        ));
    }
    open_and_answer(c, buf, ctx, &req.dest, "socks4", |r| {
        socks::reply4(r.is_ok()).to_vec()
    })
    .await
}

async fn http_proxy(
    c: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    ctx: &Ctx,
    who: &str,
) -> Result<Tunnel, NoTunnel> {
    let head = match take(c, buf, deadline, http::parse_request).await? {
        Ok(h) => h,
        Err(b) => {
            let _ = c.write_all(&http::response(b.status, "", b.why)).await;
            return Err(gone(format!(
                "sent {} (answered {}); closed",
                b.why, b.status
            )));
        }
    };
    if let Some(creds) = &ctx.opts.auth {
        if !http::check_basic(head.header("proxy-authorization"), &creds.user, &creds.pass) {
            let _ = c
                .write_all(&http::response(
                    407,
                    "Proxy-Authenticate: Basic realm=\"sockit\"\r\n",
                    "proxy authentication required",
                ))
                .await;
            return Err(refusal(if head.header("proxy-authorization").is_some() {
                "wrong HTTP proxy credentials; answered 407"
            } else {
                "sent no Proxy-Authorization to a proxy with --auth; answered 407"
            }));
        }
    }
    let connect = head.method.eq_ignore_ascii_case("CONNECT");
    let (host, port, path) = if connect {
        match http::authority(&head.target, None) {
            Ok((h, p)) => (h, p, None),
            Err(b) => {
                let _ = c.write_all(&http::response(b.status, "", b.why)).await;
                return Err(refusal(format!(
                    "CONNECT {:?}: {}; answered {}",
                    head.target, b.why, b.status
                )));
            }
        }
    } else {
        match http::absolute(&head.target) {
            Ok((h, p, path)) => (h, p, Some(path)),
            Err(b) => {
                let _ = c.write_all(&http::response(b.status, "", b.why)).await;
                return Err(refusal(format!(
                    "{} {:?}: {}; answered {}",
                    head.method, head.target, b.why, b.status
                )));
            }
        }
    };
    let dest = match host.parse::<IpAddr>() {
        Ok(ip) => Dest::Addr(SocketAddr::new(ip, port)),
        Err(_) => Dest::Name(host, port),
    };
    let shown = dest.to_string();
    match open(&dest, ctx).await {
        Ok(target) => {
            let first = match &path {
                None => {
                    c.write_all(&http::response(200, "", ""))
                        .await
                        .map_err(|e| gone(describe(&e)))?;
                    leftover(buf)
                }
                Some(path) => {
                    let mut first = http::origin_head(&head, path);
                    first.append(buf);
                    first
                }
            };
            tracing::debug!("{who}: {} {shown}", head.method);
            Ok(Tunnel {
                proto: if connect { "http-connect" } else { "http" },
                dest: shown,
                target,
                first,
            })
        }
        Err(e) => {
            let _ = c.write_all(&http::response(e.http(), "", &e.why())).await;
            Err(refusal(format!(
                "{} {shown}: {}; answered {}",
                head.method,
                e.why(),
                e.http()
            )))
        }
    }
}

/// Why a destination could not be opened.
enum OpenError {
    NotAllowed(String),
    Resolve(String),
    Refused,
    TimedOut(Duration),
    Unreachable(String),
    Other(String),
}

impl OpenError {
    fn socks5(&self) -> Reply {
        match self {
            OpenError::NotAllowed(_) => Reply::NotAllowed,
            OpenError::Resolve(_) => Reply::HostUnreachable,
            OpenError::Refused => Reply::Refused,
            OpenError::TimedOut(_) => Reply::TtlExpired,
            OpenError::Unreachable(_) => Reply::NetUnreachable,
            OpenError::Other(_) => Reply::Failure,
        }
    }

    fn http(&self) -> u16 {
        match self {
            OpenError::NotAllowed(_) => 403,
            OpenError::TimedOut(_) => 504,
            _ => 502,
        }
    }

    fn why(&self) -> String {
        match self {
            OpenError::NotAllowed(w) => format!("not allowed: {w}"),
            OpenError::Resolve(w) => format!("could not resolve the name ({w})"),
            OpenError::Refused => "the destination refused the connection".into(),
            OpenError::TimedOut(t) => format!(
                "the destination did not answer within {} s",
                t.as_secs_f64()
            ),
            OpenError::Unreachable(w) => format!("no route to the destination ({w})"),
            OpenError::Other(w) => format!("could not connect ({w})"),
        }
    }
}

/// Resolves (for a name), checks the policy on each address, and connects
/// to the first allowed address that answers.
async fn open(dest: &Dest, ctx: &Ctx) -> Result<TcpStream, OpenError> {
    let limit = ctx.opts.connect_timeout;
    let addrs: Vec<SocketAddr> = match dest {
        Dest::Addr(a) => vec![*a],
        Dest::Name(h, p) => {
            if crate::net::check_name(h).is_err() {
                return Err(OpenError::Resolve("not a host name".into()));
            }
            match tokio::time::timeout(limit, tokio::net::lookup_host((h.as_str(), *p))).await {
                Ok(Ok(a)) => a.collect(),
                Ok(Err(e)) => return Err(OpenError::Resolve(describe(&e))),
                Err(_) => return Err(OpenError::TimedOut(limit)),
            }
        }
    };
    if dest.port() == 0 {
        return Err(OpenError::NotAllowed("port 0".into()));
    }
    let mut last = OpenError::Resolve("no address".into());
    let mut tried = false;
    for a in addrs {
        if let Err(w) = ctx.opts.dest.check(a.ip()) {
            if !tried {
                last = OpenError::NotAllowed(w);
            }
            continue;
        }
        tried = true;
        // The timer is armed only if the connect is not done at once.
        match crate::forward::lazy_timeout(limit, TcpStream::connect(a))
            .await
            .ok_or(())
        {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => {
                last = match e.kind() {
                    io::ErrorKind::ConnectionRefused => OpenError::Refused,
                    _ if matches!(
                        e.raw_os_error(),
                        Some(libc::EHOSTUNREACH | libc::ENETUNREACH)
                    ) =>
                    {
                        OpenError::Unreachable(describe(&e))
                    }
                    _ => OpenError::Other(describe(&e)),
                }
            }
            Err(_) => last = OpenError::TimedOut(limit),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_guard() {
        let p = DestPolicy {
            allow: vec![],
            deny: vec!["203.0.113.0/24".parse().unwrap()],
            own: vec!["192.0.2.7".parse().unwrap()],
        };
        for bad in [
            "127.0.0.1",
            "::1",
            "169.254.1.1",
            "fe80::1",
            "0.0.0.0",
            "192.0.2.7",
            "203.0.113.9",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(p.check(bad.parse().unwrap()).is_err(), "{bad}");
        }
        assert!(p.check("198.51.100.1".parse().unwrap()).is_ok());
        let open = DestPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ..p
        };
        assert!(open.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(open.check("::1".parse().unwrap()).is_err());
    }
}
