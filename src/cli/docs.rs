//! `sockit completions SHELL` and `sockit manpages DIR`: both generated
//! from the same clap definitions as `--help`, so they cannot drift from
//! the flags.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory};

#[derive(Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  sockit completions bash > ~/.local/share/bash-completion/completions/sockit\n",
    "  sockit completions zsh > ~/.zfunc/_sockit       (with fpath+=~/.zfunc)\n",
    "  sockit completions fish > ~/.config/fish/completions/sockit.fish"
))]
pub(crate) struct CompletionsCli {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  sockit manpages ~/.local/share/man/man1 && man sockit-tcp-connect\n",
    "  sockit manpages /tmp/man && man -l /tmp/man/sockit.1"
))]
pub(crate) struct ManpagesCli {
    /// Where to write sockit.1 and one page per subcommand (made if missing).
    dir: PathBuf,
}

/// Prints the completion script for the shell.
pub(crate) fn completions(c: CompletionsCli) -> super::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(c.shell, &mut cmd, "sockit", &mut out);
    Ok(ExitCode::SUCCESS)
}

/// Writes the man pages.
pub(crate) fn manpages(c: ManpagesCli) -> super::Result<ExitCode> {
    let failed = |e: std::io::Error| {
        super::Fail::msg(format!(
            "could not write the man pages to {} ({})",
            c.dir.display(),
            sockit::net::describe(&e)
        ))
    };
    std::fs::create_dir_all(&c.dir).map_err(failed)?;
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_pages(&cmd, &c.dir).map_err(failed)?;
    Ok(ExitCode::SUCCESS)
}

/// A page for `cmd`, then one for each subcommand, all the way down.
fn write_pages(cmd: &clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir)?;
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut page)?;
    }
    if let Some(after) = cmd.get_after_help() {
        examples(&after.to_string(), &mut page);
    }
    man.render_version_section(&mut page)?;
    std::fs::write(dir.join(man.get_filename()), page)
}

/// The examples `--help` shows, as an EXAMPLES section whose lines stay as
/// they are (no filling: the columns line up as on the terminal).
fn examples(text: &str, page: &mut Vec<u8>) {
    let body = text.strip_prefix("Examples:\n").unwrap_or(text);
    page.extend_from_slice(b".SH EXAMPLES\n.nf\n");
    for line in body.lines() {
        let mut l = line.replace('\\', "\\e").replace('-', "\\-");
        if l.starts_with('.') || l.starts_with('\'') {
            l.insert_str(0, "\\&");
        }
        page.extend_from_slice(l.as_bytes());
        page.push(b'\n');
    }
    page.extend_from_slice(b".fi\n");
}
