//! The spellings of `forward`: LISTEN (`[tcp:][ADDR:]PORT`,
//! `udp:[ADDR:]PORT`, `unix:PATH`) and TARGET (`[tcp:]HOST:PORT`,
//! `udp:HOST:PORT`, `tls:HOST:PORT`, `unix:PATH`, `exec:PROGRAM ARGS…`,
//! `sh:COMMAND`), parsed without I/O (but for checking that an `exec:`
//! program exists), and the state of a target that is down.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use super::{ForwardError, DOWN_FOR};
use crate::net::unix::UnixAddr;
use crate::net::{self, BindAddr};
use crate::relay::child::{self, Program};

/// Which transport a LISTEN or TARGET uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A byte stream: TCP, TLS, Unix or a child process.
    Stream,
    /// UDP datagrams.
    Udp,
}

impl Proto {
    /// `stream` or `udp`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Stream => "a stream",
            Proto::Udp => "udp",
        }
    }
}

/// What a target is.
#[derive(Debug)]
pub enum TargetKind {
    /// `[tcp:]HOST:PORT`.
    Tcp(String, u16),
    /// `tls:HOST:PORT`.
    Tls(String, u16),
    /// `udp:HOST:PORT`.
    Udp(String, u16),
    /// `unix:PATH`.
    Unix(UnixAddr),
    /// `exec:` or `sh:`.
    Exec(Program),
}

/// One target: where to connect, and until when it is skipped.
#[derive(Debug)]
pub struct Target {
    /// What and where.
    pub kind: TargetKind,
    /// Set when the target refused or timed out: skip it until then.
    down_until: Mutex<Option<Instant>>,
}

fn host_port_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Target {
    /// A program-per-connection target.
    pub fn program(p: Program) -> Target {
        Target {
            kind: TargetKind::Exec(p),
            down_until: Mutex::new(None),
        }
    }

    /// The target as the log shows it.
    pub fn name(&self) -> String {
        match &self.kind {
            TargetKind::Tcp(h, p) => host_port_name(h, *p),
            TargetKind::Tls(h, p) => format!("tls:{}", host_port_name(h, *p)),
            TargetKind::Udp(h, p) => format!("udp:{}", host_port_name(h, *p)),
            TargetKind::Unix(a) => a.to_string(),
            TargetKind::Exec(p) => p.shown.clone(),
        }
    }

    /// Stream or datagrams.
    pub fn proto(&self) -> Proto {
        match self.kind {
            TargetKind::Udp(..) => Proto::Udp,
            _ => Proto::Stream,
        }
    }

    pub(crate) fn is_down(&self, now: Instant) -> bool {
        self.down_until
            .lock()
            .map(|g| g.is_some_and(|t| t > now))
            .unwrap_or(false)
    }

    pub(crate) fn mark(&self, down: bool) {
        if let Ok(mut g) = self.down_until.lock() {
            *g = down.then(|| Instant::now() + DOWN_FOR);
        }
    }
}

/// Parses `HOST:PORT` or `[V6]:PORT`.
fn parse_host_port(s: &str, whole: &str) -> Result<(String, u16), ForwardError> {
    let bad = || ForwardError::Usage(format!("{whole:?} is not a target; write HOST:PORT"));
    let (host, port) = if let Ok(sa) = s.parse::<SocketAddr>() {
        (sa.ip().to_string(), sa.port())
    } else {
        let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.contains(':') {
            return Err(bad());
        }
        net::check_name(h).map_err(|why| ForwardError::Usage(format!("{whole:?}: {why}")))?;
        (
            h.to_string(),
            net::parse_port(p).map_err(ForwardError::Usage)?,
        )
    };
    if port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

/// Parses a TARGET: `HOST:PORT`, `tcp:HOST:PORT`, `[V6]:PORT`,
/// `udp:HOST:PORT`, `tls:HOST:PORT`, `unix:PATH`, `exec:PROGRAM ARGS…`,
/// `sh:COMMAND`. An `exec:` program must exist.
///
/// # Errors
/// A sentence for a spelling that is wrong, or a program that is missing.
pub fn parse_target(s: &str) -> Result<Target, ForwardError> {
    let usage = ForwardError::Usage;
    let kind = if let Some(r) = s.strip_prefix("udp:") {
        let (h, p) = parse_host_port(r, s)?;
        TargetKind::Udp(h, p)
    } else if let Some(r) = s.strip_prefix("tls:") {
        let (h, p) = parse_host_port(r, s)?;
        TargetKind::Tls(h, p)
    } else if let Some(r) = s.strip_prefix("unix:") {
        TargetKind::Unix(UnixAddr::parse(r)?)
    } else if let Some(r) = s.strip_prefix("exec:") {
        TargetKind::Exec(child::parse_exec(r).map_err(|e| usage(format!("{s:?}: {e}")))?)
    } else if let Some(r) = s.strip_prefix("sh:") {
        TargetKind::Exec(child::parse_sh(r).map_err(|e| usage(format!("{s:?}: {e}")))?)
    } else {
        let (h, p) = parse_host_port(s.strip_prefix("tcp:").unwrap_or(s), s)?;
        TargetKind::Tcp(h, p)
    };
    Ok(Target {
        kind,
        down_until: Mutex::new(None),
    })
}

/// A target list: several targets, each parsed.
///
/// # Errors
/// The first bad one.
pub fn parse_targets<S: AsRef<str>>(list: &[S]) -> Result<Vec<Target>, ForwardError> {
    list.iter().map(|t| parse_target(t.as_ref())).collect()
}

/// Where `forward` listens.
#[derive(Debug, Clone)]
pub enum Listen {
    /// `[tcp:][ADDR:]PORT`.
    Tcp(BindAddr),
    /// `udp:[ADDR:]PORT`.
    Udp(BindAddr),
    /// `unix:PATH` or `unix:@name`.
    Unix(UnixAddr),
}

impl Listen {
    /// Stream or datagrams.
    pub fn proto(&self) -> Proto {
        match self {
            Listen::Udp(_) => Proto::Udp,
            _ => Proto::Stream,
        }
    }
}

/// Parses a LISTEN spelling.
///
/// # Errors
/// A sentence for a spelling that is wrong.
pub fn parse_listen(s: &str) -> Result<Listen, ForwardError> {
    if let Some(r) = s.strip_prefix("unix:") {
        return Ok(Listen::Unix(UnixAddr::parse(r)?));
    }
    let bind = |r: &str| r.parse::<BindAddr>().map_err(ForwardError::Usage);
    Ok(match s.strip_prefix("udp:") {
        Some(r) => Listen::Udp(bind(r)?),
        None => Listen::Tcp(bind(s.strip_prefix("tcp:").unwrap_or(s))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_spellings() {
        let t = parse_target("127.0.0.1:80").unwrap();
        assert_eq!(t.name(), "127.0.0.1:80");
        let t = parse_target("tcp:localhost:8080").unwrap();
        assert_eq!(t.name(), "localhost:8080");
        let t = parse_target("[::1]:22").unwrap();
        assert_eq!(t.name(), "[::1]:22");
        for bad in [
            "",
            "host",
            "host:0",
            "host:70000",
            ":80",
            "::1:80",
            "unix:",
            "exec:",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_target("udp:127.0.0.1:53").unwrap().proto(),
            Proto::Udp
        );
        assert_eq!(parse_target("tls:h:443").unwrap().name(), "tls:h:443");
        assert_eq!(
            parse_target("unix:/run/x.sock").unwrap().name(),
            "unix:/run/x.sock"
        );
        assert_eq!(parse_target("exec:cat").unwrap().name(), "exec:cat");
        assert!(parse_target("sh:cat | tr a b").is_ok());
        let e = parse_target("exec:/no/such/thing").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        assert!(matches!(parse_listen("8080").unwrap(), Listen::Tcp(_)));
        assert!(matches!(
            parse_listen("tcp:127.0.0.1:0").unwrap(),
            Listen::Tcp(_)
        ));
        assert!(matches!(parse_listen("udp:53").unwrap(), Listen::Udp(_)));
        assert!(matches!(parse_listen("unix:@x").unwrap(), Listen::Unix(_)));
    }
}
