//! `sockit serve`, `sockit get` and `sockit ls`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use sockit::dial::DialOptions;
use sockit::net::{BindAddr, ConnectOptions, Family};

use super::args::{ClientSecArgs, ProxyArgs, ServerSecArgs};
use super::parse::{host_port, parse_secs, parse_size};
use super::Usage;

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit serve ./files                            serve ./files on port 8080\n  sockit serve . -l 127.0.0.1:9000 --max-rate 10M\n  sockit serve ./files --tls                      encrypted, kept identity"))]
pub(crate) struct ServeCli {
    /// The directory to serve.
    #[arg(default_value = ".")]
    pub(crate) dir: std::path::PathBuf,
    /// Where to listen: PORT or ADDR:PORT.
    #[arg(long, short = 'l', value_name = "[ADDR:]PORT", default_value = "8080")]
    pub(crate) listen: BindAddr,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    /// Serve dotfiles too.
    #[arg(long)]
    pub(crate) hidden: bool,
    /// Serve at most N clients at once; more get a "busy" error.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_conns: u32,
    /// Close a client that sends nothing for SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) idle_timeout: Duration,
    /// Cap each download at BYTES per second (K, M, G suffixes allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub(crate) max_rate: Option<u64>,
    #[command(flatten)]
    pub(crate) sec: ServerSecArgs,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit get 127.0.0.1 report.pdf                 verified, resumable\n  sockit get 127.0.0.1:9000 docs -r -d backup     a whole folder into backup/\n  sockit get 127.0.0.1 . -r                       the whole served tree\n  sockit get 127.0.0.1 notes.txt -o -             to stdout"))]
pub(crate) struct GetCli {
    /// HOST or HOST:PORT ([V6]:PORT); the port defaults to 8080.
    pub(crate) server: String,
    /// Paths on the server to download.
    #[arg(required = true)]
    pub(crate) names: Vec<String>,
    /// Save the (single) file as FILE, into FILE if it is a folder, or on stdout with `-o -`.
    #[arg(short = 'o', long, value_name = "FILE", conflicts_with = "dir")]
    pub(crate) output: Option<std::path::PathBuf>,
    /// Save into DIR.
    #[arg(short = 'd', long, value_name = "DIR")]
    pub(crate) dir: Option<std::path::PathBuf>,
    /// Overwrite a file that exists with different content.
    #[arg(long)]
    pub(crate) force: bool,
    /// Download directory trees.
    #[arg(short = 'r', long)]
    pub(crate) recursive: bool,
    /// Speak seed 002's protocol (send the name, read to EOF): no hash, no resume.
    #[arg(long, conflicts_with = "recursive")]
    pub(crate) raw: bool,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Give up when the server sends nothing for SECS seconds [default: 15].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) timeout: Option<Duration>,
    /// After a broken connection, a silent server or a failed connect, try up to N more times (0.5 s, 1 s, 2 s ... apart), resuming from the .part.
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "raw")]
    pub(crate) retry: u32,
    #[command(flatten)]
    pub(crate) sec: ClientSecArgs,
    #[command(flatten)]
    pub(crate) proxy: ProxyArgs,
}

#[derive(Args)]
#[command(after_help = concat!("Examples:\n", "  sockit ls 127.0.0.1                             the served root\n  sockit ls 127.0.0.1:9000 docs --json"))]
pub(crate) struct LsCli {
    /// HOST or HOST:PORT; the port defaults to 8080.
    pub(crate) server: String,
    #[command(flatten)]
    pub(crate) sec: ClientSecArgs,
    #[command(flatten)]
    pub(crate) proxy: ProxyArgs,
    /// Directory on the server (the root by default).
    #[arg(default_value = "", hide_default_value = true)]
    pub(crate) path: String,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Give up when the server sends nothing for SECS seconds [default: 15].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) timeout: Option<Duration>,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "v6")]
    pub(crate) v4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub(crate) v6: bool,
}

/// How `get` and `ls` connect to a `sockit serve`.
pub(crate) fn transfer_connect(
    v4: bool,
    v6: bool,
    proxy: &ProxyArgs,
) -> Result<DialOptions, super::Usage> {
    Ok(DialOptions {
        connect: ConnectOptions {
            family: Family::from_flags(v4, v6),
            timeout: Some(Duration::from_secs(10)),
            bind: None,
            nodelay: true,
        },
        proxies: proxy.chain()?,
    })
}

/// `serve`.
pub(crate) fn serve(c: ServeCli) -> super::Result<ExitCode> {
    let root = sockit::transfer::paths::Root::new(&c.dir, c.hidden).map_err(|e| {
        super::Fail::msg(format!(
            "cannot serve {} ({}); give an existing directory",
            c.dir.display(),
            sockit::net::describe(&e)
        ))
    })?;
    // Bad certificate files fail before anything is bound.
    let tls = c.sec.tls_config()?;
    sockit::net::raise_nofile_limit();
    let listener = sockit::net::bind_tcp(&c.listen, Family::from_flags(c.v4, c.v6))?;
    let local = listener.local_addr()?;
    sockit::net::announce_listening(local);
    if let Some(t) = &tls {
        t.announce();
    }
    tracing::warn!("serving {} read-only", root.path().display());
    // Ctrl-C is how a server is stopped: a clean exit 0.
    sockit::interrupt::catch();
    sockit::transfer::server::serve(
        listener,
        sockit::transfer::server::ServeOptions {
            root,
            max_conns: c.max_conns as usize,
            idle_timeout: c.idle_timeout,
            max_rate: c.max_rate,
            tls,
            handshake_timeout: c.sec.handshake_timeout,
            access: c.sec.access.list(),
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `get`, native or raw.
pub(crate) fn get(c: GetCli) -> super::Result<ExitCode> {
    use sockit::transfer::{client, TransferError};
    let (host, port) = host_port(&c.server, 8080).map_err(Usage)?;
    let copts = transfer_connect(c.v4, c.v6, &c.proxy)?;
    let json = c.json;
    let mut results = Vec::new();
    let mut report = |f: &client::Fetched| {
        if !json {
            tracing::warn!("{}", f.summary());
        }
    };
    let mut warn = |e: &TransferError| sockit::logline::failure(&e.to_string());
    // Ctrl-C stops the download cleanly and keeps the .part.
    sockit::interrupt::catch();
    let outcome = if c.raw {
        let mut failed = 0;
        for name in &c.names {
            let target = match &c.output {
                Some(o) if o.as_os_str() == "-" || !o.is_dir() => o.clone(),
                o => o
                    .clone()
                    .or_else(|| c.dir.clone())
                    .unwrap_or_default()
                    .join(
                        sockit::transfer::paths::base_name(name)
                            .ok_or_else(|| Usage(format!("{name:?} does not name a file")))?,
                    ),
            };
            match client::get_raw(
                &host,
                port,
                name,
                &target,
                &copts,
                c.sec.tls().as_ref(),
                c.timeout,
            ) {
                Ok(f) => {
                    report(&f);
                    results.push(f);
                }
                Err(e @ (TransferError::Empty { .. } | TransferError::Exists { .. })) => {
                    warn(&e);
                    failed += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if failed > 0 {
            Err(TransferError::SomeFailed {
                failed,
                fetched: results.len(),
            })
        } else {
            Ok(())
        }
    } else {
        let opts = client::GetOptions {
            output: c.output.clone(),
            dir: c.dir.clone(),
            force: c.force,
            recursive: c.recursive,
            connect: copts,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            tls: c.sec.tls(),
            timeout: c.timeout,
            retries: c.retry,
        };
        let mut on_retry = |e: &TransferError, wait: Duration, n: u32| {
            let text = format!(
                "{}; retrying in {} s ({n} of {})",
                e.before_retry(),
                wait.as_secs_f64(),
                c.retry
            );
            sockit::logline::notice(
                "retry",
                &format!("sockit: {text}"),
                &[
                    ("attempt", n.to_string()),
                    ("wait_secs", wait.as_secs_f64().to_string()),
                ],
            );
        };
        client::get_retrying(
            &host,
            port,
            &c.names,
            &opts,
            &mut report,
            &mut warn,
            &mut on_retry,
        )
        .map(|r| results = r)
    };
    if json {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}",
            sockit::report::json_array(results.iter().map(|f| f.json()))
        )?;
    }
    match outcome {
        // A reader that closed our stdout took what it wanted.
        Ok(()) | Err(TransferError::OutputClosed) => Ok(ExitCode::SUCCESS),
        // Ctrl-C (`Stopped`) is an interruption: exit 130, the .part kept.
        Err(e) => Err(e.into()),
    }
}

/// `ls`.
pub(crate) fn ls(c: LsCli) -> super::Result<ExitCode> {
    let (host, port) = host_port(&c.server, 8080).map_err(Usage)?;
    let copts = transfer_connect(c.v4, c.v6, &c.proxy)?;
    let entries = sockit::transfer::client::ls(
        &host,
        port,
        &c.path,
        &copts,
        c.sec.tls().as_ref(),
        c.timeout,
    )?;
    let mut out = std::io::stdout().lock();
    let human = std::io::IsTerminal::is_terminal(&out);
    if c.json {
        writeln!(
            out,
            "{}",
            sockit::report::json_array(entries.iter().map(|e| e.json()))
        )?;
    } else {
        for e in &entries {
            writeln!(out, "{}", e.line(human))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
