//! UDP commands: `udp listen` (print, `--echo`, `--upper`, truncation
//! reported, broadcast and multicast) and `udp send` (datagrams out,
//! replies printed while sending, never hangs).
//!
//! - [`batch`]: `recvmmsg`/`sendmmsg` wrappers, so one syscall moves many
//!   datagrams, with the real length of truncated datagrams (`MSG_TRUNC`).
//! - `listen`: `udp listen` (binding, groups, the receive loop, replies).
//! - `send`: `udp send` (datagrams out, replies in, broadcast checks).
//! - this file: the limits, errors, binding a socket, showing a datagram.

pub mod batch;
mod listen;
mod send;

pub use listen::{bind, listen, serve, ListenOptions, ListenSummary, Reply};
pub use send::{send, Messages, SendOptions, SendSummary};

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::net::{self, describe, show_addr, NetError};
use crate::text::hex_dump;

/// Largest UDP payload over IPv4 (65,535 - 20 IP - 8 UDP).
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// Largest UDP payload over IPv6 without jumbograms (65,535 - 8 UDP).
pub const MAX_DATAGRAM_V6: usize = 65_527;
/// Default receive buffer: large enough that nothing is truncated.
pub const DEFAULT_BUFFER: usize = 65_535;
/// Datagrams moved per `recvmmsg` / `sendmmsg` call.
const BATCH: usize = 32;

/// UDP errors.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// Resolving or binding failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Nothing listens at the destination (ICMP port unreachable).
    #[error("no UDP listener at {addr} (connection refused)")]
    Refused {
        /// Where we sent.
        addr: String,
    },
    /// A datagram is too big for UDP.
    #[error("a {len}-byte datagram is over the {max}-byte UDP limit for {family}; send less per datagram")]
    TooBig {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
        /// IPv4 or IPv6.
        family: &'static str,
    },
    /// Sending to a broadcast address without `--broadcast`.
    #[error("{addr} is a broadcast address; add --broadcast to send to it")]
    NeedBroadcast {
        /// The destination.
        addr: SocketAddr,
    },
    /// Joining a multicast group failed.
    #[error("could not join multicast group {group} ({reason})")]
    Join {
        /// The group.
        group: IpAddr,
        /// Why.
        reason: String,
    },
    /// Another socket error.
    #[error("UDP {what} failed ({reason})")]
    Socket {
        /// What we were doing.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Reading stdin or writing stdout failed.
    #[error("could not {0}")]
    Stdio(String),
}

impl crate::error::Failure for UdpError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            UdpError::Net(e) => e.kind(),
            UdpError::Refused { .. }
            | UdpError::TooBig { .. }
            | UdpError::NeedBroadcast { .. }
            | UdpError::Join { .. }
            | UdpError::Socket { .. }
            | UdpError::Stdio(_) => crate::error::Kind::Runtime,
        }
    }
}

fn sock_err(what: &'static str, e: &io::Error) -> UdpError {
    UdpError::Socket {
        what,
        reason: describe(e),
    }
}

/// How to show datagrams.
#[derive(Debug, Clone, Copy, Default)]
pub struct Show {
    /// Prefix each with `from ADDR (N bytes): `.
    pub sender: bool,
    /// Show payloads as a hex dump.
    pub hex: bool,
}

/// Creates a UDP socket bound to `addr`.
fn bind_udp(addr: SocketAddr, reuse_port: bool, dual_stack: bool) -> Result<Socket, NetError> {
    let map = |e: io::Error| net::bind_error(addr, e);
    let s =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(map)?;
    // Without --reuse-port a taken port is an error, not a silent second
    // listener that receives nothing (SO_REUSEADDR allows that for UDP).
    if reuse_port {
        s.set_reuse_address(true).map_err(map)?;
        s.set_reuse_port(true).map_err(map)?;
    }
    if addr.is_ipv6() {
        let _ = s.set_only_v6(!dual_stack);
    }
    // A bigger receive queue absorbs bursts from pipelined senders.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SockAddr::from(addr)).map_err(map)?;
    Ok(s)
}

/// Writes one datagram's display form.
fn show_datagram(out: &mut Vec<u8>, from: SocketAddr, len: usize, data: &[u8], show: Show) {
    if show.sender {
        out.extend_from_slice(format!("from {} ({len} bytes): ", show_addr(from)).as_bytes());
    }
    if show.hex {
        if show.sender {
            out.push(b'\n');
        }
        out.extend_from_slice(hex_dump(data).as_bytes());
        return;
    }
    // One datagram per line: a payload that already ends in a newline
    // (as `nc -u` sends) does not get a second one.
    // Inside it, a newline prints as `\n` (and `\` as `\\`): one line each.
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    out.extend_from_slice(&crate::text::escape_line(body));
    out.push(b'\n');
}
