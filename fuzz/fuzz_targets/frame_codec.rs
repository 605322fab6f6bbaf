//! The frame codec: arbitrary bytes must decode to frames or a typed error,
//! never a panic or an allocation past the limit; and frames encoded, then
//! fed in arbitrary pieces, must decode to the same payloads (the model).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::{arbitrary, fuzz_target};
use sockit::frame::{FrameCodec, HEADER_LEN};
use tokio_util::codec::{Decoder, Encoder};

#[derive(Debug, arbitrary::Arbitrary)]
enum Case {
    /// Peer bytes, fed in pieces of the given sizes.
    Raw {
        max: u16,
        bytes: Vec<u8>,
        cuts: Vec<u8>,
    },
    /// Payloads through encode, cut into pieces, through decode.
    RoundTrip {
        max: u16,
        payloads: Vec<Vec<u8>>,
        cuts: Vec<u8>,
    },
}

/// Feeds `wire` in pieces sized by `cuts` (cycled; a 0 means 1 byte) and
/// collects frames until an error or the end.
fn feed(codec: &mut FrameCodec, wire: &[u8], cuts: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < wire.len() {
        let n = cuts
            .get(i % cuts.len().max(1))
            .map_or(wire.len(), |&c| usize::from(c).max(1));
        let end = (at + n).min(wire.len());
        buf.extend_from_slice(&wire[at..end]);
        at = end;
        i += 1;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.len() <= codec.max());
                    out.push(f.to_vec());
                }
                Ok(None) => break,
                Err(_) => return (out, false),
            }
        }
        // Nothing buffered beyond one frame in progress and one piece.
        assert!(buf.len() <= HEADER_LEN + codec.max() + 256);
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(f)) => out.push(f.to_vec()),
        Ok(None) => {}
        Err(_) => return (out, false),
    }
    (out, true)
}

fuzz_target!(|case: Case| match case {
    Case::Raw { max, bytes, cuts } => {
        let mut codec = FrameCodec::new(usize::from(max));
        let (frames, clean) = feed(&mut codec, &bytes, &cuts);
        // Model: the frames are exactly what the length prefixes announce.
        let mut at = 0;
        for f in &frames {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(len, f.len());
            assert_eq!(&bytes[at + 4..at + 4 + len], &f[..]);
            at += 4 + len;
        }
        if clean {
            assert_eq!(at, bytes.len(), "a clean end consumed every byte");
        }
    }
    Case::RoundTrip {
        max,
        payloads,
        cuts,
    } => {
        let max = usize::from(max);
        let mut enc = FrameCodec::new(max);
        let mut wire = BytesMut::new();
        let mut sent = Vec::new();
        for p in payloads {
            match enc.encode(&p[..], &mut wire) {
                Ok(()) => sent.push(p),
                Err(_) => assert!(p.len() > max, "only an over-long payload is refused"),
            }
        }
        let mut dec = FrameCodec::new(max);
        let (got, clean) = feed(&mut dec, &wire, &cuts);
        assert!(clean);
        assert_eq!(got, sent);
    }
});
