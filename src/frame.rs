//! Length-prefixed message framing, free of I/O: the fix for the seeds'
//! sticky packets. Wire format (see `docs/PROTOCOL.md`): a 4-byte big-endian
//! payload length, then the payload.
//!
//! The codec wraps [`tokio_util::codec::LengthDelimitedCodec`] and adds typed
//! errors. The announced length is checked against the limit *before* any
//! memory is reserved for it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Default largest payload (`--max-frame`), 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Framing errors.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a payload over the limit.
    #[error("the peer announced a {len}-byte frame, over the {max}-byte limit (--max-frame)")]
    TooLong {
        /// Announced payload length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("the connection closed in the middle of a frame ({have} of {need} bytes received)")]
    Truncated {
        /// Bytes of the frame (header included) that did arrive.
        have: usize,
        /// Bytes the frame needed (header included), when known.
        need: usize,
    },
    /// A payload to send is over the limit.
    #[error("a {len}-byte message is over the {max}-byte frame limit (--max-frame)")]
    SendTooLong {
        /// Payload length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A line of input is too long to become one frame.
    #[error("a line of input is longer than the {max}-byte frame limit; shorten it or raise --max-frame")]
    LineTooLong {
        /// The limit in force.
        max: usize,
    },
    /// I/O error from the transport (only when used with `Framed*`).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Encoder and decoder for length-prefixed frames.
#[derive(Debug)]
pub struct FrameCodec {
    /// The library codec that does the buffer work.
    inner: LengthDelimitedCodec,
    /// Largest payload accepted or sent.
    max: usize,
    /// Payload length of the frame in progress. The inner codec consumes the
    /// header as soon as it has one, so this is how we know not to peek at
    /// payload bytes as if they were a header.
    pending: Option<usize>,
}

impl FrameCodec {
    /// A codec that accepts payloads of up to `max` bytes.
    pub fn new(max: usize) -> FrameCodec {
        let max = max.min(u32::MAX as usize);
        FrameCodec {
            inner: LengthDelimitedCodec::builder()
                .big_endian()
                .length_field_length(HEADER_LEN)
                .max_frame_length(max)
                .new_codec(),
            max,
            pending: None,
        }
    }

    /// The payload limit.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        // Check the header ourselves first so the error says how long the
        // announced frame was, and so nothing is reserved for a bad length.
        if self.pending.is_none() && src.len() >= HEADER_LEN {
            let len = u64::from((&src[..HEADER_LEN]).get_u32());
            if len > self.max as u64 {
                return Err(FrameError::TooLong { len, max: self.max });
            }
            self.pending = Some(len as usize);
        }
        let frame = self.inner.decode(src)?;
        if frame.is_some() {
            self.pending = None;
        }
        Ok(frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        match self.pending {
            // Header consumed by the inner codec: part of the body is here.
            Some(len) => Err(FrameError::Truncated {
                have: HEADER_LEN + src.len(),
                need: HEADER_LEN + len,
            }),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                have: src.len(),
                need: HEADER_LEN,
            }),
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = item.as_ref();
        if payload.len() > self.max {
            return Err(FrameError::SendTooLong {
                len: payload.len(),
                max: self.max,
            });
        }
        dst.reserve(HEADER_LEN + payload.len());
        dst.put_u32(payload.len() as u32);
        dst.put_slice(payload);
        Ok(())
    }
}

/// Encodes one frame into a fresh buffer.
///
/// # Errors
/// [`FrameError::SendTooLong`] when the payload is over `max`.
pub fn encode_frame(payload: &[u8], max: usize) -> Result<Bytes, FrameError> {
    let mut dst = BytesMut::with_capacity(HEADER_LEN + payload.len());
    FrameCodec::new(max).encode(payload, &mut dst)?;
    Ok(dst.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut codec = FrameCodec::new(DEFAULT_MAX_FRAME);
        let mut out = BytesMut::new();
        for p in payloads {
            codec.encode(*p, &mut out).unwrap();
        }
        out.to_vec()
    }

    fn decode_all(codec: &mut FrameCodec, parts: &[&[u8]]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for part in parts {
            buf.extend_from_slice(part);
            while let Some(f) = codec.decode(&mut buf)? {
                got.push(f.to_vec());
            }
        }
        while let Some(f) = codec.decode_eof(&mut buf)? {
            got.push(f.to_vec());
        }
        Ok(got)
    }

    #[test]
    fn every_split_point_gives_the_same_frames() {
        let payloads: [&[u8]; 4] = [b"hello", b"", b"\x00\xff binary", b"world"];
        let wire = frames(&payloads);
        let want: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                let mut codec = FrameCodec::new(DEFAULT_MAX_FRAME);
                let got = decode_all(&mut codec, &[&wire[..i], &wire[i..j], &wire[j..]]).unwrap();
                assert_eq!(got, want, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn zero_length_frame() {
        let mut codec = FrameCodec::new(8);
        assert_eq!(
            decode_all(&mut codec, &[&[0, 0, 0, 0]]).unwrap(),
            vec![Vec::<u8>::new()]
        );
    }

    #[test]
    fn maximum_length_passes_and_one_over_fails() {
        let max = 1000;
        let body = vec![7u8; max];
        let mut wire = Vec::new();
        wire.extend_from_slice(&(max as u32).to_be_bytes());
        wire.extend_from_slice(&body);
        let mut codec = FrameCodec::new(max);
        assert_eq!(decode_all(&mut codec, &[&wire]).unwrap(), vec![body]);

        let mut codec = FrameCodec::new(max);
        let over = ((max + 1) as u32).to_be_bytes();
        match decode_all(&mut codec, &[&over]) {
            Err(FrameError::TooLong { len, max: m }) => {
                assert_eq!(len, 1001);
                assert_eq!(m, max);
            }
            other => panic!("expected TooLong, got {other:?}"),
        }
        assert!(matches!(
            encode_frame(&vec![0; max + 1], max),
            Err(FrameError::SendTooLong { .. })
        ));
    }

    #[test]
    fn huge_announced_length_reserves_nothing() {
        let mut codec = FrameCodec::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 2][..]);
        let cap_before = buf.capacity();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLong {
                len: 0xffff_ffff,
                ..
            })
        ));
        assert_eq!(buf.capacity(), cap_before, "no memory reserved");
    }

    #[test]
    fn eof_mid_header_and_mid_body() {
        let mut codec = FrameCodec::new(64);
        assert!(matches!(
            decode_all(&mut codec, &[&[0, 0]]),
            Err(FrameError::Truncated { have: 2, need: 4 })
        ));
        let mut codec = FrameCodec::new(64);
        assert!(matches!(
            decode_all(&mut codec, &[&[0, 0, 0, 5, b'a', b'b']]),
            Err(FrameError::Truncated { have: 6, need: 9 })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        // A simple deterministic generator: every byte pattern must decode
        // to frames or a typed error, never a panic.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut data = Vec::new();
            let len = (x % 64) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                data.push((x % 7) as u8);
            }
            let mut codec = FrameCodec::new(32);
            let _ = decode_all(&mut codec, &[&data]);
        }
    }
}
