//! Step: an echo server behind `forward --tls`; the bytes come back
//! through TLS unchanged.

use super::*;

/// Step 11: `sockit forward PORT ECHO --tls`, a TLS client that pins the
/// relay's certificate, and 1 MiB there and back.
pub(super) fn relay_step() -> StepResult {
    in_scratch("relay", relay_tour)
}

/// The body of the step, in a scratch directory (its own identity and
/// known_hosts: the user's are never touched).
fn relay_tour(tmp: &std::path::Path) -> StepResult {
    use crate::forward::{self, ForwardOptions, Listen};
    use crate::tls::{ClientTls, ClientTlsOptions, ServerTls, ServerTlsOptions};
    runtime()?.block_on(async {
        let stop = CancellationToken::new();
        let echo = ServerOptions {
            mode: Mode::Echo,
            ..ServerOptions::default()
        };
        let (echo_addr, echo_task) = start_server(echo, Console::default(), &stop).await?;
        let tls = ServerTls::new(&ServerTlsOptions {
            identity_dir: Some(tmp.join("identity")),
            ..ServerTlsOptions::default()
        })
        .map_err(|e| e.to_string())?;
        let fp = tls.fingerprint.clone();
        let targets = forward::parse_targets(&[echo_addr.to_string()]).map_err(|e| e.to_string())?;
        let mut opts = ForwardOptions::new(Listen::Tcp(BindAddr { host: None, port: 0 }), targets);
        opts.tls = Some(tls);
        let (listener, front) = loopback_listener()?;
        let relay = tokio::spawn(forward::serve_tcp(listener, opts, stop.clone()));
        let client = ClientTls::new(
            "127.0.0.1",
            front.port(),
            &ClientTlsOptions {
                pin: Some(fp.clone()),
                known_hosts: Some(tmp.join("known_hosts")),
                ..ClientTlsOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let mut data = vec![0u8; 1 << 20];
        blake3::Hasher::new()
            .update(b"sockit demo: forward --tls")
            .finalize_xof()
            .fill(&mut data);
        let trip = async {
            let sock = tokio::net::TcpStream::connect(front)
                .await
                .map_err(|e| e.to_string())?;
            let s = crate::tls::connect_async(&client, sock, STEP_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            let (mut r, mut w) = tokio::io::split(s);
            let send = async {
                w.write_all(&data).await?;
                w.shutdown().await
            };
            let mut back = Vec::new();
            let (a, b) = tokio::join!(send, r.read_to_end(&mut back));
            a.map_err(|e| e.to_string())?;
            b.map_err(|e| e.to_string())?;
            Ok::<Vec<u8>, String>(back)
        };
        let back = tokio::time::timeout(STEP_TIMEOUT, trip)
            .await
            .map_err(|_| "the round trip through the relay timed out".to_string())??;
        stop.cancel();
        let _ = tokio::time::timeout(STEP_TIMEOUT, relay).await;
        let _ = tokio::time::timeout(STEP_TIMEOUT, echo_task).await;
        let (sent, got) = (blake3::hash(&data), blake3::hash(&back));
        if back.len() != data.len() || sent != got {
            return Err(format!(
                "{} bytes came back of {}, BLAKE3 {} instead of {}",
                back.len(),
                data.len(),
                &got.to_hex()[..16],
                &sent.to_hex()[..16]
            ));
        }
        Ok(format!(
            "`sockit forward {front} {echo_addr} --tls` (certificate {}…) in front of an echo server; \
             1 MiB went through TLS and the relay and came back unchanged (BLAKE3 {}…)",
            &fp[..19],
            &got.to_hex()[..16]
        ))
    })
}
