//! Step: a chat room with three people and the server.

use super::*;

/// A chat member in the demo.
pub(super) struct Talker {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Talker {
    async fn join(addr: SocketAddr) -> Result<Talker, String> {
        let s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (r, w) = s.into_split();
        Ok(Talker {
            r: BufReader::new(r),
            w,
        })
    }
    async fn say(&mut self, line: &str) -> Result<(), String> {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())
    }
    /// Reads lines until one contains `needle`.
    async fn expect(&mut self, needle: &str) -> Result<String, String> {
        for _ in 0..100 {
            let mut line = String::new();
            match tokio::time::timeout(STEP_TIMEOUT, self.r.read_line(&mut line)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(_)) if line.contains(needle) => return Ok(line.trim_end().to_string()),
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        Err(format!("{needle:?} never arrived"))
    }
}

/// Step 5: the chat room.
pub(super) fn chat_room_step() -> StepResult {
    runtime()?.block_on(async {
        let stop = CancellationToken::new();
        let (console_tx, console_in) = tokio::sync::mpsc::channel::<Line>(16);
        let (screen_tx, mut screen) = tokio::sync::mpsc::channel::<bytes::Bytes>(1024);
        let (addr, srv) = start_server(
            ServerOptions {
                mode: Mode::Chat,
                ..ServerOptions::default()
            },
            Console {
                input: Some(console_in),
                output: Some(screen_tx),
            },
            &stop,
        )
        .await?;
        let mut log = vec![format!("`tcp listen --chat` on {addr}")];
        let mut alice = Talker::join(addr).await?;
        alice.expect("welcome").await?;
        alice.say("/nick alice").await?;
        alice.expect("is now alice").await?;
        let mut bob = Talker::join(addr).await?;
        bob.expect("welcome").await?;
        bob.say("/nick bob").await?;
        alice.expect("is now bob").await?;
        let mut carol = Talker::join(addr).await?;
        carol.expect("welcome").await?;
        carol.say("/nick carol").await?;
        bob.expect("is now carol").await?;
        alice.expect("is now carol").await?;
        log.push("alice, bob and carol joined and chose names with /nick".into());
        alice.say("hi everyone").await?;
        let b = bob.expect("hi everyone").await?;
        carol.expect("hi everyone").await?;
        log.push(format!("alice> hi everyone   -> bob and carol see: {b}"));
        let _ = console_tx
            .send(Line {
                data: bytes::Bytes::from_static(b"welcome to the room"),
                ended: true,
            })
            .await;
        let c = carol.expect("welcome to the room").await?;
        alice.expect("welcome to the room").await?;
        log.push(format!(
            "the server's own terminal types -> everyone sees: {c}"
        ));
        carol.say("/who").await?;
        log.push(format!(
            "carol> /who          -> {}",
            carol.expect("in the room").await?
        ));
        carol.say("/quit").await?;
        let left = alice.expect("carol left").await?;
        bob.expect("carol left").await?;
        log.push(format!("carol> /quit         -> alice and bob see: {left}"));
        stop.cancel();
        let _ = tokio::time::timeout(STEP_TIMEOUT, srv).await;
        let mut seen = Vec::new();
        while let Ok(b) = screen.try_recv() {
            seen.extend_from_slice(&b);
        }
        if !String::from_utf8_lossy(&seen).contains("[alice] hi everyone") {
            return Err("the server's terminal did not show the room".into());
        }
        log.push("the server's terminal saw every line and notice".into());
        Ok(log.join("\n"))
    })
}
