//! The plaintext-vs-TLS sniffers on arbitrary first bytes, against a
//! reference written from the TLS record layout (RFC 8446 §5.1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockit::tls::{
    looks_like_client_hello, looks_like_tls, looks_like_tls_alert, looks_like_tls_reply,
};

/// A whole record header: type, version 3.0–3.4, two length bytes.
fn header(b: &[u8]) -> Option<u8> {
    if b.len() < 5 || b[1] != 3 || b[2] > 4 {
        return None;
    }
    Some(b[0])
}

fuzz_target!(|data: &[u8]| {
    let ty = header(data);
    assert_eq!(looks_like_tls_reply(data), ty == Some(21) || ty == Some(22));
    assert_eq!(looks_like_tls_alert(data), ty == Some(21));
    // A ClientHello is a handshake record whose first message type is 1.
    assert_eq!(
        looks_like_client_hello(data),
        ty == Some(22) && data.len() >= 6 && data[5] == 1
    );
    // The early sniff: a handshake record's start, or too little to tell.
    let early = data.is_empty() || data[0] == 22 && (data.len() == 1 || data[1] == 3);
    assert_eq!(looks_like_tls(data), early);
    if looks_like_client_hello(data) {
        assert!(looks_like_tls(data));
    }
});
