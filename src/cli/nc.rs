//! `sockit nc`: netcat-openbsd's flags. The binary reads them itself (see
//! [`run`]), before clap, so that `-v`, `-h` and the rest mean what they
//! mean to netcat; this struct only gives `sockit nc` its place in `--help`,
//! the completions and the man pages.

use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
#[command(
    disable_help_flag = true,
    after_help = concat!(
        "Examples:\n",
        "  sockit nc -l 1234                               listen for one peer\n",
        "  sockit nc -N 127.0.0.1 1234 < file.in           send a file and close\n",
        "  sockit nc -zv 127.0.0.1 20-30                   which ports are open\n",
        "  sockit nc -lU /var/tmp/dsocket                  a Unix socket\n",
        "  sockit nc -x127.0.0.1:8080 -Xconnect host 42    through an HTTP proxy\n",
        "  sockit nc -l 1234 -e /bin/cat                   a program per peer (ncat's -e)\n",
        "\n",
        "Run as `nc` (a symlink to sockit), the binary is this command. `sockit nc -h`\n",
        "lists the flags; the README says where it differs from nc on purpose."
    )
)]
pub(crate) struct NcCli {
    /// netcat's flags and operands: [-46bCDdhklNnrUuvz] [-i SECS] [-p PORT] [-q SECS] [-s ADDR] [-w SECS] [-X 4|5|connect] [-x ADDR[:PORT]] [-e PROG] [-c CMD] [HOST] [PORT...]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
    pub(crate) args: Vec<String>,
}

/// Runs a netcat command line: nc's messages after `nc: `, nc's exit codes
/// (2 for a usage error, as every sockit command).
pub(crate) fn run(args: &[String]) -> ExitCode {
    use sockit::error::Failure;
    let parsed = match sockit::nc::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nc: {e}");
            return ExitCode::from(e.kind().exit_code());
        }
    };
    match sockit::nc::run(&parsed) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("nc: {e}");
            ExitCode::from(match e.kind().exit_code() {
                0 => 1,
                c => c,
            })
        }
    }
}
