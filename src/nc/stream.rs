//! netcat over streams: connect (directly, or through `-x`), listen (one
//! peer, or many with `-k`), scan (`-z`), Unix sockets (`-U`), and a
//! program joined to the connection (`-e`, `-c`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio_util::sync::CancellationToken;

use super::args::ProxyProto;
use super::{
    local_for, pause_between, ports, resolve, rules, say, service, shown_host, socket_options,
    NcArgs, NcError, NcRunError,
};
use crate::listener::Bound;
use crate::net::unix::{self, UnixAddr};
use crate::peers::{Mode, Notice, ServerOptions};
use crate::relay::child::{self, ConnEnv, Program};
use crate::relay::{self, Endpoint, PipePool};
use crate::session::{self, Input, Link, Output, PipeOptions, Sock};

/// The session's options under netcat's rules.
fn pipe_options(a: &NcArgs) -> PipeOptions {
    PipeOptions {
        idle_timeout: a.timeout,
        nc: Some(rules(a)),
        ..PipeOptions::default()
    }
}

/// What a session reads: stdin for the first connection (unless `-d`),
/// nothing for the ones after it.
fn input(a: &NcArgs, first: bool) -> Input {
    if first && !a.no_stdin {
        Input::Stdin
    } else {
        Input::Reader(Box::new(io::empty()))
    }
}

/// The program of `-e` or `-c`, if one was given.
fn program(a: &NcArgs) -> Result<Option<Program>, NcRunError> {
    let p = match (&a.exec, &a.sh) {
        (Some(e), _) => child::parse_exec(e),
        (None, Some(c)) => child::parse_sh(c),
        (None, None) => return Ok(None),
    };
    p.map(Some).map_err(|e| NcError::Usage(e).into())
}

/// `nc HOST PORT...`: each port in turn, a session with the first that
/// answers... and the next, as netcat does; exit 0 if any answered.
pub(super) fn connect(a: &NcArgs) -> Result<u8, NcRunError> {
    let host = &a.operands[0];
    let list = ports(a, &a.operands[1..], "tcp")?;
    let prog = program(a)?;
    let mut ret = 1;
    let mut first = true;
    for (i, &port) in list.iter().enumerate() {
        if i > 0 {
            pause_between(a);
        }
        let Some((s, ip)) = reach(a, host, port)? else {
            continue;
        };
        ret = 0;
        if a.verbose > 0 {
            eprintln!(
                "{}",
                say::connected(host, ip, port, "tcp", service(a, port, "tcp").as_deref())
            );
        }
        let mut popts = pipe_options(a);
        if a.proxy.is_some() {
            popts.peer = Some(crate::proxy::socks::Dest::Name(host.clone(), port).to_string());
        }
        if let Some(p) = &prog {
            with_program(Conn::Tcp(s), p, host)?;
        } else if a.tls {
            let t = crate::tls::ClientTlsOptions::default();
            crate::tcp::session_over(s, host, port, &popts, Some(&t))?;
        } else {
            // Stdout stays open for the ports still to come (its end
            // closes it for good).
            let out = if i + 1 < list.len() {
                Output::Writer(Box::new(io::stdout()))
            } else {
                Output::Stdout
            };
            session::run(Link::Plain(Sock::Tcp(s)), input(a, first), out, &popts)
                .map_err(crate::session::StreamError::from)?;
        }
        first = false;
    }
    Ok(ret)
}

/// Connects to `host:port`, directly or through `-x`; a refusal is
/// netcat's quiet failure (named with `-v`), `None`.
fn reach(
    a: &NcArgs,
    host: &str,
    port: u16,
) -> Result<Option<(TcpStream, Option<IpAddr>)>, NcRunError> {
    if a.proxy.is_some() {
        return proxied(a, host, port).map(|s| s.map(|s| (s, None)));
    }
    for addr in resolve(a, host, port)? {
        match direct(a, addr) {
            Ok(s) => return Ok(Some((s, Some(addr.ip())))),
            Err(NcRunError::Failed(why)) => return Err(NcRunError::Failed(why)),
            Err(NcRunError::Stream(_)) | Err(NcRunError::Usage(_)) => {}
        }
    }
    Ok(None)
}

/// One direct connect, with the socket options, `-s`/`-p` and `-w`; a
/// failed connect is reported with `-v` and comes back as `Usage` (a
/// marker for "try the next address", never shown).
fn direct(a: &NcArgs, addr: SocketAddr) -> Result<TcpStream, NcRunError> {
    let quiet = || NcRunError::Usage(NcError::Usage(String::new()));
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| NcRunError::Failed(format!("socket: {}", say::strerror(&e))))?;
    socket_options(a, &s, addr.is_ipv6())?;
    if let Some(local) = local_for(a, addr, "tcp")? {
        let _ = s.set_reuse_address(true);
        s.bind(&SockAddr::from(local))
            .map_err(|e| NcRunError::Failed(format!("bind failed: {}", say::strerror(&e))))?;
    }
    let r = match a.timeout {
        Some(t) => s.connect_timeout(&SockAddr::from(addr), t),
        None => s.connect(&SockAddr::from(addr)),
    };
    if let Err(e) = r {
        if a.verbose > 0 {
            let host = crate::net::show_addr(addr);
            let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
            eprintln!(
                "nc: {}",
                say::connect_failed(
                    host.trim_matches(|c| c == '[' || c == ']'),
                    addr.port(),
                    "tcp",
                    &e
                )
            );
        }
        return Err(quiet());
    }
    let _ = s.set_tcp_nodelay(true);
    Ok(s.into())
}

/// Through `-x` with `-X`; `-P USER` asks for the password on the
/// terminal when the proxy wants one, as netcat does.
fn proxied(a: &NcArgs, host: &str, port: u16) -> Result<Option<TcpStream>, NcRunError> {
    use crate::proxy::{ProxyError, ProxyUrl, Scheme};
    let Some(x) = &a.proxy else { return Ok(None) };
    let scheme = match a.proxy_proto {
        ProxyProto::Socks5 => Scheme::Socks5h,
        ProxyProto::Socks4 => Scheme::Socks4,
        ProxyProto::Connect => Scheme::Http,
    };
    let default = if scheme == Scheme::Http { 3128 } else { 1080 };
    let (phost, pport) = crate::proxy::http::authority(x, Some(default))
        .map_err(|b| NcError::Usage(format!("{x}: {}", b.why)))?;
    let mut url = ProxyUrl {
        scheme,
        host: phost.clone(),
        port: pport,
        creds: None,
    };
    let dopts = |url: &ProxyUrl| crate::dial::DialOptions {
        connect: crate::net::ConnectOptions {
            family: super::family(a),
            timeout: a.timeout,
            nodelay: true,
            ..Default::default()
        },
        proxies: vec![url.clone()],
    };
    // Two tries at most: without credentials, then with the password.
    for _ in 0..2 {
        match crate::dial::connect(host, port, &dopts(&url)) {
            Ok(s) => return Ok(Some(s)),
            Err(crate::dial::DialError::Proxy(ProxyError::AuthRequired { .. }))
                if a.proxy_user.is_some() && url.creds.is_none() =>
            {
                let user = a.proxy_user.clone().unwrap_or_default();
                let prompt = format!("Proxy password for {user}@{phost}: ");
                let pass = read_password(&prompt).map_err(|e| {
                    NcRunError::Failed(format!(
                        "could not read the proxy password ({})",
                        say::strerror(&e)
                    ))
                })?;
                url.creds = Some(crate::proxy::Creds { user, pass });
            }
            Err(e) => {
                if a.verbose > 0 {
                    eprintln!("nc: {e}");
                }
                return Ok(None);
            }
        }
    }
    Ok(None)
}

/// Reads a line from the terminal without echo, after `prompt` on it.
fn read_password(prompt: &str) -> io::Result<String> {
    use std::io::{BufRead, Read, Write};
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let fd = tty.as_raw_fd();
    // SAFETY: tcgetattr/tcsetattr read and write the struct we own.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    let have = unsafe { libc::tcgetattr(fd, &mut old) } == 0;
    if have {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut w = &tty;
    let _ = w.write_all(prompt.as_bytes()).and_then(|()| w.flush());
    let mut line = String::new();
    let r = io::BufReader::new(&tty).take(4096).read_line(&mut line);
    if have {
        // SAFETY: restores what tcgetattr read.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    }
    let _ = w.write_all(b"\n");
    r?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `nc -z HOST PORT...`: connect and close, each port in turn; exit 0 when
/// one is open.
pub(super) fn scan(a: &NcArgs) -> Result<u8, NcRunError> {
    let host = &a.operands[0];
    let list = ports(a, &a.operands[1..], "tcp")?;
    let mut ret = 1;
    for (i, &port) in list.iter().enumerate() {
        if i > 0 {
            pause_between(a);
        }
        if let Some((_, ip)) = reach(a, host, port)? {
            ret = 0;
            if a.verbose > 0 {
                eprintln!(
                    "{}",
                    say::connected(host, ip, port, "tcp", service(a, port, "tcp").as_deref())
                );
            }
        }
    }
    Ok(ret)
}

/// Where `-l` listens: `[HOST] PORT`, or `-s` and `-p`.
fn listen_addr(a: &NcArgs) -> Result<SocketAddr, NcRunError> {
    let (host, port) = match (a.operands.as_slice(), &a.source_port) {
        ([h, p], _) => (Some(h.clone()), p.clone()),
        ([h], Some(p)) => (Some(h.clone()), p.clone()),
        ([p], None) => (a.source.clone(), p.clone()),
        ([], Some(p)) => (a.source.clone(), p.clone()),
        _ => return Err(NcError::Usage("missing port number".into()).into()),
    };
    // Port 0 is the kernel's pick, as netcat allows with -l.
    let port = if port == "0" {
        0
    } else {
        super::one_port(&port, "tcp")?
    };
    Ok(match host {
        Some(h) => resolve(a, &h, port)?[0],
        None if a.v6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
    })
}

/// `nc -l`: one peer, then exit; with `-k`, many at once.
pub(super) fn listen(a: &NcArgs) -> Result<u8, NcRunError> {
    let addr = listen_addr(a)?;
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| NcRunError::Failed(format!("socket: {}", say::strerror(&e))))?;
    let _ = s.set_reuse_address(true);
    if addr.is_ipv6() {
        let _ = s.set_only_v6(true);
    }
    socket_options(a, &s, addr.is_ipv6())?;
    s.bind(&SockAddr::from(addr))
        .map_err(|e| NcRunError::Failed(format!("bind failed: {}", say::strerror(&e))))?;
    s.listen(4096)
        .map_err(|e| NcRunError::Failed(format!("listen failed: {}", say::strerror(&e))))?;
    let l: TcpListener = s.into();
    let local = l
        .local_addr()
        .map_err(|e| NcRunError::Failed(say::strerror(&e)))?;
    if a.verbose > 0 {
        eprintln!(
            "Listening on {} {}",
            shown_host(a, local.ip()),
            local.port()
        );
    }
    let tls = match a.tls {
        true => Some(
            crate::tls::ServerTls::new(&crate::tls::ServerTlsOptions::default())
                .map_err(|e| NcRunError::Failed(e.to_string()))?,
        ),
        false => None,
    };
    if let Some(t) = &tls {
        t.announce();
    }
    let prog = program(a)?;
    if a.keep {
        return many(a, Bound::Tcp(l), prog, tls);
    }
    let (c, peer) = loop {
        match l.accept() {
            Ok(x) => break x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(NcRunError::Failed(format!("accept: {}", say::strerror(&e)))),
        }
    };
    drop(l);
    if a.verbose > 0 {
        eprintln!(
            "Connection received on {} {}",
            shown_host(a, peer.ip()),
            peer.port()
        );
    }
    if let Some(p) = &prog {
        with_program(Conn::Tcp(c), p, &crate::net::show_addr(peer))?;
        return Ok(0);
    }
    let popts = pipe_options(a);
    match tls {
        None => {
            session::run(
                Link::Plain(Sock::Tcp(c)),
                input(a, true),
                Output::Stdout,
                &popts,
            )
            .map_err(crate::session::StreamError::from)?;
        }
        Some(t) => {
            let rt = session::runtime().map_err(|e| NcRunError::Failed(say::strerror(&e)))?;
            let s = rt
                .block_on(async {
                    c.set_nonblocking(true)?;
                    let c = tokio::net::TcpStream::from_std(c)?;
                    crate::tls::accept_async(&t, c, peer, crate::tls::DEFAULT_HANDSHAKE_TIMEOUT)
                        .await
                        .map_err(io::Error::other)
                })
                .map_err(|e| NcRunError::Failed(e.to_string()))?;
            session::run_on(
                &rt,
                Link::TlsServer(Box::new(s)),
                input(a, true),
                Output::Stdout,
                &popts,
            )
            .map_err(crate::session::StreamError::from)?;
        }
    }
    Ok(0)
}

/// `-k`: peers at once (sockit's hub: each peer's bytes to stdout, stdin
/// lines to every peer), or a program per peer.
fn many(
    a: &NcArgs,
    bound: Bound,
    prog: Option<Program>,
    tls: Option<crate::tls::ServerTls>,
) -> Result<u8, NcRunError> {
    let failed = |e: io::Error| NcRunError::Failed(say::strerror(&e));
    match &bound {
        Bound::Tcp(l) => l.set_nonblocking(true).map_err(failed)?,
        Bound::Unix(b) => b.listener.set_nonblocking(true).map_err(failed)?,
    }
    let verbose = a.verbose > 0;
    let numeric = a.numeric;
    let notice = Notice(Arc::new(move |p: &crate::listener::Peer| {
        if !verbose {
            return;
        }
        match p.addr {
            Some(addr) => {
                let fake = NcArgs {
                    numeric,
                    ..NcArgs::default()
                };
                eprintln!(
                    "Connection received on {} {}",
                    shown_host(&fake, addr.ip()),
                    addr.port()
                );
            }
            None => eprintln!(
                "Connection received on {}",
                p.local.trim_start_matches("unix:")
            ),
        }
    }));
    if let Some(p) = prog {
        let listen = match &bound {
            Bound::Tcp(l) => crate::forward::Listen::Tcp(crate::net::BindAddr {
                host: l.local_addr().ok().map(|a| a.ip().to_string()),
                port: l.local_addr().map(|a| a.port()).unwrap_or(0),
            }),
            Bound::Unix(b) => crate::forward::Listen::Unix(b.addr.clone()),
        };
        let mut o =
            crate::forward::ForwardOptions::new(listen, vec![crate::forward::Target::program(p)]);
        o.tls = tls;
        let rt = session::runtime().map_err(failed)?;
        rt.block_on(async move {
            let stop = CancellationToken::new();
            let on_signal = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_signal.cancel();
                }
            });
            crate::forward::serve_bound(bound, o, stop).await
        })
        .map_err(|e| NcRunError::Failed(e.to_string()))?;
        return Ok(0);
    }
    let opts = ServerOptions {
        mode: Mode::Hub,
        tls,
        notice: Some(notice),
        ..ServerOptions::default()
    };
    crate::peers::run_stdio(bound, opts).map_err(failed)?;
    Ok(0)
}

/// A connected stream for a program.
enum Conn {
    Tcp(TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// `-e`/`-c`: the program's stdin and stdout joined to the connection
/// until both ways are done.
fn with_program(c: Conn, p: &Program, peer: &str) -> Result<(), NcRunError> {
    let failed = |e: io::Error| NcRunError::Failed(say::strerror(&e));
    let rt = session::runtime().map_err(failed)?;
    rt.block_on(async {
        let (mut sock, env) = match c {
            Conn::Tcp(s) => {
                s.set_nonblocking(true)?;
                let env = ConnEnv {
                    proto: "tcp",
                    peer: peer.to_string(),
                    peer_addr: s.peer_addr().ok(),
                    peer_cred: None,
                    local: s
                        .local_addr()
                        .map(crate::net::show_addr)
                        .unwrap_or_default(),
                    local_addr: s.local_addr().ok(),
                };
                (Endpoint::Tcp(tokio::net::TcpStream::from_std(s)?), env)
            }
            Conn::Unix(s) => {
                s.set_nonblocking(true)?;
                let env = ConnEnv {
                    proto: "unix",
                    peer: peer.to_string(),
                    peer_addr: None,
                    peer_cred: unix::peer_cred(&s),
                    local: String::new(),
                    local_addr: None,
                };
                (Endpoint::Unix(tokio::net::UnixStream::from_std(s)?), env)
            }
        };
        let mut kid = Endpoint::Child(Box::new(child::spawn(p, &env)?));
        let (stop, pipes) = (CancellationToken::new(), PipePool::new());
        let pumped = relay::pump(&mut sock, &mut kid, None, &stop, &pipes, None).await;
        drop(sock);
        if let Some(c) = kid.child() {
            let _ = c.finish(!matches!(pumped.end, relay::End::Done)).await;
        }
        Ok::<_, io::Error>(())
    })
    .map_err(failed)
}

/// `nc -U PATH` and `nc -lU PATH`.
pub(super) fn unix(a: &NcArgs) -> Result<u8, NcRunError> {
    let path = &a.operands[0];
    let addr = UnixAddr::parse(path).map_err(|e| NcError::Usage(e.to_string()))?;
    let prog = program(a)?;
    if !a.listen {
        let limit = a.timeout.unwrap_or(Duration::from_secs(10));
        let s = crate::dial::unix(&addr, limit).map_err(|why| {
            let why = match why.as_str() {
                "does not exist" => "No such file or directory".to_string(),
                w if w.starts_with("refused") => "Connection refused".to_string(),
                w => w.to_string(),
            };
            NcRunError::Failed(format!("{path}: {why}"))
        })?;
        if a.scan {
            return Ok(0);
        }
        if let Some(p) = &prog {
            with_program(Conn::Unix(s), p, path)?;
            return Ok(0);
        }
        session::run(
            Link::Plain(Sock::Unix(s)),
            input(a, true),
            Output::Stdout,
            &pipe_options(a),
        )
        .map_err(crate::session::StreamError::from)?;
        return Ok(0);
    }
    let b = unix::bind(&addr).map_err(|e| NcRunError::Failed(e.to_string()))?;
    if a.verbose > 0 {
        eprintln!("Bound on {path}");
        eprintln!("Listening on {path}");
    }
    if a.keep {
        return many(a, Bound::Unix(Arc::new(b)), prog, None);
    }
    let (c, _) = loop {
        match b.listener.accept() {
            Ok(x) => break x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(NcRunError::Failed(format!("accept: {}", say::strerror(&e)))),
        }
    };
    drop(b);
    if a.verbose > 0 {
        eprintln!("Connection received on {path}");
    }
    if let Some(p) = &prog {
        with_program(Conn::Unix(c), p, path)?;
        return Ok(0);
    }
    session::run(
        Link::Plain(Sock::Unix(c)),
        input(a, true),
        Output::Stdout,
        &pipe_options(a),
    )
    .map_err(crate::session::StreamError::from)?;
    Ok(0)
}
