//! HTTP proxying as bytes in and bytes out: the CONNECT request and its
//! response for the client side; bounded request heads, Basic
//! credentials and the absolute-form rewrite for the server side. Pure: no
//! I/O.

use base64::Engine as _;

use super::socks::{Dest, Parsed};

/// Longest request or response head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines accepted.
pub const MAX_HEADERS: usize = 100;

/// `Basic base64(user:pass)`.
pub fn basic(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The CONNECT request for `dest`, with credentials when given.
pub fn connect_request(dest: &Dest, creds: Option<(&str, &str)>) -> Vec<u8> {
    let authority = dest.to_string();
    let mut out = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((u, p)) = creds {
        out.push_str(&format!("Proxy-Authorization: {}\r\n", basic(u, p)));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Where a head ends (the index just past `\r\n\r\n`), if it does.
pub fn head_end(b: &[u8]) -> Option<usize> {
    memchr::memmem::find(b, b"\r\n\r\n").map(|i| i + 4)
}

/// How many bytes can be read next without reading past the end of a head
/// that `b` starts: 4, less the part of `\r\n\r\n` that `b` already
/// ends with. Reading that many at a time never takes a byte of what
/// follows the head.
pub fn safe_read(b: &[u8]) -> usize {
    const END: &[u8] = b"\r\n\r\n";
    let matched = (1..=3)
        .rev()
        .find(|&k| b.len() >= k && b[b.len() - k..] == END[..k])
        .unwrap_or(0);
    4 - matched
}

/// Whether a response head read so far is complete, cannot be HTTP, or is
/// too long: the reading can stop.
pub fn head_read_done(b: &[u8]) -> bool {
    b.ends_with(b"\r\n\r\n")
        || b.len() >= MAX_HEAD
        || (b.len() >= 5 && !b.starts_with(b"HTTP/"))
        || (!b.is_empty() && !b"HTTP/".starts_with(&b[..b.len().min(5)]))
}

/// A response's status line: the code and the reason text.
///
/// # Errors
/// A head that is not HTTP, or one past [`MAX_HEAD`] bytes.
pub fn parse_response(b: &[u8]) -> Result<Parsed<(u16, String)>, &'static str> {
    let Some(end) = head_end(&b[..b.len().min(MAX_HEAD)]) else {
        if b.len() >= MAX_HEAD {
            return Err("a response head over 16 KiB");
        }
        // Too little to tell yet, unless it already cannot be HTTP.
        if b.len() >= 5 && !b.starts_with(b"HTTP/") {
            return Err("not an HTTP response");
        }
        return Ok(Parsed::More);
    };
    let line_end = memchr::memmem::find(b, b"\r\n").unwrap_or(end);
    let line = std::str::from_utf8(&b[..line_end]).map_err(|_| "not an HTTP response")?;
    let mut parts = line.splitn(3, ' ');
    let (Some(v), Some(code)) = (parts.next(), parts.next()) else {
        return Err("not an HTTP response");
    };
    if !v.starts_with("HTTP/1.") {
        return Err("not an HTTP response");
    }
    let code: u16 = code
        .parse()
        .map_err(|_| "an HTTP status that is not a number")?;
    Ok(Parsed::Done(
        (code, parts.next().unwrap_or("").trim().to_string()),
        end,
    ))
}

/// A request head a proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `CONNECT`, `GET`, ...
    pub method: String,
    /// The request target as sent.
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request head is refused: the status to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    /// The HTTP status.
    pub status: u16,
    /// For the log and the response body.
    pub why: &'static str,
}

fn bad(status: u16, why: &'static str) -> Bad {
    Bad { status, why }
}

/// Parses a request head, bounded by [`MAX_HEAD`] and [`MAX_HEADERS`].
///
/// # Errors
/// The status to answer: 400 for a malformed head, 431 for one too large.
pub fn parse_request(b: &[u8]) -> Result<Parsed<RequestHead>, Bad> {
    let Some(end) = head_end(&b[..b.len().min(MAX_HEAD)]) else {
        return if b.len() >= MAX_HEAD {
            Err(bad(431, "request head over 16 KiB"))
        } else {
            Ok(Parsed::More)
        };
    };
    let text = std::str::from_utf8(&b[..end - 4])
        .map_err(|_| bad(400, "a request head that is not text"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(400, "a malformed request line"));
    };
    if method.is_empty() || target.is_empty() || !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(bad(400, "a malformed request line"));
    }
    let mut headers = Vec::new();
    for l in lines {
        if headers.len() >= MAX_HEADERS {
            return Err(bad(431, "more than 100 header lines"));
        }
        let Some((n, v)) = l.split_once(':') else {
            return Err(bad(400, "a header line without a colon"));
        };
        if n.is_empty() || n.contains(' ') {
            return Err(bad(400, "a malformed header name"));
        }
        headers.push((n.to_string(), v.trim().to_string()));
    }
    Ok(Parsed::Done(
        RequestHead {
            method: method.to_string(),
            target: target.to_string(),
            version: version.to_string(),
            headers,
        },
        end,
    ))
}

/// Splits `host:port` or `[v6]:port` (a CONNECT target) with a port from 1
/// to 65535.
///
/// # Errors
/// A missing or bad port, or an empty host.
pub fn authority(s: &str, default_port: Option<u16>) -> Result<(String, u16), Bad> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or(bad(400, "an unclosed [ in the host"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad(400, "a malformed host")),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad(400, "an IPv6 host must be in brackets")),
            None => (s, None),
        }
    };
    if host.is_empty() || crate::net::check_name(host).is_err() {
        return Err(bad(400, "a malformed host"));
    }
    let port = match (port, default_port) {
        (Some(p), _) => match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => n as u16,
            _ => return Err(bad(400, "a port outside 1 to 65535")),
        },
        (None, Some(d)) => d,
        (None, None) => return Err(bad(400, "CONNECT needs host:port")),
    };
    Ok((host.to_string(), port))
}

/// Splits an absolute-form target (`http://host[:port]/path`) into the
/// host, port and origin-form path.
///
/// # Errors
/// A target that is not `http://` (400; https goes through CONNECT).
pub fn absolute(target: &str) -> Result<(String, u16, String), Bad> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("HTTP://"))
        .ok_or(bad(
            400,
            "a proxy request must be CONNECT or an absolute http:// URL",
        ))?;
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let auth = auth.rsplit_once('@').map_or(auth, |(_, a)| a);
    let (h, p) = authority(auth, Some(80))?;
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok((h, p, path))
}

/// Headers a proxy must not pass on (hop-by-hop, and its own credentials).
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// The head to send the origin server for an absolute-form request: the
/// path in origin form, hop-by-hop headers dropped, one request per
/// connection (`Connection: close`).
pub fn origin_head(head: &RequestHead, path: &str) -> Vec<u8> {
    let mut out = format!("{} {} {}\r\n", head.method, path, head.version);
    for (n, v) in &head.headers {
        if !hop_by_hop(n) {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Compares two secrets in time that does not depend on where they differ
/// (only on their lengths).
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a `Proxy-Authorization` value carries exactly these credentials.
pub fn check_basic(value: Option<&str>, user: &str, pass: &str) -> bool {
    let Some(v) = value else { return false };
    let Some((scheme, token)) = v.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else {
        return false;
    };
    let want = format!("{user}:{pass}");
    same_secret(&raw, want.as_bytes())
}

/// A short response with a one-line body, then the connection closes.
pub fn response(status: u16, extra: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "Connection established",
        400 => "Bad Request",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    if status == 200 {
        return format!("HTTP/1.1 200 {reason}\r\n\r\n").into_bytes();
    }
    format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
        body.len() + 1
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_reads_never_pass_the_end_of_the_head() {
        let wire = b"HTTP/1.1 200 OK\r\n\r\nSSH-2.0-banner";
        let mut got = Vec::new();
        while !head_read_done(&got) {
            let n = safe_read(&got);
            got.extend_from_slice(&wire[got.len()..got.len() + n]);
        }
        assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(head_read_done(b"\x05\x00"));
        assert_eq!(safe_read(b"abc\r\n\r"), 1);
    }

    #[test]
    fn connect_requests_and_responses() {
        let req = connect_request(&Dest::Name("h.test".into(), 22), Some(("u", "p")));
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("CONNECT h.test:22 HTTP/1.1\r\nHost: h.test:22\r\n"));
        assert!(text.contains("Proxy-Authorization: Basic dTpw\r\n"));
        let v6 = connect_request(&Dest::Addr("[::1]:80".parse().unwrap()), None);
        assert!(String::from_utf8(v6)
            .unwrap()
            .starts_with("CONNECT [::1]:80 "));
        let ok = b"HTTP/1.1 200 Connection established\r\nX: y\r\n\r\nSSH-2.0";
        assert_eq!(
            parse_response(ok),
            Ok(Parsed::Done(
                (200, "Connection established".into()),
                ok.len() - 7
            ))
        );
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), Ok(Parsed::More));
        assert!(parse_response(b"\x05\x00\x05\x01\x00").is_err());
        assert!(parse_response(&vec![b'H'; MAX_HEAD]).is_err());
    }

    #[test]
    fn request_heads_are_bounded_and_checked() {
        let h = b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nProxy-Authorization: Basic dTpw\r\n\r\nhello";
        let Parsed::Done(head, used) = parse_request(h).unwrap() else {
            panic!("complete")
        };
        assert_eq!(used, h.len() - 5);
        assert_eq!(head.method, "CONNECT");
        assert!(check_basic(head.header("proxy-authorization"), "u", "p"));
        assert!(!check_basic(head.header("proxy-authorization"), "u", "q"));
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n"), Ok(Parsed::More));
        assert_eq!(
            parse_request(&vec![b'a'; MAX_HEAD]).unwrap_err().status,
            431
        );
        assert_eq!(parse_request(b"GET /\r\n\r\n").unwrap_err().status, 400);
        assert_eq!(authority("h:0", None).unwrap_err().status, 400);
        assert_eq!(authority("h:70000", None).unwrap_err().status, 400);
        assert_eq!(authority("[::1]:22", None).unwrap(), ("::1".into(), 22));
        assert_eq!(
            absolute("http://u@h.test:8080/x?y").unwrap(),
            ("h.test".into(), 8080, "/x?y".into())
        );
        assert_eq!(
            absolute("http://h.test").unwrap(),
            ("h.test".into(), 80, "/".into())
        );
        assert!(absolute("https://h.test/").is_err());
    }

    #[test]
    fn the_origin_head_drops_hop_by_hop_headers() {
        let Parsed::Done(head, _) = parse_request(
            b"GET http://h/x HTTP/1.1\r\nHost: h\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic x\r\nAccept: */*\r\n\r\n",
        )
        .unwrap() else {
            panic!("complete")
        };
        let out = String::from_utf8(origin_head(&head, "/x")).unwrap();
        assert_eq!(
            out,
            "GET /x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }
}
