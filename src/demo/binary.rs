//! Step: 8 MiB of binary through connect/listen, hash checked.

use super::*;

/// Step 3: binary bytes (NUL, invalid UTF-8) through the pipe, BLAKE3 compared.
pub(super) fn binary_step() -> StepResult {
    const SIZE: usize = 8 << 20;
    let mut data = vec![0u8; SIZE];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    data[0] = 0;
    data[1] = 0xff;
    let sent_hash = blake3::hash(&data);
    let (listener, addr) = loopback_listener()?;
    let hasher = Arc::new(Mutex::new(blake3::Hasher::new()));
    let h2 = hasher.clone();
    let server = std::thread::spawn(move || -> Result<Outcome, String> {
        let (s, _) = listener.accept().map_err(|e| e.to_string())?;
        session::run(
            session::Link::Plain(session::Sock::Tcp(s)),
            Input::Reader(Box::new(io::empty())),
            Output::Writer(Box::new(HashWriter(h2))),
            &PipeOptions::default(),
        )
        .map_err(|e| e.to_string())
    });
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let started = Instant::now();
    session::run(
        session::Link::Plain(session::Sock::Tcp(stream)),
        Input::Reader(Box::new(io::Cursor::new(data))),
        Output::Writer(Box::new(io::sink())),
        &PipeOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    server.join().map_err(|_| "the server thread failed")??;
    let secs = started.elapsed().as_secs_f64();
    let got = hasher.lock().unwrap_or_else(|p| p.into_inner()).finalize();
    if got != sent_hash {
        return Err(format!("hash mismatch: sent {sent_hash}, received {got}"));
    }
    Ok(format!(
        "sent 8 MiB of random bytes (NUL and invalid UTF-8 included) in {:.0} ms\n\
         blake3 sent     {}\nblake3 received {}  (identical)",
        secs * 1000.0,
        &sent_hash.to_hex()[..16],
        &got.to_hex()[..16]
    ))
}

/// A writer that hashes what it is given.
pub(super) struct HashWriter(Arc<Mutex<blake3::Hasher>>);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
