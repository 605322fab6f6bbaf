//! The ends a pump joins, each saying what it is: a plain TCP or Unix
//! socket (which can splice), TLS either way, a child process, or blocking
//! I/O on threads. Reading and writing dispatch to the one inside.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::{child, splice, threaded};

/// One end of a relay.
pub enum Endpoint {
    /// A plain TCP socket.
    Tcp(TcpStream),
    /// A plain Unix stream socket.
    Unix(UnixStream),
    /// TLS we accepted (the listener's `--tls`).
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS we started (a `tls:` target).
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A child process: its stdout is read, its stdin written.
    Child(Box<child::ChildIo>),
    /// Blocking I/O on threads: stdio, or a reader and a writer.
    Threaded(Box<threaded::Threaded>),
}

impl Endpoint {
    pub(super) fn sock(&self) -> Option<splice::Sock<'_>> {
        match self {
            Endpoint::Tcp(s) => Some(splice::Sock::Tcp(s)),
            Endpoint::Unix(s) => Some(splice::Sock::Unix(s)),
            _ => None,
        }
    }

    /// Arms a reset: the socket underneath sends RST when closed.
    pub fn reset(&self) {
        match self {
            Endpoint::Tcp(s) => crate::net::arm_reset(s),
            Endpoint::Unix(_) | Endpoint::Child(_) | Endpoint::Threaded(_) => {}
            Endpoint::TlsServer(s) => crate::net::arm_reset(s.get_ref().0),
            Endpoint::TlsClient(s) => crate::net::arm_reset(s.get_ref().0),
        }
    }

    /// The socket underneath, for watching it for a reset.
    pub(super) fn raw_socket(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Endpoint::Tcp(s) => Some(s.as_raw_fd()),
            Endpoint::Unix(s) => Some(s.as_raw_fd()),
            Endpoint::TlsServer(s) => Some(s.get_ref().0.as_raw_fd()),
            Endpoint::TlsClient(s) => Some(s.get_ref().0.as_raw_fd()),
            Endpoint::Child(_) | Endpoint::Threaded(_) => None,
        }
    }

    /// The child behind this endpoint, if it is one.
    pub fn child(&mut self) -> Option<&mut child::ChildIo> {
        match self {
            Endpoint::Child(c) => Some(c),
            _ => None,
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Endpoint::Tcp($s) => $e,
            Endpoint::Unix($s) => $e,
            Endpoint::TlsServer($s) => $e,
            Endpoint::TlsClient($s) => $e,
            Endpoint::Child($s) => $e,
            Endpoint::Threaded($s) => $e,
        }
    };
}

impl AsyncRead for Endpoint {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Endpoint {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
