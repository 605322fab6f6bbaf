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

//!
//! | file | concern |
//! |---|---|
//! | `identity.rs` | config dir, kept self-signed identity, PEM loading, the server configuration |
//! | `trust.rs` | the verifier policy, pins, known_hosts, the prompt, the client configuration |
//! | `session.rs` | handshakes with deadlines (blocking and async), `Stream` |
//! | `detect.rs` | the `looks_like_*` sniffers (pure) |

mod detect;
mod identity;
mod session;
mod trust;

pub use detect::*;
pub use identity::*;
pub use session::*;
pub use trust::*;

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

impl crate::error::Failure for TlsError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Runtime
    }
}

/// The crypto provider every configuration uses.
///
/// AES-128-GCM comes first within each protocol version: it is as safe in
/// practice as AES-256 and about a third cheaper per byte, which matters
/// when both ends share a CPU, as on loopback.
pub(crate) fn provider() -> Arc<CryptoProvider> {
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
            flags: TrustFlags::CLIENT,
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
