//! One file's verified download: the locked `.part`, resume, the space
//! reserved up front, and three threads (receive, write, hash) so the copies
//! overlap; or `-o -`, streamed to stdout and checked at the end.

use super::*;

/// Size of each receive buffer handed to the hashing thread.
pub(crate) const CHUNK: usize = 1 << 20;

/// Buffers in flight between the receiving and the hashing thread.
pub(crate) const CHUNKS_IN_FLIGHT: usize = 4;

/// Start disk writeback after this many new bytes.
pub(crate) const WRITEBACK_EVERY: u64 = 64 << 20;

/// `NAME.part` beside `target`.
pub(crate) fn part_path(target: &Path) -> PathBuf {
    let mut p = target.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// BLAKE3 of a local file (or its first `limit` bytes).
pub(crate) fn hash_local(path: &Path, limit: Option<u64>) -> io::Result<blake3::Hasher> {
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
pub(crate) fn fetch_file(
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
pub(crate) fn open_part(part: &Path) -> Result<File, TransferError> {
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
pub(crate) fn attempt(
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
            code: crate::transfer::proto::ErrorCode::BadRequest,
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
    let mut bar = Progress::start(progress, size, have, remote);
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
    let received = receive(conn, size - have, &to_writer, &empty_rx, bar.as_mut());
    drop(to_writer);
    let (file, written) = writer
        .join()
        .map_err(|_| TransferError::Protocol("the writing thread failed".into()))?;
    let hash = hasher
        .join()
        .map_err(|_| TransferError::Protocol("the hashing thread failed".into()))?;
    if let Some(b) = &bar {
        b.finish();
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
pub(crate) fn reserve(file: &File, from: u64, len: u64, part: &Path) -> Result<(), TransferError> {
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
pub(crate) fn start_writeback(file: &File, from: u64, len: u64) {
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
pub(crate) fn hash_chunks(
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
pub(crate) fn write_chunks(
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
pub(crate) fn receive(
    conn: &mut Conn,
    len: u64,
    writer: &SyncSender<(Vec<u8>, usize)>,
    empty: &Receiver<Vec<u8>>,
    mut bar: Option<&mut Progress>,
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
        if let Some(b) = bar.as_deref_mut() {
            b.inc(n as u64);
        }
        if writer.send((buf, n)).is_err() {
            return Err(TransferError::Protocol("the writing thread stopped".into()));
        }
    }
    Ok(got)
}

/// A download's progress: a bar on a terminal, or (`--log-format json`)
/// a `progress` event a second.
pub(crate) enum Progress {
    Bar(indicatif::ProgressBar),
    Json {
        name: String,
        total: u64,
        at: u64,
        last: Instant,
        started: Instant,
    },
}

impl Progress {
    /// The bar when `bar` (a terminal), events in JSON mode, else none.
    pub(crate) fn start(bar: bool, size: u64, have: u64, name: &str) -> Option<Progress> {
        if crate::logline::json() {
            let now = Instant::now();
            return Some(Progress::Json {
                name: name.to_string(),
                total: size,
                at: have,
                last: now,
                started: now,
            });
        }
        bar.then(|| Progress::Bar(progress_bar(size, have, name)))
    }

    fn inc(&mut self, n: u64) {
        match self {
            Progress::Bar(b) => b.inc(n),
            Progress::Json { at, last, .. } => {
                *at += n;
                if last.elapsed() >= Duration::from_secs(1) {
                    *last = Instant::now();
                    self.report();
                }
            }
        }
    }

    fn report(&self) {
        if let Progress::Json {
            name,
            total,
            at,
            started,
            ..
        } = self
        {
            use crate::report::json_str;
            let secs = started.elapsed().as_secs_f64();
            crate::logline::notice(
                "progress",
                &format!("{name}: {at} of {total} bytes"),
                &[
                    ("name", json_str(name)),
                    ("bytes", at.to_string()),
                    ("total", total.to_string()),
                    ("secs", format!("{secs:.3}")),
                ],
            );
        }
    }

    fn finish(&self) {
        match self {
            Progress::Bar(b) => b.finish_and_clear(),
            Progress::Json { .. } => self.report(),
        }
    }
}

pub(crate) fn progress_bar(size: u64, have: u64, name: &str) -> indicatif::ProgressBar {
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

/// `-o -`: streams one file to stdout, hashing as it goes, and checks the
/// hash at the end (the bytes are out by then: a mismatch is an error
/// after the fact, said plainly).
pub(crate) fn fetch_to_stdout(conn: &mut Conn, remote: &str) -> Result<Fetched, TransferError> {
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
pub(crate) fn local_err(path: &Path, what: &str, e: &io::Error) -> TransferError {
    TransferError::Local {
        what: format!("{what} {}", path.display()),
        reason: describe(e),
    }
}
