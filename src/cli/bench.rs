//! `sockit bench server` and `sockit bench client`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use sockit::net::{BindAddr, Family};

use super::args::{ClientSecArgs, ProxyArgs, ServerSecArgs};
use super::parse::{host_port, parse_rate, parse_secs, parse_size};
use super::Usage;

#[derive(Subcommand)]
pub(crate) enum BenchCmd {
    /// Serve bench clients: many clients and tests at once.
    Server {
        /// Where to listen: PORT or ADDR:PORT.
        #[arg(long, short = 'l', value_name = "[ADDR:]PORT", default_value = "5301")]
        listen: BindAddr,
        /// Run every UDP test on this one port (0: the kernel picks one),
        /// one test at a time, so a relay or firewall can point at it.
        /// Without it each UDP test gets a new port.
        #[arg(long, value_name = "PORT", value_parser = sockit::net::parse_port_or_zero)]
        udp_port: Option<u16>,
        #[command(flatten)]
        sec: ServerSecArgs,
    },
    /// Run one test against a bench server.
    Client(BenchClientCli),
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum BenchMode {
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
#[command(after_help = concat!("Examples:\n", "  sockit bench client 127.0.0.1 tcp -t 5          TCP throughput\n  sockit bench client 127.0.0.1 udp -b 1G         UDP at 1 Gbit/s: loss, jitter\n  sockit bench client 127.0.0.1 rr --json         round trips and latency\n  sockit bench client 127.0.0.1 tcp --plot tcp.svg   each second's throughput, drawn"))]
pub(crate) struct BenchClientCli {
    /// HOST or HOST:PORT; the port defaults to 5301.
    pub(crate) server: String,
    /// The test.
    #[arg(value_enum)]
    pub(crate) mode: BenchMode,
    /// Parallel streams (tcp).
    #[arg(short = 'P', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=128))]
    pub(crate) parallel: u32,
    /// The server sends (tcp).
    #[arg(short = 'R', long)]
    pub(crate) reverse: bool,
    /// Both directions at once (tcp).
    #[arg(long, conflicts_with = "reverse")]
    pub(crate) bidir: bool,
    /// Test length in seconds (at most 120).
    #[arg(short = 't', long = "time", value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) time: Duration,
    /// Stop each tcp stream after BYTES (K, M, G suffixes).
    #[arg(short = 'n', long, value_name = "BYTES", value_parser = parse_size)]
    pub(crate) bytes: Option<u64>,
    /// Bytes per write (tcp, default 128K), message (rr, default 64) or datagram (udp, default 1400).
    #[arg(short = 'l', long, value_name = "BYTES", value_parser = parse_size)]
    pub(crate) len: Option<u64>,
    /// UDP rate in bits per second, K/M/G suffixes; 0 = as fast as possible.
    #[arg(short = 'b', long, value_name = "BITS", default_value = "0", value_parser = parse_rate)]
    pub(crate) rate: u64,
    /// conns: the most connections to hold at once.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_conns: u32,
    /// udp, udp-rr: send the datagrams to this port on the server's host
    /// instead of the one the server opens for the test (a UDP relay or NAT
    /// in between; see bench server --udp-port).
    #[arg(long, value_name = "PORT", value_parser = sockit::net::parse_port)]
    pub(crate) udp_port: Option<u16>,
    /// Print a JSON document (iperf3 field names where the figure is the same).
    #[arg(long)]
    pub(crate) json: bool,
    /// Draw the run as an SVG: each second's rate over time, or for rr and udp-rr the latency histogram.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) sec: ClientSecArgs,
    #[command(flatten)]
    pub(crate) proxy: ProxyArgs,
}

impl BenchCmd {
    /// Runs the subcommand.
    pub(crate) fn run(self) -> super::Result<ExitCode> {
        match self {
            BenchCmd::Server {
                listen,
                udp_port,
                sec,
            } => server(listen, udp_port, sec),
            BenchCmd::Client(c) => client(c),
        }
    }
}

/// `bench server`.
fn server(listen: BindAddr, udp_port: Option<u16>, sec: ServerSecArgs) -> super::Result<ExitCode> {
    use sockit::bench::server::FixedUdp;
    sockit::net::raise_nofile_limit();
    let l = sockit::net::bind_tcp(&listen, Family::Any)?;
    let local = l.local_addr()?;
    sockit::net::announce_listening(local);
    let fixed_udp = match udp_port {
        None => None,
        Some(p) => {
            let at = std::net::SocketAddr::new(local.ip(), p);
            let f = FixedUdp::bind(at).map_err(|e| {
                super::Fail::msg(format!(
                    "could not bind UDP {} for --udp-port ({})",
                    sockit::net::show_addr(at),
                    sockit::net::describe(&e)
                ))
            })?;
            let at = sockit::net::show_addr(f.local_addr()?);
            sockit::logline::notice(
                "listening",
                &format!("UDP tests on {at}"),
                &[
                    ("addr", sockit::report::json_str(&at)),
                    ("protocol", sockit::report::json_str("udp")),
                ],
            );
            Some(std::sync::Arc::new(f))
        }
    };
    let security = sockit::bench::server::ServerSecurity {
        tls: sec.tls()?,
        handshake_timeout: sec.handshake_timeout,
        access: sec.access.list(),
        fixed_udp,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        l.set_nonblocking(true)?;
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

/// `bench client`.
fn client(c: BenchClientCli) -> super::Result<ExitCode> {
    use sockit::bench::proto::Mode as M;
    let (host, port) = host_port(&c.server, 5301).map_err(Usage)?;
    let proxies = c.proxy.chain()?;
    // Through a proxy that resolves names, the name goes to the proxy.
    let remote_name = proxies.last().is_some_and(|p| p.scheme.remote_names());
    let addr = match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port),
        Err(_) if remote_name => std::net::SocketAddr::from(([0, 0, 0, 0], port)),
        Err(_) => sockit::net::resolve(&host, port, Family::Any)?[0],
    };
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
    if !proxies.is_empty() && matches!(mode, M::Udp | M::UdpRr) {
        return Err(Usage(format!(
            "--proxy carries the TCP tests (tcp, rr, conns), not {}",
            mode.name()
        ))
        .into());
    }
    if c.udp_port.is_some() && !matches!(mode, M::Udp | M::UdpRr) {
        return Err(Usage(format!(
            "--udp-port is for the udp and udp-rr tests, not {}",
            mode.name()
        ))
        .into());
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
            M::Conns => return Err(Usage("-l/--len means nothing to the conns test".into()).into()),
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
        udp_port: c.udp_port,
        proxies,
        plot: c.plot.is_some(),
    };
    let report = sockit::bench::client::run(addr, &opts)?;
    if let (Some(path), Some(plot)) = (&c.plot, &report.plot) {
        std::fs::write(path, plot.svg()).map_err(|e| {
            super::Fail::msg(format!(
                "could not write the plot to {} ({})",
                path.display(),
                sockit::net::describe(&e)
            ))
        })?;
    }
    let mut out = std::io::stdout().lock();
    if c.json {
        writeln!(out, "{}", report.json)?;
    } else {
        writeln!(
            out,
            "sockit bench {} against {}{}",
            mode.name(),
            if remote_name {
                sockit::proxy::socks::Dest::Name(host.clone(), port).to_string()
            } else {
                sockit::net::show_addr(addr)
            },
            c.proxy
                .proxy
                .last()
                .map(|p| format!(" via {p}"))
                .unwrap_or_default()
        )?;
        for (k, v) in &report.rows {
            writeln!(out, "  {k:<28} {v}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
