//! `sockit forward LISTEN TARGET…`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use sockit::forward::{self, ForwardOptions};
use sockit::net::Family;

use super::args::AccessArgs;
use super::parse::parse_secs;
use super::Usage;

#[derive(Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  sockit forward 8080 127.0.0.1:80                 put a port in front of another\n",
    "  sockit forward 127.0.0.1:9000 127.0.0.1:9001 127.0.0.1:9002  round robin over two\n",
    "  sockit forward 2222 tcp:[::1]:22 --allow 127.0.0.0/8\n",
    "  sockit forward udp:5353 udp:127.0.0.1:53         a UDP forward (DNS)"
))]
pub(crate) struct ForwardCli {
    /// Where to listen: [ADDR:]PORT, tcp:[ADDR:]PORT or udp:[ADDR:]PORT.
    listen: String,
    /// Where to send each client: HOST:PORT, tcp:HOST:PORT or udp:HOST:PORT; several are used round robin.
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
    /// IPv4 only (the listener).
    #[arg(short = '4', conflicts_with = "v6")]
    v4: bool,
    /// IPv6 only (the listener).
    #[arg(short = '6')]
    v6: bool,
    /// Relay at most N clients at once; more are refused with a reset.
    #[arg(long, value_name = "N", default_value_t = forward::DEFAULT_MAX_CONNS as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_conns: u32,
    /// Give up on a target after SECS seconds and try the next one.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    connect_timeout: Duration,
    /// Close a relay on which no byte moved either way for SECS seconds (UDP sessions: 60 by default).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    idle_timeout: Option<Duration>,
    /// UDP: most client sessions at once; when full, the one idle longest is evicted.
    #[arg(long, value_name = "N", default_value_t = forward::DEFAULT_MAX_SESSIONS as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_sessions: u32,
    #[command(flatten)]
    access: AccessArgs,
}

impl ForwardCli {
    /// Runs the relay until Ctrl-C (a server: exit 0).
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let usage = |e: forward::ForwardError| Usage(e.to_string());
        let (proto, listen) = forward::parse_listen(&self.listen).map_err(usage)?;
        let targets = self
            .targets
            .iter()
            .map(|t| forward::parse_target(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(usage)?;
        if let Some(t) = targets.iter().find(|t| t.proto != proto) {
            return Err(Usage(format!(
                "{} listens on {} but target {} is {}; a relay keeps one transport (write udp: on both or neither)",
                self.listen,
                proto.name(),
                t.name(),
                t.proto.name()
            ))
            .into());
        }
        let opts = ForwardOptions {
            listen,
            family: Family::from_flags(self.v4, self.v6),
            targets,
            max_conns: self.max_conns as usize,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            max_sessions: self.max_sessions as usize,
            proto,
            access: self.access.list(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let summary = rt.block_on(async move {
            let stop = tokio_util::sync::CancellationToken::new();
            let on_signal = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    tracing::info!("interrupted; closing every relay");
                    on_signal.cancel();
                }
            });
            forward::run(opts, stop).await
        })?;
        tracing::info!(
            "relayed {}, refused {}",
            sockit::text::counted(summary.relayed, "connection", "connections"),
            summary.refused
        );
        Ok(ExitCode::SUCCESS)
    }
}
