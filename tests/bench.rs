//! End-to-end tests of `sockit bench server` / `bench client` on loopback.

mod util;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use util::*;

fn json_num(doc: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let at = doc
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} missing in {doc}"))
        + pat.len();
    doc[at..].split([',', '}']).next().unwrap().parse().unwrap()
}

#[test]
fn every_mode_runs_against_one_server_at_once() {
    let server = sockit_noinput(&["bench", "server", "--listen", "127.0.0.1:0"]);
    let addr = server.listening().to_string();
    // All five tests at the same time: one server serves them all.
    let runs: Vec<Vec<&str>> = vec![
        vec!["tcp", "-t", "0.5", "-P", "2"],
        vec!["tcp", "-t", "0.5", "--reverse"],
        vec!["tcp", "-t", "0.5", "--bidir"],
        vec!["udp", "-t", "0.5", "-b", "50M", "-l", "1000"],
        vec!["rr", "-t", "0.5"],
        vec!["udp-rr", "-t", "0.5"],
        vec!["conns", "-t", "0.5", "--max-conns", "300"],
    ];
    let handles: Vec<_> = runs
        .into_iter()
        .map(|extra| {
            let addr = addr.clone();
            let extra: Vec<String> = extra.into_iter().map(String::from).collect();
            std::thread::spawn(move || {
                let mut args = vec!["bench".to_string(), "client".into(), addr, "--json".into()];
                args.extend(extra.clone());
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                (extra, run(&a, b""))
            })
        })
        .collect();
    for h in handles {
        let (extra, f) = h.join().unwrap();
        assert_eq!(f.code(), 0, "{extra:?}: {}", f.stderr);
        let doc = String::from_utf8_lossy(&f.stdout).to_string();
        match extra[0].as_str() {
            "tcp" if extra.contains(&"--bidir".to_string()) => {
                assert!(json_num(&doc, "bits_per_second") > 0.0);
                assert!(
                    doc.contains("sum_sent") && doc.contains("sum_received"),
                    "{doc}"
                );
            }
            "tcp" => assert!(json_num(&doc, "bits_per_second") > 0.0, "{doc}"),
            "udp" => {
                // Correctness, not speed: seven tests share two cores here,
                // so how much gets through depends on the machine's load.
                assert!(json_num(&doc, "packets") > 0.0, "{doc}");
                let lost = json_num(&doc, "lost_percent");
                assert!((0.0..=100.0).contains(&lost), "{doc}");
                assert!(doc.contains("\"jitter_ms\":"), "{doc}");
                // Paced at 50 Mbit/s: never well over the asked rate.
                let bps = json_num(&doc, "bits_per_second");
                assert!(bps > 0.0 && bps < 80e6, "{doc}");
            }
            "rr" | "udp-rr" => {
                assert!(json_num(&doc, "round_trips") > 0.0, "{doc}");
                if extra[0] == "rr" {
                    // TCP loses nothing; a UDP round trip may be lost under load.
                    assert_eq!(json_num(&doc, "lost"), 0.0, "{doc}");
                }
                let (p50, p99) = (json_num(&doc, "p50_us"), json_num(&doc, "p99_us"));
                assert!(p50 > 0.0 && p99 >= p50, "{doc}");
            }
            "conns" => {
                assert!(json_num(&doc, "connections") > 0.0, "{doc}");
                assert_eq!(json_num(&doc, "max_concurrent"), 300.0, "{doc}");
            }
            other => panic!("{other}"),
        }
    }
    server.kill();
}

#[test]
fn bad_clients_get_clear_errors_and_the_server_carries_on() {
    let server = sockit_noinput(&["bench", "server", "--listen", "127.0.0.1:0"]);
    let addr = server.listening();
    let a = addr.to_string();
    // Another protocol version.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let hello = b"SOCKIT-BENCH 2 mode=tcp dir=up len=100 secs=1";
    s.write_all(&(hello.len() as u32).to_be_bytes()).unwrap();
    s.write_all(hello).unwrap();
    let reply = read_to_end(&mut s);
    assert!(String::from_utf8_lossy(&reply).contains("same sockit version"));
    // Absurd sizes, rates and times, from the real client.
    // An absurd time is refused by the server itself.
    let f = run(&["bench", "client", &a, "tcp", "-t", "500"], b"");
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("refused"), "{}", f.stderr);
    assert_eq!(f.stderr.trim().lines().count(), 1);
    let f = run(
        &["bench", "client", &a, "udp", "-b", "99999999999999999999"],
        b"",
    );
    assert_eq!(f.code(), 2, "{}", f.stderr);
    // Sizes outside a test's limits are usage errors that name the limit
    // (issue 12: `-l 10G` used to show up as `len 4294967295`).
    for (args, limit) in [
        (&["udp", "-l", "70000"][..], "16 to 65507 bytes"),
        (&["udp", "-l", "4"][..], "16 to 65507 bytes"),
        (&["tcp", "-l", "10G"][..], "1 to 4194304 bytes"),
    ] {
        let mut full = vec!["bench", "client", &a];
        full.extend_from_slice(args);
        let f = run(&full, b"");
        assert_eq!(f.code(), 2, "{args:?}: {}", f.stderr);
        assert!(f.stderr.contains(limit), "{args:?}: {}", f.stderr);
    }
    // Flags a test would ignore are refused.
    for args in [
        &["udp", "-R"][..],
        &["rr", "-P", "4"],
        &["udp-rr", "--bidir"],
        &["rr", "-b", "10M"],
    ] {
        let mut full = vec!["bench", "client", &a];
        full.extend_from_slice(args);
        let f = run(&full, b"");
        assert_eq!(f.code(), 2, "{args:?}: {}", f.stderr);
    }
    // A client that connects and says nothing does not disturb others.
    let _silent = TcpStream::connect(addr).unwrap();
    let f = run(&["bench", "client", &a, "rr", "-t", "0.2"], b"");
    assert_eq!(f.code(), 0, "{}", f.stderr);
    server.kill();
}

#[test]
fn a_server_that_disappears_mid_test_is_a_clear_error() {
    let server = sockit_noinput(&["bench", "server", "--listen", "127.0.0.1:0"]);
    let addr = server.listening().to_string();
    let client = sockit(&["bench", "client", &addr, "rr", "-t", "20"]);
    // Wait (bounded) until the client's connection is up, then kill the
    // server: during the hello or mid-test, the client must say so plainly.
    util::wait_tcp_established(server.listening().port());
    server.kill();
    let f = client.finish();
    assert_eq!(f.code(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("disappeared"), "{}", f.stderr);
    assert_eq!(f.stderr.trim().lines().count(), 1, "{}", f.stderr);
}

#[test]
fn a_file_server_or_a_silent_server_is_not_a_bench_server() {
    let tmp = tempfile::tempdir().unwrap();
    let serve = sockit_noinput(&["serve", tmp.path().to_str().unwrap(), "-l", "127.0.0.1:0"]);
    let fs = serve.listening().to_string();
    // Like an HTTP server: it waits for a request line that never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sa = silent.local_addr().unwrap().to_string();
    let holder = std::thread::spawn(move || {
        let c = silent.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(c);
    });
    for server in [&fs, &sa] {
        let started = std::time::Instant::now();
        let f = run(&["bench", "client", server, "rr", "-t", "1"], b"");
        assert_eq!(f.code(), 1, "{}", f.stderr);
        assert!(
            f.stderr
                .contains(&format!("{server} is not a sockit bench server")),
            "{}",
            f.stderr
        );
        assert!(f.stdout.is_empty(), "no binary on stdout");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    holder.join().unwrap();
    serve.kill();
}

#[test]
fn plot_draws_each_second_or_the_latency_histogram() {
    let server = sockit_noinput(&["bench", "server", "--listen", "127.0.0.1:0"]);
    let addr = server.listening().to_string();
    let dir = tempfile::tempdir().unwrap();
    let tcp = dir.path().join("tcp.svg");
    let f = run(
        &[
            "bench",
            "client",
            &addr,
            "tcp",
            "-t",
            "2.2",
            "--plot",
            tcp.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let svg = std::fs::read_to_string(&tcp).unwrap();
    assert!(
        svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    // One point per second of the run.
    assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
    assert!(svg.contains("bit/s"));
    let rr = dir.path().join("rr.svg");
    let f = run(
        &[
            "bench",
            "client",
            &addr,
            "rr",
            "-t",
            "0.5",
            "--plot",
            rr.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(f.code(), 0, "{}", f.stderr);
    let svg = std::fs::read_to_string(&rr).unwrap();
    let counted: u64 = svg
        .split(" us: ")
        .skip(1)
        .map(|t| t.split('<').next().unwrap().parse::<u64>().unwrap())
        .sum();
    // Every round trip is in a bar, and the title says how many there were.
    assert!(counted > 100, "{svg}");
    assert!(svg.contains(&format!("rr: {counted} round trips")), "{svg}");
    server.kill();
}
