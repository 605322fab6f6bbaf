//! Fault injection on `sockit forward` (issue 15, part 1): each fault over
//! real sockets on loopback, each way, the share of connections and the
//! seed, and the bad values. Timing checks are lower bounds only: a loaded
//! machine can make a fault look stronger, never weaker.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use util::*;

fn forward(args: &[&str]) -> (Proc, SocketAddr) {
    forward_loopback(args)
}

/// A target on loopback that records what one client sent, read by read,
/// and how the stream ended.
struct Sink {
    addr: SocketAddr,
    done: std::sync::mpsc::Receiver<(Vec<usize>, Vec<u8>, std::io::Result<()>)>,
}

fn sink(reply: &'static [u8]) -> Sink {
    sink_waiting(reply, WAIT)
}

/// A sink whose reads give up after `patience`.
fn sink_waiting(reply: &'static [u8], patience: Duration) -> Sink {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(patience)).unwrap();
        let _ = s.write_all(reply);
        let (mut reads, mut data) = (Vec::new(), Vec::new());
        let mut buf = [0u8; 65536];
        let end = loop {
            match s.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    reads.push(n);
                    data.extend_from_slice(&buf[..n]);
                }
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send((reads, data, end));
    });
    Sink { addr, done }
}

impl Sink {
    fn result(&self) -> (Vec<usize>, Vec<u8>, std::io::Result<()>) {
        self.done
            .recv_timeout(WAIT * 2)
            .expect("the target saw no end")
    }
}

#[test]
fn slice_1_delivers_every_byte_in_its_own_read() {
    let t = sink(b"");
    let (_p, addr) = forward(&[
        &t.addr.to_string(),
        "--slice",
        "up:1",
        "--slice-delay",
        "2ms",
    ]);
    let mut c = connect(addr);
    let msg = b"sticky packets, one by one";
    c.write_all(msg).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (reads, data, end) = t.result();
    assert!(end.is_ok(), "{end:?}");
    assert_eq!(data, msg);
    assert!(reads.iter().all(|&n| n == 1), "{reads:?}");
}

#[test]
fn slices_of_a_range_keep_a_large_stream_whole() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let (_p, addr) = forward(&[&echo.listening().to_string(), "--slice", "1:512"]);
    let data = random_bytes(1 << 20, 5);
    let back = round_trip(addr, &data);
    assert!(back == data, "{} bytes back of {}", back.len(), data.len());
}

#[test]
fn delay_adds_latency_each_way() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let (p, addr) = forward(&[&echo.listening().to_string(), "--delay", "40ms:5ms"]);
    let mut c = connect(addr);
    let start = Instant::now();
    for i in 0..3u8 {
        c.write_all(&[i]).unwrap();
        assert_eq!(read_exact(&mut c, 1), [i]);
    }
    // Three round trips, each delayed 40 ± 5 ms up and again down.
    assert!(
        start.elapsed() >= Duration::from_millis(3 * 2 * 35),
        "{:?}",
        start.elapsed()
    );
    p.stderr.wait_for("faults: delay 40 ms±5 ms");
}

#[test]
fn rate_caps_the_bandwidth() {
    let t = sink(b"");
    let (_p, addr) = forward(&[&t.addr.to_string(), "--rate", "up:400K"]);
    let mut c = connect(addr);
    let data = random_bytes(200_000, 9);
    let start = Instant::now();
    c.write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (_, got, end) = t.result();
    assert!(end.is_ok(), "{end:?}");
    assert!(got == data);
    // 200 kB at 400 kB/s: half a second at least.
    assert!(
        start.elapsed() >= Duration::from_millis(450),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn reset_after_sends_exactly_that_many_bytes_then_resets_both() {
    let t = sink(b"");
    let (p, addr) = forward(&[&t.addr.to_string(), "--reset-after", "up:1000"]);
    let mut c = connect(addr);
    c.set_read_timeout(Some(WAIT)).unwrap();
    let _ = c.write_all(&random_bytes(100_000, 3));
    let (_, got, end) = t.result();
    assert_eq!(got.len(), 1000);
    assert_eq!(end.unwrap_err().kind(), ErrorKind::ConnectionReset);
    let r = c.read(&mut [0u8; 16]);
    assert!(
        matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "{r:?}"
    );
    p.stderr.wait_for("reset by the fault after 1000 bytes up");
}

#[test]
fn close_after_ends_cleanly_and_down_leaves_the_upload_alone() {
    // down: only the target's reply is cut, cleanly, at 5 bytes.
    let t = sink(b"0123456789");
    let (p, addr) = forward(&[&t.addr.to_string(), "--close-after", "down:5"]);
    let mut c = connect(addr);
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"01234");
    let (_, up, end) = t.result();
    assert!(end.is_ok(), "the target got a FIN, not a reset: {end:?}");
    assert!(up.is_empty());
    p.stderr.wait_for("closed by the fault after 5 bytes down");
}

#[test]
fn stall_after_holds_the_connection_open_and_silent() {
    let t = sink_waiting(b"", Duration::from_millis(500));
    let (_p, addr) = forward(&[&t.addr.to_string(), "--stall-after", "up:10"]);
    let mut c = connect(addr);
    c.write_all(&[7u8; 100]).unwrap();
    // The target sees 10 bytes and then nothing: neither data nor an end
    // until its read timeout.
    let (reads, got, end) = t.result();
    assert_eq!(got.len(), 10, "{reads:?}");
    let e = end.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e:?}"
    );
    drop(c);
}

#[test]
fn slow_close_holds_the_fin_back() {
    let t = sink(b"");
    let (_p, addr) = forward(&[&t.addr.to_string(), "--slow-close", "300ms"]);
    let mut c = connect(addr);
    c.write_all(b"bye").unwrap();
    let start = Instant::now();
    c.shutdown(Shutdown::Write).unwrap();
    let (_, got, end) = t.result();
    assert!(end.is_ok());
    assert_eq!(got, b"bye");
    assert!(
        start.elapsed() >= Duration::from_millis(280),
        "{:?}",
        start.elapsed()
    );
}

/// Which of `n` connections got faults, from the `-v` log of one run.
fn faulted_connections(seed: &str, n: usize) -> Vec<bool> {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let target = echo.listening().to_string();
    let (p, addr) = forward(&[
        &target,
        "--slice",
        "1:4",
        "--fault-share",
        "0.5",
        "--seed",
        seed,
    ]);
    let mut ports = Vec::new();
    for i in 0..n {
        let mut c = connect(addr);
        ports.push(c.local_addr().unwrap().port());
        c.write_all(b"ping").unwrap();
        assert_eq!(read_exact(&mut c, 4), b"ping");
        c.shutdown(Shutdown::Write).unwrap();
        let _ = read_to_end(&mut c);
        // Its end is logged before the next one starts, so connection
        // numbers follow this order.
        p.stderr.wait_until("the connection's end", |b| {
            String::from_utf8_lossy(b).matches(": closed;").count() > i
        });
    }
    let log = p.stderr.text();
    ports
        .iter()
        .map(|port| log.contains(&format!("127.0.0.1:{port} -> {target}: faults:")))
        .collect()
}

#[test]
fn fault_share_picks_connections_and_the_seed_repeats_them() {
    let a = faulted_connections("42", 12);
    let b = faulted_connections("42", 12);
    assert_eq!(a, b, "the same seed, the same connections");
    let n = a.iter().filter(|x| **x).count();
    assert!(n > 0 && n < 12, "{a:?}");
}

#[test]
fn udp_loss_and_duplicates() {
    let echo = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--echo"]);
    let target = format!("udp:{}", echo.listening());
    // At most 200 replies: more would overflow the client's receive buffer
    // before it reads them.
    let count = |sent: u32, args: &[&str]| -> usize {
        let mut full = vec!["-v", "forward", "udp:127.0.0.1:0", &target];
        full.extend_from_slice(args);
        let p = sockit_noinput(&full);
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.connect(p.listening()).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        for i in 0..sent {
            c.send(&i.to_be_bytes()).unwrap();
            // Paced, so no buffer drops what the fault did not.
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut n = 0;
        let mut b = [0u8; 16];
        while c.recv(&mut b).is_ok() {
            n += 1;
        }
        n
    };
    // Up and down: a datagram survives both ways with 0.5 * 0.5.
    let lost = count(200, &["--loss", "50%", "--seed", "1"]);
    assert!(
        (20..=90).contains(&lost),
        "{lost} of 200 echoes with 50% loss each way"
    );
    let twice = count(100, &["--duplicate", "up:100%"]);
    assert_eq!(twice, 200);
}

#[test]
fn bad_fault_values_and_misfits_are_usage_errors() {
    for args in [
        &[
            "forward",
            "127.0.0.1:0",
            "127.0.0.1:9",
            "--delay",
            "sideways:5ms",
        ][..],
        &["forward", "127.0.0.1:0", "127.0.0.1:9", "--delay", "up:"],
        &["forward", "127.0.0.1:0", "127.0.0.1:9", "--slice", "5:2"],
        &["forward", "127.0.0.1:0", "127.0.0.1:9", "--rate", "0"],
        &[
            "forward",
            "127.0.0.1:0",
            "127.0.0.1:9",
            "--fault-share",
            "1.5",
        ],
        &["forward", "127.0.0.1:0", "127.0.0.1:9", "--loss", "5%"],
        &[
            "forward",
            "udp:127.0.0.1:0",
            "udp:127.0.0.1:9",
            "--delay",
            "5ms",
        ],
        &[
            "forward",
            "udp:127.0.0.1:0",
            "udp:127.0.0.1:9",
            "--loss",
            "101%",
        ],
    ] {
        let out = run(args, b"");
        assert_eq!(out.code(), 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("sockit: ") && out.stderr.lines().count() == 1,
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("listening on"), "{}", out.stderr);
    }
}

/// A client that never sends keeps nothing from the sink: the fault-free
/// connections of a `--fault-share 0` relay stay on the zero-copy path and
/// carry a large stream unchanged.
#[test]
fn a_share_of_zero_faults_nothing() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let (p, addr) = forward(&[
        &echo.listening().to_string(),
        "--reset-after",
        "10",
        "--fault-share",
        "0",
    ]);
    let data = random_bytes(4 << 20, 11);
    let back = round_trip(addr, &data);
    assert!(back == data);
    assert!(
        !p.stderr.text().contains(": faults:"),
        "{}",
        p.stderr.text()
    );
}

// sockit's own features through faults (issue 15, part 2).

fn sockit_in_config(cfg: &std::path::Path, args: &[&str]) -> Proc {
    util::spawn(
        std::process::Command::new(bin())
            .env("XDG_CONFIG_HOME", cfg)
            .args(args),
        std::process::Stdio::null(),
        None,
    )
}

#[test]
fn get_through_slices_and_delay_is_verified() {
    let (_tmp, root, dl, server) = served_file(1 << 20);
    let (_p, addr) = forward(&[
        &server.listening().to_string(),
        "--slice",
        "1:512",
        "--delay",
        "5ms",
    ]);
    let out = dl.join("f.bin");
    let f = get_to(addr, &out, &[]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(f.stderr.contains("blake3 verified"), "{}", f.stderr);
    assert_eq!(hash_file(&root.join("f.bin")), hash_file(&out));
}

/// `sockit get ADDR f.bin -o OUT EXTRA…`.
fn get_to(addr: impl std::fmt::Display, out: &std::path::Path, extra: &[&str]) -> Finished {
    let addr = addr.to_string();
    let mut args = vec!["get", addr.as_str(), "f.bin", "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args, b"")
}

#[test]
fn upper_and_frame_messages_arrive_whole_through_slice_1() {
    let upper = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--upper"]);
    let (_p, addr) = forward(&[&upper.listening().to_string(), "--slice", "1"]);
    let port = addr.port().to_string();
    let f = run(
        &["tcp", "connect", "127.0.0.1", &port],
        b"hello\nsticky world\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(String::from_utf8_lossy(&f.stdout), "HELLO\nSTICKY WORLD\n");
    let frames = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--frame", "--echo"]);
    let (_q, addr) = forward(&[&frames.listening().to_string(), "--slice", "1"]);
    let port = addr.port().to_string();
    let f = run(
        &["tcp", "connect", "127.0.0.1", &port, "--frame"],
        "你好\n\nsticky packets, fixed\n".as_bytes(),
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(
        String::from_utf8_lossy(&f.stdout),
        "你好\n\nsticky packets, fixed\n"
    );
}

#[test]
fn tls_survives_slices_and_a_stalled_handshake_hits_its_deadline() {
    let cfg = tempfile::tempdir().unwrap();
    let server = sockit_in_config(
        cfg.path(),
        &["tcp", "listen", "127.0.0.1:0", "--echo", "--tls", "-k"],
    );
    let target = server.listening().to_string();
    let (_p, addr) = forward(&[&target, "--slice", "1:64"]);
    let port = addr.port().to_string();
    let data = "through the slicer\n".repeat(200);
    let f = run(
        &["tcp", "connect", "127.0.0.1", &port, "--tls", "--insecure"],
        data.as_bytes(),
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(String::from_utf8_lossy(&f.stdout), data);
    // The server's first flight stalls after 100 bytes: the client's
    // handshake deadline fires, in one sentence.
    let (_q, addr) = forward(&[&target, "--stall-after", "down:100"]);
    let port = addr.port().to_string();
    let f = run(
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            &port,
            "--tls",
            "--insecure",
            "--handshake-timeout",
            "1",
        ],
        b"",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    // One sentence for the failure (after --insecure's warning line).
    let last = f.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("sockit: ") && last.contains("handshake"),
        "{}",
        f.stderr
    );
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
}

/// A served folder with one file of `size` random bytes, and a download
/// folder.
fn served_file(
    size: usize,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    Proc,
) {
    let tmp = tempfile::tempdir().unwrap();
    let (root, dl) = (tmp.path().join("srv"), tmp.path().join("dl"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(root.join("f.bin"), random_bytes(size, 23)).unwrap();
    let server = sockit_noinput(&["serve", root.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    (tmp, root, dl, server)
}

#[test]
fn get_retry_resumes_through_resets_until_the_file_is_verified() {
    let (_tmp, root, dl, server) = served_file(3 << 20);
    // Every connection is reset after 1 MiB down: each attempt gets about
    // 1 MiB further, from the .part. (The rate lets the client keep up: a
    // reset throws away what still waits unread in its socket.)
    let (_p, addr) = forward(&[
        &server.listening().to_string(),
        "--reset-after",
        "down:1M",
        "--rate",
        "down:20M",
    ]);
    let out = dl.join("f.bin");
    let f = get_to(addr, &out, &["--retry", "6"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(
        f.stderr.contains("retrying in 0.5 s (1 of 6)"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("blake3 verified"), "{}", f.stderr);
    assert_eq!(hash_file(&root.join("f.bin")), hash_file(&out));
    // Without --retry the first reset is the end, in one sentence, and
    // the .part stays for the next run.
    let out2 = dl.join("g.bin");
    let f = get_to(addr, &out2, &[]);
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(
        f.stderr.contains("run the same command again to resume"),
        "{}",
        f.stderr
    );
    assert!(dl.join("g.bin.part").exists());
}

#[test]
fn get_through_a_stall_times_out_keeps_its_part_and_resumes_later() {
    let (_tmp, root, dl, server) = served_file(2 << 20);
    let (_p, addr) = forward(&[&server.listening().to_string(), "--stall-after", "down:1M"]);
    let out = dl.join("f.bin");
    let f = get_to(addr, &out, &["--timeout", "1"]);
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("nothing arrived for 1 s"), "{}", f.stderr);
    let part = dl.join("f.bin.part");
    assert!(std::fs::metadata(&part).unwrap().len() > 0);
    // Straight from the server, the next run resumes and verifies.
    let f = get_to(server.listening(), &out, &[]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(f.stderr.contains("blake3 verified"), "{}", f.stderr);
    assert_eq!(hash_file(&root.join("f.bin")), hash_file(&out));
    assert!(!part.exists());
}

#[test]
fn udp_loss_drops_what_forward_reports_and_nothing_else() {
    // The target counts what arrives, draining as it comes.
    let target: UdpSocket = {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        // Room for the whole burst (the kernel caps it at twice rmem_max).
        let _ = s.set_recv_buffer_size(1 << 20);
        s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        s.into()
    };
    let taddr = target.local_addr().unwrap();
    target
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let counter = std::thread::spawn(move || {
        let mut n = 0u64;
        let mut b = [0u8; 64];
        while target.recv(&mut b).is_ok() {
            n += 1;
        }
        n
    });
    let p = sockit_noinput(&[
        "-v",
        "forward",
        "udp:127.0.0.1:0",
        &format!("udp:{taddr}"),
        "--loss",
        "up:5%",
        "--seed",
        "9",
        "--idle-timeout",
        "1",
    ]);
    let port = p.listening().port().to_string();
    let lines: String = (0..500).map(|i| format!("datagram {i}\n")).collect();
    let f = run(
        &["udp", "send", "127.0.0.1", &port, "--wait", "0.1"],
        lines.as_bytes(),
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let said = p.stderr.wait_for(" down\n");
    let line = said
        .lines()
        .find(|l| l.contains("the faults dropped"))
        .unwrap()
        .to_string();
    let num = |after: &str| -> u64 {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (relayed, dropped) = (num("; "), num("dropped "));
    let arrived = counter.join().unwrap();
    assert_eq!(arrived, relayed - dropped, "{line}");
    let pct = 100.0 * dropped as f64 / relayed as f64;
    assert!((1.0..=10.0).contains(&pct), "{pct}% dropped: {line}");
}

#[test]
fn chat_lines_arrive_whole_through_slice_1_both_ways() {
    use std::io::BufRead;
    let server = sockit(&["tcp", "listen", "127.0.0.1:0", "--chat"]);
    let (_p, addr) = forward(&[
        &server.listening().to_string(),
        "--slice",
        "1",
        "--slice-delay",
        "1ms",
    ]);
    let join = |nick: &str| {
        let s = connect(addr);
        let mut r = std::io::BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        w.write_all(format!("/nick {nick}\n").as_bytes()).unwrap();
        let mut line = String::new();
        while !line.contains(&format!("is now {nick}")) {
            line.clear();
            assert!(
                r.read_line(&mut line).unwrap() > 0,
                "closed before the nick took"
            );
        }
        (r, w)
    };
    let (_ar, mut aw) = join("alice");
    let (mut br, _bw) = join("bob");
    aw.write_all("sticky 你好 packets\n".as_bytes()).unwrap();
    let mut line = String::new();
    while !line.contains("sticky") {
        line.clear();
        assert!(br.read_line(&mut line).unwrap() > 0);
    }
    assert_eq!(line, "[alice] sticky 你好 packets\n");
}

#[test]
fn bench_udp_through_loss_reports_what_forward_dropped() {
    // The server keeps its UDP tests on one port, so forward can point at it.
    let server = sockit_noinput(&["bench", "server", "-l", "127.0.0.1:0", "--udp-port", "0"]);
    let control = server.listening();
    let said = server.stderr.wait_line("UDP tests on ");
    let data: SocketAddr = said
        .lines()
        .find_map(|l| l.strip_prefix("UDP tests on "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let fwd = sockit_noinput(&[
        "-v",
        "forward",
        "udp:127.0.0.1:0",
        &format!("udp:{data}"),
        "--loss",
        "up:5%",
        "--seed",
        "4",
        "--idle-timeout",
        "1",
    ]);
    let relay = fwd.listening().port().to_string();
    // 20 Mbit/s of 1400 B datagrams: nothing a loopback drops by itself.
    let f = run(
        &[
            "bench",
            "client",
            &control.to_string(),
            "udp",
            "-t",
            "1",
            "-b",
            "20M",
            "--udp-port",
            &relay,
            "--json",
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let json = String::from_utf8_lossy(&f.stdout).to_string();
    let field = |k: &str| -> u64 {
        let at = json.find(&format!("\"{k}\":")).unwrap() + k.len() + 3;
        json[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (sent, lost) = (field("packets"), field("lost_packets"));
    let ended = fwd.stderr.wait_for(" down\n");
    let line = ended
        .lines()
        .find(|l| l.contains("the faults dropped"))
        .unwrap()
        .to_string();
    let rest = &line[line.find("dropped ").unwrap() + 8..];
    let dropped: u64 = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent > 1000, "{json}");
    let pct = 100.0 * dropped as f64 / sent as f64;
    assert!((2.0..=8.0).contains(&pct), "{pct}% dropped: {line}");
    // The bench reports the relay's drops, give or take a datagram or two
    // still in flight when the test ended.
    assert!(
        lost.abs_diff(dropped) <= 2 + sent / 200,
        "bench lost {lost}, forward dropped {dropped}: {json} / {line}"
    );
}

#[test]
fn a_fixed_udp_port_serves_one_test_at_a_time_and_flags_are_checked() {
    let server = sockit_noinput(&[
        "-v",
        "bench",
        "server",
        "-l",
        "127.0.0.1:0",
        "--udp-port",
        "0",
    ]);
    let control = server.listening().to_string();
    let args = ["bench", "client", &control, "udp", "-t", "4", "-b", "1M"];
    server.stderr.wait_line("UDP tests on ");
    let first = sockit_noinput(&args);
    // The first test holds the port for 4 s; a second one meanwhile is refused.
    server.stderr.wait_for("test holds UDP port");
    let deadline = Instant::now() + WAIT;
    let mut refused = None;
    while Instant::now() < deadline {
        let f = run(
            &["bench", "client", &control, "udp", "-t", "1", "-b", "1M"],
            b"",
        );
        if f.code() != 0 {
            refused = Some(f.stderr);
            break;
        }
    }
    let refused = refused.expect("a second UDP test was refused while the first ran");
    assert!(refused.contains("busy with another test"), "{refused}");
    assert_eq!(first.finish().code(), 0);
    // Free again afterwards.
    let f = run(
        &["bench", "client", &control, "udp", "-t", "0.5", "-b", "1M"],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let f = run(
        &[
            "bench",
            "client",
            &control,
            "tcp",
            "-t",
            "0.5",
            "--udp-port",
            "9",
        ],
        b"",
    );
    assert_eq!(f.code(), 2, "{}", f.stderr);
    assert!(
        f.stderr
            .contains("--udp-port is for the udp and udp-rr tests"),
        "{}",
        f.stderr
    );
}

/// The control for the faults above, and a regression test: through a
/// plain (spliced) forward, a download's tail arrives while the server
/// still holds the connection open. A splice shorter than the pipe was once
/// taken for "the socket is drained", and the last few hundred KiB waited
/// until the server gave up on the idle connection; `--timeout 3` fails
/// the download if that comes back.
#[test]
fn a_spliced_download_gets_its_tail_without_waiting_for_the_server_to_close() {
    let (_tmp, root, dl, server) = served_file(5_000_000);
    let (_p, addr) = forward(&[&server.listening().to_string()]);
    let want = hash_file(&root.join("f.bin"));
    for i in 0..6 {
        let out = dl.join(format!("f{i}.bin"));
        let f = get_to(addr, &out, &["--timeout", "3"]);
        assert_eq!(f.code(), 0, "run {i}: {}", f.stderr);
        assert_eq!(hash_file(&out), want);
    }
}
