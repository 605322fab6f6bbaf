//! Proxies, both sides. The client side (`--proxy URL`, repeatable for a
//! chain) opens a tunnel through SOCKS5, SOCKS4a or HTTP CONNECT proxies and
//! hands back a plain TCP stream, so every connecting command works through
//! it unchanged, TLS included (checked against the target's name); the
//! commands reach it through [`crate::dial`]. The server side is [`server`]
//! (`sockit proxy`).
//!
//! Files, from the bottom up:
//! - [`socks`] and [`http`]: the protocols as bytes in and out (pure);
//! - [`url`]: proxy URLs and credentials (pure);
//! - [`client`]: the handshake drivers over a chain, blocking and async;
//! - [`guard`]: where a tunnel may lead (the destination policy), below the
//!   server and `udp`, which both apply it;
//! - [`server`]: `sockit proxy` (the handshakes, the destination, tunnels);
//! - `udp`: SOCKS5 UDP ASSOCIATE for the server.
//!
//! `ALL_PROXY` and `NO_PROXY` are not read: a netcat that silently routes
//! through whatever the environment says would surprise its scripts (nc and
//! ncat do not read them either). Say `--proxy`.

pub mod client;
pub mod guard;
pub mod http;
pub mod server;
pub mod socks;
mod udp;
pub mod url;

pub use client::{connect, connect_async, ProxyError, HANDSHAKE_TIMEOUT};
pub use url::{Creds, ProxyUrl, Scheme};
