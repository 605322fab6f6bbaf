//! The room behind `-k` (hub) and `--chat`: each member's reader and writer
//! tasks, the chat commands, and the console task, over the member table in
//! `members`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::members::Joined;
use super::shared::{with_idle, Mode, PeerError, Shared};
use super::wire::Item;
use crate::text::Line;

/// How long a stopping server waits for each member's last messages.
const CLOSING_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Most queued messages one writer takes at once.
const WRITE_BATCH: usize = 64;

/// Batches up to this many bytes are joined into one buffer and one write.
const WRITE_COALESCE: usize = 64 * 1024;

/// Longest chat name.
const MAX_NAME: usize = 32;

/// Checks a requested chat name.
fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(format!("a name has 1 to {MAX_NAME} characters"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) || name.starts_with('/') {
        return Err("a name has no spaces or control characters and does not start with /".into());
    }
    if name == "server" {
        return Err("the name server is reserved".into());
    }
    Ok(())
}

/// Sends a room notice (`* text`) to everyone but `except`, and the console.
async fn notice(shared: &Shared, except: Option<u64>, text: &str) {
    let line = format!("* {text}");
    say_all(shared, except, line.as_bytes()).await;
}

/// Sends one message to every member but `except` and to the console, and
/// reports any member it had to disconnect.
async fn say_all(shared: &Shared, except: Option<u64>, text: &[u8]) {
    let encoded = match encode_for_wire(shared, text) {
        Some(b) => b,
        None => return,
    };
    let evicted = shared.room.broadcast(except, &encoded).await;
    if shared.opts.mode == Mode::Chat {
        let mut line = text.to_vec();
        line.push(b'\n');
        shared.print(Bytes::from(line)).await;
    }
    for name in evicted {
        tracing::warn!("disconnected {name}: not reading fast enough (outgoing queue full)");
        if shared.opts.mode == Mode::Chat {
            let line = format!("* {name} was disconnected (too slow)");
            if let Some(b) = encode_for_wire(shared, line.as_bytes()) {
                // Evictions caused by this notice are logged, not announced again.
                for n in shared.room.broadcast(None, &b).await {
                    tracing::warn!(
                        "disconnected {n}: not reading fast enough (outgoing queue full)"
                    );
                }
            }
            shared.print(Bytes::from(line + "\n")).await;
        }
    }
}

/// Encodes terminal text for the wire: wire encoding, then line or frame.
fn encode_for_wire(shared: &Shared, text: &[u8]) -> Option<Bytes> {
    let body = match shared.opts.text.encoding {
        Some(enc) => enc.encode(text),
        None => std::borrow::Cow::Borrowed(text),
    };
    shared.wire().encode_one(&body).ok()
}

/// Sends a message to one member.
fn tell(shared: &Shared, id: u64, text: &str) {
    if let Some(b) = encode_for_wire(shared, text.as_bytes()) {
        shared.room.send_to(id, &b);
    }
}

/// Reads stdin lines and sends them to the room: as they are in hub mode,
/// as `[server] line` in chat mode. A quit word stops the server.
pub(crate) async fn console_task(shared: Arc<Shared>, mut input: mpsc::Receiver<Line>) {
    loop {
        let line = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            l = input.recv() => match l { Some(l) => l, None => return },
        };
        if line.ended && shared.opts.text.is_quit(&line.data) {
            tracing::info!("quit word typed; stopping");
            shared.shutdown.cancel();
            return;
        }
        if shared.opts.mode == Mode::Chat {
            let mut text = b"[server] ".to_vec();
            text.extend_from_slice(&line.data);
            let encoded = match encode_for_wire(&shared, &text) {
                Some(b) => b,
                None => continue,
            };
            for n in shared.room.broadcast(None, &encoded).await {
                tracing::warn!("disconnected {n}: not reading fast enough (outgoing queue full)");
            }
        } else {
            let bytes = if shared.opts.frame.is_some() {
                encode_for_wire(&shared, &line.data)
            } else if line.ended {
                let mut out = BytesMut::new();
                shared.opts.text.write_line(&line.data, &mut out);
                Some(out.freeze())
            } else {
                Some(Bytes::from(
                    shared.opts.text.outgoing_piece(&line.data).into_owned(),
                ))
            };
            if let Some(b) = bytes {
                for n in shared.room.broadcast(None, &b).await {
                    tracing::warn!(
                        "disconnected {n}: not reading fast enough (outgoing queue full)"
                    );
                }
            }
        }
    }
}

/// Writes each message in turn; false when kicked.
async fn write_each<W: AsyncWrite + Unpin>(
    wr: &mut W,
    batch: &[Bytes],
    kick: &CancellationToken,
) -> std::io::Result<bool> {
    for b in batch {
        tokio::select! {
            _ = kick.cancelled() => return Ok(false),
            r = wr.write_all(b) => r?,
        }
    }
    Ok(true)
}

/// Serves one member of a hub or chat room.
pub(crate) async fn peer<W: AsyncWrite + Unpin + Send + 'static>(
    shared: Arc<Shared>,
    mut rd: PeerReader,
    mut wr: W,
    name: String,
) -> Result<(), PeerError> {
    let chat = shared.opts.mode == Mode::Chat;
    let Joined {
        id,
        mut rx,
        queued,
        kick,
        drained,
    } = shared.room.join(name.clone());
    // The writer: drains the queue until kicked or the socket fails. Under
    // load it takes every waiting message at once and writes them with one
    // syscall, so a busy room costs one write per peer per batch, not per line.
    let wkick = kick.clone();
    let writer = tokio::spawn(async move {
        let mut batch: Vec<Bytes> = Vec::new();
        let mut joined = BytesMut::new();
        loop {
            let n = tokio::select! {
                _ = wkick.cancelled() => break,
                n = rx.recv_many(&mut batch, WRITE_BATCH) => n,
            };
            if n == 0 {
                break;
            }
            let total: usize = batch.iter().map(Bytes::len).sum();
            queued.fetch_sub(total, Ordering::Relaxed);
            drained.notify_one();
            let res = if batch.len() == 1 || total > WRITE_COALESCE {
                write_each(&mut wr, &batch, &wkick).await
            } else {
                joined.clear();
                for b in &batch {
                    joined.extend_from_slice(b);
                }
                tokio::select! {
                    _ = wkick.cancelled() => Ok(false),
                    r = wr.write_all(&joined) => r.map(|()| true),
                }
            };
            batch.clear();
            // Idle members should not keep a burst's buffer.
            if joined.capacity() > 8 * 1024 {
                joined = BytesMut::new();
            }
            if !matches!(res, Ok(true)) {
                break;
            }
        }
        wkick.cancel();
    });
    if chat {
        notice(&shared, Some(id), &format!("{name} joined")).await;
        tell(
            &shared,
            id,
            &format!(
                "* welcome, {}; {} in the room; /help lists commands",
                name,
                shared.room.len()
            ),
        );
    }
    let res = read_loop(&shared, &mut rd, id, &kick).await;
    let mut writer = writer;
    if shared.shutdown.is_cancelled() {
        // The server is stopping: say so, and give the goodbye (and what
        // was queued before it) a moment to go out.
        if chat {
            tell(&shared, id, "* the room is closing: the server is stopping");
        }
        shared.room.retire(id);
        let _ = tokio::time::timeout(CLOSING_GRACE, &mut writer).await;
        kick.cancel();
        let _ = writer.await;
        return res;
    }
    let name = shared.room.leave(id);
    kick.cancel();
    let _ = writer.await;
    if chat {
        if let Some(name) = name {
            notice(&shared, None, &format!("{name} left")).await;
        }
    }
    res
}

/// Reads a member's messages until it leaves.
async fn read_loop(
    shared: &Arc<Shared>,
    rd: &mut PeerReader,
    id: u64,
    kick: &CancellationToken,
) -> Result<(), PeerError> {
    let o = &shared.opts;
    let chat = o.mode == Mode::Chat;
    let raw = !chat && !o.text.line_mode() && o.frame.is_none();
    let mut wire = shared.wire();
    let mut buf = BytesMut::new();
    let mut check_plain = matches!(rd, PeerReader::Plain(_));
    loop {
        let n = tokio::select! {
            _ = kick.cancelled() => return Ok(()),
            _ = shared.shutdown.cancelled() => return Ok(()),
            r = with_idle(o.idle_timeout, rd.read_some(&mut buf)) => r??,
        };
        let eof = n == 0;
        if std::mem::take(&mut check_plain) && crate::tls::looks_like_client_hello(&buf) {
            return Err(PeerError::SpeaksTls);
        }
        if raw {
            if !eof {
                shared.print(buf.split().freeze()).await;
                continue;
            }
            return Ok(());
        }
        loop {
            let item = match wire.decode(&mut buf, eof) {
                Ok(Some(i)) => i,
                Ok(None) => break,
                Err(e) => {
                    tell(shared, id, &format!("sockit: {e}"));
                    return Err(e.into());
                }
            };
            let msg = match item {
                Item::Msg(m) => m,
                Item::TooLong => {
                    if chat {
                        tell(
                            shared,
                            id,
                            &format!("* line over {} bytes dropped", o.max_line),
                        );
                        continue;
                    }
                    return Err(PeerError::LineTooLong(o.max_line));
                }
            };
            let text = o.text.incoming(&msg);
            if o.text.is_quit(&text) {
                return Ok(());
            }
            if chat {
                if !chat_line(shared, id, &text).await {
                    return Ok(());
                }
            } else {
                let mut line = if o.frame.is_some() {
                    crate::text::escape_line(&text).into_owned()
                } else {
                    text.into_owned()
                };
                line.push(b'\n');
                shared.print(Bytes::from(line)).await;
            }
        }
        if eof {
            return Ok(());
        }
        // A member between lines holds no read buffer.
        if buf.is_empty() && buf.capacity() > 8 * 1024 {
            buf = BytesMut::new();
        }
    }
}

/// Reads what is waiting into `buf` through a stack buffer, so an idle
/// member costs no heap buffer (5,000 members in one room).
fn read_into(rd: &tokio::net::tcp::OwnedReadHalf, buf: &mut BytesMut) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = rd.try_read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// [`read_into`] for a Unix member.
fn read_into_unix(
    rd: &tokio::net::unix::OwnedReadHalf,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = rd.try_read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Handles one chat line; false when the member asked to leave.
async fn chat_line(shared: &Arc<Shared>, id: u64, text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    let trimmed = text.trim_end();
    if let Some(cmd) = trimmed.strip_prefix('/') {
        let (word, arg) = match cmd.split_once(char::is_whitespace) {
            Some((w, a)) => (w, a.trim()),
            None => (cmd, ""),
        };
        match word {
            "nick" => match valid_name(arg).and_then(|()| shared.room.rename(id, arg)) {
                Ok(old) if old == arg => tell(shared, id, &format!("* you are already {arg}")),
                Ok(old) => notice(shared, None, &format!("{old} is now {arg}")).await,
                Err(e) => tell(shared, id, &format!("* error: {e}")),
            },
            "who" => {
                let names = shared.room.names();
                tell(
                    shared,
                    id,
                    &format!("* {} in the room: {}", names.len(), names.join(", ")),
                );
            }
            "quit" => return false,
            "help" => tell(
                shared,
                id,
                "* commands: /nick NAME (rename), /who (who is here), /quit (leave), /help",
            ),
            _ => tell(
                shared,
                id,
                &format!("* error: unknown command /{word}; /help lists commands"),
            ),
        }
        return true;
    }
    let name = match shared.room.name_of(id) {
        Some(n) => n,
        None => return false,
    };
    let line = format!("[{name}] {text}");
    say_all(shared, Some(id), line.as_bytes()).await;
    true
}

/// The reading side of a room member: a plain socket half (read only when
/// ready, so an idle member holds no buffer) or a TLS half.
pub(crate) enum PeerReader {
    /// Plain TCP.
    Plain(tokio::net::tcp::OwnedReadHalf),
    /// A Unix stream socket.
    Unix(tokio::net::unix::OwnedReadHalf),
    /// TLS.
    Tls(tokio::io::ReadHalf<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl PeerReader {
    /// Waits for data and appends it to `buf`; 0 at end of stream.
    /// Cancel-safe: nothing read is lost if the future is dropped.
    async fn read_some(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            PeerReader::Plain(rd) => loop {
                rd.readable().await?;
                match read_into(rd, buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    r => return r,
                }
            },
            PeerReader::Unix(rd) => loop {
                rd.readable().await?;
                match read_into_unix(rd, buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    r => return r,
                }
            },
            PeerReader::Tls(rd) => {
                buf.reserve(4096);
                match rd.read_buf(buf).await {
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                    r => r,
                }
            }
        }
    }
}
