//! Plain text or TLS? The sniffers that look at a peer's first bytes, so a
//! mismatch gets a one-line diagnosis instead of garbage. Pure, no I/O.

/// A fatal TLS 1.2-framed `unexpected_message` alert: what a plaintext
/// client of a TLS listener receives before the connection closes.
pub const PLAINTEXT_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a];

/// Whether the first bytes from a peer could start a TLS handshake record
/// (content type 22, protocol major version 3).
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [] | [0x16] | [0x16, 0x03, ..])
}

/// Whether the first bytes a plain client received are a TLS record header
/// (an alert or a handshake): the server speaks TLS.
pub fn looks_like_tls_reply(first: &[u8]) -> bool {
    matches!(record_type(first), Some(0x15 | 0x16))
}

/// Whether the first bytes a plain client received are a TLS alert record:
/// what a TLS server sends back when it is spoken to in plain text.
pub fn looks_like_tls_alert(first: &[u8]) -> bool {
    record_type(first) == Some(0x15)
}

/// The content type of a whole TLS record header (5 bytes, version 3.x).
pub(crate) fn record_type(first: &[u8]) -> Option<u8> {
    (first.len() >= 5 && first[1] == 0x03 && first[2] <= 0x04).then(|| first[0])
}

/// Whether the first bytes a plain listener received are a TLS ClientHello.
pub fn looks_like_client_hello(first: &[u8]) -> bool {
    first.len() >= 6 && first[0] == 0x16 && first[1] == 0x03 && first[2] <= 0x04 && first[5] == 0x01
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_tls_from_plain_text() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_tls(b"GET"));
        assert!(!looks_like_tls(b"\0SO"));
        assert!(looks_like_tls_reply(&PLAINTEXT_ALERT));
        assert!(looks_like_tls_alert(&PLAINTEXT_ALERT));
        // A ServerHello is a reply, but not an alert: a relay passes it on.
        assert!(!looks_like_tls_alert(&[0x16, 0x03, 0x03, 0x00, 0x7a, 0x02]));
        assert!(!looks_like_tls_alert(b"hello"));
        assert!(!looks_like_tls_reply(b"hello world"));
        assert!(looks_like_client_hello(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00
        ]));
        assert!(!looks_like_client_hello(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x02
        ]));
    }
}
