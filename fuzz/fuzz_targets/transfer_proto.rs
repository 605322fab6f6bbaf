//! The transfer protocol's request and response decoders, on arbitrary
//! payloads: a typed error or a message that survives encode → decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockit::transfer::proto::{Request, Response, MAX_REQUEST, MAX_RESPONSE};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::decode(data) {
        let wire = req.encode();
        assert!(wire.len() <= MAX_REQUEST + 64);
        assert_eq!(Request::decode(&wire).ok(), Some(req));
    }
    if let Ok(resp) = Response::decode(data) {
        let wire = resp.encode();
        assert!(wire.len() <= MAX_RESPONSE + 64);
        assert_eq!(Response::decode(&wire).ok(), Some(resp));
    }
});
