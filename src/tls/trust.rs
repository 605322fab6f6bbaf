//! What a client trusts: the verifier policy (`--insecure`, `--pin`,
//! system roots and `--tls-ca`, trust on first use), the known_hosts file,
//! the prompt on /dev/tty, and the client configuration ([`ClientTls`]).

use super::*;

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
    /// The flags that messages tell the user to add.
    pub flags: TrustFlags,
}

/// The names of the trust flags, for the hints in refusals: `tcp connect`
/// says `--tofu`, while `forward`'s `tls:` targets say `--target-tofu`.
#[derive(Debug, Clone, Copy)]
pub struct TrustFlags {
    /// Trust on first use.
    pub tofu: &'static str,
    /// A pinned fingerprint.
    pub pin: &'static str,
    /// An extra CA.
    pub ca: &'static str,
    /// The client certificate and its key.
    pub cert: &'static str,
}

impl TrustFlags {
    /// The client commands' flags.
    pub const CLIENT: TrustFlags = TrustFlags {
        tofu: "--tofu",
        pin: "--pin",
        ca: "--tls-ca",
        cert: "--tls-client-cert and --tls-client-key",
    };
    /// `forward`'s flags for `tls:` targets.
    pub const TARGET: TrustFlags = TrustFlags {
        tofu: "--target-tofu",
        pin: "--target-pin",
        ca: "--target-ca",
        cert: "--target-cert and --target-key",
    };
}

impl Default for TrustFlags {
    fn default() -> TrustFlags {
        TrustFlags::CLIENT
    }
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
pub(crate) enum Policy {
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
pub(crate) struct Verifier {
    /// What to check.
    pub(crate) policy: Policy,
    /// Flag names for the hints.
    pub(crate) flags: TrustFlags,
    /// The crypto provider for signatures.
    pub(crate) provider: Arc<CryptoProvider>,
    /// `host:port` as the user typed it: the known_hosts key.
    pub(crate) key: String,
    /// Why the certificate was refused, for the error message.
    pub(crate) verdict: Arc<Mutex<Option<String>>>,
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
                        "the server at {} presented an unknown self-signed certificate {fp}; nothing was sent; check the fingerprint with the server's owner, then add {} to trust and record it, or {} {fp}",
                        self.key, self.flags.tofu, self.flags.pin
                    )));
                }
                record_host(known, &self.key, fp).map_err(|e| self.refuse(e.to_string()))?;
                crate::logline::notice(
                    "trusted",
                    &format!(
                        "sockit: trusting {} on first use: {fp} (recorded in {})",
                        self.key,
                        known.display()
                    ),
                    &[
                        ("peer", crate::report::json_str(&self.key)),
                        ("fingerprint", crate::report::json_str(fp)),
                    ],
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
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                Some(format!(
                "it is not self-signed but issued by an authority this machine does not trust, \
                 so trust on first use does not apply; add {} FILE with that authority's \
                 certificate",
                self.flags.ca
            ))
            }
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
                crate::logline::notice(
                    "warning",
                    &format!(
                        "sockit: WARNING: --insecure: not checking the certificate of {} ({fp}); anyone on the path can read and change this connection",
                        self.key
                    ),
                    &[("peer", crate::report::json_str(&self.key))],
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
pub(crate) fn cert_problem(e: &CertificateError) -> String {
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
        other => {
            let text = format!("{other:?}");
            if text.contains("CaUsedAsEndEntity") {
                "it is a CA certificate presented as a server's own (the server needs a leaf certificate signed by that CA)".into()
            } else {
                format!("the verifier said {text}")
            }
        }
    }
}

/// Finds `key` in a known_hosts file: its line number and fingerprint.
pub(crate) fn known_host(path: &Path, key: &str) -> Result<Option<(usize, String)>, TlsError> {
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
    find_known_host(io::BufReader::new(f.take(1 << 20)), key).map_err(|e| {
        TlsError::Config(format!(
            "could not read {} ({})",
            path.display(),
            describe(&e)
        ))
    })
}

/// Finds `key` in known_hosts text (lines of `host:port fingerprint`,
/// anything after the fingerprint ignored): its 1-based line number and
/// fingerprint. The first matching line wins. Pure apart from `reader`.
///
/// # Errors
/// A read error, or a line that is not UTF-8.
pub fn find_known_host<R: io::BufRead>(
    reader: R,
    key: &str,
) -> io::Result<Option<(usize, String)>> {
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
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
pub(crate) fn record_host(path: &Path, key: &str, fp: &str) -> Result<(), TlsError> {
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
pub(crate) fn ask_tty(key: &str, fp: &str) -> bool {
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
    /// For rustls and tokio-rustls.
    pub(crate) config: Arc<ClientConfig>,
    /// The name the certificate must match.
    pub(crate) name: ServerName<'static>,
    /// Why the verifier refused, for the error message.
    pub(crate) verdict: Arc<Mutex<Option<String>>>,
    /// `host:port` as the user typed it.
    pub(crate) key: String,
    /// The flags hints name.
    pub(crate) flags: TrustFlags,
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
            flags: opts.flags,
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
                .map_err(|e| identity_problem("the client certificate", "key", &e))?,
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
            flags: opts.flags,
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
        handshake_error_naming(&self.key, e, self.flags.cert)
    }
}
