//! The PROXY protocol header forward sends to a target: for any pair of
//! addresses, a reference decoder written from haproxy's spec reads back the
//! family, addresses and ports (the model), in both versions.
#![no_main]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::{arbitrary, fuzz_target};
use sockit::relay::proxy_header::{encode, Version};

#[derive(Debug, arbitrary::Arbitrary)]
struct Case {
    v2: bool,
    unknown: bool,
    src: ([u8; 16], bool, u16),
    dst: ([u8; 16], bool, u16),
}

fn addr((b, four, port): ([u8; 16], bool, u16)) -> SocketAddr {
    let ip = if four {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(b)
    };
    SocketAddr::new(ip, port)
}

/// Both as IPv6 when the families differ, as the spec asks.
fn expect(s: SocketAddr, d: SocketAddr) -> (SocketAddr, SocketAddr) {
    let six = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if s.is_ipv4() == d.is_ipv4() {
        (s, d)
    } else {
        (six(s), six(d))
    }
}

fn read_v1(h: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let text = std::str::from_utf8(h).ok()?.strip_suffix("\r\n")?;
    assert!(h.len() <= 107, "v1 lines are at most 107 bytes");
    let w: Vec<&str> = text.split(' ').collect();
    if w == ["PROXY", "UNKNOWN"] {
        return None;
    }
    assert_eq!(w.len(), 6);
    assert_eq!(w[0], "PROXY");
    let s: IpAddr = w[2].parse().unwrap();
    let d: IpAddr = w[3].parse().unwrap();
    assert_eq!(w[1] == "TCP4", s.is_ipv4());
    assert_eq!(w[1] == "TCP6", s.is_ipv6());
    Some((
        SocketAddr::new(s, w[4].parse().unwrap()),
        SocketAddr::new(d, w[5].parse().unwrap()),
    ))
}

fn read_v2(h: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
    let len = usize::from(u16::from_be_bytes([h[14], h[15]]));
    assert_eq!(h.len(), 16 + len);
    let body = &h[16..];
    match (h[12], h[13]) {
        (0x20, _) => None,
        (0x21, 0x11) => {
            assert_eq!(len, 12);
            let ip = |b: &[u8]| IpAddr::from([b[0], b[1], b[2], b[3]]);
            let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
            Some((
                SocketAddr::new(ip(&body[0..4]), port(&body[8..10])),
                SocketAddr::new(ip(&body[4..8]), port(&body[10..12])),
            ))
        }
        (0x21, 0x21) => {
            assert_eq!(len, 36);
            let ip = |b: &[u8]| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap()));
            let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
            Some((
                SocketAddr::new(ip(&body[0..16]), port(&body[32..34])),
                SocketAddr::new(ip(&body[16..32]), port(&body[34..36])),
            ))
        }
        other => panic!("unexpected command/family {other:?}"),
    }
}

fuzz_target!(|c: Case| {
    let addrs = (!c.unknown).then(|| (addr(c.src), addr(c.dst)));
    let version = if c.v2 { Version::V2 } else { Version::V1 };
    let h = encode(version, addrs);
    let got = if c.v2 { read_v2(&h) } else { read_v1(&h) };
    assert_eq!(got, addrs.map(|(s, d)| expect(s, d)));
});
