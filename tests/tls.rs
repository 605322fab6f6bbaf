//! End-to-end tests of `--tls` (trust on first use, pins, CA checks,
//! mutual TLS, plaintext mismatches, interop with openssl and socat) and of
//! `--allow`/`--deny`, over loopback only. Every sockit here gets its own
//! `XDG_CONFIG_HOME`, so the user's identity and known_hosts are never used.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use util::*;

/// `sockit ARGS` with its own configuration directory.
fn cmd(cfg: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args).env("XDG_CONFIG_HOME", cfg);
    c
}

/// Starts a listener and returns it with its address and the fingerprint it printed.
fn listener(cfg: &Path, args: &[&str]) -> (Proc, String, String) {
    let p = spawn(&mut cmd(cfg, args), Stdio::null(), None);
    let addr = p.listening().to_string();
    let line = p.stderr.wait_line("tls: certificate SHA256:");
    let fp = line
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap()
        .to_string();
    (p, addr, fp)
}

/// Runs a client to the end with `input` on stdin.
fn client(cfg: &Path, args: &[&str], input: &[u8]) -> Finished {
    let mut p = spawn(&mut cmd(cfg, args), Stdio::piped(), None);
    let mut stdin = p.stdin.take().unwrap();
    let data = input.to_vec();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    p.finish()
}

fn port_of(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

/// A CA, and certificates it signs, written as PEM files.
struct Pki {
    dir: PathBuf,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sockit test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca_params,
            ca_key,
        }
    }

    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// Issues a certificate for `names`; `expired` backdates it. Returns (cert, key) paths.
    fn issue(&self, stem: &str, names: &[&str], expired: bool) -> (String, String) {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = p.signed_by(&key, &issuer).unwrap();
        let c = self.dir.join(format!("{stem}.pem"));
        let k = self.dir.join(format!("{stem}.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    }
}

#[test]
fn trust_on_first_use_records_then_refuses_a_changed_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv_cfg, cli_cfg, other_cfg) = (
        tmp.path().join("s"),
        tmp.path().join("c"),
        tmp.path().join("o"),
    );
    let root = tmp.path().join("root");
    let dl = tmp.path().join("dl");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(root.join("a.txt"), b"secret\n").unwrap();
    let (server, addr, fp) = listener(
        &srv_cfg,
        &[
            "serve",
            root.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls",
        ],
    );
    // The identity is kept with mode 0600.
    let id = srv_cfg.join("sockit/identity.pem");
    assert_eq!(
        std::fs::metadata(&id).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let d = dl.to_str().unwrap();
    // Not interactive and no --tofu: refused, nothing written, fingerprint shown.
    let f = client(&cli_cfg, &["get", &addr, "a.txt", "-d", d, "--tls"], b"");
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(
        f.stderr.contains(&fp) && f.stderr.contains("--tofu"),
        "{}",
        f.stderr
    );
    assert!(!dl.join("a.txt").exists());
    // --tofu: trusted, recorded, downloaded.
    let f = client(
        &cli_cfg,
        &["get", &addr, "a.txt", "-d", d, "--tls", "--tofu"],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(f.stderr.contains("on first use"), "{}", f.stderr);
    let known = std::fs::read_to_string(cli_cfg.join("sockit/known_hosts")).unwrap();
    assert_eq!(known.trim(), format!("{addr} {fp}"));
    assert_eq!(std::fs::read(dl.join("a.txt")).unwrap(), b"secret\n");
    // Known now: no flag needed.
    let f = client(&cli_cfg, &["ls", &addr, "--tls"], b"");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(String::from_utf8_lossy(&f.stdout).contains("a.txt"));
    // The same address restarts with a new identity: a hard error, nothing sent.
    server.kill();
    let listen = format!("127.0.0.1:{}", port_of(&addr));
    let (server2, _, fp2) = listener(
        &other_cfg,
        &[
            "serve",
            root.to_str().unwrap(),
            "--listen",
            &listen,
            "--tls",
        ],
    );
    assert_ne!(fp, fp2);
    std::fs::remove_file(dl.join("a.txt")).unwrap();
    for extra in [&[][..], &["--tofu"][..]] {
        let mut args = vec!["get", &addr, "a.txt", "-d", d, "--tls"];
        args.extend_from_slice(extra);
        let f = client(&cli_cfg, &args, b"");
        assert_eq!(f.code(), 1, "{}", f.stderr);
        assert!(
            f.stderr.contains("CHANGED") && f.stderr.contains(&fp2),
            "{}",
            f.stderr
        );
        assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
    }
    assert!(!dl.join("a.txt").exists() && !dl.join("a.txt.part").exists());
    server2.kill();
}

#[test]
fn pin_accepts_its_fingerprint_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, fp) = listener(
        tmp.path(),
        &["tcp", "listen", "127.0.0.1:0", "--echo", "--tls"],
    );
    let port = port_of(&addr);
    let f = client(
        tmp.path(),
        &["tcp", "connect", "127.0.0.1", port, "--tls", "--pin", &fp],
        b"pinned\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"pinned\n");
    // The same pin typed the openssl way: upper case with colons.
    let hex = fp.trim_start_matches("SHA256:").to_uppercase();
    let colons: Vec<&str> = (0..32).map(|i| &hex[2 * i..2 * i + 2]).collect();
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            port,
            "--tls",
            "--pin",
            &colons.join(":"),
        ],
        b"x\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let wrong = format!("SHA256:{}", "0".repeat(64));
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            port,
            "--tls",
            "--pin",
            &wrong,
        ],
        b"leak\n",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(
        f.stderr.contains("not the pinned") && f.stdout.is_empty(),
        "{}",
        f.stderr
    );
    // A malformed pin is a usage error.
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            port,
            "--tls",
            "--pin",
            "SHA256:abc",
        ],
        b"",
    );
    assert_eq!(f.code(), 2, "{}", f.stderr);
    // No known_hosts was written by pinning.
    assert!(!tmp.path().join("sockit/known_hosts").exists());
    server.kill();
}

#[test]
fn ca_signed_certificates_are_checked_for_name_and_dates() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let (cert, key) = pki.issue("leaf", &["localhost"], false);
    let (server, addr, _) = listener(
        tmp.path(),
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--tls",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let port = port_of(&addr);
    let ca = pki.ca();
    // The right name: accepted without any trust-on-first-use prompt.
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "localhost",
            port,
            "-4",
            "--tls",
            "--tls-ca",
            &ca,
        ],
        b"ok\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"ok\n");
    // The wrong name (the certificate says localhost, not 127.0.0.1): refused, even with --tofu.
    for extra in [&[][..], &["--tofu"][..]] {
        let mut args = vec![
            "tcp",
            "connect",
            "127.0.0.1",
            port,
            "--tls",
            "--tls-ca",
            &ca,
        ];
        args.extend_from_slice(extra);
        let f = client(tmp.path(), &args, b"leak\n");
        assert_eq!(f.code(), 1, "{}", f.stderr);
        assert!(
            f.stderr.contains("not valid for that host name"),
            "{}",
            f.stderr
        );
        assert!(f.stdout.is_empty());
    }
    server.kill();
    // An expired certificate: refused.
    let (cert, key) = pki.issue("old", &["localhost"], true);
    let (server, addr, _) = listener(
        tmp.path(),
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--tls",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "localhost",
            port_of(&addr),
            "-4",
            "--tls",
            "--tls-ca",
            &ca,
        ],
        b"leak\n",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("expired"), "{}", f.stderr);
    server.kill();
}

#[test]
fn mutual_tls_requires_a_client_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let (cert, key) = pki.issue("server", &["localhost"], false);
    let (ccert, ckey) = pki.issue("client", &["client.test"], false);
    let ca = pki.ca();
    let (server, addr, _) = listener(
        tmp.path(),
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--tls",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-ca",
            &ca,
        ],
    );
    let port = port_of(&addr);
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "localhost",
            port,
            "-4",
            "--tls",
            "--tls-ca",
            &ca,
        ],
        b"no cert\n",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stdout.is_empty(), "{:?}", f.stdout);
    assert!(
        f.stderr.contains("requires a client certificate"),
        "{}",
        f.stderr
    );
    server.stderr.wait_for("presented no certificate");
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "localhost",
            port,
            "-4",
            "--tls",
            "--tls-ca",
            &ca,
            "--tls-client-cert",
            &ccert,
            "--tls-client-key",
            &ckey,
        ],
        b"with cert\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(f.stdout, b"with cert\n");
    server.kill();
}

#[test]
fn plain_text_and_tls_are_told_apart_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    // A plain client of a TLS server.
    let (server, addr, _) = listener(
        tmp.path(),
        &[
            "serve",
            root.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls",
        ],
    );
    let f = client(tmp.path(), &["ls", &addr], b"");
    assert_eq!(f.code(), 1);
    assert_eq!(
        f.stderr.trim(),
        format!("sockit: the server at {addr} speaks TLS; add --tls")
    );
    server
        .stderr
        .wait_for("sent plain text to this TLS listener");
    server.kill();
    let (server, addr, _) = listener(
        tmp.path(),
        &["tcp", "listen", "127.0.0.1:0", "--upper", "--tls"],
    );
    let f = client(
        tmp.path(),
        &["tcp", "connect", "127.0.0.1", port_of(&addr)],
        b"hello\n",
    );
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("speaks TLS; add --tls"), "{}", f.stderr);
    assert!(f.stdout.is_empty());
    // A big input is still being sent when the server's reset arrives; the
    // alert it sent first is still the diagnosis.
    let f = client(
        tmp.path(),
        &["tcp", "connect", "127.0.0.1", port_of(&addr)],
        &vec![b'x'; 8 << 20],
    );
    assert_eq!(f.code(), 1);
    assert_eq!(
        f.stderr.trim(),
        format!("sockit: the server at {addr} speaks TLS; add --tls")
    );
    server.kill();
    // A TLS client of plain servers: each mode says so on both sides. (The
    // plain pipe does so on a terminal; see the tests below.)
    for args in [
        &["tcp", "listen", "127.0.0.1:0", "--upper"][..],
        &["tcp", "listen", "127.0.0.1:0", "--chat"][..],
        &["serve", root.to_str().unwrap(), "--listen", "127.0.0.1:0"][..],
    ] {
        let server = spawn(&mut cmd(tmp.path(), args), Stdio::piped(), None);
        let addr = server.listening().to_string();
        let f = client(
            tmp.path(),
            &[
                "tcp",
                "connect",
                "127.0.0.1",
                port_of(&addr),
                "--tls",
                "--insecure",
            ],
            b"x\n",
        );
        assert_eq!(f.code(), 1, "{args:?}: {}", f.stderr);
        assert!(
            f.stderr.contains("does not speak TLS"),
            "{args:?}: {}",
            f.stderr
        );
        server.stderr.wait_for("speaking TLS to this plain");
        server.kill();
    }
}

#[test]
fn a_plain_pipe_on_a_terminal_refuses_a_tls_client() {
    if !have_tool("python3") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = bin();
    // The listener's stdout is a terminal: TLS bytes would be garbage there.
    let on_tty = spawn(
        Command::new("python3").arg(peer_script("on_tty.py")).args([
            bin.to_str().unwrap(),
            "tcp",
            "listen",
            "127.0.0.1:0",
        ]),
        Stdio::null(),
        None,
    );
    let shown = on_tty.out().wait_until("a `listening on` line", |b| {
        String::from_utf8_lossy(b).contains("listening on 127.0.0.1:") && b.ends_with(b"\n")
    });
    let shown = String::from_utf8_lossy(&shown).to_string();
    let port = shown
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let f = client(
        tmp.path(),
        &["tcp", "connect", "127.0.0.1", &port, "--tls", "--insecure"],
        b"x\n",
    );
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("does not speak TLS"), "{}", f.stderr);
    on_tty
        .out()
        .wait_for("is speaking TLS to this plain listener; listen with --tls");
    let shown = String::from_utf8_lossy(&on_tty.out().wait_closed()).to_string();
    assert!(shown.trim_end().ends_with("EXIT 1"), "{shown}");
    // One sentence, and no ClientHello bytes on the screen.
    assert!(!shown.contains('\u{16}'), "{shown:?}");
}

#[test]
fn tls_passes_unchanged_through_plain_pipes_used_as_a_relay() {
    // The netcat relay: `listen | connect` with each one's output fed to the
    // other's input. The TLS session inside goes through byte for byte.
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, fp) = listener(tmp.path(), &["tcp", "listen", "127.0.0.1:0", "--tls"]);
    let (back_r, back_w) = std::io::pipe().unwrap();
    let (fwd_r, fwd_w) = std::io::pipe().unwrap();
    let relay_in = spawn(
        &mut cmd(tmp.path(), &["tcp", "listen", "127.0.0.1:0"]),
        Stdio::from(back_r),
        Some(Stdio::from(fwd_w)),
    );
    let relay_addr = relay_in.listening().to_string();
    let relay_out = spawn(
        &mut cmd(tmp.path(), &["tcp", "connect", "127.0.0.1", port_of(&addr)]),
        Stdio::from(fwd_r),
        Some(Stdio::from(back_w)),
    );
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            port_of(&relay_addr),
            "--tls",
            "--pin",
            &fp,
        ],
        b"through the relay\n",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    server.out().wait_for("through the relay\n");
    relay_in
        .stderr
        .wait_for("is speaking TLS to this plain listener; passing its bytes on unchanged");
    // The relay's own connection saw the server's handshake, not an alert.
    assert!(
        !relay_out.stderr.text().contains("speaks TLS"),
        "{}",
        relay_out.stderr.text()
    );
    relay_in.kill();
    relay_out.kill();
    server.kill();
}

#[test]
fn a_silent_handshake_is_closed_on_time_and_others_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, fp) = listener(
        tmp.path(),
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--tls",
            "--handshake-timeout",
            "1",
        ],
    );
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Meanwhile a real client is served at once.
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "127.0.0.1",
            port_of(&addr),
            "--tls",
            "--pin",
            &fp,
        ],
        b"hi\n",
    );
    assert_eq!(f.stdout, b"hi\n", "{}", f.stderr);
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 16];
        let r = s.read(&mut b);
        assert!(
            matches!(r, Ok(0))
                || matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{r:?}"
        );
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    server.stderr.wait_for("did not finish within 1 s");
    server.kill();
}

#[test]
fn allow_and_deny_filter_peers_on_every_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f"), b"data").unwrap();
    for args in [
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--deny",
            "127.0.0.2",
        ][..],
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--allow",
            "127.0.0.1/32",
        ][..],
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--tls",
            "--allow",
            "127.0.0.0/8",
            "--deny",
            "127.0.0.2/32",
        ][..],
    ] {
        let server = spawn(&mut cmd(tmp.path(), args), Stdio::null(), None);
        let addr = server.listening().to_string();
        let port = port_of(&addr);
        let tls: &[&str] = if args.contains(&"--tls") {
            &["--tls", "--insecure"]
        } else {
            &[]
        };
        let mut a = vec!["tcp", "connect", "127.0.0.1", port, "--bind", "127.0.0.1:0"];
        a.extend_from_slice(tls);
        let f = client(tmp.path(), &a, b"welcome\n");
        assert_eq!(f.stdout, b"welcome\n", "{args:?}: {}", f.stderr);
        // From 127.0.0.2: closed at once, no data, no banner.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(
            &"127.0.0.2:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        sock.connect(&addr.parse::<std::net::SocketAddr>().unwrap().into())
            .unwrap();
        let mut s: TcpStream = sock.into();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let _ = s.write_all(b"let me in\n");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty(), "{args:?}: {got:?}");
        server.stderr.wait_for("refused 127.0.0.2:");
        server.kill();
    }
    // serve, too.
    let server = spawn(
        &mut cmd(
            tmp.path(),
            &[
                "serve",
                root.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--allow",
                "127.0.0.2",
            ],
        ),
        Stdio::null(),
        None,
    );
    let addr = server.listening().to_string();
    let f = client(tmp.path(), &["ls", &addr], b"");
    assert_eq!(f.code(), 1, "{}", f.stderr);
    server.stderr.wait_for("matches no --allow rule");
    server.kill();
    // A bad CIDR is a usage error.
    let f = client(
        tmp.path(),
        &["tcp", "listen", "127.0.0.1:0", "--allow", "127.0.0.0/33"],
        b"",
    );
    assert_eq!(f.code(), 2, "{}", f.stderr);
}

#[test]
fn interop_with_openssl_both_ways() {
    if !have_tool("openssl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // openssl s_client -> sockit tcp listen --tls
    let (server, addr, _) = listener(
        tmp.path(),
        &["tcp", "listen", "127.0.0.1:0", "--upper", "--tls"],
    );
    let mut c = spawn(
        Command::new("openssl").args(["s_client", "-connect", &addr, "-quiet", "-verify_quiet"]),
        Stdio::piped(),
        None,
    );
    c.send(b"from openssl\n");
    c.out().wait_for("FROM OPENSSL");
    c.kill();
    server.kill();
    // sockit tcp connect --tls -> openssl s_server
    let pki = Pki::new(tmp.path());
    let (cert, key) = pki.issue("srv", &["localhost"], false);
    let port = free_port().to_string();
    let mut s = spawn(
        Command::new("openssl").args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            &cert,
            "-key",
            &key,
            "-quiet",
        ]),
        Stdio::piped(),
        None,
    );
    wait_tcp_listening(port.parse().unwrap());
    let mut c = spawn(
        &mut cmd(
            tmp.path(),
            &[
                "tcp",
                "connect",
                "localhost",
                &port,
                "-4",
                "--tls",
                "--tls-ca",
                &pki.ca(),
            ],
        ),
        Stdio::piped(),
        None,
    );
    c.send(b"to openssl\n");
    s.out().wait_for("to openssl");
    s.send(b"from s_server\n");
    c.out().wait_for("from s_server");
    c.kill();
    s.kill();
}

#[test]
fn interop_with_socat_openssl_both_ways() {
    if !have_tool("socat") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let (cert, key) = pki.issue("srv", &["localhost"], false);
    // socat OPENSSL client -> sockit --echo --tls with a CA-signed certificate.
    let (server, addr, _) = listener(
        tmp.path(),
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--tls",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let mut c = spawn(
        Command::new("socat").args([
            "-t5".to_string(),
            "-".to_string(),
            format!(
                "OPENSSL:localhost:{},cafile={},pf=ip4",
                port_of(&addr),
                pki.ca()
            ),
        ]),
        Stdio::piped(),
        None,
    );
    c.send(b"via socat\n");
    c.out().wait_for("via socat");
    c.kill();
    server.kill();
    // sockit client -> socat OPENSSL-LISTEN (which echoes with PIPE).
    let port = free_port().to_string();
    let both = tmp.path().join("both.pem");
    let pem = std::fs::read_to_string(&cert).unwrap() + &std::fs::read_to_string(&key).unwrap();
    std::fs::write(&both, pem).unwrap();
    let s = spawn(
        Command::new("socat").args([
            format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,cert={},verify=0",
                both.display()
            ),
            "PIPE".to_string(),
        ]),
        Stdio::null(),
        None,
    );
    wait_tcp_listening(port.parse().unwrap());
    let f = client(
        tmp.path(),
        &[
            "tcp",
            "connect",
            "localhost",
            &port,
            "-4",
            "--tls",
            "--tls-ca",
            &pki.ca(),
        ],
        b"to socat\n",
    );
    assert_eq!(f.stdout, b"to socat\n", "{}", f.stderr);
    s.kill();
}

#[test]
fn udp_listen_drops_datagrams_from_refused_senders() {
    let tmp = tempfile::tempdir().unwrap();
    let server = spawn(
        &mut cmd(
            tmp.path(),
            &[
                "udp",
                "listen",
                "127.0.0.1:0",
                "--upper",
                "--deny",
                "127.0.0.2",
            ],
        ),
        Stdio::null(),
        None,
    );
    let addr = server.listening();
    let denied = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let allowed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    allowed.set_read_timeout(Some(WAIT)).unwrap();
    // The refused datagram goes first; the allowed one's reply proves it was handled.
    denied.send_to(b"from the denied host", addr).unwrap();
    allowed.send_to(b"from an allowed host", addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = allowed.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"FROM AN ALLOWED HOST");
    denied.set_nonblocking(true).unwrap();
    assert!(
        denied.recv_from(&mut buf).is_err(),
        "the denied sender got a reply"
    );
    server.stderr.wait_for("dropped a datagram from 127.0.0.2:");
    server.kill();
}

#[test]
fn bench_runs_over_tls_and_refuses_plain_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, fp) = listener(
        tmp.path(),
        &["bench", "server", "-l", "127.0.0.1:0", "--tls"],
    );
    for mode in [
        &["tcp", "-n", "64M"][..],
        &["tcp", "-R", "-n", "64M"][..],
        &["rr", "-t", "0.5"][..],
    ] {
        let mut args = vec!["bench", "client", &addr];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--tls", "--pin", &fp, "--json"]);
        let f = client(tmp.path(), &args, b"");
        assert_eq!(f.code(), 0, "{mode:?}: {}", f.stderr);
        assert!(
            String::from_utf8_lossy(&f.stdout).starts_with('{'),
            "{mode:?}"
        );
    }
    let f = client(
        tmp.path(),
        &["bench", "client", &addr, "tcp", "-n", "1M"],
        b"",
    );
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("speaks TLS; add --tls"), "{}", f.stderr);
    server.kill();
}

#[test]
fn full_duplex_bulk_over_tls_both_ways_at_once() {
    // Both ends send 40 MiB while receiving 40 MiB: neither side's full
    // socket may stall its own reading (the TLS state is shared by two threads).
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.bin");
    let b = tmp.path().join("b.bin");
    std::fs::write(&a, random_bytes(40 << 20, 7)).unwrap();
    std::fs::write(&b, random_bytes(40 << 20, 8)).unwrap();
    let (got_a, got_b) = (tmp.path().join("got-a"), tmp.path().join("got-b"));
    let server = spawn(
        &mut cmd(tmp.path(), &["tcp", "listen", "127.0.0.1:0", "--tls"]),
        Stdio::from(std::fs::File::open(&a).unwrap()),
        Some(Stdio::from(std::fs::File::create(&got_b).unwrap())),
    );
    let addr = server.listening().to_string();
    let fp = server.stderr.wait_line("tls: certificate SHA256:");
    let fp = fp
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap()
        .to_string();
    let c = spawn(
        &mut cmd(
            tmp.path(),
            &[
                "tcp",
                "connect",
                "127.0.0.1",
                port_of(&addr),
                "--tls",
                "--pin",
                &fp,
            ],
        ),
        Stdio::from(std::fs::File::open(&b).unwrap()),
        Some(Stdio::from(std::fs::File::create(&got_a).unwrap())),
    );
    let fc = c.finish();
    let fs = server.finish();
    assert_eq!(fc.code(), 0, "{}", fc.stderr);
    assert_eq!(fs.code(), 0, "{}", fs.stderr);
    assert_eq!(hash_file(&a), hash_file(&got_a));
    assert_eq!(hash_file(&b), hash_file(&got_b));
}

#[test]
fn on_a_terminal_trust_on_first_use_asks_first() {
    if !have_tool("python3") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f.txt"), b"asked\n").unwrap();
    let (server, addr, fp) = listener(
        &tmp.path().join("srv"),
        &[
            "serve",
            root.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls",
        ],
    );
    let cfg = tmp.path().join("cli");
    let bin = bin();
    let dl = tmp.path().join("dl");
    std::fs::create_dir_all(&dl).unwrap();
    let run = |answer: &str| {
        let out = Command::new("python3")
            .arg(peer_script("on_tty.py"))
            .args([
                "--answer",
                answer,
                "[y/N]",
                bin.to_str().unwrap(),
                "get",
                &addr,
                "f.txt",
                "-d",
                dl.to_str().unwrap(),
                "--tls",
            ])
            .env("XDG_CONFIG_HOME", &cfg)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // "no": refused, nothing recorded or written.
    let shown = run("n");
    assert!(
        shown.contains(&fp) && shown.contains("Trust it and remember it?"),
        "{shown}"
    );
    assert!(shown.trim_end().ends_with("EXIT 1"), "{shown}");
    assert!(!cfg.join("sockit/known_hosts").exists() && !dl.join("f.txt").exists());
    // "yes": recorded and downloaded.
    let shown = run("y");
    assert!(shown.trim_end().ends_with("EXIT 0"), "{shown}");
    assert!(std::fs::read_to_string(cfg.join("sockit/known_hosts"))
        .unwrap()
        .contains(&fp));
    assert_eq!(std::fs::read(dl.join("f.txt")).unwrap(), b"asked\n");
    server.kill();
}

#[test]
fn idle_timeouts_and_max_conns_hold_under_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, fp) = listener(
        tmp.path(),
        &[
            "-v",
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--tls",
            "--idle-timeout",
            "1",
            "--max-conns",
            "1",
        ],
    );
    let port = port_of(&addr);
    // A TLS client that says nothing after the handshake is closed after 1 s.
    let started = Instant::now();
    let quiet = spawn(
        &mut cmd(
            tmp.path(),
            &["tcp", "connect", "127.0.0.1", port, "--tls", "--pin", &fp],
        ),
        Stdio::piped(),
        None,
    );
    server.stderr.wait_for("TLS connection from");
    // While it holds the only slot, another peer is refused.
    let f = client(
        tmp.path(),
        &["tcp", "connect", "127.0.0.1", port, "--tls", "--pin", &fp],
        b"x\n",
    );
    assert!(f.stdout.is_empty(), "{}", f.stderr);
    server.stderr.wait_for("--max-conns");
    server.stderr.wait_for("idle for 1 s");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // Its session ended cleanly: the server's close arrived as end of stream.
    let f = quiet.finish();
    assert_eq!(f.code(), 0, "{}", f.stderr);
    server.kill();
}

#[test]
fn a_ca_signed_certificate_without_its_ca_is_not_taken_for_self_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let (cert, key) = pki.issue("leaf", &["localhost"], false);
    let (server, addr, _) = listener(
        tmp.path(),
        &[
            "tcp",
            "listen",
            "127.0.0.1:0",
            "--echo",
            "--tls",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let port = port_of(&addr);
    for extra in [&[][..], &["--tofu"][..]] {
        let mut args = vec!["tcp", "connect", "localhost", port, "-4", "--tls"];
        args.extend_from_slice(extra);
        let f = client(tmp.path(), &args, b"leak\n");
        assert_eq!(f.code(), 1, "{}", f.stderr);
        assert!(f.stderr.contains("is not self-signed"), "{}", f.stderr);
        assert!(f.stderr.contains("--tls-ca"), "{}", f.stderr);
        assert!(!f.stderr.contains("unknown self-signed"), "{}", f.stderr);
        assert!(f.stdout.is_empty());
    }
    // --tofu recorded nothing.
    let known = std::fs::read_to_string(tmp.path().join("sockit/known_hosts")).unwrap_or_default();
    assert!(!known.contains(port), "{known}");
    server.kill();
}
