//! TLS for every TCP command (rustls with the ring provider; no OpenSSL).
//!
//! - Server identity: `--tls-cert`/`--tls-key`, or a self-signed identity
//!   made once with rcgen and kept in `$XDG_CONFIG_HOME/sockit/identity.pem`
//!   (mode 0600), so its fingerprint stays stable across restarts.
//! - Client trust, in order: `--insecure` (no checks, warns every time);
//!   `--pin SHA256:…` (exactly that certificate); a chain to the system roots
//!   or `--tls-ca` that matches the host name; otherwise trust on first use
//!   against `$XDG_CONFIG_HOME/sockit/known_hosts`, keyed by `host:port`.
//! - Mutual TLS: `--tls-ca` on a server requires a client certificate signed
//!   by that CA; `--tls-client-cert`/`--tls-client-key` present one.
//! - Blocking handshakes with a deadline ([`accept`], [`connect`]) for the
//!   thread-per-session commands, and the same configurations for tokio.
//! - [`looks_like_tls`], [`looks_like_tls_reply`], [`looks_like_tls_alert`]
//!   and [`looks_like_client_hello`] tell plain text from TLS so that a
//!   mismatch gets a one-line diagnosis instead of garbage.

use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    ServerConfig, ServerConnection, SignatureScheme, StreamOwned,
};

use crate::net::describe;

/// Default deadline for a TLS handshake (`--handshake-timeout`).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS errors, each one plain sentence.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be used.
    #[error("{0}")]
    Config(String),
    /// The server's certificate is not trusted; nothing was sent.
    #[error("{0}")]
    Untrusted(String),
    /// The handshake failed.
    #[error("the TLS handshake with {peer} failed ({reason})")]
    Handshake {
        /// Who we were talking to.
        peer: String,
        /// What went wrong, in words.
        reason: String,
    },
    /// The peer answered in plain text (or not at all) during the handshake.
    #[error("the server at {0} does not speak TLS (it closed the connection or answered in plain text during the handshake); drop --tls")]
    PeerNotTls(String),
    /// The handshake did not finish in time.
    #[error("the TLS handshake with {0} did not finish within {1} s")]
    Timeout(String, u64),
    /// A plain client reached a TLS server.
    #[error("the server at {0} speaks TLS; add --tls")]
    ServerSpeaksTls(String),
    /// A plaintext peer sent its first bytes to a TLS listener.
    #[error("{0} sent plain text to this TLS listener")]
    PlainClient(String),
}

/// The crypto provider every configuration uses.
///
/// AES-128-GCM comes first within each protocol version: it is as safe in
/// practice as AES-256 and about a third cheaper per byte, which matters
/// when both ends share a CPU, as on loopback.
fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| {
        (
            matches!(s, rustls::SupportedCipherSuite::Tls12(_)),
            !format!("{:?}", s.suite()).contains("AES_128_GCM"),
        )
    });
    Arc::new(p)
}

/// `SHA256:` and the lowercase hex SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut s = String::from("SHA256:");
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Normalises a fingerprint the user typed: `SHA256:` optional, colons
/// and case ignored. `None` if it is not 64 hex digits.
pub fn parse_fingerprint(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t
        .strip_prefix("SHA256:")
        .or_else(|| t.strip_prefix("sha256:"))
        .or_else(|| t.strip_prefix("sha256//"))
        .unwrap_or(t);
    let hex: String = t
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("SHA256:{hex}"))
}

/// sockit's configuration directory: `$XDG_CONFIG_HOME/sockit`, else
/// `$HOME/.config/sockit`.
///
/// # Errors
/// Neither variable is set.
pub fn config_dir() -> Result<PathBuf, TlsError> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => {
                return Err(TlsError::Config(
                    "neither XDG_CONFIG_HOME nor HOME is set, so there is nowhere to keep the TLS identity and known hosts".into(),
                ))
            }
        },
    };
    Ok(base.join("sockit"))
}

/// Creates the configuration directory (mode 0700) if it is missing.
fn ensure_dir(dir: &Path) -> Result<(), TlsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            TlsError::Config(format!(
                "could not create {} ({})",
                dir.display(),
                describe(&e)
            ))
        })
}

/// A PEM reading error in words.
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) => describe(io),
        E::NoItemsFound => "no PEM block of the right kind in it".into(),
        other => format!("not valid PEM: {other}"),
    }
}

/// Reads every certificate in a PEM file.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| {
        TlsError::Config(format!(
            "could not read certificates from {} ({why})",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(pem_problem(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(pem_problem(&e)))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block in it".into()));
    }
    Ok(certs)
}

/// Reads the private key in a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TlsError::Config(format!(
            "could not read a private key from {} ({})",
            path.display(),
            pem_problem(&e)
        ))
    })
}

/// Reads a CA bundle into a root store.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(c).map_err(|e| {
            TlsError::Config(format!(
                "{} holds a certificate that is not a usable CA ({e})",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// A server's certificate chain and key, and where they came from.
pub struct Identity {
    /// The chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
    /// `files` or the path of the self-signed identity.
    pub source: String,
    /// Whether it was made and kept by sockit.
    pub self_signed: bool,
}

impl Identity {
    /// The leaf certificate's fingerprint.
    pub fn fingerprint(&self) -> String {
        self.certs
            .first()
            .map(|c| fingerprint(c))
            .unwrap_or_default()
    }

    /// Loads `--tls-cert`/`--tls-key`.
    ///
    /// # Errors
    /// Unreadable or malformed files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        Ok(Identity {
            certs: load_certs(cert)?,
            key: load_key(key)?,
            source: cert.display().to_string(),
            self_signed: false,
        })
    }

    /// Loads the kept self-signed identity from `dir/identity.pem`, making
    /// it (mode 0600) on first use.
    ///
    /// # Errors
    /// The file cannot be made or read, or others can read it.
    pub fn self_signed_in(dir: &Path) -> Result<Identity, TlsError> {
        let path = dir.join("identity.pem");
        if !path.exists() {
            ensure_dir(dir)?;
            make_identity(&path)?;
            tracing::info!("made a new self-signed TLS identity in {}", path.display());
        }
        let meta = fs::metadata(&path).map_err(|e| {
            TlsError::Config(format!(
                "could not read {} ({})",
                path.display(),
                describe(&e)
            ))
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(TlsError::Config(format!(
                "{} holds a private key but others may read it; run chmod 600 on it",
                path.display()
            )));
        }
        Ok(Identity {
            certs: load_certs(&path)?,
            key: load_key(&path)?,
            source: path.display().to_string(),
            self_signed: true,
        })
    }
}

/// Writes a fresh key and self-signed certificate to `path` atomically.
fn make_identity(path: &Path) -> Result<(), TlsError> {
    let mut names = vec!["localhost".to_string()];
    if let Ok(h) = crate::lookup::hostname() {
        if !h.is_empty() && h != "localhost" {
            names.push(h);
        }
    }
    let fail = |e: rcgen::Error| TlsError::Config(format!("could not make a TLS identity ({e})"));
    let mut params = rcgen::CertificateParams::new(names.clone()).map_err(fail)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("sockit self-signed identity for {}", names.join(", ")),
    );
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let pem = format!("{}{}", key.serialize_pem(), cert.pem());
    let tmp = path.with_extension(format!("pem.{}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        // Another sockit may have made one meanwhile: keep the first.
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    };
    let res = write();
    let _ = fs::remove_file(&tmp);
    res.map_err(|e| {
        TlsError::Config(format!(
            "could not write {} ({})",
            path.display(),
            describe(&e)
        ))
    })
}

/// What the server side was asked for.
#[derive(Debug, Clone, Default)]
pub struct ServerTlsOptions {
    /// `--tls-cert` and `--tls-key`.
    pub cert_key: Option<(PathBuf, PathBuf)>,
    /// `--tls-ca`: require client certificates signed by this CA.
    pub client_ca: Option<PathBuf>,
    /// Where to keep the self-signed identity; `None` means [`config_dir`].
    pub identity_dir: Option<PathBuf>,
}

/// A ready server configuration and what to announce.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// For rustls and tokio-rustls.
    pub config: Arc<ServerConfig>,
    /// The leaf certificate's fingerprint.
    pub fingerprint: String,
    /// A line to print next to `listening on`.
    pub banner: String,
}

impl ServerTls {
    /// Builds the configuration: TLS 1.3 and 1.2 only.
    ///
    /// # Errors
    /// Bad files, or no configuration directory for the kept identity.
    pub fn new(opts: &ServerTlsOptions) -> Result<ServerTls, TlsError> {
        let id = match &opts.cert_key {
            Some((c, k)) => Identity::from_files(c, k)?,
            None => match &opts.identity_dir {
                Some(d) => Identity::self_signed_in(d)?,
                None => Identity::self_signed_in(&config_dir()?)?,
            },
        };
        let fp = id.fingerprint();
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &opts.client_ca {
            Some(ca) => {
                let v = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(load_roots(ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| {
                    TlsError::Config(format!("{} cannot verify clients ({e})", ca.display()))
                })?;
                builder.with_client_cert_verifier(v)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(id.certs, id.key).map_err(|e| {
            TlsError::Config(format!(
                "the certificate and key do not make an identity ({e})"
            ))
        })?;
        let kind = if id.self_signed {
            "self-signed, kept in"
        } else {
            "from"
        };
        let mtls = if opts.client_ca.is_some() {
            "; client certificates required"
        } else {
            ""
        };
        Ok(ServerTls {
            config: Arc::new(config),
            banner: format!("tls: certificate {fp} ({kind} {}){mtls}", id.source),
            fingerprint: fp,
        })
    }
}

/// How the client decides to trust a server.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsOptions {
    /// `--insecure`: no checks at all.
    pub insecure: bool,
    /// `--pin`: exactly this fingerprint (normalised, `SHA256:hex`).
    pub pin: Option<String>,
    /// `--tofu`: record an unknown self-signed certificate without asking.
    pub tofu: bool,
    /// `--tls-ca`: trust this CA as well as the system roots.
    pub ca: Option<PathBuf>,
    /// `--tls-client-cert` and `--tls-client-key`.
    pub client_cert_key: Option<(PathBuf, PathBuf)>,
    /// Where `known_hosts` lives; `None` means [`config_dir`].
    pub known_hosts: Option<PathBuf>,
    /// `--handshake-timeout`; zero means [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
}

impl ClientTlsOptions {
    /// The handshake deadline in force.
    pub fn deadline(&self) -> Duration {
        if self.handshake_timeout.is_zero() {
            DEFAULT_HANDSHAKE_TIMEOUT
        } else {
            self.handshake_timeout
        }
    }
}

/// Wraps a connected socket: TLS when `tls` is given, else plain.
///
/// # Errors
/// See [`connect`].
pub fn client_stream(
    host: &str,
    port: u16,
    sock: TcpStream,
    tls: Option<&ClientTlsOptions>,
) -> Result<Stream, TlsError> {
    match tls {
        None => Ok(Stream::Plain(sock)),
        Some(o) => {
            let t = ClientTls::new(host, port, o)?;
            let s = connect(&t, sock, o.deadline())?;
            if let Some(c) = s.cipher() {
                tracing::info!("TLS with {}: {c}", t.key);
            }
            Ok(s)
        }
    }
}

/// The trust policy the verifier applies.
#[derive(Debug)]
enum Policy {
    Insecure,
    Pin(String),
    Verify {
        webpki: Option<Arc<WebPkiServerVerifier>>,
        known_hosts: PathBuf,
        tofu: bool,
    },
}

/// Verifies the server's certificate by [`Policy`], remembering why it
/// refused so the caller can say so in one sentence.
#[derive(Debug)]
struct Verifier {
    policy: Policy,
    provider: Arc<CryptoProvider>,
    /// `host:port` as the user typed it: the known_hosts key.
    key: String,
    /// Why the certificate was refused, for the error message.
    verdict: Arc<Mutex<Option<String>>>,
}

impl Verifier {
    fn refuse(&self, why: String) -> rustls::Error {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(why.clone());
        }
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    }

    fn trust_on_first_use(&self, known: &Path, tofu: bool, fp: &str) -> Result<(), rustls::Error> {
        match known_host(known, &self.key) {
            Ok(Some((_, old))) if old == fp => Ok(()),
            Ok(Some((line, old))) => Err(self.refuse(format!(
                "WARNING: the certificate of {} has CHANGED since you first trusted it (was {old}, now {fp}); this may be an attack, so nothing was sent; if the change is expected, delete line {line} of {}",
                self.key,
                known.display()
            ))),
            Ok(None) => {
                if !tofu && !ask_tty(&self.key, fp) {
                    return Err(self.refuse(format!(
                        "the server at {} presented an unknown self-signed certificate {fp}; nothing was sent; check the fingerprint with the server's owner, then add --tofu to trust and record it, or --pin {fp}",
                        self.key
                    )));
                }
                record_host(known, &self.key, fp).map_err(|e| self.refuse(e.to_string()))?;
                eprintln!(
                    "sockit: trusting {} on first use: {fp} (recorded in {})",
                    self.key,
                    known.display()
                );
                Ok(())
            }
            Err(e) => Err(self.refuse(e.to_string())),
        }
    }
}

impl Verifier {
    /// Checks the dates (and self-signature) of a certificate meant for
    /// trust on first use, by making it its own trust anchor. Its names are
    /// not checked: first use trusts the key for the `host:port` typed.
    fn self_signed_problem(&self, ee: &CertificateDer<'_>, now: UnixTime) -> Option<String> {
        let mut roots = RootCertStore::empty();
        roots.add(ee.clone().into_owned()).ok()?;
        let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .ok()?;
        let name = ServerName::try_from("sockit.invalid").ok()?;
        match v.verify_server_cert(ee, &[], &name, &[], now) {
            // Its issuer is someone else: a CA-signed certificate whose CA
            // this machine does not trust. First use is not for those.
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => Some(
                "it is not self-signed but issued by an authority this machine does not trust, \
                 so trust on first use does not apply; add --tls-ca FILE with that authority's \
                 certificate"
                    .into(),
            ),
            Err(rustls::Error::InvalidCertificate(
                e @ (CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
                | CertificateError::BadSignature),
            )) => Some(cert_problem(&e)),
            _ => None,
        }
    }

    /// Trust on first use, after the certificate's own dates are checked.
    fn first_use(
        &self,
        ee: &CertificateDer<'_>,
        now: UnixTime,
        known: &Path,
        tofu: bool,
        fp: &str,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(p) = self.self_signed_problem(ee, now) {
            return Err(self.refuse(format!(
                "the certificate of {} was refused: {p}; nothing was sent",
                self.key
            )));
        }
        self.trust_on_first_use(known, tofu, fp)
            .map(|()| ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        match &self.policy {
            Policy::Insecure => {
                eprintln!(
                    "sockit: WARNING: --insecure: not checking the certificate of {} ({fp}); anyone on the path can read and change this connection",
                    self.key
                );
                Ok(ServerCertVerified::assertion())
            }
            Policy::Pin(want) if *want == fp => Ok(ServerCertVerified::assertion()),
            Policy::Pin(want) => Err(self.refuse(format!(
                "the server at {} presented {fp}, not the pinned {want}; nothing was sent",
                self.key
            ))),
            Policy::Verify {
                webpki,
                known_hosts,
                tofu,
            } => {
                let Some(w) = webpki else {
                    return self.first_use(end_entity, now, known_hosts, *tofu, &fp);
                };
                match w.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                    Ok(v) => Ok(v),
                    Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
                        if intermediates.is_empty() =>
                    {
                        self.first_use(end_entity, now, known_hosts, *tofu, &fp)
                    }
                    Err(rustls::Error::InvalidCertificate(e)) => Err(self.refuse(format!(
                        "the certificate of {} was refused: {}; nothing was sent",
                        self.key,
                        cert_problem(&e)
                    ))),
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A certificate problem in words.
fn cert_problem(e: &CertificateError) -> String {
    match e {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it is not valid for that host name".into()
        }
        CertificateError::UnknownIssuer => "it is not signed by a trusted authority".into(),
        CertificateError::Revoked => "it has been revoked".into(),
        CertificateError::BadSignature => "its signature is bad".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Finds `key` in a known_hosts file: its line number and fingerprint.
fn known_host(path: &Path, key: &str) -> Result<Option<(usize, String)>, TlsError> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(TlsError::Config(format!(
                "could not read {} ({})",
                path.display(),
                describe(&e)
            )))
        }
    };
    // Bounded: a known_hosts file is small; stop at 1 MiB.
    let reader = io::BufReader::new(f.take(1 << 20));
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| {
            TlsError::Config(format!(
                "could not read {} ({})",
                path.display(),
                describe(&e)
            ))
        })?;
        let mut parts = line.split_whitespace();
        if let (Some(k), Some(fp)) = (parts.next(), parts.next()) {
            if k == key {
                return Ok(Some((i + 1, fp.to_string())));
            }
        }
    }
    Ok(None)
}

/// Appends `key fingerprint` to the known_hosts file (mode 0600).
fn record_host(path: &Path, key: &str, fp: &str) -> Result<(), TlsError> {
    if let Some(dir) = path.parent() {
        ensure_dir(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            TlsError::Config(format!(
                "could not write {} ({})",
                path.display(),
                describe(&e)
            ))
        })?;
    writeln!(f, "{key} {fp}")
        .and_then(|()| f.sync_all())
        .map_err(|e| {
            TlsError::Config(format!(
                "could not write {} ({})",
                path.display(),
                describe(&e)
            ))
        })
}

/// Asks on the terminal whether to trust a new certificate. `false` when
/// there is no terminal (scripts must say `--tofu` or `--pin`).
fn ask_tty(key: &str, fp: &str) -> bool {
    // SAFETY: isatty only inspects the descriptors.
    let interactive = unsafe { libc::isatty(0) == 1 && libc::isatty(2) == 1 };
    if !interactive {
        return false;
    }
    let Ok(mut tty) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return false;
    };
    let _ = write!(
        tty,
        "The server at {key} presents a certificate no authority vouches for:\n  {fp}\nCheck it with the server's owner. Trust it and remember it? [y/N] "
    );
    let mut answer = String::new();
    let _ = io::BufReader::new((&tty).take(64)).read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// A client configuration for one server, and the verifier's verdict slot.
pub struct ClientTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    verdict: Arc<Mutex<Option<String>>>,
    key: String,
}

impl ClientTls {
    /// `host:port` as the user typed it.
    pub fn peer(&self) -> &str {
        &self.key
    }

    /// Builds the configuration to reach `host:port`.
    ///
    /// # Errors
    /// Bad files, a bad pin, or no configuration directory.
    pub fn new(host: &str, port: u16, opts: &ClientTlsOptions) -> Result<ClientTls, TlsError> {
        let key = match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{host}]:{port}"),
            Err(_) => format!("{}:{port}", host.to_ascii_lowercase()),
        };
        let policy = if opts.insecure {
            Policy::Insecure
        } else if let Some(p) = &opts.pin {
            Policy::Pin(parse_fingerprint(p).ok_or_else(|| {
                TlsError::Config(format!(
                    "--pin {p} is not SHA256: followed by 64 hex digits"
                ))
            })?)
        } else {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
            if let Some(ca) = &opts.ca {
                for c in load_certs(ca)? {
                    roots.add(c).map_err(|e| {
                        TlsError::Config(format!(
                            "{} holds a certificate that is not a usable CA ({e})",
                            ca.display()
                        ))
                    })?;
                }
            }
            let webpki = if roots.is_empty() {
                None
            } else {
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| TlsError::Config(format!("no usable trust roots ({e})")))?,
                )
            };
            let known_hosts = match &opts.known_hosts {
                Some(p) => p.clone(),
                None => config_dir()?.join("known_hosts"),
            };
            Policy::Verify {
                webpki,
                known_hosts,
                tofu: opts.tofu,
            }
        };
        let verdict = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            policy,
            provider: provider(),
            key: key.clone(),
            verdict: verdict.clone(),
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let config = match &opts.client_cert_key {
            Some((c, k)) => builder
                .with_client_auth_cert(load_certs(c)?, load_key(k)?)
                .map_err(|e| {
                    TlsError::Config(format!("the client certificate and key do not match ({e})"))
                })?,
            None => builder.with_no_client_auth(),
        };
        let sni = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = ServerName::try_from(sni)
            .map_err(|_| TlsError::Config(format!("'{host}' is not a valid TLS server name")))?;
        Ok(ClientTls {
            config: Arc::new(config),
            name,
            verdict,
            key,
        })
    }

    /// For tokio-rustls.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name sent in SNI and checked against the certificate.
    pub fn server_name(&self) -> ServerName<'static> {
        self.name.clone()
    }

    /// Turns a failed handshake into one sentence.
    pub fn explain(&self, e: &io::Error) -> TlsError {
        if let Some(v) = self.verdict.lock().ok().and_then(|mut v| v.take()) {
            return TlsError::Untrusted(v);
        }
        handshake_error(&self.key, e)
    }
}

/// The rustls error inside an I/O error from a handshake, if any.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// Maps a handshake I/O error to a [`TlsError`].
pub fn handshake_error(peer: &str, e: &io::Error) -> TlsError {
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
                format!(
                    "the server refused our certificate or wants one: {a}; see --tls-client-cert"
                )
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
fn eof_ok(r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(after_handshake(e)),
        r => r,
    }
}

/// Puts the alerts a server sends after a TLS 1.3 handshake into words: a
/// missing or refused client certificate only shows up at the first read.
fn after_handshake(e: io::Error) -> io::Error {
    use rustls::AlertDescription as A;
    let why = match rustls_error(&e) {
        Some(rustls::Error::AlertReceived(A::CertificateRequired)) => {
            "the server requires a client certificate; add --tls-client-cert and --tls-client-key"
        }
        Some(rustls::Error::AlertReceived(
            A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::AccessDenied,
        )) => "the server refused our client certificate",
        _ => return e,
    };
    io::Error::other(why)
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
fn with_deadline<T>(
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
fn handshake<C, S>(conn: &mut C, sock: &mut TcpStream, deadline: Duration) -> io::Result<()>
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
fn timed_out(e: &io::Error) -> bool {
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
fn server_handshake_error(who: &str, e: &io::Error) -> TlsError {
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

/// A fatal TLS 1.2-framed `unexpected_message` alert: what a plaintext
/// client of a TLS listener receives before the connection closes.
pub const PLAINTEXT_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a];

/// Whether the first bytes from a peer could start a TLS handshake record
/// (content type 22, protocol major version 3).
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [] | [0x16] | [0x16, 0x03, ..])
}

/// Whether the first bytes a plain client received are a TLS record header
/// (an alert or a handshake): the server speaks TLS.
pub fn looks_like_tls_reply(first: &[u8]) -> bool {
    matches!(record_type(first), Some(0x15 | 0x16))
}

/// Whether the first bytes a plain client received are a TLS alert record:
/// what a TLS server sends back when it is spoken to in plain text.
pub fn looks_like_tls_alert(first: &[u8]) -> bool {
    record_type(first) == Some(0x15)
}

/// The content type of a whole TLS record header (5 bytes, version 3.x).
fn record_type(first: &[u8]) -> Option<u8> {
    (first.len() >= 5 && first[1] == 0x03 && first[2] <= 0x04).then(|| first[0])
}

/// Whether the first bytes a plain listener received are a TLS ClientHello.
pub fn looks_like_client_hello(first: &[u8]) -> bool {
    first.len() >= 6 && first[0] == 0x16 && first[1] == 0x03 && first[2] <= 0x04 && first[5] == 0x01
}

/// One TLS connection shared by a reading thread and a writing thread.
///
/// Encryption and decryption happen under `conn`'s lock, never socket I/O,
/// so a side blocked on a full socket cannot stall the other. `send` orders
/// whole flushes, so records reach the socket in sequence.
struct Duplex {
    conn: Mutex<rustls::Connection>,
    send: Mutex<Vec<u8>>,
    sock: TcpStream,
}

impl Duplex {
    /// Moves every pending TLS record to the socket, in order. With `wait`
    /// false it gives up when the writing side is busy (it will flush).
    fn flush(&self, wait: bool) -> io::Result<()> {
        let guard = if wait {
            self.send
                .lock()
                .map_err(|_| io::Error::other("TLS state poisoned"))?
        } else {
            match self.send.try_lock() {
                Ok(g) => g,
                Err(_) => return Ok(()),
            }
        };
        let mut out = guard;
        self.drain(&mut out)?;
        let r = (&self.sock).write_all(&out);
        out.clear();
        r
    }

    /// Takes the pending TLS records out of the connection.
    fn drain(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut c = self
            .conn
            .lock()
            .map_err(|_| io::Error::other("TLS state poisoned"))?;
        while c.wants_write() {
            c.write_tls(out)?;
        }
        Ok(())
    }
}

/// The receiving half of a split TLS stream.
pub struct TlsReader {
    d: Arc<Duplex>,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
}

/// The sending half of a split TLS stream.
pub struct TlsWriter {
    d: Arc<Duplex>,
}

/// Splits an established TLS stream into halves for two threads. `None`
/// for a plain stream.
pub fn split(stream: Stream) -> Option<(TlsReader, TlsWriter, TcpStream)> {
    let (mut conn, sock): (rustls::Connection, TcpStream) = match stream {
        Stream::Plain(_) => return None,
        Stream::Client(s) => {
            let StreamOwned { conn, sock } = *s;
            (conn.into(), sock)
        }
        Stream::Server(s) => {
            let StreamOwned { conn, sock } = *s;
            (conn.into(), sock)
        }
    };
    // The writer encrypts whatever it is given; memory stays bounded by
    // the callers' chunk size because every write is flushed at once.
    conn.set_buffer_limit(None);
    let dup = sock.try_clone().ok()?;
    let d = Arc::new(Duplex {
        conn: Mutex::new(conn),
        send: Mutex::new(Vec::new()),
        sock,
    });
    Some((
        TlsReader {
            d: d.clone(),
            buf: vec![0u8; 256 * 1024],
            lo: 0,
            hi: 0,
        },
        TlsWriter { d },
        dup,
    ))
}

impl Read for TlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut c = self
                    .d
                    .conn
                    .lock()
                    .map_err(|_| io::Error::other("TLS state poisoned"))?;
                match c.reader().read(out) {
                    Ok(n) => return Ok(n),
                    // The peer closed without close_notify: end of stream.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if self.lo < self.hi {
                    let mut rd = &self.buf[self.lo..self.hi];
                    let n = c.read_tls(&mut rd)?;
                    self.lo += n;
                    let state = c.process_new_packets();
                    let reply = c.wants_write();
                    drop(c);
                    if reply {
                        // An alert or a key update answer: send it unless
                        // the writer is mid-flush (it will carry it).
                        let _ = self.d.flush(false);
                    }
                    state.map_err(|e| {
                        after_handshake(io::Error::new(io::ErrorKind::InvalidData, e))
                    })?;
                    continue;
                }
            }
            let n = (&self.d.sock).read(&mut self.buf)?;
            if n == 0 {
                let mut c = self
                    .d
                    .conn
                    .lock()
                    .map_err(|_| io::Error::other("TLS state poisoned"))?;
                let _ = c.read_tls(&mut &[][..]);
                let _ = c.process_new_packets();
                return match c.reader().read(out) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                    Err(e) => Err(e),
                };
            }
            self.lo = 0;
            self.hi = n;
        }
    }
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = self
            .d
            .send
            .lock()
            .map_err(|_| io::Error::other("TLS state poisoned"))?;
        let n = {
            let mut c = self
                .d
                .conn
                .lock()
                .map_err(|_| io::Error::other("TLS state poisoned"))?;
            // A fatal alert the reading side has seen comes back here too.
            let n = c.writer().write(buf).map_err(after_handshake)?;
            while c.wants_write() {
                c.write_tls(&mut *out)?;
            }
            n
        };
        let r = (&self.d.sock).write_all(&out);
        out.clear();
        // Keep the buffer for the next write, but not a giant one.
        if out.capacity() > 4 << 20 {
            *out = Vec::new();
        }
        r.map(|()| n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.d.flush(true)
    }
}

impl TlsWriter {
    /// Sends close_notify and shuts the socket's write side down.
    ///
    /// # Errors
    /// The socket's error.
    pub fn close(&mut self) -> io::Result<()> {
        if let Ok(mut c) = self.d.conn.lock() {
            c.send_close_notify();
        }
        self.d.flush(true)?;
        self.d.sock.shutdown(std::net::Shutdown::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_every_common_spelling() {
        let hex = "ab".repeat(32);
        let want = format!("SHA256:{hex}");
        assert_eq!(parse_fingerprint(&want), Some(want.clone()));
        assert_eq!(parse_fingerprint(&hex.to_uppercase()), Some(want.clone()));
        let colons: Vec<String> = (0..32).map(|_| "AB".to_string()).collect();
        assert_eq!(
            parse_fingerprint(&format!("sha256:{}", colons.join(":"))),
            Some(want)
        );
        assert_eq!(parse_fingerprint("SHA256:abcd"), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
        assert!(fingerprint(b"x").starts_with("SHA256:") && fingerprint(b"x").len() == 71);
    }

    #[test]
    fn tells_tls_from_plain_text() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_tls(b"GET"));
        assert!(!looks_like_tls(b"\0SO"));
        assert!(looks_like_tls_reply(&PLAINTEXT_ALERT));
        assert!(looks_like_tls_alert(&PLAINTEXT_ALERT));
        // A ServerHello is a reply, but not an alert: a relay passes it on.
        assert!(!looks_like_tls_alert(&[0x16, 0x03, 0x03, 0x00, 0x7a, 0x02]));
        assert!(!looks_like_tls_alert(b"hello"));
        assert!(!looks_like_tls_reply(b"hello world"));
        assert!(looks_like_client_hello(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00
        ]));
        assert!(!looks_like_client_hello(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x02
        ]));
    }

    #[test]
    fn identity_is_made_once_with_mode_0600_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("sockit");
        let a = Identity::self_signed_in(&cfg).unwrap();
        let mode = fs::metadata(cfg.join("identity.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Identity::self_signed_in(&cfg).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        fs::set_permissions(cfg.join("identity.pem"), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Identity::self_signed_in(&cfg).is_err());
    }

    #[test]
    fn known_hosts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/known_hosts");
        assert_eq!(known_host(&p, "a:1").unwrap(), None);
        record_host(&p, "a:1", "SHA256:00").unwrap();
        record_host(&p, "b:2", "SHA256:11").unwrap();
        assert_eq!(
            known_host(&p, "b:2").unwrap(),
            Some((2, "SHA256:11".into()))
        );
        assert_eq!(known_host(&p, "a:2").unwrap(), None);
    }

    /// A self-signed certificate for localhost, optionally long expired.
    fn self_signed(expired: bool) -> CertificateDer<'static> {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().clone()
    }

    /// The trust-on-first-use verifier as on a machine with system roots.
    fn tofu_verifier(known: &Path) -> Verifier {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "a system root");
        let ca = ca
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        Verifier {
            policy: Policy::Verify {
                webpki: Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .unwrap(),
                ),
                known_hosts: known.to_path_buf(),
                tofu: true,
            },
            provider: provider(),
            key: "127.0.0.1:1".into(),
            verdict: Arc::new(Mutex::new(None)),
        }
    }

    fn check(v: &Verifier, cert: &CertificateDer<'_>) -> Result<(), String> {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        v.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|_| v.verdict.lock().unwrap().take().unwrap_or_default())
    }

    #[test]
    fn first_use_records_then_only_that_certificate_passes() {
        let dir = tempfile::tempdir().unwrap();
        let v = tofu_verifier(&dir.path().join("known_hosts"));
        let (a, b) = (self_signed(false), self_signed(false));
        assert_eq!(check(&v, &a), Ok(()));
        assert_eq!(check(&v, &a), Ok(()));
        let err = check(&v, &b).unwrap_err();
        assert!(
            err.contains("CHANGED") && err.contains(&fingerprint(&b)),
            "{err}"
        );
        // An expired self-signed certificate is refused before first use.
        let dir = tempfile::tempdir().unwrap();
        let v = tofu_verifier(&dir.path().join("known_hosts"));
        let err = check(&v, &self_signed(true)).unwrap_err();
        assert!(err.contains("expired"), "{err}");
        // The same on a machine with no system roots at all.
        let v = Verifier {
            policy: Policy::Verify {
                webpki: None,
                known_hosts: dir.path().join("known_hosts"),
                tofu: true,
            },
            ..tofu_verifier(&dir.path().join("known_hosts"))
        };
        let err = check(&v, &self_signed(true)).unwrap_err();
        assert!(err.contains("expired"), "{err}");
        assert!(!dir.path().join("known_hosts").exists());
        assert_eq!(check(&v, &self_signed(false)), Ok(()));
    }
}
