//! Steps: UDP upper-case echo, truncation reported, broadcast; and the
//! UDP listener they share.

use super::*;

/// A UDP listener running in a thread: its address, its screen, its thread.
pub(super) type UdpRun = (
    SocketAddr,
    Screen,
    std::thread::JoinHandle<Result<udp::ListenSummary, String>>,
);

/// Options for a demo UDP listener on `bind` that stops on the word "stop".
pub(super) fn udp_opts(
    bind: &str,
    reply: udp::Reply,
    buffer: usize,
    reuse_port: bool,
) -> Result<udp::ListenOptions, String> {
    Ok(udp::ListenOptions {
        bind: bind.parse::<BindAddr>()?,
        family: Family::V4,
        reply,
        show: udp::Show::default(),
        buffer,
        quit: vec!["stop".into()],
        reuse_port,
        join: None,
        iface: None,
        access: Default::default(),
        talk: false,
    })
}

/// Runs a UDP listener in a thread, printing into a shared screen.
pub(super) fn spawn_udp(opts: udp::ListenOptions) -> Result<UdpRun, String> {
    let sock = udp::bind(&opts).map_err(|e| e.to_string())?;
    let addr = sock.local_addr().map_err(|e| e.to_string())?;
    let screen = Screen::default();
    let mut w = screen.clone();
    let h = std::thread::spawn(move || udp::serve(&sock, &opts, &mut w).map_err(|e| e.to_string()));
    Ok((addr, screen, h))
}

/// Sends datagrams with the library's `udp send`, collecting replies.
pub(super) fn udp_send_demo(
    addr: SocketAddr,
    msgs: &[&[u8]],
    broadcast: bool,
    wait: Duration,
) -> Result<Screen, String> {
    let screen = Screen::default();
    let opts = udp::SendOptions {
        family: Family::V4,
        bind: None,
        broadcast,
        ttl: None,
        multicast_loop: false,
        wait,
        count_replies: None,
        show: udp::Show::default(),
    };
    udp::send(
        &addr.ip().to_string(),
        addr.port(),
        udp::Messages::Args(msgs.iter().map(|m| m.to_vec()).collect()),
        &opts,
        Box::new(screen.clone()),
    )
    .map_err(|e| e.to_string())?;
    Ok(screen)
}

/// Step 6: the seed 003 upper-case UDP echo, and a send that is refused.
pub(super) fn udp_upper_step() -> StepResult {
    let (addr, _, h) = spawn_udp(udp_opts(
        "127.0.0.1:0",
        udp::Reply::Upper,
        udp::DEFAULT_BUFFER,
        false,
    )?)?;
    let replies = udp_send_demo(
        addr,
        &[b"hello", "你好, udp".as_bytes()],
        false,
        Duration::from_millis(300),
    )?;
    replies.wait_for("HELLO")?;
    replies.wait_for("你好, UDP")?;
    udp_send_demo(addr, &[b"stop"], false, Duration::ZERO)?;
    let summary = h.join().map_err(|_| "the listener thread failed")??;
    // A send to a port with no listener: refused at once, not a hang.
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let refused = match udp_send_demo(nobody, &[b"anyone?"], false, Duration::from_secs(1)) {
        Err(e) if e.contains("no UDP listener") => e,
        Err(e) => return Err(format!("expected a refusal, got: {e}")),
        Ok(_) => return Err("expected a refusal, but the send succeeded".into()),
    };
    Ok(format!(
        "`udp listen --upper` on {addr}; `udp send` sent \"hello\" and \"你好, udp\"\n\
         replies: HELLO and 你好, UDP ({} datagrams served)\n\
         a send to {nobody}, where nothing listens: \"{refused}\" after {} ms\n\
         (the seed's client would wait forever)",
        summary.datagrams,
        started.elapsed().as_millis()
    ))
}

/// Step 7: a datagram longer than the buffer is reported with both sizes.
pub(super) fn udp_truncation_step() -> StepResult {
    let (addr, screen, h) = spawn_udp(udp_opts("127.0.0.1:0", udp::Reply::None, 16, false)?)?;
    let long = b"this datagram is forty bytes long, see?!";
    udp_send_demo(addr, &[&long[..], b"stop"], false, Duration::ZERO)?;
    let summary = h.join().map_err(|_| "the listener thread failed")??;
    screen.wait_for("this datagram is")?;
    if summary.truncated != 1 {
        return Err(format!(
            "expected 1 truncated datagram, saw {}",
            summary.truncated
        ));
    }
    Ok(format!(
        "`udp listen --buffer 16` (the seed's small recvfrom buffer) got a {}-byte datagram\n\
         it kept the first 16 bytes and reported the loss (MSG_TRUNC gives the real size):\n\
         \"datagram from ... truncated: {} bytes, buffer 16\"; the seed drops the rest silently",
        long.len(),
        long.len()
    ))
}

/// Step 8: broadcast on loopback reaches every listener on the port.
pub(super) fn udp_broadcast_step() -> StepResult {
    let (a, screen_a, ha) = spawn_udp(udp_opts(
        "0.0.0.0:0",
        udp::Reply::None,
        udp::DEFAULT_BUFFER,
        true,
    )?)?;
    let port = a.port();
    let (_, screen_b, hb) = spawn_udp(udp_opts(
        &format!("0.0.0.0:{port}"),
        udp::Reply::None,
        udp::DEFAULT_BUFFER,
        true,
    )?)?;
    let target = SocketAddr::from(([127, 255, 255, 255], port));
    match udp_send_demo(target, &[b"x"], false, Duration::ZERO) {
        Err(e) if e.contains("--broadcast") => {}
        Err(e) => return Err(format!("unexpected error: {e}")),
        Ok(_) => return Err("a broadcast without --broadcast should have failed".into()),
    }
    udp_send_demo(
        target,
        &[b"hello, everyone on this port", b"stop"],
        true,
        Duration::ZERO,
    )?;
    ha.join().map_err(|_| "listener A failed")??;
    hb.join().map_err(|_| "listener B failed")??;
    screen_a.wait_for("hello, everyone")?;
    screen_b.wait_for("hello, everyone")?;
    Ok(format!(
        "two `udp listen 0.0.0.0:{port} --reuse-port` listeners share one port\n\
         without --broadcast the send is refused, and the message names the flag\n\
         `udp send 127.255.255.255 {port} --broadcast`: both listeners printed it\n\
         (127.255.255.255 is loopback's broadcast address: nothing leaves this machine)"
    ))
}
