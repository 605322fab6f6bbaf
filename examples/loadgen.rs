//! Load generator for the scripts in `bench/` (loopback only).
//!
//! ```text
//! loadgen rr      ADDR COUNT LEN          sequential round trips on one connection
//! loadgen conns   ADDR COUNT [SERVER_PID] hold COUNT echo connections at once
//! loadgen frames  ADDR COUNT LEN          pipelined frames through --frame --echo
//! loadgen fanout  ADDR PEERS MSGS [PID]   chat room fan-out latency
//! loadgen udp-echo ADDR COUNT LEN         pipelined datagrams against a UDP echo server
//! loadgen tunnels ADDR COUNT TARGET       SOCKS5 tunnels, 50 at a time: open, 64 B there and back, close
//! loadgen tunnels ADDR COUNT direct       the same against ADDR itself, no proxy: the ceiling
//! loadgen tunnels-held ADDR COUNT TARGET [PROXY_PID]  hold COUNT SOCKS5 tunnels at once, each answering
//! ```
//! Each prints one JSON line. Every wait has a timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let res = rt.block_on(async {
        let addr: SocketAddr = args.get(2).ok_or("missing ADDR")?.parse()?;
        let n: usize = args.get(3).ok_or("missing COUNT")?.parse()?;
        match args.get(1).map(String::as_str) {
            Some("rr") => rr(addr, n, args.get(4).map_or(Ok(64), |s| s.parse())?).await,
            Some("conns") => conns(addr, n, args.get(4).map(|s| s.parse()).transpose()?).await,
            Some("udp-echo") => udp_echo(addr, n, args.get(4).map_or(Ok(64), |s| s.parse())?).await,
            Some("frames") => frames(addr, n, args.get(4).map_or(Ok(64), |s| s.parse())?).await,
            Some("tunnels") => match args.get(4).map(String::as_str) {
                Some("direct") => tunnels(addr, n, None).await,
                t => tunnels(addr, n, Some(t.ok_or("missing TARGET")?.parse()?)).await,
            },
            Some("tunnels-held") => {
                tunnels_held(
                    addr,
                    n,
                    args.get(4).ok_or("missing TARGET")?.parse()?,
                    args.get(5).map(|s| s.parse()).transpose()?,
                )
                .await
            }
            Some("fanout") => {
                fanout(
                    addr,
                    n,
                    args.get(4).map_or(Ok(100), |s| s.parse())?,
                    args.get(5).map(|s| s.parse()).transpose()?,
                )
                .await
            }
            _ => Err("usage: loadgen rr|conns|frames|fanout ADDR COUNT ...".into()),
        }
    });
    if let Err(e) = res {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn raise_nofile() {
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Sequential round trips: write LEN bytes, read LEN bytes back, repeat.
/// Blocking I/O on this thread, so the client adds as little as possible.
async fn rr(addr: SocketAddr, count: usize, len: usize) -> Res<()> {
    tokio::task::spawn_blocking(move || -> Res<()> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&addr, WAIT)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(WAIT))?;
        let msg = vec![b'r'; len];
        let mut back = vec![0u8; len];
        let mut lat = Vec::with_capacity(count);
        let start = Instant::now();
        for _ in 0..count {
            let t = Instant::now();
            s.write_all(&msg)?;
            s.read_exact(&mut back)?;
            lat.push(t.elapsed().as_nanos() as u64);
        }
        let secs = start.elapsed().as_secs_f64();
        lat.sort_unstable();
        println!(
            "{{\"round_trips\":{count},\"per_sec\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1}}}",
            count as f64 / secs,
            pct(&lat, 0.5) as f64 / 1000.0,
            pct(&lat, 0.99) as f64 / 1000.0,
            pct(&lat, 0.999) as f64 / 1000.0
        );
        Ok(())
    })
    .await?
}

/// Opens COUNT connections, keeps them all open, then checks each one echoes.
async fn conns(addr: SocketAddr, count: usize, server_pid: Option<u32>) -> Res<()> {
    raise_nofile();
    let before = server_pid.map(rss_kib).unwrap_or(0);
    let start = Instant::now();
    let mut streams = Vec::with_capacity(count);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let permit = sem.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let r = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await;
            drop(permit);
            r
        }));
    }
    for t in tasks {
        streams.push(t.await???);
    }
    let connected = start.elapsed().as_secs_f64();
    // Every connection answers while all of them are open.
    let mut ok = 0usize;
    let mut checks = Vec::with_capacity(count);
    for (i, mut s) in streams.into_iter().enumerate() {
        checks.push(tokio::spawn(async move {
            let msg = (i as u64).to_le_bytes();
            s.write_all(&msg).await?;
            let mut back = [0u8; 8];
            tokio::time::timeout(WAIT, s.read_exact(&mut back)).await??;
            Ok::<(bool, TcpStream), Box<dyn std::error::Error + Send + Sync>>((back == msg, s))
        }));
    }
    let mut held = Vec::with_capacity(count);
    for c in checks {
        let (good, s) = c.await??;
        ok += good as usize;
        held.push(s);
    }
    let after = server_pid.map(rss_kib).unwrap_or(0);
    println!(
        "{{\"connections\":{count},\"answered\":{ok},\"connect_secs\":{connected:.2},\"total_secs\":{:.2},\"server_rss_kib\":{after},\"server_rss_before_kib\":{before},\"bytes_per_conn\":{:.0}}}",
        start.elapsed().as_secs_f64(),
        (after.saturating_sub(before) as f64 * 1024.0) / count.max(1) as f64
    );
    drop(held);
    Ok(())
}

/// Opens a SOCKS5 tunnel (no authentication) through the proxy at `proxy`
/// to `target` (IPv4).
async fn socks5_tunnel(proxy: SocketAddr, target: SocketAddr) -> Res<TcpStream> {
    let mut s = TcpStream::connect(proxy).await?;
    s.set_nodelay(true)?;
    let SocketAddr::V4(t) = target else {
        return Err("the target must be IPv4".into());
    };
    // As curl does: the greeting, its answer, then the request.
    s.write_all(&[5, 1, 0]).await?;
    let mut method = [0u8; 2];
    s.read_exact(&mut method).await?;
    if method != [5, 0] {
        return Err(format!("the proxy wants method {method:?}").into());
    }
    let mut req = vec![5u8, 1, 0, 1];
    req.extend_from_slice(&t.ip().octets());
    req.extend_from_slice(&t.port().to_be_bytes());
    s.write_all(&req).await?;
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await?;
    if reply[1] != 0 {
        return Err(format!("the proxy refused: {reply:?}").into());
    }
    Ok(s)
}

/// Tunnels per second: open, send 64 bytes, read them back, close. With
/// no target, the same connections go straight to `proxy` (an echo
/// server): the most any proxy in front of it could reach.
async fn tunnels(proxy: SocketAddr, count: usize, target: Option<SocketAddr>) -> Res<()> {
    raise_nofile();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(50));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let permit = sem.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let r = tokio::time::timeout(WAIT, async {
                let mut s = match target {
                    Some(t) => socks5_tunnel(proxy, t).await?,
                    None => TcpStream::connect(proxy).await?,
                };
                let msg = [b'x'; 64];
                s.write_all(&msg).await?;
                let mut back = [0u8; 64];
                s.read_exact(&mut back).await?;
                Ok::<bool, Box<dyn std::error::Error + Send + Sync>>(back == msg)
            })
            .await;
            drop(permit);
            r
        }));
    }
    let mut ok = 0usize;
    for t in tasks {
        ok += t.await??? as usize;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"tunnels\":{count},\"answered\":{ok},\"secs\":{secs:.3},\"per_sec\":{:.0}}}",
        count as f64 / secs
    );
    Ok(())
}

/// Holds `count` SOCKS5 tunnels at once, each answering; the proxy's RSS
/// per tunnel.
async fn tunnels_held(
    proxy: SocketAddr,
    count: usize,
    target: SocketAddr,
    pid: Option<u32>,
) -> Res<()> {
    raise_nofile();
    let before = pid.map(rss_kib).unwrap_or(0);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let permit = sem.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let r = tokio::time::timeout(WAIT, async {
                let mut s = socks5_tunnel(proxy, target).await?;
                let msg = (i as u64).to_le_bytes();
                s.write_all(&msg).await?;
                let mut back = [0u8; 8];
                s.read_exact(&mut back).await?;
                Ok::<(bool, TcpStream), Box<dyn std::error::Error + Send + Sync>>((back == msg, s))
            })
            .await;
            drop(permit);
            r
        }));
    }
    let mut held = Vec::with_capacity(count);
    let mut ok = 0usize;
    for t in tasks {
        let (good, s) = t.await???;
        ok += good as usize;
        held.push(s);
    }
    let after = pid.map(rss_kib).unwrap_or(0);
    println!(
        "{{\"tunnels\":{count},\"answered\":{ok},\"proxy_rss_kib\":{after},\"proxy_rss_before_kib\":{before},\"bytes_per_tunnel\":{:.0}}}",
        (after.saturating_sub(before) as f64 * 1024.0) / count.max(1) as f64
    );
    drop(held);
    Ok(())
}

/// Pipelined 4-byte-length-prefixed frames: one writer, one reader.
async fn frames(addr: SocketAddr, count: usize, len: usize) -> Res<()> {
    let s = TcpStream::connect(addr).await?;
    let (mut r, mut w) = s.into_split();
    let mut one = Vec::with_capacity(4 + len);
    one.extend_from_slice(&(len as u32).to_be_bytes());
    one.extend_from_slice(&vec![b'f'; len]);
    let batch: Vec<u8> = one.repeat(1024);
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut left = count;
        while left > 0 {
            let k = left.min(1024);
            w.write_all(&batch[..k * one.len()]).await?;
            left -= k;
        }
        w.shutdown().await?;
        Ok::<_, std::io::Error>(())
    });
    let want = count * (4 + len);
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    while got < want {
        let n = tokio::time::timeout(WAIT, r.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        got += n;
    }
    writer.await??;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"frames\":{count},\"bytes_back\":{got},\"complete\":{},\"frames_per_sec\":{:.0},\"secs\":{secs:.3}}}",
        got == want,
        count as f64 / secs
    );
    Ok(())
}

/// Chat fan-out: PEERS members join; one sends MSGS lines; every other
/// member timestamps each arrival.
async fn fanout(addr: SocketAddr, peers: usize, msgs: usize, server_pid: Option<u32>) -> Res<()> {
    raise_nofile();
    let mut readers = Vec::with_capacity(peers);
    let mut first: Option<TcpStream> = None;
    for i in 0..peers {
        let s = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await??;
        s.set_nodelay(true)?;
        if i == 0 {
            first = Some(s);
        } else {
            readers.push(s);
        }
    }
    // Receivers read from the start; each counts itself ready once it has
    // seen the sender's rename, so the join storm is over before timing.
    let t0 = Instant::now();
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let joined = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(peers);
    for s in readers {
        let ready = ready.clone();
        let joined = joined.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = BufReader::new(s);
            let mut line = String::new();
            let mut got = Vec::with_capacity(msgs);
            while got.len() < msgs {
                line.clear();
                match tokio::time::timeout(WAIT, r.read_line(&mut line)).await {
                    Ok(Ok(0)) => break,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => {
                        return Err(format!(
                            "stalled after {} messages; last line {line:?}",
                            got.len()
                        )
                        .into())
                    }
                }
                if line.starts_with("* welcome") {
                    joined.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if line.contains(" is now sender") {
                    ready.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if let Some(rest) = line.trim_end().strip_prefix("[sender] ") {
                    if let Ok(ns) = rest.parse::<u128>() {
                        got.push((t0.elapsed().as_nanos().saturating_sub(ns)) as u64);
                    }
                }
            }
            Ok::<Vec<u64>, Box<dyn std::error::Error + Send + Sync>>(got)
        }));
    }
    // connect() returns once the kernel has the connection, before the
    // server has accepted it into the room: wait for every welcome first.
    let deadline = Instant::now() + WAIT;
    while joined.load(std::sync::atomic::Ordering::Relaxed) < peers - 1 {
        if Instant::now() > deadline {
            return Err("not every receiver was welcomed into the room".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut sender = first.ok_or("no peers")?;
    sender.write_all(b"/nick sender\n").await?;
    while ready.load(std::sync::atomic::Ordering::Relaxed) < peers - 1 {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} receivers saw the rename",
                ready.load(std::sync::atomic::Ordering::Relaxed),
                peers - 1
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The sender never reads; drain its socket so it is not disconnected.
    let (mut sr, mut sender) = sender.into_split();
    tokio::spawn(async move {
        let mut sink = vec![0u8; 65536];
        while let Ok(n) = sr.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let rss = server_pid.map(rss_kib).unwrap_or(0);
    for _ in 0..msgs {
        let line = format!("{}\n", t0.elapsed().as_nanos());
        sender.write_all(line.as_bytes()).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lat = Vec::new();
    let mut complete = 0;
    for t in tasks {
        let v = match t.await? {
            Ok(v) => v,
            Err(e) => {
                eprintln!("loadgen: a receiver failed: {e}");
                continue;
            }
        };
        if v.len() == msgs {
            complete += 1;
        }
        lat.extend(v);
    }
    lat.sort_unstable();
    println!(
        "{{\"peers\":{peers},\"messages\":{msgs},\"receivers_complete\":{complete},\"deliveries\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"server_rss_kib\":{rss},\"bytes_per_peer\":{:.0}}}",
        lat.len(),
        pct(&lat, 0.5) as f64 / 1e6,
        pct(&lat, 0.99) as f64 / 1e6,
        lat.last().copied().unwrap_or(0) as f64 / 1e6,
        rss as f64 * 1024.0 / peers.max(1) as f64
    );
    Ok(())
}

/// Pipelined UDP echo: keeps up to WINDOW datagrams in flight, counts
/// echoes; a datagram not back within 200 ms of the last progress is lost.
async fn udp_echo(addr: SocketAddr, count: usize, len: usize) -> Res<()> {
    tokio::task::spawn_blocking(move || -> Res<()> {
        use sockit::udp::batch::{RecvBatch, SendBatch};
        const WINDOW: usize = 256;
        let bind = if addr.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
        let s = std::net::UdpSocket::bind(bind)?;
        s.connect(addr)?;
        s.set_read_timeout(Some(Duration::from_millis(1)))?;
        let payload = vec![b'u'; len];
        let mut tx = SendBatch::new(32);
        let mut rx = RecvBatch::new(64, 2048);
        let (mut sent, mut got, mut lost) = (0usize, 0usize, 0usize);
        let start = Instant::now();
        let mut last_progress = Instant::now();
        while got + lost < count {
            let room = (WINDOW + got + lost).saturating_sub(sent).min(count - sent).min(32);
            if room > 0 {
                let batch: Vec<&[u8]> = vec![&payload[..]; room];
                tx.send_all(&s, None, &batch)?;
                sent += room;
            }
            match rx.recv(&s) {
                Ok(n) => {
                    got += n;
                    last_progress = Instant::now();
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if last_progress.elapsed() > Duration::from_millis(200) {
                        lost += sent - got - lost;
                        last_progress = Instant::now();
                    }
                }
                Err(e) => return Err(e.into()),
            }
            if start.elapsed() > WAIT {
                return Err("udp-echo took too long".into());
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"sent\":{sent},\"echoed\":{got},\"lost\":{lost},\"echoes_per_sec\":{:.0},\"secs\":{secs:.3}}}",
            got as f64 / secs
        );
        Ok(())
    })
    .await?
}
