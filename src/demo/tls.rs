//! Step: an encrypted download with trust on first use, then a changed
//! identity refused.

use super::*;

/// Forwards each connection to whatever address `to` holds at accept
/// time: "the server at this address" can be swapped for another.
pub(super) fn switch_proxy(to: Arc<Mutex<SocketAddr>>) -> Result<SocketAddr, String> {
    let (listener, addr) = loopback_listener()?;
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(target) = to.lock().map(|t| *t) else {
                return;
            };
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut s, mut c) = (server, client);
                let _ = io::copy(&mut s, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Ok(addr)
}

/// Step 10: a TLS download trusted on first use, then the server's
/// identity changes and the client refuses to send anything.
pub(super) fn tls_step() -> StepResult {
    in_scratch("tls", tls_tour)
}

/// The body of step 10, in a scratch directory (its own identities and
/// known_hosts: the user's are never touched).
pub(super) fn tls_tour(tmp: &std::path::Path) -> StepResult {
    use crate::tls::{ClientTlsOptions, ServerTls, ServerTlsOptions, TlsError};
    use crate::transfer::{client, TransferError};
    let srv = tmp.join("served");
    let dl = tmp.join("downloads");
    std::fs::create_dir_all(&srv).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dl).map_err(|e| e.to_string())?;
    std::fs::write(srv.join("notes.txt"), b"sent over TLS 1.3\n").map_err(|e| e.to_string())?;
    let start = |id: &str| -> Result<(SocketAddr, String), String> {
        let tls = ServerTls::new(&ServerTlsOptions {
            identity_dir: Some(tmp.join(id)),
            ..ServerTlsOptions::default()
        })
        .map_err(|e| e.to_string())?;
        let fp = tls.fingerprint.clone();
        Ok((serve_dir(&srv, Some(tls))?, fp))
    };
    let (first, fp1) = start("identity-a")?;
    let target = Arc::new(Mutex::new(first));
    let front = switch_proxy(target.clone())?;
    let mut log = vec![format!(
        "`sockit serve --tls` behind {front}; its self-signed certificate is {fp1}"
    )];
    let known = tmp.join("known_hosts");
    let opts = client::GetOptions {
        dir: Some(dl.clone()),
        connect: crate::dial::DialOptions {
            connect: ConnectOptions {
                timeout: Some(STEP_TIMEOUT),
                ..ConnectOptions::default()
            },
            proxies: Vec::new(),
        },
        tls: Some(ClientTlsOptions {
            tofu: true,
            known_hosts: Some(known.clone()),
            ..ClientTlsOptions::default()
        }),
        ..client::GetOptions::default()
    };
    let names = vec!["notes.txt".to_string()];
    let got = client::get(
        "127.0.0.1",
        front.port(),
        &names,
        &opts,
        &mut |_| {},
        &mut |_| {},
    )
    .map_err(|e| e.to_string())?;
    let f = got.first().ok_or("nothing downloaded")?;
    let recorded = std::fs::read_to_string(&known).map_err(|e| e.to_string())?;
    if !recorded.contains(&fp1) {
        return Err("the fingerprint was not recorded".into());
    }
    let summary = f.summary().replace(&format!("{}/", dl.display()), "");
    log.push(format!(
        "get --tls --tofu: {summary}; fingerprint recorded in known_hosts"
    ));
    // The same address now answers with another identity.
    let (second, fp2) = start("identity-b")?;
    if let Ok(mut t) = target.lock() {
        *t = second;
    }
    std::fs::remove_file(dl.join("notes.txt")).map_err(|e| e.to_string())?;
    match client::get(
        "127.0.0.1",
        front.port(),
        &names,
        &opts,
        &mut |_| {},
        &mut |_| {},
    ) {
        Err(TransferError::Tls(TlsError::Untrusted(msg))) if msg.contains("CHANGED") => {
            log.push(format!(
                "the server at {front} is replaced ({fp2}): refused, nothing sent:\n  {msg}"
            ));
        }
        Err(e) => return Err(format!("expected a changed-certificate refusal, got: {e}")),
        Ok(_) => return Err("a changed certificate was accepted".into()),
    }
    if dl.join("notes.txt").exists() {
        return Err("a file was written from the impostor".into());
    }
    Ok(log.join("\n"))
}
