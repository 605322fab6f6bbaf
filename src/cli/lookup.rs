//! `sockit lookup`: hostname, host, addr, service, port.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use sockit::net::Family;
use sockit::report::json_str;

use super::parse::{host_port, parse_secs};
use super::Usage;

#[derive(Subcommand)]
pub(crate) enum LookupCmd {
    /// This machine's host name.
    Hostname {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every address of NAME (system resolver, or --dns SERVER).
    Host(LookupHostCli),
    /// The name of an IP address (reverse lookup).
    Addr {
        /// An IPv4 or IPv6 address.
        ip: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The port of a service name (https -> 443).
    Service {
        /// A service name from the services database.
        name: String,
        /// tcp or udp [default: tcp].
        #[arg(long, value_name = "PROTO")]
        proto: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The service name of a port (3389/tcp -> ms-wbt-server).
    Port {
        /// A port number, 0 to 65535 (or N/tcp, N/udp).
        port: String,
        /// tcp or udp [default: tcp].
        #[arg(long, value_name = "PROTO")]
        proto: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit lookup host localhost                    as getent ahosts does\n  sockit lookup host www.example.test --dns 127.0.0.1:5353 --type MX"))]
pub(crate) struct LookupHostCli {
    /// A host name or IP address.
    pub(crate) name: String,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    /// Ask this DNS server directly over UDP (TCP if truncated), as dig does.
    #[arg(long, value_name = "SERVER[:PORT]")]
    pub(crate) dns: Option<String>,
    /// Record type for --dns: A, AAAA, MX, TXT, PTR, CNAME, NS or ANY (default: A and AAAA).
    #[arg(long = "type", value_name = "TYPE", requires = "dns")]
    pub(crate) rtype: Option<String>,
    /// Show the system resolver's answer and the DNS server's side by side.
    #[arg(long, requires = "dns")]
    pub(crate) compare: bool,
    /// Seconds to wait for the DNS server, across all tries.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs)]
    pub(crate) timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs one `lookup` subcommand.
pub(crate) fn run(cmd: LookupCmd) -> super::Result<ExitCode> {
    use sockit::lookup;
    let mut out = std::io::stdout().lock();
    match cmd {
        LookupCmd::Hostname { json } => {
            let h = lookup::hostname()?;
            if json {
                writeln!(out, "{{\"hostname\":{}}}", json_str(&h))?;
            } else {
                writeln!(out, "{h}")?;
            }
        }
        LookupCmd::Host(h) => {
            let family = Family::from_flags(h.v4, h.v6);
            let system = || -> super::Result<Vec<String>> {
                Ok(lookup::host(&h.name, family)?
                    .iter()
                    .map(|a| a.to_string())
                    .collect())
            };
            let Some(server) = &h.dns else {
                let addrs = system()?;
                if h.json {
                    writeln!(out, "{}", lookup::host_json(&h.name, &addrs))?;
                } else {
                    for a in addrs {
                        writeln!(out, "{a}")?;
                    }
                }
                return Ok(ExitCode::SUCCESS);
            };
            let (dh, dp) = host_port(server, 53).map_err(Usage)?;
            let server = sockit::net::resolve(&dh, dp, Family::Any)?[0];
            use hickory_proto::rr::RecordType;
            // Every address, as `host` asks: A and AAAA, unless narrowed.
            let rtypes = match &h.rtype {
                Some(t) => vec![lookup::record_type(t).map_err(|e| Usage(e.to_string()))?],
                None if h.v6 => vec![RecordType::AAAA],
                None if h.v4 => vec![RecordType::A],
                None => vec![RecordType::A, RecordType::AAAA],
            };
            let rtype = rtypes
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" or ");
            let result = rtypes.iter().try_fold(Vec::new(), |mut all, t| {
                all.extend(lookup::dns(server, &h.name, *t, h.timeout, 3)?);
                Ok::<_, lookup::LookupError>(all)
            });
            if h.compare {
                // Both sides, even when one of them fails: the difference is the point.
                let sys = system()
                    .map(|v| v.join(" "))
                    .unwrap_or_else(|e| format!("({e})"));
                let dns = match &result {
                    Ok(a) if a.is_empty() => "(no answer)".to_string(),
                    Ok(a) => a
                        .iter()
                        .map(|a| a.data.clone())
                        .collect::<Vec<_>>()
                        .join(" "),
                    Err(e) => format!("({e})"),
                };
                writeln!(out, "system resolver: {sys}")?;
                writeln!(out, "{server}: {dns}")?;
                return Ok(ExitCode::SUCCESS);
            }
            let answers = result?;
            if h.json {
                writeln!(out, "{}", lookup::dns_json(&h.name, server, &answers))?;
            } else {
                for a in &answers {
                    writeln!(out, "{}", a.line())?;
                }
            }
            if answers.is_empty() {
                return Err(super::Fail::msg(format!(
                    "{server} has no {rtype} record for {}",
                    h.name
                )));
            }
        }
        LookupCmd::Addr { ip, json } => {
            let parsed: std::net::IpAddr = ip
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| Usage(format!("{ip:?} is not an IPv4 or IPv6 address")))?;
            let name = lookup::addr(parsed)?;
            if json {
                writeln!(
                    out,
                    "{{\"address\":{},\"name\":{}}}",
                    json_str(&parsed.to_string()),
                    json_str(&name)
                )?;
            } else {
                writeln!(out, "{name}")?;
            }
        }
        LookupCmd::Service { name, proto, json } => {
            let (name, proto) = split_proto(&name, &proto)?;
            let port = lookup::service(&name, &proto)?;
            if json {
                writeln!(
                    out,
                    "{{\"service\":{},\"proto\":{},\"port\":{port}}}",
                    json_str(&name),
                    json_str(&proto)
                )?;
            } else {
                writeln!(out, "{port}")?;
            }
        }
        LookupCmd::Port { port, proto, json } => {
            let (num, proto) = split_proto(&port, &proto)?;
            let n = sockit::net::parse_port_or_zero(&num).map_err(Usage)?;
            let name = lookup::port(n, &proto)?;
            if json {
                writeln!(
                    out,
                    "{{\"port\":{n},\"proto\":{},\"service\":{}}}",
                    json_str(&proto),
                    json_str(&name)
                )?;
            } else {
                writeln!(out, "{name}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Splits `NAME/PROTO` (or takes `--proto`), checking the protocol.
fn split_proto(arg: &str, flag: &Option<String>) -> Result<(String, String), Usage> {
    let (name, proto) = match (arg.split_once('/'), flag.as_deref()) {
        (Some((_, p)), Some(f)) if p != f => {
            return Err(Usage(format!(
                "{arg:?} says {p} but --proto says {f}; give the protocol once"
            )))
        }
        (Some((n, p)), _) => (n, p),
        (None, f) => (arg, f.unwrap_or("tcp")),
    };
    if proto != "tcp" && proto != "udp" {
        return Err(Usage(format!("unknown protocol {proto:?}; use tcp or udp")));
    }
    Ok((name.to_string(), proto.to_string()))
}
