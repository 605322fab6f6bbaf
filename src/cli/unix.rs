//! `sockit unix connect PATH` and `sockit unix listen PATH`: the tcp
//! commands' modes over Unix stream sockets (nc's `-U`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use sockit::forward;
use sockit::session::PipeOptions;
use sockit::unix::UnixAddr;

use super::args::{OnlyArgs, TapArgs, TextArgs};
use super::parse::parse_secs;
use super::tcp::{outcome_code, ServeArgs};
use super::Usage;

#[derive(Subcommand)]
pub(crate) enum UnixCmd {
    /// Connect to the Unix socket PATH (@NAME: abstract) and join it to stdin/stdout, like nc -U.
    Connect(ConnectCli),
    /// Listen on the Unix socket PATH (@NAME: abstract): one peer like nc -lU, or many with -k/--echo/--upper/--chat/--exec.
    Listen(ListenCli),
}

#[derive(Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  sockit unix connect /tmp/app.sock                 talk to a local service\n",
    "  printf 'GET /_ping HTTP/1.0\\r\\n\\r\\n' | sockit unix connect /var/run/docker.sock\n",
    "  sockit unix connect @sockit-demo                  the abstract namespace"
))]
pub(crate) struct ConnectCli {
    /// Socket path, or @NAME for Linux's abstract namespace.
    path: String,
    /// Give up on a connect after SECS seconds (a full backlog).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    timeout: Duration,
    /// Close the connection when the peer sends nothing for SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    idle_timeout: Option<Duration>,
    #[command(flatten)]
    text: TextArgs,
    #[command(flatten)]
    tap: TapArgs,
    #[command(flatten)]
    only: OnlyArgs,
}

#[derive(Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  sockit unix listen /tmp/app.sock                  one peer, like nc -lU\n",
    "  sockit unix listen /tmp/echo.sock --echo          an echo server\n",
    "  sockit unix listen @chat --chat                   a chat room, no file at all\n",
    "  sockit unix listen /tmp/up.sock -k --sh 'tr a-z A-Z'  a program per peer\n",
    "\n",
    "A stale socket file (nothing answers on it) is replaced; any other file in the\n",
    "way is refused and left alone. The socket file is removed on exit."
))]
pub(crate) struct ListenCli {
    /// Socket path, or @NAME for Linux's abstract namespace.
    path: String,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    text: TextArgs,
    #[command(flatten)]
    tap: TapArgs,
    #[command(flatten)]
    only: OnlyArgs,
}

impl UnixCmd {
    /// Runs the subcommand.
    pub(crate) fn run(self) -> super::Result<ExitCode> {
        match self {
            UnixCmd::Connect(c) => {
                let addr = UnixAddr::parse(&c.path).map_err(|e| Usage(e.to_string()))?;
                let popts = PipeOptions {
                    text: c.text.text(),
                    frame: c.text.frame(),
                    idle_timeout: c.idle_timeout,
                    taps: c.tap.taps()?,
                    only: c.only.only(),
                    ..PipeOptions::default()
                };
                let o = sockit::unix::connect_cmd(&addr, c.timeout, &popts)?;
                Ok(outcome_code(o))
            }
            UnixCmd::Listen(l) => {
                let addr = UnixAddr::parse(&l.path).map_err(|e| Usage(e.to_string()))?;
                if let Some(mut relay) = l.serve.exec_relay(forward::Listen::Unix(addr.clone()))? {
                    relay.taps = l.tap.taps()?;
                    return super::forward::run_relay(relay);
                }
                l.serve.one_peer_only(&l.tap, &l.only)?;
                let opts = l.serve.listen_options(
                    &l.text,
                    sockit::net::BindAddr {
                        host: None,
                        port: 0,
                    },
                    sockit::net::Family::Any,
                );
                let pipe = PipeOptions {
                    taps: l.tap.taps()?,
                    only: l.only.only(),
                    ..opts.pipe
                };
                let o = sockit::unix::listen_cmd(&addr, opts.mode, &opts.server, &pipe)?;
                Ok(outcome_code(o))
            }
        }
    }
}
