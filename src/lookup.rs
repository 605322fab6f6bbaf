//! Host and service lookups (seed 004): the local host name, names to
//! addresses and back through the system resolver (getaddrinfo and
//! getnameinfo, so `/etc/hosts` and nsswitch apply exactly as for other
//! programs), the services database, and direct DNS queries over UDP with a
//! TCP fallback (wire format by hickory-proto).

use std::ffi::{CStr, CString};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};

use crate::net::{self, describe, Family};
use crate::report::{json_array, json_str};

/// Where the services database lives.
const SERVICES_DB: &str = "/etc/services";

/// Lookup errors.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The system resolver failed.
    #[error(transparent)]
    Resolve(#[from] net::NetError),
    /// No name for an address.
    #[error("no name found for {0}")]
    NoName(IpAddr),
    /// No such service.
    #[error("no service named {name:?} for {proto} in {SERVICES_DB}")]
    NoService {
        /// The name.
        name: String,
        /// tcp or udp.
        proto: String,
    },
    /// No service on a port.
    #[error("no service is registered for port {port}/{proto} in {SERVICES_DB}")]
    NoPort {
        /// The port.
        port: u16,
        /// tcp or udp.
        proto: String,
    },
    /// The services database is missing.
    #[error("the services database {SERVICES_DB} is missing on this machine; install it (Debian: apt-get install netbase)")]
    NoServicesDb,
    /// A DNS server answered with an error code.
    #[error("{server} answered {code} for {name}")]
    Dns {
        /// The server.
        server: SocketAddr,
        /// The name asked for.
        name: String,
        /// NXDOMAIN, SERVFAIL, ...
        code: String,
    },
    /// A DNS server did not answer.
    #[error("{server} did not answer within {secs} s ({tries} tries); check the server address")]
    DnsTimeout {
        /// The server.
        server: SocketAddr,
        /// Seconds waited in all.
        secs: f64,
        /// Queries sent.
        tries: u32,
    },
    /// Anything else about DNS.
    #[error("DNS query to {server} failed ({reason})")]
    DnsOther {
        /// The server.
        server: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

impl crate::error::Failure for LookupError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            LookupError::Resolve(e) => e.kind(),
            LookupError::NoName(_)
            | LookupError::NoService { .. }
            | LookupError::NoPort { .. }
            | LookupError::NoServicesDb
            | LookupError::Dns { .. }
            | LookupError::DnsTimeout { .. }
            | LookupError::DnsOther { .. }
            | LookupError::Invalid(_) => crate::error::Kind::Runtime,
        }
    }
}

/// The local host name.
///
/// # Errors
/// When the system call fails.
pub fn hostname() -> Result<String, LookupError> {
    let mut buf = vec![0u8; 256];
    // SAFETY: gethostname writes at most len bytes into our buffer.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return Err(LookupError::Invalid(describe(
            &std::io::Error::last_os_error(),
        )));
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Every address of `name` from the system resolver, in its order, without
/// duplicates. An IP literal is returned as it is.
///
/// # Errors
/// Resolver errors; an empty name.
pub fn host(name: &str, family: Family) -> Result<Vec<IpAddr>, LookupError> {
    if name.trim().is_empty() {
        return Err(LookupError::Invalid(
            "the name is empty; give a host name or an IP address".into(),
        ));
    }
    let addrs = net::resolve(name, 0, family)?;
    let mut out: Vec<IpAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        if !out.contains(&a.ip()) {
            out.push(a.ip());
        }
    }
    Ok(out)
}

/// The name of `ip` from the system resolver (getnameinfo, NI_NAMEREQD).
///
/// # Errors
/// [`LookupError::NoName`] when there is none.
pub fn addr(ip: IpAddr) -> Result<String, LookupError> {
    let sa = socket2::SockAddr::from(SocketAddr::new(ip, 0));
    let mut host = vec![0 as libc::c_char; 1025];
    // SAFETY: getnameinfo reads the sockaddr we own and writes at most
    // host.len() bytes into our buffer.
    let r = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if r != 0 {
        return Err(LookupError::NoName(ip));
    }
    // SAFETY: getnameinfo NUL-terminated the buffer.
    Ok(unsafe { CStr::from_ptr(host.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

fn services_db_missing() -> bool {
    !std::path::Path::new(SERVICES_DB).exists()
}

/// Checks a protocol name.
fn proto_c(proto: &str) -> Result<CString, LookupError> {
    match proto {
        "tcp" | "udp" => Ok(CString::new(proto).unwrap_or_default()),
        other => Err(LookupError::Invalid(format!(
            "unknown protocol {other:?}; use tcp or udp"
        ))),
    }
}

/// The port of a service name (getservbyname).
///
/// # Errors
/// No such service, a missing database, a bad protocol.
pub fn service(name: &str, proto: &str) -> Result<u16, LookupError> {
    let p = proto_c(proto)?;
    if name.is_empty() || name.contains('\0') {
        return Err(LookupError::Invalid(
            "the service name is empty or invalid".into(),
        ));
    }
    if services_db_missing() {
        return Err(LookupError::NoServicesDb);
    }
    let n = CString::new(name).map_err(|_| LookupError::Invalid("invalid service name".into()))?;
    // SAFETY: getservbyname returns a pointer into static storage or null;
    // we read it at once, on this thread.
    let ent = unsafe { libc::getservbyname(n.as_ptr(), p.as_ptr()) };
    if ent.is_null() {
        return Err(LookupError::NoService {
            name: name.to_string(),
            proto: proto.to_string(),
        });
    }
    // SAFETY: ent is non-null; s_port is in network byte order.
    Ok(u16::from_be(unsafe { (*ent).s_port } as u16))
}

/// The service name of a port (getservbyport).
///
/// # Errors
/// No service on that port, a missing database, a bad protocol.
pub fn port(port: u16, proto: &str) -> Result<String, LookupError> {
    let p = proto_c(proto)?;
    if services_db_missing() {
        return Err(LookupError::NoServicesDb);
    }
    // SAFETY: as above; the port goes in network byte order.
    let ent = unsafe { libc::getservbyport(i32::from(port.to_be()), p.as_ptr()) };
    if ent.is_null() {
        return Err(LookupError::NoPort {
            port,
            proto: proto.to_string(),
        });
    }
    // SAFETY: s_name is a NUL-terminated string in static storage.
    Ok(unsafe { CStr::from_ptr((*ent).s_name) }
        .to_string_lossy()
        .into_owned())
}

/// One DNS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Record type (A, AAAA, MX, ...).
    pub rtype: String,
    /// Time to live, seconds.
    pub ttl: u32,
    /// The data as text (`10 mail.example.`, `192.0.2.1`, ...).
    pub data: String,
}

impl Answer {
    /// One line, dig-style: type, TTL, data, tab-separated.
    pub fn line(&self) -> String {
        format!("{}\t{}\t{}", self.rtype, self.ttl, self.data)
    }

    /// The answer as a JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"type\":{},\"ttl\":{},\"data\":{}}}",
            json_str(&self.rtype),
            self.ttl,
            json_str(&self.data)
        )
    }
}

/// A system-resolver lookup as one JSON object.
pub fn host_json(name: &str, addrs: &[String]) -> String {
    format!(
        "{{\"name\":{},\"source\":\"system\",\"addresses\":{}}}",
        json_str(name),
        json_array(addrs.iter().map(|a| json_str(a)))
    )
}

/// A direct DNS lookup as one JSON object.
pub fn dns_json(name: &str, server: SocketAddr, answers: &[Answer]) -> String {
    format!(
        "{{\"name\":{},\"server\":{},\"answers\":{}}}",
        json_str(name),
        json_str(&server.to_string()),
        json_array(answers.iter().map(Answer::json))
    )
}

/// Parses a `--type` value.
///
/// # Errors
/// An unsupported type.
pub fn record_type(s: &str) -> Result<RecordType, LookupError> {
    match s.to_ascii_uppercase().as_str() {
        "A" => Ok(RecordType::A),
        "AAAA" => Ok(RecordType::AAAA),
        "MX" => Ok(RecordType::MX),
        "TXT" => Ok(RecordType::TXT),
        "PTR" => Ok(RecordType::PTR),
        "ANY" => Ok(RecordType::ANY),
        "CNAME" => Ok(RecordType::CNAME),
        "NS" => Ok(RecordType::NS),
        other => Err(LookupError::Invalid(format!(
            "unsupported record type {other:?}; use A, AAAA, MX, TXT, PTR, CNAME, NS or ANY"
        ))),
    }
}

/// The reverse-lookup name of an address (`4.3.2.1.in-addr.arpa.`).
fn arpa(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

/// Asks `server` directly, as `dig` does: UDP first, retried on timeout,
/// then TCP when the answer is truncated.
///
/// # Errors
/// An error code from the server, no answer in time, a malformed reply.
pub fn dns(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
    tries: u32,
) -> Result<Vec<Answer>, LookupError> {
    let qname = match (rtype, name.parse::<IpAddr>()) {
        (RecordType::PTR, Ok(ip)) => arpa(ip),
        _ => name.to_string(),
    };
    let qname = Name::from_utf8(&qname)
        .map_err(|e| LookupError::Invalid(format!("{name:?} is not a valid DNS name ({e})")))?;
    // A random id, so a stray or spoofed reply is not taken for ours.
    let mut rnd = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rnd);
    let id = u16::from_be_bytes(rnd);
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(qname, rtype));
    let wire = msg.to_bytes().map_err(|e| LookupError::DnsOther {
        server,
        reason: e.to_string(),
    })?;
    let other = |reason: String| LookupError::DnsOther { server, reason };
    let bind = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| other(describe(&e)))?;
    sock.connect(server).map_err(|e| other(describe(&e)))?;
    let tries = tries.max(1);
    let per_try = timeout / tries;
    let mut buf = vec![0u8; 4096];
    let mut reply = None;
    'tries: for _ in 0..tries {
        sock.send(&wire).map_err(|e| other(describe(&e)))?;
        let deadline = Instant::now() + per_try;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                continue 'tries;
            }
            let _ = sock.set_read_timeout(Some(left));
            match sock.recv(&mut buf) {
                Ok(n) => match Message::from_bytes(&buf[..n]) {
                    // Our own query coming back: an echo server, not DNS.
                    Ok(m) if m.id() == id && m.message_type() == MessageType::Query => {
                        return Err(other(
                            "it sent our own query back, so it is not a DNS server (an echo server?)"
                                .into(),
                        ))
                    }
                    // Ignore stray or spoofed replies with another id.
                    Ok(m) if m.id() == id => {
                        reply = Some(m);
                        break 'tries;
                    }
                    _ => continue,
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue 'tries
                }
                Err(e) => return Err(other(describe(&e))),
            }
        }
    }
    let mut m = reply.ok_or(LookupError::DnsTimeout {
        server,
        secs: timeout.as_secs_f64(),
        tries,
    })?;
    if m.truncated() {
        m = dns_tcp(server, &wire, id, timeout)?;
    }
    if m.response_code() != ResponseCode::NoError {
        return Err(LookupError::Dns {
            server,
            name: name.to_string(),
            code: m.response_code().to_string(),
        });
    }
    Ok(m.answers()
        .iter()
        .map(|r| Answer {
            rtype: r.record_type().to_string(),
            ttl: r.ttl(),
            data: r.data().to_string(),
        })
        .collect())
}

/// The same query over TCP (2-byte length prefix), for truncated answers.
fn dns_tcp(
    server: SocketAddr,
    wire: &[u8],
    id: u16,
    timeout: Duration,
) -> Result<Message, LookupError> {
    let other = |reason: String| LookupError::DnsOther { server, reason };
    let mut s = TcpStream::connect_timeout(&server, timeout).map_err(|e| other(describe(&e)))?;
    let _ = s.set_read_timeout(Some(timeout));
    let mut out = (wire.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(wire);
    s.write_all(&out).map_err(|e| other(describe(&e)))?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(|e| other(describe(&e)))?;
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body).map_err(|e| other(describe(&e)))?;
    let m = Message::from_bytes(&body).map_err(|e| other(e.to_string()))?;
    if m.id() != id {
        return Err(other("the TCP answer has the wrong id".into()));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arpa_names() {
        assert_eq!(
            arpa("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa."
        );
        assert!(arpa("::1".parse().unwrap()).starts_with("1.0.0.0."));
        assert!(arpa("::1".parse().unwrap()).ends_with(".ip6.arpa."));
    }

    #[test]
    fn literals_and_bad_input() {
        assert_eq!(
            host("127.0.0.1", Family::Any).unwrap(),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert!(matches!(
            host("", Family::Any),
            Err(LookupError::Invalid(_))
        ));
        assert!(matches!(
            service("http", "sctp-ish"),
            Err(LookupError::Invalid(_))
        ));
        assert!(record_type("bogus").is_err());
        assert_eq!(record_type("aaaa").unwrap(), RecordType::AAAA);
    }
}
