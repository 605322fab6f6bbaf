//! A program per connection (`exec:`, `sh:`, `--exec`, `--sh`): the child
//! process as an endpoint of the pump.
//!
//! The connection is joined to the child's stdin and stdout; its stderr
//! goes to sockit's stderr, each line prefixed with the peer. The child
//! runs in its own process group, so signals reach whatever it starts.
//! A waiter task reaps it the moment it exits (no zombies); when the
//! relay ends first, the group gets SIGTERM and, after [`KILL_GRACE`],
//! SIGKILL.
//!
//! Environment given to the child (documented in the README):
//! `SOCKIT_PROTO` (`tcp`, `tls` or `unix`), `SOCKIT_PEER` (the peer as the
//! log shows it), `SOCKIT_PEER_ADDR` and `SOCKIT_PEER_PORT` (IP peers),
//! `SOCKIT_PEER_PID` and `SOCKIT_PEER_UID` (Unix peers), `SOCKIT_LOCAL`,
//! `SOCKIT_LOCAL_ADDR` and `SOCKIT_LOCAL_PORT` (the address the peer
//! reached).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout};

/// How long a child has after SIGTERM (or after the relay ended) before
/// SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Longest stderr line passed on whole; longer ones are cut.
const MAX_ERR_LINE: usize = 8 * 1024;

/// A program to run, checked before anything listens.
#[derive(Debug, Clone)]
pub struct Program {
    /// The resolved program and its arguments.
    pub argv: Vec<String>,
    /// As the user wrote it (`exec:…` or `sh:…`), for messages.
    pub shown: String,
}

/// Parses `exec:` text: split as a shell would split words, run with no
/// shell. The program must exist and be executable.
///
/// # Errors
/// A sentence for bad quoting or a program that is not there.
pub fn parse_exec(s: &str) -> Result<Program, String> {
    let words = shlex::split(s).ok_or_else(|| format!("{s:?} has unbalanced quotes"))?;
    let Some(first) = words.first() else {
        return Err("exec: needs a program to run".into());
    };
    let program = find_program(first)?;
    let mut argv = vec![program.to_string_lossy().into_owned()];
    argv.extend(words[1..].iter().cloned());
    Ok(Program {
        argv,
        shown: format!("exec:{s}"),
    })
}

/// `sh:` text: run by `/bin/sh -c`.
///
/// # Errors
/// An empty command, or no /bin/sh.
pub fn parse_sh(s: &str) -> Result<Program, String> {
    if s.trim().is_empty() {
        return Err("sh: needs a command to run".into());
    }
    let sh = find_program("/bin/sh")?;
    Ok(Program {
        argv: vec![sh.to_string_lossy().into_owned(), "-c".into(), s.into()],
        shown: format!("sh:{s}"),
    })
}

/// Finds `name` as a shell would: a path if it holds a slash, else on PATH.
fn find_program(name: &str) -> Result<PathBuf, String> {
    let runnable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return match std::fs::metadata(&p) {
            Err(_) => Err(format!("the program {name} does not exist")),
            Ok(_) if !runnable(&p) => Err(format!("the program {name} is not executable")),
            Ok(_) => Ok(p),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| runnable(p))
        .ok_or_else(|| format!("no program named {name} was found on PATH"))
}

/// What the child is told about its connection.
#[derive(Debug, Clone, Default)]
pub struct ConnEnv {
    /// `tcp`, `tls` or `unix`.
    pub proto: &'static str,
    /// The peer as the log shows it.
    pub peer: String,
    /// IP peers: address and port.
    pub peer_addr: Option<std::net::SocketAddr>,
    /// Unix peers: process and user id.
    pub peer_cred: Option<(Option<i32>, u32)>,
    /// The local address as shown.
    pub local: String,
    /// IP listeners: the local address and port.
    pub local_addr: Option<std::net::SocketAddr>,
}

/// The child, joined to a connection: reads give its stdout, writes go to
/// its stdin, and shutting down the write side closes its stdin.
pub struct ChildIo {
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    pid: i32,
    /// Asks the waiter to terminate the child.
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    /// The waiter: reaps the child and reports how it ended.
    waiter: Option<tokio::task::JoinHandle<io::Result<ExitStatus>>>,
}

/// Starts `p` for one connection.
///
/// # Errors
/// The system's error when the program cannot start.
pub fn spawn(p: &Program, env: &ConnEnv) -> io::Result<ChildIo> {
    let mut cmd = tokio::process::Command::new(&p.argv[0]);
    cmd.args(&p.argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .env("SOCKIT_PROTO", env.proto)
        .env("SOCKIT_PEER", &env.peer)
        .env("SOCKIT_LOCAL", &env.local);
    if let Some(a) = env.peer_addr {
        cmd.env("SOCKIT_PEER_ADDR", a.ip().to_string())
            .env("SOCKIT_PEER_PORT", a.port().to_string());
    }
    if let Some((pid, uid)) = env.peer_cred {
        if let Some(pid) = pid {
            cmd.env("SOCKIT_PEER_PID", pid.to_string());
        }
        cmd.env("SOCKIT_PEER_UID", uid.to_string());
    }
    if let Some(a) = env.local_addr {
        cmd.env("SOCKIT_LOCAL_ADDR", a.ip().to_string())
            .env("SOCKIT_LOCAL_PORT", a.port().to_string());
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    let (Some(stdin), Some(stdout), stderr) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("the child's pipes were not set up"));
    };
    // Copies stderr, prefixed, until the child closes it (detached).
    if let Some(e) = stderr {
        tokio::spawn(copy_stderr(e, env.peer.clone()));
    }
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let waiter = tokio::spawn(async move {
        tokio::select! {
            st = child.wait() => return st,
            _ = kill_rx => {}
        }
        // Not reaped yet, so the group id is still ours to signal.
        signal_group(pid, libc::SIGTERM);
        match tokio::time::timeout(KILL_GRACE, child.wait()).await {
            Ok(st) => st,
            Err(_) => {
                tracing::info!(
                    "child {pid} ignored SIGTERM for {} s; sent SIGKILL",
                    KILL_GRACE.as_secs()
                );
                signal_group(pid, libc::SIGKILL);
                child.wait().await
            }
        }
    });
    Ok(ChildIo {
        stdin: Some(stdin),
        stdout,
        pid,
        kill: Some(kill_tx),
        waiter: Some(waiter),
    })
}

fn signal_group(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) on the child's own process group.
        unsafe { libc::kill(-pid, sig) };
    }
}

/// Passes the child's stderr on, a line at a time, each prefixed.
async fn copy_stderr(e: tokio::process::ChildStderr, who: String) {
    use std::io::Write;
    let mut r = tokio::io::BufReader::new(e);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = tokio::io::AsyncReadExt::take(&mut r, MAX_ERR_LINE as u64);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "[{who}] ");
                let _ = err.write_all(&line);
            }
        }
    }
}

impl ChildIo {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Ends the child: at once (SIGTERM, then SIGKILL) when `hurry`, else
    /// after it has had [`KILL_GRACE`] to exit by itself. Returns how it
    /// ended, once reaped.
    pub async fn finish(&mut self, hurry: bool) -> Option<ExitStatus> {
        self.stdin = None;
        let mut waiter = self.waiter.take()?;
        if !hurry {
            if let Ok(r) = tokio::time::timeout(KILL_GRACE, &mut waiter).await {
                self.kill = None;
                return r.ok().and_then(|r| r.ok());
            }
        }
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        waiter.await.ok().and_then(|r| r.ok())
    }
}

impl AsyncRead for ChildIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChildIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, data),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing the pipe is how a child's stdin ends.
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_checked_and_split_without_a_shell() {
        let p = parse_exec("cat -u 'a b'").unwrap();
        assert!(p.argv[0].ends_with("/cat"), "{:?}", p.argv);
        assert_eq!(&p.argv[1..], ["-u", "a b"]);
        assert!(parse_exec("/no/such/program")
            .unwrap_err()
            .contains("does not exist"));
        assert!(parse_exec("no-such-program-sockit")
            .unwrap_err()
            .contains("PATH"));
        assert!(parse_exec("cat 'unbalanced").is_err());
        assert!(parse_exec("").is_err());
        let plain = std::env::temp_dir().join(format!("sockit-not-exec-{}", std::process::id()));
        std::fs::write(&plain, b"data").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = parse_exec(plain.to_str().unwrap()).unwrap_err();
        let _ = std::fs::remove_file(&plain);
        assert!(e.contains("not executable"), "{e}");
        let s = parse_sh("echo $HOME | wc -c").unwrap();
        assert_eq!(s.argv[1..], ["-c", "echo $HOME | wc -c"]);
        assert!(parse_sh("  ").is_err());
    }
}
