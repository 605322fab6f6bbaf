//! SOCKS5 (RFC 1928, with RFC 1929 username/password) and SOCKS4/4a, both
//! sides, as bytes in and bytes out. Pure: no I/O. The client side is a
//! step machine ([`Socks5Client`]; SOCKS4 is one request and one 8-byte
//! reply, [`socks4_request`] and [`socks4_reply`]) that says how many
//! bytes it wants next, so a driver reads exactly those and never consumes
//! a byte of the tunnel that follows the reply. The server side parses
//! requests from a buffer and says how much it used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// SOCKS version 5.
pub const V5: u8 = 5;
/// SOCKS version 4.
pub const V4: u8 = 4;
/// No authentication.
pub const NO_AUTH: u8 = 0x00;
/// RFC 1929 username/password.
pub const USER_PASS: u8 = 0x02;
/// No acceptable method.
pub const NO_METHOD: u8 = 0xff;
/// The CONNECT command.
pub const CMD_CONNECT: u8 = 1;
/// The BIND command.
pub const CMD_BIND: u8 = 2;
/// The UDP ASSOCIATE command.
pub const CMD_UDP: u8 = 3;
/// Address type: IPv4.
pub const ATYP_V4: u8 = 1;
/// Address type: a domain name.
pub const ATYP_NAME: u8 = 3;
/// Address type: IPv6.
pub const ATYP_V6: u8 = 4;

/// Where a tunnel should lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// An address.
    Addr(SocketAddr),
    /// A name and port, resolved by the proxy.
    Name(String, u16),
}

impl Dest {
    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Dest::Addr(a) => a.port(),
            Dest::Name(_, p) => *p,
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Addr(a) => write!(f, "{}", crate::net::show_addr(*a)),
            Dest::Name(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            Dest::Name(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// A SOCKS5 reply code (`REP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 0: succeeded.
    Ok,
    /// 1: general SOCKS server failure.
    Failure,
    /// 2: connection not allowed by ruleset.
    NotAllowed,
    /// 3: network unreachable.
    NetUnreachable,
    /// 4: host unreachable.
    HostUnreachable,
    /// 5: connection refused.
    Refused,
    /// 6: TTL expired.
    TtlExpired,
    /// 7: command not supported.
    CommandNotSupported,
    /// 8: address type not supported.
    AddressNotSupported,
    /// Anything else.
    Other(u8),
}

impl Reply {
    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Reply::Ok => 0,
            Reply::Failure => 1,
            Reply::NotAllowed => 2,
            Reply::NetUnreachable => 3,
            Reply::HostUnreachable => 4,
            Reply::Refused => 5,
            Reply::TtlExpired => 6,
            Reply::CommandNotSupported => 7,
            Reply::AddressNotSupported => 8,
            Reply::Other(c) => c,
        }
    }

    /// The code read from the wire.
    pub fn from_code(c: u8) -> Reply {
        match c {
            0 => Reply::Ok,
            1 => Reply::Failure,
            2 => Reply::NotAllowed,
            3 => Reply::NetUnreachable,
            4 => Reply::HostUnreachable,
            5 => Reply::Refused,
            6 => Reply::TtlExpired,
            7 => Reply::CommandNotSupported,
            8 => Reply::AddressNotSupported,
            c => Reply::Other(c),
        }
    }

    /// What the code means, in words.
    pub fn text(self) -> String {
        match self {
            Reply::Ok => "succeeded".into(),
            Reply::Failure => "general SOCKS server failure".into(),
            Reply::NotAllowed => "not allowed by the proxy's rules".into(),
            Reply::NetUnreachable => "network unreachable".into(),
            Reply::HostUnreachable => "host unreachable".into(),
            Reply::Refused => "connection refused".into(),
            Reply::TtlExpired => "TTL expired (timed out)".into(),
            Reply::CommandNotSupported => "command not supported".into(),
            Reply::AddressNotSupported => "address type not supported".into(),
            Reply::Other(c) => format!("unknown reply code {c}"),
        }
    }
}

/// What went wrong in a SOCKS handshake, seen from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// The peer does not speak this SOCKS version; its first bytes.
    NotSocks(Vec<u8>),
    /// The proxy accepts none of the offered methods (it wants a password
    /// we do not have, or refuses us).
    NoMethod {
        /// Whether we offered a username and password.
        offered_auth: bool,
    },
    /// The username and password were refused.
    AuthFailed,
    /// The proxy could not (or would not) reach the destination.
    Refused(Reply),
    /// SOCKS4's refusal (codes 91 to 93).
    Refused4(u8),
    /// Bytes that break the protocol.
    Malformed(&'static str),
    /// A name, username or password too long for the protocol.
    TooLong(&'static str),
}

/// What a client step machine wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes, then read [`Socks5Client::want`] bytes.
    Send(Vec<u8>),
    /// Read [`Socks5Client::want`] more bytes.
    Read,
    /// The tunnel is open; the proxy's bound address, if it said one.
    Done(Option<Dest>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S5 {
    Method,
    Auth,
    ReplyHead,
    NameLen,
    ReplyRest(u8),
}

/// The client side of a SOCKS5 CONNECT.
#[derive(Debug, Clone)]
pub struct Socks5Client {
    state: S5,
    dest: Dest,
    creds: Option<(String, String)>,
    want: usize,
    /// The reply code, once the head is read.
    rep: u8,
}

impl Socks5Client {
    /// A handshake to `dest`, offering username/password when `creds`.
    ///
    /// # Errors
    /// A name over 255 bytes, or a username or password over 255 bytes.
    pub fn new(
        dest: Dest,
        creds: Option<(String, String)>,
    ) -> Result<(Socks5Client, Vec<u8>), Fail> {
        if let Dest::Name(n, _) = &dest {
            if n.is_empty() || n.len() > 255 {
                return Err(Fail::TooLong("a SOCKS5 host name is 1 to 255 bytes"));
            }
        }
        if let Some((u, p)) = &creds {
            if u.is_empty() || u.len() > 255 || p.len() > 255 {
                return Err(Fail::TooLong(
                    "a SOCKS5 username is 1 to 255 bytes and a password at most 255",
                ));
            }
        }
        let greeting = if creds.is_some() {
            vec![V5, 2, NO_AUTH, USER_PASS]
        } else {
            vec![V5, 1, NO_AUTH]
        };
        Ok((
            Socks5Client {
                state: S5::Method,
                dest,
                creds,
                want: 2,
                rep: 0,
            },
            greeting,
        ))
    }

    /// How many bytes to read next (exactly).
    pub fn want(&self) -> usize {
        self.want
    }

    /// Takes exactly [`Socks5Client::want`] bytes.
    ///
    /// # Errors
    /// The proxy's refusal or a broken reply.
    pub fn feed(&mut self, b: &[u8]) -> Result<Step, Fail> {
        if b.len() != self.want {
            return Err(Fail::Malformed("a short read"));
        }
        match self.state {
            S5::Method => {
                if b[0] != V5 {
                    return Err(Fail::NotSocks(b.to_vec()));
                }
                match b[1] {
                    NO_AUTH => self.request(),
                    USER_PASS => match &self.creds {
                        Some((u, p)) => {
                            let mut out = vec![1, u.len() as u8];
                            out.extend_from_slice(u.as_bytes());
                            out.push(p.len() as u8);
                            out.extend_from_slice(p.as_bytes());
                            self.state = S5::Auth;
                            self.want = 2;
                            Ok(Step::Send(out))
                        }
                        None => Err(Fail::NoMethod {
                            offered_auth: false,
                        }),
                    },
                    NO_METHOD => Err(Fail::NoMethod {
                        offered_auth: self.creds.is_some(),
                    }),
                    _ => Err(Fail::Malformed(
                        "the proxy chose a method that was not offered",
                    )),
                }
            }
            S5::Auth => {
                if b[1] != 0 {
                    return Err(Fail::AuthFailed);
                }
                self.request()
            }
            S5::ReplyHead => {
                if b[0] != V5 {
                    return Err(Fail::Malformed("the reply is not SOCKS5"));
                }
                self.rep = b[1];
                // The reply's address comes even with a refusal; read it
                // so the error is about the code, not a short read.
                match b[3] {
                    ATYP_V4 => self.rest(b[3], 4 + 2),
                    ATYP_V6 => self.rest(b[3], 16 + 2),
                    ATYP_NAME => {
                        self.state = S5::NameLen;
                        self.want = 1;
                        Ok(Step::Read)
                    }
                    _ if self.rep != 0 => Err(Fail::Refused(Reply::from_code(self.rep))),
                    _ => Err(Fail::Malformed("an unknown address type in the reply")),
                }
            }
            S5::NameLen => self.rest(ATYP_NAME, usize::from(b[0]) + 2),
            S5::ReplyRest(atyp) => {
                if self.rep != 0 {
                    return Err(Fail::Refused(Reply::from_code(self.rep)));
                }
                Ok(Step::Done(parse_addr(atyp, b)))
            }
        }
    }

    fn rest(&mut self, atyp: u8, n: usize) -> Result<Step, Fail> {
        self.state = S5::ReplyRest(atyp);
        self.want = n;
        Ok(Step::Read)
    }

    fn request(&mut self) -> Result<Step, Fail> {
        let mut out = vec![V5, CMD_CONNECT, 0];
        put_dest(&mut out, &self.dest);
        self.state = S5::ReplyHead;
        self.want = 4;
        Ok(Step::Send(out))
    }
}

/// Appends `ATYP ADDR PORT`.
pub fn put_dest(out: &mut Vec<u8>, dest: &Dest) {
    match dest {
        Dest::Addr(SocketAddr::V4(a)) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&a.ip().octets());
        }
        Dest::Addr(SocketAddr::V6(a)) => {
            out.push(ATYP_V6);
            out.extend_from_slice(&a.ip().octets());
        }
        Dest::Name(n, _) => {
            out.push(ATYP_NAME);
            out.push(n.len().min(255) as u8);
            out.extend_from_slice(&n.as_bytes()[..n.len().min(255)]);
        }
    }
    out.extend_from_slice(&dest.port().to_be_bytes());
}

/// `ADDR PORT` of address type `atyp` (for a name, `b` starts after the
/// length byte).
fn parse_addr(atyp: u8, b: &[u8]) -> Option<Dest> {
    let port = u16::from_be_bytes([b[b.len() - 2], b[b.len() - 1]]);
    let a = &b[..b.len() - 2];
    match atyp {
        ATYP_V4 => Some(Dest::Addr(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            port,
        ))),
        ATYP_V6 => {
            let o: [u8; 16] = a.try_into().ok()?;
            Some(Dest::Addr(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(o)),
                port,
            )))
        }
        _ => Some(Dest::Name(String::from_utf8_lossy(a).into_owned(), port)),
    }
}

/// The client side of a SOCKS4 or SOCKS4a CONNECT: one request, one
/// 8-byte reply.
///
/// # Errors
/// A user id or name with a NUL byte or over 255 bytes, or an IPv6
/// destination (SOCKS4 has none).
pub fn socks4_request(dest: &Dest, user: &str) -> Result<Vec<u8>, Fail> {
    if user.len() > 255 || user.contains('\0') {
        return Err(Fail::TooLong(
            "a SOCKS4 user id is at most 255 bytes, with no NUL",
        ));
    }
    let mut out = vec![V4, CMD_CONNECT];
    out.extend_from_slice(&dest.port().to_be_bytes());
    match dest {
        Dest::Addr(SocketAddr::V4(a)) => {
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(user.as_bytes());
            out.push(0);
        }
        Dest::Addr(SocketAddr::V6(_)) => {
            return Err(Fail::TooLong(
                "SOCKS4 cannot carry an IPv6 address; use socks5://",
            ))
        }
        Dest::Name(n, _) => {
            if n.is_empty() || n.len() > 255 || n.contains('\0') {
                return Err(Fail::TooLong("a SOCKS4a host name is 1 to 255 bytes"));
            }
            // 0.0.0.x with x != 0 says "the name follows" (SOCKS4a).
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(user.as_bytes());
            out.push(0);
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
    }
    Ok(out)
}

/// Checks a SOCKS4 reply (8 bytes).
///
/// # Errors
/// Not a SOCKS4 reply, or a refusal.
pub fn socks4_reply(b: &[u8; 8]) -> Result<(), Fail> {
    if b[0] != 0 {
        return Err(Fail::NotSocks(b.to_vec()));
    }
    match b[1] {
        90 => Ok(()),
        91..=93 => Err(Fail::Refused4(b[1])),
        _ => Err(Fail::Malformed("an unknown SOCKS4 reply code")),
    }
}

/// What SOCKS4's refusal codes mean.
pub fn socks4_text(code: u8) -> &'static str {
    match code {
        91 => "request rejected or failed",
        92 => "rejected: the proxy cannot reach the client's identd",
        93 => "rejected: the identd user id does not match",
        _ => "unknown SOCKS4 reply",
    }
}

// ---------------------------------------------------------------- server

/// A parse that needs more bytes, or a result and the bytes it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Not enough bytes yet.
    More,
    /// The value and how many bytes it took.
    Done(T, usize),
}

/// The methods a SOCKS5 client offered (after the version byte 5).
///
/// # Errors
/// A greeting with no methods.
pub fn parse_greeting(b: &[u8]) -> Result<Parsed<Vec<u8>>, &'static str> {
    if b.len() < 2 {
        return Ok(Parsed::More);
    }
    let n = usize::from(b[1]);
    if n == 0 {
        return Err("a SOCKS5 greeting that offers no methods");
    }
    if b.len() < 2 + n {
        return Ok(Parsed::More);
    }
    Ok(Parsed::Done(b[2..2 + n].to_vec(), 2 + n))
}

/// A username and password as sent (bytes, not necessarily text).
pub type UserPass = (Vec<u8>, Vec<u8>);

/// An RFC 1929 username/password request.
///
/// # Errors
/// A wrong subnegotiation version.
pub fn parse_user_pass(b: &[u8]) -> Result<Parsed<UserPass>, &'static str> {
    if b.is_empty() {
        return Ok(Parsed::More);
    }
    if b[0] != 1 {
        return Err("a username/password request of an unknown version");
    }
    let Some(&ulen) = b.get(1) else {
        return Ok(Parsed::More);
    };
    let ulen = usize::from(ulen);
    let Some(&plen) = b.get(2 + ulen) else {
        return Ok(Parsed::More);
    };
    let plen = usize::from(plen);
    let end = 3 + ulen + plen;
    if b.len() < end {
        return Ok(Parsed::More);
    }
    Ok(Parsed::Done(
        (b[2..2 + ulen].to_vec(), b[3 + ulen..end].to_vec()),
        end,
    ))
}

/// A SOCKS5 request: the command and the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request5 {
    /// CONNECT, BIND or UDP ASSOCIATE.
    pub cmd: u8,
    /// Where to.
    pub dest: Dest,
}

/// Why a SOCKS5 request cannot be served, with the reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal5 {
    /// The reply code to send back.
    pub reply: Reply,
    /// For the log.
    pub why: &'static str,
}

/// Parses a SOCKS5 request.
///
/// # Errors
/// The refusal to send: a wrong version, an unknown address type, an
/// empty name, or a name that is not text.
pub fn parse_request5(b: &[u8]) -> Result<Parsed<Request5>, Refusal5> {
    let refuse = |reply, why| Refusal5 { reply, why };
    if b.len() < 5 {
        return Ok(Parsed::More);
    }
    if b[0] != V5 {
        return Err(refuse(Reply::Failure, "a request that is not SOCKS5"));
    }
    let (dest, end) = match parse_dest_at(b, 3)? {
        Parsed::Done(d, end) => (d, end),
        Parsed::More => return Ok(Parsed::More),
    };
    Ok(Parsed::Done(Request5 { cmd: b[1], dest }, end))
}

/// `ATYP DST.ADDR DST.PORT` starting at `b[at]` (offset 3 in a request and
/// in a UDP datagram's header), and where it ends.
fn parse_dest_at(b: &[u8], at: usize) -> Result<Parsed<Dest>, Refusal5> {
    let refuse = |reply, why| Refusal5 { reply, why };
    let Some(&atyp) = b.get(at) else {
        return Ok(Parsed::More);
    };
    let (start, len) = match atyp {
        ATYP_V4 => (at + 1, 4),
        ATYP_V6 => (at + 1, 16),
        ATYP_NAME => match b.get(at + 1) {
            Some(&n) => (at + 2, usize::from(n)),
            None => return Ok(Parsed::More),
        },
        _ => {
            return Err(refuse(
                Reply::AddressNotSupported,
                "an unknown address type",
            ))
        }
    };
    let end = start + len + 2;
    if b.len() < end {
        return Ok(Parsed::More);
    }
    let port = u16::from_be_bytes([b[end - 2], b[end - 1]]);
    let a = &b[start..start + len];
    let dest = match atyp {
        ATYP_V4 => Dest::Addr(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            port,
        )),
        ATYP_V6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            Dest::Addr(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => {
            if a.is_empty() {
                return Err(refuse(Reply::HostUnreachable, "an empty host name"));
            }
            match std::str::from_utf8(a) {
                Ok(n) => Dest::Name(n.to_string(), port),
                Err(_) => {
                    return Err(refuse(
                        Reply::HostUnreachable,
                        "a host name that is not text",
                    ))
                }
            }
        }
    };
    Ok(Parsed::Done(dest, end))
}

/// A datagram a client sent to a UDP association (RFC 1928 section 7):
/// where it goes, and where its data starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpRequest {
    /// The fragment number; anything but 0 is dropped (this proxy does
    /// not reassemble, which the RFC allows).
    pub frag: u8,
    /// Where the data goes.
    pub dest: Dest,
    /// The offset of the data in the datagram.
    pub data_at: usize,
}

/// Parses a client's UDP datagram header: `RSV RSV FRAG ATYP ADDR PORT`.
///
/// # Errors
/// A datagram too short for its header, an unknown address type, or a
/// name that is empty or not text.
pub fn parse_udp(b: &[u8]) -> Result<UdpRequest, &'static str> {
    if b.len() < 4 {
        return Err("a datagram shorter than a SOCKS5 UDP header");
    }
    match parse_dest_at(b, 3) {
        Ok(Parsed::Done(dest, end)) => Ok(UdpRequest {
            frag: b[2],
            dest,
            data_at: end,
        }),
        Ok(Parsed::More) => Err("a datagram shorter than its SOCKS5 UDP header"),
        Err(r) => Err(r.why),
    }
}

/// Most bytes of a UDP reply header (`RSV RSV FRAG` and an IPv6 address).
pub const UDP_HEADER_MAX: usize = 3 + 1 + 16 + 2;

/// The header of a datagram from `from` (IPv4-mapped shown as IPv4), for
/// the client: written at the end of `out`; returns where it starts.
pub fn put_udp_header(out: &mut [u8; UDP_HEADER_MAX], from: SocketAddr) -> usize {
    let from = crate::net::unmap(from);
    let port = from.port().to_be_bytes();
    let at = match from.ip() {
        IpAddr::V4(ip) => {
            out[UDP_HEADER_MAX - 6..UDP_HEADER_MAX - 2].copy_from_slice(&ip.octets());
            out[UDP_HEADER_MAX - 7] = ATYP_V4;
            UDP_HEADER_MAX - 10
        }
        IpAddr::V6(ip) => {
            out[4..UDP_HEADER_MAX - 2].copy_from_slice(&ip.octets());
            out[3] = ATYP_V6;
            0
        }
    };
    out[at..at + 3].fill(0);
    out[UDP_HEADER_MAX - 2..].copy_from_slice(&port);
    at
}

/// A SOCKS5 reply with `bound` as the address (0.0.0.0:0 when `None`).
pub fn reply5(reply: Reply, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut out = vec![V5, reply.code(), 0];
    let b = bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    put_dest(&mut out, &Dest::Addr(b));
    out
}

/// A SOCKS4/4a request: the destination and the user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request4 {
    /// The command (1 CONNECT, 2 BIND).
    pub cmd: u8,
    /// Where to.
    pub dest: Dest,
    /// The user id.
    pub user: Vec<u8>,
}

/// Longest SOCKS4 user id or 4a name accepted.
const MAX_FIELD4: usize = 255;

/// Parses a SOCKS4 or 4a request.
///
/// # Errors
/// A user id or name over 255 bytes, or a name that is empty or not text.
pub fn parse_request4(b: &[u8]) -> Result<Parsed<Request4>, &'static str> {
    if b.len() < 9 {
        return Ok(Parsed::More);
    }
    let port = u16::from_be_bytes([b[2], b[3]]);
    let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
    let Some(nul) = memchr::memchr(0, &b[8..]) else {
        return if b.len() - 8 > MAX_FIELD4 {
            Err("a SOCKS4 user id over 255 bytes")
        } else {
            Ok(Parsed::More)
        };
    };
    let user = b[8..8 + nul].to_vec();
    let mut end = 8 + nul + 1;
    let o = ip.octets();
    let dest = if o[0] == 0 && o[1] == 0 && o[2] == 0 && o[3] != 0 {
        let rest = &b[end..];
        let Some(nul) = memchr::memchr(0, rest) else {
            return if rest.len() > MAX_FIELD4 {
                Err("a SOCKS4a host name over 255 bytes")
            } else {
                Ok(Parsed::More)
            };
        };
        let name = std::str::from_utf8(&rest[..nul])
            .map_err(|_| "a SOCKS4a host name that is not text")?;
        if name.is_empty() {
            return Err("an empty SOCKS4a host name");
        }
        end += nul + 1;
        Dest::Name(name.to_string(), port)
    } else {
        Dest::Addr(SocketAddr::new(IpAddr::V4(ip), port))
    };
    Ok(Parsed::Done(
        Request4 {
            cmd: b[1],
            dest,
            user,
        },
        end,
    ))
}

/// A SOCKS4 reply: 90 granted, 91 rejected.
pub fn reply4(granted: bool) -> [u8; 8] {
    [0, if granted { 90 } else { 91 }, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_headers_parse_and_build() {
        // IPv4, a name, IPv6; the data offset after each.
        let v4 = [0, 0, 0, 1, 127, 0, 0, 1, 0, 53, b'q'];
        let r = parse_udp(&v4).unwrap();
        assert_eq!(r.frag, 0);
        assert_eq!(r.dest, Dest::Addr("127.0.0.1:53".parse().unwrap()));
        assert_eq!(&v4[r.data_at..], b"q");
        let mut name = vec![0, 0, 2, 3, 4];
        name.extend_from_slice(b"host\x01\xbbdata");
        let r = parse_udp(&name).unwrap();
        assert_eq!(
            (r.frag, r.dest.clone()),
            (2, Dest::Name("host".into(), 443))
        );
        assert_eq!(&name[r.data_at..], b"data");
        let mut v6 = vec![0, 0, 0, 4];
        v6.extend_from_slice(&[0; 15]);
        v6.extend_from_slice(&[1, 0, 7]);
        let r = parse_udp(&v6).unwrap();
        assert_eq!(r.dest, Dest::Addr("[::1]:7".parse().unwrap()));
        assert_eq!(r.data_at, v6.len());
        // Short, cut in the address, unknown type, empty name.
        for bad in [
            &[0u8, 0, 0][..],
            &[0, 0, 0, 1, 10, 0][..],
            &[0, 0, 0, 9, 1, 2, 3, 4, 0, 1][..],
            &[0, 0, 0, 3, 0, 0, 1][..],
            &[0, 0, 0, 3, 200, b'a'][..],
        ] {
            assert!(parse_udp(bad).is_err(), "{bad:?}");
        }
        // A reply header, IPv4-mapped sources shown as IPv4; it parses back.
        for from in ["127.1.2.3:9", "[::ffff:127.1.2.3]:9", "[::1]:9"] {
            let from: SocketAddr = from.parse().unwrap();
            let mut h = [0u8; UDP_HEADER_MAX];
            let at = put_udp_header(&mut h, from);
            let r = parse_udp(&h[at..]).unwrap();
            let want = match from {
                SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
                    "127.1.2.3:9".parse().unwrap()
                }
                a => a,
            };
            assert_eq!(
                (r.frag, r.dest, r.data_at),
                (0, Dest::Addr(want), UDP_HEADER_MAX - at)
            );
        }
    }

    fn run(c: &mut Socks5Client, server: &[&[u8]]) -> Result<Vec<Step>, Fail> {
        let mut steps = Vec::new();
        let mut wire: Vec<u8> = server.concat();
        while !wire.is_empty() {
            let n = c.want();
            let take: Vec<u8> = wire.drain(..n.min(wire.len())).collect();
            let s = c.feed(&take)?;
            steps.push(s);
        }
        Ok(steps)
    }

    #[test]
    fn a_client_handshake_with_auth_and_a_domain_reply() {
        let dest = Dest::Name("example.test".into(), 443);
        let (mut c, hello) = Socks5Client::new(dest, Some(("u".into(), "pw".into()))).unwrap();
        assert_eq!(hello, [5, 2, 0, 2]);
        let mut reply = vec![5, 0, 0, ATYP_NAME, 9];
        reply.extend_from_slice(b"proxy.lan");
        reply.extend_from_slice(&[0x04, 0x38]);
        let steps = run(&mut c, &[&[5, 2], &[1, 0], &reply]).unwrap();
        assert_eq!(steps[0], Step::Send(vec![1, 1, b'u', 2, b'p', b'w']));
        let mut req = vec![5, 1, 0, 3, 12];
        req.extend_from_slice(b"example.test");
        req.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(steps[1], Step::Send(req));
        assert_eq!(
            steps.last().unwrap(),
            &Step::Done(Some(Dest::Name("proxy.lan".into(), 1080)))
        );
    }

    #[test]
    fn refusals_and_wrong_protocols_are_named() {
        let dest = Dest::Addr("127.0.0.1:22".parse().unwrap());
        let (mut c, _) = Socks5Client::new(dest.clone(), None).unwrap();
        assert_eq!(c.feed(b"HT"), Err(Fail::NotSocks(b"HT".to_vec())));
        let (mut c, _) = Socks5Client::new(dest.clone(), None).unwrap();
        assert_eq!(
            c.feed(&[5, 0xff]),
            Err(Fail::NoMethod {
                offered_auth: false
            })
        );
        let (mut c, _) = Socks5Client::new(dest.clone(), Some(("a".into(), "b".into()))).unwrap();
        c.feed(&[5, 2]).unwrap();
        assert_eq!(c.feed(&[1, 1]), Err(Fail::AuthFailed));
        let (mut c, _) = Socks5Client::new(dest, None).unwrap();
        let r = run(&mut c, &[&[5, 0], &[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]]);
        assert_eq!(r, Err(Fail::Refused(Reply::Refused)));
        assert!(Socks5Client::new(Dest::Name("x".repeat(256), 1), None).is_err());
    }

    #[test]
    fn server_parsers_take_pieces_and_refuse_garbage() {
        assert_eq!(parse_greeting(&[5]), Ok(Parsed::More));
        assert!(parse_greeting(&[5, 0]).is_err());
        let mut all = vec![5, 255];
        all.extend(0..=254u8);
        assert_eq!(
            parse_greeting(&all),
            Ok(Parsed::Done((0..=254).collect(), 257))
        );
        let mut req = vec![5, 1, 0, 3, 0, 0, 80];
        assert_eq!(
            parse_request5(&req).unwrap_err().reply,
            Reply::HostUnreachable
        );
        req[3] = 9;
        assert_eq!(
            parse_request5(&req).unwrap_err().reply,
            Reply::AddressNotSupported
        );
        let mut long = vec![5, 1, 0, 3, 255];
        long.extend(std::iter::repeat_n(b'a', 255));
        assert_eq!(parse_request5(&long), Ok(Parsed::More));
        long.extend_from_slice(&[0, 80]);
        match parse_request5(&long).unwrap() {
            Parsed::Done(r, n) => {
                assert_eq!(n, long.len());
                assert_eq!(r.dest, Dest::Name("a".repeat(255), 80));
            }
            Parsed::More => panic!("complete"),
        }
        let r4 = socks4_request(&Dest::Name("h.test".into(), 22), "me").unwrap();
        match parse_request4(&r4).unwrap() {
            Parsed::Done(r, n) => {
                assert_eq!(n, r4.len());
                assert_eq!(r.dest, Dest::Name("h.test".into(), 22));
                assert_eq!(r.user, b"me");
            }
            Parsed::More => panic!("complete"),
        }
        assert!(parse_request4(
            &[4, 1, 0, 80, 1, 2, 3, 4]
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b'x', 300))
                .collect::<Vec<_>>()
        )
        .is_err());
    }
}
