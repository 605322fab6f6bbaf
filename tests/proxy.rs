//! Proxies (issue 16): sockit's `--proxy` client against microsocks,
//! tinyproxy and its own server; `sockit proxy` against curl, nc and ncat;
//! chains; and the bad inputs a proxy must survive. Everything on loopback;
//! tests pass `--allow-dest 127.0.0.0/8`, since the proxy refuses loopback
//! destinations by default.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use util::*;

/// A target that speaks first (like an ssh server's banner), then echoes
/// one line, then closes: a tunnel must lose none of the banner.
fn speaks_first() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(32) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(WAIT));
                let _ = s.write_all(b"SSH-2.0-sockit-test banner\r\n");
                let mut line = Vec::new();
                let mut b = [0u8; 1];
                while line.len() < 1000 && s.read(&mut b).map(|n| n == 1).unwrap_or(false) {
                    line.push(b[0]);
                    if b[0] == b'\n' {
                        break;
                    }
                }
                let _ = s.write_all(b"echo: ");
                let _ = s.write_all(&line);
            });
        }
    });
    addr
}

/// `sockit proxy` on a free loopback port, allowed to reach loopback.
fn proxy(extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["-v", "proxy", "127.0.0.1:0", "--allow-dest", "127.0.0.0/8"];
    args.extend_from_slice(extra);
    let p = sockit_noinput(&args);
    let addr = p.listening();
    (p, addr)
}

/// `tcp connect` to `target` through `proxies`, sending `input`.
fn connect_via(target: SocketAddr, proxies: &[String], input: &[u8]) -> Finished {
    let (h, p) = (target.ip().to_string(), target.port().to_string());
    let mut args = vec!["tcp", "connect", h.as_str(), p.as_str()];
    for x in proxies {
        args.push("--proxy");
        args.push(x);
    }
    run(&args, input)
}

/// `tcp connect` through `proxies` with stdin kept open until the echo
/// is back: for proxies (microsocks) that drop a tunnel at the first FIN.
fn converse(target: SocketAddr, proxies: &[String]) {
    let (h, p) = (target.ip().to_string(), target.port().to_string());
    let mut args = vec!["tcp", "connect", h.as_str(), p.as_str()];
    for x in proxies {
        args.push("--proxy");
        args.push(x);
    }
    let mut c = sockit(&args);
    c.send(b"hello\n");
    let out = c.out().wait_for("echo: hello\n");
    assert_eq!(out, "SSH-2.0-sockit-test banner\r\necho: hello\n");
}

fn banner_and_echo(f: &Finished) {
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(
        String::from_utf8_lossy(&f.stdout),
        "SSH-2.0-sockit-test banner\r\necho: hello\n"
    );
}

#[test]
fn through_sockit_proxy_in_every_protocol_the_banner_is_kept() {
    let target = speaks_first();
    let (_p, addr) = proxy(&[]);
    for scheme in ["socks5h", "socks5", "socks4a", "socks4", "http"] {
        let f = connect_via(target, &[format!("{scheme}://{addr}")], b"hello\n");
        banner_and_echo(&f);
    }
}

#[test]
fn a_chain_of_two_proxies_reaches_a_target_that_speaks_first() {
    let target = speaks_first();
    let (_a, a) = proxy(&[]);
    let (_b, b) = proxy(&["--auth", "bob:pw2"]);
    let f = connect_via(
        target,
        &[format!("http://{a}"), format!("socks5h://bob:pw2@{b}")],
        b"hello\n",
    );
    banner_and_echo(&f);
    // The second hop's refusal names that hop.
    let f = connect_via(
        target,
        &[format!("http://{a}"), format!("socks5h://bob:nope@{b}")],
        b"",
    );
    assert_eq!(f.code(), 1);
    assert!(
        f.stderr.contains("proxy 2 of 2") && f.stderr.contains("refused the username and password"),
        "{}",
        f.stderr
    );
}

#[test]
fn credentials_from_the_url_or_a_file_and_wrong_ones_refused() {
    let target = speaks_first();
    let (p, addr) = proxy(&["--auth", "al:s3cret"]);
    banner_and_echo(&connect_via(
        target,
        &[format!("socks5h://al:s3cret@{addr}")],
        b"hello\n",
    ));
    banner_and_echo(&connect_via(
        target,
        &[format!("http://al:s3cret@{addr}")],
        b"hello\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth");
    std::fs::write(&file, "al:s3cret\n").unwrap();
    let (h, port) = (target.ip().to_string(), target.port().to_string());
    let f = run(
        &[
            "tcp",
            "connect",
            &h,
            &port,
            "--proxy",
            &format!("socks5h://{addr}"),
            "--proxy-auth-file",
            file.to_str().unwrap(),
        ],
        b"hello\n",
    );
    banner_and_echo(&f);
    for (url, said) in [
        (
            format!("socks5h://al:wrong@{addr}"),
            "refused the username and password",
        ),
        (
            format!("socks5h://{addr}"),
            "asks for a username and password",
        ),
        (
            format!("http://al:wrong@{addr}"),
            "refused the username and password",
        ),
        (format!("http://{addr}"), "asks for a username and password"),
        (format!("socks4a://{addr}"), "SOCKS4 reply 91"),
    ] {
        let f = connect_via(target, std::slice::from_ref(&url), b"");
        assert_eq!(f.code(), 1, "{url}");
        assert!(f.stderr.contains(said), "{url}: {}", f.stderr);
        assert_eq!(f.stderr.lines().count(), 1, "one sentence: {}", f.stderr);
    }
    let log = p.stderr.wait_for("wrong HTTP proxy credentials");
    assert!(log.contains("wrong SOCKS5 username or password"), "{log}");
}

#[test]
fn destinations_on_loopback_are_refused_by_default() {
    let target = speaks_first();
    let p = sockit_noinput(&["proxy", "127.0.0.1:0"]);
    let addr = p.listening();
    let f = connect_via(target, &[format!("socks5h://{addr}")], b"");
    assert_eq!(f.code(), 1);
    assert!(
        f.stderr
            .contains("not allowed by the proxy's rules (SOCKS5 reply 2)"),
        "{}",
        f.stderr
    );
    let f = connect_via(target, &[format!("http://{addr}")], b"");
    assert!(f.stderr.contains("HTTP 403"), "{}", f.stderr);
    let log = p.stderr.wait_for("--allow-dest");
    assert!(log.contains("is loopback"), "{log}");
    // A --deny-dest wins over --allow-dest.
    let (_q, addr) = proxy(&["--deny-dest", &format!("{}/32", target.ip())]);
    let f = connect_via(target, &[format!("socks5://{addr}")], b"");
    assert!(f.stderr.contains("SOCKS5 reply 2"), "{}", f.stderr);
}

#[test]
fn a_refusing_destination_gets_the_right_code_and_status() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (_p, addr) = proxy(&[]);
    let f = connect_via(closed, &[format!("socks5h://{addr}")], b"");
    assert!(
        f.stderr.contains("connection refused (SOCKS5 reply 5)"),
        "{}",
        f.stderr
    );
    let f = connect_via(closed, &[format!("http://{addr}")], b"");
    assert!(f.stderr.contains("HTTP 502"), "{}", f.stderr);
    let f = connect_via(closed, &[format!("socks4://{addr}")], b"");
    assert!(f.stderr.contains("SOCKS4 reply 91"), "{}", f.stderr);
}

#[test]
fn a_destination_that_does_not_accept_times_out_with_the_right_code_and_status() {
    let (_full, slow) = slow_to_accept();
    let (p, addr) = proxy(&["--connect-timeout", "0.5", "-v"]);
    let started = Instant::now();
    let f = connect_via(slow, &[format!("socks5h://{addr}")], b"");
    assert!(
        f.stderr
            .contains("TTL expired (timed out) (SOCKS5 reply 6)"),
        "{}",
        f.stderr
    );
    let f = connect_via(slow, &[format!("http://{addr}")], b"");
    assert!(f.stderr.contains("HTTP 504"), "{}", f.stderr);
    let f = connect_via(slow, &[format!("socks4a://{addr}")], b"");
    assert!(f.stderr.contains("SOCKS4 reply 91"), "{}", f.stderr);
    // Three timeouts of half a second, not the client's own ten.
    assert!(started.elapsed() < Duration::from_secs(8));
    p.stderr
        .wait_for("the destination did not answer within 0.5 s");
}

/// A SOCKS5 UDP ASSOCIATE on `proxy` (no auth): the TCP connection that
/// holds it, and the relay's UDP address.
fn udp_associate(proxy: SocketAddr, from: SocketAddr) -> (TcpStream, SocketAddr) {
    let mut c = TcpStream::connect(proxy).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(&[5, 1, 0]).unwrap();
    let mut m = [0u8; 2];
    c.read_exact(&mut m).unwrap();
    assert_eq!(m, [5, 0]);
    let mut req = vec![5, 3, 0, 1];
    let SocketAddr::V4(f) = from else {
        panic!("IPv4 only")
    };
    req.extend_from_slice(&f.ip().octets());
    req.extend_from_slice(&f.port().to_be_bytes());
    c.write_all(&req).unwrap();
    let mut r = [0u8; 10];
    c.read_exact(&mut r).unwrap();
    assert_eq!(&r[..4], &[5, 0, 0, 1], "{r:?}");
    let relay = SocketAddr::from(([r[4], r[5], r[6], r[7]], u16::from_be_bytes([r[8], r[9]])));
    (c, relay)
}

/// `RSV RSV FRAG ATYP ADDR PORT DATA` to an IPv4 address.
fn udp_datagram(frag: u8, to: SocketAddr, data: &[u8]) -> Vec<u8> {
    let SocketAddr::V4(t) = to else {
        panic!("IPv4 only")
    };
    let mut d = vec![0, 0, frag, 1];
    d.extend_from_slice(&t.ip().octets());
    d.extend_from_slice(&t.port().to_be_bytes());
    d.extend_from_slice(data);
    d
}

#[test]
fn udp_associate_relays_datagrams_and_drops_what_it_must() {
    let echo = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--echo"]);
    let eaddr = echo.listening();
    let (p, addr) = proxy(&[]);
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(WAIT)).unwrap();
    let (ctrl, relay) = udp_associate(addr, u.local_addr().unwrap());
    assert_eq!(
        relay.ip(),
        addr.ip(),
        "bound where the client reached the proxy"
    );
    let mut buf = [0u8; 2048];
    // A fragment and a datagram from another port are dropped; the next
    // datagram's reply is the first one back.
    u.send_to(&udp_datagram(1, eaddr, b"fragment"), relay)
        .unwrap();
    let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    other
        .send_to(&udp_datagram(0, eaddr, b"stranger"), relay)
        .unwrap();
    for word in ["one", "two", "三"] {
        u.send_to(&udp_datagram(0, eaddr, word.as_bytes()), relay)
            .unwrap();
        let (n, from) = u.recv_from(&mut buf).unwrap();
        assert_eq!(from, relay);
        // The header names the echo server as the source.
        assert_eq!(
            &buf[..n],
            &udp_datagram(0, eaddr, word.as_bytes())[..],
            "{word}"
        );
    }
    // A name, resolved by the proxy (localhost is in /etc/hosts).
    let mut d = vec![0, 0, 0, 3, 9];
    d.extend_from_slice(b"localhost");
    d.extend_from_slice(&eaddr.port().to_be_bytes());
    d.extend_from_slice(b"by name");
    u.send_to(&d, relay).unwrap();
    let (n, _) = u.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &udp_datagram(0, eaddr, b"by name")[..]);
    // The association ends with its TCP connection, and says what it did.
    drop(ctrl);
    p.stderr
        .wait_for("ended: the client closed its TCP connection; 4 up");
    p.stderr
        .wait_for("2 dropped (2 not the client's or malformed");
    // Its port is closed: a connected socket hears the refusal.
    let gone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    gone.set_read_timeout(Some(WAIT)).unwrap();
    gone.connect(relay).unwrap();
    gone.send(&udp_datagram(0, eaddr, b"late")).unwrap();
    let r = gone.recv(&mut buf);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );
}

#[test]
fn udp_associate_keeps_the_destination_guard() {
    let echo = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--echo"]);
    let eaddr = echo.listening();
    // No --allow-dest: loopback destinations are refused, for UDP too.
    let p = sockit_noinput(&["-v", "proxy", "127.0.0.1:0", "--json"]);
    let addr = p.listening();
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ctrl, relay) = udp_associate(addr, u.local_addr().unwrap());
    u.send_to(&udp_datagram(0, eaddr, b"guarded"), relay)
        .unwrap();
    p.stderr.wait_for("not allowed");
    drop(ctrl);
    p.stderr.wait_for("1 to refused destinations");
    let out = p.stdout.as_ref().expect("captured");
    out.wait_for("\"protocol\":\"socks5-udp\"");
    out.wait_for("\"datagrams_up\":0");
}

#[test]
fn pysocks_sends_udp_through_sockit_proxy() {
    let Some(py) = python_with("socks", "python3-socks") else {
        return;
    };
    let echo = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--echo"]);
    let eaddr = echo.listening();
    let (_p, addr) = proxy(&[]);
    let out = Command::new(py)
        .arg(peer_script("pysocks_udp.py"))
        .args([
            &addr.ip().to_string(),
            &addr.port().to_string(),
            "127.0.0.1",
            &eaddr.port().to_string(),
            "你好",
            "hello",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = eaddr.port();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("你好 127.0.0.1 {port}\nhello 127.0.0.1 {port}\n")
    );
}

#[test]
fn the_wrong_protocol_is_named() {
    let target = speaks_first();
    // A server that is no proxy at all, spoken to as each kind.
    let f = connect_via(target, &[format!("http://{}", speaks_first())], b"");
    assert!(f.stderr.contains("is not an HTTP proxy"), "{}", f.stderr);
    let f = connect_via(target, &[format!("socks5://{}", speaks_first())], b"");
    assert!(f.stderr.contains("is not a SOCKS5 proxy"), "{}", f.stderr);
}

/// Runs a peer tool with `input` on its stdin (then closed)
/// and its stdout captured.
fn fed(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("piped").write_all(input)?;
            c.wait_with_output()
        })
        .expect("run the peer tool")
}

/// Raw bytes to the proxy; what it answers before closing (bounded).
fn raw(addr: SocketAddr, chunks: &[&[u8]]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    for c in chunks {
        if s.write_all(c).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.take(1 << 20).read_to_end(&mut out);
    out
}

#[test]
fn hostile_socks_inputs_get_the_protocol_answer_and_a_close() {
    let (p, addr) = proxy(&["--handshake-timeout", "1"]);
    // 255 methods, none of them "no auth": no acceptable method.
    let mut many = vec![5u8, 255];
    many.extend(std::iter::repeat_n(0x80u8, 255));
    assert_eq!(raw(addr, &[&many]), [5, 0xff]);
    // No methods at all.
    assert_eq!(raw(addr, &[&[5, 0]]), [5, 0xff]);
    // A domain name of length 0, and an unknown address type / command.
    assert_eq!(
        raw(addr, &[&[5, 1, 0], &[5, 1, 0, 3, 0, 0, 80]])[2..4],
        [5, 4]
    );
    assert_eq!(
        raw(addr, &[&[5, 1, 0], &[5, 1, 0, 9, 1, 2, 3, 4, 0, 80]])[2..4],
        [5, 8]
    );
    let bind = raw(addr, &[&[5, 1, 0], &[5, 2, 0, 1, 127, 0, 0, 1, 0, 80]]);
    assert_eq!(bind[2..4], [5, 7], "BIND: command not supported");
    let other = raw(addr, &[&[5, 1, 0], &[5, 9, 0, 1, 127, 0, 0, 1, 0, 80]]);
    assert_eq!(other[2..4], [5, 7], "command 9: not supported");
    // UDP ASSOCIATE with bytes pipelined after it: refused, not guessed at.
    let early = raw(
        addr,
        &[&[5, 1, 0], &[5, 3, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3]],
    );
    assert_eq!(early[2..4], [5, 1], "UDP ASSOCIATE with trailing bytes");
    // A name of 255 bytes is read whole; it does not resolve.
    let mut long = vec![5u8, 1, 0, 3, 255];
    long.extend(std::iter::repeat_n(b'x', 255));
    long.extend_from_slice(&[0, 80]);
    let r = raw(addr, &[&[5, 1, 0], &long]);
    assert_eq!(r[2..4], [5, 4], "host unreachable: {r:?}");
    // A greeting one byte at a time still works.
    let target = speaks_first();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = vec![5u8, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1];
    req.extend_from_slice(&target.port().to_be_bytes());
    for b in &req {
        s.write_all(&[*b]).unwrap();
        s.flush().unwrap();
    }
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[..2], [5, 0]);
    assert_eq!(reply[2..4], [5, 0]);
    // A client that stops halfway is closed by the handshake timeout.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&[5, 1]).unwrap();
    let t = Instant::now();
    let mut b = [0u8; 8];
    assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
    assert!(t.elapsed() >= Duration::from_millis(900));
    p.stderr.wait_for("did not finish its handshake in time");
    // Still serving.
    let f = connect_via(target, &[format!("socks5h://{addr}")], b"hello\n");
    banner_and_echo(&f);
}

#[test]
fn hostile_http_inputs_are_bounded_and_answered() {
    let (p, addr) = proxy(&["--handshake-timeout", "2"]);
    let status = |r: &[u8]| {
        String::from_utf8_lossy(r)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    // A request line of 1 MiB.
    let mut huge = b"GET http://h.test/".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    let r = raw(addr, &[&huge]);
    assert!(status(&r).starts_with("HTTP/1.1 431"), "{}", status(&r));
    // Headers that never end: bounded, 431, close.
    let mut endless = b"CONNECT a.test:80 HTTP/1.1\r\n".to_vec();
    for i in 0..2000 {
        endless.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    assert!(status(&raw(addr, &[&endless])).starts_with("HTTP/1.1 431"));
    // Ports 0 and 70000.
    for bad in [
        "CONNECT 127.0.0.1:0 HTTP/1.1\r\n\r\n",
        "CONNECT 127.0.0.1:70000 HTTP/1.1\r\n\r\n",
    ] {
        let r = raw(addr, &[bad.as_bytes()]);
        assert!(
            status(&r).starts_with("HTTP/1.1 400"),
            "{bad}: {}",
            status(&r)
        );
    }
    // Not a proxy request.
    assert!(status(&raw(addr, &[b"GET / HTTP/1.1\r\n\r\n"])).starts_with("HTTP/1.1 400"));
    // Garbage in the first byte.
    assert!(status(&raw(addr, &[b"\x16\x03\x01"])).starts_with("HTTP/1.1 400"));
    // Pipelined bytes right after CONNECT, before the reply, reach the target.
    let target = speaks_first();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: x\r\n\r\nhello\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("SSH-2.0-sockit-test banner\r\necho: hello\n"),
        "{text}"
    );
    let log = p.stderr.wait_for("answered 400");
    assert!(log.contains("431"), "{log}");
}

#[test]
fn tls_runs_end_to_end_through_the_tunnel_checked_against_the_target() {
    let cfg = tempfile::tempdir().unwrap();
    let server = spawn(
        Command::new(bin())
            .env("XDG_CONFIG_HOME", cfg.path())
            .args(["tcp", "listen", "127.0.0.1:0", "--tls", "--echo"]),
        std::process::Stdio::null(),
        None,
    );
    let target = server.listening();
    let line = server.stderr.wait_line("tls: certificate SHA256:");
    let pin = line
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap()
        .to_string();
    let (_p, addr) = proxy(&[]);
    let (h, port) = (target.ip().to_string(), target.port().to_string());
    let f = run(
        &[
            "tcp",
            "connect",
            &h,
            &port,
            "--tls",
            "--pin",
            &pin,
            "--proxy",
            &format!("socks5h://{addr}"),
        ],
        b"through the tunnel\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(String::from_utf8_lossy(&f.stdout), "through the tunnel\n");
    // The proxy saw only ciphertext: a wrong pin fails against the target.
    let f = run(
        &[
            "tcp",
            "connect",
            &h,
            &port,
            "--tls",
            "--pin",
            "SHA256:0000000000000000000000000000000000000000000000000000000000000000",
            "--proxy",
            &format!("http://{addr}"),
        ],
        b"",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
}

#[test]
fn get_ping_and_bench_go_through_the_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f.bin"), random_bytes(3 << 20, 7)).unwrap();
    let serve = sockit_noinput(&["serve", tmp.path().to_str().unwrap(), "-l", "127.0.0.1:0"]);
    let saddr = serve.listening().to_string();
    let (_p, addr) = proxy(&[]);
    let out = tmp.path().join("out.bin");
    let url = format!("socks5h://{addr}");
    let f = run(
        &[
            "get",
            &saddr,
            "f.bin",
            "-o",
            out.to_str().unwrap(),
            "--proxy",
            &url,
            "--timeout",
            "3",
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(hash_file(&out), hash_file(&tmp.path().join("f.bin")));
    let (h, port) = saddr.rsplit_once(':').unwrap();
    let f = run(
        &[
            "ping",
            h,
            port,
            "-c",
            "2",
            "--interval",
            "0",
            "--proxy",
            &url,
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(String::from_utf8_lossy(&f.stdout).contains(&format!("via {url}")));
    let bench = sockit_noinput(&["bench", "server", "-l", "127.0.0.1:0"]);
    let b = bench.listening().to_string();
    let f = run(
        &[
            "bench", "client", &b, "rr", "-t", "0.3", "--proxy", &url, "--json",
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let f = run(
        &["bench", "client", &b, "udp", "-t", "0.3", "--proxy", &url],
        b"",
    );
    assert_eq!(f.code(), 2, "{}", f.stderr);
    assert!(
        f.stderr.contains("--proxy carries the TCP tests"),
        "{}",
        f.stderr
    );
}

#[test]
fn forward_reaches_its_target_through_a_proxy_and_logs_json_events() {
    let target = speaks_first();
    let p = sockit_noinput(&[
        "proxy",
        "127.0.0.1:0",
        "--allow-dest",
        "127.0.0.0/8",
        "--json",
    ]);
    let addr = p.listening();
    let (_f, faddr) =
        forward_loopback(&[&target.to_string(), "--proxy", &format!("socks5h://{addr}")]);
    let mut s = TcpStream::connect(faddr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"hello\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "SSH-2.0-sockit-test banner\r\necho: hello\n"
    );
    // Our side ends too: then the tunnel closes, and says so.
    drop(s);
    let events = p.out().wait_line("\"event\":\"close\"");
    assert!(events.contains("\"event\":\"open\""), "{events}");
    assert!(events.contains("\"protocol\":\"socks5\""), "{events}");
    assert!(events.contains("\"bytes_down\":"), "{events}");
}

#[test]
fn real_clients_curl_nc_and_ncat_use_sockit_proxy() {
    if !have_tool("curl") || !have_tool("nc") || !have_tool("ncat") {
        return;
    }
    // A tiny HTTP server for curl.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let web = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(16) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(WAIT));
            let mut b = [0u8; 4096];
            let _ = s.read(&mut b);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n",
            );
        }
    });
    let (_p, addr) = proxy(&["--auth", "u:pw"]);
    let url = format!("http://{web}/x");
    for args in [
        vec![
            "--socks5-hostname",
            &addr.to_string() as &str,
            "--proxy-user",
            "u:pw",
        ],
        vec!["--socks5", &addr.to_string(), "--proxy-user", "u:pw"],
        vec!["-x", &format!("http://{addr}"), "--proxy-user", "u:pw"],
        vec![
            "-p",
            "-x",
            &format!("http://{addr}"),
            "--proxy-user",
            "u:pw",
        ],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10"])
            .args(&args)
            .arg(&url)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello\n",
            "curl {args:?}"
        );
    }
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
            "-x",
        ])
        .arg(format!("http://{addr}"))
        .args(["--proxy-user", "u:bad", &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "407");
    // netcat-openbsd and ncat, without auth (nc has no SOCKS auth).
    let target = speaks_first();
    let (_q, open) = proxy(&[]);
    for x in ["5", "connect"] {
        let out = fed(
            Command::new("nc")
                .args(["-X", x, "-x", &open.to_string(), "-N", "-w", "5"])
                .args([target.ip().to_string(), target.port().to_string()]),
            b"hello\n",
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "SSH-2.0-sockit-test banner\r\necho: hello\n",
            "nc -X {x}"
        );
    }
    let out = fed(
        Command::new("ncat")
            .args(["--proxy", &open.to_string(), "--proxy-type", "socks5"])
            .args([target.ip().to_string(), target.port().to_string()]),
        b"hello\n",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("echo: hello\n"),
        "ncat: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn real_proxies_microsocks_and_tinyproxy_behind_sockit() {
    if !have_tool("microsocks") || !have_tool("tinyproxy") {
        return;
    }
    let target = speaks_first();
    let ms_port = free_port();
    let mut ms = Command::new(tool_path("microsocks").unwrap())
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &ms_port.to_string(),
            "-u",
            "al",
            "-P",
            "pw",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_tcp_listening(ms_port);
    converse(target, &[format!("socks5h://al:pw@127.0.0.1:{ms_port}")]);
    let f = connect_via(
        target,
        &[format!("socks5h://al:bad@127.0.0.1:{ms_port}")],
        b"",
    );
    assert!(
        f.stderr.contains("refused the username and password"),
        "{}",
        f.stderr
    );
    let tp_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!("Port {tp_port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\n"),
    )
    .unwrap();
    let mut tp = Command::new(tool_path("tinyproxy").unwrap())
        .args(["-d", "-c", conf.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_tcp_listening(tp_port);
    converse(target, &[format!("http://127.0.0.1:{tp_port}")]);
    // A chain through both real proxies.
    converse(
        target,
        &[
            format!("http://127.0.0.1:{tp_port}"),
            format!("socks5h://al:pw@127.0.0.1:{ms_port}"),
        ],
    );
    let _ = ms.kill();
    let _ = tp.kill();
    let _ = ms.wait();
    let _ = tp.wait();
}
