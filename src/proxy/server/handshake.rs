//! The handshakes of `sockit proxy`: the first byte picks SOCKS5, SOCKS4
//! or HTTP, each protocol's exchange runs against the bounded buffer of
//! what the client sent, and the answer names the destination's fate. The
//! protocols' bytes are parsed by [`crate::proxy::socks`] and
//! [`crate::proxy::http`], which do no I/O; this drives them.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::open::{open, OpenError};
use super::Ctx;
use crate::net::describe;
use crate::proxy::http::{self, same_secret};
use crate::proxy::socks::{self, Dest, Parsed, Reply};
use crate::proxy::udp;

/// A tunnel agreed on: where it goes and what the target gets first.
pub(super) struct Tunnel {
    /// The protocol, for the log and events: `socks5`, `http-connect`, ...
    pub(super) proto: &'static str,
    /// The destination as asked for.
    pub(super) dest: String,
    /// The connection to it.
    pub(super) target: TcpStream,
    /// Bytes for the target before the relay starts: a rewritten HTTP
    /// head, or what the client sent right after its request.
    pub(super) first: Vec<u8>,
}

/// What a handshake agreed on.
pub(super) enum Agreed {
    /// A TCP tunnel.
    Tunnel(Tunnel),
    /// A SOCKS5 UDP association (its reply is sent).
    Udp(udp::Assoc),
}

/// Why a handshake ended without a tunnel (the answer is already sent).
pub(super) struct NoTunnel {
    /// What happened, for the log.
    pub(super) why: String,
    /// A protocol refusal (logged as a refusal) rather than a client that
    /// went away or spoke nonsense.
    pub(super) refused: bool,
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

pub(super) async fn handshake(
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
