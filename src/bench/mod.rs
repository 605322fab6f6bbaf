//! `sockit bench`: measure TCP and UDP yourself (seed 000's "TCP slow, UDP
//! fast" table, with real numbers).
//!
//! - [`proto`]: the versioned hello, free of I/O.
//! - [`server`]: one server for many concurrent clients and tests.
//! - [`client`]: the tests (tcp, udp, rr, udp-rr, conns) and their reports.
//! - [`plot`]: a run drawn as an SVG (`--plot`), pure.

pub mod client;
pub mod plot;
pub mod proto;
pub mod server;
