//! End-to-end tests of `--frame` (the sticky-packet fix) and `--chat`.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::*;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).expect("frame header");
    let mut body = vec![0u8; u32::from_be_bytes(h) as usize];
    s.read_exact(&mut body).expect("frame body");
    body
}

#[test]
fn two_frames_in_one_write_arrive_as_two_lines() {
    let server = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--frame"]);
    let addr = server.listening();
    let mut c = connect(addr);
    let mut both = frame(b"first message");
    both.extend(frame(b"second message"));
    c.write_all(&both).unwrap(); // one write: the bytes stick together
    c.shutdown(Shutdown::Write).unwrap();
    let f = server.finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"first message\nsecond message\n");
}

#[test]
fn connect_frame_sends_one_frame_per_line_and_prints_frames_as_lines() {
    let l = TcpListener::bind("[::1]:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let t = std::thread::spawn(move || {
        let (mut p, _) = l.accept().unwrap();
        p.set_read_timeout(Some(WAIT)).unwrap();
        // Reply split at awkward points: header in two pieces, two frames glued.
        let mut reply = frame(b"reply one");
        reply.extend(frame(b""));
        reply.extend(frame(b"reply three"));
        p.write_all(&reply[..2]).unwrap();
        p.flush().unwrap();
        p.write_all(&reply[2..]).unwrap();
        p.shutdown(Shutdown::Write).unwrap();
        read_to_end(&mut p)
    });
    let f = run(&["tcp", "connect", "::1", &port, "--frame"], b"a\n\nbc\n");
    let wire = t.join().unwrap();
    let mut want = frame(b"a");
    want.extend(frame(b""));
    want.extend(frame(b"bc"));
    assert_eq!(wire, want);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"reply one\n\nreply three\n");
}

#[test]
fn seed_style_python_client_against_frame_echo() {
    if !have_tool("python3") {
        return;
    }
    let server = sockit(&["tcp", "listen", "127.0.0.1:0", "--frame", "--echo"]);
    let port = server.listening().port().to_string();
    let out = python_peer(
        "frame_client.py",
        &["127.0.0.1", &port, "你好", "", "sticky packets, fixed"],
    );
    assert_eq!(out, "你好\n\nsticky packets, fixed\n");
    server.kill();
}

#[test]
fn frame_upper_and_quit() {
    let server = sockit(&[
        "tcp",
        "listen",
        "127.0.0.1:0",
        "--frame",
        "--upper",
        "--quit",
        "bye",
    ]);
    let addr = server.listening();
    let mut c = connect(addr);
    let mut msgs = frame(b"hello\nworld");
    msgs.extend(frame(b"bye"));
    msgs.extend(frame(b"never answered"));
    c.write_all(&msgs).unwrap();
    assert_eq!(
        read_frame(&mut c),
        b"HELLO\nWORLD",
        "a frame may hold newlines"
    );
    assert_eq!(read_to_end(&mut c), b"", "quit word closes that peer");
    server.kill();
}

#[test]
fn oversized_and_truncated_frames_disconnect_only_that_peer() {
    let server = sockit(&[
        "tcp",
        "listen",
        "127.0.0.1:0",
        "--frame",
        "--echo",
        "--max-frame",
        "1024",
    ]);
    let addr = server.listening();
    let mut good = connect(addr);
    // Announces 4 GiB: refused before any memory is reserved for it.
    let mut bad = connect(addr);
    bad.write_all(&[0xff, 0xff, 0xff, 0xff, b'x']).unwrap();
    let msg = read_frame(&mut bad);
    let msg = String::from_utf8_lossy(&msg);
    assert!(msg.contains("4294967295-byte frame"), "{msg}");
    assert!(msg.contains("1024-byte limit"), "{msg}");
    assert_eq!(read_to_end(&mut bad), b"");
    // One byte over the limit.
    let mut over = connect(addr);
    over.write_all(&frame(&[b'a'; 1025])).unwrap();
    let _ = read_frame(&mut over);
    assert_eq!(read_to_end(&mut over), b"");
    // Closes in the middle of a frame.
    let mut cut = connect(addr);
    cut.write_all(&[0, 0, 0, 10, b'a', b'b']).unwrap();
    cut.shutdown(Shutdown::Write).unwrap();
    let msg = read_frame(&mut cut);
    assert!(String::from_utf8_lossy(&msg).contains("middle of a frame"));
    server.stderr.wait_for("middle of a frame");
    // The well-behaved peer is unaffected, exactly at the limit.
    let big = vec![b'z'; 1024];
    good.write_all(&frame(&big)).unwrap();
    assert_eq!(read_frame(&mut good), big);
    assert!(server.peak_rss_kib() < 32 * 1024);
    server.kill();
}

/// A chat member seen from the test.
struct Member {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Member {
    fn join(addr: std::net::SocketAddr) -> Member {
        let s = connect(addr);
        Member {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }
    fn say(&mut self, line: &str) {
        self.w.write_all(line.as_bytes()).unwrap();
        self.w.write_all(b"\n").unwrap();
    }
    /// Reads lines until one contains `needle`; returns it.
    fn expect(&mut self, needle: &str) -> String {
        for _ in 0..200 {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).expect("read chat line");
            assert!(n > 0, "connection closed while waiting for {needle:?}");
            if line.contains(needle) {
                return line;
            }
        }
        panic!("{needle:?} not seen in 200 lines");
    }
}

#[test]
fn chat_room_with_three_peers() {
    let mut server = sockit(&["tcp", "listen", "127.0.0.1:0", "--chat"]);
    let addr = server.listening();
    let mut alice = Member::join(addr);
    alice.expect("welcome");
    alice.say("/nick alice");
    alice.expect("is now alice");
    let mut bob = Member::join(addr);
    bob.expect("welcome");
    alice.expect("joined");
    bob.say("/nick bob");
    alice.expect("is now bob");
    bob.expect("is now bob");
    let mut carol = Member::join(addr);
    carol.expect("welcome");
    carol.say("/nick alice");
    assert!(carol.expect("error").contains("taken"));
    carol.say("/nick bad name");
    carol.expect("error");
    carol.say("/nick carol");
    carol.expect("is now carol");

    alice.say("hi all");
    assert_eq!(bob.expect("hi all").trim_end(), "[alice] hi all");
    assert_eq!(carol.expect("hi all").trim_end(), "[alice] hi all");
    // The server's own terminal sees every line, and speaks as [server].
    server.out().wait_for("[alice] hi all");
    server.send(b"hello from the operator\n");
    assert_eq!(
        alice.expect("operator").trim_end(),
        "[server] hello from the operator"
    );
    bob.expect("operator");

    carol.say("/who");
    let who = carol.expect("in the room");
    assert!(who.contains("3 in the room: alice, bob, carol"), "{who}");
    carol.say("/help");
    carol.expect("/nick");
    carol.say("/frobnicate");
    carol.expect("unknown command");

    // Invalid UTF-8 from one peer is passed on lossily, hurting no one.
    bob.w.write_all(b"bad \xff bytes\n").unwrap();
    assert!(alice.expect("bad ").contains('\u{fffd}'));
    carol.expect("bad ");

    carol.say("/quit");
    alice.expect("carol left");
    bob.expect("carol left");
    drop(bob);
    alice.expect("bob left");
    server.out().wait_for("* bob left");
    let f = server.interrupt();
    assert_eq!(f.code(), 0, "{}", f.stderr);
}

#[test]
fn chat_rejects_overlong_lines_without_hurting_others() {
    let server = sockit(&[
        "tcp",
        "listen",
        "127.0.0.1:0",
        "--chat",
        "--max-line",
        "1000",
    ]);
    let addr = server.listening();
    let mut a = Member::join(addr);
    a.expect("welcome");
    let mut b = Member::join(addr);
    b.expect("welcome");
    a.expect("joined");
    a.w.write_all(&[b'x'; 5000]).unwrap();
    a.w.write_all(b"\nafter the long one\n").unwrap();
    a.expect("dropped");
    let line = b.expect("after the long one");
    assert!(!line.contains("xxxx"), "the long line was not relayed");
    server.kill();
}

#[test]
fn stalled_chat_peer_does_not_delay_others() {
    let server = sockit(&["tcp", "listen", "127.0.0.1:0", "--chat"]);
    let addr = server.listening();
    // The stalled peer: connected, never reads.
    let stalled = connect(addr);
    let mut a = Member::join(addr);
    a.expect("welcome");
    a.say("/nick pinger");
    a.expect("is now pinger");
    // A reads (and drops) everything it is sent, so only the stalled peer lags.
    let mut a_reader = a.r;
    let a_drain = std::thread::spawn(move || std::io::copy(&mut a_reader, &mut std::io::sink()));
    let mut a_w = a.w;
    let mut b = Member::join(addr);
    b.expect("welcome");
    let mut pusher = connect(addr);

    // B reads everything in a thread and records how late each ping arrives.
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut delays = Vec::new();
            let mut line = String::new();
            while !done.load(Ordering::Relaxed) || delays.len() < 20 {
                line.clear();
                match b.r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if let Some(t) = line.trim_end().strip_prefix("[pinger] ping ") {
                    let sent: u128 = t.parse().unwrap();
                    delays.push(start.elapsed().as_micros() - sent);
                    if delays.len() >= 20 {
                        break;
                    }
                }
            }
            delays
        })
    };
    // The room pushes 50 MiB: 1,600 lines of 32 KiB.
    let flood = std::thread::spawn(move || {
        let mut line = vec![b'f'; 32 * 1024];
        line.push(b'\n');
        for _ in 0..1600 {
            if pusher.write_all(&line).is_err() {
                break;
            }
        }
        pusher
    });
    for _ in 0..20 {
        let ping = format!("ping {}\n", start.elapsed().as_micros());
        if let Err(e) = a_w.write_all(ping.as_bytes()) {
            panic!(
                "pinger cut off ({e}); server said: {}",
                server.stderr.text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _pusher = flood.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let delays = reader.join().unwrap();
    assert_eq!(delays.len(), 20, "every ping arrived");
    let worst = delays.iter().max().copied().unwrap_or(0);
    // A room that waited on the stalled peer would hold every ping until that
    // peer was dropped. A loaded machine adds scheduling delay (a few hundred ms
    // with this test on a third of one core), so the bound is loose.
    assert!(
        worst < 2_000_000,
        "a ping took {worst} us; delays {delays:?}"
    );
    server.stderr.wait_for("not reading fast enough");
    drop(stalled);
    assert!(server.peak_rss_kib() < 64 * 1024);
    server.kill();
    let _ = a_w.shutdown(Shutdown::Both);
    let _ = a_drain.join();
}

#[test]
fn a_stopping_chat_server_tells_its_members_the_room_is_closing() {
    let server = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--chat"]);
    let addr = server.listening();
    let mut alice = Member::join(addr);
    alice.expect("welcome");
    let mut bob = Member::join(addr);
    bob.expect("welcome");
    alice.expect("joined");
    let f = server.interrupt();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    for m in [&mut alice, &mut bob] {
        m.expect("the room is closing");
        let mut rest = String::new();
        let _ = m.r.read_to_string(&mut rest);
        assert!(!rest.contains("left"), "{rest}");
    }
}

#[test]
fn a_line_over_max_frame_names_the_limit_not_a_cut_length() {
    let server = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--frame", "--echo"]);
    let a = server.listening();
    let (host, port) = (a.ip().to_string(), a.port().to_string());
    let args = [
        "tcp",
        "connect",
        &host,
        &port,
        "--frame",
        "--max-frame",
        "100",
    ];
    let line = format!("{}\n", "x".repeat(150));
    let f = run(&args, line.as_bytes());
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(
        f.stderr.contains("longer than the 100-byte frame limit"),
        "{}",
        f.stderr
    );
    assert!(!f.stderr.contains("a 100-byte message"), "{}", f.stderr);
    // A line of exactly the limit is fine.
    let line = format!("{}\n", "y".repeat(100));
    let f = run(&args, line.as_bytes());
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, line.as_bytes());
    server.kill();
}
