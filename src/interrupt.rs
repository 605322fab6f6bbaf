//! Ctrl-C for the blocking commands: a SIGINT handler that only sets a
//! flag, installed without `SA_RESTART` so a blocked `accept`, `recv` or
//! `read` returns `EINTR` and the command can stop cleanly (flush, keep a
//! `.part`, print a summary) instead of dying mid-write.
//!
//! The rule every command follows (README, "What every command shares"):
//! a server, for which Ctrl-C is the way to stop, exits 0; any other command
//! was cut short and exits 130 ([`crate::error::Kind::Interrupted`]), as a
//! shell expects after SIGINT.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by the SIGINT handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handler: from now on Ctrl-C sets [`requested`] and
/// interrupts blocking calls.
pub fn catch() {
    // SAFETY: installs an async-signal-safe handler that only stores an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}

/// Whether Ctrl-C was pressed since [`catch`].
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Keeps SIGINT away from the calling thread, so it reaches the thread
/// that waits in `accept` and can act on it. Call it first in helper threads.
pub fn shield_thread() {
    // SAFETY: changes only this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Sleeps for `d`, or less if Ctrl-C comes first. Returns whether it did.
pub fn sleep(d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if requested() {
            return true;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}
