//! `sockit forward LISTEN TARGET…`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use sockit::forward::{self, ForwardOptions};
use sockit::net::Family;
use sockit::relay::proxy_header::Version;

use super::args::ServerSecArgs;
use super::parse::parse_secs;
use super::Usage;

#[derive(Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  sockit forward 8080 127.0.0.1:80                  put a port in front of another\n",
    "  sockit forward 9000 127.0.0.1:9001 127.0.0.1:9002 round robin over two\n",
    "  sockit forward 127.0.0.1:2375 unix:/var/run/docker.sock  docker.sock over TCP (loopback only!)\n",
    "  sockit forward 8443 127.0.0.1:8080 --tls          TLS in front of a plain service\n",
    "  sockit forward 9000 tls:example.net:443           TLS to the target\n",
    "  sockit forward 7000 'exec:python3 server.py'      a program per connection (inetd)\n",
    "  sockit forward unix:/tmp/echo.sock sh:'tr a-z A-Z'\n",
    "  sockit forward udp:5353 udp:127.0.0.1:53          a UDP forward (DNS)\n",
    "  sockit forward 8080 127.0.0.1:80 --delay 50ms --rate 1M   a slow link\n",
    "  sockit forward 7000 127.0.0.1:7001 --slice 1 --slice-delay 1ms   sticky packets made visible\n",
    "\n",
    "A program run by exec: or sh: gets SOCKIT_PROTO, SOCKIT_PEER, SOCKIT_PEER_ADDR,\n",
    "SOCKIT_PEER_PORT (or SOCKIT_PEER_PID and SOCKIT_PEER_UID on a Unix listener),\n",
    "SOCKIT_LOCAL, SOCKIT_LOCAL_ADDR and SOCKIT_LOCAL_PORT in its environment."
))]
pub(crate) struct ForwardCli {
    /// Where to listen: [ADDR:]PORT, tcp:[ADDR:]PORT, udp:[ADDR:]PORT, unix:PATH or unix:@NAME.
    listen: String,
    /// Where to send each client: HOST:PORT, udp:HOST:PORT, tls:HOST:PORT, unix:PATH, exec:PROGRAM ARGS or sh:COMMAND; several are used round robin.
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
    /// UDP: receive buffer per datagram; longer datagrams are dropped and reported.
    #[arg(long, value_name = "BYTES", default_value_t = 65535, value_parser = clap::value_parser!(u32).range(1..=65535))]
    buffer: u32,
    /// Send the client's real address to the target first, in haproxy's PROXY protocol (v1 text or v2 binary).
    #[arg(long, value_name = "VERSION", num_args = 0..=1, default_missing_value = "v1", value_parser = parse_version)]
    proxy_protocol: Option<Version>,
    /// Print one JSON object per connection event (open, close, refused, error) on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sec: ServerSecArgs,
    #[command(flatten)]
    target_tls: TargetTlsArgs,
    #[command(flatten)]
    faults: FaultArgs,
    #[command(flatten)]
    proxy: super::args::ProxyArgs,
    #[command(flatten)]
    tap: super::args::TapArgs,
}

/// Faults to inject (toxiproxy's toxics). Each value may start with up:
/// (client to target) or down: (target to client); without one it applies
/// both ways. Repeat an option to set the two ways apart.
#[derive(Args)]
#[command(next_help_heading = "Faults (each value may start with up: or down:)")]
pub(crate) struct FaultArgs {
    /// Hold each chunk back DUR (50ms, 1.5s, 200us), give or take JITTER.
    #[arg(long, value_name = "DUR[:JITTER]")]
    delay: Vec<String>,
    /// Cap the bandwidth at BYTES per second (K/M/G are powers of 1000).
    #[arg(long, value_name = "BYTES")]
    rate: Vec<String>,
    /// Write in pieces of MIN to MAX bytes (--slice 1 shows TCP's "sticky packets" byte by byte).
    #[arg(long, value_name = "MIN[:MAX]")]
    slice: Vec<String>,
    /// Pause DUR between the pieces of --slice.
    #[arg(long, value_name = "DUR")]
    slice_delay: Vec<String>,
    /// Reset both sides once BYTES went that way (K/M/G: powers of 1024).
    #[arg(long, value_name = "BYTES")]
    reset_after: Vec<String>,
    /// Close both sides cleanly once BYTES went that way (toxiproxy's limit_data).
    #[arg(long, value_name = "BYTES")]
    close_after: Vec<String>,
    /// Stop forwarding, without closing, once BYTES went that way (toxiproxy's timeout).
    #[arg(long, value_name = "BYTES")]
    stall_after: Vec<String>,
    /// Hold the FIN back DUR after the stream ends.
    #[arg(long, value_name = "DUR")]
    slow_close: Vec<String>,
    /// UDP: drop PCT of the datagrams.
    #[arg(long, value_name = "PCT")]
    loss: Vec<String>,
    /// UDP: send PCT of the datagrams twice.
    #[arg(long, value_name = "PCT")]
    duplicate: Vec<String>,
    /// UDP: hold PCT of the datagrams back behind the next one.
    #[arg(long, value_name = "PCT")]
    reorder: Vec<String>,
    /// Apply the faults to this fraction of connections (or UDP sessions), 0 to 1 or a percentage. It counts connections, not bytes.
    #[arg(long, value_name = "FRACTION")]
    fault_share: Option<String>,
    /// Seed the faults' random choices, so a failing run repeats exactly (-v shows each run's seed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

impl FaultArgs {
    fn faults(&self) -> Result<sockit::relay::fault::Faults, Usage> {
        use sockit::relay::fault::{FaultOpt as O, Faults};
        let mut f = Faults::default();
        for (opt, values) in [
            (O::Delay, &self.delay),
            (O::Rate, &self.rate),
            (O::Slice, &self.slice),
            (O::SliceDelay, &self.slice_delay),
            (O::ResetAfter, &self.reset_after),
            (O::CloseAfter, &self.close_after),
            (O::StallAfter, &self.stall_after),
            (O::SlowClose, &self.slow_close),
            (O::Loss, &self.loss),
            (O::Duplicate, &self.duplicate),
            (O::Reorder, &self.reorder),
        ] {
            for v in values {
                f.set(opt, v).map_err(Usage)?;
            }
        }
        if let Some(v) = &self.fault_share {
            f.set_share(v).map_err(Usage)?;
        }
        f.seed = self.seed;
        Ok(f)
    }
}

/// Trust for `tls:` targets.
#[derive(Args)]
pub(crate) struct TargetTlsArgs {
    /// tls: targets: trust this CA (PEM) as well as the system roots.
    #[arg(long, value_name = "FILE")]
    target_ca: Option<std::path::PathBuf>,
    /// tls: targets: trust exactly the certificate with this fingerprint (SHA256:hex).
    #[arg(long, value_name = "SHA256:HEX", value_parser = super::parse::parse_pin, conflicts_with = "target_tofu")]
    target_pin: Option<String>,
    /// tls: targets: trust an unknown self-signed target on first use and record it in known_hosts.
    #[arg(long)]
    target_tofu: bool,
    /// tls: targets: do not check the certificate at all (warns on every connection).
    #[arg(long, conflicts_with_all = ["target_pin", "target_tofu"])]
    target_insecure: bool,
    /// tls: targets: present this client certificate (PEM), with --target-key.
    #[arg(long, value_name = "FILE", requires = "target_key")]
    target_cert: Option<std::path::PathBuf>,
    /// Private key for --target-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "target_cert")]
    target_key: Option<std::path::PathBuf>,
}

fn parse_version(s: &str) -> Result<Version, String> {
    match s {
        "1" | "v1" => Ok(Version::V1),
        "2" | "v2" => Ok(Version::V2),
        _ => Err(format!(
            "{s:?} is not a PROXY protocol version; write v1 or v2"
        )),
    }
}

impl ForwardCli {
    /// Runs the relay until Ctrl-C (a server: exit 0).
    pub(crate) fn run(self) -> super::Result<ExitCode> {
        let usage = |e: forward::ForwardError| Usage(e.to_string());
        let listen = forward::parse_listen(&self.listen).map_err(usage)?;
        let targets = forward::parse_targets(&self.targets).map_err(usage)?;
        let t = &self.target_tls;
        let mut opts = ForwardOptions::new(listen, targets);
        opts.family = Family::from_flags(self.v4, self.v6);
        opts.max_conns = self.max_conns as usize;
        opts.connect_timeout = self.connect_timeout;
        opts.idle_timeout = self.idle_timeout;
        opts.max_sessions = self.max_sessions as usize;
        opts.udp_buffer = self.buffer as usize;
        opts.access = self.sec.access.list();
        opts.handshake_timeout = self.sec.handshake_timeout;
        opts.proxy_protocol = self.proxy_protocol;
        opts.json = self.json;
        opts.faults = self.faults.faults()?;
        opts.proxies = self.proxy.chain()?;
        opts.taps = self.tap.taps()?;
        opts.target_tls = sockit::tls::ClientTlsOptions {
            insecure: t.target_insecure,
            pin: t.target_pin.clone(),
            tofu: t.target_tofu,
            ca: t.target_ca.clone(),
            client_cert_key: t.target_cert.clone().zip(t.target_key.clone()),
            known_hosts: None,
            handshake_timeout: self.sec.handshake_timeout,
            flags: sockit::tls::TrustFlags::TARGET,
        };
        opts.check().map_err(usage)?;
        opts.tls = self.sec.tls_config()?;
        run_relay(opts)
    }
}

/// Runs a relay on its own runtime until Ctrl-C (or, with `once`, until
/// its one client is done).
pub(crate) fn run_relay(opts: ForwardOptions) -> super::Result<ExitCode> {
    // A stream relay runs one single-threaded runtime per core (this
    // thread's and one per extra accept loop, see forward::run); the UDP
    // relay shares its session table across a pool of workers.
    let rt = if opts.listen.proto() == sockit::forward::Proto::Udp {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
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
    rt.shutdown_background();
    Ok(ExitCode::SUCCESS)
}
