//! The `sockit` binary: parses arguments, calls the library, prints one
//! plain sentence on failure, and maps the result to an exit code
//! (0 success, 1 runtime failure, 2 usage error).

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use sockit::frame::DEFAULT_MAX_FRAME;
use sockit::net::{parse_port, BindAddr, ConnectOptions, Family};
use sockit::report::json_str;
use sockit::tcp::pipe::{Outcome, PipeOptions};
use sockit::tcp::server::{Mode, ServerOptions, DEFAULT_PEER_QUEUE_BYTES};
use sockit::text::{Encoding, TextOptions, MAX_LINE};
use sockit::udp::{Messages, Reply, Show};

/// A fast, safe TCP/UDP toolkit: chat, echo, pipe bytes, frame messages, UDP datagrams.
#[derive(Parser)]
#[command(name = "sockit", version, propagate_version = true)]
struct Cli {
    /// Show connection events (connected, half-closed, reset); twice for debug detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    verbose: u8,
    /// Show only errors (and the `listening on` line scripts read).
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// TCP: connect to a peer, or listen for peers.
    #[command(subcommand)]
    Tcp(TcpCmd),
    /// UDP: send datagrams and print replies, or listen (print, echo, upper-case echo).
    #[command(subcommand)]
    Udp(UdpCmd),
    /// Serve the regular files under DIR, read-only (native protocol and seed 002's raw requests).
    Serve(ServeCli),
    /// Download NAME... from a `sockit serve`, verified with BLAKE3 and resumable.
    Get(GetCli),
    /// List the files a `sockit serve` offers.
    Ls(LsCli),
    /// Look up names, addresses and services, like getent (or ask a DNS server directly).
    #[command(subcommand)]
    Lookup(LookupCmd),
    /// Measure TCP handshake latency to HOST PORT, like tcping.
    Ping(PingCli),
    /// Find which TCP ports are open on HOST (connect scan).
    Scan(ScanCli),
    /// Measure throughput, loss, latency and connection rates (server and client).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// A guided tour of every feature, on loopback only.
    Demo,
}

#[derive(Subcommand)]
enum TcpCmd {
    /// Connect to HOST PORT and join the connection to stdin/stdout, full duplex.
    Connect(ConnectCli),
    /// Listen on [ADDR:]PORT: one peer like `nc -l`, or many with -k/--echo/--upper/--chat.
    Listen(ListenCli),
}

#[derive(Subcommand)]
enum UdpCmd {
    /// Send each MESSAGE (or each stdin line) as one datagram; print replies as they arrive.
    Send(UdpSendCli),
    /// Listen on [ADDR:]PORT and print each datagram on its own line.
    Listen(UdpListenCli),
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit udp send 127.0.0.1 8080 hello            one datagram, print the replies\n  sockit udp send 127.255.255.255 8080 hi --broadcast\n  printf 'a\\nb\\n' | sockit udp send ::1 8080     one datagram per stdin line\n  sockit udp send 127.0.0.1 8080 --whole < q.bin  all of stdin as one datagram"))]
struct UdpSendCli {
    /// Host name or IP address (a broadcast or multicast address works too).
    host: String,
    /// Port, 1 to 65535, or a UDP service name (domain, ntp).
    #[arg(value_parser = parse_udp_port)]
    port: u16,
    /// Datagrams to send, one per argument; without any, each stdin line is one datagram.
    messages: Vec<String>,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
    /// Allow sending to a broadcast address (SO_BROADCAST).
    #[arg(long)]
    broadcast: bool,
    /// Multicast TTL (hops); 1 by default, so multicast stays on the local link.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=255))]
    ttl: Option<u32>,
    /// Receive our own multicast datagrams too.
    #[arg(long)]
    multicast_loop: bool,
    /// Seconds to wait for late replies after the last send.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs_or_zero)]
    wait: Duration,
    /// Exit as soon as N replies have arrived.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count_replies: Option<u64>,
    /// Local [ADDR:]PORT to send from (seed 001 binds port 7788).
    #[arg(long, value_name = "[ADDR:]PORT")]
    bind: Option<BindAddr>,
    /// Show replies as a hex dump.
    #[arg(long)]
    hex: bool,
    /// Send all of stdin as one datagram (at most 65,507 bytes), not one per line.
    #[arg(long, conflicts_with = "messages")]
    whole: bool,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit udp listen 8080                          print each datagram\n  sockit udp listen 127.0.0.1:8080 --upper        upper-case echo (seed 003)\n  sockit udp listen 8080 --reuse-port             share the port (broadcast)"))]
struct UdpListenCli {
    /// PORT (all interfaces, IPv6 and IPv4) or ADDR:PORT; port 0 picks a free one.
    addr: BindAddr,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
    /// Send each datagram back to its sender.
    #[arg(long, conflicts_with = "upper")]
    echo: bool,
    /// Send each datagram back upper-cased (seed 003).
    #[arg(long)]
    upper: bool,
    /// Show payloads as a hex dump.
    #[arg(long)]
    hex: bool,
    /// Receive buffer per datagram; longer datagrams are truncated and reported.
    #[arg(long, value_name = "BYTES", default_value_t = 65535,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    buffer: u32,
    /// Stop when a datagram equal to WORD arrives (repeatable; seed 004 uses exit).
    #[arg(long = "quit", value_name = "WORD")]
    quit: Vec<String>,
    /// Let several listeners share the port (SO_REUSEPORT), e.g. to receive broadcasts.
    #[arg(long)]
    reuse_port: bool,
    /// Join an IPv4 or IPv6 multicast group.
    #[arg(long, value_name = "GROUP")]
    join: Option<std::net::IpAddr>,
    /// Interface for --join: an IPv4 address, or an IPv6 interface name or index.
    #[arg(long, value_name = "ADDR", requires = "join")]
    iface: Option<String>,
    /// Send each stdin line to the sender of the latest datagram, as `nc -u -l` does.
    #[arg(long, conflicts_with_all = ["echo", "upper"])]
    talk: bool,
    #[command(flatten)]
    access: AccessArgs,
}

#[derive(Subcommand)]
enum LookupCmd {
    /// This machine's host name.
    Hostname {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every address of NAME (system resolver, or --dns SERVER).
    Host(LookupHostCli),
    /// The name of an IP address (reverse lookup).
    Addr {
        /// An IPv4 or IPv6 address.
        ip: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The port of a service name (https -> 443).
    Service {
        /// A service name from the services database.
        name: String,
        /// tcp or udp [default: tcp].
        #[arg(long, value_name = "PROTO")]
        proto: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The service name of a port (3389/tcp -> ms-wbt-server).
    Port {
        /// A port number, 0 to 65535 (or N/tcp, N/udp).
        port: String,
        /// tcp or udp [default: tcp].
        #[arg(long, value_name = "PROTO")]
        proto: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit lookup host localhost                    as getent ahosts does\n  sockit lookup host www.example.test --dns 127.0.0.1:5353 --type MX"))]
struct LookupHostCli {
    /// A host name or IP address.
    name: String,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
    /// Ask this DNS server directly over UDP (TCP if truncated), as dig does.
    #[arg(long, value_name = "SERVER[:PORT]")]
    dns: Option<String>,
    /// Record type for --dns: A, AAAA, MX, TXT, PTR, CNAME, NS or ANY (default: A and AAAA).
    #[arg(long = "type", value_name = "TYPE", requires = "dns")]
    rtype: Option<String>,
    /// Show the system resolver's answer and the DNS server's side by side.
    #[arg(long, requires = "dns")]
    compare: bool,
    /// Seconds to wait for the DNS server, across all tries.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs)]
    timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit ping 127.0.0.1 22                        four handshakes\n  sockit ping localhost https -c 10 --interval 0.2"))]
struct PingCli {
    /// Host name or IP address.
    host: String,
    /// Port, 1 to 65535, or a service name (ssh, https).
    #[arg(value_parser = parse_tcp_port)]
    port: u16,
    /// Number of attempts.
    #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    count: u32,
    /// Seconds between attempts.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs_or_zero)]
    interval: Duration,
    /// Seconds to wait for each handshake.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    timeout: Duration,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit scan 127.0.0.1 1-1024                    exit 1 when nothing is open\n  sockit scan ::1 22,80,443,8000-8100 --json\n  if sockit -q scan 127.0.0.1 5432; then echo up; fi"))]
struct ScanCli {
    /// Host name or IP address.
    host: String,
    /// Ports: 22, 1-1024, 80,443,8000-8100, or service names.
    ports: String,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=20000))]
    concurrency: u32,
    /// Seconds to wait for each connect.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    timeout: Duration,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Serve bench clients: many clients and tests at once.
    Server {
        /// Where to listen: PORT or ADDR:PORT.
        #[arg(long, short = 'l', value_name = "[ADDR:]PORT", default_value = "5301")]
        listen: BindAddr,
        #[command(flatten)]
        sec: ServerSecArgs,
    },
    /// Run one test against a bench server.
    Client(BenchClientCli),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchMode {
    /// TCP throughput.
    Tcp,
    /// UDP at a rate: loss, reordering, jitter.
    Udp,
    /// TCP request/response round trips and latency.
    Rr,
    /// UDP request/response round trips and latency.
    UdpRr,
    /// Connection setup rate and most connections held.
    Conns,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit bench client 127.0.0.1 tcp -t 5          TCP throughput\n  sockit bench client 127.0.0.1 udp -b 1G         UDP at 1 Gbit/s: loss, jitter\n  sockit bench client 127.0.0.1 rr --json         round trips and latency"))]
struct BenchClientCli {
    /// HOST or HOST:PORT; the port defaults to 5301.
    server: String,
    /// The test.
    #[arg(value_enum)]
    mode: BenchMode,
    /// Parallel streams (tcp).
    #[arg(short = 'P', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=128))]
    parallel: u32,
    /// The server sends (tcp).
    #[arg(short = 'R', long)]
    reverse: bool,
    /// Both directions at once (tcp).
    #[arg(long, conflicts_with = "reverse")]
    bidir: bool,
    /// Test length in seconds (at most 120).
    #[arg(short = 't', long = "time", value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    time: Duration,
    /// Stop each tcp stream after BYTES (K, M, G suffixes).
    #[arg(short = 'n', long, value_name = "BYTES", value_parser = parse_size)]
    bytes: Option<u64>,
    /// Bytes per write (tcp, default 128K), message (rr, default 64) or datagram (udp, default 1400).
    #[arg(short = 'l', long, value_name = "BYTES", value_parser = parse_size)]
    len: Option<u64>,
    /// UDP rate in bits per second, K/M/G suffixes; 0 = as fast as possible.
    #[arg(short = 'b', long, value_name = "BITS", default_value = "0", value_parser = parse_rate)]
    rate: u64,
    /// conns: the most connections to hold at once.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_conns: u32,
    /// Print a JSON document (iperf3 field names where the figure is the same).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sec: ClientSecArgs,
}

/// Parses a rate in bits per second (K/M/G are powers of 1000); 0 allowed.
fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000u64),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        Some('g' | 'G') => (&t[..t.len() - 1], 1_000_000_000),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate like 100M or 0"))?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(format!("{s:?} is not a rate like 100M or 0"));
    }
    let v = n * mult as f64;
    if v > 1e15 {
        return Err(format!("a rate of {s} is absurd"));
    }
    Ok(v as u64)
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit serve ./files                            serve ./files on port 8080\n  sockit serve . -l 127.0.0.1:9000 --max-rate 10M\n  sockit serve ./files --tls                      encrypted, kept identity"))]
struct ServeCli {
    /// The directory to serve.
    #[arg(default_value = ".")]
    dir: std::path::PathBuf,
    /// Where to listen: PORT or ADDR:PORT.
    #[arg(long, short = 'l', value_name = "[ADDR:]PORT", default_value = "8080")]
    listen: BindAddr,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
    /// Serve dotfiles too.
    #[arg(long)]
    hidden: bool,
    /// Serve at most N clients at once; more get a "busy" error.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_conns: u32,
    /// Close a client that sends nothing for SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    idle_timeout: Duration,
    /// Cap each download at BYTES per second (K, M, G suffixes allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    max_rate: Option<u64>,
    #[command(flatten)]
    sec: ServerSecArgs,
}

/// Parses a byte count with an optional K/M/G suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 => n
            .checked_mul(mult)
            .ok_or_else(|| format!("{s:?} is too large")),
        _ => Err(format!("{s:?} is not a positive size like 500K or 10M")),
    }
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit get 127.0.0.1 report.pdf                 verified, resumable\n  sockit get 127.0.0.1:9000 docs -r -d backup     a whole folder into backup/\n  sockit get 127.0.0.1 . -r                       the whole served tree\n  sockit get 127.0.0.1 notes.txt -o -             to stdout"))]
struct GetCli {
    /// HOST or HOST:PORT ([V6]:PORT); the port defaults to 8080.
    server: String,
    /// Paths on the server to download.
    #[arg(required = true)]
    names: Vec<String>,
    /// Save the (single) file as FILE, into FILE if it is a folder, or on stdout with `-o -`.
    #[arg(short = 'o', long, value_name = "FILE", conflicts_with = "dir")]
    output: Option<std::path::PathBuf>,
    /// Save into DIR.
    #[arg(short = 'd', long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
    /// Overwrite a file that exists with different content.
    #[arg(long)]
    force: bool,
    /// Download directory trees.
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Speak seed 002's protocol (send the name, read to EOF): no hash, no resume.
    #[arg(long, conflicts_with = "recursive")]
    raw: bool,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Give up when the server sends nothing for SECS seconds [default: 15].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    timeout: Option<Duration>,
    #[command(flatten)]
    sec: ClientSecArgs,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit ls 127.0.0.1                             the served root\n  sockit ls 127.0.0.1:9000 docs --json"))]
struct LsCli {
    /// HOST or HOST:PORT; the port defaults to 8080.
    server: String,
    #[command(flatten)]
    sec: ClientSecArgs,
    /// Directory on the server (the root by default).
    #[arg(default_value = "", hide_default_value = true)]
    path: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Give up when the server sends nothing for SECS seconds [default: 15].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    timeout: Option<Duration>,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
}

/// Splits `HOST[:PORT]` (or `[V6]:PORT`), with `default` when no port is given.
fn host_port(s: &str, default: u16) -> Result<(String, u16), String> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip().to_string(), parse_port(&sa.port().to_string())?));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Ok((inner.to_string(), default));
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((s.to_string(), default));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.trim_matches(|c| c == '[' || c == ']').to_string(),
            parse_port(p)?,
        )),
        None => Ok((s.to_string(), default)),
    }
}

/// How `get` and `ls` connect to a `sockit serve`.
fn transfer_connect(v4: bool, v6: bool) -> ConnectOptions {
    ConnectOptions {
        family: Family::from_flags(v4, v6),
        timeout: Some(Duration::from_secs(10)),
        bind: None,
        nodelay: true,
    }
}

/// Options that change how text is cut and converted.
#[derive(Args)]
struct TextArgs {
    /// A line equal to WORD, sent or received, ends the session (repeatable; the seeds use q, bye, exit).
    #[arg(long = "quit", value_name = "WORD")]
    quit: Vec<String>,
    /// Send lines ending in CRLF.
    #[arg(long)]
    crlf: bool,
    /// Text encoding on the wire (the terminal stays UTF-8).
    #[arg(long, value_enum, value_name = "ENC")]
    encoding: Option<Encoding>,
    /// Length-prefixed messages: each stdin line is one message, each message one output line.
    #[arg(long)]
    frame: bool,
    /// Largest message accepted or sent with --frame.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME)]
    max_frame: usize,
}

impl TextArgs {
    fn text(&self) -> TextOptions {
        TextOptions {
            quit: self.quit.clone(),
            crlf: self.crlf,
            encoding: self.encoding,
        }
    }

    fn frame(&self) -> Option<usize> {
        self.frame.then_some(self.max_frame)
    }
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit tcp connect 127.0.0.1 9527               chat with a listener\n  sockit tcp connect example.test http --crlf     a service name for the port\n  sockit tcp connect 127.0.0.1 9527 < big.iso     send a file (zero-copy)\n  sockit tcp connect 127.0.0.1 9527 --tls --tofu  encrypted, trust on first use"))]
struct ConnectCli {
    /// Host name or IP address.
    host: String,
    /// Port, 1 to 65535, or a service name (http, smtp), as nc takes.
    #[arg(value_parser = parse_tcp_port)]
    port: u16,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
    /// Give up on a connect after SECS seconds (per address).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    timeout: Duration,
    /// Local [ADDR:]PORT to connect from (like nc -s/-p).
    #[arg(long, value_name = "[ADDR:]PORT")]
    bind: Option<BindAddr>,
    /// Close the connection when the peer sends nothing for SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    idle_timeout: Option<Duration>,
    #[command(flatten)]
    text: TextArgs,
    #[command(flatten)]
    sec: ClientSecArgs,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit tcp listen 9527                          one peer, like nc -l\n  sockit tcp listen 127.0.0.1:9527 > got.bin      receive a file\n  sockit tcp listen 9527 --echo --max-conns 1000  an echo server\n  sockit tcp listen 9527 --chat                   a chat room"))]
struct ListenCli {
    /// PORT (all interfaces, IPv6 and IPv4) or ADDR:PORT; port 0 picks a free one.
    addr: BindAddr,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    v6: bool,
    /// Serve many peers at once: their data goes to stdout, stdin lines go to all of them.
    #[arg(short = 'k', long)]
    keep_open: bool,
    /// Send each peer its own bytes back (implies -k).
    #[arg(long, conflicts_with_all = ["upper", "chat"])]
    echo: bool,
    /// Send each peer each line back upper-cased (implies -k).
    #[arg(long, conflicts_with = "chat")]
    upper: bool,
    /// A chat room: each line goes to every other peer as `[name] line` (implies -k).
    #[arg(long)]
    chat: bool,
    /// Serve at most N peers at once; more are refused.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_conns: Option<u32>,
    /// Close a peer that sends nothing for SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    idle_timeout: Option<Duration>,
    /// Longest line a peer may send in the line modes.
    #[arg(long, value_name = "BYTES", default_value_t = MAX_LINE as u64, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    max_line: u64,
    /// Bytes that may wait for one slow peer (-k, --chat) before it is disconnected.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_PEER_QUEUE_BYTES)]
    peer_queue: usize,
    #[command(flatten)]
    text: TextArgs,
    #[command(flatten)]
    sec: ServerSecArgs,
}

/// TLS and access control on a listener.
#[derive(Args, Clone)]
struct ServerSecArgs {
    /// Encrypt with TLS 1.3 or 1.2. Without --tls-cert, uses a self-signed identity kept in $XDG_CONFIG_HOME/sockit.
    #[arg(long)]
    tls: bool,
    /// Certificate chain to present, PEM (with --tls-key).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    tls_cert: Option<std::path::PathBuf>,
    /// Private key for --tls-cert, PEM.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    tls_key: Option<std::path::PathBuf>,
    /// Mutual TLS: require a client certificate signed by this CA (PEM).
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_ca: Option<std::path::PathBuf>,
    /// Close a peer whose TLS handshake takes longer than SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    handshake_timeout: Duration,
    #[command(flatten)]
    access: AccessArgs,
}

/// `--allow` and `--deny`.
#[derive(Args, Clone)]
struct AccessArgs {
    /// Accept peers only from this network or address (repeatable), e.g. 127.0.0.0/8.
    #[arg(long, value_name = "CIDR")]
    allow: Vec<sockit::access::Cidr>,
    /// Refuse peers from this network or address (repeatable); wins over --allow.
    #[arg(long, value_name = "CIDR")]
    deny: Vec<sockit::access::Cidr>,
}

impl AccessArgs {
    fn list(&self) -> sockit::access::AccessList {
        sockit::access::AccessList {
            allow: self.allow.clone(),
            deny: self.deny.clone(),
        }
    }
}

impl ServerSecArgs {
    /// The TLS configuration, printing its fingerprint, or `None` for plain text.
    fn tls(&self) -> anyhow::Result<Option<sockit::tls::ServerTls>> {
        let t = self.tls_config()?;
        if let Some(t) = &t {
            eprintln!("{}", t.banner);
        }
        Ok(t)
    }

    /// The TLS configuration without printing it.
    fn tls_config(&self) -> anyhow::Result<Option<sockit::tls::ServerTls>> {
        if !self.tls {
            return Ok(None);
        }
        Ok(Some(sockit::tls::ServerTls::new(
            &sockit::tls::ServerTlsOptions {
                cert_key: self.tls_cert.clone().zip(self.tls_key.clone()),
                client_ca: self.tls_ca.clone(),
                identity_dir: None,
            },
        )?))
    }
}

/// TLS on a client.
#[derive(Args, Clone)]
struct ClientSecArgs {
    /// Encrypt with TLS 1.3 or 1.2 and check the server's certificate.
    #[arg(long)]
    tls: bool,
    /// Trust an unknown self-signed server on first use and record it in known_hosts.
    #[arg(long, requires = "tls")]
    tofu: bool,
    /// Trust exactly the certificate with this fingerprint (SHA256:hex).
    #[arg(long, value_name = "SHA256:HEX", requires = "tls", conflicts_with = "tofu", value_parser = parse_pin)]
    pin: Option<String>,
    /// Do not check the server's certificate at all (warns on every connection).
    #[arg(long, requires = "tls", conflicts_with_all = ["pin", "tofu"])]
    insecure: bool,
    /// Trust this CA (PEM) as well as the system roots.
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_ca: Option<std::path::PathBuf>,
    /// Present this client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_client_key"])]
    tls_client_cert: Option<std::path::PathBuf>,
    /// Private key for --tls-client-cert (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_client_cert"])]
    tls_client_key: Option<std::path::PathBuf>,
    /// Give up when the TLS handshake takes longer than SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    handshake_timeout: Duration,
}

impl ClientSecArgs {
    /// The client TLS options, or `None` for plain text.
    fn tls(&self) -> Option<sockit::tls::ClientTlsOptions> {
        self.tls.then(|| sockit::tls::ClientTlsOptions {
            insecure: self.insecure,
            pin: self.pin.clone(),
            tofu: self.tofu,
            ca: self.tls_ca.clone(),
            client_cert_key: self
                .tls_client_cert
                .clone()
                .zip(self.tls_client_key.clone()),
            known_hosts: None,
            handshake_timeout: self.handshake_timeout,
        })
    }
}

/// Parses a certificate fingerprint for `--pin`.
fn parse_pin(s: &str) -> Result<String, String> {
    sockit::tls::parse_fingerprint(s)
        .ok_or_else(|| format!("{s:?} is not SHA256: followed by 64 hex digits"))
}

/// A port number, or a name from the services database for `proto`.
fn port_or_service(s: &str, proto: &str) -> Result<u16, String> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return parse_port(s);
    }
    sockit::lookup::service(s, proto).map_err(|_| {
        format!("port {s:?} is neither a number from 1 to 65535 nor a {proto} service name")
    })
}

/// A TCP port number or service name.
fn parse_tcp_port(s: &str) -> Result<u16, String> {
    port_or_service(s, "tcp")
}

/// A UDP port number or service name.
fn parse_udp_port(s: &str) -> Result<u16, String> {
    port_or_service(s, "udp")
}

/// Parses a positive number of seconds.
fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// Parses a number of seconds, zero allowed.
fn parse_secs_or_zero(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a number of seconds")),
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        // A print into a closed pipe is the reader's choice, not a bug.
        if msg.contains("failed printing to stdout") && stdout_closed() {
            std::process::exit(0);
        }
        eprintln!("sockit: internal error ({msg}); this is a bug, please report it");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    // The demo narrates on stdout; its servers' logs only with -v.
    let quiet = cli.quiet || (matches!(cli.cmd, Cmd::Demo) && cli.verbose == 0);
    init_logging(cli.verbose, quiet);
    match run(cli.cmd, cli.verbose > 0) {
        Ok(code) => code,
        Err(e) => {
            // A closed stdout ends a command quietly, with status 0, as
            // `rg` and `cat` do.
            if broken_pipe(&e) && stdout_closed() {
                return ExitCode::SUCCESS;
            }
            eprintln!("sockit: {e}");
            if is_usage(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Whether an error is a usage error (exit 2), wherever the library put it.
fn is_usage(e: &anyhow::Error) -> bool {
    use sockit::net::NetError;
    let net = |n: &NetError| matches!(n, NetError::BadAddress { .. });
    e.chain().any(|c| {
        c.downcast_ref::<Usage>().is_some()
            || c.downcast_ref::<NetError>().is_some_and(net)
            || matches!(c.downcast_ref::<sockit::tcp::TcpError>(), Some(sockit::tcp::TcpError::Net(n)) if net(n))
            || matches!(c.downcast_ref::<sockit::udp::UdpError>(), Some(sockit::udp::UdpError::Net(n)) if net(n))
            || matches!(c.downcast_ref::<sockit::lookup::LookupError>(), Some(sockit::lookup::LookupError::Resolve(n)) if net(n))
            || matches!(c.downcast_ref::<sockit::bench::client::BenchError>(), Some(sockit::bench::client::BenchError::Net(n)) if net(n))
            || matches!(
                c.downcast_ref::<sockit::transfer::TransferError>(),
                Some(sockit::transfer::TransferError::Usage(_))
            )
            || matches!(c.downcast_ref::<sockit::transfer::TransferError>(), Some(sockit::transfer::TransferError::Net(n)) if net(n))
    })
}

/// Whether the error is, somewhere in its chain, a broken pipe.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) || e.to_string().contains("roken pipe")
}

/// Whether stdout is a pipe whose reader has gone (poll reports an error on it).
fn stdout_closed() -> bool {
    let mut p = libc::pollfd {
        fd: 1,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own, without waiting.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLERR != 0
}

/// Prints help or version as clap does; any other parse error becomes one
/// sentence and exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind::*;
    match e.kind() {
        DisplayHelp | DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            // clap's first paragraph, joined into one line: a missing
            // argument's list follows its first line.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(|l| l.trim())
                .collect();
            let first = first.join(" ");
            let first = first.trim_start_matches("error: ").trim_end_matches(':');
            let first = if first.is_empty() {
                "invalid arguments"
            } else {
                first
            };
            eprintln!("sockit: {first}; run with --help for usage");
            ExitCode::from(2)
        }
    }
}

/// Sets up stderr logging: warnings by default, connection events with -v.
fn init_logging(verbose: u8, quiet: bool) {
    let level = if quiet {
        tracing::Level::ERROR
    } else {
        match verbose {
            0 => tracing::Level::WARN,
            1 => tracing::Level::INFO,
            _ => tracing::Level::DEBUG,
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_max_level(level)
        .init();
}

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// Runs one command.
fn run(cmd: Cmd, verbose: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Udp(UdpCmd::Listen(u)) => {
            let opts = sockit::udp::ListenOptions {
                bind: u.addr,
                family: Family::from_flags(u.v4, u.v6),
                reply: if u.upper {
                    Reply::Upper
                } else if u.echo {
                    Reply::Echo
                } else {
                    Reply::None
                },
                show: Show {
                    sender: verbose,
                    hex: u.hex,
                },
                buffer: u.buffer as usize,
                quit: u.quit,
                reuse_port: u.reuse_port,
                join: u.join,
                iface: u.iface,
                access: u.access.list(),
                talk: u.talk,
            };
            let mut out = std::io::stdout().lock();
            sockit::udp::listen(&opts, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Udp(UdpCmd::Send(u)) => {
            let opts = sockit::udp::SendOptions {
                family: Family::from_flags(u.v4, u.v6),
                bind: u.bind,
                broadcast: u.broadcast,
                ttl: u.ttl,
                multicast_loop: u.multicast_loop,
                wait: u.wait,
                count_replies: u.count_replies,
                show: Show {
                    sender: verbose,
                    hex: u.hex,
                },
            };
            let msgs = if u.whole {
                let mut data = Vec::new();
                std::io::Read::take(sockit::console::Stdin, MAX_DATAGRAM as u64 + 1)
                    .read_to_end(&mut data)
                    .map_err(|e| {
                        anyhow::anyhow!("could not read stdin ({})", sockit::net::describe(&e))
                    })?;
                if data.len() > MAX_DATAGRAM {
                    return Err(Usage(format!(
                        "stdin holds more than {MAX_DATAGRAM} bytes, the most one UDP datagram can carry"
                    ))
                    .into());
                }
                Messages::Args(vec![data])
            } else if u.messages.is_empty() {
                Messages::Lines(Box::new(std::io::stdin()))
            } else {
                Messages::Args(u.messages.into_iter().map(String::into_bytes).collect())
            };
            let wait = opts.wait;
            let summary =
                sockit::udp::send(&u.host, u.port, msgs, &opts, Box::new(std::io::stdout()))?;
            if let Some(n) = u.count_replies {
                if summary.replies < n {
                    anyhow::bail!(
                        "only {} of the {} asked for by --count-replies arrived within {} s; raise --wait if the server is slow",
                        summary.replies,
                        sockit::text::counted(n, "reply", "replies"),
                        wait.as_secs_f64()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Tcp(TcpCmd::Connect(c)) => {
            let copts = ConnectOptions {
                family: Family::from_flags(c.v4, c.v6),
                timeout: Some(c.timeout),
                bind: c.bind,
                nodelay: true,
            };
            let popts = PipeOptions {
                text: c.text.text(),
                frame: c.text.frame(),
                idle_timeout: c.idle_timeout,
                plain_check: None,
            };
            let outcome =
                sockit::tcp::connect(&c.host, c.port, &copts, &popts, c.sec.tls().as_ref())?;
            Ok(outcome_code(outcome))
        }
        Cmd::Tcp(TcpCmd::Listen(l)) => {
            let mode = if l.chat {
                Some(Mode::Chat)
            } else if l.upper {
                Some(Mode::Upper)
            } else if l.echo {
                Some(Mode::Echo)
            } else if l.keep_open {
                Some(Mode::Hub)
            } else {
                None
            };
            let text = l.text.text();
            let opts = sockit::tcp::ListenOptions {
                bind: l.addr,
                family: Family::from_flags(l.v4, l.v6),
                mode,
                server: ServerOptions {
                    mode: mode.unwrap_or(Mode::Hub),
                    max_conns: l.max_conns.map(|n| n as usize),
                    idle_timeout: l.idle_timeout,
                    text: text.clone(),
                    frame: l.text.frame(),
                    max_line: l.max_line as usize,
                    peer_queue_bytes: l.peer_queue.max(1),
                    ..ServerOptions::default()
                },
                pipe: PipeOptions {
                    text,
                    frame: l.text.frame(),
                    idle_timeout: l.idle_timeout,
                    plain_check: None,
                },
                tls: None,
                handshake_timeout: l.sec.handshake_timeout,
                access: l.sec.access.list(),
            };
            // The certificate line follows `listening on`, so the library prints it.
            let opts = sockit::tcp::ListenOptions {
                tls: l.sec.tls_config()?,
                ..opts
            };
            let outcome = sockit::tcp::listen(&opts)?;
            Ok(outcome_code(outcome))
        }
        Cmd::Serve(c) => {
            let root = sockit::transfer::paths::Root::new(&c.dir, c.hidden).map_err(|e| {
                anyhow::anyhow!(
                    "cannot serve {} ({}); give an existing directory",
                    c.dir.display(),
                    sockit::net::describe(&e)
                )
            })?;
            // Bad certificate files fail before anything is bound.
            let tls = c.sec.tls_config()?;
            sockit::net::raise_nofile_limit();
            let listener = sockit::net::bind_tcp(&c.listen, Family::from_flags(c.v4, c.v6))?;
            let local = listener.local_addr()?;
            sockit::net::announce_listening(local);
            if let Some(t) = &tls {
                eprintln!("{}", t.banner);
            }
            tracing::warn!("serving {} read-only", root.path().display());
            // Ctrl-C is how a server is stopped: a clean exit 0.
            sockit::interrupt::catch();
            sockit::transfer::server::serve(
                listener,
                sockit::transfer::server::ServeOptions {
                    root,
                    max_conns: c.max_conns as usize,
                    idle_timeout: c.idle_timeout,
                    max_rate: c.max_rate,
                    tls,
                    handshake_timeout: c.sec.handshake_timeout,
                    access: c.sec.access.list(),
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Get(c) => {
            use sockit::transfer::{client, TransferError};
            let (host, port) = host_port(&c.server, 8080).map_err(Usage)?;
            let copts = transfer_connect(c.v4, c.v6);
            let json = c.json;
            let mut results = Vec::new();
            let mut report = |f: &client::Fetched| {
                if !json {
                    tracing::warn!("{}", f.summary());
                }
            };
            let mut warn = |e: &TransferError| eprintln!("sockit: {e}");
            // Ctrl-C stops the download cleanly and keeps the .part.
            sockit::interrupt::catch();
            let outcome = if c.raw {
                let mut failed = 0;
                for name in &c.names {
                    let target = match &c.output {
                        Some(o) if o.as_os_str() == "-" || !o.is_dir() => o.clone(),
                        o => {
                            o.clone()
                                .or_else(|| c.dir.clone())
                                .unwrap_or_default()
                                .join(sockit::transfer::paths::base_name(name).ok_or_else(
                                    || Usage(format!("{name:?} does not name a file")),
                                )?)
                        }
                    };
                    match client::get_raw(
                        &host,
                        port,
                        name,
                        &target,
                        &copts,
                        c.sec.tls().as_ref(),
                        c.timeout,
                    ) {
                        Ok(f) => {
                            report(&f);
                            results.push(f);
                        }
                        Err(e @ (TransferError::Empty { .. } | TransferError::Exists { .. })) => {
                            warn(&e);
                            failed += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if failed > 0 {
                    Err(TransferError::SomeFailed {
                        failed,
                        fetched: results.len(),
                    })
                } else {
                    Ok(())
                }
            } else {
                let opts = client::GetOptions {
                    output: c.output.clone(),
                    dir: c.dir.clone(),
                    force: c.force,
                    recursive: c.recursive,
                    connect: copts,
                    progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                    tls: c.sec.tls(),
                    timeout: c.timeout,
                };
                client::get(&host, port, &c.names, &opts, &mut report, &mut warn)
                    .map(|r| results = r)
            };
            if json {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{}",
                    sockit::report::json_array(results.iter().map(|f| f.json()))
                )?;
            }
            match outcome {
                Ok(()) | Err(TransferError::OutputClosed) => Ok(ExitCode::SUCCESS),
                Err(e @ TransferError::Stopped { .. }) => {
                    eprintln!("sockit: {e}");
                    Ok(ExitCode::from(sockit::interrupt::EXIT_INTERRUPTED))
                }
                Err(e) => Err(e.into()),
            }
        }
        Cmd::Ls(c) => {
            let (host, port) = host_port(&c.server, 8080).map_err(Usage)?;
            let copts = transfer_connect(c.v4, c.v6);
            let entries = sockit::transfer::client::ls(
                &host,
                port,
                &c.path,
                &copts,
                c.sec.tls().as_ref(),
                c.timeout,
            )?;
            let mut out = std::io::stdout().lock();
            let human = std::io::IsTerminal::is_terminal(&out);
            if c.json {
                writeln!(
                    out,
                    "{}",
                    sockit::report::json_array(entries.iter().map(|e| e.json()))
                )?;
            } else {
                for e in &entries {
                    writeln!(out, "{}", e.line(human))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Lookup(l) => run_lookup(l),
        Cmd::Ping(p) => {
            let opts = sockit::diag::PingOptions {
                count: p.count,
                interval: p.interval,
                timeout: p.timeout,
                family: Family::from_flags(p.v4, p.v6),
            };
            let mut out = std::io::stdout().lock();
            let summary = sockit::diag::ping(&p.host, p.port, &opts, &mut out)?;
            writeln!(out, "--- {}", summary.line())?;
            Ok(if summary.interrupted {
                ExitCode::from(sockit::interrupt::EXIT_INTERRUPTED)
            } else if summary.times().is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Scan(c) => {
            let ports = sockit::diag::parse_ports(&c.ports).map_err(Usage)?;
            let ip = sockit::net::resolve(&c.host, 0, Family::from_flags(c.v4, c.v6))?[0].ip();
            sockit::net::raise_nofile_limit();
            let started = std::time::Instant::now();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let open = rt.block_on(sockit::diag::scan(
                ip,
                &ports,
                c.concurrency as usize,
                c.timeout,
            ));
            let secs = started.elapsed().as_secs_f64();
            let mut out = std::io::stdout().lock();
            if c.json {
                let _ = writeln!(
                    out,
                    "{}",
                    sockit::diag::scan_json(ip, ports.len(), secs, &open)
                );
            } else {
                for o in &open {
                    let _ = writeln!(out, "{}", o.line());
                }
                tracing::warn!(
                    "{} open of {} scanned on {ip} in {secs:.2} s",
                    open.len(),
                    ports.len()
                );
            }
            // Like `nc -z`: usable in `if`, 1 when nothing was open.
            Ok(if open.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Bench(BenchCmd::Server { listen, sec }) => {
            sockit::net::raise_nofile_limit();
            let l = sockit::net::bind_tcp(&listen, Family::Any)?;
            sockit::net::announce_listening(l.local_addr()?);
            let security = sockit::bench::server::ServerSecurity {
                tls: sec.tls()?,
                handshake_timeout: sec.handshake_timeout,
                access: sec.access.list(),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                l.set_nonblocking(true)?;
                let l = tokio::net::TcpListener::from_std(l)?;
                let stop = tokio_util::sync::CancellationToken::new();
                let s2 = stop.clone();
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        s2.cancel();
                    }
                });
                sockit::bench::server::serve_with(l, &security, stop).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(BenchCmd::Client(c)) => {
            use sockit::bench::proto::Mode as M;
            let (host, port) = host_port(&c.server, 5301).map_err(Usage)?;
            let addr = sockit::net::resolve(&host, port, Family::Any)?[0];
            let mode = match c.mode {
                BenchMode::Tcp => M::Tcp,
                BenchMode::Udp => M::Udp,
                BenchMode::Rr => M::Rr,
                BenchMode::UdpRr => M::UdpRr,
                BenchMode::Conns => M::Conns,
            };
            let default_len = match mode {
                M::Tcp => 128 * 1024,
                M::Udp => 1400,
                M::Rr => 64,
                M::UdpRr => 64,
                M::Conns => 1,
            };
            // Flags a test would ignore are refused, not dropped silently.
            let tcp_only = |flag: &str| {
                Usage(format!(
                    "{flag} works with the tcp test only, not {}",
                    mode.name()
                ))
            };
            if mode != M::Tcp {
                if c.reverse {
                    return Err(tcp_only("-R/--reverse").into());
                }
                if c.bidir {
                    return Err(tcp_only("--bidir").into());
                }
                if c.parallel != 1 {
                    return Err(tcp_only("-P/--parallel").into());
                }
                if c.bytes.is_some() {
                    return Err(tcp_only("-n/--bytes").into());
                }
            }
            if c.rate != 0 && !matches!(mode, M::Udp) {
                return Err(Usage(format!(
                    "-b/--rate paces the udp test only, not {}",
                    mode.name()
                ))
                .into());
            }
            if let Some(len) = c.len {
                use sockit::bench::proto::{MAX_TCP_LEN, MAX_UDP_LEN, MIN_UDP_LEN};
                let (lo, hi) = match mode {
                    M::Udp | M::UdpRr => (MIN_UDP_LEN as u64, MAX_UDP_LEN as u64),
                    M::Tcp | M::Rr => (1, MAX_TCP_LEN as u64),
                    M::Conns => {
                        return Err(Usage("-l/--len means nothing to the conns test".into()).into())
                    }
                };
                if !(lo..=hi).contains(&len) {
                    return Err(Usage(format!(
                        "-l {len} is outside what the {} test takes: {lo} to {hi} bytes",
                        mode.name()
                    ))
                    .into());
                }
            }
            let opts = sockit::bench::client::ClientOptions {
                mode,
                parallel: c.parallel as usize,
                reverse: c.reverse,
                bidir: c.bidir,
                secs: c.time.as_secs_f64(),
                bytes: c.bytes.unwrap_or(0),
                len: c.len.unwrap_or(default_len).min(u32::MAX as u64) as usize,
                rate: c.rate,
                max_conns: c.max_conns as usize,
                progress: !c.json,
                tls: c.sec.tls(),
                host: host.clone(),
            };
            let report = sockit::bench::client::run(addr, &opts)?;
            let mut out = std::io::stdout().lock();
            if c.json {
                writeln!(out, "{}", report.json)?;
            } else {
                writeln!(
                    out,
                    "sockit bench {} against {}",
                    mode.name(),
                    sockit::net::show_addr(addr)
                )?;
                for (k, v) in &report.rows {
                    writeln!(out, "  {k:<28} {v}")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo => {
            let ok = sockit::demo::run()?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Runs one `lookup` subcommand.
fn run_lookup(cmd: LookupCmd) -> anyhow::Result<ExitCode> {
    use sockit::lookup;
    let mut out = std::io::stdout().lock();
    match cmd {
        LookupCmd::Hostname { json } => {
            let h = lookup::hostname()?;
            if json {
                writeln!(out, "{{\"hostname\":{}}}", json_str(&h))?;
            } else {
                writeln!(out, "{h}")?;
            }
        }
        LookupCmd::Host(h) => {
            let family = Family::from_flags(h.v4, h.v6);
            let system = || -> anyhow::Result<Vec<String>> {
                Ok(lookup::host(&h.name, family)?
                    .iter()
                    .map(|a| a.to_string())
                    .collect())
            };
            let Some(server) = &h.dns else {
                let addrs = system()?;
                if h.json {
                    writeln!(out, "{}", lookup::host_json(&h.name, &addrs))?;
                } else {
                    for a in addrs {
                        writeln!(out, "{a}")?;
                    }
                }
                return Ok(ExitCode::SUCCESS);
            };
            let (dh, dp) = host_port(server, 53).map_err(Usage)?;
            let server = sockit::net::resolve(&dh, dp, Family::Any)?[0];
            use hickory_proto::rr::RecordType;
            // Every address, as `host` asks: A and AAAA, unless narrowed.
            let rtypes = match &h.rtype {
                Some(t) => vec![lookup::record_type(t).map_err(|e| Usage(e.to_string()))?],
                None if h.v6 => vec![RecordType::AAAA],
                None if h.v4 => vec![RecordType::A],
                None => vec![RecordType::A, RecordType::AAAA],
            };
            let rtype = rtypes
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" or ");
            let result = rtypes.iter().try_fold(Vec::new(), |mut all, t| {
                all.extend(lookup::dns(server, &h.name, *t, h.timeout, 3)?);
                Ok::<_, lookup::LookupError>(all)
            });
            if h.compare {
                // Both sides, even when one of them fails: the difference is the point.
                let sys = system()
                    .map(|v| v.join(" "))
                    .unwrap_or_else(|e| format!("({e})"));
                let dns = match &result {
                    Ok(a) if a.is_empty() => "(no answer)".to_string(),
                    Ok(a) => a
                        .iter()
                        .map(|a| a.data.clone())
                        .collect::<Vec<_>>()
                        .join(" "),
                    Err(e) => format!("({e})"),
                };
                writeln!(out, "system resolver: {sys}")?;
                writeln!(out, "{server}: {dns}")?;
                return Ok(ExitCode::SUCCESS);
            }
            let answers = result?;
            if h.json {
                writeln!(out, "{}", lookup::dns_json(&h.name, server, &answers))?;
            } else {
                for a in &answers {
                    writeln!(out, "{}", a.line())?;
                }
            }
            if answers.is_empty() {
                anyhow::bail!("{server} has no {rtype} record for {}", h.name);
            }
        }
        LookupCmd::Addr { ip, json } => {
            let parsed: std::net::IpAddr = ip
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| Usage(format!("{ip:?} is not an IPv4 or IPv6 address")))?;
            let name = lookup::addr(parsed)?;
            if json {
                writeln!(
                    out,
                    "{{\"address\":{},\"name\":{}}}",
                    json_str(&parsed.to_string()),
                    json_str(&name)
                )?;
            } else {
                writeln!(out, "{name}")?;
            }
        }
        LookupCmd::Service { name, proto, json } => {
            let (name, proto) = split_proto(&name, &proto)?;
            let port = lookup::service(&name, &proto)?;
            if json {
                writeln!(
                    out,
                    "{{\"service\":{},\"proto\":{},\"port\":{port}}}",
                    json_str(&name),
                    json_str(&proto)
                )?;
            } else {
                writeln!(out, "{port}")?;
            }
        }
        LookupCmd::Port { port, proto, json } => {
            let (num, proto) = split_proto(&port, &proto)?;
            let n = sockit::net::parse_port_or_zero(&num).map_err(Usage)?;
            let name = lookup::port(n, &proto)?;
            if json {
                writeln!(
                    out,
                    "{{\"port\":{n},\"proto\":{},\"service\":{}}}",
                    json_str(&proto),
                    json_str(&name)
                )?;
            } else {
                writeln!(out, "{name}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Splits `NAME/PROTO` (or takes `--proto`), checking the protocol.
fn split_proto(arg: &str, flag: &Option<String>) -> Result<(String, String), Usage> {
    let (name, proto) = match (arg.split_once('/'), flag.as_deref()) {
        (Some((_, p)), Some(f)) if p != f => {
            return Err(Usage(format!(
                "{arg:?} says {p} but --proto says {f}; give the protocol once"
            )))
        }
        (Some((n, p)), _) => (n, p),
        (None, f) => (arg, f.unwrap_or("tcp")),
    };
    if proto != "tcp" && proto != "udp" {
        return Err(Usage(format!("unknown protocol {proto:?}; use tcp or udp")));
    }
    Ok((name.to_string(), proto.to_string()))
}

/// A usage error found after parsing: exit code 2.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; run with --help for usage", self.0)
    }
}

impl std::error::Error for Usage {}

/// Every clean ending of a session is success.
fn outcome_code(_outcome: Outcome) -> ExitCode {
    ExitCode::SUCCESS
}
