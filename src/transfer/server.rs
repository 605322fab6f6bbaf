//! `sockit serve`: read-only file server for the native protocol and for
//! the seeds' raw requests. One thread per client (blocking I/O and
//! `sendfile`), so a big download never stalls a small one.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use crate::access::AccessList;
use crate::text::counted;
use crate::tls::{ServerTls, Stream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::paths::{Refusal, Root};
use super::proto::{EntryKind, ErrorCode, Request, Response, MAGIC, MAX_REQUEST};
use super::TransferError;
use crate::frame::FrameCodec;
use crate::net::{describe, show_addr};
use crate::text::Encoding;

/// Most hashes the cache keeps.
const HASH_CACHE_ENTRIES: usize = 4096;

/// Longest raw (seed-style) request.
const RAW_NAME_MAX: usize = 1024;

/// `serve` options.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The directory to serve.
    pub root: Root,
    /// Most clients served at once.
    pub max_conns: usize,
    /// Close a client that sends nothing for this long.
    pub idle_timeout: Duration,
    /// Cap each download at this many bytes per second (`--max-rate`).
    pub max_rate: Option<u64>,
    /// `--tls`: the server configuration.
    pub tls: Option<ServerTls>,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// `--allow` and `--deny`.
    pub access: AccessList,
}

/// A file's identity for the hash cache: device, inode, size, mtime.
type FileKey = (u64, u64, u64, i64, i64);

/// State shared by every client thread.
struct Shared {
    /// The options in force.
    opts: ServeOptions,
    /// BLAKE3 of files already hashed, so a second download is not re-hashed.
    hashes: Mutex<HashMap<FileKey, [u8; 32]>>,
    /// Clients being served now.
    active: AtomicUsize,
}

fn key_of(m: &std::fs::Metadata) -> FileKey {
    (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())
}

/// Serves `listener` forever (until the process is stopped).
///
/// # Errors
/// Only when accepting fails for good.
pub fn serve(listener: TcpListener, opts: ServeOptions) -> Result<(), TransferError> {
    let shared = Arc::new(Shared {
        opts,
        hashes: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(0),
    });
    let mut trouble = crate::net::AcceptTrouble::default();
    loop {
        // Ctrl-C (when the caller installed crate::interrupt) stops serving.
        if crate::interrupt::requested() {
            tracing::info!("interrupted; stopping");
            return Ok(());
        }
        // socket2's accept, unlike std's, returns EINTR, so Ctrl-C is seen.
        let accepted = socket2::SockRef::from(&listener)
            .accept()
            .and_then(|(s, a)| {
                let peer = a
                    .as_socket()
                    .ok_or_else(|| io::Error::other("not an IP peer"))?;
                Ok((TcpStream::from(s), peer))
            });
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                trouble.failed(&e);
                std::thread::sleep(crate::net::AcceptTrouble::BACKOFF);
                continue;
            }
        };
        if let Err(why) = shared.opts.access.check(peer.ip()) {
            tracing::warn!(event = "refused", client = %show_addr(peer), reason = %why, "{} refused: {why}", show_addr(peer));
            crate::net::arm_reset(&stream);
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        let now = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
        let over = now > shared.opts.max_conns;
        let spawned = std::thread::Builder::new()
            .name("sockit-serve".into())
            .spawn(move || {
                // Ctrl-C belongs to the accepting thread.
                crate::interrupt::shield_thread();
                let _ = stream.set_nodelay(true);
                match (&shared.opts.tls, over) {
                    (None, true) => refuse_busy(stream, peer, shared.opts.max_conns),
                    (None, false) => client(&shared, Stream::Plain(stream), peer),
                    (Some(_), true) => tracing::warn!(
                        "{} refused: already serving {} (--max-conns); closed before the TLS handshake",
                        show_addr(peer),
                        counted(shared.opts.max_conns as u64, "client", "clients")
                    ),
                    (Some(tls), false) => {
                        match crate::tls::accept(tls, stream, peer, shared.opts.handshake_timeout) {
                            Ok(s) => client(&shared, s, peer),
                            Err(e) => tracing::warn!("{e}; closed"),
                        }
                    }
                }
                shared.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            tracing::warn!("could not start a thread for {}", show_addr(peer));
        }
    }
}

/// Answers a client over `--max-conns` with a typed error, then closes.
fn refuse_busy(s: TcpStream, peer: SocketAddr, max: usize) {
    tracing::warn!(
        "{} refused: already serving {} (--max-conns)",
        show_addr(peer),
        counted(max as u64, "client", "clients")
    );
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut first = [0u8; 1];
    if matches!((&s).read(&mut first), Ok(1)) && first[0] == MAGIC[0] {
        let _ = send(
            &mut Stream::Plain(s),
            &Response::Error {
                code: ErrorCode::TooManyConnections,
                message: format!(
                    "the server is busy ({}); try again later",
                    counted(max as u64, "client", "clients")
                ),
            },
        );
    }
}

/// Writes one response frame.
fn send(s: &mut Stream, r: &Response) -> io::Result<()> {
    let mut out = BytesMut::new();
    FrameCodec::new(usize::MAX)
        .encode(&r.encode()[..], &mut out)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    s.write_all(&out)
}

/// Serves one client: native requests until it leaves, or one raw request.
fn client(shared: &Shared, s: Stream, peer: SocketAddr) {
    let mut s = s;
    session(shared, &mut s, peer);
    // A TLS peer gets close_notify, so it can tell a clean end from a cut.
    s.finish();
}

/// The body of [`client`].
fn session(shared: &Shared, s: &mut Stream, peer: SocketAddr) {
    let who = show_addr(peer);
    let _ = s.tcp().set_read_timeout(Some(shared.opts.idle_timeout));
    let mut buf = BytesMut::with_capacity(1024);
    // The first byte tells the native protocol (NUL) from a raw file name.
    match read_more(s, &mut buf) {
        Ok(0) => return,
        Ok(_) => {}
        Err(e) => {
            log_idle_or_error(&who, &e);
            return;
        }
    }
    if !s.is_tls() && crate::tls::looks_like_client_hello(&buf) {
        tracing::warn!("{who} is speaking TLS to this plain server (start it with --tls); closed");
        return;
    }
    if buf[0] != MAGIC[0] {
        raw(shared, s, &who, buf);
        return;
    }
    while buf.len() < MAGIC.len() {
        match read_more(s, &mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => return log_idle_or_error(&who, &e),
        }
    }
    if &buf[..MAGIC.len()] != MAGIC {
        tracing::warn!("{who}: bad request (not the sockit protocol, or another version)");
        let _ = send(
            s,
            &Response::Error {
                code: ErrorCode::BadRequest,
                message: "unsupported protocol version; upgrade sockit on both ends".into(),
            },
        );
        return;
    }
    let _ = buf.split_to(MAGIC.len());
    let mut codec = FrameCodec::new(MAX_REQUEST);
    loop {
        let frame = match codec.decode(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) => match read_more(s, &mut buf) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) => return log_idle_or_error(&who, &e),
            },
            Err(e) => return bad_request(s, &who, &e.to_string()),
        };
        let req = match Request::decode(&frame) {
            Ok(r) => r,
            Err(e) => return bad_request(s, &who, &e.to_string()),
        };
        if handle(shared, s, &who, req).is_err() {
            return;
        }
    }
}

/// Logs a malformed request, tells the client why, and gives up on it.
fn bad_request(s: &mut Stream, who: &str, why: &str) {
    tracing::warn!("{who}: bad request ({why}); closing");
    let _ = send(
        s,
        &Response::Error {
            code: ErrorCode::BadRequest,
            message: why.to_string(),
        },
    );
}

fn log_idle_or_error(who: &str, e: &io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        tracing::warn!("{who}: idle too long (--idle-timeout); closed");
    } else {
        tracing::info!("{who}: {}", describe(e));
    }
}

/// Reads what is available into `buf`.
fn read_more(s: &mut Stream, buf: &mut BytesMut) -> io::Result<usize> {
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Opens a resolved path as a regular file without blocking on FIFOs.
fn open_regular(path: &Path) -> Result<(File, std::fs::Metadata), Refusal> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Refusal {
            code: if e.kind() == io::ErrorKind::NotFound {
                ErrorCode::NotFound
            } else {
                ErrorCode::Forbidden
            },
            reason: describe(&e),
        })?;
    let m = f.metadata().map_err(|e| Refusal {
        code: ErrorCode::Internal,
        reason: describe(&e),
    })?;
    if !m.is_file() {
        return Err(Refusal {
            code: ErrorCode::NotRegular,
            reason: if m.is_dir() {
                "is a directory".into()
            } else {
                "is not a regular file (device, FIFO or socket)".into()
            },
        });
    }
    Ok((f, m))
}

/// BLAKE3 of a whole file, reading through its own descriptor.
fn hash_path(path: &Path) -> io::Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(*h.finalize().as_bytes())
}

impl Shared {
    fn cached(&self, key: &FileKey) -> Option<[u8; 32]> {
        self.hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    fn remember(&self, key: FileKey, hash: [u8; 32]) {
        let mut m = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= HASH_CACHE_ENTRIES {
            if let Some(k) = m.keys().next().copied() {
                m.remove(&k);
            }
        }
        m.insert(key, hash);
    }
}

/// Refuses a request: logs it and tells the client.
fn refuse(s: &mut Stream, who: &str, what: &str, path: &str, r: Refusal) -> io::Result<()> {
    tracing::warn!("{who} {what} {path:?} refused: {}", r.reason);
    send(
        s,
        &Response::Error {
            code: r.code,
            message: format!("{path}: {}", r.reason),
        },
    )
}

/// Handles one native request. An error ends the connection.
fn handle(shared: &Shared, s: &mut Stream, who: &str, req: Request) -> io::Result<()> {
    let root = &shared.opts.root;
    match req {
        Request::Stat { path } => {
            let (real, m) = match root
                .resolve(&path)
                .and_then(|p| open_regular(&p).map(|x| (p, x)))
            {
                Ok((p, (_f, m))) => (p, m),
                Err(r) => return refuse(s, who, "STAT", &path, r),
            };
            let key = key_of(&m);
            let hash = match shared.cached(&key) {
                Some(h) => h,
                None => {
                    let h = hash_path(&real)?;
                    shared.remember(key, h);
                    h
                }
            };
            tracing::warn!("{who} STAT {path:?} {} bytes ok", m.size());
            send(
                s,
                &Response::Stat {
                    size: m.size(),
                    hash,
                },
            )
        }
        Request::List { path } => {
            let dir = match root.resolve(&path) {
                Ok(d) if d.is_dir() => d,
                Ok(_) => {
                    return refuse(
                        s,
                        who,
                        "LIST",
                        &path,
                        Refusal {
                            code: ErrorCode::NotRegular,
                            reason: "is not a directory".into(),
                        },
                    )
                }
                Err(r) => return refuse(s, who, "LIST", &path, r),
            };
            let mut entries = Vec::new();
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) => {
                    return refuse(
                        s,
                        who,
                        "LIST",
                        &path,
                        Refusal {
                            code: ErrorCode::Forbidden,
                            reason: describe(&e),
                        },
                    )
                }
            };
            {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let rel = if path.trim_end_matches('/').is_empty() {
                        name.clone()
                    } else {
                        format!("{}/{name}", path.trim_end_matches('/'))
                    };
                    // Only what a GET of the same name would serve.
                    let Ok(real) = root.resolve(&rel) else {
                        continue;
                    };
                    let Ok(m) = std::fs::metadata(&real) else {
                        continue;
                    };
                    // Links to folders are not listed: a tree walked through
                    // listings then cannot loop (`d/self -> .`), and each
                    // folder appears once, under its real name.
                    if m.is_dir() && e.file_type().map(|t| t.is_symlink()).unwrap_or(true) {
                        tracing::debug!("{who} LIST {path:?}: not following folder link {name:?}");
                        continue;
                    }
                    let kind = if m.is_dir() {
                        EntryKind::Dir
                    } else if m.is_file() {
                        EntryKind::File
                    } else {
                        continue;
                    };
                    entries.push((kind, if m.is_file() { m.size() } else { 0 }, name));
                }
            }
            entries.sort_by(|a, b| a.2.cmp(&b.2));
            tracing::warn!(
                "{who} LIST {path:?} {} ok",
                counted(entries.len() as u64, "entry", "entries")
            );
            let mut out = BytesMut::new();
            let mut codec = FrameCodec::new(usize::MAX);
            for (kind, size, name) in entries {
                let r = Response::Entry { kind, size, name };
                let _ = codec.encode(&r.encode()[..], &mut out);
            }
            let _ = codec.encode(&Response::End.encode()[..], &mut out);
            s.write_all(&out)
        }
        Request::Get { path, offset } => {
            let started = Instant::now();
            let (real, (file, m)) = match root
                .resolve(&path)
                .and_then(|p| open_regular(&p).map(|x| (p, x)))
            {
                Ok(x) => x,
                Err(r) => return refuse(s, who, "GET", &path, r),
            };
            let size = m.size();
            if offset > size {
                return refuse(
                    s,
                    who,
                    "GET",
                    &path,
                    Refusal {
                        code: ErrorCode::BadRequest,
                        reason: format!("offset {offset} is past the end ({size} bytes)"),
                    },
                );
            }
            send(s, &Response::File { size, offset })?;
            let key = key_of(&m);
            let cached = shared.cached(&key);
            // Hash on another core while this thread sends, unless cached.
            let hasher = match cached {
                Some(_) => None,
                None => {
                    let p = real.clone();
                    std::thread::Builder::new()
                        .name("sockit-hash".into())
                        .spawn(move || hash_path(&p))
                        .ok()
                }
            };
            let sent = send_file(s, &file, offset, size - offset, shared.opts.max_rate);
            let hash = match (cached, hasher) {
                (Some(h), _) => Some(h),
                (None, Some(t)) => t.join().ok().and_then(Result::ok),
                (None, None) => hash_path(&real).ok(),
            };
            if let Err(e) = sent {
                tracing::warn!(
                    "{who} GET {path:?} from {offset} interrupted: {}",
                    describe(&e)
                );
                return Err(e);
            }
            let Some(hash) = hash else {
                tracing::warn!("{who} GET {path:?}: could not hash the file");
                return Err(io::Error::other("hash failed"));
            };
            if cached.is_none() {
                shared.remember(key, hash);
            }
            send(s, &Response::Done { hash })?;
            let secs = started.elapsed().as_secs_f64();
            tracing::warn!(
                "{who} GET {path:?} {} bytes from {offset} in {secs:.2} s ok{}",
                size - offset,
                if cached.is_some() {
                    " (hash cached)"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}

/// Waits until `sent` bytes are due at `max_rate` bytes per second.
fn pace(started: Instant, sent: u64, max_rate: Option<u64>) {
    if let Some(rate) = max_rate {
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Sends `len` bytes of `file` from `offset` with `sendfile`, at most
/// `max_rate` bytes per second when given.
fn send_file(
    s: &mut Stream,
    file: &File,
    offset: u64,
    len: u64,
    max_rate: Option<u64>,
) -> io::Result<()> {
    if s.is_tls() {
        return send_file_copy(s, file, offset, len, max_rate);
    }
    let s = s.tcp();
    let mut off = offset as libc::off_t;
    let mut left = len;
    let started = Instant::now();
    let mut sent = 0u64;
    // A rate-limited download goes in slices of a twentieth of a second.
    let slice = max_rate.map_or(1 << 30, |r| (r / 20).max(1));
    while left > 0 {
        pace(started, sent, max_rate);
        let chunk = left.min(slice) as usize;
        // SAFETY: both descriptors are open; `off` is ours to advance.
        let n = unsafe { libc::sendfile(s.as_raw_fd(), file.as_raw_fd(), &mut off, chunk) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while being sent",
            ));
        }
        left -= n as u64;
        sent += n as u64;
    }
    Ok(())
}

/// [`send_file`] for TLS, where the bytes must pass through the cipher:
/// positioned reads into one buffer, then encrypted writes.
fn send_file_copy(
    s: &mut Stream,
    file: &File,
    offset: u64,
    len: u64,
    max_rate: Option<u64>,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 256 * 1024];
    let started = Instant::now();
    let mut sent = 0u64;
    let slice = max_rate.map_or(buf.len() as u64, |r| (r / 20).clamp(1, buf.len() as u64));
    while sent < len {
        pace(started, sent, max_rate);
        let want = (len - sent).min(slice) as usize;
        let n = match file.read_at(&mut buf[..want], offset + sent) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while being sent",
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        s.write_all(&buf[..n])?;
        sent += n as u64;
    }
    s.flush()
}

/// Seed 002's protocol: the first chunk is a file name (UTF-8 or GBK, no
/// terminator); the reply is the raw file, then the connection closes.
fn raw(shared: &Shared, s: &mut Stream, who: &str, mut buf: BytesMut) {
    // The seed sends the name in one send; read a little more only if no
    // newline has come and the peer is still sending.
    let _ = s.tcp().set_read_timeout(Some(Duration::from_millis(200)));
    while buf.len() < RAW_NAME_MAX && !buf.contains(&b'\n') {
        match read_more(s, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let line = match memchr::memchr(b'\n', &buf) {
        Some(i) => &buf[..i],
        None => &buf[..buf.len().min(RAW_NAME_MAX)],
    };
    let name = match std::str::from_utf8(line) {
        Ok(t) => t.to_string(),
        Err(_) => String::from_utf8_lossy(&Encoding::Gbk.decode(line)).into_owned(),
    };
    let name = name.trim_end().to_string();
    let started = Instant::now();
    let opened = shared
        .opts
        .root
        .resolve(&name)
        .and_then(|p| open_regular(&p));
    let (file, m) = match opened {
        Ok(x) => x,
        Err(r) => {
            // The seed protocol has no way to say why: log it and close.
            tracing::warn!("{who} RAW {name:?} refused: {}", r.reason);
            return;
        }
    };
    match send_file(s, &file, 0, m.size(), shared.opts.max_rate) {
        Ok(()) => tracing::warn!(
            "{who} RAW {name:?} {} bytes in {:.2} s ok",
            m.size(),
            started.elapsed().as_secs_f64()
        ),
        Err(e) => tracing::warn!("{who} RAW {name:?} interrupted: {}", describe(&e)),
    }
}
