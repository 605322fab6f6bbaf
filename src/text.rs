//! Text handling, free of I/O: bounded line splitting, quit words, line
//! endings, wire encodings (UTF-8, GBK) and upper-casing that never fails
//! on invalid bytes.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

/// Default longest line (bytes) that line-based modes buffer before they
/// give up on finding a newline. A peer controls line length, so it is bounded.
pub const MAX_LINE: usize = 64 * 1024;

/// A text encoding used on the wire. The terminal side is always UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (invalid bytes show as U+FFFD when decoding is asked for).
    Utf8,
    /// GBK, as seed 002 uses for file names (GB18030 decoder, GBK encoder).
    Gbk,
}

impl Encoding {
    /// Converts UTF-8 text from the terminal (possibly invalid) to wire bytes.
    pub fn encode<'a>(self, text: &'a [u8]) -> Cow<'a, [u8]> {
        match self {
            Encoding::Utf8 => String::from_utf8_lossy(text).map_bytes(),
            Encoding::Gbk => {
                let s = String::from_utf8_lossy(text);
                let (out, _, _) = encoding_rs::GBK.encode(&s);
                Cow::Owned(out.into_owned())
            }
        }
    }

    /// Converts wire bytes to UTF-8 for the terminal; undecodable bytes
    /// become U+FFFD.
    pub fn decode<'a>(self, wire: &'a [u8]) -> Cow<'a, [u8]> {
        match self {
            Encoding::Utf8 => String::from_utf8_lossy(wire).map_bytes(),
            Encoding::Gbk => {
                let (s, _) = encoding_rs::GBK.decode_without_bom_handling(wire);
                match s {
                    Cow::Borrowed(b) => Cow::Borrowed(b.as_bytes()),
                    Cow::Owned(o) => Cow::Owned(o.into_bytes()),
                }
            }
        }
    }
}

/// Helper to view a `Cow<str>` as `Cow<[u8]>` without copying.
trait MapBytes<'a> {
    fn map_bytes(self) -> Cow<'a, [u8]>;
}

impl<'a> MapBytes<'a> for Cow<'a, str> {
    fn map_bytes(self) -> Cow<'a, [u8]> {
        match self {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }
    }
}

/// The text options shared by `tcp connect` and `tcp listen`.
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    /// Lines that end the session when sent or received (`--quit`).
    pub quit: Vec<String>,
    /// Send lines ending in CRLF (`--crlf`).
    pub crlf: bool,
    /// Wire encoding (`--encoding`); `None` passes bytes through unchanged.
    pub encoding: Option<Encoding>,
}

impl TextOptions {
    /// Whether any option needs the stream cut into lines. Without one,
    /// bytes pass through untouched on the fast path.
    pub fn line_mode(&self) -> bool {
        !self.quit.is_empty() || self.crlf || self.encoding.is_some()
    }

    /// Whether `line` (without its newline; a trailing CR is ignored) is
    /// one of the quit words. `line` is terminal-side UTF-8 text.
    pub fn is_quit(&self, line: &[u8]) -> bool {
        if self.quit.is_empty() {
            return false;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.quit.iter().any(|w| w.as_bytes() == line)
    }

    /// Appends one terminal line (without its newline) to `out` as wire
    /// bytes, newline included.
    pub fn write_line(&self, line: &[u8], out: &mut BytesMut) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(&self.outgoing_piece(line));
        out.extend_from_slice(if self.crlf { b"\r\n" } else { b"\n" });
    }

    /// Encodes part of a line (no newline yet) for the wire.
    pub fn outgoing_piece<'a>(&self, piece: &'a [u8]) -> Cow<'a, [u8]> {
        match self.encoding {
            Some(enc) => enc.encode(piece),
            None => Cow::Borrowed(piece),
        }
    }

    /// Turns wire bytes of one line (without its newline) into terminal text.
    pub fn incoming<'a>(&self, wire: &'a [u8]) -> Cow<'a, [u8]> {
        match self.encoding {
            Some(enc) => enc.decode(wire),
            None => Cow::Borrowed(wire),
        }
    }
}

/// One piece of a byte stream cut at newlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The bytes of the line, without the `\n`.
    pub data: Bytes,
    /// True when a `\n` ended this piece; false for an over-long piece or the
    /// unterminated tail at end of stream.
    pub ended: bool,
}

/// Takes the next line from `buf`, never holding more than `max` bytes.
///
/// Returns `None` when more input is needed. A line longer than `max` comes
/// out as a piece of exactly `max` bytes with `ended == false`; at `eof`, any
/// remaining bytes come out the same way. `buf` never needs to hold more
/// than `max + 1` bytes plus one read.
pub fn next_line(buf: &mut BytesMut, max: usize, eof: bool) -> Option<Line> {
    // A limit of 0 would never let a line out before the end; 1 is the least.
    let max = max.max(1);
    let window = buf.len().min(max.saturating_add(1));
    if let Some(i) = memchr::memchr(b'\n', &buf[..window]) {
        if i <= max {
            let mut data = buf.split_to(i + 1);
            data.truncate(i);
            return Some(Line {
                data: data.freeze(),
                ended: true,
            });
        }
    }
    // Only past `max` bytes with no newline is the line known to be too long;
    // a line of exactly `max` bytes may still end with the next byte.
    if buf.len() > max {
        return Some(Line {
            data: buf.split_to(max).freeze(),
            ended: false,
        });
    }
    if eof && !buf.is_empty() {
        return Some(Line {
            data: buf.split().freeze(),
            ended: false,
        });
    }
    None
}

/// Upper-cases every valid UTF-8 character of `bytes` (Unicode rules) and
/// leaves invalid bytes exactly as they were.
pub fn to_upper(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if valid.is_ascii() {
            out.extend(valid.bytes().map(|b| b.to_ascii_uppercase()));
        } else {
            out.extend_from_slice(valid.to_uppercase().as_bytes());
        }
        out.extend_from_slice(chunk.invalid());
    }
    out
}

/// Upper-cases text in the given wire encoding.
pub fn to_upper_in(bytes: &[u8], encoding: Option<Encoding>) -> Vec<u8> {
    match encoding {
        None | Some(Encoding::Utf8) => to_upper(bytes),
        Some(enc @ Encoding::Gbk) => {
            let text = enc.decode(bytes);
            let up = String::from_utf8_lossy(&text).to_uppercase();
            enc.encode(up.as_bytes()).into_owned()
        }
    }
}

/// Rows of a hex dump in ncat's `-x` layout: a chunk-relative offset,
/// sixteen bytes in two groups of eight, then the bytes as text (`.` for
/// anything but printable ASCII other than space), padded:
/// `0000   68 65 6c 6c 6f 00   ...   hello.`. An empty chunk is one
/// offset-only row. Used by `udp --hex` and `--hexdump`.
pub fn hex_dump(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 4 + 16);
    hex_rows(data, "", &mut out);
    out
}

/// [`hex_dump`]'s rows appended to `out`, each after `prefix`.
pub fn hex_rows(data: &[u8], prefix: &str, out: &mut String) {
    use std::fmt::Write;
    if data.is_empty() {
        let _ = writeln!(out, "{prefix}0000");
        return;
    }
    for (n, row) in data.chunks(16).enumerate() {
        let _ = write!(out, "{prefix}{:04x}  ", n * 16);
        for i in 0..16 {
            if i == 8 {
                out.push(' ');
            }
            match row.get(i) {
                Some(b) => {
                    let _ = write!(out, " {b:02x}");
                }
                None => out.push_str("   "),
            }
        }
        out.push_str("  ");
        out.extend(
            row.iter()
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }),
        );
        for _ in row.len()..16 {
            out.push(' ');
        }
        out.push('\n');
    }
}

/// One message as one output line: a newline inside it becomes the two
/// characters `\n` and a backslash becomes `\\`, so a message always prints
/// as exactly one line and the bytes can be recovered (`--hex` shows them raw).
pub fn escape_line(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !data.iter().any(|&b| b == b'\n' || b == b'\\') {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(data.len() + 8);
    for &b in data {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b => out.push(b),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The singular or the plural word for a count: "1 peer", "2 peers".
pub fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// A count with its noun: `counted(1, "peer", "peers")` is "1 peer".
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzz/gbk_lines: text GBK can hold comes back unchanged,
    /// except private-use characters that GB18030 once mapped, which come
    /// back as the standard characters that took their bytes.
    #[test]
    fn gbk_round_trips_text_and_maps_old_private_use_characters() {
        let text = "中文 file 名字.txt";
        let wire = Encoding::Gbk.encode(text.as_bytes());
        assert_eq!(&Encoding::Gbk.decode(&wire)[..], text.as_bytes());
        let wire = Encoding::Gbk.encode(" \u{E843} ".as_bytes());
        assert_eq!(&Encoding::Gbk.decode(&wire)[..], " \u{9FB9} ".as_bytes());
    }

    /// Seen while writing fuzz/gbk_lines: a limit of 0 let the buffer grow
    /// without bound until the end of the stream. It counts as 1.
    #[test]
    fn a_zero_line_limit_still_bounds_the_buffer() {
        let mut buf = BytesMut::from(&b"abc\n"[..]);
        let first = next_line(&mut buf, 0, false).unwrap();
        assert_eq!((&first.data[..], first.ended), (&b"a"[..], false));
        assert!(buf.len() <= 3);
    }

    #[test]
    fn counts_take_the_right_noun() {
        assert_eq!(counted(1, "peer", "peers"), "1 peer");
        assert_eq!(counted(0, "peer", "peers"), "0 peers");
        assert_eq!(counted(2, "entry", "entries"), "2 entries");
        assert_eq!(plural(1, "reply", "replies"), "reply");
    }

    #[test]
    fn escaped_lines_hold_one_message_each() {
        assert_eq!(&*escape_line(b"plain"), b"plain");
        assert_eq!(&*escape_line(b"a\nb"), b"a\\nb");
        assert_eq!(&*escape_line(b"c:\\x"), b"c:\\\\x");
        assert!(!escape_line(b"x\ny\nz").contains(&b'\n'));
    }

    fn lines(input: &[u8], max: usize, chunk: usize) -> Vec<(Vec<u8>, bool)> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(l) = next_line(&mut buf, max, false) {
                out.push((l.data.to_vec(), l.ended));
            }
        }
        while let Some(l) = next_line(&mut buf, max, true) {
            out.push((l.data.to_vec(), l.ended));
        }
        out
    }

    #[test]
    fn splits_lines_at_every_chunk_size() {
        let input = b"one\ntwo\n\nthree";
        for chunk in 1..=input.len() {
            assert_eq!(
                lines(input, 64, chunk),
                vec![
                    (b"one".to_vec(), true),
                    (b"two".to_vec(), true),
                    (b"".to_vec(), true),
                    (b"three".to_vec(), false),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn long_lines_are_cut_at_max() {
        let got = lines(b"abcdefgh\nxy\n", 3, 100);
        assert_eq!(got[0], (b"abc".to_vec(), false));
        assert_eq!(got[1], (b"def".to_vec(), false));
        assert_eq!(got[2], (b"gh".to_vec(), true));
        assert_eq!(got[3], (b"xy".to_vec(), true));
        // A line of exactly max bytes still counts as one whole line.
        assert_eq!(lines(b"abc\n", 3, 1), vec![(b"abc".to_vec(), true)]);
    }

    #[test]
    fn upper_keeps_invalid_bytes() {
        assert_eq!(to_upper(b"hello"), b"HELLO");
        assert_eq!(to_upper("straße ü".as_bytes()), "STRASSE Ü".as_bytes());
        assert_eq!(to_upper(b"a\xffb\xc3"), b"A\xffB\xc3");
    }

    #[test]
    fn hex_dump_rows() {
        assert_eq!(hex_dump(b""), "0000\n");
        // ncat -x's own rows, byte for byte.
        assert_eq!(
            hex_dump(b"GET / HTTP/1.0\r\n\r\n"),
            "0000   47 45 54 20 2f 20 48 54  54 50 2f 31 2e 30 0d 0a  GET./.HTTP/1.0..\n\
             0010   0d 0a                                             ..              \n"
        );
        assert_eq!(hex_dump(&[0u8; 17]).lines().count(), 2);
    }

    #[test]
    fn gbk_round_trip() {
        let enc = Encoding::Gbk;
        let wire = enc.encode("接收文件".as_bytes());
        assert_eq!(wire.as_ref(), b"\xbd\xd3\xca\xd5\xce\xc4\xbc\xfe");
        assert_eq!(enc.decode(&wire).as_ref(), "接收文件".as_bytes());
        // Undecodable bytes become U+FFFD instead of failing.
        assert_eq!(enc.decode(b"\xff").as_ref(), "\u{fffd}".as_bytes());
        assert_eq!(to_upper_in(&enc.encode(b"abc"), Some(enc)), b"ABC");
    }

    #[test]
    fn quit_words_and_line_endings() {
        let t = TextOptions {
            quit: vec!["bye".into()],
            crlf: true,
            encoding: None,
        };
        assert!(t.is_quit(b"bye"));
        assert!(t.is_quit(b"bye\r"));
        assert!(!t.is_quit(b"bye now"));
        let mut out = BytesMut::new();
        t.write_line(b"hi", &mut out);
        t.write_line(b"hi\r", &mut out);
        assert_eq!(&out[..], b"hi\r\nhi\r\n");
        assert!(t.line_mode());
        assert!(!TextOptions::default().line_mode());
    }
}
