//! Unix stream sockets: addresses (`PATH` or `@name` for the abstract
//! namespace), binding with the stale-socket rule, and connecting.
//!
//! The rule for a path that already exists when binding: a socket file
//! that nothing answers on is stale and is replaced; one that answers is
//! in use; anything that is not a socket (a regular file, a folder) is
//! refused and left alone. sockit never deletes a file that is not a
//! socket, and on shutdown it removes only the socket file it created.
//!
//! Peers are named by their credentials (`SO_PEERCRED`): `pid N (uid U)`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::describe;

/// Where a Unix socket lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixAddr {
    /// A file in the file system.
    Path(PathBuf),
    /// `@name`: Linux's abstract namespace, no file at all.
    Abstract(Vec<u8>),
}

/// Errors from binding or connecting Unix sockets.
#[derive(Debug, thiserror::Error)]
pub enum UnixError {
    /// The text is not a usable socket address.
    #[error("{0}")]
    BadAddress(String),
    /// The path exists and is not a socket.
    #[error("{0} exists and is not a socket; sockit leaves it alone (remove it yourself or pick another path)")]
    NotASocket(String),
    /// Another process answers on the socket.
    #[error("{0} is in use: another process is listening on it")]
    InUse(String),
    /// Binding failed for another reason.
    #[error("could not listen on {addr} ({reason})")]
    Bind {
        /// The address, as shown.
        addr: String,
        /// Why.
        reason: String,
    },
}

impl crate::error::Failure for UnixError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            UnixError::BadAddress(_) => crate::error::Kind::Usage,
            UnixError::NotASocket(_) | UnixError::InUse(_) | UnixError::Bind { .. } => {
                crate::error::Kind::Runtime
            }
        }
    }
}

/// Longest path `sun_path` holds (108 bytes, with the terminating NUL).
const MAX_PATH: usize = 107;

impl UnixAddr {
    /// Parses `PATH` or `@name`.
    ///
    /// # Errors
    /// An empty or overlong address, or one holding a NUL byte.
    pub fn parse(s: &str) -> Result<UnixAddr, UnixError> {
        if s.contains('\0') {
            return Err(UnixError::BadAddress(format!(
                "{s:?} holds a NUL byte; a Unix socket path cannot"
            )));
        }
        if let Some(name) = s.strip_prefix('@') {
            if name.is_empty() || name.len() > MAX_PATH {
                return Err(UnixError::BadAddress(format!(
                    "{s:?}: an abstract name needs 1 to {MAX_PATH} bytes after @"
                )));
            }
            return Ok(UnixAddr::Abstract(name.as_bytes().to_vec()));
        }
        if s.is_empty() {
            return Err(UnixError::BadAddress(
                "a Unix socket needs a path (or @name for the abstract namespace)".into(),
            ));
        }
        if s.len() > MAX_PATH {
            return Err(UnixError::BadAddress(format!(
                "{s:?} is {} bytes long; a Unix socket path holds at most {MAX_PATH} (use a shorter path or @name)",
                s.len()
            )));
        }
        Ok(UnixAddr::Path(PathBuf::from(s)))
    }

    /// The standard library's form of this address.
    fn std_addr(&self) -> std::io::Result<std::os::unix::net::SocketAddr> {
        match self {
            UnixAddr::Path(p) => std::os::unix::net::SocketAddr::from_pathname(p),
            UnixAddr::Abstract(n) => std::os::unix::net::SocketAddr::from_abstract_name(n),
        }
    }
}

impl std::fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnixAddr::Path(p) => write!(f, "unix:{}", p.display()),
            UnixAddr::Abstract(n) => write!(f, "unix:@{}", String::from_utf8_lossy(n)),
        }
    }
}

/// A bound Unix listener that removes its socket file when dropped (only
/// if the file is still the one it created).
pub struct BoundUnix {
    /// The listener, blocking; callers switch it to non-blocking as needed.
    pub listener: std::os::unix::net::UnixListener,
    /// The address, for messages.
    pub addr: UnixAddr,
    /// Device and inode of the socket file we made.
    made: Option<(u64, u64)>,
}

impl Drop for BoundUnix {
    fn drop(&mut self) {
        if let (UnixAddr::Path(p), Some(id)) = (&self.addr, self.made) {
            if let Ok(m) = std::fs::symlink_metadata(p) {
                if m.file_type().is_socket() && (m.dev(), m.ino()) == id {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }
}

/// Binds a listener on `addr`, replacing a stale socket file and refusing
/// anything else that is in the way.
///
/// # Errors
/// See [`UnixError`].
pub fn bind(addr: &UnixAddr) -> Result<BoundUnix, UnixError> {
    let shown = addr.to_string();
    let bind_err = |e: std::io::Error| UnixError::Bind {
        addr: shown.clone(),
        reason: describe(&e),
    };
    let std_addr = addr.std_addr().map_err(bind_err)?;
    let listener = match std::os::unix::net::UnixListener::bind_addr(&std_addr) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let UnixAddr::Path(path) = addr else {
                return Err(UnixError::InUse(shown));
            };
            clear_stale(path, &shown)?;
            std::os::unix::net::UnixListener::bind_addr(&std_addr).map_err(bind_err)?
        }
        Err(e) => return Err(bind_err(e)),
    };
    let made = match addr {
        UnixAddr::Path(p) => std::fs::symlink_metadata(p)
            .ok()
            .map(|m| (m.dev(), m.ino())),
        UnixAddr::Abstract(_) => None,
    };
    Ok(BoundUnix {
        listener,
        addr: addr.clone(),
        made,
    })
}

/// Removes `path` if it is a socket that nothing answers on.
fn clear_stale(path: &Path, shown: &str) -> Result<(), UnixError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| UnixError::Bind {
        addr: shown.to_string(),
        reason: describe(&e),
    })?;
    if !meta.file_type().is_socket() {
        return Err(UnixError::NotASocket(path.display().to_string()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(UnixError::InUse(shown.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::info!("{shown}: replacing a stale socket that nothing answers on");
            std::fs::remove_file(path).map_err(|e| UnixError::Bind {
                addr: shown.to_string(),
                reason: format!("the stale socket could not be removed: {}", describe(&e)),
            })
        }
        Err(e) => Err(UnixError::Bind {
            addr: shown.to_string(),
            reason: format!("the socket there could not be checked: {}", describe(&e)),
        }),
    }
}

/// Connects to `addr` within `timeout`.
///
/// # Errors
/// The socket's error in words, or a timeout.
pub async fn connect(addr: &UnixAddr, timeout: Duration) -> Result<tokio::net::UnixStream, String> {
    let std_addr = addr.std_addr().map_err(|e| describe(&e))?;
    let sa = tokio::net::unix::SocketAddr::from(std_addr);
    match tokio::time::timeout(timeout, tokio::net::UnixStream::connect_addr(&sa)).await {
        Err(_) => Err(format!("timed out after {} s", timeout.as_secs_f64())),
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "refused the connection (nothing listens on it)".into()
            }
            std::io::ErrorKind::NotFound => "does not exist".into(),
            std::io::ErrorKind::WouldBlock => "is not accepting (its backlog is full)".into(),
            _ => format!("failed ({})", describe(&e)),
        }),
    }
}

/// Connects to `addr`, blocking, for the stdin/stdout commands.
///
/// # Errors
/// As [`connect`].
pub fn connect_blocking(
    addr: &UnixAddr,
    timeout: Duration,
) -> Result<std::os::unix::net::UnixStream, String> {
    // A blocking Unix connect waits on SO_SNDTIMEO when the backlog is full.
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
        .map_err(|e| describe(&e))?;
    let _ = sock.set_write_timeout(Some(timeout));
    let sa = match addr {
        UnixAddr::Path(p) => socket2::SockAddr::unix(p),
        UnixAddr::Abstract(n) => {
            let mut b = vec![0u8];
            b.extend_from_slice(n);
            socket2::SockAddr::unix(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&b),
            )
        }
    }
    .map_err(|e| describe(&e))?;
    match sock.connect(&sa) {
        Ok(()) => {
            let _ = sock.set_write_timeout(None);
            Ok(sock.into())
        }
        Err(e) => Err(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "refused the connection (nothing listens on it)".into()
            }
            std::io::ErrorKind::NotFound => "does not exist".into(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!(
                    "timed out after {} s (its backlog is full)",
                    timeout.as_secs_f64()
                )
            }
            _ => format!("failed ({})", describe(&e)),
        }),
    }
}

/// The peer's process and user id, from `SO_PEERCRED`.
pub fn peer_cred(s: &impl std::os::fd::AsRawFd) -> Option<(Option<i32>, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(((cred.pid > 0).then_some(cred.pid), cred.uid))
}

/// A Unix peer as messages show it: `pid N (uid U)`.
pub fn cred_name(cred: Option<(Option<i32>, u32)>) -> String {
    match cred {
        Some((Some(pid), uid)) => format!("pid {pid} (uid {uid})"),
        Some((None, uid)) => format!("a unix peer (uid {uid})"),
        None => "a unix peer".into(),
    }
}

/// Who is on the other end of a Unix connection (blocking or tokio).
pub fn peer_name(s: &impl std::os::fd::AsRawFd) -> String {
    cred_name(peer_cred(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(
            UnixAddr::parse("/run/x.sock").unwrap(),
            UnixAddr::Path("/run/x.sock".into())
        );
        assert_eq!(
            UnixAddr::parse("@sockit").unwrap(),
            UnixAddr::Abstract(b"sockit".to_vec())
        );
        assert_eq!(UnixAddr::parse("@x").unwrap().to_string(), "unix:@x");
        for bad in ["", "@", "a\0b"] {
            assert!(UnixAddr::parse(bad).is_err(), "{bad:?}");
        }
        assert!(UnixAddr::parse(&"x".repeat(200)).is_err());
    }
}
