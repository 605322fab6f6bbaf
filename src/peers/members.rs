//! The member table behind `-k` (hub) and `--chat`: a registry of peers,
//! each with a bounded outgoing queue. A message is encoded once and its
//! `Bytes` shared by every queue. A peer whose queue goes over its byte
//! budget is disconnected, so one stalled reader never delays the others
//! and memory stays bounded. A plain value: no sockets, no server state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Most messages one peer's queue holds, whatever their size.
const QUEUE_MESSAGES: usize = 4096;

/// How long a sender waits for a full queue to drain before the member
/// behind it counts as stalled and is disconnected.
const FULL_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

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
pub(crate) struct Joined {
    /// The member's id in the room.
    pub(crate) id: u64,
    /// Its outgoing queue, drained by its writer task.
    pub(crate) rx: mpsc::Receiver<Bytes>,
    /// Bytes waiting in that queue.
    pub(crate) queued: Arc<AtomicUsize>,
    /// Cancelled to disconnect the member.
    pub(crate) kick: CancellationToken,
    /// Signalled by the writer each time it takes from the queue.
    pub(crate) drained: Arc<Notify>,
}

impl Room {
    /// An empty room whose members may each have `budget` bytes queued.
    pub(crate) fn new(budget: usize) -> Room {
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
    pub(crate) fn join(&self, name: String) -> Joined {
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
    pub(crate) fn retire(&self, id: u64) -> Option<String> {
        self.lock().remove(&id).map(|m| m.name)
    }

    pub(crate) fn leave(&self, id: u64) -> Option<String> {
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
    pub(crate) async fn broadcast(&self, except: Option<u64>, msg: &Bytes) -> Vec<String> {
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
    pub(crate) fn send_to(&self, id: u64, msg: &Bytes) {
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
    pub(crate) fn rename(&self, id: u64, new: &str) -> Result<String, String> {
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
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().values().map(|m| m.name.clone()).collect();
        v.sort();
        v
    }

    /// A member's current name.
    pub(crate) fn name_of(&self, id: u64) -> Option<String> {
        self.lock().get(&id).map(|m| m.name.clone())
    }

    /// How many members there are.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
