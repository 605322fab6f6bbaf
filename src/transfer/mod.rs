//! File transfer: `sockit serve`, `sockit get`, `sockit ls`.
//!
//! - [`proto`]: the wire protocol, free of I/O.
//! - [`paths`]: safe paths on both sides.
//! - [`server`]: the read-only server (native and seed-style raw requests).
//! - [`client`]: verified, resumable downloads and listings: the run over
//!   names and trees (`client/mod.rs`), one connection (`conn.rs`), one
//!   file's download pipeline (`file.rs`).

pub mod client;
pub mod paths;
pub mod proto;
pub mod server;

use std::path::PathBuf;

use crate::net::NetError;
use proto::ErrorCode;

impl TransferError {
    /// Whether trying again may succeed: the connection broke, the server
    /// went quiet, or it could not be reached. Refusals, hash mismatches
    /// and local errors (a full disk) are not.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            TransferError::Interrupted { .. }
                | TransferError::TimedOut { .. }
                | TransferError::Net(_)
        )
    }

    /// The sentence for a failure that is about to be retried: without
    /// the advice to run the command again.
    pub fn before_retry(&self) -> String {
        match self {
            TransferError::Interrupted { have, reason } => {
                format!("the download was interrupted after {have} bytes ({reason})")
            }
            e => e.to_string(),
        }
    }
}

/// Transfer errors, each one sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Resolving, connecting or binding failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Reaching the server (directly or through `--proxy`) failed.
    #[error(transparent)]
    Dial(#[from] crate::dial::DialError),
    /// Local or socket I/O failed.
    #[error("could not {what} ({reason})")]
    Io {
        /// What we were doing.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The server refused the request.
    #[error("{server} refused: {message}")]
    Refused {
        /// The server.
        server: String,
        /// Its reason.
        message: String,
        /// Its error code.
        code: ErrorCode,
    },
    /// The peer answered with bytes that are not sockit's protocol.
    #[error("{server} does not speak sockit's transfer protocol; is it a `sockit serve`? (try --raw for a seed-style server)")]
    NotSockit {
        /// The server.
        server: String,
    },
    /// The server sent nothing for the timeout.
    #[error("{server} sent nothing for {secs} s{}; raise --timeout if it is just slow", if *answered { "" } else { " (it accepted the connection but never answered; is it a `sockit serve`?)" })]
    TimedOut {
        /// The server.
        server: String,
        /// The timeout.
        secs: f64,
        /// Whether it had answered anything before.
        answered: bool,
    },
    /// Another `get` holds the lock on this `.part`.
    #[error("another download of this file is running ({} is locked); wait for it to finish", part.display())]
    Locked {
        /// The locked `.part`.
        part: PathBuf,
    },
    /// A local file could not be created or written; it concerns one name.
    #[error("could not {what} ({reason})")]
    Local {
        /// What we were doing, with the path.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Some names failed; each was reported on its own.
    #[error("{failed} of {} failed; see the messages above", crate::text::counted((*failed + *fetched) as u64, "download", "downloads"))]
    SomeFailed {
        /// Names or entries that failed.
        failed: usize,
        /// Files that arrived.
        fetched: usize,
    },
    /// `-o -` wrote bytes whose hash does not match the server's.
    #[error("{name}: the bytes written to stdout do not match the server's BLAKE3 hash; do not trust them")]
    StdoutMismatch {
        /// The remote name.
        name: String,
    },
    /// Ctrl-C stopped a download; what arrived is kept for the next run.
    #[error("interrupted; {} kept in {}; run the same command to resume", client::human(*kept), part.display())]
    Stopped {
        /// The `.part` that holds what arrived.
        part: PathBuf,
        /// Its size.
        kept: u64,
    },
    /// Our stdout was closed by its reader: a quiet end.
    #[error("stdout was closed")]
    OutputClosed,
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The download does not match the server's hash, even after one full retry.
    #[error("{name}: the download does not match the server's BLAKE3 hash; no file was written")]
    HashMismatch {
        /// The remote name.
        name: String,
    },
    /// The target exists with other content.
    #[error("{} already exists with different content; add --force to overwrite it", path.display())]
    Exists {
        /// The local file.
        path: PathBuf,
    },
    /// The connection broke mid-file; the `.part` is kept.
    #[error("the download was interrupted after {have} bytes ({reason}); run the same command again to resume")]
    Interrupted {
        /// Bytes received in this attempt.
        have: u64,
        /// Why.
        reason: String,
    },
    /// A name from the server that could write outside the destination.
    #[error("the server sent an unsafe name {name:?}; refusing to write it")]
    Unsafe {
        /// The name.
        name: String,
    },
    /// A raw download got no bytes (the seed server's answer to a missing file).
    #[error("the server sent nothing for {name:?} (the seed protocol's way of saying there is no such file)")]
    Empty {
        /// The name asked for.
        name: String,
    },
    /// Options that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// TLS set-up, trust or handshake failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl crate::error::Failure for TransferError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            TransferError::Net(e) => e.kind(),
            TransferError::Dial(e) => e.kind(),
            TransferError::Tls(e) => e.kind(),
            TransferError::Usage(_) => Kind::Usage,
            // Ctrl-C: what arrived is kept, and the command says so.
            TransferError::Stopped { .. } => Kind::Interrupted,
            TransferError::OutputClosed => Kind::OutputClosed,
            TransferError::Io { .. }
            | TransferError::Refused { .. }
            | TransferError::NotSockit { .. }
            | TransferError::TimedOut { .. }
            | TransferError::Locked { .. }
            | TransferError::Local { .. }
            | TransferError::SomeFailed { .. }
            | TransferError::StdoutMismatch { .. }
            | TransferError::Protocol(_)
            | TransferError::HashMismatch { .. }
            | TransferError::Exists { .. }
            | TransferError::Interrupted { .. }
            | TransferError::Unsafe { .. }
            | TransferError::Empty { .. } => Kind::Runtime,
        }
    }
}
