//! UDP commands: `udp listen` (print, `--echo`, `--upper`, truncation
//! reported, broadcast and multicast) and `udp send` (datagrams out,
//! replies printed while sending, never hangs).
//!
//! - [`batch`]: `recvmmsg`/`sendmmsg` wrappers, so one syscall moves many
//!   datagrams, with the real length of truncated datagrams (`MSG_TRUNC`).
//! - this module: socket setup and the two commands.

pub mod batch;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::net::{self, announce_listening, describe, show_addr, BindAddr, Family, NetError};
use crate::text::{hex_dump, to_upper};
use batch::{RecvBatch, SendBatch};

/// Largest UDP payload over IPv4 (65,535 - 20 IP - 8 UDP).
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// Largest UDP payload over IPv6 without jumbograms (65,535 - 8 UDP).
pub const MAX_DATAGRAM_V6: usize = 65_527;
/// Default receive buffer: large enough that nothing is truncated.
pub const DEFAULT_BUFFER: usize = 65_535;
/// Datagrams moved per `recvmmsg` / `sendmmsg` call.
const BATCH: usize = 32;

/// UDP errors.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// Resolving or binding failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Nothing listens at the destination (ICMP port unreachable).
    #[error("no UDP listener at {addr} (connection refused)")]
    Refused {
        /// Where we sent.
        addr: String,
    },
    /// A datagram is too big for UDP.
    #[error("a {len}-byte datagram is over the {max}-byte UDP limit for {family}; send less per datagram")]
    TooBig {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
        /// IPv4 or IPv6.
        family: &'static str,
    },
    /// Sending to a broadcast address without `--broadcast`.
    #[error("{addr} is a broadcast address; add --broadcast to send to it")]
    NeedBroadcast {
        /// The destination.
        addr: SocketAddr,
    },
    /// Joining a multicast group failed.
    #[error("could not join multicast group {group} ({reason})")]
    Join {
        /// The group.
        group: IpAddr,
        /// Why.
        reason: String,
    },
    /// Another socket error.
    #[error("UDP {what} failed ({reason})")]
    Socket {
        /// What we were doing.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Reading stdin or writing stdout failed.
    #[error("could not {0}")]
    Stdio(String),
}

fn sock_err(what: &'static str, e: &io::Error) -> UdpError {
    UdpError::Socket {
        what,
        reason: describe(e),
    }
}

/// What `udp listen` does with each datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Print only.
    None,
    /// Send it back unchanged.
    Echo,
    /// Send it back upper-cased.
    Upper,
}

/// How to show datagrams.
#[derive(Debug, Clone, Copy, Default)]
pub struct Show {
    /// Prefix each with `from ADDR (N bytes): `.
    pub sender: bool,
    /// Show payloads as a hex dump.
    pub hex: bool,
}

/// `udp listen` options.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Where to bind.
    pub bind: BindAddr,
    /// `-4` / `-6`.
    pub family: Family,
    /// Print, echo or upper-case echo.
    pub reply: Reply,
    /// Display options.
    pub show: Show,
    /// Receive buffer per datagram (`--buffer`).
    pub buffer: usize,
    /// Payloads that stop the listener (`--quit`).
    pub quit: Vec<String>,
    /// Share the port with other listeners (`--reuse-port`).
    pub reuse_port: bool,
    /// Multicast group to join (`--join`).
    pub join: Option<IpAddr>,
    /// Interface for the group: an IPv4 address, or an IPv6 interface name or index.
    pub iface: Option<String>,
    /// `--allow` and `--deny`: datagrams from refused senders are dropped unseen.
    pub access: crate::access::AccessList,
    /// `--talk`: send each stdin line to the sender of the latest datagram,
    /// as `nc -u -l` does.
    pub talk: bool,
}

/// Sends each stdin line to the latest sender until stdin ends (`--talk`).
fn talk_to_last(sock: UdpSocket, last: Arc<std::sync::Mutex<Option<SocketAddr>>>) {
    use std::io::BufRead;
    let mut stdin = io::BufReader::new(crate::console::Stdin);
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let to = last.lock().ok().and_then(|g| *g);
        match to {
            Some(to) => {
                if let Err(e) = sock.send_to(&line, to) {
                    tracing::warn!("could not send to {} ({})", show_addr(to), describe(&e));
                }
            }
            None => tracing::warn!(
                "no datagram has arrived yet, so there is no one to send that line to"
            ),
        }
    }
}

/// What a listener saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct ListenSummary {
    /// Datagrams received.
    pub datagrams: u64,
    /// Payload bytes received (as sent, before any truncation).
    pub bytes: u64,
    /// Datagrams that did not fit the buffer.
    pub truncated: u64,
}

/// Creates a UDP socket bound to `addr`.
fn bind_udp(addr: SocketAddr, reuse_port: bool, dual_stack: bool) -> Result<Socket, NetError> {
    let map = |e: io::Error| net::bind_error(addr, e);
    let s =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(map)?;
    // Without --reuse-port a taken port is an error, not a silent second
    // listener that receives nothing (SO_REUSEADDR allows that for UDP).
    if reuse_port {
        s.set_reuse_address(true).map_err(map)?;
        s.set_reuse_port(true).map_err(map)?;
    }
    if addr.is_ipv6() {
        let _ = s.set_only_v6(!dual_stack);
    }
    // A bigger receive queue absorbs bursts from pipelined senders.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SockAddr::from(addr)).map_err(map)?;
    Ok(s)
}

/// Binds the listening socket, trying each candidate address.
fn bind_listener(opts: &ListenOptions) -> Result<Socket, UdpError> {
    let mut bind = opts.bind.clone();
    // Joining a group without an address: bind the wildcard of its family.
    if bind.host.is_none() {
        if let Some(g) = opts.join {
            bind.host = Some(if g.is_ipv4() { "0.0.0.0" } else { "::" }.into());
        }
    }
    let dual = bind.host.is_none() && opts.family == Family::Any;
    let mut last = None;
    for addr in net::listen_candidates(&bind, opts.family)? {
        match bind_udp(addr, opts.reuse_port, dual) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map(UdpError::from).unwrap_or(UdpError::Socket {
        what: "bind",
        reason: "no address to bind".into(),
    }))
}

/// Joins `group` on the socket.
fn join_group(s: &Socket, group: IpAddr, iface: Option<&str>) -> Result<(), UdpError> {
    let fail = |e: io::Error| UdpError::Join {
        group,
        reason: describe(&e),
    };
    match group {
        IpAddr::V4(g) => {
            let ifa = match iface {
                Some(i) => i.parse::<Ipv4Addr>().map_err(|_| UdpError::Join {
                    group,
                    reason: format!("--iface {i:?} is not an IPv4 address"),
                })?,
                None => Ipv4Addr::UNSPECIFIED,
            };
            s.join_multicast_v4(&g, &ifa).map_err(fail)
        }
        IpAddr::V6(g) => {
            let idx = match iface {
                Some(i) => iface_index(i).ok_or_else(|| UdpError::Join {
                    group,
                    reason: format!("no interface named {i:?}"),
                })?,
                None => 0,
            };
            s.join_multicast_v6(&g, idx).map_err(fail)
        }
    }
}

/// An interface index from a number or a name (`lo`, `eth0`).
fn iface_index(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads a NUL-terminated string we own.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Writes one datagram's display form.
fn show_datagram(out: &mut Vec<u8>, from: SocketAddr, len: usize, data: &[u8], show: Show) {
    if show.sender {
        out.extend_from_slice(format!("from {} ({len} bytes): ", show_addr(from)).as_bytes());
    }
    if show.hex {
        if show.sender {
            out.push(b'\n');
        }
        out.extend_from_slice(hex_dump(data).as_bytes());
        return;
    }
    // One datagram per line: a payload that already ends in a newline
    // (as `nc -u` sends) does not get a second one.
    // Inside it, a newline prints as `\n` (and `\` as `\\`): one line each.
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    out.extend_from_slice(&crate::text::escape_line(body));
    out.push(b'\n');
}

/// Whether a payload is one of the quit words (ignoring a trailing newline).
fn is_quit(quit: &[String], data: &[u8]) -> bool {
    let d = data.strip_suffix(b"\n").unwrap_or(data);
    let d = d.strip_suffix(b"\r").unwrap_or(d);
    quit.iter().any(|w| w.as_bytes() == d)
}

/// Runs `udp listen` until a quit word or Ctrl-C, writing datagrams to `out`.
///
/// # Errors
/// Bind, join and socket errors.
pub fn listen(opts: &ListenOptions, out: &mut dyn Write) -> Result<ListenSummary, UdpError> {
    let sock = bind(opts)?;
    let local = sock.local_addr().map_err(|e| sock_err("bind", &e))?;
    announce_listening(local);
    if let Some(g) = opts.join {
        tracing::info!("joined multicast group {g}");
    }
    crate::interrupt::catch();
    serve(&sock, opts, out)
}

/// Binds the listening socket as `opts` says and joins its group, if any.
///
/// # Errors
/// Bind and join errors.
pub fn bind(opts: &ListenOptions) -> Result<UdpSocket, UdpError> {
    let sock = bind_listener(opts)?;
    if let Some(g) = opts.join {
        join_group(&sock, g, opts.iface.as_deref())?;
    }
    Ok(sock.into())
}

/// The receive loop, on an already bound socket.
///
/// # Errors
/// Socket errors other than an interrupt.
pub fn serve(
    sock: &UdpSocket,
    opts: &ListenOptions,
    out: &mut dyn Write,
) -> Result<ListenSummary, UdpError> {
    let buffer = opts.buffer.clamp(1, DEFAULT_BUFFER);
    let mut rx = RecvBatch::new(BATCH, buffer);
    let mut tx = SendBatch::new(BATCH);
    let mut summary = ListenSummary::default();
    let mut text: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut upper: Vec<Vec<u8>> = Vec::new();
    let mut kept: Vec<usize> = Vec::new();
    let mut dropped = 0u64;
    let mut last_drop_log: Option<std::time::Instant> = None;
    let printing = opts.reply == Reply::None || opts.show.sender;
    let last = opts
        .talk
        .then(|| Arc::new(std::sync::Mutex::new(None::<SocketAddr>)));
    if let Some(last) = &last {
        let sock = sock.try_clone().map_err(|e| sock_err("setup", &e))?;
        let last = last.clone();
        std::thread::Builder::new()
            .name("sockit-udp-talk".into())
            .spawn(move || talk_to_last(sock, last))
            .map_err(|e| sock_err("setup", &e))?;
    }
    // Wake up now and then, so a Ctrl-C that lands while we are busy
    // writing is still noticed even if no datagram comes after it.
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    loop {
        if crate::interrupt::requested() {
            tracing::info!("interrupted");
            break;
        }
        let n = match rx.recv(sock) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            // A reply of ours bounced (ICMP unreachable): not fatal for a server.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(sock_err("receive", &e)),
        };
        let mut quit = false;
        // Datagrams handled in this batch: all of them, or those before a quit word.
        let mut handled = n;
        upper.clear();
        kept.clear();
        for i in 0..n {
            let d = rx.get(i);
            if let Err(why) = opts.access.check(d.from.ip()) {
                dropped += 1;
                if last_drop_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(
                        "dropped a datagram from {}: {why} ({dropped} dropped so far)",
                        show_addr(d.from)
                    );
                    last_drop_log = Some(std::time::Instant::now());
                }
                continue;
            }
            kept.push(i);
            if let Some(l) = &last {
                if let Ok(mut g) = l.lock() {
                    *g = Some(d.from);
                }
            }
            summary.datagrams += 1;
            summary.bytes += d.len as u64;
            if d.len > d.data.len() {
                summary.truncated += 1;
                tracing::warn!(
                    "datagram from {} truncated: {} bytes, buffer {}",
                    show_addr(d.from),
                    d.len,
                    buffer
                );
            }
            // The quit word ends the session and is not printed, as over TCP.
            if is_quit(&opts.quit, d.data) {
                quit = true;
                handled = i;
                kept.pop();
                break;
            }
            if printing {
                show_datagram(&mut text, d.from, d.len, d.data, opts.show);
            }
            if opts.reply == Reply::Upper {
                upper.push(to_upper(d.data));
            }
        }
        match opts.reply {
            Reply::None => {}
            Reply::Echo => {
                let items: Vec<(&[u8], SocketAddr)> = kept
                    .iter()
                    .filter(|&&i| i < handled)
                    .map(|&i| (rx.get(i).data, rx.get(i).from))
                    .collect();
                send_replies(sock, &mut tx, &items);
            }
            Reply::Upper => {
                let items: Vec<(&[u8], SocketAddr)> = upper
                    .iter()
                    .zip(kept.iter())
                    .map(|(u, &i)| (&u[..], rx.get(i).from))
                    .collect();
                send_replies(sock, &mut tx, &items);
            }
        }
        if !text.is_empty() {
            match out.write_all(&text).and_then(|()| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(summary),
                Err(e) => {
                    return Err(UdpError::Stdio(format!(
                        "write the output ({})",
                        describe(&e)
                    )))
                }
            }
            text.clear();
        }
        if quit {
            tracing::info!("quit word received; stopping");
            break;
        }
    }
    tracing::info!(
        "received {}, {}, {} truncated",
        crate::text::counted(summary.datagrams, "datagram", "datagrams"),
        crate::text::counted(summary.bytes, "byte", "bytes"),
        summary.truncated
    );
    Ok(summary)
}

/// Sends replies; a sender that went away is not the server's problem.
fn send_replies(sock: &UdpSocket, tx: &mut SendBatch, items: &[(&[u8], SocketAddr)]) {
    if let Err(e) = tx.send_to_all(sock, items) {
        tracing::debug!("reply failed: {}", describe(&e));
    }
}

/// `udp send` options.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// `-4` / `-6`.
    pub family: Family,
    /// Local address (`--bind`).
    pub bind: Option<BindAddr>,
    /// Allow broadcast destinations (`--broadcast`).
    pub broadcast: bool,
    /// Multicast TTL (`--ttl`).
    pub ttl: Option<u32>,
    /// Receive our own multicast (`--multicast-loop`).
    pub multicast_loop: bool,
    /// How long to wait for late replies after the last send.
    pub wait: Duration,
    /// Exit once this many replies have come.
    pub count_replies: Option<u64>,
    /// Display options for replies.
    pub show: Show,
}

/// What `udp send` did.
#[derive(Debug, Default, Clone, Copy)]
pub struct SendSummary {
    /// Datagrams sent.
    pub sent: u64,
    /// Replies received.
    pub replies: u64,
}

/// Where the datagrams come from.
pub enum Messages {
    /// One datagram per argument.
    Args(Vec<Vec<u8>>),
    /// One datagram per line of this reader (stdin).
    Lines(Box<dyn Read + Send>),
}

/// Whether an address is a broadcast address we can recognise without
/// knowing the interface's netmask: 255.255.255.255, or x.255.255.255 in
/// 127/8 (loopback's broadcast).
fn looks_broadcast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_broadcast() || (o[0] == 127 && o[1..] == [255, 255, 255])
        }
        IpAddr::V6(_) => false,
    }
}

/// Sends datagrams to `host:port`, printing replies as they come, then waits
/// `opts.wait` for late ones. Never blocks longer than that after the last send.
///
/// # Errors
/// [`UdpError::Refused`] when nothing listens, size, broadcast and socket errors.
pub fn send(
    host: &str,
    port: u16,
    msgs: Messages,
    opts: &SendOptions,
    out: Box<dyn Write + Send>,
) -> Result<SendSummary, UdpError> {
    let dest = net::resolve(host, port, opts.family)?[0];
    let dest_s = show_addr(dest);
    let max = if dest.is_ipv4() {
        MAX_DATAGRAM_V4
    } else {
        MAX_DATAGRAM_V6
    };
    let family = if dest.is_ipv4() { "IPv4" } else { "IPv6" };
    if let Messages::Args(list) = &msgs {
        // Check every size before anything is sent.
        if let Some(m) = list.iter().find(|m| m.len() > max) {
            return Err(UdpError::TooBig {
                len: m.len(),
                max,
                family,
            });
        }
    }
    if looks_broadcast(dest.ip()) && !opts.broadcast {
        return Err(UdpError::NeedBroadcast { addr: dest });
    }
    let local = match &opts.bind {
        Some(b) => match &b.host {
            Some(h) => net::resolve(
                h,
                b.port,
                if dest.is_ipv4() {
                    Family::V4
                } else {
                    Family::V6
                },
            )?[0],
            None => unspecified(dest, b.port),
        },
        None => unspecified(dest, 0),
    };
    let sock = bind_udp(local, false, false)?;
    if opts.broadcast {
        sock.set_broadcast(true)
            .map_err(|e| sock_err("setup", &e))?;
    }
    let multicast = dest.ip().is_multicast();
    if multicast {
        match dest {
            SocketAddr::V4(_) => {
                let _ = sock.set_multicast_ttl_v4(opts.ttl.unwrap_or(1));
                let _ = sock.set_multicast_loop_v4(opts.multicast_loop);
                if let IpAddr::V4(l) = local.ip() {
                    if !l.is_unspecified() {
                        let _ = sock.set_multicast_if_v4(&l);
                    }
                }
            }
            SocketAddr::V6(_) => {
                let _ = sock.set_multicast_hops_v6(opts.ttl.unwrap_or(1));
                let _ = sock.set_multicast_loop_v6(opts.multicast_loop);
            }
        }
    } else if let Some(t) = opts.ttl {
        let _ = sock.set_ttl(t);
    }
    // A connected socket turns ICMP port-unreachable into ECONNREFUSED.
    // Broadcast and multicast replies come from other addresses, so those
    // stay unconnected.
    let connected = !(opts.broadcast || multicast);
    if connected {
        sock.connect(&SockAddr::from(dest))
            .map_err(|e| sock_err("connect", &e))?;
    }
    let sock: UdpSocket = sock.into();
    if let Ok(l) = sock.local_addr() {
        tracing::info!("sending to {dest_s} from {}", show_addr(l));
    }
    let sock = Arc::new(sock);
    let done = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicU64::new(0));
    let receiver = {
        let sock = sock.clone();
        let done = done.clone();
        let replies = replies.clone();
        let show = opts.show;
        let limit = opts.count_replies;
        std::thread::Builder::new()
            .name("sockit-udp-recv".into())
            .spawn(move || receive_replies(&sock, out, show, &done, &replies, limit))
            .map_err(|e| sock_err("setup", &e))?
    };
    let sent = send_all(
        &sock,
        dest,
        connected,
        msgs,
        max,
        family,
        &done,
        &replies,
        opts.count_replies,
    );
    // Wait for late replies, bounded by --wait (or until enough came).
    let deadline = Instant::now() + opts.wait;
    while !done.load(Ordering::SeqCst) && Instant::now() < deadline && sent.is_ok() {
        if opts
            .count_replies
            .is_some_and(|n| replies.load(Ordering::SeqCst) >= n)
        {
            break;
        }
        std::thread::sleep(
            Duration::from_millis(5).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    done.store(true, Ordering::SeqCst);
    let recv_result = receiver.join().unwrap_or(Ok(()));
    let sent = sent?;
    match recv_result {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(UdpError::Refused { addr: dest_s })
        }
        Err(e) => return Err(sock_err("receive", &e)),
        Ok(()) => {}
    }
    Ok(SendSummary {
        sent,
        replies: replies.load(Ordering::SeqCst),
    })
}

/// The wildcard address of `dest`'s family.
fn unspecified(dest: SocketAddr, port: u16) -> SocketAddr {
    if dest.is_ipv4() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    } else {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
    }
}

/// Sends every message; returns how many went out.
#[allow(clippy::too_many_arguments)]
fn send_all(
    sock: &UdpSocket,
    dest: SocketAddr,
    connected: bool,
    msgs: Messages,
    max: usize,
    family: &'static str,
    done: &AtomicBool,
    replies: &AtomicU64,
    count: Option<u64>,
) -> Result<u64, UdpError> {
    let mut tx = SendBatch::new(BATCH);
    let mut sent = 0u64;
    let target = (!connected).then_some(dest);
    let mut flush = |batch: &[&[u8]], sent: &mut u64| -> Result<(), UdpError> {
        tx.send_all(sock, target, batch)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ECONNREFUSED) => UdpError::Refused {
                    addr: show_addr(dest),
                },
                Some(libc::EACCES) => UdpError::NeedBroadcast { addr: dest },
                Some(libc::EMSGSIZE) => UdpError::TooBig {
                    len: batch.iter().map(|b| b.len()).max().unwrap_or(0),
                    max,
                    family,
                },
                _ => sock_err("send", &e),
            })?;
        *sent += batch.len() as u64;
        Ok(())
    };
    let stop = |sent: u64| {
        done.load(Ordering::SeqCst) && sent > 0
            || count.is_some_and(|n| replies.load(Ordering::SeqCst) >= n)
    };
    match msgs {
        Messages::Args(list) => {
            for chunk in list.chunks(BATCH) {
                let refs: Vec<&[u8]> = chunk.iter().map(|m| &m[..]).collect();
                flush(&refs, &mut sent)?;
                if stop(sent) {
                    break;
                }
            }
        }
        Messages::Lines(mut r) => {
            let mut buf = bytes::BytesMut::new();
            let mut chunk = vec![0u8; 256 * 1024];
            loop {
                let n = match r.read(&mut chunk) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(UdpError::Stdio(format!("read stdin ({})", describe(&e))))
                    }
                };
                buf.extend_from_slice(&chunk[..n]);
                let eof = n == 0;
                let mut lines = Vec::with_capacity(BATCH);
                while let Some(line) = crate::text::next_line(&mut buf, max, eof) {
                    if !line.ended && line.data.len() >= max {
                        return Err(UdpError::TooBig {
                            len: line.data.len() + buf.len(),
                            max,
                            family,
                        });
                    }
                    lines.push(line.data);
                    if lines.len() == BATCH {
                        let refs: Vec<&[u8]> = lines.iter().map(|l| &l[..]).collect();
                        flush(&refs, &mut sent)?;
                        lines.clear();
                    }
                }
                if !lines.is_empty() {
                    let refs: Vec<&[u8]> = lines.iter().map(|l| &l[..]).collect();
                    flush(&refs, &mut sent)?;
                }
                if eof || stop(sent) {
                    break;
                }
            }
        }
    }
    Ok(sent)
}

/// Prints replies until told to stop. Returns the refused error if the
/// destination bounced our datagrams.
fn receive_replies(
    sock: &UdpSocket,
    mut out: Box<dyn Write + Send>,
    show: Show,
    done: &AtomicBool,
    replies: &AtomicU64,
    limit: Option<u64>,
) -> io::Result<()> {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(20)));
    let mut rx = RecvBatch::new(BATCH, DEFAULT_BUFFER);
    let mut text = Vec::new();
    loop {
        match rx.recv(sock) {
            Ok(n) => {
                for i in 0..n {
                    let d = rx.get(i);
                    if d.len > d.data.len() {
                        tracing::warn!(
                            "reply from {} truncated: {} bytes, buffer {}",
                            show_addr(d.from),
                            d.len,
                            DEFAULT_BUFFER
                        );
                    }
                    show_datagram(&mut text, d.from, d.len, d.data, show);
                    let got = replies.fetch_add(1, Ordering::SeqCst) + 1;
                    if limit.is_some_and(|l| got >= l) {
                        break;
                    }
                }
                if out.write_all(&text).and_then(|()| out.flush()).is_err() {
                    return Ok(());
                }
                text.clear();
                if limit.is_some_and(|l| replies.load(Ordering::SeqCst) >= l) {
                    done.store(true, Ordering::SeqCst);
                    return Ok(());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if done.load(Ordering::SeqCst) {
                    return Ok(());
                }
            }
            Err(e) => {
                done.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
    }
}
