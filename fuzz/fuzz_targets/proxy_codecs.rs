//! The proxy's decoders of peer bytes: SOCKS5 greetings, username/password
//! and requests, SOCKS4/4a requests, HTTP request and response heads, and
//! the client's reply parser. None panics, none uses more bytes than it was
//! given, heads stay bounded, and a request built by the encoder parses back
//! to itself (the model).
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
