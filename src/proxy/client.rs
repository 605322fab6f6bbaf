//! The client side of a proxy: a tunnel through a chain of SOCKS5,
//! SOCKS4a or HTTP CONNECT proxies, blocking (the stdio commands) or async
//! (`forward`'s targets). A driver reads exactly the bytes of each reply
//! (SOCKS) or peeks for the end of the head (HTTP), so bytes the target
//! sends right after the reply stay in the socket for whoever reads next:
//! nothing is lost. The first hop is reached with [`crate::net`]'s direct
//! connect; [`crate::dial`] decides whether a connection goes through here.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::http;
use super::socks::{self, Dest, Fail, Socks5Client, Step};
use super::url::{ProxyUrl, Scheme};
use crate::net::{self, ConnectOptions, NetError};

/// How long one proxy may take to answer the handshake when no `--timeout`
/// is given.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Why a tunnel could not be opened: one sentence, naming the hop.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The first proxy could not be reached at all.
    #[error("could not reach {proxy}: {source}")]
    Reach {
        /// Which hop.
        proxy: String,
        /// Why.
        #[source]
        source: NetError,
    },
    /// A name a local-resolving scheme had to look up.
    #[error("{proxy}: {source}")]
    Resolve {
        /// Which hop.
        proxy: String,
        /// Why.
        #[source]
        source: NetError,
    },
    /// The peer speaks another protocol.
    #[error("{proxy} is not a{} {want} proxy (it answered {seen})", if want.starts_with('H') { "n" } else { "" })]
    WrongProtocol {
        /// Which hop.
        proxy: String,
        /// The protocol expected.
        want: &'static str,
        /// What came back, shown safely.
        seen: String,
    },
    /// The proxy wants credentials we do not have.
    #[error("{proxy} asks for a username and password; put them in the URL (SCHEME://user:pass@host:port) or in --proxy-auth-file")]
    AuthRequired {
        /// Which hop.
        proxy: String,
    },
    /// The proxy refused our credentials.
    #[error("{proxy} refused the username and password")]
    AuthFailed {
        /// Which hop.
        proxy: String,
    },
    /// The proxy accepted the handshake but could not reach the next hop.
    #[error("{proxy} could not reach {dest}: {why}")]
    Unreachable {
        /// Which hop.
        proxy: String,
        /// Where it was asked to go.
        dest: String,
        /// Its reason (SOCKS reply code, HTTP status).
        why: String,
    },
    /// The proxy hung up mid-handshake.
    #[error("{proxy} closed the connection during the handshake")]
    Closed {
        /// Which hop.
        proxy: String,
    },
    /// The proxy did not answer in time.
    #[error("{proxy} did not finish the handshake within {secs} s (is it a proxy of that kind, and is the next hop slow?)")]
    TimedOut {
        /// Which hop.
        proxy: String,
        /// The limit.
        secs: f64,
    },
    /// Anything else: a broken reply, a socket error, a name too long.
    #[error("{proxy}: {why}")]
    Broken {
        /// Which hop.
        proxy: String,
        /// What.
        why: String,
    },
}

impl crate::error::Failure for ProxyError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            // A hop's name that can only be meant as an address, and is none.
            ProxyError::Reach { source, .. } | ProxyError::Resolve { source, .. } => source.kind(),
            ProxyError::WrongProtocol { .. }
            | ProxyError::AuthRequired { .. }
            | ProxyError::AuthFailed { .. }
            | ProxyError::Unreachable { .. }
            | ProxyError::Closed { .. }
            | ProxyError::TimedOut { .. }
            | ProxyError::Broken { .. } => crate::error::Kind::Runtime,
        }
    }
}

/// How a hop is named in errors: `the proxy URL`, or `proxy 2 of 3 (URL)`.
fn hop_name(chain: &[ProxyUrl], i: usize) -> String {
    if chain.len() == 1 {
        format!("the proxy {}", chain[i])
    } else {
        format!("proxy {} of {} ({})", i + 1, chain.len(), chain[i])
    }
}

/// What to read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Exactly this many bytes.
    Exact(usize),
    /// An HTTP response head (peeked for its end, then read exactly).
    Head,
}

/// One hop's handshake, whatever the protocol.
enum Shake {
    S5(Socks5Client),
    S4,
    Http,
}

/// Starts the handshake with `chain[i]` toward `dest`: the first bytes to send.
fn start(chain: &[ProxyUrl], i: usize, dest: Dest) -> Result<(Shake, Vec<u8>), ProxyError> {
    let p = &chain[i];
    let fail = |f: Fail| fail_error(chain, i, &dest, f);
    let creds = p.creds.as_ref();
    match p.scheme {
        Scheme::Socks5 | Scheme::Socks5h => {
            let (c, first) = Socks5Client::new(
                dest.clone(),
                creds.map(|c| (c.user.clone(), c.pass.clone())),
            )
            .map_err(fail)?;
            Ok((Shake::S5(c), first))
        }
        Scheme::Socks4 | Scheme::Socks4a => {
            let user = creds.map_or("", |c| c.user.as_str());
            let req = socks::socks4_request(&dest, user).map_err(fail)?;
            Ok((Shake::S4, req))
        }
        Scheme::Http => Ok((
            Shake::Http,
            http::connect_request(&dest, creds.map(|c| (c.user.as_str(), c.pass.as_str()))),
        )),
    }
}

impl Shake {
    fn want(&self) -> Want {
        match self {
            Shake::S5(c) => Want::Exact(c.want()),
            Shake::S4 => Want::Exact(8),
            Shake::Http => Want::Head,
        }
    }

    /// Takes what [`Shake::want`] asked for: bytes to send next, or done.
    fn feed(
        &mut self,
        chain: &[ProxyUrl],
        i: usize,
        dest: &Dest,
        b: &[u8],
    ) -> Result<Option<Vec<u8>>, ProxyError> {
        let fail = |f: Fail| fail_error(chain, i, dest, f);
        match self {
            Shake::S5(c) => match c.feed(b).map_err(fail)? {
                Step::Send(out) => Ok(Some(out)),
                Step::Read => Ok(Some(Vec::new())),
                Step::Done(_) => Ok(None),
            },
            Shake::S4 => {
                let r: [u8; 8] = b
                    .try_into()
                    .map_err(|_| fail(Fail::Malformed("a short reply")))?;
                socks::socks4_reply(&r).map_err(fail)?;
                Ok(None)
            }
            Shake::Http => match http::parse_response(b) {
                Ok(socks::Parsed::Done((200..=299, _), _)) => Ok(None),
                Ok(socks::Parsed::Done((407, _), _)) => Err(if chain[i].creds.is_some() {
                    ProxyError::AuthFailed {
                        proxy: hop_name(chain, i),
                    }
                } else {
                    ProxyError::AuthRequired {
                        proxy: hop_name(chain, i),
                    }
                }),
                Ok(socks::Parsed::Done((code, reason), _)) => Err(ProxyError::Unreachable {
                    proxy: hop_name(chain, i),
                    dest: dest.to_string(),
                    why: format!("HTTP {code} {reason}").trim_end().to_string(),
                }),
                Ok(socks::Parsed::More) | Err(_) => Err(ProxyError::WrongProtocol {
                    proxy: hop_name(chain, i),
                    want: "HTTP",
                    seen: shown(b),
                }),
            },
        }
    }
}

/// A protocol failure as the sentence for hop `i`.
fn fail_error(chain: &[ProxyUrl], i: usize, dest: &Dest, f: Fail) -> ProxyError {
    let proxy = hop_name(chain, i);
    let want = match chain[i].scheme {
        Scheme::Socks5 | Scheme::Socks5h => "SOCKS5",
        Scheme::Socks4 | Scheme::Socks4a => "SOCKS4",
        Scheme::Http => "HTTP",
    };
    match f {
        Fail::NotSocks(seen) => ProxyError::WrongProtocol {
            proxy,
            want,
            seen: shown(&seen),
        },
        Fail::NoMethod {
            offered_auth: false,
        } => ProxyError::AuthRequired { proxy },
        Fail::NoMethod { offered_auth: true } | Fail::AuthFailed => {
            ProxyError::AuthFailed { proxy }
        }
        Fail::Refused(r) => ProxyError::Unreachable {
            proxy,
            dest: dest.to_string(),
            why: format!("{} (SOCKS5 reply {})", r.text(), r.code()),
        },
        Fail::Refused4(c) => ProxyError::Unreachable {
            proxy,
            dest: dest.to_string(),
            why: format!("{} (SOCKS4 reply {c})", socks::socks4_text(c)),
        },
        Fail::Malformed(w) => ProxyError::Broken {
            proxy,
            why: format!("a broken reply ({w})"),
        },
        Fail::TooLong(w) => ProxyError::Broken {
            proxy,
            why: w.to_string(),
        },
    }
}

/// The first bytes of a reply, shown safely: text when they are text.
fn shown(b: &[u8]) -> String {
    let b = &b[..b.len().min(24)];
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        format!("{:?}", String::from_utf8_lossy(b))
    } else {
        let hex: Vec<String> = b.iter().map(|c| format!("{c:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

/// The destination to ask hop `i` for: the next proxy, or the target.
/// Local-resolving schemes get an address.
fn dest_for(
    chain: &[ProxyUrl],
    i: usize,
    host: &str,
    port: u16,
    family: net::Family,
) -> Result<Dest, ProxyError> {
    let (h, p) = match chain.get(i + 1) {
        Some(next) => (next.host.as_str(), next.port),
        None => (host, port),
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(Dest::Addr(SocketAddr::new(ip, p)));
    }
    if chain[i].scheme.remote_names() {
        net::check_name(h).map_err(|why| ProxyError::Broken {
            proxy: hop_name(chain, i),
            why: format!("{h:?}: {why}"),
        })?;
        return Ok(Dest::Name(h.to_string(), p));
    }
    let family = if chain[i].scheme == Scheme::Socks4 {
        net::Family::V4
    } else {
        family
    };
    let addrs = net::resolve(h, p, family).map_err(|e| ProxyError::Resolve {
        proxy: hop_name(chain, i),
        source: e,
    })?;
    Ok(Dest::Addr(addrs[0]))
}

/// Connects to `host:port` through every proxy of `chain` in turn and
/// returns the tunnel: a plain stream to the target. Bytes the target sent
/// after the last reply are still unread in it.
///
/// # Errors
/// The first hop that failed, in one sentence.
pub fn connect(
    chain: &[ProxyUrl],
    host: &str,
    port: u16,
    opts: &ConnectOptions,
) -> Result<TcpStream, ProxyError> {
    let first = &chain[0];
    let mut s = net::connect(&first.host, first.port, opts).map_err(|e| ProxyError::Reach {
        proxy: hop_name(chain, 0),
        source: e,
    })?;
    let limit = opts.timeout.unwrap_or(HANDSHAKE_TIMEOUT);
    for i in 0..chain.len() {
        let dest = dest_for(chain, i, host, port, opts.family)?;
        tracing::debug!("{}: asking for {dest}", hop_name(chain, i));
        shake_blocking(&mut s, chain, i, &dest, limit)?;
    }
    let _ = s.set_read_timeout(None);
    let _ = s.set_write_timeout(None);
    Ok(s)
}

fn shake_blocking(
    s: &mut TcpStream,
    chain: &[ProxyUrl],
    i: usize,
    dest: &Dest,
    limit: Duration,
) -> Result<(), ProxyError> {
    let deadline = Instant::now() + limit;
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ProxyError::TimedOut {
            proxy: hop_name(chain, i),
            secs: limit.as_secs_f64(),
        },
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => ProxyError::Closed {
            proxy: hop_name(chain, i),
        },
        _ => ProxyError::Broken {
            proxy: hop_name(chain, i),
            why: net::describe(&e),
        },
    };
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    let (mut shake, first) = start(chain, i, dest.clone())?;
    s.set_write_timeout(Some(left().map_err(io_err)?))
        .map_err(io_err)?;
    s.write_all(&first).map_err(io_err)?;
    loop {
        s.set_read_timeout(Some(left().map_err(io_err)?))
            .map_err(io_err)?;
        let got = match shake.want() {
            Want::Exact(n) => {
                let mut b = vec![0u8; n];
                s.read_exact(&mut b).map_err(io_err)?;
                b
            }
            Want::Head => read_head_blocking(s).map_err(io_err)?,
        };
        match shake.feed(chain, i, dest, &got)? {
            None => return Ok(()),
            Some(out) if out.is_empty() => {}
            Some(out) => s.write_all(&out).map_err(io_err)?,
        }
    }
}

/// Reads an HTTP response head without taking a byte past its end.
fn read_head_blocking(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(128);
    // Bounded: every pass adds at least one byte, up to MAX_HEAD.
    while !http::head_read_done(&head) {
        let at = head.len();
        head.resize(at + http::safe_read(&head), 0);
        s.read_exact(&mut head[at..])?;
    }
    Ok(head)
}

/// [`connect`] for async callers (`forward`): the same chain over a tokio
/// stream.
///
/// # Errors
/// The first hop that failed, in one sentence.
pub async fn connect_async(
    chain: &[ProxyUrl],
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, ProxyError> {
    let first = &chain[0];
    let mut s = net::connect_async(&first.host, first.port, net::Family::Any, timeout)
        .await
        .map_err(|e| ProxyError::Reach {
            proxy: hop_name(chain, 0),
            source: e,
        })?;
    for i in 0..chain.len() {
        let dest = {
            let (chain2, host2) = (chain.to_vec(), host.to_string());
            tokio::task::spawn_blocking(move || {
                dest_for(&chain2, i, &host2, port, net::Family::Any)
            })
            .await
            .map_err(|e| ProxyError::Broken {
                proxy: hop_name(chain, i),
                why: e.to_string(),
            })??
        };
        match tokio::time::timeout(timeout, shake_async(&mut s, chain, i, &dest)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ProxyError::TimedOut {
                    proxy: hop_name(chain, i),
                    secs: timeout.as_secs_f64(),
                })
            }
        }
    }
    Ok(s)
}

async fn shake_async(
    s: &mut tokio::net::TcpStream,
    chain: &[ProxyUrl],
    i: usize,
    dest: &Dest,
) -> Result<(), ProxyError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => ProxyError::Closed {
            proxy: hop_name(chain, i),
        },
        _ => ProxyError::Broken {
            proxy: hop_name(chain, i),
            why: net::describe(&e),
        },
    };
    let (mut shake, first) = start(chain, i, dest.clone())?;
    s.write_all(&first).await.map_err(io_err)?;
    loop {
        let got = match shake.want() {
            Want::Exact(n) => {
                let mut b = vec![0u8; n];
                s.read_exact(&mut b).await.map_err(io_err)?;
                b
            }
            Want::Head => {
                let mut head = Vec::with_capacity(128);
                // Bounded: every pass adds at least one byte, up to MAX_HEAD.
                while !http::head_read_done(&head) {
                    let at = head.len();
                    head.resize(at + http::safe_read(&head), 0);
                    s.read_exact(&mut head[at..]).await.map_err(io_err)?;
                }
                head
            }
        };
        match shake.feed(chain, i, dest, &got)? {
            None => return Ok(()),
            Some(out) if out.is_empty() => {}
            Some(out) => s.write_all(&out).await.map_err(io_err)?,
        }
    }
}
