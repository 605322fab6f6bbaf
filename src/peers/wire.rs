//! Messages on a TCP stream for the multi-peer modes: newline-terminated
//! lines, or length-prefixed frames with `--frame`. Free of I/O.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{FrameCodec, FrameError};
use crate::text::next_line;

/// One unit read from a peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole message (a line without its newline and CR, or a frame).
    Msg(Bytes),
    /// A line over the limit; the rest of it up to the newline is dropped.
    TooLong,
}

/// Cuts a byte stream into messages and writes messages back out.
#[derive(Debug)]
pub struct Wire {
    /// Frame codec when `--frame` is on.
    frame: Option<FrameCodec>,
    /// Longest line, when lines are in use.
    max_line: usize,
    /// Inside an over-long line, dropping bytes until its newline.
    discarding: bool,
    /// End lines with CRLF (`--crlf`).
    crlf: bool,
}

impl Wire {
    /// Lines of at most `max_line` bytes, or frames of at most `frame` bytes.
    pub fn new(frame: Option<usize>, max_line: usize, crlf: bool) -> Wire {
        Wire {
            frame: frame.map(FrameCodec::new),
            max_line: max_line.max(1),
            discarding: false,
            crlf,
        }
    }

    /// Whether messages are frames.
    pub fn framed(&self) -> bool {
        self.frame.is_some()
    }

    /// The next message in `buf`, or `None` when more bytes are needed.
    ///
    /// # Errors
    /// A frame over the limit, or a stream that ends inside a frame.
    pub fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Item>, FrameError> {
        if let Some(codec) = self.frame.as_mut() {
            let f = if eof {
                codec.decode_eof(buf)?
            } else {
                codec.decode(buf)?
            };
            return Ok(f.map(|b| Item::Msg(b.freeze())));
        }
        loop {
            let Some(line) = next_line(buf, self.max_line, eof) else {
                return Ok(None);
            };
            if self.discarding {
                if line.ended {
                    self.discarding = false;
                }
                continue;
            }
            if !line.ended && line.data.len() >= self.max_line {
                self.discarding = true;
                return Ok(Some(Item::TooLong));
            }
            let mut data = line.data;
            if data.last() == Some(&b'\r') {
                data.truncate(data.len() - 1);
            }
            return Ok(Some(Item::Msg(data)));
        }
    }

    /// Appends `msg` to `out` as one line or one frame.
    ///
    /// # Errors
    /// A frame over the limit.
    pub fn encode(&mut self, msg: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
        match self.frame.as_mut() {
            Some(codec) => codec.encode(msg, out),
            None => {
                out.extend_from_slice(msg);
                out.extend_from_slice(if self.crlf { b"\r\n" } else { b"\n" });
                Ok(())
            }
        }
    }

    /// `msg` as one line or frame in a buffer of its own.
    ///
    /// # Errors
    /// A frame over the limit.
    pub fn encode_one(&mut self, msg: &[u8]) -> Result<Bytes, FrameError> {
        let mut out = BytesMut::with_capacity(msg.len() + 4);
        self.encode(msg, &mut out)?;
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_overlong_lines() {
        let mut w = Wire::new(None, 4, false);
        let mut buf = BytesMut::from(&b"ab\r\nabcdefg\nxy\n"[..]);
        let mut got = Vec::new();
        while let Some(i) = w.decode(&mut buf, false).unwrap() {
            got.push(i);
        }
        assert_eq!(
            got,
            vec![
                Item::Msg(Bytes::from_static(b"ab")),
                Item::TooLong,
                Item::Msg(Bytes::from_static(b"xy")),
            ]
        );
    }

    #[test]
    fn frames_round_trip() {
        let mut w = Wire::new(Some(100), 0, false);
        let mut buf = BytesMut::new();
        w.encode(b"one", &mut buf).unwrap();
        w.encode(b"", &mut buf).unwrap();
        assert_eq!(
            w.decode(&mut buf, false).unwrap(),
            Some(Item::Msg(Bytes::from_static(b"one")))
        );
        assert_eq!(
            w.decode(&mut buf, false).unwrap(),
            Some(Item::Msg(Bytes::new()))
        );
        assert_eq!(w.decode(&mut buf, true).unwrap(), None);
    }
}
