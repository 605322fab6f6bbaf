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
use crate::dial::DialOptions;
use crate::frame::FrameCodec;
use crate::net::{self, describe};

mod conn;
mod file;

use conn::*;
use file::*;

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
    pub connect: DialOptions,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
    /// `--tls`: how to trust the server.
    pub tls: Option<ClientTlsOptions>,
    /// `--timeout`: how long to wait for an answer or the next bytes
    /// (`None`: [`DEFAULT_TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// `--retry`: more attempts [`get_retrying`] makes.
    pub retries: u32,
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

/// [`get`], tried again after a broken connection, a silent server or a
/// failed connect, up to `opts.retries` more times with backoff (0.5 s, 1 s,
/// 2 s, ... at most 10 s). Each new attempt resumes from the `.part`.
/// `on_retry` hears each failure and the wait before the next attempt.
/// Ctrl-C during a wait ends the run with the last error.
///
/// # Errors
/// As [`get`]: the last attempt's error.
pub fn get_retrying(
    host: &str,
    port: u16,
    names: &[String],
    opts: &GetOptions,
    report: &mut dyn FnMut(&Fetched),
    warn: &mut dyn FnMut(&TransferError),
    on_retry: &mut dyn FnMut(&TransferError, Duration, u32),
) -> Result<Vec<Fetched>, TransferError> {
    let mut attempt = 0;
    loop {
        match get(host, port, names, opts, report, warn) {
            Err(e) if e.retryable() && attempt < opts.retries => {
                attempt += 1;
                let wait = backoff(attempt);
                on_retry(&e, wait, attempt);
                if crate::interrupt::sleep(wait) {
                    return Err(e);
                }
            }
            r => return r,
        }
    }
}

/// The wait before retry number `attempt` (from 1): 0.5 s doubling, at
/// most 10 s.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(10_000))
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
    copts: &DialOptions,
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
    copts: &DialOptions,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_to_ten() {
        let secs: Vec<f64> = [1, 2, 3, 4, 5, 6, 100, u32::MAX]
            .iter()
            .map(|&a| backoff(a).as_secs_f64())
            .collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]);
    }
}
