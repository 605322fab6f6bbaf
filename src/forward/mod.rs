//! `sockit forward LISTEN TARGET…`: a relay.
//!
//! LISTEN is `[tcp:][ADDR:]PORT`, `udp:[ADDR:]PORT` or `unix:PATH`
//! (`unix:@name` for the abstract namespace); `--tls` terminates TLS on a
//! TCP listener. TARGET is `[tcp:]HOST:PORT`, `udp:HOST:PORT`,
//! `unix:PATH`, `tls:HOST:PORT`, `exec:PROGRAM ARGS…` or `sh:COMMAND`.
//!
//! Each accepted client is joined to one target, chosen round robin. A
//! target that refuses or times out is skipped for [`DOWN_FOR`], and the
//! client goes to the next one; when none answers, the client is reset and
//! the log line names each target's error. Clients are accepted by
//! [`crate::listener`] (one loop per core, `--max-conns`, `--allow`), and
//! the bytes move through [`crate::relay::pump`], which owns half-close,
//! reset and backpressure.
//!
//! Files: this one (options, the checks, the run), `spec` (the spellings,
//! pure), `connect` (choosing a target and reaching it), `stream` (one
//! client's relay and its log lines and events), `udp` (the datagram relay
//! and its session table).

mod connect;
mod spec;
mod stream;
mod udp;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::access::AccessList;
use crate::listener::events::Events;
use crate::listener::{self, Bound, Busy, Client, Handler, Peer, Rules};
use crate::net::unix::UnixError;
use crate::net::{self, describe, Family, NetError};
use crate::relay::proxy_header::Version;
use crate::relay::PipePool;
use crate::tls::{ClientTls, ClientTlsOptions, ServerTls};
pub use spec::{parse_listen, parse_target, parse_targets, Listen, Proto, Target, TargetKind};

/// How long a target that refused or timed out is skipped.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// Default `--max-conns`: client connections relayed at once.
pub const DEFAULT_MAX_CONNS: usize = 8192;

/// How long a UDP session lives without a datagram either way, by default.
pub const DEFAULT_UDP_IDLE: Duration = Duration::from_secs(60);

/// Default `--max-sessions` for UDP.
pub const DEFAULT_MAX_SESSIONS: usize = 4096;

/// Default `--connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors from `forward`.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A LISTEN or TARGET that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Binding the listener failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Binding a Unix listener failed.
    #[error(transparent)]
    Unix(#[from] UnixError),
    /// TLS set-up for a target failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The listener failed for good.
    #[error("the listener failed ({0})")]
    Listener(String),
}

impl crate::error::Failure for ForwardError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            ForwardError::Usage(_) => crate::error::Kind::Usage,
            ForwardError::Net(e) => e.kind(),
            ForwardError::Unix(e) => e.kind(),
            ForwardError::Tls(e) => e.kind(),
            ForwardError::Listener(_) => crate::error::Kind::Runtime,
        }
    }
}

/// How `forward` behaves.
#[derive(Debug)]
pub struct ForwardOptions {
    /// Where to listen.
    pub listen: Listen,
    /// `-4` / `-6` for the listener.
    pub family: Family,
    /// Where to send each client, round robin.
    pub targets: Vec<Target>,
    /// Most clients relayed at once; more are refused with a reset.
    pub max_conns: usize,
    /// Give up on a target after this long.
    pub connect_timeout: Duration,
    /// Close a relay on which no byte moved either way for this long
    /// (UDP: end a session; [`DEFAULT_UDP_IDLE`] when `None`).
    pub idle_timeout: Option<Duration>,
    /// UDP: most client sessions at once; when full, the one idle longest
    /// is evicted.
    pub max_sessions: usize,
    /// UDP: receive buffer per datagram; longer ones are dropped and
    /// reported.
    pub udp_buffer: usize,
    /// `--allow` and `--deny`.
    pub access: AccessList,
    /// `--tls`: terminate TLS on the listener.
    pub tls: Option<ServerTls>,
    /// Deadline for TLS handshakes, both sides.
    pub handshake_timeout: Duration,
    /// Trust for `tls:` targets.
    pub target_tls: ClientTlsOptions,
    /// `--proxy-protocol`: tell socket targets who the client is.
    pub proxy_protocol: Option<Version>,
    /// `--json`: one event per line on stdout.
    pub json: bool,
    /// Relay one client, then stop listening and exit when it ends
    /// (`tcp listen --exec` without `-k`).
    pub once: bool,
    /// `--delay`, `--slice`, `--loss` and the other faults.
    pub faults: crate::relay::fault::Faults,
    /// `--proxy`: reach TCP and `tls:` targets through these, in order.
    pub proxies: Vec<crate::proxy::ProxyUrl>,
    /// `--hexdump` and `--log`: what passes is shown or kept.
    pub taps: Option<std::sync::Arc<crate::relay::tap::Taps>>,
}

impl ForwardOptions {
    /// Options with the defaults, for `listen` and `targets`.
    pub fn new(listen: Listen, targets: Vec<Target>) -> ForwardOptions {
        ForwardOptions {
            listen,
            family: Family::Any,
            targets,
            max_conns: DEFAULT_MAX_CONNS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
            udp_buffer: crate::udp::DEFAULT_BUFFER,
            access: AccessList::default(),
            tls: None,
            handshake_timeout: crate::tls::DEFAULT_HANDSHAKE_TIMEOUT,
            target_tls: ClientTlsOptions::default(),
            proxy_protocol: None,
            json: false,
            once: false,
            faults: crate::relay::fault::Faults::default(),
            proxies: Vec::new(),
            taps: None,
        }
    }

    /// Whether relays need each client's local address: the PROXY header
    /// and a program's environment carry it.
    fn wants_local(&self) -> bool {
        self.proxy_protocol.is_some()
            || self
                .targets
                .iter()
                .any(|t| matches!(t.kind, TargetKind::Exec(_)))
    }

    /// Checks that the listener and the targets fit together.
    ///
    /// # Errors
    /// A sentence naming the mismatch.
    pub fn check(&self) -> Result<(), ForwardError> {
        let proto = self.listen.proto();
        if self.targets.is_empty() {
            return Err(ForwardError::Usage(
                "forward needs at least one TARGET".into(),
            ));
        }
        if let Some(t) = self.targets.iter().find(|t| t.proto() != proto) {
            return Err(ForwardError::Usage(format!(
                "the listener is {} but target {} is {}; a relay keeps one transport (write udp: on both or neither)",
                proto.name(),
                t.name(),
                t.proto().name()
            )));
        }
        if self.tls.is_some() && !matches!(self.listen, Listen::Tcp(_)) {
            return Err(ForwardError::Usage(
                "--tls terminates TLS on a TCP listener; this one is not TCP".into(),
            ));
        }
        if matches!(self.listen, Listen::Unix(_)) && !self.access.is_open() {
            return Err(ForwardError::Usage(
                "--allow and --deny take IP networks; a Unix listener's peers have no address (use the socket file's permissions)".into(),
            ));
        }
        if !self.proxies.is_empty() {
            if let Some(t) = self
                .targets
                .iter()
                .find(|t| !matches!(t.kind, TargetKind::Tcp(..) | TargetKind::Tls(..)))
            {
                return Err(ForwardError::Usage(format!(
                    "--proxy reaches TCP and tls: targets; {} is neither",
                    t.name()
                )));
            }
        }
        if let Some(flag) = self.faults.misfit(proto == Proto::Udp) {
            return Err(ForwardError::Usage(if proto == Proto::Udp {
                format!("{flag} shapes a byte stream; a UDP relay takes --loss, --duplicate and --reorder")
            } else {
                format!("{flag} is for datagrams; a stream relay takes --delay, --rate, --slice and the --*-after limits")
            }));
        }
        if self.taps.is_some() && proto == Proto::Udp {
            return Err(ForwardError::Usage(
                "--hexdump and --log show stream relays; for datagrams use udp listen --hex".into(),
            ));
        }
        if self.proxy_protocol.is_some() && proto == Proto::Udp {
            return Err(ForwardError::Usage(
                "--proxy-protocol is for stream relays; UDP has no header to carry it".into(),
            ));
        }
        Ok(())
    }
}

/// What one run of the relay saw.
#[derive(Debug, Default)]
pub struct ForwardSummary {
    /// Clients relayed to a target.
    pub relayed: u64,
    /// Clients turned away (access, `--max-conns`, no target answered).
    pub refused: u64,
}

/// What every relay shares: the options, and what serving them needs.
struct Ctx {
    opts: ForwardOptions,
    /// One per `tls:` target (same index), `None` for the others.
    target_tls: Vec<Option<ClientTls>>,
    /// The next target in turn.
    next: AtomicUsize,
    pipes: PipePool,
    events: Events,
    stop: CancellationToken,
    /// The faults' seed for this run.
    seed: u64,
}

impl Ctx {
    fn new(
        opts: ForwardOptions,
        target_tls: Vec<Option<ClientTls>>,
        events: Events,
        stop: CancellationToken,
    ) -> Ctx {
        let seed = opts.faults.run_seed("connections");
        Ctx {
            seed,
            opts,
            target_tls,
            next: AtomicUsize::new(0),
            pipes: PipePool::new(),
            events,
            stop,
        }
    }

    /// How the listener admits clients.
    fn rules(&self, loops: usize) -> Rules {
        Rules {
            loops,
            name: "sockit-relay",
            max_conns: Some(self.opts.max_conns),
            access: self.opts.access.clone(),
            once: self.opts.once,
            want_local: self.opts.wants_local(),
            busy: Busy {
                verb: "relaying",
                one: "connection",
                many: "connections",
            },
            tick: Some(crate::relay::PIPE_IDLE),
        }
    }
}

impl Handler for Ctx {
    async fn serve(self: Arc<Self>, client: Client) {
        let Client { conn, peer, id } = client;
        match stream::endpoint(conn) {
            Ok(c) => stream::relay(c, peer, &self, id).await,
            Err(e) => tracing::warn!(
                "{}: could not take the connection on ({})",
                peer.name,
                describe(&e)
            ),
        }
    }

    fn refused<'a>(
        &'a self,
        peer: &'a Peer,
        why: &'a str,
    ) -> impl std::future::Future<Output = ()> + Send + 'a {
        stream::refused_event(self, peer, why)
    }

    fn tick(&self) {
        // Pipes left idle by a burst are closed again after a while.
        self.pipes.trim(crate::relay::PIPE_IDLE);
    }
}

/// Binds, announces `listening on`, and relays until `stop` is cancelled.
///
/// # Errors
/// Bad combinations, bind errors, TLS set-up, or a listener that fails for good.
pub async fn run(
    opts: ForwardOptions,
    stop: CancellationToken,
) -> Result<ForwardSummary, ForwardError> {
    opts.check()?;
    net::raise_nofile_limit();
    let (events, writer) = Events::start(opts.json);
    let result = if opts.listen.proto() == Proto::Udp {
        udp::run(opts, stop, events).await
    } else {
        run_stream(opts, stop, events).await
    };
    if let Some(w) = writer {
        let _ = tokio::task::spawn_blocking(move || w.join()).await;
    }
    result
}

async fn run_stream(
    opts: ForwardOptions,
    stop: CancellationToken,
    events: Events,
) -> Result<ForwardSummary, ForwardError> {
    let listener_err = |e: std::io::Error| ForwardError::Listener(describe(&e));
    let target_tls = target_configs(&opts)?;
    let bound = match &opts.listen {
        Listen::Tcp(bind) => {
            let l = net::bind_tcp(bind, opts.family)?;
            let local = l.local_addr().map_err(listener_err)?;
            l.set_nonblocking(true).map_err(listener_err)?;
            net::announce_listening(local);
            Bound::Tcp(l)
        }
        Listen::Unix(addr) => {
            let b = net::unix::bind(addr)?;
            b.listener.set_nonblocking(true).map_err(listener_err)?;
            crate::logline::listening(&b.addr);
            Bound::Unix(Arc::new(b))
        }
        Listen::Udp(_) => {
            return Err(ForwardError::Usage(
                "a UDP listener has no stream acceptor".into(),
            ))
        }
    };
    if let Some(t) = &opts.tls {
        t.announce();
    }
    serve(
        bound,
        opts,
        target_tls,
        events,
        stop,
        listener::loops_per_core(),
    )
    .await
}

/// Relays clients of `bound` with `loops` accept loops until `stop`.
async fn serve(
    bound: Bound,
    opts: ForwardOptions,
    target_tls: Vec<Option<ClientTls>>,
    events: Events,
    stop: CancellationToken,
    loops: usize,
) -> Result<ForwardSummary, ForwardError> {
    let ctx = Arc::new(Ctx::new(opts, target_tls, events, stop.clone()));
    let rules = ctx.rules(loops);
    let s = listener::run(bound, rules, ctx, stop)
        .await
        .map_err(|e| ForwardError::Listener(describe(&e)))?;
    Ok(ForwardSummary {
        relayed: s.admitted,
        refused: s.refused,
    })
}

/// Relays clients of a listener the caller bound (non-blocking), on one
/// accept loop, printing nothing; `opts.listen` is not used
/// (`sockit nc -lk -e`).
///
/// # Errors
/// Bad combinations, TLS set-up for targets, or a listener that fails.
pub async fn serve_bound(
    bound: Bound,
    opts: ForwardOptions,
    stop: CancellationToken,
) -> Result<ForwardSummary, ForwardError> {
    opts.check()?;
    let target_tls = target_configs(&opts)?;
    serve(bound, opts, target_tls, Events::default(), stop, 1).await
}

/// Relays clients of a TCP listener the caller bound (the demo, tests of
/// the library), printing nothing; `opts.listen` is not used.
///
/// # Errors
/// Bad combinations, TLS set-up for targets, or a listener that fails.
pub async fn serve_tcp(
    listener: std::net::TcpListener,
    opts: ForwardOptions,
    stop: CancellationToken,
) -> Result<ForwardSummary, ForwardError> {
    opts.check()?;
    let target_tls = target_configs(&opts)?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ForwardError::Listener(describe(&e)))?;
    serve(
        Bound::Tcp(listener),
        opts,
        target_tls,
        Events::default(),
        stop,
        1,
    )
    .await
}

/// A client configuration per `tls:` target (same index), built before
/// anything listens so a bad pin or CA file is reported first.
fn target_configs(opts: &ForwardOptions) -> Result<Vec<Option<ClientTls>>, ForwardError> {
    let mut v = Vec::with_capacity(opts.targets.len());
    for t in &opts.targets {
        v.push(match &t.kind {
            TargetKind::Tls(h, p) => Some(ClientTls::new(h, *p, &opts.target_tls)?),
            _ => None,
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_kinds_are_refused() {
        let o = ForwardOptions::new(
            parse_listen("udp:0").unwrap(),
            parse_targets(&["127.0.0.1:80"]).unwrap(),
        );
        assert!(o.check().is_err());
        let mut o = ForwardOptions::new(
            parse_listen("unix:@x").unwrap(),
            parse_targets(&["127.0.0.1:80"]).unwrap(),
        );
        assert!(o.check().is_ok());
        o.access.allow.push("127.0.0.0/8".parse().unwrap());
        assert!(o.check().is_err());
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::relay::Endpoint;
    use tokio::net::TcpStream;

    /// A relay's task is allocated at its largest state for as long as the
    /// connection lives: a TLS stream or a connect future kept inline once
    /// made it 2 KiB.
    #[tokio::test]
    async fn a_relay_task_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let opts = ForwardOptions::new(
            parse_listen("127.0.0.1:0").unwrap(),
            vec![parse_target("127.0.0.1:1").unwrap()],
        );
        let ctx = Ctx::new(
            opts,
            vec![None],
            Events::default(),
            CancellationToken::new(),
        );
        let peer = Peer {
            name: String::new(),
            addr: None,
            cred: None,
            local: String::new(),
            local_addr: None,
        };
        let f = stream::relay(Endpoint::Tcp(a), peer, &ctx, 1);
        assert!(
            std::mem::size_of_val(&f) <= 1024,
            "relay: {}",
            std::mem::size_of_val(&f)
        );
    }
}
