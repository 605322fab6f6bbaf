//! Issue 12, item 4: every command that prints exits quietly, with status 0,
//! when its stdout is a pipe nobody reads (`sockit … | head -0`).

mod util;

use std::process::{Command, Stdio};

use util::*;

fn into_closed_pipe(args: &[&str]) -> Finished {
    util::spawn(
        Command::new(bin()).args(args),
        Stdio::null(),
        Some(closed_pipe()),
    )
    .finish()
}

fn assert_quiet(args: &[&str]) {
    let f = into_closed_pipe(args);
    assert_eq!(f.code(), 0, "{args:?}: {}", f.stderr);
    for bad in ["roken pipe", "internal error", "panicked", "os error"] {
        assert!(!f.stderr.contains(bad), "{args:?}: {}", f.stderr);
    }
}

#[test]
fn every_printing_command_is_quiet_into_a_closed_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f.txt"), b"hello").unwrap();
    let serve = sockit_noinput(&[
        "serve",
        tmp.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let fs = serve.listening().to_string();
    let bench = sockit_noinput(&["bench", "server", "-l", "127.0.0.1:0"]);
    let bs = bench.listening().to_string();
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let e = echo.listening();
    let (eh, ep) = (e.ip().to_string(), e.port().to_string());
    let uecho = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--echo"]);
    let up = uecho.listening().port().to_string();
    let dl = tempfile::tempdir().unwrap();
    let out = dl.path().join("x").display().to_string();
    for args in [
        &["lookup", "hostname"][..],
        &["lookup", "host", "localhost"],
        &["lookup", "host", "localhost", "--json"],
        &["lookup", "addr", "127.0.0.1"],
        &["lookup", "service", "https"],
        &["lookup", "port", "443"],
        &["ls", &fs],
        &["ls", &fs, "--json"],
        &["get", &fs, "f.txt", "--json", "-o", &out],
        &["get", &fs, "f.txt", "-o", "-"],
        &["scan", "127.0.0.1", &ep],
        &["scan", "127.0.0.1", &ep, "--json"],
        &["ping", "127.0.0.1", &ep, "-c", "1"],
        &["bench", "client", &bs, "rr", "-t", "0.2"],
        &["bench", "client", &bs, "tcp", "-t", "0.2", "--json"],
        &["--help"],
        &["tcp", "connect", &eh, &ep],
        &["udp", "send", "127.0.0.1", &up, "hello", "--wait", "0.2"],
    ] {
        let _ = std::fs::remove_file(&out);
        assert_quiet(args);
    }
    // The demo prints as it goes: quiet too, with no server left behind.
    assert_quiet(&["demo"]);
    for p in [serve, bench, echo, uecho] {
        p.kill();
    }
}
