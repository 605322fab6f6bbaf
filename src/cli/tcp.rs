//! `sockit tcp connect` and `sockit tcp listen`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use sockit::dial::DialOptions;
use sockit::forward;
use sockit::net::{BindAddr, ConnectOptions, Family};
use sockit::peers::{Mode, ServerOptions, DEFAULT_PEER_QUEUE_BYTES};
use sockit::session::{Outcome, PipeOptions};
use sockit::text::MAX_LINE;

use super::args::{ClientSecArgs, OnlyArgs, ProxyArgs, ServerSecArgs, TapArgs, TextArgs};
use super::parse::{parse_secs, parse_tcp_port};
use super::Usage;

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
    #[command(flatten)]
    pub(crate) proxy: ProxyArgs,
    #[command(flatten)]
    pub(crate) tap: TapArgs,
    #[command(flatten)]
    pub(crate) only: OnlyArgs,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit tcp listen 9527                          one peer, like nc -l\n  sockit tcp listen 127.0.0.1:9527 > got.bin      receive a file\n  sockit tcp listen 9527 --echo --max-conns 1000  an echo server\n  sockit tcp listen 9527 --chat                   a chat room\n  sockit tcp listen 9527 --exec 'python3 srv.py'  a program per peer, like ncat -e"))]
pub(crate) struct ListenCli {
    /// PORT (all interfaces, IPv6 and IPv4) or ADDR:PORT; port 0 picks a free one.
    pub(crate) addr: BindAddr,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
    #[command(flatten)]
    pub(crate) text: TextArgs,
    #[command(flatten)]
    pub(crate) sec: ServerSecArgs,
    #[command(flatten)]
    pub(crate) tap: TapArgs,
    #[command(flatten)]
    pub(crate) only: OnlyArgs,
}

/// How a listener serves its peers: the modes `tcp listen` and
/// `unix listen` share.
#[derive(Args)]
pub(crate) struct ServeArgs {
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
    /// Run PROGRAM [ARGS] for each peer, joined to its stdin and stdout, with no shell (like ncat -e; one peer unless -k).
    #[arg(long, value_name = "CMD", conflicts_with_all = ["echo", "upper", "chat", "sh", "frame", "crlf", "quit", "encoding"])]
    pub(crate) exec: Option<String>,
    /// Run COMMAND with /bin/sh -c for each peer (like ncat --sh-exec; one peer unless -k).
    #[arg(long, value_name = "COMMAND", conflicts_with_all = ["echo", "upper", "chat", "frame", "crlf", "quit", "encoding"])]
    pub(crate) sh: Option<String>,
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
}

impl ServeArgs {
    /// The multi-peer mode, or `None` for one peer joined to stdin/stdout.
    pub(crate) fn mode(&self) -> Option<Mode> {
        if self.chat {
            Some(Mode::Chat)
        } else if self.upper {
            Some(Mode::Upper)
        } else if self.echo {
            Some(Mode::Echo)
        } else if self.keep_open {
            Some(Mode::Hub)
        } else {
            None
        }
    }

    /// The listen options these flags and `text` ask for (bind, TLS and
    /// access are the caller's).
    pub(crate) fn listen_options(
        &self,
        text_args: &TextArgs,
        bind: BindAddr,
        family: Family,
    ) -> sockit::tcp::ListenOptions {
        let mode = self.mode();
        let text = text_args.text();
        sockit::tcp::ListenOptions {
            bind,
            family,
            mode,
            server: ServerOptions {
                mode: mode.unwrap_or(Mode::Hub),
                max_conns: self.max_conns.map(|n| n as usize),
                idle_timeout: self.idle_timeout,
                text: text.clone(),
                frame: text_args.frame(),
                max_line: self.max_line as usize,
                peer_queue_bytes: self.peer_queue.max(1),
                ..ServerOptions::default()
            },
            pipe: PipeOptions {
                text,
                frame: text_args.frame(),
                idle_timeout: self.idle_timeout,
                ..PipeOptions::default()
            },
            tls: None,
            handshake_timeout: sockit::tls::DEFAULT_HANDSHAKE_TIMEOUT,
            access: sockit::access::AccessList::default(),
        }
    }

    /// Refuses `--hexdump`, `--log`, `--send-only` and `--recv-only` with
    /// the multi-peer modes, which do not run through the pump.
    ///
    /// # Errors
    /// A usage error naming the clash.
    pub(crate) fn one_peer_only(&self, tap: &TapArgs, only: &OnlyArgs) -> Result<(), Usage> {
        if self.mode().is_none() {
            return Ok(());
        }
        let flag = if tap.hexdump.is_some() {
            "--hexdump"
        } else if tap.log.is_some() {
            "--log"
        } else if only.send_only {
            "--send-only"
        } else if only.recv_only {
            "--recv-only"
        } else {
            return Ok(());
        };
        Err(Usage(format!(
            "{flag} works on one peer's session or an --exec relay, not with -k, --echo, --upper or --chat"
        )))
    }

    /// `--exec`/`--sh`: a relay to a program per peer, one peer unless -k.
    ///
    /// # Errors
    /// A program that does not exist (a usage error, before listening).
    pub(crate) fn exec_relay(
        &self,
        listen: forward::Listen,
    ) -> super::Result<Option<forward::ForwardOptions>> {
        let program = match (&self.exec, &self.sh) {
            (Some(e), _) => sockit::relay::child::parse_exec(e),
            (None, Some(s)) => sockit::relay::child::parse_sh(s),
            (None, None) => return Ok(None),
        }
        .map_err(Usage)?;
        let mut o = forward::ForwardOptions::new(listen, vec![forward::Target::program(program)]);
        o.once = !self.keep_open;
        o.idle_timeout = self.idle_timeout;
        if let Some(n) = self.max_conns {
            o.max_conns = n as usize;
        }
        Ok(Some(o))
    }
}

impl TcpCmd {
    /// Runs the subcommand.
    pub(crate) fn run(self) -> super::Result<ExitCode> {
        match self {
            TcpCmd::Connect(c) => connect(c),
            TcpCmd::Listen(l) => listen(l),
        }
    }
}

/// `tcp connect`.
fn connect(c: ConnectCli) -> super::Result<ExitCode> {
    let dopts = DialOptions {
        connect: ConnectOptions {
            family: Family::from_flags(c.v4, c.v6),
            timeout: Some(c.timeout),
            bind: c.bind,
            nodelay: true,
        },
        proxies: c.proxy.chain()?,
    };
    let popts = PipeOptions {
        text: c.text.text(),
        frame: c.text.frame(),
        idle_timeout: c.idle_timeout,
        taps: c.tap.taps()?,
        only: c.only.only(),
        ..PipeOptions::default()
    };
    let outcome = sockit::tcp::connect(&c.host, c.port, &dopts, &popts, c.sec.tls().as_ref())?;
    Ok(outcome_code(outcome))
}

/// `tcp listen`, in every mode.
fn listen(l: ListenCli) -> super::Result<ExitCode> {
    let family = Family::from_flags(l.v4, l.v6);
    if let Some(mut relay) = l.serve.exec_relay(forward::Listen::Tcp(l.addr.clone()))? {
        relay.family = family;
        relay.access = l.sec.access.list();
        relay.handshake_timeout = l.sec.handshake_timeout;
        relay.tls = l.sec.tls_config()?;
        relay.taps = l.tap.taps()?;
        return super::forward::run_relay(relay);
    }
    l.serve.one_peer_only(&l.tap, &l.only)?;
    let mut opts = l.serve.listen_options(&l.text, l.addr, family);
    opts.pipe.taps = l.tap.taps()?;
    opts.pipe.only = l.only.only();
    opts.handshake_timeout = l.sec.handshake_timeout;
    opts.access = l.sec.access.list();
    // The certificate line follows `listening on`, so the library prints it.
    opts.tls = l.sec.tls_config()?;
    let outcome = sockit::tcp::listen(&opts)?;
    Ok(outcome_code(outcome))
}

/// Every clean ending of a session is success.
pub(crate) fn outcome_code(_outcome: Outcome) -> ExitCode {
    ExitCode::SUCCESS
}
