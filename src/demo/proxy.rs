//! Step: a download through `sockit proxy` with a password, and the
//! refusals a proxy owes: a wrong password, a destination it must not reach.

use super::*;

/// Step 12: `sockit proxy --auth`, `get --proxy socks5h://…` verified, a
/// wrong password refused, and the SSRF guard at work.
pub(super) fn proxy_step() -> StepResult {
    in_scratch("proxy", proxy_tour)
}

fn proxy_tour(tmp: &std::path::Path) -> StepResult {
    use crate::proxy::server::{self as pserver, DestPolicy, ProxyOptions};
    use crate::proxy::{Creds, ProxyUrl};
    use crate::transfer::client;
    let srv = tmp.join("served");
    let dl = tmp.join("downloads");
    std::fs::create_dir_all(&srv).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dl).map_err(|e| e.to_string())?;
    let mut data = vec![0u8; 4 << 20];
    blake3::Hasher::new()
        .update(b"sockit demo: proxy")
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(srv.join("via-proxy.bin"), &data).map_err(|e| e.to_string())?;
    let files = serve_dir(&srv, None)?;
    let rt = runtime()?;
    let stop = CancellationToken::new();
    // Two proxies: one that may reach loopback (as a test must), and one
    // with the defaults, which refuse it.
    let mut fronts = Vec::new();
    for allow in [true, false] {
        let (listener, addr) = loopback_listener()?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let opts = ProxyOptions {
            auth: Some(Creds {
                user: "demo".into(),
                pass: "s3cret".into(),
            }),
            dest: DestPolicy::new(
                if allow {
                    vec!["127.0.0.0/8"
                        .parse()
                        .map_err(|e: crate::access::CidrError| e.to_string())?]
                } else {
                    Vec::new()
                },
                Vec::new(),
            ),
            ..ProxyOptions::default()
        };
        let stop = stop.clone();
        rt.spawn(async move {
            let _ = pserver::serve(listener, opts, Default::default(), stop).await;
        });
        fronts.push(addr);
    }
    let url = |pass: &str, at: SocketAddr| -> Result<ProxyUrl, String> {
        format!("socks5h://demo:{pass}@{at}").parse()
    };
    let get = |proxy: ProxyUrl, name: &str| {
        let opts = client::GetOptions {
            dir: Some(dl.clone()),
            connect: crate::dial::DialOptions {
                connect: ConnectOptions {
                    timeout: Some(STEP_TIMEOUT),
                    ..ConnectOptions::default()
                },
                proxies: vec![proxy],
            },
            ..client::GetOptions::default()
        };
        client::get(
            "127.0.0.1",
            files.port(),
            &[name.to_string()],
            &opts,
            &mut |_| {},
            &mut |_| {},
        )
    };
    let mut log = vec![format!(
        "`sockit proxy --auth demo:… --allow-dest 127.0.0.0/8` on {}; `sockit serve` on {files}",
        fronts[0]
    )];
    let got = get(url("s3cret", fronts[0])?, "via-proxy.bin").map_err(|e| e.to_string())?;
    let f = got.first().ok_or("nothing downloaded")?;
    if std::fs::read(dl.join("via-proxy.bin")).map_err(|e| e.to_string())? != data {
        return Err("the file that came through the proxy differs".into());
    }
    log.push(format!(
        "get --proxy socks5h://demo:…@{}: {}",
        fronts[0],
        f.summary().replace(&format!("{}/", dl.display()), "")
    ));
    let _ = std::fs::remove_file(dl.join("via-proxy.bin"));
    match get(url("guess", fronts[0])?, "via-proxy.bin") {
        Err(e) if e.to_string().contains("refused the username and password") => {
            log.push(format!("a wrong password: {e}"))
        }
        Err(e) => return Err(format!("expected a refused password, got: {e}")),
        Ok(_) => return Err("a wrong password was let through".into()),
    }
    match get(url("s3cret", fronts[1])?, "via-proxy.bin") {
        Err(e) if e.to_string().contains("not allowed") => log.push(format!(
            "a proxy with the default rules, asked for loopback: {e}"
        )),
        Err(e) => return Err(format!("expected the loopback guard, got: {e}")),
        Ok(_) => return Err("the default proxy reached loopback".into()),
    }
    stop.cancel();
    rt.shutdown_timeout(STEP_TIMEOUT);
    Ok(log.join("\n"))
}
