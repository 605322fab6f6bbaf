//! Step: TCP chat between two terminals, both ways at once.

use super::*;

/// Step 1: the seed 000 chat, full duplex, ended by a quit word.
pub(super) fn chat_step() -> StepResult {
    let (listener, addr) = loopback_listener()?;
    let opts = PipeOptions {
        text: TextOptions {
            quit: vec!["bye".into()],
            ..TextOptions::default()
        },
        ..PipeOptions::default()
    };
    let (server_keys, server_in) = mpsc::channel();
    let server_screen = Screen::default();
    let sscreen = server_screen.clone();
    let sopts = opts.clone();
    let server = std::thread::spawn(move || -> Result<Outcome, String> {
        let (s, _) = listener.accept().map_err(|e| e.to_string())?;
        session::run(
            session::Link::Plain(session::Sock::Tcp(s)),
            Input::Reader(Box::new(Typist(server_in, Vec::new()))),
            Output::Writer(Box::new(sscreen)),
            &sopts,
        )
        .map_err(|e| e.to_string())
    });
    let stream = net::connect(
        "127.0.0.1",
        addr.port(),
        &ConnectOptions {
            timeout: Some(STEP_TIMEOUT),
            nodelay: true,
            ..ConnectOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let (client_keys, client_in) = mpsc::channel();
    let client_screen = Screen::default();
    let cscreen = client_screen.clone();
    let client = std::thread::spawn(move || {
        session::run(
            session::Link::Plain(session::Sock::Tcp(stream)),
            Input::Reader(Box::new(Typist(client_in, Vec::new()))),
            Output::Writer(Box::new(cscreen)),
            &opts,
        )
        .map_err(|e| e.to_string())
    });
    let mut log = vec![format!("listening on {addr}; a client connected")];
    // Two lines in a row from the client: the seed could not do this.
    let _ = client_keys.send(b"hello from the client\n".to_vec());
    let _ = client_keys.send(b"and a second line before any reply\n".to_vec());
    server_screen.wait_for("and a second line before any reply")?;
    log.push("client> hello from the client / and a second line  -> server printed both".into());
    let _ = server_keys.send("你好, from the server\n".as_bytes().to_vec());
    client_screen.wait_for("你好, from the server")?;
    log.push("server> 你好, from the server                       -> client printed it".into());
    let _ = client_keys.send(b"bye\n".to_vec());
    let c = client.join().map_err(|_| "the client thread failed")??;
    let s = server.join().map_err(|_| "the server thread failed")??;
    if c != Outcome::QuitSent || s != Outcome::QuitReceived {
        return Err(format!("expected a clean quit, got {c:?} / {s:?}"));
    }
    log.push("client> bye  -> quit word: both sides closed cleanly".into());
    Ok(log.join("\n"))
}
