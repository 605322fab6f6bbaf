//! `sockit udp send` and `sockit udp listen`.

use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use sockit::net::{BindAddr, Family};
use sockit::udp::{Messages, Reply, Show};

use super::args::AccessArgs;
use super::parse::{parse_secs_or_zero, parse_udp_port};
use super::Usage;

#[derive(Subcommand)]
pub(crate) enum UdpCmd {
    /// Send each MESSAGE (or each stdin line) as one datagram; print replies as they arrive.
    Send(UdpSendCli),
    /// Listen on [ADDR:]PORT and print each datagram on its own line.
    Listen(UdpListenCli),
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit udp send 127.0.0.1 8080 hello            one datagram, print the replies\n  sockit udp send 127.255.255.255 8080 hi --broadcast\n  printf 'a\\nb\\n' | sockit udp send ::1 8080     one datagram per stdin line\n  sockit udp send 127.0.0.1 8080 --whole < q.bin  all of stdin as one datagram"))]
pub(crate) struct UdpSendCli {
    /// Host name or IP address (a broadcast or multicast address works too).
    pub(crate) host: String,
    /// Port, 1 to 65535, or a UDP service name (domain, ntp).
    #[arg(value_parser = parse_udp_port)]
    pub(crate) port: u16,
    /// Datagrams to send, one per argument; without any, each stdin line is one datagram.
    pub(crate) messages: Vec<String>,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    /// Allow sending to a broadcast address (SO_BROADCAST).
    #[arg(long)]
    pub(crate) broadcast: bool,
    /// Multicast TTL (hops); 1 by default, so multicast stays on the local link.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=255))]
    pub(crate) ttl: Option<u32>,
    /// Receive our own multicast datagrams too.
    #[arg(long)]
    pub(crate) multicast_loop: bool,
    /// Seconds to wait for late replies after the last send.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs_or_zero)]
    pub(crate) wait: Duration,
    /// Exit as soon as N replies have arrived.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count_replies: Option<u64>,
    /// Local [ADDR:]PORT to send from (seed 001 binds port 7788).
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub(crate) bind: Option<BindAddr>,
    /// Show replies as a hex dump.
    #[arg(long)]
    pub(crate) hex: bool,
    /// Send all of stdin as one datagram (at most 65,507 bytes), not one per line.
    #[arg(long, conflicts_with = "messages")]
    pub(crate) whole: bool,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit udp listen 8080                          print each datagram\n  sockit udp listen 127.0.0.1:8080 --upper        upper-case echo (seed 003)\n  sockit udp listen 8080 --reuse-port             share the port (broadcast)"))]
pub(crate) struct UdpListenCli {
    /// PORT (all interfaces, IPv6 and IPv4) or ADDR:PORT; port 0 picks a free one.
    pub(crate) addr: BindAddr,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    /// Send each datagram back to its sender.
    #[arg(long, conflicts_with = "upper")]
    pub(crate) echo: bool,
    /// Send each datagram back upper-cased (seed 003).
    #[arg(long)]
    pub(crate) upper: bool,
    /// Show payloads as a hex dump.
    #[arg(long)]
    pub(crate) hex: bool,
    /// Receive buffer per datagram; longer datagrams are truncated and reported.
    #[arg(long, value_name = "BYTES", default_value_t = 65535,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub(crate) buffer: u32,
    /// Stop when a datagram equal to WORD arrives (repeatable; seed 004 uses exit).
    #[arg(long = "quit", value_name = "WORD")]
    pub(crate) quit: Vec<String>,
    /// Let several listeners share the port (SO_REUSEPORT), e.g. to receive broadcasts.
    #[arg(long)]
    pub(crate) reuse_port: bool,
    /// Join an IPv4 or IPv6 multicast group.
    #[arg(long, value_name = "GROUP")]
    pub(crate) join: Option<std::net::IpAddr>,
    /// Interface for --join: an IPv4 address, or an IPv6 interface name or index.
    #[arg(long, value_name = "ADDR", requires = "join")]
    pub(crate) iface: Option<String>,
    /// Send each stdin line to the sender of the latest datagram, as `nc -u -l` does.
    #[arg(long, conflicts_with_all = ["echo", "upper"])]
    pub(crate) talk: bool,
    #[command(flatten)]
    pub(crate) access: AccessArgs,
}

/// The largest UDP payload over IPv4.
pub(crate) const MAX_DATAGRAM: usize = 65_507;

impl UdpCmd {
    /// Runs the subcommand; `verbose` shows each datagram's sender.
    pub(crate) fn run(self, verbose: bool) -> super::Result<ExitCode> {
        match self {
            UdpCmd::Send(u) => send(u, verbose),
            UdpCmd::Listen(u) => listen(u, verbose),
        }
    }
}

/// `udp send`.
fn send(u: UdpSendCli, verbose: bool) -> super::Result<ExitCode> {
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
                super::Fail::msg(format!(
                    "could not read stdin ({})",
                    sockit::net::describe(&e)
                ))
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
    let summary = sockit::udp::send(&u.host, u.port, msgs, &opts, Box::new(std::io::stdout()))?;
    if let Some(n) = u.count_replies {
        if summary.replies < n {
            return Err(super::Fail::msg(format!(
                "only {} of the {} asked for by --count-replies arrived within {} s; raise --wait if the server is slow",
                summary.replies,
                sockit::text::counted(n, "reply", "replies"),
                wait.as_secs_f64()
            )));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `udp listen`.
fn listen(u: UdpListenCli, verbose: bool) -> super::Result<ExitCode> {
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
