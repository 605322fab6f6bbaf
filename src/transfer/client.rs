//! `sockit get` and `sockit ls`: the client side of the transfer protocol,
//! plus `get --raw` for the seeds' own server.
//!
//! A download goes to `NAME.part`, is fsynced, and becomes `NAME` only once
//! the BLAKE3 of the whole file matches the server's. An interrupted
//! download keeps its `.part`, and the next `get` resumes from its size.

use crate::tls::{client_stream, ClientTlsOptions, Stream, TlsError};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::paths::{base_name, safe_name};
use super::proto::{EntryKind, Request, Response, MAGIC, MAX_RESPONSE};
use super::TransferError;
use crate::frame::FrameCodec;
use crate::net::{self, describe, ConnectOptions};

/// Size of each receive buffer handed to the hashing thread.
const CHUNK: usize = 1 << 20;
/// Buffers in flight between the receiving and the hashing thread.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Start disk writeback after this many new bytes.
const WRITEBACK_EVERY: u64 = 64 << 20;
/// How long to wait for the server's answer, and between bytes, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// `get` options.
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// `-o FILE`: the single file's target.
    pub output: Option<PathBuf>,
    /// `-d DIR`: where to save (default: the current directory).
    pub dir: Option<PathBuf>,
    /// Overwrite a target with different content.
    pub force: bool,
    /// Fetch directory trees.
    pub recursive: bool,
    /// Connect options.
    pub connect: ConnectOptions,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
    /// `--tls`: how to trust the server.
    pub tls: Option<ClientTlsOptions>,
    /// `--timeout`: how long to wait for an answer or the next bytes
    /// (`None`: [`DEFAULT_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

impl Fetched {
    /// The result as a JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"path\":{},\"bytes\":{},\"transferred\":{},\"secs\":{:.3},\"result\":\"{}\"}}",
            crate::report::json_str(&self.path.display().to_string()),
            self.bytes,
            self.transferred,
            self.secs,
            match self.outcome {
                Outcome::Verified { .. } => "verified",
                Outcome::AlreadyThere => "already-there",
                Outcome::Unverified => "unverified",
            }
        )
    }
}

/// How one file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Downloaded and verified; `resumed_from` bytes were already there.
    Verified {
        /// Bytes of the `.part` that were reused.
        resumed_from: u64,
    },
    /// The target already had this content.
    AlreadyThere,
    /// Raw mode: saved, but the seed protocol has no hash to check.
    Unverified,
}

/// One file's result.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Where it was saved.
    pub path: PathBuf,
    /// File size.
    pub bytes: u64,
    /// Bytes that crossed the network.
    pub transferred: u64,
    /// Seconds taken.
    pub secs: f64,
    /// How it ended.
    pub outcome: Outcome,
}

impl Fetched {
    /// The one-line summary: `NAME: 2.00 GiB in 0.9 s (2.2 GiB/s), blake3 verified`.
    pub fn summary(&self) -> String {
        let name = self.path.display();
        match &self.outcome {
            Outcome::AlreadyThere => {
                format!(
                    "{name}: already there ({}), blake3 matches",
                    human(self.bytes)
                )
            }
            Outcome::Verified { resumed_from } => {
                let rate = self.transferred as f64 / self.secs.max(1e-6);
                let resumed = if *resumed_from > 0 {
                    format!(", resumed from {}", human(*resumed_from))
                } else {
                    String::new()
                };
                format!(
                    "{name}: {} in {:.1} s ({}/s){resumed}, blake3 verified",
                    human(self.bytes),
                    self.secs,
                    human(rate as u64)
                )
            }
            Outcome::Unverified => format!(
                "{name}: {} in {:.1} s, not verified (raw mode has no hash)",
                human(self.bytes),
                self.secs
            ),
        }
    }
}

/// Bytes in binary units.
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", U[i])
    }
}

/// A native-protocol connection.
struct Conn {
    /// The socket, plain or TLS.
    s: Stream,
    /// Bytes read but not used yet.
    buf: BytesMut,
    /// Response frames.
    codec: FrameCodec,
    /// Server address, for messages.
    server: String,
    /// Whether a valid response has arrived yet: until then, bytes that do
    /// not parse mean the peer is not a sockit server at all.
    answered: bool,
    /// The read timeout, for messages.
    timeout: Duration,
}

/// Connects (plain or TLS) with `timeout` on every read and write, and
/// names the server now: once it has closed, the socket forgets its peer.
fn open_stream(
    host: &str,
    port: u16,
    copts: &ConnectOptions,
    tls: Option<&ClientTlsOptions>,
    timeout: Duration,
) -> Result<(Stream, String), TransferError> {
    let tcp = net::connect(host, port, copts)?;
    let server = tcp
        .peer_addr()
        .map(net::show_addr)
        .unwrap_or_else(|_| format!("{host}:{port}"));
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    Ok((client_stream(host, port, tcp, tls)?, server))
}

/// Whether a socket error is a read or write timeout running out.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn io_err(what: &str, e: &io::Error) -> TransferError {
    TransferError::Io {
        what: what.to_string(),
        reason: describe(e),
    }
}

impl Conn {
    fn open(
        host: &str,
        port: u16,
        copts: &ConnectOptions,
        tls: Option<&ClientTlsOptions>,
        timeout: Duration,
    ) -> Result<Conn, TransferError> {
        let (mut s, server) = open_stream(host, port, copts, tls, timeout)?;
        s.write_all(MAGIC)
            .and_then(|()| s.flush())
            .map_err(|e| io_err("talk to the server", &e))?;
        Ok(Conn {
            server,
            s,
            buf: BytesMut::with_capacity(64 * 1024),
            codec: FrameCodec::new(MAX_RESPONSE),
            answered: false,
            timeout,
        })
    }

    fn request(&mut self, r: &Request) -> Result<(), TransferError> {
        let mut out = BytesMut::new();
        FrameCodec::new(usize::MAX)
            .encode(&r.encode()[..], &mut out)
            .map_err(|e| TransferError::Protocol(e.to_string()))?;
        match self.s.write_all(&out).and_then(|()| self.s.flush()) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.send_failed(&e)),
        }
    }

    /// A request that could not be sent: a TLS server may already have
    /// answered our plain greeting with an alert and closed, so look at what
    /// it said before blaming the connection.
    fn send_failed(&mut self, e: &io::Error) -> TransferError {
        if !self.s.is_tls() {
            let _ = self
                .s
                .tcp()
                .set_read_timeout(Some(std::time::Duration::from_secs(1)));
            let mut first = [0u8; 16];
            if let Ok(n) = self.s.read(&mut first) {
                self.buf.extend_from_slice(&first[..n]);
            }
            if crate::tls::looks_like_tls_reply(&self.buf) {
                return TlsError::ServerSpeaksTls(self.server.clone()).into();
            }
        }
        io_err("send a request", e)
    }

    fn fill(&mut self) -> Result<usize, TransferError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.s.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    return Err(TransferError::TimedOut {
                        server: self.server.clone(),
                        secs: self.timeout.as_secs_f64(),
                        answered: self.answered,
                    })
                }
                Err(e) => return Err(io_err("read from the server", &e)),
            }
        }
    }

    /// The error for bytes that are not the protocol: before any valid
    /// answer, the peer is something else (an HTTP server, `nc -l`).
    fn garbled(&self, detail: String) -> TransferError {
        if self.answered {
            TransferError::Protocol(detail)
        } else {
            TransferError::NotSockit {
                server: self.server.clone(),
            }
        }
    }

    fn response(&mut self) -> Result<Response, TransferError> {
        loop {
            if !self.s.is_tls() && crate::tls::looks_like_tls_reply(&self.buf) {
                return Err(TlsError::ServerSpeaksTls(self.server.clone()).into());
            }
            match self.codec.decode(&mut self.buf) {
                Ok(Some(f)) => {
                    let r = Response::decode(&f).map_err(|e| self.garbled(e.to_string()))?;
                    self.answered = true;
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => return Err(self.garbled(e.to_string())),
            }
            if self.fill()? == 0 {
                if !self.answered && !self.buf.is_empty() {
                    return Err(self.garbled(String::new()));
                }
                return Err(TransferError::Protocol(format!(
                    "{} closed the connection without answering",
                    self.server
                )));
            }
        }
    }
}

/// Deepest folder nesting a recursive `get` follows; a deeper tree from a
/// server is a loop or hostile.
pub const MAX_DEPTH: usize = 64;
/// Most entries one recursive `get` accepts, over the whole tree.
pub const MAX_TREE_ENTRIES: usize = 1_000_000;

/// Whether an error concerns one name only, so the other names still go on.
fn per_name(e: &TransferError) -> bool {
    matches!(
        e,
        TransferError::Refused { .. }
            | TransferError::Exists { .. }
            | TransferError::HashMismatch { .. }
            | TransferError::Usage(_)
            | TransferError::Locked { .. }
            | TransferError::Local { .. }
    )
}

/// The request path for a name given by the user: `.`, `/` and `""` are
/// the served root, and leading `./` and `/` are dropped.
pub fn request_path(name: &str) -> &str {
    let mut n = name;
    loop {
        let t = n
            .strip_prefix("./")
            .or_else(|| n.strip_prefix('/'))
            .unwrap_or(n);
        if t == n {
            break;
        }
        n = t;
    }
    if n == "." {
        ""
    } else {
        n
    }
}

/// One `get` run: the connection, and what happened so far.
struct Run<'a> {
    /// The connection to the server.
    conn: Conn,
    /// The user's options.
    opts: &'a GetOptions,
    /// Files fetched (or already there).
    done: Vec<Fetched>,
    /// How many names or entries failed.
    failed: usize,
    /// Entries seen in recursive listings, against [`MAX_TREE_ENTRIES`].
    entries: usize,
    /// Called with each file fetched.
    report: &'a mut dyn FnMut(&Fetched),
    /// Called with each name or entry that failed while the run went on.
    warn: &'a mut dyn FnMut(&TransferError),
}

impl Run<'_> {
    /// Runs `step`; a failure that concerns one name is reported and
    /// counted, anything else ends the run.
    fn attempt(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<(), TransferError>,
    ) -> Result<(), TransferError> {
        match step(self) {
            Err(e) if per_name(&e) => {
                (self.warn)(&e);
                self.failed += 1;
                Ok(())
            }
            r => r,
        }
    }

    /// Fetches one file and reports it.
    fn file(&mut self, remote: &str, target: &Path) -> Result<(), TransferError> {
        let f = fetch_file(&mut self.conn, remote, target, self.opts)?;
        (self.report)(&f);
        self.done.push(f);
        Ok(())
    }

    /// Fetches a directory tree, checking every name the server sends.
    fn tree(&mut self, remote: &str, local: &Path, depth: usize) -> Result<(), TransferError> {
        if depth > MAX_DEPTH {
            return Err(TransferError::Protocol(format!(
                "the served tree is more than {MAX_DEPTH} folders deep at {remote:?}; \
                 stopping (a folder loop on the server?)"
            )));
        }
        let entries = list(&mut self.conn, remote)?;
        self.entries += entries.len();
        if self.entries > MAX_TREE_ENTRIES {
            return Err(TransferError::Protocol(format!(
                "the served tree has more than {MAX_TREE_ENTRIES} entries; stopping"
            )));
        }
        if !local.as_os_str().is_empty() {
            std::fs::create_dir_all(local).map_err(|e| local_err(local, "create", &e))?;
        }
        for (kind, _size, name) in entries {
            if !safe_name(&name) {
                return Err(TransferError::Unsafe { name });
            }
            let r = if remote.is_empty() {
                name.clone()
            } else {
                format!("{}/{name}", remote.trim_end_matches('/'))
            };
            let l = local.join(&name);
            self.attempt(|run| match kind {
                EntryKind::Dir => run.tree(&r, &l, depth + 1),
                EntryKind::File => run.file(&r, &l),
            })?;
        }
        Ok(())
    }
}

/// Downloads every name. A name that fails (missing, refused, exists,
/// mismatched) is passed to `warn` and the others still go on; the result
/// is then [`TransferError::SomeFailed`]. A broken connection ends the run.
///
/// # Errors
/// Connection, protocol, verification and file-system errors.
pub fn get(
    host: &str,
    port: u16,
    names: &[String],
    opts: &GetOptions,
    report: &mut dyn FnMut(&Fetched),
    warn: &mut dyn FnMut(&TransferError),
) -> Result<Vec<Fetched>, TransferError> {
    let to_stdout = opts.output.as_deref() == Some(Path::new("-"));
    if opts.output.is_some() && (names.len() != 1 || opts.recursive) {
        return Err(TransferError::Usage(
            "-o names one file; use -d DIR for several files or -r".into(),
        ));
    }
    // A target that cannot work fails before anything is transferred.
    let output = match &opts.output {
        Some(o) if !to_stdout && o.is_dir() => {
            let name = request_path(&names[0]);
            let base = base_name(name).ok_or_else(|| {
                TransferError::Usage(format!("{:?} does not name a file", names[0]))
            })?;
            Some(o.join(base))
        }
        o => o.clone(),
    };
    let conn = Conn::open(
        host,
        port,
        &opts.connect,
        opts.tls.as_ref(),
        opts.timeout.unwrap_or(DEFAULT_TIMEOUT),
    )?;
    if to_stdout {
        let mut conn = conn;
        let f = fetch_to_stdout(&mut conn, request_path(&names[0]))?;
        return Ok(vec![f]);
    }
    // No -d: save beside us, under the plain name (not ./name).
    let dest = opts.dir.clone().unwrap_or_default();
    let mut run = Run {
        conn,
        opts,
        done: Vec::new(),
        failed: 0,
        entries: 0,
        report,
        warn,
    };
    for name in names {
        let name = request_path(name);
        if opts.recursive {
            // The root's tree lands in the destination itself.
            let local = match base_name(name) {
                Some(b) => dest.join(b),
                None if name.is_empty() => dest.clone(),
                None => dest.join("download"),
            };
            run.attempt(|r| r.tree(name, &local, 0))?;
            continue;
        }
        let target = match &output {
            Some(o) => o.clone(),
            None => match base_name(name) {
                Some(b) => dest.join(b),
                None => {
                    run.attempt(|_| {
                        Err(TransferError::Usage(format!(
                            "{name:?} does not name a file; add -r for a folder"
                        )))
                    })?;
                    continue;
                }
            },
        };
        run.attempt(|r| r.file(name, &target))?;
    }
    if run.failed > 0 {
        return Err(TransferError::SomeFailed {
            failed: run.failed,
            fetched: run.done.len(),
        });
    }
    Ok(run.done)
}

/// `-o -`: streams one file to stdout, hashing as it goes, and checks the
/// hash at the end (the bytes are out by then: a mismatch is an error
/// after the fact, said plainly).
fn fetch_to_stdout(conn: &mut Conn, remote: &str) -> Result<Fetched, TransferError> {
    let started = Instant::now();
    conn.request(&Request::Get {
        path: remote.to_string(),
        offset: 0,
    })?;
    let size = match conn.response()? {
        Response::File { size, offset: 0 } => size,
        Response::File { offset, .. } => {
            return Err(TransferError::Protocol(format!(
                "asked for the whole file, the server offered bytes from {offset} on"
            )))
        }
        other => return Err(refused(other, &conn.server)),
    };
    let mut out = crate::console::stdout();
    let mut h = blake3::Hasher::new();
    let mut got = 0u64;
    let mut buf = vec![0u8; CHUNK];
    while got < size {
        let want = ((size - got) as usize).min(CHUNK);
        let n = if !conn.buf.is_empty() {
            let n = conn.buf.len().min(want);
            buf[..n].copy_from_slice(&conn.buf.split_to(n));
            n
        } else {
            match conn.s.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(TransferError::Interrupted {
                        have: got,
                        reason: format!("the server sent {got} of {size} bytes and closed"),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(TransferError::Interrupted {
                        have: got,
                        reason: describe(&e),
                    })
                }
            }
        };
        h.update(&buf[..n]);
        match out.write_all(&buf[..n]) {
            Ok(()) => {}
            // A reader that has seen enough (`| head`) ends us quietly.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                return Err(TransferError::OutputClosed)
            }
            Err(e) => return Err(io_err("write to stdout", &e)),
        }
        got += n as u64;
    }
    let _ = out.flush();
    let want = match conn.response()? {
        Response::Done { hash } => hash,
        other => return Err(refused(other, &conn.server)),
    };
    if *h.finalize().as_bytes() != want {
        return Err(TransferError::StdoutMismatch {
            name: remote.to_string(),
        });
    }
    Ok(Fetched {
        path: PathBuf::from("-"),
        bytes: size,
        transferred: size,
        secs: started.elapsed().as_secs_f64(),
        outcome: Outcome::Verified { resumed_from: 0 },
    })
}

/// A local file-system error about `path`, which concerns that name only.
fn local_err(path: &Path, what: &str, e: &io::Error) -> TransferError {
    TransferError::Local {
        what: format!("{what} {}", path.display()),
        reason: describe(e),
    }
}

/// Turns an error response into an error.
fn refused(resp: Response, server: &str) -> TransferError {
    match resp {
        Response::Error { message, code } => TransferError::Refused {
            server: server.to_string(),
            message,
            code,
        },
        other => TransferError::Protocol(format!("unexpected reply {other:?}")),
    }
}

/// Lists a remote directory.
fn list(conn: &mut Conn, path: &str) -> Result<Vec<(EntryKind, u64, String)>, TransferError> {
    conn.request(&Request::List {
        path: path.to_string(),
    })?;
    let mut out = Vec::new();
    loop {
        match conn.response()? {
            Response::Entry { kind, size, name } => {
                if out.len() >= 1_000_000 {
                    return Err(TransferError::Protocol(
                        "a listing of over a million entries".into(),
                    ));
                }
                out.push((kind, size, name))
            }
            Response::End => return Ok(out),
            other => return Err(refused(other, &conn.server)),
        }
    }
}

/// `NAME.part` beside `target`.
fn part_path(target: &Path) -> PathBuf {
    let mut p = target.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// BLAKE3 of a local file (or its first `limit` bytes).
fn hash_local(path: &Path, limit: Option<u64>) -> io::Result<blake3::Hasher> {
    let f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut r: Box<dyn Read> = match limit {
        Some(n) => Box::new(f.take(n)),
        None => Box::new(f),
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(h);
        }
        h.update(&buf[..n]);
    }
}

/// Downloads one file to `target`, verified, resuming a `.part`.
fn fetch_file(
    conn: &mut Conn,
    remote: &str,
    target: &Path,
    opts: &GetOptions,
) -> Result<Fetched, TransferError> {
    let started = Instant::now();
    let part = part_path(target);
    if target.exists() {
        conn.request(&Request::Stat {
            path: remote.to_string(),
        })?;
        let (size, hash) = match conn.response()? {
            Response::Stat { size, hash } => (size, hash),
            other => return Err(refused(other, &conn.server)),
        };
        let same = std::fs::metadata(target)
            .map(|m| m.len() == size)
            .unwrap_or(false)
            && hash_local(target, None)
                .map(|h| *h.finalize().as_bytes() == hash)
                .unwrap_or(false);
        if same {
            return Ok(Fetched {
                path: target.to_path_buf(),
                bytes: size,
                transferred: 0,
                secs: started.elapsed().as_secs_f64(),
                outcome: Outcome::AlreadyThere,
            });
        }
        if !opts.force {
            return Err(TransferError::Exists {
                path: target.to_path_buf(),
            });
        }
    }
    if let Some(parent) = target.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| local_err(parent, "create", &e))?;
        }
    }
    let mut retried = false;
    loop {
        let file = open_part(&part)?;
        let have = file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| local_err(&part, "read", &e))?;
        match attempt(conn, remote, file, &part, have, opts.progress) {
            Ok((size, transferred)) => {
                std::fs::rename(&part, target)
                    .map_err(|e| io_err(&format!("rename {} into place", part.display()), &e))?;
                return Ok(Fetched {
                    path: target.to_path_buf(),
                    bytes: size,
                    transferred,
                    secs: started.elapsed().as_secs_f64(),
                    outcome: Outcome::Verified { resumed_from: have },
                });
            }
            Err(TransferError::HashMismatch { .. }) if !retried => {
                // The .part (or what came after it) was bad: set it aside
                // and fetch the whole file again, once.
                let aside = part.with_extension("part.bad");
                let _ = std::fs::rename(&part, &aside);
                tracing::warn!(
                    "{}: hash mismatch; set the partial file aside as {} and starting over",
                    target.display(),
                    aside.display()
                );
                retried = true;
            }
            Err(TransferError::Stopped { .. }) => {
                let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                return Err(TransferError::Stopped { part, kept });
            }
            Err(e) => {
                // A .part that never got a byte (the name was refused, or
                // the disk had no room) is not kept: there is nothing to resume.
                if std::fs::metadata(&part)
                    .map(|m| m.len() == 0)
                    .unwrap_or(false)
                {
                    let _ = std::fs::remove_file(&part);
                }
                return Err(e);
            }
        }
    }
}

/// Opens (or creates) a `.part` and locks it, so two `get`s of one file
/// never write into the same `.part`: the second one is told and stops.
fn open_part(part: &Path) -> Result<File, TransferError> {
    use std::os::fd::AsRawFd;
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .read(true)
        .truncate(false)
        .open(part)
        .map_err(|e| local_err(part, "open", &e))?;
    // SAFETY: flock on a descriptor we own; the lock goes with the file.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(TransferError::Locked {
                part: part.to_path_buf(),
            });
        }
    }
    Ok(file)
}

/// One GET from `have` bytes on into the locked `.part` `file`. Returns
/// (file size, bytes received).
fn attempt(
    conn: &mut Conn,
    remote: &str,
    mut file: File,
    part: &Path,
    have: u64,
    progress: bool,
) -> Result<(u64, u64), TransferError> {
    conn.request(&Request::Get {
        path: remote.to_string(),
        offset: have,
    })?;
    let (size, offset) = match conn.response()? {
        Response::File { size, offset } => (size, offset),
        Response::Error {
            code: super::proto::ErrorCode::BadRequest,
            ..
        } if have > 0 => {
            // Our .part is longer than the file: it cannot be a prefix of it.
            return Err(TransferError::HashMismatch {
                name: remote.to_string(),
            });
        }
        other => return Err(refused(other, &conn.server)),
    };
    if offset != have {
        return Err(TransferError::Protocol(format!(
            "asked for bytes from {have} on, the server offered {offset}"
        )));
    }
    file.set_len(have)
        .and_then(|()| file.seek(SeekFrom::Start(have)).map(|_| ()))
        .map_err(|e| io_err(&format!("prepare {}", part.display()), &e))?;
    reserve(&file, have, size - have, part)?;
    // The hasher starts with the bytes already on disk.
    let prefix = if have > 0 {
        Some(hash_local(part, Some(have)).map_err(|e| io_err("read the partial file", &e))?)
    } else {
        None
    };
    let bar = progress.then(|| progress_bar(size, have, remote));
    // Three stages, each on its own thread, so the copies overlap:
    // receive (this thread) -> write to the .part -> hash -> buffer reused.
    let (to_writer, writer_rx) = sync_channel::<(Vec<u8>, usize)>(CHUNKS_IN_FLIGHT);
    let (to_hasher, hasher_rx) = sync_channel::<(Vec<u8>, usize)>(CHUNKS_IN_FLIGHT);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 1);
    for _ in 0..CHUNKS_IN_FLIGHT {
        let _ = empty_tx.send(vec![0u8; CHUNK]);
    }
    let hasher = std::thread::Builder::new()
        .name("sockit-hash".into())
        .spawn(move || hash_chunks(prefix.unwrap_or_default(), hasher_rx, empty_tx))
        .map_err(|e| io_err("start the hashing thread", &e))?;
    let writer = std::thread::Builder::new()
        .name("sockit-write".into())
        .spawn(move || write_chunks(file, have, writer_rx, to_hasher))
        .map_err(|e| io_err("start the writing thread", &e))?;
    let received = receive(conn, size - have, &to_writer, &empty_rx, bar.as_ref());
    drop(to_writer);
    let (file, written) = writer
        .join()
        .map_err(|_| TransferError::Protocol("the writing thread failed".into()))?;
    let hash = hasher
        .join()
        .map_err(|_| TransferError::Protocol("the hashing thread failed".into()))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // Keep what arrived, even on failure: the next run resumes from it.
    let synced = file.sync_all();
    written.map_err(|e| io_err(&format!("write {} (disk full?)", part.display()), &e))?;
    let received = received?;
    synced.map_err(|e| io_err(&format!("write {} (disk full?)", part.display()), &e))?;
    let want = match conn.response()? {
        Response::Done { hash } => hash,
        other => return Err(refused(other, &conn.server)),
    };
    if *hash.finalize().as_bytes() != want {
        return Err(TransferError::HashMismatch {
            name: remote.to_string(),
        });
    }
    Ok((size, received))
}

/// Reserves the disk space for the rest of the file up front. Writes into
/// allocated blocks are much faster, and a full disk fails here, with a
/// clear message, before anything is transferred.
fn reserve(file: &File, from: u64, len: u64, part: &Path) -> Result<(), TransferError> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    // KEEP_SIZE reserves the blocks but leaves the file's size alone, so the
    // size of a .part is always exactly what arrived: resume depends on it.
    // SAFETY: fallocate on a descriptor we own.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            from as libc::off_t,
            len as libc::off_t,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EFBIG) => Err(TransferError::Io {
            what: format!("make room for {} in {}", human(len), part.display()),
            reason: "not enough disk space".into(),
        }),
        // File systems without fallocate: just write.
        _ => Ok(()),
    }
}

/// Starts writing back what has been received so far, so the final fsync
/// has little left to do. Asynchronous: it does not wait for the disk.
fn start_writeback(file: &File, from: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a hint on a descriptor we own.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Hashes chunks as they come, handing each buffer back for reuse.
fn hash_chunks(
    mut h: blake3::Hasher,
    full: Receiver<(Vec<u8>, usize)>,
    empty: SyncSender<Vec<u8>>,
) -> blake3::Hasher {
    while let Ok((buf, n)) = full.recv() {
        h.update(&buf[..n]);
        let _ = empty.send(buf);
    }
    h
}

/// Writes chunks to the `.part` as they come, starting disk writeback as
/// it goes, and passes each chunk on to the hasher. A failed write stops the
/// writing; the chunks still go on so nothing upstream blocks.
fn write_chunks(
    mut file: File,
    base: u64,
    chunks: Receiver<(Vec<u8>, usize)>,
    hasher: SyncSender<(Vec<u8>, usize)>,
) -> (File, io::Result<()>) {
    let mut result = Ok(());
    let mut written = 0u64;
    let mut flushed = 0u64;
    while let Ok((buf, n)) = chunks.recv() {
        if result.is_ok() {
            result = file.write_all(&buf[..n]);
            written += n as u64;
            if written - flushed >= WRITEBACK_EVERY {
                start_writeback(&file, base + flushed, written - flushed);
                flushed = written;
            }
        }
        if hasher.send((buf, n)).is_err() {
            break;
        }
    }
    (file, result)
}

/// Receives exactly `len` bytes, handing each chunk to the writer.
fn receive(
    conn: &mut Conn,
    len: u64,
    writer: &SyncSender<(Vec<u8>, usize)>,
    empty: &Receiver<Vec<u8>>,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<u64, TransferError> {
    let mut got = 0u64;
    while got < len {
        let mut buf = empty
            .recv()
            .map_err(|_| TransferError::Protocol("the hashing thread stopped".into()))?;
        let want = ((len - got) as usize).min(CHUNK);
        let n = if !conn.buf.is_empty() {
            let n = conn.buf.len().min(want);
            buf[..n].copy_from_slice(&conn.buf.split_to(n));
            n
        } else {
            loop {
                if crate::interrupt::requested() {
                    return Err(TransferError::Stopped {
                        part: PathBuf::new(),
                        kept: 0,
                    });
                }
                match conn.s.read(&mut buf[..want]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(TransferError::Interrupted {
                            have: got,
                            reason: if is_timeout(&e) {
                                format!("nothing arrived for {} s", conn.timeout.as_secs_f64())
                            } else {
                                describe(&e)
                            },
                        })
                    }
                }
            }
        };
        if n == 0 {
            return Err(TransferError::Interrupted {
                have: got,
                reason: format!("the server sent {got} of {len} bytes and closed"),
            });
        }
        // TLS hands over one 16 KiB record per read: fill the chunk, so the
        // write and hash threads see large pieces, as with plain TCP.
        let mut n = n;
        while conn.s.is_tls() && n < want {
            match conn.s.read(&mut buf[n..want]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(TransferError::Interrupted {
                        have: got + n as u64,
                        reason: describe(&e),
                    })
                }
            }
        }
        got += n as u64;
        if let Some(b) = bar {
            b.inc(n as u64);
        }
        if writer.send((buf, n)).is_err() {
            return Err(TransferError::Protocol("the writing thread stopped".into()));
        }
    }
    Ok(got)
}

fn progress_bar(size: u64, have: u64, name: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_string());
    bar.set_position(have);
    bar
}

/// One entry of a remote listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// The name.
    pub name: String,
}

impl Entry {
    /// One `ls` line: type, size, name (directories end in `/`). With
    /// `human`, sizes are in binary units (for a terminal); without, exact
    /// byte counts (for scripts).
    pub fn line(&self, human_sizes: bool) -> String {
        match self.kind {
            EntryKind::Dir => format!("dir  {:>14}  {}/", "-", self.name),
            EntryKind::File if human_sizes => {
                format!("file {:>14}  {}", human(self.size), self.name)
            }
            EntryKind::File => format!("file {:>14}  {}", self.size, self.name),
        }
    }

    /// The entry as a JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"name\":{},\"type\":\"{}\",\"size\":{}}}",
            crate::report::json_str(&self.name),
            if self.kind == EntryKind::Dir {
                "dir"
            } else {
                "file"
            },
            self.size
        )
    }
}

/// Lists `path` on the server.
///
/// # Errors
/// Connection, protocol and refusal errors; names that are not plain.
pub fn ls(
    host: &str,
    port: u16,
    path: &str,
    copts: &ConnectOptions,
    tls: Option<&ClientTlsOptions>,
    timeout: Option<Duration>,
) -> Result<Vec<Entry>, TransferError> {
    let mut conn = Conn::open(host, port, copts, tls, timeout.unwrap_or(DEFAULT_TIMEOUT))?;
    let entries = list(&mut conn, path)?;
    entries
        .into_iter()
        .map(|(kind, size, name)| {
            if safe_name(&name) {
                Ok(Entry { kind, size, name })
            } else {
                Err(TransferError::Unsafe { name })
            }
        })
        .collect()
}

/// `get --raw`: the seed's protocol. Sends the name, saves everything until
/// the server closes. There is no hash, so nothing can be verified.
///
/// # Errors
/// Connection and file errors; an empty reply (the seed's "no such file").
pub fn get_raw(
    host: &str,
    port: u16,
    name: &str,
    target: &Path,
    copts: &ConnectOptions,
    tls: Option<&ClientTlsOptions>,
    timeout: Option<Duration>,
) -> Result<Fetched, TransferError> {
    let started = Instant::now();
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let to_stdout = target == Path::new("-");
    if !to_stdout && target.exists() {
        return Err(TransferError::Exists {
            path: target.to_path_buf(),
        });
    }
    let (mut s, server) = open_stream(host, port, copts, tls, timeout)?;
    s.write_all(name.as_bytes())
        .and_then(|()| s.flush())
        .map_err(|e| io_err("send the file name", &e))?;
    if to_stdout {
        let n = match io::copy(&mut s, &mut *crate::console::stdout()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                return Err(TransferError::OutputClosed)
            }
            Err(e) => return Err(io_err("receive the file", &e)),
        };
        if n == 0 {
            return Err(TransferError::Empty {
                name: name.to_string(),
            });
        }
        return Ok(Fetched {
            path: target.to_path_buf(),
            bytes: n,
            transferred: n,
            secs: started.elapsed().as_secs_f64(),
            outcome: Outcome::Unverified,
        });
    }
    let part = part_path(target);
    let mut file =
        File::create(&part).map_err(|e| io_err(&format!("create {}", part.display()), &e))?;
    let n = io::copy(&mut s, &mut file).map_err(|e| {
        if is_timeout(&e) {
            TransferError::TimedOut {
                server,
                secs: timeout.as_secs_f64(),
                answered: true,
            }
        } else {
            io_err("receive the file", &e)
        }
    })?;
    file.sync_all()
        .map_err(|e| io_err("write the file (disk full?)", &e))?;
    if n == 0 {
        let _ = std::fs::remove_file(&part);
        return Err(TransferError::Empty {
            name: name.to_string(),
        });
    }
    std::fs::rename(&part, target).map_err(|e| io_err("rename into place", &e))?;
    Ok(Fetched {
        path: target.to_path_buf(),
        bytes: n,
        transferred: n,
        secs: started.elapsed().as_secs_f64(),
        outcome: Outcome::Unverified,
    })
}
