//! Choosing a target for a client and reaching it: round robin, skipping
//! targets that are down, through [`crate::dial`] for TCP and `tls:`
//! (directly or through `--proxy`), a PROXY header first where asked, or
//! a program started for the client. Failures are phrases for the log
//! line that names each target: `127.0.0.1:9 refused the connection`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Ctx, Listen, TargetKind, DOWN_FOR};
use crate::dial::{self, DialError};
use crate::listener::Peer;
use crate::net::{describe, NetError};
use crate::relay::child::{self, ConnEnv};
use crate::relay::proxy_header;
use crate::relay::Endpoint;

/// Connects to the first target that answers, starting at the next one in
/// turn and skipping those marked down (unless all are).
pub(super) async fn connect_target(
    ctx: &Ctx,
    peer: &Peer,
) -> Result<(Endpoint, String), Vec<String>> {
    let n = ctx.opts.targets.len();
    let start = ctx.next.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
    // Targets that are up first, then the ones marked down, as a last try.
    let (up, down): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|&i| !ctx.opts.targets[i].is_down(now));
    let mut errors = Vec::new();
    for i in up.into_iter().chain(down) {
        let t = &ctx.opts.targets[i];
        match connect_one(ctx, i, peer).await {
            Ok(s) => {
                t.mark(false);
                return Ok((s, t.name()));
            }
            Err(why) => {
                if !t.is_down(now) {
                    tracing::warn!(
                        "target {} {why}; skipping it for {} s",
                        t.name(),
                        DOWN_FOR.as_secs()
                    );
                }
                t.mark(true);
                errors.push(format!("{} {why}", t.name()));
            }
        }
    }
    Err(errors)
}

/// One target, within the connect timeout (TLS: the handshake has its own).
async fn connect_one(ctx: &Ctx, i: usize, peer: &Peer) -> Result<Endpoint, String> {
    let timeout = ctx.opts.connect_timeout;
    let header = ctx
        .opts
        .proxy_protocol
        .map(|v| proxy_header::encode(v, peer.addr.zip(peer.local_addr)));
    let with_header = |mut e: Endpoint| async {
        if let Some(h) = &header {
            if let Err(e) = e.write_all(h).await {
                return Err(format!(
                    "failed while sending the PROXY header ({})",
                    describe(&e)
                ));
            }
        }
        Ok(e)
    };
    match &ctx.opts.targets[i].kind {
        TargetKind::Tcp(h, p) => {
            with_header(Endpoint::Tcp(target_connect(ctx, h, *p).await?)).await
        }
        TargetKind::Tls(h, p) => {
            let s = target_connect(ctx, h, *p).await?;
            let Endpoint::Tcp(s) = with_header(Endpoint::Tcp(s)).await? else {
                return Err("lost its socket".into());
            };
            let Some(cfg) = &ctx.target_tls[i] else {
                return Err("has no TLS configuration".into());
            };
            let s = crate::tls::connect_async(cfg, s, ctx.opts.handshake_timeout)
                .await
                .map_err(|e| format!("failed the TLS handshake ({e})"))?;
            Ok(Endpoint::TlsClient(Box::new(s)))
        }
        TargetKind::Unix(a) => {
            with_header(Endpoint::Unix(crate::dial::unix_async(a, timeout).await?)).await
        }
        TargetKind::Exec(p) => {
            let env = ConnEnv {
                proto: match (&ctx.opts.listen, ctx.opts.tls.is_some()) {
                    (Listen::Unix(_), _) => "unix",
                    (_, true) => "tls",
                    _ => "tcp",
                },
                peer: peer.name.clone(),
                peer_addr: peer.addr,
                peer_cred: peer.cred,
                local: peer.local.clone(),
                local_addr: peer.local_addr,
            };
            let c =
                child::spawn(p, &env).map_err(|e| format!("could not start ({})", describe(&e)))?;
            tracing::debug!("{}: started child {}", peer.name, c.pid());
            Ok(Endpoint::Child(Box::new(c)))
        }
        TargetKind::Udp(..) => Err("is UDP; a stream relay cannot use it".into()),
    }
}

/// A TCP connection to a target, directly or through `--proxy`.
async fn target_connect(ctx: &Ctx, host: &str, port: u16) -> Result<TcpStream, String> {
    dial::connect_async(host, port, &ctx.opts.proxies, ctx.opts.connect_timeout)
        .await
        .map_err(|e| match e {
            DialError::Proxy(p) => format!("is out of reach: {p}"),
            DialError::Net(n) => phrase(&n),
        })
}

/// A direct connect's failure as the log says it after the target's name.
fn phrase(e: &NetError) -> String {
    match e {
        NetError::Resolve { reason, .. } => format!("could not be resolved ({reason})"),
        NetError::BadAddress { .. } => "could not be resolved (not an IP address)".into(),
        NetError::NoAddress { .. } => "has no address".into(),
        NetError::Refused { .. } => "refused the connection".into(),
        NetError::Connect { source, .. }
            if matches!(
                source.raw_os_error(),
                Some(libc::EHOSTUNREACH | libc::ENETUNREACH)
            ) =>
        {
            "has no route (host or network unreachable)".into()
        }
        NetError::Connect { reason, .. } => format!("failed ({reason})"),
        NetError::TimedOut { secs, .. } | NetError::Deadline { secs, .. } => {
            format!("timed out after {secs} s")
        }
        NetError::AddrInUse { .. } | NetError::Bind { .. } => format!("failed ({e})"),
    }
}
