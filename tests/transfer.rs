//! End-to-end tests of `serve`, `get` and `ls`, over loopback.

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockit::frame::encode_frame;
use sockit::transfer::proto::{EntryKind, Request, Response, MAGIC};
use util::*;

/// A served directory and a download directory.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dl: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("srv");
    let dl = tmp.path().join("dl");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&dl).unwrap();
    Setup {
        _tmp: tmp,
        root,
        dl,
    }
}

fn serve(root: &Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["serve", root.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let p = sockit_noinput(&args);
    let addr = p.listening();
    (p, addr.to_string())
}

/// Runs `sockit ARGS` in `dir`.
fn run_in(dir: &Path, args: &[&str]) -> Finished {
    let p = util::spawn(
        Command::new(bin()).args(args).current_dir(dir),
        Stdio::null(),
        None,
    );
    p.finish()
}

#[test]
fn round_trips_of_many_sizes_are_verified() {
    let s = setup();
    let sizes = [0usize, 1, (1 << 20) + 1, 100 << 20];
    for (i, n) in sizes.iter().enumerate() {
        std::fs::write(
            s.root.join(format!("f{i}.bin")),
            random_bytes(*n, i as u64 + 1),
        )
        .unwrap();
    }
    let (server, addr) = serve(&s.root, &[]);
    let names: Vec<String> = (0..sizes.len()).map(|i| format!("f{i}.bin")).collect();
    let mut args = vec!["get", &addr];
    args.extend(names.iter().map(String::as_str));
    let f = run_in(&s.dl, &args);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    for n in &names {
        assert_eq!(hash_file(&s.root.join(n)), hash_file(&s.dl.join(n)), "{n}");
        assert!(f.stderr.contains(&format!("{n}: ")), "{}", f.stderr);
        assert!(!s.dl.join(format!("{n}.part")).exists());
    }
    assert!(f.stderr.contains("blake3 verified"), "{}", f.stderr);
    // -o, --json, and a second download served from the hash cache.
    let f = run_in(
        &s.dl,
        &["get", &addr, "f2.bin", "-o", "renamed.bin", "--json"],
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let out = String::from_utf8_lossy(&f.stdout);
    assert!(
        out.starts_with('[') && out.contains("\"result\":\"verified\""),
        "{out}"
    );
    assert_eq!(
        hash_file(&s.root.join("f2.bin")),
        hash_file(&s.dl.join("renamed.bin"))
    );
    server.stderr.wait_for("(hash cached)");
    server.kill();
}

#[test]
fn twenty_concurrent_clients() {
    let s = setup();
    std::fs::write(s.root.join("big.bin"), random_bytes(8 << 20, 5)).unwrap();
    std::fs::write(s.root.join("small.txt"), b"tiny\n").unwrap();
    let (server, addr) = serve(&s.root, &[]);
    let want = hash_file(&s.root.join("big.bin"));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let addr = addr.clone();
            let dir = s.dl.join(format!("c{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::thread::spawn(move || {
                let name = if i % 2 == 0 { "big.bin" } else { "small.txt" };
                let f = run_in(&dir, &["get", &addr, name]);
                (f.code(), dir.join(name), name)
            })
        })
        .collect();
    for t in threads {
        let (code, path, name) = t.join().unwrap();
        assert_eq!(code, 0);
        if name == "big.bin" {
            assert_eq!(hash_file(&path), want);
        } else {
            assert_eq!(std::fs::read(&path).unwrap(), b"tiny\n");
        }
    }
    server.kill();
}

/// Waits until `part` holds at least `n` bytes.
fn wait_part(part: &Path, n: u64) {
    let deadline = Instant::now() + WAIT;
    while std::fs::metadata(part).map(|m| m.len()).unwrap_or(0) < n {
        assert!(
            Instant::now() < deadline,
            "{} never reached {n} bytes",
            part.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn resume_after_kill_9_of_the_client() {
    let s = setup();
    std::fs::write(s.root.join("slow.bin"), random_bytes(6 << 20, 9)).unwrap();
    let (server, addr) = serve(&s.root, &["--max-rate", "4M"]);
    let client = util::spawn(
        Command::new(bin())
            .args(["get", &addr, "slow.bin"])
            .current_dir(&s.dl),
        Stdio::null(),
        None,
    );
    let part = s.dl.join("slow.bin.part");
    wait_part(&part, 1 << 20);
    client.kill(); // SIGKILL: no chance to clean up
    assert!(
        !s.dl.join("slow.bin").exists(),
        "no final file from a killed download"
    );
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < 6 << 20);
    let f = run_in(&s.dl, &["get", &addr, "slow.bin"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(f.stderr.contains("resumed from"), "{}", f.stderr);
    assert_eq!(
        hash_file(&s.root.join("slow.bin")),
        hash_file(&s.dl.join("slow.bin"))
    );
    server.stderr.wait_for(&format!("from {kept}"));
    server.kill();
}

#[test]
fn resume_after_kill_9_of_the_server_and_a_restart() {
    let s = setup();
    std::fs::write(s.root.join("slow.bin"), random_bytes(6 << 20, 10)).unwrap();
    let (server, addr) = serve(&s.root, &["--max-rate", "4M"]);
    let client = util::spawn(
        Command::new(bin())
            .args(["get", &addr, "slow.bin"])
            .current_dir(&s.dl),
        Stdio::null(),
        None,
    );
    wait_part(&s.dl.join("slow.bin.part"), 1 << 20);
    server.kill();
    let f = client.finish();
    assert_eq!(f.code(), 1);
    assert!(
        f.stderr.contains("run the same command again to resume"),
        "{}",
        f.stderr
    );
    // Same port again (SO_REUSEADDR), no rate limit this time.
    let p = sockit_noinput(&["serve", s.root.to_str().unwrap(), "--listen", &addr]);
    p.listening();
    let f = run_in(&s.dl, &["get", &addr, "slow.bin"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(f.stderr.contains("resumed from"), "{}", f.stderr);
    assert_eq!(
        hash_file(&s.root.join("slow.bin")),
        hash_file(&s.dl.join("slow.bin"))
    );
    p.kill();
}

#[test]
fn a_bad_part_file_is_set_aside_and_fetched_again() {
    let s = setup();
    std::fs::write(s.root.join("f.bin"), random_bytes(300_000, 1)).unwrap();
    // A .part that is not a prefix of the file.
    std::fs::write(s.dl.join("f.bin.part"), vec![0xAA; 100_000]).unwrap();
    let (server, addr) = serve(&s.root, &[]);
    let f = run_in(&s.dl, &["get", &addr, "f.bin"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(
        f.stderr.contains("set the partial file aside"),
        "{}",
        f.stderr
    );
    assert_eq!(
        hash_file(&s.root.join("f.bin")),
        hash_file(&s.dl.join("f.bin"))
    );
    assert!(s.dl.join("f.bin.part.bad").exists());
    server.kill();
}

#[test]
fn existing_targets_are_skipped_or_refused_unless_forced() {
    let s = setup();
    std::fs::write(s.root.join("a.txt"), b"server copy\n").unwrap();
    let (server, addr) = serve(&s.root, &[]);
    std::fs::write(s.dl.join("a.txt"), b"server copy\n").unwrap();
    let f = run_in(&s.dl, &["get", &addr, "a.txt"]);
    assert_eq!(f.code(), 0);
    assert!(f.stderr.contains("already there"), "{}", f.stderr);
    std::fs::write(s.dl.join("a.txt"), b"my own work\n").unwrap();
    let f = run_in(&s.dl, &["get", &addr, "a.txt"]);
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("--force"), "{}", f.stderr);
    assert_eq!(std::fs::read(s.dl.join("a.txt")).unwrap(), b"my own work\n");
    let f = run_in(&s.dl, &["get", &addr, "a.txt", "--force"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(std::fs::read(s.dl.join("a.txt")).unwrap(), b"server copy\n");
    server.kill();
}

/// Sends one native request and returns the first response.
fn native(addr: &str, req: &Request) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(MAGIC).unwrap();
    s.write_all(&encode_frame(&req.encode(), 1 << 20).unwrap())
        .unwrap();
    let mut h = [0u8; 4];
    s.read_exact(&mut h).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(h) as usize];
    s.read_exact(&mut body).unwrap();
    Response::decode(&body).unwrap()
}

/// Sends a raw (seed-style) request; returns what came back before close.
fn raw(addr: &str, name: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(name).unwrap();
    read_to_end(&mut s)
}

#[test]
fn traversal_and_special_files_are_refused_in_both_modes() {
    let s = setup();
    let outside = s.root.parent().unwrap().join("outside.txt");
    std::fs::write(&outside, b"secret\n").unwrap();
    std::fs::write(s.root.join("ok.txt"), b"fine\n").unwrap();
    std::fs::write(s.root.join(".hidden"), b"dot\n").unwrap();
    std::os::unix::fs::symlink(&outside, s.root.join("link-out")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", s.root.join("zero")).unwrap();
    std::fs::create_dir(s.root.join("sub")).unwrap();
    let fifo = std::ffi::CString::new(s.root.join("fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let _sock = std::os::unix::net::UnixListener::bind(s.root.join("sock")).unwrap();
    let (server, addr) = serve(&s.root, &["--idle-timeout", "1"]);

    let cases: &[&str] = &[
        "../outside.txt",
        "sub/../../outside.txt",
        "/etc/passwd",
        "sub//ok.txt",
        "sub\\..\\..\\outside.txt",
        "ok.txt\0",
        "link-out",
        "zero",
        ".hidden",
        "fifo",
        "sock",
        "sub",
        "%2e%2e/outside.txt",
    ];
    for c in cases {
        let r = native(
            &addr,
            &Request::Get {
                path: c.to_string(),
                offset: 0,
            },
        );
        assert!(matches!(r, Response::Error { .. }), "native {c:?}: {r:?}");
        let got = raw(&addr, c.as_bytes());
        assert!(got.is_empty(), "raw {c:?} returned {} bytes", got.len());
    }
    // The server logged each refusal and still serves everyone.
    server.stderr.wait_for("leads outside the served directory");
    server.stderr.wait_for("not a regular file");
    assert_eq!(raw(&addr, b"ok.txt"), b"fine\n");
    assert!(matches!(
        native(
            &addr,
            &Request::Stat {
                path: "ok.txt".into()
            }
        ),
        Response::Stat { size: 5, .. }
    ));
    // A listing shows only what a GET would serve.
    let f = run(&["ls", &addr, "--json"], b"");
    let out = String::from_utf8_lossy(&f.stdout);
    assert!(
        out.contains("\"ok.txt\"") && out.contains("\"sub\""),
        "{out}"
    );
    for hidden in ["link-out", "zero", ".hidden", "fifo", "sock"] {
        assert!(!out.contains(hidden), "{hidden} listed: {out}");
    }
    // A client that sends nothing is closed after --idle-timeout.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(WAIT)).unwrap();
    let t = Instant::now();
    assert_eq!(read_to_end(&mut idle), b"");
    assert!(t.elapsed() < Duration::from_secs(10));
    server.kill();
    // --hidden serves dotfiles.
    let (server, addr) = serve(&s.root, &["--hidden"]);
    assert_eq!(raw(&addr, b".hidden"), b"dot\n");
    server.kill();
}

#[test]
fn max_conns_answers_busy() {
    let s = setup();
    std::fs::write(s.root.join("a"), b"a").unwrap();
    let (server, addr) = serve(&s.root, &["--max-conns", "1"]);
    let mut hold = TcpStream::connect(&addr).unwrap();
    hold.write_all(MAGIC).unwrap();
    // The first client is being served; the second is told the server is busy.
    let deadline = Instant::now() + WAIT;
    loop {
        match native(&addr, &Request::List { path: "".into() }) {
            Response::Error { message, .. } if message.contains("busy") => break,
            _ => assert!(Instant::now() < deadline, "never busy"),
        }
    }
    server.kill();
}

#[test]
fn seed_002_client_works_against_serve_with_a_gbk_name() {
    if !have_tool("python3") {
        return;
    }
    let s = setup();
    std::fs::write(s.root.join("文件.txt"), "下载成功\n".repeat(100_000)).unwrap();
    let (server, addr) = serve(&s.root, &[]);
    let (ip, port) = addr.rsplit_once(':').unwrap();
    python_peer(
        "seed002_client.py",
        &[ip, port, "文件.txt", s.dl.to_str().unwrap()],
    );
    assert_eq!(
        hash_file(&s.root.join("文件.txt")),
        hash_file(&s.dl.join("接收文件.txt")),
        "the whole file (well over the seed's 1 MiB recv) arrived"
    );
    server.kill();
}

#[test]
fn get_raw_works_against_the_seed_002_server() {
    if !have_tool("python3") {
        return;
    }
    let s = setup();
    std::fs::write(s.root.join("seed.bin"), random_bytes(3 << 20, 2)).unwrap();
    let srv = util::spawn(
        Command::new("python3")
            .arg(peer_script("seed002_server.py"))
            .args([s.root.to_str().unwrap(), "2"]),
        Stdio::null(),
        None,
    );
    let addr = srv.listening().to_string();
    let f = run_in(&s.dl, &["get", "--raw", &addr, "seed.bin"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(f.stderr.contains("not verified"), "{}", f.stderr);
    assert_eq!(
        hash_file(&s.root.join("seed.bin")),
        hash_file(&s.dl.join("seed.bin"))
    );
    // The seed server answers a missing file with nothing: a clear error.
    let f = run_in(&s.dl, &["get", "--raw", &addr, "missing.bin"]);
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("sent nothing"), "{}", f.stderr);
    assert!(!s.dl.join("missing.bin").exists());
    let _ = srv.finish();
}

#[test]
fn nc_in_raw_mode() {
    if !have_tool("nc") {
        return;
    }
    let s = setup();
    std::fs::write(s.root.join("n.bin"), random_bytes(2 << 20, 4)).unwrap();
    let (server, addr) = serve(&s.root, &[]);
    let (ip, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf 'n.bin\\n' | nc -N {ip} {port}"))
        .output()
        .unwrap();
    assert_eq!(out.stdout, std::fs::read(s.root.join("n.bin")).unwrap());
    server.kill();
}

/// A fake server that answers every request with `reply`: raw bytes, and
/// whether to close the connection after them.
fn fake_server(reply: impl Fn(&Request) -> (Vec<u8>, bool) + Send + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming().take(4) {
            let Ok(mut c) = conn else { return };
            c.set_read_timeout(Some(WAIT)).unwrap();
            let mut magic = [0u8; 8];
            if c.read_exact(&mut magic).is_err() {
                continue;
            }
            loop {
                let mut h = [0u8; 4];
                if c.read_exact(&mut h).is_err() {
                    break;
                }
                let mut body = vec![0u8; u32::from_be_bytes(h) as usize];
                if c.read_exact(&mut body).is_err() {
                    break;
                }
                let req = Request::decode(&body).unwrap();
                let (bytes, close) = reply(&req);
                if c.write_all(&bytes).is_err() || close {
                    break;
                }
            }
        }
    });
    addr
}

fn frame(r: &Response) -> Vec<u8> {
    encode_frame(&r.encode(), 1 << 20).unwrap().to_vec()
}

#[test]
fn a_malicious_server_cannot_write_outside_or_leave_a_bad_file() {
    let s = setup();
    // Names with .. or separators in a listing.
    for evil in ["../x", "a/b", "..", "/etc/cron.d/x"] {
        let name = evil.to_string();
        let addr = fake_server(move |_| {
            let mut v = frame(&Response::Entry {
                kind: EntryKind::File,
                size: 1,
                name: name.clone(),
            });
            v.extend(frame(&Response::End));
            (v, false)
        });
        let f = run_in(&s.dl, &["get", "-r", &addr, "dir"]);
        assert_eq!(f.code(), 1, "{evil}: {}", f.stderr);
        assert!(f.stderr.contains("unsafe name"), "{}", f.stderr);
        let f = run_in(&s.dl, &["ls", &addr]);
        assert_eq!(f.code(), 1);
    }
    assert!(!s.dl.parent().unwrap().join("x").exists());

    // Fewer bytes than announced, then close.
    let addr = fake_server(|_| {
        let mut v = frame(&Response::File {
            size: 100,
            offset: 0,
        });
        v.extend_from_slice(&[7u8; 50]);
        (v, true)
    });
    let f = run_in(&s.dl, &["get", &addr, "short.bin"]);
    assert_eq!(f.code(), 1);
    assert!(!s.dl.join("short.bin").exists());

    // More bytes than announced: the extra bytes are not a valid frame.
    let addr = fake_server(|_| {
        let mut v = frame(&Response::File {
            size: 10,
            offset: 0,
        });
        v.extend_from_slice(&[1u8; 30]);
        (v, false)
    });
    let f = run_in(&s.dl, &["get", &addr, "long.bin"]);
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(!s.dl.join("long.bin").exists());

    // A wrong hash, every time: retried once in full, then an error.
    let addr = fake_server(|req| match req {
        Request::Get { offset, .. } => {
            let mut v = frame(&Response::File {
                size: 10,
                offset: *offset,
            });
            v.extend_from_slice(&[5u8; 10][*offset as usize..]);
            v.extend(frame(&Response::Done { hash: [0u8; 32] }));
            (v, false)
        }
        _ => (frame(&Response::End), false),
    });
    let f = run_in(&s.dl, &["get", &addr, "bad.bin"]);
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("does not match"), "{}", f.stderr);
    assert!(
        !s.dl.join("bad.bin").exists(),
        "no final file after a bad hash"
    );
}

#[test]
fn missing_files_and_bad_servers_give_one_sentence() {
    let s = setup();
    let (server, addr) = serve(&s.root, &[]);
    let f = run_in(&s.dl, &["get", &addr, "nope.txt"]);
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("no such file"), "{}", f.stderr);
    server.kill();
    let f = run(&["serve", "/definitely/not/here"], b"");
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("cannot serve"), "{}", f.stderr);
    // A port outside 1-65535 in HOST:PORT is a usage error (PRODUCT.md: exit 2).
    for server in ["127.0.0.1:99999", "127.0.0.1:80x", "[::1]:0"] {
        let f = run(&["get", server, "x"], b"");
        assert_eq!(f.code(), 2, "{server}: {}", f.stderr);
        assert!(
            f.stderr.contains("is not a number from 1 to 65535"),
            "{}",
            f.stderr
        );
    }
}

// Issue 12, item 2: a peer that accepts and never answers, or speaks
// something else, must not hang `get`, `get --raw` or `ls`.

#[test]
fn silent_and_foreign_peers_time_out_or_are_named() {
    let s = setup();
    // A peer that accepts and says nothing (like `nc -l`).
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().take(3) {
            held.push(c.unwrap());
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    for args in [
        vec!["get", &addr, "f.bin", "--timeout", "0.5"],
        vec!["get", &addr, "f.bin", "--raw", "--timeout", "0.5"],
        vec!["ls", &addr, "--timeout", "0.5"],
    ] {
        let started = Instant::now();
        let f = run_in(&s.dl, &args);
        assert_eq!(f.code(), 1, "{args:?}: {}", f.stderr);
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?}");
        assert!(
            f.stderr.contains("sent nothing for 0.5 s"),
            "{args:?}: {}",
            f.stderr
        );
        assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
    }
    holder.join().unwrap();
    // An HTTP-like server that answers with its own protocol.
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = http.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        for c in http.incoming().take(2) {
            let mut c = c.unwrap();
            let mut buf = [0u8; 512];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    for args in [vec!["get", &addr, "f.bin"], vec!["ls", &addr]] {
        let f = run_in(&s.dl, &args);
        assert_eq!(f.code(), 1, "{args:?}: {}", f.stderr);
        assert!(
            f.stderr
                .contains(&format!("{addr} does not speak sockit's transfer protocol")),
            "{args:?}: {}",
            f.stderr
        );
        assert!(!f.stderr.contains("max-frame"), "{}", f.stderr);
    }
    server.join().unwrap();
    assert!(!s.dl.join("f.bin.part").exists());
}

// Issue 12, item 3: recursive downloads.

#[test]
fn folder_links_do_not_loop_and_the_root_downloads_whole() {
    let s = setup();
    std::fs::create_dir_all(s.root.join("d/sub")).unwrap();
    std::fs::write(s.root.join("d/a.txt"), b"a").unwrap();
    std::fs::write(s.root.join("d/sub/b.txt"), b"b").unwrap();
    std::fs::write(s.root.join("top.txt"), b"top").unwrap();
    std::os::unix::fs::symlink(".", s.root.join("d/self")).unwrap();
    std::os::unix::fs::symlink("../d", s.root.join("d/up")).unwrap();
    // An absolute link to a file inside the root, and one that leads out.
    std::os::unix::fs::symlink(s.root.join("top.txt"), s.root.join("abs-in")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", s.root.join("abs-out")).unwrap();
    let (server, addr) = serve(&s.root, &[]);
    for (i, spelling) in [".", "/", ""].iter().enumerate() {
        let dest = s.dl.join(format!("t{i}"));
        std::fs::create_dir_all(&dest).unwrap();
        let f = run_in(&dest, &["get", &addr, spelling, "-r"]);
        assert_eq!(f.code(), 0, "{spelling:?}: {}", f.stderr);
        let mut got: Vec<String> = walk(&dest);
        got.sort();
        assert_eq!(
            got,
            [
                "abs-in",
                "d/",
                "d/a.txt",
                "d/sub/",
                "d/sub/b.txt",
                "top.txt"
            ],
            "{spelling:?}: {}",
            f.stderr
        );
        assert_eq!(std::fs::read(dest.join("abs-in")).unwrap(), b"top");
    }
    // The link itself, asked for by name, lists the real folder once.
    let f = run_in(&s.dl, &["get", &addr, "d/self", "-r"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(s.dl.join("self/sub/b.txt").exists());
    assert!(!s.dl.join("self/self").exists());
    server.kill();
}

/// Every path under `dir`, relative, folders ending in `/`.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                todo.push(e.path());
            } else {
                out.push(rel);
            }
        }
    }
    out
}

#[test]
fn a_hostile_tree_is_bounded_by_depth() {
    // A fake server whose every folder holds another folder.
    let addr = fake_server(|r| match r {
        Request::List { .. } => {
            let mut out = frame(&Response::Entry {
                kind: EntryKind::Dir,
                size: 0,
                name: "again".into(),
            });
            out.extend(frame(&Response::End));
            (out, false)
        }
        _ => (Vec::new(), true),
    });
    let s = setup();
    let f = run_in(&s.dl, &["get", &addr, "deep", "-r"]);
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(
        f.stderr.contains("more than 64 folders deep"),
        "{}",
        f.stderr
    );
}

#[test]
fn unreadable_folders_say_permission_denied() {
    let s = setup();
    std::fs::create_dir_all(s.root.join("locked")).unwrap();
    std::fs::write(s.root.join("locked/secret"), b"s").unwrap();
    std::fs::write(s.root.join("open.txt"), b"o").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        s.root.join("locked"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    for p in [&s.root, &s._tmp.path().to_path_buf()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Root reads every folder: serve as nobody then, when we are root.
    let Some(mut cmd) = sockit_unprivileged() else {
        return;
    };
    cmd.args(["serve", s.root.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let server = util::spawn(&mut cmd, Stdio::null(), None);
    let addr = server.listening().to_string();
    let f = run_in(&s.dl, &["ls", &addr, "locked"]);
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(
        f.stderr.contains("locked: permission denied"),
        "{}",
        f.stderr
    );
    let f = run_in(&s.dl, &["get", &addr, ".", "-r"]);
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("permission denied"), "{}", f.stderr);
    assert!(s.dl.join("open.txt").exists(), "the rest still arrives");
    server
        .stderr
        .wait_for("LIST \"locked\" refused: permission denied");
    server.kill();
    std::fs::set_permissions(
        s.root.join("locked"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

#[test]
fn several_names_fetch_every_one_and_report_each_failure() {
    let s = setup();
    std::fs::write(s.root.join("one.txt"), b"1").unwrap();
    std::fs::write(s.root.join("two.txt"), b"2").unwrap();
    let (server, addr) = serve(&s.root, &[]);
    let f = run_in(
        &s.dl,
        &["get", &addr, "missing-a", "one.txt", "missing-b", "two.txt"],
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("missing-a: no such file"), "{}", f.stderr);
    assert!(f.stderr.contains("missing-b: no such file"), "{}", f.stderr);
    assert!(f.stderr.contains("2 of 4 downloads failed"), "{}", f.stderr);
    assert_eq!(std::fs::read(s.dl.join("one.txt")).unwrap(), b"1");
    assert_eq!(std::fs::read(s.dl.join("two.txt")).unwrap(), b"2");
    // Nothing is left for the names that failed.
    assert!(!s.dl.join("missing-a.part").exists());
    server.kill();
}

#[test]
fn dash_o_dash_writes_stdout_and_dash_o_dir_saves_into_it() {
    let s = setup();
    let data = random_bytes(3 << 20, 21);
    std::fs::write(s.root.join("f.bin"), &data).unwrap();
    let (server, addr) = serve(&s.root, &[]);
    for raw in [false, true] {
        let mut args = vec!["get", &addr, "f.bin", "-o", "-"];
        if raw {
            args.push("--raw");
        }
        let f = run_in(&s.dl, &args);
        assert_eq!(f.code(), 0, "{}", f.stderr);
        assert!(f.stdout == data, "raw={raw}: stdout differs");
        assert!(!s.dl.join("-").exists());
    }
    std::fs::create_dir_all(s.dl.join("into")).unwrap();
    let f = run_in(&s.dl, &["get", &addr, "f.bin", "-o", "into"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(
        hash_file(&s.dl.join("into/f.bin")),
        hash_file(&s.root.join("f.bin"))
    );
    assert!(!s.dl.join("into.part").exists());
    server.kill();
}

#[test]
fn a_second_get_of_the_same_file_is_told_it_is_running() {
    let s = setup();
    std::fs::write(s.root.join("big.bin"), random_bytes(32 << 20, 22)).unwrap();
    // Slow enough that the first get is still running.
    let (server, addr) = serve(&s.root, &["--max-rate", "8M"]);
    let first = util::spawn(
        Command::new(bin())
            .args(["get", &addr, "big.bin"])
            .current_dir(&s.dl),
        Stdio::null(),
        None,
    );
    wait_part(&s.dl.join("big.bin.part"), 1);
    let second = run_in(&s.dl, &["get", &addr, "big.bin"]);
    assert_eq!(second.code(), 1, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("another download of this file is running"),
        "{}",
        second.stderr
    );
    let f = first.finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(
        hash_file(&s.dl.join("big.bin")),
        hash_file(&s.root.join("big.bin"))
    );
    server.kill();
}

// Issue 12, item 6: Ctrl-C behaves the same everywhere.

#[test]
fn ctrl_c_stops_serve_with_0_and_get_with_130_keeping_its_part() {
    let s = setup();
    std::fs::write(s.root.join("big.bin"), random_bytes(32 << 20, 31)).unwrap();
    let (server, addr) = serve(&s.root, &["--max-rate", "8M"]);
    let get = util::spawn(
        Command::new(bin())
            .args(["get", &addr, "big.bin"])
            .current_dir(&s.dl),
        Stdio::null(),
        None,
    );
    let part = s.dl.join("big.bin.part");
    wait_part(&part, 1 << 20);
    let f = get.interrupt();
    assert_eq!(f.code(), 130, "{}", f.stderr);
    assert!(f.stderr.contains("interrupted; "), "{}", f.stderr);
    assert!(
        f.stderr
            .contains("kept in big.bin.part; run the same command to resume"),
        "{}",
        f.stderr
    );
    assert!(std::fs::metadata(&part).unwrap().len() >= 1 << 20);
    let f = server.interrupt();
    assert_eq!(f.code(), 0, "Ctrl-C is how a server stops: {}", f.stderr);
    // The next run resumes and verifies.
    let (server, addr) = serve(&s.root, &[]);
    let f = run_in(&s.dl, &["get", &addr, "big.bin"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(f.stderr.contains("resumed from"), "{}", f.stderr);
    assert_eq!(
        hash_file(&s.dl.join("big.bin")),
        hash_file(&s.root.join("big.bin"))
    );
    server.kill();
}

#[test]
fn ls_shows_human_sizes_on_a_terminal_and_bytes_in_a_pipe() {
    let s = setup();
    std::fs::write(s.root.join("f.bin"), vec![0u8; 3 << 20]).unwrap();
    let (server, addr) = serve(&s.root, &[]);
    let f = run_in(&s.dl, &["ls", &addr]);
    assert!(String::from_utf8_lossy(&f.stdout).contains(&(3u64 << 20).to_string()));
    let b = bin();
    let shown = python_peer("on_tty.py", &[b.to_str().unwrap(), "ls", &addr]);
    assert!(
        shown.contains("3.00 MiB") && shown.contains("f.bin"),
        "{shown}"
    );
    server.kill();
}
