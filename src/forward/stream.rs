//! One client's relay: TLS accepted where `--tls` asks, a target reached,
//! the bytes moved by [`crate::relay::pump`], and the lines and `--json`
//! events that tell how it went (open, close with bytes each way, who
//! closed first, refused, error).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::Ctx;
use crate::listener::events;
use crate::listener::{Conn, Peer, Stream};
use crate::net::describe;
use crate::relay::{self, End, Endpoint, Side};
use crate::tls::ServerTls;

/// A client's socket as an endpoint of the current runtime.
pub(super) fn endpoint(conn: Conn) -> std::io::Result<Endpoint> {
    Ok(match conn.register()? {
        Stream::Tcp(s) => Endpoint::Tcp(s),
        Stream::Unix(s) => Endpoint::Unix(s),
    })
}

/// The `--json` event for a client turned away.
pub(super) async fn refused_event(ctx: &Ctx, peer: &Peer, why: &str) {
    ctx.events
        .emit(
            "refused",
            &[
                ("client", events::s(&peer.name)),
                ("reason", events::s(why)),
            ],
        )
        .await;
}

/// Relays one client to a target until both directions have ended.
pub(super) async fn relay(client: Endpoint, peer: Peer, ctx: &Ctx, id: u64) {
    let who = &peer.name;
    let mut client = match (client, &ctx.opts.tls) {
        (Endpoint::Tcp(s), Some(tls)) => {
            // Boxed, and the stream boxed inside: a TLS stream is 1.2 KiB,
            // and every relay's task would otherwise carry room for one.
            let r = tokio::select! {
                r = Box::pin(tls_accept(ctx, tls, s, &peer)) => r,
                _ = ctx.stop.cancelled() => return,
            };
            match r {
                Some(e) => e,
                None => return,
            }
        }
        (c, _) => c,
    };
    let connected = tokio::select! {
        r = Box::pin(super::connect::connect_target(ctx, &peer)) => r,
        _ = ctx.stop.cancelled() => return,
    };
    let (mut target, name) = match connected {
        Ok(x) => x,
        Err(errors) => {
            let why = format!("no target answered ({})", errors.join("; "));
            tracing::warn!(event = "error", client = %who, reason = %why, "{who}: {why}; reset the client");
            Box::pin(error_event(ctx, who, &why)).await;
            client.reset();
            return;
        }
    };
    tracing::info!(event = "connected", id, client = %who, target = %name, "{who} -> {name}: relaying");
    if ctx.events.on() {
        Box::pin(ctx.events.emit(
            "open",
            &[
                ("id", id.to_string()),
                ("client", events::s(who)),
                ("target", events::s(&name)),
            ],
        ))
        .await;
    }
    let faults = ctx.opts.faults.for_conn(ctx.seed, id);
    if faults.is_some() {
        tracing::info!("{who} -> {name}: faults: {}", ctx.opts.faults.describe());
    }
    // Taps and faults are stages of the userspace copy; a relay with
    // neither stays on the zero-copy path.
    let taps = match &ctx.opts.taps {
        Some(t) => match t.stages(id, &format!("#{id} {who} -> {name}")) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("{who}: could not open the --log files ({})", describe(&e));
                None
            }
        },
        None => None,
    };
    let extras = match (faults, taps) {
        (None, None) => None,
        (faults, taps) => {
            let (up, down) = taps.unzip();
            Some(Box::new(relay::Extras {
                faults,
                up,
                down,
                ..relay::Extras::default()
            }))
        }
    };
    let p = relay::pump_with(
        &mut client,
        &mut target,
        ctx.opts.idle_timeout,
        &ctx.stop,
        &ctx.pipes,
        extras,
    )
    .await;
    let first = match p.first_eof {
        Some(Side::A) => "client",
        Some(Side::B) => "target",
        None => "neither",
    };
    let secs = p.elapsed.as_secs_f64();
    let (end, detail) = match &p.end {
        // No stages here, so no quit word: both read as a close.
        End::Done | End::Quit(_) => ("closed", String::new()),
        End::Failed(side, e) => {
            let whose = if *side == Side::A { "client" } else { "target" };
            // A TLS target that wants a client certificate says so at the
            // first read, after the handshake.
            let why = match (&target, side) {
                (Endpoint::TlsClient(_), Side::B) => {
                    crate::tls::cert_refusal(e, crate::tls::TrustFlags::TARGET.cert)
                }
                _ => None,
            };
            (
                "reset",
                format!("{whose}: {}", why.unwrap_or_else(|| describe(e))),
            )
        }
        End::Idle => ("idle", String::new()),
        End::Stopped => ("stopped", String::new()),
        End::Fault(limit, side, n) => {
            let (end, how) = match limit {
                relay::fault::Limit::Reset => ("fault-reset", "reset"),
                relay::fault::Limit::Close => ("fault-close", "closed"),
                relay::fault::Limit::Stall => ("fault-stall", "stalled"),
            };
            let way = if *side == Side::A { "up" } else { "down" };
            (end, format!("{how} by the fault after {n} bytes {way}"))
        }
    };
    // Closed now, not after the events below: the pump leaves the last
    // FIN to this close.
    drop(client);
    let status = match target.child() {
        Some(c) => {
            let hurry = !matches!(p.end, End::Done);
            Box::pin(c.finish(hurry)).await
        }
        None => None,
    };
    drop(target);
    // Logged once both sockets are closed: a line that says "reset both
    // sides" is true when it is read.
    if tracing::enabled!(tracing::Level::INFO) {
        log_end(
            id,
            who,
            &name,
            &p,
            (end, first),
            &detail,
            ctx.opts.idle_timeout,
        );
    }
    if let Some(st) = status {
        if !st.success() {
            tracing::info!("{who} -> {name}: the program ended with {st}");
        }
    }
    if !ctx.events.on() {
        return;
    }
    let mut fields = vec![
        ("id", id.to_string()),
        ("client", events::s(who)),
        ("target", events::s(&name)),
        ("end", events::s(end)),
        ("bytes_up", p.a_to_b.to_string()),
        ("bytes_down", p.b_to_a.to_string()),
        ("secs", format!("{secs:.6}")),
        ("first_closed", events::s(first)),
    ];
    if !detail.is_empty() {
        fields.push(("reason", events::s(&detail)));
    }
    if let Some(code) = status.and_then(|s| s.code()) {
        fields.push(("exit_code", code.to_string()));
    }
    Box::pin(ctx.events.emit("close", &fields)).await;
}

/// The TLS handshake with a client; a failure is logged and reported.
async fn tls_accept(ctx: &Ctx, tls: &ServerTls, s: TcpStream, peer: &Peer) -> Option<Endpoint> {
    let addr = peer
        .addr
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    match crate::tls::accept_async(tls, s, addr, ctx.opts.handshake_timeout).await {
        Ok(s) => Some(Endpoint::TlsServer(Box::new(s))),
        Err(e) => {
            tracing::warn!("{e}");
            error_event(ctx, &peer.name, &e.to_string()).await;
            None
        }
    }
}

/// `-v`'s line for a relay's end: bytes each way, duration, who closed.
fn log_end(
    id: u64,
    who: &str,
    name: &str,
    p: &relay::Pumped,
    (end, first): (&str, &str),
    detail: &str,
    idle: Option<Duration>,
) {
    let bytes = format!(
        "{} up, {} down, {:.2} s",
        crate::text::counted(p.a_to_b, "byte", "bytes"),
        crate::text::counted(p.b_to_a, "byte", "bytes"),
        p.elapsed.as_secs_f64()
    );
    let text = match &p.end {
        End::Done | End::Quit(_) => {
            format!("{who} -> {name}: closed; {bytes}; the {first} closed first")
        }
        End::Failed(..) => format!("{who} -> {name}: {detail}; reset both sides; {bytes}"),
        End::Idle => format!(
            "{who} -> {name}: idle for {} s; reset both sides; {bytes}",
            idle.map(|d| d.as_secs_f64()).unwrap_or(0.0)
        ),
        End::Stopped => format!("{who} -> {name}: stopped; {bytes}"),
        End::Fault(..) => format!("{who} -> {name}: {detail}; {bytes}"),
    };
    // The same names as --json's close event.
    tracing::info!(
        event = "closed",
        id,
        client = who,
        target = name,
        end,
        bytes_up = p.a_to_b,
        bytes_down = p.b_to_a,
        secs = p.elapsed.as_secs_f64(),
        first_closed = first,
        reason = detail,
        "{text}"
    );
}

async fn error_event(ctx: &Ctx, who: &str, why: &str) {
    ctx.events
        .emit(
            "error",
            &[("client", events::s(who)), ("reason", events::s(why))],
        )
        .await;
}
