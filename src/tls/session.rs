//! Sessions: blocking and async handshakes with deadlines, the [`Stream`]
//! every command reads and writes, its error wording, and the split into a
//! reader and a writer that share one rustls connection.

use super::*;

/// The rustls error inside an I/O error from a handshake, if any.
pub(crate) fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// Maps a handshake I/O error to a [`TlsError`].
pub fn handshake_error(peer: &str, e: &io::Error) -> TlsError {
    handshake_error_naming(peer, e, TrustFlags::CLIENT.cert)
}

/// As [`handshake_error`], a refused certificate's hint naming `cert_flags`.
pub(crate) fn handshake_error_naming(peer: &str, e: &io::Error, cert_flags: &str) -> TlsError {
    let not_tls = matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    ) || rustls_error(e).is_some_and(|r| {
        matches!(
            r,
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }
        )
    });
    if not_tls {
        return TlsError::PeerNotTls(peer.to_string());
    }
    let reason = match rustls_error(e) {
        Some(rustls::Error::AlertReceived(a)) => {
            let a = format!("{a:?}");
            if a.contains("Certificate") {
                format!("the server refused our certificate or wants one: {a}; see {cert_flags}")
            } else {
                format!("the peer sent the alert {a}")
            }
        }
        Some(r) => r.to_string(),
        None => describe(e),
    };
    TlsError::Handshake {
        peer: peer.to_string(),
        reason,
    }
}

/// A blocking TCP stream, plain or under TLS.
pub enum Stream {
    /// No encryption.
    Plain(TcpStream),
    /// TLS, this side the client.
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// TLS, this side the server.
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Client(s) => &s.sock,
            Stream::Server(s) => &s.sock,
        }
    }

    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    /// The negotiated protocol version and cipher suite, if TLS.
    pub fn cipher(&self) -> Option<String> {
        match self {
            Stream::Plain(_) => None,
            Stream::Client(s) => Some(describe_cipher(&s.conn)),
            Stream::Server(s) => Some(describe_cipher(&s.conn)),
        }
    }

    /// Sends close_notify (TLS) and shuts the write side down.
    pub fn finish(&mut self) {
        match self {
            Stream::Plain(_) => {}
            Stream::Client(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
            Stream::Server(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Write);
    }
}

/// Treats a peer that closes without close_notify like a plain EOF: the
/// protocols on top carry their own lengths and hashes.
pub(crate) fn eof_ok(r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(after_handshake(e)),
        r => r,
    }
}

/// Puts the alerts a server sends after a TLS 1.3 handshake into words: a
/// missing or refused client certificate only shows up at the first read.
pub(crate) fn after_handshake(e: io::Error) -> io::Error {
    match cert_refusal(&e, TrustFlags::CLIENT.cert) {
        Some(why) => io::Error::other(why),
        None => e,
    }
}

/// A server's refusal of our client certificate (or of its absence) in
/// words, the hint naming `cert_flags`; `None` for any other error.
pub(crate) fn cert_refusal(e: &io::Error, cert_flags: &str) -> Option<String> {
    use rustls::AlertDescription as A;
    match rustls_error(e) {
        Some(rustls::Error::AlertReceived(A::CertificateRequired)) => Some(format!(
            "the server requires a client certificate; add {cert_flags}"
        )),
        Some(rustls::Error::AlertReceived(
            A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::AccessDenied,
        )) => Some("the server refused our client certificate".into()),
        _ => None,
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Client(s) => eof_ok(s.read(buf)),
            Stream::Server(s) => eof_ok(s.read(buf)),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Client(s) => s.write(buf).map_err(after_handshake),
            Stream::Server(s) => s.write(buf).map_err(after_handshake),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Client(s) => s.flush().map_err(after_handshake),
            Stream::Server(s) => s.flush().map_err(after_handshake),
        }
    }
}

/// Runs `f` with both socket timeouts set to `deadline`, then clears them.
pub(crate) fn with_deadline<T>(
    sock: &TcpStream,
    deadline: Duration,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let _ = sock.set_read_timeout(Some(deadline));
    let _ = sock.set_write_timeout(Some(deadline));
    let r = f();
    let _ = sock.set_read_timeout(None);
    let _ = sock.set_write_timeout(None);
    r
}

/// Drives a handshake to the end with both socket timeouts at `deadline`.
pub(crate) fn handshake<C, S>(
    conn: &mut C,
    sock: &mut TcpStream,
    deadline: Duration,
) -> io::Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<S>>,
    S: rustls::SideData,
{
    // The deadline covers the whole handshake, so a peer that dribbles a
    // byte at a time cannot stretch it.
    let end = std::time::Instant::now() + deadline;
    let mut r = Ok(());
    while conn.is_handshaking() {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            r = Err(io::Error::from(io::ErrorKind::TimedOut));
            break;
        }
        let _ = sock.set_read_timeout(Some(left));
        let _ = sock.set_write_timeout(Some(left));
        if let Err(e) = conn.complete_io(sock) {
            r = Err(e);
            break;
        }
    }
    let _ = sock.set_read_timeout(None);
    let _ = sock.set_write_timeout(None);
    r
}

/// Whether an I/O error is a socket timeout.
pub(crate) fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Client handshake for tokio code, within `deadline`.
///
/// # Errors
/// As [`connect`].
pub async fn connect_async(
    tls: &ClientTls,
    sock: tokio::net::TcpStream,
    deadline: Duration,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, TlsError> {
    let c = tokio_rustls::TlsConnector::from(tls.config());
    match tokio::time::timeout(deadline, c.connect(tls.server_name(), sock)).await {
        Err(_) => Err(TlsError::Timeout(tls.key.clone(), deadline.as_secs())),
        Ok(Err(e)) => Err(tls.explain(&e)),
        Ok(Ok(s)) => Ok(s),
    }
}

/// Server handshake for tokio code, within `deadline`, with the same
/// plaintext check as [`accept`].
///
/// # Errors
/// As [`accept`].
pub async fn accept_async(
    tls: &ServerTls,
    sock: tokio::net::TcpStream,
    peer: SocketAddr,
    deadline: Duration,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, TlsError> {
    let who = crate::net::show_addr(peer);
    let fut = async {
        let mut first = [0u8; 3];
        let n = sock
            .peek(&mut first)
            .await
            .map_err(|e| handshake_error(&who, &e))?;
        if n > 0 && !looks_like_tls(&first[..n]) {
            let _ = sock.try_write(&PLAINTEXT_ALERT);
            return Err(TlsError::PlainClient(who.clone()));
        }
        tokio_rustls::TlsAcceptor::from(tls.config.clone())
            .accept(sock)
            .await
            .map_err(|e| server_handshake_error(&who, &e))
    };
    match tokio::time::timeout(deadline, fut).await {
        Err(_) => Err(TlsError::Timeout(who, deadline.as_secs())),
        Ok(r) => r,
    }
}

/// A failed server-side handshake in words.
pub(crate) fn server_handshake_error(who: &str, e: &io::Error) -> TlsError {
    let reason = match rustls_error(e) {
        Some(rustls::Error::AlertReceived(a)) => {
            format!("the client ended it with the alert {a:?}; it may not trust this certificate")
        }
        Some(rustls::Error::NoCertificatesPresented) => {
            "the client presented no certificate, and --tls-ca requires one".into()
        }
        Some(r) => r.to_string(),
        None => describe(e),
    };
    TlsError::Handshake {
        peer: who.to_string(),
        reason,
    }
}

/// The negotiated version and cipher suite of a rustls connection.
pub fn describe_cipher<S: rustls::SideData>(c: &rustls::ConnectionCommon<S>) -> String {
    format!(
        "{} {}",
        c.protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        c.negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default()
    )
}

/// Client handshake over a connected socket, within `deadline`.
///
/// # Errors
/// An untrusted certificate, a peer that does not speak TLS, a timeout.
pub fn connect(tls: &ClientTls, sock: TcpStream, deadline: Duration) -> Result<Stream, TlsError> {
    let conn = ClientConnection::new(tls.config(), tls.server_name())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut s = StreamOwned::new(conn, sock);
    let r = handshake(&mut s.conn, &mut s.sock, deadline);
    match r {
        Ok(()) => Ok(Stream::Client(Box::new(s))),
        Err(e) if timed_out(&e) => Err(TlsError::Timeout(tls.key.clone(), deadline.as_secs())),
        Err(e) => Err(tls.explain(&e)),
    }
}

/// Server handshake over an accepted socket, within `deadline`. A peer
/// whose first byte is not a TLS handshake record gets a TLS alert (which
/// a plain sockit client reads as "this server speaks TLS") and an error.
///
/// # Errors
/// A plaintext peer, a failed handshake, a timeout.
pub fn accept(
    tls: &ServerTls,
    sock: TcpStream,
    peer: SocketAddr,
    deadline: Duration,
) -> Result<Stream, TlsError> {
    let who = crate::net::show_addr(peer);
    let mut first = [0u8; 3];
    match with_deadline(&sock, deadline, || sock.peek(&mut first)) {
        Ok(n) if n > 0 && !looks_like_tls(&first[..n]) => {
            let mut s = &sock;
            let _ = s.write_all(&PLAINTEXT_ALERT);
            let _ = sock.shutdown(std::net::Shutdown::Write);
            return Err(TlsError::PlainClient(who));
        }
        Ok(_) => {}
        Err(e) if timed_out(&e) => return Err(TlsError::Timeout(who, deadline.as_secs())),
        Err(e) => return Err(handshake_error(&who, &e)),
    }
    let conn =
        ServerConnection::new(tls.config.clone()).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut s = StreamOwned::new(conn, sock);
    let r = handshake(&mut s.conn, &mut s.sock, deadline);
    match r {
        Ok(()) => Ok(Stream::Server(Box::new(s))),
        Err(e) if timed_out(&e) => Err(TlsError::Timeout(who, deadline.as_secs())),
        Err(e) => Err(server_handshake_error(&who, &e)),
    }
}
