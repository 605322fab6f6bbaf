//! Spreading accepted connections over the accept loops.
//!
//! Every loop (one per core, each a single-threaded runtime) accepts from
//! the same listening socket, and the kernel wakes whichever loop it
//! likes: left alone, a burst of clients lands mostly on the loop that
//! happened to be awake, and one core relays most of the traffic. So each
//! loop counts the connections it relays, and a connection accepted on a
//! loop that has [`SLACK`] or more than the least loaded one is handed to
//! that one through its inbox (haproxy's way with threads). In a steady
//! state no connection moves, and a moved one costs one wake-up.
//!
//! Accepting here takes a plain non-blocking socket (`accept4`) that is
//! not yet registered with any runtime, so a connection that moves is
//! registered once, by the loop that relays it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// How many more connections than the least loaded loop a loop may relay
/// before it hands new ones over.
pub(crate) const SLACK: usize = 2;

/// The accept loops' counts and inboxes.
pub(crate) struct Balance<T> {
    loops: Vec<Slot<T>>,
}

struct Slot<T> {
    load: AtomicUsize,
    inbox: mpsc::UnboundedSender<(T, Load<T>)>,
}

/// What one loop receives: connections handed to it, each with its count.
pub(crate) type Inbox<T> = mpsc::UnboundedReceiver<(T, Load<T>)>;

/// One relayed connection in its loop's count; dropping it takes it out.
pub(crate) struct Load<T> {
    balance: Arc<Balance<T>>,
    at: usize,
}

impl<T> Drop for Load<T> {
    fn drop(&mut self) {
        if let Some(s) = self.balance.loops.get(self.at) {
            s.load.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<T> Balance<T> {
    /// A balance over `n` loops (at least one), and each loop's inbox.
    pub(crate) fn new(n: usize) -> (Arc<Balance<T>>, Vec<Inbox<T>>) {
        let (loops, inboxes) = (0..n.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                (
                    Slot {
                        load: AtomicUsize::new(0),
                        inbox: tx,
                    },
                    rx,
                )
            })
            .unzip();
        (Arc::new(Balance { loops }), inboxes)
    }

    /// Where a connection accepted on loop `me` is relayed, counted there.
    pub(crate) fn place(self: &Arc<Self>, me: usize) -> Load<T> {
        let mine = self
            .loops
            .get(me)
            .map_or(0, |s| s.load.load(Ordering::Relaxed));
        let (least, at) = self
            .loops
            .iter()
            .enumerate()
            .map(|(i, s)| (s.load.load(Ordering::Relaxed), i))
            .min()
            .unwrap_or((0, me));
        let at = if mine >= least + SLACK { at } else { me };
        if let Some(s) = self.loops.get(at) {
            s.load.fetch_add(1, Ordering::Relaxed);
        }
        Load {
            balance: self.clone(),
            at,
        }
    }

    /// Runs `item` where `load` says: returns it when that is loop `me`
    /// (or when that loop has ended and cannot take it).
    pub(crate) fn hand(&self, me: usize, item: T, load: Load<T>) -> Option<(T, Load<T>)> {
        if load.at == me {
            return Some((item, load));
        }
        match self.loops.get(load.at) {
            Some(s) => s.inbox.send((item, load)).err().map(|e| e.0),
            None => Some((item, load)),
        }
    }

    /// Connections each loop relays now.
    #[cfg(test)]
    fn loads(&self) -> Vec<usize> {
        self.loops
            .iter()
            .map(|s| s.load.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
impl<T> Load<T> {
    fn at(&self) -> usize {
        self.at
    }
}

/// A listening socket (TCP or Unix) that accepts plain non-blocking
/// sockets, registered with the current runtime only for its readiness.
pub(crate) struct RawListener<L: AsRawFd> {
    fd: AsyncFd<L>,
}

impl<L: AsRawFd> RawListener<L> {
    /// Takes a non-blocking listener onto the current runtime.
    pub(crate) fn new(l: L) -> io::Result<RawListener<L>>
    where
        L: Owner,
    {
        // SAFETY: an `Owner` owns its descriptor, which stays open and the
        // same until the AsyncFd (which owns the listener) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) }?;
        Ok(RawListener { fd })
    }

    /// The next connection: a non-blocking, close-on-exec socket and the
    /// peer's address as the kernel gave it.
    pub(crate) async fn accept(&self) -> io::Result<(OwnedFd, socket2::SockAddr)> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|l| accept4(l.get_ref().as_raw_fd())) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// A listener type that owns its descriptor.
pub(crate) trait Owner: AsRawFd {}
impl Owner for std::net::TcpListener {}
impl Owner for std::os::unix::net::UnixListener {}

fn accept4(fd: RawFd) -> io::Result<(OwnedFd, socket2::SockAddr)> {
    // SAFETY: accept4 writes at most `len` bytes of address into the
    // storage socket2 hands us, and returns a new descriptor we own.
    unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let s = libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if s < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(OwnedFd::from_raw_fd(s))
            }
        })
    }
}

/// The peer of an accepted TCP socket as an address (IPv4-mapped peers
/// unmapped later, by whoever shows them).
pub(crate) fn tcp_peer(a: &socket2::SockAddr) -> io::Result<SocketAddr> {
    a.as_socket()
        .ok_or_else(|| io::Error::other("the kernel gave a non-IP peer address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_keeps_its_connections_until_it_has_slack_more() {
        let (b, _inboxes) = Balance::<()>::new(2);
        let mut held = Vec::new();
        // Everything accepted on loop 0: it keeps SLACK, then they go to 1.
        for _ in 0..SLACK {
            let l = b.place(0);
            assert_eq!(l.at(), 0);
            held.push(l);
        }
        let l = b.place(0);
        assert_eq!(l.at(), 1);
        held.push(l);
        assert_eq!(b.loads(), vec![SLACK, 1]);
        // 100 more, all accepted on loop 0: the counts stay within SLACK.
        for _ in 0..100 {
            held.push(b.place(0));
            let loads = b.loads();
            assert!(loads[0].abs_diff(loads[1]) <= SLACK, "{loads:?}");
        }
        // Ending them empties the counts.
        held.clear();
        assert_eq!(b.loads(), vec![0, 0]);
    }

    #[test]
    fn one_loop_keeps_everything() {
        let (b, _inboxes) = Balance::<()>::new(1);
        let held: Vec<_> = (0..10).map(|_| b.place(0)).collect();
        assert!(held.iter().all(|l| l.at() == 0));
        assert_eq!(b.loads(), vec![10]);
    }

    #[test]
    fn a_handed_connection_arrives_in_the_other_inbox() {
        let (b, mut inboxes) = Balance::<u32>::new(2);
        let keep: Vec<_> = (0..SLACK).map(|_| b.place(0)).collect();
        let load = b.place(0);
        assert!(b.hand(0, 7, load).is_none());
        let (item, load) = inboxes[1].try_recv().expect("handed over");
        assert_eq!((item, load.at()), (7, 1));
        drop(load);
        // A loop that ended gives the connection back to the caller.
        drop(inboxes);
        let load = b.place(0);
        assert_eq!(load.at(), 1);
        assert!(b.hand(0, 8, load).is_some());
        drop(keep);
    }
}
