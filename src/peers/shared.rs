//! What the multi-peer server and its room both need, below both of them:
//! the modes and options, the state every peer task shares, the error that
//! ends one peer, and the idle timeout. Data flows one way: the server
//! accepts and dispatches, the room serves members, and both read this.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::members::Room;
use super::wire::Wire;
use crate::access::AccessList;
use crate::frame::FrameError;
use crate::text::{TextOptions, MAX_LINE};
use crate::tls::ServerTls;

/// Default byte budget of one peer's outgoing queue in the hub and chat
/// modes. A peer that falls this far behind is disconnected.
pub const DEFAULT_PEER_QUEUE_BYTES: usize = 1024 * 1024;

/// What the listener does with each peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-k`: peers' bytes go to stdout, stdin lines go to every peer.
    Hub,
    /// `--echo`: each peer gets its own bytes back.
    Echo,
    /// `--upper`: each peer gets each line back upper-cased.
    Upper,
    /// `--chat`: a chat room; lines go to every other peer with the sender's name.
    Chat,
}

/// Listener behaviour.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// What to do with each peer.
    pub mode: Mode,
    /// Most peers served at once; more are refused.
    pub max_conns: Option<usize>,
    /// Close a peer that sends nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// Quit words, CRLF and wire encoding.
    pub text: TextOptions,
    /// `Some(max)` turns on framing with that payload limit.
    pub frame: Option<usize>,
    /// Longest line a peer may send in the line modes.
    pub max_line: usize,
    /// Byte budget of each peer's outgoing queue (hub and chat).
    pub peer_queue_bytes: usize,
    /// `--tls`: the server configuration.
    pub tls: Option<ServerTls>,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// `--allow` and `--deny`.
    pub access: AccessList,
    /// Told of each peer as it is admitted (`sockit nc -lkv` prints
    /// netcat's `Connection received on` line).
    pub notice: Option<Notice>,
}

/// A callback for each admitted peer.
#[derive(Clone)]
pub struct Notice(pub std::sync::Arc<dyn Fn(&crate::listener::Peer) + Send + Sync>);

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notice")
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            mode: Mode::Echo,
            max_conns: None,
            idle_timeout: None,
            text: TextOptions::default(),
            frame: None,
            max_line: MAX_LINE,
            peer_queue_bytes: DEFAULT_PEER_QUEUE_BYTES,
            tls: None,
            handshake_timeout: crate::tls::DEFAULT_HANDSHAKE_TIMEOUT,
            access: AccessList::default(),
            notice: None,
        }
    }
}

/// State every peer task shares.
pub(crate) struct Shared {
    /// The options in force.
    pub(crate) opts: ServerOptions,
    /// Members of the hub or chat room.
    pub(crate) room: Room,
    /// The console's output, if any.
    pub(crate) console: Option<mpsc::Sender<Bytes>>,
    /// Cancelled when the server stops.
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    /// A fresh message codec for one peer.
    pub(crate) fn wire(&self) -> Wire {
        Wire::new(self.opts.frame, self.opts.max_line, self.opts.text.crlf)
    }

    /// Prints to the console, waiting if it is behind.
    pub(crate) async fn print(&self, data: Bytes) {
        if let Some(c) = &self.console {
            let _ = c.send(data).await;
        }
    }
}

/// Errors that end one peer's session (logged; other peers go on).
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A socket error.
    #[error("{}", crate::net::describe(.0))]
    Io(#[from] io::Error),
    /// A framing violation.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// A line over `--max-line`.
    #[error("sent a line longer than {0} bytes; disconnected")]
    LineTooLong(usize),
    /// A TLS client reached this plain listener.
    #[error("is speaking TLS to this plain listener (listen with --tls); closed")]
    SpeaksTls,
    /// Nothing arrived for the idle timeout.
    #[error("idle for {0} s; disconnected")]
    Idle(u64),
}

/// Waits for `fut` or the idle timeout.
pub(crate) async fn with_idle<T>(
    idle: Option<Duration>,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, PeerError> {
    match idle {
        Some(d) => tokio::time::timeout(d, fut)
            .await
            .map_err(|_| PeerError::Idle(d.as_secs())),
        None => Ok(fut.await),
    }
}
