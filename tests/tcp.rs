//! End-to-end tests of `tcp connect` and `tcp listen`, run against the real
//! binary on loopback.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::*;

fn s(addr: SocketAddr) -> (String, String) {
    (addr.ip().to_string(), addr.port().to_string())
}

#[test]
fn two_way_exchange_ipv4_and_ipv6() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let mut server = sockit(&["tcp", "listen", bind]);
        let (host, port) = s(server.listening());
        let mut client = sockit(&["tcp", "connect", &host, &port]);
        client.send(b"hello from the client\n");
        server.out().wait_for("hello from the client");
        // Two sends in a row from one side: full duplex, no lockstep.
        server.send(b"one\n");
        server.send(b"two\n");
        client.out().wait_for("two");
        client.close_stdin();
        server.close_stdin();
        let c = client.finish();
        let sv = server.finish();
        assert_eq!(c.code(), 0, "{}", c.stderr);
        assert_eq!(sv.code(), 0, "{}", sv.stderr);
        assert_eq!(c.stdout, b"one\ntwo\n");
        assert_eq!(sv.stdout, b"hello from the client\n");
    }
}

#[test]
fn fifty_mib_of_random_bytes_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    let dst = dir.path().join("dst.bin");
    std::fs::write(&src, random_bytes(50 << 20, 7)).unwrap();
    let (c, sv) = tcp_through(
        Stdio::from(std::fs::File::open(&src).unwrap()),
        Stdio::from(std::fs::File::create(&dst).unwrap()),
    );
    assert_eq!(c.code(), 0, "{}", c.stderr);
    assert_eq!(sv.code(), 0, "{}", sv.stderr);
    assert_eq!(hash_file(&src), hash_file(&dst));
}

#[test]
fn binary_bytes_through_a_pipe_both_ways() {
    // stdin is a pipe here (not a file), so the splice path is used.
    let data = random_bytes(3 << 20, 99);
    let mut server = sockit(&["tcp", "listen", "127.0.0.1:0"]);
    let (host, port) = s(server.listening());
    let back = data.iter().rev().cloned().collect::<Vec<u8>>();
    let b2 = back.clone();
    let mut sin = server.stdin.take().unwrap();
    let t = std::thread::spawn(move || {
        sin.write_all(&b2).unwrap();
    });
    let c = run(&["tcp", "connect", &host, &port], &data);
    t.join().unwrap();
    let sv = server.finish();
    assert_eq!(c.code(), 0, "{}", c.stderr);
    assert_eq!(sv.stdout.len(), data.len());
    assert!(
        sv.stdout == data,
        "listener got the client's bytes unchanged"
    );
    assert!(
        c.stdout == back,
        "client got the listener's bytes unchanged"
    );
}

#[test]
fn half_close_keeps_receiving_after_stdin_eof() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        // Reading to EOF proves the client half-closed after its stdin ended.
        let got = read_to_end(&mut c);
        c.write_all(b"reply sent after your EOF\n").unwrap();
        got
    });
    let out = run(&["-v", "tcp", "connect", "127.0.0.1", &port], b"request\n");
    assert_eq!(t.join().unwrap(), b"request\n");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout, b"reply sent after your EOF\n");
    assert!(out.stderr.contains("half-closed"), "{}", out.stderr);
    assert!(
        out.stderr.contains("connected to 127.0.0.1:"),
        "{}",
        out.stderr
    );
}

#[test]
fn peer_closing_first_still_gets_everything_written() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.write_all(b"bye from the server\n").unwrap();
        // Half-close first, then keep reading what the client still sends.
        c.shutdown(Shutdown::Write).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        read_to_end(&mut c)
    });
    let data = random_bytes(2 << 20, 3);
    let out = run(&["tcp", "connect", "127.0.0.1", &port], &data);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout, b"bye from the server\n");
    assert!(
        t.join().unwrap() == data,
        "scripted input delivered in full"
    );
}

#[test]
fn two_hundred_concurrent_echo_peers() {
    let server = sockit(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let addr = server.listening();
    let mut threads = Vec::new();
    for i in 0..200u64 {
        threads.push(std::thread::spawn(move || {
            let mut c = connect(addr);
            let data = random_bytes(4096 + i as usize, i + 1);
            c.write_all(&data).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            read_to_end(&mut c) == data
        }));
    }
    let ok = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|&b| b)
        .count();
    assert_eq!(ok, 200);
    let f = server.interrupt();
    assert_eq!(f.code(), 0, "Ctrl-C stops the server cleanly: {}", f.stderr);
}

#[test]
fn upper_echoes_lines_upper_cased_and_keeps_invalid_bytes() {
    let server = sockit(&["tcp", "listen", "[::1]:0", "--upper"]);
    let addr = server.listening();
    let mut c = connect(addr);
    c.write_all(b"hello\nstra\xc3\x9fe\n\xff\xfeabc\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"HELLO\nSTRASSE\n\xff\xfeABC\n");
    server.kill();
}

#[test]
fn seed_style_python_client_against_upper_and_echo() {
    if !have_tool("python3") {
        return;
    }
    for (mode, want) in [("--upper", "HELLO\nWORLD\n"), ("--echo", "hello\nworld\n")] {
        let server = sockit(&["tcp", "listen", "127.0.0.1:0", mode]);
        let (host, port) = s(server.listening());
        let out = python_peer("seed000_client.py", &[&host, &port, "hello", "world"]);
        assert_eq!(out, want);
        server.kill();
    }
}

#[test]
fn quit_words_end_the_session_from_either_side() {
    // Received: the listener stops at "bye" and prints nothing after it.
    let server = sockit(&[
        "tcp",
        "listen",
        "127.0.0.1:0",
        "--quit",
        "bye",
        "--quit",
        "q",
    ]);
    let addr = server.listening();
    let mut c = connect(addr);
    c.write_all(b"hi\nbye\nnot printed\n").unwrap();
    let f = server.finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"hi\n");

    // Sent: typing the quit word sends it and ends the session.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let mut client = sockit(&["tcp", "connect", "127.0.0.1", &port, "--quit", "exit"]);
    let (mut peer, _) = l.accept().unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    client.send(b"before\nexit\n");
    let f = client.finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(read_to_end(&mut peer), b"before\nexit\n");
}

#[test]
fn gbk_round_trip() {
    // Terminal UTF-8 -> GBK on the wire -> terminal UTF-8 on the other side.
    let server = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--encoding", "gbk"]);
    let (host, port) = s(server.listening());
    let c = run(
        &["tcp", "connect", &host, &port, "--encoding", "gbk"],
        "你好, 接收文件\n".as_bytes(),
    );
    assert_eq!(c.code(), 0, "{}", c.stderr);
    let f = server.finish();
    assert_eq!(String::from_utf8_lossy(&f.stdout), "你好, 接收文件\n");

    // And the wire really carries GBK; undecodable bytes become U+FFFD.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let t = std::thread::spawn(move || {
        let (mut p, _) = l.accept().unwrap();
        p.set_read_timeout(Some(WAIT)).unwrap();
        p.write_all(b"\xc4\xe3\xba\xc3 \xff\n").unwrap();
        p.shutdown(Shutdown::Write).unwrap();
        read_to_end(&mut p)
    });
    let c = run(
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            &port,
            "--encoding",
            "gbk",
            "--crlf",
        ],
        "你好\n".as_bytes(),
    );
    assert_eq!(t.join().unwrap(), b"\xc4\xe3\xba\xc3\r\n");
    assert_eq!(String::from_utf8_lossy(&c.stdout), "你好 \u{fffd}\n");
}

#[test]
fn keep_open_hub_serves_peers_concurrently() {
    let mut server = sockit(&["tcp", "listen", "127.0.0.1:0", "-k"]);
    let addr = server.listening();
    let mut a = connect(addr);
    let mut b = connect(addr);
    a.write_all(b"from a\n").unwrap();
    b.write_all(b"from b\n").unwrap();
    server.out().wait_for("from a");
    server.out().wait_for("from b");
    // Each stdin line goes to every connected peer.
    server.send(b"to everyone\n");
    assert_eq!(read_exact(&mut a, 12), b"to everyone\n");
    assert_eq!(read_exact(&mut b, 12), b"to everyone\n");
    // A peer leaving does not disturb the others.
    drop(a);
    let mut c = connect(addr);
    c.write_all(b"from c \xff\n").unwrap();
    server
        .out()
        .wait_until("from c", |o| o.windows(8).any(|w| w == b"from c \xff"));
    server.send(b"again\n");
    assert_eq!(read_exact(&mut b, 6), b"again\n");
    assert_eq!(read_exact(&mut c, 6), b"again\n");
    let f = server.interrupt();
    assert_eq!(f.code(), 0, "{}", f.stderr);
}

#[test]
fn max_conns_refuses_extra_peers_cleanly() {
    let server = sockit(&["tcp", "listen", "127.0.0.1:0", "--echo", "--max-conns", "2"]);
    let addr = server.listening();
    let mut a = connect(addr);
    let mut b = connect(addr);
    a.write_all(b"a").unwrap();
    b.write_all(b"b").unwrap();
    assert_eq!(read_exact(&mut a, 1), b"a");
    assert_eq!(read_exact(&mut b, 1), b"b");
    // Closed right away: EOF (or a reset), never an echo. The reset can
    // come before the connect returns: that is a refusal too.
    if let Ok(mut c) = TcpStream::connect_timeout(&addr, WAIT) {
        c.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 1];
        let r = c.read(&mut buf);
        assert!(matches!(r, Ok(0) | Err(_)), "third peer was refused");
    }
    server.stderr.wait_for("--max-conns");
    // The first two are unaffected.
    a.write_all(b"x").unwrap();
    assert_eq!(read_exact(&mut a, 1), b"x");
    server.kill();
}

#[test]
fn idle_peers_are_closed() {
    let server = sockit(&[
        "tcp",
        "listen",
        "127.0.0.1:0",
        "--echo",
        "--idle-timeout",
        "0.3",
    ]);
    let addr = server.listening();
    let mut c = connect(addr);
    let started = Instant::now();
    assert_eq!(read_to_end(&mut c), b"");
    assert!(started.elapsed() < Duration::from_secs(10));
    server.kill();
}

#[test]
fn connection_refused_is_exit_1_with_one_sentence() {
    let port = free_port().to_string();
    let f = run(&["tcp", "connect", "127.0.0.1", &port], b"");
    assert_eq!(f.code(), 1);
    assert!(
        f.stderr.starts_with("sockit: connection to 127.0.0.1:"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("refused"));
    assert_eq!(f.stderr.trim().lines().count(), 1, "{}", f.stderr);
}

#[test]
fn unknown_host_is_exit_1() {
    // A label over 63 bytes: glibc rejects it without sending any query.
    let host = format!("{}.invalid", "x".repeat(70));
    let f = run(&["tcp", "connect", &host, "80"], b"");
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("could not resolve host"), "{}", f.stderr);
}

#[test]
fn bad_ports_are_usage_errors() {
    // A service name is a port now (issue 12); an unknown one is not.
    for port in ["0", "65536", "-1", "no-such-service-x"] {
        let f = run(&["tcp", "connect", "127.0.0.1", port], b"");
        assert_eq!(f.code(), 2, "port {port}: {}", f.stderr);
        assert!(f.stderr.starts_with("sockit: "), "{}", f.stderr);
        assert!(!f.stderr.contains("panick"));
    }
    let f = run(&["tcp", "listen", "99999"], b"");
    assert_eq!(f.code(), 2);
    let f = run(
        &["tcp", "connect", "127.0.0.1", "80", "--timeout", "-3"],
        b"",
    );
    assert_eq!(f.code(), 2);
}

#[test]
fn address_in_use_is_exit_1() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let f = run(&["tcp", "listen", &format!("127.0.0.1:{port}")], b"");
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("already in use"), "{}", f.stderr);
}

#[test]
fn peer_reset_mid_stream_is_exit_1() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let client = sockit(&["tcp", "connect", "127.0.0.1", &port]);
    let (mut p, _) = l.accept().unwrap();
    p.write_all(b"partial data").unwrap();
    client.out().wait_for("partial data");
    socket2::SockRef::from(&p)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(p); // linger 0: the kernel sends RST
    let f = client.finish();
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("reset"), "{}", f.stderr);
    assert_eq!(
        f.stdout, b"partial data",
        "what arrived before the reset is kept"
    );
}

#[test]
fn a_peer_that_never_reads_keeps_memory_flat() {
    // connect side: stdin is endless, the peer accepts and never reads.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let client = sockit_io(
        &["tcp", "connect", "127.0.0.1", &port],
        Stdio::from(std::fs::File::open("/dev/zero").unwrap()),
        Stdio::null(),
    );
    let (_held, _) = l.accept().unwrap();
    // Unbounded buffering would pass hundreds of MiB within this window.
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = peak.max(client.peak_rss_kib());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(peak > 0 && peak < 32 * 1024, "peak RSS {peak} KiB");
    client.kill();

    // echo side: a peer that sends but never reads its echo.
    let server = sockit(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let addr = server.listening();
    let mut c = connect(addr);
    c.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = vec![b'z'; 1 << 16];
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut sent = 0usize;
    while Instant::now() < deadline {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break, // the server stopped reading: backpressure works
        }
    }
    let peak = server.peak_rss_kib();
    assert!(
        peak < 32 * 1024,
        "echo server peak RSS {peak} KiB after {sent} bytes"
    );
    assert!(
        sent < 512 << 20,
        "server kept reading {sent} bytes it could not send"
    );
    server.kill();
}

#[test]
fn ten_mib_without_newline_in_upper_mode() {
    let server = sockit(&["tcp", "listen", "127.0.0.1:0", "--upper"]);
    let addr = server.listening();
    let mut bad = connect(addr);
    let writer = {
        let mut w = bad.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&vec![b'a'; 10 << 20]);
        })
    };
    let reply = read_to_end(&mut bad);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("line longer than 65536 bytes"), "{reply}");
    let _ = writer.join();
    // Others are still served.
    let mut good = connect(addr);
    good.write_all(b"still here\n").unwrap();
    assert_eq!(read_exact(&mut good, 11), b"STILL HERE\n");
    assert!(server.peak_rss_kib() < 32 * 1024);
    server.kill();
}

#[test]
fn invalid_utf8_in_every_mode() {
    let junk: &[u8] = b"\xff\xfe\xc3(\x80 ok\n";
    // Raw pipe: unchanged.
    let server = sockit_noinput(&["tcp", "listen", "127.0.0.1:0"]);
    let (host, port) = s(server.listening());
    let c = run(&["tcp", "connect", &host, &port], junk);
    assert_eq!(c.code(), 0);
    assert_eq!(server.finish().stdout, junk);
    // Line mode with a quit word: bytes still unchanged.
    let server = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--quit", "q"]);
    let (host, port) = s(server.listening());
    let c = run(&["tcp", "connect", &host, &port, "--quit", "q"], junk);
    assert_eq!(c.code(), 0);
    assert_eq!(server.finish().stdout, junk);
    // Explicit UTF-8 decoding: U+FFFD, no crash.
    let server = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--encoding", "utf-8"]);
    let (host, port) = s(server.listening());
    let c = run(&["tcp", "connect", &host, &port], junk);
    assert_eq!(c.code(), 0);
    let out = server.finish();
    assert_eq!(out.code(), 0);
    assert!(String::from_utf8(out.stdout).unwrap().contains('\u{fffd}'));
    // Echo and hub with framing.
    for args in [
        &["tcp", "listen", "127.0.0.1:0", "--echo", "--quit", "q"][..],
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--encoding",
            "gbk",
        ][..],
    ] {
        let server = sockit(args);
        let addr = server.listening();
        let mut c = connect(addr);
        c.write_all(junk).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let back = read_to_end(&mut c);
        assert!(!back.is_empty(), "{args:?}");
        server.kill();
    }
}

#[test]
fn interop_with_nc_both_directions() {
    if !have_tool("nc") {
        return;
    }
    // nc connects to sockit listen.
    let server = sockit(&["tcp", "listen", "127.0.0.1:0"]);
    let (host, port) = s(server.listening());
    let mut nc = Command::new("nc")
        .args(["-N", &host, &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    nc.stdin
        .take()
        .unwrap()
        .write_all(b"from nc \x00\xff\n")
        .unwrap();
    let f = server.finish();
    let _ = nc.wait();
    assert_eq!(f.stdout, b"from nc \x00\xff\n");

    // sockit connects to nc -l.
    let port = free_port();
    let nc = util::spawn(
        Command::new("nc").args(["-l", "127.0.0.1", &port.to_string()]),
        Stdio::null(),
        None,
    );
    wait_tcp_listening(port);
    let c = run(
        &["tcp", "connect", "127.0.0.1", &port.to_string()],
        b"to nc\n",
    );
    assert_eq!(c.code(), 0, "{}", c.stderr);
    nc.out().wait_for("to nc");
    nc.kill();

    // And over IPv6.
    let server = sockit(&["tcp", "listen", "[::1]:0"]);
    let port = server.listening().port().to_string();
    let mut nc = Command::new("nc")
        .args(["-N", "::1", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    nc.stdin.take().unwrap().write_all(b"v6\n").unwrap();
    assert_eq!(server.finish().stdout, b"v6\n");
    let _ = nc.wait();
}

#[test]
fn broken_stdout_pipe_exits_quietly() {
    let mut child = Command::new(bin())
        .args(["tcp", "listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end of its stdout before it writes anything.
    drop(child.stdout.take());
    let mut err = child.stderr.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") && err.read(&mut b).unwrap_or(0) == 1 {
        line.push(b[0]);
    }
    let text = String::from_utf8_lossy(&line).to_string();
    let addr: SocketAddr = text
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let mut c = connect(addr);
    let _ = c.write_all(&vec![b'x'; 1 << 20]);
    drop(c);
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.is_empty(), "quiet on a broken pipe: {rest}");
}

// Issue 12, item 1: data that was not delivered must not exit 0.

#[test]
fn sender_to_a_receiver_on_a_full_disk_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, random_bytes(16 << 20, 12)).unwrap();
    let (c, sv) = tcp_through(
        Stdio::from(std::fs::File::open(&src).unwrap()),
        Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        ),
    );
    assert_eq!(sv.code(), 1, "{}", sv.stderr);
    assert!(
        sv.stderr.contains("no space left on device"),
        "{}",
        sv.stderr
    );
    assert_eq!(c.code(), 1, "the sender must fail: {}", c.stderr);
    assert!(c.stderr.starts_with("sockit: sent "), "{}", c.stderr);
    assert!(c.stderr.contains("stopped reading"), "{}", c.stderr);
}

#[test]
fn sender_to_a_peer_that_reads_a_little_then_closes_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, random_bytes(16 << 20, 13)).unwrap();
    // A file goes straight to the socket on its own thread; --crlf takes
    // the pump's staged copy.
    for extra in [&[][..], &["--crlf"][..]] {
        // A seed-style receiver: recv once, then close.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (host, port) = s(l.local_addr().unwrap());
        let peer = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 1000];
            let _ = c.read(&mut buf);
        });
        let mut args = vec!["tcp", "connect", &host, &port];
        args.extend_from_slice(extra);
        let c = sockit_io(
            &args,
            Stdio::from(std::fs::File::open(&src).unwrap()),
            Stdio::null(),
        )
        .finish();
        peer.join().unwrap();
        assert_eq!(c.code(), 1, "{extra:?}: {}", c.stderr);
        assert!(c.stderr.contains("stopped reading"), "{}", c.stderr);
    }
}

#[test]
fn listener_sending_to_a_client_that_stops_reading_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, random_bytes(16 << 20, 14)).unwrap();
    let server = sockit_io(
        &["tcp", "listen", "127.0.0.1:0"],
        Stdio::from(std::fs::File::open(&src).unwrap()),
        Stdio::null(),
    );
    let addr = server.listening();
    let mut c = connect(addr);
    let _ = read_exact(&mut c, 1000);
    drop(c);
    let sv = server.finish();
    assert_eq!(sv.code(), 1, "{}", sv.stderr);
    assert!(sv.stderr.contains("stopped reading"), "{}", sv.stderr);
}

#[test]
fn echo_client_whose_output_fails_exits_1_and_the_server_lives_on() {
    let server = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let (host, port) = s(server.listening());
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, random_bytes(16 << 20, 15)).unwrap();
    let c = sockit_io(
        &["tcp", "connect", &host, &port],
        Stdio::from(std::fs::File::open(&src).unwrap()),
        Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        ),
    )
    .finish();
    assert_eq!(c.code(), 1, "{}", c.stderr);
    assert!(c.stderr.contains("no space left on device"), "{}", c.stderr);
    // The echo server still answers the next client.
    let r = run(&["tcp", "connect", &host, &port], b"still here\n");
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout, b"still here\n");
    server.interrupt();
}

// Issue 12, item 2: hangs.

#[test]
fn readme_fifo_relay_exits_when_both_ends_are_done() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let (_, eport) = s(echo.listening());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    let fifo = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let b = bin();
    // The README's pipeline, exactly: listen < f | connect > f.
    let script = format!(
        "{b} tcp listen 127.0.0.1:0 < {f} | {b} tcp connect 127.0.0.1 {eport} > {f}",
        b = b.display(),
        f = f.display()
    );
    let relay = spawn(
        Command::new("sh").arg("-c").arg(&script),
        Stdio::null(),
        None,
    );
    let addr = relay.listening();
    let mut c = connect(addr);
    c.write_all(b"through the relay\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"through the relay\n");
    let r = relay.finish();
    assert_eq!(r.code(), 0, "{}", r.stderr);
    echo.interrupt();
}

#[test]
fn background_listener_does_not_stop_on_terminal_input() {
    if !have_tool("bash") {
        return;
    }
    for extra in [&[][..], &["-k"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![];
        if !extra.is_empty() {
            args.push("--stop".to_string());
        }
        args.extend([
            bin().display().to_string(),
            dir.path().display().to_string(),
            "payload from the network".into(),
            "tcp".into(),
            "listen".into(),
            "127.0.0.1:0".into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let shown = python_peer("bg_job.py", &argv);
        assert!(!shown.contains("Stopped"), "{extra:?}: {shown}");
        assert!(
            shown.contains("OUT=payload from the network"),
            "{extra:?}: {shown}"
        );
        assert!(shown.contains("RC=0"), "{extra:?}: {shown}");
    }
}

#[test]
fn idle_timeout_is_a_failure_with_a_sentence() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (host, port) = s(l.local_addr().unwrap());
    let c = sockit(&["tcp", "connect", &host, &port, "--idle-timeout", "0.3"]);
    let (_held, _) = l.accept().unwrap();
    let f = c.finish();
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(
        f.stderr.starts_with("sockit: ") && f.stderr.contains("--idle-timeout"),
        "{}",
        f.stderr
    );
}

// Issue 12, item 5: exit codes a script can use.

#[test]
fn a_client_turned_away_by_deny_or_max_conns_exits_1() {
    let deny = sockit_noinput(&[
        "tcp",
        "listen",
        "127.0.0.1:0",
        "--echo",
        "--deny",
        "127.0.0.1",
    ]);
    let (host, port) = s(deny.listening());
    let f = run(&["tcp", "connect", &host, &port], b"hello\n");
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("reset"), "{}", f.stderr);
    deny.kill();
    let full = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo", "--max-conns", "1"]);
    let addr = full.listening();
    let (host, port) = s(addr);
    let mut first = connect(addr);
    first.write_all(b"x").unwrap();
    assert_eq!(read_exact(&mut first, 1), b"x");
    let f = run(&["tcp", "connect", &host, &port], b"hello\n");
    assert_eq!(f.code(), 1, "{}", f.stderr);
    full.kill();
    // The one-peer listener, too.
    let one = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--deny", "127.0.0.0/8"]);
    let (host, port) = s(one.listening());
    let f = run(&["tcp", "connect", &host, &port], b"hello\n");
    assert_eq!(f.code(), 1, "{}", f.stderr);
    one.kill();
}

#[test]
fn bad_arguments_are_usage_errors_with_clap_s_own_list() {
    let f = run(&["tcp", "connect", "127.0.0.1"], b"");
    assert_eq!(f.code(), 2);
    assert!(f.stderr.contains("not provided: <PORT>"), "{}", f.stderr);
    for bad in ["300.1.1.1", "1.2.3", "999"] {
        let f = run(&["tcp", "connect", bad, "80"], b"");
        assert_eq!(f.code(), 2, "{bad}: {}", f.stderr);
        assert!(
            f.stderr.contains("not a valid IPv4 address"),
            "{}",
            f.stderr
        );
    }
    let f = run(
        &["tcp", "listen", "127.0.0.1:0", "--upper", "--max-line", "0"],
        b"",
    );
    assert_eq!(f.code(), 2, "{}", f.stderr);
}

#[test]
fn a_connect_to_itself_is_refused_not_a_session() {
    // Port P from port P on loopback: a simultaneous open with itself.
    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let f = run(
        &["tcp", "connect", "127.0.0.1", &port, "--bind", &bind, "-v"],
        b"echo me\n",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("refused"), "{}", f.stderr);
    assert!(f.stderr.contains("connected to itself"), "{}", f.stderr);
    assert!(f.stdout.is_empty());
}

#[test]
fn a_connect_to_a_full_backlog_times_out() {
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    full.listen(0).unwrap();
    let addr = full.local_addr().unwrap().as_socket().unwrap();
    let _fillers: Vec<socket2::Socket> = (0..3)
        .map(|_| {
            let c =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            c.set_nonblocking(true).unwrap();
            let _ = c.connect(&addr.into());
            c
        })
        .collect();
    let started = Instant::now();
    let f = run(
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            &addr.port().to_string(),
            "--timeout",
            "0.5",
        ],
        b"",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("timed out after 0.5 s"), "{}", f.stderr);
    assert!(started.elapsed() < Duration::from_secs(5));
}
