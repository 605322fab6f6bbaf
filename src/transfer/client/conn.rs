//! One connection to a `sockit serve`: connect with timeouts, the magic,
//! framed requests and responses, and what a foreign or silent peer gets.

use super::*;

/// Connects (plain or TLS) with `timeout` on every read and write, and
/// names the server now: once it has closed, the socket forgets its peer.
pub(crate) fn open_stream(
    host: &str,
    port: u16,
    copts: &DialOptions,
    tls: Option<&ClientTlsOptions>,
    timeout: Duration,
) -> Result<(Stream, String), TransferError> {
    let tcp = crate::dial::connect(host, port, copts)?;
    let server = tcp
        .peer_addr()
        .map(net::show_addr)
        .unwrap_or_else(|_| format!("{host}:{port}"));
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    Ok((client_stream(host, port, tcp, tls)?, server))
}

/// Whether a socket error is a read or write timeout running out.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

pub(crate) fn io_err(what: &str, e: &io::Error) -> TransferError {
    TransferError::Io {
        what: what.to_string(),
        reason: describe(e),
    }
}

/// A native-protocol connection.
pub(crate) struct Conn {
    /// The socket, plain or TLS.
    pub(crate) s: Stream,
    /// Bytes read but not used yet.
    pub(crate) buf: BytesMut,
    /// Response frames.
    pub(crate) codec: FrameCodec,
    /// Server address, for messages.
    pub(crate) server: String,
    /// Whether a valid response has arrived yet: until then, bytes that do
    /// not parse mean the peer is not a sockit server at all.
    pub(crate) answered: bool,
    /// The read timeout, for messages.
    pub(crate) timeout: Duration,
}

impl Conn {
    pub(crate) fn open(
        host: &str,
        port: u16,
        copts: &DialOptions,
        tls: Option<&ClientTlsOptions>,
        timeout: Duration,
    ) -> Result<Conn, TransferError> {
        let (mut s, server) = open_stream(host, port, copts, tls, timeout)?;
        s.write_all(MAGIC)
            .and_then(|()| s.flush())
            .map_err(|e| io_err("talk to the server", &e))?;
        Ok(Conn {
            server,
            s,
            buf: BytesMut::with_capacity(64 * 1024),
            codec: FrameCodec::new(MAX_RESPONSE),
            answered: false,
            timeout,
        })
    }

    pub(crate) fn request(&mut self, r: &Request) -> Result<(), TransferError> {
        let mut out = BytesMut::new();
        FrameCodec::new(usize::MAX)
            .encode(&r.encode()[..], &mut out)
            .map_err(|e| TransferError::Protocol(e.to_string()))?;
        match self.s.write_all(&out).and_then(|()| self.s.flush()) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.send_failed(&e)),
        }
    }

    /// A request that could not be sent: a TLS server may already have
    /// answered our plain greeting with an alert and closed, so look at what
    /// it said before blaming the connection.
    pub(crate) fn send_failed(&mut self, e: &io::Error) -> TransferError {
        if !self.s.is_tls() {
            let _ = self
                .s
                .tcp()
                .set_read_timeout(Some(std::time::Duration::from_secs(1)));
            let mut first = [0u8; 16];
            if let Ok(n) = self.s.read(&mut first) {
                self.buf.extend_from_slice(&first[..n]);
            }
            if crate::tls::looks_like_tls_reply(&self.buf) {
                return TlsError::ServerSpeaksTls(self.server.clone()).into();
            }
        }
        io_err("send a request", e)
    }

    pub(crate) fn fill(&mut self) -> Result<usize, TransferError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.s.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    return Err(TransferError::TimedOut {
                        server: self.server.clone(),
                        secs: self.timeout.as_secs_f64(),
                        answered: self.answered,
                    })
                }
                Err(e) => return Err(io_err("read from the server", &e)),
            }
        }
    }

    /// The error for bytes that are not the protocol: before any valid
    /// answer, the peer is something else (an HTTP server, `nc -l`).
    pub(crate) fn garbled(&self, detail: String) -> TransferError {
        if self.answered {
            TransferError::Protocol(detail)
        } else {
            TransferError::NotSockit {
                server: self.server.clone(),
            }
        }
    }

    pub(crate) fn response(&mut self) -> Result<Response, TransferError> {
        loop {
            if !self.s.is_tls() && crate::tls::looks_like_tls_reply(&self.buf) {
                return Err(TlsError::ServerSpeaksTls(self.server.clone()).into());
            }
            match self.codec.decode(&mut self.buf) {
                Ok(Some(f)) => {
                    let r = Response::decode(&f).map_err(|e| self.garbled(e.to_string()))?;
                    self.answered = true;
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => return Err(self.garbled(e.to_string())),
            }
            if self.fill()? == 0 {
                if !self.answered && !self.buf.is_empty() {
                    return Err(self.garbled(String::new()));
                }
                return Err(TransferError::Protocol(format!(
                    "{} closed the connection without answering",
                    self.server
                )));
            }
        }
    }
}

/// Turns an error response into an error.
pub(crate) fn refused(resp: Response, server: &str) -> TransferError {
    match resp {
        Response::Error { message, code } => TransferError::Refused {
            server: server.to_string(),
            message,
            code,
        },
        other => TransferError::Protocol(format!("unexpected reply {other:?}")),
    }
}

/// Lists a remote directory.
pub(crate) fn list(
    conn: &mut Conn,
    path: &str,
) -> Result<Vec<(EntryKind, u64, String)>, TransferError> {
    conn.request(&Request::List {
        path: path.to_string(),
    })?;
    let mut out = Vec::new();
    loop {
        match conn.response()? {
            Response::Entry { kind, size, name } => {
                if out.len() >= 1_000_000 {
                    return Err(TransferError::Protocol(
                        "a listing of over a million entries".into(),
                    ));
                }
                out.push((kind, size, name))
            }
            Response::End => return Ok(out),
            other => return Err(refused(other, &conn.server)),
        }
    }
}
