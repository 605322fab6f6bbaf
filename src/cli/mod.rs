//! The command line: one file per command, each holding its clap structs,
//! their value parsers and their conversion into the library's options.
//!
//! | file | commands |
//! |---|---|
//! | `tcp.rs` | `tcp connect`, `tcp listen` |
//! | `udp.rs` | `udp send`, `udp listen` |
//! | `transfer.rs` | `serve`, `get`, `ls` |
//! | `lookup.rs` | `lookup …` |
//! | `diag.rs` | `ping`, `scan` |
//! | `bench.rs` | `bench server`, `bench client` |
//! | `forward.rs` | `forward` |
//! | `proxy.rs` | `proxy` |
//! | `nc.rs` | `nc` (netcat's flags, read by sockit itself) |
//! | `docs.rs` | `completions`, `manpages` |
//! | `args.rs` | argument groups several commands share (text, TLS, access) |
//! | `parse.rs` | value parsers (sizes, rates, seconds, ports, pins) |

mod args;
mod bench;
mod diag;
mod docs;
mod forward;
mod lookup;
pub(crate) mod nc;
mod parse;
mod proxy;
mod tcp;
mod transfer;
mod udp;
mod unix;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sockit::error::{Failure, Kind};

/// A fast, safe TCP/UDP toolkit: chat, echo, pipe bytes, frame messages, UDP datagrams.
#[derive(Parser)]
#[command(name = "sockit", version = env!("SOCKIT_VERSION"), propagate_version = true)]
pub(crate) struct Cli {
    /// Show connection events (connected, half-closed, reset); twice for debug detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub(crate) verbose: u8,
    /// Show only errors (and the `listening on` line scripts read).
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub(crate) quiet: bool,
    /// How diagnostics on stderr look: text, or one JSON object a line (ts, level, event, fields).
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value = "text",
        help_heading = "Global options"
    )]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

/// `--log-format`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Plain sentences.
    Text,
    /// One JSON object a line (docs/LOGS.md).
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// TCP: connect to a peer, or listen for peers.
    #[command(subcommand)]
    Tcp(tcp::TcpCmd),
    /// UDP: send datagrams and print replies, or listen (print, echo, upper-case echo).
    #[command(subcommand)]
    Udp(udp::UdpCmd),
    /// Unix stream sockets: connect to one, or listen on one (the tcp modes, like nc -U).
    #[command(subcommand)]
    Unix(unix::UnixCmd),
    /// Serve the regular files under DIR, read-only (native protocol and seed 002's raw requests).
    Serve(transfer::ServeCli),
    /// Download NAME... from a `sockit serve`, verified with BLAKE3 and resumable.
    Get(transfer::GetCli),
    /// List the files a `sockit serve` offers.
    Ls(transfer::LsCli),
    /// Look up names, addresses and services, like getent (or ask a DNS server directly).
    #[command(subcommand)]
    Lookup(lookup::LookupCmd),
    /// Measure TCP handshake latency to HOST PORT, like tcping.
    Ping(diag::PingCli),
    /// Find which TCP ports are open on HOST (connect scan).
    Scan(diag::ScanCli),
    /// Measure throughput, loss, latency and connection rates (server and client).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Relay TCP, UDP or Unix clients to TARGETs (TLS at either end, a program per connection), like socat.
    Forward(Box<forward::ForwardCli>),
    /// Run a SOCKS5 (with UDP)/SOCKS4a/HTTP CONNECT proxy on [ADDR:]PORT, safe by default (127.0.0.1, no loopback destinations).
    Proxy(proxy::ProxyCli),
    /// netcat-openbsd's command line on sockit's engine (also the binary's behaviour when run as `nc`).
    Nc(nc::NcCli),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsCli),
    /// Write man pages: sockit.1 and one per subcommand (sockit-tcp-connect.1, ...).
    Manpages(docs::ManpagesCli),
    /// A guided tour of every feature, on loopback only.
    Demo,
}

/// Runs one command; `verbose` is `-v` given at least once.
pub(crate) fn run(cmd: Cmd, verbose: bool) -> Result<ExitCode> {
    match cmd {
        Cmd::Tcp(c) => c.run(),
        Cmd::Udp(c) => c.run(verbose),
        Cmd::Unix(c) => c.run(),
        Cmd::Serve(c) => transfer::serve(c),
        Cmd::Get(c) => transfer::get(c),
        Cmd::Ls(c) => transfer::ls(c),
        Cmd::Lookup(l) => lookup::run(l),
        Cmd::Ping(p) => diag::ping(p),
        Cmd::Scan(c) => diag::scan(c),
        Cmd::Bench(c) => c.run(),
        Cmd::Forward(c) => c.run(),
        Cmd::Proxy(c) => c.run(),
        Cmd::Nc(c) => Ok(nc::run(&c.args)),
        Cmd::Completions(c) => docs::completions(c),
        Cmd::Manpages(c) => docs::manpages(c),
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

/// A usage error found after parsing: exit code 2.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; run with --help for usage", self.0)
    }
}

impl std::error::Error for Usage {}

impl Failure for Usage {
    fn kind(&self) -> Kind {
        Kind::Usage
    }
}

/// A command that failed: its sentence, and what kind of failure it is
/// (the error said so itself; see [`sockit::error`]). `?` turns any
/// library error into one, and only errors that say their kind can be.
pub(crate) struct Fail {
    kind: Kind,
    err: Box<dyn std::error::Error + Send + Sync>,
}

impl Fail {
    /// A runtime failure the command itself words.
    pub(crate) fn msg(text: String) -> Fail {
        Fail {
            kind: Kind::Runtime,
            err: text.into(),
        }
    }

    /// What kind of failure this is.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }
}

impl<E: Failure> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail {
            kind: e.kind(),
            err: Box::new(e),
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.err.fmt(f)
    }
}

/// What a command returns: its exit code, or how it failed.
pub(crate) type Result<T> = std::result::Result<T, Fail>;
