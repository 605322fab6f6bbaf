//! What several steps share: a typist and a screen for the sessions,
//! a loopback listener, a runtime, a scratch directory, a file server.

use super::*;

/// Input that yields lines as the demo feeds them, like a person typing.
pub(super) struct Typist(pub(super) mpsc::Receiver<Vec<u8>>, pub(super) Vec<u8>);

impl Read for Typist {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.1.is_empty() {
            match self.0.recv() {
                Ok(v) => self.1 = v,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len());
        buf[..n].copy_from_slice(&self.1[..n]);
        self.1.drain(..n);
        Ok(n)
    }
}

/// Output the demo can watch: a shared buffer with a condition variable.
#[derive(Clone, Default)]
pub(super) struct Screen(pub(super) Arc<(Mutex<Vec<u8>>, Condvar)>);

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (m, cv) = &*self.0;
        m.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        cv.notify_all();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Screen {
    /// Waits until the screen shows `text`, or the step timeout passes.
    pub(super) fn wait_for(&self, text: &str) -> Result<(), String> {
        let (m, cv) = &*self.0;
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if String::from_utf8_lossy(&g).contains(text) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{text:?} did not arrive within {STEP_TIMEOUT:?}"));
            }
            g = cv
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Binds a loopback listener on a free port.
pub(super) fn loopback_listener() -> Result<(std::net::TcpListener, SocketAddr), String> {
    let l = net::bind_tcp(
        &BindAddr {
            host: Some("127.0.0.1".into()),
            port: 0,
        },
        Family::V4,
    )
    .map_err(|e| e.to_string())?;
    let a = l.local_addr().map_err(|e| e.to_string())?;
    Ok((l, a))
}

/// Builds a runtime for one async step.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Runs `tour` in a fresh scratch directory and removes it afterwards.
pub(super) fn in_scratch(name: &str, tour: fn(&std::path::Path) -> StepResult) -> StepResult {
    let tmp = std::env::temp_dir().join(format!("sockit-demo-{name}-{}", std::process::id()));
    let res = tour(&tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    res
}

/// Starts `sockit serve` on `dir` (loopback, in a thread); returns its address.
pub(super) fn serve_dir(
    dir: &std::path::Path,
    tls: Option<crate::tls::ServerTls>,
) -> Result<SocketAddr, String> {
    use crate::transfer::{paths::Root, server as fserver};
    let (listener, addr) = loopback_listener()?;
    let root = Root::new(dir, false).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let _ = fserver::serve(
            listener,
            fserver::ServeOptions {
                root,
                max_conns: 16,
                idle_timeout: Duration::from_secs(10),
                max_rate: None,
                tls,
                handshake_timeout: crate::tls::DEFAULT_HANDSHAKE_TIMEOUT,
                access: Default::default(),
            },
        );
    });
    Ok(addr)
}

/// Starts a multi-peer server on loopback and returns its address.
pub(super) async fn start_server(
    opts: ServerOptions,
    console: Console,
    stop: &CancellationToken,
) -> Result<
    (
        SocketAddr,
        tokio::task::JoinHandle<io::Result<peers::ServeSummary>>,
    ),
    String,
> {
    let (listener, addr) = loopback_listener()?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let bound = crate::listener::Bound::Tcp(listener);
    let h = tokio::spawn(peers::serve(bound, opts, console, stop.clone()));
    Ok((addr, h))
}
