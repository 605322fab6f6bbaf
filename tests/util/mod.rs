//! Helpers for end-to-end tests: run the real `sockit` binary, watch its
//! output with timeouts, and find peer tools (nc, socat, python3).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sockit"))
}

/// The bytes so far, and whether the stream has closed.
type Buffer = Mutex<(Vec<u8>, bool)>;

/// Output captured from a child, watchable while it runs.
#[derive(Clone, Default)]
pub struct Captured(Arc<(Buffer, Condvar)>);

impl Captured {
    fn start(mut src: impl Read + Send + 'static) -> Captured {
        let c = Captured::default();
        let c2 = c.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            loop {
                let n = src.read(&mut buf).unwrap_or(0);
                let (m, cv) = &*c2.0;
                let mut g = m.lock().unwrap();
                if n == 0 {
                    g.1 = true;
                    cv.notify_all();
                    return;
                }
                g.0.extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        c
    }

    /// Everything so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0 .0.lock().unwrap().0.clone()
    }

    /// Everything so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Waits until `pred` holds for the output, or panics after `WAIT`.
    pub fn wait_until(&self, what: &str, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let (m, cv) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut g = m.lock().unwrap();
        loop {
            if pred(&g.0) {
                return g.0.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || g.1 && !pred(&g.0) && left.is_zero() {
                panic!(
                    "timed out waiting for {what}; output so far: {:?}",
                    String::from_utf8_lossy(&g.0)
                );
            }
            if g.1 {
                // Closed: nothing more will come.
                panic!(
                    "stream closed before {what}; output: {:?}",
                    String::from_utf8_lossy(&g.0)
                );
            }
            g = cv.wait_timeout(g, left).unwrap().0;
        }
    }

    /// Waits for `needle` to appear.
    pub fn wait_for(&self, needle: &str) -> String {
        let n = needle.as_bytes().to_vec();
        let out = self.wait_until(needle, move |b| {
            b.windows(n.len().max(1)).any(|w| w == &n[..])
        });
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Waits for a whole line holding `needle` (its newline written too:
    /// a process may write one line in several pieces), and returns the
    /// output so far.
    pub fn wait_line(&self, needle: &str) -> String {
        let n = needle.to_string();
        let out = self.wait_until(needle, move |b| {
            String::from_utf8_lossy(b)
                .split_inclusive('\n')
                .any(|l| l.contains(&n) && l.ends_with('\n'))
        });
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Waits until the stream is closed (the child closed it or exited).
    pub fn wait_closed(&self) -> Vec<u8> {
        let (m, cv) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut g = m.lock().unwrap();
        while !g.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for output to close");
            g = cv.wait_timeout(g, left).unwrap().0;
        }
        g.0.clone()
    }
}

/// A running sockit (or peer tool) process.
pub struct Proc {
    pub child: Child,
    pub stdout: Option<Captured>,
    pub stderr: Captured,
    pub stdin: Option<ChildStdin>,
}

/// Writes to `c` (switched to non-blocking) until the peer stops taking
/// bytes (0.5 s without progress) or 10 s pass; returns how many it took.
pub fn write_until_stalled(c: &TcpStream) -> usize {
    c.set_nonblocking(true).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    let mut stalled = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && stalled < 50 {
        match (&*c).write(&chunk) {
            Ok(n) => {
                sent += n;
                stalled = 0;
            }
            Err(_) => {
                stalled += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    sent
}

/// A command that runs `sockit` as nobody when the tests run as root (root
/// ignores file permissions); `None` when that needs setpriv and it is
/// missing (the test is skipped).
pub fn sockit_unprivileged() -> Option<Command> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(Command::new(bin()));
    }
    if !have_tool("setpriv") {
        return None;
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin());
    Some(c)
}

/// A test that fails part-way must not leave its servers running.
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a finished process left.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Starts `sockit ARGS` with piped stdin, captured stdout and stderr.
pub fn sockit(args: &[&str]) -> Proc {
    spawn(Command::new(bin()).args(args), Stdio::piped(), None)
}

/// Starts `sockit ARGS` with stdin at EOF (`/dev/null`) and captured stdout,
/// as when it runs in the background of a script.
pub fn sockit_noinput(args: &[&str]) -> Proc {
    spawn(Command::new(bin()).args(args), Stdio::null(), None)
}

/// Starts `sockit ARGS` with the given stdin and stdout.
pub fn sockit_io(args: &[&str], stdin: Stdio, stdout: Stdio) -> Proc {
    spawn(Command::new(bin()).args(args), stdin, Some(stdout))
}

/// A `tcp listen 127.0.0.1:0` writing to `server_out`, and a `tcp
/// connect` to it reading `client_in`: both run to their end, and what
/// each left is returned (client first).
pub fn tcp_through(client_in: Stdio, server_out: Stdio) -> (Finished, Finished) {
    let server = sockit_io(&["tcp", "listen", "127.0.0.1:0"], Stdio::null(), server_out);
    let addr = server.listening();
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    let client = sockit_io(&["tcp", "connect", &host, &port], client_in, Stdio::null());
    (client.finish(), server.finish())
}

/// `sockit lookup host NAME --dns SERVER EXTRA…`: a query to a DNS server
/// of the test's own on loopback (the name goes nowhere else).
pub fn lookup_via(server: &str, name: &str, extra: &[&str]) -> Finished {
    let mut args = vec!["lookup", "host", name, "--dns", server];
    args.extend_from_slice(extra);
    run(&args, b"")
}

/// Starts any command; `stdout: None` captures it.
pub fn spawn(cmd: &mut Command, stdin: Stdio, stdout: Option<Stdio>) -> Proc {
    let piped_out = stdout.is_none();
    let mut child = cmd
        .stdin(stdin)
        .stdout(stdout.unwrap_or_else(Stdio::piped))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = if piped_out {
        child.stdout.take().map(Captured::start)
    } else {
        None
    };
    let stderr = Captured::start(child.stderr.take().unwrap());
    let stdin = child.stdin.take();
    Proc {
        child,
        stdout,
        stderr,
        stdin,
    }
}

impl Proc {
    /// Waits for the `listening on ADDR:PORT` line (or its JSON form with
    /// `--log-format json`) and returns the address.
    pub fn listening(&self) -> SocketAddr {
        let out = self.stderr.wait_until("a whole `listening on` line", |b| {
            String::from_utf8_lossy(b).split_inclusive('\n').any(|l| {
                (l.starts_with("listening on ") || l.contains("\"message\":\"listening on "))
                    && l.ends_with('\n')
            })
        });
        let text = String::from_utf8_lossy(&out).into_owned();
        let line = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("listening on ").or_else(|| {
                    let at = l.find("\"message\":\"listening on ")?;
                    let rest = &l[at + "\"message\":\"listening on ".len()..];
                    rest.split('"').next()
                })
            })
            .unwrap();
        let addr: SocketAddr = line.trim().parse().expect("address in listening line");
        addr
    }

    /// What follows `listening on ` (a Unix listener's `unix:PATH`).
    pub fn listening_text(&self) -> String {
        let out = self.stderr.wait_until("a whole `listening on` line", |b| {
            String::from_utf8_lossy(b)
                .split_inclusive('\n')
                .any(|l| l.starts_with("listening on ") && l.ends_with('\n'))
        });
        let text = String::from_utf8_lossy(&out).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("listening on "))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The listening address with a wildcard IP replaced by loopback.
    pub fn listening_loopback(&self) -> SocketAddr {
        let mut a = self.listening();
        if a.ip().is_unspecified() {
            a.set_ip(if a.is_ipv4() {
                "127.0.0.1".parse().unwrap()
            } else {
                "::1".parse().unwrap()
            });
        }
        a
    }

    /// Writes to stdin.
    pub fn send(&mut self, data: &[u8]) {
        let s = self.stdin.as_mut().expect("stdin is piped");
        s.write_all(data).unwrap();
        s.flush().unwrap();
    }

    /// Closes stdin.
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// The captured stdout.
    pub fn out(&self) -> &Captured {
        self.stdout.as_ref().expect("stdout is captured")
    }

    /// Waits for the process to exit (killing it after `WAIT`) and collects output.
    pub fn finish(mut self) -> Finished {
        self.stdin.take();
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "process did not exit within {WAIT:?}; stderr: {}",
                    self.stderr.text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stdout = self
            .stdout
            .as_ref()
            .map(|c| c.wait_closed())
            .unwrap_or_default();
        let stderr = String::from_utf8_lossy(&self.stderr.wait_closed()).into_owned();
        Finished {
            status,
            stdout,
            stderr,
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit.
    pub fn interrupt(self) -> Finished {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        self.finish()
    }

    /// Kills the process.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Peak resident memory (VmHWM) in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmHWM:")
    }
}

/// Reads one `kB` field of /proc/PID/status.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs `sockit ARGS` to completion with the given stdin bytes.
pub fn run(args: &[&str], input: &[u8]) -> Finished {
    let mut p = sockit(args);
    let data = input.to_vec();
    let mut stdin = p.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    p.finish()
}

/// Where a peer tool is: on PATH, or in the sbin directories that a
/// non-root PATH may leave out (dnsmasq lives in /usr/sbin).
pub fn tool_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether a peer tool is installed. When it is missing the test is
/// skipped with a printed reason, unless `SOCKIT_REQUIRE_PEERS=1` (as CI
/// sets), in which case the test fails.
pub fn have_tool(name: &str) -> bool {
    let found = tool_path(name).is_some();
    if !found {
        if std::env::var("SOCKIT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{name} is required (SOCKIT_REQUIRE_PEERS=1) but not installed");
        }
        eprintln!("SKIPPED: {name} is not installed (apt-get install it, or run .ci/run)");
    }
    found
}

/// A free TCP port on 127.0.0.1, for peer tools that cannot report theirs.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) until /proc/net/{proto} or {proto}6 shows a socket on
/// local port `port`, in `state` when given (the hex code /proc uses).
fn wait_proc_socket(proto: &str, port: u16, state: Option<&str>, what: &str) {
    let want = format!(":{port:04X}");
    let deadline = Instant::now() + WAIT;
    loop {
        for f in [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")] {
            let s = std::fs::read_to_string(f).unwrap_or_default();
            if s.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && cols[1].ends_with(&want) && state.is_none_or(|st| cols[3] == st)
            }) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{what} {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until something listens on TCP `port` (read from /proc/net/tcp*),
/// without connecting to it (a peer like `nc -l` accepts only once).
pub fn wait_tcp_listening(port: u16) {
    wait_proc_socket("tcp", port, Some("0A"), "nothing listened on TCP port");
}

/// Waits until a UDP socket is bound on `port` (read from /proc/net/udp*).
pub fn wait_udp_bound(port: u16) {
    wait_proc_socket("udp", port, None, "nothing bound UDP port");
}

/// Waits until the kernel holds an established TCP connection whose local
/// port is `port`: a client reached that server, whether or not the server
/// has accepted it yet. Reads /proc, so it needs no `ss`.
pub fn wait_tcp_established(port: u16) {
    wait_proc_socket("tcp", port, Some("01"), "no connection reached TCP port");
}

/// A listener on loopback that never accepts and whose queue is full, so
/// the kernel drops every further SYN: a connect to it times out. Hold
/// the returned sockets for as long as it must stay that way.
pub fn slow_to_accept() -> (Vec<socket2::Socket>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let full = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    full.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    full.listen(0).unwrap();
    let addr = full.local_addr().unwrap().as_socket().unwrap();
    let mut held = vec![full];
    for _ in 0..3 {
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        c.set_nonblocking(true).unwrap();
        let _ = c.connect(&addr.into());
        held.push(c);
    }
    (held, addr)
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects with a timeout and sets read/write timeouts on the stream.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Reads until EOF (with the stream's read timeout).
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

/// Reads exactly `n` bytes.
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).expect("read_exact");
    v
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// BLAKE3 of a file, hex.
pub fn hash_file(p: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p).unwrap()).unwrap();
    h.finalize().to_hex().to_string()
}

/// Runs a Python peer script from tests/peers to completion, asserts that it
/// succeeded, and returns its stdout as text.
pub fn python_peer(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(peer_script(script))
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A python3 that can import `module` (the one on PATH, else Debian's
/// own, which has the python3-* packages), or `None` with a printed
/// reason (a failure under `SOCKIT_REQUIRE_PEERS=1`).
pub fn python_with(module: &str, package: &str) -> Option<PathBuf> {
    let found = ["python3", "/usr/bin/python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        if std::env::var("SOCKIT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("python3's {module} is required (SOCKIT_REQUIRE_PEERS=1) but not installed");
        }
        eprintln!("SKIPPED: python3's {module} is not installed (apt-get install {package})");
    }
    found.map(PathBuf::from)
}

/// Path to a Python peer script in tests/peers.
pub fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("peers")
        .join(name)
}

/// A stdout whose reader is already gone: every write to it fails with
/// EPIPE, as with `sockit … | head -0`.
pub fn closed_pipe() -> Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    Stdio::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[1]) })
}

/// A dnsmasq on a loopback port, answering from a hosts file, forwarding nothing.
pub struct Dnsmasq {
    pub proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

pub fn dnsmasq() -> Option<Dnsmasq> {
    if !have_tool("dnsmasq") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "192.0.2.10 www.example.test\n2001:db8::10 www.example.test\n",
    )
    .unwrap();
    let user = Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "root".into());
    // dnsmasq binds UDP and TCP on its port; a parallel test can take the
    // TCP side of a port that was free for UDP. Try a few ports, bounded.
    for _ in 0..5 {
        let port = free_udp_port();
        let proc = spawn(
            Command::new(tool_path("dnsmasq").unwrap()).args([
                "-k",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                &format!("--addn-hosts={}", hosts.display()),
                "--mx-host=example.test,mail.example.test,10",
                // Three 200-byte strings: too big for a 512-byte UDP answer.
                &format!("--txt-record=big.example.test,{0},{0},{0}", "a".repeat(200)),
                "--local=/test/",
                "--conf-file=/dev/null",
                "--pid-file=",
                &format!("--user={user}"),
                // Its log on stderr says when the hosts file is loaded.
                "--log-facility=-",
            ]),
            Stdio::null(),
            None,
        );
        // dnsmasq binds its port before it reads the hosts file; a query in
        // between would get "no such name".
        let loaded = format!("read {} - ", hosts.display());
        let seen = proc.stderr.wait_until("dnsmasq's start", |b| {
            let t = String::from_utf8_lossy(b);
            t.contains(&loaded) || t.contains("Address already in use")
        });
        if String::from_utf8_lossy(&seen).contains("Address already in use") {
            proc.kill();
            continue;
        }
        wait_udp_bound(port);
        return Some(Dnsmasq {
            proc,
            port,
            _dir: dir,
        });
    }
    panic!("dnsmasq found no free port in 5 tries");
}

/// Sends `data` on a new connection to `addr` (from another thread, then
/// half-closes) and returns everything that came back until the peer
/// ended: an echo's whole answer.
pub fn round_trip(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut c = connect(addr);
    let mut w = c.try_clone().unwrap();
    let d = data.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&d).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let back = read_to_end(&mut c);
    writer.join().unwrap();
    back
}

/// [`round_trip`] over a Unix stream socket.
pub fn round_trip_unix(path: &Path, data: &[u8]) -> Vec<u8> {
    let mut c = std::os::unix::net::UnixStream::connect(path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = c.try_clone().unwrap();
    let d = data.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&d).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    back
}

/// CPU seconds (user and system) a process has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// `sockit -v forward 127.0.0.1:0 ARGS…`, and where it listens.
pub fn forward_loopback(args: &[&str]) -> (Proc, SocketAddr) {
    let mut full = vec!["-v", "forward", "127.0.0.1:0"];
    full.extend_from_slice(args);
    let p = sockit_noinput(&full);
    let a = p.listening();
    (p, a)
}
