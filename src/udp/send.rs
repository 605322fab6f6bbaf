//! `udp send`: datagrams out (arguments, lines of stdin, or stdin whole),
//! replies printed while sending, broadcast only when asked for, and an
//! end that never hangs (`--wait`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockAddr;

use super::batch::{RecvBatch, SendBatch};
use super::{
    bind_udp, show_datagram, sock_err, Show, UdpError, BATCH, DEFAULT_BUFFER, MAX_DATAGRAM_V4,
    MAX_DATAGRAM_V6,
};
use crate::net::{self, describe, show_addr, BindAddr, Family};

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
        let _ = sock.set_ttl_v4(t);
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
