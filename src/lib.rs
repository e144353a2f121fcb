//! tradewire: a gRPC service for bilateral trade intelligence.
//!
//! The public surface is what a user of the library needs: [`serve`] or
//! [`App`] with a [`Config`], the generated `tradewire.v1` messages,
//! clients and servers in [`pb`], a resuming client in [`client`], and
//! what opening a durable store reports. Everything else is internal.
//!
//! The `testing` feature (off by default) adds what tests and the bench
//! need and no user should rely on: fault injection into the local log
//! (`Faults` through `DurableConfig::with_faults`), `App::catch_ups`,
//! and `bench_hooks` (the encode-once codec and a store without a
//! transport).
//!
//! Module map (see ARCHITECTURE.md for the write and subscribe paths); each
//! imports only those below it:
//! - `client` (public): a client with timeouts, TLS and tokens, and
//!   subscriptions that resume across reconnects; it imports only `pb`;
//! - `server`: assembly, health, reflection, the accept path, shutdown;
//! - `demo`: the seed article's facts as a data set, loaded via the API;
//! - `api`: thin gRPC handlers, routes, conversions, `Error` to `Status`;
//! - `hub`: the subscription contract (replay, live, catch-up, shutdown);
//! - `store`: the in-memory state, indexes, numbered logs and the
//!   write-ahead log under them;
//! - `domain`: wire-independent types and their rules;
//! - `error`: the one error type of requests.

#![forbid(unsafe_code)]
// The library reports through tracing and its return values; printing is
// the binary's business.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod api;
#[cfg(feature = "testing")]
pub mod bench_hooks;
pub mod client;
mod demo;
mod domain;
mod error;
mod hub;
mod server;
mod store;
mod turn;

/// Generated `tradewire.v1` types, clients and servers.
pub mod pb {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    tonic::include_proto!("tradewire.v1");

    /// Encoded descriptors of `tradewire.v1`, with comments, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("tradewire_descriptor");
}

pub use demo::Loaded as DemoLoaded;
pub use hub::HubConfig;
pub use server::{
    App, Config, Limits, Scope, ServeError, TlsFiles, TokenError, create_token, parse_scopes, serve,
};
pub use store::{
    Counts, DurableConfig, FsyncPolicy, JetStreamConfig, OpenError, Recovery, StoreConfig,
};
/// Fault injection into the local log, for tests (feature `testing`).
#[cfg(feature = "testing")]
pub use store::{Faults, SyncHook};
