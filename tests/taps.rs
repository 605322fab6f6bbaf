//! Seeing the bytes: `--hexdump` (checked against ncat's `-x`, row for
//! row), `--log DIR` (replayed), and `--send-only`/`--recv-only`.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::process::{Command, Stdio};

use util::*;

/// A server that reads a request up to a blank line, answers, and closes.
fn web_peer() -> (String, std::thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let h = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 256];
        while !req.ends_with(b"\r\n\r\n") {
            let n = c.read(&mut b).unwrap();
            assert!(n > 0);
            req.extend_from_slice(&b[..n]);
        }
        c.write_all(
            b"HTTP/1.0 200 OK\r\n\r\nhello world, this is more than sixteen bytes\n\x00\x01\xff",
        )
        .unwrap();
        req
    });
    (port, h)
}

/// The dump's rows without sockit's header lines and direction markers:
/// what ncat's `-x` writes.
fn rows_only(dump: &str) -> String {
    dump.lines()
        .filter(|l| !l.starts_with("> 20") && !l.starts_with("< 20"))
        .map(|l| l.get(2..).unwrap_or(""))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_hex_dump_has_ncats_rows_and_says_which_way() {
    if !have_tool("ncat") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let request = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    // ncat -x, the reference.
    let (port, peer) = web_peer();
    let ncat_dump = dir.path().join("ncat.hex");
    let out = spawn(
        Command::new("ncat").args(["-x", ncat_dump.to_str().unwrap(), "127.0.0.1", &port]),
        Stdio::piped(),
        None,
    );
    let mut out = out;
    out.send(request);
    let ncat = out.finish();
    assert_eq!(peer.join().unwrap(), request);
    // sockit, the same exchange.
    let (port, peer) = web_peer();
    let ours_dump = dir.path().join("sockit.hex");
    let f = run(
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            &port,
            "--hexdump",
            ours_dump.to_str().unwrap(),
        ],
        request,
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(peer.join().unwrap(), request);
    assert_eq!(f.stdout, ncat.stdout);
    let theirs = std::fs::read_to_string(&ncat_dump).unwrap();
    let ours = std::fs::read_to_string(&ours_dump).unwrap();
    assert_eq!(rows_only(&ours), theirs, "sockit:\n{ours}\nncat:\n{theirs}");
    // Each chunk: a header with the way, the time, the peer and the offset.
    let headers: Vec<&str> = ours
        .lines()
        .filter(|l| l.starts_with("> 20") || l.starts_with("< 20"))
        .collect();
    assert_eq!(headers.len(), 2, "{ours}");
    assert!(
        headers[0].starts_with("> ")
            && headers[0].contains(&format!("127.0.0.1:{port} offset 0, 27 bytes")),
        "{ours}"
    );
    assert!(
        headers[1].starts_with("< ") && headers[1].contains("offset 0, 67 bytes"),
        "{ours}"
    );
    // Every row says its way too, so grep '^<' keeps what came back.
    assert!(
        ours.lines().filter(|l| l.starts_with("< 0")).count() >= 4,
        "{ours}"
    );
}

#[test]
fn the_dump_goes_to_stderr_without_a_file() {
    let (port, peer) = web_peer();
    let f = run(
        &["tcp", "connect", "127.0.0.1", &port, "--hexdump"],
        b"GET / HTTP/1.0\r\n\r\n",
    );
    peer.join().unwrap();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(
        f.stderr.contains(
            "> 0000   47 45 54 20 2f 20 48 54  54 50 2f 31 2e 30 0d 0a  GET./.HTTP/1.0.."
        ),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("< 0000   48 54 54 50"), "{}", f.stderr);
}

#[test]
fn the_log_keeps_each_way_for_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (port, peer) = web_peer();
    let f = run(
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            &port,
            "--log",
            log.to_str().unwrap(),
        ],
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    peer.join().unwrap();
    assert_eq!(
        std::fs::read(log.join("1.sent")).unwrap(),
        b"GET / HTTP/1.0\r\n\r\n"
    );
    assert_eq!(std::fs::read(log.join("1.received")).unwrap(), f.stdout);
    // Replayed: the same request, the same answer.
    let (port, peer) = web_peer();
    let replay = spawn(
        Command::new(bin()).args(["tcp", "connect", "127.0.0.1", &port]),
        Stdio::from(std::fs::File::open(log.join("1.sent")).unwrap()),
        None,
    )
    .finish();
    assert_eq!(peer.join().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(replay.stdout, f.stdout);
}

#[test]
fn forward_dumps_and_logs_each_connection() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let dump = dir.path().join("dump");
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let target = echo.listening().to_string();
    let fwd = sockit_noinput(&[
        "forward",
        "127.0.0.1:0",
        &target,
        "--hexdump",
        dump.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ]);
    let addr = fwd.listening();
    for i in 1..=2 {
        let mut c = connect(addr);
        let msg = format!("connection {i}\n");
        c.write_all(msg.as_bytes()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut c), msg.as_bytes());
        // Both logs are whole once the relay has logged its end.
        let deadline = std::time::Instant::now() + WAIT;
        while std::fs::read(log.join(format!("{i}.received"))).unwrap_or_default() != msg.as_bytes()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no log for connection {i}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            std::fs::read(log.join(format!("{i}.sent"))).unwrap(),
            msg.as_bytes()
        );
    }
    fwd.kill();
    echo.kill();
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("#1 127.0.0.1:"), "{text}");
    assert!(
        text.contains(&format!("-> {target} offset 0, 13 bytes")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("< ") && l.contains("#2 ")),
        "{text}"
    );
}

#[test]
fn send_only_drops_what_arrives_and_recv_only_sends_nothing() {
    // --send-only: the answer is dropped, the request goes out in full.
    let (port, peer) = web_peer();
    let f = run(
        &["tcp", "connect", "127.0.0.1", &port, "--send-only"],
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(peer.join().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
    assert!(f.stdout.is_empty());
    // --recv-only: stdin is never read, what arrives is printed.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.write_all(b"news\n").unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 16];
        // Nothing comes from a --recv-only client.
        let got = c.read(&mut b);
        assert!(got.is_err(), "the client sent {got:?}");
    });
    let f = run(
        &["tcp", "connect", "127.0.0.1", &port, "--recv-only"],
        b"not sent\n",
    );
    peer.join().unwrap();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"news\n");
    // With the multi-peer modes they are refused, naming the clash.
    let f = run(
        &["tcp", "listen", "127.0.0.1:0", "--echo", "--hexdump"],
        b"",
    );
    assert_eq!(f.code(), 2);
    assert!(
        f.stderr.contains("--hexdump works on one peer's session"),
        "{}",
        f.stderr
    );
}
