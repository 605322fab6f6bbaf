//! `sockit bench`: measure TCP and UDP yourself (seed 000's "TCP slow, UDP
//! fast" table, with real numbers).
//!
//! - [`proto`]: the versioned hello, free of I/O.
//! - [`server`]: one server for many concurrent clients and tests.
//! - [`client`]: the tests (tcp, udp, rr, udp-rr, conns) and their reports.

pub mod client;
pub mod proto;
pub mod server;
