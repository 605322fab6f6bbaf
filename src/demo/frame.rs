//! Step: sticky packets fixed by `--frame`.

use super::*;

/// Step 4: two messages written in one write come out as two messages.
pub(super) fn frame_step() -> StepResult {
    runtime()?.block_on(async {
        let stop = CancellationToken::new();
        let (addr, srv) = start_server(
            ServerOptions {
                mode: Mode::Echo,
                frame: Some(DEFAULT_MAX_FRAME),
                ..ServerOptions::default()
            },
            Console::default(),
            &stop,
        )
        .await?;
        let s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (r, mut w) = s.into_split();
        let mut one_write = Vec::new();
        for m in ["first message", "second message"] {
            one_write.extend_from_slice(
                &encode_frame(m.as_bytes(), DEFAULT_MAX_FRAME).map_err(|e| e.to_string())?,
            );
        }
        w.write_all(&one_write).await.map_err(|e| e.to_string())?;
        let mut frames = FramedRead::new(r, FrameCodec::new(DEFAULT_MAX_FRAME));
        let mut got = Vec::new();
        while got.len() < 2 {
            match tokio::time::timeout(STEP_TIMEOUT, frames.next()).await {
                Ok(Some(Ok(f))) => got.push(String::from_utf8_lossy(&f).into_owned()),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                _ => return Err("the echoed messages did not arrive".into()),
            }
        }
        stop.cancel();
        let _ = tokio::time::timeout(STEP_TIMEOUT, srv).await;
        if got != ["first message", "second message"] {
            return Err(format!("got {got:?}"));
        }
        Ok(format!(
            "TCP is a byte stream: two sends can arrive as one recv (seed 003's sticky packets)\n\
             wrote 2 messages in ONE write ({} bytes: 4-byte big-endian length + payload, twice)\n\
             `tcp listen --frame --echo` on {addr} split them and echoed 2 messages:\n\
             -> {:?}\n-> {:?}",
            one_write.len(),
            got[0],
            got[1]
        ))
    })
}
