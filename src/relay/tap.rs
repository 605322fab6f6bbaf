//! Seeing the bytes: a hex dump of both directions (`--hexdump`, in
//! ncat's `-x` layout) and the raw bytes of each direction kept for replay
//! (`--log DIR`). A tap is a [`Stage`] of the pump's userspace copy that
//! passes every chunk on unchanged, so a relay without taps stays on the
//! zero-copy path.
//!
//! Bounded: a tap formats one chunk, writes it, and keeps nothing. The
//! writes are synchronous, so a slow disk slows the connection instead of
//! growing a buffer.
//!
//! The dump, per chunk: a header naming the direction (`>` sent, `<`
//! received), the time, the connection and the chunk's offset in its
//! direction, then ncat's rows, each after the same marker:
//!
//! ```text
//! > 2026-12-08T01:50:00.123456Z 127.0.0.1:5000 offset 0, 18 bytes
//! > 0000   47 45 54 20 2f 20 48 54  54 50 2f 31 2e 30 0d 0a  GET./.HTTP/1.0..
//! > 0010   0d 0a                                             ..
//! ```
//!
//! The log: `DIR/N.sent` and `DIR/N.received` for connection N (a session
//! is connection 1), the bytes as they went, each direction in its own
//! file: `sockit tcp connect HOST PORT < DIR/1.sent` replays a client.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;

use super::{Flow, Stage};

/// Where the hex dump goes: stderr, or a file appended to.
struct HexOut(Mutex<Box<dyn Write + Send>>);

/// The taps a command asked for, shared by its connections.
pub struct Taps {
    hex: Option<Arc<HexOut>>,
    log: Option<PathBuf>,
}

impl std::fmt::Debug for Taps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Taps")
            .field("hex", &self.hex.is_some())
            .field("log", &self.log)
            .finish()
    }
}

impl Taps {
    /// `--hexdump` (`Some(None)`: stderr; `Some(Some(FILE))`: appended to
    /// FILE) and `--log DIR` (made if missing).
    ///
    /// # Errors
    /// The dump file or the log folder cannot be opened or made.
    pub fn new(hexdump: Option<Option<PathBuf>>, log: Option<PathBuf>) -> io::Result<Taps> {
        let hex = match hexdump {
            None => None,
            Some(None) => Some(Box::new(io::stderr()) as Box<dyn Write + Send>),
            Some(Some(path)) => Some(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ) as Box<dyn Write + Send>),
        };
        if let Some(dir) = &log {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Taps {
            hex: hex.map(|w| Arc::new(HexOut(Mutex::new(w)))),
            log,
        })
    }

    /// Whether nothing is tapped.
    pub fn is_empty(&self) -> bool {
        self.hex.is_none() && self.log.is_none()
    }

    /// The two stages of connection `id` with `who`: what is sent (A to
    /// B, `>`) and what is received (B to A, `<`).
    ///
    /// # Errors
    /// The log files cannot be made.
    pub fn stages(&self, id: u64, who: &str) -> io::Result<(Box<dyn Stage>, Box<dyn Stage>)> {
        let log = |what: &str| -> io::Result<Option<File>> {
            self.log
                .as_deref()
                .map(|d: &Path| File::create(d.join(format!("{id}.{what}"))))
                .transpose()
        };
        let tap = |marker: char, what: &str| -> io::Result<Box<dyn Stage>> {
            Ok(Box::new(Tap {
                marker,
                who: who.to_string(),
                offset: 0,
                hex: self.hex.clone(),
                log: log(what)?,
            }))
        };
        Ok((tap('>', "sent")?, tap('<', "received")?))
    }
}

/// One direction's tap.
struct Tap {
    /// `>` sent, `<` received.
    marker: char,
    /// The connection, as the header names it.
    who: String,
    /// Bytes seen so far this way.
    offset: u64,
    hex: Option<Arc<HexOut>>,
    log: Option<File>,
}

impl Stage for Tap {
    fn feed(&mut self, data: &[u8], _eof: bool, _out: &mut BytesMut) -> io::Result<Flow> {
        if data.is_empty() {
            return Ok(Flow::Pass);
        }
        if let Some(h) = &self.hex {
            let mut text = format!(
                "{m} {ts} {who} offset {off}, {n} {unit}\n",
                m = self.marker,
                ts = crate::report::rfc3339(std::time::SystemTime::now()),
                who = self.who,
                off = self.offset,
                n = data.len(),
                unit = if data.len() == 1 { "byte" } else { "bytes" },
            );
            let mut prefix = [0u8; 4];
            let prefix = format!("{} ", self.marker.encode_utf8(&mut prefix));
            crate::text::hex_rows(data, &prefix, &mut text);
            let mut w = h.0.lock().unwrap_or_else(|p| p.into_inner());
            // A dump that cannot be written does not end the connection.
            let _ = w.write_all(text.as_bytes()).and_then(|()| w.flush());
        }
        if let Some(f) = &mut self.log {
            f.write_all(data)?;
        }
        self.offset += data.len() as u64;
        Ok(Flow::Pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_passes_bytes_and_logs_them_each_way() {
        let dir = tempfile::tempdir().unwrap();
        let taps = Taps::new(None, Some(dir.path().join("log"))).unwrap();
        let (mut up, mut down) = taps.stages(7, "peer").unwrap();
        let mut out = BytesMut::new();
        assert_eq!(up.feed(b"abc", false, &mut out).unwrap(), Flow::Pass);
        assert_eq!(up.feed(b"def", false, &mut out).unwrap(), Flow::Pass);
        assert_eq!(down.feed(b"xyz", false, &mut out).unwrap(), Flow::Pass);
        assert_eq!(up.feed(b"", true, &mut out).unwrap(), Flow::Pass);
        assert!(out.is_empty());
        drop((up, down));
        let read = |n: &str| std::fs::read(dir.path().join("log").join(n)).unwrap();
        assert_eq!(read("7.sent"), b"abcdef");
        assert_eq!(read("7.received"), b"xyz");
    }

    #[test]
    fn the_dump_names_way_time_offset_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dump");
        let taps = Taps::new(Some(Some(file.clone())), None).unwrap();
        let (mut up, _down) = taps.stages(1, "127.0.0.1:9").unwrap();
        let mut out = BytesMut::new();
        up.feed(b"GET / HTTP/1.0\r\n\r\n", false, &mut out).unwrap();
        up.feed(b"x", false, &mut out).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("> 20"), "{text}");
        assert!(
            lines[0].ends_with(" 127.0.0.1:9 offset 0, 18 bytes"),
            "{text}"
        );
        assert_eq!(
            lines[1],
            "> 0000   47 45 54 20 2f 20 48 54  54 50 2f 31 2e 30 0d 0a  GET./.HTTP/1.0.."
        );
        assert!(lines[3].ends_with("offset 18, 1 byte"), "{text}");
    }
}
