//! The bench hello, as a server reads it from a client: any text gives a
//! checked hello or a sentence; a hello that passes re-encodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockit::bench::proto::{Hello, Mode, MAX_SECS, MAX_TCP_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Hello::decode(text) {
        Ok(h) => {
            // conns sends no payload, so its len is not checked.
            assert!(h.mode == Mode::Conns || (1..=MAX_TCP_LEN).contains(&h.len));
            assert!(h.secs.is_finite() && h.secs <= MAX_SECS);
            let again = Hello::decode(&h.encode()).expect("an encoded hello decodes");
            assert_eq!(again, h);
        }
        Err(sentence) => assert!(!sentence.is_empty() && !sentence.contains('\n')),
    }
});
