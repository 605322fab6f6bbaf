//! End-to-end tests of `lookup`, `ping` and `scan`. Name lookups go only to
//! `localhost`, IP literals, or a dnsmasq this test starts on loopback.

mod util;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use util::*;

fn getent(args: &[&str]) -> Option<String> {
    let out = Command::new("getent").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn out(f: &Finished) -> String {
    String::from_utf8_lossy(&f.stdout).into_owned()
}

fn have_services_db() -> bool {
    if std::path::Path::new("/etc/services").exists() {
        return true;
    }
    if std::env::var("SOCKIT_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("/etc/services is required (SOCKIT_REQUIRE_PEERS=1); install netbase");
    }
    eprintln!("SKIPPED: /etc/services is missing (install netbase)");
    false
}

#[test]
fn host_matches_getent_and_honours_etc_hosts() {
    let ours = run(&["lookup", "host", "localhost"], b"");
    assert_eq!(ours.code(), 0, "{}", ours.stderr);
    let ours: Vec<String> = out(&ours).lines().map(str::to_string).collect();
    if let Some(g) = getent(&["ahosts", "localhost"]) {
        let mut theirs: Vec<String> = Vec::new();
        for l in g.lines() {
            let a = l.split_whitespace().next().unwrap_or("").to_string();
            if !theirs.contains(&a) {
                theirs.push(a);
            }
        }
        assert_eq!(ours, theirs, "same addresses, same order as getent ahosts");
    }
    // Every /etc/hosts entry for localhost is honoured (read-only check).
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    for line in hosts.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut f = line.split_whitespace();
        if let Some(ip) = f.next() {
            if f.any(|n| n == "localhost") {
                assert!(
                    ours.iter().any(|a| a == ip),
                    "{ip} from /etc/hosts missing in {ours:?}"
                );
            }
        }
    }
    // -4 filters; an IP literal echoes itself; JSON is one document.
    let v4 = run(&["lookup", "host", "localhost", "-4"], b"");
    assert!(out(&v4).lines().all(|l| !l.contains(':')), "{}", out(&v4));
    let lit = run(&["lookup", "host", "::1"], b"");
    assert_eq!(out(&lit), "::1\n");
    let j = run(&["lookup", "host", "localhost", "--json"], b"");
    assert!(
        out(&j).starts_with("{\"name\":\"localhost\""),
        "{}",
        out(&j)
    );
}

#[test]
fn reverse_lookup_of_loopback() {
    let f = run(&["lookup", "addr", "127.0.0.1"], b"");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let name = out(&f).trim().to_string();
    if let Some(g) = getent(&["hosts", "127.0.0.1"]) {
        let theirs = g.split_whitespace().nth(1).unwrap_or("").to_string();
        assert_eq!(name, theirs);
    }
    assert!(!name.is_empty());
}

#[test]
fn services_match_getent() {
    if !have_services_db() {
        return;
    }
    let f = run(&["lookup", "service", "https"], b"");
    assert_eq!(out(&f), "443\n");
    let f = run(&["lookup", "port", "3389"], b"");
    assert_eq!(
        out(&f),
        "ms-wbt-server\n",
        "seed 004's getservbyport(3389, 'tcp')"
    );
    if let Some(g) = getent(&["services", "3389/tcp"]) {
        assert!(g.starts_with("ms-wbt-server"));
    }
    let f = run(
        &["lookup", "service", "domain", "--proto", "udp", "--json"],
        b"",
    );
    assert_eq!(
        out(&f),
        "{\"service\":\"domain\",\"proto\":\"udp\",\"port\":53}\n"
    );
    let f = run(&["lookup", "hostname"], b"");
    let h = Command::new("hostname")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Ok(h) = h {
        assert_eq!(out(&f).trim(), h.trim());
    }
}

#[test]
fn bad_lookup_input_gets_the_documented_exit_code() {
    for (args, code, needle) in [
        (
            &["lookup", "addr", "999.1.1.1"][..],
            2,
            "not an IPv4 or IPv6 address",
        ),
        (
            &["lookup", "addr", "not-an-ip"][..],
            2,
            "not an IPv4 or IPv6 address",
        ),
        (&["lookup", "port", "70000"][..], 2, "0 to 65535"),
        (&["lookup", "port", "-1"][..], 2, "run with --help"),
        (
            &["lookup", "port", "80", "--proto", "sctp"][..],
            2,
            "unknown protocol",
        ),
        (&["lookup", "host", ""][..], 1, "empty"),
    ] {
        let f = run(args, b"");
        assert_eq!(f.code(), code, "{args:?}: {}", f.stderr);
        assert!(f.stderr.contains(needle), "{args:?}: {}", f.stderr);
        assert_eq!(f.stderr.trim().lines().count(), 1);
    }
    if have_services_db() {
        let f = run(&["lookup", "service", "no-such-service-here"], b"");
        assert_eq!(f.code(), 1);
        assert!(f.stderr.contains("no service named"), "{}", f.stderr);
    }
    // An unknown host, rejected by glibc without any query (label > 63 bytes).
    let name = format!("{}.invalid", "x".repeat(70));
    let f = run(&["lookup", "host", &name], b"");
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("could not resolve"), "{}", f.stderr);
}

#[test]
fn dns_queries_against_a_local_dnsmasq() {
    let Some(d) = dnsmasq() else { return };
    let server = format!("127.0.0.1:{}", d.port);
    let f = lookup_via(&server, "www.example.test", &[]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert!(
        out(&f).contains("A\t") && out(&f).contains("192.0.2.10"),
        "{}",
        out(&f)
    );
    let f = lookup_via(&server, "www.example.test", &["--type", "AAAA"]);
    assert!(out(&f).contains("2001:db8::10"), "{}", out(&f));
    let f = lookup_via(&server, "example.test", &["--type", "MX", "--json"]);
    assert!(
        out(&f).contains("\"type\":\"MX\"") && out(&f).contains("10 mail.example.test."),
        "{}",
        out(&f)
    );
    // A missing name: NXDOMAIN is exit 1 with a message.
    let f = lookup_via(&server, "nope.example.test", &[]);
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("Non-Existent Domain"), "{}", f.stderr);
    // An answer too big for UDP comes back truncated; sockit asks again over TCP.
    let f = lookup_via(&server, "big.example.test", &["--type", "TXT"]);
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(out(&f).matches(&"a".repeat(200)).count(), 3, "{}", out(&f));
    // --compare shows both sides.
    let f = lookup_via(&server, "localhost", &["--compare"]);
    assert!(
        out(&f).contains("system resolver: ") && out(&f).contains(&server),
        "{}",
        out(&f)
    );
    d.proc.kill();
}

#[test]
fn a_dns_server_that_never_answers_times_out_on_time() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let t = Instant::now();
    let f = lookup_via(&server, "www.example.test", &["--timeout", "0.6"]);
    assert_eq!(f.code(), 1);
    assert!(f.stderr.contains("did not answer within"), "{}", f.stderr);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // It really asked, three times.
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 512];
    assert!(silent.recv_from(&mut buf).is_ok());
}

#[test]
fn ping_a_listener_and_a_refused_port() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let f = run(
        &["ping", "127.0.0.1", &port, "-c", "3", "--interval", "0.01"],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let o = out(&f);
    assert_eq!(o.matches("connected to 127.0.0.1:").count(), 3, "{o}");
    assert!(
        o.contains("3 attempts, 3 connected, 0% loss; min/median/p99/max"),
        "{o}"
    );
    drop(l);
    let f = run(
        &["ping", "127.0.0.1", &port, "-c", "2", "--interval", "0"],
        b"",
    );
    assert_eq!(f.code(), 1);
    assert!(
        out(&f).contains("seq=1 refused") && out(&f).contains("100% loss"),
        "{}",
        out(&f)
    );
}

#[test]
fn scan_reports_exactly_the_three_open_ports() {
    // Find ten consecutive free ports, then listen on three of them.
    let mut base = 0;
    for start in (30000..60000).step_by(97) {
        if (start..start + 10).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            base = start;
            break;
        }
    }
    assert!(base > 0, "no free port range");
    let held: Vec<TcpListener> = [1, 4, 7]
        .iter()
        .map(|o| TcpListener::bind(("127.0.0.1", base + o)).unwrap())
        .collect();
    let range = format!("{}-{}", base, base + 9);
    let f = run(&["scan", "127.0.0.1", &range], b"");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let want: Vec<String> = [1, 4, 7]
        .iter()
        .map(|o| format!("{}/tcp open", base + o))
        .collect();
    let lines: Vec<&str> = std::str::from_utf8(&f.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (l, w) in lines.iter().zip(&want) {
        assert!(l.starts_with(w.as_str()), "{l} vs {w}");
    }
    assert!(f.stderr.contains("3 open of 10 scanned"), "{}", f.stderr);
    let j = run(
        &["scan", "127.0.0.1", &range, "--json", "--concurrency", "2"],
        b"",
    );
    let o = out(&j);
    assert!(
        o.contains("\"scanned\":10") && o.matches("\"port\":").count() == 3,
        "{o}"
    );
    // A port whose accept queue is full drops new handshakes: the connect
    // stays pending, so this goes through the event loop and its timeout.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    full.listen(0).unwrap();
    let full_port = full.local_addr().unwrap().as_socket().unwrap().port();
    let fillers: Vec<socket2::Socket> = (0..3)
        .map(|_| {
            let c =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            c.set_nonblocking(true).unwrap();
            let _ = c.connect(&full.local_addr().unwrap());
            c
        })
        .collect();
    let spec = format!("{},{full_port}", base + 1);
    let f = run(&["scan", "127.0.0.1", &spec, "--timeout", "0.3"], b"");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    assert_eq!(out(&f).lines().count(), 1, "{}", out(&f));
    assert!(out(&f).starts_with(&format!("{}/tcp open", base + 1)));
    assert!(f.stderr.contains("1 open of 2 scanned"), "{}", f.stderr);
    drop(fillers);
    for bad in ["0-5", "9-1", "", "1,,2"] {
        let f = run(&["scan", "127.0.0.1", bad], b"");
        assert_eq!(f.code(), 2, "{bad:?}: {}", f.stderr);
    }
    // Nothing open in the range: exit 1, so `if sockit scan …` works like nc -z.
    let f = run(&["scan", "127.0.0.1", &format!("{}", base + 2)], b"");
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("0 open of 1 scanned"), "{}", f.stderr);
    drop(held);
}

#[test]
fn dns_asks_for_a_and_aaaa_and_is_not_fooled_by_an_echo() {
    if let Some(d) = dnsmasq() {
        let server = format!("127.0.0.1:{}", d.port);
        let f = lookup_via(&server, "www.example.test", &[]);
        assert_eq!(f.code(), 0, "{}", f.stderr);
        assert!(out(&f).contains("192.0.2.10"), "{}", out(&f));
        assert!(out(&f).contains("2001:db8::10"), "{}", out(&f));
        let f = lookup_via(&server, "www.example.test", &["-4"]);
        assert!(!out(&f).contains("2001:db8::10"), "{}", out(&f));
        d.proc.kill();
    }
    // A UDP echo server sends our own query back: that is no answer.
    let echo = sockit_noinput(&["udp", "listen", "127.0.0.1:0", "--echo"]);
    let server = echo.listening().to_string();
    let f = lookup_via(&server, "www.example.test", &["--timeout", "1"]);
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("not a DNS server"), "{}", f.stderr);
    assert!(!f.stderr.contains("has no A record"), "{}", f.stderr);
    echo.kill();
    // Record types it does not know, and --type without --dns, are usage errors.
    let f = lookup_via(&server, "x.test", &["--type", "SRV"]);
    assert_eq!(f.code(), 2, "{}", f.stderr);
    let f = run(&["lookup", "host", "localhost", "--type", "A"], b"");
    assert_eq!(f.code(), 2, "{}", f.stderr);
    let f = run(&["lookup", "port", "80/udp", "--proto", "tcp"], b"");
    assert_eq!(f.code(), 2, "{}", f.stderr);
}

#[test]
fn an_interrupted_ping_prints_its_summary_and_exits_130() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let p = sockit(&[
        "ping",
        "127.0.0.1",
        &port,
        "-c",
        "1000",
        "--interval",
        "0.05",
    ]);
    p.out().wait_for("seq=2 ");
    let f = p.interrupt();
    assert_eq!(f.code(), 130, "{}", f.stderr);
    let text = String::from_utf8_lossy(&f.stdout).into_owned();
    assert!(
        text.contains("--- ") && text.contains("connected"),
        "{text}"
    );
    assert!(!text.contains("1000 attempts"), "{text}");
}
