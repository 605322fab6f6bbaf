//! `sockit ping` and `sockit scan`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use sockit::net::Family;

use super::parse::{parse_secs, parse_secs_or_zero, parse_tcp_port};
use super::Usage;

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit ping 127.0.0.1 22                        four handshakes\n  sockit ping localhost https -c 10 --interval 0.2"))]
pub(crate) struct PingCli {
    /// Host name or IP address.
    pub(crate) host: String,
    /// Port, 1 to 65535, or a service name (ssh, https).
    #[arg(value_parser = parse_tcp_port)]
    pub(crate) port: u16,
    /// Number of attempts.
    #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) count: u32,
    /// Seconds between attempts.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs_or_zero)]
    pub(crate) interval: Duration,
    /// Seconds to wait for each handshake.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub(crate) timeout: Duration,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    #[command(flatten)]
    pub(crate) proxy: super::args::ProxyArgs,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit scan 127.0.0.1 1-1024                    exit 1 when nothing is open\n  sockit scan ::1 22,80,443,8000-8100 --json\n  if sockit -q scan 127.0.0.1 5432; then echo up; fi"))]
pub(crate) struct ScanCli {
    /// Host name or IP address.
    pub(crate) host: String,
    /// Ports: 22, 1-1024, 80,443,8000-8100, or service names.
    pub(crate) ports: String,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=20000))]
    pub(crate) concurrency: u32,
    /// Seconds to wait for each connect.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub(crate) timeout: Duration,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `ping`.
pub(crate) fn ping(p: PingCli) -> super::Result<ExitCode> {
    let opts = sockit::diag::PingOptions {
        count: p.count,
        interval: p.interval,
        timeout: p.timeout,
        family: Family::from_flags(p.v4, p.v6),
        proxies: p.proxy.chain()?,
    };
    let mut out = std::io::stdout().lock();
    let summary = sockit::diag::ping(&p.host, p.port, &opts, &mut out)?;
    writeln!(out, "--- {}", summary.line())?;
    Ok(if summary.interrupted {
        ExitCode::from(sockit::error::Kind::Interrupted.exit_code())
    } else if summary.times().is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `scan`.
pub(crate) fn scan(c: ScanCli) -> super::Result<ExitCode> {
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
