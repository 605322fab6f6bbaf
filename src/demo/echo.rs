//! Step: a multi-client echo server.

use super::*;

/// Step 2: many clients at once against `--echo`.
pub(super) fn echo_step() -> StepResult {
    runtime()?.block_on(async {
        let (listener, addr) = loopback_listener()?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stop = CancellationToken::new();
        let srv = tokio::spawn(peers::serve(
            crate::listener::Bound::Tcp(listener),
            ServerOptions {
                mode: Mode::Echo,
                ..ServerOptions::default()
            },
            Console::default(),
            stop.clone(),
        ));
        let mut clients = Vec::new();
        for i in 0..20u32 {
            clients.push(tokio::spawn(async move {
                let payload: Vec<u8> = (0..65536u32).map(|j| (j * 7 + i) as u8).collect();
                let mut s = tokio::net::TcpStream::connect(addr).await?;
                let (mut r, mut w) = s.split();
                let send = async {
                    w.write_all(&payload).await?;
                    w.shutdown().await
                };
                let mut back = Vec::new();
                let (a, b) = tokio::join!(send, r.read_to_end(&mut back));
                a?;
                b?;
                Ok::<bool, io::Error>(back == payload)
            }));
        }
        let mut good = 0;
        for c in clients {
            match tokio::time::timeout(STEP_TIMEOUT, c).await {
                Ok(Ok(Ok(true))) => good += 1,
                Ok(Ok(Ok(false))) => return Err("a client got back different bytes".to_string()),
                Ok(Ok(Err(e))) => return Err(format!("a client failed: {e}")),
                _ => return Err("a client did not finish in time".to_string()),
            }
        }
        stop.cancel();
        let summary = tokio::time::timeout(STEP_TIMEOUT, srv)
            .await
            .map_err(|_| "the server did not stop".to_string())?
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "echo server on {addr}; {good} clients sent 64 KiB each at the same time\n\
             every client got exactly its own bytes back ({} connections served)",
            summary.accepted
        ))
    })
}
