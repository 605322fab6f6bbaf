//! Step: lookups, a TCP ping and a port scan.

use super::*;

/// Step 12: the seed 004 lookups, a TCP ping, and a scan of ports the demo
/// opened itself. Only localhost and 127.0.0.1 are looked up.
pub(super) fn lookup_step() -> StepResult {
    use crate::{diag, lookup};
    let mut log = Vec::new();
    let host = lookup::hostname().map_err(|e| e.to_string())?;
    log.push(format!("gethostname()                  -> {host}"));
    let addrs = lookup::host("localhost", Family::Any).map_err(|e| e.to_string())?;
    let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    log.push(format!(
        "gethostbyname('localhost')     -> {}",
        shown.join(" ")
    ));
    match lookup::addr("127.0.0.1".parse().map_err(|_| "bad literal")?) {
        Ok(n) => log.push(format!("gethostbyaddr('127.0.0.1')     -> {n}")),
        Err(e) => log.push(format!("gethostbyaddr('127.0.0.1')     -> {e}")),
    }
    match (lookup::port(3389, "tcp"), lookup::service("https", "tcp")) {
        (Ok(name), Ok(port)) => {
            log.push(format!("getservbyport(3389, 'tcp')     -> {name}"));
            log.push(format!("getservbyname('https')         -> {port}"));
        }
        (Err(e), _) | (_, Err(e)) => log.push(format!("services database: {e}")),
    }
    // Three listeners the demo owns, and a ping and a scan of them.
    let held: Vec<(std::net::TcpListener, SocketAddr)> = (0..3)
        .map(|_| loopback_listener())
        .collect::<Result<_, _>>()?;
    let mut ports: Vec<u16> = held.iter().map(|(_, a)| a.port()).collect();
    ports.sort_unstable();
    let mut sink = Vec::new();
    let summary = diag::ping(
        "127.0.0.1",
        ports[0],
        &diag::PingOptions {
            count: 3,
            interval: Duration::from_millis(10),
            timeout: Duration::from_secs(2),
            family: Family::V4,
            proxies: Vec::new(),
        },
        &mut sink,
    )
    .map_err(|e| e.to_string())?;
    if summary.times().len() != 3 {
        return Err(format!("ping: {}", summary.line()));
    }
    log.push(format!("ping 127.0.0.1 {}: {}", ports[0], summary.line()));
    let rt = runtime()?;
    let open = rt.block_on(diag::scan(
        "127.0.0.1".parse().map_err(|_| "bad literal")?,
        &ports,
        64,
        Duration::from_secs(1),
    ));
    let found: Vec<u16> = open.iter().map(|o| o.port).collect();
    if found != ports {
        return Err(format!("scan found {found:?}, expected {ports:?}"));
    }
    log.push(format!(
        "scan of the 3 ports the demo opened: all 3 open ({})",
        found
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(log.join("\n"))
}
