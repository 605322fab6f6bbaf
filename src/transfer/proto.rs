//! The file-transfer wire protocol, free of I/O (documented in
//! `docs/PROTOCOL.md`). Messages travel in [`crate::frame`] frames; each
//! payload starts with a one-byte type. File bytes follow a `File` header
//! unframed (so the server can `sendfile`), and a `Done` frame with the
//! BLAKE3 of the whole file closes every download.

use bytes::{Buf, BufMut, BytesMut};

/// First bytes of a native connection. The leading NUL cannot start a file
/// name, so the first byte alone tells native from seed-style raw requests.
pub const MAGIC: &[u8; 8] = b"\0SOCKIT\x01";

/// Largest request frame a server accepts.
pub const MAX_REQUEST: usize = 8 * 1024;

/// Largest response frame a client accepts.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// Longest path in a request.
pub const MAX_PATH: usize = 4096;

/// Protocol errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// The payload is empty or its type byte is unknown.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// The payload ended early.
    #[error("a {0} message is cut short")]
    Short(&'static str),
    /// A string is not UTF-8.
    #[error("a {0} message holds a name that is not UTF-8")]
    NotUtf8(&'static str),
    /// Bytes left over after a message.
    #[error("a {0} message has trailing bytes")]
    Trailing(&'static str),
    /// A path over [`MAX_PATH`].
    #[error("a path of {0} bytes is over the {MAX_PATH}-byte limit")]
    PathTooLong(usize),
}

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Size and BLAKE3 of a file.
    Stat {
        /// Path relative to the served directory.
        path: String,
    },
    /// A file's bytes from `offset` on, then its hash.
    Get {
        /// Path relative to the served directory.
        path: String,
        /// Where to start (the size of a partial download).
        offset: u64,
    },
    /// A directory's entries.
    List {
        /// Path relative to the served directory ("" for the root).
        path: String,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No such file or directory.
    NotFound = 1,
    /// Outside the served directory, hidden, or otherwise not allowed.
    Forbidden = 2,
    /// A directory, device, FIFO or socket where a file was asked for.
    NotRegular = 3,
    /// The server is at `--max-conns`.
    TooManyConnections = 4,
    /// A malformed request.
    BadRequest = 5,
    /// The server failed to read the file.
    Internal = 6,
}

impl ErrorCode {
    fn from_u8(b: u8) -> ErrorCode {
        match b {
            1 => ErrorCode::NotFound,
            2 => ErrorCode::Forbidden,
            3 => ErrorCode::NotRegular,
            4 => ErrorCode::TooManyConnections,
            5 => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        }
    }
}

/// Kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// A server's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Reply to `Stat`.
    Stat {
        /// File size.
        size: u64,
        /// BLAKE3 of the whole file.
        hash: [u8; 32],
    },
    /// Reply to `Get`: `size - offset` raw bytes follow, then `Done`.
    File {
        /// Whole file size.
        size: u64,
        /// First byte sent.
        offset: u64,
    },
    /// After a file's bytes: the BLAKE3 of the whole file.
    Done {
        /// BLAKE3 of the whole file.
        hash: [u8; 32],
    },
    /// One directory entry (replies to `List`, ended by `End`).
    Entry {
        /// File or directory.
        kind: EntryKind,
        /// Size in bytes (0 for directories).
        size: u64,
        /// The entry's name: one path component.
        name: String,
    },
    /// The end of a listing.
    End,
    /// A refusal.
    Error {
        /// Why.
        code: ErrorCode,
        /// A sentence for the user.
        message: String,
    },
}

const T_STAT: u8 = 0x01;
const T_GET: u8 = 0x02;
const T_LIST: u8 = 0x03;
const R_STAT: u8 = 0x81;
const R_FILE: u8 = 0x82;
const R_DONE: u8 = 0x83;
const R_ENTRY: u8 = 0x84;
const R_END: u8 = 0x85;
const R_ERROR: u8 = 0xee;

fn put_str(out: &mut BytesMut, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(u16::MAX as usize);
    out.put_u16(n as u16);
    out.put_slice(&b[..n]);
}

fn get_str(buf: &mut &[u8], what: &'static str) -> Result<String, ProtoError> {
    if buf.len() < 2 {
        return Err(ProtoError::Short(what));
    }
    let n = buf.get_u16() as usize;
    if buf.len() < n {
        return Err(ProtoError::Short(what));
    }
    let s = std::str::from_utf8(&buf[..n])
        .map_err(|_| ProtoError::NotUtf8(what))?
        .to_string();
    buf.advance(n);
    Ok(s)
}

fn get_u64(buf: &mut &[u8], what: &'static str) -> Result<u64, ProtoError> {
    if buf.len() < 8 {
        return Err(ProtoError::Short(what));
    }
    Ok(buf.get_u64())
}

fn get_hash(buf: &mut &[u8], what: &'static str) -> Result<[u8; 32], ProtoError> {
    if buf.len() < 32 {
        return Err(ProtoError::Short(what));
    }
    let mut h = [0u8; 32];
    buf.copy_to_slice(&mut h);
    Ok(h)
}

fn end(buf: &[u8], what: &'static str) -> Result<(), ProtoError> {
    if buf.is_empty() {
        Ok(())
    } else {
        Err(ProtoError::Trailing(what))
    }
}

impl Request {
    /// The payload of this request (frame it with [`crate::frame`]).
    pub fn encode(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(64);
        match self {
            Request::Stat { path } => {
                out.put_u8(T_STAT);
                put_str(&mut out, path);
            }
            Request::Get { path, offset } => {
                out.put_u8(T_GET);
                out.put_u64(*offset);
                put_str(&mut out, path);
            }
            Request::List { path } => {
                out.put_u8(T_LIST);
                put_str(&mut out, path);
            }
        }
        out
    }

    /// Parses a request payload.
    ///
    /// # Errors
    /// A [`ProtoError`] for anything malformed.
    pub fn decode(payload: &[u8]) -> Result<Request, ProtoError> {
        let mut buf = payload;
        if buf.is_empty() {
            return Err(ProtoError::Short("request"));
        }
        let t = buf.get_u8();
        let req = match t {
            T_STAT => Request::Stat {
                path: get_str(&mut buf, "stat")?,
            },
            T_GET => {
                let offset = get_u64(&mut buf, "get")?;
                Request::Get {
                    path: get_str(&mut buf, "get")?,
                    offset,
                }
            }
            T_LIST => Request::List {
                path: get_str(&mut buf, "list")?,
            },
            other => return Err(ProtoError::UnknownType(other)),
        };
        end(buf, "request")?;
        let path = match &req {
            Request::Stat { path } | Request::Get { path, .. } | Request::List { path } => path,
        };
        if path.len() > MAX_PATH {
            return Err(ProtoError::PathTooLong(path.len()));
        }
        Ok(req)
    }
}

impl Response {
    /// The payload of this response.
    pub fn encode(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(64);
        match self {
            Response::Stat { size, hash } => {
                out.put_u8(R_STAT);
                out.put_u64(*size);
                out.put_slice(hash);
            }
            Response::File { size, offset } => {
                out.put_u8(R_FILE);
                out.put_u64(*size);
                out.put_u64(*offset);
            }
            Response::Done { hash } => {
                out.put_u8(R_DONE);
                out.put_slice(hash);
            }
            Response::Entry { kind, size, name } => {
                out.put_u8(R_ENTRY);
                out.put_u8(match kind {
                    EntryKind::File => b'f',
                    EntryKind::Dir => b'd',
                });
                out.put_u64(*size);
                put_str(&mut out, name);
            }
            Response::End => out.put_u8(R_END),
            Response::Error { code, message } => {
                out.put_u8(R_ERROR);
                out.put_u8(*code as u8);
                put_str(&mut out, message);
            }
        }
        out
    }

    /// Parses a response payload.
    ///
    /// # Errors
    /// A [`ProtoError`] for anything malformed.
    pub fn decode(payload: &[u8]) -> Result<Response, ProtoError> {
        let mut buf = payload;
        if buf.is_empty() {
            return Err(ProtoError::Short("response"));
        }
        let t = buf.get_u8();
        let resp = match t {
            R_STAT => Response::Stat {
                size: get_u64(&mut buf, "stat reply")?,
                hash: get_hash(&mut buf, "stat reply")?,
            },
            R_FILE => Response::File {
                size: get_u64(&mut buf, "file header")?,
                offset: get_u64(&mut buf, "file header")?,
            },
            R_DONE => Response::Done {
                hash: get_hash(&mut buf, "done")?,
            },
            R_ENTRY => {
                if buf.is_empty() {
                    return Err(ProtoError::Short("entry"));
                }
                let kind = match buf.get_u8() {
                    b'd' => EntryKind::Dir,
                    _ => EntryKind::File,
                };
                Response::Entry {
                    kind,
                    size: get_u64(&mut buf, "entry")?,
                    name: get_str(&mut buf, "entry")?,
                }
            }
            R_END => Response::End,
            R_ERROR => {
                if buf.is_empty() {
                    return Err(ProtoError::Short("error"));
                }
                let code = ErrorCode::from_u8(buf.get_u8());
                Response::Error {
                    code,
                    message: get_str(&mut buf, "error")?,
                }
            }
            other => return Err(ProtoError::UnknownType(other)),
        };
        end(buf, "response")?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Stat {
                path: "a/b.txt".into(),
            },
            Request::Get {
                path: "接收.bin".into(),
                offset: 1 << 40,
            },
            Request::List { path: "".into() },
        ] {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn responses_round_trip() {
        for r in [
            Response::Stat {
                size: 7,
                hash: [9; 32],
            },
            Response::File {
                size: 10,
                offset: 3,
            },
            Response::Done { hash: [1; 32] },
            Response::Entry {
                kind: EntryKind::Dir,
                size: 0,
                name: "sub".into(),
            },
            Response::End,
            Response::Error {
                code: ErrorCode::Forbidden,
                message: "no".into(),
            },
        ] {
            assert_eq!(Response::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn every_truncation_and_garbage_is_an_error_not_a_panic() {
        let full = Request::Get {
            path: "dir/file".into(),
            offset: 5,
        }
        .encode();
        for i in 0..full.len() {
            assert!(Request::decode(&full[..i]).is_err(), "cut at {i}");
        }
        let mut extra = full.to_vec();
        extra.push(0);
        assert_eq!(
            Request::decode(&extra),
            Err(ProtoError::Trailing("request"))
        );
        let mut x: u32 = 7;
        for _ in 0..5000 {
            let mut v = Vec::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v.push((x % 256) as u8);
            }
            let _ = Request::decode(&v);
            let _ = Response::decode(&v);
        }
        assert!(matches!(
            Request::decode(&[0x99]),
            Err(ProtoError::UnknownType(0x99))
        ));
    }

    #[test]
    fn bad_utf8_and_long_paths_are_refused() {
        assert_eq!(
            Request::decode(&[T_LIST, 0, 1, 0xff]),
            Err(ProtoError::NotUtf8("list"))
        );
        let long = Request::List {
            path: "a".repeat(MAX_PATH + 1),
        };
        assert_eq!(
            Request::decode(&long.encode()),
            Err(ProtoError::PathTooLong(MAX_PATH + 1))
        );
    }
}
