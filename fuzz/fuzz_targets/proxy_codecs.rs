//! The proxy's decoders of peer bytes: SOCKS5 greetings, username/password
//! and requests, SOCKS4/4a requests, SOCKS5 UDP datagram headers, HTTP
//! request and response heads, and the client's reply parser. None panics,
//! none uses more bytes than it was given, heads stay bounded, and what the
//! encoders write (a request, a UDP reply header) parses back to itself
//! (the model).
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use sockit::proxy::http;
use sockit::proxy::socks::{self, Dest, Parsed, Socks5Client};

#[derive(Debug, arbitrary::Arbitrary)]
struct Case {
    bytes: Vec<u8>,
    name: String,
    port: u16,
    v6: bool,
    ip: [u8; 16],
}

fn used<T, E>(r: &Result<Parsed<T>, E>, len: usize) {
    if let Ok(Parsed::Done(_, n)) = r {
        assert!(*n <= len, "used {n} of {len} bytes");
    }
}

fuzz_target!(|c: Case| {
    let b = &c.bytes[..];
    used(&socks::parse_greeting(b), b.len());
    used(&socks::parse_user_pass(b), b.len());
    used(&socks::parse_request5(b), b.len());
    used(&socks::parse_request4(b), b.len());
    let head = http::parse_request(b);
    used(&head, b.len());
    if let Ok(Parsed::Done(h, _)) = &head {
        assert!(h.headers.len() <= http::MAX_HEADERS);
        let _ = http::authority(&h.target, None);
        if let Ok((_, _, path)) = http::absolute(&h.target) {
            let out = http::origin_head(h, &path);
            assert!(out.ends_with(b"\r\n\r\n"));
        }
    }
    if b.len() > http::MAX_HEAD {
        assert!(
            !matches!(http::parse_request(b), Ok(Parsed::More)),
            "a head is bounded"
        );
    }
    used(&http::parse_response(b), b.len());
    // A UDP datagram's header: its data starts inside the datagram.
    if let Ok(u) = socks::parse_udp(b) {
        assert!(u.data_at <= b.len());
    }
    // The client's step machine, fed the bytes in the pieces it asks for.
    let dest = if c.name.is_empty() || c.name.len() > 255 {
        let ip = if c.v6 {
            std::net::IpAddr::from(c.ip)
        } else {
            std::net::IpAddr::from([c.ip[0], c.ip[1], c.ip[2], c.ip[3]])
        };
        Dest::Addr(std::net::SocketAddr::new(ip, c.port))
    } else {
        Dest::Name(c.name.clone(), c.port)
    };
    if let Ok((mut m, _)) = Socks5Client::new(dest.clone(), Some(("u".into(), "p".into()))) {
        let mut at = 0;
        // Bounded: each step takes at least one byte or ends.
        while at < b.len() {
            let n = m.want();
            if at + n > b.len() {
                break;
            }
            match m.feed(&b[at..at + n]) {
                Ok(socks::Step::Done(_)) | Err(_) => break,
                Ok(_) => at += n,
            }
        }
    }
    // Model: a request the encoder writes parses back to the same request.
    let mut req = vec![socks::V5, socks::CMD_CONNECT, 0];
    socks::put_dest(&mut req, &dest);
    match socks::parse_request5(&req) {
        Ok(Parsed::Done(r, n)) => {
            assert_eq!(n, req.len());
            assert_eq!(r.dest, dest);
        }
        other => assert!(
            matches!(&dest, Dest::Name(n, _) if n.is_empty()),
            "{dest:?} did not parse back: {other:?}"
        ),
    }
    // Model: a UDP reply header for an address parses back to it, and the
    // data after it is untouched.
    if let Dest::Addr(a) = &dest {
        let mut h = [0u8; socks::UDP_HEADER_MAX];
        let at = socks::put_udp_header(&mut h, *a);
        let mut d = h[at..].to_vec();
        d.extend_from_slice(b);
        let u = socks::parse_udp(&d).expect("a header we wrote parses");
        assert_eq!(u.frag, 0);
        let unmapped = match a {
            std::net::SocketAddr::V6(v6) => v6
                .ip()
                .to_ipv4_mapped()
                .map_or(*a, |v4| std::net::SocketAddr::new(v4.into(), a.port())),
            v4 => *v4,
        };
        assert_eq!(u.dest, Dest::Addr(unmapped));
        assert_eq!(&d[u.data_at..], b);
    }
    if let (Dest::Name(..), Ok(r4)) = (&dest, socks::socks4_request(&dest, "id")) {
        match socks::parse_request4(&r4) {
            Ok(Parsed::Done(r, n)) => {
                assert_eq!(n, r4.len());
                assert_eq!(r.dest, dest);
            }
            other => panic!("{dest:?} did not parse back as SOCKS4a: {other:?}"),
        }
    }
});
