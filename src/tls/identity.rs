//! The server's identity: the config directory, the kept self-signed
//! certificate (made once, mode 0600), PEM loading, and the server
//! configuration built from them ([`ServerTls`], with mutual TLS).

use super::*;

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
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), TlsError> {
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

/// Why a certificate and key were not taken as an identity: a key that
/// belongs to another certificate, or a certificate rustls cannot use
/// (an X.509 v1 certificate, say). `what` names the certificate, `key`
/// its key, as the flags do.
pub(crate) fn identity_problem(what: &str, key: &str, e: &rustls::Error) -> TlsError {
    use rustls::{CertificateError as C, Error as E};
    TlsError::Config(match e {
        E::InconsistentKeys(_) => format!("{what} and its {key} do not match"),
        E::InvalidCertificate(C::Other(o)) if format!("{o:?}").contains("UnsupportedCertVersion") => format!(
            "{what} is X.509 version 1, which TLS libraries refuse; reissue it with extensions (openssl x509 -req ... -extfile)"
        ),
        _ => format!("{what} cannot be used with its {key} ({e})"),
    })
}

/// A PEM reading error in words.
pub(crate) fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) => describe(io),
        E::NoItemsFound => "no PEM block of the right kind in it".into(),
        other => format!("not valid PEM: {other}"),
    }
}

/// Reads every certificate in a PEM file.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TlsError::Config(format!(
            "could not read a private key from {} ({})",
            path.display(),
            pem_problem(&e)
        ))
    })
}

/// Reads a CA bundle into a root store.
pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
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
pub(crate) fn make_identity(path: &Path) -> Result<(), TlsError> {
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
    /// Prints the banner next to `listening on` (a JSON `certificate`
    /// event with `--log-format json`).
    pub fn announce(&self) {
        crate::logline::notice(
            "certificate",
            &self.banner,
            &[("fingerprint", crate::report::json_str(&self.fingerprint))],
        );
    }

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
        let config = builder
            .with_single_cert(id.certs, id.key)
            .map_err(|e| identity_problem("the certificate", "key", &e))?;
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
