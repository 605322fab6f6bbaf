//! sockit: a fast, safe TCP/UDP toolkit. One library, one thin binary.
//!
//! # Layout
//!
//! The folder tree is the architecture; each module owns one concern.
//!
//! | module | concern |
//! |---|---|
//! | [`access`] | `--allow`/`--deny` CIDR lists for every listener (pure, no I/O) |
//! | [`tls`] | rustls, in four files: `identity` (config dir, kept self-signed identity, PEM, server config), `trust` (verifier policy, pins, known_hosts, the prompt, client config), `session` (handshakes with deadlines, blocking and async, `Stream`), `detect` (plaintext-vs-TLS sniffers, pure) |
//! | [`net`] | address parsing, system-resolver lookups, connect to every address, bind listeners, `RLIMIT_NOFILE` |
//! | [`text`] | bounded line splitting, quit words, CRLF, UTF-8/GBK, upper-casing (pure, no I/O) |
//! | [`frame`] | length-prefixed framing codec, the sticky-packet fix (pure, no I/O) |
//! | [`interrupt`] | Ctrl-C for blocking commands: a flag, interrupted calls, the exit-code rule |
//! | [`console`] | stdin and stdout threads behind bounded channels for async servers |
//! | [`tcp`] | `tcp connect` and `tcp listen`: [`tcp::pipe`] (one session joined to stdin/stdout: its text and frame stages, TLS check and end rules, run by [`relay::pump_with`]), [`tcp::server`] (accepts and dispatches many peers: hub, echo, upper, chat), `room` (member tasks), `shared` (modes, options, shared state, below server and room), `members` (the member table), [`tcp::wire`] (lines or frames) |
//! | [`udp`] | `udp send` and `udp listen`: echo, upper, truncation via `MSG_TRUNC`, broadcast, multicast; [`udp::batch`] wraps `recvmmsg`/`sendmmsg` |
//! | [`transfer`] | `serve`, `get`, `ls`: [`transfer::proto`] (wire format, pure), [`transfer::paths`] (safe paths), [`transfer::server`], [`transfer::client`] |
//! | [`relay`] | the one duplex pump over endpoints (TCP, Unix, TLS either side, a child process, stdio): half-close, reset and backpressure rules, `splice(2)` with a pipe pool between plain sockets, stages (text, frames) for a session; `child` (a program per connection), `threaded` (stdin/stdout or any reader/writer on threads behind bounded channels, stdin that is a pipe or a file straight to a socket), `proxy_header` (PROXY v1/v2, pure), `fault` (the faults a connection or UDP session suffers, parsed and seeded, pure; applied as a stage of the userspace copy) |
//! | [`forward`] | `forward LISTEN TARGET…`: spellings, the stream relay (one accept loop per core, round robin, targets skipped while down, `--tls`, `tls:`, `exec:`, `--proxy-protocol`, faults) through [`relay`], connections evened out over the loops (`balance`); `udp` (session table, `recvmmsg`); `events` (`--json`) |
//! | [`proxy`] | proxies: `--proxy` URLs, credentials and the client handshakes (blocking and async, chains) in `mod.rs`; `socks` (SOCKS5/4a both sides) and `http` (CONNECT, bounded heads, absolute-form rewrite), pure; `server` (`sockit proxy`: one port, the first byte picks the protocol, the destination guard, tunnels through [`relay`]); `udp` (SOCKS5 UDP ASSOCIATE) |
//! | [`unix`] | Unix socket addresses (`PATH`, `@abstract`), binding with the stale-socket rule, connecting |
//! | [`lookup`] | hostname, system-resolver lookups (getaddrinfo/getnameinfo), services database, direct DNS (hickory-proto) |
//! | [`diag`] | `ping` (TCP handshake latency) and `scan` (bounded connect scan) |
//! | [`bench`](mod@bench) | `bench server` / `bench client`: [`bench::proto`] (versioned hello, pure), tcp, udp, rr, udp-rr, conns |
//! | [`report`] | JSON text for the `--json` flags (pure, no I/O) |
//! | [`demo`] | the guided tour on loopback that `sockit demo` runs: a runner (`demo/mod.rs`), one file per step, `kit.rs` for what steps share |
//!
//! The binary is thin. `src/main.rs` parses the arguments, dispatches, prints
//! `sockit: <sentence>` on failure and maps the result to an exit code (0
//! success, 1 runtime failure, 2 usage error, 130 cut short by Ctrl-C).
//! `src/cli/` holds one file per command (`tcp.rs`, `udp.rs`, `transfer.rs`,
//! `lookup.rs`, `diag.rs`, `bench.rs`, `forward.rs`, `proxy.rs`), each with its clap structs and their
//! conversion into this library's options, plus `args.rs` (argument groups
//! several commands share) and `parse.rs` (value parsers). A new flag touches
//! one of those files.

#![warn(missing_docs)]

pub mod access;
pub mod bench;
pub mod console;
pub mod demo;
pub mod diag;
pub mod dial;
pub mod error;
pub mod forward;
pub mod frame;
pub mod interrupt;
pub mod listener;
pub mod lookup;
pub mod net;
pub mod peers;
pub mod proxy;
pub mod relay;
pub mod report;
pub mod session;
pub mod tcp;
pub mod text;
pub mod tls;
pub mod transfer;
pub mod udp;
pub mod unix;
