//! Step: TCP vs UDP, measured.

use super::*;

/// Step 13: a 2-second TCP and UDP bench on loopback.
pub(super) fn bench_step() -> StepResult {
    use crate::bench::{client, proto::Mode, server as bserver};
    let (listener, addr) = loopback_listener()?;
    let stop = CancellationToken::new();
    let s2 = stop.clone();
    let rt = runtime()?;
    rt.spawn(async move {
        if listener.set_nonblocking(true).is_ok() {
            let _ = bserver::serve(listener, s2).await;
        }
    });
    let opts = |mode, len| client::ClientOptions {
        mode,
        parallel: 1,
        reverse: false,
        bidir: false,
        secs: 1.0,
        bytes: 0,
        len,
        rate: 0,
        max_conns: 1,
        progress: false,
        tls: None,
        host: String::new(),
        udp_port: None,
        proxies: Vec::new(),
        plot: false,
    };
    let tcp = client::run(addr, &opts(Mode::Tcp, 128 * 1024)).map_err(|e| e.to_string())?;
    let udp = client::run(addr, &opts(Mode::Udp, 1400)).map_err(|e| e.to_string())?;
    stop.cancel();
    let mut log = vec![format!(
        "`sockit bench server` on {addr}; 1 s of each, as fast as possible:"
    )];
    for (k, v) in tcp.rows.iter().chain(udp.rows.iter()) {
        log.push(format!("  {k:<26} {v}"));
    }
    log.push(
        "TCP is not slow: it is reliable and ordered, and on a clean link it is as fast as UDP.\n\
         UDP's edge is no handshake and kept message boundaries, at the price of loss you must handle.\n\
         Measure your own network: `sockit bench server` on one machine, `sockit bench client HOST tcp|udp|rr` on another."
            .into(),
    );
    Ok(log.join("\n"))
}
