//! The argument groups several commands share: text options, TLS and
//! access control on listeners, TLS on clients.

use std::time::Duration;

use clap::Args;

use sockit::frame::DEFAULT_MAX_FRAME;
use sockit::text::{Encoding, TextOptions};

use super::parse::{parse_pin, parse_secs};

/// `--encoding`: the wire encodings as the command line spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EncodingArg {
    /// UTF-8 (invalid bytes show as U+FFFD when decoding is asked for).
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    /// GBK, as seed 002 uses for file names (GB18030 decoder, GBK encoder).
    Gbk,
}

impl From<EncodingArg> for Encoding {
    fn from(e: EncodingArg) -> Encoding {
        match e {
            EncodingArg::Utf8 => Encoding::Utf8,
            EncodingArg::Gbk => Encoding::Gbk,
        }
    }
}

/// Options that change how text is cut and converted.
#[derive(Args)]
pub(crate) struct TextArgs {
    /// A line equal to WORD, sent or received, ends the session (repeatable; the seeds use q, bye, exit).
    #[arg(long = "quit", value_name = "WORD")]
    pub(crate) quit: Vec<String>,
    /// Send lines ending in CRLF.
    #[arg(long)]
    pub(crate) crlf: bool,
    /// Text encoding on the wire (the terminal stays UTF-8).
    #[arg(long, value_enum, value_name = "ENC")]
    pub(crate) encoding: Option<EncodingArg>,
    /// Length-prefixed messages: each stdin line is one message, each message one output line.
    #[arg(long)]
    pub(crate) frame: bool,
    /// Largest message accepted or sent with --frame.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME)]
    pub(crate) max_frame: usize,
}

impl TextArgs {
    pub(crate) fn text(&self) -> TextOptions {
        TextOptions {
            quit: self.quit.clone(),
            crlf: self.crlf,
            encoding: self.encoding.map(Encoding::from),
        }
    }

    pub(crate) fn frame(&self) -> Option<usize> {
        self.frame.then_some(self.max_frame)
    }
}

/// TLS and access control on a listener.
#[derive(Args, Clone)]
pub(crate) struct ServerSecArgs {
    /// Encrypt with TLS 1.3 or 1.2. Without --tls-cert, uses a self-signed identity kept in $XDG_CONFIG_HOME/sockit.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Certificate chain to present, PEM (with --tls-key).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// Private key for --tls-cert, PEM.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    pub(crate) tls_key: Option<std::path::PathBuf>,
    /// Mutual TLS: require a client certificate signed by this CA (PEM).
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub(crate) tls_ca: Option<std::path::PathBuf>,
    /// Close a peer whose TLS handshake takes longer than SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) handshake_timeout: Duration,
    #[command(flatten)]
    pub(crate) access: AccessArgs,
}

/// `--allow` and `--deny`.
#[derive(Args, Clone)]
pub(crate) struct AccessArgs {
    /// Accept peers only from this network or address (repeatable), e.g. 127.0.0.0/8.
    #[arg(long, value_name = "CIDR")]
    pub(crate) allow: Vec<sockit::access::Cidr>,
    /// Refuse peers from this network or address (repeatable); wins over --allow.
    #[arg(long, value_name = "CIDR")]
    pub(crate) deny: Vec<sockit::access::Cidr>,
}

impl AccessArgs {
    pub(crate) fn list(&self) -> sockit::access::AccessList {
        sockit::access::AccessList {
            allow: self.allow.clone(),
            deny: self.deny.clone(),
        }
    }
}

impl ServerSecArgs {
    /// The TLS configuration, printing its fingerprint, or `None` for plain text.
    pub(crate) fn tls(&self) -> super::Result<Option<sockit::tls::ServerTls>> {
        let t = self.tls_config()?;
        if let Some(t) = &t {
            t.announce();
        }
        Ok(t)
    }

    /// The TLS configuration without printing it.
    pub(crate) fn tls_config(&self) -> super::Result<Option<sockit::tls::ServerTls>> {
        if !self.tls {
            return Ok(None);
        }
        Ok(Some(sockit::tls::ServerTls::new(
            &sockit::tls::ServerTlsOptions {
                cert_key: self.tls_cert.clone().zip(self.tls_key.clone()),
                client_ca: self.tls_ca.clone(),
                identity_dir: None,
            },
        )?))
    }
}

/// TLS on a client.
#[derive(Args, Clone)]
pub(crate) struct ClientSecArgs {
    /// Encrypt with TLS 1.3 or 1.2 and check the server's certificate.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Trust an unknown self-signed server on first use and record it in known_hosts.
    #[arg(long, requires = "tls")]
    pub(crate) tofu: bool,
    /// Trust exactly the certificate with this fingerprint (SHA256:hex).
    #[arg(long, value_name = "SHA256:HEX", requires = "tls", conflicts_with = "tofu", value_parser = parse_pin)]
    pub(crate) pin: Option<String>,
    /// Do not check the server's certificate at all (warns on every connection).
    #[arg(long, requires = "tls", conflicts_with_all = ["pin", "tofu"])]
    pub(crate) insecure: bool,
    /// Trust this CA (PEM) as well as the system roots.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub(crate) tls_ca: Option<std::path::PathBuf>,
    /// Present this client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_client_key"])]
    pub(crate) tls_client_cert: Option<std::path::PathBuf>,
    /// Private key for --tls-client-cert (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_client_cert"])]
    pub(crate) tls_client_key: Option<std::path::PathBuf>,
    /// Give up when the TLS handshake takes longer than SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) handshake_timeout: Duration,
}

impl ClientSecArgs {
    /// The client TLS options, or `None` for plain text.
    pub(crate) fn tls(&self) -> Option<sockit::tls::ClientTlsOptions> {
        self.tls.then(|| sockit::tls::ClientTlsOptions {
            insecure: self.insecure,
            pin: self.pin.clone(),
            tofu: self.tofu,
            ca: self.tls_ca.clone(),
            client_cert_key: self
                .tls_client_cert
                .clone()
                .zip(self.tls_client_key.clone()),
            known_hosts: None,
            handshake_timeout: self.handshake_timeout,
            flags: sockit::tls::TrustFlags::CLIENT,
        })
    }
}

/// `--proxy` on a connecting command.
#[derive(Args, Clone, Default)]
pub(crate) struct ProxyArgs {
    /// Go through a proxy: socks5h://[USER:PASS@]HOST[:PORT] (the proxy resolves names),
    /// socks5:// (names resolved here), socks4a://, socks4:// or http:// (CONNECT).
    /// Repeat it to chain proxies, in order. ALL_PROXY is not read.
    #[arg(long = "proxy", value_name = "URL", help_heading = "Proxy")]
    pub(crate) proxy: Vec<sockit::proxy::ProxyUrl>,
    /// Read USER:PASS from the first line of FILE for every proxy whose URL has none
    /// (so the password stays out of ps).
    #[arg(long, value_name = "FILE", requires = "proxy", help_heading = "Proxy")]
    pub(crate) proxy_auth_file: Option<std::path::PathBuf>,
}

impl ProxyArgs {
    /// The chain, with the auth file's credentials filled in.
    pub(crate) fn chain(&self) -> Result<Vec<sockit::proxy::ProxyUrl>, super::Usage> {
        let mut chain = self.proxy.clone();
        if let Some(f) = &self.proxy_auth_file {
            let creds = sockit::proxy::Creds::from_file(f).map_err(super::Usage)?;
            for p in chain.iter_mut().filter(|p| p.creds.is_none()) {
                p.creds = Some(creds.clone());
            }
        }
        Ok(chain)
    }
}

/// Seeing and keeping the bytes of a connection.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Seeing the bytes")]
pub(crate) struct TapArgs {
    /// Show both directions as a hex dump (> sent, < received, with time and offset), on stderr (or -) or appended to FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub(crate) hexdump: Option<std::path::PathBuf>,
    /// Keep the raw bytes of each direction in DIR (N.sent and N.received for connection N), for replay.
    #[arg(long, value_name = "DIR")]
    pub(crate) log: Option<std::path::PathBuf>,
}

impl TapArgs {
    /// The taps, or `None` when nothing is tapped.
    pub(crate) fn taps(
        &self,
    ) -> Result<Option<std::sync::Arc<sockit::relay::tap::Taps>>, super::Fail> {
        if self.hexdump.is_none() && self.log.is_none() {
            return Ok(None);
        }
        let hex = self
            .hexdump
            .as_ref()
            .map(|p| (p.as_os_str() != "-").then(|| p.clone()));
        let taps = sockit::relay::tap::Taps::new(hex, self.log.clone()).map_err(|e| {
            super::Fail::msg(format!(
                "could not open the dump or the log ({}); check the path",
                sockit::net::describe(&e)
            ))
        })?;
        Ok(Some(std::sync::Arc::new(taps)))
    }
}

/// One way only (ncat's flags), for a session.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Seeing the bytes")]
pub(crate) struct OnlyArgs {
    /// Only send: drop what arrives, and end once the input is delivered.
    #[arg(long, conflicts_with = "recv_only")]
    pub(crate) send_only: bool,
    /// Only receive: never read stdin, never send.
    #[arg(long)]
    pub(crate) recv_only: bool,
}

impl OnlyArgs {
    pub(crate) fn only(&self) -> Option<sockit::session::Only> {
        if self.send_only {
            Some(sockit::session::Only::Send)
        } else if self.recv_only {
            Some(sockit::session::Only::Recv)
        } else {
            None
        }
    }
}
