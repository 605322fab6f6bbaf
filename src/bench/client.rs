//! `sockit bench client`: runs one test against a bench server and reports
//! it as a table or as JSON (with iperf3's field names where the figure is
//! the same).

use std::io::{self, IsTerminal, Read, Write};
use std::net::{SocketAddr, UdpSocket};

use crate::tls::{client_stream, ClientTlsOptions, Stream, TlsError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::proto::{Hello, Mode};
use crate::net::{self, describe, ConnectOptions};
use crate::udp::batch::SendBatch;

/// Bench errors, one sentence each.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Connecting failed.
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// Reaching the server (directly or through `--proxy`) failed.
    #[error(transparent)]
    Dial(#[from] crate::dial::DialError),
    /// The server refused the test.
    #[error("the bench server refused: {0}")]
    Refused(String),
    /// The server went away or broke the protocol mid-test.
    #[error("the bench server {0}; other clients are not affected, try again")]
    Lost(String),
    /// TLS set-up, trust or handshake failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The peer answered the hello with something else, or not at all.
    #[error("{0} is not a sockit bench server (start one with `sockit bench server`)")]
    NotBench(String),
}

impl crate::error::Failure for BenchError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            BenchError::Net(e) => e.kind(),
            BenchError::Dial(e) => e.kind(),
            BenchError::Tls(e) => e.kind(),
            BenchError::Refused(_) | BenchError::Lost(_) | BenchError::NotBench(_) => {
                crate::error::Kind::Runtime
            }
        }
    }
}

/// How long a bench server may take to answer the hello: it answers at
/// once, so a longer silence means something else is listening.
const HELLO_REPLY_WAIT: Duration = Duration::from_secs(2);

fn lost(what: &str, e: &io::Error) -> BenchError {
    BenchError::Lost(format!("disappeared during {what} ({})", describe(e)))
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The test.
    pub mode: Mode,
    /// Parallel streams (tcp).
    pub parallel: usize,
    /// Server sends (tcp).
    pub reverse: bool,
    /// Both directions at once (tcp).
    pub bidir: bool,
    /// Test length.
    pub secs: f64,
    /// Stop after this many bytes per stream (tcp; 0 = no limit).
    pub bytes: u64,
    /// Bytes per write, message or datagram.
    pub len: usize,
    /// UDP rate in bits per second (0 = as fast as possible).
    pub rate: u64,
    /// conns: most connections to hold at once.
    pub max_conns: usize,
    /// Print progress once a second on a terminal.
    pub progress: bool,
    /// `--tls`: how to trust the server.
    pub tls: Option<ClientTlsOptions>,
    /// The server's name as typed, for TLS checks and known_hosts.
    pub host: String,
    /// UDP tests: send to this port instead of the one the server opens
    /// (a relay or NAT in between).
    pub udp_port: Option<u16>,
    /// `--proxy` (TCP tests): reach the server through these; `host` is
    /// the name the last proxy is asked for.
    pub proxies: Vec<crate::proxy::ProxyUrl>,
    /// `--plot`: keep what the report's [`Report::plot`] needs.
    pub plot: bool,
}

/// One test's result, as label/value rows and a JSON object.
#[derive(Debug, Clone)]
pub struct Report {
    /// Human rows.
    pub rows: Vec<(String, String)>,
    /// JSON object text.
    pub json: String,
    /// The run drawn, with `--plot`.
    pub plot: Option<super::plot::Plot>,
}

/// What a progress line counts.
#[derive(Clone, Copy)]
enum Unit {
    /// Bytes, shown as a bit rate.
    Bits,
    /// Events (datagrams, round trips, connections), shown per second.
    Per(&'static str),
}

/// Samples one a second at the most: a test is at most a few thousand
/// seconds long (`proto::MAX_SECS`), and this caps it whatever happens.
const MAX_SAMPLES: usize = 100_000;

/// A once-a-second progress line on stderr (when it is a terminal), and
/// the per-second counts for `--plot`.
struct Progress {
    /// What the test adds to as it goes.
    counter: Arc<AtomicU64>,
    /// Tells the reporter to stop.
    done: Arc<AtomicBool>,
    /// The reporter thread, if one runs; it returns the samples.
    thread: Option<std::thread::JoinHandle<Vec<(f64, u64)>>>,
}

impl Progress {
    fn start(enabled: bool, record: bool, unit: Unit) -> Progress {
        let counter = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let show = enabled && io::stderr().is_terminal();
        let thread = (show || record).then(|| {
            let (c, d) = (counter.clone(), done.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut last = 0;
                let mut tick = 1u64;
                let mut samples = Vec::new();
                while !d.load(Ordering::SeqCst) {
                    // Short naps, so stopping is quick; a line each second.
                    std::thread::sleep(Duration::from_millis(50));
                    if start.elapsed() < Duration::from_secs(tick) {
                        continue;
                    }
                    tick += 1;
                    let now = c.load(Ordering::Relaxed);
                    let delta = now - last;
                    last = now;
                    let secs = start.elapsed().as_secs_f64();
                    if record && samples.len() < MAX_SAMPLES {
                        samples.push((secs, delta));
                    }
                    if !show {
                        continue;
                    }
                    let shown = match unit {
                        Unit::Bits => rate(delta as f64 * 8.0),
                        Unit::Per(what) => format!("{delta} {what}/s"),
                    };
                    crate::logline::notice(
                        "progress",
                        &format!("[{secs:5.1} s] {shown}"),
                        &[
                            ("secs", format!("{secs:.1}")),
                            ("per_interval", delta.to_string()),
                        ],
                    );
                }
                samples
            })
        });
        Progress {
            counter,
            done,
            thread,
        }
    }

    fn add(&self, n: u64) {
        self.counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Stops the reporter; the per-second counts it kept.
    fn stop(self) -> Vec<(f64, u64)> {
        self.done.store(true, Ordering::SeqCst);
        self.thread.and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

/// The per-second counts as a plot, when one was asked for.
fn series(
    o: &ClientOptions,
    title: String,
    unit: &'static str,
    scale: f64,
    samples: Vec<(f64, u64)>,
) -> Option<super::plot::Plot> {
    o.plot.then(|| super::plot::Plot::Series {
        title,
        unit,
        points: samples
            .into_iter()
            .map(|(t, n)| (t, n as f64 * scale))
            .collect(),
    })
}

/// Connects and sends the hello; returns the stream and the server's answer.
fn open(
    addr: SocketAddr,
    hello: &Hello,
    o: &ClientOptions,
) -> Result<(Stream, String), BenchError> {
    let target = if o.proxies.is_empty() || o.host.is_empty() {
        addr.ip().to_string()
    } else {
        o.host.clone()
    };
    let tcp = crate::dial::connect(
        &target,
        addr.port(),
        &crate::dial::DialOptions {
            connect: ConnectOptions {
                timeout: Some(Duration::from_secs(10)),
                nodelay: true,
                ..ConnectOptions::default()
            },
            proxies: o.proxies.clone(),
        },
    )?;
    let host = if o.host.is_empty() {
        addr.ip().to_string()
    } else {
        o.host.clone()
    };
    let mut s = client_stream(&host, addr.port(), tcp, o.tls.as_ref())?;
    write_frame(&mut s, hello.encode().as_bytes()).map_err(|e| lost("the hello", &e))?;
    let _ = s.tcp().set_read_timeout(Some(HELLO_REPLY_WAIT));
    let who = net::show_addr(addr);
    let reply = read_frame(&mut s).map_err(|e| {
        if e.to_string() == SPEAKS_TLS {
            BenchError::Tls(TlsError::ServerSpeaksTls(who.clone()))
        } else if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::InvalidData
                | io::ErrorKind::UnexpectedEof
        ) {
            BenchError::NotBench(who.clone())
        } else {
            lost("the hello", &e)
        }
    })?;
    if let Some(why) = reply.strip_prefix("ERR ") {
        return Err(BenchError::Refused(why.to_string()));
    }
    if !reply.starts_with("OK") {
        return Err(BenchError::NotBench(who));
    }
    let _ = s.tcp().set_read_timeout(Some(
        Duration::from_secs_f64(hello.secs) + Duration::from_secs(15),
    ));
    Ok((s, reply))
}

/// The marker `read_frame` uses for a TLS record where a frame should be.
const SPEAKS_TLS: &str = "the server speaks TLS";

fn write_frame(s: &mut Stream, payload: &[u8]) -> io::Result<()> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    s.write_all(&v)?;
    s.flush()
}

fn read_frame(s: &mut Stream) -> io::Result<String> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h)?;
    if !s.is_tls() && matches!(h, [0x15 | 0x16, 0x03, 0..=4, _]) {
        return Err(io::Error::other(SPEAKS_TLS));
    }
    let n = u32::from_be_bytes(h) as usize;
    if n > 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "oversized control frame",
        ));
    }
    let mut body = vec![0u8; n];
    s.read_exact(&mut body)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn field(reply: &str, key: &str) -> Option<f64> {
    reply
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
}

fn rate(bits_per_second: f64) -> String {
    if bits_per_second >= 1e9 {
        format!("{:.2} Gbit/s", bits_per_second / 1e9)
    } else {
        format!("{:.1} Mbit/s", bits_per_second / 1e6)
    }
}

/// Runs the test.
///
/// # Errors
/// Connection errors, a refusal, or a server that disappears.
pub fn run(addr: SocketAddr, o: &ClientOptions) -> Result<Report, BenchError> {
    match o.mode {
        Mode::Tcp => tcp(addr, o),
        Mode::Udp => udp(addr, o),
        Mode::Rr => rr(addr, o),
        Mode::UdpRr => udp_rr(addr, o),
        Mode::Conns => conns(addr, o),
    }
}

fn hello(o: &ClientOptions, down: bool) -> Hello {
    Hello {
        mode: o.mode,
        down,
        len: o.len,
        secs: o.secs,
        bytes: o.bytes,
        rate: o.rate,
    }
}

/// Bulk TCP over one or more streams.
fn tcp(addr: SocketAddr, o: &ClientOptions) -> Result<Report, BenchError> {
    let mut dirs = Vec::new();
    for _ in 0..o.parallel.max(1) {
        if o.bidir {
            dirs.push(false);
            dirs.push(true);
        } else {
            dirs.push(o.reverse);
        }
    }
    let progress = Progress::start(o.progress, o.plot, Unit::Bits);
    let counter = progress.counter.clone();
    let started = Instant::now();
    let handles: Vec<_> = dirs
        .iter()
        .map(|&down| {
            let h = hello(o, down);
            let c = counter.clone();
            let o = o.clone();
            std::thread::spawn(move || tcp_stream(addr, &h, &c, &o).map(|r| (down, r)))
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(
            h.join()
                .map_err(|_| BenchError::Lost("stream thread failed".into()))??,
        );
    }
    let samples = progress.stop();
    let wall = started.elapsed().as_secs_f64();
    let sum = |down: bool| -> (u64, f64) {
        let r: Vec<&(u64, f64)> = results
            .iter()
            .filter(|(d, _)| *d == down)
            .map(|(_, r)| r)
            .collect();
        let bytes: u64 = r.iter().map(|x| x.0).sum();
        let secs = r.iter().map(|x| x.1).fold(0.0, f64::max);
        (bytes, secs)
    };
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (down, label) in [
        (false, "sent (client -> server)"),
        (true, "received (server -> client)"),
    ] {
        let (bytes, secs) = sum(down);
        if bytes == 0 && !dirs.contains(&down) {
            continue;
        }
        let bps = bytes as f64 * 8.0 / secs.max(1e-9);
        rows.push((
            label.to_string(),
            format!(
                "{} in {secs:.2} s = {}",
                crate::transfer::client::human(bytes),
                rate(bps)
            ),
        ));
        json.push(format!(
            "\"{}\":{{\"bytes\":{bytes},\"seconds\":{secs:.6},\"bits_per_second\":{bps:.0}}}",
            if down { "sum_received" } else { "sum_sent" }
        ));
    }
    rows.push((
        "streams".into(),
        format!("{}, wall {wall:.2} s", dirs.len()),
    ));
    Ok(Report {
        plot: series(
            o,
            format!(
                "sockit bench tcp: {}, {wall:.1} s, each second's throughput",
                crate::text::counted(dirs.len() as u64, "stream", "streams")
            ),
            "bit/s",
            8.0,
            samples,
        ),
        rows,
        json: format!(
            "{{\"mode\":\"tcp\",\"streams\":{},{}}}",
            dirs.len(),
            json.join(",")
        ),
    })
}

/// One TCP stream: returns (bytes, seconds).
fn tcp_stream(
    addr: SocketAddr,
    h: &Hello,
    counter: &AtomicU64,
    o: &ClientOptions,
) -> Result<(u64, f64), BenchError> {
    let (mut s, _) = open(addr, h, o)?;
    let mut buf = vec![0xa5u8; h.len];
    let started = Instant::now();
    let until = Duration::from_secs_f64(h.secs);
    if h.down {
        let mut got = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got += n as u64;
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(lost("the download", &e)),
            }
        }
        return Ok((got, started.elapsed().as_secs_f64()));
    }
    let mut sent = 0u64;
    while started.elapsed() < until && (h.bytes == 0 || sent < h.bytes) {
        let n = if h.bytes == 0 {
            buf.len()
        } else {
            buf.len().min((h.bytes - sent) as usize)
        };
        s.write_all(&buf[..n]).map_err(|e| lost("the upload", &e))?;
        sent += n as u64;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    s.finish();
    let result = read_frame(&mut s).map_err(|e| lost("the upload's result", &e))?;
    let bytes = field(&result, "bytes").map(|b| b as u64).unwrap_or(sent);
    let secs = field(&result, "secs").unwrap_or_else(|| started.elapsed().as_secs_f64());
    Ok((bytes, secs))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Opens the control connection of a UDP test and a UDP socket connected
/// to the port the server opened for it.
fn udp_session(addr: SocketAddr, o: &ClientOptions) -> Result<(Stream, UdpSocket), BenchError> {
    let (control, reply) = open(addr, &hello(o, false), o)?;
    let announced =
        field(&reply, "port").ok_or_else(|| BenchError::Lost("sent no UDP port".into()))? as u16;
    let port = o.udp_port.unwrap_or(announced);
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| lost("the UDP setup", &e))?;
    sock.connect(SocketAddr::new(addr.ip(), port))
        .map_err(|e| lost("the UDP setup", &e))?;
    Ok((control, sock))
}

/// UDP at a rate; the server counts loss, reordering and jitter.
fn udp(addr: SocketAddr, o: &ClientOptions) -> Result<Report, BenchError> {
    let (mut control, sock) = udp_session(addr, o)?;
    let _ = socket2::SockRef::from(&sock).set_send_buffer_size(4 << 20);
    let mut tx = SendBatch::new(32);
    let mut bufs: Vec<Vec<u8>> = (0..32).map(|_| vec![0u8; o.len]).collect();
    let started = Instant::now();
    let until = Duration::from_secs_f64(o.secs);
    let per_sec = if o.rate == 0 {
        f64::INFINITY
    } else {
        o.rate as f64 / (o.len as f64 * 8.0)
    };
    let mut seq = 0u64;
    let progress = Progress::start(o.progress, o.plot, Unit::Per("datagrams"));
    while started.elapsed() < until {
        let due = (started.elapsed().as_secs_f64() * per_sec).min(u64::MAX as f64) as u64;
        let batch = if o.rate == 0 {
            32
        } else {
            due.saturating_sub(seq).min(32) as usize
        };
        if batch == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let ts = now_ns();
        for (i, b) in bufs.iter_mut().take(batch).enumerate() {
            b[..8].copy_from_slice(&(seq + i as u64).to_be_bytes());
            b[8..16].copy_from_slice(&ts.to_be_bytes());
        }
        let refs: Vec<&[u8]> = bufs.iter().take(batch).map(|b| &b[..]).collect();
        match tx.send_all(&sock, None, &refs) {
            Ok(()) => {
                seq += batch as u64;
                progress.add(batch as u64);
            }
            // A full send queue (ENOBUFS) or a bounced datagram: keep going.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOBUFS) | Some(libc::ECONNREFUSED)
                ) => {}
            Err(e) => return Err(lost("the UDP test", &e)),
        }
    }
    let samples = progress.stop();
    let secs = started.elapsed().as_secs_f64();
    write_frame(&mut control, format!("DONE sent={seq}").as_bytes())
        .map_err(|e| lost("the UDP test", &e))?;
    let result = read_frame(&mut control).map_err(|e| lost("the UDP result", &e))?;
    let received = field(&result, "received").unwrap_or(0.0) as u64;
    let lost_n = field(&result, "lost").unwrap_or(0.0) as u64;
    let ooo = field(&result, "ooo").unwrap_or(0.0) as u64;
    let jitter = field(&result, "jitter_ms").unwrap_or(0.0);
    let lost_pct = if seq == 0 {
        0.0
    } else {
        100.0 * lost_n as f64 / seq as f64
    };
    let bps = seq as f64 * o.len as f64 * 8.0 / secs.max(1e-9);
    Ok(Report {
        plot: series(
            o,
            format!("sockit bench udp: datagrams of {} B, each second's rate", o.len),
            "datagrams/s",
            1.0,
            samples,
        ),
        rows: vec![
            ("sent".into(), format!("{seq} datagrams of {} B in {secs:.2} s = {:.0}/s, {}", o.len, seq as f64 / secs, rate(bps))),
            ("received".into(), format!("{received}, lost {lost_n} ({lost_pct:.2}%), out of order {ooo}")),
            ("jitter".into(), format!("{jitter:.4} ms")),
        ],
        json: format!(
            "{{\"mode\":\"udp\",\"packets\":{seq},\"bytes\":{},\"seconds\":{secs:.6},\"bits_per_second\":{bps:.0},\"packets_per_second\":{:.0},\"lost_packets\":{lost_n},\"lost_percent\":{lost_pct:.4},\"out_of_order\":{ooo},\"jitter_ms\":{jitter:.4}}}",
            seq * o.len as u64,
            seq as f64 / secs.max(1e-9)
        ),
    })
}

/// Latency summary rows and JSON from sorted round-trip times (ns).
fn latency(mode: &str, lat: &mut [u64], secs: f64, lost_n: u64, plot: bool) -> Report {
    lat.sort_unstable();
    let p = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        lat[((lat.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0
    };
    let n = lat.len() as f64;
    Report {
        plot: plot.then(|| super::plot::Plot::Histogram {
            title: format!(
                "sockit bench {mode}: {} round trips, p50 {:.1} us, p99 {:.1} us",
                lat.len(),
                p(0.5),
                p(0.99)
            ),
            values_us: lat.iter().map(|&ns| ns as f64 / 1000.0).collect(),
        }),
        rows: vec![
            ("round trips".into(), format!("{} in {secs:.2} s = {:.0}/s, {lost_n} lost", lat.len(), n / secs.max(1e-9))),
            ("latency".into(), format!("p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us", p(0.5), p(0.9), p(0.99), p(0.999))),
        ],
        json: format!(
            "{{\"mode\":\"{mode}\",\"round_trips\":{},\"seconds\":{secs:.6},\"round_trips_per_second\":{:.0},\"lost\":{lost_n},\"p50_us\":{:.2},\"p90_us\":{:.2},\"p99_us\":{:.2},\"p999_us\":{:.2}}}",
            lat.len(),
            n / secs.max(1e-9),
            p(0.5),
            p(0.9),
            p(0.99),
            p(0.999)
        ),
    }
}

/// TCP request/response, like netperf TCP_RR.
fn rr(addr: SocketAddr, o: &ClientOptions) -> Result<Report, BenchError> {
    let (mut s, _) = open(addr, &hello(o, false), o)?;
    let msg = vec![b'q'; o.len];
    let mut back = vec![0u8; o.len];
    let mut lat = Vec::with_capacity(100_000);
    let started = Instant::now();
    let until = Duration::from_secs_f64(o.secs);
    let progress = Progress::start(o.progress, o.plot, Unit::Per("round trips"));
    while started.elapsed() < until {
        let t = Instant::now();
        s.write_all(&msg).map_err(|e| lost("the round trips", &e))?;
        s.read_exact(&mut back)
            .map_err(|e| lost("the round trips", &e))?;
        lat.push(t.elapsed().as_nanos() as u64);
        progress.add(1);
    }
    let _ = progress.stop();
    Ok(latency(
        "rr",
        &mut lat,
        started.elapsed().as_secs_f64(),
        0,
        o.plot,
    ))
}

/// UDP request/response.
fn udp_rr(addr: SocketAddr, o: &ClientOptions) -> Result<Report, BenchError> {
    let (mut control, sock) = udp_session(addr, o)?;
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut msg = vec![0u8; o.len];
    let mut back = vec![0u8; o.len + 1];
    let mut lat = Vec::with_capacity(100_000);
    let mut lost_n = 0u64;
    let started = Instant::now();
    let until = Duration::from_secs_f64(o.secs);
    let mut seq = 0u64;
    let progress = Progress::start(o.progress, o.plot, Unit::Per("round trips"));
    while started.elapsed() < until {
        progress.add(1);
        msg[..8].copy_from_slice(&seq.to_be_bytes());
        msg[8..16].copy_from_slice(&now_ns().to_be_bytes());
        let t = Instant::now();
        sock.send(&msg).map_err(|e| lost("the round trips", &e))?;
        loop {
            match sock.recv(&mut back) {
                Ok(n) if n >= 8 && back[..8] == seq.to_be_bytes() => {
                    lat.push(t.elapsed().as_nanos() as u64);
                    break;
                }
                Ok(_) => continue, // a late reply to an earlier, timed-out request
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    lost_n += 1;
                    break;
                }
                Err(e) => return Err(lost("the round trips", &e)),
            }
        }
        seq += 1;
    }
    let _ = progress.stop();
    let secs = started.elapsed().as_secs_f64();
    let _ = write_frame(&mut control, format!("DONE sent={seq}").as_bytes());
    let _ = read_frame(&mut control);
    Ok(latency("udp-rr", &mut lat, secs, lost_n, o.plot))
}

/// Connection setup rate, then the most connections held at once.
fn conns(addr: SocketAddr, o: &ClientOptions) -> Result<Report, BenchError> {
    net::raise_nofile_limit();
    let h = hello(o, false);
    let started = Instant::now();
    let half = Duration::from_secs_f64(o.secs / 2.0);
    let mut made = 0u64;
    let progress = Progress::start(o.progress, o.plot, Unit::Per("connections"));
    while started.elapsed() < half {
        let (s, _) = open(addr, &h, o)?;
        drop(s);
        made += 1;
        progress.add(1);
    }
    let samples = progress.stop();
    let setup_secs = started.elapsed().as_secs_f64();
    let mut held = Vec::with_capacity(o.max_conns);
    let hold_started = Instant::now();
    let mut stopped_by = String::from("the --max-conns limit");
    while held.len() < o.max_conns {
        match open(addr, &h, o) {
            Ok((s, _)) => held.push(s),
            Err(e) => {
                stopped_by = e.to_string();
                break;
            }
        }
    }
    let hold_secs = hold_started.elapsed().as_secs_f64();
    let n = held.len();
    drop(held);
    Ok(Report {
        plot: series(
            o,
            "sockit bench conns: each second's new connections".into(),
            "connections/s",
            1.0,
            samples,
        ),
        rows: vec![
            ("setup rate".into(), format!("{made} connections in {setup_secs:.2} s = {:.0}/s", made as f64 / setup_secs.max(1e-9))),
            ("held at once".into(), format!("{n} (opened in {hold_secs:.2} s; stopped by {stopped_by})")),
        ],
        json: format!(
            "{{\"mode\":\"conns\",\"connections\":{made},\"connections_per_second\":{:.0},\"max_concurrent\":{n}}}",
            made as f64 / setup_secs.max(1e-9)
        ),
    })
}
