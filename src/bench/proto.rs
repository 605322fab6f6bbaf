//! The `sockit bench` hello: one frame of `key=value` words that opens
//! every connection, and the server's one-frame answer. Free of I/O.

use std::collections::HashMap;

/// First word of every hello; the number is the protocol version.
pub const HELLO: &str = "SOCKIT-BENCH";
/// Protocol version spoken here.
pub const VERSION: u32 = 1;
/// Longest test the server runs, whatever the client asks.
pub const MAX_SECS: f64 = 120.0;
/// Largest TCP write or rr message.
pub const MAX_TCP_LEN: usize = 4 << 20;
/// Largest UDP payload.
pub const MAX_UDP_LEN: usize = 65_507;
/// Smallest UDP payload (it carries a 16-byte sequence and timestamp).
pub const MIN_UDP_LEN: usize = 16;
/// Highest rate a client may ask for, bits per second.
pub const MAX_RATE: u64 = 400_000_000_000;

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bulk TCP: the client sends (`up`) or receives (`down`).
    Tcp,
    /// UDP at a rate, loss and jitter measured by the server.
    Udp,
    /// TCP request/response round trips.
    Rr,
    /// UDP request/response round trips.
    UdpRr,
    /// Connection setup and holding.
    Conns,
}

impl Mode {
    /// The mode's name on the wire and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Udp => "udp",
            Mode::Rr => "rr",
            Mode::UdpRr => "udp-rr",
            Mode::Conns => "conns",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "tcp" => Mode::Tcp,
            "udp" => Mode::Udp,
            "rr" => Mode::Rr,
            "udp-rr" => Mode::UdpRr,
            "conns" => Mode::Conns,
            _ => return None,
        })
    }
}

/// A parsed, checked hello.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// The test.
    pub mode: Mode,
    /// For tcp: true when the server sends.
    pub down: bool,
    /// Bytes per write, message or datagram.
    pub len: usize,
    /// Test length in seconds.
    pub secs: f64,
    /// Stop after this many bytes (0: no limit).
    pub bytes: u64,
    /// UDP rate in bits per second (0: as fast as possible).
    pub rate: u64,
}

impl Hello {
    /// The hello as one line of words.
    pub fn encode(&self) -> String {
        format!(
            "{HELLO} {VERSION} mode={} dir={} len={} secs={} bytes={} rate={}",
            self.mode.name(),
            if self.down { "down" } else { "up" },
            self.len,
            self.secs,
            self.bytes,
            self.rate
        )
    }

    /// Parses and checks a hello. The error is the sentence the server
    /// sends back.
    ///
    /// # Errors
    /// A wrong version, an unknown mode, or an absurd size, rate or time.
    pub fn decode(text: &str) -> Result<Hello, String> {
        let mut words = text.split_whitespace();
        if words.next() != Some(HELLO) {
            return Err("this is a sockit bench server; connect with `sockit bench client`".into());
        }
        match words.next().and_then(|v| v.parse::<u32>().ok()) {
            Some(VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "the client speaks bench protocol {v}, this server speaks {VERSION}; use the same sockit version on both ends"
                ))
            }
            None => return Err("the hello has no protocol version".into()),
        }
        let kv: HashMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
        let get = |k: &str| kv.get(k).copied().unwrap_or("");
        let mode =
            Mode::parse(get("mode")).ok_or_else(|| format!("unknown mode {:?}", get("mode")))?;
        let len: usize = get("len")
            .parse()
            .map_err(|_| "len is not a number".to_string())?;
        let secs: f64 = get("secs")
            .parse()
            .map_err(|_| "secs is not a number".to_string())?;
        let bytes: u64 = get("bytes").parse().unwrap_or(0);
        let rate: u64 = get("rate").parse().unwrap_or(0);
        let (min_len, max_len) = match mode {
            Mode::Udp | Mode::UdpRr => (MIN_UDP_LEN, MAX_UDP_LEN),
            _ => (1, MAX_TCP_LEN),
        };
        if mode != Mode::Conns && !(min_len..=max_len).contains(&len) {
            return Err(format!(
                "len {len} is outside {min_len}..={max_len} for {}",
                mode.name()
            ));
        }
        if !(secs.is_finite() && secs > 0.0 && secs <= MAX_SECS) {
            return Err(format!(
                "a test lasts more than 0 and at most {MAX_SECS} s; {secs} was asked"
            ));
        }
        if rate > MAX_RATE {
            return Err(format!(
                "a rate of {rate} bit/s is absurd; the limit is {MAX_RATE}"
            ));
        }
        Ok(Hello {
            mode,
            down: get("dir") == "down",
            len,
            secs,
            bytes,
            rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let h = Hello {
            mode: Mode::Udp,
            down: false,
            len: 1400,
            secs: 2.5,
            bytes: 0,
            rate: 1_000_000,
        };
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
        assert!(Hello::decode("SOCKIT-BENCH 2 mode=tcp len=1 secs=1")
            .unwrap_err()
            .contains("same sockit version"));
        assert!(Hello::decode("GET / HTTP/1.1").is_err());
        assert!(Hello::decode("SOCKIT-BENCH 1 mode=udp len=70000 secs=1").is_err());
        assert!(Hello::decode("SOCKIT-BENCH 1 mode=tcp len=10 secs=100000").is_err());
        assert!(
            Hello::decode("SOCKIT-BENCH 1 mode=tcp len=10 secs=1 rate=999999999999999999").is_err()
        );
        assert!(Hello::decode("SOCKIT-BENCH 1 mode=warp len=10 secs=1").is_err());
        assert!(Hello::decode("").is_err());
    }
}
