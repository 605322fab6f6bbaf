//! The `sockit` binary: parses arguments, calls the library, prints one
//! plain sentence on failure, and maps the result to an exit code
//! (0 success, 1 runtime failure, 2 usage error).

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Cmd};
use sockit::error::Kind;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        // A print into a closed pipe is the reader's choice, not a bug.
        if msg.contains("failed printing to stdout") && stdout_closed() {
            std::process::exit(0);
        }
        eprintln!("sockit: internal error ({msg}); this is a bug, please report it");
    }));
    // netcat's flags are netcat's: `sockit nc …`, or the binary run as `nc`,
    // is read by sockit's own netcat parser, not by clap.
    let argv: Vec<String> = std::env::args().collect();
    let called_nc = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "nc" || n == "netcat");
    if called_nc || argv.get(1).is_some_and(|a| a == "nc") {
        init_logging(0, true);
        let from = if called_nc { 1 } else { 2 };
        return cli::nc::run(&argv[from.min(argv.len())..]);
    }
    // Known before the arguments are read, so a usage error is in it too.
    let json = argv
        .iter()
        .zip(argv.iter().skip(1).chain(std::iter::once(&String::new())))
        .any(|(a, b)| a == "--log-format=json" || (a == "--log-format" && b == "json"));
    sockit::logline::set_json(json);
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    // The demo narrates on stdout; its servers' logs only with -v.
    let quiet = cli.quiet || (matches!(cli.cmd, Cmd::Demo) && cli.verbose == 0);
    init_logging(cli.verbose, quiet);
    match cli::run(cli.cmd, cli.verbose > 0) {
        Ok(code) => code,
        Err(e) => {
            // The error says what kind of failure it is; that kind is the
            // exit code. A closed stdout ends a command quietly, with
            // status 0, as `rg` and `cat` do.
            let kind = e.kind();
            if kind == Kind::OutputClosed && stdout_closed() {
                return ExitCode::SUCCESS;
            }
            sockit::logline::failure(&e.to_string());
            ExitCode::from(match kind {
                // A broken pipe that was not stdout's is a plain failure.
                Kind::OutputClosed => Kind::Runtime.exit_code(),
                k => k.exit_code(),
            })
        }
    }
}

/// Whether stdout is a pipe whose reader has gone (poll reports an error on it).
fn stdout_closed() -> bool {
    let mut p = libc::pollfd {
        fd: 1,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own, without waiting.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLERR != 0
}

/// Prints help or version as clap does; any other parse error becomes one
/// sentence and exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind::*;
    match e.kind() {
        DisplayHelp | DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            // clap's first paragraph, joined into one line: a missing
            // argument's list follows its first line.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(|l| l.trim())
                .collect();
            let first = first.join(" ");
            let first = first.trim_start_matches("error: ").trim_end_matches(':');
            let first = if first.is_empty() {
                "invalid arguments"
            } else {
                first
            };
            sockit::logline::failure(&format!("{first}; run with --help for usage"));
            ExitCode::from(2)
        }
    }
}

/// Sets up stderr logging: warnings by default, connection events with -v,
/// as text or JSON lines (`--log-format`, set before this).
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let level = if quiet {
        tracing::Level::ERROR
    } else {
        match verbose {
            0 => tracing::Level::WARN,
            1 => tracing::Level::INFO,
            _ => tracing::Level::DEBUG,
        }
    };
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    tracing_subscriber::registry()
        .with(sockit::logline::Layer::new().with_filter(filter))
        .init();
}
