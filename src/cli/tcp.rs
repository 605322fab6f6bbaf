//! `sockit tcp connect` and `sockit tcp listen`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use sockit::net::{BindAddr, ConnectOptions, Family};
use sockit::tcp::pipe::{Outcome, PipeOptions};
use sockit::tcp::server::{Mode, ServerOptions, DEFAULT_PEER_QUEUE_BYTES};
use sockit::text::MAX_LINE;

use super::args::{ClientSecArgs, ServerSecArgs, TextArgs};
use super::parse::{parse_secs, parse_tcp_port};

#[derive(Subcommand)]
pub(crate) enum TcpCmd {
    /// Connect to HOST PORT and join the connection to stdin/stdout, full duplex.
    Connect(ConnectCli),
    /// Listen on [ADDR:]PORT: one peer like `nc -l`, or many with -k/--echo/--upper/--chat.
    Listen(ListenCli),
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit tcp connect 127.0.0.1 9527               chat with a listener\n  sockit tcp connect example.test http --crlf     a service name for the port\n  sockit tcp connect 127.0.0.1 9527 < big.iso     send a file (zero-copy)\n  sockit tcp connect 127.0.0.1 9527 --tls --tofu  encrypted, trust on first use"))]
pub(crate) struct ConnectCli {
    /// Host name or IP address.
    pub(crate) host: String,
    /// Port, 1 to 65535, or a service name (http, smtp), as nc takes.
    #[arg(value_parser = parse_tcp_port)]
    pub(crate) port: u16,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    /// Give up on a connect after SECS seconds (per address).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) timeout: Duration,
    /// Local [ADDR:]PORT to connect from (like nc -s/-p).
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub(crate) bind: Option<BindAddr>,
    /// Close the connection when the peer sends nothing for SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) idle_timeout: Option<Duration>,
    #[command(flatten)]
    pub(crate) text: TextArgs,
    #[command(flatten)]
    pub(crate) sec: ClientSecArgs,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit tcp listen 9527                          one peer, like nc -l\n  sockit tcp listen 127.0.0.1:9527 > got.bin      receive a file\n  sockit tcp listen 9527 --echo --max-conns 1000  an echo server\n  sockit tcp listen 9527 --chat                   a chat room"))]
pub(crate) struct ListenCli {
    /// PORT (all interfaces, IPv6 and IPv4) or ADDR:PORT; port 0 picks a free one.
    pub(crate) addr: BindAddr,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    /// Serve many peers at once: their data goes to stdout, stdin lines go to all of them.
    #[arg(short = 'k', long)]
    pub(crate) keep_open: bool,
    /// Send each peer its own bytes back (implies -k).
    #[arg(long, conflicts_with_all = ["upper", "chat"])]
    pub(crate) echo: bool,
    /// Send each peer each line back upper-cased (implies -k).
    #[arg(long, conflicts_with = "chat")]
    pub(crate) upper: bool,
    /// A chat room: each line goes to every other peer as `[name] line` (implies -k).
    #[arg(long)]
    pub(crate) chat: bool,
    /// Serve at most N peers at once; more are refused.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_conns: Option<u32>,
    /// Close a peer that sends nothing for SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) idle_timeout: Option<Duration>,
    /// Longest line a peer may send in the line modes.
    #[arg(long, value_name = "BYTES", default_value_t = MAX_LINE as u64, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    pub(crate) max_line: u64,
    /// Bytes that may wait for one slow peer (-k, --chat) before it is disconnected.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_PEER_QUEUE_BYTES)]
    pub(crate) peer_queue: usize,
    #[command(flatten)]
    pub(crate) text: TextArgs,
    #[command(flatten)]
    pub(crate) sec: ServerSecArgs,
}

impl TcpCmd {
    /// Runs the subcommand.
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            TcpCmd::Connect(c) => connect(c),
            TcpCmd::Listen(l) => listen(l),
        }
    }
}

/// `tcp connect`.
fn connect(c: ConnectCli) -> anyhow::Result<ExitCode> {
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
    let outcome = sockit::tcp::connect(&c.host, c.port, &copts, &popts, c.sec.tls().as_ref())?;
    Ok(outcome_code(outcome))
}

/// `tcp listen`, in every mode.
fn listen(l: ListenCli) -> anyhow::Result<ExitCode> {
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

/// Every clean ending of a session is success.
fn outcome_code(_outcome: Outcome) -> ExitCode {
    ExitCode::SUCCESS
}
