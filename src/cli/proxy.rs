//! `sockit proxy`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use sockit::net::{BindAddr, Family};
use sockit::proxy::server::{DestPolicy, ProxyOptions, DEFAULT_MAX_CONNS};
use sockit::proxy::Creds;

use super::args::AccessArgs;
use super::parse::parse_secs;
use super::Usage;

#[derive(Args)]
#[command(after_help = concat!("Examples:\n",
"  sockit proxy                                    SOCKS5/4a and HTTP on 127.0.0.1:1080\n",
"  sockit proxy 0.0.0.0:1080 --auth-file creds --allow 192.168.1.0/24\n",
"  sockit proxy 1080 --allow-dest 127.0.0.0/8      let tunnels reach this host's loopback\n",
"  curl -x socks5h://127.0.0.1:1080 http://example.test/\n",
"  ssh -o ProxyCommand='sockit tcp connect %h %p --proxy socks5h://127.0.0.1:1080' host"))]
pub(crate) struct ProxyCli {
    /// PORT (on 127.0.0.1) or ADDR:PORT; an open proxy on a LAN is an abuse magnet, so all
    /// interfaces take an explicit 0.0.0.0:PORT or [::]:PORT.
    #[arg(default_value = "1080")]
    addr: String,
    /// Require this USER:PASS (SOCKS5 username/password and HTTP Proxy-Authorization Basic).
    #[arg(long, value_name = "USER:PASS", conflicts_with = "auth_file")]
    auth: Option<String>,
    /// Read the required USER:PASS from the first line of FILE (keeps it out of ps).
    #[arg(long, value_name = "FILE")]
    auth_file: Option<std::path::PathBuf>,
    /// Let tunnels reach this network (repeatable), even loopback, link-local or this host's
    /// own addresses, which are refused by default.
    #[arg(long, value_name = "CIDR")]
    allow_dest: Vec<sockit::access::Cidr>,
    /// Never let tunnels reach this network (repeatable); wins over --allow-dest.
    #[arg(long, value_name = "CIDR")]
    deny_dest: Vec<sockit::access::Cidr>,
    #[command(flatten)]
    access: AccessArgs,
    /// Most tunnels at once; clients past it are refused with a log line.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNS as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_conns: u32,
    /// Close a client that has not finished its handshake after SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    handshake_timeout: Duration,
    /// Give up on a destination that does not accept within SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    connect_timeout: Duration,
    /// Close a tunnel when no byte moves either way for SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    idle_timeout: Option<Duration>,
    /// Print one JSON object per tunnel event (open, close, refused) on stdout.
    #[arg(long)]
    json: bool,
}

impl ProxyCli {
    pub(crate) fn run(self) -> super::Result<ExitCode> {
        let bind: BindAddr = if self.addr.bytes().all(|b| b.is_ascii_digit()) {
            format!("127.0.0.1:{}", self.addr)
        } else {
            self.addr.clone()
        }
        .parse()
        .map_err(Usage)?;
        let auth = match (&self.auth, &self.auth_file) {
            (Some(a), _) => Some(Creds::parse(a).map_err(|e| Usage(format!("--auth: {e}")))?),
            (None, Some(f)) => Some(Creds::from_file(f).map_err(Usage)?),
            (None, None) => None,
        };
        sockit::net::raise_nofile_limit();
        let l = sockit::net::bind_tcp(&bind, Family::Any)?;
        let local = l.local_addr()?;
        sockit::net::announce_listening(local);
        if !local.ip().is_loopback() && auth.is_none() && self.access.allow.is_empty() {
            let text = format!(
                "warning: this proxy answers anyone who can reach {}; consider --auth and --allow",
                sockit::net::show_addr(local)
            );
            sockit::logline::notice("warning", &text, &[]);
        }
        let opts = ProxyOptions {
            auth,
            access: self.access.list(),
            dest: DestPolicy::new(self.allow_dest, self.deny_dest),
            max_conns: self.max_conns as usize,
            handshake_timeout: self.handshake_timeout,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
        };
        // One single-threaded runtime per core: serve starts the others.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (events, writer) = sockit::listener::events::Events::start(self.json);
        rt.block_on(async move {
            l.set_nonblocking(true)?;
            let stop = tokio_util::sync::CancellationToken::new();
            let s2 = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    tracing::info!("interrupted; closing every tunnel");
                    s2.cancel();
                }
            });
            let sum = sockit::proxy::server::serve(l, opts, events, stop).await?;
            tracing::info!(
                "proxy stopped: {} opened, {} refused",
                sockit::text::counted(sum.tunnels, "tunnel", "tunnels"),
                sum.refused
            );
            Ok::<_, super::Fail>(())
        })?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ok(ExitCode::SUCCESS)
    }
}
