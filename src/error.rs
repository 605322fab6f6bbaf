//! What a failure means to the binary, said by the error itself.
//!
//! Every error type the library returns implements [`Failure`], whose
//! [`Failure::kind`] is the one question the binary asks of an error to
//! pick the exit code: a usage error (2), a runtime failure (1), a closed
//! stdout (a quiet 0, when stdout really is closed) or Ctrl-C (130). An
//! error that wraps another one asks it, so the answer comes from where
//! the failure happened; a new error type is a compile error in the binary
//! until it says what its failures are.

use std::io;

/// The exit status of a command that Ctrl-C cut short (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// What kind of failure an error is, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command line asked for something that cannot be (exit 2).
    Usage,
    /// Something failed while running: refused, timed out, mismatched (exit 1).
    Runtime,
    /// Writing to a reader that went away (a closed pipe): quiet, exit 0
    /// when it was stdout that closed (exit 1 otherwise).
    OutputClosed,
    /// Ctrl-C cut the command short (exit 130).
    Interrupted,
}

impl Kind {
    /// The exit code for this kind of failure.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Usage => 2,
            Kind::Runtime => 1,
            Kind::OutputClosed => 0,
            Kind::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

/// An error that says what kind of failure it is.
pub trait Failure: std::error::Error + Send + Sync + 'static {
    /// What this failure means for the exit code.
    fn kind(&self) -> Kind;
}

/// An I/O error: a broken pipe may be a closed output (the binary checks
/// that it was stdout), anything else is a runtime failure.
pub fn io_kind(e: &io::Error) -> Kind {
    match e.kind() {
        io::ErrorKind::BrokenPipe => Kind::OutputClosed,
        _ => Kind::Runtime,
    }
}

impl Failure for io::Error {
    fn kind(&self) -> Kind {
        io_kind(self)
    }
}
