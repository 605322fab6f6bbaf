//! Proxy URLs as `--proxy` takes them (`socks5h://user:pass@host:1080`,
//! `http://host:3128`, ...) and the credentials they carry. Pure: no I/O
//! but reading an auth file.

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use super::http;
use crate::net;

/// A proxy protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `socks5://`: names are resolved here.
    Socks5,
    /// `socks5h://`: names are sent to the proxy.
    Socks5h,
    /// `socks4://`: IPv4 only, names resolved here.
    Socks4,
    /// `socks4a://`: names are sent to the proxy.
    Socks4a,
    /// `http://`: HTTP CONNECT.
    Http,
}

impl Scheme {
    /// The URL scheme.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Socks5 => "socks5",
            Scheme::Socks5h => "socks5h",
            Scheme::Socks4 => "socks4",
            Scheme::Socks4a => "socks4a",
            Scheme::Http => "http",
        }
    }

    /// Whether the proxy resolves names (the client sends them as text).
    pub fn remote_names(self) -> bool {
        matches!(self, Scheme::Socks5h | Scheme::Socks4a | Scheme::Http)
    }
}

/// A username and password. Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Creds {
    /// The username.
    pub user: String,
    /// The password.
    pub pass: String,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Creds({:?}, <hidden>)", self.user)
    }
}

impl Creds {
    /// `user:pass` (the first colon splits).
    ///
    /// # Errors
    /// Text with no colon or an empty username.
    pub fn parse(s: &str) -> Result<Creds, String> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Creds {
                user: u.to_string(),
                pass: p.to_string(),
            }),
            _ => Err("credentials are user:pass, with a username".into()),
        }
    }

    /// Reads `user:pass` from the first line of a file (so it stays out of
    /// `ps`).
    ///
    /// # Errors
    /// An unreadable file, or a first line that is not `user:pass`.
    pub fn from_file(path: &Path) -> Result<Creds, String> {
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
            .map_err(|e| format!("could not read {} ({})", path.display(), net::describe(&e)))?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        Creds::parse(line).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// A proxy: `socks5h://user:pass@host:1080`, `http://host:3128`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// The protocol.
    pub scheme: Scheme,
    /// The proxy's host.
    pub host: String,
    /// The proxy's port (1080 for SOCKS, 3128 for HTTP by default).
    pub port: u16,
    /// Credentials from the URL or `--proxy-auth-file`.
    pub creds: Option<Creds>,
}

impl std::fmt::Display for ProxyUrl {
    /// The URL without credentials: safe for logs and errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{}://{host}:{}", self.scheme.name(), self.port)
    }
}

/// Decodes `%XX` escapes (for credentials in a URL).
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{s:?} has a broken %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to text"))
}

impl FromStr for ProxyUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<ProxyUrl, String> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("{s:?} is not a proxy URL; write socks5h://HOST:PORT, socks5://, socks4a:// or http://")
        })?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "socks5" => Scheme::Socks5,
            "socks5h" => Scheme::Socks5h,
            "socks4" => Scheme::Socks4,
            "socks4a" => Scheme::Socks4a,
            "http" => Scheme::Http,
            "https" => {
                return Err(format!(
                    "{s:?}: TLS to the proxy itself is not supported; use http:// (a CONNECT tunnel still carries --tls end to end)"
                ))
            }
            other => {
                return Err(format!(
                    "{s:?}: unknown proxy scheme {other:?}; use socks5h, socks5, socks4a, socks4 or http"
                ))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(format!("{s:?}: a proxy URL has no path"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let creds = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let user = percent_decode(user)?;
                if user.is_empty() {
                    return Err(format!("{s:?}: the username before @ is empty"));
                }
                Some(Creds {
                    user,
                    pass: percent_decode(pass)?,
                })
            }
        };
        let default = if scheme == Scheme::Http { 3128 } else { 1080 };
        let (host, port) =
            http::authority(hostport, Some(default)).map_err(|b| format!("{s:?}: {}", b.why))?;
        Ok(ProxyUrl {
            scheme,
            host,
            port,
            creds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let p: ProxyUrl = "socks5h://al%40ce:p%3Ass@127.0.0.1".parse().unwrap();
        assert_eq!(p.scheme, Scheme::Socks5h);
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 1080));
        assert_eq!(
            p.creds,
            Some(Creds {
                user: "al@ce".into(),
                pass: "p:ss".into()
            })
        );
        assert_eq!(p.to_string(), "socks5h://127.0.0.1:1080");
        assert!(!format!("{p:?}").contains("p:ss"));
        let h: ProxyUrl = "http://[::1]".parse().unwrap();
        assert_eq!((h.host.as_str(), h.port), ("::1", 3128));
        assert_eq!(h.to_string(), "http://[::1]:3128");
        for bad in [
            "127.0.0.1:1080",
            "ftp://h",
            "https://h",
            "socks5://h:0",
            "socks5://h:70000",
            "socks5://:pw@h",
            "socks5://h/path",
            "socks5://a b",
        ] {
            assert!(bad.parse::<ProxyUrl>().is_err(), "{bad}");
        }
    }
}
