//! End-to-end tests of `sockit forward` (issue 14): TCP, UDP, Unix, TLS,
//! a program per connection, the PROXY protocol and `--json`.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::time::Duration;

use util::*;

/// A port nothing listens on, held (bound, never listening) so that no
/// parallel test can take it: a connect to it is refused.
fn dead_port() -> (socket2::Socket, u16) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

/// Connects and reads: the relay must answer with a reset. The reset can
/// come so fast that it lands while connect is still checking its socket;
/// either way the client sees a reset.
fn assert_reset(addr: SocketAddr) {
    let r = std::net::TcpStream::connect_timeout(&addr, WAIT).and_then(|mut c| {
        c.set_read_timeout(Some(WAIT))?;
        c.read(&mut [0u8; 16])
    });
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
}

fn forward(args: &[&str]) -> (Proc, SocketAddr) {
    forward_loopback(args)
}

#[test]
fn relays_binary_both_ways_and_passes_half_close_on() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let target = echo.listening().to_string();
    let (fwd, addr) = forward(&[&target]);
    let data = random_bytes(8 << 20, 41);
    let back = round_trip(addr, &data);
    assert!(
        back == data,
        "the relay changed the bytes ({} of {})",
        back.len(),
        data.len()
    );
    fwd.stderr.wait_for(&format!(
        "{} bytes up, {} bytes down",
        data.len(),
        data.len()
    ));
    fwd.kill();
    echo.kill();
}

#[test]
fn a_reply_sent_after_the_client_half_closed_arrives_whole() {
    // A target that answers only once the request has ended (like docker's
    // API behind socat, whose 0.5 s timer cuts such replies short).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        s.read_to_end(&mut req).unwrap();
        std::thread::sleep(Duration::from_millis(800));
        let reply = vec![b'r'; 3 << 20];
        s.write_all(&reply).unwrap();
        req.len()
    });
    let (fwd, addr) = forward(&[&target]);
    let mut c = connect(addr);
    c.write_all(b"request body").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let reply = read_to_end(&mut c);
    assert_eq!(reply.len(), 3 << 20);
    assert_eq!(server.join().unwrap(), 12);
    fwd.kill();
}

#[test]
fn a_target_that_is_down_resets_the_client_and_is_named() {
    let (_held, dead) = dead_port();
    let (fwd, addr) = forward(&[&format!("127.0.0.1:{dead}")]);
    assert_reset(addr);
    fwd.stderr
        .wait_for(&format!("127.0.0.1:{dead} refused the connection"));
    // sockit's own client says so in one sentence, with exit 1.
    let f = run(
        &["tcp", "connect", "127.0.0.1", &addr.port().to_string()],
        b"hi\n",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    fwd.kill();
}

#[test]
fn round_robin_skips_a_target_that_refuses() {
    let a = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo", "-v"]);
    let b = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo", "-v"]);
    let (ta, tb) = (a.listening().to_string(), b.listening().to_string());
    let (_held, dead_port) = dead_port();
    let dead = format!("127.0.0.1:{dead_port}");
    let (fwd, addr) = forward(&[&ta, &dead, &tb]);
    for i in 0..6 {
        let mut c = connect(addr);
        let msg = format!("client {i}\n");
        c.write_all(msg.as_bytes()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut c), msg.as_bytes(), "client {i}");
    }
    // Both live targets served clients; the dead one was skipped, not fatal.
    a.stderr.wait_for("connection from");
    b.stderr.wait_for("connection from");
    fwd.stderr.wait_for("refused the connection");
    for p in [fwd, a, b] {
        p.kill();
    }
}

#[test]
fn a_reset_from_the_target_reaches_the_client_as_a_reset() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut buf = [0u8; 5];
        (&s).read_exact(&mut buf).unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    });
    let (fwd, addr) = forward(&[&target]);
    let mut c = connect(addr);
    c.write_all(b"hello").unwrap();
    server.join().unwrap();
    let mut got = Vec::new();
    let r = c.read_to_end(&mut got);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    fwd.kill();
}

#[test]
fn max_conns_and_deny_turn_clients_away_with_a_reset() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let target = echo.listening().to_string();
    let (fwd, addr) = forward(&[&target, "--max-conns", "1"]);
    let mut first = connect(addr);
    first.write_all(b"x").unwrap();
    assert_eq!(read_exact(&mut first, 1), b"x");
    assert_reset(addr);
    fwd.stderr.wait_for("(--max-conns)");
    fwd.kill();
    let (fwd, addr) = forward(&[&target, "--deny", "127.0.0.0/8"]);
    let f = run(
        &["tcp", "connect", "127.0.0.1", &addr.port().to_string()],
        b"hi\n",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    fwd.stderr.wait_for("refused 127.0.0.1:");
    fwd.kill();
    echo.kill();
}

#[test]
fn bad_targets_are_usage_errors_before_anything_listens() {
    for (t, says) in [
        ("exec:/no/such/program", "does not exist"),
        ("exec:no-such-program-sockit", "PATH"),
        ("exec:cat 'open", "unbalanced quotes"),
        ("unix:", "needs a path"),
        ("nohost", "not a target"),
    ] {
        let f = run(&["forward", "127.0.0.1:0", t], b"");
        assert_eq!(f.code(), 2, "{t}: {}", f.stderr);
        assert!(f.stderr.contains(says), "{t}: {}", f.stderr);
        assert!(!f.stderr.contains("listening on"), "{}", f.stderr);
    }
}

#[test]
fn netcat_through_the_relay() {
    if !have_tool("nc") {
        return;
    }
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--upper"]);
    let target = echo.listening().to_string();
    let (fwd, addr) = forward(&[&target]);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'through nc\\n' | nc -N -w 5 127.0.0.1 {}",
            addr.port()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "THROUGH NC\n");
    fwd.kill();
    echo.kill();
}

#[test]
fn idle_timeout_closes_a_silent_relay_and_spares_a_busy_one() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let target = echo.listening().to_string();
    let (fwd, addr) = forward(&[&target, "--idle-timeout", "0.5"]);
    // Busy: a byte every 100 ms for 1.5 s, each echoed, is never cut.
    let mut busy = connect(addr);
    for _ in 0..15 {
        busy.write_all(b"b").unwrap();
        assert_eq!(read_exact(&mut busy, 1), b"b");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Silent: closed once 0.5 s pass with nothing moving.
    let started = std::time::Instant::now();
    let mut silent = connect(addr);
    let mut buf = [0u8; 1];
    let _ = silent.read(&mut buf);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(10),
        "{took:?}"
    );
    fwd.stderr.wait_for("idle for 0.5 s");
    fwd.kill();
    echo.kill();
}

// UDP forwarding.

#[test]
fn udp_sessions_keep_boundaries_and_answer_the_right_client() {
    let echo = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--echo"]);
    let target = format!("udp:{}", echo.listening());
    let mut full = vec!["-v", "forward", "udp:127.0.0.1:0", &target];
    full.push("--max-sessions");
    full.push("2");
    let fwd = sockit_noinput(&full);
    let addr = fwd.listening();
    let clients: Vec<std::net::UdpSocket> = (0..3)
        .map(|_| {
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(WAIT)).unwrap();
            c
        })
        .collect();
    for (i, c) in clients.iter().take(2).enumerate() {
        // Two datagrams back to back: two datagrams back, not one blob.
        c.send_to(format!("c{i} first").as_bytes(), addr).unwrap();
        c.send_to(format!("c{i} second").as_bytes(), addr).unwrap();
    }
    for (i, c) in clients.iter().take(2).enumerate() {
        let mut buf = [0u8; 100];
        let mut got = Vec::new();
        for _ in 0..2 {
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got.sort();
        assert_eq!(got, [format!("c{i} first"), format!("c{i} second")]);
    }
    // A third client with --max-sessions 2: the oldest idle session goes.
    clients[2].send_to(b"third", addr).unwrap();
    let mut buf = [0u8; 100];
    let (n, _) = clients[2].recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"third");
    fwd.stderr.wait_for("evicted the UDP session of");
    fwd.kill();
    echo.kill();
}

#[test]
fn udp_sessions_end_after_the_idle_timeout() {
    let echo = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--echo"]);
    let target = format!("udp:{}", echo.listening());
    let fwd = sockit_noinput(&[
        "-v",
        "forward",
        "udp:127.0.0.1:0",
        &target,
        "--idle-timeout",
        "0.3",
    ]);
    let addr = fwd.listening();
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.send_to(b"ping", addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    fwd.stderr.wait_for("UDP session ended (idle)");
    // A new datagram opens a new session and is still answered.
    c.send_to(b"again", addr).unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"again");
    fwd.kill();
    echo.kill();
}

#[test]
fn a_relay_keeps_one_transport() {
    let f = run(&["forward", "udp:127.0.0.1:0", "127.0.0.1:53"], b"");
    assert_eq!(f.code(), 2, "{}", f.stderr);
    assert!(f.stderr.contains("keeps one transport"), "{}", f.stderr);
}

// Bad input: slow targets, peers that never read, floods.

#[test]
fn a_target_slow_to_accept_times_out_and_the_client_is_reset() {
    let (_full, taddr) = slow_to_accept();
    let (fwd, addr) = forward(&[&taddr.to_string(), "--connect-timeout", "0.5"]);
    let started = std::time::Instant::now();
    let mut c = connect(addr);
    let r = c.read(&mut [0u8; 4]);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    fwd.stderr.wait_for("timed out after 0.5 s");
    fwd.kill();
}

/// The relay's resident memory, KiB.
fn rss_kib(p: &Proc) -> u64 {
    proc_status_kib(p.child.id(), "VmRSS:")
}

#[test]
fn a_client_that_never_reads_stops_the_target_and_memory_stays_flat() {
    // A target that sends up to 1 GiB as fast as it is let.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..1024 {
            match s.write(&chunk) {
                Ok(n) => counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed),
                Err(_) => return,
            };
        }
    });
    let (fwd, addr) = forward(&[&target]);
    let c = connect(addr);
    // Wait until the target is blocked: its count stops growing.
    let mut last = u64::MAX;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let now = sent.load(std::sync::atomic::Ordering::Relaxed);
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    let now = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        now < 256 << 20,
        "{now} bytes left the target for a client that reads nothing"
    );
    let rss = rss_kib(&fwd);
    assert!(rss < 32 * 1024, "relay RSS {rss} KiB");
    // The client resets: the relay notices, though it reads nothing from it.
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    fwd.stderr.wait_for("reset both sides");
    fwd.kill();
}

#[test]
fn a_target_that_accepts_and_never_reads_holds_the_client_back() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        // Holds the connection, never reads, until the test is done.
        let _ = rx.recv_timeout(WAIT);
        drop(s);
    });
    let (fwd, addr) = forward(&[&target]);
    let c = connect(addr);
    let sent = write_until_stalled(&c);
    assert!(
        sent < 128 << 20,
        "{sent} bytes taken for a target that reads nothing"
    );
    let rss = rss_kib(&fwd);
    assert!(rss < 32 * 1024, "relay RSS {rss} KiB");
    let _ = tx.send(());
    fwd.kill();
}

/// A client that resets while the relay has nothing to read from it: once
/// it has half-closed, and while the relay waits for a target that reads
/// nothing. Either way the relay sees the reset at once and resets the
/// target, with no byte from the target to wake it.
#[test]
fn a_client_reset_is_seen_while_the_relay_waits_on_the_target() {
    for stalled in [false, true] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let (eof_tx, eof_rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            if !stalled {
                // The client's bytes and its FIN, then silence.
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                assert_eq!(got, b"bye");
                eof_tx.send(()).unwrap();
            }
            // Told when the relay has seen the client's reset; it resets
            // this side too. Wait (bounded) for that reset to land: poll
            // with no events reports only an error or a hang-up.
            rx.recv_timeout(WAIT).unwrap();
            let mut p = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&s),
                events: 0,
                revents: 0,
            };
            // SAFETY: one pollfd, valid for the call.
            let n = unsafe { libc::poll(&mut p, 1, WAIT.as_millis() as i32) };
            assert!(
                n == 1 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0,
                "stalled={stalled}: no reset reached the target"
            );
            // And a write fails (a reset, or a broken pipe after the FIN).
            let r = s.write(b"late");
            assert!(
                matches!(&r, Err(e) if matches!(e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)),
                "stalled={stalled}: {r:?}"
            );
        });
        let (fwd, addr) = forward(&[&target, "-v"]);
        let mut c = connect(addr);
        if stalled {
            write_until_stalled(&c);
        } else {
            c.write_all(b"bye").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            // The relay has passed the FIN on: nothing reads the client now.
            eof_rx.recv_timeout(WAIT).unwrap();
        }
        fwd.stderr.wait_for("relaying");
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
        fwd.stderr.wait_for("reset both sides");
        tx.send(()).unwrap();
        server.join().unwrap();
        fwd.kill();
    }
}

#[test]
fn udp_from_20000_source_ports_keeps_the_table_bounded() {
    let echo = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--echo"]);
    let target = format!("udp:{}", echo.listening());
    let fwd = sockit_noinput(&[
        "forward",
        "udp:127.0.0.1:0",
        &target,
        "--max-sessions",
        "100",
    ]);
    let addr = fwd.listening();
    for i in 0..20_000u32 {
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = c.send_to(&i.to_be_bytes(), addr);
    }
    // Still answering, with about --max-sessions sockets open.
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answered = false;
    for _ in 0..20 {
        c.send_to(b"last", addr).unwrap();
        let mut b = [0u8; 8];
        if let Ok((n, _)) = c.recv_from(&mut b) {
            answered = &b[..n] == b"last";
            break;
        }
    }
    assert!(answered);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", fwd.child.id()))
        .unwrap()
        .count();
    assert!(
        fds < 100 + 40,
        "{fds} descriptors open for --max-sessions 100"
    );
    let rss = rss_kib(&fwd);
    assert!(rss < 64 * 1024, "relay RSS {rss} KiB");
    fwd.kill();
    echo.kill();
}
