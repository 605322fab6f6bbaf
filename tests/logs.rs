//! `--log-format json`: every line on stderr is a JSON object with `ts`,
//! `level`, `event`, `message` and the fields `docs/LOGS.md` promises.
//! Each event type is made for real and parsed.

mod util;

use std::io::Write;
use std::net::Shutdown;

use serde_json::Value;
use util::*;

/// Every stderr line, parsed; a line that is not a JSON object fails.
fn lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            for f in ["ts", "level", "event", "message"] {
                assert!(v[f].is_string(), "no {f}: {l}");
            }
            let ts = v["ts"].as_str().unwrap();
            assert!(
                ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "{l}"
            );
            v
        })
        .collect()
}

/// The lines of one event.
fn of<'a>(all: &'a [Value], event: &str) -> Vec<&'a Value> {
    all.iter().filter(|v| v["event"] == event).collect()
}

/// Asserts that `v` has each field, of JSON type string or number.
fn has(v: &Value, strings: &[&str], numbers: &[&str]) {
    for f in strings {
        assert!(v[f].is_string(), "{f} is not a string in {v}");
    }
    for f in numbers {
        assert!(v[f].is_number(), "{f} is not a number in {v}");
    }
}

#[test]
fn sessions_listeners_refusals_and_errors() {
    let server = sockit_noinput(&[
        "--log-format",
        "json",
        "-v",
        "tcp",
        "listen",
        "127.0.0.1:0",
        "--echo",
        "--deny",
        "127.0.0.2",
    ]);
    // The listening line is JSON too, and says where.
    let first = server.stderr.wait_line("listening");
    let v: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(v["event"], "listening");
    let addr = v["addr"].as_str().unwrap().to_string();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let f = run(
        &[
            "--log-format",
            "json",
            "-v",
            "tcp",
            "connect",
            "127.0.0.1",
            &port,
        ],
        b"hello\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"hello\n");
    let client = lines(&f.stderr);
    has(of(&client, "connected")[0], &["peer", "local"], &[]);
    let closed = of(&client, "closed");
    has(
        closed[0],
        &["peer", "first_closed"],
        &["bytes_up", "bytes_down", "secs"],
    );
    assert_eq!(closed[0]["bytes_up"], 6);
    // A refused client, and the server's view of both.
    let f = run(
        &[
            "--log-format",
            "json",
            "tcp",
            "connect",
            "127.0.0.1",
            &port,
            "--bind",
            "127.0.0.2:0",
        ],
        b"x\n",
    );
    assert_eq!(f.code(), 1);
    let err = lines(&f.stderr);
    assert_eq!(err.len(), 1, "{}", f.stderr);
    assert_eq!(
        (err[0]["event"].as_str(), err[0]["level"].as_str()),
        (Some("error"), Some("error"))
    );
    server.stderr.wait_for("\"event\":\"refused\"");
    let f = server.interrupt();
    let all = lines(&f.stderr);
    has(of(&all, "refused")[0], &["client", "reason"], &[]);
    assert_eq!(of(&all, "refused")[0]["level"], "warn");
    has(of(&all, "connected")[0], &["peer"], &[]);
    has(of(&all, "closed")[0], &["peer"], &[]);
    // A usage error is an error line too.
    let f = run(&["--log-format", "json", "tcp", "connect"], b"");
    assert_eq!(f.code(), 2);
    assert_eq!(lines(&f.stderr)[0]["event"], "error");
}

#[test]
fn relays_use_the_same_names_as_their_json_events() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let target = echo.listening().to_string();
    let fwd = sockit_noinput(&[
        "--log-format",
        "json",
        "-v",
        "forward",
        "127.0.0.1:0",
        &target,
        "127.0.0.1:1",
        "--json",
    ]);
    let addr = fwd.listening();
    // Two clients: one relayed, one that finds the first target down.
    for _ in 0..2 {
        let mut c = connect(addr);
        c.write_all(b"hi\n").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let _ = read_to_end(&mut c);
    }
    fwd.stderr.wait_for("\"event\":\"closed\"");
    let f = fwd.interrupt();
    echo.kill();
    let log = lines(&f.stderr);
    let connected = of(&log, "connected");
    has(connected[0], &["client", "target"], &["id"]);
    let closed = of(&log, "closed");
    has(
        closed[0],
        &["client", "target", "end", "first_closed"],
        &["id", "bytes_up", "bytes_down", "secs"],
    );
    // The --json close event on stdout has the same fields.
    let stdout = String::from_utf8_lossy(&f.stdout);
    let close: Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["event"] == "close")
        .expect("a close event");
    for k in [
        "id",
        "client",
        "target",
        "end",
        "bytes_up",
        "bytes_down",
        "first_closed",
    ] {
        assert_eq!(close[k], closed[0][k], "{k}: {close} vs {}", closed[0]);
    }
}

#[test]
fn proxy_tunnels_and_their_refusals() {
    let echo = sockit_noinput(&["tcp", "listen", "127.0.0.1:0", "--echo"]);
    let eport = echo.listening().port().to_string();
    let proxy = sockit_noinput(&[
        "--log-format",
        "json",
        "-v",
        "proxy",
        "127.0.0.1:0",
        "--allow-dest",
        "127.0.0.1/32",
    ]);
    let pport = proxy.listening().port();
    let url = format!("socks5h://127.0.0.1:{pport}");
    let f = run(
        &["tcp", "connect", "127.0.0.1", &eport, "--proxy", &url],
        b"through\n",
    );
    assert_eq!(f.stdout, b"through\n", "{}", f.stderr);
    // A destination the guard refuses.
    let f = run(&["tcp", "connect", "::1", &eport, "--proxy", &url], b"x\n");
    assert_eq!(f.code(), 1);
    proxy.stderr.wait_for("\"event\":\"refused\"");
    let f = proxy.interrupt();
    echo.kill();
    let all = lines(&f.stderr);
    has(
        of(&all, "connected")[0],
        &["client", "target", "protocol"],
        &["id"],
    );
    has(
        of(&all, "closed")[0],
        &["client", "target", "end"],
        &["bytes_up", "bytes_down", "secs"],
    );
    has(of(&all, "refused")[0], &["client", "reason"], &[]);
}

#[test]
fn certificates_and_download_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("big.bin"), random_bytes(4 << 20, 3)).unwrap();
    let server = spawn(
        std::process::Command::new(bin())
            .args([
                "--log-format",
                "json",
                "serve",
                root.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--tls",
                "--max-rate",
                "2M",
            ])
            .env("XDG_CONFIG_HOME", tmp.path()),
        std::process::Stdio::null(),
        None,
    );
    server.stderr.wait_line("\"certificate\"");
    let head = server.stderr.text();
    let all = lines(&head);
    let port = of(&all, "listening")[0]["addr"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let cert = of(&all, "certificate")[0];
    let fp = cert["fingerprint"].as_str().unwrap().to_string();
    assert!(fp.starts_with("SHA256:"), "{cert}");
    let dl = tmp.path().join("dl");
    let f = run(
        &[
            "--log-format",
            "json",
            "get",
            &format!("127.0.0.1:{port}"),
            "big.bin",
            "-d",
            dl.to_str().unwrap(),
            "--tls",
            "--pin",
            &fp,
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let progress = lines(&f.stderr);
    let p = of(&progress, "progress");
    assert!(
        p.len() >= 2,
        "a 2 s download reports at least twice: {}",
        f.stderr
    );
    has(p[0], &["name"], &["bytes", "total", "secs"]);
    assert_eq!(p.last().unwrap()["bytes"], 4 << 20);
    server.kill();
}
