//! netcat-openbsd's command line, read the way its `getopt` reads it:
//! flags bundle (`-zv`), a flag's value may be attached (`-x10.2.3.4:8080`,
//! `-Pruser`) or follow, and flags may come after the operands. Pure: no
//! I/O, no lookups (a port's service name is resolved later).
//!
//! A flag sockit cannot honour is named and refused ([`NcError::Unsupported`]),
//! never ignored. The checks and their wording follow nc's own
//! (`nc: cannot use -z and -l`), with exit 2 as every sockit usage error.

use std::time::Duration;

/// Why a netcat command line cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NcError {
    /// Wrong use: nc's own wording.
    #[error("{0}")]
    Usage(String),
    /// A flag netcat has and sockit does not honour.
    #[error("-{flag} ({what}) is not supported by sockit nc")]
    Unsupported {
        /// The flag's letter.
        flag: char,
        /// What it does in netcat, in a few words.
        what: &'static str,
    },
}

impl crate::error::Failure for NcError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Usage
    }
}

/// `-X`: the protocol spoken to the proxy of `-x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyProto {
    /// `-X 5` (the default): SOCKS5, names sent to the proxy.
    #[default]
    Socks5,
    /// `-X 4`: SOCKS4, names resolved here.
    Socks4,
    /// `-X connect`: HTTP CONNECT.
    Connect,
}

/// A netcat command line, read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NcArgs {
    /// `-4`.
    pub v4: bool,
    /// `-6`.
    pub v6: bool,
    /// `-b`: allow broadcast.
    pub broadcast: bool,
    /// `-C`: send LF as CRLF.
    pub crlf: bool,
    /// `-D`: `SO_DEBUG` on the socket.
    pub debug: bool,
    /// `-d`: do not read stdin.
    pub no_stdin: bool,
    /// `-h`.
    pub help: bool,
    /// `-I`: the TCP receive buffer.
    pub recv_buf: Option<usize>,
    /// `-i`: pause between lines, and between ports.
    pub interval: Option<Duration>,
    /// `-k`: keep listening.
    pub keep: bool,
    /// `-l`: listen.
    pub listen: bool,
    /// `-M`: TTL / hop limit of outgoing packets.
    pub ttl: Option<u32>,
    /// `-m`: drop incoming packets under this TTL.
    pub min_ttl: Option<u32>,
    /// `-N`: shut the socket down at the end of stdin.
    pub half_close: bool,
    /// `-n`: no name lookups at all.
    pub numeric: bool,
    /// `-O`: the TCP send buffer.
    pub send_buf: Option<usize>,
    /// `-P`: the proxy username.
    pub proxy_user: Option<String>,
    /// `-p`: the source port (or, with `-l`, the port to listen on).
    pub source_port: Option<String>,
    /// `-q`: quit this long after the end of stdin (negative: never).
    pub quit_after: Option<Duration>,
    /// `-r`: ports in a random order.
    pub random: bool,
    /// `-s`: the source address (or, with `-l`, the address to listen on).
    pub source: Option<String>,
    /// `-T`: the IP TOS / traffic class byte.
    pub tos: Option<u8>,
    /// `-U`: Unix sockets.
    pub unix: bool,
    /// `-u`: UDP.
    pub udp: bool,
    /// `-v` (repeatable).
    pub verbose: u8,
    /// `-w`: connect timeout, and idle timeout after the end of stdin.
    pub timeout: Option<Duration>,
    /// `-X`.
    pub proxy_proto: ProxyProto,
    /// `-x`: the proxy, `HOST[:PORT]`.
    pub proxy: Option<String>,
    /// `-z`: scan only.
    pub scan: bool,
    /// `-e PROG` (ncat's): run PROG joined to the connection, no shell.
    pub exec: Option<String>,
    /// `-c CMD` (ncat's): run CMD with `/bin/sh -c`.
    pub sh: Option<String>,
    /// `--tls`, or OpenBSD's `-c` with no command: TLS.
    pub tls: bool,
    /// The operands: `[HOST] PORT...`, or a socket path with `-U`.
    pub operands: Vec<String>,
}

/// The flags that take a value.
const WITH_VALUE: &str = "IiMmOPpqsTVWwXxec";

/// Flags netcat-openbsd has that sockit refuses by name.
fn unsupported(flag: char) -> Option<&'static str> {
    Some(match flag {
        'F' => "passing the socket to stdout with sendmsg",
        'S' => "the TCP MD5 signature option",
        't' => "answering telnet negotiation",
        'V' => "choosing a routing table",
        'W' => "quitting after a number of packets",
        'Z' => "DCCP",
        _ => return None,
    })
}

/// A whole number of seconds, or a fraction, as netcat's timers take.
fn secs(s: &str, what: &str) -> Result<Duration, NcError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(NcError::Usage(format!("{what} invalid: {s}"))),
    }
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, NcError> {
    s.parse()
        .map_err(|_| NcError::Usage(format!("{what} invalid: {s}")))
}

/// `-T`'s keywords and numbers.
fn tos(s: &str) -> Result<u8, NcError> {
    let named = match s.to_ascii_lowercase().as_str() {
        "lowdelay" => Some(0x10),
        "throughput" => Some(0x08),
        "reliability" => Some(0x04),
        "lowcost" | "mincost" => Some(0x02),
        "critical" => Some(0xa0),
        "inetcontrol" => Some(0xc0),
        "netcontrol" => Some(0xe0),
        "ef" => Some(0xb8),
        k => {
            // DiffServ: afXY (X 1-4, Y 1-3) and csN (N 0-7), as DSCP << 2.
            let dscp = if let Some(n) = k.strip_prefix("af") {
                match n.as_bytes() {
                    [c @ b'1'..=b'4', p @ b'1'..=b'3'] => Some((c - b'0') * 8 + (p - b'0') * 2),
                    _ => None,
                }
            } else if let Some(n) = k.strip_prefix("cs") {
                match n.as_bytes() {
                    [c @ b'0'..=b'7'] => Some((c - b'0') * 8),
                    _ => None,
                }
            } else {
                None
            };
            dscp.map(|d| d << 2)
        }
    };
    if let Some(v) = named {
        return Ok(v);
    }
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u8::from_str_radix(h, 16).ok(),
        None => s.parse::<u8>().ok(),
    };
    parsed.ok_or_else(|| NcError::Usage(format!("illegal tos value {s}")))
}

/// Reads a netcat command line (without the program name).
///
/// # Errors
/// A malformed or contradictory line, or a flag sockit does not honour.
pub fn parse<S: AsRef<str>>(argv: &[S]) -> Result<NcArgs, NcError> {
    let mut a = NcArgs::default();
    let mut c_value: Option<String> = None;
    let mut i = 0;
    // Bounded: each pass takes at least one argument.
    while i < argv.len() {
        let arg = argv[i].as_ref();
        i += 1;
        if arg == "--" {
            a.operands
                .extend(argv[i..].iter().map(|s| s.as_ref().to_string()));
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            match long {
                "tls" => a.tls = true,
                "help" => a.help = true,
                _ => return Err(NcError::Usage(format!("unrecognized option '--{long}'"))),
            }
            continue;
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            a.operands.push(arg.to_string());
            continue;
        };
        for (at, f) in flags.char_indices() {
            if let Some(what) = unsupported(f) {
                return Err(NcError::Unsupported { flag: f, what });
            }
            if !WITH_VALUE.contains(f) {
                match f {
                    '4' => a.v4 = true,
                    '6' => a.v6 = true,
                    'b' => a.broadcast = true,
                    'C' => a.crlf = true,
                    'D' => a.debug = true,
                    'd' => a.no_stdin = true,
                    'h' => a.help = true,
                    'k' => a.keep = true,
                    'l' => a.listen = true,
                    'N' => a.half_close = true,
                    'n' => a.numeric = true,
                    'r' => a.random = true,
                    'U' => a.unix = true,
                    'u' => a.udp = true,
                    'v' => a.verbose = a.verbose.saturating_add(1),
                    'z' => a.scan = true,
                    _ => return Err(NcError::Usage(format!("invalid option -- '{f}'"))),
                }
                continue;
            }
            // The rest of this word, or the next argument, is the value.
            let rest = &flags[at + f.len_utf8()..];
            let value = if !rest.is_empty() {
                rest.to_string()
            } else if f == 'c' && argv.get(i).is_none_or(|v| v.as_ref().starts_with('-')) {
                // OpenBSD's TLS `-c` takes no value.
                a.tls = true;
                break;
            } else {
                let Some(v) = argv.get(i) else {
                    return Err(NcError::Usage(format!(
                        "option requires an argument -- '{f}'"
                    )));
                };
                i += 1;
                v.as_ref().to_string()
            };
            match f {
                'I' => a.recv_buf = Some(number(&value, "TCP receive window")?),
                'O' => a.send_buf = Some(number(&value, "TCP send window")?),
                'i' => a.interval = Some(secs(&value, "interval")?),
                'M' => a.ttl = Some(number(&value, "ttl")?),
                'm' => a.min_ttl = Some(number(&value, "minttl")?),
                'P' => a.proxy_user = Some(value),
                'p' => a.source_port = Some(value),
                'q' => {
                    a.quit_after = if value.starts_with('-') {
                        // Negative: wait forever (the default).
                        number::<i64>(&value, "quit timer")?;
                        None
                    } else {
                        Some(secs(&value, "quit timer")?)
                    }
                }
                's' => a.source = Some(value),
                'T' => a.tos = Some(tos(&value)?),
                'w' => {
                    let t = secs(&value, "timeout")?;
                    a.timeout = (!t.is_zero()).then_some(t);
                }
                'X' => {
                    a.proxy_proto = match value.to_ascii_lowercase().as_str() {
                        "5" => ProxyProto::Socks5,
                        "4" => ProxyProto::Socks4,
                        "connect" => ProxyProto::Connect,
                        _ => return Err(NcError::Usage("unsupported proxy protocol".into())),
                    }
                }
                'x' => a.proxy = Some(value),
                'e' => a.exec = Some(value),
                'c' => c_value = Some(value),
                _ => return Err(NcError::Usage(format!("invalid option -- '{f}'"))),
            }
            break;
        }
    }
    if let Some(v) = c_value {
        // OpenBSD's `-c` (TLS) before HOST PORT reads as `-c HOST`: when a
        // client is left one operand short, the value was the host.
        if !a.listen && !a.unix && a.operands.len() == 1 && a.exec.is_none() {
            a.tls = true;
            a.operands.insert(0, v);
        } else {
            a.sh = Some(v);
        }
    }
    check(&a)?;
    Ok(a)
}

/// netcat's own checks of what goes with what.
fn check(a: &NcArgs) -> Result<(), NcError> {
    let usage = |s: &str| Err(NcError::Usage(s.into()));
    if a.help {
        return Ok(());
    }
    if a.v4 && a.v6 {
        return usage("-4 and -6 cannot be used together");
    }
    if a.listen && a.scan {
        return usage("cannot use -z and -l");
    }
    if a.keep && !a.listen {
        return usage("must use -l with -k");
    }
    if a.proxy.is_some() {
        if a.listen {
            return usage("no proxy support for listen");
        }
        if a.udp {
            return usage("no proxy support for UDP mode");
        }
        if a.unix {
            return usage("no proxy support for unix sockets");
        }
        if a.source.is_some() {
            return usage("no proxy support for -s");
        }
    }
    if a.proxy_user.is_some() && a.proxy.is_none() {
        return usage("-P requires a proxy (-x)");
    }
    if a.exec.is_some() && a.sh.is_some() {
        return usage("-e and -c cannot be used together");
    }
    if (a.exec.is_some() || a.sh.is_some()) && (a.udp || a.scan) {
        return usage("-e and -c run a program per TCP or Unix connection");
    }
    if a.tls && (a.udp || a.unix || a.scan) {
        return usage("TLS is for TCP connections");
    }
    if a.unix {
        match a.operands.len() {
            0 if a.listen => return usage("missing socket pathname"),
            0 => return usage("missing destination (a socket path with -U)"),
            1 => {}
            _ => return usage("too many arguments: -U takes one socket path"),
        }
        return Ok(());
    }
    if a.listen {
        if a.operands.is_empty() && a.source_port.is_none() {
            return usage("missing port number");
        }
        if a.operands.len() > 2 || (a.operands.len() == 2 && a.source_port.is_some()) {
            return usage("too many arguments: -l takes [HOST] PORT");
        }
        return Ok(());
    }
    match a.operands.len() {
        0 => usage("missing destination"),
        1 => usage("missing port number"),
        _ => Ok(()),
    }
}

/// One port operand: a number, a range `nn-mm` (either way round) or a
/// service name (resolved by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// A number or a range, in the order given.
    Numbers(Vec<u16>),
    /// A name from the services database.
    Name(String),
}

/// Reads one port operand, with netcat's wording for a bad one.
///
/// # Errors
/// A number out of range, or text that can be neither.
pub fn port_spec(s: &str) -> Result<PortSpec, NcError> {
    let num = |t: &str| -> Result<u16, NcError> {
        match t.parse::<u64>() {
            Ok(0) => Err(NcError::Usage(format!("port number too small: {t}"))),
            Ok(n) if n > 65535 => Err(NcError::Usage(format!("port number too large: {t}"))),
            Ok(n) => Ok(n as u16),
            Err(_) => Err(NcError::Usage(format!("port number invalid: {t}"))),
        }
    };
    if let Some((lo, hi)) = s.split_once('-') {
        if !lo.is_empty() && lo.bytes().all(|b| b.is_ascii_digit()) {
            let (lo, hi) = (num(lo)?, num(hi)?);
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            return Ok(PortSpec::Numbers((lo..=hi).collect()));
        }
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(PortSpec::Numbers(vec![num(s)?]));
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(NcError::Usage(format!("port number invalid: {s}")));
    }
    Ok(PortSpec::Name(s.to_string()))
}

/// netcat's usage text, for `-h` (and after a usage error, as nc does).
pub const USAGE: &str = "\
usage: sockit nc [-46bCDdhklNnrUuvz] [-I length] [-i interval] [-M ttl]
\t  [-m minttl] [-O length] [-P proxy_username] [-p source_port]
\t  [-q seconds] [-s sourceaddr] [-T keyword] [-w timeout]
\t  [-X proxy_protocol] [-x proxy_address[:port]] [-e program] [-c command]
\t  [--tls] [destination] [port ...]
netcat-openbsd's command line on sockit's engine; `sockit nc -h` lists the
flags, and the README the ways it differs from nc on purpose.
";

/// What each flag does, for `-h`.
pub const HELP: &str = "\
\t-4\t\tUse IPv4
\t-6\t\tUse IPv6
\t-b\t\tAllow broadcast
\t-C\t\tSend CRLF as line-ending
\t-c command\tRun command with /bin/sh -c for each connection (ncat's -c);
\t\t\twith no command (OpenBSD's TLS -c), the same as --tls
\t-D\t\tEnable the debug socket option
\t-d\t\tDetach from stdin
\t-e program\tRun program for each connection, with no shell (ncat's -e)
\t-h\t\tThis help text
\t-I length\tTCP receive buffer length
\t-i interval\tDelay interval for lines sent, ports scanned
\t-k\t\tKeep inbound sockets open for multiple connects
\t-l\t\tListen mode, for inbound connects
\t-M ttl\t\tOutgoing TTL / Hop Limit
\t-m minttl\tMinimum incoming TTL / Hop Limit
\t-N\t\tShutdown the network socket after EOF on stdin
\t-n\t\tSuppress name/port resolutions
\t-O length\tTCP send buffer length
\t-P proxyuser\tUsername for proxy authentication
\t-p port\t\tSpecify local port for remote connects
\t-q secs\t\tquit after EOF on stdin and delay of secs
\t-r\t\tRandomize remote ports
\t-s sourceaddr\tLocal source address
\t-T keyword\tTOS value
\t-U\t\tUse UNIX domain socket
\t-u\t\tUDP mode
\t-v\t\tVerbose
\t-w timeout\tTimeout for connects and final net reads
\t-X proto\tProxy protocol: \"4\", \"5\" (SOCKS) or \"connect\"
\t-x addr[:port]\tSpecify proxy address and port
\t-z\t\tZero-I/O mode [used for scanning]
\t--tls\t\tTLS to the peer (sockit's trust rules: tcp connect --help)
\tPort numbers can be individual or ranges: lo-hi [inclusive]
\tNot supported: -F, -S, -t, -V, -W, -Z
";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<NcArgs, NcError> {
        let v: Vec<&str> = s.split_whitespace().collect();
        parse(&v)
    }

    #[test]
    fn flags_bundle_take_attached_values_and_follow_operands() {
        let a = p("-zv 127.0.0.1 20-30").unwrap();
        assert!(a.scan && a.verbose == 1);
        assert_eq!(a.operands, ["127.0.0.1", "20-30"]);
        let a = p("-x10.2.3.4:8080 -Xconnect -Pruser host 42").unwrap();
        assert_eq!(a.proxy.as_deref(), Some("10.2.3.4:8080"));
        assert_eq!(a.proxy_proto, ProxyProto::Connect);
        assert_eq!(a.proxy_user.as_deref(), Some("ruser"));
        let a = p("-p 31337 -w 5 host 42").unwrap();
        assert_eq!(a.source_port.as_deref(), Some("31337"));
        assert_eq!(a.timeout, Some(Duration::from_secs(5)));
        // GNU getopt permutes: flags after the operands count.
        let a = p("127.0.0.1 1234 -N -q0").unwrap();
        assert!(a.half_close);
        assert_eq!(a.quit_after, Some(Duration::ZERO));
        assert_eq!(p("-q -1 h 1").unwrap().quit_after, None);
        let a = p("-lU /var/tmp/dsocket").unwrap();
        assert!(a.listen && a.unix);
        let a = p("-lvkp 1234").unwrap();
        assert_eq!(a.source_port.as_deref(), Some("1234"));
        assert!(a.listen && a.keep);
    }

    #[test]
    fn c_is_a_command_or_openbsd_tls() {
        let a = p("-l -p 9 -c cat").unwrap();
        assert_eq!(a.sh.as_deref(), Some("cat"));
        assert!(!a.tls);
        let a = p("-c example.test 443").unwrap();
        assert!(a.tls && a.sh.is_none());
        assert_eq!(a.operands, ["example.test", "443"]);
        let a = p("-c -v example.test 443").unwrap();
        assert!(a.tls);
        let a = p("--tls h 443").unwrap();
        assert!(a.tls);
        let a = p("h 9 -c 'cat'").unwrap();
        assert!(a.sh.is_some());
    }

    #[test]
    fn nc_wording_for_bad_lines_and_unsupported_flags_named() {
        let e = |s: &str| p(s).unwrap_err().to_string();
        assert_eq!(e("-l -z 80"), "cannot use -z and -l");
        assert_eq!(e("-k 127.0.0.1 80"), "must use -l with -k");
        assert_eq!(e("-l"), "missing port number");
        assert_eq!(e("127.0.0.1"), "missing port number");
        assert_eq!(e("-lU"), "missing socket pathname");
        assert_eq!(e("-q x h 1"), "quit timer invalid: x");
        assert_eq!(e("-w x h 1"), "timeout invalid: x");
        assert_eq!(e("-X 6 -x h h 1"), "unsupported proxy protocol");
        assert_eq!(e("-u -x h h 1"), "no proxy support for UDP mode");
        assert_eq!(e("-x h -l 1"), "no proxy support for listen");
        assert_eq!(e("-T foo h 1"), "illegal tos value foo");
        assert_eq!(e("-p"), "option requires an argument -- 'p'");
        assert_eq!(e("-Y h 1"), "invalid option -- 'Y'");
        assert_eq!(
            e("-F h 1"),
            "-F (passing the socket to stdout with sendmsg) is not supported by sockit nc"
        );
        for f in ["-S", "-t", "-V 1", "-W 3", "-Z"] {
            let err = p(&format!("{f} h 1")).unwrap_err();
            assert!(matches!(err, NcError::Unsupported { .. }), "{f}: {err}");
        }
    }

    #[test]
    fn ports_numbers_ranges_names() {
        assert_eq!(port_spec("80").unwrap(), PortSpec::Numbers(vec![80]));
        assert_eq!(
            port_spec("22-24").unwrap(),
            PortSpec::Numbers(vec![22, 23, 24])
        );
        assert_eq!(
            port_spec("24-22").unwrap(),
            PortSpec::Numbers(vec![22, 23, 24])
        );
        assert_eq!(port_spec("http").unwrap(), PortSpec::Name("http".into()));
        assert_eq!(
            port_spec("0").unwrap_err().to_string(),
            "port number too small: 0"
        );
        assert_eq!(
            port_spec("65536").unwrap_err().to_string(),
            "port number too large: 65536"
        );
        assert_eq!(
            port_spec("a b").unwrap_err().to_string(),
            "port number invalid: a b"
        );
    }

    #[test]
    fn tos_keywords() {
        assert_eq!(tos("lowdelay").unwrap(), 0x10);
        assert_eq!(tos("af11").unwrap(), 0x28);
        assert_eq!(tos("cs7").unwrap(), 0xe0);
        assert_eq!(tos("ef").unwrap(), 0xb8);
        assert_eq!(tos("0x10").unwrap(), 0x10);
        assert_eq!(tos("16").unwrap(), 16);
        assert!(tos("af5").is_err());
    }
}
