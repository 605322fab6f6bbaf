//! `udp listen`: bind (one port, dual stack, `SO_REUSEPORT`), join
//! multicast groups, then take datagrams in batches and print, echo or
//! upper-case them, with truncation reported and `--allow`/`--deny`
//! applied to each sender.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use super::batch::{RecvBatch, SendBatch};
use super::{bind_udp, show_datagram, sock_err, Show, UdpError, BATCH, DEFAULT_BUFFER};
use crate::net::{self, announce_listening, describe, show_addr, BindAddr, Family};
use crate::text::to_upper;

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
