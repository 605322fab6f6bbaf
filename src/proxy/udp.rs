//! SOCKS5 UDP ASSOCIATE (RFC 1928 section 7), the server side of
//! `sockit proxy`.
//!
//! An association is a UDP socket facing the client, bound on the address
//! the client reached the proxy at, and one socket per address family
//! facing destinations (opened on first use). It lives as long as the
//! client's TCP connection (or until `--idle-timeout` with no datagram).
//!
//! - Datagrams are taken only from the client's IP address (RFC 1928),
//!   and only from the port it named in its request, or else from the
//!   port its first datagram came from.
//! - Each datagram's destination passes the same destination policy as a
//!   tunnel (the SSRF guard, `--allow-dest`, `--deny-dest`), checked on
//!   the address it is sent to. Names are resolved by the proxy, with a
//!   small cache.
//! - Replies are passed back only from addresses the client has sent to
//!   (as a NAT would), each with the header naming its source.
//! - Fragments (FRAG other than 0) are dropped, as the RFC allows.
//!
//! Nothing here grows with what a peer sends: datagrams are read into one
//! buffer per thread, and the tables of names and destinations are
//! capped.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::guard::DestPolicy;
use super::socks::{self, Dest, UDP_HEADER_MAX};
use crate::net::{describe, show_addr, unmap};

/// The largest UDP payload, plus room to put a reply header before it.
const BUF_LEN: usize = UDP_HEADER_MAX + 65_536;

/// Datagrams taken from one socket per wake-up, so the others get a turn.
const BATCH: usize = 64;

/// Most destinations an association remembers sending to (replies from
/// others are dropped); the oldest is forgotten first.
const MAX_PEERS: usize = 1024;

/// Most names an association keeps resolved.
const MAX_NAMES: usize = 64;

/// How long a resolved name is used before it is resolved again.
const NAME_TTL: Duration = Duration::from_secs(60);

/// Denied destinations logged one by one per association; later ones are
/// only counted.
const MAX_DENIAL_LOGS: u32 = 8;

thread_local! {
    // One buffer per accept loop's thread: every loop is a single-threaded
    // runtime, and it is borrowed only between awaits.
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; BUF_LEN]);
}

/// What an association needs from the proxy.
pub(crate) struct Rules<'a> {
    pub policy: &'a DestPolicy,
    pub stop: &'a CancellationToken,
    pub idle: Option<Duration>,
    pub resolve_timeout: Duration,
}

/// An association agreed on: the client-facing socket is bound, and the
/// reply naming it is sent.
pub(crate) struct Assoc {
    sock: UdpSocket,
    /// The client's IP, and its port once known.
    client_ip: IpAddr,
    client_port: Option<u16>,
}

/// What an association moved and dropped, and why it ended.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub up: u64,
    pub up_bytes: u64,
    pub down: u64,
    pub down_bytes: u64,
    /// Not from the client's address, fragments, bad headers.
    pub dropped_client: u64,
    /// Destinations the policy refuses, or names that do not resolve.
    pub denied: u64,
    /// From addresses the client never sent to.
    pub unsolicited: u64,
    /// A socket that was full (UDP drops rather than waits).
    pub full: u64,
}

/// Binds the client-facing socket for a UDP ASSOCIATE from `peer` on
/// `local` (the address the client reached the proxy at). `asked` is the
/// request's address: the client's UDP source, if it named one.
///
/// # Errors
/// The socket cannot be bound.
pub(crate) fn bind(local: IpAddr, peer: SocketAddr, asked: &Dest) -> io::Result<Assoc> {
    let std = std::net::UdpSocket::bind(SocketAddr::new(local, 0))?;
    std.set_nonblocking(true)?;
    let sock = UdpSocket::from_std(std)?;
    let client_ip = unmap(peer).ip();
    let client_port = match asked {
        Dest::Addr(a) if a.port() != 0 => Some(a.port()),
        _ => None,
    };
    Ok(Assoc {
        sock,
        client_ip,
        client_port,
    })
}

impl Assoc {
    /// The address the client sends its datagrams to.
    pub(crate) fn bound(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }
}

/// The destination-facing side: a socket per family, the destinations
/// sent to, and resolved names.
struct Out {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    peers: HashSet<SocketAddr>,
    order: std::collections::VecDeque<SocketAddr>,
    names: HashMap<String, (Option<IpAddr>, Instant)>,
    denial_logs: u32,
}

impl Out {
    fn new() -> Out {
        Out {
            v4: None,
            v6: None,
            peers: HashSet::new(),
            order: std::collections::VecDeque::new(),
            names: HashMap::new(),
            denial_logs: 0,
        }
    }

    /// The socket for `dest`'s family, opened on first use.
    fn socket(&mut self, dest: SocketAddr) -> io::Result<&UdpSocket> {
        let (slot, any) = match dest {
            SocketAddr::V4(_) => (&mut self.v4, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            SocketAddr::V6(_) => (&mut self.v6, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        };
        if slot.is_none() {
            let std = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
            std.set_nonblocking(true)?;
            *slot = Some(UdpSocket::from_std(std)?);
        }
        slot.as_ref()
            .ok_or_else(|| io::Error::other("no socket for that family"))
    }

    fn remember(&mut self, dest: SocketAddr) {
        if self.peers.insert(dest) {
            self.order.push_back(dest);
            if self.order.len() > MAX_PEERS {
                if let Some(old) = self.order.pop_front() {
                    self.peers.remove(&old);
                }
            }
        }
    }
}

/// A datagram whose destination is a name, waiting for it to resolve.
struct ByName {
    name: String,
    port: u16,
    data: Vec<u8>,
}

/// Relays datagrams for an association until the client's TCP connection
/// `ctrl` ends, nothing moves for the idle timeout, or the proxy stops.
/// Returns what moved and how it ended.
pub(crate) async fn serve(
    mut ctrl: TcpStream,
    mut a: Assoc,
    rules: &Rules<'_>,
    who: &str,
) -> (Tally, String) {
    let mut t = Tally::default();
    let mut out = Out::new();
    let mut last = Instant::now();
    let mut scratch = [0u8; 64];
    let end = loop {
        let deadline = rules.idle.map(|d| last + d);
        let idle = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut names = Vec::new();
        tokio::select! {
            biased;
            _ = rules.stop.cancelled() => break "the proxy is stopping".to_string(),
            r = ctrl.read(&mut scratch) => match r {
                Ok(0) => break "the client closed its TCP connection".to_string(),
                Ok(_) => continue, // nothing is expected there; ignored
                Err(e) => break format!("the client's TCP connection failed ({})", describe(&e)),
            },
            r = a.sock.readable() => {
                if let Err(e) = r {
                    break format!("the client-facing socket failed ({})", describe(&e));
                }
                from_client(&mut a, &mut out, rules, who, &mut t, &mut names);
                last = Instant::now();
            }
            r = readable(out.v4.as_ref()) => {
                if r.is_ok() {
                    from_dest(&a, out.v4.as_ref(), &out.peers, &mut t);
                    last = Instant::now();
                }
            }
            r = readable(out.v6.as_ref()) => {
                if r.is_ok() {
                    from_dest(&a, out.v6.as_ref(), &out.peers, &mut t);
                    last = Instant::now();
                }
            }
            _ = idle => break format!(
                "idle for {} s",
                rules.idle.map_or(0.0, |d| d.as_secs_f64())
            ),
        }
        for n in names {
            send_by_name(n, &mut out, rules, who, &mut t).await;
        }
    };
    (t, end)
}

async fn readable(s: Option<&UdpSocket>) -> io::Result<()> {
    match s {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

/// Takes the client's datagrams that are waiting: checks each, and sends
/// those to addresses on; those to names are left in `names`.
fn from_client(
    a: &mut Assoc,
    out: &mut Out,
    rules: &Rules<'_>,
    who: &str,
    t: &mut Tally,
    names: &mut Vec<ByName>,
) {
    BUF.with(|buf| {
        let Ok(mut buf) = buf.try_borrow_mut() else {
            return;
        };
        for _ in 0..BATCH {
            let (n, from) = match a.sock.try_recv_from(&mut buf[..]) {
                Ok(x) => x,
                Err(_) => return, // would block, or an ICMP error: next time
            };
            let from = unmap(from);
            if from.ip() != a.client_ip || a.client_port.is_some_and(|p| p != from.port()) {
                t.dropped_client += 1;
                continue;
            }
            a.client_port = Some(from.port());
            let Ok(req) = socks::parse_udp(&buf[..n]) else {
                t.dropped_client += 1;
                continue;
            };
            if req.frag != 0 {
                t.dropped_client += 1;
                continue;
            }
            let data = &buf[req.data_at..n];
            match req.dest {
                Dest::Addr(d) => send_to(out, d, data, rules, who, t),
                Dest::Name(name, port) => {
                    let fresh = out
                        .names
                        .get(&name)
                        .filter(|(_, at)| at.elapsed() < NAME_TTL)
                        .map(|(ip, _)| *ip);
                    match fresh {
                        Some(Some(ip)) => {
                            send_to(out, SocketAddr::new(ip, port), data, rules, who, t)
                        }
                        Some(None) => t.denied += 1,
                        // Resolved after this batch; a few at a time.
                        None if names.len() < 8 => names.push(ByName {
                            name,
                            port,
                            data: data.to_vec(),
                        }),
                        None => t.full += 1,
                    }
                }
            }
        }
    });
}

/// Sends one datagram on to `dest`, if the policy allows it.
fn send_to(
    out: &mut Out,
    dest: SocketAddr,
    data: &[u8],
    rules: &Rules<'_>,
    who: &str,
    t: &mut Tally,
) {
    let dest = unmap(dest);
    if dest.port() == 0 {
        t.denied += 1;
        return;
    }
    if let Err(why) = rules.policy.check(dest.ip()) {
        t.denied += 1;
        if out.denial_logs < MAX_DENIAL_LOGS {
            out.denial_logs += 1;
            tracing::warn!(
                "{who}: UDP to {}: not allowed: {why}; dropped",
                show_addr(dest)
            );
        }
        return;
    }
    let sent = match out.socket(dest) {
        Ok(s) => send_now(s, data, dest),
        Err(e) => Err(e),
    };
    match sent {
        Ok(_) => {
            t.up += 1;
            t.up_bytes += data.len() as u64;
            out.remember(dest);
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => t.full += 1,
        Err(e) => {
            t.full += 1;
            tracing::debug!("{who}: UDP to {}: {}", show_addr(dest), describe(&e));
        }
    }
}

/// Resolves a datagram's name (cached, allowed addresses only) and sends it.
async fn send_by_name(n: ByName, out: &mut Out, rules: &Rules<'_>, who: &str, t: &mut Tally) {
    let found = if crate::net::check_name(&n.name).is_err() {
        None
    } else {
        let looked = tokio::time::timeout(
            rules.resolve_timeout,
            tokio::net::lookup_host((n.name.as_str(), n.port)),
        )
        .await;
        match looked {
            Ok(Ok(addrs)) => addrs
                .map(unmap)
                .find(|a| rules.policy.check(a.ip()).is_ok())
                .map(|a| a.ip()),
            _ => None,
        }
    };
    if out.names.len() >= MAX_NAMES {
        out.names.clear();
    }
    out.names.insert(n.name.clone(), (found, Instant::now()));
    match found {
        Some(ip) => send_to(out, SocketAddr::new(ip, n.port), &n.data, rules, who, t),
        None => {
            t.denied += 1;
            if out.denial_logs < MAX_DENIAL_LOGS {
                out.denial_logs += 1;
                tracing::warn!(
                    "{who}: UDP to {}:{}: the name does not resolve to an allowed address; dropped",
                    n.name,
                    n.port
                );
            }
        }
    }
}

/// Passes the replies waiting on a destination-facing socket back to the
/// client, each behind the header naming where it came from.
fn from_dest(a: &Assoc, s: Option<&UdpSocket>, peers: &HashSet<SocketAddr>, t: &mut Tally) {
    let Some(s) = s else { return };
    BUF.with(|buf| {
        let Ok(mut buf) = buf.try_borrow_mut() else {
            return;
        };
        for _ in 0..BATCH {
            let (n, from) = match s.try_recv_from(&mut buf[UDP_HEADER_MAX..]) {
                Ok(x) => x,
                Err(_) => return,
            };
            let from = unmap(from);
            let Some(port) = a.client_port else {
                t.unsolicited += 1;
                continue;
            };
            if !peers.contains(&from) {
                t.unsolicited += 1;
                continue;
            }
            let mut head = [0u8; UDP_HEADER_MAX];
            let at = socks::put_udp_header(&mut head, from);
            buf[at..UDP_HEADER_MAX].copy_from_slice(&head[at..]);
            let to = SocketAddr::new(a.client_ip, port);
            match send_now(&a.sock, &buf[at..UDP_HEADER_MAX + n], to) {
                Ok(_) => {
                    t.down += 1;
                    t.down_bytes += n as u64;
                }
                Err(_) => t.full += 1,
            }
        }
    });
}

/// Sends at once, or fails with `WouldBlock` when the socket is full: a
/// datagram is dropped rather than waited for. Straight to the kernel, not
/// through tokio's readiness, which a new socket has not seen yet.
fn send_now(s: &UdpSocket, data: &[u8], to: SocketAddr) -> io::Result<usize> {
    socket2::SockRef::from(s).send_to(data, &to.into())
}
