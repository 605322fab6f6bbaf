//! End-to-end tests of `udp send` and `udp listen`, on loopback only.
//! Broadcast goes to 127.255.255.255 and multicast stays on `lo`.

mod util;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::*;

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 70000];
    let (n, _) = s.recv_from(&mut buf).expect("a reply");
    buf.truncate(n);
    buf
}

#[test]
fn seed_003_python_client_gets_hello_upper_cased() {
    if !have_tool("python3") {
        return;
    }
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let server = sockit_noinput(&["udp", "listen", bind, "--upper"]);
        let addr = server.listening();
        let out = python_peer(
            "seed003_udp_client.py",
            &[
                &addr.ip().to_string(),
                &addr.port().to_string(),
                "hello",
                "你好 ok",
            ],
        );
        assert_eq!(out, "HELLO\n你好 OK\n");
        server.kill();
    }
}

#[test]
fn boundaries_are_kept_and_empty_datagrams_count() {
    let server = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--quit", "exit"]);
    let addr = server.listening();
    let c = udp_client();
    c.send_to(b"first", addr).unwrap();
    c.send_to(b"second datagram", addr).unwrap();
    c.send_to(b"", addr).unwrap();
    c.send_to(b"\xff\x00binary", addr).unwrap();
    c.send_to(b"exit", addr).unwrap(); // seed 004's quit word
    let f = server.finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"first\nsecond datagram\n\n\xff\x00binary\n");
}

#[test]
fn truncation_is_reported_with_both_sizes() {
    let server = sockit_noinput(&[
        "udp",
        "listen",
        "127.0.0.1:0",
        "--buffer",
        "1024",
        "--quit",
        "q",
    ]);
    let addr = server.listening();
    let c = udp_client();
    c.send_to(&[b'x'; 1500], addr).unwrap();
    c.send_to(b"q", addr).unwrap();
    let f = server.finish();
    assert!(
        f.stderr.contains("truncated: 1500 bytes, buffer 1024"),
        "{}",
        f.stderr
    );
    assert!(
        f.stderr.contains("datagram from 127.0.0.1:"),
        "{}",
        f.stderr
    );
    assert_eq!(f.stdout.len(), 1025, "the first 1024 bytes are still shown");
}

#[test]
fn verbose_and_hex_show_sender_size_and_bytes() {
    let server = sockit_noinput(&["-v", "udp", "listen", "127.0.0.1:0", "--hex", "--quit", "q"]);
    let addr = server.listening();
    let c = udp_client();
    let me = c.local_addr().unwrap();
    c.send_to(b"hi\x00", addr).unwrap();
    c.send_to(b"q", addr).unwrap();
    let f = server.finish();
    let out = String::from_utf8_lossy(&f.stdout);
    assert!(out.contains(&format!("from {me} (3 bytes)")), "{out}");
    assert!(out.contains("68 69 00"), "{out}");
    assert!(out.contains("  hi.  "), "{out}");
}

#[test]
fn echo_serves_many_senders_each_getting_its_own_reply() {
    let server = sockit_noinput(&["udp", "listen", "[::1]:0", "--echo"]);
    let addr = server.listening();
    let clients: Vec<UdpSocket> = (0..20)
        .map(|_| {
            let s = UdpSocket::bind("[::1]:0").unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            s
        })
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.send_to(format!("client {i}").as_bytes(), addr).unwrap();
    }
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(recv(c), format!("client {i}").as_bytes());
    }
    server.kill();
}

#[test]
fn send_prints_replies_and_never_hangs() {
    let server = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--upper"]);
    let addr = server.listening();
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    // Arguments: one datagram each.
    let f = run(
        &[
            "udp",
            "send",
            &host,
            &port,
            "one",
            "two",
            "--count-replies",
            "2",
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"ONE\nTWO\n");
    // Stdin: one datagram per line, replies while sending.
    let f = run(
        &["udp", "send", &host, &port, "--wait", "0.5"],
        b"a\nb\nc\n",
    );
    assert_eq!(f.code(), 0);
    assert_eq!(f.stdout, b"A\nB\nC\n");
    server.kill();

    // A listener that never answers: exits after --wait, with code 0.
    let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = quiet.local_addr().unwrap().port().to_string();
    let t = Instant::now();
    let f = run(
        &[
            "udp",
            "send",
            "127.0.0.1",
            &port,
            "anyone?",
            "--wait",
            "0.3",
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(t.elapsed() < Duration::from_secs(5));
    let mut buf = [0u8; 64];
    quiet.set_read_timeout(Some(WAIT)).unwrap();
    let (n, _) = quiet.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"anyone?");
}

#[test]
fn no_listener_is_refused_within_two_seconds() {
    let port = free_udp_port().to_string();
    let t = Instant::now();
    let f = run(&["udp", "send", "127.0.0.1", &port, "hello?"], b"");
    assert_eq!(f.code(), 1);
    assert!(
        f.stderr.contains(&format!(
            "no UDP listener at 127.0.0.1:{port} (connection refused)"
        )),
        "{}",
        f.stderr
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn oversized_datagram_is_an_error_before_sending() {
    let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = quiet.local_addr().unwrap().port().to_string();
    let big = "x".repeat(65_508);
    let f = run(&["udp", "send", "127.0.0.1", &port, "small", &big], b"");
    assert_eq!(f.code(), 1);
    assert!(
        f.stderr
            .contains("65508-byte datagram is over the 65507-byte"),
        "{}",
        f.stderr
    );
    quiet.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        quiet.recv_from(&mut buf).is_err(),
        "nothing was sent, not even 'small'"
    );
    // Exactly the limit is fine.
    let max = "y".repeat(65_507);
    let f = run(
        &["udp", "send", "127.0.0.1", &port, &max, "--wait", "0"],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
}

#[test]
fn broadcast_needs_the_flag_and_reaches_two_listeners() {
    let f = run(&["udp", "send", "127.255.255.255", "9", "x"], b"");
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("add --broadcast"), "{}", f.stderr);

    // Both listeners share one port; loopback's broadcast reaches each.
    let a = sockit_noinput(&["udp", "listen", "0.0.0.0:0", "--reuse-port", "--quit", "q"]);
    let port = a.listening().port().to_string();
    let b = sockit_noinput(&[
        "udp",
        "listen",
        &format!("0.0.0.0:{port}"),
        "--reuse-port",
        "--quit",
        "q",
    ]);
    b.listening();
    let f = run(
        &[
            "udp",
            "send",
            "127.255.255.255",
            &port,
            "to everyone",
            "q",
            "--broadcast",
            "--wait",
            "0",
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(a.finish().stdout, b"to everyone\n");
    assert_eq!(b.finish().stdout, b"to everyone\n");
}

#[test]
fn multicast_on_loopback_reaches_two_listeners() {
    let group = "239.255.42.99";
    let args = |port: &str| {
        vec![
            "udp".to_string(),
            "listen".into(),
            format!("0.0.0.0:{port}"),
            "--reuse-port".into(),
            "--join".into(),
            group.into(),
            "--iface".into(),
            "127.0.0.1".into(),
            "--quit".into(),
            "q".into(),
        ]
    };
    let a_args = args("0");
    let a = sockit_noinput(&a_args.iter().map(String::as_str).collect::<Vec<_>>());
    let port = a.listening().port().to_string();
    let b_args = args(&port);
    let b = sockit_noinput(&b_args.iter().map(String::as_str).collect::<Vec<_>>());
    b.listening();
    // --bind 127.0.0.1 sends the group traffic out of lo, TTL 1: it never leaves.
    let f = run(
        &[
            "udp",
            "send",
            group,
            &port,
            "hello group",
            "q",
            "--bind",
            "127.0.0.1:0",
            "--wait",
            "0",
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(a.finish().stdout, b"hello group\n");
    assert_eq!(b.finish().stdout, b"hello group\n");
}

#[test]
fn bind_fixes_the_source_port_like_seed_001() {
    let server = sockit_noinput(&["-v", "udp", "listen", "127.0.0.1:0", "--quit", "q"]);
    let addr = server.listening();
    let src = free_udp_port();
    let f = run(
        &[
            "udp",
            "send",
            "127.0.0.1",
            &addr.port().to_string(),
            "hi",
            "q",
            "--bind",
            &format!("127.0.0.1:{src}"),
            "--wait",
            "0",
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let out = server.finish();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("from 127.0.0.1:{src} (2 bytes): hi")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn interop_with_nc_u_both_directions() {
    if !have_tool("nc") {
        return;
    }
    for (host, listen) in [("127.0.0.1", "127.0.0.1:0"), ("::1", "[::1]:0")] {
        // nc -u sends to sockit udp listen.
        let server = sockit_noinput(&["udp", "listen", listen, "--quit", "q"]);
        let port = server.listening().port().to_string();
        let mut nc = Command::new("nc")
            .args(["-u", "-w1", host, &port])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut i = nc.stdin.take().unwrap();
            i.write_all(b"from nc\n").unwrap();
            i.flush().unwrap();
            // nc sends one datagram per read of stdin: the quit line goes
            // only once the first datagram has arrived on its own.
            server.out().wait_for("from nc");
            i.write_all(b"q\n").unwrap();
        }
        let f = server.finish();
        let _ = nc.wait();
        assert_eq!(f.stdout, b"from nc\n", "{host}");

        // sockit udp send to nc -u -l.
        let port = free_udp_port();
        let nc = util::spawn(
            Command::new("nc").args(["-u", "-l", host, &port.to_string()]),
            Stdio::null(),
            None,
        );
        wait_udp_bound(port);
        let f = run(
            &[
                "udp",
                "send",
                host,
                &port.to_string(),
                "to nc",
                "--wait",
                "0",
            ],
            b"",
        );
        assert_eq!(f.code(), 0, "{}", f.stderr);
        nc.out().wait_for("to nc");
        nc.kill();
    }
}

#[test]
fn interop_with_socat_both_directions() {
    if !have_tool("socat") {
        return;
    }
    for (v, host, listen) in [("4", "127.0.0.1", "127.0.0.1:0"), ("6", "[::1]", "[::1]:0")] {
        // socat sends to sockit --echo and reads the reply.
        let server = sockit_noinput(&["udp", "listen", listen, "--upper"]);
        let port = server.listening().port();
        let out = Command::new("socat")
            .args(["-T2", "-", &format!("UDP{v}:{host}:{port}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"via socat")?;
                c.wait_with_output()
            })
            .unwrap();
        assert_eq!(out.stdout, b"VIA SOCAT", "v{v}");
        server.kill();

        // sockit sends to socat's UDP echo and prints the reply.
        let p = free_udp_port();
        let echo = util::spawn(
            Command::new("socat").args([&format!("UDP{v}-RECVFROM:{p},bind={host},fork"), "PIPE"]),
            Stdio::null(),
            None,
        );
        wait_udp_bound(p);
        let h = host.trim_matches(|c| c == '[' || c == ']');
        let f = run(
            &[
                "udp",
                "send",
                h,
                &p.to_string(),
                "ping",
                "--count-replies",
                "1",
            ],
            b"",
        );
        assert_eq!(f.code(), 0, "{}", f.stderr);
        assert_eq!(f.stdout, b"ping\n", "v{v}");
        echo.kill();
    }
}

// Issue 12, items 5 and 7.

#[test]
fn count_replies_short_of_n_exits_1() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let f = run(
        &[
            "udp",
            "send",
            "127.0.0.1",
            &port,
            "hi",
            "--count-replies",
            "1",
            "--wait",
            "0.3",
        ],
        b"",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("only 0 of the 1 reply"), "{}", f.stderr);
}

#[test]
fn a_second_listener_on_a_taken_port_fails_unless_reuse_port() {
    let first = sockit_noinput(&["udp", "listen", "127.0.0.1:0"]);
    let addr = first.listening().to_string();
    let f = run(&["udp", "listen", &addr], b"");
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("already in use"), "{}", f.stderr);
    first.kill();
    let a = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--reuse-port"]);
    let addr = a.listening().to_string();
    let b = sockit_noinput(&["udp", "listen", &addr, "--reuse-port"]);
    b.listening();
    a.kill();
    b.kill();
}

#[test]
fn whole_stdin_as_one_datagram_and_newlines_inside_one_line() {
    let l = sockit_noinput(&["udp", "listen", "127.0.0.1:0"]);
    let port = l.listening().port().to_string();
    let f = run(
        &["udp", "send", "127.0.0.1", &port, "--whole", "--wait", "0"],
        b"first\nsecond\\third\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    // One datagram: printed as one line, the newline inside escaped.
    l.out().wait_for("first\\nsecond\\\\third\n");
    let big = vec![b'x'; 70_000];
    let f = run(&["udp", "send", "127.0.0.1", &port, "--whole"], &big);
    assert_eq!(f.code(), 2, "{}", f.stderr);
    assert!(f.stderr.contains("65507"), "{}", f.stderr);
    l.kill();
}

#[test]
fn talk_sends_stdin_lines_to_the_latest_sender() {
    let mut l = sockit(&["udp", "listen", "127.0.0.1:0", "--talk"]);
    let addr = l.listening();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.send_to(b"hello\n", addr).unwrap();
    l.out().wait_for("hello");
    l.send(b"hi back\n");
    let mut buf = [0u8; 100];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hi back\n");
    assert_eq!(from, addr);
    l.kill();
}

#[test]
fn ports_may_be_service_names() {
    // `domain` is 53/udp and `http` 80/tcp in every services database.
    if !std::path::Path::new("/etc/services").exists() {
        eprintln!("SKIPPED: no /etc/services (apt-get install netbase)");
        return;
    }
    let f = run(
        &["tcp", "connect", "127.0.0.1", "http", "--timeout", "1"],
        b"",
    );
    assert!(f.stderr.contains("127.0.0.1:80"), "{}", f.stderr);
    let f = run(&["tcp", "connect", "127.0.0.1", "no-such-service-x"], b"");
    assert_eq!(f.code(), 2, "{}", f.stderr);
}
