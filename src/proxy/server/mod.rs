//! `sockit proxy`: SOCKS5 (RFC 1928, username/password RFC 1929), SOCKS4
//! and 4a, HTTP CONNECT and plain HTTP forward proxying (absolute-form
//! requests), all on one port; the first byte tells which.
//!
//! Safe by default: the command binds 127.0.0.1, `--auth` turns on
//! credentials for SOCKS5 and HTTP, and destinations on loopback,
//! link-local or this host's own addresses are refused unless
//! `--allow-dest` names them (the guard, [`super::guard`]). The
//! destination is checked after the name is resolved, on the address
//! actually connected to. Clients are accepted by [`crate::listener`]
//! (one loop per core, `--max-conns`, `--allow`); after the handshake,
//! bytes go through [`crate::relay::pump`]: splice, backpressure and
//! half-close done right. A SOCKS5 UDP ASSOCIATE is served by `udp` (a
//! sibling module) for as long as the client's TCP connection lives.
//!
//! Files: this one (options, the run, a tunnel's life and its events),
//! `handshake` (the protocol pick and each protocol's handshake),
//! `open` (reaching a destination the guard allows).

mod handshake;
mod open;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub use super::guard::DestPolicy;
use super::udp;
use super::url::Creds;
use crate::access::AccessList;
use crate::listener::events::{self, Events};
use crate::listener::{self, Bound, Busy, Client, Handler, Rules, Stream};
use crate::net::{describe, show_addr};
use crate::relay::{self, Endpoint, PipePool};
use handshake::{Agreed, Tunnel};

/// The default port.
pub const DEFAULT_PORT: u16 = 1080;
/// Tunnels at once by default.
pub const DEFAULT_MAX_CONNS: usize = 10_000;

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

/// What every tunnel shares.
struct Ctx {
    opts: ProxyOptions,
    pipes: PipePool,
    events: Events,
    stop: CancellationToken,
    /// Tunnels (and UDP associations) opened.
    tunnels: AtomicU64,
    /// Handshakes refused (the listener counts the clients it turned away).
    refused: AtomicU64,
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
    let rules = Rules {
        loops: listener::loops_per_core(),
        name: "sockit-proxy",
        max_conns: Some(opts.max_conns),
        access: opts.access.clone(),
        once: false,
        want_local: false,
        busy: Busy {
            verb: "serving",
            one: "tunnel",
            many: "tunnels",
        },
        tick: Some(relay::PIPE_IDLE),
    };
    let ctx = Arc::new(Ctx {
        opts,
        pipes: PipePool::new(),
        events,
        stop: stop.clone(),
        tunnels: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let s = listener::run(Bound::Tcp(listener), rules, ctx.clone(), stop).await?;
    Ok(ProxySummary {
        tunnels: ctx.tunnels.load(Ordering::Relaxed),
        refused: s.refused + ctx.refused.load(Ordering::Relaxed),
    })
}

impl Handler for Ctx {
    fn serve(self: Arc<Self>, c: Client) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Registered here, on the loop's runtime, so the task carries only
        // the stream (a tunnel's task lives as long as the tunnel).
        let stream = match (c.conn.register(), c.peer.addr) {
            (Ok(Stream::Tcp(s)), Some(peer)) => Some((s, peer)),
            (Err(e), _) => {
                tracing::warn!(
                    "{}: could not take the connection on ({})",
                    c.peer.name,
                    describe(&e)
                );
                None
            }
            _ => None,
        };
        async move {
            if let Some((s, peer)) = stream {
                client(s, peer, &self).await;
            }
        }
    }

    fn tick(&self) {
        self.pipes.trim(relay::PIPE_IDLE);
    }
}

async fn client(mut c: TcpStream, peer: SocketAddr, ctx: &Ctx) {
    let who = show_addr(peer);
    let deadline = Instant::now() + ctx.opts.handshake_timeout;
    let mut buf = Vec::new();
    // Boxed: its state is freed once the tunnel is open, so a held tunnel
    // carries only the pump.
    let shaken = tokio::select! {
        r = Box::pin(handshake::handshake(&mut c, &mut buf, deadline, ctx, &who, peer)) => r,
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
                tracing::warn!(event = "refused", client = %who, reason = %n.why, "{who}: {}", n.why);
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
    tracing::info!(event = "connected", id, client = %who, target = %dest, protocol = proto, "{who} -> {dest} ({proto}): tunnel open");
    if ctx.events.on() {
        ctx.events
            .emit(
                "open",
                &[
                    ("id", id.to_string()),
                    ("client", events::s(&who)),
                    ("target", events::s(&dest)),
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
        event = "closed",
        id,
        client = %who,
        target = %dest,
        protocol = proto,
        end = %end,
        bytes_up = up,
        bytes_down = p.b_to_a,
        secs = p.elapsed.as_secs_f64(),
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
                    ("target", events::s(&dest)),
                    ("protocol", events::s(proto)),
                    ("bytes_up", up.to_string()),
                    ("bytes_down", p.b_to_a.to_string()),
                    ("secs", format!("{:.6}", p.elapsed.as_secs_f64())),
                    ("end", events::s(&end)),
                ],
            )
            .await;
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
                    ("secs", format!("{secs:.6}")),
                    ("end", events::s(&end)),
                ],
            )
            .await;
    }
}
