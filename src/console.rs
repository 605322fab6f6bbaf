//! The terminal side of async servers: a thread that reads stdin lines into
//! a bounded channel, and a thread that drains a bounded channel to stdout.
//! Bounded both ways, so a slow terminal slows the peers instead of growing
//! memory.

use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::text::{next_line, Line};

/// Capacity (in messages) of the console channels.
pub const CONSOLE_QUEUE: usize = 256;

/// How often a background job checks whether it was brought to the foreground.
const FOREGROUND_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether `fd` is a terminal that belongs to another process group, so
/// that reading it would stop this process with SIGTTIN (`sockit … &` in an
/// interactive shell).
pub fn in_background(fd: i32) -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only inspect process state.
    unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) != libc::getpgrp() }
}

/// Blocks while `fd` is a terminal of which this job is in the background,
/// so a job started with `&` never reads (and stops on) the terminal. It
/// starts reading once the user brings it to the foreground with `fg`.
pub fn wait_foreground(fd: i32) {
    if !in_background(fd) {
        return;
    }
    tracing::info!("running in the background; the terminal is not read until `fg`");
    while in_background(fd) {
        std::thread::sleep(FOREGROUND_POLL);
    }
}

/// The process's stdout (fd 1) as an unbuffered file that is never closed.
pub fn stdout() -> ManuallyDrop<std::fs::File> {
    // SAFETY: fd 1 stays open for the life of the process, and
    // ManuallyDrop keeps us from closing it.
    ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) })
}

/// The process's stdin (fd 0) as a reader that is never closed and that
/// does not read a terminal while the job is in the background.
pub struct Stdin;

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        wait_foreground(0);
        // SAFETY: fd 0 stays open for the life of the process, and
        // ManuallyDrop keeps us from closing it.
        let mut f = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
        f.read(buf)
    }
}

/// Starts a thread that reads stdin and sends it line by line (lines of at
/// most `max` bytes; longer ones arrive in pieces). The channel closes at EOF.
pub fn stdin_lines(max: usize) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel(CONSOLE_QUEUE);
    let spawned = std::thread::Builder::new()
        .name("sockit-stdin".into())
        .spawn(move || {
            let mut stdin = Stdin;
            let mut chunk = vec![0u8; 64 * 1024];
            let mut buf = BytesMut::new();
            loop {
                let n = match stdin.read(&mut chunk) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(line) = next_line(&mut buf, max, n == 0) {
                    if tx.blocking_send(line).is_err() {
                        return;
                    }
                }
                if n == 0 {
                    return;
                }
            }
        });
    if spawned.is_err() {
        tracing::warn!("could not start the stdin reader; stdin is ignored");
    }
    rx
}

/// A running stdout writer: send bytes to `tx`; drop it and `join` to flush.
pub struct StdoutWriter {
    /// Where to send bytes for stdout.
    pub tx: mpsc::Sender<Bytes>,
    /// The writer thread; it ends when every sender is dropped.
    handle: Option<std::thread::JoinHandle<()>>,
}

impl StdoutWriter {
    /// Starts the writer thread. A closed stdout (broken pipe) ends it
    /// quietly; what is sent after that is dropped.
    pub fn start() -> StdoutWriter {
        let (tx, mut rx) = mpsc::channel::<Bytes>(CONSOLE_QUEUE);
        let handle = std::thread::Builder::new()
            .name("sockit-stdout".into())
            .spawn(move || {
                // SAFETY: as for stdin above, for fd 1.
                let mut out = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
                while let Some(b) = rx.blocking_recv() {
                    if out.write_all(&b).is_err() {
                        // Keep draining so senders never block on a dead stdout.
                        while rx.blocking_recv().is_some() {}
                        return;
                    }
                }
            })
            .ok();
        StdoutWriter { tx, handle }
    }

    /// Waits until everything sent so far is written. Every clone of `tx`
    /// must be dropped first.
    pub fn join(mut self) {
        let StdoutWriter { tx, handle } = &mut self;
        drop(std::mem::replace(tx, mpsc::channel(1).0));
        if let Some(h) = handle.take() {
            let _ = h.join();
        }
    }
}
