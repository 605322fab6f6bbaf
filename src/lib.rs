//! sockit: a fast, safe TCP/UDP toolkit. One library, one thin binary.
//!
//! # Layout
//!
//! The folder tree is the architecture; each module owns one concern, and
//! a module uses only those below it. `docs/ARCHITECTURE.md` is the map:
//! what each module must not know, where new work goes, the invariants and
//! the rules that cut across modules. From the bottom up:
//!
//! | floor | modules |
//! |---|---|
//! | pure | [`error`] (failure kinds), [`access`], [`text`], [`frame`], [`report`] |
//! | diagnostics | [`logline`] (stderr as text or JSON lines) |
//! | sockets and stdio | [`net`] (addresses, resolver, direct connects, listeners, Unix sockets), [`console`], [`interrupt`] |
//! | protocols | [`tls`], [`lookup`] |
//! | moving bytes | [`relay`] (the one pump), [`listener`] (the one accept loop) |
//! | reaching a host | [`proxy`] (both sides), [`dial`] (direct or through `--proxy`) |
//! | streams | [`session`] (one stream to stdio), [`peers`] (many peers) |
//! | commands | [`tcp`], [`unix`], [`udp`], [`transfer`], [`bench`](mod@bench), [`diag`], [`forward`], [`nc`] (netcat's command line over them) |
//! | the tour | [`demo`] |
//!
//! The binary is thin. `src/main.rs` parses the arguments, dispatches, prints
//! `sockit: <sentence>` on failure and turns the error's [`error::Kind`]
//! into the exit code (0 success, 1 runtime failure, 2 usage error, 130 cut
//! short by Ctrl-C). `src/cli/` holds one file per command, each with its
//! clap structs and their conversion into this library's options, plus
//! `args.rs` (argument groups several commands share) and `parse.rs` (value
//! parsers). A new flag touches one of those files.

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
pub mod logline;
pub mod lookup;
pub mod nc;
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
