//! The UDP relay: a session table keyed by client address, each session
//! with its own connected socket to the target, so replies go back to the
//! right client and datagram boundaries are kept. Sessions end after the
//! idle timeout; the table holds at most `max_sessions`, evicting the one
//! idle longest. The listener takes datagrams in batches (`recvmmsg`),
//! and a datagram longer than the buffer is dropped and reported.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{ForwardError, ForwardOptions, ForwardSummary, Listen, TargetKind, DEFAULT_UDP_IDLE};
use crate::listener::events::{self, Events};
use crate::net::{self, describe, show_addr};
use crate::relay::fault::Chaos;
use crate::udp::batch::RecvBatch;

/// Datagrams taken per `recvmmsg` call.
const BATCH: usize = 32;

/// One UDP client's session.
struct Session {
    /// Connected to the target; replies come back on it.
    up: Arc<UdpSocket>,
    /// The target, as shown.
    name: String,
    /// Milliseconds after the relay's start of the last datagram either way.
    last_ms: Arc<AtomicU64>,
    /// Datagrams and bytes each way.
    up_count: (u64, u64),
    down_count: Arc<(AtomicU64, AtomicU64)>,
    started: Instant,
    /// Carries replies back to the client.
    task: tokio::task::JoinHandle<()>,
    /// `--loss`, `--duplicate`, `--reorder` on the way up, if this
    /// session suffers them.
    chaos: Option<Chaos>,
    /// Replies the faults dropped (the replies task counts them).
    dropped_down: Arc<AtomicU64>,
}

/// Binds the UDP listener: the first candidate address that binds. No
/// SO_REUSEADDR, so a taken port is an error.
fn bind(opts: &ForwardOptions) -> Result<std::net::UdpSocket, ForwardError> {
    let Listen::Udp(bind) = &opts.listen else {
        return Err(ForwardError::Usage("not a UDP listener".into()));
    };
    let mut last = None;
    for addr in net::listen_candidates(bind, opts.family)? {
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
) -> Result<(UdpSocket, String), String> {
    let n = opts.targets.len();
    let t = &opts.targets[next.fetch_add(1, Ordering::Relaxed) % n];
    let TargetKind::Udp(host, port) = &t.kind else {
        return Err(format!("{} is not a UDP target", t.name()));
    };
    let addr = tokio::net::lookup_host((host.as_str(), *port))
        .await
        .map_err(|e| format!("{} could not be resolved ({})", t.name(), describe(&e)))?
        .next()
        .ok_or_else(|| format!("{} has no address", t.name()))?;
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let up = UdpSocket::bind(local).await.map_err(|e| describe(&e))?;
    up.connect(addr).await.map_err(|e| describe(&e))?;
    Ok((up, t.name()))
}

/// Runs the UDP relay until `stop` is cancelled.
pub(super) async fn run(
    opts: ForwardOptions,
    stop: CancellationToken,
    events: Events,
) -> Result<ForwardSummary, ForwardError> {
    let listener_err = |e: std::io::Error| ForwardError::Listener(describe(&e));
    let std_sock = bind(&opts)?;
    let local = std_sock.local_addr().map_err(listener_err)?;
    std_sock.set_nonblocking(true).map_err(listener_err)?;
    let sock = Arc::new(UdpSocket::from_std(std_sock).map_err(listener_err)?);
    net::announce_listening(local);
    let idle = opts.idle_timeout.unwrap_or(DEFAULT_UDP_IDLE);
    let buffer = opts.udp_buffer.max(1);
    let started = Instant::now();
    let now_ms = move || started.elapsed().as_millis() as u64;
    let next = AtomicUsize::new(0);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut summary = ForwardSummary::default();
    let seed = opts.faults.run_seed("sessions");
    let mut batch = RecvBatch::new(BATCH, buffer);
    let mut sweep = tokio::time::interval(idle.min(Duration::from_secs(1)));
    loop {
        let got = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = sweep.tick() => {
                let limit = idle.as_millis() as u64;
                let now = now_ms();
                let expired: Vec<SocketAddr> = sessions
                    .iter()
                    .filter(|(_, s)| now.saturating_sub(s.last_ms.load(Ordering::Relaxed)) >= limit)
                    .map(|(c, _)| *c)
                    .collect();
                for c in expired {
                    if let Some(s) = sessions.remove(&c) {
                        end_session(&events, c, s, "idle").await;
                    }
                }
                continue;
            }
            r = async {
                loop {
                    sock.readable().await?;
                    match sock.try_io(Interest::READABLE, || batch.recv(&*sock)) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        r => return r,
                    }
                }
            } => r,
        };
        let n = match got {
            Ok(n) => n,
            // An ICMP error for a reply we sent: not fatal for a relay.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                tracing::warn!("receive failed ({}); retrying", describe(&e));
                continue;
            }
        };
        for i in 0..n {
            let d = batch.get(i);
            let client = d.from;
            if opts.access.check(client.ip()).is_err() {
                tracing::debug!("dropped a datagram from {}", show_addr(client));
                continue;
            }
            if d.len > d.data.len() {
                tracing::warn!(
                    "dropped a datagram from {}: {} bytes, longer than the buffer of {buffer} (--buffer)",
                    show_addr(client),
                    d.len
                );
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
                        end_session(&events, c, s, "evicted").await;
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
                        events
                            .emit(
                                "error",
                                &[
                                    ("client", events::s(&show_addr(client))),
                                    ("reason", events::s(&why)),
                                ],
                            )
                            .await;
                        continue;
                    }
                };
                tracing::info!("{} -> {name}: new UDP session", show_addr(client));
                events
                    .emit(
                        "open",
                        &[
                            ("client", events::s(&show_addr(client))),
                            ("target", events::s(&name)),
                            ("proto", events::s("udp")),
                        ],
                    )
                    .await;
                summary.relayed += 1;
                let (chaos_up, chaos_down) = match opts.faults.for_conn(seed, summary.relayed) {
                    Some(f) => {
                        let f = *f;
                        tracing::info!(
                            "{} -> {name}: faults: {}",
                            show_addr(client),
                            opts.faults.describe()
                        );
                        (
                            Some(Chaos::new(f.up.0, f.up.1)),
                            Some(Chaos::new(f.down.0, f.down.1)),
                        )
                    }
                    None => (None, None),
                };
                let up = Arc::new(up);
                let last_ms = Arc::new(AtomicU64::new(now_ms()));
                let down_count = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
                let dropped_down = Arc::new(AtomicU64::new(0));
                let task = tokio::spawn(replies(
                    Ways {
                        up: up.clone(),
                        sock: sock.clone(),
                        client,
                    },
                    last_ms.clone(),
                    down_count.clone(),
                    started,
                    buffer,
                    chaos_down.map(|c| (c, dropped_down.clone())),
                ));
                sessions.insert(
                    client,
                    Session {
                        up,
                        name,
                        last_ms,
                        up_count: (0, 0),
                        chaos: chaos_up,
                        dropped_down: dropped_down.clone(),
                        down_count,
                        started: Instant::now(),
                        task,
                    },
                );
            }
            if let Some(s) = sessions.get_mut(&client) {
                s.last_ms.store(now_ms(), Ordering::Relaxed);
                s.up_count.0 += 1;
                s.up_count.1 += d.data.len() as u64;
                // Straight to the socket (tokio's readiness flag of a new
                // socket is not set yet); a full buffer drops the datagram,
                // as UDP may.
                let up = socket2::SockRef::from(&*s.up);
                let send = |data: &[u8]| {
                    if let Err(e) = up.send(data) {
                        tracing::debug!(
                            "{}: send to the target failed ({})",
                            show_addr(client),
                            describe(&e)
                        );
                    }
                };
                match &mut s.chaos {
                    Some(c) => c.pass(d.data, send),
                    None => send(d.data),
                }
            }
        }
    }
    for (c, s) in sessions.drain() {
        end_session(&events, c, s, "stopped").await;
    }
    Ok(summary)
}

/// A session's two sockets and its client.
struct Ways {
    /// Connected to the target.
    up: Arc<UdpSocket>,
    /// The listener.
    sock: Arc<UdpSocket>,
    client: SocketAddr,
}

/// Carries one session's replies back to its client.
async fn replies(
    Ways { up, sock, client }: Ways,
    last_ms: Arc<AtomicU64>,
    count: Arc<(AtomicU64, AtomicU64)>,
    started: Instant,
    buffer: usize,
    mut chaos: Option<(Chaos, Arc<AtomicU64>)>,
) {
    let mut b = vec![0u8; buffer + 1];
    loop {
        match up.recv(&mut b).await {
            Ok(m) if m > buffer => {
                tracing::warn!(
                    "dropped a reply for {}: longer than the buffer of {buffer} (--buffer)",
                    show_addr(client)
                );
            }
            Ok(m) => {
                last_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                count.0.fetch_add(1, Ordering::Relaxed);
                count.1.fetch_add(m as u64, Ordering::Relaxed);
                match &mut chaos {
                    // Straight to the socket, as above: a full buffer
                    // drops the datagram.
                    Some((c, dropped)) => {
                        c.pass(&b[..m], |d| {
                            let _ = socket2::SockRef::from(&*sock).send_to(d, &client.into());
                        });
                        dropped.store(c.dropped, Ordering::Relaxed);
                    }
                    None => {
                        let _ = sock.send_to(&b[..m], client).await;
                    }
                }
            }
            // The target is not there (ICMP): keep the session.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(_) => return,
        }
    }
}

async fn end_session(events: &Events, client: SocketAddr, s: Session, why: &str) {
    s.task.abort();
    let down = (
        s.down_count.0.load(Ordering::Relaxed),
        s.down_count.1.load(Ordering::Relaxed),
    );
    // Datagrams the faults dropped, each way, when this session had any.
    let dropped = s
        .chaos
        .as_ref()
        .map(|c| (c.dropped, s.dropped_down.load(Ordering::Relaxed)));
    let lost = dropped.map_or_else(String::new, |(u, d)| {
        format!("; the faults dropped {u} up, {d} down")
    });
    tracing::info!(
        "{} -> {}: UDP session ended ({why}); {} datagrams up, {} down{lost}",
        show_addr(client),
        s.name,
        s.up_count.0,
        down.0
    );
    if !events.on() {
        return;
    }
    let mut fields = vec![
        ("client", events::s(&show_addr(client))),
        ("target", events::s(&s.name)),
        ("proto", events::s("udp")),
        ("end", events::s(why)),
        ("datagrams_up", s.up_count.0.to_string()),
        ("bytes_up", s.up_count.1.to_string()),
        ("datagrams_down", down.0.to_string()),
        ("bytes_down", down.1.to_string()),
        ("secs", format!("{:.6}", s.started.elapsed().as_secs_f64())),
    ];
    if let Some((u, d)) = dropped {
        fields.push(("dropped_up", u.to_string()));
        fields.push(("dropped_down", d.to_string()));
    }
    events.emit("close", &fields).await;
}
