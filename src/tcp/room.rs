//! The room behind `-k` (hub) and `--chat`: a registry of peers, each with a
//! bounded outgoing queue. A message is encoded once and its `Bytes` shared
//! by every queue. A peer whose queue goes over its byte budget is
//! disconnected, so one stalled reader never delays the others and memory
//! stays bounded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::net::show_addr;
use crate::tcp::server::{with_idle, Mode, PeerError, Shared};
use crate::tcp::wire::Item;
use crate::text::Line;

/// Most messages one peer's queue holds, whatever their size.
/// How long a stopping server waits for each member's last messages.
const CLOSING_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
const QUEUE_MESSAGES: usize = 4096;

/// Most queued messages one writer takes at once.
const WRITE_BATCH: usize = 64;

/// Batches up to this many bytes are joined into one buffer and one write.
const WRITE_COALESCE: usize = 64 * 1024;

/// How long a sender waits for a full queue to drain before the member
/// behind it counts as stalled and is disconnected.
const FULL_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// Longest chat name.
const MAX_NAME: usize = 32;

/// One member of the room.
struct Member {
    /// Display name (the address until `/nick`).
    name: String,
    /// Queue feeding the member's writer task.
    tx: mpsc::Sender<Bytes>,
    /// Bytes waiting in the queue, against the byte budget.
    queued: Arc<AtomicUsize>,
    /// Cancelled to disconnect the member.
    kick: CancellationToken,
    /// Signalled by the writer each time it takes from the queue.
    drained: Arc<Notify>,
}

/// The peers in a hub or chat room.
pub(crate) struct Room {
    /// Members by id.
    members: Mutex<HashMap<u64, Member>>,
    /// Next member id.
    next_id: AtomicU64,
    /// Byte budget of each queue.
    budget: usize,
}

/// What happened to one offered message.
#[derive(Debug, PartialEq, Eq)]
enum Offer {
    /// In the member's queue.
    Queued,
    /// Over the byte budget or the message cap: the member is too slow.
    Full,
    /// The member's connection is already gone.
    Closed,
}

/// What a new member's tasks need.
struct Joined {
    id: u64,
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
    kick: CancellationToken,
    drained: Arc<Notify>,
}

impl Room {
    /// An empty room whose members may each have `budget` bytes queued.
    pub fn new(budget: usize) -> Room {
        Room {
            members: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            budget: budget.max(1),
        }
    }

    /// Locks the member table. A panic while holding the lock is impossible
    /// by construction, but a poisoned lock is still taken, never unwrapped.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Member>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a member.
    fn join(&self, name: String) -> Joined {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
        let queued = Arc::new(AtomicUsize::new(0));
        let kick = CancellationToken::new();
        let drained = Arc::new(Notify::new());
        self.lock().insert(
            id,
            Member {
                name,
                tx,
                queued: queued.clone(),
                kick: kick.clone(),
                drained: drained.clone(),
            },
        );
        Joined {
            id,
            rx,
            queued,
            kick,
            drained,
        }
    }

    /// Removes a member; returns its name if it was still there.
    /// Removes a member but lets its writer send what is queued: dropping
    /// the queue's sender ends the writer once it is drained.
    fn retire(&self, id: u64) -> Option<String> {
        self.lock().remove(&id).map(|m| m.name)
    }

    fn leave(&self, id: u64) -> Option<String> {
        self.lock().remove(&id).map(|m| {
            m.kick.cancel();
            m.name
        })
    }

    /// Queues `msg` for every member but `except`. A member whose queue is
    /// full gets up to [`FULL_GRACE`] to drain it, which slows the sender
    /// down to the pace of live readers; a member still full after that is
    /// stalled, and is removed and disconnected. Returns the removed names.
    /// Members whose connection already closed are skipped: their own task
    /// removes them and announces the leave.
    async fn broadcast(&self, except: Option<u64>, msg: &Bytes) -> Vec<String> {
        let full: Vec<(u64, Arc<Notify>)> = {
            let members = self.lock();
            members
                .iter()
                .filter(|(&id, _)| Some(id) != except)
                .filter(|(_, m)| Self::offer(m, msg, self.budget) == Offer::Full)
                .map(|(&id, m)| (id, m.drained.clone()))
                .collect()
        };
        if full.is_empty() {
            return Vec::new();
        }
        let deadline = tokio::time::Instant::now() + FULL_GRACE;
        let mut evicted = Vec::new();
        for (id, drained) in full {
            loop {
                let wait = drained.notified();
                let again = {
                    let members = self.lock();
                    members.get(&id).map(|m| Self::offer(m, msg, self.budget))
                };
                if again != Some(Offer::Full) {
                    break;
                }
                if tokio::time::timeout_at(deadline, wait).await.is_err() {
                    if let Some(m) = self.lock().remove(&id) {
                        m.kick.cancel();
                        evicted.push(m.name);
                    }
                    break;
                }
            }
        }
        evicted
    }

    /// Queues `msg` for one member.
    fn send_to(&self, id: u64, msg: &Bytes) {
        let members = self.lock();
        if let Some(m) = members.get(&id) {
            if Self::offer(m, msg, self.budget) == Offer::Full {
                tracing::warn!(
                    "disconnected {}: not reading fast enough (outgoing queue full)",
                    m.name
                );
                m.kick.cancel();
            }
        }
    }

    /// Tries to queue `msg` within the member's byte budget.
    fn offer(m: &Member, msg: &Bytes, budget: usize) -> Offer {
        let before = m.queued.fetch_add(msg.len(), Ordering::Relaxed);
        if before + msg.len() > budget && before > 0 {
            m.queued.fetch_sub(msg.len(), Ordering::Relaxed);
            return Offer::Full;
        }
        match m.tx.try_send(msg.clone()) {
            Ok(()) => Offer::Queued,
            Err(e) => {
                m.queued.fetch_sub(msg.len(), Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(_) => Offer::Full,
                    mpsc::error::TrySendError::Closed(_) => Offer::Closed,
                }
            }
        }
    }

    /// Renames a member; returns the old name.
    fn rename(&self, id: u64, new: &str) -> Result<String, String> {
        let mut members = self.lock();
        if members.iter().any(|(&i, m)| i != id && m.name == new) {
            return Err(format!("the name {new} is taken"));
        }
        match members.get_mut(&id) {
            Some(m) => Ok(std::mem::replace(&mut m.name, new.to_string())),
            None => Err("you are no longer in the room".into()),
        }
    }

    /// Every member's name, sorted.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().values().map(|m| m.name.clone()).collect();
        v.sort();
        v
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

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
    addr: SocketAddr,
) -> Result<(), PeerError> {
    let chat = shared.opts.mode == Mode::Chat;
    let Joined {
        id,
        mut rx,
        queued,
        kick,
        drained,
    } = shared.room.join(show_addr(addr));
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
        notice(&shared, Some(id), &format!("{} joined", show_addr(addr))).await;
        tell(
            &shared,
            id,
            &format!(
                "* welcome, {}; {} in the room; /help lists commands",
                show_addr(addr),
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
    let name = match shared.room.lock().get(&id).map(|m| m.name.clone()) {
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
