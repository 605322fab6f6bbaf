//! The known_hosts reader on arbitrary file contents: it finds the first
//! line whose first word is the key, as a naive reference does, or fails on
//! bytes that are not text, and never panics.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use sockit::tls::find_known_host;

#[derive(Debug, arbitrary::Arbitrary)]
struct Case {
    key: String,
    file: Vec<u8>,
}

fuzz_target!(|c: Case| {
    let got = find_known_host(&c.file[..], &c.key);
    match std::str::from_utf8(&c.file) {
        Err(_) => {
            // Lines before the bad bytes may still match; otherwise an error.
            if let Ok(Some((n, _))) = &got {
                assert!(*n >= 1);
            }
        }
        Ok(text) => {
            let want = text.lines().enumerate().find_map(|(i, line)| {
                let mut w = line.split_whitespace();
                match (w.next(), w.next()) {
                    (Some(k), Some(fp)) if k == c.key => Some((i + 1, fp.to_string())),
                    _ => None,
                }
            });
            assert_eq!(got.ok(), Some(want));
        }
    }
});
