//! End-to-end tests of `sockit forward`'s other endpoints (issue 14): Unix
//! sockets, TLS at either end, a program per connection, the PROXY
//! protocol and `--json` events; real peers where they exist (curl,
//! python3's http.server, openssl s_server, nc -U, dnsmasq).

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::*;

fn forward(listen: &str, args: &[&str]) -> Proc {
    let mut full = vec!["-v", "forward", listen];
    full.extend_from_slice(args);
    sockit_noinput(&full)
}

fn unix_connect(path: &std::path::Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn read_all<R: Read>(mut r: R) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

// Unix sockets.

#[test]
fn unix_listener_to_tcp_and_tcp_to_unix_target_keep_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("relay.sock");
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let target = echo.listening().to_string();
    let front = forward(&format!("unix:{}", sock.display()), &[&target]);
    assert_eq!(front.listening_text(), format!("unix:{}", sock.display()));
    // And a TCP forward whose target is that Unix socket: TCP -> Unix -> TCP.
    let back = forward("127.0.0.1:0", &[&format!("unix:{}", sock.display())]);
    let addr = back.listening();
    let data = random_bytes(4 << 20, 7);
    let got = round_trip(addr, &data);
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
    front.stderr.wait_for("closed first");
    // On shutdown the relay removes the socket file it made.
    let f = front.interrupt();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(!sock.exists());
    back.kill();
    echo.kill();
}

#[test]
fn abstract_unix_names_work_on_both_sides() {
    let name = format!("@sockit-test-{}", std::process::id());
    let echo = forward(&format!("unix:{name}"), &["exec:cat"]);
    assert_eq!(echo.listening_text(), format!("unix:{name}"));
    let front = forward("127.0.0.1:0", &[&format!("unix:{name}")]);
    let mut c = connect(front.listening());
    c.write_all(b"abstract\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"abstract\n");
    front.kill();
    echo.kill();
}

#[test]
fn unix_paths_a_regular_file_is_never_touched_and_a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file in the way: refused, left exactly as it was.
    let file = dir.path().join("data.txt");
    std::fs::write(&file, b"precious").unwrap();
    let f = run(
        &["forward", &format!("unix:{}", file.display()), "exec:cat"],
        b"",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("is not a socket"), "{}", f.stderr);
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    // A stale socket (its listener is gone): replaced.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let p = forward(&format!("unix:{}", stale.display()), &["exec:cat"]);
    p.listening_text();
    p.stderr.wait_for("replacing a stale socket");
    let mut c = unix_connect(&stale);
    c.write_all(b"fresh").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"fresh");
    // A socket someone answers on: in use, not stolen.
    let f = run(
        &["forward", &format!("unix:{}", stale.display()), "exec:cat"],
        b"",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("is in use"), "{}", f.stderr);
    p.kill();
}

#[test]
fn unix_path_in_a_folder_without_write_permission_is_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let path = format!("unix:{}/x.sock", locked.display());
    // Root writes anywhere: run as nobody then.
    let Some(mut cmd) = sockit_unprivileged() else {
        return;
    };
    let out = cmd
        .args(["forward", &path, "exec:/bin/cat"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn netcat_dash_u_through_a_unix_forward() {
    if !have_tool("nc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("up.sock");
    let p = forward(&format!("unix:{}", sock.display()), &["sh:tr a-z A-Z"]);
    p.listening_text();
    let out = Command::new("nc")
        .args(["-N", "-U", sock.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"through nc -U\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "THROUGH NC -U\n");
    p.kill();
}

// TLS.

/// A python3 http.server on loopback serving `dir`, and its port.
fn http_server(dir: &std::path::Path) -> Option<(std::process::Child, u16)> {
    if !have_tool("python3") {
        return None;
    }
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_tcp_listening(port);
    Some((child, port))
}

#[test]
fn curl_through_a_plain_forward_and_https_through_a_tls_one() {
    if !have_tool("curl") {
        return;
    }
    let www = tempfile::tempdir().unwrap();
    let page = random_bytes(300_000, 3);
    std::fs::write(www.path().join("page.bin"), &page).unwrap();
    let Some((mut server, port)) = http_server(www.path()) else {
        return;
    };
    let target = format!("127.0.0.1:{port}");
    let plain = forward("127.0.0.1:0", &[&target]);
    let url = format!("http://{}/page.bin", plain.listening());
    let got = Command::new("curl").args(["-sf", &url]).output().unwrap();
    assert!(got.status.success());
    assert!(got.stdout == page, "plain: {} bytes", got.stdout.len());

    let cfg = tempfile::tempdir().unwrap();
    let tls = util::spawn(
        Command::new(bin())
            .env("XDG_CONFIG_HOME", cfg.path())
            .args(["-v", "forward", "127.0.0.1:0", &target, "--tls"]),
        Stdio::null(),
        None,
    );
    let addr = tls.listening();
    let url = format!("https://{addr}/page.bin");
    let got = Command::new("curl").args(["-sfk", &url]).output().unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(got.stdout == page, "tls: {} bytes", got.stdout.len());
    // A plaintext client on the TLS listener: one line saying so.
    let mut c = connect(addr);
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let _ = read_to_end_lossy(&mut c);
    tls.stderr.wait_for("sent plain text to this TLS listener");
    // A client that sends garbage that looks like a TLS record.
    let mut c = connect(addr);
    c.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    let _ = read_to_end_lossy(&mut c);
    tls.stderr.wait_for("the TLS handshake with 127.0.0.1");
    // The relay is still serving.
    let got = Command::new("curl").args(["-sfk", &url]).output().unwrap();
    assert!(got.stdout == page);
    tls.kill();
    plain.kill();
    let _ = server.kill();
    let _ = server.wait();
}

/// Reads until end or error, whatever arrives.
fn read_to_end_lossy(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

/// `openssl s_server -rev` on a free loopback port, with the leaf
/// certificate in `d` and `extra` options; waits until it listens.
fn s_server(d: &std::path::Path, extra: &[&str]) -> (std::process::Child, u16) {
    let port = free_port();
    let accept = format!("127.0.0.1:{port}");
    let mut args = vec![
        "s_server", "-accept", &accept, "-cert", "leaf.pem", "-key", "leaf.key",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-rev", "-quiet"]);
    let server = Command::new("openssl")
        .args(&args)
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_tcp_listening(port);
    (server, port)
}

/// s_server's -rev answers each line reversed.
fn assert_reverses(addr: SocketAddr) {
    let mut c = connect(addr);
    c.write_all(b"stressed\n").unwrap();
    let mut line = String::new();
    BufReader::new(c.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "desserts\n");
}

#[test]
fn openssl_s_server_behind_a_tls_target_with_the_client_trust_model() {
    if !have_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sh = |script: &str| {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(d)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script}");
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=sockit-test-ca");
    sh("openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=localhost");
    sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext && openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext");
    let (mut server, port) = s_server(d, &[]);
    let target = format!("tls:127.0.0.1:{port}");
    let ca = d.join("ca.pem");
    // Trusted through --target-ca: s_server's -rev answers each line reversed.
    let p = forward(
        "127.0.0.1:0",
        &[&target, "--target-ca", ca.to_str().unwrap()],
    );
    assert_reverses(p.listening());
    p.kill();
    // Not trusted (no CA given, no pin): the client is reset, the log says why.
    let cfg = tempfile::tempdir().unwrap();
    let p = util::spawn(
        Command::new(bin())
            .env("XDG_CONFIG_HOME", cfg.path())
            .args(["-v", "forward", "127.0.0.1:0", &target]),
        Stdio::null(),
        None,
    );
    let mut c = connect(p.listening());
    let r = c.read(&mut [0u8; 8]);
    assert!(r.is_err() || r.unwrap() == 0);
    let said = p.stderr.wait_for("add --target-ca FILE");
    assert!(said.contains("does not trust"), "{said}");
    p.kill();
    let _ = server.kill();
    let _ = server.wait();
    // A server that wants a client certificate: without one the log names
    // forward's own flags; with --target-cert/--target-key it answers.
    sh("openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=sockit-client");
    sh("openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client-v1.pem -days 2");
    sh("printf 'extendedKeyUsage=clientAuth\\n' > cext && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile cext");
    let (mut server, port) = s_server(d, &["-Verify", "1", "-CAfile", "ca.pem"]);
    let target = format!("tls:127.0.0.1:{port}");
    let p = forward(
        "127.0.0.1:0",
        &[&target, "--target-ca", ca.to_str().unwrap()],
    );
    let mut c = connect(p.listening());
    let _ = c.write_all(b"stressed\n");
    let r = c.read(&mut [0u8; 8]);
    assert!(r.is_err() || r.unwrap() == 0);
    let said = p.stderr.wait_for("--target-cert and --target-key");
    assert!(!said.contains("--tls-client-cert"), "{said}");
    p.kill();
    let (cert, key) = (d.join("client.pem"), d.join("client.key"));
    // An X.509 v1 certificate (openssl x509 -req without extensions) is
    // refused before anything listens, in words, not as a key mismatch.
    let v1 = d.join("client-v1.pem");
    let out = util::run(
        &[
            "forward",
            "127.0.0.1:0",
            &target,
            "--target-cert",
            v1.to_str().unwrap(),
            "--target-key",
            key.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code(), 1);
    let err = &out.stderr;
    assert!(
        err.contains("X.509 version 1") && !err.contains("do not match"),
        "{err}"
    );
    let p = forward(
        "127.0.0.1:0",
        &[
            &target,
            "--target-ca",
            ca.to_str().unwrap(),
            "--target-cert",
            cert.to_str().unwrap(),
            "--target-key",
            key.to_str().unwrap(),
        ],
    );
    assert_reverses(p.listening());
    p.kill();
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn tls_at_both_ends_re_encrypts_and_bytes_arrive_unchanged() {
    let cfg = tempfile::tempdir().unwrap();
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let target = echo.listening().to_string();
    let spawn_cfg = |args: &[&str]| {
        let mut full = vec!["-v"];
        full.extend_from_slice(args);
        util::spawn(
            Command::new(bin())
                .env("XDG_CONFIG_HOME", cfg.path())
                .args(&full),
            Stdio::null(),
            None,
        )
    };
    // TLS terminator in front of the echo server...
    let inner = spawn_cfg(&["forward", "127.0.0.1:0", &target, "--tls"]);
    let inner_addr = inner.listening();
    let fp = inner
        .stderr
        .wait_line("certificate SHA256:")
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap()
        .to_string();
    // ...and a relay that re-encrypts towards it, trusting it by pin.
    let outer = spawn_cfg(&[
        "forward",
        "127.0.0.1:0",
        &format!("tls:{inner_addr}"),
        "--target-pin",
        &fp,
        "--tls",
    ]);
    let outer_addr = outer.listening();
    let data = random_bytes(1 << 20, 9);
    let f = util::spawn(
        Command::new(bin())
            .env("XDG_CONFIG_HOME", cfg.path())
            .args([
                "tcp",
                "connect",
                "127.0.0.1",
                &outer_addr.port().to_string(),
                "--tls",
                "--pin",
                &fp,
            ]),
        Stdio::piped(),
        None,
    );
    let mut f = f;
    f.send(&data);
    f.close_stdin();
    let fin = f.finish();
    assert_eq!(fin.code(), 0, "{}", fin.stderr);
    assert!(
        fin.stdout == data,
        "{} of {} bytes",
        fin.stdout.len(),
        data.len()
    );
    outer.kill();
    inner.kill();
    echo.kill();
}

// A program per connection.

#[test]
fn exec_joins_the_connection_to_the_child_with_its_environment() {
    let p = forward(
        "127.0.0.1:0",
        &["sh:echo \"peer=$SOCKIT_PEER_ADDR:$SOCKIT_PEER_PORT local=$SOCKIT_LOCAL_PORT proto=$SOCKIT_PROTO\"; tr a-z A-Z; echo done >&2"],
    );
    let addr = p.listening();
    let mut c = connect(addr);
    let me = c.local_addr().unwrap();
    c.write_all(b"half closed\n").unwrap();
    // The child sees its stdin end and still answers: half-close both ways.
    c.shutdown(Shutdown::Write).unwrap();
    let got = String::from_utf8(read_to_end(&mut c)).unwrap();
    assert_eq!(
        got,
        format!(
            "peer=127.0.0.1:{} local={} proto=tcp\nHALF CLOSED\n",
            me.port(),
            addr.port()
        )
    );
    // The child's stderr, prefixed with the peer.
    p.stderr
        .wait_for(&format!("[127.0.0.1:{}] done", me.port()));
    p.kill();
}

#[test]
fn seed_style_programs_behind_exec() {
    if !have_tool("python3") {
        return;
    }
    let server = peer_script("stdio_upper.py");
    let p = forward(
        "127.0.0.1:0",
        &[&format!("exec:python3 -u {}", server.display())],
    );
    let addr = p.listening();
    // The seed's own TCP client talks to it.
    let out = python_peer(
        "seed000_client.py",
        &["127.0.0.1", &addr.port().to_string(), "first", "二 second"],
    );
    assert_eq!(out, "FIRST\n二 SECOND\n");
    p.stderr.wait_for("client 127.0.0.1 went away");
    p.kill();
}

#[test]
fn children_that_exit_at_once_never_read_or_ignore_sigterm() {
    // Exits at once: the client gets its output and end of stream.
    let p = forward("127.0.0.1:0", &["sh:echo bye"]);
    let mut c = connect(p.listening());
    assert_eq!(read_to_end(&mut c), b"bye\n");
    p.kill();

    // Never reads stdin: the relay stops reading the client instead of
    // buffering; the client's writes block, nothing grows.
    let p = forward("127.0.0.1:0", &["sh:sleep 30"]);
    let c = connect(p.listening());
    let sent = write_until_stalled(&c);
    assert!(
        sent < 64 << 20,
        "{sent} bytes went into a child that never reads"
    );
    let rss = p.peak_rss_kib();
    assert!(rss < 64 * 1024, "relay RSS {rss} KiB");
    // The client gives up with a reset: noticed although nothing is read
    // from it (its bytes wait behind the child's full stdin).
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    p.stderr.wait_for("reset both sides");
    p.kill();

    // Ignores SIGTERM: SIGKILL follows, and no zombie is left.
    let p = forward("127.0.0.1:0", &["sh:trap '' TERM; echo ready; sleep 60"]);
    let mut c = connect(p.listening());
    let mut b = [0u8; 6];
    c.read_exact(&mut b).unwrap();
    let pid = p.child.id();
    assert_eq!(children_of(pid).len(), 1);
    // The client resets: the child gets SIGTERM, ignores it, then SIGKILL.
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    p.stderr.wait_for("ignored SIGTERM");
    let deadline = Instant::now() + WAIT;
    while !children_of(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(children_of(pid).is_empty(), "{:?}", children_of(pid));
    p.kill();
}

/// The children of `pid` (zombies included), from /proc.
fn children_of(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(')').map(|x| x.1) else {
            continue;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        if f.get(1) == Some(&pid.to_string().as_str()) {
            out.push(format!("{} {}", e.file_name().to_string_lossy(), f[0]));
        }
    }
    out
}

#[test]
fn tcp_and_unix_listen_exec_serve_a_program_like_ncat_e() {
    // One connection, then the listener exits, as ncat -e without -k.
    let p = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--exec", "tr a-z A-Z"]);
    let mut c = connect(p.listening());
    c.write_all(b"ncat style\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"NCAT STYLE\n");
    let f = p.finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    // -k keeps serving, one child each, at once.
    let p = sockit_noinput(&[
        "tcp",
        "listen",
        "127.0.0.1:0",
        "-k",
        "--sh",
        "cat; echo end",
    ]);
    let addr = p.listening();
    let mut conns: Vec<_> = (0..3).map(|_| connect(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("{i}\n").as_bytes()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(read_to_end(c), format!("{i}\nend\n").as_bytes());
    }
    p.kill();
    // unix listen --exec.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("e.sock");
    let p = sockit_noinput(&["unix", "listen", sock.to_str().unwrap(), "--exec", "rev"]);
    p.listening_text();
    let mut c = unix_connect(&sock);
    c.write_all(b"abc\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"cba\n");
    let f = p.finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    // A missing program: an error before anything listens.
    let f = run(
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--exec",
            "no-such-program-sockit",
        ],
        b"",
    );
    assert_eq!(f.code(), 2, "{}", f.stderr);
    assert!(!f.stderr.contains("listening on"), "{}", f.stderr);
}

// PROXY protocol and accounting.

#[test]
fn proxy_protocol_v1_and_v2_name_the_real_client() {
    let payload = b"payload";
    for (version, expect_len) in [("v1", None), ("v2", Some(28usize))] {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let taddr = probe.local_addr().unwrap();
        let p = forward(
            "127.0.0.1:0",
            &[&taddr.to_string(), "--proxy-protocol", version],
        );
        let addr = p.listening();
        let mut c = connect(addr);
        let me = c.local_addr().unwrap();
        c.write_all(payload).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let (mut s, _) = probe.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let got = read_all(&mut s);
        match expect_len {
            None => {
                let line = format!(
                    "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
                    me.port(),
                    addr.port()
                );
                assert_eq!(String::from_utf8_lossy(&got), format!("{line}payload"));
            }
            Some(n) => {
                assert_eq!(&got[..12], b"\r\n\r\n\0\r\nQUIT\n");
                assert_eq!(&got[12..16], &[0x21, 0x11, 0, 12]);
                assert_eq!(&got[16..20], &[127, 0, 0, 1]);
                assert_eq!(&got[24..26], &me.port().to_be_bytes());
                assert_eq!(&got[26..28], &addr.port().to_be_bytes());
                assert_eq!(&got[n..], payload);
            }
        }
        p.kill();
    }
}

#[test]
fn json_events_for_open_close_and_refused() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let target = echo.listening().to_string();
    let p = sockit_noinput(&[
        "forward",
        "127.0.0.1:0",
        &target,
        "--json",
        "--deny",
        "127.0.0.2",
    ]);
    let addr = p.listening();
    let mut c = connect(addr);
    c.write_all(b"12345").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"12345");
    let out = p.out().wait_line("\"event\":\"close\"");
    let close = out.lines().find(|l| l.contains("\"close\"")).unwrap();
    for want in [
        "\"bytes_up\":5",
        "\"bytes_down\":5",
        "\"end\":\"closed\"",
        "\"first_closed\":\"client\"",
        &format!("\"target\":\"{target}\""),
    ] {
        assert!(close.contains(want), "{want} in {close}");
    }
    assert!(out.contains("\"event\":\"open\""), "{out}");
    // A denied client: a refused event.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.connect(&addr.into()).unwrap();
    p.out().wait_for("\"event\":\"refused\"");
    p.kill();
    echo.kill();
}

// UDP through the relay to a real DNS server.

#[test]
fn dns_through_a_udp_forward_to_dnsmasq() {
    let Some(d) = dnsmasq() else { return };
    let p = forward("udp:127.0.0.1:0", &[&format!("udp:127.0.0.1:{}", d.port)]);
    let addr = p.listening();
    let f = run(
        &[
            "lookup",
            "host",
            "www.example.test",
            "--dns",
            &addr.to_string(),
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(String::from_utf8_lossy(&f.stdout).contains("192.0.2.10"));
    if tool_path("dig").is_some() {
        let out = Command::new("dig")
            .args([
                "+short",
                "+tries=1",
                "+time=5",
                "-p",
                &addr.port().to_string(),
                "@127.0.0.1",
                "www.example.test",
                "A",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "192.0.2.10");
    }
    p.kill();
    d.proc.kill();
}

// `unix connect` and `unix listen`: the tcp modes over Unix sockets.

#[test]
fn unix_listen_modes_echo_upper_chat_and_frame() {
    let dir = tempfile::tempdir().unwrap();
    // --echo
    let p = dir.path().join("echo.sock");
    let echo = sockit_noinput(&["unix", "listen", p.to_str().unwrap(), "--echo"]);
    assert_eq!(echo.listening_text(), format!("unix:{}", p.display()));
    let data = random_bytes(1 << 20, 5);
    assert!(round_trip_unix(&p, &data) == data);
    echo.kill();
    // --upper, through sockit's own unix connect.
    let p = dir.path().join("upper.sock");
    let up = sockit_noinput(&["unix", "listen", p.to_str().unwrap(), "--upper"]);
    up.listening_text();
    let f = run(&["unix", "connect", p.to_str().unwrap()], b"shout\n");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"SHOUT\n");
    up.kill();
    // --chat: two members, one hears the other, names from SO_PEERCRED.
    let p = dir.path().join("chat.sock");
    let room = sockit_noinput(&["unix", "listen", p.to_str().unwrap(), "--chat"]);
    room.listening_text();
    let a = unix_connect(&p);
    let mut ra = BufReader::new(a.try_clone().unwrap());
    let mut line = String::new();
    ra.read_line(&mut line).unwrap();
    assert!(line.contains("welcome, pid "), "{line}");
    let mut b = unix_connect(&p);
    let mut rb = BufReader::new(b.try_clone().unwrap());
    line.clear();
    rb.read_line(&mut line).unwrap();
    line.clear();
    ra.read_line(&mut line).unwrap();
    assert!(line.contains("joined"), "{line}");
    b.write_all(b"hi from b\n").unwrap();
    line.clear();
    ra.read_line(&mut line).unwrap();
    assert!(line.ends_with("] hi from b\n"), "{line}");
    drop((a, b));
    room.kill();
    // --frame both ways: one line in, one message out.
    let p = dir.path().join("frame.sock");
    let fr = sockit_noinput(&["unix", "listen", p.to_str().unwrap(), "--echo", "--frame"]);
    fr.listening_text();
    let f = run(
        &["unix", "connect", p.to_str().unwrap(), "--frame"],
        b"one\ntwo\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"one\ntwo\n");
    fr.kill();
}

#[test]
fn unix_one_peer_pipe_with_netcat_both_ways() {
    if !have_tool("nc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // nc -U against sockit unix listen (one peer, like nc -lU).
    let p = dir.path().join("one.sock");
    let l = util::spawn(
        Command::new(bin()).args(["unix", "listen", p.to_str().unwrap()]),
        Stdio::null(),
        None,
    );
    l.listening_text();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf 'to sockit\\n' | nc -N -U {}", p.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let f = l.finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"to sockit\n");
    assert!(!p.exists(), "the socket file is removed");
    // sockit unix connect against nc -lU.
    let p = dir.path().join("nc.sock");
    let mut nc = Command::new("nc")
        .args(["-l", "-U", p.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !p.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let f = run(&["unix", "connect", p.to_str().unwrap()], b"to nc\n");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let got = read_all(nc.stdout.take().unwrap());
    let _ = nc.wait();
    assert_eq!(got, b"to nc\n");
    // Nothing there: one sentence, exit 1.
    let f = run(&["unix", "connect", p.to_str().unwrap()], b"");
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(
        f.stderr.contains("could not connect to unix:"),
        "{}",
        f.stderr
    );
}
