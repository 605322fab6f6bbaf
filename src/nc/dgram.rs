//! netcat over UDP (`-u`): a client sends each read of stdin as one
//! datagram and prints what comes back; a listener takes the first sender
//! as its peer (with `-k`, anyone, and stdin goes to the last sender);
//! `-z` probes a port with one `X` and reports it open unless the kernel
//! says it was refused.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    local_for, pause_between, ports, resolve, say, service, shown_host, socket_options, NcArgs,
    NcError, NcRunError,
};
use crate::relay::threaded::{Sink, Source, Threaded};

/// Largest datagram read or sent.
const MAX_DATAGRAM: usize = 65_536;

/// How long `-z` waits for the kernel to report a refused probe.
const PROBE_WAIT: Duration = Duration::from_millis(100);

/// `-u`, in every mode.
pub(super) fn run(a: &NcArgs) -> Result<u8, NcRunError> {
    if a.listen {
        return listen(a);
    }
    let host = &a.operands[0];
    let list = ports(a, &a.operands[1..], "udp")?;
    let mut ret = 1;
    let mut first = true;
    for (i, &port) in list.iter().enumerate() {
        if i > 0 {
            pause_between(a);
        }
        let addr = resolve(a, host, port)?[0];
        let s = socket(a, addr)?;
        if let Some(local) = local_for(a, addr, "udp")? {
            s.bind(&SockAddr::from(local))
                .map_err(|e| NcRunError::Failed(format!("bind failed: {}", say::strerror(&e))))?;
        }
        s.connect(&SockAddr::from(addr))
            .map_err(|e| NcRunError::Failed(say::connect_failed(host, port, "udp", &e)))?;
        let sock: UdpSocket = s.into();
        if a.scan {
            if probe(&sock) {
                ret = 0;
                if a.verbose > 0 {
                    let svc = service(a, port, "udp");
                    eprintln!(
                        "{}",
                        say::connected(host, Some(addr.ip()), port, "udp", svc.as_deref())
                    );
                }
            }
            continue;
        }
        ret = 0;
        if a.verbose > 0 {
            let svc = service(a, port, "udp");
            eprintln!(
                "{}",
                say::connected(host, Some(addr.ip()), port, "udp", svc.as_deref())
            );
        }
        session(a, sock, None, first)?;
        first = false;
    }
    Ok(ret)
}

/// A UDP socket with netcat's options.
fn socket(a: &NcArgs, addr: SocketAddr) -> Result<Socket, NcRunError> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| NcRunError::Failed(format!("socket: {}", say::strerror(&e))))?;
    socket_options(a, &s, addr.is_ipv6())?;
    Ok(s)
}

/// One `X` to a connected socket: open unless the kernel reports the
/// port refused within [`PROBE_WAIT`].
fn probe(sock: &UdpSocket) -> bool {
    if let Err(e) = sock.send(b"X") {
        return e.kind() != io::ErrorKind::ConnectionRefused;
    }
    let _ = sock.set_read_timeout(Some(PROBE_WAIT));
    let mut b = [0u8; 1];
    match sock.recv(&mut b) {
        Err(e) => e.kind() != io::ErrorKind::ConnectionRefused,
        Ok(_) => true,
    }
}

/// `nc -lu`: bind, take the first sender as the peer (with `-k`, every
/// sender), and run the session.
fn listen(a: &NcArgs) -> Result<u8, NcRunError> {
    let (host, port) = match (a.operands.as_slice(), &a.source_port) {
        ([h, p], _) => (Some(h.clone()), p.clone()),
        ([h], Some(p)) => (Some(h.clone()), p.clone()),
        ([p], None) => (a.source.clone(), p.clone()),
        ([], Some(p)) => (a.source.clone(), p.clone()),
        _ => return Err(NcError::Usage("missing port number".into()).into()),
    };
    let port: u16 = if port == "0" {
        0
    } else {
        super::one_port(&port, "udp")?
    };
    let addr = match host {
        Some(h) => resolve(a, &h, port)?[0],
        None if a.v6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
    };
    let s = socket(a, addr)?;
    let _ = s.set_reuse_address(true);
    s.bind(&SockAddr::from(addr))
        .map_err(|e| NcRunError::Failed(format!("bind failed: {}", say::strerror(&e))))?;
    let sock: UdpSocket = s.into();
    let local = sock
        .local_addr()
        .map_err(|e| NcRunError::Failed(say::strerror(&e)))?;
    if a.verbose > 0 {
        eprintln!("Bound on {} {}", shown_host(a, local.ip()), local.port());
    }
    if a.keep {
        session(a, sock, None, true)?;
        return Ok(0);
    }
    // The first sender becomes the peer; its datagram is the first output.
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let (n, from) = loop {
        match sock.recv_from(&mut buf) {
            Ok(x) => break x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(NcRunError::Failed(format!(
                    "recvfrom: {}",
                    say::strerror(&e)
                )))
            }
        }
    };
    if a.verbose > 0 {
        eprintln!(
            "Connection received on {} {}",
            shown_host(a, from.ip()),
            from.port()
        );
    }
    sock.connect(from)
        .map_err(|e| NcRunError::Failed(format!("connect: {}", say::strerror(&e))))?;
    buf.truncate(n);
    session(a, sock, Some(buf), true)?;
    Ok(0)
}

/// Stdin to datagrams and datagrams to stdout, until Ctrl-C, `-q` after
/// the end of stdin, or `-w` of quiet after it. A connected socket talks
/// to its peer; an unconnected one (`-lk`) prints every sender and sends
/// stdin to the last one. `first` is a datagram already received.
fn session(
    a: &NcArgs,
    sock: UdpSocket,
    first: Option<Vec<u8>>,
    reads_stdin: bool,
) -> Result<(), NcRunError> {
    let failed = |e: io::Error| NcRunError::Failed(say::strerror(&e));
    let connected = sock.peer_addr().is_ok();
    let rt = crate::session::runtime().map_err(failed)?;
    rt.block_on(async move {
        sock.set_nonblocking(true)?;
        let sock = tokio::net::UdpSocket::from_std(sock)?;
        let source = if reads_stdin && !a.no_stdin {
            Source::Stdin
        } else {
            Source::Reader(Box::new(io::empty()))
        };
        let mut local = Threaded::new(source, Sink::Stdout);
        if let Some(d) = first {
            local.write_all(&d).await?;
        }
        let mut inbuf = vec![0u8; MAX_DATAGRAM];
        let mut netbuf = vec![0u8; MAX_DATAGRAM];
        let mut stdin_open = true;
        let mut last_peer: Option<SocketAddr> = None;
        let mut stdin_ended: Option<Instant> = None;
        let mut last_net = Instant::now();
        // Bounded by the user: Ctrl-C, -q or -w end it; a datagram
        // session has no end of its own.
        loop {
            let quit_at = match (stdin_ended, a.quit_after, a.timeout) {
                (Some(t), Some(q), _) => Some(t + q),
                (Some(_), None, Some(w)) => Some(last_net + w),
                _ => None,
            };
            let timer = async {
                match quit_at {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = local.read(&mut inbuf), if stdin_open => {
                    let n = r?;
                    if n == 0 {
                        stdin_open = false;
                        stdin_ended = Some(Instant::now());
                        continue;
                    }
                    let sent = if connected {
                        sock.send(&inbuf[..n]).await
                    } else if let Some(to) = last_peer {
                        sock.send_to(&inbuf[..n], to).await
                    } else {
                        Ok(n)
                    };
                    // A refused datagram is what UDP does: nc goes on.
                    if let Err(e) = sent {
                        if e.kind() != io::ErrorKind::ConnectionRefused {
                            return Err(e);
                        }
                    }
                }
                r = sock.recv_from(&mut netbuf) => {
                    match r {
                        Ok((n, from)) => {
                            last_net = Instant::now();
                            last_peer = Some(from);
                            local.write_all(&netbuf[..n]).await?;
                            local.flush().await?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                        Err(e) => return Err(e),
                    }
                }
                _ = timer => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        local.drain().await;
        Ok::<_, io::Error>(())
    })
    .map_err(|e| match e.get_ref().map(|i| i.to_string()) {
        Some(inner) => NcRunError::Failed(inner),
        None => failed(e),
    })
}
