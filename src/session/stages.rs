//! The two stages a session puts in the pump: what goes out (lines with
//! quit words, line endings and encodings, or frames) and what comes in
//! (the plaintext-versus-TLS check on the first bytes, then lines or
//! frames for the screen). Pure: bytes in, bytes out.

use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{PipeError, PipeOptions, Side};
use crate::frame::{FrameCodec, FrameError};
use crate::relay::{Flow, Stage};
use crate::text::{next_line, TextOptions, MAX_LINE};

/// A stage's error, for the pump to carry.
fn stage_err(e: impl Into<PipeError>) -> io::Error {
    io::Error::other(e.into())
}

/// The sending direction's stage: lines with their quit words, line
/// endings and encoding, or frames.
pub(super) struct SendText {
    text: TextOptions,
    codec: Option<FrameCodec>,
    /// One byte over the frame limit, so a line that does not fit shows up
    /// as a piece longer than the limit.
    max_line: usize,
    pending: BytesMut,
}

impl SendText {
    pub(super) fn new(opts: &PipeOptions) -> SendText {
        SendText {
            text: opts.text.clone(),
            codec: opts.frame.map(FrameCodec::new),
            max_line: opts.frame.map(|m| m.saturating_add(1)).unwrap_or(MAX_LINE),
            pending: BytesMut::new(),
        }
    }
}

impl Stage for SendText {
    fn feed(&mut self, data: &[u8], eof: bool, out: &mut BytesMut) -> io::Result<Flow> {
        self.pending.extend_from_slice(data);
        while let Some(line) = next_line(&mut self.pending, self.max_line, eof) {
            let quit = line.ended && self.text.is_quit(&line.data);
            if let Some(codec) = self.codec.as_mut() {
                if line.data.len() >= self.max_line {
                    return Err(stage_err(FrameError::LineTooLong {
                        max: self.max_line - 1,
                    }));
                }
                codec
                    .encode(&self.text.outgoing_piece(&line.data)[..], out)
                    .map_err(stage_err)?;
            } else if line.ended {
                self.text.write_line(&line.data, out);
            } else {
                out.extend_from_slice(&self.text.outgoing_piece(&line.data));
            }
            if quit {
                return Ok(Flow::Quit);
            }
        }
        Ok(Flow::More)
    }
}

/// The receiving direction's stage: the TLS check on the first bytes, then
/// lines or frames decoded for the screen, with their quit words.
pub(super) struct RecvText {
    text: TextOptions,
    codec: Option<FrameCodec>,
    line_mode: bool,
    first: Option<Side>,
    peer: String,
    pending: BytesMut,
}

impl RecvText {
    pub(super) fn new(opts: &PipeOptions, peer: &str, line_mode: bool) -> RecvText {
        RecvText {
            text: opts.text.clone(),
            codec: opts.frame.map(FrameCodec::new),
            line_mode,
            first: opts.plain_check,
            peer: peer.to_string(),
            pending: BytesMut::new(),
        }
    }
}

impl Stage for RecvText {
    fn feed(&mut self, data: &[u8], eof: bool, out: &mut BytesMut) -> io::Result<Flow> {
        if let Some(side) = self.first.take() {
            check_plain(side, data, &self.peer).map_err(stage_err)?;
        }
        if !self.line_mode {
            return Ok(Flow::Pass);
        }
        self.pending.extend_from_slice(data);
        if let Some(codec) = self.codec.as_mut() {
            loop {
                let frame = if eof {
                    codec.decode_eof(&mut self.pending)
                } else {
                    codec.decode(&mut self.pending)
                };
                let Some(frame) = frame.map_err(stage_err)? else {
                    break;
                };
                let text = self.text.incoming(&frame);
                if self.text.is_quit(&text) {
                    return Ok(Flow::Quit);
                }
                out.extend_from_slice(&crate::text::escape_line(&text));
                out.extend_from_slice(b"\n");
            }
        } else {
            while let Some(line) = next_line(&mut self.pending, MAX_LINE, eof) {
                let text = self.text.incoming(&line.data);
                if line.ended && self.text.is_quit(&text) {
                    return Ok(Flow::Quit);
                }
                out.extend_from_slice(&text);
                if line.ended {
                    out.extend_from_slice(b"\n");
                }
            }
        }
        Ok(Flow::More)
    }
}

/// The first bytes on a plain connection must not be TLS, unless they are
/// being relayed.
pub(super) fn check_plain(side: Side, first: &[u8], peer: &str) -> Result<(), PipeError> {
    let who = peer;
    match side {
        Side::Client if crate::tls::looks_like_tls_alert(first) => Err(PipeError::Mismatch(
            format!("the server at {who} speaks TLS; add --tls"),
        )),
        Side::Server if crate::tls::looks_like_client_hello(first) => Err(PipeError::Mismatch(
            format!("{who} is speaking TLS to this plain listener; listen with --tls"),
        )),
        Side::ServerRelay if crate::tls::looks_like_client_hello(first) => {
            tracing::warn!(
                "{who} is speaking TLS to this plain listener; passing its bytes on unchanged \
                 (listen with --tls to decrypt them here)"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// netcat's `-C`: each LF sent goes as CRLF, unless a CR is already
/// before it (in this chunk or at the end of the last one).
#[derive(Default)]
pub(super) struct CrlfStage {
    last_cr: bool,
}

impl Stage for CrlfStage {
    fn feed(&mut self, data: &[u8], _eof: bool, out: &mut BytesMut) -> io::Result<Flow> {
        if !data.contains(&b'\n') {
            if let Some(&b) = data.last() {
                self.last_cr = b == b'\r';
            }
            return Ok(Flow::Pass);
        }
        out.reserve(data.len() + data.len() / 8);
        for &b in data {
            if b == b'\n' && !self.last_cr {
                out.extend_from_slice(b"\r");
            }
            out.extend_from_slice(&[b]);
            self.last_cr = b == b'\r';
        }
        Ok(Flow::More)
    }
}

/// `--send-only`: what arrives is dropped.
pub(super) struct Discard;

impl Stage for Discard {
    fn feed(&mut self, _data: &[u8], _eof: bool, _out: &mut BytesMut) -> io::Result<Flow> {
        Ok(Flow::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(quit: &[&str], crlf: bool, frame: Option<usize>) -> PipeOptions {
        PipeOptions {
            text: TextOptions {
                quit: quit.iter().map(|s| s.to_string()).collect(),
                crlf,
                encoding: None,
            },
            frame,
            ..PipeOptions::default()
        }
    }

    /// Feeds `chunks` then the end, and returns what came out and the flow
    /// of the last call.
    fn run_stage(st: &mut dyn Stage, chunks: &[&[u8]]) -> (Vec<u8>, Flow) {
        let mut out = BytesMut::new();
        for c in chunks {
            match st.feed(c, false, &mut out).unwrap() {
                Flow::More => {}
                Flow::Pass => out.extend_from_slice(c),
                Flow::Quit => return (out.to_vec(), Flow::Quit),
            }
        }
        let f = st.feed(&[], true, &mut out).unwrap();
        (out.to_vec(), f)
    }

    #[test]
    fn netcat_crlf_adds_a_cr_only_where_none_is() {
        let (out, _) = run_stage(
            &mut CrlfStage::default(),
            &[b"a\nb\r", b"\nc\n", b"no newline"],
        );
        assert_eq!(out, b"a\r\nb\r\nc\r\nno newline");
    }

    #[test]
    fn sending_lines_split_across_reads_get_crlf_and_a_partial_tail() {
        let mut st = SendText::new(&opts(&[], true, None));
        let (out, flow) = run_stage(&mut st, &[b"on", b"e\ntw", b"o\nta", b"il"]);
        assert_eq!(out, b"one\r\ntwo\r\ntail");
        assert_eq!(flow, Flow::More);
    }

    #[test]
    fn a_quit_word_is_sent_and_ends_the_direction() {
        let mut st = SendText::new(&opts(&["bye"], false, None));
        let (out, flow) = run_stage(&mut st, &[b"hi\nbye\nnot sent\n"]);
        assert_eq!(out, b"hi\nbye\n");
        assert_eq!(flow, Flow::Quit);
        // Received, the quit word itself is not printed.
        let mut st = RecvText::new(&opts(&["bye"], false, None), "peer", true);
        let (out, flow) = run_stage(&mut st, &[b"hi\nby", b"e\nlater\n"]);
        assert_eq!(out, b"hi\n");
        assert_eq!(flow, Flow::Quit);
    }

    #[test]
    fn frames_round_trip_and_an_oversized_line_is_refused() {
        let o = opts(&[], false, Some(16));
        let mut send = SendText::new(&o);
        let (wire, _) = run_stage(&mut send, &[b"a\nbc\n"]);
        assert_eq!(wire, b"\0\0\0\x01a\0\0\0\x02bc");
        let mut recv = RecvText::new(&o, "peer", true);
        // One byte at a time: frames are whole however the wire cuts them.
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let (text, _) = run_stage(&mut recv, &bytes);
        assert_eq!(text, b"a\nbc\n");
        let mut send = SendText::new(&o);
        let mut out = BytesMut::new();
        let e = send.feed(&[b'x'; 40], true, &mut out).unwrap_err();
        assert!(e.to_string().contains("16"), "{e}");
    }

    #[test]
    fn raw_mode_passes_bytes_and_still_checks_the_first_ones() {
        let mut o = opts(&[], false, None);
        o.plain_check = Some(Side::Client);
        let mut st = RecvText::new(&o, "127.0.0.1:443", false);
        let mut out = BytesMut::new();
        assert_eq!(st.feed(b"hello", false, &mut out).unwrap(), Flow::Pass);
        assert!(out.is_empty());
        let mut st = RecvText::new(&o, "127.0.0.1:443", false);
        // A TLS alert record as the first reply: the server speaks TLS.
        let e = st
            .feed(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46], false, &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("speaks TLS"), "{e}");
    }
}
