//! Every listener out of file descriptors (issue 15, part 3): `tcp listen`,
//! `serve`, `bench server` and `forward` keep the peers they have, do not spin while accept fails with EMFILE, and
//! accept again once descriptors come back. Run under `prlimit`.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use util::*;

/// Starts `sockit -v ARGS` with 48 descriptors, floods it with 60 clients,
/// checks that it backs off (under half a CPU-second in a second, and
/// about a log line a second) and that
/// `kept` (a check on a peer connected before the flood) still passes, then
/// frees the clients and waits (bounded) until `back` passes again.
fn exhaust(
    args: &[&str],
    before: impl Fn(SocketAddr) -> Box<dyn FnMut() -> bool>,
    back: impl Fn(SocketAddr) -> bool,
) {
    if !have_tool("prlimit") {
        return;
    }
    let p = util::spawn(
        std::process::Command::new("prlimit")
            .args(["--nofile=48:48", "--"])
            .arg(bin())
            .arg("-v")
            .args(args),
        std::process::Stdio::null(),
        None,
    );
    let addr = p.listening();
    let mut kept = before(addr);
    let held: Vec<_> = (0..60)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    p.stderr.wait_for("accept failed");
    let start = cpu_secs(p.child.id());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_secs(p.child.id()) - start;
    assert!(
        used < 0.5,
        "{args:?} used {used} s of CPU in 1 s while out of descriptors"
    );
    assert!(
        kept(),
        "{args:?}: a peer from before the flood was not served"
    );
    // Retrying every 50 ms, it logs about once a second, not every time.
    let lines = p.stderr.text().matches("accept failed").count();
    assert!(
        lines <= 4,
        "{args:?} logged {lines} accept failures in about a second"
    );
    drop(held);
    let ok = (0..50).any(|_| {
        if back(addr) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(ok, "{args:?} did not accept again");
    p.kill();
}

fn echoes(c: &mut TcpStream, msg: &[u8]) -> bool {
    c.write_all(msg).is_ok() && {
        let mut b = vec![0u8; msg.len()];
        c.read_exact(&mut b).is_ok() && b == msg
    }
}

#[test]
fn tcp_listen_out_of_descriptors_keeps_its_peers_and_recovers() {
    exhaust(
        &["tcp", "listen", "127.0.0.1:0", "--echo", "-k"],
        |addr| {
            let mut c = connect(addr);
            // Served before the flood, so it was surely accepted.
            assert!(echoes(&mut c, b"first\n"), "not served before the flood");
            Box::new(move || echoes(&mut c, b"still here\n"))
        },
        |addr| {
            let mut c = connect(addr);
            echoes(&mut c, b"back\n")
        },
    );
}

#[test]
fn serve_out_of_descriptors_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f.txt"), b"served\n").unwrap();
    let root = tmp.path().to_str().unwrap().to_string();
    let dl = tempfile::tempdir().unwrap();
    let out = dl.path().join("f.txt");
    exhaust(
        &["serve", &root, "--listen", "127.0.0.1:0"],
        |_| Box::new(|| true),
        |addr| {
            let f = run(
                &[
                    "get",
                    &addr.to_string(),
                    "f.txt",
                    "-o",
                    out.to_str().unwrap(),
                    "--timeout",
                    "2",
                ],
                b"",
            );
            f.code() == 0 && std::fs::read(&out).is_ok_and(|v| v == b"served\n")
        },
    );
}

#[test]
fn bench_server_out_of_descriptors_recovers() {
    exhaust(
        &["bench", "server", "--listen", "127.0.0.1:0"],
        |_| Box::new(|| true),
        |addr| {
            let f = run(
                &["bench", "client", &addr.to_string(), "rr", "-t", "0.2"],
                b"",
            );
            f.code() == 0
        },
    );
}

/// A peer from before the flood that half-closes still gets its whole
/// answer and its end of stream while accepts fail.
#[test]
fn a_half_closed_echo_peer_still_gets_its_answer_during_the_flood() {
    exhaust(
        &["tcp", "listen", "127.0.0.1:0", "--echo", "-k"],
        |addr| {
            let mut c = connect(addr);
            assert!(echoes(&mut c, b"first\n"), "not served before the flood");
            Box::new(move || {
                c.write_all(b"last words\n").is_ok()
                    && c.shutdown(Shutdown::Write).is_ok()
                    && read_to_end(&mut c) == b"last words\n"
            })
        },
        |addr| {
            let mut c = connect(addr);
            echoes(&mut c, b"back\n")
        },
    );
}

#[test]
fn forward_out_of_descriptors_keeps_its_relays_and_recovers() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo", "-k"]);
    let target = echo.listening().to_string();
    exhaust(
        &["forward", "127.0.0.1:0", &target],
        |addr| {
            let mut c = connect(addr);
            // Relayed before the flood: its target connection is open, so
            // the flood cannot take the descriptor it needed.
            assert!(echoes(&mut c, b"relayed\n"), "not relayed before the flood");
            Box::new(move || echoes(&mut c, b"still relayed\n"))
        },
        // A new client is relayed whole, half-close included.
        |addr| {
            let Ok(mut c) = TcpStream::connect_timeout(&addr, WAIT) else {
                return false;
            };
            let mut v = Vec::new();
            c.set_read_timeout(Some(WAIT)).is_ok()
                && c.write_all(b"back\n").is_ok()
                && c.shutdown(Shutdown::Write).is_ok()
                && c.read_to_end(&mut v).is_ok()
                && v == b"back\n"
        },
    );
}
