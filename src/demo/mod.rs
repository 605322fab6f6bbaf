//! `sockit demo`: a guided tour of every feature, on loopback only. Each
//! step runs the real library code over real sockets, narrates what it
//! does, and checks the result; the demo succeeds only if every step did.
//!
//! This file is the runner; each step is a file of its own (`chat.rs`,
//! `echo.rs`, …, `datagrams.rs` for the three UDP steps, which share a listener),
//! and `kit.rs` holds what several steps share. A new step is a new file
//! and one line in [`run`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::frame::{encode_frame, FrameCodec, DEFAULT_MAX_FRAME};
use crate::net::{self, BindAddr, ConnectOptions, Family};
use crate::peers::{self, Console, Mode, ServerOptions};
use crate::session::{self, Input, Outcome, Output, PipeOptions};
use crate::text::{Line, TextOptions};
use crate::udp;

/// How long any one wait in the demo may take before the step fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one step: a line of detail, or why it failed.
type StepResult = Result<String, String>;

/// One titled step of the tour.
type Step = (&'static str, fn() -> StepResult);

mod bench;
mod binary;
mod chat;
mod chat_room;
mod datagrams;
mod echo;
mod frame;
mod kit;
mod lookup;
mod proxy;
mod relay;
mod tls;
mod transfer;

use bench::*;
use binary::*;
use chat::*;
use chat_room::*;
use datagrams::*;
use echo::*;
use frame::*;
use kit::*;
use lookup::*;
use proxy::*;
use relay::*;
use tls::*;
use transfer::*;

/// Runs the tour and prints it on stdout. Returns whether every step passed.
///
/// # Errors
/// Only when stdout cannot be written.
pub fn run() -> io::Result<bool> {
    let steps: Vec<Step> = vec![
        (
            "TCP chat between two terminals, both ways at once",
            chat_step,
        ),
        ("a multi-client echo server (20 clients at once)", echo_step),
        (
            "8 MiB of binary through connect/listen, hash checked",
            binary_step,
        ),
        ("sticky packets (粘包) fixed by --frame", frame_step),
        (
            "a chat room with three people and the server",
            chat_room_step,
        ),
        (
            "UDP upper-case echo (seed 003), never hanging",
            udp_upper_step,
        ),
        (
            "UDP truncation reported, not silently dropped",
            udp_truncation_step,
        ),
        (
            "UDP broadcast on 127.255.255.255 to two listeners",
            udp_broadcast_step,
        ),
        (
            "verified, resumable file download (seed 002, done properly)",
            transfer_step,
        ),
        ("encrypted download: TLS with trust on first use", tls_step),
        (
            "forward: an echo server behind a TLS relay, bytes unchanged",
            relay_step,
        ),
        (
            "a download through sockit proxy, with a password",
            proxy_step,
        ),
        ("lookups (seed 004), TCP ping and a port scan", lookup_step),
        (
            "TCP vs UDP, measured (seed 000 says TCP is slow)",
            bench_step,
        ),
    ];
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "sockit demo: a guided tour on loopback (127.0.0.1 only; nothing leaves this machine)\n"
    )?;
    let mut passed = 0;
    for (i, (title, step)) in steps.iter().enumerate() {
        writeln!(out, "[{}/{}] {title}", i + 1, steps.len())?;
        out.flush()?;
        match step() {
            Ok(detail) => {
                for line in detail.lines() {
                    writeln!(out, "  {line}")?;
                }
                writeln!(out, "  ok\n")?;
                passed += 1;
            }
            Err(why) => writeln!(out, "  FAILED: {why}\n")?,
        }
    }
    let all = passed == steps.len();
    if all {
        writeln!(out, "all {passed} steps passed")?;
    } else {
        writeln!(out, "{passed} of {} steps passed", steps.len())?;
    }
    Ok(all)
}
