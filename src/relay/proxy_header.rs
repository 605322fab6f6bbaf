//! The PROXY protocol header (haproxy's convention, versions 1 and 2) that
//! tells a target behind the relay who the client really is. Pure: bytes
//! out, no I/O.

use std::net::{IpAddr, SocketAddr};

/// Which version of the header to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text line: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header.
    V2,
}

/// The v2 signature.
const SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Both addresses in one family: an IPv4 address facing an IPv6 one is
/// written as IPv4-mapped IPv6.
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V6(_)) | (SocketAddr::V6(_), SocketAddr::V4(_)) => {
            (v6(src), v6(dst))
        }
        _ => (src, dst),
    }
}

/// The header for a connection from `src` that reached us at `dst`;
/// `None` for a client with no IP address (a Unix socket): v1 says
/// `UNKNOWN` and v2 sends a LOCAL command.
pub fn encode(version: Version, addrs: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    match version {
        Version::V1 => match addrs.map(|(s, d)| same_family(s, d)) {
            None => b"PROXY UNKNOWN\r\n".to_vec(),
            Some((s, d)) => {
                let fam = if s.is_ipv4() { "TCP4" } else { "TCP6" };
                format!(
                    "PROXY {fam} {} {} {} {}\r\n",
                    s.ip(),
                    d.ip(),
                    s.port(),
                    d.port()
                )
                .into_bytes()
            }
        },
        Version::V2 => {
            let mut out = SIG.to_vec();
            match addrs.map(|(s, d)| same_family(s, d)) {
                None => {
                    out.extend_from_slice(&[0x20, 0x00, 0, 0]);
                }
                Some((s, d)) => {
                    out.push(0x21);
                    let mut body = Vec::with_capacity(36);
                    match (s.ip(), d.ip()) {
                        (IpAddr::V4(a), IpAddr::V4(b)) => {
                            out.push(0x11);
                            body.extend_from_slice(&a.octets());
                            body.extend_from_slice(&b.octets());
                        }
                        (a, b) => {
                            out.push(0x21);
                            let six = |ip: IpAddr| match ip {
                                IpAddr::V6(x) => x.octets(),
                                IpAddr::V4(x) => x.to_ipv6_mapped().octets(),
                            };
                            body.extend_from_slice(&six(a));
                            body.extend_from_slice(&six(b));
                        }
                    }
                    body.extend_from_slice(&s.port().to_be_bytes());
                    body.extend_from_slice(&d.port().to_be_bytes());
                    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
                    out.extend_from_slice(&body);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines() {
        let s: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        let d: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(
            encode(Version::V1, Some((s, d))),
            b"PROXY TCP4 127.0.0.2 127.0.0.1 5000 80\r\n"
        );
        let d6: SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(
            encode(Version::V1, Some((s, d6))),
            b"PROXY TCP6 ::ffff:127.0.0.2 ::1 5000 443\r\n"
        );
        assert_eq!(encode(Version::V1, None), b"PROXY UNKNOWN\r\n");
    }

    #[test]
    fn v2_headers() {
        let s: SocketAddr = "127.0.0.3:1234".parse().unwrap();
        let d: SocketAddr = "127.0.0.4:80".parse().unwrap();
        let h = encode(Version::V2, Some((s, d)));
        assert_eq!(&h[..12], &SIG);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[127, 0, 0, 3]);
        assert_eq!(&h[20..24], &[127, 0, 0, 4]);
        assert_eq!(&h[24..28], &[0x04, 0xd2, 0, 80]);
        let d6: SocketAddr = "[::1]:80".parse().unwrap();
        let h = encode(Version::V2, Some((s, d6)));
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(encode(Version::V2, None)[12..], [0x20, 0, 0, 0]);
    }
}
