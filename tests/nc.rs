//! `sockit nc` against netcat-openbsd, in pairs: every case of nc(1)'s
//! CLIENT/SERVER MODEL, DATA TRANSFER, TALKING TO SERVERS, PORT SCANNING
//! and EXAMPLES sections runs under `nc` and under `sockit nc` against the
//! same peer, and what each printed (stdout, stderr, exit code) and what
//! the peer saw are compared. The differences on purpose (README, "sockit
//! nc") each have a test of their own at the end.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use util::*;

/// The two netcats.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Nc {
    Real,
    Sockit,
}

const BOTH: [Nc; 2] = [Nc::Real, Nc::Sockit];

impl Nc {
    fn cmd(self, args: &[&str]) -> Command {
        let mut c = match self {
            Nc::Real => Command::new("nc"),
            Nc::Sockit => {
                let mut c = Command::new(bin());
                c.arg("nc");
                c
            }
        };
        c.args(args);
        c
    }

    /// Runs to the end with `input` on stdin.
    fn run(self, args: &[&str], input: &[u8]) -> Seen {
        let mut p = spawn(&mut self.cmd(args), Stdio::piped(), None);
        let mut stdin = p.stdin.take().unwrap();
        let data = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        Seen::of(p.finish())
    }

    fn start(self, args: &[&str], stdin: Stdio) -> Proc {
        spawn(&mut self.cmd(args), stdin, None)
    }
}

/// What one netcat showed: stdout, stderr with port numbers made `N`, and
/// the exit code.
#[derive(Debug, PartialEq)]
struct Seen {
    stdout: Vec<u8>,
    stderr: String,
    code: i32,
}

impl Seen {
    fn of(f: Finished) -> Seen {
        let code = f.code();
        Seen {
            stdout: f.stdout,
            stderr: ports_as_n(&f.stderr),
            code,
        }
    }
}

/// Ephemeral port numbers (four digits or more) differ between runs.
fn ports_as_n(s: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in s.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 4 {
            out.push('N');
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

/// Whether the pair can run here (nc installed; a failure under
/// `SOCKIT_REQUIRE_PEERS=1`).
fn have_nc() -> bool {
    have_tool("nc")
}

/// The port in `Listening on HOST PORT` (or `Bound on`), from `-v`.
fn nc_port(p: &Proc) -> u16 {
    let out = p.stderr.wait_until("a Listening/Bound line", |b| {
        String::from_utf8_lossy(b).lines().any(|l| {
            (l.starts_with("Listening on ") || l.starts_with("Bound on "))
                && l.split(' ').count() == 4
        }) && b.ends_with(b"\n")
    });
    let text = String::from_utf8_lossy(&out).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("Listening on ") || l.starts_with("Bound on "))
        .unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A peer that accepts one connection, sends `greeting`, then records
/// what the client sends until it closes (or `quiet` passes without a
/// byte), and closes.
fn peer_once(greeting: &'static [u8]) -> (SocketAddr, JoinHandle<(Vec<u8>, SocketAddr)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut c, from) = l.accept().unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(greeting).unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        (got, from)
    });
    (addr, h)
}

// CLIENT/SERVER MODEL: `nc -l 1234` and `nc -N 127.0.0.1 1234`.

#[test]
fn client_server_the_client_side() {
    if !have_nc() {
        return;
    }
    let mut seen = Vec::new();
    for nc in BOTH {
        let (addr, peer) = peer_once(b"typed at the server\n");
        let port = addr.port().to_string();
        let s = nc.run(&["-N", "127.0.0.1", &port], b"typed at the client\n");
        let (got, _) = peer.join().unwrap();
        assert_eq!(got, b"typed at the client\n", "{nc:?}: {s:?}");
        seen.push(s);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1].stdout, b"typed at the server\n");
    assert_eq!(seen[1].code, 0);
}

#[test]
fn client_server_the_listening_side() {
    if !have_nc() {
        return;
    }
    let mut seen = Vec::new();
    for nc in BOTH {
        let mut l = nc.start(&["-l", "-v", "-n", "127.0.0.1", "0"], Stdio::piped());
        let port = nc_port(&l);
        let mut c = connect(SocketAddr::from(([127, 0, 0, 1], port)));
        l.send(b"typed at the server\n");
        l.close_stdin();
        c.write_all(b"typed at the client\n").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut c), b"typed at the server\n", "{nc:?}");
        seen.push(Seen::of(l.finish()));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1].stdout, b"typed at the client\n");
    assert_eq!(
        seen[1].stderr,
        "Listening on 127.0.0.1 N\nConnection received on 127.0.0.1 N\n"
    );
}

// DATA TRANSFER: `nc -l 1234 > filename.out` and `nc -N host 1234 < filename.in`.

#[test]
fn data_transfer_both_ends() {
    if !have_nc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("filename.in");
    std::fs::write(&src, random_bytes(3 << 20, 5)).unwrap();
    for nc in BOTH {
        // The receiving end: nc -l > filename.out.
        let out = dir.path().join(format!("{nc:?}.out"));
        let l = spawn(
            &mut nc.cmd(&["-l", "-v", "-n", "127.0.0.1", "0"]),
            Stdio::null(),
            Some(Stdio::from(std::fs::File::create(&out).unwrap())),
        );
        let port = nc_port(&l);
        let mut c = connect(SocketAddr::from(([127, 0, 0, 1], port)));
        c.write_all(&std::fs::read(&src).unwrap()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut c), b"");
        let f = l.finish();
        assert_eq!(f.code(), 0, "{nc:?}: {}", f.stderr);
        assert_eq!(hash_file(&out), hash_file(&src), "{nc:?}");
        // The sending end: nc -N host port < filename.in.
        let (addr, peer) = peer_once(b"");
        let f = spawn(
            &mut nc.cmd(&["-N", "127.0.0.1", &addr.port().to_string()]),
            Stdio::from(std::fs::File::open(&src).unwrap()),
            None,
        )
        .finish();
        assert_eq!(f.code(), 0, "{nc:?}: {}", f.stderr);
        assert!(
            f.stdout.is_empty() && f.stderr.is_empty(),
            "{nc:?}: {}",
            f.stderr
        );
        let (got, _) = peer.join().unwrap();
        assert_eq!(got.len(), 3 << 20, "{nc:?}");
        assert_eq!(got, std::fs::read(&src).unwrap(), "{nc:?}");
    }
}

// TALKING TO SERVERS: `printf "GET / HTTP/1.0\r\n\r\n" | nc host 80` and
// the SMTP conversation with `-C`.

#[test]
fn talking_to_a_web_server() {
    if !have_nc() {
        return;
    }
    let mut seen = Vec::new();
    for nc in BOTH {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.set_read_timeout(Some(WAIT)).unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 256];
            while !req.ends_with(b"\r\n\r\n") {
                let n = c.read(&mut b).unwrap();
                assert!(n > 0, "the request ended early");
                req.extend_from_slice(&b[..n]);
            }
            c.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nthe home page\n")
                .unwrap();
            req
        });
        let s = nc.run(&["127.0.0.1", &port], b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(server.join().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
        seen.push(s);
    }
    assert_eq!(seen[0], seen[1]);
    assert!(seen[1].stdout.starts_with(b"HTTP/1.0 200 OK\r\n"));
    assert_eq!(seen[1].code, 0);
}

/// A small SMTP server: a greeting, `250` for each line, `221` for QUIT;
/// returns what it was sent.
fn smtp_server() -> (String, JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let h = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"220 localhost ESMTP test\r\n").unwrap();
        let mut got = Vec::new();
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        let mut in_data = false;
        // Bounded by the read timeout and the client's end.
        while c.read(&mut b).unwrap_or(0) == 1 {
            got.push(b[0]);
            line.push(b[0]);
            if b[0] != b'\n' {
                continue;
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            line.clear();
            let reply: &[u8] = if in_data {
                if text == "." {
                    in_data = false;
                    b"250 queued\r\n"
                } else {
                    continue;
                }
            } else if text == "DATA" {
                in_data = true;
                b"354 go ahead\r\n"
            } else if text == "QUIT" {
                c.write_all(b"221 bye\r\n").unwrap();
                break;
            } else {
                b"250 ok\r\n"
            };
            c.write_all(reply).unwrap();
        }
        got
    });
    (port, h)
}

#[test]
fn talking_to_a_mail_server_with_crlf() {
    if !have_nc() {
        return;
    }
    let mail = b"HELO host.example.com\nMAIL FROM:<user@host.example.com>\nRCPT TO:<user2@host.example.com>\nDATA\nBody of email.\n.\nQUIT\n";
    let mut seen = Vec::new();
    for nc in BOTH {
        let (port, server) = smtp_server();
        let s = nc.run(&["-C", "127.0.0.1", &port], mail);
        let got = server.join().unwrap();
        // -C: every line reached the server ending in CRLF.
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(mail).replace('\n', "\r\n"),
            "{nc:?}"
        );
        seen.push(s);
    }
    assert_eq!(seen[0], seen[1]);
    assert!(seen[1].stdout.ends_with(b"221 bye\r\n"));
}

// PORT SCANNING: `nc -zv host 20-30`, `nc -zv host http 20 22-23`, and
// banners with `echo QUIT | nc host 20-30`.

/// Three ports in a row, the first and last listening, the middle one closed.
fn three_ports() -> (u16, Vec<TcpListener>) {
    // Bounded: a few hundred tries to find three free ports in a row.
    for _ in 0..500 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p > 65533 {
            continue;
        }
        let mid = TcpListener::bind(("127.0.0.1", p + 1));
        let c = TcpListener::bind(("127.0.0.1", p + 2));
        if let (Ok(mid), Ok(c)) = (mid, c) {
            drop(mid);
            return (p, vec![a, c]);
        }
    }
    panic!("no three free ports in a row");
}

#[test]
fn port_scanning_a_range_and_a_list() {
    if !have_nc() {
        return;
    }
    let (p, _held) = three_ports();
    let range = format!("{}-{}", p, p + 2);
    let (a, b, c) = (p.to_string(), (p + 1).to_string(), (p + 2).to_string());
    for args in [
        vec!["-zv", "-n", "127.0.0.1", range.as_str()],
        vec!["-zv", "127.0.0.1", b.as_str(), a.as_str(), c.as_str()],
        vec!["-z", "127.0.0.1", range.as_str()],
    ] {
        let real = Nc::Real.run(&args, b"");
        let ours = Nc::Sockit.run(&args, b"");
        assert_eq!(real, ours, "{args:?}");
        assert_eq!(ours.code, 0);
    }
    // The order is the order given, and a closed port is named with -v.
    let s = Nc::Sockit.run(&["-zv", "-n", "127.0.0.1", &b, &a], b"");
    let lines: Vec<&str> = s.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", s.stderr);
    assert!(
        lines[0].starts_with("nc: connect to 127.0.0.1 port N (tcp) failed: Connection refused")
    );
    assert!(lines[1].starts_with("Connection to 127.0.0.1 N port [tcp/"));
}

#[test]
fn port_scanning_exits_1_when_every_port_is_closed() {
    if !have_nc() {
        return;
    }
    let closed = free_port().to_string();
    for args in [
        vec!["-z", "127.0.0.1", closed.as_str()],
        vec!["-zv", "127.0.0.1", closed.as_str()],
    ] {
        let real = Nc::Real.run(&args, b"");
        let ours = Nc::Sockit.run(&args, b"");
        assert_eq!(real, ours, "{args:?}");
        assert_eq!(ours.code, 1);
    }
}

#[test]
fn banners_from_a_range_of_ports() {
    if !have_nc() {
        return;
    }
    let mut seen = Vec::new();
    for nc in BOTH {
        let (p, held) = three_ports();
        let banners: Vec<JoinHandle<()>> = held
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                std::thread::spawn(move || {
                    let (mut c, _) = l.accept().unwrap();
                    c.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                    let banner = format!("220 banner {i}\r\n");
                    c.write_all(banner.as_bytes()).unwrap();
                    let mut b = [0u8; 64];
                    let _ = c.read(&mut b);
                })
            })
            .collect();
        let range = format!("{}-{}", p, p + 2);
        seen.push(nc.run(&["127.0.0.1", &range], b"QUIT\n"));
        for b in banners {
            b.join().unwrap();
        }
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1].stdout, b"220 banner 0\r\n220 banner 1\r\n");
}

// EXAMPLES.

#[test]
fn a_source_port_and_a_timeout() {
    if !have_nc() {
        return;
    }
    for nc in BOTH {
        let (addr, peer) = peer_once(b"");
        let source = free_port();
        let s = nc.run(
            &[
                "-N",
                "-p",
                &source.to_string(),
                "-w",
                "5",
                "127.0.0.1",
                &addr.port().to_string(),
            ],
            b"42\n",
        );
        let (got, from) = peer.join().unwrap();
        assert_eq!(s.code, 0, "{nc:?}: {}", s.stderr);
        assert_eq!(from.port(), source, "{nc:?}");
        assert_eq!(got, b"42\n");
    }
}

#[test]
fn a_source_address() {
    if !have_nc() {
        return;
    }
    for nc in BOTH {
        let (addr, peer) = peer_once(b"");
        let s = nc.run(
            &[
                "-N",
                "-s",
                "127.0.0.2",
                "127.0.0.1",
                &addr.port().to_string(),
            ],
            b"hi\n",
        );
        let (_, from) = peer.join().unwrap();
        assert_eq!(s.code, 0, "{nc:?}: {}", s.stderr);
        assert_eq!(from.ip().to_string(), "127.0.0.2", "{nc:?}");
    }
}

#[test]
fn a_udp_connection() {
    if !have_nc() {
        return;
    }
    let mut seen = Vec::new();
    for nc in BOTH {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(WAIT)).unwrap();
        let port = u.local_addr().unwrap().port().to_string();
        let mut p = nc.start(&["-u", "127.0.0.1", &port], Stdio::piped());
        p.send(b"query one\n");
        let mut b = [0u8; 1500];
        let (n, from) = u.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"query one\n", "{nc:?}");
        u.send_to(b"answer one\n", from).unwrap();
        p.out().wait_for("answer one\n");
        // It keeps waiting for more, as nc does (the example has no -q).
        std::thread::sleep(Duration::from_millis(300));
        assert!(p.child.try_wait().unwrap().is_none(), "{nc:?} exited");
        let out = p.out().bytes();
        p.kill();
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn a_unix_domain_listener() {
    if !have_nc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for nc in BOTH {
        let path = dir.path().join(format!("{nc:?}.sock"));
        let path_s = path.to_str().unwrap().to_string();
        let mut l = nc.start(&["-lvU", &path_s], Stdio::piped());
        l.stderr.wait_line("Listening on");
        let mut c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"over a unix socket\n").unwrap();
        l.send(b"and back\n");
        l.close_stdin();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"and back\n", "{nc:?}");
        let f = l.finish();
        let code = f.code();
        seen.push((f.stdout, f.stderr.replace(&path_s, "PATH"), code));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(
        seen[1].1,
        "Bound on PATH\nListening on PATH\nConnection received on PATH\n"
    );
}

/// `sockit proxy` as the HTTP CONNECT proxy both netcats go through.
fn connect_proxy(extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["proxy", "127.0.0.1:0", "--allow-dest", "127.0.0.0/8"];
    args.extend_from_slice(extra);
    let p = sockit_noinput(&args);
    let port = p.listening().port();
    (p, port)
}

#[test]
fn through_an_http_proxy() {
    if !have_nc() {
        return;
    }
    let (proxy, pport) = connect_proxy(&[]);
    let mut seen = Vec::new();
    for nc in BOTH {
        let (addr, peer) = peer_once(b"hello through the proxy\n");
        let x = format!("-x127.0.0.1:{pport}");
        let s = nc.run(
            &[&x, "-Xconnect", "-N", "127.0.0.1", &addr.port().to_string()],
            b"hi\n",
        );
        let (got, _) = peer.join().unwrap();
        assert_eq!(got, b"hi\n", "{nc:?}: {}", s.stderr);
        seen.push(s);
    }
    proxy.kill();
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1].stdout, b"hello through the proxy\n");
}

#[test]
fn through_an_http_proxy_with_a_password_asked_on_the_terminal() {
    if !have_nc() || !have_tool("python3") {
        return;
    }
    let (proxy, pport) = connect_proxy(&["--auth", "ruser:secret"]);
    let mut seen = Vec::new();
    for nc in BOTH {
        let (addr, peer) = peer_once(b"hello through the proxy\n");
        let x = format!("-x127.0.0.1:{pport}");
        let port = addr.port().to_string();
        let mut argv: Vec<String> = vec![
            "--answer".into(),
            "secret".into(),
            "password for ruser@127.0.0.1: ".into(),
            "--eof-after".into(),
            "hello through the proxy".into(),
        ];
        match nc {
            Nc::Real => argv.push("nc".into()),
            Nc::Sockit => {
                argv.push(bin().to_str().unwrap().into());
                argv.push("nc".into());
            }
        }
        for a in [
            x.as_str(),
            "-Xconnect",
            "-Pruser",
            "-q",
            "0",
            "127.0.0.1",
            &port,
        ] {
            argv.push(a.into());
        }
        let argv: Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
        let shown = python_peer("on_tty.py", &argv);
        let (_, _) = peer.join().unwrap();
        seen.push(shown.replace("\r\n", "\n"));
    }
    proxy.kill();
    assert_eq!(seen[0], seen[1]);
    assert!(
        seen[1].starts_with("Proxy password for ruser@127.0.0.1: "),
        "{}",
        seen[1]
    );
    assert!(seen[1].contains("hello through the proxy"), "{}", seen[1]);
}

// sockit nc's own flags, and where it differs from nc on purpose.

#[test]
fn unsupported_flags_are_named_and_exit_2() {
    for (flag, what) in [
        ("-F", "passing the socket"),
        ("-S", "MD5"),
        ("-t", "telnet"),
        ("-Z", "DCCP"),
    ] {
        let s = Nc::Sockit.run(&[flag, "127.0.0.1", "9"], b"");
        assert_eq!(s.code, 2, "{flag}");
        assert!(
            s.stderr.contains(flag) && s.stderr.contains(what),
            "{}",
            s.stderr
        );
        assert_eq!(s.stderr.lines().count(), 1, "{}", s.stderr);
    }
    // A usage error is 2 (nc says 1), with nc's own words.
    let s = Nc::Sockit.run(&["-l", "-z", "80"], b"");
    assert_eq!(
        (s.code, s.stderr.as_str()),
        (2, "nc: cannot use -z and -l\n")
    );
    if have_nc() {
        let real = Nc::Real.run(&["-l", "-z", "80"], b"");
        assert_eq!(
            (real.code, real.stderr.as_str()),
            (1, "nc: cannot use -z and -l\n")
        );
    }
}

#[test]
fn a_lost_upload_is_exit_1_where_nc_says_0() {
    if !have_nc() {
        return;
    }
    for nc in BOTH {
        // A peer that reads a little and resets.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        let peer = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 1000];
            let _ = c.read_exact(&mut b);
            let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
        });
        let data = random_bytes(8 << 20, 1);
        let s = nc.run(&["-N", "127.0.0.1", &port], &data);
        peer.join().unwrap();
        match nc {
            Nc::Real => assert_eq!(s.code, 0, "{}", s.stderr),
            Nc::Sockit => {
                assert_eq!(s.code, 1, "{}", s.stderr);
                assert!(s.stderr.starts_with("nc: "), "{}", s.stderr);
                assert!(s.stderr.contains("stopped reading"), "{}", s.stderr);
            }
        }
    }
}

#[test]
fn a_unix_listener_removes_its_socket_file_where_nc_leaves_it() {
    if !have_nc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for nc in BOTH {
        let path = dir.path().join(format!("{nc:?}.sock"));
        let l = nc.start(&["-lvU", path.to_str().unwrap()], Stdio::null());
        l.stderr.wait_line("Listening on");
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(b"x").unwrap();
        drop(c);
        let f = l.finish();
        assert_eq!(f.code(), 0, "{nc:?}: {}", f.stderr);
        assert_eq!(path.exists(), nc == Nc::Real, "{nc:?}");
    }
    // And a stale socket file left by nc is replaced, not refused.
    let stale = dir.path().join("Real.sock");
    assert!(stale.exists());
    let l = Nc::Sockit.start(&["-lvU", stale.to_str().unwrap()], Stdio::null());
    l.stderr.wait_line("Listening on");
    drop(UnixStream::connect(&stale).unwrap());
    assert_eq!(l.finish().code(), 0);
    let _ = UnixListener::bind(dir.path().join("unused"));
}

#[test]
fn keep_listening_serves_peers_at_once() {
    let l = Nc::Sockit.start(&["-lkv", "-n", "127.0.0.1", "0"], Stdio::null());
    let port = nc_port(&l);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Two peers connected at the same time are both served (nc would
    // take the second only after the first left).
    let mut a = connect(addr);
    let mut b = connect(addr);
    a.write_all(b"from a\n").unwrap();
    b.write_all(b"from b\n").unwrap();
    l.out().wait_for("from a\n");
    l.out().wait_for("from b\n");
    l.stderr.wait_for("Connection received on 127.0.0.1");
    drop((a, b));
    l.interrupt();
}

#[test]
fn exec_runs_a_program_per_connection_as_ncat_does() {
    if !have_tool("ncat") {
        return;
    }
    let mut seen = Vec::new();
    for who in ["ncat", "sockit"] {
        let mut cmd = if who == "ncat" {
            Command::new("ncat")
        } else {
            let mut c = Command::new(bin());
            c.arg("nc");
            c
        };
        let port = free_port().to_string();
        cmd.args(["-l", "127.0.0.1", &port, "-e", "/bin/cat"]);
        let server = spawn(&mut cmd, Stdio::null(), None);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + WAIT;
        let mut c = loop {
            match TcpStream::connect(addr) {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("{who} never listened: {e}"),
            }
        };
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"shout this\n").unwrap();
        // One line back, then the client leaves (ncat -e ends the program
        // at the client's half-close, before its answer).
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while !got.ends_with(b"\n") && c.read(&mut b).unwrap_or(0) == 1 {
            got.push(b[0]);
        }
        drop(c);
        seen.push(got);
        let f = server.finish();
        assert_eq!(f.code(), 0, "{who}: {}", f.stderr);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], b"shout this\n");
}

#[test]
fn the_binary_run_as_nc_is_sockit_nc() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("nc");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let closed = free_port().to_string();
    let f = spawn(
        Command::new(&link).args(["-zv", "127.0.0.1", &closed]),
        Stdio::null(),
        None,
    )
    .finish();
    assert_eq!(f.code(), 1);
    assert!(
        f.stderr.starts_with("nc: connect to 127.0.0.1 port"),
        "{}",
        f.stderr
    );
    let (addr, peer) = peer_once(b"");
    let f = spawn(
        Command::new(&link).args(["-N", "127.0.0.1", &addr.port().to_string()]),
        Stdio::piped(),
        None,
    )
    .finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    drop(peer.join());
}

#[test]
fn udp_verbose_sends_no_probes_where_nc_sends_xs() {
    if !have_nc() {
        return;
    }
    for nc in BOTH {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(WAIT)).unwrap();
        let port = u.local_addr().unwrap().port().to_string();
        let mut p = nc.start(&["-u", "-v", "127.0.0.1", &port], Stdio::piped());
        p.send(b"data\n");
        let mut b = [0u8; 1500];
        let mut got = Vec::new();
        // Bounded: nc sends five probes, then the data.
        for _ in 0..10 {
            let (n, _) = u.recv_from(&mut b).unwrap();
            got.push(b[..n].to_vec());
            if &b[..n] == b"data\n" {
                break;
            }
        }
        p.kill();
        let probes = got.iter().filter(|d| d.as_slice() == b"X").count();
        match nc {
            Nc::Real => assert!(probes > 0, "{got:?}"),
            Nc::Sockit => assert_eq!(got, vec![b"data\n".to_vec()]),
        }
    }
}

#[test]
fn a_name_that_can_only_be_a_mistake_is_not_looked_up() {
    // Only sockit's side: nc would send this name to the DNS server.
    let s = Nc::Sockit.run(&["-z", "300.1.1.1", "80"], b"");
    assert_eq!(s.code, 1);
    assert_eq!(
        s.stderr,
        "nc: getaddrinfo for host \"300.1.1.1\" port 80: Name or service not known\n"
    );
}

#[test]
fn a_program_finishes_its_answer_after_the_clients_half_close() {
    if !have_tool("ncat") {
        return;
    }
    for who in ["ncat", "sockit"] {
        let mut cmd = if who == "ncat" {
            Command::new("ncat")
        } else {
            let mut c = Command::new(bin());
            c.arg("nc");
            c
        };
        let port = free_port().to_string();
        // tr answers only at the end of its input.
        cmd.args(["-l", "127.0.0.1", &port, "-e", "/usr/bin/tr a-z A-Z"]);
        let server = spawn(&mut cmd, Stdio::null(), None);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + WAIT;
        let mut c = loop {
            match TcpStream::connect(addr) {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("{who} never listened: {e}"),
            }
        };
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"shout this\n").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let got = read_to_end(&mut c);
        match who {
            "ncat" => assert_eq!(got, b""),
            _ => assert_eq!(got, b"SHOUT THIS\n"),
        }
        server.kill();
    }
}
