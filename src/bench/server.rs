//! `sockit bench server`: serves any number of clients and tests at once
//! (iperf3 serves one), and enforces its own bounds on every test.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::proto::{Hello, Mode};
use crate::frame::FrameCodec;
use crate::listener::{self, Bound, Busy, Client, Handler, Rules, Stream};
use crate::net::describe;
use crate::udp::batch::{RecvBatch, SendBatch};

/// Largest control frame.
const MAX_CONTROL: usize = 4096;
/// How long a client may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time the server allows past a test's length before it cuts it.
const GRACE: Duration = Duration::from_secs(10);

/// Serves bench clients on `listener` (non-blocking) until `stop` is
/// cancelled.
///
/// # Errors
/// When the listener cannot be registered; accept errors are logged and
/// retried.
pub async fn serve(
    listener: std::net::TcpListener,
    stop: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, &ServerSecurity::default(), stop).await
}

/// TLS and access control for the bench server.
#[derive(Debug, Clone, Default)]
pub struct ServerSecurity {
    /// `--tls`: the server configuration.
    pub tls: Option<crate::tls::ServerTls>,
    /// How long a TLS handshake may take (zero: the default).
    pub handshake_timeout: Duration,
    /// `--allow` and `--deny`.
    pub access: crate::access::AccessList,
    /// `--udp-port`: one UDP socket for every UDP test (one test at a
    /// time), so a relay or firewall can point at a fixed port. `None`
    /// opens a new port for each test.
    pub fixed_udp: Option<Arc<FixedUdp>>,
}

/// The UDP socket of `--udp-port`, and whether a test holds it.
#[derive(Debug)]
pub struct FixedUdp {
    sock: UdpSocket,
    busy: AtomicBool,
}

impl FixedUdp {
    /// Binds `addr` (port 0 lets the kernel choose) for UDP tests.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn bind(addr: SocketAddr) -> std::io::Result<FixedUdp> {
        let sock = UdpSocket::bind(addr)?;
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
        Ok(FixedUdp {
            sock,
            busy: AtomicBool::new(false),
        })
    }

    /// The bound address.
    ///
    /// # Errors
    /// When the kernel cannot say.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The socket for one test, if no other test holds it; datagrams left
    /// from an earlier test are dropped first.
    fn take(self: &Arc<Self>) -> Option<Lease> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return None;
        }
        let lease = Lease(self.clone());
        let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
        let sock = socket2::SockRef::from(&self.sock);
        // Bounded: at most the receive buffer's worth of stale datagrams.
        for _ in 0..100_000 {
            if sock.recv_with_flags(&mut b, libc::MSG_DONTWAIT).is_err() {
                break;
            }
        }
        Some(lease)
    }
}

/// Holds the fixed UDP socket for one test; dropping it frees the socket.
struct Lease(Arc<FixedUdp>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::SeqCst);
    }
}

/// [`serve`] with TLS and access control. Clients come from
/// [`crate::listener`]'s accept loop, one loop on this runtime: the tests
/// spread over its threads. When `stop` is cancelled, the tests running
/// are cut off at once.
///
/// # Errors
/// When the listener cannot be registered; accept errors are logged and
/// retried.
pub async fn serve_with(
    listener: std::net::TcpListener,
    sec: &ServerSecurity,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let deadline = if sec.handshake_timeout.is_zero() {
        crate::tls::DEFAULT_HANDSHAKE_TIMEOUT
    } else {
        sec.handshake_timeout
    };
    let rules = Rules {
        loops: 1,
        name: "sockit-bench",
        max_conns: None,
        access: sec.access.clone(),
        once: false,
        // Each test needs the address the client reached us at.
        want_local: true,
        busy: Busy {
            verb: "serving",
            one: "client",
            many: "clients",
        },
        tick: None,
    };
    let server = Arc::new(Server {
        tls: sec.tls.clone(),
        deadline,
        udp: sec.fixed_udp.clone(),
        stop: stop.clone(),
    });
    listener::run(Bound::Tcp(listener), rules, server, stop).await?;
    Ok(())
}

/// The listener's handler: one task per client, its tests one at a time.
struct Server {
    tls: Option<crate::tls::ServerTls>,
    deadline: Duration,
    udp: Option<Arc<FixedUdp>>,
    stop: CancellationToken,
}

impl Handler for Server {
    async fn serve(self: Arc<Self>, c: Client) {
        let who = c.peer.name;
        let (Some(peer), Some(local)) = (c.peer.addr, c.peer.local_addr) else {
            return;
        };
        let s = match c.conn.register() {
            Ok(Stream::Tcp(s)) => s,
            Ok(Stream::Unix(_)) => return,
            Err(e) => return tracing::warn!("{who}: {}", io(e)),
        };
        let udp = self.udp.clone();
        let (tls, deadline) = (self.tls.clone(), self.deadline);
        let session = async move {
            match tls {
                None => Some(client(s, local, udp).await),
                // Boxed: plain clients' tasks stay small (conns holds thousands).
                Some(t) => {
                    let session = async move {
                        match crate::tls::accept_async(&t, s, peer, deadline).await {
                            Ok(s) => Some(client(s, local, udp).await),
                            Err(e) => {
                                tracing::warn!("{e}; closed");
                                None
                            }
                        }
                    };
                    Box::pin(session).await
                }
            }
        };
        let res = tokio::select! {
            _ = self.stop.cancelled() => return,
            r = session => r,
        };
        match res {
            Some(Ok(Some(line))) => tracing::warn!("{who}: {line}"),
            Some(Ok(None)) | None => {}
            Some(Err(e)) => tracing::warn!("{who}: {e}"),
        }
    }
}

/// Makes a bulk stream step aside after each [`FAIR_SHARE`] bytes, so that
/// round-trip tests served by the same worker threads are not held up for
/// the many megabytes tokio's own budget lets through between yields.
#[derive(Default)]
struct Fair {
    since: usize,
}

/// Bytes a bulk stream moves before it lets other tests run.
const FAIR_SHARE: usize = 1 << 20;

impl Fair {
    async fn after(&mut self, n: usize) {
        self.since += n;
        if self.since >= FAIR_SHARE {
            self.since = 0;
            tokio::task::yield_now().await;
        }
    }
}

/// A control-channel error, as a sentence.
type Res<T> = Result<T, String>;

fn io(e: std::io::Error) -> String {
    describe(&e)
}

/// Sends one text frame.
async fn say<W: AsyncWrite + Unpin>(w: &mut FramedWrite<W, FrameCodec>, text: &str) -> Res<()> {
    w.send(text.as_bytes()).await.map_err(|e| e.to_string())
}

/// Serves one connection; returns the log line.
async fn client<S: AsyncRead + AsyncWrite + Send + 'static>(
    s: S,
    local: SocketAddr,
    fixed_udp: Option<Arc<FixedUdp>>,
) -> Res<Option<String>> {
    let (r, w) = tokio::io::split(s);
    let mut rd = FramedRead::new(r, FrameCodec::new(MAX_CONTROL));
    let mut wr = FramedWrite::new(w, FrameCodec::new(MAX_CONTROL));
    let first = match tokio::time::timeout(HELLO_TIMEOUT, rd.next()).await {
        Ok(Some(Ok(f))) => f,
        Ok(None) => return Ok(None),
        Ok(Some(Err(e))) => return Err(format!("bad hello ({e})")),
        Err(_) => return Err("said nothing; closed".into()),
    };
    let hello = match Hello::decode(&String::from_utf8_lossy(&first)) {
        Ok(h) => h,
        Err(why) => {
            let _ = say(&mut wr, &format!("ERR {why}")).await;
            return Err(format!("refused: {why}"));
        }
    };
    let deadline = Duration::from_secs_f64(hello.secs) + GRACE;
    match hello.mode {
        Mode::Tcp if !hello.down => {
            say(&mut wr, "OK").await?;
            let started = Instant::now();
            let mut total = rd.read_buffer().len() as u64;
            let mut r = rd.into_inner();
            let mut buf = vec![0u8; 256 * 1024];
            let limit = Instant::now() + deadline;
            let mut fair = Fair::default();
            loop {
                let n = match tokio::time::timeout_at(limit.into(), r.read(&mut buf)).await {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Err(io(e)),
                    Err(_) => break,
                };
                if n == 0 {
                    break;
                }
                total += n as u64;
                fair.after(n).await;
            }
            let secs = started.elapsed().as_secs_f64();
            say(&mut wr, &format!("RESULT bytes={total} secs={secs:.6}")).await?;
            Ok(Some(format!("tcp upload {total} bytes in {secs:.2} s")))
        }
        Mode::Tcp => {
            say(&mut wr, "OK").await?;
            let mut w = wr.into_inner();
            let buf = vec![0x5au8; hello.len];
            let started = Instant::now();
            let until = Duration::from_secs_f64(hello.secs);
            let mut sent = 0u64;
            let mut fair = Fair::default();
            while started.elapsed() < until && (hello.bytes == 0 || sent < hello.bytes) {
                let n = if hello.bytes == 0 {
                    buf.len()
                } else {
                    buf.len().min((hello.bytes - sent) as usize)
                };
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                sent += n as u64;
                fair.after(n).await;
            }
            let _ = w.shutdown().await;
            Ok(Some(format!("tcp download {sent} bytes")))
        }
        Mode::Rr => {
            say(&mut wr, "OK").await?;
            let pending = rd.read_buffer().to_vec();
            let mut r = rd.into_inner();
            let mut w = wr.into_inner();
            let mut msg = vec![0u8; hello.len];
            let mut have = pending.len().min(hello.len);
            msg[..have].copy_from_slice(&pending[..have]);
            let limit = Instant::now() + deadline;
            let mut trips = 0u64;
            loop {
                while have < hello.len {
                    match tokio::time::timeout_at(limit.into(), r.read(&mut msg[have..])).await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                            return Ok(Some(format!("rr {trips} round trips")))
                        }
                        Ok(Ok(n)) => have += n,
                    }
                }
                if w.write_all(&msg).await.is_err() {
                    return Ok(Some(format!("rr {trips} round trips")));
                }
                trips += 1;
                have = 0;
            }
        }
        Mode::Udp | Mode::UdpRr => {
            // Held until the test ends: one test at a time on a fixed port.
            let (udp, _lease) = match &fixed_udp {
                None => {
                    let udp = UdpSocket::bind(SocketAddr::new(local.ip(), 0)).map_err(io)?;
                    let _ = socket2::SockRef::from(&udp).set_recv_buffer_size(4 << 20);
                    (udp, None)
                }
                Some(f) => match f.take() {
                    Some(lease) => (f.sock.try_clone().map_err(io)?, Some(lease)),
                    None => {
                        let why = "the UDP test port (--udp-port) is busy with another test; try again when it ends";
                        let _ = say(&mut wr, &format!("ERR {why}")).await;
                        return Err(format!("refused a UDP test: {why}"));
                    }
                },
            };
            let port = udp.local_addr().map_err(io)?.port();
            tracing::info!("a {} test holds UDP port {port}", hello.mode.name());
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let echo = hello.mode == Mode::UdpRr;
            let worker = tokio::task::spawn_blocking(move || udp_worker(&udp, echo, &stop2));
            say(&mut wr, &format!("OK port={port}")).await?;
            // Wait for DONE (or the client leaving, or the deadline).
            let sent = match tokio::time::timeout(deadline, rd.next()).await {
                Ok(Some(Ok(f))) => String::from_utf8_lossy(&f)
                    .strip_prefix("DONE sent=")
                    .and_then(|n| n.trim().parse::<u64>().ok()),
                _ => None,
            };
            // Stragglers still in flight get a moment to land.
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.store(true, Ordering::SeqCst);
            let st = worker.await.map_err(|e| e.to_string())?;
            let sent = sent.unwrap_or(st.max_seq.map_or(0, |m| m + 1));
            let lost = sent.saturating_sub(st.received);
            say(
                &mut wr,
                &format!(
                    "RESULT received={} lost={lost} ooo={} jitter_ms={:.4} bytes={}",
                    st.received,
                    st.out_of_order,
                    st.jitter_ns / 1e6,
                    st.bytes
                ),
            )
            .await?;
            Ok(Some(format!(
                "{} {} datagrams received, {lost} lost",
                hello.mode.name(),
                st.received
            )))
        }
        Mode::Conns => {
            say(&mut wr, "OK").await?;
            // Hold the connection until the client closes it (bounded).
            let _ = tokio::time::timeout(deadline, rd.next()).await;
            Ok(None)
        }
    }
}

/// What the UDP side of a test saw.
#[derive(Debug, Default)]
struct UdpStats {
    received: u64,
    bytes: u64,
    out_of_order: u64,
    max_seq: Option<u64>,
    /// RFC 3550 interarrival jitter, nanoseconds.
    jitter_ns: f64,
}

/// Receives (and for udp-rr echoes) datagrams until `stop`.
fn udp_worker(sock: &UdpSocket, echo: bool, stop: &AtomicBool) -> UdpStats {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(20)));
    let mut rx = RecvBatch::new(64, 2048.max(super::proto::MAX_UDP_LEN));
    let mut tx = SendBatch::new(64);
    let mut st = UdpStats::default();
    let mut last_transit: Option<f64> = None;
    while !stop.load(Ordering::SeqCst) {
        let n = match rx.recv(sock) {
            Ok(n) => n,
            Err(_) => continue,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as f64)
            .unwrap_or(0.0);
        let mut replies = Vec::new();
        for i in 0..n {
            let d = rx.get(i);
            st.received += 1;
            st.bytes += d.len as u64;
            if d.data.len() >= 16 {
                let seq = u64::from_be_bytes(d.data[..8].try_into().unwrap_or([0; 8]));
                let sent_ns = u64::from_be_bytes(d.data[8..16].try_into().unwrap_or([0; 8])) as f64;
                match st.max_seq {
                    Some(m) if seq < m => st.out_of_order += 1,
                    _ => st.max_seq = Some(seq),
                }
                let transit = now - sent_ns;
                if let Some(prev) = last_transit {
                    st.jitter_ns += ((transit - prev).abs() - st.jitter_ns) / 16.0;
                }
                last_transit = Some(transit);
            }
            if echo {
                replies.push((d.data, d.from));
            }
        }
        if echo && !replies.is_empty() {
            let _ = tx.send_to_all(sock, &replies);
        }
    }
    st
}
