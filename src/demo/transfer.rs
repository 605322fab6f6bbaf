//! Step: a verified, resumable file download, cut by a flaky proxy.

use super::*;

/// A proxy that passes one connection through, but cuts it after the
/// server has sent `cut_after` bytes: a network drop, for the resume demo.
pub(super) fn flaky_proxy(to: SocketAddr, cut_after: usize) -> Result<SocketAddr, String> {
    let (listener, addr) = loopback_listener()?;
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let Ok(server) = TcpStream::connect(to) else {
            return;
        };
        let (mut c2, mut s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => return,
        };
        std::thread::spawn(move || {
            let _ = io::copy(&mut c2, &mut s2);
        });
        let (mut s, mut c) = (server, client);
        let mut buf = vec![0u8; 64 * 1024];
        let mut passed = 0;
        while passed < cut_after {
            let want = buf.len().min(cut_after - passed);
            match s.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    passed += n;
                }
            }
        }
        let _ = c.shutdown(std::net::Shutdown::Both);
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    Ok(addr)
}

/// Step 9: serve a directory, download verified, survive a network drop,
/// resume, and refuse a path-traversal attempt.
pub(super) fn transfer_step() -> StepResult {
    in_scratch("transfer", transfer_tour)
}

/// The body of step 9, in a scratch directory.
pub(super) fn transfer_tour(tmp: &std::path::Path) -> StepResult {
    use crate::transfer::{client, TransferError};
    let srv = tmp.join("served");
    let dl = tmp.join("downloads");
    std::fs::create_dir_all(&srv).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dl).map_err(|e| e.to_string())?;
    let mut data = vec![0u8; 8 << 20];
    let mut x: u32 = 0x1234_5678;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(srv.join("report.bin"), &data).map_err(|e| e.to_string())?;
    std::fs::write(tmp.join("secret.txt"), b"outside the served directory\n")
        .map_err(|e| e.to_string())?;
    let addr = serve_dir(&srv, None)?;
    let mut log = vec![format!(
        "`sockit serve` on {addr} serves a scratch directory, read-only"
    )];
    let opts = client::GetOptions {
        dir: Some(dl.clone()),
        connect: crate::dial::DialOptions {
            connect: ConnectOptions {
                timeout: Some(STEP_TIMEOUT),
                ..ConnectOptions::default()
            },
            proxies: Vec::new(),
        },
        ..client::GetOptions::default()
    };
    // 1. A download that the network cuts after 3 MiB.
    let proxy = flaky_proxy(addr, 3 << 20)?;
    let names = vec!["report.bin".to_string()];
    match client::get(
        "127.0.0.1",
        proxy.port(),
        &names,
        &opts,
        &mut |_| {},
        &mut |_| {},
    ) {
        Err(TransferError::Interrupted { .. }) => {}
        Err(e) => return Err(format!("expected an interrupted download, got: {e}")),
        Ok(_) => return Err("the download should have been cut".into()),
    }
    let part = std::fs::metadata(dl.join("report.bin.part"))
        .map(|m| m.len())
        .map_err(|_| "no .part was kept".to_string())?;
    log.push(format!(
        "get report.bin: the connection dropped; {} kept in report.bin.part, no final file",
        client::human(part)
    ));
    // 2. The same command again resumes and verifies the whole file.
    let got = client::get(
        "127.0.0.1",
        addr.port(),
        &names,
        &opts,
        &mut |_| {},
        &mut |_| {},
    )
    .map_err(|e| e.to_string())?;
    let f = got.first().ok_or("nothing downloaded")?;
    if !matches!(f.outcome, client::Outcome::Verified { resumed_from } if resumed_from == part) {
        return Err(format!(
            "expected a resume from {part}, got {:?}",
            f.outcome
        ));
    }
    let saved = std::fs::read(dl.join("report.bin")).map_err(|e| e.to_string())?;
    if saved != data {
        return Err("the saved file differs from the served one".into());
    }
    let summary = f.summary().replace(&format!("{}/", dl.display()), "");
    log.push(format!("get report.bin again: {summary}"));
    // 3. A path-traversal attempt is refused by the server.
    let evil = vec!["../secret.txt".to_string()];
    let mut refusal = None;
    let mut note = |e: &TransferError| {
        if let TransferError::Refused { message, .. } = e {
            refusal = Some(message.clone());
        }
    };
    match client::get(
        "127.0.0.1",
        addr.port(),
        &evil,
        &opts,
        &mut |_| {},
        &mut note,
    ) {
        Err(TransferError::SomeFailed { .. }) => match refusal {
            Some(message) => log.push(format!(
                "get ../secret.txt: refused by the server ({message})"
            )),
            None => return Err("the traversal failed without the server's refusal".into()),
        },
        Err(e) => return Err(format!("unexpected error: {e}")),
        Ok(_) => return Err("the traversal was not refused".into()),
    }
    if dl.join("secret.txt").exists() {
        return Err("the secret file was written".into());
    }
    Ok(log.join("\n"))
}
