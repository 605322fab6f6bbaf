//! Diagnostics: `sockit ping` (TCP handshake latency, like tcping) and
//! `sockit scan` (a TCP connect scan with bounded concurrency).

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::lookup;
use crate::net::{self, show_addr, Family, NetError};

/// `ping` options.
#[derive(Debug, Clone)]
pub struct PingOptions {
    /// Attempts to make.
    pub count: u32,
    /// Pause between attempts.
    pub interval: Duration,
    /// Give up on one connect after this long.
    pub timeout: Duration,
    /// `-4` / `-6`.
    pub family: Family,
    /// `--proxy`: time the whole tunnel (every hop's handshake) instead.
    pub proxies: Vec<crate::proxy::ProxyUrl>,
}

/// One attempt's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Attempt {
    /// Connected after this long.
    Connected(Duration),
    /// The port refused.
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// Another error.
    Failed,
}

/// What `ping` saw.
#[derive(Debug, Clone, Default)]
pub struct PingSummary {
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// Ctrl-C ended the run early.
    pub interrupted: bool,
}

impl PingSummary {
    /// Handshake times of the attempts that connected, sorted.
    pub fn times(&self) -> Vec<Duration> {
        let mut t: Vec<Duration> = self
            .attempts
            .iter()
            .filter_map(|a| match a {
                Attempt::Connected(d) => Some(*d),
                _ => None,
            })
            .collect();
        t.sort();
        t
    }

    /// The summary line: counts, loss, min/median/p99/max.
    pub fn line(&self) -> String {
        let t = self.times();
        let n = self.attempts.len();
        let loss = if n == 0 {
            0.0
        } else {
            100.0 * (n - t.len()) as f64 / n as f64
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut s = format!(
            "{}, {} connected, {loss:.0}% loss",
            crate::text::counted(n as u64, "attempt", "attempts"),
            t.len()
        );
        if let (Some(first), Some(last)) = (t.first(), t.last()) {
            let med = t[t.len() / 2];
            let p99 = t[((t.len() as f64 - 1.0) * 0.99).round() as usize];
            s.push_str(&format!(
                "; min/median/p99/max = {:.3}/{:.3}/{:.3}/{:.3} ms",
                ms(*first),
                ms(med),
                ms(p99),
                ms(*last)
            ));
        }
        s
    }
}

/// One timed connect.
fn connect_once(addr: SocketAddr, timeout: Duration) -> Attempt {
    let Ok(sock) = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)) else {
        return Attempt::Failed;
    };
    let t = Instant::now();
    match sock.connect_timeout(&SockAddr::from(addr), timeout) {
        Ok(()) => Attempt::Connected(t.elapsed()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Attempt::Refused,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Attempt::Timeout
        }
        Err(_) => Attempt::Failed,
    }
}

/// One tunnel through `--proxy` (the dialer's), timed until the last hop
/// said yes.
fn tunnel_once(host: &str, port: u16, opts: &PingOptions) -> Attempt {
    use crate::dial::{DialError, DialOptions};
    use crate::proxy::ProxyError as P;
    let dopts = DialOptions {
        connect: net::ConnectOptions {
            family: opts.family,
            timeout: Some(opts.timeout),
            ..Default::default()
        },
        proxies: opts.proxies.clone(),
    };
    let t = Instant::now();
    match crate::dial::connect(host, port, &dopts) {
        Ok(_) => Attempt::Connected(t.elapsed()),
        Err(DialError::Proxy(P::Unreachable { why, .. })) if why.contains("refused") => {
            Attempt::Refused
        }
        Err(DialError::Proxy(P::TimedOut { .. })) => Attempt::Timeout,
        Err(e) => {
            tracing::info!("{e}");
            Attempt::Failed
        }
    }
}

/// Measures TCP handshakes to `host:port`, printing one line per attempt.
///
/// # Errors
/// Resolution errors.
pub fn ping(
    host: &str,
    port: u16,
    opts: &PingOptions,
    out: &mut dyn Write,
) -> Result<PingSummary, NetError> {
    // Through proxies the target's name is the proxy's to resolve.
    let (addr, shown) = if opts.proxies.is_empty() {
        let a = net::resolve(host, port, opts.family)?[0];
        (Some(a), show_addr(a))
    } else {
        let via = opts
            .proxies
            .last()
            .map(|p| p.to_string())
            .unwrap_or_default();
        (
            None,
            format!(
                "{} via {via}",
                crate::proxy::socks::Dest::Name(host.to_string(), port)
            ),
        )
    };
    let mut summary = PingSummary::default();
    crate::interrupt::catch();
    for i in 0..opts.count {
        // Ctrl-C ends the run; the caller prints the summary, as ping(8) does.
        if (i > 0 && crate::interrupt::sleep(opts.interval)) || crate::interrupt::requested() {
            summary.interrupted = true;
            break;
        }
        let a = match addr {
            Some(addr) => connect_once(addr, opts.timeout),
            None => tunnel_once(host, port, opts),
        };
        if crate::interrupt::requested() && !matches!(a, Attempt::Connected(_)) {
            summary.interrupted = true;
            break;
        }
        let line = match a {
            Attempt::Connected(d) => format!(
                "connected to {shown}: seq={} time={:.3} ms",
                i + 1,
                d.as_secs_f64() * 1000.0
            ),
            Attempt::Refused => format!("{shown}: seq={} refused", i + 1),
            Attempt::Timeout => format!(
                "{shown}: seq={} timeout ({:.1} s)",
                i + 1,
                opts.timeout.as_secs_f64()
            ),
            Attempt::Failed => format!("{shown}: seq={} failed", i + 1),
        };
        summary.attempts.push(a);
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    Ok(summary)
}

/// Parses a port list: `22`, `1-1024`, `80,443,8000-8100`, service names.
///
/// # Errors
/// A message naming the bad part.
pub fn parse_ports(spec: &str) -> Result<Vec<u16>, String> {
    // A set, not a list: `1-65535,1-65535,…` must not grow without bound.
    let mut seen = vec![false; 65536];
    for part in spec.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("empty entry in port list {spec:?}"));
        }
        if let Some((a, b)) = part.split_once('-') {
            let a = net::parse_port(a.trim())?;
            let b = net::parse_port(b.trim())?;
            if a > b {
                return Err(format!("range {part:?} runs backwards"));
            }
            seen[usize::from(a)..=usize::from(b)].fill(true);
        } else if part.bytes().all(|c| c.is_ascii_digit()) {
            seen[usize::from(net::parse_port(part)?)] = true;
        } else {
            seen[usize::from(lookup::service(part, "tcp").map_err(|e| e.to_string())?)] = true;
        }
    }
    Ok((1..=u16::MAX).filter(|&p| seen[usize::from(p)]).collect())
}

/// An open port and its service name, if the services database has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPort {
    /// The port.
    pub port: u16,
    /// Its service name.
    pub service: Option<String>,
}

impl OpenPort {
    /// One text line, like nmap's: `22/tcp open ssh`.
    pub fn line(&self) -> String {
        format!(
            "{}/tcp open {}",
            self.port,
            self.service.as_deref().unwrap_or("-")
        )
    }

    /// The port as a JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"port\":{},\"service\":{}}}",
            self.port,
            self.service
                .as_deref()
                .map(crate::report::json_str)
                .unwrap_or_else(|| "null".into())
        )
    }
}

/// A whole scan as one JSON object.
pub fn scan_json(ip: IpAddr, scanned: usize, secs: f64, open: &[OpenPort]) -> String {
    format!(
        "{{\"host\":{},\"scanned\":{scanned},\"secs\":{secs:.3},\"open\":{}}}",
        crate::report::json_str(&ip.to_string()),
        crate::report::json_array(open.iter().map(OpenPort::json))
    )
}

/// Where a non-blocking connect stands right after the call.
enum Probe {
    Open,
    Closed,
    /// Still in progress: wait for it.
    Pending(std::net::TcpStream),
}

/// Starts a non-blocking connect and reads its outcome at once when the
/// kernel already has it: on loopback and on the local host a closed port
/// has refused (and an open one accepted) before `connect` returns, so most
/// ports never need the event loop.
fn start_connect(addr: SocketAddr) -> Probe {
    let Ok(sock) = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)) else {
        return Probe::Closed;
    };
    if sock.set_nonblocking(true).is_err() {
        return Probe::Closed;
    }
    // A socket that reached itself (source port = the scanned port, a
    // simultaneous open on loopback) is not an open port.
    let real = |s: &Socket| match (s.local_addr(), s.peer_addr()) {
        (Ok(l), Ok(p)) => l != p,
        _ => false,
    };
    match sock.connect(&SockAddr::from(addr)) {
        Ok(()) if real(&sock) => return Probe::Open,
        Ok(()) => return Probe::Closed,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(_) => return Probe::Closed,
    }
    match sock.take_error() {
        Ok(None) => {}
        _ => return Probe::Closed,
    }
    if sock.peer_addr().is_ok() {
        return if real(&sock) {
            Probe::Open
        } else {
            Probe::Closed
        };
    }
    Probe::Pending(sock.into())
}

/// Connect-scans `ports` on `ip`, at most `concurrency` at once.
pub async fn scan(
    ip: IpAddr,
    ports: &[u16],
    concurrency: usize,
    timeout: Duration,
) -> Vec<OpenPort> {
    // One share of the ports per core: on a near host most of the cost is
    // the kernel's own connect work, done in the caller's thread.
    let concurrency = concurrency.max(1);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(concurrency);
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let share: Vec<u16> = ports.iter().copied().skip(w).step_by(workers).collect();
            let limit = (concurrency / workers).max(1);
            tokio::spawn(async move {
                futures_util::stream::iter(share)
                    .map(|p| probe(SocketAddr::new(ip, p), timeout))
                    .buffer_unordered(limit)
                    .filter_map(|x| async move { x })
                    .collect::<Vec<u16>>()
                    .await
            })
        })
        .collect();
    let mut open = Vec::new();
    for t in tasks {
        open.extend(t.await.unwrap_or_default());
    }
    open.sort_unstable();
    open.into_iter()
        .map(|port| OpenPort {
            port,
            service: lookup::port(port, "tcp").ok(),
        })
        .collect()
}

/// One port: `Some(port)` if it accepted a connection within `timeout`.
async fn probe(addr: SocketAddr, timeout: Duration) -> Option<u16> {
    let pending = match start_connect(addr) {
        Probe::Open => return Some(addr.port()),
        Probe::Closed => return None,
        Probe::Pending(s) => s,
    };
    let s = tokio::net::TcpStream::from_std(pending).ok()?;
    match tokio::time::timeout(timeout, s.writable()).await {
        Ok(Ok(())) => match s.take_error() {
            Ok(None) => match (s.local_addr(), s.peer_addr()) {
                (Ok(l), Ok(p)) if l != p => Some(addr.port()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seen while writing fuzz/parsers: repeated ranges grew the list
    /// before it was deduplicated; the ports are a set from the start.
    #[test]
    fn repeated_ranges_stay_one_set() {
        let spec = vec!["1-65535"; 200].join(",");
        let ports = parse_ports(&spec).unwrap();
        assert_eq!(ports.len(), 65535);
        assert_eq!((ports[0], ports[65534]), (1, 65535));
    }

    #[test]
    fn port_lists() {
        assert_eq!(parse_ports("22").unwrap(), vec![22]);
        assert_eq!(
            parse_ports("80,443,8000-8002").unwrap(),
            vec![80, 443, 8000, 8001, 8002]
        );
        assert_eq!(parse_ports("1-65535").unwrap().len(), 65535);
        assert_eq!(parse_ports("5,5,4-5").unwrap(), vec![4, 5]);
        for bad in ["", "0", "70000", "10-5", "1,,2", "-3"] {
            assert!(parse_ports(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn summary_line() {
        let s = PingSummary {
            interrupted: false,
            attempts: vec![
                Attempt::Connected(Duration::from_micros(100)),
                Attempt::Refused,
                Attempt::Connected(Duration::from_micros(300)),
                Attempt::Timeout,
            ],
        };
        let l = s.line();
        assert!(l.starts_with("4 attempts, 2 connected, 50% loss"), "{l}");
        assert!(l.contains("0.100/0.300/0.300/0.300 ms"), "{l}");
    }
}
